//! The benchmark report: ratios, the issue-6 targets as checks, Markdown
//! and JSON (`target/bench/report.md`, `report.json`).

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use serde::Serialize;

use crate::load::Outcome;
use crate::memory::MemoryRow;
use crate::procs::Cores;
use crate::scenarios::Measured;
use crate::{RunArgs, SignRate};

/// Scenarios whose cost is one signature.
const SIGNING: [&str; 3] = ["client_credentials", "authorization_code", "refresh_token"];

/// The ratio target of issues 6 and 13 for a scenario on a store: the
/// Redis targets hold on every Redis deployment (one server, with a
/// replica, a cluster). A `wait=1` row has none: waiting for a replica is
/// the cost it measures.
fn ratio_target(scenario: &str, store: &str) -> Option<f64> {
    if store.contains("wait=") {
        return None;
    }
    let redis = store != "memory";
    match (scenario, redis) {
        ("client_credentials", false) => Some(0.85),
        ("client_credentials", true) => Some(0.80),
        ("authorization_code" | "refresh_token", true) => Some(0.75),
        _ => None,
    }
}

/// One durable write measured with `store.wait_replicas` 0 and 1 on the
/// same deployment, in the same run.
#[derive(Debug, Clone, Serialize)]
pub struct Durable {
    pub alg: String,
    /// `replica` or `cluster`.
    pub store: String,
    pub scenario: String,
    /// Requests per second with 0 and with 1.
    pub per_sec: (f64, f64),
    pub p50_us: (f64, f64),
    pub p99_us: (f64, f64),
    /// Masters' CPU per request, in µs (with 0 and 1).
    pub redis_cpu_us: (f64, f64),
    /// Throughput with 1 ÷ throughput with 0.
    pub throughput_ratio: f64,
    /// p50 with 1 ÷ p50 with 0.
    pub p50_ratio: f64,
    pub p99_ratio: f64,
    /// Failed requests with 1 (a missing acknowledgement answers 503).
    pub errors: u64,
}

/// Pairs each `STORE wait=1` row with the `STORE` row of the same scenario
/// (at full concurrency) of the same algorithm.
pub fn durable_pairs(algs: &[AlgRun]) -> Vec<Durable> {
    let mut out = vec![];
    for run in algs {
        for waited in run.rows.iter().filter(|r| r.concurrency > 1) {
            let Some(base) = waited.store.strip_suffix(" wait=1") else {
                continue;
            };
            let Some(plain) = run.rows.iter().find(|r| {
                r.store == base
                    && r.scenario == waited.scenario
                    && r.concurrency == waited.concurrency
            }) else {
                continue;
            };
            let (a, b) = (&plain.outcome, &waited.outcome);
            let div = |x: f64, y: f64| if y > 0.0 { x / y } else { f64::NAN };
            let cpu = |r: &Row| r.redis.as_ref().map_or(0.0, |c| c.cpu_us);
            out.push(Durable {
                alg: run.alg.clone(),
                store: base.to_string(),
                scenario: waited.scenario.clone(),
                per_sec: (a.per_sec, b.per_sec),
                p50_us: (a.p50_us, b.p50_us),
                p99_us: (a.p99_us, b.p99_us),
                redis_cpu_us: (cpu(plain), cpu(waited)),
                throughput_ratio: div(b.per_sec, a.per_sec),
                p50_ratio: div(b.p50_us, a.p50_us),
                p99_ratio: div(b.p99_us, a.p99_us),
                errors: b.errors,
            });
        }
    }
    out
}

/// One scenario on one store.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub store: String,
    pub scenario: String,
    pub concurrency: usize,
    pub outcome: Outcome,
    /// Store round trips per request (from `keygate_store_calls_total`).
    pub store_calls_per_request: f64,
    /// keygate CPU time (user + system) per request, in µs.
    pub server_cpu_us: f64,
    /// Share of its core keygate used (1.0 = saturated).
    pub server_busy: f64,
    /// Share of its core the load generator used.
    pub load_busy: f64,
    /// Where keygate's CPU went (`--profile`; client_credentials only).
    pub profile: Vec<crate::profile::Cost>,
    /// The raw single-thread signing rate measured around this scenario.
    pub sign_per_sec: Option<f64>,
    /// Responses per second ÷ `sign_per_sec`.
    pub ratio_to_sign: Option<f64>,
    /// At concurrency 1: p50 ÷ the time of one signature.
    pub p50_over_sign: Option<f64>,
    /// At concurrency 1: (p50 − the JWKS p50) ÷ one signature, i.e. with
    /// this machine's round-trip floor taken out.
    pub p50_above_floor_over_sign: Option<f64>,
    /// The best ratio any HTTP endpoint could reach on this core: one
    /// signature plus the server CPU time of the cheapest request (JWKS at
    /// the same concurrency), `sign ÷ (sign + jwks)`; at concurrency 1 the
    /// JWKS p50 round trip instead.
    pub ceiling: Option<f64>,
    /// What each request cost Redis (the Redis store only).
    pub redis: Option<crate::redis_cost::RedisCost>,
}

