//! Issue 17 item 5: rolling restarts (README "Rolling restarts"). On SIGTERM
//! `/readyz` answers 503 at once while every request is still served for
//! `server.drain_secs`; then the listeners close, requests in flight finish
//! and the process exits 0.
//!
//! The load test sends its requests through [`Balancer`], which behaves like
//! a load balancer or Kubernetes endpoints: it polls each instance's
//! `/readyz` every 100 ms, sends each new request to the next ready instance
//! and never retries. Its HTTP client is hyper's pooled client with
//! keep-alive and with the retry of requests on a reused connection turned
//! off (reqwest retries those silently): a request sent on a connection that
//! a stopping server closed is a failure here, not a hidden retry.
//!
//! Every process is the real `keygate` binary (`process.rs`); the store is a
//! real `redis-server` (`redis_server.rs`). Loops are bounded in count and
//! time; nothing waits for a fixed time to pass.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, COOKIE};
use hyper::Method;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use keygate::tokens::keys::{generate_into, Alg};
use reqwest::cookie::CookieStore;

use crate::helpers::{params_of, pkce_pair, urlencode, REDIRECT};
use crate::process::Keygate;
use crate::redis_server::RedisServer;
use crate::steps;

const ISSUER: &str = "http://127.0.0.1:8080";
const INITIAL: &str = "rolling-restart-initial-token";
/// The load balancer's health-check period.
const POLL_EVERY: Duration = Duration::from_millis(100);
/// The instances' drain: 30 health-check periods (margin for a loaded machine).
const DRAIN_SECS: &str = "3";
/// Workers per kind of grant.
const WORKERS: usize = 3;
/// At least this many requests must succeed while each instance drains and
/// restarts, and at least this many must reach each restarted instance.
const MIN_REQUESTS: u64 = 20;
/// Upper bound on the grants one worker runs.
const MAX_UNITS_PER_WORKER: usize = 100_000;
/// Upper bound on one request, so a hung request fails instead of hanging.
const REQUEST_DEADLINE: Duration = Duration::from_secs(20);
/// Upper bound on each wait (exit, start, readiness, load).
const WAIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Small tests: one instance, each phase observed.
// ---------------------------------------------------------------------------

/// The address `keygate` logged after `marker` (`keygate listening`,
/// `metrics listening`).
async fn logged_addr(kg: &Keygate, marker: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = kg.log.lock().unwrap().iter().find_map(|l| {
            let rest = &l[l.find(marker)?..];
            let a = rest.find("addr=")? + 5;
            Some(rest[a..].split_whitespace().next()?.to_string())
        });
        if let Some(addr) = found {
            return addr;
        }
        assert!(Instant::now() < deadline, "no `{marker}` line");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn logged(kg: &Keygate, part: &str) -> bool {
    kg.log.lock().unwrap().iter().any(|l| l.contains(part))
}

/// A client that opens a new connection for every request.
fn fresh_connections() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

type SlowBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::convert::Infallible>;

/// One HTTP/1.1 connection to `addr`, driven by a spawned task.
async fn connection(addr: &str) -> hyper::client::conn::http1::SendRequest<SlowBody> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
}

/// A request body sent in pieces: each `Bytes` on the returned sender is one
/// chunk; dropping the sender ends the body.
fn streamed_body() -> (tokio::sync::mpsc::UnboundedSender<Bytes>, SlowBody) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((
            Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(chunk)),
            rx,
        ))
    });
    (
        tx,
        BodyExt::boxed_unsync(http_body_util::StreamBody::new(chunks)),
    )
}

/// A GET on `conn` whose answer is read to the end.
async fn get_on(
    conn: &mut hyper::client::conn::http1::SendRequest<SlowBody>,
    addr: &str,
    path: &str,
) -> (u16, Option<String>) {
    let req = hyper::Request::get(path)
        .header("host", addr)
        .body(BodyExt::boxed_unsync(Full::new(Bytes::new())))
        .unwrap();
    conn.ready().await.unwrap();
    let resp = conn.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let connection = connection_header(resp.headers());
    resp.into_body().collect().await.unwrap();
    (status, connection)
}

fn header(headers: &hyper::HeaderMap, name: &str) -> Option<String> {
    headers.get(name).map(|v| v.to_str().unwrap().to_string())
}

