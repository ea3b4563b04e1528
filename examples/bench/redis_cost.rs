//! What keygate asks of Redis per request, for the capacity model
//! (docs/scaling.md): Redis commands (those run inside keygate's Lua scripts
//! included, as Redis counts them), bytes over the wire both ways, and Redis
//! CPU time. Read from `INFO commandstats`, `INFO stats` and
//! `/proc/<pid>/stat` of the redis-server before and after a scenario; the
//! `INFO` calls themselves are left out.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The redis-servers of a deployment (one, a master and its replica, or a
/// cluster's masters and replicas), read around each scenario.
pub struct RedisWatch {
    nodes: Vec<Watched>,
}

struct Watched {
    port: u16,
    /// A master: its commands, bytes and memory are keygate's cost. A
    /// replica's only cost counted is its CPU (applying the replication
    /// stream).
    master: bool,
    conn: redis::aio::MultiplexedConnection,
    stat_path: String,
}

/// Counters of every node at one moment.
pub struct Snapshot {
    nodes: Vec<NodeSnapshot>,
}

/// Counters of one node.
#[derive(Debug, Clone, Default)]
struct NodeSnapshot {
    port: u16,
    master: bool,
    calls: BTreeMap<String, u64>,
    net_in: u64,
    net_out: u64,
    /// Bytes sent to replicas (`total_net_repl_output_bytes`, Redis ≥ 7).
    repl_out: u64,
    /// `used_memory` (jemalloc's allocated bytes).
    memory: u64,
    /// Keys in database 0.
    keys: u64,
    cpu: Option<Duration>,
}

/// Redis's cost per request of one scenario, summed over the masters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RedisCost {
    /// Commands per request, all kinds (inside scripts included).
    pub commands: f64,
    /// Commands per request by name (`get`, `mget`, `evalsha`, `set`, …).
    pub by_command: BTreeMap<String, f64>,
    /// Bytes Redis received per request.
    pub bytes_in: f64,
    /// Bytes Redis sent per request (to keygate; replication apart).
    pub bytes_out: f64,
    /// Bytes the masters sent to their replicas per request.
    pub repl_bytes: f64,
    /// Growth of `used_memory` per request (what a request leaves stored
    /// until it expires), in bytes.
    pub memory_bytes: f64,
    /// Redis CPU time per request (user + system) of the masters, in µs.
    pub cpu_us: f64,
    /// CPU time per request of the replicas, in µs.
    pub replica_cpu_us: f64,
    /// Each master's share (a cluster's shards), by port.
    pub shards: Vec<ShardCost>,
}

/// One master's part of a request's cost.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ShardCost {
    pub port: u16,
    /// Commands per request on this master.
    pub commands: f64,
    /// This master's CPU time per request, in µs.
    pub cpu_us: f64,
    /// Keys on this master after the scenario.
    pub keys: u64,
}

impl RedisCost {
    /// Requests per second one redis-server core would serve at this mix
    /// (its CPU time per request, inverted; with several masters, the
    /// busiest one, which saturates first).
    pub fn requests_per_core(&self) -> Option<f64> {
        let busiest = if self.shards.is_empty() {
            self.cpu_us
        } else {
            self.shards.iter().map(|s| s.cpu_us).fold(0.0f64, f64::max)
        };
        (busiest > 0.0).then(|| 1e6 / busiest)
    }

    /// Redis commands per second of one core at this mix: commands per
    /// request ÷ CPU time per request (all masters together).
    pub fn commands_per_core(&self) -> Option<f64> {
        (self.cpu_us > 0.0).then(|| self.commands * 1e6 / self.cpu_us)
    }

    /// How unevenly the commands fall on the masters: the busiest master's
    /// commands ÷ the mean (1.0 = even). `None` with one master.
    pub fn spread(&self) -> Option<f64> {
        if self.shards.len() < 2 {
            return None;
        }
        let mean = self.shards.iter().map(|s| s.commands).sum::<f64>() / self.shards.len() as f64;
        let max = self
            .shards
            .iter()
            .map(|s| s.commands)
            .fold(0.0f64, f64::max);
        (mean > 0.0).then(|| max / mean)
    }
}

