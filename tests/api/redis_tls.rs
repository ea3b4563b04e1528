//! A throwaway `redis-server` that speaks only TLS and knows only ACL users
//! (issue 17 item 4), next to the plain one of `redis_server.rs`.
//!
//! Each [`TlsRedis`] gets its own test PKI made with rcgen ([`Pki`]: a CA, a
//! server certificate for 127.0.0.1 and localhost, a client certificate, and
//! an unrelated CA for "wrong CA" tests), listens on `--tls-port` only
//! (`--port 0`), verifies client certificates when asked to
//! (`--tls-auth-clients yes`), and loads an aclfile in which the `default`
//! user is off, a harness-only admin user can do anything (readiness, ACL
//! LOG), and the keygate user is whatever line the test passes (normally
//! the one documented in docs/redis.md, [`documented_acl_line`]). It is
//! killed by PID when dropped.
//!
//! A `redis-server` built without TLS fails the test with install
//! instructions. Talks to Redis only through the redis crate (TLS by
//! rustls): no hand-made TLS or RESP.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::{ClientTlsConfig, TlsCertificates};
use tempfile::TempDir;

use crate::ports::free_port;
use crate::redis_server::read_log;

/// Overrides the `redis-server` binary (as for `redis_server.rs`).
const BIN_ENV: &str = "KEYGATE_TEST_REDIS_BIN";
/// How long a fresh server may take to answer.
const READY_DEADLINE: Duration = Duration::from_secs(10);
/// Fresh ports tried when another process grabs ours between probe and bind.
const PORT_ATTEMPTS: usize = 5;
/// The placeholder password of the documented ACL line.
pub const PASSWORD_PLACEHOLDER: &str = ">REPLACE-WITH-A-LONG-RANDOM-PASSWORD";
/// The harness's own user: readiness probe and inspection only.
const ADMIN_USER: &str = "harness-admin";

/// The `user keygate …` line of docs/redis.md `## TLS and ACL`, with its
/// placeholder password ([`PASSWORD_PLACEHOLDER`]). Tests run Redis with
/// exactly this line, so the documentation cannot drift from what works.
///
/// # Panics
/// If the section or the line is missing, or there is more than one.
pub fn documented_acl_line() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/redis.md");
    let text = std::fs::read_to_string(&path).expect("read docs/redis.md");
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with("TLS and ACL\n"))
        .expect("docs/redis.md has a `## TLS and ACL` section");
    let lines: Vec<&str> = section
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("user keygate "))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "exactly one `user keygate …` line in docs/redis.md `## TLS and ACL`: {lines:?}"
    );
    assert!(
        lines[0].contains(PASSWORD_PLACEHOLDER),
        "the documented line sets the password {PASSWORD_PLACEHOLDER}: {}",
        lines[0]
    );
    lines[0].to_string()
}

/// The documented ACL line with `password` in place of the placeholder.
pub fn acl_line_with_password(line: &str, password: &str) -> String {
    line.replace(PASSWORD_PLACEHOLDER, &format!(">{password}"))
}

/// A random password with characters that must be percent-encoded in a URL
/// (`@`, `:`, `/`, `%`), so the tests show such passwords work.
pub fn random_password() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 18];
    ring::rand::SystemRandom::new().fill(&mut bytes).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("kg@p:w/d%{hex}")
}

