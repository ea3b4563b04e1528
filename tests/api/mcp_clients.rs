//! The official MCP SDK clients and the MCP conformance suite against a real
//! `keygate serve` (issue 14 item 6).
//!
//! Each client test starts keygate (issuer = its real loopback URL, open
//! registration and client ID metadata documents, the resource
//! `http://127.0.0.1:<port>/mcp`, 2 s access tokens) and the example MCP
//! server (`examples/mcp_server`, built by `make test`) on that port, then
//! runs a pinned SDK client from `tests/mcp/`: it discovers keygate from the
//! MCP server's 401 (RFC 9728), gets a `client_id`, authorizes with PKCE and
//! `resource` (RFC 8707; its "browser" fills the login and consent forms),
//! calls `whoami`, waits past the access token's lifetime so that the SDK
//! must refresh, and calls `whoami` again. The test checks what it reports,
//! every access token it received (`aud` = the MCP URL) and keygate's log.
//!
//! Two ways to the `client_id`, each tested with every SDK:
//! - `..._registers_...`: anonymous RFC 7591 registration (open registration);
//! - `..._uses_a_client_id_metadata_document_...`: the client script is
//!   given an https URL (its last argument: Python `OAuthClientProvider(...,
//!   client_metadata_url=...)`, TypeScript `OAuthClientProvider.clientMetadataUrl`)
//!   and uses it as its `client_id` because keygate advertises
//!   `client_id_metadata_document_supported`; keygate fetches the document
//!   from a local https server with a test CA (tests/api/doc_server.rs;
//!   keygate trusts the CA through `registration.metadata_documents_ca_file`,
//!   `metadata_documents_allow_private` lets it reach 127.0.0.1). No client
//!   is registered although open registration is on. Every SDK tested
//!   supports CIMD: Python `mcp` 2.3.0 and 1.30.0, TypeScript
//!   `@modelcontextprotocol/sdk` 1.32.2.
//!
//! The clients are installed by `tests/mcp/setup.sh` (Python venvs under the
//! target directory, `npm ci` in tests/mcp; stamp files make a second run
//! instant). It needs python3 (with venv) and npm on the machine.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;

use crate::doc_server::{DocServer, Reply};
use crate::helpers::{password_hash, PASSWORD, USER};
use crate::ports::free_port;
use crate::process::{command, Keygate};
use crate::steps;
use keygate::startup::config_user_id;

/// Access-token lifetime in the clients' keygate; each client waits one
/// second longer between its two calls, so the second needs a refresh.
const ACCESS_TTL: u64 = 2;

pub(crate) fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The target directory this test binary was built in (holds the venvs).
pub(crate) fn target_dir() -> PathBuf {
    // CARGO_BIN_EXE_keygate is <target>/<profile>/keygate.
    Path::new(env!("CARGO_BIN_EXE_keygate"))
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf()
}

