//! Issue 17 items 2 and 3: failover under load, and durable single use
//! (`store.wait_replicas`), on Redis Sentinel ([`RedisSentinel`]) and on a
//! Redis Cluster ([`RedisCluster`]).
//!
//! - Sentinel basics: the store conformance suite and the OAuth flows over
//!   `redis+sentinel://`.
//! - A master killed (`SIGKILL`) under a load of grants ([`grant_load`]),
//!   with `wait_replicas = 1`: every answer is a success or
//!   `503 temporarily_unavailable`; keygate recovers by itself after the
//!   promotion; afterwards no code answered 200 redeems again, no rotated
//!   refresh token is usable, no revoked token is active or refreshable,
//!   and every family still held refreshes. Codes *issued* just before the
//!   kill may be lost with the master (issuance is not a durable write), and
//!   the driver counts those apart; a lost *consumption* is a failure.
//! - Durable single use, deterministically: with the replica paused
//!   (`SIGSTOP`), a redemption and a rotation acknowledged only by the
//!   master come back after the failover with `wait_replicas = 0` (the
//!   hazard), and are refused with 503 with `wait_replicas = 1`, after which
//!   each redeems exactly once.
//!
//! The Sentinel deployments keep one replica per test except the load test,
//! which has two: with `wait_replicas = 1` the promoted replica needs a
//! replica of its own to acknowledge. On the cluster (one replica per
//! master) the promoted replica has none until the killed node comes back,
//! so that shard answers 503 to durable writes until then (docs/redis.md:
//! "with no reachable replica these requests answer 503").
//!
//! Waits are bounded polls; measured times are printed, never asserted
//! beyond a generous liveness bound.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keygate::store::redis::RedisStore;
use keygate::tokens::keys::Alg;

use crate::grant_load::{self, check_invariants, summary, Answer, Load, Session};
use crate::helpers::{spawn_app_with, Backend, TestApp, CLUSTER_URL, USER};
use crate::redis_cluster::{command_as, RedisCluster};
use crate::redis_sentinel::{request, signal, RedisSentinel};

/// Per-call store timeout (`WAIT` gets half of it).
const TIMEOUT: Duration = Duration::from_millis(500);
/// Liveness bound on recovery and on each phase of a load.
const RECOVERY: Duration = Duration::from_secs(30);
/// Successes each load phase waits for.
const PHASE: u64 = 30;

/// keygate on the store at `url` with `wait_replicas`, no refresh grace
/// window (a rotated token's reuse must fail at once) and the config users
/// `users` besides alice.
async fn app_on(url: &str, wait_replicas: u32, users: &[String]) -> TestApp {
    spawn_app_with(Backend::Memory, Alg::ES256, |s| {
        s.store.url = url.into();
        s.store.timeout_ms = TIMEOUT.as_millis() as u64;
        s.store.wait_replicas = wait_replicas;
        s.tokens.refresh_grace_secs = 0;
        s.users.extend(users.iter().map(|u| grant_load::user(u)));
    })
    .await
}

async fn sign_in_all(app: &TestApp, users: &[String]) -> Vec<Session> {
    let mut sessions = vec![];
    for u in users {
        sessions.push(grant_load::sign_in(&app.addr, u).await);
    }
    sessions
}

/// A 503 `temporarily_unavailable` answer (an authorization request that
/// the store could not serve, in the token endpoint's terms).
fn unavailable() -> Answer {
    Answer {
        status: 503,
        body: serde_json::json!({"error": "temporarily_unavailable"}),
    }
}

