//! Issue 7 item 7: two keygate processes sharing one Redis and one key set
//! behave as one server.

use keygate::tokens::keys::{generate_into, Alg};

use crate::helpers::{hidden_value, location, params_of, pkce_pair, urlencode};
use crate::process::Keygate;
use crate::redis_server::RedisServer;

const ISSUER: &str = "http://127.0.0.1:8080";
const REDIRECT: &str = "http://127.0.0.1:3000/callback";
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

async fn text(client: &reqwest::Client, url: String) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn two_processes_on_one_redis_act_as_one_server() {
    let redis = RedisServer::new();
    let dir = tempfile::tempdir().unwrap();
    generate_into(&dir.path().join("keys"), Alg::ES256, 1).unwrap();
    let a = start(dir.path(), &redis);
    let b = start(dir.path(), &redis);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // One browser: cookies for 127.0.0.1 go to both ports, as behind a balancer.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();

    // JWKS and metadata are identical.
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/oauth-authorization-server",
    ] {
        assert_eq!(
            text(&http, a.url(path)).await,
            text(&http, b.url(path)).await,
            "{path}"
        );
    }

    // A client registered at A authenticates at B.
    let reg: serde_json::Value = http
        .post(a.url("/oauth/register"))
        .bearer_auth(INITIAL)
        .json(&serde_json::json!({
            "client_name": "two instances",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "profile email",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = reg["client_id"].as_str().unwrap().to_string();
    let secret = reg["client_secret"].as_str().unwrap().to_string();

    // A session made at A is honoured at B; a form from A posts to B (CSRF key shared).
    let page = text(&browser, a.url("/signup")).await;
    let csrf = hidden_value(&page, "csrf_token");
    let resp = browser
        .post(a.url("/signup"))
        .form(&[
            ("username", "carol"),
            ("password", "carol-password-123"),
            ("csrf_token", csrf.as_str()),
            ("return_to", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert!(
        text(&browser, b.url("/")).await.contains("carol"),
        "signed in at B"
    );

    let (verifier, challenge) = pkce_pair();
    let path = format!(
        "/oauth/authorize?response_type=code&client_id={id}&redirect_uri={}&scope=profile&state=s1&code_challenge={challenge}&code_challenge_method=S256",
        urlencode(REDIRECT)
    );
    let consent = text(&browser, b.url(&path)).await;
    let csrf = hidden_value(&consent, "csrf_token");
    // The consent page came from B; the decision goes to A.
    let resp = browser
        .post(a.url(&path))
        .form(&[("csrf_token", csrf.as_str()), ("decision", "allow")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let code = params_of(&location(&resp), false)["code"].clone();

    // The code issued by A is redeemed at B, once.
    let redeem = |at: &Keygate| {
        http.post(at.url("/oauth/token"))
            .basic_auth(&id, Some(&secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier.as_str()),
            ])
            .send()
    };
    let resp = redeem(&b).await.unwrap();
    assert_eq!(resp.status(), 200);
    let tokens: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        redeem(&a).await.unwrap().status(),
        400,
        "used at B, replayed at A"
    );

    // The replay at A revoked what B issued: the access token is dead at B
    // and its refresh family too.
    let access = tokens["access_token"].as_str().unwrap();
    let resp = http
        .get(b.url("/api/me"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let refresh = |at: &Keygate, token: String| {
        http.post(at.url("/oauth/token"))
            .basic_auth(&id, Some(&secret))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", token.as_str()),
            ])
            .send()
    };
    let r0 = tokens["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(refresh(&b, r0).await.unwrap().status(), 400);

    // A fresh grant: rotate at A, reuse the old token at B, the successor is dead at A.
    let (verifier, challenge) = pkce_pair();
    let path = format!(
        "/oauth/authorize?response_type=code&client_id={id}&redirect_uri={}&scope=profile&state=s2&code_challenge={challenge}&code_challenge_method=S256",
        urlencode(REDIRECT)
    );
    let resp = browser
        .post(b.url(&path))
        .form(&[("csrf_token", csrf.as_str()), ("decision", "allow")])
        .send()
        .await
        .unwrap();
    let code = params_of(&location(&resp), false)["code"].clone();
    let tokens: serde_json::Value = http
        .post(a.url("/oauth/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r1 = tokens["refresh_token"].as_str().unwrap().to_string();
    let resp = refresh(&a, r1.clone()).await.unwrap();
    assert_eq!(resp.status(), 200);
    let r2 = resp.json::<serde_json::Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    // A retry at B within the grace window gets the same successor from A.
    let resp = refresh(&b, r1.clone()).await.unwrap();
    assert_eq!(resp.status(), 200);
    let again = resp.json::<serde_json::Value>().await.unwrap();
    assert_eq!(again["refresh_token"], r2.as_str(), "same pair at B");
    // Once the successor is used (at A), reusing the old token (at B) is
    // reuse: the family dies on both.
    let resp = refresh(&a, r2).await.unwrap();
    assert_eq!(resp.status(), 200);
    let r3 = resp.json::<serde_json::Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(refresh(&b, r1).await.unwrap().status(), 400, "reuse at B");
    assert_eq!(
        refresh(&a, r3).await.unwrap().status(),
        400,
        "the family revoked at B is dead at A"
    );

    // Logging out at B ends the session at A.
    let home = text(&browser, b.url("/")).await;
    let csrf = hidden_value(&home, "csrf_token");
    let resp = browser
        .post(b.url("/logout"))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert!(
        !text(&browser, a.url("/")).await.contains("carol"),
        "signed out at A"
    );
}