/// Runs `script` (a pinned-install setup script under tests/, idempotent
/// and serialised with a lock file) with this target directory.
pub(crate) fn run_setup(script: &str) -> Result<(), String> {
    let out = Command::new("bash")
        .arg(root().join(script))
        .env("CARGO_TARGET_DIR", target_dir())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running bash {script}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{script} failed ({}): it needs python3 with venv and npm \
             (Debian/Ubuntu: apt-get install -y python3 python3-venv nodejs npm) and \
             the PyPI and npm registries:\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Runs tests/mcp/setup.sh once per test binary.
fn setup() {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    if let Err(e) = DONE.get_or_init(|| run_setup("tests/mcp/setup.sh")) {
        panic!("{e}");
    }
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// keygate (issuer = its URL, `alice` as the one user, open registration
/// and client ID metadata documents, the resource `resource` accepting
/// `mcp:tools`) with `extra` TOML on top. With `documents_ca`, documents may
/// come from loopback servers with a certificate from that CA (PEM file).
fn start_keygate(dir: &Path, resource: &str, documents_ca: Option<&Path>, extra: &str) -> Keygate {
    let port = free_port();
    let documents_ca = documents_ca
        .map(|ca| {
            format!(
                "metadata_documents_allow_private = true\nmetadata_documents_ca_file = {:?}\n",
                ca.display().to_string()
            )
        })
        .unwrap_or_default();
    let base = format!("http://127.0.0.1:{port}");
    let config = format!(
        r#"[server]
issuer = "{base}"

[store]
url = "memory"

[oauth]
scopes = ["profile", "mcp:tools"]

[tokens]
access_ttl = {ACCESS_TTL}

[registration]
open = true
open_scopes = ["profile", "mcp:tools"]
metadata_documents = true
{documents_ca}
[[users]]
username = "{USER}"
password_hash = "{hash}"

[[resources]]
uri = "{resource}"
name = "Example MCP server"
scopes = ["mcp:tools"]
{extra}"#,
        hash = password_hash(),
    );
    std::fs::write(dir.join("keygate.toml"), config).unwrap();
    let server = Keygate::serve(
        command(dir)
            .arg("--config")
            .arg(dir.join("keygate.toml"))
            .env("KEYGATE_SERVER_LISTEN", format!("127.0.0.1:{port}")),
    );
    assert_eq!(server.base, base, "keygate listens on its issuer's port");
    server
}

/// keygate and the example MCP server at `mcp_url`, which keygate knows as a
/// resource.
struct Stack {
    keygate: Keygate,
    _mcp: Killed,
    mcp_url: String,
    _dir: tempfile::TempDir,
}

fn start_stack(documents_ca: Option<&Path>) -> Stack {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mcp_url = format!("http://127.0.0.1:{port}/mcp");
    let keygate = start_keygate(dir.path(), &mcp_url, documents_ca, "");
    let bin = Path::new(env!("CARGO_BIN_EXE_keygate")).with_file_name("keygate-mcp-example");
    assert!(
        bin.exists(),
        "{} is missing: `cargo build -p keygate-mcp-example` (make test does it first)",
        bin.display()
    );
    let mut mcp = Killed(
        Command::new(&bin)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--resource", &mcp_url, "--issuer", &keygate.base])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = mcp.0.try_wait().unwrap() {
            panic!("the example MCP server exited ({status}) before listening");
        }
        assert!(
            Instant::now() < deadline,
            "the example MCP server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Stack {
        keygate,
        _mcp: mcp,
        mcp_url,
        _dir: dir,
    }
}

/// Runs `cmd` to completion, killed after `limit`; its output.
pub(crate) fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let out = child.wait_with_output();
        let _ = tx.send(());
        out
    });
    if rx.recv_timeout(limit).is_err() {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    waiter.join().unwrap().unwrap()
}

/// The claims of a JWT, unverified (the MCP server verified them).
fn claims(jwt: &str) -> serde_json::Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// How the SDK client gets its `client_id`.
#[derive(Clone, Copy, PartialEq)]
enum ClientId {
    /// Anonymous RFC 7591 registration.
    Registered,
    /// An https URL: a client ID metadata document.
    MetadataDocument,
}

/// The callback URL of tests/mcp/client.py and client.mjs.
const SDK_REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

