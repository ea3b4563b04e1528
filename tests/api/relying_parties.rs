//! Real OpenID Connect relying parties against a real `keygate serve`
//! (issue 15 item 8), each used as its documentation shows, unmodified:
//!
//! - Node `openid-client` 6.8.9 (tests/oidc/rp.mjs): discovery, code flow
//!   with PKCE, `nonce` and `state`, the library's ID token validation,
//!   UserInfo, refresh with a new ID token; `..._logout`: RP-initiated logout
//!   (`buildEndSessionUrl`) back to the registered `post_logout_redirect_uri`
//!   with `state`, after which keygate asks the browser to sign in again.
//! - Python Authlib 1.9.6 (tests/oidc/rp.py): its OAuth 2.0 session for the
//!   code flow and its `CodeIDToken` claims validation (incl. `nonce` and
//!   `at_hash`), which must also refuse a wrong nonce and a wrong access token.
//! - Apache httpd with Debian's `libapache2-mod-auth-openidc` in front of a
//!   small backend (a loopback server of the test that echoes the
//!   `OIDC_CLAIM_*` headers it receives): headless Chromium visits the
//!   protected page, signs in at keygate, consents, and the page shows the
//!   claims the backend got; `..._logout`: the RP's logout URL goes through
//!   keygate's `end_session_endpoint` back to the RP, and the next visit
//!   meets keygate's sign-in form again.
//!
//! Each test starts its own keygate (issuer = its real loopback URL, memory
//! store, open registration for `openid profile email`, `alice` with an
//! email) and registers a confidential client (`client_secret_basic`) over
//! RFC 7591 with `post_logout_redirect_uris`. The Node and Python clients are
//! installed by tests/oidc/setup.sh (stamp files make a second run instant);
//! Apache and mod_auth_openidc by `make test-deps` (apt). A missing tool fails
//! the test with install instructions, never a skip. Must not depend on
//! keygate's internals or `TestApp`: everything goes over HTTP to the process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use poem::listener::{Acceptor, Listener, TcpListener};

use crate::chromium::Browser;
use crate::helpers::{password_hash, PASSWORD, USER};
use crate::mcp_clients::{root, run_bounded, run_setup, target_dir};
use crate::ports::free_port;
use crate::process::{command, Keygate};

const EMAIL: &str = "alice@example.com";
/// The scope every relying party here asks for.
const SCOPE: &str = "openid profile email";
/// The Node and Python clients' callback: never contacted, their "browser"
/// stops at it.
const CALLBACK: &str = "http://127.0.0.1:9/callback";
/// Where the Node client asks to land after logout (never contacted either).
const LOGGED_OUT: &str = "http://127.0.0.1:9/logged-out";
/// Debian's Apache binary and module directory.
const APACHE: &str = "/usr/sbin/apache2";
const MODULES: &str = "/usr/lib/apache2/modules";
const APT_HINT: &str = "install with `apt-get update && apt-get install -y apache2 \
     libapache2-mod-auth-openidc` (or run `make test-deps`, which installs them)";

/// Runs tests/oidc/setup.sh once per test binary.
fn setup() {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    if let Err(e) = DONE.get_or_init(|| run_setup("tests/oidc/setup.sh")) {
        panic!("{e}");
    }
}

