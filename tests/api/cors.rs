//! CORS (SPEC.md "CORS", issue 12 item 9): metadata and JWKS answer any
//! origin; the token and revocation endpoints answer the origins of public
//! clients' redirect URIs (config file or registered at runtime) and their
//! preflights, and forget an origin when its client changes or goes; the
//! pages send no CORS header; nothing allows credentials. Then a real
//! Chromium runs a single-page app from another loopback origin through the
//! whole code + PKCE + refresh + revoke flow with `fetch`.

use std::time::Duration;

use keygate::tokens::keys::Alg;
use poem::listener::{Acceptor, Listener, TcpListener};
use reqwest::Method;
use serde_json::json;

use crate::chromium::Browser;
use crate::helpers::{
    per_backend, spawn_app, spawn_app_with, Backend, TestApp, ISSUER, PASSWORD, USER,
};

const IAT: &str = "initial-access-token-for-cors";
/// The origin of the test config's public `spa` client (and `demo-spa`'s in
/// the dev config).
const SPA_ORIGIN: &str = "http://127.0.0.1:3000";

async fn app_with_registration(backend: Backend) -> TestApp {
    spawn_app_with(backend, Alg::ES256, |s| {
        s.registration.initial_access_tokens = vec![IAT.into()]
    })
    .await
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

fn assert_no_credentials(resp: &reqwest::Response) {
    assert!(
        header(resp, "access-control-allow-credentials").is_none(),
        "{} never allows credentials",
        resp.url()
    );
}

async fn preflight(app: &TestApp, path: &str, origin: &str) -> reqwest::Response {
    let resp = app
        .http
        .request(Method::OPTIONS, app.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_no_credentials(&resp);
    resp
}

/// A form POST from a browser at `origin` (the form body makes it a simple
/// request: no preflight before it).
async fn post_from(
    app: &TestApp,
    path: &str,
    origin: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let resp = app
        .http
        .post(app.url(path))
        .header("origin", origin)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_no_credentials(&resp);
    resp
}

/// Asserts that the token and revocation endpoints answer `origin` (echoed,
/// with `Vary: Origin`) or give it no CORS header at all, on the preflight
/// and on the actual request (an error answer included: the app must be able
/// to read `invalid_grant`).
async fn assert_origin(app: &TestApp, origin: &str, allowed: bool) {
    for path in ["/oauth/token", "/oauth/revoke"] {
        let what = format!("{path} from {origin} (allowed: {allowed})");
        let resp = preflight(app, path, origin).await;
        assert_eq!(resp.status(), 204, "{what}");
        assert_eq!(header(&resp, "vary").as_deref(), Some("Origin"), "{what}");
        if allowed {
            assert_eq!(
                header(&resp, "access-control-allow-origin").as_deref(),
                Some(origin),
                "{what}"
            );
            assert_eq!(
                header(&resp, "access-control-allow-methods").as_deref(),
                Some("POST"),
                "{what}"
            );
            assert_eq!(
                header(&resp, "access-control-allow-headers").as_deref(),
                Some("content-type"),
                "{what}"
            );
            assert_eq!(
                header(&resp, "access-control-max-age").as_deref(),
                Some("600"),
                "{what}"
            );
        } else {
            for h in [
                "access-control-allow-origin",
                "access-control-allow-methods",
                "access-control-allow-headers",
            ] {
                assert!(header(&resp, h).is_none(), "{what}: {h}");
            }
        }
        let form: &[(&str, &str)] = if path == "/oauth/token" {
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "spa"),
                ("code", "bogus"),
                ("code_verifier", "v"),
            ]
        } else {
            &[("token", "bogus"), ("client_id", "spa")]
        };
        let resp = post_from(app, path, origin, form).await;
        let status = if path == "/oauth/token" { 400 } else { 200 };
        assert_eq!(resp.status(), status, "{what}");
        assert!(
            resp.headers().get_all("vary").iter().any(|v| v == "Origin"),
            "{what}: Vary"
        );
        let expected = allowed.then_some(origin);
        assert_eq!(
            header(&resp, "access-control-allow-origin").as_deref(),
            expected,
            "{what}"
        );
    }
}