/// The `Connection` header, lower-cased (its tokens are case-insensitive).
fn connection_header(headers: &hyper::HeaderMap) -> Option<String> {
    header(headers, "connection").map(|v| v.to_ascii_lowercase())
}

/// Starts a registration (`POST /oauth/register`) on `conn` whose JSON body
/// is sent only up to its middle; returns the sender of the rest and the
/// pending answer (status, `Connection` header, body).
async fn slow_registration(
    conn: &mut hyper::client::conn::http1::SendRequest<SlowBody>,
    addr: &str,
) -> (
    tokio::sync::mpsc::UnboundedSender<Bytes>,
    Bytes,
    tokio::task::JoinHandle<Result<(u16, Option<String>, Bytes), hyper::Error>>,
) {
    let json = serde_json::json!({
        "client_name": "slow upload",
        "grant_types": ["client_credentials"],
        "scope": "profile",
    })
    .to_string();
    let (head, rest) = json.split_at(json.len() / 2);
    let (tx, body) = streamed_body();
    tx.send(Bytes::copy_from_slice(head.as_bytes())).unwrap();
    let req = hyper::Request::post("/oauth/register")
        .header("host", addr)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {INITIAL}"))
        .body(body)
        .unwrap();
    conn.ready().await.unwrap();
    let pending = conn.send_request(req);
    let answer = tokio::spawn(async move {
        let resp = pending.await?;
        let status = resp.status().as_u16();
        let connection = connection_header(resp.headers());
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, connection, body))
    });
    (tx, Bytes::copy_from_slice(rest.as_bytes()), answer)
}

/// `connect` to `addr` is refused (the listener is closed).
async fn refused(addr: &str) -> bool {
    matches!(
        tokio::net::TcpStream::connect(addr).await,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

/// SIGTERM: `/readyz` is 503 (`"reason": "draining"`) at once while plain
/// requests, on new connections too, still get 200 with `Connection: close`,
/// and the metrics listener still answers. A second SIGTERM skips the rest
/// of the (hour-long) drain: both listeners refuse new connections, while a
/// registration whose body was still being uploaded completes (201); then
/// the process exits 0, having logged each phase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_then_closes_the_listeners_and_finishes_in_flight_requests() {
    let dir = tempfile::tempdir().unwrap();
    let mut kg = Keygate::start(
        dir.path(),
        &[
            ("KEYGATE_SERVER_DRAIN_SECS", "3600"),
            ("KEYGATE_SERVER_SHUTDOWN_GRACE_SECS", "3600"),
            ("KEYGATE_SERVER_BODY_READ_TIMEOUT_SECS", "3600"),
            ("KEYGATE_METRICS_LISTEN", "127.0.0.1:0"),
            ("KEYGATE_REGISTRATION_INITIAL_ACCESS_TOKENS", INITIAL),
        ],
    );
    let addr = kg.base.trim_start_matches("http://").to_string();
    let metrics = logged_addr(&kg, "metrics listening").await;
    let http = fresh_connections();

    // A kept-alive connection, proven accepted and served, carries a slow
    // upload: half of its body now, the rest after the listener closed.
    let mut conn = connection(&addr).await;
    let (status, keep_alive) = get_on(&mut conn, &addr, "/healthz").await;
    assert_eq!((status, keep_alive), (200, None), "keep-alive as usual");
    let (rest_tx, rest, upload) = slow_registration(&mut conn, &addr).await;

    kg.signal("TERM");
    kg.wait_for_log(&["stop requested: draining", "SIGTERM"])
        .await;
    let resp = http.get(kg.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 503, "not ready from the stop request on");
    assert_eq!(connection_header(resp.headers()).as_deref(), Some("close"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"status": "unavailable", "store": "ok", "reason": "draining"})
    );
    for path in ["/healthz", "/.well-known/jwks.json", "/"] {
        let resp = http.get(kg.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path} is still served while draining");
        assert_eq!(
            connection_header(resp.headers()).as_deref(),
            Some("close"),
            "{path}: keep-alive clients are sent elsewhere"
        );
    }
    let scrape = http
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(scrape.status(), 200, "the metrics listener drains too");
    assert!(!upload.is_finished(), "the upload waits for its body");

    kg.signal("TERM");
    kg.wait_for_log(&["second stop request: skipping the rest of the drain"])
        .await;
    kg.wait_for_log(&["listener closed", &format!("addr={addr}")])
        .await;
    kg.wait_for_log(&["listener closed", &format!("addr={metrics}")])
        .await;
    assert!(refused(&addr).await, "no new connection after the drain");
    assert!(refused(&metrics).await, "nor on the metrics listener");

    // The request in flight finishes.
    rest_tx.send(rest).unwrap();
    drop(rest_tx);
    let (status, closing, body) = upload.await.unwrap().unwrap();
    let reg: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 201, "{reg}");
    assert!(reg["client_id"].is_string(), "{reg}");
    assert_eq!(closing.as_deref(), Some("close"));

    let code = tokio::task::block_in_place(|| kg.wait_for_exit(WAIT));
    assert_eq!(code, Some(0), "{}", kg.log.lock().unwrap().join("\n"));
    for phase in ["no longer accepting connections", "stopped"] {
        assert!(logged(&kg, phase), "{phase}");
    }
    assert!(!logged(&kg, "drain over"), "the drain was cut short");
}

