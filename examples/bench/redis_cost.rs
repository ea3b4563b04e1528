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

/// A Redis server whose costs are read around each scenario.
pub struct RedisWatch {
    conn: redis::aio::MultiplexedConnection,
    stat_path: String,
}

/// Counters at one moment.
pub struct Snapshot {
    calls: BTreeMap<String, u64>,
    net_in: u64,
    net_out: u64,
    cpu: Option<Duration>,
}

/// Redis's cost per request of one scenario.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RedisCost {
    /// Commands per request, all kinds (inside scripts included).
    pub commands: f64,
    /// Commands per request by name (`get`, `mget`, `evalsha`, `set`, …).
    pub by_command: BTreeMap<String, f64>,
    /// Bytes Redis received per request.
    pub bytes_in: f64,
    /// Bytes Redis sent per request.
    pub bytes_out: f64,
    /// Redis CPU time per request (user + system), in µs.
    pub cpu_us: f64,
}

impl RedisWatch {
    /// Connects to the Redis at `url` whose process is `pid`.
    pub async fn connect(url: &str, pid: u32) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .context("connecting to the bench's Redis")?;
        Ok(Self {
            conn,
            stat_path: format!("/proc/{pid}/stat"),
        })
    }

    /// Reads the counters now.
    pub async fn snapshot(&self) -> anyhow::Result<Snapshot> {
        let mut conn = self.conn.clone();
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await?;
        let net: String = redis::cmd("INFO")
            .arg("stats")
            .query_async(&mut conn)
            .await?;
        Ok(Snapshot {
            calls: parse_commandstats(&stats),
            net_in: info_field(&net, "total_net_input_bytes").unwrap_or(0),
            net_out: info_field(&net, "total_net_output_bytes").unwrap_or(0),
            cpu: crate::procs::cpu_time(&self.stat_path),
        })
    }
}

impl Snapshot {
    /// The cost per request of the `requests` sent between `before` and
    /// `self`. The `INFO` commands are left out of the counts; their few
    /// kilobytes of replies stay in the byte counts (well under a byte per
    /// request over a scenario's thousands of requests).
    pub fn since(&self, before: &Snapshot, requests: u64) -> RedisCost {
        let n = requests.max(1) as f64;
        let mut by_command = BTreeMap::new();
        for (name, after) in &self.calls {
            if name == "info" {
                continue;
            }
            let delta = after.saturating_sub(*before.calls.get(name).unwrap_or(&0));
            if delta > 0 {
                by_command.insert(name.clone(), delta as f64 / n);
            }
        }
        let cpu_us = match (before.cpu, self.cpu) {
            (Some(a), Some(b)) => b.saturating_sub(a).as_secs_f64() * 1e6 / n,
            _ => 0.0,
        };
        RedisCost {
            commands: by_command.values().sum(),
            by_command,
            bytes_in: self.net_in.saturating_sub(before.net_in) as f64 / n,
            bytes_out: self.net_out.saturating_sub(before.net_out) as f64 / n,
            cpu_us,
        }
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
        let before = Snapshot {
            calls: [("get".to_string(), 2), ("info".to_string(), 1)].into(),
            net_in: 100,
            net_out: 1000,
            cpu: Some(Duration::from_millis(10)),
        };
        let after = Snapshot {
            calls: [
                ("get".to_string(), 22),
                ("evalsha".to_string(), 10),
                ("info".to_string(), 3),
            ]
            .into(),
            net_in: 1100,
            net_out: 3000,
            cpu: Some(Duration::from_millis(20)),
        };
        let cost = after.since(&before, 10);
        assert_eq!(cost.commands, 3.0);
        assert_eq!(cost.by_command["get"], 2.0);
        assert_eq!(cost.by_command["evalsha"], 1.0);
        assert_eq!(cost.bytes_in, 100.0);
        assert_eq!(cost.bytes_out, 200.0);
        assert!((cost.cpu_us - 1000.0).abs() < 1e-6);
    }
}