/// keygate with its issuer on a free loopback port, `openid profile email`
/// open to anonymous registration and `alice` (with an email).
fn start_keygate(dir: &Path) -> Keygate {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = format!(
        r#"[server]
issuer = "{base}"

[store]
url = "memory"

[oauth]
scopes = ["openid", "profile", "email"]

[registration]
open = true
open_scopes = ["openid", "profile", "email"]

[[users]]
username = "{USER}"
password_hash = "{hash}"
email = "{EMAIL}"
"#,
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

/// A confidential client registered over RFC 7591 (anonymous, open
/// registration); its `client_id` and `client_secret`.
async fn register(
    keygate: &Keygate,
    redirect_uri: &str,
    post_logout_redirect_uri: &str,
) -> (String, String) {
    let resp = reqwest::Client::new()
        .post(keygate.url("/oauth/register"))
        .json(&serde_json::json!({
            "client_name": "keygate test: relying party",
            "redirect_uris": [redirect_uri],
            "post_logout_redirect_uris": [post_logout_redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": SCOPE,
        }))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(status, 201, "registration: {body:#}");
    (
        body["client_id"].as_str().unwrap().to_string(),
        body["client_secret"].as_str().unwrap().to_string(),
    )
}

/// Runs a relying-party script to completion (bounded); its JSON report.
async fn run_script(keygate: &Keygate, program: PathBuf, args: Vec<String>) -> serde_json::Value {
    let script = args[0].clone();
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(&program);
        cmd.args(&args).current_dir(root().join("tests/oidc"));
        run_bounded(&mut cmd, Duration::from_secs(60))
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let log = keygate.log.lock().unwrap().join("\n");
    assert!(
        out.status.success(),
        "{script} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}\nkeygate:\n{log}",
        out.status
    );
    stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("{script}: no JSON report:\n{stdout}\n{stderr}"))
}

/// Runs tests/oidc/rp.mjs (openid-client) for a fresh client; its report.
async fn openid_client(logout: bool) -> (Keygate, String, serde_json::Value) {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let keygate = start_keygate(dir.path());
    let (client_id, secret) = register(&keygate, CALLBACK, LOGGED_OUT).await;
    let mut args = vec![
        root().join("tests/oidc/rp.mjs").display().to_string(),
        keygate.base.clone(),
        client_id.clone(),
        secret,
        CALLBACK.into(),
        USER.into(),
        PASSWORD.into(),
    ];
    if logout {
        args.push(LOGGED_OUT.into());
    }
    let node = root().join("tests/oidc/node_modules/.bin/node");
    let report = run_script(&keygate, node, args).await;
    (keygate, client_id, report)
}

/// A `sub` as keygate issues it: present, and never the username.
fn assert_sub(sub: &serde_json::Value, context: &serde_json::Value) {
    let sub = sub.as_str().unwrap_or_default();
    assert!(!sub.is_empty() && sub != USER, "sub {sub:?}: {context:#}");
}

#[tokio::test]
async fn openid_client_signs_in_validates_the_id_token_reads_userinfo_and_refreshes() {
    let (keygate, client_id, r) = openid_client(false).await;
    assert_eq!(
        r["authorization_pages"],
        serde_json::json!(["login", "consent"])
    );
    // Validated by the library (signature, iss, aud, exp, nonce, at_hash);
    // here: the claims it handed back.
    let claims = &r["claims"];
    assert_eq!(claims["iss"], keygate.base.as_str(), "{r:#}");
    assert_eq!(claims["aud"], client_id.as_str(), "{r:#}");
    assert_sub(&claims["sub"], &r);
    assert!(claims["nonce"].is_string(), "{r:#}");
    assert!(claims["at_hash"].is_string(), "{r:#}");
    assert!(claims["auth_time"].is_number(), "{r:#}");
    // UserInfo for the same subject (the library checks `sub` too).
    assert_eq!(r["userinfo"]["sub"], claims["sub"], "{r:#}");
    assert_eq!(r["userinfo"]["preferred_username"], USER, "{r:#}");
    assert_eq!(r["userinfo"]["email"], EMAIL, "{r:#}");
    // Refresh: a new ID token for the same user and client, validated by
    // the library again.
    let refreshed = &r["refreshed_claims"];
    assert!(r["refreshed_id_token"].is_string(), "{r:#}");
    assert_eq!(refreshed["sub"], claims["sub"], "{r:#}");
    assert_eq!(refreshed["aud"], claims["aud"], "{r:#}");
    assert_eq!(refreshed["auth_time"], claims["auth_time"], "{r:#}");
}

#[tokio::test]
async fn openid_client_signs_in_and_out_logout() {
    let (_keygate, _client_id, r) = openid_client(true).await;
    assert_eq!(r["sign_in_asked_before_logout"], false, "{r:#}");
    let landed = url::Url::parse(r["logout_landed"].as_str().unwrap()).unwrap();
    assert!(
        landed.as_str().starts_with(LOGGED_OUT),
        "back at the registered post_logout_redirect_uri: {r:#}"
    );
    let state = landed
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned());
    assert_eq!(
        state.as_deref(),
        r["logout_state_sent"].as_str(),
        "state: {r:#}"
    );
    assert_eq!(r["sign_in_asked_after_logout"], true, "session gone: {r:#}");
}

#[tokio::test]
async fn authlib_validates_the_id_token_of_a_code_flow() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let keygate = start_keygate(dir.path());
    let (client_id, secret) = register(&keygate, CALLBACK, LOGGED_OUT).await;
    let python = target_dir().join("oidc-py/bin/python");
    let args = vec![
        root().join("tests/oidc/rp.py").display().to_string(),
        keygate.base.clone(),
        client_id.clone(),
        secret,
        CALLBACK.into(),
        USER.into(),
        PASSWORD.into(),
    ];
    let r = run_script(&keygate, python, args).await;
    assert_eq!(r["header"]["typ"], "JWT", "{r:#}");
    assert!(r["header"]["kid"].is_string(), "{r:#}");
    let claims = &r["claims"];
    assert_eq!(claims["iss"], keygate.base.as_str(), "{r:#}");
    assert_eq!(claims["aud"], client_id.as_str(), "{r:#}");
    assert_sub(&claims["sub"], &r);
    assert!(claims["at_hash"].is_string(), "{r:#}");
    // Authlib's validation has teeth: both mistakes are refused.
    assert_eq!(r["wrong_nonce"], "invalid_claim", "{r:#}");
    assert_eq!(r["wrong_access_token"], "invalid_claim", "{r:#}");
    assert_eq!(r["userinfo"]["sub"], claims["sub"], "{r:#}");
    assert_eq!(r["userinfo"]["preferred_username"], USER, "{r:#}");
    assert_eq!(r["userinfo"]["email"], EMAIL, "{r:#}");
}