impl RedisWatch {
    /// Connects to every node: `(port, pid, master)`.
    pub async fn connect(nodes: &[(u16, u32, bool)]) -> anyhow::Result<Self> {
        let mut watched = vec![];
        for &(port, pid, master) in nodes {
            let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
            let conn = tokio::time::timeout(
                Duration::from_secs(5),
                client.get_multiplexed_async_connection(),
            )
            .await
            .context("connecting to the bench's Redis: timed out")?
            .context("connecting to the bench's Redis")?;
            watched.push(Watched {
                port,
                master,
                conn,
                stat_path: format!("/proc/{pid}/stat"),
            });
        }
        Ok(Self { nodes: watched })
    }

    /// Reads the counters now.
    pub async fn snapshot(&self) -> anyhow::Result<Snapshot> {
        let mut nodes = vec![];
        for n in &self.nodes {
            let mut conn = n.conn.clone();
            let stats: String = redis::cmd("INFO")
                .arg("commandstats")
                .query_async(&mut conn)
                .await?;
            let net: String = redis::cmd("INFO")
                .arg("stats")
                .query_async(&mut conn)
                .await?;
            let mem: String = redis::cmd("INFO")
                .arg("memory")
                .query_async(&mut conn)
                .await?;
            let keys: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await?;
            nodes.push(NodeSnapshot {
                port: n.port,
                master: n.master,
                calls: parse_commandstats(&stats),
                net_in: info_field(&net, "total_net_input_bytes").unwrap_or(0),
                net_out: info_field(&net, "total_net_output_bytes").unwrap_or(0),
                repl_out: info_field(&net, "total_net_repl_output_bytes").unwrap_or(0),
                memory: info_field(&mem, "used_memory").unwrap_or(0),
                keys,
                cpu: crate::procs::cpu_time(&n.stat_path),
            });
        }
        Ok(Snapshot { nodes })
    }
}

/// The bench's own commands, left out of the counts.
const OWN_COMMANDS: [&str; 2] = ["info", "dbsize"];

impl Snapshot {
    /// The cost per request of the `requests` sent between `before` and
    /// `self`, summed over the masters. The bench's own `INFO` and `DBSIZE`
    /// are left out of the counts; their few kilobytes of replies stay in
    /// the byte counts (well under a byte per request over a scenario's
    /// thousands of requests).
    pub fn since(&self, before: &Snapshot, requests: u64) -> RedisCost {
        let n = requests.max(1) as f64;
        let secs = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
            (Some(a), Some(b)) => b.saturating_sub(a).as_secs_f64(),
            _ => 0.0,
        };
        let mut cost = RedisCost::default();
        for after in &self.nodes {
            let Some(prev) = before.nodes.iter().find(|b| b.port == after.port) else {
                continue;
            };
            let cpu_us = secs(prev.cpu, after.cpu) * 1e6 / n;
            if !after.master {
                cost.replica_cpu_us += cpu_us;
                continue;
            }
            let mut commands = 0.0;
            for (name, calls) in &after.calls {
                if OWN_COMMANDS.contains(&name.as_str()) {
                    continue;
                }
                let delta = calls.saturating_sub(*prev.calls.get(name).unwrap_or(&0));
                if delta > 0 {
                    *cost.by_command.entry(name.clone()).or_default() += delta as f64 / n;
                    commands += delta as f64 / n;
                }
            }
            cost.commands += commands;
            cost.bytes_in += after.net_in.saturating_sub(prev.net_in) as f64 / n;
            cost.bytes_out += after.net_out.saturating_sub(prev.net_out) as f64 / n;
            cost.repl_bytes += after.repl_out.saturating_sub(prev.repl_out) as f64 / n;
            cost.memory_bytes += (after.memory as f64 - prev.memory as f64) / n;
            cost.cpu_us += cpu_us;
            cost.shards.push(ShardCost {
                port: after.port,
                commands,
                cpu_us,
                keys: after.keys,
            });
        }
        cost
    }
}

