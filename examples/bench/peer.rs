//! The peer of the run: node-oidc-provider (`bench/peers/oidc-provider/`,
//! the exact version in its package-lock.json) issuing RFC 9068 JWT access
//! tokens signed RS256 for `client_credentials`, with keygate's RS256 key.
//!
//! The bench installs it (`npm ci --omit=dev` when `node_modules` is missing
//! or older than the lock file), starts one Node process pinned to keygate's
//! core, checks that its first token is a JWT (`typ` `at+jwt`, RS256, valid
//! signature under the key's public half) and every later one has the same
//! header, and drives it with the same load generator, plans and windows as
//! keygate's own `client_credentials` (concurrency 1 and the run's).
//!
//! A missing Node.js or a failed install is an environment problem of the
//! peer alone: the Peers section says what happened and how to fix it, the
//! goal's check is not met, and the rest of the report is unaffected.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use keygate::tokens::keys::SigningKey;
use serde::Serialize;

use crate::load::{drive, Outcome, Plan};
use crate::procs::{self, Cores, Proc};
use crate::report::{AlgRun, Check};
use crate::SignRate;

/// The peer's name in the report.
pub const NAME: &str = "node-oidc-provider";
/// keygate's throughput over the peer's that issue 13 asks for.
pub const GOAL: f64 = 2.0;
const SCOPE: &str = "api:read";
const CLIENT_ID: &str = "bench-peer";
/// The unrecorded run before the peer's measurements (V8's JIT warms up).
const JIT_WARMUP: Duration = Duration::from_secs(3);

/// What the peer measured (or why it was not measured).
#[derive(Debug, Clone, Serialize)]
pub struct PeerRun {
    pub name: String,
    /// The installed `oidc-provider` version.
    pub version: String,
    /// `node --version`.
    pub node: String,
    /// How it was configured and pinned (one line, for the report).
    pub setup: String,
    /// What the check of the first token found.
    pub first_token: String,
    /// Node.js's bare RS256 signature rate (OpenSSL, `crypto.sign`, the
    /// same key and signing input length, the same core), measured right
    /// after the peer: its signing floor.
    pub node_sign: Option<SignRate>,
    /// Set when the peer did not run (or did not finish): what to do about it.
    pub failed: Option<String>,
    pub rows: Vec<PeerRow>,
}

/// One concurrency, for keygate and for the peer.
#[derive(Debug, Clone, Serialize)]
pub struct PeerRow {
    pub concurrency: usize,
    pub outcome: Outcome,
    /// The peer's CPU time (every thread of the Node process) per request, in µs.
    pub server_cpu_us: f64,
    /// Share of its core the peer used.
    pub server_busy: f64,
    /// keygate's RS256 memory `client_credentials` row at this concurrency,
    /// filled in by [`PeerRun::compare`].
    pub keygate: Option<KeygateSide>,
    /// keygate's req/s ÷ the peer's.
    pub keygate_over_peer: Option<f64>,
    /// The most keygate ÷ peer could be if keygate spent nothing but its
    /// signature (the faster of AWS-LC and ring, measured around keygate's
    /// row) on a token: the peer's CPU per token ÷ one such signature.
    pub ceiling: Option<f64>,
}

/// keygate's figures next to the peer's.
#[derive(Debug, Clone, Serialize)]
pub struct KeygateSide {
    pub per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub server_cpu_us: f64,
    pub errors: u64,
    /// The reference raw RS256 rate (the faster of AWS-LC and ring)
    /// measured around keygate's row (signatures/s).
    pub sign_per_sec: Option<f64>,
}

impl PeerRun {
    fn empty() -> Self {
        Self {
            name: NAME.into(),
            version: String::new(),
            node: String::new(),
            setup: String::new(),
            first_token: String::new(),
            node_sign: None,
            failed: None,
            rows: vec![],
        }
    }