/// Repeats `call` while it answers 503 (the store is still failing over),
/// bounded by [`RECOVERY`]; the first other answer.
async fn definite<F, Fut>(what: &str, mut call: F) -> Answer
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    let started = Instant::now();
    loop {
        let a = call().await;
        if !a.unavailable() {
            return a;
        }
        assert!(
            started.elapsed() < RECOVERY,
            "{what}: still 503 after {RECOVERY:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_clean(ledger: &grant_load::Ledger, what: &str) {
    assert!(
        ledger.violations.is_empty(),
        "{what}: wrong answers under load:\n{}\n{}",
        ledger.violations.join("\n"),
        summary(ledger)
    );
}

// ---------------------------------------------------------------------------
// Sentinel.
// ---------------------------------------------------------------------------

/// The conformance suite and the flows (code + PKCE, refresh rotation with
/// reuse detection, revocation and introspection) over `redis+sentinel://`.
/// The per-backend scenarios run on the URL of the `CLUSTER_URL` scope
/// (`Backend::Cluster`), here the sentinel URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_store_conformance_and_oauth_flows() {
    let sentinel = RedisSentinel::new(1);
    let store = RedisStore::connect_sentinel(&sentinel.url(), TIMEOUT).unwrap();
    crate::store_conformance::suite(Arc::new(store)).await;
    CLUSTER_URL
        .scope(sentinel.url(), async {
            use crate::oauth_flows as flows;
            flows::code_flow_confidential_client_end_to_end::on_cluster().await;
            flows::code_flow_public_client_needs_pkce_and_rotates_refresh_tokens::on_cluster()
                .await;
            flows::revocation_rules::on_cluster().await;
        })
        .await;
}

/// Issue 17 item 2 on Sentinel: the master killed under load.
///
/// Two replicas, not the issue's one: the load runs with
/// `wait_replicas = 1` (without it, grants the master answered but never
/// replicated come back after the promotion, and the invariants below
/// would rightly fail), and the promoted master needs a replica of its own
/// to acknowledge before the old master rejoins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_master_killed_under_load() {
    let mut sentinel = RedisSentinel::new(2);
    let users: Vec<String> = (0..3).map(|i| format!("load-{i}")).collect();
    let app = app_on(&sentinel.url(), 1, &users).await;
    let sessions = sign_in_all(&app, &users).await;

    let load = Load::start(&app.addr, &sessions);
    load.wait_for(&[], PHASE, RECOVERY, "load before the kill")
        .await;
    load.fault();
    let killed = Instant::now();
    let old = sentinel.kill_master();
    let new = sentinel.wait_for_new_master(old);
    let promoted = killed.elapsed();
    let at_promotion = load.successes(&[]);
    let first = load
        .wait_for(
            &[],
            at_promotion + 1,
            RECOVERY,
            "first success after the promotion",
        )
        .await;
    load.wait_for(&[], at_promotion + PHASE, RECOVERY, "load after recovery")
        .await;
    let mut ledger = load.stop().await;
    println!(
        "sentinel failover: master {old} killed; {new} named after {promoted:?}; first success \
         {first:?} after that\n{}",
        summary(&ledger)
    );
    assert_clean(&ledger, "sentinel failover");
    assert!(
        ledger.with_status(503) > 0,
        "the load never saw the outage: {}",
        summary(&ledger)
    );
    let bad = check_invariants(&app.addr, &mut ledger).await;
    assert!(bad.is_empty(), "after the failover:\n{}", bad.join("\n"));

    // The old master comes back (as a replica); a second load, all again.
    sentinel.restart(old);
    let load = Load::start(&app.addr, &sessions);
    load.wait_for(&[], PHASE, RECOVERY, "load after the old master rejoined")
        .await;
    ledger.merge(load.stop().await);
    assert_clean(&ledger, "after the old master rejoined");
    let bad = check_invariants(&app.addr, &mut ledger).await;
    assert!(
        bad.is_empty(),
        "after the old master rejoined:\n{}",
        bad.join("\n")
    );
}

/// The data node of `sentinel` that is not its master (one replica).
fn the_replica(sentinel: &RedisSentinel) -> u16 {
    let master = sentinel.master_port();
    sentinel
        .data_ports()
        .into_iter()
        .find(|p| *p != master && request(*p, &["PING"]).is_some())
        .expect("a running replica")
}

/// A code for `session`, redeemed: its refresh and access tokens.
/// A 503 (the replica not acknowledging yet) is retried with a fresh code,
/// bounded by [`RECOVERY`].
async fn grant(http: &reqwest::Client, base: &str, session: &Session) -> (String, String) {
    let a = definite("a grant", || async move {
        match grant_load::issue_code(base, session).await {
            Ok((c, v)) => grant_load::redeem(http, base, &c, &v).await,
            Err((503, _)) => unavailable(),
            Err(other) => panic!("authorize answered {other:?}"),
        }
    })
    .await;
    assert!(a.ok(), "a redemption: {a:?}");
    (a.field("refresh_token"), a.field("access_token"))
}

