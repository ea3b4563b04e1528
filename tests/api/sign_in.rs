//! The sign-in pages over HTTP: security headers and CSRF on every page,
//! login failures and `return_to`, sign-up, logout, the session cookie.

use keygate::tokens::keys::Alg;

use crate::helpers::{
    hidden_value, location, per_backend, pkce_pair, spawn_app, spawn_app_with, Backend, PASSWORD,
    USER,
};
use crate::steps;

#[tokio::test]
async fn pages_carry_security_headers_and_csrf() {
    let app = spawn_app(Backend::Memory).await;
    for path in [
        "/",
        "/login",
        "/signup",
        "/oauth/authorize?client_id=nobody",
    ] {
        let resp = app.http.get(app.url(path)).send().await.unwrap();
        let h = resp.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
    }
    // a login POST without the CSRF token is refused
    let browser = app.browser();
    let _ = browser.get(app.url("/login")).send().await.unwrap();
    let resp = browser
        .post(app.url("/login"))
        .form(&[("username", USER), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = browser
        .post(app.url("/login"))
        .form(&[
            ("username", USER),
            ("password", PASSWORD),
            ("csrf_token", "forged"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp
        .headers()
        .get("set-cookie")
        .is_none_or(|c| !c.to_str().unwrap().contains("kg_session=")));
}

#[tokio::test]
async fn login_failures_say_nothing_about_the_user_and_return_to_is_local() {
    let app = spawn_app(Backend::Memory).await;
    for (user, pw) in [(USER, "wrong-password"), ("nobody", "wrong-password")] {
        let browser = app.browser();
        let page = app.page(&browser, "/login").await;
        let csrf = hidden_value(&page, "csrf_token");
        let resp = browser
            .post(app.url("/login"))
            .form(&[
                ("username", user),
                ("password", pw),
                ("csrf_token", &csrf),
                ("return_to", "/"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        let text = resp.text().await.unwrap();
        assert!(text.contains("Incorrect username or password."));
    }
    // open redirects are not followed
    for evil in [
        "//evil.example/x",
        "https://evil.example",
        "/\\evil.example",
    ] {
        let browser = app.browser();
        let resp = app.login(&browser, evil).await;
        assert_eq!(resp.status(), 303);
        assert_eq!(location(&resp), "/", "{evil}");
    }
}

per_backend!(signup_then_login_and_logout);
async fn signup_then_login_and_logout(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    let page = app.page(&browser, "/signup").await;
    let csrf = hidden_value(&page, "csrf_token");
    let form = [
        ("username", "bob"),
        ("email", "bob@example.com"),
        ("password", "bob-password"),
        ("csrf_token", csrf.as_str()),
        ("return_to", "/"),
    ];
    let resp = browser
        .post(app.url("/signup"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let home = app.page(&browser, "/").await;
    assert!(home.contains("bob"), "signed in after sign-up");
    // the name is taken now, in any case
    let browser2 = app.browser();
    let page = app.page(&browser2, "/signup").await;
    let csrf2 = hidden_value(&page, "csrf_token");
    let resp = browser2
        .post(app.url("/signup"))
        .form(&[
            ("username", "BOB"),
            ("password", "another-password"),
            ("csrf_token", csrf2.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // logout ends the session
    let home = app.page(&browser, "/").await;
    let csrf = hidden_value(&home, "csrf_token");
    let resp = browser
        .post(app.url("/logout"))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let (_, ch) = pkce_pair();
    let resp = browser
        .get(app.url(&format!(
            "/oauth/authorize?{}",
            steps::code_query("web-app", "profile email", &ch)
        )))
        .send()
        .await
        .unwrap();
    assert!(location(&resp).starts_with("/login"), "signed out");
    // bob can sign in with his password through the token endpoint's user store too
    assert!(
        keygate::flows::users::authenticate(&app.state, "bob", "bob-password".into())
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn session_cookie_is_httponly_and_samesite_lax() {
    let app = spawn_app(Backend::Memory).await;
    let browser = app.browser();
    let resp = app.login(&browser, "/").await;
    assert_eq!(resp.status(), 303);
    let cookies: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("kg_session="))
        .expect("session cookie");
    assert!(session.contains("HttpOnly"), "{session}");
    assert!(session.contains("SameSite=Lax"), "{session}");
    assert!(
        !session.contains("Secure"),
        "http issuer: no Secure flag ({session})"
    );
    // the store holds the session under a hash, never the cookie value
    let value = session
        .trim_start_matches("kg_session=")
        .split(';')
        .next()
        .unwrap();
    let keys = app.state.store.scan_prefix("kg:sess:").await.unwrap();
    assert_eq!(keys.len(), 1);
    assert!(!keys[0].contains(value));
}

#[tokio::test]
async fn signup_is_closed_when_disabled() {
    let app = spawn_app_with(Backend::Memory, Alg::RS256, |s| s.ui.signup = false).await;
    assert_eq!(
        app.http
            .get(app.url("/signup"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

per_backend!(return_to_is_read_as_a_browser_reads_it);
/// Issue 12 item 1: a `return_to` that a browser would resolve to another
/// origin (TAB and newlines are stripped by WHATWG URL parsing, so
/// `/<TAB>/evil.example/` is `//evil.example/`) goes home, and a `return_to`
/// with control characters still gets a `Location` (percent-encoded).
async fn return_to_is_read_as_a_browser_reads_it(backend: Backend) {
    let app = spawn_app(backend).await;
    for (raw, want) in [
        ("/\t/evil.example/", "/"),
        ("/\n/evil.example/", "/"),
        ("/x\u{1}y", "/x%01y"),
        ("/clients?a=1", "/clients?a=1"),
    ] {
        let browser = app.browser();
        let resp = app.login(&browser, raw).await;
        assert_eq!(resp.status(), 303, "{raw:?}");
        assert_eq!(location(&resp), want, "{raw:?}");
    }
    // The same rule after sign-up.
    let browser = app.browser();
    let page = app.page(&browser, "/signup").await;
    let csrf = hidden_value(&page, "csrf_token");
    let resp = browser
        .post(app.url("/signup"))
        .form(&[
            ("username", "carol"),
            ("password", "carol-password"),
            ("csrf_token", csrf.as_str()),
            ("return_to", "/\t/evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/");
}
