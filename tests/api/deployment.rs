//! The production deployment of docs/production.md, run for real: the
//! guide's nginx configuration (docs/deploy/nginx.conf) in a Debian nginx on
//! loopback with a test certificate, in front of `keygate serve` with the
//! production example config (placeholders overridden by `KEYGATE_*`) on a
//! real redis-server; and the guide's systemd unit (docs/deploy/keygate.service)
//! checked by `systemd-analyze`.
//!
//! Loopback has many addresses: the test's client connects from 127.0.0.3,
//! nginx forwards from 127.0.0.2 (`proxy_bind`, the one line the test adds)
//! and only 127.0.0.2 is in `server.trusted_proxies`, so the client address
//! keygate logs tells the forwarded address from the proxy's own and from a
//! forged header.

use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

use crate::helpers::{params_of, urlencode, PASSWORD, USER};
use crate::ports::free_port;
use crate::process::{command, output_with_stdin, Keygate};
use crate::redis_server::RedisServer;
use crate::steps;

const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const PROXY_ADDR: &str = "127.0.0.2";
const REDIRECT: &str = "https://app.localhost/callback";

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `nginx` from `KEYGATE_TEST_NGINX_BIN`, `PATH` or /usr/sbin; a missing
/// binary fails the test with install instructions.
fn nginx_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("KEYGATE_TEST_NGINX_BIN") {
        return bin.into();
    }
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!("nginx is missing: `sudo apt-get install -y nginx-light` (or run `make test-deps`), or set KEYGATE_TEST_NGINX_BIN")
    })
}

