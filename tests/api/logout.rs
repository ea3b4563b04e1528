//! OpenID Connect logout (issue 15 items 6 and 7): the client metadata that
//! goes with it (registration API, pages, CLI), RP-initiated logout at
//! `/oauth/logout` (hint, registered post-logout URI, `state`, the
//! confirmation page) and back-channel logout tokens received by a loopback
//! listener and verified as a relying party does.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use keygate::clock::{Clock, SystemClock};
use keygate::config::Settings;
use keygate::oauth::client_meta::{ClientMetadata, OidcMetadata};
use keygate::oauth::types::{AuthMethod, GrantType, ScopeSet};
use keygate::tokens::Alg;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{
    hidden_value, location, params_of, per_backend, pkce_pair, spawn_app_with, urlencode, Backend,
    TestApp, ISSUER, REDIRECT,
};
use crate::steps;

const IAT: &str = "initial-access-token-0123456789";
const BYE: &str = "https://rp.example/bye";

fn oidc(s: &mut Settings) {
    s.oauth.scopes.insert(0, "openid".into());
    s.registration.initial_access_tokens = vec![IAT.into()];
}

/// Registers a relying party with [`BYE`] as its post-logout redirect URI
/// and `backchannel` as its back-channel logout URI; returns (id, secret).
async fn relying_party(app: &TestApp, backchannel: Option<String>) -> (String, String) {
    let meta = ClientMetadata {
        client_name: "RP".into(),
        redirect_uris: vec![REDIRECT.into()],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scope: ScopeSet::parse("openid profile").unwrap(),
        auth_method: AuthMethod::ClientSecretBasic,
        client_uri: None,
        logo_uri: None,
        oidc: OidcMetadata {
            post_logout_redirect_uris: vec![BYE.into()],
            backchannel_logout_uri: backchannel,
            ..OidcMetadata::default()
        },
    };
    let state = &app.state;
    let rules =
        keygate::flows::clients::rules_with_keys(&state.cfg.client_rules, &state.keys.current());
    let reg = keygate::flows::clients::register(&state.repos, meta, &rules, 0, None, false)
        .await
        .unwrap();
    (reg.client.client_id, reg.secret.unwrap())
}

/// Signs alice in with `browser` through `client`, consents and redeems the
/// code; returns the ID token.
async fn sign_in(app: &TestApp, browser: &reqwest::Client, client: &(String, String)) -> String {
    sign_in_tokens(app, browser, client).await["id_token"]
        .as_str()
        .expect("an ID token")
        .to_string()
}

/// [`sign_in`], returning the whole token response.
async fn sign_in_tokens(
    app: &TestApp,
    browser: &reqwest::Client,
    client: &(String, String),
) -> serde_json::Value {
    let (verifier, challenge) = pkce_pair();
    let path = format!(
        "/oauth/authorize?{}",
        steps::code_query(&client.0, "openid profile", &challenge)
    );
    assert_eq!(app.login(browser, &path).await.status(), 303);
    let to = steps::consent(browser, &app.addr, &path, "allow").await;
    let code = steps::code_of(&to);
    steps::ok_json(
        steps::redeem(
            &app.http,
            &app.addr,
            Some((&client.0, &client.1)),
            &[],
            &code,
            &verifier,
        )
        .await,
    )
    .await
}

