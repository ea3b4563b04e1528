//! The processes a benchmark run starts: keygate and redis-server, each
//! pinned to a core with `taskset`, each ended by its own PID when dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Which cores the run uses: the server on one, the load generator (and
/// Redis) on the other. `None` on a machine with one core: nothing is pinned.
#[derive(Debug, Clone, Copy)]
pub struct Cores {
    pub server: Option<usize>,
    pub load: Option<usize>,
}

impl Cores {
    /// Core 0 for the server and core 1 for the rest, when there are two
    /// cores and `taskset` exists.
    pub fn detect() -> Self {
        let n = online_cpus();
        let taskset = Command::new("taskset")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if n >= 2 && taskset {
            Self {
                server: Some(0),
                load: Some(1),
            }
        } else {
            Self {
                server: None,
                load: None,
            }
        }
    }
}

impl Cores {
    /// `server,load` for the re-run process.
    pub fn to_env(self) -> String {
        let c = |c: Option<usize>| c.map_or(String::new(), |c| c.to_string());
        format!("{},{}", c(self.server), c(self.load))
    }

    /// Parses [`Cores::to_env`].
    pub fn from_env(v: &str) -> anyhow::Result<Self> {
        let (s, l) = v.split_once(',').context("BENCH_CORES is `server,load`")?;
        let core = |c: &str| -> anyhow::Result<Option<usize>> {
            Ok(if c.is_empty() { None } else { Some(c.parse()?) })
        };
        Ok(Self {
            server: core(s)?,
            load: core(l)?,
        })
    }
}

/// CPUs online on this machine (not only those this process may run on).
pub fn online_cpus() -> usize {
    let from_sys = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| {
            s.trim()
                .split(',')
                .map(|r| match r.split_once('-') {
                    Some((a, b)) => Some(b.parse::<usize>().ok()? - a.parse::<usize>().ok()? + 1),
                    None => r.parse::<usize>().ok().map(|_| 1),
                })
                .sum::<Option<usize>>()
        });
    from_sys.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `program args…`, under `taskset -c core` when a core is given.
pub fn pinned(core: Option<usize>, program: &Path, args: &[&str]) -> Command {
    match core {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(c.to_string()).arg(program).args(args);
            cmd
        }
        None => {
            let mut cmd = Command::new(program);
            cmd.args(args);
            cmd
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
    Ok(l.local_addr()?.port())
}

/// A child process that is killed (by its PID) when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr appended to `log`.
    pub fn start(name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<Self> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Self {
            name: name.to_string(),
            child,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time (user + system) the process has used so far.
    pub fn cpu_time(&self) -> Option<Duration> {
        cpu_time(&format!("/proc/{}/stat", self.child.id()))
    }

    /// The exit status, if the process has exited.
    pub fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        self.child.try_wait()
    }

    /// Fails if the process has already exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early ({status}); see its log", self.name);
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a throwaway redis-server on `port`: loopback, no persistence,
/// `noeviction`, then `extra` options (a `--dir`, cluster or replica
/// options).
pub fn redis(core: Option<usize>, port: u16, extra: &[&str], log: &Path) -> anyhow::Result<Proc> {
    let bin = which("redis-server").context(
        "redis-server is not installed: run `sudo apt-get install -y redis-server` (or `make test-deps`)",
    )?;
    let port = port.to_string();
    let bin = bin.to_str().context("redis-server path is not UTF-8")?;
    // In production Redis has CPUs of its own. Here it shares the load
    // generator's core, so it runs at a higher priority than the load
    // generator (as root; otherwise `nice` warns and runs it unchanged).
    let mut args = vec![
        "-n",
        "-10",
        bin,
        "--port",
        &port,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--maxmemory-policy",
        "noeviction",
    ];
    args.extend_from_slice(extra);
    let cmd = pinned(core, Path::new("nice"), &args);
    let mut p = Proc::start("redis-server", cmd, log)?;
    wait_for_port(&mut p, port.parse()?, Duration::from_secs(10))?;
    Ok(p)
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
pub fn wait_for_port(p: &mut Proc, port: u16, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        p.check_alive()?;
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{} did not listen on port {port} within {limit:?}", p.name)
}

/// The full path of `program` on `PATH`.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// User + system CPU time from a `/proc/…/stat` file.
pub fn cpu_time(stat_path: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    // Fields after the `(comm)`, which may contain spaces: state is field 3,
    // utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
}

/// `getconf CLK_TCK` (100 on Linux unless configured otherwise).
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
            .unwrap_or(100)
    })
}

#[cfg(test)]
mod tests {
    use super::Cores;

    #[test]
    fn cores_survive_the_re_run() {
        for cores in [
            Cores {
                server: Some(0),
                load: Some(1),
            },
            Cores {
                server: None,
                load: None,
            },
        ] {
            let back = Cores::from_env(&cores.to_env()).unwrap();
            assert_eq!((back.server, back.load), (cores.server, cores.load));
        }
        assert!(Cores::from_env("0").is_err());
    }
}