/// With `server.drain_secs` set, the drain ends by itself: `/readyz` is 503
/// meanwhile, then the process exits 0 without a second signal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_ends_by_itself_after_drain_secs() {
    let dir = tempfile::tempdir().unwrap();
    let mut kg = Keygate::start(dir.path(), &[("KEYGATE_SERVER_DRAIN_SECS", "1")]);
    let http = fresh_connections();
    assert_eq!(
        http.get(kg.url("/readyz")).send().await.unwrap().status(),
        200
    );
    kg.signal("TERM");
    kg.wait_for_log(&["stop requested: draining", "drain_secs=1"])
        .await;
    // The drain may already be over on a slow machine: then the connection
    // is refused, which is fine; an answer must be 503.
    if let Ok(resp) = http.get(kg.url("/readyz")).send().await {
        assert_eq!(resp.status(), 503);
    }
    let code = tokio::task::block_in_place(|| kg.wait_for_exit(WAIT));
    assert_eq!(code, Some(0), "{}", kg.log.lock().unwrap().join("\n"));
    assert!(logged(&kg, "drain over"));
    assert!(!logged(&kg, "skipping the rest of the drain"));
    assert!(logged(&kg, "stopped"));
}

/// A third SIGTERM (after the second one ended the drain) ends the grace
/// period: the process exits 0 although a request is still in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_sigterm_drops_the_connections_still_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut kg = Keygate::start(
        dir.path(),
        &[
            ("KEYGATE_SERVER_DRAIN_SECS", "3600"),
            ("KEYGATE_SERVER_SHUTDOWN_GRACE_SECS", "3600"),
            ("KEYGATE_SERVER_BODY_READ_TIMEOUT_SECS", "3600"),
            ("KEYGATE_REGISTRATION_INITIAL_ACCESS_TOKENS", INITIAL),
        ],
    );
    let addr = kg.base.trim_start_matches("http://").to_string();
    let mut conn = connection(&addr).await;
    assert_eq!(get_on(&mut conn, &addr, "/healthz").await.0, 200);
    let (_rest_tx, _rest, upload) = slow_registration(&mut conn, &addr).await;
    kg.signal("TERM");
    kg.wait_for_log(&["stop requested: draining"]).await;
    kg.signal("TERM");
    kg.wait_for_log(&["listener closed", &format!("addr={addr}")])
        .await;
    assert!(!upload.is_finished(), "still in flight");
    kg.signal("TERM");
    let code = tokio::task::block_in_place(|| kg.wait_for_exit(WAIT));
    assert_eq!(code, Some(0), "{}", kg.log.lock().unwrap().join("\n"));
    assert!(logged(
        &kg,
        "another stop request: dropping the connections still open"
    ));
    assert!(
        upload.await.unwrap().is_err(),
        "the dropped request gets no answer"
    );
}

// ---------------------------------------------------------------------------
// The rolling restart under load.
// ---------------------------------------------------------------------------

type Http = Client<HttpConnector, Full<Bytes>>;

