//! `keygate check-config`: every problem of a configuration, without starting
//! the server. Exit 0 when there is none, 1 with the list otherwise.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use keygate::config::{Settings, StoreBackend};
use keygate::store::cluster::RedisClusterStore;
use keygate::store::{KvStore, StoreError};
use secrecy::ExposeSecret;

/// The longest the store gets to answer (each of two calls).
const STORE_WAIT: Duration = Duration::from_secs(5);

/// Checks the configuration from `config` and the `KEYGATE_*` environment.
pub async fn run(config: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let name = config.map_or_else(
        || "(no config file: defaults and KEYGATE_* variables)".to_string(),
        |p| p.display().to_string(),
    );
    let problems: Vec<(String, String)> = match Settings::load(config, std::env::vars()) {
        Err(e) => vec![(e.key, e.message)],
        Ok(settings) => {
            let mut out: Vec<_> = settings
                .problems()
                .into_iter()
                .map(|e| (e.key, e.message))
                .collect();
            if !out
                .iter()
                .any(|(k, _)| k == "store.url" || k.starts_with("store.tls_"))
            {
                out.extend(store_problem(&settings).await);
            }
            out
        }
    };
    if json {
        let list: Vec<_> = problems
            .iter()
            .map(|(k, m)| serde_json::json!({"key": k, "message": m}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"config": name, "ok": problems.is_empty(), "problems": list})
        );
    } else if problems.is_empty() {
        println!("{name}: OK");
    } else {
        let s = if problems.len() == 1 { "" } else { "s" };
        println!("{name}: {} problem{s}", problems.len());
        for (key, message) in &problems {
            println!("  - {key}: {message}");
        }
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A Redis store that does not answer within [`STORE_WAIT`], or (when
/// `store.require_noeviction`) may evict keys. The URL is shown redacted.
async fn store_problem(settings: &Settings) -> Option<(String, String)> {
    let backend = match settings.store_backend() {
        Ok(b @ (StoreBackend::Redis(_) | StoreBackend::RedisSentinel(_))) => b,
        Ok(b @ StoreBackend::RedisCluster(_)) => return cluster_problem(settings, &b).await,
        _ => return None,
    };
    let shown = backend.redacted();
    let problem = |m: String| Some(("store.url".to_string(), m));
    let timeout = Duration::from_millis(settings.store.timeout_ms.max(1));
    // A bad TLS file is reported by `problems()` already.
    let tls = settings.store_tls().ok()?;
    let store = match keygate::startup::connect_redis(&backend, &tls, timeout).await {
        Ok(s) => s,
        Err(e) => return problem(e.to_string()),
    };
    match tokio::time::timeout(STORE_WAIT, store.ping()).await {
        Err(_) => {
            return problem(format!(
                "Redis at {shown} did not answer within {} s",
                STORE_WAIT.as_secs()
            ))
        }
        Ok(Err(e)) => return problem(format!("Redis at {shown} is not reachable: {e}")),
        Ok(Ok(())) => {}
    }
    match tokio::time::timeout(STORE_WAIT, store.eviction_policy()).await {
        Ok(Ok(p)) if p != "noeviction" && settings.store.require_noeviction => problem(format!(
            "Redis at {shown} runs with maxmemory-policy `{p}`; keygate requires `noeviction`"
        )),
        // As `serve` does: an unverifiable policy refuses to start.
        Ok(Err(e))
            if settings.store.require_noeviction
                && (e.is_command_refused() || matches!(e, StoreError::Misconfigured(_))) =>
        {
            problem(format!(
                "cannot verify the maxmemory-policy of Redis at {shown} ({e}): allow `CONFIG GET` to keygate's ACL user (`+config|get`, docs/redis.md) or set store.require_noeviction = false"
            ))
        }
        _ if !settings.store.require_noeviction => None,
        // Under Sentinel every replica may become the master.
        _ => match tokio::time::timeout(STORE_WAIT, store.replica_eviction_policies()).await {
            Ok(Ok(replicas)) => {
                let evicting: Vec<String> = replicas
                    .iter()
                    .filter(|(_, p)| p != "noeviction")
                    .map(|(n, p)| format!("{n} (`{p}`)"))
                    .collect();
                (!evicting.is_empty()).then(|| {
                    (
                        "store.url".to_string(),
                        format!(
                            "Redis replicas of {shown} run without maxmemory-policy noeviction: {}; keygate requires `noeviction` (a replica becomes the master at failover)",
                            evicting.join(", ")
                        ),
                    )
                })
            }
            _ => None,
        },
    }
}

/// [`store_problem`] for a Redis Cluster: every node must answer and run
/// with `noeviction` (when required).
async fn cluster_problem(settings: &Settings, backend: &StoreBackend) -> Option<(String, String)> {
    let StoreBackend::RedisCluster(url) = backend else {
        return None;
    };
    let shown = backend.redacted();
    let problem = |m: String| Some(("store.url".to_string(), m));
    let timeout = Duration::from_millis(settings.store.timeout_ms.max(1));
    let store = match RedisClusterStore::connect(url.expose_secret(), timeout).await {
        Ok(s) => s,
        Err(e) => return problem(e.to_string()),
    };
    let nodes = match tokio::time::timeout(STORE_WAIT, store.eviction_policies()).await {
        Err(_) => {
            return problem(format!(
                "Redis Cluster at {shown} did not answer within {} s",
                STORE_WAIT.as_secs()
            ))
        }
        Ok(Err(e)) => return problem(format!("Redis Cluster at {shown} is not reachable: {e}")),
        Ok(Ok(nodes)) => nodes,
    };
    let evicting: Vec<String> = nodes
        .iter()
        .filter(|(_, p)| p != "noeviction")
        .map(|(n, p)| format!("{n} (`{p}`)"))
        .collect();
    (!evicting.is_empty() && settings.store.require_noeviction).then(|| {
        (
            "store.url".to_string(),
            format!(
                "Redis Cluster nodes at {shown} run without maxmemory-policy noeviction: {}; keygate requires `noeviction`",
                evicting.join(", ")
            ),
        )
    })
}
