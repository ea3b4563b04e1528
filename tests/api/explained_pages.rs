//! Issue 16 item 5: error pages, the 404 page, the login page and the
//! consent page explain themselves: what was sent, who is signed in, which
//! app is asking, where the user goes back to, the app's logo and home
//! page, and what each scope allows.

use keygate::oauth::client_meta::ClientMetadata;
use keygate::oauth::types::{AuthMethod, GrantType, ScopeSet};

use crate::helpers::{
    location, per_backend, pkce_pair, spawn_app, spawn_app_with, urlencode, Backend, TestApp,
    REDIRECT,
};
use crate::steps;

async fn signed_in(app: &TestApp) -> reqwest::Client {
    let browser = app.browser();
    assert_eq!(app.login(&browser, "/").await.status(), 303);
    browser
}

async fn get(browser: &reqwest::Client, app: &TestApp, path: &str) -> (u16, String) {
    let resp = browser.get(app.url(path)).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

per_backend!(authorize_error_pages_show_what_was_sent_and_who_is_signed_in);
async fn authorize_error_pages_show_what_was_sent_and_who_is_signed_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = signed_in(&app).await;
    let (_, challenge) = pkce_pair();

    // Unknown application: the client_id as sent, escaped.
    let bad_id = "<script>alert(1)</script>";
    let q = steps::code_query(&urlencode(bad_id), "profile", &challenge);
    let (status, html) = get(&alice, &app, &format!("/oauth/authorize?{q}")).await;
    assert_eq!(status, 400);
    assert!(html.contains("<dt>Client ID sent</dt>"), "{html}");
    assert!(html.contains("<dd><code>&#60;script&#62;alert(1)&#60;/script&#62;</code></dd>"));
    assert!(!html.contains(bad_id));
    assert!(html.contains(&format!("<dd><code>{REDIRECT}</code></dd>")));
    assert!(html.contains("Signed in as"), "the header keeps the user");
    assert!(html.contains(">Sign out</button>"));

    // Redirect URI not registered: the URI as sent, cut when long.
    let long = format!("https://evil.example/{}", "a".repeat(500));
    let q = format!(
        "response_type=code&client_id=web-app&redirect_uri={}&scope=profile&state=s&code_challenge={challenge}&code_challenge_method=S256",
        urlencode(&long)
    );
    let (status, html) = get(&alice, &app, &format!("/oauth/authorize?{q}")).await;
    assert_eq!(status, 400);
    assert!(html.contains("<dd><code>web-app</code></dd>"), "{html}");
    assert!(html.contains(&format!("<dd><code>{}…</code></dd>", &long[..200])));
    assert!(!html.contains(&long));
    assert!(!html.contains("href=\"https://evil"), "never a link");

    // Signed out, the same page offers the sign-in link instead.
    let (_, html) = get(&app.browser(), &app, &format!("/oauth/authorize?{q}")).await;
    assert!(!html.contains("Signed in as"));
    assert!(html.contains("href=\"/login\""));
}

