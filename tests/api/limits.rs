//! Abuse limits (issue 7, reworked by issue 12 item 5): limits that protect
//! without letting anyone lock others out, the off switch, form-field limits,
//! and slow-client (slowloris) timeouts.
//!
//! The token-endpoint limits are in process and never touch the store, so
//! their tests run on the memory store only. The login, password-grant and
//! sign-up limits are shared through the store, so theirs run on both
//! stores, as do the form-field limits ("no store call").
//!
//! Several client addresses: every 127.0.0.0/8 address is loopback on Linux,
//! so a client bound to 127.0.0.N reaches the server on 127.0.0.1 and is
//! seen as peer 127.0.0.N ([`from`], [`browser_from`]).

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use keygate::config::Settings;
use keygate::tokens::keys::Alg;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{
    assert_oauth_error, hidden_value, per_backend, pkce_pair, spawn_app, spawn_app_with,
    store_calls, Backend, TestApp, PASSWORD, SECRET, USER,
};
use crate::steps;

/// Limits on, with small budgets everywhere, refilling far slower than any
/// test runs (one unit a minute or an hour), except the per-second ones.
fn tight(s: &mut Settings) {
    s.limits.enabled = true;
    s.limits.auth_failures_per_minute = 1;
    s.limits.auth_failures_burst = 3;
    s.limits.ip_auth_failures_per_minute = 1;
    s.limits.ip_auth_failures_burst = 5;
    s.limits.public_per_second = 1;
    s.limits.public_burst = 3;
    s.limits.login_per_minute = 1;
    s.limits.login_burst = 2;
    s.limits.signup_per_hour = 1;
    s.limits.signup_burst = 2;
}

/// An OAuth client (no cookies, no redirects) connecting from 127.0.0.`n`.
fn from(n: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
        .build()
        .unwrap()
}

/// A browser (cookies, no redirects) connecting from 127.0.0.`n`.
fn browser_from(n: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
        .build()
        .unwrap()
}

/// `path` (token, revoke, introspect) with Basic credentials, from `http`.
async fn post_as(
    app: &TestApp,
    http: &reqwest::Client,
    path: &str,
    client: (&str, &str),
    form: &[(&str, &str)],
) -> reqwest::Response {
    steps::post_form(http, &app.url(path), Some(client), form).await
}

async fn client_credentials(
    app: &TestApp,
    http: &reqwest::Client,
    client: (&str, &str),
) -> reqwest::Response {
    post_as(
        app,
        http,
        "/oauth/token",
        client,
        &[("grant_type", "client_credentials")],
    )
    .await
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> u64 {
    headers
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After is whole seconds")
}

/// Asserts a token-endpoint-style 429 with a `Retry-After` of 1 to `max` s.
async fn assert_429(resp: reqwest::Response, max: u64) {
    let headers = assert_oauth_error(resp, 429, "temporarily_unavailable").await;
    let secs = retry_after(&headers);
    assert!((1..=max).contains(&secs), "Retry-After {secs}");
}

#[tokio::test]
async fn a_public_client_flood_from_one_address_does_not_lock_out_another() {
    let app = spawn_app_with(Backend::Memory, Alg::RS256, tight).await;
    // The real app's user, at 127.0.0.1: a code, then refreshes.
    let (verifier, challenge) = pkce_pair();
    let redirect = app
        .authorize(&steps::code_query("spa", "profile", &challenge), "allow")
        .await;
    let code = steps::code_of(&redirect);
    let spa = [("client_id", "spa")];
    let tokens =
        steps::ok_json(steps::redeem(&app.http, &app.addr, None, &spa, &code, &verifier).await)
            .await;
    let mut refresh_token = tokens["refresh_token"].as_str().unwrap().to_string();

    // Anyone may name the public client: a flood from 127.0.0.2 is refused
    // once its own budget (3, then 1/s) is spent.
    let attacker = from(2);
    let mut refused = None;
    for _ in 0..20 {
        let resp = steps::post_form(
            &attacker,
            &app.url("/oauth/token"),
            None,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "spa"),
                ("refresh_token", "not-a-real-token"),
            ],
        )
        .await;
        if resp.status() == 429 {
            refused = Some(resp);
            break;
        }
        assert_eq!(resp.status(), 400);
    }
    assert_429(refused.expect("the flood is limited"), 1).await;

    // The real app's refreshes from its own address are unaffected.
    for _ in 0..2 {
        let resp = steps::post_form(
            &app.http,
            &app.url("/oauth/token"),
            None,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "spa"),
                ("refresh_token", &refresh_token),
            ],
        )
        .await;
        let body = steps::ok_json(resp).await;
        refresh_token = body["refresh_token"].as_str().unwrap().to_string();
    }
}