async fn register(app: &TestApp, metadata: serde_json::Value) -> (String, String) {
    let info = crate::steps::register(&app.http, &app.addr, IAT, &metadata).await;
    (
        info["client_id"].as_str().unwrap().to_string(),
        info["registration_access_token"]
            .as_str()
            .unwrap()
            .to_string(),
    )
}

fn public_spa(redirect: &str) -> serde_json::Value {
    json!({"client_name": "SPA", "redirect_uris": [redirect], "grant_types": ["authorization_code", "refresh_token"], "token_endpoint_auth_method": "none", "scope": "profile"})
}

#[tokio::test]
async fn metadata_and_jwks_answer_any_origin() {
    let app = spawn_app(Backend::Memory).await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/.well-known/jwks.json",
    ] {
        for origin in [Some("https://anything.example"), Some("null"), None] {
            let mut req = app.http.get(app.url(path));
            if let Some(o) = origin {
                req = req.header("origin", o);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            assert_eq!(
                header(&resp, "access-control-allow-origin").as_deref(),
                Some("*"),
                "{path} {origin:?}"
            );
            assert_no_credentials(&resp);
        }
        let resp = app
            .http
            .request(Method::OPTIONS, app.url(path))
            .header("origin", "https://anything.example")
            .header("access-control-request-method", "GET")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204, "{path} preflight");
        assert_eq!(
            header(&resp, "access-control-allow-origin").as_deref(),
            Some("*")
        );
        assert_eq!(
            header(&resp, "access-control-allow-methods").as_deref(),
            Some("GET")
        );
        assert_no_credentials(&resp);
    }
}

