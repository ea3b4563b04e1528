//! Issue 16 item 6: what an operator sees of a running keygate (a real
//! process, its log lines on stderr and its `/metrics`): failed logins with
//! the username and client IP, rate-limit refusals with the limit and IP,
//! refused authorization requests with the values sent, implicit-grant
//! issuance, and the build, login and rate-limit metrics.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use crate::helpers::{hidden_value, params_of, PASSWORD, REDIRECT, USER};
use crate::process::{command, Keygate};
use crate::steps;

/// `keygate hash-password` reading the password from a pipe.
fn hash(dir: &std::path::Path, password: &str) -> String {
    let mut child = command(dir)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{password}").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn logs_and_metrics_show_logins_limits_refusals_and_implicit_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let phc = hash(d, PASSWORD);
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    let config = d.join("k.toml");
    std::fs::write(
        &config,
        format!(
            "[oauth]\nprofile = \"legacy\"\n[limits]\nlogin_burst = 2\n\
             [[users]]\nusername = \"{USER}\"\npassword_hash = \"{phc}\"\n\
             [[clients]]\nclient_id = \"legacy-spa\"\nredirect_uris = [\"{REDIRECT}\"]\ngrant_types = [\"implicit\"]\nscope = \"profile\"\ntoken_endpoint_auth_method = \"none\"\n"
        ),
    )
    .unwrap();
    let server = Keygate::serve(command(d).arg("--config").arg(&config));
    let base = server.base.clone();

    // An implicit grant: a token in the fragment, logged like any other.
    let to = steps::authorize(
        &base,
        &format!(
            "response_type=token&client_id=legacy-spa&redirect_uri={}&scope=profile&state=s1",
            crate::helpers::urlencode(REDIRECT)
        ),
        "allow",
    )
    .await;
    assert!(params_of(&to, true).contains_key("access_token"), "{to}");

    // Failed logins under one name until the failed-login limit refuses one.
    let browser = steps::browser();
    let forged = "mallory\nINFO forged line";
    let wrong = "not-the-password-42";
    let mut statuses = vec![];
    for _ in 0..10 {
        let html = steps::page(&browser, &base, "/login").await;
        let csrf = hidden_value(&html, "csrf_token");
        let resp = browser
            .post(format!("{base}/login"))
            .form(&[
                ("username", forged),
                ("password", wrong),
                ("csrf_token", &csrf),
            ])
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
        if resp.status() == 429 {
            break;
        }
    }
    assert_eq!(statuses.first(), Some(&401), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");

    // A request from an unknown client: an error page, logged with its values.
    let resp = browser
        .get(format!(
            "{base}/oauth/authorize?response_type=code&client_id=no-such-app&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    let metrics = browser
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |series: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
    };
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        value(&format!("keygate_build_info{{version=\"{version}\"}}")),
        1
    );
    assert_eq!(value("keygate_logins_total{outcome=\"success\"}"), 1);
    let failures = value("keygate_logins_total{outcome=\"failure\"}");
    assert_eq!(failures as usize, statuses.len() - 1, "{statuses:?}");
    assert_eq!(value("keygate_logins_total{outcome=\"limited\"}"), 1);
    assert_eq!(value("keygate_rate_limited_total{limit=\"login\"}"), 1);
    assert_eq!(
        value("keygate_tokens_issued_total{grant_type=\"implicit\"}"),
        1
    );
    for route in ["/login", "/oauth/authorize"] {
        let prefix = format!("keygate_http_requests_total{{route=\"{route}\",");
        assert!(
            metrics.lines().any(|l| l.starts_with(&prefix)),
            "{route} has its own label:\n{metrics}"
        );
    }

    // The last lines may still be on their way.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = server.log.lock().unwrap().clone();
    let line = |words: &[&str]| {
        log.iter()
            .find(|l| words.iter().all(|w| l.contains(w)))
            .unwrap_or_else(|| panic!("no line with {words:?} in:\n{}", log.join("\n")))
            .clone()
    };
    line(&[
        "login_failed",
        "username=mallory\\nINFO forged line",
        "client_ip=127.0.0.1",
    ]);
    line(&["rate_limited", "login", "client_ip=127.0.0.1"]);
    line(&[
        "authorize_refused",
        "client_id=no-such-app",
        "redirect_uri=http://127.0.0.1:9/cb",
        "response_type=code",
    ]);
    line(&["token_issued", "implicit", "legacy-spa"]);
    assert!(
        !log.iter().any(|l| l.starts_with("INFO forged")),
        "a username cannot forge a log line"
    );
    assert!(
        !log.iter()
            .any(|l| l.contains(wrong) || l.contains(PASSWORD)),
        "no password in the log"
    );
}