fn payload(jwt: &str) -> serde_json::Value {
    serde_json::from_slice(&B64.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

/// Whether `browser` still has a keygate session: an authorization request
/// shows the consent page (200), or answers at once with a code when the
/// consent is remembered, rather than sending to the login page.
async fn signed_in(app: &TestApp, browser: &reqwest::Client, client_id: &str) -> bool {
    let (_, challenge) = pkce_pair();
    let path = format!(
        "/oauth/authorize?{}",
        steps::code_query(client_id, "openid profile", &challenge)
    );
    let resp = browser.get(app.url(&path)).send().await.unwrap();
    match resp.status().as_u16() {
        200 => true,
        303 if !location(&resp).starts_with('/') => {
            assert!(location(&resp).contains("code="), "{}", location(&resp));
            true
        }
        303 => {
            assert!(
                location(&resp).starts_with("/login?"),
                "{}",
                location(&resp)
            );
            false
        }
        other => panic!("unexpected {other}"),
    }
}

fn logout_query(hint: Option<&str>, client_id: Option<&str>, uri: Option<&str>) -> String {
    let mut q = vec![];
    if let Some(h) = hint {
        q.push(format!("id_token_hint={}", urlencode(h)));
    }
    if let Some(c) = client_id {
        q.push(format!("client_id={}", urlencode(c)));
    }
    if let Some(u) = uri {
        q.push(format!("post_logout_redirect_uri={}", urlencode(u)));
    }
    q.push("state=bye-state".into());
    format!("/oauth/logout?{}", q.join("&"))
}

per_backend!(registration_api_accepts_and_returns_the_oidc_metadata);
/// RFC 7591 / OIDC Registration §2: the fields are stored and returned by
/// the registration and the RFC 7592 read; an `id_token_signed_response_alg`
/// of a published key is accepted.
async fn registration_api_accepts_and_returns_the_oidc_metadata(backend: Backend) {
    let app = spawn_app_with(backend, Alg::RS256, oidc).await;
    let body = serde_json::json!({
        "client_name": "RP",
        "redirect_uris": [REDIRECT],
        "scope": "openid",
        "post_logout_redirect_uris": [BYE, "http://127.0.0.1:4000/bye"],
        "backchannel_logout_uri": "https://rp.example/bc",
        "backchannel_logout_session_required": true,
        "default_max_age": 600,
        "require_auth_time": true,
        "id_token_signed_response_alg": "RS256",
    });
    let created = steps::register(&app.http, &app.addr, IAT, &body).await;
    for k in [
        "post_logout_redirect_uris",
        "backchannel_logout_uri",
        "backchannel_logout_session_required",
        "default_max_age",
        "require_auth_time",
        "id_token_signed_response_alg",
    ] {
        assert_eq!(created[k], body[k], "{k}");
    }
    let id = created["client_id"].as_str().unwrap();
    let read: serde_json::Value = app
        .http
        .get(app.url(&format!("/oauth/register/{id}")))
        .bearer_auth(created["registration_access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        read["post_logout_redirect_uris"],
        body["post_logout_redirect_uris"]
    );
    let stored = app.state.repos.client(id).await.unwrap().unwrap();
    assert_eq!(stored.default_max_age(), Some(600));
    assert!(stored.require_auth_time && stored.backchannel_logout_session_required);
}

per_backend!(bad_oidc_metadata_is_refused_and_nothing_is_stored);
/// Each bad value is `invalid_client_metadata` (an unpublished alg, a
/// fragment or plain-http post-logout URI, a non-https back-channel URI,
/// a `default_max_age` over a year) and no client is stored.
async fn bad_oidc_metadata_is_refused_and_nothing_is_stored(backend: Backend) {
    let app = spawn_app_with(backend, Alg::RS256, oidc).await;
    let before = keygate::flows::clients::list(&app.state.repos, None)
        .await
        .unwrap()
        .len();
    for (field, value) in [
        ("id_token_signed_response_alg", serde_json::json!("ES256")),
        ("id_token_signed_response_alg", serde_json::json!("none")),
        (
            "post_logout_redirect_uris",
            serde_json::json!(["https://rp.example/bye#x"]),
        ),
        (
            "post_logout_redirect_uris",
            serde_json::json!(["http://rp.example/bye"]),
        ),
        (
            "backchannel_logout_uri",
            serde_json::json!("http://rp.example/bc"),
        ),
        (
            "backchannel_logout_uri",
            serde_json::json!("https://rp.example/bc#f"),
        ),
        ("default_max_age", serde_json::json!(31_536_001)),
    ] {
        let mut body = serde_json::json!({"redirect_uris": [REDIRECT], "scope": "openid"});
        body[field] = value.clone();
        let resp = steps::post_registration(&app.http, &app.addr, IAT, &body).await;
        assert_eq!(resp.status(), 400, "{field} {value}");
        let err: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(err["error"], "invalid_client_metadata", "{field} {value}");
        assert!(
            err["error_description"].as_str().unwrap().contains(field),
            "{err}"
        );
    }
    let after = keygate::flows::clients::list(&app.state.repos, None)
        .await
        .unwrap()
        .len();
    assert_eq!(before, after, "nothing stored");
}

/// `id_token_signed_response_alg` picks the key of that alg for the ID
/// token (the access token keeps the active key).
#[tokio::test]
async fn the_id_token_is_signed_with_the_registered_alg() {
    let app = spawn_app_with(Backend::Memory, Alg::RS256, oidc).await;
    keygate::tokens::keys::generate_into(
        &app.state.cfg.keys_dir,
        Alg::ES256,
        SystemClock.now() + 1000,
    )
    .unwrap();
    app.state.keys.reload().unwrap();
    let body = serde_json::json!({
        "redirect_uris": [REDIRECT],
        "scope": "openid profile",
        "id_token_signed_response_alg": "ES256",
    });
    let created = steps::register(&app.http, &app.addr, IAT, &body).await;
    let client = (
        created["client_id"].as_str().unwrap().to_string(),
        created["client_secret"].as_str().unwrap().to_string(),
    );
    let browser = app.browser();
    let id_token = sign_in(&app, &browser, &client).await;
    let header = jsonwebtoken::decode_header(&id_token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(app.get_json("/.well-known/jwks.json").await).unwrap();
    let key =
        jsonwebtoken::DecodingKey::from_jwk(jwks.find(header.kid.as_deref().unwrap()).unwrap())
            .unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_issuer(&[ISSUER]);
    v.set_audience(&[&client.0]);
    jsonwebtoken::decode::<serde_json::Value>(&id_token, &key, &v).unwrap();
}

/// The client pages save the post-logout redirect URIs and the
/// back-channel logout URI; a bad back-channel URI shows the form again
/// with the field's error.
#[tokio::test]
async fn client_pages_save_the_logout_uris() {
    let app = spawn_app_with(Backend::Memory, Alg::RS256, oidc).await;
    let alice = app.browser();
    assert_eq!(app.login(&alice, "/clients").await.status(), 303);
    let form = |(csrf, nonce): (String, String), bc: &'static str| {
        vec![
            ("csrf_token", csrf),
            ("form_nonce", nonce),
            ("client_name", "Shop".to_string()),
            ("redirect_uris", REDIRECT.to_string()),
            ("grant_types", "authorization_code".to_string()),
            ("scope", "openid".to_string()),
            (
                "token_endpoint_auth_method",
                "client_secret_basic".to_string(),
            ),
            (
                "post_logout_redirect_uris",
                format!("{BYE}\nhttp://localhost:4000/bye"),
            ),
            ("backchannel_logout_uri", bc.to_string()),
        ]
    };
    let new = app.page(&alice, "/clients/new").await;
    let csrf = (
        hidden_value(&new, "csrf_token"),
        hidden_value(&new, "form_nonce"),
    );
    let resp = alice
        .post(app.url("/clients"))
        .form(&form(csrf.clone(), "http://rp.example/bc"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("id=\"backchannel_logout_uri-error\""),
        "{html}"
    );
    let resp = alice
        .post(app.url("/clients"))
        .form(&form(csrf, "https://rp.example/bc"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "to the secret page");
    let c = keygate::flows::clients::list(&app.state.repos, None)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.client_name == "Shop")
        .unwrap();
    assert_eq!(
        c.post_logout_redirect_uris,
        [BYE, "http://localhost:4000/bye"]
    );
    assert_eq!(
        c.backchannel_logout_uri.as_deref(),
        Some("https://rp.example/bc")
    );
    let edit = app.page(&alice, &format!("/clients/{}", c.client_id)).await;
    assert!(edit.contains("name=\"post_logout_redirect_uris\""));
    assert!(edit.contains(BYE));
}

/// `keygate client create` takes the logout and ID token flags; an
/// algorithm without a key in `keys.dir` is refused naming the flag.
#[test]
fn cli_client_create_takes_the_oidc_flags() {
    let redis = crate::redis_server::RedisServer::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("keys")).unwrap();
    keygate::tokens::keys::generate_into(&d.join("keys"), Alg::ES256, 1).unwrap();
    let run = |alg: &str| {
        crate::process::command(d)
            .env("KEYGATE_STORE_URL", redis.url())
            .env("KEYGATE_OAUTH_SCOPES", "openid,profile")
            .args([
                "client",
                "create",
                "--name",
                "RP",
                "--grant-type",
                "authorization_code",
                "--redirect-uri",
                REDIRECT,
                "--scope",
                "openid",
                "--post-logout-redirect-uri",
                BYE,
                "--backchannel-logout-uri",
                "https://rp.example/bc",
                "--default-max-age",
                "300",
                "--require-auth-time",
                "--id-token-alg",
                alg,
                "--json",
            ])
            .output()
            .unwrap()
    };
    let out = run("ES256");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["post_logout_redirect_uris"], serde_json::json!([BYE]));
    assert_eq!(v["backchannel_logout_uri"], "https://rp.example/bc");
    assert_eq!(v["default_max_age"], 300);
    assert_eq!(v["require_auth_time"], true);
    assert_eq!(v["id_token_signed_response_alg"], "ES256");
    let out = run("RS256");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--id-token-alg"), "{err}");
}

per_backend!(a_valid_hint_logs_out_and_redirects_with_state);
/// RP-Initiated Logout §2–§3: a valid `id_token_hint` naming the signed-in
/// user and a registered `post_logout_redirect_uri` log out without asking:
/// 303 to the URI with `state`, the session gone (the next authorization
/// request sends to the login page). The ID token carries the session's
/// `sid`, and so does the ID token of a refresh.
async fn a_valid_hint_logs_out_and_redirects_with_state(backend: Backend) {
    let app = spawn_app_with(backend, Alg::RS256, oidc).await;
    let rp = relying_party(&app, None).await;
    let browser = app.browser();
    let tokens = sign_in_tokens(&app, &browser, &rp).await;
    let id_token = tokens["id_token"].as_str().unwrap().to_string();
    let sid = payload(&id_token)["sid"].as_str().unwrap().to_string();
    assert!(sid.len() >= 16);
    let refreshed = steps::ok_json(
        steps::refresh(
            &app.http,
            &app.addr,
            (&rp.0, &rp.1),
            tokens["refresh_token"].as_str().unwrap(),
        )
        .await,
    )
    .await;
    assert_eq!(
        payload(refreshed["id_token"].as_str().unwrap())["sid"],
        sid.as_str(),
        "a refresh keeps the sid"
    );
    assert!(signed_in(&app, &browser, &rp.0).await);
    let resp = browser
        .get(app.url(&logout_query(Some(&id_token), None, Some(BYE))))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), format!("{BYE}?state=bye-state"));
    assert!(!signed_in(&app, &browser, &rp.0).await, "session ended");
    assert!(
        !browser
            .get(app.url("/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains("action=\"/logout\""),
        "signed out on the home page too"
    );
}

per_backend!(an_unregistered_uri_or_bad_hint_is_an_error_page_and_keeps_the_session);
/// An unregistered `post_logout_redirect_uri`, one without a client, a hint
/// signed by another key, a hint naming another issuer, and a `client_id`
/// other than the hint's audience: each an error page (400, no
/// `Location`), and the session stays.
async fn an_unregistered_uri_or_bad_hint_is_an_error_page_and_keeps_the_session(backend: Backend) {
    let app = spawn_app_with(backend, Alg::RS256, oidc).await;
    let rp = relying_party(&app, None).await;
    let browser = app.browser();
    let id_token = sign_in(&app, &browser, &rp).await;
    let claims = payload(&id_token);
    // A hint forged with a key keygate does not publish.
    let other = tempfile::tempdir().unwrap();
    keygate::tokens::keys::generate_into(other.path(), Alg::RS256, 1).unwrap();
    let other_keys = keygate::tokens::keys::KeySet::load_dir(
        other.path(),
        keygate::tokens::keys::Rotation::IMMEDIATE,
    )
    .unwrap();
    let id: keygate::oauth::id_token::IdClaims = serde_json::from_value(claims.clone()).unwrap();
    let forged = keygate::tokens::jwt::sign_id_token(other_keys.signer_at(2), &id).unwrap();
    // Keygate's own key, another issuer.
    let foreign = keygate::oauth::id_token::IdClaims {
        iss: "https://other.example".into(),
        ..id.clone()
    };
    let keys = app.state.keys.current();
    let foreign =
        keygate::tokens::jwt::sign_id_token(keys.signer_at(SystemClock.now()), &foreign).unwrap();
    for query in [
        logout_query(Some(&id_token), None, Some("https://rp.example/elsewhere")),
        logout_query(None, Some(&rp.0), Some("https://evil.example/")),
        logout_query(None, None, Some(BYE)),
        logout_query(Some(&forged), None, Some(BYE)),
        logout_query(Some(&foreign), None, None),
        logout_query(Some(&id_token), Some("web-app"), Some(BYE)),
        logout_query(Some("not.a.jwt"), None, None),
    ] {
        let resp = browser.get(app.url(&query)).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{query}");
        assert!(resp.headers().get("location").is_none(), "{query}");
        let html = resp.text().await.unwrap();
        assert!(html.contains("Invalid logout request"), "{html}");
        assert!(
            signed_in(&app, &browser, &rp.0).await,
            "session kept: {query}"
        );
    }
}

per_backend!(without_a_hint_the_user_confirms_or_cancels);
/// No hint: a confirmation page (`csrf_token`, `decision=logout|cancel`).
/// Cancel goes home and keeps the session; a bad CSRF token is refused;
/// logout ends the session and redirects to the registered URI with
/// `state`. Signed out without a hint: "You are signed out".
async fn without_a_hint_the_user_confirms_or_cancels(backend: Backend) {
    let app = spawn_app_with(backend, Alg::RS256, oidc).await;
    let rp = relying_party(&app, None).await;
    let browser = app.browser();
    sign_in(&app, &browser, &rp).await;
    let query = logout_query(None, Some(&rp.0), Some(BYE));
    let confirm = |browser: reqwest::Client| {
        let url = app.url(&query);
        async move {
            let resp = browser.get(url).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.text().await.unwrap()
        }
    };
    let post = |csrf: String, decision: &'static str, html: String| {
        let browser = browser.clone();
        let url = app.url("/oauth/logout");
        async move {
            let fields: Vec<(&str, String)> = [
                "client_id",
                "post_logout_redirect_uri",
                "state",
                "id_token_hint",
            ]
            .into_iter()
            .map(|n| (n, hidden_value(&html, n)))
            .chain([("csrf_token", csrf), ("decision", decision.to_string())])
            .collect();
            browser.post(url).form(&fields).send().await.unwrap()
        }
    };
    let html = confirm(browser.clone()).await;
    assert!(html.contains("name=\"decision\" value=\"logout\""));
    assert!(html.contains("name=\"decision\" value=\"cancel\""));
    let csrf = hidden_value(&html, "csrf_token");
    let resp = post(csrf.clone(), "cancel", html.clone()).await;
    assert_eq!((resp.status().as_u16(), location(&resp)), (303, "/".into()));
    assert!(
        signed_in(&app, &browser, &rp.0).await,
        "cancel keeps the session"
    );
    let resp = post("forged".into(), "logout", html.clone()).await;
    assert_eq!(resp.status(), 403);
    assert!(signed_in(&app, &browser, &rp.0).await);
    let resp = post(csrf, "logout", html).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), format!("{BYE}?state=bye-state"));
    assert!(
        !signed_in(&app, &browser, &rp.0).await,
        "logout ends the session"
    );
    let resp = browser.get(app.url("/oauth/logout")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("You are signed out"));
}