#[tokio::test]
async fn a_busy_confidential_client_is_not_throttled_by_default() {
    let app = spawn_app_with(Backend::Memory, Alg::RS256, |s| {
        s.limits.enabled = true;
    })
    .await;
    for i in 0..200 {
        let resp = client_credentials(&app, &app.http, ("basic-client", SECRET)).await;
        assert_eq!(resp.status(), 200, "request {i}");
    }
}

#[tokio::test]
async fn the_operator_ceiling_limits_a_confidential_client_from_every_address() {
    let app = spawn_app_with(Backend::Memory, Alg::RS256, |s| {
        tight(s);
        s.limits.client_per_second = 1;
        s.limits.client_burst = 3;
    })
    .await;
    let mut ok = 0;
    let refused = loop {
        let resp = client_credentials(&app, &app.http, ("basic-client", SECRET)).await;
        if resp.status() == 429 {
            break resp;
        }
        assert_eq!(resp.status(), 200);
        ok += 1;
        // 1/s refill: more than burst + 2 successes would need seconds.
        assert!(ok <= 5, "no 429 after {ok} requests");
    };
    assert!(ok >= 3, "the burst of 3 is allowed (got {ok})");
    assert_429(refused, 2).await;
    // One ceiling per client, whatever the address.
    let resp = client_credentials(&app, &from(2), ("basic-client", SECRET)).await;
    assert_429(resp, 2).await;
    // Another client has its own.
    let (id, secret) = app.stored_client.clone();
    let resp = client_credentials(&app, &app.http, (&id, &secret)).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn failed_client_authentication_is_limited_per_address_and_per_client_and_address() {
    let app = spawn_app_with(Backend::Memory, Alg::RS256, tight).await;
    let (stored_id, stored_secret) = app.stored_client.clone();
    let stored = (stored_id.as_str(), stored_secret.as_str());
    let attacker = from(2);
    let wrong = ("basic-client", "wrong-secret-000");
    // Three failures for basic-client from 127.0.0.2, at each endpoint that
    // authenticates clients: they share one budget.
    let token = [("grant_type", "client_credentials")];
    let action = [("token", "some-token")];
    for (path, form) in [
        ("/oauth/token", &token[..]),
        ("/oauth/revoke", &action[..]),
        ("/oauth/introspect", &action[..]),
    ] {
        let resp = post_as(&app, &attacker, path, wrong, form).await;
        assert_eq!(resp.status(), 401, "{path}");
    }
    // Now basic-client from 127.0.0.2 is refused before its secret is
    // compared: even the right secret gets 429, at every endpoint.
    let right = ("basic-client", SECRET);
    assert_429(client_credentials(&app, &attacker, right).await, 60).await;
    let resp = post_as(&app, &attacker, "/oauth/revoke", right, &action).await;
    assert_429(resp, 60).await;
    // The right secret from another address works, and that address has its
    // own failure budget.
    assert_eq!(
        client_credentials(&app, &app.http, right).await.status(),
        200
    );
    assert_eq!(
        client_credentials(&app, &app.http, wrong).await.status(),
        401
    );
    assert_eq!(
        client_credentials(&app, &app.http, right).await.status(),
        200
    );

    // Other clients from 127.0.0.2 still get answers, until the address
    // has spent its own budget (5 failures, any client).
    let resp = client_credentials(&app, &attacker, ("post-client", "nope")).await;
    assert_eq!(resp.status(), 401);
    let resp = client_credentials(&app, &attacker, ("no-such-client", "nope")).await;
    assert_eq!(resp.status(), 401);
    let before = store_calls(&app.state);
    let resp = client_credentials(&app, &attacker, stored).await;
    assert_429(resp, 60).await;
    assert_eq!(
        store_calls(&app.state),
        before,
        "refused before the client lookup"
    );
    // Everyone else is unaffected.
    assert_eq!(
        client_credentials(&app, &from(3), stored).await.status(),
        200
    );
    assert_eq!(
        client_credentials(&app, &from(3), ("cc-profile", SECRET))
            .await
            .status(),
        200
    );
}

/// Posts the login form for `username` with a fresh browser from 127.0.0.`n`
/// (so only the limiter, not a session, links the attempts).
async fn post_login(app: &TestApp, n: u8, username: &str, password: &str) -> reqwest::Response {
    let browser = browser_from(n);
    let page = app.page(&browser, "/login").await;
    let csrf = hidden_value(&page, "csrf_token");
    browser
        .post(app.url("/login"))
        .form(&[
            ("username", username),
            ("password", password),
            ("csrf_token", &csrf),
            ("return_to", "/"),
        ])
        .send()
        .await
        .unwrap()
}

/// Asserts the login form's 429 page: HTML, `Retry-After`, no session.
async fn assert_429_page(resp: reqwest::Response, max: u64) {
    assert_eq!(resp.status(), 429);
    assert!(resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .all(|c| !c.to_str().unwrap().starts_with("kg_session=")));
    let secs = retry_after(resp.headers());
    assert!((1..=max).contains(&secs), "{secs}");
    assert!(resp
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = resp.text().await.unwrap();
    assert!(html.contains("Too many"), "{html}");
}

per_backend!(login_answers_429_per_ip_and_username_before_the_password_check);
async fn login_answers_429_per_ip_and_username_before_the_password_check(backend: Backend) {
    let app = spawn_app_with(backend, Alg::RS256, tight).await;
    for _ in 0..2 {
        assert_eq!(
            post_login(&app, 1, USER, "wrong-password").await.status(),
            401
        );
    }
    // The third attempt is refused even with the right password, and whatever
    // the case of the name: the limit applies before argon2 is consulted.
    for name in [USER, "ALICE", " alice "] {
        assert_429_page(post_login(&app, 1, name, PASSWORD).await, 60).await;
    }
    // Another username from the same address, or the same one from another
    // address, has its own budget.
    assert_eq!(
        post_login(&app, 1, "bob", "wrong-password").await.status(),
        401
    );
    assert_eq!(post_login(&app, 2, USER, PASSWORD).await.status(), 303);
}

per_backend!(only_failed_logins_count);
async fn only_failed_logins_count(backend: Backend) {
    let app = spawn_app_with(backend, Alg::RS256, tight).await;
    // Ten sign-ins in a row with the right password (burst: 2).
    for i in 0..10 {
        assert_eq!(
            post_login(&app, 1, USER, PASSWORD).await.status(),
            303,
            "#{i}"
        );
    }
    // Wrong passwords are what the budget is for.
    for _ in 0..2 {
        assert_eq!(
            post_login(&app, 1, USER, "wrong-password").await.status(),
            401
        );
    }
    assert_429_page(post_login(&app, 1, USER, "wrong-password").await, 60).await;
}

/// `grant_type=password` for `username` as `legacy-app`, from 127.0.0.`n`.
async fn password_grant(app: &TestApp, n: u8, username: &str, password: &str) -> reqwest::Response {
    steps::post_form(
        &from(n),
        &app.url("/oauth/token"),
        None,
        &[
            ("grant_type", "password"),
            ("client_id", "legacy-app"),
            ("client_secret", SECRET),
            ("username", username),
            ("password", password),
            ("scope", "profile"),
        ],
    )
    .await
}

per_backend!(the_password_grant_shares_the_login_forms_guess_limit);
async fn the_password_grant_shares_the_login_forms_guess_limit(backend: Backend) {
    let app = spawn_app_with(backend, Alg::RS256, |s| {
        tight(s);
        s.oauth.profile = "legacy".into();
    })
    .await;
    // Successful grants spend nothing (burst: 2).
    for _ in 0..5 {
        assert_eq!(password_grant(&app, 1, USER, PASSWORD).await.status(), 200);
    }
    // Guesses through the form count against the grant ...
    for _ in 0..2 {
        assert_eq!(
            post_login(&app, 1, USER, "wrong-password").await.status(),
            401
        );
    }
    assert_429(password_grant(&app, 1, "Alice", PASSWORD).await, 60).await;
    // ... and guesses through the grant against the form.
    for _ in 0..2 {
        let resp = password_grant(&app, 2, USER, "wrong-password").await;
        assert_oauth_error(resp, 400, "invalid_grant").await;
    }
    assert_429(password_grant(&app, 2, USER, "wrong-password").await, 60).await;
    assert_429_page(post_login(&app, 2, USER, PASSWORD).await, 60).await;
    // Other addresses are unaffected.
    assert_eq!(password_grant(&app, 3, USER, PASSWORD).await.status(), 200);
}

per_backend!(sign_up_is_limited_per_address);
async fn sign_up_is_limited_per_address(backend: Backend) {
    let app = spawn_app_with(backend, Alg::RS256, tight).await;
    let pw = "a-long-password";
    for name in ["ann", "ben"] {
        let resp = steps::sign_up(&browser_from(1), &app.addr, name, pw).await;
        assert_eq!(resp.status(), 303, "{name}");
    }
    // Refused input is free; the third acceptable sign-up is not.
    let resp = steps::sign_up(&browser_from(1), &app.addr, "cat", "short").await;
    assert_eq!(resp.status(), 400);
    let resp = steps::sign_up(&browser_from(1), &app.addr, "cat", pw).await;
    assert_429_page(resp, 3600).await;
    assert!(app.state.repos.user_by_name("cat").await.unwrap().is_none());
    // Another address has its own budget.
    let resp = steps::sign_up(&browser_from(2), &app.addr, "cat", pw).await;
    assert_eq!(resp.status(), 303);
}

#[tokio::test]
async fn the_off_switch_disables_every_limit() {
    let app = spawn_app_with(Backend::Memory, Alg::RS256, |s| {
        tight(s);
        s.limits.client_per_second = 1;
        s.limits.client_burst = 1;
        s.limits.enabled = false;
    })
    .await;
    for _ in 0..8 {
        let wrong = client_credentials(&app, &app.http, ("basic-client", "nope")).await;
        assert_eq!(wrong.status(), 401);
    }
    for _ in 0..8 {
        let right = client_credentials(&app, &app.http, ("basic-client", SECRET)).await;
        assert_eq!(right.status(), 200);
    }
    for _ in 0..3 {
        assert_eq!(
            post_login(&app, 1, USER, "wrong-password").await.status(),
            401
        );
    }
    assert_eq!(post_login(&app, 1, USER, PASSWORD).await.status(), 303);
    for name in ["ann", "ben", "cat"] {
        let resp = steps::sign_up(&app.browser(), &app.addr, name, "a-long-password").await;
        assert_eq!(resp.status(), 303);
    }
}

per_backend!(oversized_forms_are_refused_before_the_store);
async fn oversized_forms_are_refused_before_the_store(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.stored_client.clone();
    let pads: Vec<(String, String)> = (0..64).map(|i| (format!("p{i}"), "x".into())).collect();
    let long = "v".repeat(4097);
    for path in ["/oauth/token", "/oauth/revoke", "/oauth/introspect"] {
        let first = if path == "/oauth/token" {
            ("grant_type", "client_credentials")
        } else {
            ("token", "some-token")
        };
        let too_many: Vec<(&str, &str)> = std::iter::once(first)
            .chain(pads.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .collect();
        assert_eq!(too_many.len(), 65);
        let too_long = [first, ("scope", long.as_str())];
        let long_name_key = "n".repeat(4097);
        let long_name = [first, (long_name_key.as_str(), "1")];
        for form in [&too_many[..], &too_long[..], &long_name[..]] {
            let before = store_calls(&app.state);
            let resp = app.post_token_to(path, Some((&id, &secret)), form).await;
            assert_oauth_error(resp, 400, "invalid_request").await;
            assert_eq!(store_calls(&app.state), before, "{path} on {backend:?}");
        }
    }
    // At the limits the form is fine: 64 pairs, a 4 KiB value.
    let at_limit: Vec<(&str, &str)> = std::iter::once(("grant_type", "client_credentials"))
        .chain(pads.iter().take(63).map(|(k, v)| (k.as_str(), v.as_str())))
        .collect();
    let resp = app.post_token(Some((&id, &secret)), &at_limit).await;
    assert_eq!(resp.status(), 200, "{backend:?}");
    let value = "v".repeat(4096);
    let resp = app
        .post_token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials"), ("pad", &value)],
        )
        .await;
    assert_eq!(resp.status(), 200, "{backend:?}");
}

/// Reads from `stream` until the server closes it or `deadline` passes;
/// returns what was read and whether it was closed.
async fn read_until_closed(
    stream: &mut tokio::net::TcpStream,
    deadline: Instant,
) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into(), false),
        }
    }
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    let app = spawn_app_with(Backend::Memory, Alg::RS256, |s| {
        s.server.header_read_timeout_secs = 1;
        s.server.body_read_timeout_secs = 1;
    })
    .await;
    let addr = app.addr.trim_start_matches("http://").to_string();

    // Slowloris: the request head trickles in a byte at a time, never ending.
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let start = Instant::now();
    stream
        .write_all(b"POST /oauth/token HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let trickle = async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if stream.write_all(b"X").await.is_err() {
                break;
            }
        }
    };
    // The trickle stops once the server has closed (a write fails); the
    // bound only keeps a broken server from hanging the test.
    let closed = tokio::time::timeout(Duration::from_secs(30), trickle).await;
    assert!(closed.is_ok(), "a slowloris connection stayed open");
    // Never before the timeout (slowness can only make this longer).
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");

    // A connection that sends nothing at all is closed as well.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (_, closed) = read_until_closed(&mut idle, Instant::now() + Duration::from_secs(5)).await;
    assert!(closed, "an idle connection stayed open");

    // A body that never completes: 408, then the connection is closed.
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(
            b"POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type",
        )
        .await
        .unwrap();
    let (resp, closed) =
        read_until_closed(&mut stream, Instant::now() + Duration::from_secs(5)).await;
    assert!(resp.starts_with("HTTP/1.1 408"), "{resp}");
    assert!(closed, "the connection stayed open after 408");

    // Well-behaved clients are unaffected.
    assert_eq!(
        client_credentials(&app, &app.http, ("basic-client", SECRET))
            .await
            .status(),
        200
    );
}