/// `rediss://USER:PASSWORD@127.0.0.1:PORT/0`, both percent-encoded.
pub fn rediss_url(port: u16, user: &str, password: &str) -> String {
    let enc = |s: &str| -> String {
        url::form_urlencoded::byte_serialize(s.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };
    format!(
        "rediss://{}:{}@127.0.0.1:{port}/0",
        enc(user),
        enc(password)
    )
}

/// The test PKI, as PEM files in a temp dir.
pub struct Pki {
    dir: TempDir,
}

impl Pki {
    /// A CA; a server certificate for 127.0.0.1 and localhost and a client
    /// certificate, both signed by it; and an unrelated CA.
    pub fn generate() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("keygate-pki-")
            .tempdir()
            .unwrap();
        let (ca_params, ca_key, ca_cert) = ca("keygate test Redis CA");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        write("ca.crt", ca_cert.pem());
        for (name, sans, usage) in [
            (
                "server",
                vec!["127.0.0.1".to_string(), "localhost".to_string()],
                rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            ),
            (
                "client",
                vec!["keygate".to_string()],
                rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            ),
        ] {
            let mut params = rcgen::CertificateParams::new(sans).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, format!("keygate test {name}"));
            params.use_authority_key_identifier_extension = true;
            params.extended_key_usages.push(usage);
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &issuer).unwrap();
            write(&format!("{name}.crt"), cert.pem());
            write(&format!("{name}.key"), key.serialize_pem());
        }
        let (_, _, other) = ca("an unrelated CA");
        write("other-ca.crt", other.pem());
        Pki { dir }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The CA that signed the server and client certificates.
    pub fn ca_file(&self) -> PathBuf {
        self.file("ca.crt")
    }

    /// A CA that signed nothing here.
    pub fn other_ca_file(&self) -> PathBuf {
        self.file("other-ca.crt")
    }

    /// The client certificate (for `tls-auth-clients yes`).
    pub fn client_cert_file(&self) -> PathBuf {
        self.file("client.crt")
    }

    /// The client certificate's private key.
    pub fn client_key_file(&self) -> PathBuf {
        self.file("client.key")
    }

    /// The PEM material as the redis crate takes it, with the client certificate.
    pub fn certificates(&self) -> TlsCertificates {
        TlsCertificates {
            client_tls: Some(ClientTlsConfig {
                client_cert: std::fs::read(self.client_cert_file()).unwrap(),
                client_key: std::fs::read(self.client_key_file()).unwrap(),
            }),
            root_cert: Some(std::fs::read(self.ca_file()).unwrap()),
        }
    }
}

/// A self-signed CA: its parameters, key and certificate.
fn ca(name: &str) -> (rcgen::CertificateParams, rcgen::KeyPair, rcgen::Certificate) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (params, key, cert)
}

/// How to run a [`TlsRedis`].
pub struct TlsOptions {
    /// `--tls-auth-clients yes` (Redis' default): clients must present a
    /// certificate signed by the CA.
    pub auth_clients: bool,
    /// ACL lines besides `default` (off) and the harness admin, e.g.
    /// [`documented_acl_line`] with a password.
    pub users: Vec<String>,
}

/// A running TLS-only `redis-server` child process.
pub struct TlsRedis {
    bin: PathBuf,
    port: u16,
    /// `--dir`, the aclfile and `redis.log`; deleted with the server.
    dir: TempDir,
    child: Option<Child>,
    pki: Pki,
    admin_password: String,
}

