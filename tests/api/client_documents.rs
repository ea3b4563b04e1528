//! Client ID metadata documents (draft-ietf-oauth-client-id-metadata-document,
//! `registration.metadata_documents`): an https URL as `client_id` is fetched
//! from a local **https** server whose test CA keygate trusts
//! (`registration.metadata_documents_ca_file`; the CA and the server's
//! certificate are made at test time with rcgen, the server is hyper behind
//! tokio-rustls; tests/api/doc_server.rs). The server counts the requests per
//! path, so caching and "never fetched" are asserted on what it saw.

use std::sync::Arc;
use std::time::Duration;

use keygate::clock::TestClock;
use keygate::config::Settings;
use keygate::tokens::keys::Alg;
use serde_json::{json, Value};

use crate::doc_server::{DocServer, Reply};
use crate::helpers::{
    hidden_value, location, params_of, per_backend, pkce_pair, spawn_app_clocked, spawn_app_with,
    urlencode, Backend, TestApp, REDIRECT,
};
use crate::steps::{self, code_of, ok_json, redeem};

// ---------------------------------------------------------------------------
// The document server (tests/api/doc_server.rs) and this module's documents.

impl DocServer {
    /// Serves a valid document for the client at `path` (its URL is the
    /// client_id) with `Cache-Control: cache`; returns the client_id.
    fn serve_client(&self, path: &str, cache: &str) -> String {
        let id = self.url(path);
        self.set(path, Reply::doc(&document(&id), cache));
        id
    }
}

/// A valid document for `client_id`: a public client with the test redirect
/// URI, the code and refresh grants.
fn document(client_id: &str) -> Value {
    json!({
        "client_id": client_id,
        "client_name": "Doc <App>",
        "client_uri": "https://app.example/",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "scope": "profile email",
    })
}

// ---------------------------------------------------------------------------
// keygate.

/// Documents on, trusting the server's CA, private addresses allowed (the
/// server is on 127.0.0.1).
fn documents_on(server: &DocServer) -> impl FnOnce(&mut Settings) {
    let ca = server.ca_file.path().display().to_string();
    move |s: &mut Settings| {
        s.registration.metadata_documents = true;
        s.registration.metadata_documents_allow_private = true;
        s.registration.metadata_documents_ca_file = ca;
    }
}

async fn spawn(backend: Backend, server: &DocServer) -> TestApp {
    spawn_app_with(backend, Alg::RS256, documents_on(server)).await
}

/// An authorization request of `client_id` (URL-encoded) with S256 PKCE.
fn query(client_id: &str, redirect: &str, challenge: &str) -> String {
    format!(
        "response_type=code&client_id={}&redirect_uri={}&scope=profile&state={}&code_challenge={challenge}&code_challenge_method=S256",
        urlencode(client_id),
        urlencode(redirect),
        steps::STATE,
    )
}

/// GET /oauth/authorize without a session: a valid request redirects to the
/// login page (303); a refused one is an error page (400, never a redirect).
async fn authorize_status(app: &TestApp, client_id: &str) -> (u16, String) {
    let (_, challenge) = pkce_pair();
    let resp = app
        .http
        .get(app.url(&format!(
            "/oauth/authorize?{}",
            query(client_id, REDIRECT, &challenge)
        )))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    if status == 303 {
        assert!(location(&resp).starts_with("/login?"));
    } else {
        assert!(resp.headers().get("location").is_none(), "never a redirect");
    }
    (status, resp.text().await.unwrap())
}

/// Asserts an error page naming `why`.
async fn assert_refused_page(app: &TestApp, client_id: &str, why: &str) {
    let (status, html) = authorize_status(app, client_id).await;
    assert_eq!(status, 400, "{html}");
    assert!(html.contains(why), "page should say `{why}`:\n{html}");
}

// ---------------------------------------------------------------------------
// Tests.

