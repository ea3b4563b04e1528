//! The `keygate` binary: start-up validation (one clear line naming the bad key),
//! first-start key creation, graceful shutdown, `openapi`, `keys`, `client create`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::SECRET;
use crate::process::{command, Keygate};
use crate::redis_server::RedisServer;

/// Runs `keygate serve` expecting it to refuse to start; returns stderr.
fn refuses(cmd: &mut Command) -> String {
    let out = cmd.arg("serve").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit code; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8(out.stderr).unwrap();
    let last = err
        .trim_end()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(last.starts_with("keygate: "), "{err}");
    last
}

#[test]
fn startup_validation_names_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let line = refuses(command(d).env("KEYGATE_STORE_URL", "mysql://root:hunter2@db/x"));
    assert!(line.contains("store.url"), "{line}");
    assert!(
        !line.contains("hunter2"),
        "the store password leaked: {line}"
    );
    let line = refuses(command(d).env("KEYGATE_SERVER_ISSUER", "auth.example.com"));
    assert!(line.contains("server.issuer"), "{line}");
    let line = refuses(command(d).env("KEYGATE_SERVER_LISTN", "x"));
    assert!(line.contains("KEYGATE_SERVER_LISTN"), "{line}");
    let line = refuses(command(d).env("KEYGATE_TOKENS_ACCESS_TTL", "-5"));
    assert!(line.contains("KEYGATE_TOKENS_ACCESS_TTL"), "{line}");
    std::fs::write(
        d.join("k.toml"),
        "[server]\nlisten = \"127.0.0.1:0\"\nport = 8080\n",
    )
    .unwrap();
    let line = refuses(command(d).arg("--config").arg(d.join("k.toml")));
    assert!(line.contains("server.port"), "{line}");
    let line = refuses(command(d).arg("--config").arg(d.join("missing.toml")));
    assert!(line.contains("missing.toml"), "{line}");
    std::fs::create_dir_all(d.join("keys")).unwrap();
    std::fs::write(
        d.join("keys").join("broken.pem"),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let line = refuses(&mut command(d));
    assert!(
        line.contains("keys.dir") && line.contains("broken.pem"),
        "{line}"
    );
}

#[test]
fn serve_creates_a_key_answers_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Keygate::serve(&mut command(dir.path()));
    let created = server
        .log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("created a new RS256 key"));
    assert!(created, "first start logs that it created a key");
    let pems: Vec<_> = std::fs::read_dir(dir.path().join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(pems.len(), 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&pems[0]).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status =
        rt.block_on(async { reqwest::get(server.url("/healthz")).await.unwrap().status() });
    assert_eq!(status, 200);
    server.signal("TERM");
    let code = server.wait_for_exit(Duration::from_secs(20));
    assert_eq!(code, Some(0), "keygate stops gracefully on SIGTERM");
}

#[test]
fn openapi_command_prints_the_generated_document() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .args(["openapi", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim_end(),
        keygate::http::api_service().spec().trim_end()
    );
    let out = command(dir.path())
        .args(["openapi", "--format", "yaml"])
        .output()
        .unwrap();
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .starts_with("openapi:"));
}

