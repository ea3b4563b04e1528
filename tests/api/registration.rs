//! RFC 7591 registration and RFC 7592 management over HTTP, on both stores.

use keygate::config::Settings;
use keygate::tokens::keys::Alg;
use serde_json::json;

use crate::helpers::{per_backend, spawn_app, spawn_app_with, Backend, TestApp, ISSUER};

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

// ---- open registration (issue 14 item 2) -----------------------------------

/// keygate with `registration.open` and `tweak` applied.
async fn anonymous_app(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with(backend, Alg::ES256, |s| {
        s.registration.open = true;
        tweak(s)
    })
    .await
}

/// A public native app as the MCP SDKs register it: no scope, loopback redirect.
fn native_app(redirect: &str) -> serde_json::Value {
    json!({"client_name": "Native", "redirect_uris": [redirect], "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"], "token_endpoint_auth_method": "none"})
}

async fn stored_clients(app: &TestApp) -> usize {
    app.state.repos.client_ids().await.unwrap().len()
}

/// Closed (the default), protected (initial access tokens) and open: only
/// open accepts a request without `Authorization`, and the metadata names
/// the endpoint exactly when registration is possible.
#[tokio::test]
async fn registration_endpoint_is_advertised_when_registration_is_possible() {
    let closed = spawn_app(Backend::Memory).await;
    let protected = open_app(Backend::Memory).await;
    let open = anonymous_app(Backend::Memory, |_| {}).await;
    for (app, possible, anonymous) in [
        (&closed, false, 401),
        (&protected, true, 401),
        (&open, true, 201),
    ] {
        let m = app
            .get_json("/.well-known/oauth-authorization-server")
            .await;
        let expected = possible.then(|| json!(format!("{ISSUER}/oauth/register")));
        assert_eq!(m.get("registration_endpoint"), expected.as_ref());
        let body = native_app(crate::helpers::REDIRECT);
        let resp = crate::steps::post_registration(&app.http, &app.addr, None, &body).await;
        assert_eq!(resp.status(), anonymous, "possible = {possible}");
    }
}

/// With tokens configured too, a request carrying a bad token (Bearer or
/// not) is refused as before, never treated as anonymous; a valid token
/// keeps its full rights.
#[tokio::test]
async fn a_bad_authorization_header_is_never_taken_for_anonymous() {
    let app = anonymous_app(Backend::Memory, |s| {
        s.registration.initial_access_tokens = vec![IAT.into()]
    })
    .await;
    let before = stored_clients(&app).await;
    let body = native_app(crate::helpers::REDIRECT);
    let resp = crate::steps::post_registration(&app.http, &app.addr, "wrong-token", &body).await;
    assert_eq!(error_of(resp, 401).await, "invalid_token");
    for header in ["Basic dXNlcjpwYXNz", "Bearer", "Token abc", ""] {
        let resp = app
            .http
            .post(app.url("/oauth/register"))
            .header("authorization", header)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(error_of(resp, 401).await, "invalid_token", "{header:?}");
    }
    assert_eq!(stored_clients(&app).await, before, "nothing was written");
    // the initial access token still gives what anonymous callers cannot get
    let svc =
        json!({"client_name": "svc", "grant_types": ["client_credentials"], "scope": "api:read"});
    let resp = crate::steps::post_registration(&app.http, &app.addr, IAT, &svc).await;
    assert_eq!(resp.status(), 201);
    let resp = crate::steps::post_registration(&app.http, &app.addr, None, &svc).await;
    assert_eq!(error_of(resp, 400).await, "invalid_client_metadata");
}