/// What the load saw. Every counter only grows.
#[derive(Default)]
struct Tally {
    /// Requests answered as expected.
    ok: AtomicU64,
    /// By instance: requests answered as expected (`PerRequest`), or
    /// connections opened (`PerConnection`).
    ok_by_instance: [AtomicU64; 2],
    /// Every request that failed: transport error, timeout, no ready
    /// instance, or an unexpected status or body.
    failures: Mutex<Vec<String>>,
    codes_issued: AtomicU64,
    codes_redeemed: AtomicU64,
    refresh_issued: AtomicU64,
    /// Refresh tokens rotated (200), or revoked at the end of their chain.
    refresh_used: AtomicU64,
    access_issued: AtomicU64,
    /// Access tokens accepted by `/api/me` or found active by introspection.
    access_used: AtomicU64,
}

impl Tally {
    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::SeqCst)
    }
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::SeqCst);
    }
    fn fail(&self, what: String) {
        self.failures.lock().unwrap().push(what);
    }
}

/// An answer as expected.
struct Answer {
    location: Option<String>,
    json: serde_json::Value,
}

/// How [`Balancer`] routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Routing {
    /// Each request to the next ready instance, as an HTTP (L7) balancer
    /// does with its own upstream keep-alive pool.
    PerRequest,
    /// Each new TCP connection to the next ready instance, bytes copied
    /// both ways, as a Kubernetes Service (kube-proxy) or any L4 balancer
    /// does: a keep-alive connection stays on its instance, readiness or
    /// not, so only `Connection: close` during the drain moves its client.
    PerConnection,
}

/// A test-side load balancer over instances at fixed addresses (a restarted
/// instance comes back on the same port).
struct Balancer {
    routing: Routing,
    bases: Vec<String>,
    /// `PerConnection`: the proxy's own address, where the load goes.
    proxy: Option<String>,
    ready: Vec<AtomicBool>,
    next: AtomicUsize,
    http: Http,
    stop: AtomicBool,
    tally: Tally,
    started: Instant,
}