    /// A peer that did not run, with the reason (and what to do about it).
    pub fn not_run(reason: impl Into<String>) -> Self {
        Self {
            failed: Some(reason.into()),
            ..Self::empty()
        }
    }

    /// Pairs every row with keygate's RS256 memory `client_credentials` row
    /// at the same concurrency.
    pub fn compare(&mut self, algs: &[AlgRun]) {
        for row in &mut self.rows {
            let k = algs
                .iter()
                .filter(|a| a.alg == "RS256")
                .flat_map(|a| &a.rows)
                .find(|r| {
                    r.store == "memory"
                        && r.scenario == "client_credentials"
                        && r.concurrency == row.concurrency
                });
            row.keygate = k.map(|r| KeygateSide {
                per_sec: r.outcome.per_sec,
                p50_us: r.outcome.p50_us,
                p99_us: r.outcome.p99_us,
                server_cpu_us: r.server_cpu_us,
                errors: r.outcome.errors,
                sign_per_sec: r.sign_per_sec,
            });
            row.keygate_over_peer = row
                .keygate
                .as_ref()
                .filter(|_| row.outcome.per_sec > 0.0)
                .map(|k| k.per_sec / row.outcome.per_sec);
            row.ceiling = row
                .keygate
                .as_ref()
                .and_then(|k| k.sign_per_sec)
                .map(|sign| row.server_cpu_us * sign / 1e6);
        }
    }

    /// The goal of issue 13 at `concurrency`: keygate ≥ 2 × the peer.
    pub fn check(&self, concurrency: usize) -> Check {
        let what = format!("keygate ≥ {GOAL} × {NAME} (RS256 client_credentials, c={concurrency})");
        let target = format!("≥ {GOAL:.2}");
        let row = self.rows.iter().find(|r| r.concurrency == concurrency);
        match (row, &self.failed) {
            (Some(r), None) => match (&r.keygate, r.keygate_over_peer) {
                (Some(k), Some(x)) if r.outcome.errors == 0 => Check {
                    what,
                    target,
                    measured: format!(
                        "{x:.2} (keygate {:.0}/s, {NAME} {:.0}/s{})",
                        k.per_sec,
                        r.outcome.per_sec,
                        r.ceiling.map_or(String::new(), |c| format!(
                            "; at most {c:.2} with keygate's bare RS256 signature"
                        ))
                    ),
                    met: x >= GOAL,
                },
                (_, x) => Check {
                    what,
                    target,
                    measured: match x {
                        Some(x) => {
                            format!("{x:.2}, but {NAME} failed {} requests", r.outcome.errors)
                        }
                        None => "not compared: no keygate row or no peer throughput".into(),
                    },
                    met: false,
                },
            },
            (_, failed) => Check {
                what,
                target,
                measured: format!(
                    "not measured: {}",
                    failed.as_deref().unwrap_or("no row at this concurrency")
                ),
                met: false,
            },
        }
    }

