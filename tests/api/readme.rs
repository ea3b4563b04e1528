//! The README's command paths, run as written against the dev config on
//! Redis, the way `make run-redis` serves it: a `keygate serve` process on a
//! free loopback port with `KEYGATE_STORE_URL` pointing at a test
//! `redis-server`. The README's URLs (`http://127.0.0.1:8080`,
//! `redis://127.0.0.1:6379`) are replaced with the test's, and its
//! `cargo run --release --quiet -- ARGS` runs the already-built `keygate`
//! binary with ARGS (a shell function named `cargo`), so no build happens here.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::process::{command, Keygate};
use crate::redis_server::RedisServer;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn require(tools: &[&str]) {
    for tool in tools {
        assert!(
            Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {tool}"))
                .stdout(Stdio::null())
                .status()
                .unwrap()
                .success(),
            "{tool} is missing: apt-get install -y {tool} (make test-deps)"
        );
    }
}

/// keygate serving `config/keygate.toml` on `redis`, keys in `dir/keys`.
fn serve_dev_config_on(redis: &RedisServer, dir: &Path) -> Keygate {
    Keygate::serve(
        command(dir)
            .env("KEYGATE_STORE_URL", redis.url())
            .arg("--config")
            .arg(root().join("config/keygate.toml")),
    )
}

/// The fenced block right after the README line that names `test`.
fn readme_block(test: &str) -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let marker = readme
        .lines()
        .position(|l| l.starts_with("<!--") && l.contains(test))
        .unwrap_or_else(|| panic!("no README comment names {test}"));
    let mut lines = readme.lines().skip(marker + 1);
    assert_eq!(lines.next(), Some("```sh"), "a sh block follows the marker");
    let block: Vec<&str> = lines.take_while(|l| *l != "```").collect();
    assert!(!block.is_empty());
    block.join("\n")
}

#[test]
fn redis_quickstart_creates_a_client_that_gets_a_token() {
    require(&["curl", "jq"]);
    let redis = RedisServer::new();
    let dir = tempfile::tempdir().unwrap();
    let server = serve_dev_config_on(&redis, dir.path());
    let block = readme_block("readme::redis_quickstart_creates_a_client_that_gets_a_token");
    assert!(
        block.contains("KEYGATE_STORE_URL=redis://127.0.0.1:6379"),
        "the CLI uses the store of make run-redis:\n{block}"
    );
    let script = format!(
        "set -euo pipefail\n\
         cargo() {{ while [ $# -gt 0 ] && [ \"$1\" != -- ]; do shift; done; shift; \"$TEST_KEYGATE_BIN\" \"$@\"; }}\n\
         {}\n",
        block
            .replace("redis://127.0.0.1:6379", &redis.url())
            .replace("http://127.0.0.1:8080", &server.base)
    );
    let mut bash = Command::new("bash");
    for (k, _) in std::env::vars() {
        if k.starts_with("KEYGATE_") || k == "RUST_LOG" {
            bash.env_remove(k);
        }
    }
    let out = bash
        .current_dir(root())
        .env("TEST_KEYGATE_BIN", env!("CARGO_BIN_EXE_keygate"))
        .env("KEYGATE_KEYS_DIR", dir.path().join("keys"))
        .arg("-c")
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the README block failed:\n{stdout}\n{stderr}"
    );
    // The token of the new client introspects as active, and `client list`
    // (the same Redis) shows the client.
    assert!(stdout.contains("\"active\":true"), "{stdout}\n{stderr}");
    assert!(stdout.contains("billing"), "{stdout}");
    drop(server);
}

#[test]
fn curl_walkthrough_runs_every_grant_on_redis() {
    require(&["curl", "openssl", "python3"]);
    let redis = RedisServer::new();
    let dir = tempfile::tempdir().unwrap();
    let server = serve_dev_config_on(&redis, dir.path());
    let out = Command::new("bash")
        .arg(root().join("examples/curl_walkthrough.sh"))
        .arg(&server.base)
        .output()
        .unwrap();
    drop(server);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "walkthrough failed on Redis:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("done: every grant worked"));
    assert!(stdout.contains("\"username\":\"demo\""), "{stdout}");
    assert!(
        stdout.contains("#access_token="),
        "implicit fragment: {stdout}"
    );
}
