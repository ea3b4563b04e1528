//! keygate as a real process (`keygate serve`): the environment cleared of
//! `KEYGATE_*` but what the test sets, stderr collected line by line, killed
//! by its PID when dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keygate"));
        for (k, _) in std::env::vars() {
            if k.starts_with("KEYGATE_") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .current_dir(dir)
            .env("KEYGATE_KEYS_DIR", dir.join("keys"))
            .env("KEYGATE_SERVER_LISTEN", "127.0.0.1:0")
            .envs(env.iter().copied())
            .arg("serve")
            .stdin(Stdio::null())
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
            assert!(Instant::now() < deadline, "keygate did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}