impl TlsRedis {
    /// Starts a server on a free loopback TLS port with a fresh PKI and
    /// waits until it answers over TLS (as itself: PID checked).
    ///
    /// # Panics
    /// If the binary is missing or lacks TLS support (with install
    /// instructions), or if no server becomes ready (with its log).
    pub fn start(options: TlsOptions) -> Self {
        let bin = std::env::var_os(BIN_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("redis-server"));
        let dir = tempfile::Builder::new()
            .prefix("keygate-redis-tls-")
            .tempdir()
            .unwrap();
        let admin_password = random_password().replace(['@', ':', '/', '%'], "");
        let mut acl =
            format!("user default off\nuser {ADMIN_USER} on >{admin_password} ~* &* +@all\n");
        for line in &options.users {
            acl.push_str(line);
            acl.push('\n');
        }
        std::fs::write(dir.path().join("users.acl"), acl).unwrap();
        let mut server = TlsRedis {
            bin,
            port: 0,
            dir,
            child: None,
            pki: Pki::generate(),
            admin_password,
        };
        let mut last_failure = String::new();
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port();
            match server.try_start(options.auth_clients) {
                Ok(()) => return server,
                Err(why) => last_failure = why,
            }
        }
        panic!("TLS redis-server did not start after {PORT_ATTEMPTS} ports; last failure:\n{last_failure}");
    }

    /// The loopback TLS port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `rediss://USER:PASSWORD@127.0.0.1:PORT/0`.
    pub fn url(&self, user: &str, password: &str) -> String {
        rediss_url(self.port, user, password)
    }

    /// The test PKI of this server.
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// Runs one command as the harness admin (over TLS with the client
    /// certificate) and returns the reply.
    pub async fn admin(&self, args: &[&str]) -> redis::Value {
        let client = self.admin_client();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query_async(&mut conn).await.unwrap()
    }

    fn admin_client(&self) -> redis::Client {
        redis::Client::build_with_tls(
            rediss_url(self.port, ADMIN_USER, &self.admin_password),
            self.pki.certificates(),
        )
        .unwrap()
    }

    fn try_start(&mut self, auth_clients: bool) -> Result<(), String> {
        let log_path = self.dir.path().join("redis.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let log_err = log.try_clone().unwrap();
        let pki = self.pki.dir.path();
        let spawned = Command::new(&self.bin)
            .args(["--port", "0"])
            .args(["--tls-port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .arg("--tls-cert-file")
            .arg(pki.join("server.crt"))
            .arg("--tls-key-file")
            .arg(pki.join("server.key"))
            .arg("--tls-ca-cert-file")
            .arg(pki.join("ca.crt"))
            .args([
                "--tls-auth-clients",
                if auth_clients { "yes" } else { "no" },
            ])
            .arg("--aclfile")
            .arg(self.dir.path().join("users.acl"))
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--maxmemory-policy", "noeviction"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "`{}` not found ({e}). The Redis TLS tests need a real redis-server (>= 6.2) \
                 built with TLS: install it with `apt-get update && apt-get install -y redis-server` \
                 (Debian's package has TLS), or run `make test`, which installs it; or point \
                 {BIN_ENV} at the binary.",
                self.bin.display()
            ),
            Err(e) => panic!("cannot start `{}`: {e}", self.bin.display()),
        };
        self.child = Some(child);
        let client = self.admin_client();
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    let log = read_log(&log_path);
                    let lower = log.to_lowercase();
                    if lower.contains("tls")
                        && (lower.contains("not supported")
                            || lower.contains("bad directive")
                            || lower.contains("unknown option")
                            || lower.contains("failed to configure tls")
                            || lower.contains("missing implement"))
                    {
                        panic!(
                            "`{}` has no TLS support (it refused the tls-* options). Install a \
                             redis-server built with TLS, e.g. Debian's: \
                             `apt-get update && apt-get install -y redis-server`, or point \
                             {BIN_ENV} at one. Log:\n{log}",
                            self.bin.display()
                        );
                    }
                    return Err(format!(
                        "exited with {status} on port {}; log:\n{log}",
                        self.port
                    ));
                }
            }
            let ours = self.child.as_ref().map(Child::id);
            if ours.is_some() && server_pid(&client) == ours {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.stop();
                panic!(
                    "TLS redis-server on port {} did not answer within {READY_DEADLINE:?}; log:\n{}",
                    self.port,
                    read_log(&log_path)
                );
            }
            // Polling interval, not a wait for readiness.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the server process by its PID and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `process_id` of the Redis answering as the harness admin, if one does.
fn server_pid(client: &redis::Client) -> Option<u32> {
    let mut conn = client
        .get_connection_with_timeout(Duration::from_millis(500))
        .ok()?;
    let info: String = redis::cmd("INFO").arg("server").query(&mut conn).ok()?;
    info.lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
}