impl Balancer {
    async fn new(routing: Routing, bases: Vec<String>) -> Arc<Self> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new())
            .retry_canceled_requests(false)
            // The client gives up a connection idle for 1 s: less than the
            // drain (README "Rolling restarts"), so no connection is still
            // idle in the pool when a draining server closes its idle
            // connections; and less than `server.header_read_timeout_secs`.
            .pool_idle_timeout(Duration::from_secs(1))
            .pool_timer(TokioTimer::new())
            .build(connector);
        let listener = match routing {
            Routing::PerRequest => None,
            Routing::PerConnection => {
                Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
            }
        };
        let lb = Arc::new(Self {
            routing,
            ready: bases.iter().map(|_| AtomicBool::new(false)).collect(),
            bases,
            proxy: listener
                .as_ref()
                .map(|l| format!("http://{}", l.local_addr().unwrap())),
            next: AtomicUsize::new(0),
            http,
            stop: AtomicBool::new(false),
            tally: Tally::default(),
            started: Instant::now(),
        });
        if let Some(listener) = listener {
            tokio::spawn(lb.clone().forward_connections(listener));
        }
        lb
    }

    /// `PerConnection`: accepts connections until stopped and pipes each
    /// to a ready instance, for as long as either side keeps it open.
    async fn forward_connections(self: Arc<Self>, listener: tokio::net::TcpListener) {
        let deadline = Instant::now() + Duration::from_secs(600);
        while !self.stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tokio::time::sleep(POLL_EVERY) => continue,
            };
            let Ok((mut client, _)) = accepted else {
                continue;
            };
            let Some(i) = self.pick() else {
                self.tally
                    .fail("proxy: no ready instance for a new connection".into());
                continue;
            };
            Tally::bump(&self.tally.ok_by_instance[i]);
            let lb = self.clone();
            tokio::spawn(async move {
                let addr = lb.bases[i].trim_start_matches("http://").to_string();
                match tokio::net::TcpStream::connect(&addr).await {
                    Ok(mut upstream) => {
                        let _ = upstream.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                    Err(e) => lb
                        .tally
                        .fail(format!("proxy: connect to instance {i}: {e}")),
                }
            });
        }
    }

    fn is_ready(&self, i: usize) -> bool {
        self.ready[i].load(Ordering::SeqCst)
    }

    /// Health-checks instance `i` every [`POLL_EVERY`] until stopped.
    async fn health_check(self: Arc<Self>, i: usize) {
        let probe = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        let url = format!("{}/readyz", self.bases[i]);
        let deadline = Instant::now() + Duration::from_secs(600);
        while !self.stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            let ok = matches!(probe.get(&url).send().await, Ok(r) if r.status() == 200);
            self.ready[i].store(ok, Ordering::SeqCst);
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// The next ready instance, round robin.
    fn pick(&self) -> Option<usize> {
        let n = self.bases.len();
        let start = self.next.fetch_add(1, Ordering::SeqCst);
        (0..n).map(|k| (start + k) % n).find(|&i| self.is_ready(i))
    }

    /// Sends one request to a ready instance, once; records it. `None` (and
    /// a recorded failure) unless the status is `expect` and a body that
    /// is not empty is JSON.
    async fn send(
        &self,
        what: &str,
        method: Method,
        path: &str,
        headers: &[(HeaderName, HeaderValue)],
        form: Option<String>,
        expect: u16,
    ) -> Option<Answer> {
        let at = format!("{:.2}s", self.started.elapsed().as_secs_f64());
        let (i, base) = match (self.routing, &self.proxy) {
            (Routing::PerConnection, Some(proxy)) => (None, proxy),
            _ => match self.pick() {
                Some(i) => (Some(i), &self.bases[i]),
                None => {
                    self.tally.fail(format!("{at} {what}: no ready instance"));
                    return None;
                }
            },
        };
        let at_instance = i.map_or("through the proxy".to_string(), |i| {
            format!("at instance {i}")
        });
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("{base}{path}"));
        for (name, value) in headers {
            req = req.header(name, value);
        }
        if form.is_some() {
            req = req.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let req = req
            .body(Full::new(Bytes::from(form.unwrap_or_default())))
            .unwrap();
        let answer = tokio::time::timeout(REQUEST_DEADLINE, async {
            let resp = self.http.request(req).await.map_err(|e| format!("{e:?}"))?;
            let status = resp.status().as_u16();
            let location = header(resp.headers(), "location");
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("reading the body: {e:?}"))?
                .to_bytes();
            Ok::<_, String>((status, location, body))
        })
        .await;
        let (status, location, body) = match answer {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                self.tally.fail(format!("{at} {what} {at_instance}: {e}"));
                return None;
            }
            Err(_) => {
                self.tally
                    .fail(format!("{at} {what} {at_instance}: no answer in time"));
                return None;
            }
        };
        let json = if body.is_empty() {
            serde_json::Value::Null
        } else {
            match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(_) => serde_json::Value::String(String::from_utf8_lossy(&body).into()),
            }
        };
        if status != expect {
            self.tally.fail(format!(
                "{at} {what} {at_instance}: status {status}, expected {expect}: {json}"
            ));
            return None;
        }
        Tally::bump(&self.tally.ok);
        if let Some(i) = i {
            Tally::bump(&self.tally.ok_by_instance[i]);
        }
        Some(Answer { location, json })
    }
}

fn basic(id: &str, secret: &str) -> (HeaderName, HeaderValue) {
    use base64::Engine;
    let pair = format!("{}:{}", urlencode(id), urlencode(secret));
    let value = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    );
    (AUTHORIZATION, HeaderValue::from_str(&value).unwrap())
}

fn bearer(token: &str) -> (HeaderName, HeaderValue) {
    (
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    )
}

fn form(pairs: &[(&str, &str)]) -> Option<String> {
    Some(
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish(),
    )
}

/// The string field `name` of a JSON answer; a recorded failure if absent.
fn field(lb: &Balancer, what: &str, json: &serde_json::Value, name: &str) -> Option<String> {
    let v = json[name].as_str().map(str::to_string);
    if v.is_none() {
        lb.tally.fail(format!("{what}: no {name} in {json}"));
    }
    v
}