impl Row {
    pub fn new(store: &str, scenario: &str, concurrency: usize, m: Measured) -> Self {
        Self {
            store: store.into(),
            scenario: scenario.into(),
            concurrency,
            outcome: m.outcome,
            store_calls_per_request: m.store_calls,
            server_cpu_us: m.server_cpu_us,
            server_busy: m.server_busy,
            load_busy: m.load_busy,
            redis: m.redis,
            profile: vec![],
            sign_per_sec: None,
            ratio_to_sign: None,
            p50_over_sign: None,
            p50_above_floor_over_sign: None,
            ceiling: None,
        }
    }
}

/// Every scenario for one signing algorithm, with its signing limit.
#[derive(Debug, Clone, Serialize)]
pub struct AlgRun {
    pub alg: String,
    /// Bytes of the JWS signing input (`header.payload`) of a real token.
    pub signing_input_len: usize,
    /// Every raw-rate measurement of this run (each library once before and
    /// once after each signing scenario).
    pub sign_samples: Vec<SignRate>,
    /// Mean rate per library, in [`crate::BACKENDS`] order.
    pub backends: Vec<(String, f64)>,
    /// The reference: the faster library's mean rate, and its name.
    pub sign_per_sec: f64,
    pub sign_backend: String,
    pub sign_us: f64,
    pub rows: Vec<Row>,
}

impl AlgRun {
    pub fn new(alg: &str) -> Self {
        Self {
            alg: alg.into(),
            signing_input_len: 0,
            sign_samples: vec![],
            backends: vec![],
            sign_per_sec: 0.0,
            sign_backend: String::new(),
            sign_us: 0.0,
            rows: vec![],
        }
    }

    /// Computes the ratios once every measurement is in. Each signing row
    /// is compared with the raw rate measured right before and right after
    /// it (its `sign_per_sec`), so slow drifts of a shared machine cancel.
    pub fn finish(&mut self) {
        if self.sign_samples.is_empty() {
            return;
        }
        self.backends = crate::BACKENDS
            .iter()
            .filter_map(|b| {
                let rates: Vec<f64> = self
                    .sign_samples
                    .iter()
                    .filter(|r| r.backend == *b)
                    .map(|r| r.per_sec)
                    .collect();
                (!rates.is_empty()).then(|| {
                    (
                        b.to_string(),
                        rates.iter().sum::<f64>() / rates.len() as f64,
                    )
                })
            })
            .collect();
        let (best, rate) = self
            .backends
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .cloned()
            .unwrap_or_default();
        self.sign_backend = best;
        self.sign_per_sec = rate;
        self.sign_us = 1e6 / self.sign_per_sec;
        // (store, concurrency, server CPU µs per request, p50 µs) of JWKS:
        // the cheapest request this server answers.
        let jwks: Vec<(String, usize, f64, f64)> = self
            .rows
            .iter()
            .filter(|r| r.scenario == "jwks" && r.outcome.per_sec > 0.0)
            .map(|r| {
                (
                    r.store.clone(),
                    r.concurrency,
                    r.server_cpu_us,
                    r.outcome.p50_us,
                )
            })
            .collect();
        for row in &mut self.rows {
            if SIGNING.contains(&row.scenario.as_str()) {
                let sign_per_sec = *row.sign_per_sec.get_or_insert(self.sign_per_sec);
                let sign_us = 1e6 / sign_per_sec;
                row.ratio_to_sign = Some(row.outcome.per_sec / sign_per_sec);
                let floor = jwks
                    .iter()
                    .find(|(st, c, _, _)| *st == row.store && *c == row.concurrency);
                if row.concurrency == 1 {
                    row.p50_over_sign = Some(row.outcome.p50_us / sign_us);
                    // At c=1 the floor is the round trip of a trivial request.
                    row.ceiling = floor.map(|(_, _, _, p50)| sign_us / (sign_us + p50));
                    row.p50_above_floor_over_sign =
                        floor.map(|(_, _, _, p50)| (row.outcome.p50_us - p50) / sign_us);
                } else {
                    row.ceiling = floor.map(|(_, _, cpu, _)| sign_us / (sign_us + cpu));
                }
            }
        }
    }
}