// --- Apache httpd + mod_auth_openidc ---

/// The small backend behind Apache: `/echo/…` answers the `OIDC_CLAIM_*`
/// headers it received, one `name=value` line each (sorted); `/logged-out`
/// is the page the RP sends the user to after logout.
async fn backend() -> (u16, tokio::task::JoinHandle<()>) {
    #[poem::handler]
    fn echo(req: &poem::Request) -> String {
        let mut lines: Vec<String> = req
            .headers()
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("oidc_claim_"))
            .map(|(k, v)| format!("{}={}", k.as_str(), v.to_str().unwrap_or("?")))
            .collect();
        lines.sort();
        format!("backend saw\n{}", lines.join("\n"))
    }
    #[poem::handler]
    fn logged_out() -> &'static str {
        "logged out of the relying party"
    }
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
    let app = poem::Route::new()
        .at("/echo/*", poem::get(echo))
        .at("/logged-out", poem::get(logged_out));
    let server = tokio::spawn(async move {
        let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
    });
    (port, server)
}

/// `apache2 -DFOREGROUND` with a generated config in a temp dir; stopped by
/// PID when dropped (TERM to the parent, which stops its children; any
/// child left after that is killed by PID).
struct Apache {
    child: Child,
    dir: tempfile::TempDir,
    base: String,
}

