//! A throwaway Redis Sentinel deployment: one master, its replicas and
//! three sentinels on loopback ports.
//!
//! Every data node is a `redis-server` child process (persistence off,
//! `maxmemory-policy noeviction`, its files and log in a private temp
//! dir); the replicas start with `--replicaof` the master. The sentinels
//! are `redis-server <conf> --sentinel` processes, each with the writable
//! config file Sentinel rewrites, monitoring the master as `keygate`
//! (quorum 2, `down-after-milliseconds 2000`, `failover-timeout 5000`).
//! Not 1000: a sentinel that learns of a promotion from another one
//! reconnects to the new master at most once a second (its link's
//! reconnect period), and with 1000 ms it often called that healthy new
//! master down before its first `PONG` and failed over again, promoting
//! the old master that had just restarted, empty.
//! The deployment is ready once every replica is synced and every sentinel
//! sees the replicas and the two other sentinels.
//!
//! A node can be killed (`SIGKILL`: a crash), started again on its port
//! (the sentinels make a returning old master a replica), paused and
//! resumed (`SIGSTOP`/`SIGCONT`: a replica that stops acknowledging), and
//! a replica's link can be cut (a replica that stops receiving).
//! Every process is killed (by PID) when the deployment is dropped, paused
//! ones included. Waits are bounded polls; a failed wait panics with every
//! process's log.
//!
//! The binary is `redis-server` from `PATH` (Debian: package
//! `redis-server`), or `KEYGATE_TEST_REDIS_BIN`. A missing binary fails the
//! test with install instructions: never a silent skip.
//! Must not depend on keygate: it only starts processes and speaks raw RESP.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::ports::free_port;
use crate::redis_server::{read_log, state_dir};

const SERVER_ENV: &str = "KEYGATE_TEST_REDIS_BIN";
/// The name the sentinels monitor the master under.
pub const MASTER_NAME: &str = "keygate";
const SENTINELS: usize = 3;
/// How long a process may take to answer after it starts.
const NODE_DEADLINE: Duration = Duration::from_secs(10);
/// How long the deployment may take to form, fail over, or resync.
const DEPLOYMENT_DEADLINE: Duration = Duration::from_secs(45);
/// Whole-deployment start attempts (a port taken between probe and bind).
const START_ATTEMPTS: usize = 3;

/// One child process of the deployment.
#[derive(Debug)]
struct Proc {
    port: u16,
    sentinel: bool,
    /// `--replicaof` the first master, for the replicas it started as.
    replica_of: Option<u16>,
    dir: TempDir,
    child: Option<Child>,
    paused: bool,
}

/// A running Sentinel deployment of child processes.
#[derive(Debug)]
pub struct RedisSentinel {
    server: PathBuf,
    /// The data nodes: `[0]` is the first master, then the replicas.
    nodes: Vec<Proc>,
    sentinels: Vec<Proc>,
}