#[tokio::test]
async fn unknown_paths_get_a_styled_404_page_for_browsers() {
    let app = spawn_app(Backend::Memory).await;
    let alice = signed_in(&app).await;
    for path in ["/nope", "/clients/a/b/c", "/oauth/nothing-here"] {
        let resp = alice
            .get(app.url(path))
            .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{path}");
        assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
        assert_eq!(resp.headers()["x-frame-options"], "DENY");
        let html = resp.text().await.unwrap();
        assert!(
            html.starts_with("<!doctype html>\n<html lang=\"en\">"),
            "{html}"
        );
        assert!(html.contains("href=\"/static/style.css\""));
        assert!(html.contains("Page not found"));
        assert!(html.contains("Signed in as"), "{path}");
    }
    // Not a browser: the router's own answer, not the page.
    let resp = app.http.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert!(!resp.text().await.unwrap().contains("Page not found"));
    // A known path keeps its own answer for browsers too.
    let resp = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

per_backend!(the_login_page_names_the_app_that_sent_the_user);
async fn the_login_page_names_the_app_that_sent_the_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    let (_, challenge) = pkce_pair();
    let q = steps::code_query("web-app", "profile", &challenge);
    let resp = browser
        .get(app.url(&format!("/oauth/authorize?{q}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let to = location(&resp);
    assert!(to.starts_with("/login?"), "{to}");
    let html = app.page(&browser, &to).await;
    assert!(
        html.contains(
            "Sign in to continue to <strong class=\"client-name\">web-app (test)</strong>."
        ),
        "{html}"
    );
    // A client registered in the store: one store read.
    let stored = format!(
        "/login?return_to={}",
        urlencode(&format!(
            "/oauth/authorize?client_id={}",
            app.stored_client.0
        ))
    );
    let html = app.page(&browser, &stored).await;
    assert!(html.contains("Sign in to continue to <strong class=\"client-name\">stored</strong>."));
    // Any other page, or an unknown client: the generic sentence.
    for plain in [
        "/login?return_to=%2Fclients",
        "/login?return_to=%2Foauth%2Fauthorize%3Fclient_id%3Dnope",
    ] {
        let html = app.page(&browser, plain).await;
        assert!(
            html.contains("Use your keygate account to continue."),
            "{plain}"
        );
    }
}

per_backend!(the_consent_page_shows_port_logo_home_page_and_scope_descriptions);
async fn the_consent_page_shows_port_logo_home_page_and_scope_descriptions(backend: Backend) {
    let app = spawn_app_with(backend, keygate::tokens::keys::Alg::RS256, |s| {
        s.oauth
            .scope_descriptions
            .insert("api:read".into(), "Read your <data>".into());
    })
    .await;
    let meta = ClientMetadata {
        client_name: "Shop".into(),
        redirect_uris: vec![REDIRECT.into()],
        grant_types: vec![GrantType::AuthorizationCode],
        scope: ScopeSet::parse("profile api:read api:write").unwrap(),
        auth_method: AuthMethod::None,
        client_uri: Some("https://shop.example/".into()),
        logo_uri: Some("https://cdn.shop.example:8443/logo.png".into()),
        oidc: Default::default(),
    };
    let reg = keygate::flows::clients::register(
        &app.state.repos,
        meta,
        &app.state.cfg.client_rules,
        0,
        None,
        false,
    )
    .await
    .unwrap();
    let alice = signed_in(&app).await;
    let (_, challenge) = pkce_pair();
    let q = steps::code_query(
        &reg.client.client_id,
        "profile api:read api:write",
        &challenge,
    );
    let resp = alice
        .get(app.url(&format!("/oauth/authorize?{q}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("img-src 'self' data: https://cdn.shop.example:8443;"),
        "{csp}"
    );
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("You will be sent back to <strong>127.0.0.1:3000</strong>."),
        "{html}"
    );
    assert!(html.contains(
        "<img class=\"client-logo\" src=\"https://cdn.shop.example:8443/logo.png\" alt=\"\" width=\"56\" height=\"56\" referrerpolicy=\"no-referrer\">"
    ));
    assert!(html.contains("href=\"https://shop.example/\" rel=\"noopener noreferrer\""));
    assert!(html.contains("Read your &#60;data&#62;"));
    assert!(html.contains("Use the \u{201c}api:write\u{201d} permission."));

    // A client without logo or home page: neither, and the strict CSP.
    let q = steps::code_query("web-app", "profile", &challenge);
    let resp = alice
        .get(app.url(&format!("/oauth/authorize?{q}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-security-policy"],
        keygate::http::pages::kit::CONTENT_SECURITY_POLICY
    );
    let html = resp.text().await.unwrap();
    assert!(!html.contains("<img") && !html.contains("client-home"));
}
