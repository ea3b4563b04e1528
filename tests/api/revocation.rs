//! Issue 12 item 3: everything that kills a refresh family or a client kills
//! the access tokens issued from it too, for keygate's own checks (`/api/me`
//! and introspection): revoking a refresh token (RFC 7009 §2.1), refresh
//! token reuse, a replayed code, deleting the client (RFC 7592 §2.3) and
//! deleting the user. Access tokens from *earlier* rotations of the family
//! are covered, not only the latest, and another grant of the same client
//! and user is left alone. An offline verifier (a gateway with the JWKS)
//! still accepts them until they expire: see README "Revocation".

use keygate::tokens::keys::Alg;
use serde_json::{json, Value};

use crate::helpers::{per_backend, pkce_pair, spawn_app_with, Backend, TestApp, REDIRECT};
use crate::steps;
use crate::steps::STATE;

const IAT: &str = "initial-access-token-for-revocation-tests";

/// A confidential web app registered through RFC 7591.
struct Web {
    id: String,
    secret: String,
    registration_token: String,
}

impl Web {
    fn basic(&self) -> (&str, &str) {
        (&self.id, &self.secret)
    }
}

async fn setup(backend: Backend) -> (TestApp, Web) {
    let app = spawn_app_with(backend, Alg::RS256, |s| {
        s.registration.initial_access_tokens = vec![IAT.into()];
        // A rotated token coming back is reuse at once (no grace retry).
        s.tokens.refresh_grace_secs = 0;
    })
    .await;
    let meta = json!({"client_name": "Web", "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"], "scope": "profile email"});
    let info = steps::register(&app.http, &app.addr, IAT, &meta).await;
    let text = |k: &str| info[k].as_str().unwrap().to_string();
    let web = Web {
        id: text("client_id"),
        secret: text("client_secret"),
        registration_token: text("registration_access_token"),
    };
    (app, web)
}

/// A code for `web` from `browser`, which is already signed in.
async fn code_from(app: &TestApp, web: &Web, browser: &reqwest::Client) -> (String, String) {
    let (verifier, challenge) = pkce_pair();
    let path = format!(
        "/oauth/authorize?{}",
        steps::code_query(&web.id, "profile email", &challenge)
    );
    let to = steps::consent(browser, &app.addr, &path, "allow").await;
    assert!(to.contains(&format!("state={STATE}")), "{to}");
    (steps::code_of(&to), verifier)
}

/// Redeems a code of `web`; the token response.
async fn redeem(app: &TestApp, web: &Web, code: &str, verifier: &str) -> Value {
    let resp = steps::redeem(&app.http, &app.addr, Some(web.basic()), &[], code, verifier).await;
    steps::ok_json(resp).await
}

/// A browser signed in as the config user `alice`, and a grant of `web`.
async fn grant(app: &TestApp, web: &Web) -> (reqwest::Client, Value) {
    let browser = steps::browser();
    assert_eq!(steps::login(&browser, &app.addr, "/").await.status(), 303);
    let (code, verifier) = code_from(app, web, &browser).await;
    let tokens = redeem(app, web, &code, &verifier).await;
    (browser, tokens)
}

async fn refresh(app: &TestApp, web: &Web, tokens: &Value) -> reqwest::Response {
    let token = tokens["refresh_token"].as_str().unwrap();
    steps::refresh(&app.http, &app.addr, web.basic(), token).await
}

fn access(tokens: &Value) -> &str {
    tokens["access_token"].as_str().unwrap()
}

