//! One benchmark run: for each algorithm and store, start keygate pinned to
//! the server core, set up a client, users and codes over HTTP, drive each
//! scenario, and read the store round trips from `/metrics`. On a store with
//! replicas (`replica`, `cluster`) keygate is then restarted with
//! `store.wait_replicas = 1` on the same Redis and the durable writes (code
//! redemption, refresh rotation) are measured again.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use keygate::tokens::keys::{generate_into, Alg};

use crate::load::{drive, Outcome, Plan};
use crate::procs::{self, Cores, Proc};
use crate::profile;
use crate::report::{AlgRun, Report, Row};
use crate::{RunArgs, SignRate};

/// How long the bench's HTTP clients keep an idle connection: well under
/// keygate's keep-alive idle timeout (`server.header_read_timeout`, 10 s by
/// default), so a connection the server has closed between two phases is
/// never reused (that failed `make bench BENCH_ARGS=--quick` with a
/// connection error on the first request after a pause).
const IDLE: Duration = Duration::from_secs(4);

const REDIRECT: &str = "http://127.0.0.1:9/callback";
/// Users `bench-0`, `bench-1`, … (config users; their ids, and so their
/// grants' cluster slots, are hashes of the names).
const USER: &str = "bench";
/// Users (and refresh chains) per worker: a user's codes and refresh tokens
/// live on the cluster slot of the user, so one user would put all of them
/// on one master. With 3 per worker (48 at concurrency 16) they spread over
/// the masters as many users' do, and the report shows how evenly.
const USERS_PER_WORKER: usize = 3;
const PASSWORD: &str = "bench-password-0123";

/// One scenario's outcome and what it cost.
pub struct Measured {
    pub outcome: Outcome,
    /// Store round trips per request.
    pub store_calls: f64,
    /// keygate CPU time per request (user + system), in µs.
    pub server_cpu_us: f64,
    /// Share of one core keygate used during the scenario (1.0 = saturated).
    pub server_busy: f64,
    /// Share of one core the load generator used.
    pub load_busy: f64,
    /// Redis commands, bytes and CPU per request (the Redis store only).
    pub redis: Option<crate::redis_cost::RedisCost>,
}

/// Windows of one scenario.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub warmup: Duration,
    pub window: Duration,
    pub sign_secs: f64,
}

impl Timing {
    /// How each throughput scenario is driven at `concurrency`.
    pub fn plan(self, concurrency: usize) -> Plan {
        Plan {
            concurrency,
            warmup: self.warmup,
            window: self.window,
            max_requests: 2_000_000,
        }
    }
}

/// Runs the whole benchmark and writes the report.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    // Set when this process was re-run on the load generator's core, where
    // it sees only that core.
    let cores = match std::env::var("BENCH_CORES") {
        Ok(v) => Cores::from_env(&v)?,
        Err(_) => {
            let cores = Cores::detect();
            if cores.load.is_some() {
                let status = procs::pinned(cores.load, &std::env::current_exe()?, &[])
                    .args(std::env::args_os().skip(1))
                    .env("BENCH_CORES", cores.to_env())
                    .status()
                    .context("re-running the benchmark under taskset")?;
                std::process::exit(status.code().unwrap_or(1));
            }
            cores
        }
    };
    if !args.keygate.is_file() {
        bail!(
            "{} not found: build it with `cargo build --release` (make bench does)",
            args.keygate.display()
        );
    }
    let timing = if args.quick {
        Timing {
            warmup: Duration::from_millis(300),
            window: Duration::from_secs(1),
            sign_secs: 0.5,
        }
    } else {
        Timing {
            warmup: Duration::from_secs(1),
            window: Duration::from_secs(3),
            sign_secs: 1.0,
        }
    };
    let out = args.out.clone();
    let work = out.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let mut report = Report::new(&args, cores);
    for alg_name in &args.algs {
        let alg = Alg::parse(alg_name).with_context(|| format!("unknown algorithm {alg_name}"))?;
        let run = bench_alg(&args, cores, timing, alg, &work, &mut report.peers).await?;
        report.algs.push(run);
        report.write(&out)?; // partial results survive a later failure
    }
    if args.peers && report.peers.is_none() {
        report.peers = Some(crate::peer::PeerRun::not_run(
            "it runs next to keygate's RS256 client_credentials on the memory store, which this run's --algs, --stores or --only leave out",
        ));
    }
    let (n_mem, n_redis) = if args.quick {
        (100_000, 20_000)
    } else {
        (1_000_000, 200_000)
    };
    eprintln!("memory: {n_mem} entries in the memory store, {n_redis} in Redis");
    let port = procs::free_port()?;
    let redis = procs::redis(cores.load, port, &[], &work.join("redis-memory.log"))?;
    report.memory = crate::memory::run(Some(&format!("redis://127.0.0.1:{port}")), n_mem, n_redis)
        .await
        .context("memory measurement")?;
    drop(redis);
    report.micro = crate::report::read_criterion(&args.criterion);
    report.finish();
    report.write(&out)?;
    println!("{}", report.markdown());
    eprintln!("report: {}", out.join("report.md").display());
    Ok(())
}