/// Runs one SDK client (`program` + `script`) against a fresh stack and
/// checks its report and keygate's log.
fn client_end_to_end(program: &Path, script: &str, how: ClientId) {
    setup();
    // The document server runs on a runtime of its own while this thread
    // waits for the client.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let documents = (how == ClientId::MetadataDocument).then(|| {
        let server = runtime.block_on(DocServer::start());
        let url = server.url("/mcp-client.json");
        server.set(
            "/mcp-client.json",
            Reply::doc(
                &serde_json::json!({
                    "client_id": url,
                    "client_name": format!("keygate test: {script}"),
                    "redirect_uris": [SDK_REDIRECT_URI],
                    "grant_types": ["authorization_code", "refresh_token"],
                    "response_types": ["code"],
                    "token_endpoint_auth_method": "none",
                    "scope": "mcp:tools",
                }),
                "max-age=300",
            ),
        );
        (server, url)
    });
    let stack = start_stack(documents.as_ref().map(|(s, _)| s.ca_file.path()));
    let mut cmd = Command::new(program);
    cmd.arg(root().join("tests/mcp").join(script))
        .args([&stack.mcp_url, USER, PASSWORD])
        .arg((ACCESS_TTL + 1).to_string())
        .current_dir(root().join("tests/mcp"));
    if let Some((_, url)) = &documents {
        cmd.arg(url);
    }
    let out = run_bounded(&mut cmd, Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let context = || {
        format!(
            "{} {script}:\nstdout:\n{stdout}\nstderr:\n{stderr}\nkeygate:\n{}",
            program.display(),
            stack.keygate.log.lock().unwrap().join("\n")
        )
    };
    assert!(
        out.status.success(),
        "the client failed ({}): {}",
        out.status,
        context()
    );
    // The session ends cleanly (the example server answers DELETE with 204).
    assert!(
        !stderr.contains("Session termination failed"),
        "{}",
        context()
    );
    let report: serde_json::Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON report: {}", context()));

    let client_id = report["client_id"].as_str().unwrap_or_default();
    let logged = |event: &str| {
        stack
            .keygate
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(&format!("event=\"{event}\"")) && l.contains(client_id))
    };
    let registered = stack
        .keygate
        .log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("event=\"client_registered_anonymously\""));
    match &documents {
        None => {
            // Registered anonymously: a client keygate made for it.
            assert!(!client_id.is_empty(), "no client registered: {}", context());
            assert!(
                logged("client_registered_anonymously"),
                "keygate logged no registration: {}",
                context()
            );
        }
        Some((server, url)) => {
            // The URL is the client_id; keygate fetched the document and
            // registered nothing (open registration is on all the same).
            assert_eq!(client_id, url, "{}", context());
            assert!(
                !registered,
                "a client was registered (RFC 7591): {}",
                context()
            );
            assert!(
                logged("client_document_fetched"),
                "keygate logged no document fetch: {}",
                context()
            );
            assert!(server.hits("/mcp-client.json") >= 1, "{}", context());
        }
    }
    // One trip through the login and consent pages, for both calls.
    assert_eq!(report["authorizations"], 1, "{}", context());

    // Both calls reached the tool as alice, through the registered client.
    let calls = report["whoami"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "{}", context());
    for call in calls {
        assert_eq!(call["sub"], config_user_id(USER), "{}", context());
        assert_eq!(call["client_id"], client_id, "{}", context());
        assert_eq!(call["scope"], "mcp:tools", "{}", context());
    }

    // The code exchange and then a refresh of the same grant (no second
    // authorization), every token for the MCP server only.
    let tokens: Vec<serde_json::Value> = report["access_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| claims(t.as_str().unwrap()))
        .collect();
    assert!(tokens.len() >= 2, "the SDK never refreshed: {}", context());
    for t in &tokens {
        assert_eq!(t["aud"], stack.mcp_url.as_str(), "aud: {}", context());
        assert_eq!(t["iss"], stack.keygate.base.as_str());
        assert_eq!(t["sub"], config_user_id(USER));
        assert_eq!(t["client_id"], client_id);
        assert_eq!(t["grant_id"], tokens[0]["grant_id"], "one grant, refreshed");
    }
    assert_ne!(tokens[0]["jti"], tokens[1]["jti"]);
    assert!(
        stack
            .keygate
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("grant_type=\"refresh_token\"") && l.contains(client_id)),
        "keygate logged no refresh: {}",
        context()
    );
}

fn python(venv: &str) -> PathBuf {
    target_dir().join(venv).join("bin/python")
}

fn node() -> PathBuf {
    root().join("tests/mcp/node_modules/.bin/node")
}

#[test]
fn python_sdk_2_discovers_registers_authorizes_calls_and_refreshes() {
    client_end_to_end(&python("mcp-py2"), "client.py", ClientId::Registered);
}

#[test]
fn python_sdk_1_discovers_registers_authorizes_calls_and_refreshes() {
    client_end_to_end(&python("mcp-py1"), "client.py", ClientId::Registered);
}

#[test]
fn typescript_sdk_discovers_registers_authorizes_calls_and_refreshes() {
    client_end_to_end(&node(), "client.mjs", ClientId::Registered);
}