/// A loopback back-channel logout endpoint: every request's
/// `logout_token` goes to the channel; the first answer waits for
/// `release`, later ones are answered at once. Counts requests.
struct Listener {
    uri: String,
    tokens: tokio::sync::mpsc::UnboundedReceiver<String>,
    release: Option<tokio::sync::oneshot::Sender<()>>,
    requests: Arc<AtomicUsize>,
    answered: tokio::sync::oneshot::Receiver<()>,
}

async fn listener() -> Listener {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}/backchannel", tcp.local_addr().unwrap());
    let (tx, tokens) = tokio::sync::mpsc::unbounded_channel();
    let (release, mut released) = tokio::sync::oneshot::channel::<()>();
    let (answered_tx, answered) = tokio::sync::oneshot::channel();
    let requests = Arc::new(AtomicUsize::new(0));
    let count = requests.clone();
    tokio::spawn(async move {
        let mut answered_tx = Some(answered_tx);
        let mut first = true;
        while let Ok((mut sock, _)) = tcp.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let body = loop {
                let n = sock.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break Some(text[end + 4..end + 4 + len].to_string());
                    }
                }
            };
            let Some(body) = body else { continue };
            let token = form_urlencoded::parse(body.as_bytes())
                .find(|(k, _)| k == "logout_token")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            let _ = tx.send(token);
            if first {
                first = false;
                let _ = (&mut released).await;
            }
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
            let _ = sock.shutdown().await;
            if let Some(a) = answered_tx.take() {
                let _ = a.send(());
            }
        }
    });
    Listener {
        uri,
        tokens,
        release: Some(release),
        requests,
        answered,
    }
}