    /// The report's "Peers" section.
    pub fn markdown(&self) -> String {
        let mut s = String::from("\n## Peers (same run, same core, same load generator)\n\n");
        if let Some(why) = &self.failed {
            let _ = writeln!(s, "{NAME} was not measured: {why}");
            if self.rows.is_empty() {
                return s;
            }
            s.push('\n');
        }
        let _ = writeln!(
            s,
            "{NAME} {} on Node.js {}: {}\n\nFirst token: {}\n",
            self.version, self.node, self.setup, self.first_token
        );
        s.push_str("| server | c | req/s | p50 µs | p99 µs | server CPU µs/req | errors | keygate ÷ peer | ceiling |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for r in &self.rows {
            if let Some(k) = &r.keygate {
                let _ = writeln!(
                    s,
                    "| keygate (RS256, memory store) | {} | {:.0} | {:.0} | {:.0} | {:.1} | {} | | |",
                    r.concurrency, k.per_sec, k.p50_us, k.p99_us, k.server_cpu_us, k.errors
                );
            }
            let o = &r.outcome;
            let _ = writeln!(
                s,
                "| {NAME} {} | {} | {:.0} | {:.0} | {:.0} | {:.1} | {} | {} | {} |",
                self.version,
                r.concurrency,
                o.per_sec,
                o.p50_us,
                o.p99_us,
                r.server_cpu_us,
                o.errors,
                r.keygate_over_peer
                    .map_or("–".into(), |x| format!("**{x:.2}**")),
                r.ceiling.map_or("–".into(), |x| format!("{x:.2}")),
            );
        }
        // What bounds the ratio: both servers' bare signatures.
        let full = self.rows.iter().max_by_key(|r| r.concurrency);
        if let Some((r, k)) = full.and_then(|r| Some((r, r.keygate.as_ref()?))) {
            let ours = k.sign_per_sec.map(|x| 1e6 / x);
            let node = self.node_sign.as_ref().map(|x| x.us);
            let _ = write!(
                s,
                "\nOne RS256 signature on this core: {} for keygate (the faster of AWS-LC and ring), {} with OpenSSL via Node.js `crypto.sign` (the peer). {NAME} spends {:.0} µs of CPU per token",
                ours.map_or("not measured".into(), |x| format!("{x:.0} µs")),
                node.map_or("not measured".into(), |x| format!("{x:.0} µs")),
                r.server_cpu_us,
            );
            if let Some(node) = node {
                let _ = write!(
                    s,
                    " ({:.0} µs besides its signature)",
                    r.server_cpu_us - node
                );
            }
            s.push_str(", keygate ");
            let _ = write!(s, "{:.0} µs", k.server_cpu_us);
            if let Some(ours) = ours {
                let _ = write!(
                    s,
                    " ({:.0} µs besides its signature); ceiling = the peer's CPU per token ÷ one such signature",
                    k.server_cpu_us - ours
                );
            }
            s.push_str(".\n");
        }
        s
    }
}

/// Installs, starts and measures the peer; never fails the run: what went
/// wrong is in [`PeerRun::failed`].
pub async fn run(
    dir: &Path,
    cores: Cores,
    plans: &[Plan],
    sign_secs: f64,
    key: &SigningKey,
    work: &Path,
) -> PeerRun {
    let mut peer = PeerRun::empty();
    if let Err(e) = measure(&mut peer, dir, cores, plans, sign_secs, key, work).await {
        let why = format!("{e:#}");
        eprintln!("  {NAME}: {why}");
        peer.failed = Some(why);
    }
    peer
}

