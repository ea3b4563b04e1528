//! A throwaway Redis Cluster: 3 masters and 3 replicas on loopback ports.
//!
//! Six `redis-server --cluster-enabled yes` child processes (persistence
//! off, `maxmemory-policy noeviction`, each with its files, log and
//! `nodes.conf` in a private temp dir), joined with `redis-cli --cluster
//! create … --cluster-replicas 1`, and ready once every node reports
//! `cluster_state:ok`. Every process is killed (by PID) when the cluster is
//! dropped. A node can be stopped (`SIGKILL`: a crash) and started again on
//! its port with its `nodes.conf`, so it rejoins: outage and failover tests
//! use that. Starting takes a few seconds, so a test that needs a cluster
//! starts one and runs several scenarios on it, each on its own keys.
//!
//! The binaries are `redis-server` and `redis-cli` from `PATH` (Debian:
//! packages `redis-server` and `redis-tools`), or `KEYGATE_TEST_REDIS_BIN`
//! and `KEYGATE_TEST_REDIS_CLI_BIN`. A missing binary fails the test with
//! install instructions: never a silent skip.
//! Must not depend on keygate: it only starts processes and speaks raw RESP.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::cluster_nodes::cluster_roles;
use crate::ports::free_port;
use crate::redis_server::{read_log, state_dir};

const SERVER_ENV: &str = "KEYGATE_TEST_REDIS_BIN";
const CLI_ENV: &str = "KEYGATE_TEST_REDIS_CLI_BIN";
/// Masters, and replicas per master.
const MASTERS: usize = 3;
const REPLICAS: usize = 1;
/// How long a node may take to answer, and the cluster to become `ok`.
const NODE_DEADLINE: Duration = Duration::from_secs(10);
const CLUSTER_DEADLINE: Duration = Duration::from_secs(60);
/// Whole-cluster start attempts (a port taken between probe and bind).
const START_ATTEMPTS: usize = 3;
/// `cluster-node-timeout`: short, so that a killed master is failed over
/// within seconds in the failover tests.
const NODE_TIMEOUT_MS: &str = "2000";

/// One `redis-server` of the cluster.
#[derive(Debug)]
struct Node {
    port: u16,
    /// The cluster bus port (given explicitly: `port + 10000` may be taken).
    bus_port: u16,
    dir: TempDir,
    child: Option<Child>,
}

/// A running Redis Cluster of child processes.
#[derive(Debug)]
pub struct RedisCluster {
    server: PathBuf,
    nodes: Vec<Node>,
    /// `requirepass` (and `masterauth`) of every node, if any.
    password: Option<String>,
}