/// Issue 17 item 3 on Sentinel, deterministically: the replica's
/// replication link is cut ([`RedisSentinel::cut_replication`]), so
/// whatever the master answers then has not reached the replica when the
/// master dies and the replica is promoted. (A paused replica would not
/// do: on `SIGCONT` it reads the stream the master had already sent into
/// its socket buffer.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_single_use_across_a_sentinel_failover() {
    let mut sentinel = RedisSentinel::new(1);
    let url = sentinel.url();
    let http = reqwest::Client::new();

    // wait_replicas = 0: a redemption and a rotation answered 200 by the
    // master alone are undone by the failover; the same code and refresh
    // token work a second time. The hazard the setting closes.
    {
        let app = app_on(&url, 0, &[]).await;
        let base = app.addr.clone();
        let alice = grant_load::sign_in(&base, USER).await;
        let (code, verifier) = grant_load::issue_code(&base, &alice).await.unwrap();
        let (rt, _) = grant(&http, &base, &alice).await;
        sentinel.wait_replica_synced();
        let replica = the_replica(&sentinel);
        sentinel.cut_replication(replica);
        let a = grant_load::redeem(&http, &base, &code, &verifier).await;
        assert!(
            a.ok(),
            "without wait_replicas the master alone answers: {a:?}"
        );
        let r = grant_load::refresh(&http, &base, &rt).await;
        assert!(r.ok(), "{r:?}");
        let old = sentinel.kill_master();
        assert_eq!(sentinel.wait_for_new_master(old), replica);
        sentinel.mend_replication(replica);
        // keygate finds the new master (fresh grants until one works), so
        // that the code itself is sent once only.
        grant(&http, &base, &alice).await;
        let again = grant_load::redeem(&http, &base, &code, &verifier).await;
        assert!(
            again.ok(),
            "wait_replicas = 0: the redeemed code came back with the promoted replica \
             (the hazard); got {again:?}"
        );
        let again = grant_load::refresh(&http, &base, &rt).await;
        assert!(
            again.ok(),
            "wait_replicas = 0: the rotated refresh token came back; got {again:?}"
        );
        sentinel.restart(old);
    }

    // wait_replicas = 1: with the link cut, the redemption and the
    // rotation answer 503 and hand nothing out; after the failover each
    // takes effect exactly once. A revocation that the (paused) replica
    // does not acknowledge answers 503 too.
    let app = app_on(&url, 1, &[]).await;
    let base = app.addr.clone();
    let alice = grant_load::sign_in(&base, USER).await;
    let (code, verifier) = grant_load::issue_code(&base, &alice).await.unwrap();
    let (rt, _) = grant(&http, &base, &alice).await;
    let (doomed, doomed_access) = grant(&http, &base, &alice).await;
    sentinel.wait_replica_synced();
    let replica = the_replica(&sentinel);
    sentinel.cut_replication(replica);
    let a = grant_load::redeem(&http, &base, &code, &verifier).await;
    assert!(a.unavailable(), "unacknowledged redemption: {a:?}");
    let r = grant_load::refresh(&http, &base, &rt).await;
    assert!(r.unavailable(), "unacknowledged rotation: {r:?}");
    let old = sentinel.kill_master();
    assert_eq!(sentinel.wait_for_new_master(old), replica);
    sentinel.mend_replication(replica);
    // The promoted replica needs a replica of its own to acknowledge.
    sentinel.restart(old);
    // keygate finds the new master and its replica acknowledges (fresh
    // grants until one works): a 503 for the code itself would leave its
    // fate unknown (the swap may have happened), so it is sent only now.
    grant(&http, &base, &alice).await;

    let once = grant_load::redeem(&http, &base, &code, &verifier).await;
    assert!(once.ok(), "{once:?}");
    // (The replay revokes what the code issued, a durable write: retried
    // on 503, it stays invalid_grant.)
    let twice = definite("the code's replay", || {
        grant_load::redeem(&http, &base, &code, &verifier)
    })
    .await;
    assert!(twice.invalid_grant(), "redeemed once only: {twice:?}");
    let once = grant_load::refresh(&http, &base, &rt).await;
    assert!(once.ok(), "{once:?}");
    let twice = definite("the token's reuse", || {
        grant_load::refresh(&http, &base, &rt)
    })
    .await;
    assert!(twice.invalid_grant(), "rotated once only: {twice:?}");

    sentinel.pause(old);
    let v = grant_load::revoke(&http, &base, &doomed).await;
    sentinel.resume(old);
    assert!(v.unavailable(), "unacknowledged revocation: {v:?}");
    let v = definite("the revocation with the replica back", || {
        grant_load::revoke(&http, &base, &doomed)
    })
    .await;
    assert!(v.ok(), "{v:?}");
    let r = grant_load::refresh(&http, &base, &doomed).await;
    assert!(r.invalid_grant(), "revoked: {r:?}");
    let i = grant_load::introspect(&http, &base, &doomed_access).await;
    assert_eq!(i.body["active"], false, "{i:?}");
}

