//! A bounded load of grants against one keygate, and the invariants that
//! must hold afterwards (issue 17 item 2; used by `failover.rs`).
//!
//! Each worker is one signed-in user (its own browser session, consent to
//! [`CLIENT`] given once) and runs units in a loop: a code with S256 PKCE
//! (`GET /oauth/authorize`, answered at once with a redirect), its
//! redemption, [`ROTATIONS`] refresh rotations, and then, every
//! [`REVOKE_EVERY`]th unit, the revocation of the last refresh token (else
//! the token is kept as live). Every answer is classified:
//!
//! - a success (200, or the 303 with a code) is recorded in the worker's
//!   [`Ledger`]: the codes redeemed, the refresh tokens rotated, revoked or
//!   still live;
//! - `503` (`temporarily_unavailable` at the token and revocation
//!   endpoints) is the allowed answer while the store has no master: the
//!   unit is abandoned (a redemption or rotation answered 503 may or may
//!   not have happened, so its code or token is never used again);
//! - anything else is a violation (500, a transport error, `invalid_grant`
//!   for a token the worker got from a 200), with one exception: a code
//!   issued before a fault ([`Load::fault`]) that comes back
//!   `invalid_grant` is counted as a lost issuance, not a violation. Code
//!   issuance is not a durable write (`store.wait_replicas` covers
//!   consumption, rotation and revocation), so a code the dead master had
//!   not yet replicated is legitimately gone; a lost *consumption* is
//!   caught by [`check_invariants`].
//!
//! Loops are bounded in count ([`MAX_UNITS`]) and time ([`MAX_TIME`]);
//! every request has a timeout.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keygate::config::ConfigUser;

use crate::helpers::{location, password_hash, pkce_pair, urlencode, PASSWORD, REDIRECT, SECRET};
use crate::steps;

/// The confidential client of every grant (Basic auth, refresh tokens).
pub const CLIENT: &str = "web-app";
/// Refresh rotations per unit.
pub const ROTATIONS: usize = 2;
/// Every this many units, the last refresh token is revoked.
pub const REVOKE_EVERY: usize = 3;
/// Upper bound on the attempts (units, and units abandoned on a 503) one
/// worker runs per load: enough for every phase of the failover tests,
/// small enough that the invariant checks stay short.
pub const MAX_UNITS: usize = 1_000;
/// Upper bound on one load's duration.
pub const MAX_TIME: Duration = Duration::from_secs(120);
/// Upper bound on one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause after a 503 before the next attempt (no hot loop while the
/// store has no master).
const BACKOFF: Duration = Duration::from_millis(20);

/// A config user `name` (id `name` too, so its slot is known) with the
/// test password.
pub fn user(name: &str) -> ConfigUser {
    ConfigUser {
        username: name.into(),
        password_hash: password_hash().into(),
        email: None,
        id: Some(name.into()),
        name: None,
    }
}

/// The token endpoint's client: no cookies, no redirects, a timeout.
fn api_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .build()
        .unwrap()
}

/// A signed-in user's browser at one keygate.
#[derive(Clone)]
pub struct Session {
    pub username: String,
    browser: reqwest::Client,
}

