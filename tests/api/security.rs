//! Issue 7 items 5 and 6: no secret reaches a log line, audit events are
//! logged, and `kid` values are harmless.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use keygate::tokens::jwt;
use keygate::tokens::keys::{generate_into, Alg, KeySet};

use crate::helpers::{hidden_value, pkce_pair, REDIRECT};
use crate::process::Keygate;
use crate::redis_server::RedisServer;
use crate::steps;

/// keygate on `store_url` at log `level`, with sign-up and registration open.
fn start(dir: &std::path::Path, level: &str, initial_token: &str, store_url: &str) -> Keygate {
    Keygate::start(
        dir,
        &[
            ("KEYGATE_LOG_LEVEL", level),
            ("KEYGATE_STORE_URL", store_url),
            ("KEYGATE_UI_SIGNUP", "true"),
            ("KEYGATE_OAUTH_SCOPES", "profile,email,api:read"),
            ("KEYGATE_REGISTRATION_INITIAL_ACCESS_TOKENS", initial_token),
        ],
    )
}

/// Runs every flow that handles a secret and returns the secrets it saw.
async fn every_secret_flow(s: &Keygate, initial_token: &str) -> Vec<(&'static str, String)> {
    let http = steps::api_client();
    let browser = steps::browser();
    let base = s.base.as_str();
    let mut secrets: Vec<(&'static str, String)> =
        vec![("initial access token", initial_token.into())];

    // RFC 7591 registration: client secret and registration access token.
    let reg = steps::register(
        &http,
        base,
        initial_token,
        &serde_json::json!({
            "client_name": "log test",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
            "scope": "profile email api:read",
        }),
    )
    .await;
    let id = reg["client_id"].as_str().unwrap().to_string();
    let secret = reg["client_secret"].as_str().unwrap().to_string();
    let client = (id.as_str(), secret.as_str());
    let rat = reg["registration_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    secrets.push(("client secret", secret.clone()));
    secrets.push(("registration access token", rat.clone()));
    let status = http
        .get(s.url(&format!("/oauth/register/{id}")))
        .bearer_auth(&rat)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);

    // A wrong secret (logged as an authentication failure, never itself).
    let wrong_secret = format!("wrong-{}", keygate::ids::random_token(16));
    secrets.push(("wrong client secret", wrong_secret.clone()));
    let token_url = s.url("/oauth/token");
    let cc = [("grant_type", "client_credentials")];
    let resp = steps::post_form(&http, &token_url, Some((&id, &wrong_secret)), &cc).await;
    assert_eq!(resp.status(), 401);
    let cc: serde_json::Value = steps::post_form(
        &http,
        &token_url,
        Some(client),
        &[("grant_type", "client_credentials"), ("scope", "api:read")],
    )
    .await
    .json()
    .await
    .unwrap();
    secrets.push((
        "client_credentials access token",
        cc["access_token"].as_str().unwrap().into(),
    ));

    // Sign-up (a password), a failed login (another password), the session cookie.
    let password = format!("pw-{}", keygate::ids::random_token(12));
    let wrong_password = format!("bad-{}", keygate::ids::random_token(12));
    secrets.push(("password", password.clone()));
    secrets.push(("wrong password", wrong_password.clone()));
    let resp = steps::sign_up(&browser, base, "logtest", &password).await;
    assert_eq!(resp.status(), 303, "sign-up");
    for c in resp.cookies() {
        secrets.push(("cookie", c.value().to_string()));
    }
    let other = steps::browser();
    let page = steps::page(&other, base, "/login").await;
    let csrf = hidden_value(&page, "csrf_token");
    let resp = other
        .post(s.url("/login"))
        .form(&[
            ("username", "logtest"),
            ("password", wrong_password.as_str()),
            ("csrf_token", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "wrong password");

    // Authorization code + PKCE, redemption, replay, refresh, reuse.
    let (verifier, challenge) = pkce_pair();
    secrets.push(("code verifier", verifier.clone()));
    let path = format!(
        "/oauth/authorize?{}",
        steps::code_query(&id, "profile email", &challenge)
    );
    let csrf = steps::consent_page(&browser, base, &path).await;
    secrets.push(("csrf token", csrf.clone()));
    let code = steps::code_of(&steps::decide(&browser, base, &path, &csrf, "allow").await);
    secrets.push(("authorization code", code.clone()));
    let (h, c, v) = (&http, code.as_str(), verifier.as_str());
    let redeem = move || steps::redeem(h, base, Some(client), &[], c, v);
    let tokens = steps::ok_json(redeem().await).await;
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    secrets.push(("user access token", access.clone()));
    secrets.push(("refresh token", refresh.clone()));
    assert_eq!(redeem().await.status(), 400, "code replay");

    let resp = steps::me(&http, base, &access).await;
    assert_eq!(
        resp.status(),
        401,
        "the code replay revoked the access token"
    );
    // The replay revoked the family as well: use a fresh code for refresh.
    let (verifier2, challenge2) = pkce_pair();
    let path2 = path.replace(&challenge, &challenge2);
    let code2 = steps::code_of(&steps::decide(&browser, base, &path2, &csrf, "allow").await);
    secrets.push(("second authorization code", code2.clone()));
    let t2 =
        steps::ok_json(steps::redeem(&http, base, Some(client), &[], &code2, &verifier2).await)
            .await;
    let r1 = t2["refresh_token"].as_str().unwrap().to_string();
    secrets.push(("second refresh token", r1.clone()));
    secrets.push((
        "second access token",
        t2["access_token"].as_str().unwrap().into(),
    ));
    let t3 = steps::ok_json(steps::refresh(&http, base, client, &r1).await).await;
    let r2 = t3["refresh_token"].as_str().unwrap().to_string();
    let a3 = t3["access_token"].as_str().unwrap().to_string();
    secrets.push(("rotated refresh token", r2.clone()));
    secrets.push(("refreshed access token", a3.clone()));
    // Introspection and revocation of the live tokens.
    let resp = steps::post_form(
        &http,
        &s.url("/oauth/introspect"),
        Some(client),
        &[("token", a3.as_str())],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let resp = steps::post_form(
        &http,
        &s.url("/oauth/revoke"),
        Some(client),
        &[("token", r2.as_str())],
    )
    .await;
    assert_eq!(resp.status(), 200);
    // Reuse of a rotated token (family revocation is logged).
    let _ = steps::refresh(&http, base, client, &r1).await;
    secrets
}

/// Issue 7 item 5: no secret, password, code or token in any log line, at
/// the default level and at debug; the audit events are there.
#[tokio::test]
async fn no_secret_reaches_the_log_and_audit_events_do() {
    for level in ["info", "debug"] {
        // Redis, so that everything stored can be read back afterwards.
        let redis = RedisServer::new();
        let initial_token = format!("iat-{}", keygate::ids::random_token(16));
        let dir = tempfile::tempdir().unwrap();
        let server = start(dir.path(), level, &initial_token, &redis.url());
        let secrets = every_secret_flow(&server, &initial_token).await;
        assert_stored_only_as_hashes(&redis, &secrets).await;
        // Give the last lines time to arrive, then stop.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let log = server.log.lock().unwrap().clone();
        drop(server);
        assert!(log.len() > 10, "{level}: the log was captured: {log:?}");
        for (what, secret) in &secrets {
            assert!(secret.len() >= 16, "{what} is a real secret: {secret}");
            // Whole values, and for JWTs the signature part on its own.
            let parts: Vec<&str> = std::iter::once(secret.as_str())
                .chain(secret.rsplit('.').next().filter(|_| secret.contains('.')))
                .collect();
            for part in parts {
                if let Some(line) = log.iter().find(|l| l.contains(part)) {
                    panic!("{level}: the {what} is in the log: {line}");
                }
            }
        }
        for event in [
            "login_failed",
            "client_auth_failed",
            "token_issued",
            "code_replay",
            "refresh_family_revoked",
            "client_changed",
            "user_created",
        ] {
            assert!(
                log.iter().any(|l| l.contains(event)),
                "{level}: audit event {event} missing from the log:\n{}",
                log.join("\n")
            );
        }
    }
}

/// Issue 7 item 5: every key and value in the store, read back raw, holds
/// none of the secrets (client secrets, codes, refresh and registration
/// tokens, session cookies are stored under or as hashes; passwords as argon2id).
async fn assert_stored_only_as_hashes(redis: &RedisServer, secrets: &[(&'static str, String)]) {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(keys.len() > 5, "the flow stored something: {keys:?}");
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(kind, "string", "{key}");
        let value: Vec<u8> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let value = String::from_utf8_lossy(&value);
        for (what, secret) in secrets {
            // Access tokens are never stored either (only their jti, to deny them).
            assert!(
                !key.contains(secret.as_str()),
                "the {what} is in the store key {key}"
            );
            assert!(
                !value.contains(secret.as_str()),
                "the {what} is stored in {key}: {value}"
            );
        }
    }
}

/// Issue 7 item 6: a `kid` is only ever a key into the loaded set; unknown,
/// hostile or mismatched values are refused without touching anything else.
#[test]
fn kid_injection_is_harmless() {
    let dir = tempfile::tempdir().unwrap();
    generate_into(dir.path(), Alg::RS256, 1).unwrap();
    let es = generate_into(dir.path(), Alg::ES256, 2).unwrap();
    let set = KeySet::load_dir(dir.path(), keygate::tokens::keys::Rotation::IMMEDIATE).unwrap();
    let body = B64.encode(
        serde_json::json!({"iss": "i", "aud": "a", "sub": "s", "exp": i64::MAX / 2, "iat": 0, "nbf": 0,
            "jti": "j", "client_id": "c", "scope": ""})
        .to_string(),
    );
    let hostile = [
        "../../../../etc/passwd".to_string(),
        "keys/../../secret.pem".to_string(),
        "' OR '1'='1".to_string(),
        "\u{0000}".to_string(),
        "k".repeat(100_000),
        String::new(),
    ];
    for kid in &hostile {
        let header = B64
            .encode(serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": kid}).to_string());
        let token = format!("{header}.{body}.{}", B64.encode([0u8; 256]));
        assert!(
            jwt::verify(&set, &token, "i", "a").is_err(),
            "kid {kid:.40}"
        );
    }
    // A real kid with another key's algorithm: the key's own alg is pinned.
    let header =
        B64.encode(serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": es.kid}).to_string());
    let token = format!("{header}.{body}.{}", B64.encode([0u8; 256]));
    assert!(jwt::verify(&set, &token, "i", "a").is_err());
    // No kid at all.
    let header = B64.encode(serde_json::json!({"alg": "ES256", "typ": "at+jwt"}).to_string());
    let token = format!("{header}.{body}.{}", B64.encode([0u8; 64]));
    assert!(jwt::verify(&set, &token, "i", "a").is_err());
}

/// docs/security.md maps every checklist line to tests: each test it names
/// in its "Test" column must exist, so the document cannot go stale.
#[test]
fn security_checklist_names_only_existing_tests() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/security.md")).unwrap();
    let mut named = 0;
    for line in doc
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| Requirement"))
    {
        let test_cell = line.trim_end_matches('|').rsplit('|').next().unwrap();
        assert!(
            test_cell.contains('`'),
            "a checklist line without a test: {line}"
        );
        for reference in test_cell.split('`').skip(1).step_by(2) {
            let (file, name) = match reference.rsplit_once("::") {
                Some((path, name)) if path.starts_with("src/") => (root.join(path), name),
                Some((module, name)) => (root.join(format!("tests/api/{module}.rs")), name),
                None => continue, // a config key or a value, not a test
            };
            let source = std::fs::read_to_string(&file)
                .unwrap_or_else(|_| panic!("{reference}: no file {}", file.display()));
            assert!(
                source.contains(&format!("fn {name}(")),
                "docs/security.md names {reference}, which does not exist"
            );
            named += 1;
        }
    }
    assert!(named > 40, "only {named} tests named");
}
