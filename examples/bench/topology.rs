//! The Redis deployments keygate is measured on: one redis-server, a master
//! with one replica (`--replicaof`), and a Redis Cluster of 3 masters with a
//! replica each (`--cluster-enabled yes`, joined with `redis-cli --cluster
//! create … --cluster-replicas 1`). Loopback only, free ports, no
//! persistence, `noeviction`; every node runs on the load generator's core
//! at `nice -10` like the single Redis, and is killed by its PID when the
//! deployment is dropped. Every wait is bounded.
//!
//! (The test harness `tests/api/redis_cluster.rs` starts the same cluster;
//! an example cannot import test code, so this is its small twin.)

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::procs::{self, Proc};

/// How long the nodes may take to form a cluster or link a replica.
const FORM_LIMIT: Duration = Duration::from_secs(60);
/// How long `redis-cli --cluster create` may run.
const CREATE_LIMIT: Duration = Duration::from_secs(60);
/// Masters of the cluster (each with one replica).
pub const MASTERS: usize = 3;

/// Which deployment a bench store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One redis-server (`--stores redis`).
    Single,
    /// A master and one replica (`--stores replica`).
    Replica,
    /// 3 masters, 3 replicas (`--stores cluster`).
    Cluster,
}

impl Kind {
    /// The `--stores` name, or `None` for `memory`.
    pub fn parse(store: &str) -> anyhow::Result<Option<Self>> {
        Ok(match store {
            "memory" => None,
            "redis" => Some(Self::Single),
            "replica" => Some(Self::Replica),
            "cluster" => Some(Self::Cluster),
            other => bail!("unknown store {other} (memory, redis, replica or cluster)"),
        })
    }

    /// Whether the deployment has replicas, so `store.wait_replicas = 1`
    /// can be measured on it.
    pub fn has_replicas(self) -> bool {
        self != Self::Single
    }
}

/// One running redis-server of a deployment.
pub struct Node {
    pub port: u16,
    /// A master serving data (false: a replica).
    pub master: bool,
    proc: Proc,
}

impl Node {
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }
}

/// A running deployment; dropping it kills every node.
pub struct Deployment {
    pub kind: Kind,
    pub nodes: Vec<Node>,
}

impl Deployment {
    /// Starts `kind` with its logs and files under `dir`.
    pub async fn start(kind: Kind, core: Option<usize>, dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        match kind {
            Kind::Single => {
                let port = procs::free_port()?;
                let proc = procs::redis(core, port, &[], &dir.join("redis.log"))?;
                Ok(Self {
                    kind,
                    nodes: vec![Node {
                        port,
                        master: true,
                        proc,
                    }],
                })
            }
            Kind::Replica => {
                let master_port = procs::free_port()?;
                let master = procs::redis(core, master_port, &[], &dir.join("master.log"))?;
                let port = procs::free_port()?;
                let args = [
                    "--replicaof".to_string(),
                    "127.0.0.1".to_string(),
                    master_port.to_string(),
                ];
                let replica = start_node(core, port, &args, dir, "replica")?;
                let d = Self {
                    kind,
                    nodes: vec![
                        Node {
                            port: master_port,
                            master: true,
                            proc: master,
                        },
                        Node {
                            port,
                            master: false,
                            proc: replica,
                        },
                    ],
                };
                d.wait_replicas_linked().await?;
                Ok(d)
            }
            Kind::Cluster => start_cluster(core, dir).await,
        }
    }

    /// keygate's `store.url` for this deployment.
    pub fn url(&self) -> String {
        match self.kind {
            Kind::Cluster => {
                let seeds: Vec<String> = self
                    .nodes
                    .iter()
                    .filter(|n| n.master)
                    .map(|n| format!("127.0.0.1:{}", n.port))
                    .collect();
                format!("redis+cluster://{}", seeds.join(","))
            }
            _ => format!("redis://127.0.0.1:{}", self.nodes[0].port),
        }
    }