// ---------------------------------------------------------------------------
// Cluster.
// ---------------------------------------------------------------------------

/// A master of the cluster, its replica, and its slot ranges.
#[derive(Debug, Clone)]
struct Shard {
    master: u16,
    replica: u16,
    slots: Vec<(u16, u16)>,
}

/// The shards as a running node sees them (`CLUSTER NODES`).
fn shards(cluster: &RedisCluster) -> Vec<Shard> {
    let text = cluster
        .ports()
        .into_iter()
        .find_map(|p| command_as(p, None, &["CLUSTER", "NODES"]))
        .expect("a node answers CLUSTER NODES");
    let port = |addr: &str| -> u16 {
        addr.split('@')
            .next()
            .and_then(|a| a.rsplit_once(':'))
            .and_then(|(_, p)| p.parse().ok())
            .expect("a node address")
    };
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .filter(|f| f.len() >= 8)
        .collect();
    let mut shards = vec![];
    for f in &lines {
        if !f[2].contains("master") || f[2].contains("fail") || f.len() < 9 {
            continue;
        }
        let slots = f[8..]
            .iter()
            .filter(|r| !r.starts_with('['))
            .map(|r| match r.split_once('-') {
                Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
                None => (r.parse().unwrap(), r.parse().unwrap()),
            })
            .collect();
        let replica = lines
            .iter()
            .find(|r| r[2].contains("slave") && r[3] == f[0])
            .map(|r| port(r[1]))
            .expect("every master has a replica");
        shards.push(Shard {
            master: port(f[1]),
            replica,
            slots,
        });
    }
    shards
}