/// The whole code + PKCE flow with a document's client: consent shows the
/// document's host, the code is redeemed with the URL as `client_id` and no
/// secret, the refresh token rotates, the client may revoke.
async fn code_flow_with_a_document_client(backend: Backend) {
    let server = DocServer::start().await;
    let app = spawn(backend, &server).await;
    let id = server.serve_client("/client.json", "max-age=300");
    let (verifier, challenge) = pkce_pair();
    let path = format!("/oauth/authorize?{}", query(&id, REDIRECT, &challenge));
    let browser = app.browser();
    assert_eq!(app.login(&browser, &path).await.status(), 303);
    let html = app.page(&browser, &path).await;
    assert!(
        html.contains("Doc &#60;App&#62;</span> <span class=\"client-origin\">— from <strong class=\"document-host\">127.0.0.1</strong>"),
        "{html}"
    );
    let csrf = hidden_value(&html, "csrf_token");
    let to = steps::decide(&browser, &app.addr, &path, &csrf, "allow").await;
    assert!(to.starts_with(REDIRECT), "{to}");
    assert_eq!(params_of(&to, false)["state"], steps::STATE);
    let code = code_of(&to);
    // PKCE is required: a wrong verifier fails.
    let resp = redeem(
        &app.http,
        &app.addr,
        None,
        &[("client_id", &id)],
        &code,
        "x".repeat(43).as_str(),
    )
    .await;
    assert_eq!(resp.status(), 400);
    // (A failed PKCE check burns the code: get another.)
    let to = steps::consent(&browser, &app.addr, &path, "allow").await;
    let code = code_of(&to);
    let body = ok_json(
        redeem(
            &app.http,
            &app.addr,
            None,
            &[("client_id", &id)],
            &code,
            &verifier,
        )
        .await,
    )
    .await;
    assert_eq!(body["scope"], "profile");
    let refresh = body["refresh_token"].as_str().unwrap().to_string();
    let claims =
        crate::helpers::verify_like_a_gateway(&app, body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["client_id"], id.as_str());
    let token_url = app.url("/oauth/token");
    let body = ok_json(
        steps::post_form(
            &app.http,
            &token_url,
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("client_id", &id),
            ],
        )
        .await,
    )
    .await;
    let next = body["refresh_token"].as_str().unwrap();
    assert_ne!(next, refresh, "rotated");
    let resp = app
        .post_token_to(
            "/oauth/revoke",
            None,
            &[("token", next), ("client_id", &id)],
        )
        .await;
    assert_eq!(resp.status(), 200);
    // One fetch for all of it: the document is cached for its max-age.
    assert_eq!(server.hits("/client.json"), 1);
}

/// `client_id` in the document must be the URL it was fetched from, exactly.
#[tokio::test]
async fn client_id_mismatch_is_refused() {
    let server = DocServer::start().await;
    let app = spawn(Backend::Memory, &server).await;
    let other = server.url("/other.json");
    server.set(
        "/mismatch.json",
        Reply::doc(&document(&other), "max-age=300"),
    );
    let id = server.url("/mismatch.json");
    assert_refused_page(&app, &id, "client_id is not the URL it was fetched from").await;
    // At the token endpoint: invalid_client.
    let resp = app
        .post_token(
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", "x"),
                ("client_id", &id),
            ],
        )
        .await;
    crate::helpers::assert_oauth_error(resp, 401, "invalid_client").await;
}