impl RedisSentinel {
    /// One master, `replicas` replicas and three sentinels, ready.
    ///
    /// # Panics
    /// If the binary is missing (with install instructions), or the
    /// deployment does not form (with every log).
    pub fn new(replicas: usize) -> Self {
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_new(replicas) {
                Ok(d) => return d,
                Err(why) => last = why,
            }
        }
        panic!("the Sentinel deployment did not start after {START_ATTEMPTS} attempts; last failure:\n{last}");
    }

    fn try_new(replicas: usize) -> Result<Self, String> {
        let server = std::env::var_os(SERVER_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("redis-server"));
        let proc = |sentinel: bool, replica_of: Option<u16>| Proc {
            port: free_port(),
            sentinel,
            replica_of,
            dir: state_dir("keygate-redis-sentinel-"),
            child: None,
            paused: false,
        };
        let master = proc(false, None);
        let master_port = master.port;
        let mut d = RedisSentinel {
            server,
            nodes: vec![master],
            sentinels: vec![],
        };
        for _ in 0..replicas {
            d.nodes.push(proc(false, Some(master_port)));
        }
        for i in 0..d.nodes.len() {
            let port = d.nodes[i].port;
            d.spawn(port)?;
        }
        // Replicas synced before the sentinels start: their first INFO of
        // the master lists them (the next one is 10 s later).
        d.wait_synced()?;
        for _ in 0..SENTINELS {
            let s = proc(true, None);
            let conf = format!(
                "port {}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds {MASTER_NAME} 2000\n\
                 sentinel failover-timeout {MASTER_NAME} 5000\n\
                 sentinel parallel-syncs {MASTER_NAME} 1\n",
                s.port,
                s.dir.path().display()
            );
            std::fs::write(s.dir.path().join("sentinel.conf"), conf).expect("write sentinel.conf");
            d.sentinels.push(s);
        }
        for i in 0..SENTINELS {
            let port = d.sentinels[i].port;
            d.spawn(port)?;
        }
        d.wait_formed(replicas)?;
        Ok(d)
    }

    /// `redis+sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/keygate`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/{MASTER_NAME}", hosts.join(","))
    }

    /// The data nodes' ports (the first master first).
    pub fn data_ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// The master's port as the first sentinel that answers names it
    /// (`SENTINEL get-master-addr-by-name keygate`).
    ///
    /// # Panics
    /// If no sentinel answers.
    pub fn master_port(&self) -> u16 {
        self.named_master()
            .unwrap_or_else(|| panic!("no sentinel names the master\n{}", self.logs()))
    }

    fn named_master(&self) -> Option<u16> {
        self.sentinels
            .iter()
            .filter(|s| s.child.is_some())
            .find_map(|s| {
                let reply = request(
                    s.port,
                    &["SENTINEL", "get-master-addr-by-name", MASTER_NAME],
                )?;
                reply.array()?.get(1)?.text()?.parse().ok()
            })
    }

    /// Kills the master the sentinels name (`SIGKILL`, by PID) and returns
    /// its port.
    pub fn kill_master(&mut self) -> u16 {
        let port = self.master_port();
        self.kill(port);
        port
    }

    /// Kills the data node on `port` (`SIGKILL`, by PID: a crash) and
    /// waits for it to exit.
    pub fn kill(&mut self, port: u16) {
        let node = self.proc_mut(port);
        node.paused = false;
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Polls until every sentinel names a master other than `old` and that
    /// node answers `role:master`; its port.
    ///
    /// # Panics
    /// After the deadline, with every log.
    pub fn wait_for_new_master(&self, old: u16) -> u16 {
        let deadline = Instant::now() + DEPLOYMENT_DEADLINE;
        loop {
            let named: Vec<Option<u16>> = self
                .sentinels
                .iter()
                .map(|s| {
                    let reply = request(
                        s.port,
                        &["SENTINEL", "get-master-addr-by-name", MASTER_NAME],
                    )?;
                    reply.array()?.get(1)?.text()?.parse().ok()
                })
                .collect();
            if let Some(Some(new)) = named.first() {
                let agreed = named.iter().all(|n| *n == Some(*new));
                if agreed && *new != old && self.role(*new).as_deref() == Some("master") {
                    return *new;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no new master within {DEPLOYMENT_DEADLINE:?} (sentinels name {named:?})\n{}",
                self.logs()
            );
            // Polling interval, not a wait for readiness.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the data node on `port` again, as it first started (the old
    /// master comes back as a master, empty: persistence is off), and waits
    /// until the sentinels have made it a replica of the current master,
    /// synced.
    ///
    /// # Panics
    /// If it does not start or rejoin in time, with every log.
    pub fn restart(&mut self, port: u16) {
        assert!(
            self.proc_mut(port).child.is_none(),
            "node {port} is running"
        );
        let mut last = String::new();
        let mut started = false;
        for attempt in 0..5 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(100));
            }
            match self.spawn(port) {
                Ok(()) => {
                    started = true;
                    break;
                }
                Err(why) => last = why,
            }
        }
        assert!(started, "redis-server did not restart on {port}:\n{last}");
        let deadline = Instant::now() + DEPLOYMENT_DEADLINE;
        loop {
            // Asked each time: under a loaded CI machine the sentinels may
            // fail over once more (seen: the second replica promoted), and
            // the node then follows the newest master.
            let master = self.master_port();
            let info = request(port, &["INFO", "replication"])
                .and_then(|r| r.text().map(str::to_owned))
                .unwrap_or_default();
            if has_line(&info, "role:slave")
                && has_line(&info, &format!("master_port:{master}"))
                && has_line(&info, "master_link_status:up")
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {port} did not become a replica of {master} within \
                 {DEPLOYMENT_DEADLINE:?}:\n{info}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.wait_replica_synced();
    }

    /// Cuts the replication link of the replica on `port`: it gets a wrong
    /// `masterauth` and its link is killed, so it reconnects, fails to
    /// authenticate and receives nothing more (a lagging replica). Unlike
    /// [`Self::pause`], whose process still finds the stream in its socket
    /// buffer when it resumes, nothing written afterwards reaches it.
    /// Waits until its link is down.
    ///
    /// # Panics
    /// If the link is not down in time.
    pub fn cut_replication(&self, port: u16) {
        let set = request(port, &["CONFIG", "SET", "masterauth", "keygate-test-cut"]);
        assert_eq!(set, Some(Reply::Text("OK".into())), "masterauth on {port}");
        let _ = request(port, &["CLIENT", "KILL", "TYPE", "master"]);
        let deadline = Instant::now() + NODE_DEADLINE;
        loop {
            let info = request(port, &["INFO", "replication"])
                .and_then(|r| r.text().map(str::to_owned))
                .unwrap_or_default();
            if has_line(&info, "master_link_status:down") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the replication link of {port} is still up:\n{info}"
            );
            // Polling interval, not a wait for readiness.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Undoes [`Self::cut_replication`]'s `masterauth` on `port`.
    pub fn mend_replication(&self, port: u16) {
        let set = request(port, &["CONFIG", "SET", "masterauth", ""]);
        assert_eq!(set, Some(Reply::Text("OK".into())), "masterauth on {port}");
    }

    /// Stops the data node on `port` (`SIGSTOP`): it keeps its connections
    /// but answers nothing, acknowledges nothing.
    pub fn pause(&mut self, port: u16) {
        let node = self.proc_mut(port);
        let pid = node.child.as_ref().expect("node is running").id();
        signal(pid, "STOP");
        node.paused = true;
    }

    /// Lets a paused node run again (`SIGCONT`).
    pub fn resume(&mut self, port: u16) {
        let node = self.proc_mut(port);
        let pid = node.child.as_ref().expect("node is running").id();
        signal(pid, "CONT");
        node.paused = false;
    }

    /// Waits until every running, unpaused replica of the current master
    /// has processed the master's whole replication stream (its
    /// `master_repl_offset` equals the master's).
    ///
    /// # Panics
    /// After the deadline, with every log.
    pub fn wait_replica_synced(&self) {
        let master = self.master_port();
        if let Err(why) = self.synced_with(master) {
            panic!("{why}");
        }
    }

    fn wait_synced(&self) -> Result<(), String> {
        self.synced_with(self.nodes[0].port)
    }

    fn synced_with(&self, master: u16) -> Result<(), String> {
        let deadline = Instant::now() + DEPLOYMENT_DEADLINE;
        let offset = |info: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix("master_repl_offset:"))
                .and_then(|o| o.trim().parse::<u64>().ok())
        };
        loop {
            let master_info = request(master, &["INFO", "replication"])
                .and_then(|r| r.text().map(str::to_owned))
                .unwrap_or_default();
            let want = offset(&master_info);
            let lagging: Vec<u16> = self
                .nodes
                .iter()
                .filter(|n| n.port != master && n.child.is_some() && !n.paused)
                .filter(|n| {
                    let info = request(n.port, &["INFO", "replication"])
                        .and_then(|r| r.text().map(str::to_owned))
                        .unwrap_or_default();
                    !(has_line(&info, "master_link_status:up")
                        && has_line(&info, &format!("master_port:{master}"))
                        && want.is_some()
                        && offset(&info) == want)
                })
                .map(|n| n.port)
                .collect();
            if want.is_some() && lagging.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "replicas {lagging:?} not synced with master {master} within \
                     {DEPLOYMENT_DEADLINE:?}:\n{master_info}\n{}",
                    self.logs()
                ));
            }
            // Polling interval, not a wait for readiness.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every sentinel sees the master, `replicas` replicas and the two
    /// other sentinels.
    fn wait_formed(&self, replicas: usize) -> Result<(), String> {
        let deadline = Instant::now() + DEPLOYMENT_DEADLINE;
        let mut views = vec![];
        loop {
            views.clear();
            for s in &self.sentinels {
                let fields = request(s.port, &["SENTINEL", "master", MASTER_NAME])
                    .and_then(|r| r.fields())
                    .unwrap_or_default();
                let field = |k: &str| {
                    fields
                        .iter()
                        .find(|(name, _)| name == k)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                views.push((
                    field("flags"),
                    field("num-slaves"),
                    field("num-other-sentinels"),
                ));
            }
            let want = (
                "master".to_string(),
                replicas.to_string(),
                (SENTINELS - 1).to_string(),
            );
            if views.iter().all(|v| *v == want) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the sentinels did not see the deployment within {DEPLOYMENT_DEADLINE:?} \
                     ((flags, replicas, other sentinels) per sentinel: {views:?})\n{}",
                    self.logs()
                ));
            }
            // Polling interval, not a wait for readiness.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `role:` of the node on `port`, if it answers.
    fn role(&self, port: u16) -> Option<String> {
        let info = request(port, &["INFO", "replication"])?;
        info.text()?
            .lines()
            .find_map(|l| l.strip_prefix("role:"))
            .map(|r| r.trim().to_string())
    }

    fn proc_mut(&mut self, port: u16) -> &mut Proc {
        self.nodes
            .iter_mut()
            .chain(self.sentinels.iter_mut())
            .find(|p| p.port == port)
            .unwrap_or_else(|| panic!("no process on port {port}"))
    }

    /// Starts the process of `port` and waits until it answers as itself.
    fn spawn(&mut self, port: u16) -> Result<(), String> {
        let server = self.server.clone();
        let node = self.proc_mut(port);
        let log_path = node.dir.path().join("redis.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open the redis-server log file");
        let log_err = log.try_clone().expect("clone the log file handle");
        let mut cmd = Command::new(&server);
        if node.sentinel {
            cmd.arg(node.dir.path().join("sentinel.conf"))
                .arg("--sentinel");
        } else {
            cmd.args(["--port", &node.port.to_string()])
                .args(["--bind", "127.0.0.1"])
                .args(["--save", ""])
                .args(["--appendonly", "no"])
                .args(["--maxmemory-policy", "noeviction"])
                .arg("--dir")
                .arg(node.dir.path());
            if let Some(m) = node.replica_of {
                cmd.args(["--replicaof", "127.0.0.1", &m.to_string()]);
            }
        }
        let spawned = cmd.stdin(Stdio::null()).stdout(log).stderr(log_err).spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == ErrorKind::NotFound => panic!(
                "`{}` not found ({e}). The Sentinel tests need a real redis-server (>= 6.2), \
                 which also runs the sentinels: install it with `apt-get update && apt-get \
                 install -y redis-server`, or run `make test`, which installs it; or point \
                 {SERVER_ENV} at the binary.",
                server.display()
            ),
            Err(e) => panic!("cannot start `{}`: {e}", server.display()),
        };
        let pid = child.id();
        node.child = Some(child);
        node.paused = false;
        let deadline = Instant::now() + NODE_DEADLINE;
        loop {
            let node = self.proc_mut(port);
            if let Some(Ok(Some(status))) = node.child.as_mut().map(Child::try_wait) {
                node.child = None;
                return Err(format!(
                    "redis-server exited with {status} on port {port}; log:\n{}",
                    read_log(&log_path)
                ));
            }
            let answered = request(port, &["INFO", "server"]).and_then(|r| {
                r.text()?
                    .lines()
                    .find_map(|l| l.strip_prefix("process_id:"))
                    .and_then(|p| p.trim().parse::<u32>().ok())
            });
            if answered == Some(pid) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "redis-server on port {port} did not answer within {NODE_DEADLINE:?}; log:\n{}",
                    read_log(&log_path)
                ));
            }
            // Polling interval, not a wait for readiness.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every process's log, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .chain(&self.sentinels)
            .map(|p| {
                format!(
                    "--- {} {} log:\n{}",
                    if p.sentinel { "sentinel" } else { "node" },
                    p.port,
                    read_log(&p.dir.path().join("redis.log"))
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        for p in self.nodes.iter_mut().chain(self.sentinels.iter_mut()) {
            if let Some(mut child) = p.child.take() {
                // SIGKILL ends a stopped process too.
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Whether `info` (an `INFO` reply) has the line `line`.
fn has_line(info: &str, line: &str) -> bool {
    info.lines().any(|l| l.trim_end() == line)
}

/// Sends `SIG<name>` (`STOP`, `CONT`) to `pid` with `kill(1)`.
///
/// # Panics
/// If `kill` fails.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill(1)");
    assert!(status.success(), "kill -{name} {pid}: {status}");
}

/// A RESP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+…`, or a bulk string.
    Text(String),
    /// `-…`.
    Error(String),
    Int(i64),
    Nil,
    Array(Vec<Reply>),
}

impl Reply {
    /// The string of a simple or bulk string reply.
    pub fn text(&self) -> Option<&str> {
        match self {
            Reply::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The items of an array reply.
    pub fn array(&self) -> Option<&[Reply]> {
        match self {
            Reply::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The integer of an integer reply.
    pub fn int(&self) -> Option<i64> {
        match self {
            Reply::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// A flat `[name, value, name, value, …]` array as pairs.
    fn fields(&self) -> Option<Vec<(String, String)>> {
        self.array()?
            .chunks(2)
            .map(|p| Some((p.first()?.text()?.to_owned(), p.get(1)?.text()?.to_owned())))
            .collect()
    }
}

/// Sends one command to the Redis (or sentinel) on loopback `port` and
/// reads its reply; `None` when nothing answers within 500 ms.
pub fn request(port: u16, args: &[&str]) -> Option<Reply> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let timeout = Duration::from_millis(500);
    let stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    (&stream).write_all(req.as_bytes()).ok()?;
    read_reply(&mut BufReader::new(&stream), 0)
}

fn read_reply(reader: &mut impl BufRead, depth: usize) -> Option<Reply> {
    if depth > 8 {
        return None;
    }
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at_checked(1)?;
    match kind {
        "+" => Some(Reply::Text(rest.to_owned())),
        "-" => Some(Reply::Error(rest.to_owned())),
        ":" => rest.parse().ok().map(Reply::Int),
        "$" => {
            let len: i64 = rest.parse().ok()?;
            if len < 0 {
                return Some(Reply::Nil);
            }
            let mut body = vec![0u8; usize::try_from(len).ok()? + 2];
            reader.read_exact(&mut body).ok()?;
            body.truncate(body.len() - 2);
            Some(Reply::Text(String::from_utf8_lossy(&body).into_owned()))
        }
        "*" => {
            let len: i64 = rest.parse().ok()?;
            if len < 0 {
                return Some(Reply::Nil);
            }
            (0..len)
                .map(|_| read_reply(reader, depth + 1))
                .collect::<Option<Vec<_>>>()
                .map(Reply::Array)
        }
        _ => None,
    }
}