/// Signs `username` in at `base` and allows [`CLIENT`] once, so that
/// every later authorization request is answered at once with a code.
pub async fn sign_in(base: &str, username: &str) -> Session {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .unwrap();
    let (_, challenge) = pkce_pair();
    let path = format!(
        "/oauth/authorize?{}",
        steps::code_query(CLIENT, "profile", &challenge)
    );
    let html = steps::page(
        &browser,
        base,
        &format!("/login?return_to={}", urlencode(&path)),
    )
    .await;
    let csrf = crate::helpers::hidden_value(&html, "csrf_token");
    let resp = browser
        .post(format!("{base}/login"))
        .form(&[
            ("username", username),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
            ("return_to", &path),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "{username} signs in");
    let redirect = steps::consent(&browser, base, &path, "allow").await;
    assert!(redirect.starts_with(REDIRECT), "{redirect}");
    Session {
        username: username.into(),
        browser,
    }
}

/// A fresh code for `session` with S256 PKCE: `Ok((code, verifier))`, or
/// `Err((status, location))`.
pub async fn issue_code(base: &str, session: &Session) -> Result<(String, String), (u16, String)> {
    let (verifier, challenge) = pkce_pair();
    let url = format!(
        "{base}/oauth/authorize?{}",
        steps::code_query(CLIENT, "profile", &challenge)
    );
    match session.browser.get(url).send().await {
        Ok(resp) if resp.status() == 303 => {
            let to = location(&resp);
            if to.starts_with(REDIRECT) {
                if let Some(code) = crate::helpers::params_of(&to, false).remove("code") {
                    return Ok((code, verifier));
                }
            }
            Err((303, to))
        }
        Ok(resp) => Err((resp.status().as_u16(), String::new())),
        Err(e) => Err((0, e.to_string())),
    }
}

/// An answer of the token, revocation or introspection endpoint.
#[derive(Debug, Clone)]
pub struct Answer {
    /// 0: no HTTP answer (transport error, in `body`).
    pub status: u16,
    pub body: serde_json::Value,
}

impl Answer {
    /// 200.
    pub fn ok(&self) -> bool {
        self.status == 200
    }

    /// 503 `temporarily_unavailable` and no token in the body.
    pub fn unavailable(&self) -> bool {
        self.status == 503
            && self.body["error"] == "temporarily_unavailable"
            && self.body.get("access_token").is_none()
    }

    /// 400 `invalid_grant`.
    pub fn invalid_grant(&self) -> bool {
        self.status == 400 && self.body["error"] == "invalid_grant"
    }

    /// A string field of the body.
    pub fn field(&self, name: &str) -> String {
        self.body[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {}", self.body))
            .to_string()
    }
}

/// POSTs `form` to `base` + `path` as [`CLIENT`] (Basic).
pub async fn call(http: &reqwest::Client, base: &str, path: &str, form: &[(&str, &str)]) -> Answer {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let sent = http
        .post(format!("{base}{path}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .basic_auth(CLIENT, Some(SECRET))
        .body(body)
        .send()
        .await;
    match sent {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
            Answer { status, body }
        }
        Err(e) => Answer {
            status: 0,
            body: serde_json::Value::String(e.to_string()),
        },
    }
}

/// Redeems `code` with `verifier`.
pub async fn redeem(http: &reqwest::Client, base: &str, code: &str, verifier: &str) -> Answer {
    call(
        http,
        base,
        "/oauth/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await
}

/// Rotates `refresh`.
pub async fn refresh(http: &reqwest::Client, base: &str, refresh: &str) -> Answer {
    call(
        http,
        base,
        "/oauth/token",
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await
}

/// Revokes `token` (RFC 7009).
pub async fn revoke(http: &reqwest::Client, base: &str, token: &str) -> Answer {
    call(http, base, "/oauth/revoke", &[("token", token)]).await
}

/// Introspects `token` (RFC 7662).
pub async fn introspect(http: &reqwest::Client, base: &str, token: &str) -> Answer {
    call(http, base, "/oauth/introspect", &[("token", token)]).await
}

/// What a load did, for the invariants.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Codes whose redemption answered 200, with their verifiers.
    pub redeemed: Vec<(String, String)>,
    /// Refresh tokens whose rotation answered 200.
    pub rotated: Vec<String>,
    /// Refresh tokens whose revocation answered 200, with the family's
    /// last access token.
    pub revoked: Vec<(String, String)>,
    /// The last refresh token of each family that was neither rotated nor
    /// revoked (nor left uncertain by a 503).
    pub live: Vec<String>,
    /// Wrong answers, described.
    pub violations: Vec<String>,
    /// Codes issued before a fault and unknown after it (module docs).
    pub lost_issuances: u64,
    /// `"<step> <status>"` → count.
    pub statuses: BTreeMap<String, u64>,
}

impl Ledger {
    /// Adds `other`'s records to these.
    pub fn merge(&mut self, other: Ledger) {
        self.redeemed.extend(other.redeemed);
        self.rotated.extend(other.rotated);
        self.revoked.extend(other.revoked);
        self.live.extend(other.live);
        self.violations.extend(other.violations);
        self.lost_issuances += other.lost_issuances;
        for (k, n) in other.statuses {
            *self.statuses.entry(k).or_default() += n;
        }
    }

    fn count(&mut self, step: &str, status: u16) {
        *self.statuses.entry(format!("{step} {status}")).or_default() += 1;
    }

    /// Counts `r` under `step` and says whether it is a success. A 503
    /// `temporarily_unavailable` is not (and is allowed); any other
    /// failure is a violation: `what` of `user` answered it.
    fn succeeded(&mut self, step: &str, r: &Answer, user: &str, what: &str) -> bool {
        self.count(step, r.status);
        if r.unavailable() {
            return false;
        }
        if !r.ok() {
            self.violations
                .push(format!("{user}: {what} answered {} {}", r.status, r.body));
            return false;
        }
        true
    }

    /// How many answers of any step had `status`.
    pub fn with_status(&self, status: u16) -> u64 {
        self.statuses
            .iter()
            .filter(|(k, _)| k.ends_with(&format!(" {status}")))
            .map(|(_, n)| n)
            .sum()
    }
}

struct Shared {
    stop: AtomicBool,
    /// Faults announced by the test ([`Load::fault`]).
    faults: AtomicU64,
    /// Successful token-endpoint and revocation answers, per worker.
    successes: Vec<AtomicU64>,
}

/// A running load: one worker per session.
pub struct Load {
    shared: Arc<Shared>,
    workers: Vec<tokio::task::JoinHandle<Ledger>>,
}

impl Load {
    /// Starts one worker per session against `base`.
    pub fn start(base: &str, sessions: &[Session]) -> Load {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            faults: AtomicU64::new(0),
            successes: sessions.iter().map(|_| AtomicU64::new(0)).collect(),
        });
        let workers = sessions
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (base, session, shared) = (base.to_string(), s.clone(), shared.clone());
                tokio::spawn(async move { work(base, session, i, shared).await })
            })
            .collect();
        Load { shared, workers }
    }

    /// Announces a fault (a master about to be killed): codes issued
    /// before it may be lost.
    pub fn fault(&self) {
        self.shared.faults.fetch_add(1, Ordering::SeqCst);
    }

    /// Successes so far of the workers `which` (all when empty).
    pub fn successes(&self, which: &[usize]) -> u64 {
        self.shared
            .successes
            .iter()
            .enumerate()
            .filter(|(i, _)| which.is_empty() || which.contains(i))
            .map(|(_, n)| n.load(Ordering::SeqCst))
            .sum()
    }

    /// Polls until the workers `which` have `target` successes; how long
    /// that took.
    ///
    /// # Panics
    /// After `deadline`, naming `what`.
    pub async fn wait_for(
        &self,
        which: &[usize],
        target: u64,
        deadline: Duration,
        what: &str,
    ) -> Duration {
        let started = Instant::now();
        loop {
            let now = self.successes(which);
            if now >= target {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < deadline,
                "{what}: {now} of {target} successes after {deadline:?}"
            );
            assert!(
                !self.workers.iter().all(|w| w.is_finished()),
                "{what}: every worker stopped"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the workers and returns their ledgers, merged.
    pub async fn stop(self) -> Ledger {
        self.shared.stop.store(true, Ordering::SeqCst);
        let mut all = Ledger::default();
        for w in self.workers {
            all.merge(w.await.expect("a load worker panicked"));
        }
        all
    }
}

async fn work(base: String, session: Session, me: usize, shared: Arc<Shared>) -> Ledger {
    let http = api_client();
    let mut ledger = Ledger::default();
    let started = Instant::now();
    let mut unit = 0usize;
    for _ in 0..MAX_UNITS {
        if shared.stop.load(Ordering::SeqCst) || started.elapsed() > MAX_TIME {
            break;
        }
        let done = one_unit(&base, &http, &session, unit, &shared, me, &mut ledger).await;
        if done {
            unit += 1;
        } else {
            tokio::time::sleep(BACKOFF).await;
        }
    }
    ledger
}

/// One unit; false when it was abandoned on a 503 (or a violation).
async fn one_unit(
    base: &str,
    http: &reqwest::Client,
    session: &Session,
    unit: usize,
    shared: &Shared,
    me: usize,
    ledger: &mut Ledger,
) -> bool {
    let user = &session.username;
    let success = || shared.successes[me].fetch_add(1, Ordering::SeqCst);
    let epoch = shared.faults.load(Ordering::SeqCst);
    let (code, verifier) = match issue_code(base, session).await {
        Ok(c) => {
            ledger.count("authorize", 303);
            c
        }
        Err((status, to)) => {
            ledger.count("authorize", status);
            if status != 503 {
                ledger
                    .violations
                    .push(format!("{user}: authorize answered {status} {to}"));
            }
            return false;
        }
    };
    let a = redeem(http, base, &code, &verifier).await;
    if a.invalid_grant() && shared.faults.load(Ordering::SeqCst) > epoch {
        ledger.count("redeem", a.status);
        ledger.lost_issuances += 1;
        return false;
    }
    if !ledger.succeeded("redeem", &a, user, "a fresh code's redemption") {
        return false;
    }
    success();
    ledger.redeemed.push((code, verifier));
    let mut token = a.field("refresh_token");
    let mut access = a.field("access_token");
    for _ in 0..ROTATIONS {
        let r = refresh(http, base, &token).await;
        if !ledger.succeeded("refresh", &r, user, "a fresh refresh token's rotation") {
            return false;
        }
        success();
        ledger
            .rotated
            .push(std::mem::replace(&mut token, r.field("refresh_token")));
        access = r.field("access_token");
    }
    if unit.is_multiple_of(REVOKE_EVERY) {
        let r = revoke(http, base, &token).await;
        if !ledger.succeeded("revoke", &r, user, "a revocation") {
            return false;
        }
        success();
        ledger.revoked.push((token, access));
    } else {
        ledger.live.push(token);
    }
    true
}

/// Checks, against `base`, that no answered success was undone: every
/// live refresh token still rotates (it becomes a rotated one); no code
/// answered 200 redeems again; no rotated refresh token is usable; no
/// revoked token is active or refreshable. Returns the violations
/// (every answer must be definite: a 503 here is one too).
pub async fn check_invariants(base: &str, ledger: &mut Ledger) -> Vec<String> {
    let http = api_client();
    let mut bad = vec![];
    for token in std::mem::take(&mut ledger.live) {
        let r = refresh(&http, base, &token).await;
        if r.ok() {
            ledger.rotated.push(token);
        } else {
            bad.push(format!(
                "a live refresh token answered {} {}",
                r.status, r.body
            ));
        }
    }
    for (code, verifier) in &ledger.redeemed {
        let r = settled(|| redeem(&http, base, code, verifier)).await;
        if !r.invalid_grant() {
            bad.push(format!("a redeemed code answered {} {}", r.status, r.body));
        }
    }
    for token in &ledger.rotated {
        let r = settled(|| refresh(&http, base, token)).await;
        if !r.invalid_grant() {
            bad.push(format!(
                "a rotated refresh token answered {} {}",
                r.status, r.body
            ));
        }
    }
    for (token, access) in &ledger.revoked {
        let r = settled(|| refresh(&http, base, token)).await;
        if !r.invalid_grant() {
            bad.push(format!(
                "a revoked refresh token answered {} {}",
                r.status, r.body
            ));
        }
        for t in [token, access] {
            let i = introspect(&http, base, t).await;
            if !(i.ok() && i.body["active"] == false) {
                bad.push(format!(
                    "introspection of a revoked token: {} {}",
                    i.status, i.body
                ));
            }
        }
    }
    bad
}

/// `call` again after a 503, a few times: for the replays of spent codes
/// and tokens, whose answer is `invalid_grant` however often they are sent,
/// but which revoke what they issued (a durable write, whose `WAIT` may
/// time out once on a busy machine). The last answer.
async fn settled<F, Fut>(mut call: F) -> Answer
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    let mut answer = call().await;
    for _ in 0..20 {
        if !answer.unavailable() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        answer = call().await;
    }
    answer
}

/// A short account of a ledger, for the test output.
pub fn summary(ledger: &Ledger) -> String {
    format!(
        "codes redeemed {}, rotations {}, revocations {}, live families {}, lost issuances {}, \
         answers {:?}",
        ledger.redeemed.len(),
        ledger.rotated.len(),
        ledger.revoked.len(),
        ledger.live.len(),
        ledger.lost_issuances,
        ledger.statuses
    )
}