async fn bench_alg(
    args: &RunArgs,
    cores: Cores,
    timing: Timing,
    alg: Alg,
    work: &Path,
    peer: &mut Option<crate::peer::PeerRun>,
) -> anyhow::Result<AlgRun> {
    let keys = work.join(format!("keys-{}", alg.as_str()));
    std::fs::create_dir_all(&keys)?;
    let key = generate_into(&keys, alg, unix_now()).context("generating the key")?;
    let mut run = AlgRun::new(alg.as_str());
    for store in &args.stores {
        let kind = crate::topology::Kind::parse(store)?;
        let deployment = match kind {
            Some(k) => {
                let dir = work.join(format!("{store}-{}", alg.as_str()));
                Some(crate::topology::Deployment::start(k, cores.load, &dir).await?)
            }
            None => None,
        };
        let url = deployment
            .as_ref()
            .map_or_else(|| "memory".to_string(), |d| d.url());
        // The durable pass: the writes `store.wait_replicas` makes wait for
        // a replica, measured again right after on the same deployment.
        let durable: Vec<String> = ["authorization_code", "refresh_token"]
            .iter()
            .filter(|s| args.only.is_empty() || args.only.iter().any(|o| o == *s))
            .map(|s| s.to_string())
            .collect();
        let mut passes = vec![0u32];
        if args.durable && kind.is_some_and(|k| k.has_replicas()) && !durable.is_empty() {
            passes.push(1);
        }
        let mut code_rate = None;
        for wait in passes {
            let label = if wait == 0 {
                store.clone()
            } else {
                format!("{store} wait={wait}")
            };
            eprintln!("{} / {label}", alg.as_str());
            let watch = match &deployment {
                Some(d) => {
                    let nodes: Vec<(u16, u32, bool)> = d
                        .nodes
                        .iter()
                        .map(|n| (n.port, n.pid(), n.master))
                        .collect();
                    Some(crate::redis_cost::RedisWatch::connect(&nodes).await?)
                }
                None => None,
            };
            let mut pass = args.clone();
            if wait > 0 {
                pass.only = durable.clone();
                pass.profile = false;
            }
            let mut server =
                Server::start(&pass, cores, &keys, &url, work, alg, &label, wait).await?;
            server.redis = watch;
            let setup = server.setup(args.concurrency).await?;
            let want_cc =
                args.only.is_empty() || args.only.iter().any(|o| o == "client_credentials");
            if args.peers && alg == Alg::RS256 && store == "memory" && want_cc {
                // The peer on keygate's core, with the same key and plans, right
                // before keygate's own scenarios (keygate idles meanwhile).
                let plans = [timing.plan(1), timing.plan(args.concurrency)];
                *peer = Some(
                    crate::peer::run(&args.peer_dir, cores, &plans, timing.sign_secs, &key, work)
                        .await,
                );
            }
            run.signing_input_len = setup.signing_input_len;
            let input_len = setup.signing_input_len;
            let samples = RefCell::new(vec![]);
            // Both libraries, one after the other on the server's core; the
            // faster is the reference for the scenario measured around it.
            let sign = || -> anyhow::Result<f64> {
                let mut best = 0.0f64;
                for backend in crate::BACKENDS {
                    let rate = sign_rate(cores, &key.path, input_len, timing.sign_secs, backend)?;
                    best = best.max(rate.per_sec);
                    samples.borrow_mut().push(rate);
                }
                Ok(best)
            };
            let rows = server
                .scenarios(&pass, timing, setup, &label, &sign, code_rate)
                .await?;
            // Codes for the durable pass: enough for 1.5 × the rate measured
            // here (a noisy machine can be faster the second time).
            code_rate = rows
                .iter()
                .find(|r| r.scenario == "authorization_code")
                .map(|r| r.outcome.per_sec * 1.5);
            run.sign_samples.extend(samples.take());
            run.rows.extend(rows);
        }
        drop(deployment);
    }
    run.finish();
    Ok(run)
}

