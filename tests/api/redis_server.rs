//! A throwaway `redis-server` per test (the redis-rs `redis-test` idea).
//!
//! Each [`RedisServer`] is its own child process on a free loopback port, with
//! persistence off and `maxmemory-policy noeviction` (what keygate requires),
//! its files and log in a private temp dir, and is killed when dropped. It can
//! be stopped and restarted on the same port to test outages.
//!
//! The binary is `redis-server` from `PATH`, or `KEYGATE_TEST_REDIS_BIN`. A
//! missing binary fails the test with install instructions: never a silent skip.
//! Must not depend on keygate: it only starts a process and speaks raw RESP.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::ports::free_port;

/// Overrides the `redis-server` binary used by the tests.
const BIN_ENV: &str = "KEYGATE_TEST_REDIS_BIN";
/// How long a fresh server may take to answer.
const READY_DEADLINE: Duration = Duration::from_secs(10);
/// Fresh ports tried when another process grabs ours between probe and bind.
const PORT_ATTEMPTS: usize = 5;

/// A running (or deliberately stopped) `redis-server` child process.
#[derive(Debug)]
pub struct RedisServer {
    bin: PathBuf,
    port: u16,
    /// Holds `--dir` and `redis.log`; deleted with the server.
    dir: TempDir,
    child: Option<Child>,
}

/// Why one start attempt did not produce a ready server.
enum StartError {
    /// The process exited during start-up (usually: the port was taken).
    Exited(String),
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers (as itself: PID checked).
    ///
    /// # Panics
    /// If the binary is missing (with install instructions), or if no server
    /// becomes ready after a few ports (with the server's log).
    pub fn new() -> Self {
        let bin = std::env::var_os(BIN_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("redis-server"));
        let dir = state_dir("keygate-redis-");
        let mut server = RedisServer {
            bin,
            port: 0,
            dir,
            child: None,
        };
        let mut last_failure = String::new();
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port();
            match server.try_start() {
                Ok(()) => return server,
                Err(StartError::Exited(why)) => last_failure = why,
            }
        }
        panic!(
            "redis-server did not start after {PORT_ATTEMPTS} ports; last failure:\n{last_failure}"
        );
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The loopback port the server listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id of the running server, `None` while stopped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server process (by its PID, `SIGKILL`: a crash, not a clean
    /// shutdown) and waits for it to exit. Does nothing if already stopped.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and waits until it answers
    /// (PID checked). The data is gone: persistence is off.
    ///
    /// # Panics
    /// If it is still running, or does not become ready (with the server's log).
    pub fn start_again(&mut self) {
        assert!(
            self.child.is_none(),
            "start_again: redis-server is still running"
        );
        let mut last_failure = String::new();
        // Same port by design, so retrying only helps if the port frees up.
        for attempt in 0..PORT_ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(100));
            }
            match self.try_start() {
                Ok(()) => return,
                Err(StartError::Exited(why)) => last_failure = why,
            }
        }
        panic!(
            "redis-server did not restart on port {}; last failure:\n{last_failure}",
            self.port
        );
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// One attempt: spawn on `self.port`, then poll until our child answers.
    fn try_start(&mut self) -> Result<(), StartError> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the redis-server log file");
        let log_err = log.try_clone().expect("clone the log file handle");
        let spawned = Command::new(&self.bin)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--maxmemory-policy", "noeviction"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == ErrorKind::NotFound => panic!(
                "`{}` not found ({e}). The Redis tests need a real redis-server (>= 6.2): \
                 install it with `apt-get update && apt-get install -y redis-server`, \
                 or run `make test`, which installs it; or point {BIN_ENV} at the binary.",
                self.bin.display()
            ),
            Err(e) => panic!("cannot start `{}`: {e}", self.bin.display()),
        };
        self.child = Some(child);
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(StartError::Exited(format!(
                        "exited with {status} on port {}; log:\n{}",
                        self.port,
                        read_log(&self.log_path())
                    )));
                }
            }
            let ours = self.child.as_ref().map(Child::id);
            if ours.is_some() && server_pid(self.port) == ours {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.stop();
                panic!(
                    "redis-server on port {} did not answer within {READY_DEADLINE:?}; log:\n{}",
                    self.port,
                    read_log(&self.log_path())
                );
            }
            // Polling interval, not a wait for readiness.
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A private directory for a Redis process's files (`prefix` names it).
///
/// On tmpfs (`/dev/shm`) where the machine has one: Sentinel rewrites and
/// fsyncs its config on every topology change, a cluster node its
/// `nodes.conf` on every epoch change, and on a busy disk one fsync can
/// stall the process past `down-after-milliseconds`, so that its peers
/// (or it) call a healthy node down and fail over a second time. The
/// system temp dir otherwise.
pub fn state_dir(prefix: &str) -> TempDir {
    let shm = Path::new("/dev/shm");
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    let dir = if shm.is_dir() {
        builder.tempdir_in(shm).or_else(|_| builder.tempdir())
    } else {
        builder.tempdir()
    };
    dir.expect("create a temp dir for redis-server")
}

/// The `process_id` of the Redis answering on `port`, if one answers.
///
/// Readiness is "our child answers", not "something answers": if two tests
/// were handed the same port, the loser must not talk to the winner's server.
fn server_pid(port: u16) -> Option<u32> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let timeout = Duration::from_millis(200);
    let stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    (&stream)
        .write_all(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
        .ok()?;
    // Reply: `$<len>\r\n<len bytes>\r\n`, or an error line while loading.
    let mut reader = BufReader::new(&stream);
    let mut header = String::new();
    reader.read_line(&mut header).ok()?;
    let len: usize = header.strip_prefix('$')?.trim_end().parse().ok()?;
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).ok()?;
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
}

pub fn read_log(path: &Path) -> String {
    let mut text = String::new();
    match File::open(path) {
        Ok(mut f) => {
            let _ = f.read_to_string(&mut text);
        }
        Err(e) => text = format!("(no log: {e})"),
    }
    text
}
