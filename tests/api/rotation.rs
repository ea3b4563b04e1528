//! Key rotation without downtime (tokens::keys): a new key is published at
//! once and signs after `keys.activation_delay_secs`; a retired key stays in
//! the JWKS until every token it signed has expired. In-process with a
//! `TestClock`, and through the binary (`serve` + SIGHUP, `keys list|prune`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keygate::clock::{Clock, SystemClock, TestClock};
use keygate::tokens::keys::{generate_into, prune_dir, Alg};

use crate::helpers::{spawn_app_clocked, verify_like_a_gateway, Backend, TestApp, SECRET};
use crate::process::{command, Keygate};
use crate::steps;

async fn token(app: &TestApp) -> String {
    let resp = app
        .post_token(
            Some(("basic-client", SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let jwks = app.get_json("/.well-known/jwks.json").await;
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_new_key_is_published_at_once_signs_after_the_delay_and_old_tokens_keep_verifying() {
    // The gateway checks `exp` and `nbf` against the real clock: with the
    // app's clock 700 s behind, tokens issued now (valid 900 s) and after the
    // 600 s delay are both within their lifetime in real time.
    let clock = TestClock::new(SystemClock.now() - 700);
    let app = spawn_app_clocked(
        Backend::Memory,
        Alg::RS256,
        |s| {
            s.keys.reload_secs = 1; // the periodic reload picks the new file up
        },
        Arc::new(clock.clone()),
    )
    .await;
    let before = token(&app).await;
    let old_kid = kid(&before);
    assert_eq!(jwks_kids(&app).await, [old_kid.as_str()]);

    let dir = app.state.cfg.keys_dir.clone();
    let new_key = generate_into(&dir, Alg::ES256, clock.now()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while jwks_kids(&app).await.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the reloader never published the new key"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        jwks_kids(&app).await,
        [new_key.kid.clone(), old_kid.clone()]
    );

    // Published, but the old key keeps signing until the delay has passed.
    assert_eq!(kid(&token(&app).await), old_kid);
    clock.advance(599);
    let last_old = token(&app).await;
    assert_eq!(kid(&last_old), old_kid);
    clock.advance(1);
    let fresh = token(&app).await;
    assert_eq!(kid(&fresh), new_key.kid, "signs once the delay has passed");
    assert_eq!(
        jsonwebtoken::decode_header(&fresh).unwrap().alg,
        jsonwebtoken::Algorithm::ES256
    );

    // A gateway verifies old and new tokens with the one JWKS document.
    verify_like_a_gateway(&app, &fresh).await;
    verify_like_a_gateway(&app, &before).await;
    verify_like_a_gateway(&app, &last_old).await;
    assert_eq!(
        jwks_kids(&app).await.len(),
        2,
        "the retired key is still published"
    );

    // The retired key may go once its last token (900 s) and a JWKS lifetime
    // (300 s) have passed since the new key activated.
    let rotation = app.state.cfg.rotation;
    assert_eq!(rotation.retention, 900 + 300);
    clock.advance(1_199);
    assert!(prune_dir(&dir, rotation, clock.now(), false)
        .unwrap()
        .is_empty());
    clock.advance(1);
    let pruned = prune_dir(&dir, rotation, clock.now(), false).unwrap();
    assert_eq!(pruned.len(), 1);
    assert_eq!(pruned[0].kid, old_kid);
    app.state.keys.reload().unwrap(); // may find the periodic reload was first
    assert_eq!(jwks_kids(&app).await, [new_key.kid.as_str()]);
}

fn run(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn list(dir: &Path) -> Vec<serde_json::Value> {
    let text = run(command(dir).args(["keys", "list", "--json"]));
    serde_json::from_str::<serde_json::Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn states(list: &[serde_json::Value]) -> Vec<(&str, &str)> {
    list.iter()
        .map(|k| (k["kid"].as_str().unwrap(), k["state"].as_str().unwrap()))
        .collect()
}

#[test]
fn keys_list_and_prune_follow_the_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let now = SystemClock.now();
    // Default schedule: activation 600 s after creation, retention 900 + 300 s.
    let a = generate_into(&keys, Alg::ES256, now - 100_000).unwrap(); // retired at now - 4 400
    let b = generate_into(&keys, Alg::EdDSA, now - 5_000).unwrap(); // retired at now - 400
    let c = generate_into(&keys, Alg::ES256, now - 1_000).unwrap(); // signs since now - 400
    let d = generate_into(&keys, Alg::ES256, now - 10).unwrap(); // signs from now + 590
    let listed = list(dir.path());
    assert_eq!(
        states(&listed),
        [
            (d.kid.as_str(), "pending"),
            (c.kid.as_str(), "active"),
            (b.kid.as_str(), "retired"),
            (a.kid.as_str(), "prunable"),
        ]
    );
    assert_eq!(listed[0]["activates_at"], now - 10 + 600);
    assert_eq!(listed[1]["retired_at"], now - 10 + 600);
    assert_eq!(listed[2]["prunable_at"], now - 400 + 1_200);
    assert_eq!(listed[3]["created"], now - 100_000);
    let text = run(command(dir.path()).args(["keys", "list"]));
    let lines: Vec<&str> = text.lines().skip(1).collect();
    assert!(text.starts_with("KID "), "a header: {text}");
    assert_eq!(lines.len(), 4, "{text}");
    for (line, state) in lines
        .iter()
        .zip(["pending", "active", "retired", "prunable"])
    {
        assert!(line.contains(&format!("  {state}  ")), "{text}");
    }
    assert!(lines[0].contains("  signs from "), "{text}");
    assert!(lines[1].contains("  signs until "), "{text}");
    assert!(lines[2].contains("  prunable from "), "{text}");

    // --dry-run names the prunable key and deletes nothing.
    let dry = run(command(dir.path()).args(["keys", "prune", "--dry-run", "--json"]));
    let dry: serde_json::Value = serde_json::from_str(&dry).unwrap();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["pruned"].as_array().unwrap().len(), 1);
    assert_eq!(dry["pruned"][0]["kid"], a.kid.as_str());
    assert!(a.path.exists());

    // Only the key whose tokens have all expired goes; b's may still be live.
    let text = run(command(dir.path()).args(["keys", "prune"]));
    assert!(
        text.contains(&format!("removed ES256 key {}", a.kid)),
        "{text}"
    );
    assert!(!a.path.exists());
    assert!(b.path.exists() && c.path.exists() && d.path.exists());
    let text = run(command(dir.path()).args(["keys", "prune"]));
    assert!(text.starts_with("no prunable key"), "{text}");

    // With 60 s tokens, b's last token (signed by now - 400) expired by
    // now - 400 + 60 + 300: b goes, the signer and the pending key never do.
    let text = run(command(dir.path())
        .env("KEYGATE_TOKENS_ACCESS_TTL", "60")
        .args(["keys", "prune", "--json"]));
    let pruned: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(pruned["dry_run"], false);
    assert_eq!(pruned["pruned"].as_array().unwrap().len(), 1);
    assert_eq!(pruned["pruned"][0]["kid"], b.kid.as_str());
    assert!(!b.path.exists());
    let text = run(command(dir.path())
        .env("KEYGATE_TOKENS_ACCESS_TTL", "1")
        .args(["keys", "prune"]));
    assert!(text.starts_with("no prunable key"), "{text}");
    assert_eq!(
        states(&list(dir.path())),
        [(d.kid.as_str(), "pending"), (c.kid.as_str(), "active")]
    );
}

async fn issue_at(http: &reqwest::Client, base: &str) -> String {
    let resp = steps::post_form(
        http,
        &format!("{base}/oauth/token"),
        Some(("svc", SECRET)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    kid(body["access_token"].as_str().unwrap())
}

async fn published_at(http: &reqwest::Client, base: &str) -> usize {
    let jwks: serde_json::Value =
        serde_json::from_str(&steps::page(http, base, "/.well-known/jwks.json").await).unwrap();
    jwks["keys"].as_array().unwrap().len()
}

#[test]
fn serve_signs_with_its_first_key_at_once_and_sighup_publishes_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keygate.toml");
    std::fs::write(
        &config,
        format!(
            "[keys]\nreload_secs = 0\n\n[oauth]\nscopes = [\"api:read\"]\n\n[[clients]]\nclient_id = \"svc\"\nclient_secret = \"{SECRET}\"\ngrant_types = [\"client_credentials\"]\nscope = \"api:read\"\n"
        ),
    )
    .unwrap();
    let server = Keygate::serve(command(dir.path()).arg("--config").arg(&config));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::new();
    let issue = || rt.block_on(issue_at(&http, &server.base));
    let published = || rt.block_on(published_at(&http, &server.base));
    // A fresh install: the key created at start signs at once.
    let first = list(dir.path());
    assert_eq!(
        states(&first),
        [(first[0]["kid"].as_str().unwrap(), "active")]
    );
    assert_eq!(issue(), first[0]["kid"].as_str().unwrap());

    let text = run(command(dir.path())
        .arg("--config")
        .arg(&config)
        .args(["keys", "generate", "--alg", "ES256"]));
    assert!(text.contains("signs from "), "{text}");
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(15);
    while published() < 2 {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not publish the new key"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        issue(),
        first[0]["kid"].as_str().unwrap(),
        "the new key waits for keys.activation_delay_secs"
    );
    let listed = list(dir.path());
    assert_eq!(listed[0]["state"], "pending");
    assert_eq!(listed[1]["state"], "active");
}

#[test]
fn activation_delay_shorter_than_the_jwks_cache_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .env("KEYGATE_KEYS_ACTIVATION_DELAY_SECS", "60")
        .args(["keys", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("keys.activation_delay_secs") && err.contains("keys.jwks_max_age"),
        "{err}"
    );
}