#[test]
fn python_sdk_2_uses_a_client_id_metadata_document_authorizes_calls_and_refreshes() {
    client_end_to_end(&python("mcp-py2"), "client.py", ClientId::MetadataDocument);
}

#[test]
fn python_sdk_1_uses_a_client_id_metadata_document_authorizes_calls_and_refreshes() {
    client_end_to_end(&python("mcp-py1"), "client.py", ClientId::MetadataDocument);
}

#[test]
fn typescript_sdk_uses_a_client_id_metadata_document_authorizes_calls_and_refreshes() {
    client_end_to_end(&node(), "client.mjs", ClientId::MetadataDocument);
}

/// `conformance authorization` (both authorization-server scenarios) with a
/// public client and `--resource`; the test is the browser for the
/// authorization-code scenario. Every check must be SUCCESS, including
/// `authorization-server-metadata-cimd` (keygate advertises client ID
/// metadata documents).
#[tokio::test]
async fn conformance_authorization_server_scenarios_pass() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let callback_port = free_port();
    let resource = "https://mcp.example/mcp";
    let keygate = start_keygate(
        dir.path(),
        resource,
        None,
        &format!(
            r#"
[[clients]]
client_id = "conformance"
client_name = "MCP conformance suite"
redirect_uris = ["http://127.0.0.1:{callback_port}/callback"]
grant_types = ["authorization_code", "refresh_token"]
scope = "mcp:tools"
token_endpoint_auth_method = "none"
"#
        ),
    );
    let results = dir.path().join("results");
    let mut child = Killed(
        Command::new(node())
            .arg(
                root()
                    .join("tests/mcp/node_modules/@modelcontextprotocol/conformance/dist/index.js"),
            )
            .args(["authorization", "--url", &keygate.base])
            .args(["--client-id", "conformance", "--resource", resource])
            .args(["--port", &callback_port.to_string()])
            .arg("--output-dir")
            .arg(&results)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = vec![];
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push(line);
        }
        all
    });
    let stderr = child.0.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });

    // The scenario prints the authorization URL for a person to open.
    let authorize = format!("{}/oauth/authorize?", keygate.base);
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.starts_with(&authorize) => break line,
            Ok(_) => {}
            Err(e) => panic!(
                "no authorization URL from the conformance suite ({e}): {:?}",
                errors.join()
            ),
        }
    };
    let query = &url[authorize.len()..];
    let back = steps::authorize(&keygate.base, query, "allow").await;
    let callback = format!("http://127.0.0.1:{callback_port}/callback?");
    assert!(back.starts_with(&callback), "{back}");
    // The callback server starts right after printing the URL.
    let deadline = Instant::now() + Duration::from_secs(30);
    let resp = loop {
        match reqwest::get(&back).await {
            Ok(resp) => break resp,
            Err(e) => {
                assert!(Instant::now() < deadline, "callback server: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(resp.status(), 200);

    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the conformance suite did not exit"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let out = format!(
        "stdout:\n{}\nstderr:\n{}",
        reader.join().unwrap().join("\n"),
        errors.join().unwrap().join("\n")
    );
    assert!(status.success(), "conformance failed ({status}): {out}");

    let mut scenarios = vec![];
    let mut checks = vec![];
    for entry in std::fs::read_dir(&results).unwrap() {
        let path = entry.unwrap().path();
        scenarios.push(path.file_name().unwrap().to_string_lossy().into_owned());
        let file = std::fs::read(path.join("checks.json")).unwrap();
        let list: Vec<serde_json::Value> = serde_json::from_slice(&file).unwrap();
        checks.extend(list);
    }
    assert_eq!(
        scenarios.len(),
        2,
        "both scenarios ran: {scenarios:?}\n{out}"
    );
    let ids: Vec<&str> = checks.iter().filter_map(|c| c["id"].as_str()).collect();
    for id in [
        "authorization-server-metadata",
        "authorization-server-metadata-cimd",
        "authorization-code-grant",
    ] {
        assert!(ids.contains(&id), "{id} missing: {checks:#?}");
    }
    for check in &checks {
        assert_eq!(
            check["status"], "SUCCESS",
            "conformance check not passed: {check:#}\n{out}"
        );
    }
}