/// Client credentials: a token, then introspection finds it active.
async fn client_credentials_grant(lb: &Balancer, id: &str, secret: &str) -> Option<()> {
    let auth = [basic(id, secret)];
    let form_cc = form(&[("grant_type", "client_credentials"), ("scope", "profile")]);
    let what = "client_credentials token";
    let a = lb
        .send(what, Method::POST, "/oauth/token", &auth, form_cc, 200)
        .await?;
    let access = field(lb, what, &a.json, "access_token")?;
    Tally::bump(&lb.tally.access_issued);
    let what = "introspection";
    let a = lb
        .send(
            what,
            Method::POST,
            "/oauth/introspect",
            &auth,
            form(&[("token", &access)]),
            200,
        )
        .await?;
    if a.json["active"] != true {
        lb.tally.fail(format!("{what}: not active: {}", a.json));
        return None;
    }
    Tally::bump(&lb.tally.access_used);
    Some(())
}

/// `GET /api/me` with `access`.
async fn use_access_token(lb: &Balancer, access: &str) -> Option<()> {
    let a = lb
        .send(
            "/api/me",
            Method::GET,
            "/api/me",
            &[bearer(access)],
            None,
            200,
        )
        .await?;
    field(lb, "/api/me", &a.json, "sub")?;
    Tally::bump(&lb.tally.access_used);
    Some(())
}

/// Authorization code + PKCE for a signed-in browser that allowed the
/// client before (`cookie`: the authorize request answers with the code at
/// once), the code redeemed, the access token used, the refresh token
/// rotated twice (each new access token used), the last one revoked.
async fn code_grant(lb: &Balancer, id: &str, secret: &str, cookie: &HeaderValue) -> Option<()> {
    let (verifier, challenge) = pkce_pair();
    let path = format!(
        "/oauth/authorize?{}",
        steps::code_query(id, "profile", &challenge)
    );
    let what = "authorize";
    let a = lb
        .send(
            what,
            Method::GET,
            &path,
            &[(COOKIE, cookie.clone())],
            None,
            303,
        )
        .await?;
    let to = a.location.unwrap_or_default();
    let Some(code) = to
        .starts_with(REDIRECT)
        .then(|| params_of(&to, false).remove("code"))
        .flatten()
    else {
        lb.tally
            .fail(format!("{what}: no code in the redirect {to:?}"));
        return None;
    };
    Tally::bump(&lb.tally.codes_issued);
    let auth = [basic(id, secret)];
    let what = "code redemption";
    let redeem = form(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", &verifier),
    ]);
    let a = lb
        .send(what, Method::POST, "/oauth/token", &auth, redeem, 200)
        .await?;
    Tally::bump(&lb.tally.codes_redeemed);
    let mut access = field(lb, what, &a.json, "access_token")?;
    let mut refresh = field(lb, what, &a.json, "refresh_token")?;
    Tally::bump(&lb.tally.access_issued);
    Tally::bump(&lb.tally.refresh_issued);
    use_access_token(lb, &access).await?;
    for _ in 0..2 {
        let what = "refresh rotation";
        let rotate = form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)]);
        let a = lb
            .send(what, Method::POST, "/oauth/token", &auth, rotate, 200)
            .await?;
        Tally::bump(&lb.tally.refresh_used);
        let next = field(lb, what, &a.json, "refresh_token")?;
        if next == refresh {
            lb.tally
                .fail(format!("{what}: the refresh token was not rotated"));
            return None;
        }
        refresh = next;
        access = field(lb, what, &a.json, "access_token")?;
        Tally::bump(&lb.tally.access_issued);
        Tally::bump(&lb.tally.refresh_issued);
        use_access_token(lb, &access).await?;
    }
    let revoke = form(&[("token", &refresh), ("token_type_hint", "refresh_token")]);
    lb.send(
        "revocation",
        Method::POST,
        "/oauth/revoke",
        &auth,
        revoke,
        200,
    )
    .await?;
    Tally::bump(&lb.tally.refresh_used);
    Some(())
}