/// Verifies a logout token as a relying party does (Back-Channel Logout
/// §2.6): key by `kid` from the JWKS, `typ: logout+jwt`, signature, `iss`,
/// `aud` = the client, `iat`/`exp`, the back-channel `events` member, `sid`
/// and `sub`, and no `nonce`.
async fn verify_logout_token(app: &TestApp, token: &str, client_id: &str) -> serde_json::Value {
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(app.get_json("/.well-known/jwks.json").await).unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let key =
        jsonwebtoken::DecodingKey::from_jwk(jwks.find(header.kid.as_deref().unwrap()).unwrap())
            .unwrap();
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_issuer(&[ISSUER]);
    v.set_audience(&[client_id]);
    v.set_required_spec_claims(&["iss", "aud", "iat", "exp", "jti"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(token, &key, &v)
        .expect("the logout token verifies against the JWKS")
        .claims;
    assert_eq!(
        claims["events"],
        serde_json::json!({"http://schemas.openid.net/event/backchannel-logout": {}})
    );
    assert!(claims.get("nonce").is_none(), "no nonce in a logout token");
    claims
}

per_backend!(backchannel_logout_token_reaches_the_rp_without_delaying_the_user);
/// Back-Channel Logout §2.5–§2.7: on logout keygate POSTs a logout token
/// (typ `logout+jwt`, `sid` = the ID token's, `sub`, events, no nonce) to
/// the client's loopback `backchannel_logout_uri`. The RP holds its answer
/// until the user's redirect has arrived: the redirect does not wait, and
/// the one delivery then succeeds (no retry, no failure counted).
async fn backchannel_logout_token_reaches_the_rp_without_delaying_the_user(backend: Backend) {
    let app = spawn_app_with(backend, Alg::RS256, oidc).await;
    let mut rp_end = listener().await;
    let rp = relying_party(&app, Some(rp_end.uri.clone())).await;
    let browser = app.browser();
    let id_token = sign_in(&app, &browser, &rp).await;
    let id_claims = payload(&id_token);
    let resp = browser
        .get(app.url(&logout_query(Some(&id_token), None, Some(BYE))))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "the user is redirected first");
    assert_eq!(params_of(&location(&resp), false)["state"], "bye-state");
    rp_end.release.take().unwrap().send(()).unwrap();
    let token = rp_end.tokens.recv().await.unwrap();
    (&mut rp_end.answered).await.unwrap();
    let claims = verify_logout_token(&app, &token, &rp.0).await;
    assert_eq!(claims["sid"], id_claims["sid"]);
    assert_eq!(claims["sub"], id_claims["sub"]);
    assert_eq!(rp_end.requests.load(Ordering::SeqCst), 1, "one try");
    assert_eq!(app.state.metrics.backchannel_logout_failures.get(), 0);
}

/// The site's sign-out button (`POST /logout`) is the same logout: the
/// client that was issued a code in the session gets a logout token.
#[tokio::test]
async fn the_sign_out_button_also_sends_the_logout_token() {
    let app = spawn_app_with(Backend::Memory, Alg::RS256, oidc).await;
    let mut rp_end = listener().await;
    let rp = relying_party(&app, Some(rp_end.uri.clone())).await;
    let browser = app.browser();
    let id_token = sign_in(&app, &browser, &rp).await;
    rp_end.release.take().unwrap().send(()).unwrap();
    let resp = steps::logout(&browser, &app.addr).await;
    assert_eq!(resp.status(), 303);
    let token = rp_end.tokens.recv().await.unwrap();
    let claims = verify_logout_token(&app, &token, &rp.0).await;
    assert_eq!(claims["sid"], payload(&id_token)["sid"]);
    assert!(!signed_in(&app, &browser, &rp.0).await);
}

/// RP-Initiated Logout §2: the RP may send the request by `POST` (form
/// serialisation, no CSRF token: the hint is what authorises it).
#[tokio::test]
async fn an_rp_may_post_the_logout_request() {
    let app = spawn_app_with(Backend::Memory, Alg::RS256, oidc).await;
    let rp = relying_party(&app, None).await;
    let browser = app.browser();
    let id_token = sign_in(&app, &browser, &rp).await;
    let resp = browser
        .post(app.url("/oauth/logout"))
        .form(&[
            ("id_token_hint", id_token.as_str()),
            ("post_logout_redirect_uri", BYE),
            ("state", "s-1"),
            ("ui_locales", "fr"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), format!("{BYE}?state=s-1"));
    assert!(!signed_in(&app, &browser, &rp.0).await);
}