/// What an anonymous registration may ask for; everything else is refused
/// with the RFC 7591 §3.2.2 code and nothing is stored.
#[tokio::test]
async fn anonymous_registration_is_limited() {
    // `legacy` serves implicit and password, so only the open-registration
    // limits refuse them here.
    let app = anonymous_app(Backend::Memory, |s| s.oauth.profile = "legacy".into()).await;
    let before = stored_clients(&app).await;
    let redirect = crate::helpers::REDIRECT;
    for (body, code, about) in [
        (
            json!({"grant_types": ["client_credentials"], "scope": "profile"}),
            "invalid_client_metadata",
            "client_credentials",
        ),
        (
            json!({"redirect_uris": [redirect], "grant_types": ["authorization_code", "password"], "token_endpoint_auth_method": "client_secret_post"}),
            "invalid_client_metadata",
            "password",
        ),
        (
            json!({"redirect_uris": [redirect], "grant_types": ["implicit"], "response_types": ["token"], "token_endpoint_auth_method": "none"}),
            "invalid_client_metadata",
            "implicit",
        ),
        (
            json!({"redirect_uris": [redirect], "scope": "profile api:read"}),
            "invalid_client_metadata",
            "not api:read",
        ),
        (
            json!({"redirect_uris": ["http://app.example/cb"], "token_endpoint_auth_method": "none"}),
            "invalid_redirect_uri",
            "http://app.example/cb",
        ),
        (
            json!({"redirect_uris": ["https://app.example/cb#x"], "token_endpoint_auth_method": "none"}),
            "invalid_redirect_uri",
            "fragment",
        ),
        (
            json!({"redirect_uris": ["myapp:/cb"], "token_endpoint_auth_method": "none"}),
            "invalid_redirect_uri",
            "myapp:/cb",
        ),
    ] {
        let resp = crate::steps::post_registration(&app.http, &app.addr, None, &body).await;
        assert_eq!(resp.status(), 400, "{body}");
        let err: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(err["error"], code, "{body}");
        let description = err["error_description"].as_str().unwrap();
        assert!(description.contains(about), "{description}");
    }
    assert_eq!(stored_clients(&app).await, before, "nothing was written");

    // What it may have: a public native app (any loopback port, private-use
    // scheme), with the open scopes when it asks for none ...
    let body = json!({"redirect_uris": ["http://127.0.0.1:3000/callback", "http://[::1]/cb", "com.example.app:/cb", "https://app.example/cb"], "grant_types": ["authorization_code", "refresh_token"], "token_endpoint_auth_method": "none"});
    let resp = crate::steps::post_registration(&app.http, &app.addr, None, &body).await;
    assert_eq!(resp.status(), 201);
    let info: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(info["scope"], "email profile");
    assert!(info.get("client_secret").is_none());
    assert!(info["registration_access_token"].is_string());
    // ... and it runs the code flow.
    let id = info["client_id"].as_str().unwrap();
    let (verifier, challenge) = crate::helpers::pkce_pair();
    let q = format!(
        "response_type=code&client_id={id}&redirect_uri={}&state=st&code_challenge={challenge}&code_challenge_method=S256&scope=profile",
        crate::helpers::urlencode(redirect)
    );
    let code = crate::steps::code_of(&app.authorize(&q, "allow").await);
    let resp = crate::steps::redeem(
        &app.http,
        &app.addr,
        None,
        &[("client_id", id)],
        &code,
        &verifier,
    )
    .await;
    assert_eq!(resp.status(), 200);

    // A confidential client gets a server-generated secret, never its own.
    let body = json!({"redirect_uris": ["https://app.example/cb"], "scope": "email", "token_endpoint_auth_method": "client_secret_post", "client_secret": "chosen-by-the-client"});
    let resp = crate::steps::post_registration(&app.http, &app.addr, None, &body).await;
    assert_eq!(resp.status(), 201);
    let info: serde_json::Value = resp.json().await.unwrap();
    let secret = info["client_secret"].as_str().unwrap();
    assert_ne!(secret, "chosen-by-the-client");
    assert!(secret.len() >= 43, "at least 256 bits");
    assert_eq!(info["scope"], "email");
}