/// nginx running docs/deploy/nginx.conf as one process (`master_process
/// off`: no worker outlives it); killed (by PID) when dropped.
struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    /// The guide's server block with its listen address, certificate paths
    /// and upstream replaced, `proxy_bind` added, inside a minimal main
    /// configuration whose every path is under `dir`.
    fn start(dir: &Path, port: u16, upstream: &str, cert: &Path, key: &Path) -> Nginx {
        let guide = std::fs::read_to_string(repo_file("docs/deploy/nginx.conf")).unwrap();
        let mut conf = String::new();
        let mut upstream_written = false;
        for line in guide.lines() {
            let t = line.trim();
            let replaced = if t.starts_with("server 10.0.0.") {
                if upstream_written {
                    continue;
                }
                upstream_written = true;
                format!("    server {upstream};")
            } else if t == "listen 443 ssl http2;" {
                format!("    listen 127.0.0.1:{port} ssl http2;")
            } else if t.starts_with("ssl_certificate ") {
                format!("    ssl_certificate {};", cert.display())
            } else if t.starts_with("ssl_certificate_key ") {
                format!("    ssl_certificate_key {};", key.display())
            } else if t == "proxy_pass http://keygate;" {
                format!("{line}\n        proxy_bind {PROXY_ADDR};")
            } else {
                line.to_string()
            };
            conf.push_str(&replaced);
            conf.push('\n');
        }
        assert!(
            upstream_written
                && conf.contains(&format!("127.0.0.1:{port} ssl"))
                && conf.contains("proxy_bind"),
            "docs/deploy/nginx.conf no longer has the lines this test substitutes:\n{conf}"
        );
        std::fs::write(dir.join("keygate.conf"), conf).unwrap();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let d = dir.display();
        let main = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\n\
             events {{ worker_connections 128; }}\n\
             http {{\n  access_log {d}/access.log;\n\
               client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n\
               fastcgi_temp_path {d}/tmp/fastcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n\
               scgi_temp_path {d}/tmp/scgi;\n  include {d}/keygate.conf;\n}}\n"
        );
        // nginx's workers run as an unprivileged user when started as root;
        // run them as the test's user instead so they can use `dir`.
        let main = if is_root() {
            format!("user root;\n{main}")
        } else {
            main
        };
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, main).unwrap();
        let bin = nginx_bin();
        let test = Command::new(&bin)
            .arg("-t")
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .output()
            .unwrap();
        assert!(
            test.status.success(),
            "nginx -t refuses the guide's configuration:\n{}",
            String::from_utf8_lossy(&test.stderr)
        );
        let child = Command::new(&bin)
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut nginx = Nginx {
            child,
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = nginx.child.try_wait().unwrap() {
                panic!("nginx exited ({status}):\n{}", nginx.error_log());
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen:\n{}",
                nginx.error_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        nginx
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a keygate command with the production example and `env`; returns stdout.
fn keygate_cli(dir: &Path, env: &[(&str, String)], args: &[&str], stdin: &str) -> String {
    let out = output_with_stdin(
        command(dir)
            .arg("--config")
            .arg(repo_file("config/production.example.toml"))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .args(args),
        stdin,
    );
    assert!(
        out.status.success(),
        "keygate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A browser behind nginx: trusts the test CA, keeps cookies, follows no
/// redirects, connects from [`CLIENT_ADDR`].
fn browser(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .local_address(IpAddr::V4(CLIENT_ADDR))
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}

fn jwt_claims(jwt: &str) -> serde_json::Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// docs/production.md's deployment behind nginx: the issuer, every
/// published endpoint and every token's `iss` are the public https URL;
/// every cookie is `Secure` (and the session `HttpOnly`, `SameSite=Lax`);
/// the whole code flow with PKCE and consent works through the proxy;
/// keygate rate limits and logs the client's address from nginx's
/// `X-Forwarded-For`, not the proxy's, and not one a client forges;
/// `/metrics` is not reachable through the proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_the_guides_nginx_issuer_cookies_and_client_address_are_right() {
    let redis = RedisServer::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tls = crate::test_ca::TestCa::new();
    let ca = tls.ca_pem.clone();
    let (cert_path, key_path) = (d.join("fullchain.pem"), d.join("privkey.pem"));
    std::fs::write(&cert_path, &tls.cert_pem).unwrap();
    std::fs::write(&key_path, &tls.key_pem).unwrap();
    let (public_port, keygate_port) = (free_port(), free_port());
    let issuer = format!("https://localhost:{public_port}");
    let env = vec![
        ("KEYGATE_SERVER_ISSUER", issuer.clone()),
        ("KEYGATE_SERVER_LISTEN", format!("127.0.0.1:{keygate_port}")),
        ("KEYGATE_SERVER_TRUSTED_PROXIES", PROXY_ADDR.to_string()),
        ("KEYGATE_STORE_URL", redis.url()),
        ("KEYGATE_METRICS_LISTEN", "127.0.0.1:0".to_string()),
        ("KEYGATE_LOG_FORMAT", "text".to_string()),
    ];

    // The guide's first steps: a key set, the first user, a client.
    keygate_cli(d, &env, &["keys", "generate"], "");
    keygate_cli(
        d,
        &env,
        &["user", "add", USER, "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    let created = keygate_cli(
        d,
        &env,
        &[
            "client",
            "create",
            "--name",
            "Web app",
            "--redirect-uri",
            REDIRECT,
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--scope",
            "openid profile",
            "--json",
        ],
        "",
    );
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let client_id = created["client_id"].as_str().unwrap().to_string();
    let secret = created["client_secret"].as_str().unwrap().to_string();

    let keygate = Keygate::serve(
        command(d)
            .arg("--config")
            .arg(repo_file("config/production.example.toml"))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str()))),
    );
    let nginx_dir = tempfile::tempdir().unwrap();
    let _nginx = Nginx::start(
        nginx_dir.path(),
        public_port,
        &format!("127.0.0.1:{keygate_port}"),
        &cert_path,
        &key_path,
    );
    let http = browser(&ca);
    steps::wait_ready(&http, &issuer, "keygate behind nginx").await;

    // Discovery names the public URL everywhere.
    let meta: serde_json::Value = http
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], issuer.as_str());
    for key in [
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "userinfo_endpoint",
    ] {
        let url = meta[key].as_str().unwrap_or_default();
        assert!(url.starts_with(&format!("{issuer}/")), "{key}: {url}");
    }

    // The login page's cookies are Secure behind the https issuer.
    let resp = http.get(format!("{issuer}/login")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers().contains_key("strict-transport-security"),
        "nginx adds HSTS"
    );
    let cookies: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(!cookies.is_empty(), "the login form sets its CSRF cookie");
    for c in &cookies {
        assert!(c.contains("; Secure"), "not Secure behind https: {c}");
    }

    // The code flow through the proxy.
    let (verifier, challenge) = crate::helpers::pkce_pair();
    let path = format!(
        "/oauth/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid%20profile&state=s1&nonce=n1&code_challenge={challenge}&code_challenge_method=S256",
        urlencode(REDIRECT)
    );
    let resp = http.get(format!("{issuer}{path}")).send().await.unwrap();
    assert_eq!(resp.status(), 303, "to the login page");
    let resp = steps::login(&http, &issuer, &path).await;
    assert_eq!(resp.status(), 303, "signed in");
    let session: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let session = session
        .iter()
        .find(|c| !c.starts_with("kg_csrf="))
        .unwrap_or_else(|| panic!("a session cookie: {session:?}"));
    for attr in ["; Secure", "; HttpOnly", "; SameSite=Lax"] {
        assert!(
            session.contains(attr),
            "session cookie lacks {attr}: {session}"
        );
    }
    let to_client = steps::consent(&http, &issuer, &path, "allow").await;
    assert!(to_client.starts_with(REDIRECT), "{to_client}");
    let params = params_of(&to_client, false);
    assert_eq!(params["iss"], issuer, "RFC 9207 iss");
    let resp = steps::post_form(
        &http,
        &format!("{issuer}/oauth/token"),
        Some((&client_id, &secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &params["code"]),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    let body = steps::ok_json(resp).await;
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(jwt_claims(access)["iss"], issuer.as_str());
    assert_eq!(
        jwt_claims(body["id_token"].as_str().unwrap())["iss"],
        issuer.as_str()
    );
    let me = http
        .get(format!("{issuer}/oauth/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    // The client's address, not the proxy's and not a forged one.
    let fresh = browser(&ca);
    let html = steps::page(&fresh, &issuer, "/login").await;
    let csrf = crate::helpers::hidden_value(&html, "csrf_token");
    let resp = fresh
        .post(format!("{issuer}/login"))
        .header("x-forwarded-for", "203.0.113.66")
        .form(&[
            ("username", "mallory-probe"),
            ("password", "wrong"),
            ("csrf_token", csrf.as_str()),
            ("return_to", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let line = keygate
        .wait_for_log(&["login_failed", "mallory-probe"])
        .await;
    assert!(
        line.contains(&format!("client_ip={CLIENT_ADDR}")),
        "the client's address: {line}"
    );
    assert!(!line.contains("203.0.113.66"), "a forged address: {line}");

    // /metrics is private.
    let metrics = http.get(format!("{issuer}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 404);
}

/// docs/deploy/keygate.service is a unit systemd accepts
/// (`systemd-analyze verify`, no warning) and its sandboxing keeps the
/// exposure score `systemd-analyze security` gives at most 2.0 ("OK").
#[test]
fn the_guides_systemd_unit_verifies_and_is_sandboxed() {
    let bin = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .iter()
        .find(|p| Path::new(p).is_file())
        .unwrap_or_else(|| {
            panic!("systemd-analyze is missing: `sudo apt-get install -y systemd` (or run `make test-deps`)")
        });
    let unit = std::fs::read_to_string(repo_file("docs/deploy/keygate.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/keygate serve"),
        "{unit}"
    );
    // verify checks that ExecStart's binary exists: point it at this build's.
    let unit = unit.replace("/usr/local/bin/keygate", env!("CARGO_BIN_EXE_keygate"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keygate.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new(bin).arg("verify").arg(&path).output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "systemd-analyze verify: {said}");
    assert!(
        !said.contains("keygate.service"),
        "systemd-analyze verify warns about the unit: {said}"
    );
    let out = Command::new(bin)
        .args(["security", "--offline=true", "--threshold=20", "--no-pager"])
        .arg(&path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the unit's exposure is above 2.0:\n{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("Overall exposure level"), "{said}");
}