impl Apache {
    /// The protected area is `/protected/` (proxied to the backend's
    /// `/echo/`), the redirect URI `/protected/redirect_uri`, and
    /// `/logged-out` (proxied, unprotected) the post-logout page.
    fn start(port: u16, keygate: &Keygate, client: &(String, String), backend: u16) -> Apache {
        for bin in [
            PathBuf::from(APACHE),
            Path::new(MODULES).join("mod_auth_openidc.so"),
        ] {
            assert!(bin.exists(), "{} is missing: {APT_HINT}", bin.display());
        }
        let dir = tempfile::Builder::new()
            .prefix("keygate-apache-")
            .tempdir()
            .unwrap();
        let d = dir.path().display();
        let base = format!("http://127.0.0.1:{port}");
        // As root, Apache's children must switch to an unprivileged user.
        let user = if is_root() {
            "User www-data\nGroup www-data\n"
        } else {
            ""
        };
        // Encrypts its state and session cookies; any value will do here.
        let passphrase = format!("keygate-test-{port}-{}", std::process::id());
        let config = format!(
            r#"ServerRoot "{d}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile "{d}/httpd.pid"
DefaultRuntimeDir "{d}"
ErrorLog "{d}/error.log"
LogLevel warn auth_openidc:info
{user}
LoadModule mpm_event_module {MODULES}/mod_mpm_event.so
LoadModule authn_core_module {MODULES}/mod_authn_core.so
LoadModule authz_core_module {MODULES}/mod_authz_core.so
LoadModule authz_user_module {MODULES}/mod_authz_user.so
LoadModule auth_openidc_module {MODULES}/mod_auth_openidc.so
LoadModule proxy_module {MODULES}/mod_proxy.so
LoadModule proxy_http_module {MODULES}/mod_proxy_http.so
StartServers 1
ServerLimit 1
ThreadsPerChild 16
MaxRequestWorkers 16
MinSpareThreads 1
MaxSpareThreads 32

OIDCProviderMetadataURL {issuer}/.well-known/openid-configuration
OIDCClientID {client_id}
OIDCClientSecret {client_secret}
OIDCRedirectURI {base}/protected/redirect_uri
OIDCCryptoPassphrase {passphrase}
OIDCScope "{SCOPE}"
OIDCPKCEMethod S256
OIDCProviderTokenEndpointAuth client_secret_basic
OIDCPassClaimsAs headers

<Location /protected>
  AuthType openid-connect
  Require valid-user
</Location>
ProxyPass /protected/redirect_uri !
ProxyPass /protected/ http://127.0.0.1:{backend}/echo/
ProxyPass /logged-out http://127.0.0.1:{backend}/logged-out
"#,
            issuer = keygate.base,
            client_id = client.0,
            client_secret = client.1,
        );
        let conf = dir.path().join("httpd.conf");
        std::fs::write(&conf, config).unwrap();
        let child = Command::new(APACHE)
            .arg("-f")
            .arg(&conf)
            .arg("-DFOREGROUND")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {APACHE}: {e}; {APT_HINT}"));
        let mut apache = Apache { child, dir, base };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = apache.child.try_wait().unwrap() {
                panic!(
                    "apache2 exited ({status}) before listening:\n{}",
                    apache.log()
                );
            }
            assert!(Instant::now() < deadline, "apache2 did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        apache
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Apache's error log (mod_auth_openidc logs there).
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Apache {
    fn drop(&mut self) {
        let pid = self.child.id();
        let children = descendants(pid);
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Children that outlived their parent (should not happen): by PID,
        // only if they still are children of ours (parent now init).
        let left: Vec<String> = children
            .iter()
            .filter(|c| Path::new(&format!("/proc/{c}")).exists())
            .map(u32::to_string)
            .collect();
        if !left.is_empty() {
            let _ = Command::new("kill").arg("-KILL").args(&left).status();
        }
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        == Some("0")
}

/// The PIDs whose parent is `pid` (Apache's children; one level is all
/// that `apache2 -DFOREGROUND` makes).
fn descendants(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    // Field 4 (ppid) follows the `(comm)` field.
                    let rest = &s[s.rfind(')')? + 2..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// keygate, the backend and Apache in front of it, with a client registered
/// for Apache's redirect URI and post-logout page.
struct RpStack {
    apache: Apache,
    keygate: Keygate,
    _backend: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn rp_stack() -> RpStack {
    let dir = tempfile::tempdir().unwrap();
    let keygate = start_keygate(dir.path());
    let (backend_port, backend) = backend().await;
    let port = free_port();
    let client = register(
        &keygate,
        &format!("http://127.0.0.1:{port}/protected/redirect_uri"),
        &format!("http://127.0.0.1:{port}/logged-out"),
    )
    .await;
    let apache = Apache::start(port, &keygate, &client, backend_port);
    RpStack {
        apache,
        keygate,
        _backend: backend,
        _dir: dir,
    }
}

impl RpStack {
    /// Apache's error log and keygate's, for failure messages.
    fn logs(&self) -> String {
        format!(
            "apache:\n{}\nkeygate:\n{}",
            self.apache.log(),
            self.keygate.log.lock().unwrap().join("\n")
        )
    }

    fn is_keygate(&self, u: &url::Url) -> bool {
        u.as_str().starts_with(&self.keygate.base)
    }
}

/// Chromium visits the protected page, signs in at keygate and consents;
/// returns the page text (the backend's echo).
async fn sign_in_through_apache(stack: &RpStack, browser: &Browser) -> String {
    browser.goto(&stack.apache.url("/protected/")).await;
    let at = browser
        .wait_for_url(
            |u| stack.is_keygate(u) || u.path() == "/protected/",
            Duration::from_secs(20),
        )
        .await;
    assert!(
        stack.is_keygate(&at) && at.path() == "/login",
        "sent to keygate's sign-in page, not {at}\n{}",
        stack.logs()
    );
    browser.fill("#username", USER).await;
    browser.fill("#password", PASSWORD).await;
    browser
        .click("form[action='/login'] button[type=submit]")
        .await;
    browser
        .wait_for_url(
            |u| stack.is_keygate(u) && u.path() == "/oauth/authorize",
            Duration::from_secs(20),
        )
        .await;
    browser.click("#allow").await;
    let back = browser
        .wait_for_url(
            |u| u.as_str().starts_with(&stack.apache.base),
            Duration::from_secs(20),
        )
        .await;
    // mod_auth_openidc redeems the code at its redirect URI, then sends the
    // browser on to the page it first asked for.
    if back.path() != "/protected/" {
        browser
            .wait_for_url(|u| u.path() == "/protected/", Duration::from_secs(20))
            .await;
    }
    let text = browser.text("body").await;
    assert!(
        text.starts_with("backend saw"),
        "the backend's page: {text}\n{}",
        stack.logs()
    );
    text
}

#[tokio::test]
async fn mod_auth_openidc_signs_a_chromium_user_in_and_passes_the_claims_to_the_backend() {
    let stack = rp_stack().await;
    let browser = Browser::start().await;
    let text = sign_in_through_apache(&stack, &browser).await;
    browser.close().await;
    let lines: Vec<&str> = text.lines().collect();
    // alice's `sub`, from the ID token or UserInfo: present, not the username.
    let sub = lines
        .iter()
        .find_map(|l| l.strip_prefix("oidc_claim_sub="))
        .unwrap_or_default();
    assert!(
        !sub.is_empty() && sub != USER,
        "sub {sub:?} in the backend's echo:\n{text}\n{}",
        stack.logs()
    );
    for want in [
        format!("oidc_claim_preferred_username={USER}"),
        format!("oidc_claim_email={EMAIL}"),
        format!("oidc_claim_iss={}", stack.keygate.base),
    ] {
        assert!(
            lines.contains(&want.as_str()),
            "{want} missing from the backend's echo:\n{text}\n{}",
            stack.logs()
        );
    }
}

#[tokio::test]
async fn mod_auth_openidc_signs_a_chromium_user_in_and_out_logout() {
    let stack = rp_stack().await;
    let browser = Browser::start().await;
    sign_in_through_apache(&stack, &browser).await;
    // The RP's logout: mod_auth_openidc sends the browser to keygate's
    // end_session_endpoint with id_token_hint and post_logout_redirect_uri.
    let after = stack.apache.url("/logged-out");
    browser
        .goto(&stack.apache.url(&format!(
            "/protected/redirect_uri?logout={}",
            crate::helpers::urlencode(&after)
        )))
        .await;
    let at = browser
        .wait_for_url(
            |u| {
                u.as_str().starts_with(&after)
                    || (stack.is_keygate(u) && u.path() == "/oauth/logout")
            },
            Duration::from_secs(20),
        )
        .await;
    if stack.is_keygate(&at) {
        // keygate's confirmation page (SPEC: `decision=logout`).
        browser.click("button[name=decision][value=logout]").await;
    }
    browser
        .wait_for_url(|u| u.as_str().starts_with(&after), Duration::from_secs(20))
        .await;
    assert_eq!(
        browser.text("body").await,
        "logged out of the relying party"
    );
    // keygate's session is gone: the protected page leads to its sign-in
    // form (with the session alive it would show the consent page).
    browser.goto(&stack.apache.url("/protected/")).await;
    let at = browser
        .wait_for_url(
            |u| stack.is_keygate(u) || u.path() == "/protected/",
            Duration::from_secs(20),
        )
        .await;
    assert!(
        stack.is_keygate(&at) && at.path() == "/login",
        "after the RP's logout keygate asks to sign in again, but the browser is at {at}\n{}",
        stack.logs()
    );
    browser.close().await;
}
