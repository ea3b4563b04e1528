//! "My clients" pages over HTTP (as a browser would post the forms), on both
//! stores: create (secret shown once), list, edit, rotate, delete; another user
//! gets 404; a client made in the pages runs the authorization-code flow.

use crate::helpers::{
    hidden_value, location, per_backend, pkce_pair, spawn_app, urlencode, Backend, TestApp,
    REDIRECT,
};
use crate::steps;

fn secret_from(html: &str) -> String {
    let at = html.find("id=\"client_secret\"").expect("secret box");
    let start = at + html[at..].find('>').unwrap() + 1;
    html[start..start + html[start..].find('<').unwrap()]
        .trim()
        .to_string()
}

fn client_id_from(html: &str) -> String {
    let at = html.find("id=\"client_id\"").expect("client id");
    let start = at + html[at..].find('>').unwrap() + 1;
    html[start..start + html[start..].find('<').unwrap()]
        .trim()
        .to_string()
}

async fn signed_in(app: &TestApp) -> reqwest::Client {
    let browser = app.browser();
    assert_eq!(app.login(&browser, "/clients").await.status(), 303);
    browser
}

async fn signup(app: &TestApp, name: &str) -> reqwest::Client {
    let browser = app.browser();
    let resp = steps::sign_up(&browser, &app.addr, name, "a-long-password").await;
    assert_eq!(resp.status(), 303);
    browser
}

async fn csrf_of(app: &TestApp, browser: &reqwest::Client, path: &str) -> String {
    let page = app.page(browser, path).await;
    hidden_value(&page, "csrf_token")
}