async fn introspect(app: &TestApp, web: &Web, token: &str) -> Value {
    let url = app.url("/oauth/introspect");
    let resp = steps::post_form(&app.http, &url, Some(web.basic()), &[("token", token)]).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// `/api/me` accepts the token and introspection says it is active.
async fn assert_live(app: &TestApp, web: &Web, token: &str) {
    assert_eq!(steps::me(&app.http, &app.addr, token).await.status(), 200);
    assert_eq!(introspect(app, web, token).await["active"], true);
}

/// `/api/me` refuses the token as revoked and introspection says inactive.
async fn assert_revoked(app: &TestApp, web: &Web, token: &str) {
    let resp = steps::me(&app.http, &app.addr, token).await;
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    assert_eq!(introspect(app, web, token).await, json!({"active": false}));
}

per_backend!(revoking_a_refresh_token_revokes_its_access_tokens);
/// RFC 7009 §2.1: revoking a refresh token invalidates the access tokens of
/// the same grant, from every rotation; another grant stays valid.
async fn revoking_a_refresh_token_revokes_its_access_tokens(backend: Backend) {
    let (app, web) = setup(backend).await;
    let (browser, first) = grant(&app, &web).await;
    let second = steps::ok_json(refresh(&app, &web, &first).await).await;
    let (code, verifier) = code_from(&app, &web, &browser).await;
    let other = redeem(&app, &web, &code, &verifier).await;
    for t in [&first, &second, &other] {
        assert_live(&app, &web, access(t)).await;
    }
    let url = app.url("/oauth/revoke");
    let token = second["refresh_token"].as_str().unwrap();
    let resp = steps::post_form(&app.http, &url, Some(web.basic()), &[("token", token)]).await;
    assert_eq!(resp.status(), 200);
    assert_revoked(&app, &web, access(&first)).await;
    assert_revoked(&app, &web, access(&second)).await;
    assert_eq!(refresh(&app, &web, &second).await.status(), 400);
    // The other grant of the same client and user is untouched.
    assert_live(&app, &web, access(&other)).await;
    assert_eq!(refresh(&app, &web, &other).await.status(), 200);
}

per_backend!(refresh_token_reuse_revokes_the_familys_access_tokens);
/// RFC 9700 §4.14.2: a rotated refresh token coming back revokes the family,
/// and with it the access tokens the thief and the client hold.
async fn refresh_token_reuse_revokes_the_familys_access_tokens(backend: Backend) {
    let (app, web) = setup(backend).await;
    let (_, first) = grant(&app, &web).await;
    let second = steps::ok_json(refresh(&app, &web, &first).await).await;
    assert_live(&app, &web, access(&second)).await;
    let resp = refresh(&app, &web, &first).await;
    crate::helpers::assert_oauth_error(resp, 400, "invalid_grant").await;
    assert_revoked(&app, &web, access(&first)).await;
    assert_revoked(&app, &web, access(&second)).await;
}

per_backend!(a_replayed_code_revokes_access_tokens_from_later_rotations);
/// RFC 6749 §4.1.2: a replayed code revokes what it issued, including the
/// access tokens of refreshes made since.
async fn a_replayed_code_revokes_access_tokens_from_later_rotations(backend: Backend) {
    let (app, web) = setup(backend).await;
    let browser = steps::browser();
    assert_eq!(steps::login(&browser, &app.addr, "/").await.status(), 303);
    let (code, verifier) = code_from(&app, &web, &browser).await;
    let first = redeem(&app, &web, &code, &verifier).await;
    let second = steps::ok_json(refresh(&app, &web, &first).await).await;
    assert_live(&app, &web, access(&second)).await;
    let resp = steps::redeem(
        &app.http,
        &app.addr,
        Some(web.basic()),
        &[],
        &code,
        &verifier,
    )
    .await;
    crate::helpers::assert_oauth_error(resp, 400, "invalid_grant").await;
    assert_revoked(&app, &web, access(&first)).await;
    assert_revoked(&app, &web, access(&second)).await;
}

per_backend!(deleting_a_client_revokes_its_access_tokens);
/// RFC 7592 §2.3: a deleted client's access tokens are refused at once,
/// those of its other clients' users are not.
async fn deleting_a_client_revokes_its_access_tokens(backend: Backend) {
    let (app, web) = setup(backend).await;
    let (_, tokens) = grant(&app, &web).await;
    let (other_app_id, other_secret) = app.stored_client.clone();
    let resp = app
        .post_token(
            Some((&other_app_id, &other_secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    let unrelated = steps::ok_json(resp).await;
    let token = access(&tokens);
    assert_eq!(steps::me(&app.http, &app.addr, token).await.status(), 200);
    let resp = app
        .http
        .delete(app.url(&format!("/oauth/register/{}", web.id)))
        .bearer_auth(&web.registration_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = steps::me(&app.http, &app.addr, token).await;
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("revoked"), "{challenge}");
    // Introspection by another client never shows it either way; the
    // unrelated client's own token is still active.
    let other = Web {
        id: other_app_id,
        secret: other_secret,
        registration_token: String::new(),
    };
    assert_eq!(introspect(&app, &other, token).await["active"], false);
    let unrelated = access(&unrelated);
    assert_eq!(introspect(&app, &other, unrelated).await["active"], true);
}

per_backend!(deleting_a_user_revokes_their_tokens);
/// A deleted user's access tokens are inactive at once and their refresh
/// tokens can no longer be rotated.
async fn deleting_a_user_revokes_their_tokens(backend: Backend) {
    let (app, web) = setup(backend).await;
    let browser = steps::browser();
    let resp = steps::sign_up(&browser, &app.addr, "bob", "bob-password-12345").await;
    assert_eq!(resp.status(), 303);
    let (code, verifier) = code_from(&app, &web, &browser).await;
    let tokens = redeem(&app, &web, &code, &verifier).await;
    assert_live(&app, &web, access(&tokens)).await;
    keygate::flows::users::delete_user(&app.state.repos, "bob")
        .await
        .unwrap();
    assert_revoked(&app, &web, access(&tokens)).await;
    let resp = refresh(&app, &web, &tokens).await;
    crate::helpers::assert_oauth_error(resp, 400, "invalid_grant").await;
    assert_eq!(
        introspect(&app, &web, tokens["refresh_token"].as_str().unwrap()).await,
        json!({"active": false})
    );
    // The browser's session outlives the user: it gets no new code.
    let (_, challenge) = pkce_pair();
    let path = format!(
        "/oauth/authorize?{}",
        steps::code_query(&web.id, "profile email", &challenge)
    );
    let to = steps::consent(&browser, &app.addr, &path, "allow").await;
    let p = crate::helpers::params_of(&to, false);
    assert_eq!(p["error"], "access_denied", "{to}");
    assert!(!p.contains_key("code"), "{to}");
}