per_backend!(anonymous_registrations_are_rate_limited_per_address);
/// `limits.registration_*` through the store-backed limiter: the burst
/// passes, the next anonymous registration from the address gets 429 with
/// `Retry-After`; refused metadata spends nothing, and a registration with
/// an initial access token is not counted.
async fn anonymous_registrations_are_rate_limited_per_address(backend: Backend) {
    let app = anonymous_app(backend, |s| {
        s.limits.enabled = true;
        s.limits.registration_burst = 2;
        s.limits.registration_per_hour = 1;
        s.registration.initial_access_tokens = vec![IAT.into()];
    })
    .await;
    let body = native_app(crate::helpers::REDIRECT);
    let bad = json!({"grant_types": ["client_credentials"]});
    for _ in 0..3 {
        let resp = crate::steps::post_registration(&app.http, &app.addr, None, &bad).await;
        assert_eq!(resp.status(), 400);
    }
    for _ in 0..2 {
        let resp = crate::steps::post_registration(&app.http, &app.addr, None, &body).await;
        assert_eq!(resp.status(), 201);
    }
    let before = stored_clients(&app).await;
    let resp = crate::steps::post_registration(&app.http, &app.addr, None, &body).await;
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let err: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(err["error"], "temporarily_unavailable");
    assert!(err["error_description"].is_string());
    assert_eq!(stored_clients(&app).await, before, "nothing was written");
    let resp = crate::steps::post_registration(&app.http, &app.addr, IAT, &body).await;
    assert_eq!(resp.status(), 201, "initial access tokens are not limited");
}

