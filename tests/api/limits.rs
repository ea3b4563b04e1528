//! Abuse limits (issue 7): token endpoint rate limit per authenticated client,
//! login rate limit per IP + username before argon2, the off switch, form-field
//! limits, and slow-client (slowloris) timeouts.
//!
//! Rate limits are in-process and never touch the store, so they run on the
//! memory store only; the form-field limits claim "no store call", so they run
//! on both stores.

use std::time::{Duration, Instant};

use keygate::config::Settings;
use keygate::tokens::keys::Alg;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{
    assert_oauth_error, hidden_value, per_backend, spawn_app, spawn_app_with, store_calls, Backend,
    TestApp, PASSWORD, SECRET, USER,
};

/// Limits on, with small budgets: 3 token requests then 1/s per client; 2
/// logins then 1/min per IP + username.
fn tight(s: &mut Settings) {
    s.limits.enabled = true;
    s.limits.token_per_second = 1;
    s.limits.token_burst = 3;
    s.limits.login_per_minute = 1;
    s.limits.login_burst = 2;
}

async fn client_credentials(app: &TestApp, client: &str, secret: &str) -> reqwest::Response {
    app.post_token(
        Some((client, secret)),
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

#[tokio::test]
async fn token_endpoint_answers_429_per_client_after_its_burst() {
    let app = spawn_app_with(Backend::Memory, Alg::RS256, tight).await;
    // Wrong credentials do not spend the client's budget: the limit counts
    // authenticated requests only (README "Rate limits and slow clients").
    for _ in 0..5 {
        let resp = client_credentials(&app, "basic-client", "wrong-secret-000").await;
        assert_eq!(resp.status(), 401);
    }
    let mut ok = 0;
    let refused = loop {
        let resp = client_credentials(&app, "basic-client", SECRET).await;
        if resp.status() == 429 {
            break resp;
        }
        assert_eq!(resp.status(), 200);
        ok += 1;
        // 1/s refill: more than burst + 2 successes would need seconds.
        assert!(ok <= 5, "no 429 after {ok} requests");
    };
    assert!(ok >= 3, "the burst of 3 is allowed (got {ok})");
    let headers = assert_oauth_error(refused, 429, "temporarily_unavailable").await;
    assert!((1..=2).contains(&retry_after(&headers)));

    // Another client is unaffected.
    let resp = app
        .post_token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "post-client"),
                ("client_secret", SECRET),
            ],
        )
        .await;
    assert_eq!(resp.status(), 200);
    let (id, secret) = app.stored_client.clone();
    assert_eq!(client_credentials(&app, &id, &secret).await.status(), 200);
}

/// Posts the login form for `username` with a fresh browser (so only the
/// limiter, not a session, links the attempts).
async fn post_login(app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    let browser = app.browser();
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

#[tokio::test]
async fn login_answers_429_per_ip_and_username_before_the_password_check() {
    let app = spawn_app_with(Backend::Memory, Alg::RS256, tight).await;
    for _ in 0..2 {
        assert_eq!(post_login(&app, USER, "wrong-password").await.status(), 401);
    }
    // The third attempt is refused even with the right password, and whatever
    // the case of the name: the limit applies before argon2 is consulted.
    for name in [USER, "ALICE"] {
        let start = Instant::now();
        let resp = post_login(&app, name, PASSWORD).await;
        assert_eq!(resp.status(), 429);
        assert!(
            !resp.headers().contains_key("set-cookie") || {
                // the CSRF cookie may be refreshed; never a session
                resp.headers()
                    .get_all("set-cookie")
                    .iter()
                    .all(|c| !c.to_str().unwrap().starts_with("kg_session="))
            }
        );
        let secs = retry_after(resp.headers());
        assert!((1..=60).contains(&secs), "{secs}");
        assert!(resp
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let html = resp.text().await.unwrap();
        assert!(html.contains("Too many"), "{html}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }
    // Another username from the same address has its own budget.
    assert_eq!(
        post_login(&app, "bob", "wrong-password").await.status(),
        401
    );
}

#[tokio::test]
async fn the_off_switch_disables_both_limits() {
    let app = spawn_app_with(Backend::Memory, Alg::RS256, |s| {
        tight(s);
        s.limits.enabled = false;
    })
    .await;
    for _ in 0..8 {
        assert_eq!(
            client_credentials(&app, "basic-client", SECRET)
                .await
                .status(),
            200
        );
    }
    for _ in 0..3 {
        assert_eq!(post_login(&app, USER, "wrong-password").await.status(), 401);
    }
    assert_eq!(post_login(&app, USER, PASSWORD).await.status(), 303);
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
    // The trickle stops once the server has closed (a write fails) or 6 s pass.
    let _ = tokio::time::timeout(Duration::from_secs(6), trickle).await;
    let elapsed = start.elapsed();
    assert!(
        elapsed < Duration::from_secs(5),
        "a slowloris connection stayed open {elapsed:?}"
    );
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
        client_credentials(&app, "basic-client", SECRET)
            .await
            .status(),
        200
    );
}