per_backend!(create_edit_rotate_delete_and_ownership);
async fn create_edit_rotate_delete_and_ownership(backend: Backend) {
    let app = spawn_app(backend).await;
    // signed out → login
    let resp = app.http.get(app.url("/clients")).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert!(location(&resp).starts_with("/login?return_to=%2Fclients"));

    let alice = signed_in(&app).await;
    let csrf = csrf_of(&app, &alice, "/clients/new").await;
    // a validation error names the field and stores nothing
    let resp = alice
        .post(app.url("/clients"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("client_name", "Shop"),
            ("redirect_uris", "http://shop.example/cb"),
            ("grant_types", "authorization_code"),
            ("scope", "profile"),
            ("token_endpoint_auth_method", "client_secret_basic"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("https"));
    assert_eq!(
        app.state
            .store
            .scan_prefix("kg:client:")
            .await
            .unwrap()
            .len(),
        1,
        "only the harness's client"
    );

    let body = format!(
        "csrf_token={}&client_name=Shop&redirect_uris={}&grant_types=authorization_code&grant_types=refresh_token&scope=profile+email&token_endpoint_auth_method=client_secret_basic",
        urlencode(&csrf),
        urlencode(REDIRECT)
    );
    let resp = alice
        .post(app.url("/clients"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let page = resp.text().await.unwrap();
    let id = client_id_from(&page);
    let secret = secret_from(&page);
    assert!(secret.len() >= 43);
    // the same client through RFC 7592, with the token shown once on this page
    let at = page
        .find("id=\"registration_access_token\"")
        .expect("registration access token");
    let start = at + page[at..].find('>').unwrap() + 1;
    let rat = page[start..start + page[start..].find('<').unwrap()]
        .trim()
        .to_string();
    let via_api: serde_json::Value = app
        .http
        .get(app.url(&format!("/oauth/register/{id}")))
        .bearer_auth(&rat)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(via_api["client_name"], "Shop");
    let list = app.page(&alice, "/clients").await;
    assert!(list.contains("Shop") && list.contains(&id));
    assert!(!list.contains(&secret), "the secret is shown once");

    // the client works in the code flow
    let (verifier, challenge) = pkce_pair();
    let q = steps::code_query(&id, "profile", &challenge);
    let code = steps::code_of(&app.authorize(&q, "allow").await);
    let basic = Some((id.as_str(), secret.as_str()));
    let resp = steps::redeem(&app.http, &app.addr, basic, &[], &code, &verifier).await;
    assert_eq!(resp.status(), 200);

    // another user sees 404 for every page and action
    let bob = signup(&app, "bob").await;
    let bob_csrf = csrf_of(&app, &bob, "/clients/new").await;
    assert_eq!(
        bob.get(app.url(&format!("/clients/{id}")))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        bob.get(app.url(&format!("/clients/{id}/delete")))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    for action in ["/rotate", "/delete", ""] {
        let resp = bob
            .post(app.url(&format!("/clients/{id}{action}")))
            .form(&[
                ("csrf_token", bob_csrf.as_str()),
                ("client_name", "pwned"),
                ("grant_types", "client_credentials"),
                ("token_endpoint_auth_method", "client_secret_basic"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{action}");
    }
    assert!(!app.page(&bob, "/clients").await.contains(&id));

    // edit
    let csrf = csrf_of(&app, &alice, &format!("/clients/{id}")).await;
    let body = format!(
        "csrf_token={}&client_name=Shop+2&redirect_uris={}&grant_types=authorization_code&scope=profile&token_endpoint_auth_method=client_secret_basic",
        urlencode(&csrf),
        urlencode(REDIRECT)
    );
    let resp = alice
        .post(app.url(&format!("/clients/{id}")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert!(app.page(&alice, "/clients").await.contains("Shop 2"));
    // rotate: the old secret stops working
    let resp = alice
        .post(app.url(&format!("/clients/{id}/rotate")))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let new_secret = secret_from(&resp.text().await.unwrap());
    assert_ne!(new_secret, secret);
    let cc = [
        ("grant_type", "authorization_code"),
        ("code", "x"),
        ("redirect_uri", REDIRECT),
        ("code_verifier", "y"),
    ];
    assert_eq!(
        app.post_token(Some((&id, &secret)), &cc).await.status(),
        401
    );
    assert_eq!(
        app.post_token(Some((&id, &new_secret)), &cc).await.status(),
        400,
        "authenticates; the code is bad"
    );
    // CSRF is required
    let resp = alice
        .post(app.url(&format!("/clients/{id}/delete")))
        .form(&[("csrf_token", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // delete with confirmation
    assert_eq!(
        alice
            .get(app.url(&format!("/clients/{id}/delete")))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let resp = alice
        .post(app.url(&format!("/clients/{id}/delete")))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(
        app.post_token(Some((&id, &new_secret)), &cc).await.status(),
        401
    );
    assert_eq!(
        alice
            .get(app.url(&format!("/clients/{id}")))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let _ = backend;
}

#[tokio::test]
async fn public_client_from_the_pages_has_no_secret() {
    let app = spawn_app(Backend::Memory).await;
    let alice = signed_in(&app).await;
    let csrf = csrf_of(&app, &alice, "/clients/new").await;
    let body = format!(
        "csrf_token={}&client_name=SPA&redirect_uris={}&grant_types=authorization_code&scope=profile&token_endpoint_auth_method=none",
        urlencode(&csrf),
        urlencode(REDIRECT)
    );
    let resp = alice
        .post(app.url("/clients"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let page = resp.text().await.unwrap();
    assert!(!page.contains("id=\"client_secret\""));
    let id = client_id_from(&page);
    let resp = alice
        .post(app.url(&format!("/clients/{id}/rotate")))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "nothing to rotate");
}

per_backend!(oauth21_registers_no_client_for_a_grant_it_does_not_serve);
/// Issue 12 item 8: under `oauth21` (the default) neither the pages nor
/// RFC 7591 register a client for `implicit` or `password`; the form does
/// not offer them, a forged post is refused, nothing is stored. The
/// `legacy` profile offers and accepts both.
async fn oauth21_registers_no_client_for_a_grant_it_does_not_serve(backend: Backend) {
    const IAT: &str = "initial-access-token-profile-tests";
    let app = crate::helpers::spawn_app_with(backend, keygate::tokens::keys::Alg::RS256, |s| {
        s.registration.initial_access_tokens = vec![IAT.into()]
    })
    .await;
    let clients = || async {
        app.state
            .store
            .scan_prefix("kg:client:")
            .await
            .unwrap()
            .len()
    };
    let before = clients().await;
    let alice = signed_in(&app).await;
    let form = app.page(&alice, "/clients/new").await;
    assert!(form.contains("value=\"authorization_code\""), "{form}");
    for legacy in ["password", "implicit"] {
        assert!(
            !form.contains(&format!("value=\"{legacy}\"")),
            "{legacy} offered"
        );
        let csrf = csrf_of(&app, &alice, "/clients/new").await;
        let resp = alice
            .post(app.url("/clients"))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("client_name", "Old app"),
                ("redirect_uris", REDIRECT),
                ("grant_types", legacy),
                ("scope", "profile"),
                ("token_endpoint_auth_method", "client_secret_basic"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{legacy}");
        assert!(resp.text().await.unwrap().contains("oauth21"), "{legacy}");
        let body = serde_json::json!({"client_name": "Old app", "redirect_uris": [REDIRECT],
            "grant_types": [legacy], "response_types": []});
        let resp = crate::steps::post_registration(&app.http, &app.addr, IAT, &body).await;
        assert_eq!(resp.status(), 400, "{legacy}");
        let err: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(err["error"], "invalid_client_metadata", "{legacy}");
    }
    assert_eq!(clients().await, before, "nothing stored");

    let legacy = crate::helpers::spawn_app_with(backend, keygate::tokens::keys::Alg::RS256, |s| {
        s.oauth.profile = "legacy".into();
        s.registration.initial_access_tokens = vec![IAT.into()]
    })
    .await;
    let alice = legacy.browser();
    assert_eq!(legacy.login(&alice, "/clients").await.status(), 303);
    let form = legacy.page(&alice, "/clients/new").await;
    assert!(form.contains("value=\"password\"") && form.contains("value=\"implicit\""));
    let body = serde_json::json!({"client_name": "Old app", "redirect_uris": [REDIRECT],
        "grant_types": ["password", "implicit"], "response_types": ["token"]});
    let info = steps::register(&legacy.http, &legacy.addr, IAT, &body).await;
    assert_eq!(
        info["grant_types"],
        serde_json::json!(["password", "implicit"])
    );
}