/// One user per shard, in the order of `shards`: the first ids
/// `shard-user-N` whose record `kg:user:<id>` (and so whose grant state)
/// lives on that shard.
fn one_user_per_shard(shards: &[Shard]) -> Vec<String> {
    let mut users: Vec<Option<String>> = vec![None; shards.len()];
    for n in 0..1000 {
        if users.iter().all(Option::is_some) {
            break;
        }
        let id = format!("shard-user-{n}");
        let slot = request(
            shards[0].master,
            &["CLUSTER", "KEYSLOT", &format!("kg:user:{id}")],
        )
        .and_then(|r| r.int())
        .expect("CLUSTER KEYSLOT");
        let slot = u16::try_from(slot).unwrap();
        let i = shards
            .iter()
            .position(|s| s.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
            .expect("every slot is served");
        users[i].get_or_insert(id);
    }
    users
        .into_iter()
        .map(|u| u.expect("a user id on every shard"))
        .collect()
}

/// Issue 17 items 3 and 2 on one cluster (3 masters, 3 replicas),
/// `wait_replicas = 1`, one user per shard:
///
/// - durable writes per shard: with the replica of user 0's master
///   paused, user 0's redemption answers 503 while the other users'
///   succeed; the 503'd code is spent (the write happened on the master,
///   it was only not acknowledged), and after the replica resumes user 0's
///   redemptions work again;
/// - user 0's master killed under load: answers are successes or 503; the
///   other shards recover after the promotion; user 0's shard, whose new
///   master has no replica, answers 503 to its durable writes until the
///   killed node is back as its replica, then recovers; the invariants
///   hold after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_durable_writes_per_shard_and_a_master_killed_under_load() {
    let mut cluster = RedisCluster::new();
    let shards = shards(&cluster);
    assert_eq!(shards.len(), 3, "{shards:?}");
    let users = one_user_per_shard(&shards);
    let app = app_on(&cluster.url(), 1, &users).await;
    let base = app.addr.clone();
    let sessions = sign_in_all(&app, &users).await;
    let http = reqwest::Client::new();

    // Durable writes per shard (item 3). One grant per shard first: the
    // first durable swap on a fresh cluster loads the script on every node
    // (`NOSCRIPT`), which a paused node would hold up for every shard.
    for s in &sessions {
        grant(&http, &base, s).await;
    }
    let pid = cluster.pid(shards[0].replica).expect("the replica runs");
    let (code, verifier) = grant_load::issue_code(&base, &sessions[0]).await.unwrap();
    signal(pid, "STOP");
    let paused = grant_load::redeem(&http, &base, &code, &verifier).await;
    let mut others = vec![];
    for s in &sessions[1..] {
        let (c, v) = grant_load::issue_code(&base, s).await.unwrap();
        others.push(grant_load::redeem(&http, &base, &c, &v).await);
    }
    signal(pid, "CONT");
    assert!(
        paused.unavailable(),
        "a redemption on the shard whose replica is paused: {paused:?}"
    );
    for (s, a) in sessions[1..].iter().zip(&others) {
        assert!(a.ok(), "{} on another shard: {a:?}", s.username);
    }
    // User 0's shard works again once the replica is back.
    grant(&http, &base, &sessions[0]).await;
    // A replay revokes what the code issued: a durable write, retried
    // while the resumed replica catches up (the code stays spent either way).
    let spent = definite("the spent code", || {
        grant_load::redeem(&http, &base, &code, &verifier)
    })
    .await;
    assert!(
        spent.invalid_grant(),
        "the 503'd redemption happened on the master: {spent:?}"
    );

    // A master killed under load (item 2).
    let (victim, heir) = (shards[0].master, shards[0].replica);
    let load = Load::start(&base, &sessions);
    load.wait_for(&[], PHASE, RECOVERY, "load before the kill")
        .await;
    load.fault();
    let killed = Instant::now();
    cluster.stop_node(victim);
    let deadline = Instant::now() + RECOVERY;
    while !cluster.masters().contains(&heir) {
        assert!(
            Instant::now() < deadline,
            "replica {heir} not promoted within {RECOVERY:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let promoted = killed.elapsed();
    let rest = [1, 2];
    let at_promotion = load.successes(&rest);
    let first = load
        .wait_for(
            &rest,
            at_promotion + 1,
            RECOVERY,
            "the other shards after the promotion",
        )
        .await;
    let orphaned = load.successes(&[0]);
    load.wait_for(
        &rest,
        at_promotion + PHASE,
        RECOVERY,
        "the other shards' load",
    )
    .await;
    assert_eq!(
        load.successes(&[0]),
        orphaned,
        "a durable write succeeded on a shard whose master has no replica"
    );
    cluster.start_node(victim);
    cluster.wait_until_ok();
    let restarted = Instant::now();
    let back = load
        .wait_for(
            &[0],
            orphaned + 1,
            RECOVERY,
            "user 0's shard once the killed node is its replica",
        )
        .await;
    load.wait_for(&[0], orphaned + 10, RECOVERY, "user 0's load")
        .await;
    let mut ledger = load.stop().await;
    println!(
        "cluster failover: master {victim} killed; {heir} promoted after {promoted:?}; other \
         shards' first success {first:?} after that; {victim} restarted {:?} after the kill, \
         its shard's first success {back:?} after that\n{}",
        restarted - killed,
        summary(&ledger)
    );
    assert_clean(&ledger, "cluster failover");
    assert!(ledger.with_status(503) > 0, "{}", summary(&ledger));
    let bad = check_invariants(&base, &mut ledger).await;
    assert!(bad.is_empty(), "after the failover:\n{}", bad.join("\n"));
}