/// The raw signing rate, measured by a child process on the server's core.
fn sign_rate(
    cores: Cores,
    key: &Path,
    input_len: usize,
    secs: f64,
    backend: &str,
) -> anyhow::Result<SignRate> {
    let me = std::env::current_exe()?;
    let out = procs::pinned(
        cores.server,
        &me,
        &[
            "sign",
            key.to_str().context("key path is not UTF-8")?,
            &input_len.to_string(),
            &secs.to_string(),
            "--backend",
            backend,
        ],
    )
    .output()
    .context("running the signing child")?;
    if !out.status.success() {
        bail!(
            "signing child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn unix_now() -> i64 {
    use keygate::clock::Clock;
    keygate::clock::SystemClock.now()
}

/// A running keygate and a keep-alive HTTP client for it.
struct Server {
    base: String,
    http: reqwest::Client,
    proc: Proc,
    initial_token: String,
    label: String,
    work: PathBuf,
    /// The Redis behind keygate, read around each scenario.
    redis: Option<crate::redis_cost::RedisWatch>,
}

/// What the scenarios need: a registered client, signed-in browsers (one
/// per user), a user access token and refresh tokens (one chain per user).
struct Setup {
    basic: String,
    client_id: String,
    /// Each user's browser (cookie jar) and the consent form's CSRF token.
    browsers: Vec<(reqwest::Client, String)>,
    user_token: String,
    refresh_tokens: Vec<String>,
    signing_input_len: usize,
}

impl Server {
    #[allow(clippy::too_many_arguments)]
    async fn start(
        args: &RunArgs,
        cores: Cores,
        keys: &Path,
        store_url: &str,
        work: &Path,
        alg: Alg,
        store: &str,
        wait_replicas: u32,
    ) -> anyhow::Result<Self> {
        let port = procs::free_port()?;
        let initial_token = keygate::ids::random_token(24);
        let hash = keygate::passwords::hash_blocking(PASSWORD)
            .map_err(|e| anyhow::anyhow!("hashing the bench password: {e}"))?;
        let label = format!("{}-{store}", alg.as_str());
        let file_label = label.replace([' ', '='], "-");
        let config = work.join(format!("keygate-{file_label}.toml"));
        let wait = if wait_replicas > 0 {
            format!("wait_replicas = {wait_replicas}\n")
        } else {
            String::new()
        };
        let users: String = (0..args.concurrency * USERS_PER_WORKER)
            .map(|i| {
                format!(
                    "\n[[users]]\nusername = \"{USER}-{i}\"\npassword_hash = \"{hash}\"\nemail = \"{USER}-{i}@example.com\"\n"
                )
            })
            .collect();
        std::fs::write(
            &config,
            format!(
                r#"[server]
listen = "127.0.0.1:{port}"
issuer = "http://127.0.0.1:{port}"

[store]
url = "{store_url}"
{wait}
[keys]
dir = "{keys}"
reload_secs = 0

[oauth]
scopes = ["profile", "email", "api:read"]

[tokens]
code_ttl = 900

[registration]
initial_access_tokens = ["{initial_token}"]

# The default [limits] (issue 13: no default limit may throttle one busy
# client): the failed-authentication check stays on the measured path, and a
# confidential client has no ceiling unless an operator sets one.
{users}"#,
                keys = keys.display(),
            ),
        )?;
        let cmd = procs::pinned(
            cores.server,
            &args.keygate,
            &[
                "serve",
                "--config",
                config.to_str().context("path is not UTF-8")?,
            ],
        );
        let mut proc = Proc::start(
            "keygate",
            cmd,
            &work.join(format!("keygate-{file_label}.log")),
        )?;
        procs::wait_for_port(&mut proc, port, Duration::from_secs(30))?;
        let http = reqwest::Client::builder()
            .http1_only()
            .tcp_nodelay(true)
            .no_proxy()
            .pool_max_idle_per_host(usize::MAX)
            .pool_idle_timeout(IDLE)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()?;
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            let ready = http.get(format!("{base}/readyz")).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return Ok(Self {
                    base,
                    http,
                    proc,
                    initial_token,
                    label,
                    work: work.to_path_buf(),
                    redis: None,
                });
            }
            proc.check_alive()?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("keygate ({label}) did not become ready")
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Registers a client (RFC 7591), signs the user in and gets the tokens
    /// the read scenarios use.
    async fn setup(&self, concurrency: usize) -> anyhow::Result<Setup> {
        let reg: serde_json::Value = self
            .http
            .post(self.url("/oauth/register"))
            .bearer_auth(&self.initial_token)
            .json(&serde_json::json!({
                "client_name": "bench",
                "redirect_uris": [REDIRECT],
                "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
                "scope": "profile email api:read",
                "token_endpoint_auth_method": "client_secret_basic",
            }))
            .send()
            .await?
            .error_for_status()
            .context("registering the bench client")?
            .json()
            .await?;
        let client_id = reg["client_id"]
            .as_str()
            .context("no client_id")?
            .to_string();
        let secret = reg["client_secret"].as_str().context("no client_secret")?;
        let basic = format!("Basic {}", STANDARD.encode(format!("{client_id}:{secret}")));

        let users = concurrency * USERS_PER_WORKER;
        let mut browsers = Vec::with_capacity(users);
        for i in 0..users {
            browsers.push(self.sign_in(&format!("{USER}-{i}"), &client_id).await?);
        }
        let mut setup = Setup {
            basic,
            client_id,
            browsers,
            user_token: String::new(),
            refresh_tokens: vec![],
            signing_input_len: 0,
        };
        // One code per user (a refresh chain each), plus one for the user
        // token (codes go to the users in turn).
        let codes = self.prepare_codes(&setup, users + 1, concurrency).await?;
        for (code, verifier) in codes {
            let t = self.redeem(&setup, &code, &verifier).await?;
            setup.user_token = t["access_token"]
                .as_str()
                .context("no access_token")?
                .into();
            setup.refresh_tokens.push(
                t["refresh_token"]
                    .as_str()
                    .context("no refresh_token")?
                    .into(),
            );
        }
        setup.refresh_tokens.pop();
        let cc = self.client_credentials(&setup).await?;
        let token = cc["access_token"].as_str().context("no access_token")?;
        setup.signing_input_len = token.rfind('.').context("not a JWS")?;
        Ok(setup)
    }

    /// Signs `username` in with a new browser and returns it with the
    /// consent form's CSRF token.
    async fn sign_in(
        &self,
        username: &str,
        client_id: &str,
    ) -> anyhow::Result<(reqwest::Client, String)> {
        let browser = reqwest::Client::builder()
            .cookie_store(true)
            .no_proxy()
            .pool_idle_timeout(IDLE)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let page = browser
            .get(self.url("/login?return_to=/"))
            .send()
            .await?
            .text()
            .await?;
        let csrf = hidden_value(&page, "csrf_token")?;
        let resp = browser
            .post(self.url("/login"))
            .form(&[
                ("username", username),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
                ("return_to", "/"),
            ])
            .send()
            .await?;
        if resp.status() != 303 {
            bail!("login of {username} failed: {}", resp.status());
        }
        let (_, challenge) = pkce();
        let page = browser
            .get(self.url(&authorize_path(client_id, &challenge)))
            .send()
            .await?
            .text()
            .await?;
        let csrf = hidden_value(&page, "csrf_token")?;
        Ok((browser, csrf))
    }

    async fn client_credentials(&self, s: &Setup) -> anyhow::Result<serde_json::Value> {
        Ok(self
            .http
            .post(self.url("/oauth/token"))
            .header("authorization", &s.basic)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials&scope=api%3Aread")
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    async fn redeem(
        &self,
        s: &Setup,
        code: &str,
        verifier: &str,
    ) -> anyhow::Result<serde_json::Value> {
        Ok(self
            .http
            .post(self.url("/oauth/token"))
            .header("authorization", &s.basic)
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier),
            ])
            .send()
            .await?
            .error_for_status()
            .context("redeeming a code")?
            .json()
            .await?)
    }

    /// `n` fresh codes (with their PKCE verifiers), approved through the
    /// consent form by the signed-in browsers in turn.
    async fn prepare_codes(
        &self,
        s: &Setup,
        n: usize,
        concurrency: usize,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let codes = Rc::new(RefCell::new(Vec::with_capacity(n)));
        let (browsers, client_id) = (Rc::new(s.browsers.clone()), s.client_id.clone());
        let next = Rc::new(std::cell::Cell::new(0usize));
        let base = self.base.clone();
        let sink = codes.clone();
        let outcome = drive(
            Plan {
                concurrency,
                warmup: Duration::ZERO,
                window: Duration::from_secs(120),
                max_requests: n as u64,
            },
            move |_| {
                let turn = next.get();
                next.set(turn + 1);
                let (browser, csrf) = browsers[turn % browsers.len()].clone();
                let sink = sink.clone();
                let (verifier, challenge) = pkce();
                let url = format!("{base}{}", authorize_path(&client_id, &challenge));
                async move {
                    let resp = browser
                        .post(url)
                        .form(&[("csrf_token", csrf.as_str()), ("decision", "allow")])
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    let location = resp
                        .headers()
                        .get("location")
                        .and_then(|l| l.to_str().ok())
                        .ok_or_else(|| format!("consent answered {}", resp.status()))?;
                    let url = url::Url::parse(location).map_err(|e| e.to_string())?;
                    let code = url
                        .query_pairs()
                        .find(|(k, _)| k == "code")
                        .ok_or_else(|| format!("no code in {location}"))?
                        .1
                        .into_owned();
                    sink.borrow_mut().push((code, verifier));
                    Ok(true)
                }
            },
        )
        .await;
        if let Some(e) = outcome.first_error {
            bail!("preparing codes: {e}");
        }
        let codes = codes.take();
        if codes.len() < n {
            bail!("prepared only {} of {n} codes", codes.len());
        }
        Ok(codes)
    }

    /// Sum of `keygate_store_calls_total` (store round trips so far).
    async fn store_calls(&self) -> anyhow::Result<u64> {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await?
            .text()
            .await?;
        let counts: Vec<u64> = text
            .lines()
            .filter(|l| l.starts_with("keygate_store_calls_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .collect();
        if counts.is_empty() {
            // Start-up alone makes store calls, so the metric must be there.
            bail!("keygate has no keygate_store_calls_total metric: the binary is older than this benchmark; rebuild it (cargo build --release)");
        }
        Ok(counts.iter().sum())
    }

    /// Drives one scenario and reads the store round trips and CPU time it cost.
    async fn measure<F, Fut>(&mut self, plan: Plan, request: F) -> anyhow::Result<Measured>
    where
        F: Fn(usize) -> Fut + Clone + 'static,
        Fut: std::future::Future<Output = Result<bool, String>> + 'static,
    {
        self.proc.check_alive()?;
        let redis_before = match &self.redis {
            Some(w) => Some(w.snapshot().await?),
            None => None,
        };
        let calls_before = self.store_calls().await?;
        let (server_before, load_before) =
            (self.proc.cpu_time(), procs::cpu_time("/proc/self/stat"));
        let wall = std::time::Instant::now();
        let outcome = drive(plan, request).await;
        let wall = wall.elapsed().as_secs_f64();
        let (server_after, load_after) = (self.proc.cpu_time(), procs::cpu_time("/proc/self/stat"));
        let calls = self.store_calls().await?.saturating_sub(calls_before);
        let redis = match (&self.redis, redis_before) {
            (Some(w), Some(before)) => Some(w.snapshot().await?.since(&before, outcome.sent)),
            _ => None,
        };
        let sent = outcome.sent.max(1) as f64;
        let busy = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
            (Some(a), Some(b)) => (b.saturating_sub(a)).as_secs_f64(),
            _ => 0.0,
        };
        let server_cpu = busy(server_before, server_after);
        Ok(Measured {
            store_calls: calls as f64 / sent,
            server_cpu_us: server_cpu * 1e6 / sent,
            server_busy: server_cpu / wall,
            load_busy: busy(load_before, load_after) / wall,
            redis,
            outcome,
        })
    }

    async fn scenarios(
        mut self,
        args: &RunArgs,
        timing: Timing,
        setup: Setup,
        store: &str,
        sign: &dyn Fn() -> anyhow::Result<f64>,
        code_rate: Option<f64>,
    ) -> anyhow::Result<Vec<Row>> {
        let c = args.concurrency;
        let plan = |concurrency: usize| timing.plan(concurrency);
        let want = |s: &str| args.only.is_empty() || args.only.iter().any(|o| o == s);
        let label = self.label.clone();
        let mut rows = vec![];
        let mut cpu_profile = vec![];
        // The raw signing rate is measured (on the server's core, while the
        // server is idle) before and after every signing scenario; each is
        // compared with the mean of the two around it.
        let mut last_sign: Option<f64> = None;
        let around = |last: &mut Option<f64>| -> anyhow::Result<f64> {
            let before = match *last {
                Some(b) => b,
                None => sign()?,
            };
            let after = sign()?;
            *last = Some(after);
            Ok((before + after) / 2.0)
        };
        let mut row = |scenario: &str, concurrency: usize, m: Measured, sign: Option<f64>| {
            let o = &m.outcome;
            eprintln!(
                "  {label:<14} {scenario:<20} c={concurrency:<3} {:>9.0}/s p50 {:>7.0}µs p99 {:>7.0}µs  server {:>6.1}µs/req busy {:>4.0}%  loadgen busy {:>4.0}%  errors {}",
                o.per_sec, o.p50_us, o.p99_us, m.server_cpu_us, m.server_busy * 100.0, m.load_busy * 100.0, o.errors
            );
            let mut r = Row::new(store, scenario, concurrency, m);
            r.sign_per_sec = sign;
            rows.push(r);
        };

        // JWKS.
        let (http, url) = (self.http.clone(), self.url("/.well-known/jwks.json"));
        let get = move |_| {
            let req = http.get(&url);
            async move { expect_200(req).await.map(|_| true) }
        };
        if want("jwks") {
            // At concurrency 1 this is the round-trip floor of any request.
            row("jwks", 1, self.measure(plan(1), get.clone()).await?, None);
            row("jwks", c, self.measure(plan(c), get).await?, None);
        }

        // client_credentials, at concurrency 1 (latency) and c (throughput).
        let (http, url, basic) = (
            self.http.clone(),
            self.url("/oauth/token"),
            setup.basic.clone(),
        );
        let cc = move |_| {
            let req = http
                .post(&url)
                .header("authorization", &basic)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("grant_type=client_credentials&scope=api%3Aread");
            async move { expect_200(req).await.map(|_| true) }
        };
        // Without a measured rate (client_credentials here, or the
        // redemptions of the previous pass), prepare codes for 20 000 tokens/s.
        let mut cc_rate = code_rate.unwrap_or(20_000.0);
        if want("client_credentials") {
            let o = self.measure(plan(1), cc.clone()).await?;
            row("client_credentials", 1, o, Some(around(&mut last_sign)?));
            let o = self.measure(plan(c), cc.clone()).await?;
            if args.profile {
                // A separate, unrecorded run: sampling slows the server down.
                let data = self.work.join(format!("perf-{label}.data"));
                let secs = (timing.warmup + timing.window).as_secs_f64();
                match profile::start(self.proc.pid(), secs, &data) {
                    Ok(mut perf) => {
                        drive(plan(c), cc).await;
                        cpu_profile = perf
                            .wait()
                            .map_err(anyhow::Error::from)
                            .and_then(|_| profile::summarize(&data))
                            .unwrap_or_else(|e| {
                                eprintln!("  profile skipped: {e:#}");
                                vec![]
                            });
                    }
                    Err(e) => eprintln!("  profile skipped: {e:#}"),
                }
            }
            cc_rate = o.outcome.per_sec;
            row("client_credentials", c, o, Some(around(&mut last_sign)?));
        }

        // authorization_code: codes prepared before the timed window, enough
        // for the window at the client_credentials rate (bounded).
        if want("authorization_code") {
            let secs = (timing.warmup + timing.window).as_secs_f64();
            let n = ((cc_rate * secs * 1.2) as usize + 100).min(60_000);
            let codes = Rc::new(RefCell::new(self.prepare_codes(&setup, n, c).await?));
            let (http, url, basic) = (
                self.http.clone(),
                self.url("/oauth/token"),
                setup.basic.clone(),
            );
            let redeem = move |_| {
                let next = codes.borrow_mut().pop();
                let req = next.map(|(code, verifier)| {
                    let body = form(&[
                        ("grant_type", "authorization_code"),
                        ("code", &code),
                        ("redirect_uri", REDIRECT),
                        ("code_verifier", &verifier),
                    ]);
                    http.post(&url)
                        .header("authorization", &basic)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(body)
                });
                async move {
                    match req {
                        Some(req) => expect_200(req).await.map(|_| true),
                        None => Ok(false), // every prepared code is used
                    }
                }
            };
            let mut p = plan(c);
            p.max_requests = n as u64;
            let o = self.measure(p, redeem).await?;
            row("authorization_code", c, o, Some(around(&mut last_sign)?));
        }

        // refresh_token: one rotation chain per user; worker w rotates the
        // chains w, w + c, w + 2c, … in turn.
        if want("refresh_token") {
            let chains = Rc::new(RefCell::new(setup.refresh_tokens.clone()));
            let turns = Rc::new(RefCell::new(vec![0usize; c]));
            let per_worker = (setup.refresh_tokens.len() / c).max(1);
            let (http, url, basic) = (
                self.http.clone(),
                self.url("/oauth/token"),
                setup.basic.clone(),
            );
            let rotate = move |worker: usize| {
                let chain = {
                    let mut t = turns.borrow_mut();
                    t[worker] += 1;
                    worker + c * (t[worker] % per_worker)
                };
                let token = chains.borrow()[chain].clone();
                let req = http
                    .post(&url)
                    .header("authorization", &basic)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", &token),
                    ]));
                let chains = chains.clone();
                async move {
                    let body = expect_200(req).await?;
                    let v: serde_json::Value =
                        serde_json::from_slice(&body).map_err(|e| e.to_string())?;
                    let next = v["refresh_token"].as_str().ok_or("no refresh_token")?;
                    chains.borrow_mut()[chain] = next.to_string();
                    Ok(true)
                }
            };
            let o = self.measure(plan(c), rotate).await?;
            row("refresh_token", c, o, Some(around(&mut last_sign)?));
        }

        // Introspection of a user's access token.
        if want("introspection") {
            let (http, url, basic) = (
                self.http.clone(),
                self.url("/oauth/introspect"),
                setup.basic.clone(),
            );
            let body = form(&[("token", &setup.user_token)]);
            let introspect = move |_| {
                let req = http
                    .post(&url)
                    .header("authorization", &basic)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body.clone());
                async move {
                    let body = expect_200(req).await?;
                    if !body.starts_with(b"{\"active\":true")
                        && !contains(&body, b"\"active\":true")
                    {
                        return Err("token not active".into());
                    }
                    Ok(true)
                }
            };
            row(
                "introspection",
                c,
                self.measure(plan(c), introspect).await?,
                None,
            );
        }

        // /api/me with the user's access token.
        let (http, url, token) = (
            self.http.clone(),
            self.url("/api/me"),
            setup.user_token.clone(),
        );
        let me = move |_| {
            let req = http.get(&url).bearer_auth(&token);
            async move { expect_200(req).await.map(|_| true) }
        };
        if want("me") {
            row("/api/me", c, self.measure(plan(c), me).await?, None);
        }
        if let Some(r) = rows
            .iter_mut()
            .find(|r| r.scenario == "client_credentials" && r.concurrency > 1)
        {
            r.profile = cpu_profile;
        }
        Ok(rows)
    }
}

