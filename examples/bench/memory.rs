//! Memory cost of stored authorization codes and refresh tokens, per backend,
//! and proof that expired entries are reclaimed (issue 6).
//!
//! Records are realistic and go through the real typed facade
//! ([`keygate::store::repos::Repos`]): codes via `put_code`, refresh tokens via
//! `put_refresh_family`, with ids of the lengths the server mints.
//!
//! - Memory store: measured in a child process (this executable, run with
//!   `memory-child <kind> <n>`), so the resident set size (RSS) grows only with
//!   the store. Growth is RSS after the inserts minus RSS before, so it includes
//!   allocator overhead and the map's spare capacity, i.e. what a server pays.
//! - Redis: `used_memory` from `INFO memory` before and after (jemalloc's
//!   allocated bytes, without fragmentation), and `DBSIZE` for reclamation. The
//!   database must be empty at the start, because `Repos` owns the key names
//!   and there is no separate key space to measure in.
//!
//! Then the measurement waits for the backend's own expiry (the memory
//! store's sweeper, Redis active expiry) to remove every entry. In the memory
//! store the sweeper cannot run while the child inserts (see [`memory_row`]),
//! so a 1 s TTL is enough however long inserting takes. Redis expires keys
//! while they are being written, so its TTL is chosen from a timed batch.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use futures_util::stream::{self, TryStreamExt};
use keygate::clock::{Clock, SystemClock};
use keygate::oauth::pkce::{self, Challenge, Method};
use keygate::oauth::token::{CodeRecord, RefreshRecord};
use keygate::oauth::types::ScopeSet;
use keygate::store::memory::MemoryStore;
use keygate::store::redis::RedisStore;
use keygate::store::repos::Repos;
use keygate::store::Store;

/// One measured backend and record kind.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MemoryRow {
    /// `"memory"` or `"redis"`.
    pub store: String,
    /// `"authorization code"` or `"refresh token"`.
    pub kind: String,
    /// How many were stored.
    pub entries: usize,
    /// Measured growth ÷ `entries`. A refresh token is stored as two keys
    /// (`kg:rt:<hash>` and its family `kg:fam:<id>`, as `put_refresh_family`
    /// writes them); both are included.
    pub bytes_per_entry: f64,
    /// Every entry was gone after its TTL (within the wait bound).
    pub reclaimed: bool,
    /// Seconds from the last entry's expiry until the store held no entry.
    pub reclaim_secs: f64,
}

/// The first argument the bench binary dispatches to [`child_main`].
pub const CHILD_ARG: &str = "memory-child";

/// Sweep interval of the measured memory store: short, so reclamation is seen
/// quickly (the server's default is 1 s).
const SWEEP_INTERVAL: Duration = Duration::from_millis(200);
/// How long the memory store may take to drop every expired entry.
const MEMORY_RECLAIM_LIMIT: Duration = Duration::from_secs(30);
/// How long Redis may take to expire every entry.
const REDIS_RECLAIM_LIMIT: Duration = Duration::from_secs(60);
/// How long one child process may run.
const CHILD_LIMIT: Duration = Duration::from_secs(180);
/// In-flight Redis writes: enough to pipeline on the one multiplexed connection.
const REDIS_CONCURRENCY: usize = 64;
/// TTL of the memory-store entries (the shortest `Repos` accepts).
const MEMORY_TTL_SECS: i64 = 1;
/// Longest Redis TTL the calibration may choose: beyond this the run is too
/// slow to be worth waiting for.
const MAX_TTL_SECS: i64 = 300;
/// Redirect URI of the benchmark client.
const REDIRECT_URI: &str = "http://127.0.0.1:3000/callback";
/// Scope of every stored grant.
const SCOPE: &str = "openid profile";

/// What is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Code,
    Refresh,
}

impl Kind {
    const ALL: [Kind; 2] = [Kind::Code, Kind::Refresh];

    /// The command-line form, for the child's arguments.
    fn arg(self) -> &'static str {
        match self {
            Kind::Code => "code",
            Kind::Refresh => "refresh",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "code" => Ok(Kind::Code),
            "refresh" => Ok(Kind::Refresh),
            other => bail!("unknown record kind `{other}` (expected `code` or `refresh`)"),
        }
    }

    /// The name shown in the report.
    fn label(self) -> &'static str {
        match self {
            Kind::Code => "authorization code",
            Kind::Refresh => "refresh token",
        }
    }

    /// Store keys per record: a refresh token also writes its family key.
    fn keys_per_entry(self) -> usize {
        match self {
            Kind::Code => 1,
            Kind::Refresh => 2,
        }
    }
}