/// `keygate serve` on `redis` from `dir`, listening on `listen`.
fn start_instance(dir: &std::path::Path, redis: &RedisServer, listen: &str) -> Keygate {
    let url = redis.url();
    Keygate::start(
        dir,
        &[
            ("KEYGATE_SERVER_LISTEN", listen),
            ("KEYGATE_SERVER_ISSUER", ISSUER),
            ("KEYGATE_SERVER_DRAIN_SECS", DRAIN_SECS),
            ("KEYGATE_STORE_URL", url.as_str()),
            ("KEYGATE_UI_SIGNUP", "true"),
            ("KEYGATE_OAUTH_SCOPES", "profile,email"),
            ("KEYGATE_REGISTRATION_INITIAL_ACCESS_TOKENS", INITIAL),
        ],
    )
}

/// Waits (bounded) until `done()`.
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two instances on one Redis behind [`Balancer`] routing each request,
/// under a steady load of client-credentials and authorization-code grants
/// (codes redeemed, refresh tokens rotated, every access token used).
/// Instance A is stopped with SIGTERM (exit 0), started again on its port
/// and waited for; then B. No request fails, no grant is lost, and the load
/// kept flowing while each instance drained and restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_restarts_under_load_lose_no_request_and_no_grant() {
    rolling_restart(Routing::PerRequest).await;
}

/// The same behind a balancer that routes connections, not requests (a
/// Kubernetes Service): keep-alive connections stay on the draining
/// instance until its `Connection: close` answers move them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_restarts_behind_a_connection_balancer_lose_no_request_and_no_grant() {
    rolling_restart(Routing::PerConnection).await;
}

