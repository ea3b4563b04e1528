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

/// `make run-redis` with `cargo` replaced by a script that runs the built
/// binary, keygate on a free port (`KEYGATE_SERVER_LISTEN`, `SERVE_PORT`)
/// and Redis on another (`REDIS_PORT`): Redis listens on loopback only with
/// `noeviction`, keygate serves from it (a client the CLI creates there gets
/// a token), and Ctrl-C (SIGINT to the process group, as a terminal sends
/// it) stops make, keygate and Redis.
#[test]
fn make_run_redis_serves_from_a_loopback_redis_and_ctrl_c_stops_both() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt;
    use std::time::{Duration, Instant};

    require(&["make", "redis-server"]);
    use crate::ports::free_port;

    let (kg_port, redis_port) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let shim = dir.path().join("cargo");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/bash\n[ \"$1\" = build ] && exit 0\n\
             while [ $# -gt 0 ] && [ \"$1\" != -- ]; do shift; done; shift\n\
             exec '{}' \"$@\"\n",
            env!("CARGO_BIN_EXE_keygate")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut make = Command::new("make");
    for (k, _) in std::env::vars() {
        if k.starts_with("KEYGATE_") || k == "RUST_LOG" || k.starts_with("MAKE") {
            make.env_remove(k);
        }
    }
    let mut child = make
        .current_dir(root())
        .args(["--no-print-directory", "run-redis"])
        .arg(format!("CARGO={}", shim.display()))
        .arg(format!("SERVE_PORT={kg_port}"))
        .arg(format!("REDIS_PORT={redis_port}"))
        .env("KEYGATE_SERVER_LISTEN", format!("127.0.0.1:{kg_port}"))
        .env("KEYGATE_KEYS_DIR", dir.path().join("keys"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = child.id();
    // Stops the whole group if an assertion fails first.
    struct Group(u32);
    impl Drop for Group {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{}", self.0)])
                .stderr(Stdio::null())
                .status();
        }
    }
    let group = Group(pgid);
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = vec![];
    while !seen
        .iter()
        .any(|l: &String| l.contains("Ctrl-C stops both"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!(
                "make run-redis did not start:\n{}\n{}",
                seen.join("\n"),
                std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default()
            ),
        }
    }
    let store = format!("redis://127.0.0.1:{redis_port}");
    assert!(
        seen.iter().any(|l| l.contains(&store)),
        "{}",
        seen.join("\n")
    );

    // Redis: loopback only, noeviction, no persistence.
    let config = |name: &str| -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &redis_port.to_string(), "config", "get", name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(config("bind"), "127.0.0.1");
    assert_eq!(config("maxmemory-policy"), "noeviction");
    assert_eq!(config("save"), "");
    assert_eq!(config("appendonly"), "no");

    // keygate serves from that Redis: a client the CLI creates there works.
    let out = command(dir.path())
        .current_dir(root())
        .env("KEYGATE_STORE_URL", &store)
        .args([
            "--config",
            "config/keygate.toml",
            "client",
            "create",
            "--name",
            "m",
        ])
        .args([
            "--grant-type",
            "client_credentials",
            "--scope",
            "api:read",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-u"])
        .arg(format!(
            "{}:{}",
            created["client_id"].as_str().unwrap(),
            created["client_secret"].as_str().unwrap()
        ))
        .args(["-d", "grant_type=client_credentials"])
        .arg(format!("http://127.0.0.1:{kg_port}/oauth/token"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&token.stdout), "200");

    // Ctrl-C: make exits, and neither port answers any more.
    Command::new("kill")
        .args(["-INT", "--", &format!("-{pgid}")])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "make run-redis kept running after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let answers = |port: u16| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    let deadline = Instant::now() + Duration::from_secs(10);
    while answers(kg_port) || answers(redis_port) {
        assert!(
            Instant::now() < deadline,
            "still listening after Ctrl-C: keygate {}, redis {}",
            answers(kg_port),
            answers(redis_port)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(group);
}