/// Writes realistic records of one kind through [`Repos`].
struct Writer {
    repos: Repos,
    kind: Kind,
    /// One client and user for all records: only the sizes matter here, and
    /// those are the sizes the server produces.
    client_id: String,
    user_id: String,
    scope: ScopeSet,
    pkce: Challenge,
}

impl Writer {
    fn new(store: Store, kind: Kind) -> Result<Self> {
        let verifier = keygate::ids::random_token(32);
        Ok(Self {
            // The revocation TTL matters only to revocations, which this never writes.
            repos: Repos::new(store, std::time::Duration::from_secs(900)),
            kind,
            client_id: keygate::ids::client_id(),
            // flows::users mints user ids this way.
            user_id: keygate::ids::random_token(16),
            scope: ScopeSet::parse(SCOPE).context("parsing the benchmark scope")?,
            pkce: Challenge {
                challenge: pkce::s256(&verifier),
                method: Method::S256,
            },
        })
    }

    /// Stores one fresh record with `ttl` seconds to live, with a new random
    /// code or token (and family), as the flows mint them.
    async fn put_one(&self, ttl: i64) -> Result<()> {
        let expires_at = SystemClock.now() + ttl;
        match self.kind {
            Kind::Code => {
                // flows::authorize: `random_token(32)`.
                let code = keygate::ids::random_token(32);
                let rec = CodeRecord {
                    client_id: self.client_id.clone(),
                    redirect_uri: REDIRECT_URI.to_owned(),
                    redirect_uri_given: true,
                    scope: self.scope.clone(),
                    sub: self.user_id.clone(),
                    pkce: Some(self.pkce.clone()),
                    expires_at,
                    redeemed: None,
                    resources: vec![],
                    nonce: None,
                    auth_time: None,
                    consent: None,
                    sid: None,
                };
                self.repos
                    .put_code(&code, &rec, ttl)
                    .await
                    .context("storing an authorization code")
            }
            Kind::Refresh => {
                // flows::token: family `random_token(16)`, token `random_token(32)`.
                let token = keygate::ids::random_token(32);
                let rec = RefreshRecord {
                    family: keygate::ids::random_token(16),
                    client_id: self.client_id.clone(),
                    sub: self.user_id.clone(),
                    scope: self.scope.clone(),
                    expires_at,
                    rotated: false,
                    grace: None,
                    resources: vec![],
                    auth_time: None,
                    consent: None,
                    sid: None,
                };
                self.repos
                    .put_refresh_family(&token, &rec, ttl)
                    .await
                    .context("storing a refresh token")
            }
        }
    }

    /// Stores `n` records one after another; returns how long it took.
    async fn put_sequential(&self, n: usize, ttl: i64) -> Result<Duration> {
        let start = Instant::now();
        for _ in 0..n {
            self.put_one(ttl).await?;
        }
        Ok(start.elapsed())
    }

    /// Stores `n` records with up to `concurrency` in flight; returns how long it took.
    async fn put_concurrent(&self, n: usize, ttl: i64, concurrency: usize) -> Result<Duration> {
        let start = Instant::now();
        stream::iter((0..n).map(Ok::<usize, anyhow::Error>))
            .try_for_each_concurrent(concurrency, |_| self.put_one(ttl))
            .await?;
        Ok(start.elapsed())
    }
}

/// Records inserted into Redis to time the insertion rate before the measured
/// run: 5 % of `n`, at most 10 000. They expire (and are waited for) before
/// the baseline is read.
fn calibration_size(n: usize) -> usize {
    (n / 20).clamp(1, 10_000)
}

/// A TTL (whole seconds, as `Repos` takes it) that outlasts inserting `n`
/// records at the calibrated rate, with a factor 3 and 3 s to spare, because
/// a short batch is a noisy predictor of a long one.
fn ttl_for(n: usize, calibrated: Duration, calibration_n: usize) -> Result<i64> {
    let estimate = calibrated.as_secs_f64() * n as f64 / calibration_n.max(1) as f64;
    let ttl = (3.0 * estimate + 3.0).ceil() as i64;
    ensure!(
        ttl <= MAX_TTL_SECS,
        "inserting {n} records would take about {estimate:.0} s; use fewer"
    );
    Ok(ttl)
}

