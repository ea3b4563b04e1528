//! Issue 7 item 7: two keygate processes sharing one Redis and one key set
//! behave as one server.

use keygate::tokens::keys::{generate_into, Alg};

use crate::helpers::{hidden_value, pkce_pair, REDIRECT};
use crate::process::Keygate;
use crate::redis_server::RedisServer;
use crate::steps;

const ISSUER: &str = "http://127.0.0.1:8080";
const INITIAL: &str = "two-instances-initial-token";

fn start(dir: &std::path::Path, redis: &RedisServer) -> Keygate {
    let url = redis.url();
    Keygate::start(
        dir,
        &[
            ("KEYGATE_SERVER_ISSUER", ISSUER),
            ("KEYGATE_STORE_URL", url.as_str()),
            ("KEYGATE_UI_SIGNUP", "true"),
            ("KEYGATE_OAUTH_SCOPES", "profile,email"),
            ("KEYGATE_REGISTRATION_INITIAL_ACCESS_TOKENS", INITIAL),
        ],
    )
}

#[tokio::test]
async fn two_processes_on_one_redis_act_as_one_server() {
    let redis = RedisServer::new();
    let dir = tempfile::tempdir().unwrap();
    generate_into(&dir.path().join("keys"), Alg::ES256, 1).unwrap();
    let a = start(dir.path(), &redis);
    let b = start(dir.path(), &redis);
    let http = steps::api_client();
    // One browser: cookies for 127.0.0.1 go to both ports, as behind a balancer.
    let browser = steps::browser();

    // JWKS and metadata are identical.
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/oauth-authorization-server",
    ] {
        assert_eq!(
            steps::page(&http, &a.base, path).await,
            steps::page(&http, &b.base, path).await,
            "{path}"
        );
    }

    // A client registered at A authenticates at B.
    let reg = steps::register(
        &http,
        &a.base,
        INITIAL,
        &serde_json::json!({
            "client_name": "two instances",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "profile email",
        }),
    )
    .await;
    let id = reg["client_id"].as_str().unwrap().to_string();
    let secret = reg["client_secret"].as_str().unwrap().to_string();
    let client = (id.as_str(), secret.as_str());

    // A session made at A is honoured at B; a form from A posts to B (CSRF key shared).
    let resp = steps::sign_up(&browser, &a.base, "carol", "carol-password-123").await;
    assert_eq!(resp.status(), 303);
    assert!(
        steps::page(&browser, &b.base, "/").await.contains("carol"),
        "signed in at B"
    );

    let (verifier, challenge) = pkce_pair();
    let path = format!(
        "/oauth/authorize?{}",
        steps::code_query(&id, "profile", &challenge)
    );
    // The consent page came from B; the decision goes to A.
    let csrf = steps::consent_page(&browser, &b.base, &path).await;
    let code = steps::code_of(&steps::decide(&browser, &a.base, &path, &csrf, "allow").await);

    // The code issued by A is redeemed at B, once.
    let redeem = |at: &Keygate| {
        let (http, base, code, verifier) = (&http, at.base.clone(), &code, &verifier);
        async move { steps::redeem(http, &base, Some(client), &[], code, verifier).await }
    };
    let tokens = steps::ok_json(redeem(&b).await).await;
    assert_eq!(redeem(&a).await.status(), 400, "used at B, replayed at A");

    // The replay at A revoked what B issued: the access token is dead at B
    // and its refresh family too.
    let access = tokens["access_token"].as_str().unwrap();
    let resp = steps::me(&http, &b.base, access).await;
    assert_eq!(resp.status(), 401);
    let refresh = |at: &Keygate, token: String| {
        let (http, base) = (&http, at.base.clone());
        async move { steps::refresh(http, &base, client, &token).await }
    };
    let r0 = tokens["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(refresh(&b, r0).await.status(), 400);

    // A fresh grant: rotate at A, reuse the old token at B, the successor is dead at A.
    let (verifier, challenge) = pkce_pair();
    let path = format!(
        "/oauth/authorize?{}",
        steps::code_query(&id, "profile", &challenge)
    );
    let code = steps::code_of(&steps::decide(&browser, &b.base, &path, &csrf, "allow").await);
    let tokens =
        steps::ok_json(steps::redeem(&http, &a.base, Some(client), &[], &code, &verifier).await)
            .await;
    let r1 = tokens["refresh_token"].as_str().unwrap().to_string();
    let resp = refresh(&a, r1.clone()).await;
    assert_eq!(resp.status(), 200);
    let r2 = resp.json::<serde_json::Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    // A retry at B within the grace window gets the same successor from A.
    let resp = refresh(&b, r1.clone()).await;
    assert_eq!(resp.status(), 200);
    let again = resp.json::<serde_json::Value>().await.unwrap();
    assert_eq!(again["refresh_token"], r2.as_str(), "same pair at B");
    // Once the successor is used (at A), reusing the old token (at B) is
    // reuse: the family dies on both.
    let resp = refresh(&a, r2).await;
    assert_eq!(resp.status(), 200);
    let r3 = resp.json::<serde_json::Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(refresh(&b, r1).await.status(), 400, "reuse at B");
    assert_eq!(
        refresh(&a, r3).await.status(),
        400,
        "the family revoked at B is dead at A"
    );

    // Logging out at B ends the session at A.
    let resp = steps::logout(&browser, &b.base).await;
    assert_eq!(resp.status(), 303);
    assert!(
        !steps::page(&browser, &a.base, "/").await.contains("carol"),
        "signed out at A"
    );
}

/// Issue 12 item 5: the failed-login limit lives in the store, so guesses
/// spread over two instances are limited in total, not per instance.
#[tokio::test]
async fn login_failures_spread_over_two_instances_are_limited_in_total() {
    let redis = RedisServer::new();
    let dir = tempfile::tempdir().unwrap();
    generate_into(&dir.path().join("keys"), Alg::ES256, 1).unwrap();
    let url = redis.url();
    let env = [
        ("KEYGATE_SERVER_ISSUER", ISSUER),
        ("KEYGATE_STORE_URL", url.as_str()),
        ("KEYGATE_UI_SIGNUP", "true"),
        ("KEYGATE_LIMITS_LOGIN_PER_MINUTE", "1"),
        ("KEYGATE_LIMITS_LOGIN_BURST", "3"),
    ];
    let a = Keygate::start(dir.path(), &env);
    let b = Keygate::start(dir.path(), &env);
    let browser = steps::browser();
    let resp = steps::sign_up(&browser, &a.base, "dave", "dave-password-123").await;
    assert_eq!(resp.status(), 303);

    let attempt = |at: &Keygate, password: &'static str| {
        let base = at.base.clone();
        async move {
            // A fresh browser each time: only the limiter links the attempts.
            let browser = steps::browser();
            let csrf = hidden_value(&steps::page(&browser, &base, "/login").await, "csrf_token");
            browser
                .post(format!("{base}/login"))
                .form(&[
                    ("username", "dave"),
                    ("password", password),
                    ("csrf_token", &csrf),
                    ("return_to", "/"),
                ])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // Three wrong guesses, alternating instances: each instance saw fewer
    // than its burst, but together they spent it.
    for at in [&a, &b, &a] {
        assert_eq!(attempt(at, "wrong-password").await, 401);
    }
    assert_eq!(attempt(&b, "wrong-password").await, 429, "limited at B");
    assert_eq!(attempt(&a, "dave-password-123").await, 429, "and at A");
}