fn bin(env: &str, default: &str) -> PathBuf {
    std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

impl RedisCluster {
    /// Starts 6 nodes, joins them as 3 masters with a replica each, and
    /// waits until every node reports `cluster_state:ok`.
    ///
    /// # Panics
    /// If a binary is missing (with install instructions), or the cluster
    /// does not form (with the nodes' logs and redis-cli's output).
    pub fn new() -> Self {
        Self::start(None)
    }

    /// [`Self::new`] with every node requiring `password` (the default
    /// user's, `requirepass`; replicas authenticate with `masterauth`).
    pub fn with_password(password: &str) -> Self {
        Self::start(Some(password.to_string()))
    }

    fn start(password: Option<String>) -> Self {
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_new(password.clone()) {
                Ok(cluster) => return cluster,
                Err(why) => last = why,
            }
        }
        panic!("the Redis Cluster did not start after {START_ATTEMPTS} attempts; last failure:\n{last}");
    }

    fn try_new(password: Option<String>) -> Result<Self, String> {
        let mut cluster = RedisCluster {
            server: bin(SERVER_ENV, "redis-server"),
            nodes: vec![],
            password,
        };
        for _ in 0..MASTERS * (1 + REPLICAS) {
            let dir = state_dir("keygate-redis-cluster-");
            cluster.nodes.push(Node {
                port: free_port(),
                bus_port: free_port(),
                dir,
                child: None,
            });
        }
        for i in 0..cluster.nodes.len() {
            cluster.spawn(i)?;
        }
        for i in 0..cluster.nodes.len() {
            cluster.wait_answers(i)?;
        }
        cluster.create()?;
        cluster.wait_ok()?;
        cluster.wait_formed()?;
        Ok(cluster)
    }

    /// `redis+cluster://127.0.0.1:P1,…` naming the first three nodes as
    /// seeds (with `:password@` when the nodes require one).
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .take(3)
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let auth = self
            .password
            .as_ref()
            .map_or(String::new(), |p| format!(":{p}@"));
        format!("redis+cluster://{auth}{}", seeds.join(","))
    }

    /// [`command`] as the default user of this cluster.
    fn ask(&self, port: u16, args: &[&str]) -> Option<String> {
        command_as(port, self.password.as_deref(), args)
    }

    /// The ports of every node.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// The ports of the nodes that are masters serving slots now (by
    /// `CLUSTER NODES` of a running node), sorted.
    pub fn masters(&self) -> Vec<u16> {
        let text = self
            .nodes
            .iter()
            .filter(|n| n.child.is_some())
            .find_map(|n| self.ask(n.port, &["CLUSTER", "NODES"]))
            .expect("no running node answers CLUSTER NODES");
        let (masters, _) = cluster_roles(&text);
        masters
    }

    /// The process id of the node on `port`, `None` while it is stopped
    /// (to pause it with `SIGSTOP`: `redis_sentinel::signal`).
    pub fn pid(&self, port: u16) -> Option<u32> {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .and_then(|n| n.child.as_ref().map(Child::id))
    }

    /// Kills the node on `port` (`SIGKILL`, by PID: a crash) and waits for
    /// it to exit. Does nothing if it is stopped already.
    pub fn stop_node(&mut self, port: u16) {
        let node = self.node_mut(port);
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the node on `port` again with its `nodes.conf` (it rejoins
    /// the cluster; its data is gone) and waits until it answers.
    pub fn start_node(&mut self, port: u16) {
        let i = self
            .nodes
            .iter()
            .position(|n| n.port == port)
            .expect("no node on that port");
        assert!(self.nodes[i].child.is_none(), "node {port} is running");
        let mut last = String::new();
        for attempt in 0..5 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(100));
            }
            match self.spawn(i).and_then(|()| self.wait_answers(i)) {
                Ok(()) => return,
                Err(why) => last = why,
            }
        }
        panic!("redis-server did not restart on port {port}:\n{last}");
    }

    /// Waits until every running node reports `cluster_state:ok`.
    ///
    /// # Panics
    /// After the deadline, with every node's view and log.
    pub fn wait_until_ok(&self) {
        if let Err(why) = self.wait_ok() {
            panic!("{why}");
        }
    }

    fn node_mut(&mut self, port: u16) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("no node on that port")
    }

    fn spawn(&mut self, i: usize) -> Result<(), String> {
        let password = self.password.clone();
        let node = &mut self.nodes[i];
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.dir.path().join("redis.log"))
            .expect("open the redis-server log file");
        let log_err = log.try_clone().expect("clone the log file handle");
        let mut cmd = Command::new(&self.server);
        if let Some(p) = &password {
            cmd.args(["--requirepass", p]).args(["--masterauth", p]);
        }
        let spawned = cmd
            .args(["--port", &node.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", "nodes.conf"])
            .args(["--cluster-port", &node.bus_port.to_string()])
            .args(["--cluster-node-timeout", NODE_TIMEOUT_MS])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--maxmemory-policy", "noeviction"])
            .arg("--dir")
            .arg(node.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn();
        match spawned {
            Ok(child) => {
                node.child = Some(child);
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::NotFound => panic!(
                "`{}` not found ({e}). The Redis Cluster tests need a real redis-server (>= 7) \
                 and redis-cli: install them with `apt-get update && apt-get install -y \
                 redis-server redis-tools`, or run `make test`, which installs them; or point \
                 {SERVER_ENV} and {CLI_ENV} at the binaries.",
                self.server.display()
            ),
            Err(e) => panic!("cannot start `{}`: {e}", self.server.display()),
        }
    }

    /// Polls until node `i` answers as itself (its PID), or it exits.
    fn wait_answers(&mut self, i: usize) -> Result<(), String> {
        let deadline = Instant::now() + NODE_DEADLINE;
        let password = self.password.clone();
        loop {
            let node = &mut self.nodes[i];
            let Some(child) = node.child.as_mut() else {
                return Err(format!("node {} is not running", node.port));
            };
            if let Ok(Some(status)) = child.try_wait() {
                node.child = None;
                return Err(format!(
                    "redis-server exited with {status} on port {}; log:\n{}",
                    node.port,
                    read_log(&node.dir.path().join("redis.log"))
                ));
            }
            let pid = child.id();
            let answered = command_as(node.port, password.as_deref(), &["INFO", "server"])
                .and_then(|info| {
                    info.lines()
                        .find_map(|l| l.strip_prefix("process_id:"))
                        .and_then(|p| p.trim().parse::<u32>().ok())
                });
            if answered == Some(pid) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "redis-server on port {} did not answer within {NODE_DEADLINE:?}; log:\n{}",
                    node.port,
                    read_log(&node.dir.path().join("redis.log"))
                ));
            }
            // Polling interval, not a wait for readiness.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `redis-cli --cluster create`: the first three nodes become masters.
    fn create(&self) -> Result<(), String> {
        let cli = bin(CLI_ENV, "redis-cli");
        let mut cmd = Command::new(&cli);
        if let Some(p) = &self.password {
            cmd.args(["-a", p, "--no-auth-warning"]);
        }
        cmd.arg("--cluster").arg("create");
        for n in &self.nodes {
            cmd.arg(format!("127.0.0.1:{}", n.port));
        }
        cmd.args(["--cluster-replicas", &REPLICAS.to_string()])
            .arg("--cluster-yes")
            .stdin(Stdio::null());
        let out = match cmd.output() {
            Ok(out) => out,
            Err(e) if e.kind() == ErrorKind::NotFound => panic!(
                "`{}` not found ({e}). The Redis Cluster tests join the nodes with redis-cli: \
                 install it with `apt-get update && apt-get install -y redis-tools` (it comes \
                 with redis-server on Debian), or run `make test`, which installs it; or point \
                 {CLI_ENV} at the binary.",
                cli.display()
            ),
            Err(e) => panic!("cannot run `{}`: {e}", cli.display()),
        };
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "redis-cli --cluster create failed ({}):\n{}\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.logs()
            ))
        }
    }

    fn wait_ok(&self) -> Result<(), String> {
        let deadline = Instant::now() + CLUSTER_DEADLINE;
        loop {
            let running: Vec<u16> = self
                .nodes
                .iter()
                .filter(|n| n.child.is_some())
                .map(|n| n.port)
                .collect();
            let all_ok = running.iter().all(|p| {
                self.ask(*p, &["CLUSTER", "INFO"])
                    .is_some_and(|info| info.lines().any(|l| l.trim() == "cluster_state:ok"))
            });
            if all_ok {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let views: Vec<String> = running
                    .iter()
                    .map(|p| {
                        format!(
                            "node {p}:\n{}",
                            self.ask(*p, &["CLUSTER", "NODES"]).unwrap_or_default()
                        )
                    })
                    .collect();
                return Err(format!(
                    "the cluster was not ok on every node within {CLUSTER_DEADLINE:?}:\n{}\n{}",
                    views.join("\n"),
                    self.logs()
                ));
            }
            // Polling interval, not a wait for readiness.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every node sees [`MASTERS`] masters serving slots and
    /// their replicas (`cluster_state:ok` comes before the replicas are
    /// assigned everywhere).
    fn wait_formed(&self) -> Result<(), String> {
        let deadline = Instant::now() + CLUSTER_DEADLINE;
        loop {
            let formed = self.nodes.iter().all(|n| {
                self.ask(n.port, &["CLUSTER", "NODES"]).is_some_and(|text| {
                    let (masters, replicas) = cluster_roles(&text);
                    masters.len() == MASTERS && replicas.len() == MASTERS * REPLICAS
                })
            });
            if formed {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the cluster did not show {MASTERS} masters and their replicas within \
                     {CLUSTER_DEADLINE:?}:\n{}",
                    self.logs()
                ));
            }
            // Polling interval, not a wait for readiness.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                format!(
                    "--- node {} log:\n{}",
                    n.port,
                    read_log(&n.dir.path().join("redis.log"))
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Sends one command to the node on `port` (after `AUTH password` when
/// one is given) and returns its bulk-string reply (`None`: no answer, or
/// another kind of reply).
pub fn command_as(port: u16, password: Option<&str>, args: &[&str]) -> Option<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let timeout = Duration::from_millis(500);
    let stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    let encode = |args: &[&str]| {
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        req
    };
    let mut reader = BufReader::new(&stream);
    if let Some(p) = password {
        (&stream).write_all(encode(&["AUTH", p]).as_bytes()).ok()?;
        let mut ok = String::new();
        reader.read_line(&mut ok).ok()?;
        if !ok.starts_with("+OK") {
            return None;
        }
    }
    (&stream).write_all(encode(args).as_bytes()).ok()?;
    let mut header = String::new();
    reader.read_line(&mut header).ok()?;
    let len: usize = header.strip_prefix('$')?.trim_end().parse().ok()?;
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).ok()?;
    Some(String::from_utf8_lossy(&body).into_owned())
}