/// Measures both kinds in the memory store (each in a child process) and, if
/// `redis_url` is given, in Redis.
///
/// Runs in the bench process: the memory store is measured in a child
/// (`std::env::current_exe()` with args `["memory-child", kind, n]`) so RSS is
/// clean, and Redis through `INFO memory` / `DBSIZE`. The Redis database must
/// be empty; it is empty again afterwards when every entry was reclaimed.
pub async fn run(
    redis_url: Option<&str>,
    n_memory: usize,
    n_redis: usize,
) -> Result<Vec<MemoryRow>> {
    let mut rows = vec![];
    for kind in Kind::ALL {
        rows.push(memory_in_child(kind, n_memory).await?);
    }
    if let Some(url) = redis_url {
        for kind in Kind::ALL {
            rows.push(redis_row(url, kind, n_redis).await?);
        }
    }
    Ok(rows)
}

/// Entry point for the child: `args` = `[kind, n]` with kind `code` or
/// `refresh`; prints one [`MemoryRow`] as JSON on stdout.
pub async fn child_main(args: &[String]) -> Result<()> {
    let [kind, n] = args else {
        bail!("usage: {CHILD_ARG} <code|refresh> <n>");
    };
    let kind = Kind::parse(kind)?;
    let n: usize = n
        .parse()
        .with_context(|| format!("entry count `{n}` is not a number"))?;
    ensure!(n > 0, "entry count must be at least 1");
    // A single-threaded runtime of its own, on a blocking thread: see `memory_row`.
    let row = tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .context("building the measurement runtime")?
            .block_on(memory_row(kind, n))
    })
    .await
    .context("the measurement thread panicked")??;
    println!(
        "{}",
        serde_json::to_string(&row).context("serialising the result")?
    );
    Ok(())
}