per_backend!(anonymous_clients_expire_unless_used);
/// An anonymous client lives `registration.open_client_ttl` unless used; use
/// (here: authorization requests) extends it; its CORS origin entries go
/// with it; a client registered with an initial access token never expires.
async fn anonymous_clients_expire_unless_used(backend: Backend) {
    let app = anonymous_app(backend, |s| {
        s.registration.open_client_ttl = 2;
        s.registration.initial_access_tokens = vec![IAT.into()];
    })
    .await;
    let register = |redirect: &'static str, token: Option<&'static str>| {
        let app = &app;
        async move {
            let resp =
                crate::steps::post_registration(&app.http, &app.addr, token, &native_app(redirect))
                    .await;
            assert_eq!(resp.status(), 201);
            let info: serde_json::Value = resp.json().await.unwrap();
            let field = |k: &str| info[k].as_str().unwrap().to_string();
            (field("client_id"), field("registration_access_token"))
        }
    };
    let used = register("http://127.0.0.1:4711/cb", None).await;
    let unused = register("http://127.0.0.1:4712/cb", None).await;
    let protected = register("http://127.0.0.1:4713/cb", Some(IAT)).await;
    let flag = |port: u16| format!("kg:cors:http://127.0.0.1:{port}");
    let origin = |port: u16| format!("kg:origin:http://127.0.0.1:{port}");
    let present = |key: String| {
        let store = app.state.store.clone();
        async move { store.get(&key).await.unwrap().is_some() }
    };
    for port in [4711, 4712, 4713] {
        assert!(present(flag(port)).await && present(origin(port)).await);
    }
    let read = |(id, rat): &(String, String)| {
        app.http
            .get(app.url(&format!("/oauth/register/{id}")))
            .bearer_auth(rat)
            .send()
    };
    let (_, challenge) = crate::helpers::pkce_pair();
    let authorize = format!(
        "/oauth/authorize?response_type=code&client_id={}&redirect_uri={}&state=st&code_challenge={challenge}&code_challenge_method=S256",
        used.0,
        crate::helpers::urlencode("http://127.0.0.1:4711/cb")
    );
    // Poll, using one client, until the other is gone (bounded).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let resp = app.http.get(app.url(&authorize)).send().await.unwrap();
        assert_eq!(resp.status(), 303, "the used client is still there");
        if read(&unused).await.unwrap().status() == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the unused client never expired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(read(&used).await.unwrap().status(), 200);
    assert_eq!(read(&protected).await.unwrap().status(), 200);
    let ids = app.state.repos.client_ids().await.unwrap();
    assert!(!ids.contains(&unused.0) && ids.contains(&used.0));
    // The origin index forgets the expired client's origin (its entries
    // carry its TTL), and keeps the others'.
    while present(flag(4712)).await || present(origin(4712)).await {
        assert!(
            std::time::Instant::now() < deadline,
            "the expired client's origin stayed in the index"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for port in [4711, 4713] {
        assert!(present(flag(port)).await, "{port}");
    }
}

per_backend!(an_anonymous_client_update_stays_within_limits);
/// RFC 7592 works for an anonymous client, within the same limits.
async fn an_anonymous_client_update_stays_within_limits(backend: Backend) {
    let app = anonymous_app(backend, |s| {
        s.registration.initial_access_tokens = vec![IAT.into()]
    })
    .await;
    let resp = crate::steps::post_registration(
        &app.http,
        &app.addr,
        None,
        &json!({"redirect_uris": ["https://app.example/cb"], "scope": "profile"}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let info: serde_json::Value = resp.json().await.unwrap();
    let id = info["client_id"].as_str().unwrap();
    let rat = info["registration_access_token"].as_str().unwrap();
    for (update, about) in [
        (
            json!({"client_id": id, "grant_types": ["client_credentials"], "scope": "profile"}),
            "client_credentials",
        ),
        (
            json!({"client_id": id, "redirect_uris": ["https://app.example/cb"], "scope": "api:read"}),
            "api:read",
        ),
    ] {
        let resp = crate::steps::put_registration(&app.http, &app.addr, id, rat, &update).await;
        assert_eq!(resp.status(), 400, "{update}");
        let err: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(err["error"], "invalid_client_metadata");
        assert!(
            err["error_description"].as_str().unwrap().contains(about),
            "{err}"
        );
    }
    let update = json!({"client_id": id, "client_name": "Renamed", "redirect_uris": ["https://app.example/cb"]});
    let resp = crate::steps::put_registration(&app.http, &app.addr, id, rat, &update).await;
    assert_eq!(resp.status(), 200);
    let updated: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(updated["client_name"], "Renamed");
    assert_eq!(updated["scope"], "email profile", "the open scopes again");
    let stored = app.state.repos.client(id).await.unwrap().unwrap();
    assert!(
        stored.expires_at.is_some(),
        "still anonymous, still expiring"
    );
    // The management endpoint itself works as for any client.
    let resp = app
        .http
        .delete(app.url(&format!("/oauth/register/{id}")))
        .bearer_auth(rat)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
}

per_backend!(an_anonymous_client_in_use_at_the_token_endpoint_lives_on);
/// Tokens issued to an anonymous client extend its life: a public client
/// refreshing for longer than `open_client_ttl` is still registered, while
/// one registered at the same time and never used expires.
async fn an_anonymous_client_in_use_at_the_token_endpoint_lives_on(backend: Backend) {
    use crate::steps;
    let app = anonymous_app(backend, |s| s.registration.open_client_ttl = 2).await;
    let register = || async {
        let resp = steps::post_registration(
            &app.http,
            &app.addr,
            None,
            &native_app(crate::helpers::REDIRECT),
        )
        .await;
        assert_eq!(resp.status(), 201);
        let info: serde_json::Value = resp.json().await.unwrap();
        let field = |k: &str| info[k].as_str().unwrap().to_string();
        (field("client_id"), field("registration_access_token"))
    };
    let (used, used_rat) = register().await;
    let (unused, unused_rat) = register().await;
    let (verifier, challenge) = crate::helpers::pkce_pair();
    let back = app
        .authorize(&steps::code_query(&used, "profile", &challenge), "allow")
        .await;
    let code = steps::code_of(&back);
    let tokens = steps::ok_json(
        steps::redeem(
            &app.http,
            &app.addr,
            None,
            &[("client_id", used.as_str())],
            &code,
            &verifier,
        )
        .await,
    )
    .await;
    let mut refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    let read = |id: &str, rat: &str| {
        app.http
            .get(app.url(&format!("/oauth/register/{id}")))
            .bearer_auth(rat.to_string())
            .send()
    };
    // Refresh (only the token endpoint uses the client) until the unused
    // client has expired; bounded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let resp = steps::post_form(
            &app.http,
            &app.url("/oauth/token"),
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("client_id", &used),
            ],
        )
        .await;
        let body = steps::ok_json(resp).await;
        refresh = body["refresh_token"].as_str().unwrap().to_string();
        if read(&unused, &unused_rat).await.unwrap().status() == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the unused client never expired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(read(&used, &used_rat).await.unwrap().status(), 200);
}
