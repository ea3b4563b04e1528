//! A real headless Chromium per test, driven over WebDriver (fantoccini).
//!
//! Each [`Browser`] is its own `chromedriver` child process on a free loopback
//! port, with its own Chromium profile in a private temp dir, so tests running
//! in parallel threads never share a browser, a port or a profile. Both are
//! shut down by [`Browser::close`], or by `Drop` when a test panics first.
//!
//! The binaries are `chromedriver` (`KEYGATE_TEST_CHROMEDRIVER`, else `PATH`,
//! else `/usr/bin/chromedriver`) and Chromium (`KEYGATE_TEST_CHROMIUM`, else
//! `/usr/bin/chromium`), from Debian's `chromium` and `chromium-driver`. A
//! missing binary fails the test with install instructions: never a silent skip.
//! Only loopback is used: chromedriver on 127.0.0.1, pages served by the test.
//! Must not depend on keygate: it only starts processes and drives a browser.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use poem::listener::{Acceptor, Listener, TcpListener as PoemListener};
use poem::web::{Form, Html, Query, Redirect};
use poem::{get, handler, post, Route, Server};
use serde::Deserialize;
use tempfile::TempDir;
use url::Url;

use crate::ports::free_port;

/// Overrides the `chromedriver` binary.
const DRIVER_ENV: &str = "KEYGATE_TEST_CHROMEDRIVER";
/// Overrides the Chromium binary.
const CHROMIUM_ENV: &str = "KEYGATE_TEST_CHROMIUM";
const DEFAULT_DRIVER: &str = "/usr/bin/chromedriver";
const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";
const INSTALL_HINT: &str =
    "install with `apt-get update && apt-get install -y chromium chromium-driver` \
     (or run `make test`, which installs them)";

/// Fresh ports tried when another process grabs ours between probe and bind.
const PORT_ATTEMPTS: usize = 5;
/// How long a fresh chromedriver may take to answer `/status`.
const DRIVER_READY_DEADLINE: Duration = Duration::from_secs(20);
/// How long chromedriver may take to launch Chromium (~0.5 s idle, ~5 s with
/// ten starting at once on two cores); past it, chromedriver is taken as hung.
const SESSION_DEADLINE: Duration = Duration::from_secs(60);
/// Session attempts: Chromium occasionally dies during start-up under load.
const SESSION_ATTEMPTS: usize = 2;
/// WebDriver page-load timeout: a hung page fails the test instead of waiting 300 s.
const PAGE_LOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `fill`/`click` wait for their element to appear.
const ELEMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long teardown waits for chromedriver and Chromium to exit.
const EXIT_DEADLINE: Duration = Duration::from_secs(5);
/// Polling interval of every wait here (never a wait for readiness by itself).
const POLL: Duration = Duration::from_millis(25);

/// Chromium flags: headless, no GPU/sandbox (containers, root), a small
/// `/dev/shm` is fine, and no background traffic. The resolver rule makes
/// every host name but `localhost` fail at once, so only loopback is ever
/// reached (and a stray fetch fails fast instead of waiting on DNS).
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-extensions",
    "--window-size=1280,900",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
];

/// A headless Chromium behind its own chromedriver.
///
/// The helpers panic with context (URL, page text) instead of returning
/// errors: they are for tests. Use [`Browser::client`] for anything else.
pub struct Browser {
    /// `None` only after `close`.
    client: Option<Client>,
    /// `None` once torn down.
    driver: Option<Child>,
    port: u16,
    /// The Chromium browser process chromedriver launched, with its start
    /// time, so teardown can kill it (and only it) if chromedriver did not.
    chromium: Option<ProcessId>,
    /// Holds the chromedriver logs and the profiles; deleted by teardown
    /// (the `TempDir` guard covers a panic before the driver started).
    dir: TempDir,
}