/// Runs this executable as `memory-child <kind> <n>` and reads its row.
async fn memory_in_child(kind: Kind, n: usize) -> Result<MemoryRow> {
    let exe = std::env::current_exe().context("finding the bench executable")?;
    let mut child = Command::new(&exe)
        .args([CHILD_ARG, kind.arg(), &n.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {} {CHILD_ARG}", exe.display()))?;
    let deadline = Instant::now() + CHILD_LIMIT;
    // The child prints one short line, so its stdout pipe never fills up
    // while it runs.
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for the memory child")? {
            break status;
        }
        if Instant::now() >= deadline {
            // Best effort: the child is abandoned either way.
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the memory child ({} {n}) did not finish within {CHILD_LIMIT:?}",
                kind.arg()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout
            .read_to_string(&mut out)
            .context("reading the memory child's output")?;
    }
    ensure!(
        status.success(),
        "the memory child ({} {n}) failed: {status}",
        kind.arg()
    );
    serde_json::from_str(out.trim())
        .with_context(|| format!("the memory child printed no result row: {:?}", out.trim()))
}

/// Resident set size of this process in bytes (`Rss` of
/// `/proc/self/smaps_rollup`, which is given in kB: no page size to assume).
fn rss_bytes() -> Result<u64> {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup")
        .context("reading /proc/self/smaps_rollup (Linux ≥ 4.14 only)")?;
    let kb = text
        .lines()
        .find_map(|l| l.strip_prefix("Rss:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .context("no `Rss: … kB` line in /proc/self/smaps_rollup")?
        .trim()
        .parse::<u64>()
        .context("parsing Rss in /proc/self/smaps_rollup")?;
    Ok(kb * 1024)
}

/// The child's measurement of the memory store. Must run on a
/// single-threaded runtime: the insert loop never awaits anything pending (a
/// memory-store call completes at once), so the store's sweeper task gets no
/// turn until the loop ends. Entries whose TTL passes meanwhile are therefore
/// still in the map when RSS is read; `len()` afterwards checks that.
async fn memory_row(kind: Kind, n: usize) -> Result<MemoryRow> {
    let ttl = MEMORY_TTL_SECS;
    let store = MemoryStore::with_sweep_interval(SWEEP_INTERVAL);
    let writer = Writer::new(store.clone(), kind)?;
    let before = rss_bytes()?;
    let took = writer.put_sequential(n, ttl).await?;
    let inserted_at = Instant::now();
    let after = rss_bytes()?;
    let expected = n * kind.keys_per_entry();
    ensure!(
        store.len() == expected,
        "the store holds {} entries, not {expected}: the sweeper ran while inserting \
         (memory_row must run on a single-threaded runtime)",
        store.len()
    );

    // Every entry expires at most `ttl` after the last insert.
    let last_expiry = inserted_at + Duration::from_secs(ttl as u64);
    let limit = last_expiry + MEMORY_RECLAIM_LIMIT;
    while !store.is_empty() && Instant::now() < limit {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reclaim_secs = Instant::now()
        .saturating_duration_since(last_expiry)
        .as_secs_f64();
    let reclaimed = store.is_empty();
    // For the reader, not the row: the map keeps its capacity after the sweep,
    // and freed blocks may stay with the allocator, so RSS does not fall back.
    eprintln!(
        "memory store, {n} × {}: inserted in {:.2} s (TTL {ttl} s); RSS {} → {} → {} MiB after reclamation",
        kind.label(),
        took.as_secs_f64(),
        before >> 20,
        after >> 20,
        rss_bytes()? >> 20,
    );
    Ok(MemoryRow {
        store: "memory".into(),
        kind: kind.label().into(),
        entries: n,
        bytes_per_entry: after.saturating_sub(before) as f64 / n as f64,
        reclaimed,
        reclaim_secs,
    })
}

/// A second, plain connection for the commands `KvStore` does not offer.
struct RedisProbe {
    conn: redis::aio::MultiplexedConnection,
}

impl RedisProbe {
    async fn connect(url: &str) -> Result<Self> {
        let client = redis::Client::open(url).context("invalid Redis URL")?;
        let conn = tokio::time::timeout(
            Duration::from_secs(2),
            client.get_multiplexed_async_connection(),
        )
        .await
        .context("connecting to Redis timed out")?
        .context("connecting to Redis")?;
        Ok(Self { conn })
    }

    async fn dbsize(&mut self) -> Result<u64> {
        redis::cmd("DBSIZE")
            .query_async(&mut self.conn)
            .await
            .context("Redis DBSIZE")
    }

    /// `used_memory` from `INFO memory`: bytes allocated by Redis.
    async fn used_memory(&mut self) -> Result<u64> {
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut self.conn)
            .await
            .context("Redis INFO memory")?;
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .context("no used_memory in INFO memory")?
            .trim()
            .parse()
            .context("parsing used_memory")
    }

    /// Waits (at most `limit`) until the database is empty; returns whether it is.
    async fn wait_empty(&mut self, limit: Duration) -> Result<bool> {
        let deadline = Instant::now() + limit;
        loop {
            if self.dbsize().await? == 0 {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Measures one kind in Redis, from an empty database back to an empty one.
async fn redis_row(url: &str, kind: Kind, n: usize) -> Result<MemoryRow> {
    ensure!(n > 0, "the Redis entry count must be at least 1");
    let mut probe = RedisProbe::connect(url).await?;
    let keys = probe.dbsize().await?;
    ensure!(
        keys == 0,
        "the Redis database holds {keys} keys; the memory measurement needs an empty one \
         (keygate's key names cannot be moved to a separate key space)"
    );
    let store = RedisStore::connect(url, Duration::from_secs(2))
        .await
        .context("connecting the Redis store")?;
    let writer = Writer::new(Arc::new(store), kind)?;

    // Time a small batch with the shortest TTL, then wait until it is gone.
    let calibration_n = calibration_size(n);
    let calibrated = writer
        .put_concurrent(calibration_n, 1, REDIS_CONCURRENCY)
        .await?;
    ensure!(
        probe.wait_empty(REDIS_RECLAIM_LIMIT).await?,
        "the calibration batch did not expire within {REDIS_RECLAIM_LIMIT:?}"
    );
    let ttl = ttl_for(n, calibrated, calibration_n)?;

    let before = probe.used_memory().await?;
    let took = writer.put_concurrent(n, ttl, REDIS_CONCURRENCY).await?;
    let inserted_at = Instant::now();
    let after = probe.used_memory().await?;
    let stored = probe.dbsize().await?;
    let expected = (n * kind.keys_per_entry()) as u64;
    ensure!(
        stored == expected && took < Duration::from_secs(ttl as u64),
        "Redis holds {stored} keys, not {expected}, after inserting for {took:?} with a {ttl} s TTL; \
         entries expired (or were evicted) before they were measured"
    );

    let last_expiry = inserted_at + Duration::from_secs(ttl as u64);
    tokio::time::sleep_until(last_expiry.into()).await;
    let reclaimed = probe.wait_empty(REDIS_RECLAIM_LIMIT).await?;
    let reclaim_secs = Instant::now()
        .saturating_duration_since(last_expiry)
        .as_secs_f64();
    eprintln!(
        "redis, {n} × {}: inserted in {:.2} s (TTL {ttl} s); used_memory {} → {} → {} MiB after reclamation",
        kind.label(),
        took.as_secs_f64(),
        before >> 20,
        after >> 20,
        probe.used_memory().await? >> 20,
    );
    Ok(MemoryRow {
        store: "redis".into(),
        kind: kind.label().into(),
        entries: n,
        bytes_per_entry: after.saturating_sub(before) as f64 / n as f64,
        reclaimed,
        reclaim_secs,
    })
}