#[test]
fn keys_generate_and_list() {
    let dir = tempfile::tempdir().unwrap();
    for alg in ["ES256", "EdDSA", "RS256"] {
        let out = command(dir.path())
            .args(["keys", "generate", "--alg", alg])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(1100)); // distinct creation seconds, so "newest" is defined
    }
    let out = command(dir.path()).args(["keys", "list"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines.len(), 4, "{text}");
    // A header, then newest first; the first key signs at once, the later
    // ones wait for keys.activation_delay_secs.
    assert_eq!(
        lines[0],
        ["KID", "ALG", "CREATED", "STATE", "WHEN", "FILE"],
        "{text}"
    );
    assert_eq!(
        lines[1][1..4]
            .iter()
            .step_by(2)
            .copied()
            .collect::<Vec<_>>(),
        ["RS256", "pending"],
        "{text}"
    );
    assert_eq!(
        lines[2][1..4]
            .iter()
            .step_by(2)
            .copied()
            .collect::<Vec<_>>(),
        ["EdDSA", "pending"],
        "{text}"
    );
    assert_eq!(
        lines[3][1..4]
            .iter()
            .step_by(2)
            .copied()
            .collect::<Vec<_>>(),
        ["ES256", "active"],
        "{text}"
    );
    let out = command(dir.path())
        .args(["keys", "generate", "--alg", "ES256", "--json"])
        .output()
        .unwrap();
    let made: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(made["alg"], "ES256");
    assert_eq!(made["state"], "pending");
    assert!(Path::new(made["path"].as_str().unwrap()).exists(), "{made}");
    let out = command(dir.path())
        .args(["keys", "generate", "--alg", "HS256"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn client_create_needs_a_persistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .args([
            "client",
            "create",
            "--name",
            "x",
            "--grant-type",
            "client_credentials",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("store.url"));
}

#[tokio::test]
async fn client_create_json_then_token_against_the_same_redis() {
    let redis = RedisServer::new();
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .env("KEYGATE_STORE_URL", redis.url())
        .env("KEYGATE_OAUTH_SCOPES", "api:read,api:write")
        .args([
            "client",
            "create",
            "--name",
            "Billing",
            "--grant-type",
            "client_credentials",
            "--scope",
            "api:read api:write",
            "--auth-method",
            "client_secret_post",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = v["client_id"].as_str().unwrap().to_string();
    let secret = v["client_secret"].as_str().unwrap().to_string();
    assert!(secret.len() >= 43, "≥ 256 bits");
    assert_eq!(v["client_secret_expires_at"], 0);
    assert_eq!(v["token_endpoint_auth_method"], "client_secret_post");
    assert_eq!(v["grant_types"], serde_json::json!(["client_credentials"]));
    assert_eq!(v["scope"], "api:read api:write");

    // The secret is stored only as a hash.
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let raw: Vec<u8> = redis::cmd("GET")
        .arg(format!("kg:client:{id}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&raw).contains(&secret));

    let keys = tempfile::tempdir().unwrap();
    keygate::tokens::keys::generate_into(keys.path(), keygate::tokens::keys::Alg::ES256, 1)
        .unwrap();
    let mut settings = crate::helpers::test_settings(keys.path(), &redis.url());
    settings.oauth.scopes = vec!["api:read".into(), "api:write".into()];
    settings.clients.clear();
    let app = keygate::startup::Application::build(settings)
        .await
        .unwrap();
    let addr = app.addr();
    let server = tokio::spawn(app.run_until_stopped(std::future::pending()));
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("scope", "api:write"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let wrong = reqwest::Client::new()
        .post(format!("http://{addr}/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    server.abort();

    // bad input is a clear non-zero exit
    let out = command(dir.path())
        .env("KEYGATE_STORE_URL", redis.url())
        .args([
            "client",
            "create",
            "--name",
            "x",
            "--grant-type",
            "authorization_code",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--redirect-uri"));
}

#[test]
fn readme_curl_walkthrough_runs_every_grant_against_the_dev_config() {
    for tool in ["curl", "openssl", "python3"] {
        assert!(
            Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {tool}"))
                .stdout(Stdio::null())
                .status()
                .unwrap()
                .success(),
            "{tool} is missing: apt-get install -y {tool}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let server = Keygate::serve(
        command(dir.path())
            .arg("--config")
            .arg(root.join("config/keygate.toml")),
    );
    let out = Command::new("bash")
        .arg(root.join("examples/curl_walkthrough.sh"))
        .arg(&server.base)
        .output()
        .unwrap();
    drop(server);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "walkthrough failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("done: every grant worked"));
    assert!(stdout.contains("\"username\":\"demo\""), "{stdout}");
    assert!(
        stdout.contains("#access_token="),
        "implicit fragment: {stdout}"
    );
}

#[test]
fn hash_password_and_user_add() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = command(dir.path())
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"s3cret-password\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let phc = String::from_utf8(out.stdout).unwrap();
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    assert!(keygate::passwords::is_valid_phc(phc.trim()));
    // no password on stdin: a clear error
    let out = command(dir.path()).arg("hash-password").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // user add needs a persistent store
    let out = command(dir.path())
        .args(["user", "add", "carol", "--password-stdin"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("store.url"));
}

#[tokio::test]
async fn user_add_then_password_login_against_the_same_redis() {
    let redis = RedisServer::new();
    let dir = tempfile::tempdir().unwrap();
    let mut child = command(dir.path())
        .env("KEYGATE_STORE_URL", redis.url())
        .args([
            "user",
            "add",
            "carol",
            "--password-stdin",
            "--email",
            "carol@example.com",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"carol-password\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys = tempfile::tempdir().unwrap();
    keygate::tokens::keys::generate_into(keys.path(), keygate::tokens::keys::Alg::EdDSA, 1)
        .unwrap();
    let settings = crate::helpers::test_settings(keys.path(), &redis.url());
    let state =
        keygate::startup::build_state(settings, std::sync::Arc::new(keygate::clock::SystemClock))
            .await
            .unwrap();
    let user = keygate::flows::users::authenticate(&state, "carol", "carol-password".into())
        .await
        .unwrap()
        .expect("carol can sign in");
    assert_eq!(user.email.as_deref(), Some("carol@example.com"));
    assert!(
        keygate::flows::users::authenticate(&state, "carol", "wrong".into())
            .await
            .unwrap()
            .is_none()
    );
    // a second add with the same name fails clearly
    let mut child = command(dir.path())
        .env("KEYGATE_STORE_URL", redis.url())
        .args(["user", "add", "Carol", "--password-stdin"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"another-password\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("taken"));
}

/// Runs keygate against `redis` with optional stdin; returns (exit code, stdout, stderr).
fn run_with(
    dir: &Path,
    redis: &RedisServer,
    args: &[&str],
    stdin: Option<&str>,
) -> (Option<i32>, String, String) {
    let out = crate::process::output_with_stdin(
        command(dir)
            .env("KEYGATE_STORE_URL", redis.url())
            .env("KEYGATE_OAUTH_SCOPES", "profile,email,api:read")
            .args(args),
        stdin.unwrap_or_default(),
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn client_and_user_admin_commands_with_json() {
    let redis = RedisServer::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, out, err) = run_with(
        d,
        &redis,
        &[
            "client",
            "create",
            "--name",
            "App",
            "--grant-type",
            "authorization_code",
            "refresh_token",
            "--redirect-uri",
            "https://app.example/cb",
            "--scope",
            "profile",
            "--json",
        ],
        None,
    );
    assert_eq!(code, Some(0), "{err}");
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = created["client_id"].as_str().unwrap().to_string();
    assert_eq!(created["response_types"], serde_json::json!(["code"]));

    let (_, out, _) = run_with(d, &redis, &["client", "list", "--json"], None);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(
        !out.contains(created["client_secret"].as_str().unwrap())
            && !out.contains("\"client_secret\""),
        "list never shows secrets: {out}"
    );

    let (code, out, err) = run_with(
        d,
        &redis,
        &[
            "client",
            "update",
            &id,
            "--scope",
            "profile email",
            "--name",
            "App 2",
            "--json",
        ],
        None,
    );
    assert_eq!(code, Some(0), "{err}");
    let updated: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(updated["scope"], "email profile");
    let (_, out, _) = run_with(d, &redis, &["client", "show", &id, "--json"], None);
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["client_name"], "App 2");

    let (code, out, _) = run_with(d, &redis, &["client", "rotate-secret", &id, "--json"], None);
    assert_eq!(code, Some(0));
    let rotated: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_ne!(rotated["client_secret"], created["client_secret"]);

    // bad input: clear non-zero exits
    let (code, _, err) = run_with(
        d,
        &redis,
        &[
            "client",
            "update",
            &id,
            "--redirect-uri",
            "http://evil.example/cb",
        ],
        None,
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("--redirect-uri"), "{err}");
    let (code, _, err) = run_with(d, &redis, &["client", "show", "nope"], None);
    assert_eq!(code, Some(2));
    assert!(err.contains("no such client"), "{err}");

    let (code, out, _) = run_with(d, &redis, &["client", "delete", &id, "--json"], None);
    assert_eq!(code, Some(0));
    assert!(out.contains("\"deleted\":true"));
    let (_, out, _) = run_with(d, &redis, &["client", "list", "--json"], None);
    assert_eq!(out.trim(), "[]");

    // users
    let (code, _, err) = run_with(
        d,
        &redis,
        &["user", "add", "dave", "--password-stdin", "--json"],
        Some("dave-password\n"),
    );
    assert_eq!(code, Some(0), "{err}");
    let (_, out, _) = run_with(d, &redis, &["user", "list", "--json"], None);
    let users: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(users[0]["username"], "dave");
    assert!(!out.contains("argon2"), "no password hashes in listings");
    let (code, _, err) = run_with(
        d,
        &redis,
        &["user", "set-password", "dave", "--password-stdin"],
        Some("short\n"),
    );
    assert_eq!(code, Some(2), "{err}");
    let (code, _, err) = run_with(
        d,
        &redis,
        &["user", "set-password", "dave", "--password-stdin", "--json"],
        Some("dave-new-password\n"),
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, _, _) = run_with(d, &redis, &["user", "delete", "dave", "--json"], None);
    assert_eq!(code, Some(0));
    let (code, _, err) = run_with(d, &redis, &["user", "delete", "dave"], None);
    assert_eq!(code, Some(2));
    assert!(err.contains("no such user"), "{err}");
}

/// The client and user commands open only the store: no signing key and no
/// CSRF secret appear (issue 11).
#[tokio::test]
async fn client_and_user_commands_create_no_keys_and_no_csrf_secret() {
    let redis = RedisServer::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for args in [
        &["client", "list", "--json"][..],
        &["user", "list", "--json"][..],
        &[
            "client",
            "create",
            "--name",
            "svc",
            "--grant-type",
            "client_credentials",
        ][..],
    ] {
        let (code, _, err) = run_with(d, &redis, args, None);
        assert_eq!(code, Some(0), "{args:?}: {err}");
    }
    assert!(!d.join("keys").exists(), "no key directory was created");
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let csrf: Option<Vec<u8>> = redis::cmd("GET")
        .arg("kg:secret:csrf")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(csrf.is_none(), "no CSRF secret was written");
}

/// `user add --name` and `user set` (issue 15 item 2): profile fields in
/// `--json`, a new email unverified unless `--email-verified true` comes
/// with it, `""` clears, clear refusals (unknown user, bad values, nothing
/// to change, config-file users).
#[test]
fn user_profile_fields_through_the_cli() {
    let redis = RedisServer::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let json = |out: &str| -> serde_json::Value { serde_json::from_str(out).unwrap() };
    let (code, out, err) = run_with(
        d,
        &redis,
        &[
            "user",
            "add",
            "erin",
            "--password-stdin",
            "--email",
            "erin@example.com",
            "--name",
            "Erin Example",
            "--json",
        ],
        Some("erin-password\n"),
    );
    assert_eq!(code, Some(0), "{err}");
    let u = json(&out);
    assert_eq!(u["name"], "Erin Example");
    assert_eq!(u["email"], "erin@example.com");
    assert_eq!(u["email_verified"], false);
    assert_eq!(u["updated_at"], u["created_at"]);

    let set = |args: &[&str]| {
        let mut all = vec!["user", "set", "erin"];
        all.extend_from_slice(args);
        all.push("--json");
        run_with(d, &redis, &all, None)
    };
    let (code, out, err) = set(&["--email-verified", "true"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(json(&out)["email_verified"], true);
    // A new address is unverified…
    let (code, out, err) = set(&["--email", "erin@example.org"]);
    assert_eq!(code, Some(0), "{err}");
    let u = json(&out);
    assert_eq!(
        (&u["email"], &u["email_verified"]),
        (&"erin@example.org".into(), &false.into())
    );
    // …unless the operator vouches for it in the same command.
    let (code, out, err) = set(&["--email", "erin@example.net", "--email-verified", "true"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(json(&out)["email_verified"], true);
    let (code, out, err) = set(&["--name", ""]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(json(&out)["name"], serde_json::Value::Null);

    let (_, out, _) = run_with(d, &redis, &["user", "list", "--json"], None);
    let list = json(&out);
    assert_eq!(list[0]["username"], "erin");
    assert_eq!(list[0]["email"], "erin@example.net");
    assert_eq!(list[0]["email_verified"], true);
    assert_eq!(list[0]["name"], serde_json::Value::Null);
    assert!(list[0]["updated_at"].as_i64().unwrap() >= list[0]["created_at"].as_i64().unwrap());

    for (args, says) in [
        (&["--email", "not-an-address"][..], "email address"),
        (&["--name", "two\u{7}bells"][..], "control characters"),
        (&["--email-verified", "maybe"][..], "invalid value"),
        (&[][..], "nothing to change"),
    ] {
        let (code, _, err) = set(args);
        assert_eq!(code, Some(2), "{args:?}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let (code, _, err) = run_with(d, &redis, &["user", "set", "nobody", "--name", "N"], None);
    assert_eq!(code, Some(2));
    assert!(err.contains("no such user"), "{err}");

    // A `[[users]]` user is edited in the config file, and says so.
    let config = d.join("users.toml");
    std::fs::write(
        &config,
        format!(
            "[[users]]\nusername = \"zed\"\npassword_hash = \"{}\"\n",
            crate::helpers::password_hash()
        ),
    )
    .unwrap();
    let (code, _, err) = run_with(
        d,
        &redis,
        &[
            "user",
            "set",
            "zed",
            "--name",
            "Zed",
            "--config",
            config.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("config file"), "{err}");
}

/// `serve` says what runs (version, config file, profile, store with its
/// password redacted, issuer, listen address, signing key, config entries)
/// and warns of the dev credentials it loaded, never printing a secret.
#[test]
fn serve_logs_a_banner_of_what_runs_and_warns_of_dev_credentials() {
    let redis = RedisServer::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = d.join("dev.toml");
    std::fs::write(
        &config,
        format!(
            "[[clients]]\nclient_id = \"dev-app\"\nclient_secret = \"banner-secret-42\"\ngrant_types = [\"client_credentials\"]\nscope = \"profile\"\n\
             [[users]]\nusername = \"demo\"\npassword_hash = \"{}\"\n",
            keygate::config::DEMO_PASSWORD_HASH
        ),
    )
    .unwrap();
    // Redis's default user has no password, so any password is accepted.
    let url = redis
        .url()
        .replace("redis://", "redis://default:hunter2-banner@");
    let server = Keygate::serve(
        command(d)
            .arg("--config")
            .arg(&config)
            .env("KEYGATE_STORE_URL", &url),
    );
    let log = server.log.lock().unwrap().join("\n");
    let line = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{log}"))
            .to_string()
    };
    let start = line(&format!("keygate {} starting", env!("CARGO_PKG_VERSION")));
    assert!(start.contains(&config.display().to_string()), "{start}");
    assert!(start.contains("oauth21"), "{start}");
    let serving = line("serving");
    assert!(
        serving.contains(&format!(
            "redis://default:REDACTED@127.0.0.1:{}",
            redis.port()
        )),
        "{serving}"
    );
    assert!(
        serving.contains("issuer=http://127.0.0.1:8080"),
        "{serving}"
    );
    assert!(
        serving.contains(&server.base.replace("http://", "listen=")),
        "{serving}"
    );
    let keys = line("signing keys");
    assert!(
        keys.contains("alg=RS256") && keys.contains("kid="),
        "{keys}"
    );
    let entries = line("config file entries");
    assert!(
        entries.contains("clients=1") && entries.contains("users=1"),
        "{entries}"
    );
    let secrets = line("plain-text secrets");
    assert!(
        secrets.contains("WARN") && secrets.contains("dev-app"),
        "{secrets}"
    );
    let demo = line("demo user's published password");
    assert!(demo.contains("WARN") && demo.contains("demo"), "{demo}");
    for secret in ["hunter2-banner", "banner-secret-42"] {
        assert!(!log.contains(secret), "{secret} printed:\n{log}");
    }
}

/// `check-config` on the production example reports each placeholder at
/// once (issuer, store, keys), exits 1, and `serve` refuses to start with
/// the placeholder issuer.
#[test]
fn check_config_reports_every_problem_of_the_production_example() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let prod = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/production.example.toml");
    // The example's Redis host is not loopback: stand in an unreachable one.
    let store = format!(
        "redis://:hunter2-check@127.0.0.1:{}",
        crate::ports::free_port()
    );
    let out = command(d)
        .arg("--config")
        .arg(&prod)
        .env("KEYGATE_STORE_URL", &store)
        .args(["check-config", "--json"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{text}");
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["ok"], false);
    let keys: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["server.issuer", "keys.dir", "store.url"], "{text}");
    assert!(
        text.contains("auth.example.com") && text.contains("REDACTED"),
        "{text}"
    );
    assert!(!text.contains("hunter2-check"), "{text}");

    let line = refuses(
        command(d)
            .arg("--config")
            .arg(&prod)
            .env("KEYGATE_STORE_URL", "memory"),
    );
    assert!(
        line.contains("server.issuer") && line.contains("placeholder"),
        "{line}"
    );
}

/// Plain-text secrets and the demo user on a non-loopback listener are each
/// reported with the other problems (not only the first); a good
/// configuration passes with exit 0.
#[test]
fn check_config_lists_dev_credentials_on_a_public_listener_and_passes_a_good_file() {
    let redis = RedisServer::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = d.join("k.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"0.0.0.0:8080\"\n\
             [[clients]]\nclient_id = \"a\"\nclient_secret = \"a-secret-123\"\ngrant_types = [\"client_credentials\"]\nscope = \"profile\"\n\
             [[clients]]\nclient_id = \"b\"\nclient_secret = \"b-secret-123\"\ngrant_types = [\"client_credentials\"]\nscope = \"profile\"\n\
             [[users]]\nusername = \"demo\"\npassword_hash = \"{}\"\n",
            keygate::config::DEMO_PASSWORD_HASH
        ),
    )
    .unwrap();
    let check = |listen: &str| {
        let out = command(d)
            .arg("--config")
            .arg(&config)
            .env_remove("KEYGATE_SERVER_LISTEN")
            .env("KEYGATE_STORE_URL", redis.url())
            .env("KEYGATE_SERVER_LISTEN", listen)
            .arg("check-config")
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    let (code, text) = check("0.0.0.0:8080");
    assert_eq!(code, Some(1), "{text}");
    for key in [
        "clients[0].client_secret",
        "clients[1].client_secret",
        "users[0].password_hash",
        "keys.dir",
    ] {
        assert!(text.contains(&format!("  - {key}: ")), "{key} in {text}");
    }
    assert!(text.contains(": 4 problems"), "{text}");
    assert!(!text.contains("a-secret-123"), "{text}");

    let generated = command(d).args(["keys", "generate"]).output().unwrap();
    assert!(generated.status.success());
    let (code, text) = check("127.0.0.1:8080");
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(text.trim(), format!("{}: OK", config.display()));
}

/// `check-config` names every invalid setting of a file at once, not only
/// the first one `serve` stops at: settings in several sections and each bad
/// `[[users]]` / `[[resources]]` entry, in file order.
#[test]
fn check_config_names_every_invalid_setting_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = d.join("k.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"localhost\"\ntrusted_proxies = [\"10.0.0.0/24\", \"nginx\"]\n\
         [oauth]\nprofile = \"oauth3\"\n\
         [tokens]\naccess_ttl = 0\n\
         [log]\nformat = \"xml\"\n\
         [[users]]\nusername = \"ops\"\npassword_hash = \"plain\"\n\
         [[users]]\nusername = \"OPS\"\npassword_hash = \"plain\"\n\
         [[resources]]\nuri = \"https://api.mycompany.com/\"\nscopes = [\"nope\"]\n",
    )
    .unwrap();
    let out = command(d)
        .arg("--config")
        .arg(&config)
        .env_remove("KEYGATE_SERVER_LISTEN")
        .env("KEYGATE_STORE_URL", "memory")
        .args(["check-config", "--json"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{text}");
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "server.listen",
            "oauth.profile",
            "tokens.access_ttl",
            "server.trusted_proxies[1]",
            "log.format",
            "users[0].password_hash",
            "users[1]",
            "resources[0].scopes",
            "keys.dir",
        ],
        "{text}"
    );
    // serve still stops at the first.
    let line = refuses(
        command(d)
            .arg("--config")
            .arg(&config)
            .env_remove("KEYGATE_SERVER_LISTEN"),
    );
    assert!(line.contains("server.listen"), "{line}");
}

/// The list commands print a table with a header row; `client show` for a
/// `[[clients]]` entry says which file and entry define it.
#[test]
fn list_commands_print_tables_and_client_show_names_the_config_entry() {
    let redis = RedisServer::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = d.join("k.toml");
    std::fs::write(
        &config,
        "[[clients]]\nclient_id = \"spa\"\nclient_name = \"Config SPA\"\nredirect_uris = [\"http://127.0.0.1:3000/cb\"]\ngrant_types = [\"authorization_code\"]\nscope = \"profile\"\ntoken_endpoint_auth_method = \"none\"\n\
         [[clients]]\nclient_id = \"cfg-app\"\nclient_name = \"Config app\"\ngrant_types = [\"authorization_code\"]\nredirect_uris = [\"http://127.0.0.1:3000/cb\"]\nscope = \"profile email\"\ntoken_endpoint_auth_method = \"none\"\n",
    )
    .unwrap();
    let file = config.to_str().unwrap();
    let (code, out, err) = run_with(
        d,
        &redis,
        &["--config", file, "client", "show", "cfg-app"],
        None,
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(&format!(
            "defined in:    {file}, [[clients]] entry 2 (clients[1])"
        )),
        "{out}"
    );
    assert!(
        out.contains("Config app") && out.contains("profile email"),
        "{out}"
    );
    let (_, out, _) = run_with(
        d,
        &redis,
        &["--config", file, "client", "show", "cfg-app", "--json"],
        None,
    );
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["defined_in"]["file"], file);
    assert_eq!(shown["defined_in"]["entry"], "clients[1]");
    assert_eq!(shown["token_endpoint_auth_method"], "none");
    let (code, _, err) = run_with(d, &redis, &["client", "show", "cfg-app"], None);
    assert_eq!(code, Some(2), "without the file it is not a stored client");
    assert!(err.contains("no such client"), "{err}");

    let (code, _, err) = run_with(
        d,
        &redis,
        &[
            "client",
            "create",
            "--name",
            "Billing job",
            "--grant-type",
            "client_credentials",
        ],
        None,
    );
    assert_eq!(code, Some(0), "{err}");
    let (_, out, _) = run_with(d, &redis, &["client", "list"], None);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["CLIENT_ID", "AUTH_METHOD", "GRANT_TYPES", "NAME"],
        "{out}"
    );
    assert_eq!(rows.len(), 2, "{out}");
    assert_eq!(
        rows[1][1..],
        [
            "client_secret_basic",
            "client_credentials",
            "Billing",
            "job"
        ],
        "{out}"
    );

    let (code, _, err) = run_with(
        d,
        &redis,
        &[
            "user",
            "add",
            "frank",
            "--password-stdin",
            "--email",
            "frank@example.net",
        ],
        Some("frank-password-1\n"),
    );
    assert_eq!(code, Some(0), "{err}");
    let (_, out, _) = run_with(d, &redis, &["user", "list"], None);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["USERNAME", "ID", "EMAIL", "NAME"], "{out}");
    assert_eq!(rows[1][0], "frank", "{out}");
    assert_eq!(rows[1][2..], ["frank@example.net", "-"], "{out}");
    // Columns line up: every cell of a column starts where its header does.
    let lines: Vec<&str> = out.lines().collect();
    let at = lines[0].find("EMAIL").unwrap();
    assert_eq!(lines[1].find("frank@").unwrap(), at, "{out}");
}

/// On a terminal `hash-password` prompts twice and the password is not
/// echoed (`script` from util-linux gives the process a pseudo-terminal;
/// the test types only once `stty` shows echo off, as a person would).
#[test]
fn hash_password_prompts_without_echo_on_a_terminal() {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let tty_file = dir.path().join("tty");
    let password = "typed-at-a-tty-42";
    let inner = format!(
        "tty > '{}'; exec '{}' hash-password",
        tty_file.display(),
        env!("CARGO_BIN_EXE_keygate")
    );
    let mut child = Command::new("script")
        .args(["-qec", &format!("sh -c \"{inner}\""), "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("`script` (util-linux) runs");
    let seen = Arc::new(Mutex::new(String::new()));
    let mut stdout = child.stdout.take().unwrap();
    let sink = seen.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let until = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(
                std::time::Instant::now() < deadline,
                "no {what}: {:?}",
                seen.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // Echo is off on the terminal: keygate is reading the password.
    let echo_off = || {
        let Ok(tty) = std::fs::read_to_string(&tty_file) else {
            return false;
        };
        Command::new("stty")
            .args(["-F", tty.trim(), "-a"])
            .output()
            .is_ok_and(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .any(|w| w == "-echo")
            })
    };
    let mut stdin = child.stdin.take().unwrap();
    until("first prompt", &|| {
        seen.lock().unwrap().contains("Password: ")
    });
    until("echo off", &echo_off);
    writeln!(stdin, "{password}").unwrap();
    until("second prompt", &|| {
        seen.lock().unwrap().contains("Password (again): ")
    });
    until("echo off", &echo_off);
    writeln!(stdin, "{password}").unwrap();
    until("hash", &|| seen.lock().unwrap().contains("$argon2id$"));
    drop(stdin);
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
    let out = seen.lock().unwrap().clone();
    assert!(!out.contains(password), "the password was echoed: {out:?}");
    let phc = out
        .lines()
        .find(|l| l.starts_with("$argon2id$"))
        .unwrap()
        .trim()
        .to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert!(rt.block_on(keygate::passwords::verify(password.into(), Some(phc))));
}

/// Issue 16 item 2: with `store.url = memory` (which keeps nothing between
/// runs), `client list` and `client show` read the config file's
/// `[[clients]]` instead of refusing; commands that write still refuse.
#[test]
fn client_list_and_show_on_the_memory_store_read_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("k.toml");
    std::fs::write(
        &config,
        "[store]\nurl = \"memory\"\n[[clients]]\nclient_id = \"spa\"\nclient_name = \"Config SPA\"\nredirect_uris = [\"http://127.0.0.1:3000/cb\"]\ngrant_types = [\"authorization_code\"]\nscope = \"profile\"\ntoken_endpoint_auth_method = \"none\"\n",
    )
    .unwrap();
    let file = config.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = command(dir.path())
            .args(["--config", file])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, err) = run(&["client", "list"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("CLIENT_ID"), "{out}");
    assert!(out.contains("spa") && out.contains("Config SPA"), "{out}");
    assert!(err.contains("store.url is `memory`"), "{err}");
    let (code, out, _) = run(&["client", "list", "--json"]);
    assert_eq!(code, Some(0));
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["client_id"], "spa");
    assert_eq!(list[0]["token_endpoint_auth_method"], "none");
    let (code, out, _) = run(&["client", "show", "spa"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("defined in:"), "{out}");
    let (code, _, err) = run(&["client", "show", "nope"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no client nope"), "{err}");
    let (code, _, err) = run(&["client", "delete", "spa"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("store.url"), "{err}");
}