async fn rolling_restart(routing: Routing) {
    let redis = RedisServer::new();
    let dir = tempfile::tempdir().unwrap();
    generate_into(&dir.path().join("keys"), Alg::ES256, 1).unwrap();
    let mut instances = [
        start_instance(dir.path(), &redis, "127.0.0.1:0"),
        start_instance(dir.path(), &redis, "127.0.0.1:0"),
    ];
    let bases: Vec<String> = instances.iter().map(|k| k.base.clone()).collect();

    // Set-up through instance A with reqwest: clients, a signed-in browser
    // that allowed the web client once.
    let http = steps::api_client();
    let web = steps::register(
        &http,
        &bases[0],
        INITIAL,
        &serde_json::json!({
            "client_name": "rolling web",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "profile",
        }),
    )
    .await;
    let service = steps::register(
        &http,
        &bases[0],
        INITIAL,
        &serde_json::json!({
            "client_name": "rolling service",
            "grant_types": ["client_credentials"],
            "scope": "profile",
        }),
    )
    .await;
    let creds = |reg: &serde_json::Value| {
        (
            reg["client_id"].as_str().unwrap().to_string(),
            reg["client_secret"].as_str().unwrap().to_string(),
        )
    };
    let (web_id, web_secret) = creds(&web);
    let (svc_id, svc_secret) = creds(&service);
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(jar.clone())
        .build()
        .unwrap();
    let resp = steps::sign_up(&browser, &bases[0], "rita", "rita-password-123").await;
    assert_eq!(resp.status(), 303, "signed up");
    let (verifier, challenge) = pkce_pair();
    let path = format!(
        "/oauth/authorize?{}",
        steps::code_query(&web_id, "profile", &challenge)
    );
    let code = steps::code_of(&steps::consent(&browser, &bases[0], &path, "allow").await);
    let resp = steps::redeem(
        &http,
        &bases[0],
        Some((&web_id, &web_secret)),
        &[],
        &code,
        &verifier,
    )
    .await;
    assert_eq!(resp.status(), 200, "the set-up code is redeemed too");
    let cookie = jar
        .cookies(&reqwest::Url::parse(&bases[0]).unwrap())
        .expect("the session cookie");

    // The balancer and the load.
    let lb = Balancer::new(routing, bases.clone()).await;
    let checks: Vec<_> = (0..bases.len())
        .map(|i| tokio::spawn(lb.clone().health_check(i)))
        .collect();
    until("both instances ready", || lb.is_ready(0) && lb.is_ready(1)).await;
    let mut workers = vec![];
    for _ in 0..WORKERS {
        let (to, id, secret) = (lb.clone(), svc_id.clone(), svc_secret.clone());
        workers.push(tokio::spawn(async move {
            for _ in 0..MAX_UNITS_PER_WORKER {
                if to.stop.load(Ordering::SeqCst) {
                    break;
                }
                let _ = client_credentials_grant(&to, &id, &secret).await;
            }
        }));
        let (to, id, secret, cookie) = (
            lb.clone(),
            web_id.clone(),
            web_secret.clone(),
            cookie.clone(),
        );
        workers.push(tokio::spawn(async move {
            for _ in 0..MAX_UNITS_PER_WORKER {
                if to.stop.load(Ordering::SeqCst) {
                    break;
                }
                let _ = code_grant(&to, &id, &secret, &cookie).await;
            }
        }));
    }
    let ok = || Tally::get(&lb.tally.ok);
    // Per connection, each instance has at least one client connection.
    let spread = match routing {
        Routing::PerRequest => MIN_REQUESTS,
        Routing::PerConnection => 1,
    };
    until("load on both instances", || {
        lb.tally
            .ok_by_instance
            .iter()
            .all(|n| Tally::get(n) >= spread)
            && ok() >= MIN_REQUESTS
    })
    .await;

    let mut report = vec![];
    for i in 0..instances.len() {
        let port = bases[i].rsplit(':').next().unwrap().to_string();
        let before = ok();
        instances[i].signal("TERM");
        let code = tokio::task::block_in_place(|| instances[i].wait_for_exit(WAIT));
        let log = instances[i].log.lock().unwrap().join("\n");
        assert_eq!(code, Some(0), "instance {i} stops cleanly:\n{log}");
        for phase in [
            "stop requested: draining",
            "drain over",
            "no longer accepting connections",
            "stopped",
        ] {
            assert!(log.contains(phase), "instance {i} logs `{phase}`:\n{log}");
        }
        assert!(
            !log.contains("grace period over"),
            "in-flight requests finished in time:\n{log}"
        );
        let during_drain = ok() - before;
        instances[i] = tokio::task::block_in_place(|| {
            start_instance(dir.path(), &redis, &format!("127.0.0.1:{port}"))
        });
        assert_eq!(instances[i].base, bases[i], "back on its port");
        let lb_ready = lb.clone();
        until("the restarted instance is ready", move || {
            lb_ready.is_ready(i)
        })
        .await;
        // Per connection, the clients' kept-alive connections stay where
        // they are: the restarted instance gets load when another drains.
        if routing == Routing::PerRequest {
            let after_restart = Tally::get(&lb.tally.ok_by_instance[i]);
            until("load on the restarted instance", || {
                Tally::get(&lb.tally.ok_by_instance[i]) >= after_restart + MIN_REQUESTS
            })
            .await;
        }
        report.push((i, during_drain, ok() - before));
    }

    lb.stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    for c in checks {
        c.await.unwrap();
    }

    let t = &lb.tally;
    let failures = t.failures.lock().unwrap().clone();
    eprintln!(
        "rolling restart ({routing:?}): {} requests ok, {} failed; per restart (instance, ok between SIGTERM and exit, ok until the restarted instance took load): {report:?}; codes {}, refresh tokens {}, access tokens {}",
        Tally::get(&t.ok),
        failures.len(),
        Tally::get(&t.codes_redeemed),
        Tally::get(&t.refresh_used),
        Tally::get(&t.access_used),
    );
    assert!(
        failures.is_empty(),
        "{} failed requests out of {}:\n{}",
        failures.len(),
        Tally::get(&t.ok) + failures.len() as u64,
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    let issued_used = [
        (
            "codes issued / redeemed",
            &t.codes_issued,
            &t.codes_redeemed,
        ),
        (
            "refresh tokens issued / rotated or revoked",
            &t.refresh_issued,
            &t.refresh_used,
        ),
        (
            "access tokens issued / used",
            &t.access_issued,
            &t.access_used,
        ),
    ];
    for (what, issued, used) in issued_used {
        let (issued, used) = (Tally::get(issued), Tally::get(used));
        assert!(issued > 0, "{what}: none");
        assert_eq!(issued, used, "{what}: a grant was lost");
    }
    for &(i, during_drain, during_restart) in &report {
        assert!(
            during_drain >= MIN_REQUESTS,
            "instance {i}: only {during_drain} requests succeeded between SIGTERM and exit"
        );
        assert!(during_restart >= during_drain);
    }
}
