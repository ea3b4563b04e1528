//! "My clients" pages over HTTP (as a browser would post the forms), on both
//! stores: create (secret shown once), list, edit, rotate, delete; another user
//! gets 404; a client made in the pages runs the authorization-code flow.
//! Issue 16 item 4: every successful POST redirects, the secret page shows
//! the secret once, a form posted twice acts once, rotating asks first, and
//! every validation error is shown at once.

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

/// The `csrf_token` and one-time `form_nonce` of the form at `path`.
async fn form_of(app: &TestApp, browser: &reqwest::Client, path: &str) -> (String, String) {
    let page = app.page(browser, path).await;
    (
        hidden_value(&page, "csrf_token"),
        hidden_value(&page, "form_nonce"),
    )
}

/// POSTs a url-encoded `body` to `path`.
async fn post_body(
    app: &TestApp,
    browser: &reqwest::Client,
    path: &str,
    body: String,
) -> reqwest::Response {
    browser
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// A successful POST is a 303 to the page showing the secret once: GETs it.
async fn follow_to_secret(
    app: &TestApp,
    browser: &reqwest::Client,
    resp: reqwest::Response,
) -> String {
    assert_eq!(resp.status(), 303);
    let to = location(&resp);
    assert!(
        to.starts_with("/clients/") && to.contains("/secret?flash="),
        "{to}"
    );
    app.page(browser, &to).await
}

async fn stored_clients(app: &TestApp) -> usize {
    app.state
        .store
        .scan_prefix("kg:client:")
        .await
        .unwrap()
        .len()
}

/// A create form for a confidential client named `name`.
fn create_body(csrf: &str, nonce: &str, name: &str) -> String {
    format!(
        "csrf_token={}&form_nonce={}&client_name={}&redirect_uris={}&grant_types=authorization_code&scope=profile&token_endpoint_auth_method=client_secret_basic",
        urlencode(csrf),
        urlencode(nonce),
        urlencode(name),
        urlencode(REDIRECT)
    )
}

per_backend!(create_edit_rotate_delete_and_ownership);
async fn create_edit_rotate_delete_and_ownership(backend: Backend) {
    let app = spawn_app(backend).await;
    // signed out → login
    let resp = app.http.get(app.url("/clients")).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert!(location(&resp).starts_with("/login?return_to=%2Fclients"));

    let alice = signed_in(&app).await;
    let (csrf, nonce) = form_of(&app, &alice, "/clients/new").await;
    // a validation error names the field and stores nothing
    let resp = alice
        .post(app.url("/clients"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("form_nonce", nonce.as_str()),
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

    // the rejected form did not use up its nonce
    let body = format!(
        "csrf_token={}&form_nonce={}&client_name=Shop&redirect_uris={}&grant_types=authorization_code&grant_types=refresh_token&scope=profile+email&token_endpoint_auth_method=client_secret_basic",
        urlencode(&csrf),
        urlencode(&nonce),
        urlencode(REDIRECT)
    );
    let resp = post_body(&app, &alice, "/clients", body).await;
    let page = follow_to_secret(&app, &alice, resp).await;
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
    assert_eq!(location(&resp), "/clients");
    assert!(app.page(&alice, "/clients").await.contains("Shop 2"));
    // rotate, confirmed: the old secret stops working
    let (_, nonce) = form_of(&app, &alice, &format!("/clients/{id}/rotate")).await;
    let resp = alice
        .post(app.url(&format!("/clients/{id}/rotate")))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("form_nonce", nonce.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let new_secret = secret_from(&follow_to_secret(&app, &alice, resp).await);
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
    let (csrf, nonce) = form_of(&app, &alice, "/clients/new").await;
    let body = format!(
        "csrf_token={}&form_nonce={}&client_name=SPA&redirect_uris={}&grant_types=authorization_code&scope=profile&token_endpoint_auth_method=none",
        urlencode(&csrf),
        urlencode(&nonce),
        urlencode(REDIRECT)
    );
    let resp = post_body(&app, &alice, "/clients", body).await;
    let page = follow_to_secret(&app, &alice, resp).await;
    assert!(!page.contains("id=\"client_secret\""));
    assert!(page.contains("it has no secret"));
    let id = client_id_from(&page);
    let resp = alice
        .get(app.url(&format!("/clients/{id}/rotate")))
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
        let (csrf, nonce) = form_of(&app, &alice, "/clients/new").await;
        let resp = alice
            .post(app.url("/clients"))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("form_nonce", nonce.as_str()),
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

per_backend!(the_same_create_form_posted_twice_creates_one_client);
/// Issue 16 item 4: the create form carries a one-time `form_nonce`; the
/// same form posted again (a reload of an old POST, a double click, two at
/// once) creates nothing more and answers with a clear page.
async fn the_same_create_form_posted_twice_creates_one_client(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = signed_in(&app).await;
    let before = stored_clients(&app).await;
    let (csrf, nonce) = form_of(&app, &alice, "/clients/new").await;
    let body = create_body(&csrf, &nonce, "Twice");
    let first = post_body(&app, &alice, "/clients", body.clone()).await;
    assert_eq!(first.status(), 303);
    let again = post_body(&app, &alice, "/clients", body).await;
    assert_eq!(again.status(), 409);
    let html = again.text().await.unwrap();
    assert!(html.contains("This form was already sent"), "{html}");
    assert!(
        html.contains("Signed in as"),
        "the page keeps the user's header"
    );
    assert_eq!(stored_clients(&app).await, before + 1);

    // Two posts of one form at once: exactly one creates.
    let (csrf, nonce) = form_of(&app, &alice, "/clients/new").await;
    let body = create_body(&csrf, &nonce, "At once");
    let (a, b) = tokio::join!(
        post_body(&app, &alice, "/clients", body.clone()),
        post_body(&app, &alice, "/clients", body)
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [303, 409]);
    assert_eq!(stored_clients(&app).await, before + 2);

    // A post without the nonce is refused and creates nothing.
    let body = format!(
        "csrf_token={}&client_name=NoNonce&redirect_uris={}&grant_types=authorization_code&scope=profile&token_endpoint_auth_method=client_secret_basic",
        urlencode(&csrf),
        urlencode(REDIRECT)
    );
    assert_eq!(
        post_body(&app, &alice, "/clients", body).await.status(),
        403
    );
    assert_eq!(stored_clients(&app).await, before + 2);
}

per_backend!(reloading_the_secret_page_does_not_show_the_secret);
/// Issue 16 item 4: the secret reaches its page through a single-read
/// flash bound to the session: the first GET shows it, a reload says it was
/// already shown, and neither another session of the same user nor
/// another user can read it.
async fn reloading_the_secret_page_does_not_show_the_secret(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = signed_in(&app).await;
    let (csrf, nonce) = form_of(&app, &alice, "/clients/new").await;
    let resp = post_body(&app, &alice, "/clients", create_body(&csrf, &nonce, "Once")).await;
    assert_eq!(resp.status(), 303);
    let to = location(&resp);

    // Another user: not their client. Another session of alice: the flash
    // is not hers and is left alone.
    let bob = signup(&app, "bob").await;
    assert_eq!(bob.get(app.url(&to)).send().await.unwrap().status(), 404);
    let alice_elsewhere = signed_in(&app).await;
    let other = app.page(&alice_elsewhere, &to).await;
    assert!(other.contains("The secret was already shown."), "{other}");
    assert!(!other.contains("id=\"client_secret\""));

    // What the store holds meanwhile: sealed, never the secret in clear.
    let keys = app.state.store.scan_prefix("kg:flash:").await.unwrap();
    assert_eq!(keys.len(), 1);
    let stored = app.state.store.get(&keys[0]).await.unwrap().unwrap();
    let page = app.page(&alice, &to).await;
    let secret = secret_from(&page);
    assert!(secret.len() >= 43);
    let stored = String::from_utf8_lossy(&stored);
    assert!(!stored.contains(&secret), "{stored}");
    assert!(!stored.contains(&client_id_from(&page)));
    assert!(page.contains("id=\"registration_access_token\""));
    let reload = app.page(&alice, &to).await;
    assert!(reload.contains("The secret was already shown."), "{reload}");
    assert!(!reload.contains(&secret));
    assert!(!reload.contains("id=\"client_secret\""));
    assert!(!reload.contains("id=\"registration_access_token\""));
    assert!(reload.contains(&client_id_from(&page)));
    // Without a flash id, too.
    let bare = to[..to.find('?').unwrap()].to_string();
    assert!(app.page(&alice, &bare).await.contains("already shown"));
    // Nothing is left in the store.
    assert!(app
        .state
        .store
        .scan_prefix("kg:flash:")
        .await
        .unwrap()
        .is_empty());
}

per_backend!(rotating_a_secret_needs_confirmation);
/// Issue 16 item 4: the edit page only links to a confirmation page; a
/// rotate post without the confirmation form's nonce (what the edit page
/// used to post) changes nothing; the confirmed post rotates once.
async fn rotating_a_secret_needs_confirmation(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = signed_in(&app).await;
    let (csrf, nonce) = form_of(&app, &alice, "/clients/new").await;
    let resp = post_body(&app, &alice, "/clients", create_body(&csrf, &nonce, "Rot")).await;
    let page = follow_to_secret(&app, &alice, resp).await;
    let (id, secret) = (client_id_from(&page), secret_from(&page));
    let works = |secret: String| {
        let (app, id) = (&app, id.clone());
        async move {
            let cc = [
                ("grant_type", "authorization_code"),
                ("code", "x"),
                ("redirect_uri", REDIRECT),
                ("code_verifier", "y"),
            ];
            app.post_token(Some((&id, &secret)), &cc).await.status() == 400
        }
    };
    assert!(works(secret.clone()).await);

    let edit = app.page(&alice, &format!("/clients/{id}")).await;
    assert!(!edit.contains(&format!("action=\"/clients/{id}/rotate\"")));
    assert!(edit.contains(&format!("href=\"/clients/{id}/rotate\"")));
    let resp = alice
        .post(app.url(&format!("/clients/{id}/rotate")))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "no confirmation");
    assert!(works(secret.clone()).await, "the secret still works");

    let confirm = app.page(&alice, &format!("/clients/{id}/rotate")).await;
    assert!(confirm.contains("id=\"confirm-rotate\""), "{confirm}");
    assert!(confirm.contains("stops working at once"));
    assert!(
        works(secret.clone()).await,
        "showing the confirmation changes nothing"
    );
    let nonce = hidden_value(&confirm, "form_nonce");
    let form = [
        ("csrf_token", csrf.as_str()),
        ("form_nonce", nonce.as_str()),
    ];
    let resp = alice
        .post(app.url(&format!("/clients/{id}/rotate")))
        .form(&form)
        .send()
        .await
        .unwrap();
    let new_secret = secret_from(&follow_to_secret(&app, &alice, resp).await);
    assert!(!works(secret).await);
    assert!(works(new_secret.clone()).await);
    // The confirmation posted again does not rotate a second time.
    let resp = alice
        .post(app.url(&format!("/clients/{id}/rotate")))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    assert!(works(new_secret).await);
}

/// Issue 16 item 4: a form with several bad fields shows every error at
/// once, each next to its field, and stores nothing.
#[tokio::test]
async fn a_form_with_several_bad_fields_shows_every_error() {
    let app = spawn_app(Backend::Memory).await;
    let alice = signed_in(&app).await;
    let before = stored_clients(&app).await;
    let (csrf, nonce) = form_of(&app, &alice, "/clients/new").await;
    let resp = alice
        .post(app.url("/clients"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("form_nonce", nonce.as_str()),
            ("client_name", ""),
            ("redirect_uris", "http://shop.example/cb"),
            ("grant_types", "authorization_code"),
            ("scope", "profile bogus"),
            ("token_endpoint_auth_method", "client_secret_basic"),
            ("logo_uri", "ftp://shop.example/logo.png"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let html = resp.text().await.unwrap();
    for field in ["client_name", "redirect_uris", "scope", "logo_uri"] {
        assert!(
            html.contains(&format!("<p class=\"field-error\" id=\"{field}-error\">")),
            "{field}: {html}"
        );
        assert!(
            html.contains(&format!("<li><a href=\"#{field}\">")),
            "{field}"
        );
    }
    assert_eq!(html.matches("class=\"field-error\"").count(), 4);
    assert!(html.contains("(4 problems)"));
    assert_eq!(stored_clients(&app).await, before);
}
