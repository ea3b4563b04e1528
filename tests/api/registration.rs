//! RFC 7591 registration and RFC 7592 management over HTTP, on both stores.

use keygate::tokens::keys::Alg;
use serde_json::json;

use crate::helpers::{per_backend, spawn_app, spawn_app_with, Backend, ISSUER};

const IAT: &str = "initial-access-token-for-tests";

async fn open_app(backend: Backend) -> crate::helpers::TestApp {
    spawn_app_with(backend, Alg::ES256, |s| {
        s.registration.initial_access_tokens = vec![IAT.into()]
    })
    .await
}

async fn error_of(resp: reqwest::Response, status: u16) -> String {
    assert_eq!(resp.status().as_u16(), status);
    let body: serde_json::Value = resp.json().await.unwrap();
    body["error"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn registration_is_closed_without_initial_access_tokens() {
    let app = spawn_app(Backend::Memory).await;
    let resp =
        crate::steps::post_registration(&app.http, &app.addr, IAT, &json!({"client_name": "x"}))
            .await;
    assert_eq!(error_of(resp, 401).await, "invalid_token");
    let m = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert!(m.get("registration_endpoint").is_none());
}

per_backend!(register_use_read_update_delete);
async fn register_use_read_update_delete(backend: Backend) {
    let app = open_app(backend).await;
    let m = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(
        m["registration_endpoint"],
        format!("{ISSUER}/oauth/register")
    );
    // no or wrong initial access token
    let body = json!({"client_name": "Billing", "grant_types": ["client_credentials"], "scope": "api:read"});
    let resp = app
        .http
        .post(app.url("/oauth/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp, 401).await, "invalid_token");
    let resp = crate::steps::post_registration(&app.http, &app.addr, "wrong", &body).await;
    assert_eq!(error_of(resp, 401).await, "invalid_token");

    let resp = crate::steps::post_registration(&app.http, &app.addr, IAT, &body).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let info: serde_json::Value = resp.json().await.unwrap();
    let id = info["client_id"].as_str().unwrap().to_string();
    let secret = info["client_secret"].as_str().unwrap().to_string();
    let rat = info["registration_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(info["client_secret_expires_at"], 0);
    assert_eq!(
        info["registration_client_uri"],
        format!("{ISSUER}/oauth/register/{id}")
    );
    assert_eq!(info["grant_types"], json!(["client_credentials"]));
    assert_eq!(info["response_types"], json!([]));
    assert_eq!(info["token_endpoint_auth_method"], "client_secret_basic");

    // the client works at once
    let resp = app
        .post_token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(resp.status(), 200);

    // RFC 7592 read: needs the registration access token; never returns the secret
    let path = format!("/oauth/register/{id}");
    let resp = app
        .http
        .get(app.url(&path))
        .bearer_auth(&rat)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let read: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(read["client_name"], "Billing");
    assert!(read.get("client_secret").is_none() && read.get("registration_access_token").is_none());
    for bad in [IAT, "nope"] {
        let resp = app
            .http
            .get(app.url(&path))
            .bearer_auth(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(error_of(resp, 401).await, "invalid_token");
    }
    let resp = app
        .http
        .get(app.url("/oauth/register/unknown"))
        .bearer_auth(&rat)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(resp, 401).await,
        "invalid_token",
        "an unknown client looks like a bad token"
    );

    // RFC 7592 update: full replacement; client_id must match
    let update = json!({"client_id": id, "client_name": "Billing v2", "grant_types": ["client_credentials"], "scope": "api:read api:write"});
    let resp = app
        .http
        .put(app.url(&path))
        .bearer_auth(&rat)
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let updated: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(updated["scope"], "api:read api:write");
    assert_eq!(updated["client_name"], "Billing v2");
    let wrong =
        json!({"client_id": "other", "client_name": "x", "grant_types": ["client_credentials"]});
    let resp = app
        .http
        .put(app.url(&path))
        .bearer_auth(&rat)
        .json(&wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp, 400).await, "invalid_client_metadata");
    // the secret survived the update
    let resp = app
        .post_token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials"), ("scope", "api:write")],
        )
        .await;
    assert_eq!(resp.status(), 200);

    // RFC 7592 delete
    let resp = app
        .http
        .delete(app.url(&path))
        .bearer_auth(&rat)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = app
        .post_token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(resp.status(), 401);
    let resp = app
        .http
        .get(app.url(&path))
        .bearer_auth(&rat)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn invalid_metadata_is_refused_with_rfc7591_codes() {
    let app = open_app(Backend::Memory).await;
    for (body, code) in [
        (
            json!({"client_name": "a", "redirect_uris": ["http://app.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"client_name": "a", "redirect_uris": ["https://app.example/cb#frag"]}),
            "invalid_redirect_uri",
        ),
        (json!({"client_name": "a"}), "invalid_redirect_uri"),
        (
            json!({"client_name": "a", "redirect_uris": ["https://a.example/cb"], "response_types": ["token"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_name": "a", "grant_types": ["magic"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_name": "a", "grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_name": "a", "grant_types": ["client_credentials"], "scope": "admin"}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_name": "a", "grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
    ] {
        let resp = crate::steps::post_registration(&app.http, &app.addr, IAT, &body).await;
        assert_eq!(error_of(resp, 400).await, code, "{body}");
    }
    let resp = app
        .http
        .post(app.url("/oauth/register"))
        .bearer_auth(IAT)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp, 400).await, "invalid_client_metadata");
    assert!(
        app.state
            .store
            .scan_prefix("kg:client:")
            .await
            .unwrap()
            .len()
            == 1,
        "only the harness's client is stored"
    );
}

#[tokio::test]
async fn registered_public_client_runs_the_code_flow() {
    let app = open_app(Backend::Memory).await;
    let body = json!({"client_name": "SPA", "redirect_uris": [crate::helpers::REDIRECT], "grant_types": ["authorization_code"], "response_types": ["code"], "token_endpoint_auth_method": "none", "scope": "profile"});
    let resp = crate::steps::post_registration(&app.http, &app.addr, IAT, &body).await;
    assert_eq!(resp.status(), 201);
    let info: serde_json::Value = resp.json().await.unwrap();
    assert!(info.get("client_secret").is_none() && info.get("client_secret_expires_at").is_none());
    let id = info["client_id"].as_str().unwrap();
    let (verifier, challenge) = crate::helpers::pkce_pair();
    let q = format!(
        "response_type=code&client_id={id}&redirect_uri={}&state=st&code_challenge={challenge}&code_challenge_method=S256",
        crate::helpers::urlencode(crate::helpers::REDIRECT)
    );
    let code = crate::steps::code_of(&app.authorize(&q, "allow").await);
    let public = [("client_id", id)];
    let resp = crate::steps::redeem(&app.http, &app.addr, None, &public, &code, &verifier).await;
    assert_eq!(resp.status(), 200);
}

per_backend!(redirect_uris_are_accepted_by_allowlist);
/// Issue 12 item 7: dangerous schemes and URIs with control characters or
/// whitespace are refused at registration (never stored, never stripped);
/// a native app's reverse-domain private-use scheme is accepted.
async fn redirect_uris_are_accepted_by_allowlist(backend: Backend) {
    let app = open_app(backend).await;
    let before = app
        .state
        .store
        .scan_prefix("kg:client:")
        .await
        .unwrap()
        .len();
    for uri in [
        "vbscript:msgbox(1)",
        "about:blank",
        "blob:https://a.example/x",
        "https://a.example/c\r\nb",
        "https://a.example/c b",
        "com.example.app:/cb",
    ] {
        // A confidential client may not use a private-use scheme either.
        let body = json!({"client_name": "a", "redirect_uris": [uri]});
        let resp = crate::steps::post_registration(&app.http, &app.addr, IAT, &body).await;
        assert_eq!(error_of(resp, 400).await, "invalid_redirect_uri", "{uri:?}");
    }
    assert_eq!(
        app.state
            .store
            .scan_prefix("kg:client:")
            .await
            .unwrap()
            .len(),
        before,
        "nothing stored"
    );
    let body = json!({"client_name": "native", "redirect_uris": ["com.example.app:/cb"],
        "token_endpoint_auth_method": "none"});
    let info = crate::steps::register(&app.http, &app.addr, IAT, &body).await;
    assert_eq!(info["redirect_uris"], json!(["com.example.app:/cb"]));
}

per_backend!(a_narrowed_client_scope_bounds_later_refreshes);
/// Issue 12 item 4: after a client's scope is narrowed (RFC 7592 PUT), a
/// refresh of a token granted before grants only what the client still has,
/// and the rotated refresh token keeps only that.
async fn a_narrowed_client_scope_bounds_later_refreshes(backend: Backend) {
    let app = open_app(backend).await;
    let mut meta = json!({"client_name": "Web", "redirect_uris": [crate::helpers::REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"], "scope": "profile email"});
    let info = crate::steps::register(&app.http, &app.addr, IAT, &meta).await;
    let id = info["client_id"].as_str().unwrap().to_string();
    let secret = info["client_secret"].as_str().unwrap().to_string();
    let rat = info["registration_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (verifier, challenge) = crate::helpers::pkce_pair();
    let q = crate::steps::code_query(&id, "profile email", &challenge);
    let code = crate::steps::code_of(&app.authorize(&q, "allow").await);
    let basic = (id.as_str(), secret.as_str());
    let resp = crate::steps::redeem(&app.http, &app.addr, Some(basic), &[], &code, &verifier).await;
    assert_eq!(resp.status(), 200);
    let tokens: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(tokens["scope"], "email profile");
    // The client loses `email`.
    meta["client_id"] = json!(id);
    meta["scope"] = json!("profile");
    let resp = crate::steps::put_registration(&app.http, &app.addr, &id, &rat, &meta).await;
    assert_eq!(resp.status(), 200);
    let token = tokens["refresh_token"].as_str().unwrap();
    let resp = crate::steps::refresh(&app.http, &app.addr, basic, token).await;
    assert_eq!(resp.status(), 200);
    let next: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(next["scope"], "profile", "only what the client still has");
    // The successor carries the narrowed scope too.
    let token = next["refresh_token"].as_str().unwrap();
    let resp = crate::steps::refresh(&app.http, &app.addr, basic, token).await;
    assert_eq!(resp.status(), 200);
    let last: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(last["scope"], "profile");
}

per_backend!(native_apps_redirect_to_any_loopback_port);
/// Issue 12 item 6: a native app registered with a port-less loopback
/// redirect URI (`127.0.0.1` or `[::1]`) gets its code at whatever port it
/// listens on (RFC 8252 §7.3), path and query still exact, and redeems it
/// with that same URI; a reverse-domain private-use scheme (§7.1) works too.
async fn native_apps_redirect_to_any_loopback_port(backend: Backend) {
    let app = open_app(backend).await;
    let body = json!({"client_name": "cli", "token_endpoint_auth_method": "none",
        "redirect_uris": ["http://127.0.0.1/callback", "http://[::1]/cb?x=1", "com.example.app:/cb"]});
    let info = crate::steps::register(&app.http, &app.addr, IAT, &body).await;
    let id = info["client_id"].as_str().unwrap().to_string();
    let query = |redirect: &str, challenge: &str| {
        format!(
            "response_type=code&client_id={id}&redirect_uri={}&state=s1&code_challenge={challenge}&code_challenge_method=S256",
            crate::helpers::urlencode(redirect)
        )
    };
    for redirect in [
        "http://127.0.0.1:49152/callback",
        "http://[::1]:61000/cb?x=1",
        "http://127.0.0.1/callback",
        "com.example.app:/cb",
    ] {
        let (verifier, challenge) = crate::helpers::pkce_pair();
        let to = app.authorize(&query(redirect, &challenge), "allow").await;
        assert!(to.starts_with(redirect), "{to}");
        let code = crate::steps::code_of(&to);
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect),
            ("code_verifier", verifier.as_str()),
            ("client_id", id.as_str()),
        ];
        let url = app.url("/oauth/token");
        let resp = crate::steps::post_form(&app.http, &url, None, &form).await;
        assert_eq!(resp.status(), 200, "{redirect}");
    }
    // Only the port varies: another path, query or loopback host is refused
    // with an error page, never a redirect.
    for redirect in [
        "http://127.0.0.1:49152/callback/",
        "http://127.0.0.1:49152/callback?x=1",
        "http://[::1]:61000/cb",
        "http://localhost:49152/callback",
        "http://127.0.0.2:49152/callback",
    ] {
        let (_, challenge) = crate::helpers::pkce_pair();
        let resp = app
            .http
            .get(app.url(&format!("/oauth/authorize?{}", query(redirect, &challenge))))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{redirect}");
        assert!(resp.headers().get("location").is_none(), "{redirect}");
    }
}