/// `cmdstat_get:calls=12,usec=…` lines → {"get": 12}; subcommands such as
/// `cmdstat_client|setinfo` keep their full name.
fn parse_commandstats(info: &str) -> BTreeMap<String, u64> {
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_string(), calls))
        })
        .collect()
}

fn info_field(info: &str, field: &str) -> Option<u64> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commandstats_and_stats_parse() {
        let info = "# Commandstats\r\ncmdstat_get:calls=12,usec=30,usec_per_call=2.50,rejected_calls=0,failed_calls=0\r\ncmdstat_client|setinfo:calls=2,usec=1\r\ncmdstat_info:calls=4,usec=9\r\n";
        let calls = parse_commandstats(info);
        assert_eq!(calls["get"], 12);
        assert_eq!(calls["client|setinfo"], 2);
        assert_eq!(
            info_field(
                "# Stats\r\ntotal_net_input_bytes:1234\r\n",
                "total_net_input_bytes"
            ),
            Some(1234)
        );
        let node =
            |port, master, calls: &[(&str, u64)], net: u64, cpu_ms: u64, keys: u64| NodeSnapshot {
                port,
                master,
                calls: calls.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
                net_in: net,
                net_out: net * 10,
                repl_out: net,
                memory: net * 100,
                keys,
                cpu: Some(Duration::from_millis(cpu_ms)),
            };
        // Two masters and a replica; the replica's commands are the
        // replication stream, not keygate's.
        let before = Snapshot {
            nodes: vec![
                node(1, true, &[("get", 2), ("info", 1)], 100, 10, 0),
                node(2, true, &[], 0, 0, 0),
                node(3, false, &[("set", 5)], 0, 5, 0),
            ],
        };
        let after = Snapshot {
            nodes: vec![
                node(
                    1,
                    true,
                    &[("get", 22), ("evalsha", 10), ("info", 3), ("dbsize", 2)],
                    1100,
                    20,
                    30,
                ),
                node(2, true, &[("get", 10)], 500, 5, 10),
                node(3, false, &[("set", 500)], 0, 15, 40),
            ],
        };
        let cost = after.since(&before, 10);
        assert_eq!(cost.commands, 4.0);
        assert_eq!(cost.by_command["get"], 3.0);
        assert_eq!(cost.by_command["evalsha"], 1.0);
        assert!(!cost.by_command.contains_key("set"));
        assert!(!cost.by_command.contains_key("dbsize"));
        assert_eq!(cost.bytes_in, 150.0);
        assert_eq!(cost.bytes_out, 1500.0);
        assert_eq!(cost.repl_bytes, 150.0);
        assert_eq!(cost.memory_bytes, 15_000.0);
        assert!((cost.cpu_us - 1500.0).abs() < 1e-6);
        assert!((cost.replica_cpu_us - 1000.0).abs() < 1e-6);
        assert_eq!(cost.shards.len(), 2);
        assert_eq!((cost.shards[0].commands, cost.shards[0].keys), (3.0, 30));
        assert_eq!((cost.shards[1].commands, cost.shards[1].keys), (1.0, 10));
        // Busiest master: 1000 µs per request -> 1000 requests/s per core.
        assert!((cost.requests_per_core().unwrap() - 1000.0).abs() < 1e-6);
        // 4 commands in 1500 µs of CPU.
        assert!((cost.commands_per_core().unwrap() - 4e6 / 1500.0).abs() < 1e-6);
        // 3 and 1 commands: the busiest has 1.5 × the mean.
        assert!((cost.spread().unwrap() - 1.5).abs() < 1e-9);
        let single = RedisCost {
            cpu_us: 50.0,
            shards: vec![ShardCost {
                port: 1,
                commands: 2.0,
                cpu_us: 50.0,
                keys: 0,
            }],
            ..RedisCost::default()
        };
        assert_eq!(single.spread(), None);
        assert!((single.requests_per_core().unwrap() - 20_000.0).abs() < 1e-6);
    }
}