#[tokio::test]
async fn pages_and_other_endpoints_stay_same_origin() {
    let app = spawn_app(Backend::Memory).await;
    for path in [
        "/",
        "/login",
        "/signup",
        "/clients",
        "/oauth/authorize?response_type=code&client_id=spa",
        "/api/me",
        "/openapi.json",
        "/docs",
        "/healthz",
    ] {
        let resp = app
            .http
            .get(app.url(path))
            .header("origin", SPA_ORIGIN)
            .send()
            .await
            .unwrap();
        assert!(
            header(&resp, "access-control-allow-origin").is_none(),
            "{path}"
        );
        assert_no_credentials(&resp);
    }
    // A preflight of a page or another endpoint is routed as before: 405
    // with Allow, no CORS header.
    for (path, allow) in [
        ("/login", "GET, HEAD, POST"),
        ("/oauth/introspect", "POST"),
        ("/api/me", "GET, HEAD"),
    ] {
        let resp = preflight(&app, path, SPA_ORIGIN).await;
        assert_eq!(resp.status(), 405, "{path}");
        assert_eq!(header(&resp, "allow").as_deref(), Some(allow), "{path}");
        assert!(
            header(&resp, "access-control-allow-origin").is_none(),
            "{path}"
        );
    }
    // An OPTIONS that is no preflight (no Access-Control-Request-Method)
    // keeps today's 405 with Allow on the token endpoint too.
    let resp = app
        .http
        .request(Method::OPTIONS, app.url("/oauth/token"))
        .header("origin", SPA_ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(header(&resp, "allow").as_deref(), Some("POST"));
}

per_backend!(token_and_revoke_answer_public_client_origins);
async fn token_and_revoke_answer_public_client_origins(backend: Backend) {
    let app = app_with_registration(backend).await;
    // the config file's public client
    assert_origin(&app, SPA_ORIGIN, true).await;
    // not web origins, or not exactly as a browser serialises one
    for origin in [
        "null",
        "http://127.0.0.1:3000/",
        "HTTP://127.0.0.1:3000",
        "http://localhost:3000",
    ] {
        assert_origin(&app, origin, false).await;
    }
    // unknown origin
    assert_origin(&app, "http://127.0.0.1:4999", false).await;

    // a confidential client's redirect origin is refused
    register(
        &app,
        json!({"client_name": "Web", "redirect_uris": ["https://conf.example.com/cb"], "grant_types": ["authorization_code"], "scope": "profile"}),
    )
    .await;
    assert_origin(&app, "https://conf.example.com", false).await;

    // a public client registered at runtime (RFC 7591): allowed at once
    let a = "http://127.0.0.1:4100";
    let (id, rat) = register(&app, public_spa(&format!("{a}/callback"))).await;
    assert_origin(&app, a, true).await;

    // RFC 7592 update to another origin: the old one goes, the new one comes
    let b = "https://spa.example.com";
    let mut update = public_spa(&format!("{b}/cb"));
    update["client_id"] = json!(id);
    let resp = crate::steps::put_registration(&app.http, &app.addr, &id, &rat, &update).await;
    assert_eq!(resp.status(), 200);
    assert_origin(&app, a, false).await;
    assert_origin(&app, b, true).await;

    // a second public client on the same origin: deleting one keeps it
    let (id2, rat2) = register(&app, public_spa(&format!("{b}/other"))).await;
    for (id, rat, still) in [(&id, &rat, true), (&id2, &rat2, false)] {
        let resp = app
            .http
            .delete(app.url(&format!("/oauth/register/{id}")))
            .bearer_auth(rat)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
        assert_origin(&app, b, still).await;
    }

    // a public client turned confidential loses its origin
    let (id3, rat3) = register(&app, public_spa(&format!("{a}/callback"))).await;
    assert_origin(&app, a, true).await;
    let mut update = public_spa(&format!("{a}/callback"));
    update["client_id"] = json!(id3);
    update["token_endpoint_auth_method"] = json!("client_secret_basic");
    let resp = crate::steps::put_registration(&app.http, &app.addr, &id3, &rat3, &update).await;
    assert_eq!(resp.status(), 200);
    assert_origin(&app, a, false).await;
}

per_backend!(concurrent_updates_leave_the_stored_clients_origins);
async fn concurrent_updates_leave_the_stored_clients_origins(backend: Backend) {
    let app = spawn_app(backend).await;
    let state = app.state.clone();
    let origins = [
        "http://127.0.0.1:4301",
        "http://127.0.0.1:4302",
        "http://127.0.0.1:4303",
    ];
    let meta = |uris: Vec<String>| keygate::oauth::client_meta::ClientMetadata {
        client_name: "racing SPA".into(),
        redirect_uris: uris,
        grant_types: vec![keygate::oauth::types::GrantType::AuthorizationCode],
        scope: keygate::oauth::types::ScopeSet::parse("profile").unwrap(),
        auth_method: keygate::oauth::types::AuthMethod::None,
        client_uri: None,
        logo_uri: None,
        oidc: Default::default(),
    };
    let reg = keygate::flows::clients::register(
        &state.repos,
        meta(vec![format!("{}/cb", origins[0])]),
        &state.cfg.client_rules,
        0,
        None,
        false,
    )
    .await
    .unwrap();
    let id = reg.client.client_id;
    // Writers racing on one client, each with another subset of the origins.
    let writers: Vec<_> = (0..6)
        .map(|i| {
            let state = state.clone();
            let id = id.clone();
            let uris: Vec<String> = origins
                .iter()
                .enumerate()
                .filter(|(j, _)| (i + j) % 3 != 0)
                .map(|(_, o)| format!("{o}/cb"))
                .collect();
            let meta = meta(uris);
            tokio::spawn(async move {
                keygate::flows::clients::update(
                    &state.repos,
                    &id,
                    None,
                    meta,
                    &state.cfg.client_rules,
                )
                .await
                .unwrap();
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let stored = state.repos.client(&id).await.unwrap().unwrap();
    let wanted = stored.cors_origins();
    for origin in origins {
        assert_eq!(
            state.repos.origin_allowed(origin).await.unwrap(),
            wanted.contains(origin),
            "{origin}: the index agrees with the stored client {wanted:?}"
        );
    }
    keygate::flows::clients::delete(&state.repos, &id, None)
        .await
        .unwrap();
    for origin in origins {
        assert!(
            !state.repos.origin_allowed(origin).await.unwrap(),
            "{origin} after delete"
        );
    }
}

per_backend!(clients_stored_before_the_index_get_their_origins);
async fn clients_stored_before_the_index_get_their_origins(backend: Backend) {
    let app = spawn_app(backend).await;
    // This app's start indexed the (empty) store and left its marker.
    assert!(app
        .state
        .store
        .get("kg:meta:origins-indexed")
        .await
        .unwrap()
        .is_some());
    // a public client as an older keygate stored it: no origin index entry
    let origin = "http://127.0.0.1:4400";
    let parsed = keygate::oauth::types::Client {
        client_id: "old-spa".into(),
        client_name: "old".into(),
        secret_sha256: None,
        auth_method: keygate::oauth::types::AuthMethod::None,
        grant_types: vec![keygate::oauth::types::GrantType::AuthorizationCode],
        redirect_uris: vec![format!("{origin}/cb")],
        scope: keygate::oauth::types::ScopeSet::parse("profile").unwrap(),
        created_at: 0,
        owner: None,
        client_uri: None,
        logo_uri: None,
        registration_token_sha256: None,
        expires_at: None,
        ..Default::default()
    };
    app.state
        .store
        .put(
            "kg:client:old-spa",
            &serde_json::to_vec(&parsed).unwrap(),
            None,
        )
        .await
        .unwrap();
    assert_origin(&app, origin, false).await;
    // what a start does once per store (the marker set by this app's own
    // start is removed, as in a store an older keygate wrote)
    app.state
        .store
        .delete("kg:meta:origins-indexed")
        .await
        .unwrap();
    app.state.repos.index_origins_once().await.unwrap();
    assert_origin(&app, origin, true).await;
}

// ---------------------------------------------------------------------------
// A real browser: a single-page app on another loopback origin.

/// What the SPA pages need to know, injected into their scripts.
#[derive(Clone)]
struct Spa {
    keygate: String,
    client_id: String,
    redirect: String,
}

/// The SPA's script helpers: base64url, a POST of a form with `fetch`, and
/// `done(result)`, which writes the result as JSON into `#result` (created
/// only then, so the test's wait for it is the wait for the script).
const SPA_LIB: &str = r#"
const b64url = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const post = (path, form) => fetch(KG + path, {method: "POST", body: new URLSearchParams(form)});
const done = (result) => {
  const pre = document.createElement("pre");
  pre.id = "result";
  pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
};
"#;

fn spa_page(spa: &Spa, script: &str) -> poem::web::Html<String> {
    let config = json!({"KG": spa.keygate, "CID": spa.client_id, "REDIRECT": spa.redirect});
    poem::web::Html(format!(
        "<!doctype html><title>spa</title><body><script>\
         const {{KG, CID, REDIRECT}} = {config};{SPA_LIB}{script}</script></body>"
    ))
}

/// `/start`: reads metadata and JWKS cross-origin, makes a PKCE S256 pair
/// with WebCrypto, keeps the verifier in sessionStorage and goes to
/// keygate's authorization endpoint.
const START: &str = r#"
(async () => {
  const out = {};
  try {
    const meta = await (await fetch(KG + "/.well-known/oauth-authorization-server")).json();
    out.meta_issuer = meta.issuer;
    const jwks = await (await fetch(KG + "/.well-known/jwks.json")).json();
    out.jwks_keys = jwks.keys.length;
    const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
    sessionStorage.setItem("verifier", verifier);
    sessionStorage.setItem("start", JSON.stringify(out));
    location.href = KG + "/oauth/authorize?" + new URLSearchParams({
      response_type: "code", client_id: CID, redirect_uri: REDIRECT, scope: "profile",
      state: "spa-state", code_challenge: b64url(new Uint8Array(digest)), code_challenge_method: "S256"});
  } catch (e) { out.error = String(e); done(out); }
})();
"#;

/// `/callback`: code + verifier → tokens, refresh, revoke the refresh token,
/// try it again, then one preflighted request (a JSON body).
const CALLBACK: &str = r#"
(async () => {
  const out = JSON.parse(sessionStorage.getItem("start") || "{}");
  try {
    const q = new URLSearchParams(location.search);
    out.state = q.get("state");
    let r = await post("/oauth/token", {grant_type: "authorization_code", code: q.get("code"),
      redirect_uri: REDIRECT, client_id: CID, code_verifier: sessionStorage.getItem("verifier")});
    out.token_status = r.status;
    const t1 = await r.json();
    r = await post("/oauth/token", {grant_type: "refresh_token", refresh_token: t1.refresh_token, client_id: CID});
    out.refresh_status = r.status;
    const t2 = await r.json();
    out.rotated = !!t2.refresh_token && t2.refresh_token !== t1.refresh_token;
    out.access_token = t2.access_token;
    r = await post("/oauth/revoke", {token: t2.refresh_token, token_type_hint: "refresh_token", client_id: CID});
    out.revoke_status = r.status;
    r = await post("/oauth/token", {grant_type: "refresh_token", refresh_token: t2.refresh_token, client_id: CID});
    out.after_revoke = (await r.json()).error;
    r = await fetch(KG + "/oauth/token", {method: "POST", headers: {"content-type": "application/json"}, body: "{}"});
    out.preflighted_status = r.status;
  } catch (e) { out.error = String(e); }
  done(out);
})();
"#;

/// `/probe`: loaded from an origin no client registered. The public
/// metadata reads; the token endpoint's answer is blocked by the browser.
const PROBE: &str = r#"
(async () => {
  const out = {};
  try {
    out.meta_issuer = (await (await fetch(KG + "/.well-known/openid-configuration")).json()).issuer;
  } catch (e) { out.meta_error = String(e); }
  try {
    const r = await post("/oauth/token", {grant_type: "refresh_token", refresh_token: "x", client_id: CID});
    out.token_status = r.status;
  } catch (e) { out.token_error = e.name; }
  done(out);
})();
"#;

#[poem::handler]
fn spa_start(spa: poem::web::Data<&Spa>) -> poem::web::Html<String> {
    spa_page(&spa, START)
}

#[poem::handler]
fn spa_callback(spa: poem::web::Data<&Spa>) -> poem::web::Html<String> {
    spa_page(&spa, CALLBACK)
}

#[poem::handler]
fn spa_probe(spa: poem::web::Data<&Spa>) -> poem::web::Html<String> {
    spa_page(&spa, PROBE)
}

/// The result the page's script wrote into `#result`.
async fn result_of(browser: &Browser) -> serde_json::Value {
    serde_json::from_str(&browser.text("#result").await).unwrap()
}

per_backend!(chromium_spa_runs_code_pkce_refresh_and_revoke_cross_origin);
async fn chromium_spa_runs_code_pkce_refresh_and_revoke_cross_origin(backend: Backend) {
    // The SPA's origin first: its client's redirect URI names its port.
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let port = acceptor.local_addr()[0]
        .as_socket_addr()
        .copied()
        .unwrap()
        .port();
    let spa_origin = format!("http://127.0.0.1:{port}");
    let app = app_with_registration(backend).await;
    let redirect = format!("{spa_origin}/callback");
    let (client_id, _) = register(&app, public_spa(&redirect)).await;
    let spa = Spa {
        keygate: app.addr.clone(),
        client_id: client_id.clone(),
        redirect: redirect.clone(),
    };
    let server = tokio::spawn(async move {
        let routes = poem::Route::new()
            .at("/start", poem::get(spa_start))
            .at("/callback", poem::get(spa_callback))
            .at("/probe", poem::get(spa_probe));
        let _ = poem::Server::new_with_acceptor(acceptor)
            .run(poem::EndpointExt::data(routes, spa))
            .await;
    });

    let browser = Browser::start().await;
    browser.goto(&format!("{spa_origin}/start")).await;
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
    browser.click("#allow").await;
    browser
        .wait_for_url(
            |u| u.as_str().starts_with(&redirect),
            Duration::from_secs(20),
        )
        .await;
    let out = result_of(&browser).await;
    assert!(out.get("error").is_none(), "{out}");
    assert_eq!(out["meta_issuer"], ISSUER, "{out}");
    assert!(out["jwks_keys"].as_u64().unwrap() >= 1, "{out}");
    assert_eq!(out["state"], "spa-state", "{out}");
    assert_eq!(out["token_status"], 200, "{out}");
    assert_eq!(out["refresh_status"], 200, "{out}");
    assert_eq!(out["rotated"], true, "{out}");
    assert_eq!(out["revoke_status"], 200, "{out}");
    assert_eq!(out["after_revoke"], "invalid_grant", "{out}");
    assert_eq!(out["preflighted_status"], 400, "{out}");
    let claims =
        crate::helpers::verify_like_a_gateway(&app, out["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["client_id"], client_id.as_str());

    // The same page from an origin no client registered (localhost is
    // another host, so another origin): the metadata reads, the token
    // endpoint's answer is blocked by CORS.
    browser
        .goto(&format!("http://localhost:{port}/probe"))
        .await;
    let out = result_of(&browser).await;
    assert_eq!(out["meta_issuer"], ISSUER, "{out}");
    assert_eq!(out["token_error"], "TypeError", "{out}");
    assert!(out.get("token_status").is_none(), "{out}");
    browser.close().await;
    server.abort();
}