/// Sends `req`; a non-200 answer is an error carrying the status and body.
async fn expect_200(req: reqwest::RequestBuilder) -> Result<bytes::Bytes, String> {
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
    }
    Ok(body)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn pkce() -> (String, String) {
    let verifier = keygate::ids::random_token(32);
    let challenge = keygate::oauth::pkce::s256(&verifier);
    (verifier, challenge)
}

fn authorize_path(client_id: &str, challenge: &str) -> String {
    format!(
        "/oauth/authorize?{}",
        form(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("scope", "profile email"),
            ("state", "bench"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ])
    )
}

/// The `value` of the `<input>` named `name` (HTML-unescaped).
fn hidden_value(html: &str, name: &str) -> anyhow::Result<String> {
    let marker = format!("name=\"{name}\"");
    let at = html
        .find(&marker)
        .with_context(|| format!("no input {name} in the page"))?;
    let start = html[..at].rfind('<').context("malformed page")?;
    let end = at + html[at..].find('>').context("malformed page")?;
    let tag = &html[start..end];
    let v = tag.find("value=\"").context("input has no value")? + 7;
    let raw = &tag[v..v + tag[v..].find('"').context("malformed value")?];
    Ok(raw
        .replace("&#43;", "+")
        .replace("&#x2B;", "+")
        .replace("&#61;", "=")
        .replace("&#x3D;", "=")
        .replace("&#47;", "/")
        .replace("&#x2F;", "/")
        .replace("&amp;", "&"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn hidden_value_unescapes_html() {
        let page = r#"<form><input type="hidden" name="csrf_token" value="a&#43;b&#x2F;c&#61;&amp;"></form>"#;
        assert_eq!(super::hidden_value(page, "csrf_token").unwrap(), "a+b/c=&");
        assert!(super::hidden_value(page, "other").is_err());
    }
}
