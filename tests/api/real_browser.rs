//! The sign-in flow in real headless Chromium: authorize → login form →
//! consent → redirect back to the client with code, state and iss; then the
//! code is redeemed. The consent is remembered and revoked on "Apps you
//! allowed". Runs on both stores.

use std::time::Duration;

use keygate::config::ConfigClient;
use keygate::tokens::keys::Alg;
use poem::listener::{Acceptor, Listener, TcpListener};

use crate::chromium::Browser;
use crate::helpers::{
    params_of, per_backend, pkce_pair, spawn_app_with, urlencode, verify_like_a_gateway, Backend,
    ISSUER, PASSWORD, SECRET, USER,
};

/// A stand-in client web app: its callback page just says it got the answer.
async fn callback_server() -> (String, tokio::task::JoinHandle<()>) {
    #[poem::handler]
    fn callback() -> poem::web::Html<&'static str> {
        poem::web::Html("<!doctype html><title>client</title><p id=done>callback reached</p>")
    }
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    let server = tokio::spawn(async move {
        let _ = poem::Server::new_with_acceptor(acceptor)
            .run(poem::Route::new().at("/callback", poem::get(callback)))
            .await;
    });
    (format!("http://{addr}/callback"), server)
}

per_backend!(chromium_signs_in_consents_and_lands_on_the_client);
async fn chromium_signs_in_consents_and_lands_on_the_client(backend: Backend) {
    let (callback, cb_server) = callback_server().await;
    let cb = callback.clone();
    let app = spawn_app_with(backend, Alg::RS256, move |s| {
        s.clients.push(ConfigClient {
            client_id: "browser-app".into(),
            client_name: "Browser Test App".into(),
            client_secret: Some(SECRET.into()),
            redirect_uris: vec![cb],
            grant_types: vec!["authorization_code".into()],
            scope: "profile".into(),
            token_endpoint_auth_method: Some("client_secret_basic".into()),
            post_logout_redirect_uris: vec![],
        });
    })
    .await;
    let (verifier, challenge) = pkce_pair();
    let authorize = app.url(&format!(
        "/oauth/authorize?response_type=code&client_id=browser-app&redirect_uri={}&scope=profile&state=b-state&code_challenge={challenge}&code_challenge_method=S256",
        urlencode(&callback)
    ));
    let browser = Browser::start().await;
    browser.goto(&authorize).await;
    browser
        .wait_for_url(|u| u.path() == "/login", Duration::from_secs(20))
        .await;
    browser.fill("#username", USER).await;
    browser.fill("#password", PASSWORD).await;
    browser
        .click("form[action='/login'] button[type=submit]")
        .await;
    browser
        .wait_for_url(|u| u.path() == "/oauth/authorize", Duration::from_secs(20))
        .await;
    let consent = browser.page_source().await;
    assert!(
        consent.contains("Browser Test App"),
        "consent names the client"
    );
    browser.click("#allow").await;
    let landed = browser
        .wait_for_url(
            |u| u.as_str().starts_with(&callback),
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(browser.text("#done").await, "callback reached");
    let p = params_of(landed.as_str(), false);
    assert_eq!(p["state"], "b-state");
    assert_eq!(p["iss"], ISSUER);
    let resp = app
        .post_token(
            Some(("browser-app", SECRET)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &p["code"]),
                ("redirect_uri", &callback),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(resp.status(), 200, "{backend:?}");
    let body: serde_json::Value = resp.json().await.unwrap();
    let claims = verify_like_a_gateway(&app, body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["sub"], "cfg-alice");

    // Issue 15 item 3: the consent is remembered, so the same request lands
    // on the client at once; "Apps you allowed" revokes it, and the next
    // request asks again.
    browser.goto(&authorize).await;
    browser
        .wait_for_url(
            |u| u.as_str().starts_with(&callback),
            Duration::from_secs(20),
        )
        .await;
    browser.goto(&app.url("/account")).await;
    browser.click("#allowed-apps").await;
    browser
        .wait_for_url(|u| u.path() == "/account/apps", Duration::from_secs(20))
        .await;
    assert!(browser.page_source().await.contains("Browser Test App"));
    browser
        .click("#revoke-browser-app button[type=submit]")
        .await;
    browser
        .wait_for_url(|u| u.query() == Some("revoked=1"), Duration::from_secs(20))
        .await;
    let apps = browser.page_source().await;
    assert!(apps.contains("Access revoked") && !apps.contains("Browser Test App"));
    browser.goto(&authorize).await;
    browser
        .wait_for_url(|u| u.path() == "/oauth/authorize", Duration::from_secs(20))
        .await;
    assert!(
        browser.page_source().await.contains("id=\"allow\""),
        "asks again after the revocation"
    );
    browser.close().await;
    cb_server.abort();
}

per_backend!(chromium_creates_a_client_in_the_pages_and_uses_it);
async fn chromium_creates_a_client_in_the_pages_and_uses_it(backend: Backend) {
    let (callback, cb_server) = callback_server().await;
    let app = spawn_app_with(backend, Alg::ES256, |_| {}).await;
    let browser = Browser::start().await;
    // sign in, then "My clients" → "New client"
    browser.goto(&app.url("/clients")).await;
    browser
        .wait_for_url(|u| u.path() == "/login", Duration::from_secs(20))
        .await;
    browser.fill("#username", USER).await;
    browser.fill("#password", PASSWORD).await;
    browser
        .click("form[action='/login'] button[type=submit]")
        .await;
    browser
        .wait_for_url(|u| u.path() == "/clients", Duration::from_secs(20))
        .await;
    browser.click("#new-client").await;
    browser
        .wait_for_url(|u| u.path() == "/clients/new", Duration::from_secs(20))
        .await;
    browser.fill("#client_name", "Made in Chromium").await;
    browser.fill("#redirect_uris", &callback).await;
    browser.fill("#scope", "profile").await;
    browser.click("#save").await;
    let first_secret = browser.text("#client_secret").await;
    let client_id = browser.text("#client_id").await;
    assert!(
        first_secret.len() >= 43,
        "secret shown once: {first_secret}"
    );
    // Issue 16 item 4: the POST redirected; loading the page again does not
    // post again and no longer shows the secret.
    let shown_at = browser.current_url().await;
    assert!(shown_at.path().ends_with("/secret"), "{shown_at}");
    browser.goto(shown_at.as_str()).await;
    let again = browser.page_source().await;
    assert!(again.contains("The secret was already shown."));
    assert!(!again.contains(&first_secret));
    // Rotating asks first; the confirmed rotation shows the new secret once.
    browser
        .goto(&app.url(&format!("/clients/{client_id}")))
        .await;
    browser.click("#rotate").await;
    browser
        .wait_for_url(|u| u.path().ends_with("/rotate"), Duration::from_secs(20))
        .await;
    browser.click("#confirm-rotate").await;
    browser
        .wait_for_url(|u| u.path().ends_with("/secret"), Duration::from_secs(20))
        .await;
    let secret = browser.text("#client_secret").await;
    assert!(secret.len() >= 43 && secret != first_secret);
    // use it: authorize in the browser (already signed in → consent)
    let (verifier, challenge) = pkce_pair();
    let authorize = app.url(&format!(
        "/oauth/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=profile&state=c-state&code_challenge={challenge}&code_challenge_method=S256",
        urlencode(&callback)
    ));
    browser.goto(&authorize).await;
    assert!(browser.page_source().await.contains("Made in Chromium"));
    browser.click("#allow").await;
    let landed = browser
        .wait_for_url(
            |u| u.as_str().starts_with(&callback),
            Duration::from_secs(20),
        )
        .await;
    browser.close().await;
    cb_server.abort();
    let p = params_of(landed.as_str(), false);
    assert_eq!(p["state"], "c-state");
    let resp = app
        .post_token(
            Some((&client_id, &secret)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &p["code"]),
                ("redirect_uri", &callback),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(resp.status(), 200, "{backend:?}");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(
        body["refresh_token"].is_string(),
        "the default grants include refresh_token"
    );
}
