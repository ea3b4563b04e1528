//! keygate as a real process: [`command`] builds a `keygate` invocation with
//! the environment cleared of `KEYGATE_*` and `RUST_LOG` but what the test
//! sets; [`Keygate`] runs `keygate serve`, collects stderr line by line and
//! kills the process by its PID when dropped. Must not depend on `TestApp`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `keygate` run in `dir` with keys in `dir/keys`, on a free loopback port
/// if it serves, no stdin, and no `KEYGATE_*` or `RUST_LOG` from the test's
/// own environment.
pub fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keygate"));
    for (k, _) in std::env::vars() {
        if k.starts_with("KEYGATE_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(dir)
        .env("KEYGATE_KEYS_DIR", dir.join("keys"))
        .env("KEYGATE_SERVER_LISTEN", "127.0.0.1:0")
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd` to the end with `stdin` written to it (then closed) and
/// stdout and stderr captured.
pub fn output_with_stdin(cmd: &mut Command, stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.as_bytes()).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

pub struct Keygate {
    child: Child,
    pub base: String,
    /// Every stderr line so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Keygate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Keygate {
    /// Serves from `dir` (keys in `dir/keys`) on a free loopback port with
    /// `env` on top; returns once it logs its address.
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::serve(command(dir).envs(env.iter().copied()))
    }

    /// Runs `cmd` (a [`command`] with options such as `--config`) with
    /// `serve`; returns once it logs its address.
    pub fn serve(cmd: &mut Command) -> Self {
        let mut child = cmd
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(vec![]));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        // Dropping `server` on a failed start kills the process.
        let mut server = Keygate {
            child,
            base: String::new(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let addr = server.log.lock().unwrap().iter().find_map(|l| {
                let rest = &l[l.find("keygate listening")?..];
                let a = rest.find("addr=")? + 5;
                Some(rest[a..].split_whitespace().next()?.to_string())
            });
            if let Some(addr) = addr {
                server.base = format!("http://{addr}");
                return server;
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!(
                    "keygate exited ({status}) before listening:\n{}",
                    server.log.lock().unwrap().join("\n")
                );
            }
            assert!(Instant::now() < deadline, "keygate did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Waits (bounded: 60 s) until the process has logged a line containing
    /// every one of `parts`, and returns it.
    pub async fn wait_for_log(&self, parts: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let found = self
                .log
                .lock()
                .unwrap()
                .iter()
                .find(|l| parts.iter().all(|p| l.contains(p)))
                .cloned();
            if let Some(line) = found {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {parts:?}:\n{}",
                self.log.lock().unwrap().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends the signal `name` (`HUP`, `TERM`) to the process.
    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{name}");
    }

    /// Waits up to `within` for the process to exit and returns its exit code.
    pub fn wait_for_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "keygate did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