async fn measure(
    peer: &mut PeerRun,
    dir: &Path,
    cores: Cores,
    plans: &[Plan],
    sign_secs: f64,
    key: &SigningKey,
    work: &Path,
) -> anyhow::Result<()> {
    let node = procs::which("node").context(
        "Node.js is not installed. Install Node.js 20 or later with npm (Debian/Ubuntu: \
         `sudo apt-get install -y nodejs npm`; or https://nodejs.org) and run make bench again, \
         or pass `--peers false` to leave the peer out",
    )?;
    peer.node = command_output(&node, &["--version"])?;
    install(dir, work)?;
    peer.version = installed_version(dir)?;

    // The RS256 key keygate signs with: server.mjs reads the PKCS#8 PEM with
    // Node's crypto and hands oidc-provider the private JWK.
    let key_path = key.path.clone();

    let port = procs::free_port()?;
    let issuer = format!("http://127.0.0.1:{port}");
    let secret = keygate::ids::random_token(24);
    let script = dir.join("server.mjs");
    let path = |p: &Path| p.to_str().map(str::to_owned).context("path is not UTF-8");
    let mut cmd = procs::pinned(
        cores.server,
        &node,
        &[
            &path(&script)?,
            &port.to_string(),
            &issuer,
            &path(&key_path)?,
            &key.kid,
            CLIENT_ID,
            &secret,
        ],
    );
    cmd.env("NODE_ENV", "production");
    let mut proc = Proc::start(NAME, cmd, &work.join("peer-oidc-provider.log"))?;
    procs::wait_for_port(&mut proc, port, Duration::from_secs(30))
        .context("see target/bench/work/peer-oidc-provider.log")?;
    peer.setup = format!(
        "one Node process (no cluster), started as `node server.mjs` with NODE_ENV=production, \
         pinned to {} like keygate; default in-memory adapter; one client \
         (`client_credentials`, `client_secret_basic`, scope `{SCOPE}`); \
         `features.resourceIndicators` with a default resource whose tokens are JWTs \
         (`accessTokenFormat: 'jwt'`, RS256, keygate's RS256 key, 900 s like keygate's \
         default `tokens.access_ttl`); defaults otherwise but the keep-alive timeout (120 s, \
         as the load generator keeps its connections). Measured after an unrecorded {} s run \
         at full concurrency (V8's JIT warms up).",
        cores
            .server
            .map_or("no core (not pinned)".into(), |c| format!("core {c}")),
        JIT_WARMUP.as_secs()
    );

    let http = reqwest::Client::builder()
        .http1_only()
        .tcp_nodelay(true)
        .no_proxy()
        .pool_max_idle_per_host(usize::MAX)
        .timeout(Duration::from_secs(10))
        .build()?;
    let url = format!("{issuer}/token");
    let basic = format!("Basic {}", STANDARD.encode(format!("{CLIENT_ID}:{secret}")));
    let request = {
        let (http, url, basic) = (http.clone(), url.clone(), basic.clone());
        move || {
            http.post(&url)
                .header("authorization", &basic)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!(
                    "grant_type=client_credentials&scope={}",
                    "api%3Aread"
                ))
        }
    };

    // The first token, checked thoroughly.
    let body = request()
        .send()
        .await?
        .error_for_status()
        .context("the first client_credentials request")?
        .bytes()
        .await?;
    let token = access_token(&body)
        .map_err(|e| anyhow::anyhow!("{e}; first answer: {}", String::from_utf8_lossy(&body)))?;
    let audience = format!("{issuer}/api");
    peer.first_token = check_access_token(token, &key.jwk, &issuer, &audience)
        .map_err(|e| anyhow::anyhow!("{NAME}'s first token: {e}"))?;
    // Every later token must carry the same (RS256, at+jwt, kid) header.
    let header = token[..=token.find('.').context("not a JWS")?].to_string();

    let cc = move |_| {
        let req = request();
        let header = header.clone();
        async move {
            let resp = req.send().await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let body = resp.bytes().await.map_err(|e| e.to_string())?;
            if status != 200 {
                return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
            }
            let token = access_token(&body)?;
            if !is_jws_with_header(token, &header) {
                return Err(format!("not an RS256 at+jwt JWT: {token}"));
            }
            Ok(true)
        }
    };
    // V8 compiles the hot path while it runs: an unrecorded run first, so
    // the peer is measured warm, as a long-running server would be.
    if let Some(plan) = plans.iter().max_by_key(|p| p.concurrency) {
        let warm = drive(
            Plan {
                warmup: Duration::ZERO,
                window: JIT_WARMUP,
                max_requests: 50_000,
                ..*plan
            },
            cc.clone(),
        )
        .await;
        if let Some(e) = warm.first_error {
            bail!("{NAME} failed while warming up: {e}");
        }
    }
    for plan in plans {
        proc.check_alive()?;
        let before = (proc.cpu_time(), procs::cpu_time("/proc/self/stat"));
        let wall = std::time::Instant::now();
        let outcome = drive(*plan, cc.clone()).await;
        let wall = wall.elapsed().as_secs_f64();
        let after = (proc.cpu_time(), procs::cpu_time("/proc/self/stat"));
        let used = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
            (Some(a), Some(b)) => b.saturating_sub(a).as_secs_f64(),
            _ => 0.0,
        };
        let server = used(before.0, after.0);
        let load = used(before.1, after.1);
        let row = PeerRow {
            concurrency: plan.concurrency,
            server_cpu_us: server * 1e6 / outcome.sent.max(1) as f64,
            server_busy: server / wall,
            keygate: None,
            keygate_over_peer: None,
            ceiling: None,
            outcome,
        };
        let o = &row.outcome;
        eprintln!(
            "  {NAME:<18} client_credentials   c={:<3} {:>9.0}/s p50 {:>7.0}µs p99 {:>7.0}µs  server {:>6.1}µs/req busy {:>4.0}%  loadgen busy {:>4.0}%  errors {}",
            row.concurrency, o.per_sec, o.p50_us, o.p99_us, row.server_cpu_us,
            row.server_busy * 100.0, load / wall * 100.0, o.errors
        );
        if let Some(e) = &o.first_error {
            eprintln!("    first error: {e}");
        }
        peer.rows.push(row);
    }
    drop(proc);
    let input_len = token.rfind('.').context("not a JWS")?;
    let out = procs::pinned(
        cores.server,
        &node,
        &[
            &path(&dir.join("sign-rate.mjs"))?,
            &path(&key_path)?,
            &input_len.to_string(),
            &sign_secs.to_string(),
        ],
    )
    .output()
    .context("running sign-rate.mjs")?;
    if !out.status.success() {
        bail!(
            "sign-rate.mjs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    peer.node_sign = Some(serde_json::from_slice(&out.stdout)?);
    Ok(())
}

/// `npm ci --omit=dev` in `dir` when [`install_needed`] says so.
fn install(dir: &Path, work: &Path) -> anyhow::Result<()> {
    let Some(why) = install_needed(dir) else {
        return Ok(());
    };
    let npm = procs::which("npm").context(
        "npm is not installed (it comes with Node.js; Debian/Ubuntu: `sudo apt-get install -y npm`)",
    )?;
    eprintln!("  {NAME}: {why}: npm ci --omit=dev in {}", dir.display());
    let log = work.join("peer-npm.log");
    let out = Command::new(npm)
        .args(["ci", "--omit=dev", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .output()
        .context("running npm ci")?;
    std::fs::write(
        &log,
        [out.stdout.as_slice(), out.stderr.as_slice()].concat(),
    )?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        bail!(
            "`npm ci --omit=dev` in {} failed ({}; the npm registry must be reachable; log: {}): {}",
            dir.display(),
            out.status,
            log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        );
    }
    Ok(())
}

/// Why `dir/node_modules` must be (re)installed, or `None` when it is
/// current: npm's record of the install (`node_modules/.package-lock.json`)
/// is missing or older than `package-lock.json`, or the installed
/// `oidc-provider` is not the version `package.json` pins.
pub fn install_needed(dir: &Path) -> Option<String> {
    let mtime = |p: PathBuf| -> Option<SystemTime> { std::fs::metadata(p).ok()?.modified().ok() };
    let Some(installed) = mtime(dir.join("node_modules/.package-lock.json")) else {
        return Some("node_modules is missing".into());
    };
    if mtime(dir.join("package-lock.json")).is_some_and(|lock| lock > installed) {
        return Some("package-lock.json is newer than node_modules".into());
    }
    let json = |p: PathBuf| -> Option<serde_json::Value> {
        serde_json::from_slice(&std::fs::read(p).ok()?).ok()
    };
    let pinned = json(dir.join("package.json")).and_then(|v| {
        v["dependencies"]["oidc-provider"]
            .as_str()
            .map(str::to_owned)
    });
    let have = json(dir.join("node_modules/oidc-provider/package.json"))
        .and_then(|v| v["version"].as_str().map(str::to_owned));
    if pinned.is_none() || pinned != have {
        return Some(format!(
            "oidc-provider {} is installed, package.json pins {}",
            have.as_deref().unwrap_or("(none)"),
            pinned.as_deref().unwrap_or("(none)")
        ));
    }
    None
}

fn installed_version(dir: &Path) -> anyhow::Result<String> {
    let p = dir.join("node_modules/oidc-provider/package.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p)?)?;
    v["version"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no version in {}", p.display()))
}

fn command_output(program: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program).args(args).output()?;
    if !out.status.success() {
        bail!("{} {args:?} failed: {}", program.display(), out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The `access_token` of a token response body (a plain scan: no JSON
/// escapes occur in a JWT).
pub fn access_token(body: &[u8]) -> Result<&str, String> {
    const KEY: &[u8] = b"\"access_token\":\"";
    let at = body
        .windows(KEY.len())
        .position(|w| w == KEY)
        .ok_or("no access_token in the answer")?
        + KEY.len();
    let len = body[at..]
        .iter()
        .position(|&b| b == b'"')
        .ok_or("unterminated access_token")?;
    std::str::from_utf8(&body[at..at + len]).map_err(|e| e.to_string())
}

/// A compact JWS (three non-empty parts) whose header part is `header`
/// (which ends with its dot).
pub fn is_jws_with_header(token: &str, header: &str) -> bool {
    token.starts_with(header) && {
        let mut parts = token.split('.');
        parts.clone().count() == 3 && parts.all(|p| !p.is_empty())
    }
}

/// Checks a JWT access token thoroughly (RFC 9068): header `typ` `at+jwt`
/// and `alg` RS256, a valid signature under the RSA public JWK `public`,
/// `iss`, `aud`, and the claims RFC 9068 requires. Returns a description of
/// what it found.
pub fn check_access_token(
    token: &str,
    public: &serde_json::Value,
    issuer: &str,
    audience: &str,
) -> Result<String, String> {
    use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
    let header = decode_header(token).map_err(|e| format!("not a JWS: {e}"))?;
    if header.alg != Algorithm::RS256 {
        return Err(format!("alg is {:?}, not RS256", header.alg));
    }
    if header.typ.as_deref() != Some("at+jwt") {
        return Err(format!("typ is {:?}, not at+jwt", header.typ));
    }
    let (n, e) = (public["n"].as_str(), public["e"].as_str());
    let key = DecodingKey::from_rsa_components(n.ok_or("JWK has no n")?, e.ok_or("JWK has no e")?)
        .map_err(|e| e.to_string())?;
    let mut v = Validation::new(Algorithm::RS256);
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data = decode::<serde_json::Map<String, serde_json::Value>>(token, &key, &v)
        .map_err(|e| format!("rejected: {e}"))?;
    for claim in ["client_id", "iat", "jti"] {
        if !data.claims.contains_key(claim) {
            return Err(format!("no {claim} claim (RFC 9068 §2.2)"));
        }
    }
    let names: Vec<&str> = data.claims.keys().map(String::as_str).collect();
    Ok(format!(
        "{} bytes, header `typ` at+jwt, `alg` RS256, `kid` {}; signature verified with the key's public JWK; claims {}",
        token.len(),
        header.kid.as_deref().unwrap_or("(none)"),
        names.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use keygate::tokens::keys::{generate_pkcs8, Alg};

    fn rsa_key() -> (Vec<u8>, SigningKey) {
        let der = generate_pkcs8(Alg::RS256).unwrap();
        let key = SigningKey::from_pkcs8(&der, PathBuf::new(), 0).unwrap();
        (der, key)
    }

    fn sign(key: &SigningKey, header: serde_json::Value, claims: serde_json::Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = key.sign_raw(input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    #[test]
    fn access_tokens_are_checked_as_rfc9068_jwts() {
        let (_, key) = rsa_key();
        let (iss, aud) = ("http://127.0.0.1:1", "http://127.0.0.1:1/api");
        let header = serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": key.kid});
        let claims = serde_json::json!({
            "iss": iss, "aud": aud, "sub": "c", "client_id": "c", "jti": "j",
            "iat": 1, "exp": 4_000_000_000u64, "scope": "api:read",
        });
        let good = sign(&key, header.clone(), claims.clone());
        let found = check_access_token(&good, &key.jwk, iss, aud).unwrap();
        assert!(found.contains("signature verified"), "{found}");

        // A plain JWT (typ JWT), a wrong audience, a missing client_id, a
        // bad signature, another key and an opaque token are all refused.
        let mut plain = header.clone();
        plain["typ"] = "JWT".into();
        assert!(
            check_access_token(&sign(&key, plain, claims.clone()), &key.jwk, iss, aud)
                .unwrap_err()
                .contains("typ")
        );
        assert!(check_access_token(&good, &key.jwk, iss, "http://other").is_err());
        let mut no_client = claims.clone();
        no_client.as_object_mut().unwrap().remove("client_id");
        assert!(
            check_access_token(&sign(&key, header.clone(), no_client), &key.jwk, iss, aud)
                .unwrap_err()
                .contains("client_id")
        );
        let tampered = format!("{}AAAA", &good[..good.len() - 4]);
        assert!(check_access_token(&tampered, &key.jwk, iss, aud).is_err());
        let (_, other) = rsa_key();
        assert!(check_access_token(&good, &other.jwk, iss, aud).is_err());
        assert!(check_access_token("opaque-token", &key.jwk, iss, aud).is_err());

        // The per-response check: the same header, three non-empty parts.
        let body =
            format!(r#"{{"access_token":"{good}","expires_in":3600,"token_type":"Bearer"}}"#);
        let token = access_token(body.as_bytes()).unwrap();
        assert_eq!(token, good);
        let head = &good[..=good.find('.').unwrap()];
        assert!(is_jws_with_header(token, head));
        assert!(!is_jws_with_header("abc", head));
        assert!(!is_jws_with_header(&format!("{head}x"), head));
        assert!(!is_jws_with_header(&format!("{head}x."), head));
        assert!(access_token(br#"{"error":"invalid_client"}"#).is_err());
    }

    #[test]
    fn install_is_needed_until_node_modules_matches_the_pin() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("package.json"),
            r#"{"dependencies":{"oidc-provider":"9.13.3"}}"#,
        )
        .unwrap();
        std::fs::write(d.join("package-lock.json"), "{}").unwrap();
        assert!(install_needed(d).unwrap().contains("missing"));
        std::fs::create_dir_all(d.join("node_modules/oidc-provider")).unwrap();
        let installed = |v: &str| {
            std::fs::write(
                d.join("node_modules/oidc-provider/package.json"),
                format!(r#"{{"version":"{v}"}}"#),
            )
            .unwrap();
        };
        installed("9.0.0");
        let record = d.join("node_modules/.package-lock.json");
        std::fs::write(&record, "{}").unwrap();
        let set_mtime = |p: &Path, t: SystemTime| {
            std::fs::File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(t)
                .unwrap();
        };
        // A fixed instant (the project bans SystemTime::now outside the clock).
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        set_mtime(&d.join("package-lock.json"), now);
        set_mtime(&record, now + Duration::from_secs(10));
        assert!(install_needed(d).unwrap().contains("9.0.0"));
        installed("9.13.3");
        assert_eq!(install_needed(d), None);
        // A newer lock file (a checkout that changed it) means a reinstall.
        set_mtime(&d.join("package-lock.json"), now + Duration::from_secs(20));
        assert!(install_needed(d).unwrap().contains("newer"));
    }

    fn peer_row(concurrency: usize, per_sec: f64) -> PeerRow {
        PeerRow {
            concurrency,
            outcome: Outcome {
                ok: 100,
                per_sec,
                p50_us: 1000.0,
                p99_us: 2000.0,
                sent: 100,
                secs: 1.0,
                ..Outcome::default()
            },
            server_cpu_us: 1e6 / per_sec,
            server_busy: 1.0,
            keygate: None,
            keygate_over_peer: None,
            ceiling: None,
        }
    }

    #[test]
    fn the_goal_compares_keygate_rs256_memory_with_the_peer() {
        use crate::report::Row;
        use crate::scenarios::Measured;
        let m = |per_sec: f64| Measured {
            outcome: Outcome {
                per_sec,
                p50_us: 500.0,
                p99_us: 900.0,
                ..Outcome::default()
            },
            store_calls: 1.0,
            server_cpu_us: 1e6 / per_sec,
            server_busy: 1.0,
            load_busy: 0.5,
            redis: None,
        };
        let mut rs = AlgRun::new("RS256");
        rs.rows = vec![
            Row::new("memory", "jwks", 16, m(50_000.0)),
            Row::new("memory", "client_credentials", 1, m(800.0)),
            Row::new("memory", "client_credentials", 16, m(2000.0)),
            Row::new("redis", "client_credentials", 16, m(100.0)),
        ];
        // The reference rate around keygate's row: 1000 signatures/s (1000 µs each).
        rs.rows[2].sign_per_sec = Some(1000.0);
        let mut es = AlgRun::new("ES256");
        es.rows = vec![Row::new("memory", "client_credentials", 16, m(90_000.0))];
        let algs = [es, rs];
        let mut peer = PeerRun {
            version: "9.13.3".into(),
            rows: vec![peer_row(1, 500.0), peer_row(16, 900.0)],
            ..PeerRun::empty()
        };
        peer.compare(&algs);
        assert_eq!(peer.rows[0].keygate_over_peer, Some(800.0 / 500.0));
        assert_eq!(peer.rows[1].keygate_over_peer, Some(2000.0 / 900.0));
        let c = peer.check(16);
        assert!(c.met, "{c:?}");
        assert_eq!(
            c.what,
            "keygate ≥ 2 × node-oidc-provider (RS256 client_credentials, c=16)"
        );
        // The peer spends 1111 µs per token, one reference signature takes 1000 µs:
        // keygate could be at most 1.11 × faster.
        assert_eq!(peer.rows[1].ceiling, Some(1e6 / 900.0 * 1000.0 / 1e6));
        assert_eq!(peer.rows[0].ceiling, None);
        let md = peer.markdown();
        let rows = [
            "| keygate (RS256, memory store) | 16 | 2000 | 500 | 900 | 500.0 | 0 | | |\n",
            "| node-oidc-provider 9.13.3 | 16 | 900 | 1000 | 2000 | 1111.1 | 0 | **2.22** | 1.11 |\n",
            "1000 µs for keygate (the faster of AWS-LC and ring), not measured with OpenSSL",
        ];
        for row in rows {
            assert!(md.contains(row), "{row} not in {md}");
        }

        // Under 2 ×, or with failed peer requests, the goal is not met.
        peer.rows[1] = peer_row(16, 1100.0);
        peer.compare(&algs);
        assert!(!peer.check(16).met);
        peer.rows[1].outcome.errors = 3;
        peer.rows[1].outcome.per_sec = 10.0;
        peer.compare(&algs);
        assert!(!peer.check(16).met);
        // Without keygate's row there is nothing to compare.
        peer.rows[1].outcome.errors = 0;
        peer.compare(&algs[..1]);
        assert!(!peer.check(16).met);

        // A peer that could not run: the check says why, so does the section.
        let absent = PeerRun::not_run("Node.js is not installed");
        let c = absent.check(16);
        assert!(
            !c.met && c.measured.contains("Node.js is not installed"),
            "{c:?}"
        );
        assert!(absent
            .markdown()
            .contains("was not measured: Node.js is not installed"));
    }
}