/// A process id plus its start time (`/proc/PID/stat` field 22): a recycled
/// PID has a different start time, so it is never mistaken for ours.
#[derive(Debug, Clone, Copy)]
struct ProcessId {
    pid: u32,
    start_time: u64,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a session in a
    /// fresh headless Chromium profile.
    ///
    /// # Panics
    /// If a binary is missing (with install instructions), or chromedriver or
    /// Chromium does not start (with chromedriver's log).
    pub async fn start() -> Browser {
        let driver_bin = find_driver();
        let chromium_bin = find_chromium();
        let dir = tempfile::Builder::new()
            .prefix("keygate-browser-")
            .tempdir()
            .expect("create a temp dir for chromedriver");
        let (driver, port) = spawn_driver(&driver_bin, dir.path()).await;
        // From here on, `Drop` cleans up if anything below panics.
        let mut browser = Browser {
            client: None,
            driver: Some(driver),
            port,
            chromium: None,
            dir,
        };
        let client = browser.open_session(&chromium_bin).await;
        browser.chromium = client
            .capabilities()
            .and_then(|caps| caps.get("goog:processID"))
            .and_then(serde_json::Value::as_u64)
            .and_then(|pid| u32::try_from(pid).ok())
            .and_then(ProcessId::of);
        browser.client = Some(client);
        browser
    }