    /// Waits until every replica reports `master_link_status:up`, so that
    /// `WAIT 1` can be answered from the first request on.
    async fn wait_replicas_linked(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + FORM_LIMIT;
        for n in self.nodes.iter().filter(|n| !n.master) {
            loop {
                let info = info(n.port, &["INFO", "replication"]).await;
                if info
                    .as_deref()
                    .is_some_and(|i| i.lines().any(|l| l.trim() == "master_link_status:up"))
                {
                    break;
                }
                if Instant::now() >= deadline {
                    bail!(
                        "the replica on port {} did not link to its master within {FORM_LIMIT:?}",
                        n.port
                    );
                }
                // Polling interval, not a wait for readiness.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }
}

/// A node of a replicated deployment: [`procs::redis`] with its files in
/// `dir` and its log named after its role.
fn start_node(
    core: Option<usize>,
    port: u16,
    extra: &[String],
    dir: &Path,
    name: &str,
) -> anyhow::Result<Proc> {
    let dir_s = dir.to_str().context("path is not UTF-8")?;
    let mut args = vec!["--dir", dir_s];
    args.extend(extra.iter().map(String::as_str));
    procs::redis(core, port, &args, &dir.join(format!("{name}-{port}.log")))
}

async fn start_cluster(core: Option<usize>, dir: &Path) -> anyhow::Result<Deployment> {
    let mut nodes = vec![];
    for i in 0..MASTERS * 2 {
        let port = procs::free_port()?;
        let bus = procs::free_port()?;
        let node_dir: PathBuf = dir.join(format!("node-{i}"));
        std::fs::create_dir_all(&node_dir)?;
        let args = [
            "--cluster-enabled".to_string(),
            "yes".to_string(),
            "--cluster-config-file".to_string(),
            "nodes.conf".to_string(),
            "--cluster-port".to_string(),
            bus.to_string(),
            "--cluster-node-timeout".to_string(),
            "5000".to_string(),
        ];
        let proc = start_node(core, port, &args, &node_dir, "node")?;
        nodes.push(Node {
            port,
            master: false,
            proc,
        });
    }
    let mut d = Deployment {
        kind: Kind::Cluster,
        nodes,
    };
    let cli = procs::which("redis-cli").context(
        "redis-cli is not installed: run `sudo apt-get install -y redis-tools` (Debian ships it with redis-server)",
    )?;
    let mut cmd = Command::new(cli);
    cmd.arg("--cluster").arg("create");
    for n in &d.nodes {
        cmd.arg(format!("127.0.0.1:{}", n.port));
    }
    cmd.args(["--cluster-replicas", "1", "--cluster-yes"]);
    let mut create = Proc::start("redis-cli --cluster create", cmd, &dir.join("create.log"))?;
    let deadline = Instant::now() + CREATE_LIMIT;
    loop {
        if let Some(status) = create.try_wait()? {
            if !status.success() {
                bail!(
                    "redis-cli --cluster create failed ({status}); see {}",
                    dir.join("create.log").display()
                );
            }
            break;
        }
        if Instant::now() >= deadline {
            bail!("redis-cli --cluster create did not finish within {CREATE_LIMIT:?}");
        }
        // Polling interval, not a wait for readiness.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(create);
    // Formed: every node says `cluster_state:ok` and sees 3 masters serving
    // slots and 3 replicas.
    let deadline = Instant::now() + FORM_LIMIT;
    loop {
        let mut views = vec![];
        for n in &d.nodes {
            let state = info(n.port, &["CLUSTER", "INFO"]).await;
            let nodes = info(n.port, &["CLUSTER", "NODES"]).await;
            views.push((state, nodes));
        }
        let formed = views.iter().all(|(state, nodes)| {
            state
                .as_deref()
                .is_some_and(|s| s.lines().any(|l| l.trim() == "cluster_state:ok"))
                && nodes.as_deref().is_some_and(|t| {
                    let (m, r) = crate::cluster_nodes::cluster_roles(t);
                    m.len() == MASTERS && r.len() == MASTERS
                })
        });
        if formed {
            let (masters, _) =
                crate::cluster_nodes::cluster_roles(views[0].1.as_deref().unwrap_or_default());
            for n in &mut d.nodes {
                n.master = masters.contains(&n.port);
            }
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "the cluster did not form within {FORM_LIMIT:?}; logs under {}",
                dir.display()
            );
        }
        // Polling interval, not a wait for readiness.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    d.wait_replicas_linked().await?;
    Ok(d)
}

/// One command's text reply from the node on `port` (`None`: no answer
/// within a second).
async fn info(port: u16, args: &[&str]) -> Option<String> {
    let ask = async {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query_async::<String>(&mut conn).await.ok()
    };
    tokio::time::timeout(Duration::from_secs(1), ask)
        .await
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_kinds_parse() {
        assert_eq!(Kind::parse("cluster").unwrap(), Some(Kind::Cluster));
        assert_eq!(Kind::parse("memory").unwrap(), None);
        assert!(Kind::parse("sentinel").is_err());
        assert!(Kind::Replica.has_replicas() && !Kind::Single.has_replicas());
    }
}