/// One target of issue 6 and whether this run met it.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub what: String,
    pub target: String,
    pub measured: String,
    pub met: bool,
}

/// The machine the run was on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub pinning: String,
    pub commit: String,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub date: String,
    pub machine: Machine,
    pub concurrency: usize,
    pub quick: bool,
    pub algs: Vec<AlgRun>,
    pub memory: Vec<MemoryRow>,
    /// Criterion results of `benches/hot_path.rs` (`make bench` runs it first).
    pub micro: Vec<Micro>,
    /// node-oidc-provider next to keygate (`--peers`).
    pub peers: Option<crate::peer::PeerRun>,
    /// `store.wait_replicas` 1 against 0 (`--stores replica,cluster`).
    pub durable: Vec<Durable>,
    pub checks: Vec<Check>,
}

/// One criterion benchmark: its id and median time.
#[derive(Debug, Clone, Serialize)]
pub struct Micro {
    pub id: String,
    pub median_ns: f64,
}

/// Reads every `new/benchmark.json` + `new/estimates.json` under `dir`
/// (criterion's output), sorted by id.
pub fn read_criterion(dir: &Path) -> Vec<Micro> {
    fn walk(dir: &Path, out: &mut Vec<Micro>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.file_name().is_some_and(|n| n == "new") {
                let read = |f: &str| -> Option<serde_json::Value> {
                    serde_json::from_slice(&std::fs::read(path.join(f)).ok()?).ok()
                };
                if let (Some(b), Some(est)) = (read("benchmark.json"), read("estimates.json")) {
                    if let (Some(id), Some(ns)) = (
                        b["full_id"].as_str(),
                        est["median"]["point_estimate"].as_f64(),
                    ) {
                        out.push(Micro {
                            id: id.to_string(),
                            median_ns: ns,
                        });
                    }
                }
            } else if path.is_dir() {
                walk(&path, out);
            }
        }
    }
    let mut out = vec![];
    walk(dir, &mut out);
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

fn command_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