    /// The WebDriver client, for anything the helpers do not cover.
    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("the browser session is open")
    }

    /// Navigates to `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        if let Err(e) = self.client().goto(url).await {
            panic!("browser: goto {url}: {e}");
        }
    }

    /// Waits for the first element matching `css`, clears it and types `value`.
    pub async fn fill(&self, css: &str, value: &str) {
        let el = self.element(css).await;
        if let Err(e) = el.clear().await {
            panic!("browser: clear {css:?}: {e}");
        }
        if let Err(e) = el.send_keys(value).await {
            panic!("browser: type into {css:?}: {e}");
        }
    }

    /// Waits for the first element matching `css` and clicks it.
    pub async fn click(&self, css: &str) {
        let el = self.element(css).await;
        if let Err(e) = el.click().await {
            panic!("browser: click {css:?}: {e}");
        }
    }

    /// The visible text of the first element matching `css` (waits for it).
    pub async fn text(&self, css: &str) -> String {
        let el = self.element(css).await;
        el.text()
            .await
            .unwrap_or_else(|e| panic!("browser: text of {css:?}: {e}"))
    }

    /// The URL of the current page.
    pub async fn current_url(&self) -> Url {
        self.client()
            .current_url()
            .await
            .unwrap_or_else(|e| panic!("browser: current URL: {e}"))
    }

    /// Polls the current URL until `pred` holds, and returns it.
    ///
    /// # Panics
    /// After `timeout`, with the last URL and the page's text.
    pub async fn wait_for_url(&self, pred: impl Fn(&Url) -> bool, timeout: Duration) -> Url {
        let deadline = Instant::now() + timeout;
        loop {
            // A navigation in flight can make one read fail: keep polling.
            let last = match self.client().current_url().await {
                Ok(url) if pred(&url) => return url,
                Ok(url) => url.to_string(),
                Err(e) => format!("(error: {e})"),
            };
            if Instant::now() >= deadline {
                let text = self.body_text().await;
                panic!(
                    "browser: the URL did not match within {timeout:?}; last URL: {last}\n\
                     page text:\n{text}"
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The current page's HTML, as serialized by the browser.
    pub async fn page_source(&self) -> String {
        self.client()
            .source()
            .await
            .unwrap_or_else(|e| panic!("browser: page source: {e}"))
    }

    /// Saves a PNG of the viewport to `path` (for debugging a failing test).
    pub async fn screenshot(&self, path: impl AsRef<Path>) {
        let path = path.as_ref();
        let png = self
            .client()
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("browser: screenshot: {e}"));
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Ends the WebDriver session (Chromium quits), then stops chromedriver
    /// and waits for both to exit.
    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            // Best effort: teardown below stops everything either way.
            let _ = tokio::time::timeout(EXIT_DEADLINE, client.close()).await;
        }
        self.teardown();
    }

    /// Waits for the first element matching `css`.
    async fn element(&self, css: &str) -> Element {
        match self
            .client()
            .wait()
            .at_most(ELEMENT_TIMEOUT)
            .every(POLL)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(el) => el,
            Err(e) => {
                let url = match self.client().current_url().await {
                    Ok(url) => url.to_string(),
                    Err(e) => format!("(error: {e})"),
                };
                let text = self.body_text().await;
                panic!(
                    "browser: no element {css:?} within {ELEMENT_TIMEOUT:?} ({e}); \
                     URL: {url}\npage text:\n{text}"
                );
            }
        }
    }

    /// The page's text for failure messages (never panics; truncated).
    async fn body_text(&self) -> String {
        let text = match self.client().find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_else(|e| format!("({e})")),
            Err(e) => format!("({e})"),
        };
        truncate(&text, 2000)
    }

    /// Opens the WebDriver session, retrying a failed start once with a fresh
    /// profile.
    async fn open_session(&self, chromium: &Path) -> Client {
        let url = format!("http://127.0.0.1:{}", self.port);
        let mut failures = Vec::new();
        for attempt in 1..=SESSION_ATTEMPTS {
            let profile = self.dir.path().join(format!("profile-{attempt}"));
            let caps = capabilities(chromium, &profile);
            // Plain HTTP: chromedriver listens on loopback only.
            let mut builder = ClientBuilder::new(HttpConnector::new());
            builder.capabilities(caps);
            match tokio::time::timeout(SESSION_DEADLINE, builder.connect(&url)).await {
                Ok(Ok(client)) => return client,
                Ok(Err(e)) => failures.push(format!("attempt {attempt}: {e}")),
                Err(_) => {
                    // chromedriver is hung: another attempt would only wait again.
                    failures.push(format!(
                        "attempt {attempt}: no session within {SESSION_DEADLINE:?}"
                    ));
                    break;
                }
            }
        }
        panic!(
            "headless Chromium ({}) did not start under chromedriver on port {}:\n{}\n\
             (\"only supports Chrome version\" means `chromium` and `chromium-driver` \
             differ: {INSTALL_HINT})\n{}",
            chromium.display(),
            self.port,
            failures.join("\n"),
            self.driver_logs(),
        );
    }

    /// The tail of chromedriver's output and log, for failure messages.
    fn driver_logs(&self) -> String {
        driver_logs(self.dir.path())
    }

    /// Stops chromedriver and the Chromium it launched, then deletes the temp
    /// dir; idempotent, blocking.
    ///
    /// chromedriver's own `/shutdown` quits its browsers and exits (quicker and
    /// tidier than a kill). If it is still alive after [`EXIT_DEADLINE`] (hung),
    /// its descendants (the Chromium it launched, known or not, and Chromium's
    /// helpers) and then it are killed by PID. So is a Chromium browser process
    /// (PID and start time recorded at start) that outlived its chromedriver.
    /// Never anything else: no process-group or name-based kill.
    fn teardown(&mut self) {
        let Some(mut driver) = self.driver.take() else {
            return;
        };
        if matches!(driver.try_wait(), Ok(None)) {
            request_shutdown(self.port);
        }
        let deadline = Instant::now() + EXIT_DEADLINE;
        while matches!(driver.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        // Collected while chromedriver lives, so its children still point to it.
        let mut doomed = match driver.try_wait() {
            Ok(None) => descendants(driver.id()),
            _ => Vec::new(),
        };
        let _ = driver.kill();
        let _ = driver.wait();
        if let Some(chromium) = self.chromium.take() {
            if chromium.is_running() && !doomed.iter().any(|p| p.pid == chromium.pid) {
                doomed.extend(descendants(chromium.pid));
                doomed.push(chromium);
            }
        }
        if !doomed.is_empty() {
            kill(&doomed);
            let deadline = Instant::now() + EXIT_DEADLINE;
            while doomed.iter().any(ProcessId::is_running) && Instant::now() < deadline {
                std::thread::sleep(POLL);
            }
        }
        // Chromium's helpers may still be exiting (and writing into the profile).
        remove_dir(self.dir.path());
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Its background task would try to end the session; teardown does it.
        drop(self.client.take());
        self.teardown();
    }
}