/// A redirect URI the document does not list is refused on a page.
#[tokio::test]
async fn redirect_uri_not_in_the_document_is_refused() {
    let server = DocServer::start().await;
    let app = spawn(Backend::Memory, &server).await;
    let id = server.serve_client("/client.json", "max-age=300");
    let (_, challenge) = pkce_pair();
    let resp = app
        .http
        .get(app.url(&format!(
            "/oauth/authorize?{}",
            query(&id, "https://evil.example/cb", &challenge)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.headers().get("location").is_none());
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("not registered for this application"));
    // Loopback: any port (RFC 8252 §7.3), the rest exact.
    let (_, challenge) = pkce_pair();
    let resp = app
        .http
        .get(app.url(&format!(
            "/oauth/authorize?{}",
            query(&id, "http://127.0.0.1:4444/callback", &challenge)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "loopback port rule");
}

/// Shared-secret methods and secrets are refused; so is `private_key_jwt`.
#[tokio::test]
async fn shared_secret_methods_are_refused() {
    let server = DocServer::start().await;
    let app = spawn(Backend::Memory, &server).await;
    for (path, field, value, why) in [
        (
            "/basic.json",
            "token_endpoint_auth_method",
            json!("client_secret_basic"),
            "client_secret_basic",
        ),
        (
            "/post.json",
            "token_endpoint_auth_method",
            json!("client_secret_post"),
            "client_secret_post",
        ),
        (
            "/jwt.json",
            "token_endpoint_auth_method",
            json!("private_key_jwt"),
            "not supported",
        ),
        (
            "/secret.json",
            "client_secret",
            json!("s3cret"),
            "client_secret",
        ),
    ] {
        let id = server.url(path);
        let mut doc = document(&id);
        doc[field] = value;
        server.set(path, Reply::doc(&doc, "max-age=300"));
        assert_refused_page(&app, &id, why).await;
        // The token endpoint, with a secret in the form: invalid_client.
        let resp = app
            .post_token(
                None,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", "x"),
                    ("client_id", &id),
                    ("client_secret", "s3cret"),
                ],
            )
            .await;
        crate::helpers::assert_oauth_error(resp, 401, "invalid_client").await;
    }
}

/// Not 200, a redirect (never followed), over 5 KiB, not JSON: refused.
#[tokio::test]
async fn bad_responses_are_refused() {
    let server = DocServer::start().await;
    let app = spawn(Backend::Memory, &server).await;
    // 404 (no such path on the server).
    assert_refused_page(&app, &server.url("/missing.json"), "HTTP 404").await;
    // A redirect to a valid document is not followed.
    let target = server.serve_client("/target.json", "max-age=300");
    server.set(
        "/moved.json",
        Reply {
            status: 302,
            headers: vec![("location", target)],
            body: String::new(),
            delay: None,
        },
    );
    assert_refused_page(&app, &server.url("/moved.json"), "HTTP 302").await;
    assert_eq!(server.hits("/target.json"), 0, "redirect not followed");
    // Over the size cap.
    let id = server.url("/big.json");
    let mut doc = document(&id);
    doc["client_name"] = json!("x".repeat(6 * 1024));
    server.set("/big.json", Reply::doc(&doc, "max-age=300"));
    assert_refused_page(&app, &id, "larger than 5120 bytes").await;
    // Not JSON.
    let id = server.url("/html.json");
    let mut reply = Reply::doc(&document(&id), "max-age=300");
    reply.headers[0].1 = "text/html".into();
    server.set("/html.json", reply);
    assert_refused_page(&app, &id, "not served as application/json").await;
    // Invalid JSON.
    let id = server.url("/broken.json");
    let mut reply = Reply::doc(&document(&id), "max-age=300");
    reply.body = "{\"client_id\":".into();
    server.set("/broken.json", reply);
    assert_refused_page(&app, &id, "not valid JSON").await;
}

/// A server slower than the fetch timeout: refused (the server sleeps far
/// longer than keygate waits; nothing here measures time).
#[tokio::test]
async fn a_slow_document_is_refused() {
    let server = DocServer::start().await;
    let app = spawn(Backend::Memory, &server).await;
    let id = server.url("/slow.json");
    let mut reply = Reply::doc(&document(&id), "max-age=300");
    reply.delay = Some(Duration::from_secs(120));
    server.set("/slow.json", reply);
    assert_refused_page(&app, &id, "not served within 5 s").await;
}

/// Cached for `max-age` (one fetch for several requests), refetched after it;
/// `max-age=0` is raised to the floor (60 s); `no-store` is not cached.
#[tokio::test]
async fn documents_are_cached_by_their_headers() {
    let server = DocServer::start().await;
    let clock = TestClock::new(1_800_000_000);
    let app = spawn_app_clocked(
        Backend::Memory,
        Alg::RS256,
        documents_on(&server),
        Arc::new(clock.clone()),
    )
    .await;
    let a = server.serve_client("/a.json", "public, max-age=300");
    let zero = server.serve_client("/zero.json", "max-age=0");
    let never = server.serve_client("/never.json", "no-store");
    for _ in 0..3 {
        for id in [&a, &zero, &never] {
            assert_eq!(authorize_status(&app, id).await.0, 303);
        }
    }
    assert_eq!(server.hits("/a.json"), 1, "within max-age: one fetch");
    assert_eq!(server.hits("/zero.json"), 1, "max-age=0: the floor applies");
    assert_eq!(
        server.hits("/never.json"),
        3,
        "no-store: every request fetches"
    );
    clock.advance(61);
    for id in [&a, &zero] {
        assert_eq!(authorize_status(&app, id).await.0, 303);
    }
    assert_eq!(server.hits("/a.json"), 1, "still within max-age=300");
    assert_eq!(
        server.hits("/zero.json"),
        2,
        "past the 60 s floor: fetched again"
    );
    clock.advance(240);
    assert_eq!(authorize_status(&app, &a).await.0, 303);
    assert_eq!(server.hits("/a.json"), 2, "past max-age: fetched again");
    // A change is seen once the cache lapses: the document now names no
    // redirect URI the request uses.
    let mut doc = document(&a);
    doc["redirect_uris"] = json!(["https://app.example/cb"]);
    server.set("/a.json", Reply::doc(&doc, "max-age=300"));
    assert_eq!(authorize_status(&app, &a).await.0, 303, "cached");
    clock.advance(301);
    assert_eq!(authorize_status(&app, &a).await.0, 400, "refetched");
}

/// `registration.metadata_documents_max_cache_secs` caps a long `max-age`.
#[tokio::test]
async fn the_cache_lifetime_is_capped() {
    let server = DocServer::start().await;
    let clock = TestClock::new(1_800_000_000);
    let on = documents_on(&server);
    let app = spawn_app_clocked(
        Backend::Memory,
        Alg::RS256,
        move |s: &mut Settings| {
            on(s);
            s.registration.metadata_documents_max_cache_secs = 120;
        },
        Arc::new(clock.clone()),
    )
    .await;
    let id = server.serve_client("/long.json", "max-age=31536000");
    assert_eq!(authorize_status(&app, &id).await.0, 303);
    clock.advance(100);
    assert_eq!(authorize_status(&app, &id).await.0, 303);
    assert_eq!(server.hits("/long.json"), 1);
    clock.advance(21);
    assert_eq!(authorize_status(&app, &id).await.0, 303);
    assert_eq!(server.hits("/long.json"), 2, "capped at 120 s");
}

/// A failed fetch is not cached: once the document is fixed, the next
/// request fetches it again and succeeds.
#[tokio::test]
async fn failures_are_not_cached() {
    let server = DocServer::start().await;
    let app = spawn(Backend::Memory, &server).await;
    let id = server.url("/flaky.json");
    server.set(
        "/flaky.json",
        Reply {
            status: 500,
            headers: vec![("cache-control", "max-age=3600".into())],
            body: String::new(),
            delay: None,
        },
    );
    assert_refused_page(&app, &id, "HTTP 500").await;
    assert_refused_page(&app, &id, "HTTP 500").await;
    assert_eq!(server.hits("/flaky.json"), 2);
    // An invalid document is not cached either.
    let mut doc = document(&id);
    doc["client_id"] = json!("https://elsewhere.example/c");
    server.set("/flaky.json", Reply::doc(&doc, "max-age=3600"));
    assert_refused_page(&app, &id, "client_id").await;
    server.serve_client("/flaky.json", "max-age=3600");
    assert_eq!(authorize_status(&app, &id).await.0, 303);
    assert_eq!(server.hits("/flaky.json"), 4);
}

/// Without `metadata_documents_allow_private`, loopback is refused: a
/// literal 127.0.0.1 and a name (`localhost`) that resolves only to
/// loopback. Nothing reaches the server.
#[tokio::test]
async fn private_addresses_are_refused() {
    let server = DocServer::start().await;
    let on = documents_on(&server);
    let app = spawn_app_with(Backend::Memory, Alg::RS256, move |s: &mut Settings| {
        on(s);
        s.registration.metadata_documents_allow_private = false;
    })
    .await;
    let id = server.serve_client("/client.json", "max-age=300");
    assert_refused_page(&app, &id, "127.0.0.1 is not a public address").await;
    let by_name = format!("https://localhost:{}/client.json", server.addr.port());
    assert_refused_page(&app, &by_name, "localhost resolves to no public address").await;
    let v6 = format!("https://[::1]:{}/client.json", server.addr.port());
    assert_refused_page(&app, &v6, "::1 is not a public address").await;
    assert_eq!(server.hits("/client.json"), 0);
}

/// Malformed Client Identifier URLs are unknown clients, never fetched.
#[tokio::test]
async fn malformed_urls_are_unknown_clients() {
    let server = DocServer::start().await;
    let app = spawn(Backend::Memory, &server).await;
    server.serve_client("/client.json", "max-age=300");
    let base = server.url("");
    for id in [
        format!("{base}/client.json#frag"),
        format!("{base}/x/../client.json"),
        format!("https://user@{}/client.json", server.addr),
        format!("http://{}/client.json", server.addr),
    ] {
        assert_refused_page(&app, &id, "not registered with this server").await;
    }
    assert_eq!(server.hits("/client.json"), 0);
}

/// Introspection refuses a document's client (a public client) without
/// fetching anything.
#[tokio::test]
async fn introspection_refuses_document_clients() {
    let server = DocServer::start().await;
    let app = spawn(Backend::Memory, &server).await;
    let id = server.serve_client("/client.json", "max-age=300");
    for form in [
        vec![("token", "t"), ("client_id", id.as_str())],
        vec![
            ("token", "t"),
            ("client_id", &id),
            ("client_secret", "guess"),
        ],
    ] {
        let resp = app.post_token_to("/oauth/introspect", None, &form).await;
        crate::helpers::assert_oauth_error(resp, 401, "invalid_client").await;
    }
    assert_eq!(server.hits("/client.json"), 0);
}

/// The metadata says `client_id_metadata_document_supported: true` only when
/// documents are on; off, a URL `client_id` is an unknown client.
#[tokio::test]
async fn metadata_flag_follows_the_setting() {
    let server = DocServer::start().await;
    let on = spawn(Backend::Memory, &server).await;
    let meta = on.get_json("/.well-known/oauth-authorization-server").await;
    assert_eq!(meta["client_id_metadata_document_supported"], json!(true));
    let off = crate::helpers::spawn_app(Backend::Memory).await;
    let meta = off
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert!(
        meta.get("client_id_metadata_document_supported").is_none(),
        "{meta}"
    );
    let id = server.serve_client("/client.json", "max-age=300");
    assert_refused_page(&off, &id, "not registered with this server").await;
    assert_eq!(server.hits("/client.json"), 0);
}

per_backend!(code_flow_with_a_document_client);