impl Report {
    pub fn new(args: &RunArgs, cores: Cores) -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let pinning = match (cores.server, cores.load) {
            (Some(s), Some(l)) => {
                format!("keygate and the signing child on core {s}; load generator and redis-server (at nice -10) on core {l}")
            }
            _ => "not pinned (fewer than 2 cores or no taskset): ratios are not comparable".into(),
        };
        Self {
            date: command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            machine: Machine {
                cpu,
                cores: crate::procs::online_cpus(),
                pinning,
                commit: command_line("git", &["rev-parse", "--short", "HEAD"]),
            },
            concurrency: args.concurrency,
            quick: args.quick,
            algs: vec![],
            memory: vec![],
            micro: vec![],
            peers: None,
            durable: vec![],
            checks: vec![],
        }
    }

    /// Evaluates every target of issue 6 against the measurements.
    pub fn finish(&mut self) {
        let mut checks = vec![];
        for run in &self.algs {
            for row in &run.rows {
                let at = format!(
                    "{} {} {} c={}",
                    run.alg, row.store, row.scenario, row.concurrency
                );
                let o = &row.outcome;
                let ratio_target = ratio_target(&row.scenario, &row.store);
                if let (Some(t), Some(r), true) =
                    (ratio_target, row.ratio_to_sign, row.concurrency > 1)
                {
                    checks.push(Check {
                        what: format!("{at}: tokens/s ÷ raw sign rate"),
                        target: format!("≥ {t:.2}"),
                        measured: format!("{r:.3}"),
                        met: r >= t,
                    });
                }
                if row.concurrency > 1 && o.p50_us > 0.0 {
                    let r = o.p99_us / o.p50_us;
                    checks.push(Check {
                        what: format!("{at}: p99 ÷ p50"),
                        target: "≤ 4".into(),
                        measured: format!("{r:.2}"),
                        met: r <= 4.0,
                    });
                }
                if let Some(r) = row.p50_over_sign {
                    checks.push(Check {
                        what: format!("{at}: p50 ÷ one signature"),
                        target: "≤ 1.3".into(),
                        measured: format!("{r:.2} ({:.0} µs vs {:.0} µs)", o.p50_us, run.sign_us),
                        met: r <= 1.3,
                    });
                }
                let calls_max = match row.scenario.as_str() {
                    "authorization_code" | "refresh_token" => Some(2.0),
                    "client_credentials" => Some(1.0),
                    _ => None,
                };
                if let Some(max) = calls_max {
                    checks.push(Check {
                        what: format!("{at}: store round trips per request"),
                        target: format!("≤ {max}"),
                        measured: format!("{:.2}", row.store_calls_per_request),
                        met: row.store_calls_per_request <= max + 1e-9,
                    });
                }
                checks.push(Check {
                    what: format!("{at}: failed requests"),
                    target: "0".into(),
                    measured: o.errors.to_string(),
                    met: o.errors == 0,
                });
            }
        }
        for m in &self.memory {
            checks.push(Check {
                what: format!("{} store: expired {} entries reclaimed", m.store, m.kind),
                target: "all".into(),
                measured: format!(
                    "{} in {:.1} s",
                    if m.reclaimed { "all" } else { "not all" },
                    m.reclaim_secs
                ),
                met: m.reclaimed,
            });
        }
        if let Some(peer) = &mut self.peers {
            peer.compare(&self.algs);
            checks.push(peer.check(self.concurrency));
        }
        self.checks = checks;
        self.durable = durable_pairs(&self.algs);
    }

    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(self)?)?;
        std::fs::write(dir.join("report.md"), self.markdown())?;
        Ok(())
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# keygate benchmark{}\n",
            if self.quick { " (quick run)" } else { "" }
        );
        let _ = writeln!(
            s,
            "{} · commit {} · {} × {} · {} · concurrency {} (keep-alive connections)\n",
            self.date,
            self.machine.commit,
            self.machine.cores,
            self.machine.cpu,
            self.machine.pinning,
            self.concurrency
        );
        s.push_str(
            "## Signing limit (one thread, key parsed once, same core as the server)\n\n\
             keygate signs with AWS-LC (aws-lc-rs). Both libraries are measured around \
             every signing scenario; the faster one is the reference of every ratio.\n\n",
        );
        s.push_str("| alg | library | signing input | measurements | min | median | max | mean | one signature | reference |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
        for run in &self.algs {
            for (backend, mean) in &run.backends {
                let mut rates: Vec<f64> = run
                    .sign_samples
                    .iter()
                    .filter(|r| &r.backend == backend)
                    .map(|r| r.per_sec)
                    .collect();
                rates.sort_by(f64::total_cmp);
                let at = |i: usize| rates.get(i).map_or("–".into(), |r| format!("{r:.0}/s"));
                let _ = writeln!(
                    s,
                    "| {} | {} | {} B | {} | {} | {} | {} | {:.0}/s | {:.1} µs | {} |",
                    run.alg,
                    backend,
                    run.signing_input_len,
                    rates.len(),
                    at(0),
                    at(rates.len() / 2),
                    at(rates.len().saturating_sub(1)),
                    mean,
                    1e6 / mean,
                    if *backend == run.sign_backend {
                        "**yes**"
                    } else {
                        ""
                    }
                );
            }
        }
        s.push_str("\n## Endpoints (server pinned to one core)\n\n");
        s.push_str("| alg | store | scenario | c | req/s | sign/s around it | ÷ sign rate | HTTP ceiling | p50 µs | p99 µs | p99/p50 | store calls/req | server CPU µs/req | server busy | load gen busy | errors |\n");
        s.push_str(
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for run in &self.algs {
            for r in &run.rows {
                let o = &r.outcome;
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {:.0} | {} | {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.1} | {:.0}% | {:.0}% | {} |",
                    run.alg,
                    r.store,
                    r.scenario,
                    r.concurrency,
                    o.per_sec,
                    r.sign_per_sec.map_or("".into(), |x| format!("{x:.0}")),
                    r.ratio_to_sign.map_or("".into(), |x| format!("{x:.3}")),
                    r.ceiling.map_or("".into(), |x| format!("{x:.3}")),
                    o.p50_us,
                    o.p99_us,
                    if o.p50_us > 0.0 {
                        o.p99_us / o.p50_us
                    } else {
                        0.0
                    },
                    r.store_calls_per_request,
                    r.server_cpu_us,
                    r.server_busy * 100.0,
                    r.load_busy * 100.0,
                    o.errors
                );
            }
        }
        let redis_rows: Vec<(&AlgRun, &Row, &crate::redis_cost::RedisCost)> = self
            .algs
            .iter()
            .flat_map(|run| run.rows.iter().map(move |r| (run, r)))
            .filter_map(|(run, r)| Some((run, r, r.redis.as_ref()?)))
            .collect();
        if !redis_rows.is_empty() {
            s.push_str("\n## What each request costs Redis (docs/scaling.md)\n\n");
            s.push_str("Round trips are keygate's store calls; commands are what Redis counts (those run inside keygate's Lua scripts included); bytes are Redis's network input and output to keygate, and to the replicas (repl); memory is the growth of `used_memory` per request (what it leaves stored until expiry); CPU is redis-server's own (user + system). With several masters (a cluster) every figure is the sum over the masters; a replica's CPU is given apart. Per Redis core: 1 s ÷ the CPU per request (of the busiest master on a cluster), i.e. what one redis-server core would serve of this mix if it did nothing else: a floor, since a busier Redis batches more per system call.\n\n");
            s.push_str("| alg | store | scenario | c | req/s | round trips | commands | by command | bytes in | bytes out | repl bytes | memory B | Redis CPU µs | replica CPU µs | req/s per Redis core | commands/s per Redis core |\n|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
            for (run, r, c) in &redis_rows {
                let by: Vec<String> = c
                    .by_command
                    .iter()
                    .filter(|(_, n)| **n >= 0.005)
                    .map(|(k, n)| format!("{k} {n:.2}"))
                    .collect();
                let per_core = |x: Option<f64>| x.map_or("–".into(), |x| format!("{x:.0}"));
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {} | {} |",
                    run.alg,
                    r.store,
                    r.scenario,
                    r.concurrency,
                    r.outcome.per_sec,
                    r.store_calls_per_request,
                    c.commands,
                    by.join(", "),
                    c.bytes_in,
                    c.bytes_out,
                    c.repl_bytes,
                    c.memory_bytes,
                    c.cpu_us,
                    c.replica_cpu_us,
                    per_core(c.requests_per_core()),
                    per_core(c.commands_per_core()),
                );
            }
            let sharded: Vec<_> = redis_rows
                .iter()
                .filter(|(_, _, c)| c.shards.len() > 1)
                .collect();
            if !sharded.is_empty() {
                s.push_str("\n### Per shard (Redis Cluster masters)\n\n");
                s.push_str("Commands/s on each master at the measured rate (its commands per request × req/s), its share, the spread (busiest master ÷ mean; 1.00 = even), each master's CPU per request and its keys after the scenario. A user's codes and refresh tokens live on the user's slot: the bench's users are `bench-0` … `bench-N` (3 per worker).\n\n");
                s.push_str("| alg | store | scenario | req/s | commands/s per master | share | spread | CPU µs/req per master | keys per master |\n|---|---|---|---:|---|---|---:|---|---|\n");
                for (run, r, c) in sharded {
                    let total: f64 = c.shards.iter().map(|x| x.commands).sum();
                    let join = |f: &dyn Fn(&crate::redis_cost::ShardCost) -> String| {
                        c.shards.iter().map(f).collect::<Vec<_>>().join(" / ")
                    };
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} |",
                        run.alg,
                        r.store,
                        r.scenario,
                        r.outcome.per_sec,
                        join(&|x| format!("{:.0}", x.commands * r.outcome.per_sec)),
                        join(&|x| if total > 0.0 {
                            format!("{:.0}%", x.commands * 100.0 / total)
                        } else {
                            "–".into()
                        }),
                        c.spread().map_or("–".into(), |x| format!("{x:.2}")),
                        join(&|x| format!("{:.1}", x.cpu_us)),
                        join(&|x| x.keys.to_string()),
                    );
                }
            }
        }
        if !self.durable.is_empty() {
            s.push_str("\n## Durable writes: `store.wait_replicas` 1 against 0 (same deployment, same run)\n\n");
            s.push_str("keygate restarted with `wait_replicas = 1` on the same Redis right after the scenarios with 0; every ratio is 1 ÷ 0. `replica`: one master and one replica; `cluster`: 3 masters with a replica each. All nodes share one core here, so a replica's acknowledgement costs CPU time on the same core as the masters; across hosts it costs a network round trip instead.\n\n");
            s.push_str("| alg | store | scenario | req/s 0 → 1 | ÷ | p50 µs 0 → 1 | ÷ | p99 µs 0 → 1 | ÷ | Redis CPU µs/req 0 → 1 | errors with 1 |\n|---|---|---|---|---:|---|---:|---|---:|---|---:|\n");
            for d in &self.durable {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.0} → {:.0} | {:.2} | {:.0} → {:.0} | {:.2} | {:.0} → {:.0} | {:.2} | {:.1} → {:.1} | {} |",
                    d.alg,
                    d.store,
                    d.scenario,
                    d.per_sec.0,
                    d.per_sec.1,
                    d.throughput_ratio,
                    d.p50_us.0,
                    d.p50_us.1,
                    d.p50_ratio,
                    d.p99_us.0,
                    d.p99_us.1,
                    d.p99_ratio,
                    d.redis_cpu_us.0,
                    d.redis_cpu_us.1,
                    d.errors,
                );
            }
        }
        if !self.memory.is_empty() {
            s.push_str("\n## Memory per outstanding entry\n\n");
            s.push_str("| store | kind | entries | bytes/entry | expired entries reclaimed |\n|---|---|---:|---:|---|\n");
            for m in &self.memory {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.0} | {} ({:.1} s after expiry) |",
                    m.store,
                    m.kind,
                    m.entries,
                    m.bytes_per_entry,
                    if m.reclaimed { "yes" } else { "NO" },
                    m.reclaim_secs
                );
            }
        }
        if let Some(peer) = &self.peers {
            s.push_str(&peer.markdown());
        }
        let profiled: Vec<(&AlgRun, &Row)> = self
            .algs
            .iter()
            .flat_map(|run| run.rows.iter().map(move |r| (run, r)))
            .filter(|(_, r)| !r.profile.is_empty())
            .collect();
        if !profiled.is_empty() {
            s.push_str(
                "\n## Where keygate's CPU goes (perf, client_credentials at full concurrency)\n\n",
            );
            for (run, r) in profiled {
                let top: Vec<String> = r
                    .profile
                    .iter()
                    .take(8)
                    .map(|c| format!("{} {:.1}%", c.what, c.percent))
                    .collect();
                let _ = writeln!(s, "- {} {}: {}", run.alg, r.store, top.join(", "));
            }
        }
        if !self.micro.is_empty() {
            s.push_str("\n## Micro-benchmarks (criterion, `benches/hot_path.rs`, median)\n\n| benchmark | time |\n|---|---:|\n");
            for m in &self.micro {
                let t = if m.median_ns >= 1e6 {
                    format!("{:.2} ms", m.median_ns / 1e6)
                } else if m.median_ns >= 1e3 {
                    format!("{:.2} µs", m.median_ns / 1e3)
                } else {
                    format!("{:.0} ns", m.median_ns)
                };
                let _ = writeln!(s, "| {} | {t} |", m.id);
            }
        }
        if !self.checks.is_empty() {
            let met = self.checks.iter().filter(|c| c.met).count();
            let _ = writeln!(
                s,
                "\n## Targets (issues 6 and 13): {met} of {} checks met\n",
                self.checks.len()
            );
            s.push_str(&self.targets_matrix());
            let unmet: Vec<&Check> = self.checks.iter().filter(|c| !c.met).collect();
            if !unmet.is_empty() {
                s.push_str("\nNot met:\n\n| check | target | measured |\n|---|---|---|\n");
                for c in unmet {
                    let _ = writeln!(s, "| {} | {} | {} |", c.what, c.target, c.measured);
                }
                s.push_str(&self.bounds());
            }
        }
        s
    }

    /// For each algorithm and store with an unmet target: what this run
    /// measured that bounds it.
    fn bounds(&self) -> String {
        let mut s = String::from("\nWhat bounds them (measured in this run):\n\n");
        for run in &self.algs {
            let mut stores: Vec<&str> = run.rows.iter().map(|r| r.store.as_str()).collect();
            stores.dedup();
            for store in stores {
                let prefix = format!("{} {store} ", run.alg);
                if !self
                    .checks
                    .iter()
                    .any(|c| !c.met && c.what.starts_with(&prefix))
                {
                    continue;
                }
                let find = |scenario: &str, c1: bool| {
                    run.rows.iter().find(|r| {
                        r.store == store && r.scenario == scenario && (r.concurrency == 1) == c1
                    })
                };
                let (Some(cc), Some(jwks)) =
                    (find("client_credentials", false), find("jwks", false))
                else {
                    continue;
                };
                let sign_us = cc.sign_per_sec.map_or(run.sign_us, |r| 1e6 / r);
                let _ = write!(
                    s,
                    "- {} {store}: one signature takes {sign_us:.1} µs; keygate spends {:.1} µs of CPU per client_credentials token and {:.1} µs per JWKS request (the cheapest request: HTTP/1 over loopback TCP), so no endpoint could pass {:.2} of the raw rate here (measured {:.2}).",
                    run.alg,
                    cc.server_cpu_us,
                    jwks.server_cpu_us,
                    cc.ceiling.unwrap_or(f64::NAN),
                    cc.ratio_to_sign.unwrap_or(f64::NAN),
                );
                if let (Some(c1), Some(j1)) = (find("client_credentials", true), find("jwks", true))
                {
                    let _ = write!(
                        s,
                        " At concurrency 1 a JWKS round trip alone has p50 {:.0} µs ({:.2} × a signature); a token {:.0} µs.",
                        j1.outcome.p50_us,
                        j1.outcome.p50_us / sign_us,
                        c1.outcome.p50_us,
                    );
                }
                if !cc.profile.is_empty() {
                    let top: Vec<String> = cc
                        .profile
                        .iter()
                        .take(4)
                        .map(|c| format!("{} {:.0}%", c.what, c.percent))
                        .collect();
                    let _ = write!(s, " Top costs (perf): {}.", top.join(", "));
                }
                s.push('\n');
            }
        }
        s
    }

    /// One line per algorithm and store: each target's measured value, ✓ or ✗.
    fn targets_matrix(&self) -> String {
        let mut s = String::from(
            "| alg | store | client_credentials ÷ sign | authorization_code ÷ sign | refresh_token ÷ sign | worst p99/p50 (≤ 4) | c=1 p50 ÷ sign (≤ 1.3) | store calls cc / code / refresh (≤ 1 / 2 / 2) | failed requests |\n|---|---|---|---|---|---|---|---|---|\n",
        );
        let mark = |ok: bool| if ok { "✓" } else { "✗" };
        for run in &self.algs {
            let mut stores: Vec<&str> = run.rows.iter().map(|r| r.store.as_str()).collect();
            stores.dedup();
            for store in stores {
                let rows: Vec<&Row> = run.rows.iter().filter(|r| r.store == store).collect();
                let find = |scenario: &str, c1: bool| {
                    rows.iter()
                        .find(|r| r.scenario == scenario && (r.concurrency == 1) == c1)
                        .copied()
                };
                let ratio = |scenario: &str| {
                    let target = ratio_target(scenario, store);
                    match (find(scenario, false).and_then(|r| r.ratio_to_sign), target) {
                        (Some(r), Some(t)) => format!("{r:.3} (≥ {t}) {}", mark(r >= t)),
                        (Some(r), None) => format!("{r:.3}"),
                        (None, _) => "–".into(),
                    }
                };
                let worst = rows
                    .iter()
                    .filter(|r| r.concurrency > 1 && r.outcome.p50_us > 0.0)
                    .map(|r| r.outcome.p99_us / r.outcome.p50_us)
                    .fold(0.0f64, f64::max);
                let c1 = find("client_credentials", true).map_or("–".into(), |r| {
                    let x = r.p50_over_sign.unwrap_or(f64::NAN);
                    let above = r.p50_above_floor_over_sign.map_or(String::new(), |a| {
                        format!(" ({a:.2} above the JWKS round trip)")
                    });
                    format!("{x:.2} {}{above}", mark(x <= 1.3))
                });
                let calls = |scenario: &str| {
                    find(scenario, false).map_or("–".into(), |r| {
                        format!("{:.2}", r.store_calls_per_request)
                    })
                };
                let calls_ok = [
                    ("client_credentials", 1.0),
                    ("authorization_code", 2.0),
                    ("refresh_token", 2.0),
                ]
                .iter()
                .all(|(sc, max)| {
                    find(sc, false).is_none_or(|r| r.store_calls_per_request <= max + 1e-9)
                });
                let errors: u64 = rows.iter().map(|r| r.outcome.errors).sum();
                let _ = writeln!(
                    s,
                    "| {} | {store} | {} | {} | {} | {worst:.2} {} | {c1} | {} / {} / {} {} | {errors} {} |",
                    run.alg,
                    ratio("client_credentials"),
                    ratio("authorization_code"),
                    ratio("refresh_token"),
                    mark(worst <= 4.0),
                    calls("client_credentials"),
                    calls("authorization_code"),
                    calls("refresh_token"),
                    mark(calls_ok),
                    mark(errors == 0),
                );
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        store: &str,
        scenario: &str,
        c: usize,
        per_sec: f64,
        p50: f64,
        p99: f64,
        calls: f64,
    ) -> Row {
        let o = Outcome {
            ok: 100,
            per_sec,
            p50_us: p50,
            p99_us: p99,
            sent: 100,
            secs: 1.0,
            ..Outcome::default()
        };
        Row::new(
            store,
            scenario,
            c,
            Measured {
                outcome: o,
                store_calls: calls,
                server_cpu_us: 1e6 / per_sec,
                server_busy: 1.0,
                load_busy: 0.5,
                redis: None,
            },
        )
    }

    fn report(rows: Vec<Row>) -> Report {
        let mut run = AlgRun::new("RS256");
        // ring is the slower library here: the reference must be AWS-LC's.
        run.sign_samples = vec![
            SignRate {
                backend: "aws-lc-rs".into(),
                per_sec: 1000.0,
                us: 1000.0,
                n: 1,
            },
            SignRate {
                backend: "ring".into(),
                per_sec: 500.0,
                us: 2000.0,
                n: 1,
            },
        ];
        run.rows = rows;
        run.finish();
        let mut r = Report {
            date: String::new(),
            machine: Machine {
                cpu: String::new(),
                cores: 2,
                pinning: String::new(),
                commit: String::new(),
            },
            concurrency: 16,
            quick: false,
            algs: vec![run],
            memory: vec![],
            micro: vec![],
            peers: None,
            durable: vec![],
            checks: vec![],
        };
        r.finish();
        r
    }

    fn check<'a>(r: &'a Report, what: &str) -> &'a Check {
        r.checks
            .iter()
            .find(|c| c.what == what)
            .unwrap_or_else(|| panic!("no check {what}"))
    }

    #[test]
    fn the_reference_is_the_faster_library() {
        let r = report(vec![]);
        let run = &r.algs[0];
        assert_eq!(run.sign_backend, "aws-lc-rs");
        assert_eq!(run.sign_per_sec, 1000.0);
        assert_eq!(
            run.backends,
            vec![
                ("aws-lc-rs".to_string(), 1000.0),
                ("ring".to_string(), 500.0)
            ]
        );
        let md = r.markdown();
        assert!(md.contains("| RS256 | aws-lc-rs |"), "{md}");
        assert!(md.contains("| RS256 | ring |"), "{md}");
    }

    #[test]
    fn targets_are_judged_from_the_ratios() {
        let r = report(vec![
            row("memory", "jwks", 16, 50_000.0, 300.0, 600.0, 0.0),
            row(
                "memory",
                "client_credentials",
                16,
                860.0,
                18_000.0,
                20_000.0,
                1.0,
            ),
            row(
                "redis",
                "client_credentials",
                16,
                790.0,
                18_000.0,
                90_000.0,
                1.0,
            ),
            row(
                "redis",
                "authorization_code",
                16,
                760.0,
                18_000.0,
                20_000.0,
                3.0,
            ),
            row(
                "memory",
                "client_credentials",
                1,
                800.0,
                1_250.0,
                1_400.0,
                1.0,
            ),
        ]);
        assert!(
            check(
                &r,
                "RS256 memory client_credentials c=16: tokens/s ÷ raw sign rate"
            )
            .met
        );
        assert!(
            !check(
                &r,
                "RS256 redis client_credentials c=16: tokens/s ÷ raw sign rate"
            )
            .met
        );
        assert!(!check(&r, "RS256 redis client_credentials c=16: p99 ÷ p50").met);
        assert!(
            check(
                &r,
                "RS256 redis authorization_code c=16: tokens/s ÷ raw sign rate"
            )
            .met
        );
        assert!(
            !check(
                &r,
                "RS256 redis authorization_code c=16: store round trips per request"
            )
            .met
        );
        assert!(
            check(
                &r,
                "RS256 memory client_credentials c=1: p50 ÷ one signature"
            )
            .met
        );
        // The HTTP ceiling: 1000 µs signature + 20 µs of server CPU per JWKS request.
        let cc = &r.algs[0].rows[1];
        assert!((cc.ceiling.unwrap() - 1000.0 / 1020.0).abs() < 1e-9);
        let md = r.markdown();
        assert!(md.contains("| RS256 | memory | 0.860 (≥ 0.85) ✓"), "{md}");
        assert!(md.contains("Not met:"), "{md}");
    }

    #[test]
    fn durable_rows_pair_with_their_store() {
        let r = report(vec![
            row(
                "cluster",
                "refresh_token",
                16,
                800.0,
                20_000.0,
                40_000.0,
                2.0,
            ),
            row(
                "cluster wait=1",
                "refresh_token",
                16,
                600.0,
                26_000.0,
                60_000.0,
                2.0,
            ),
            // No `replica` row to compare with: no pair.
            row(
                "replica wait=1",
                "authorization_code",
                16,
                500.0,
                1.0,
                2.0,
                2.0,
            ),
        ]);
        assert_eq!(r.durable.len(), 1);
        let d = &r.durable[0];
        assert_eq!(
            (d.store.as_str(), d.scenario.as_str()),
            ("cluster", "refresh_token")
        );
        assert!((d.throughput_ratio - 0.75).abs() < 1e-9);
        assert!((d.p50_ratio - 1.3).abs() < 1e-9);
        assert!((d.p99_ratio - 1.5).abs() < 1e-9);
        // A cluster is held to the Redis targets; a wait=1 row to none.
        assert!(
            check(
                &r,
                "RS256 cluster refresh_token c=16: tokens/s ÷ raw sign rate"
            )
            .met
        );
        assert!(!r.checks.iter().any(|c| c
            .what
            .starts_with("RS256 cluster wait=1 refresh_token c=16: tokens/s")));
        let md = r.markdown();
        assert!(
            md.contains(
                "| RS256 | cluster | refresh_token | 800 → 600 | 0.75 | 20000 → 26000 | 1.30 |"
            ),
            "{md}"
        );
    }
}