impl ProcessId {
    /// `pid` as it is now, if it exists.
    fn of(pid: u32) -> Option<ProcessId> {
        let stat = proc_stat(pid)?;
        Some(ProcessId {
            pid,
            start_time: stat.start_time,
        })
    }

    /// The same process (not a recycled PID) is alive and not yet a zombie.
    fn is_running(&self) -> bool {
        proc_stat(self.pid).is_some_and(|s| s.start_time == self.start_time && s.state != 'Z')
    }
}

/// The fields of `/proc/PID/stat` used here.
struct ProcStat {
    state: char,
    ppid: u32,
    start_time: u64,
}

/// `/proc/PID/stat` (Linux).
fn proc_stat(pid: u32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`: comm may hold spaces, so split after ')'.
    let mut fields = stat[stat.rfind(')')? + 2..].split_whitespace();
    let state = fields.next()?.chars().next()?; // field 3
    let ppid = fields.next()?.parse().ok()?; // field 4
    let start_time = fields.nth(17)?.parse().ok()?; // field 22
    Some(ProcStat {
        state,
        ppid,
        start_time,
    })
}

/// The running descendants of `root` (children, their children, ...).
fn descendants(root: u32) -> Vec<ProcessId> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let all: Vec<(u32, ProcStat)> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter_map(|pid| Some((pid, proc_stat(pid)?)))
        .collect();
    let mut found = Vec::new();
    let mut parents = vec![root];
    while let Some(parent) = parents.pop() {
        for (pid, stat) in &all {
            if stat.ppid == parent && stat.state != 'Z' {
                parents.push(*pid);
                found.push(ProcessId {
                    pid: *pid,
                    start_time: stat.start_time,
                });
            }
        }
    }
    found
}

/// `SIGKILL` to those of `procs` still running, through the shell's `kill`
/// builtin (always there, unlike procps' `kill(1)`): the crate forbids the
/// `unsafe` of `kill(2)`.
fn kill(procs: &[ProcessId]) {
    let pids: Vec<String> = procs
        .iter()
        .filter(|p| p.is_running())
        .map(|p| p.pid.to_string())
        .collect();
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("sh")
        .args(["-c", "kill -s KILL \"$@\"", "sh"])
        .args(&pids)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Deletes `dir`, retrying briefly: a process that is just exiting can still
/// create a file in it, which makes one `remove_dir_all` fail.
fn remove_dir(dir: &Path) {
    let deadline = Instant::now() + EXIT_DEADLINE;
    while std::fs::remove_dir_all(dir).is_err_and(|e| e.kind() != std::io::ErrorKind::NotFound)
        && Instant::now() < deadline
    {
        std::thread::sleep(POLL);
    }
}

/// The capabilities for a headless Chromium with its profile in `profile`.
fn capabilities(chromium: &Path, profile: &Path) -> fantoccini::wd::Capabilities {
    let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    let caps = serde_json::json!({
        "browserName": "chrome",
        "pageLoadStrategy": "normal",
        "timeouts": {
            "implicit": 0,
            "pageLoad": PAGE_LOAD_TIMEOUT.as_millis() as u64,
            "script": PAGE_LOAD_TIMEOUT.as_millis() as u64,
        },
        "goog:chromeOptions": {
            "binary": chromium.display().to_string(),
            "args": args,
            // Debian's Chromium opens its first tab on the default search
            // engine's start page (https://start.duckduckgo.com/); without this
            // every `goto` could wait ~5 s for that load to fail. chromedriver
            // turns every `args` entry into a switch, so a start URL goes here.
            "prefs": {
                "session.restore_on_startup": 4,
                "session.startup_urls": ["about:blank"],
            },
        },
    });
    match caps {
        serde_json::Value::Object(map) => map,
        _ => unreachable!("a JSON object literal"),
    }
}

/// chromedriver: `KEYGATE_TEST_CHROMEDRIVER`, else `PATH`, else the Debian path.
fn find_driver() -> PathBuf {
    if let Some(bin) = std::env::var_os(DRIVER_ENV) {
        let bin = PathBuf::from(bin);
        assert!(
            is_executable(&bin),
            "{DRIVER_ENV}={} is not an executable file; unset it, or {INSTALL_HINT}",
            bin.display()
        );
        return bin;
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("chromedriver"))
            .find(|bin| is_executable(bin))
    });
    let bin = on_path.unwrap_or_else(|| PathBuf::from(DEFAULT_DRIVER));
    assert!(
        is_executable(&bin),
        "chromedriver not found (not on PATH, not at {DEFAULT_DRIVER}, {DRIVER_ENV} unset). \
         The browser tests need a real headless Chromium: {INSTALL_HINT}."
    );
    bin
}

/// Chromium: `KEYGATE_TEST_CHROMIUM`, else the Debian path.
fn find_chromium() -> PathBuf {
    let bin = std::env::var_os(CHROMIUM_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CHROMIUM));
    assert!(
        is_executable(&bin),
        "Chromium not found at {} ({CHROMIUM_ENV} overrides it). \
         The browser tests need a real headless Chromium: {INSTALL_HINT}.",
        bin.display()
    );
    bin
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Spawns chromedriver on a free port and waits until it answers as itself.
async fn spawn_driver(bin: &Path, dir: &Path) -> (Child, u16) {
    let mut last_failure = String::new();
    for _ in 0..PORT_ATTEMPTS {
        let port = free_port();
        let out = File::create(dir.join("chromedriver.out")).expect("create chromedriver.out");
        let err = out.try_clone().expect("clone the log file handle");
        let mut child = match Command::new(bin)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                dir.join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
        {
            Ok(child) => child,
            Err(e) => panic!("cannot start `{}`: {e}; {INSTALL_HINT}", bin.display()),
        };
        match wait_ready(&mut child, port, dir).await {
            Ready::Yes => return (child, port),
            Ready::Exited(why) => last_failure = why,
            Ready::TimedOut => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "chromedriver on port {port} was not ready within {DRIVER_READY_DEADLINE:?}\n{}",
                    driver_logs(dir)
                );
            }
        }
    }
    panic!("chromedriver did not start after {PORT_ATTEMPTS} ports; last failure:\n{last_failure}");
}

enum Ready {
    Yes,
    /// It exited (usually: the port was taken).
    Exited(String),
    TimedOut,
}

/// Ready means: our child is alive, says it listens on `port`, and `/status`
/// reports ready. The banner check matters: if two tests were handed the same
/// port, the loser must not talk to the winner's chromedriver.
async fn wait_ready(child: &mut Child, port: u16, dir: &Path) -> Ready {
    let banner = format!("started successfully on port {port}");
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("build an HTTP client");
    let status_url = format!("http://127.0.0.1:{port}/status");
    let deadline = Instant::now() + DRIVER_READY_DEADLINE;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Ready::Exited(format!(
                "exited with {status} on port {port}\n{}",
                driver_logs(dir)
            ));
        }
        let announced = std::fs::read_to_string(dir.join("chromedriver.out"))
            .is_ok_and(|out| out.contains(&banner));
        if announced && driver_ready(&http, &status_url).await {
            return Ready::Yes;
        }
        if Instant::now() >= deadline {
            return Ready::TimedOut;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `GET /status` answers `{"value": {"ready": true, ..}}`.
async fn driver_ready(http: &reqwest::Client, url: &str) -> bool {
    let Ok(resp) = http.get(url).send().await else {
        return false;
    };
    let Ok(body) = resp.json::<serde_json::Value>().await else {
        return false;
    };
    body["value"]["ready"] == serde_json::Value::Bool(true)
}

/// Asks chromedriver to quit its browsers and exit (blocking: used in `Drop`).
fn request_shutdown(port: u16) {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let timeout = Duration::from_secs(2);
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let request =
        format!("GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_ok() {
        // The reply comes once its browsers are gone.
        let _ = stream.read_to_end(&mut Vec::new());
    }
}

fn driver_logs(dir: &Path) -> String {
    let read = |name: &str| match std::fs::read_to_string(dir.join(name)) {
        Ok(text) => tail(&text, 4000),
        Err(e) => format!("(no {name}: {e})"),
    };
    format!(
        "--- chromedriver output ---\n{}\n--- chromedriver.log (tail) ---\n{}",
        read("chromedriver.out"),
        read("chromedriver.log")
    )
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

fn tail(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let skip = text.char_indices().nth(count - max).map_or(0, |(i, _)| i);
    format!("…{}", &text[skip..])
}

// --- Smoke test: the harness end to end, independent of keygate. ---

const FORM_PAGE: &str = r#"<!doctype html>
<html><head><title>smoke</title></head><body>
<form method="post" action="/submit">
  <input name="username" value="prefilled">
  <button type="submit" id="go">Sign in</button>
</form>
</body></html>"#;

#[derive(Deserialize)]
struct Login {
    username: String,
}

#[handler]
fn form_page() -> Html<&'static str> {
    Html(FORM_PAGE)
}

/// Answers the POST like a login does: 303 to a page carrying the value.
#[handler]
fn submit(Form(login): Form<Login>) -> Redirect {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("u", &login.username)
        .finish();
    Redirect::see_other(format!("/done?{query}"))
}

#[derive(Deserialize)]
struct Done {
    u: String,
}

/// Plain text, so the echoed value needs no HTML escaping.
#[handler]
fn done(Query(done): Query<Done>) -> String {
    format!("signed in as {}", done.u)
}

/// Serves the smoke app on `127.0.0.1:0`; returns its base URL.
async fn serve_smoke_app() -> (String, tokio::task::JoinHandle<()>) {
    let acceptor = PoemListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .expect("bind 127.0.0.1:0");
    let addr = acceptor.local_addr()[0]
        .as_socket_addr()
        .copied()
        .expect("a socket address");
    let app = Route::new()
        .at("/", get(form_page))
        .at("/submit", post(submit))
        .at("/done", get(done));
    let server = tokio::spawn(async move {
        let _ = Server::new_with_acceptor(acceptor).run(app).await;
    });
    (format!("http://{addr}"), server)
}

/// Page load, clearing and typing, a form POST, a 303, the URL and the text.
#[tokio::test]
async fn browser_smoke_form_submit() {
    let (base, server) = serve_smoke_app().await;
    let browser = Browser::start().await;

    browser.goto(&format!("{base}/")).await;
    // Needs encoding both ways, and replaces the prefilled value.
    let value = "alice & bob/é?";
    browser.fill("input[name=username]", value).await;
    browser.click("#go").await;
    let url = browser
        .wait_for_url(|u| u.path() == "/done", Duration::from_secs(10))
        .await;

    assert_eq!(url.origin(), Url::parse(&base).unwrap().origin());
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert_eq!(query, [("u".to_string(), value.to_string())]);
    assert_eq!(
        browser.text("body").await,
        format!("signed in as {value}"),
        "page source:\n{}",
        browser.page_source().await
    );

    assert_eq!(browser.current_url().await, url);
    let shots = tempfile::tempdir().unwrap();
    let png = shots.path().join("nested/done.png");
    browser.screenshot(&png).await;
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");

    browser.close().await;
    server.abort();
}
