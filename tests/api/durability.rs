//! `store.wait_replicas` on a real Redis, with and without a replica
//! (issue 17 item 3; failover itself is in `failover.rs`).
//!
//! A durable write ([`Swap::durable`], [`KvStore::sync_replicas`]) that too
//! few replicas acknowledge is not a success: the store says
//! `NotReplicated`, the token endpoint answers 503, and no token is handed
//! out that a failover could make reusable. With a replica the same writes
//! succeed and are on the replica when the call returns.

use std::time::{Duration, Instant};

use keygate::store::redis::RedisStore;
use keygate::store::{Durability, KvStore, StoreError, Swap};
use keygate::tokens::keys::Alg;

use crate::helpers::{spawn_app_with, Backend, SECRET};
use crate::redis_cluster::command_as;
use crate::redis_server::RedisServer;
use crate::steps;

/// The store timeout of these tests: `WAIT` gets a third of it (Redis
/// ends a `WAIT` on its 100 ms clock tick, and the first durable swap on a
/// fresh Redis runs twice: `NOSCRIPT`, then again after loading).
const TIMEOUT: Duration = Duration::from_millis(1500);

async fn durable_store(redis: &RedisServer, replicas: u32) -> RedisStore {
    RedisStore::connect(&redis.url(), TIMEOUT)
        .await
        .unwrap()
        .with_durability(Durability::new(replicas, TIMEOUT))
}

fn swap<'a>(key: &'a str, expected: &'a [u8], new: &'a [u8], durable: bool) -> Swap<'a> {
    Swap {
        key,
        expected,
        new: Some((new, None)),
        require: &[],
        puts: &[],
        durable,
    }
}

/// Makes `replica` a replica of `master` and waits (bounded) until their
/// link is up.
fn replicate(replica: &RedisServer, master: &RedisServer) {
    let port = master.port().to_string();
    let _ = command_as(replica.port(), None, &["REPLICAOF", "127.0.0.1", &port]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = command_as(replica.port(), None, &["INFO", "replication"]).unwrap_or_default();
        if info.contains("master_link_status:up") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the replica did not connect to its master within 20 s:\n{info}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Without replicas a durable swap happens on the master but is reported
/// as `NotReplicated` (so the caller answers 503); a swap that does not
/// happen, a non-durable swap and a store without `wait_replicas` are
/// unaffected. The first durable swap also loads the script inside the
/// pipeline (`NOSCRIPT` on a fresh Redis).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_write_without_enough_replicas_is_not_a_success() {
    let redis = RedisServer::new();
    let store = durable_store(&redis, 1).await;
    store.put("kg:d:a", b"1", None).await.unwrap();

    let err = store
        .swap(&swap("kg:d:a", b"1", b"2", true))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotReplicated {
                wanted: 1,
                acked: 0
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        store.get("kg:d:a").await.unwrap().as_deref(),
        Some(&b"2"[..]),
        "the write happened on the master; only the answer is withheld"
    );
    // A swap that loses writes nothing: no acknowledgement is needed.
    assert!(!store.swap(&swap("kg:d:a", b"1", b"3", true)).await.unwrap());
    // Not durable: answered at once.
    assert!(store
        .swap(&swap("kg:d:a", b"2", b"4", false))
        .await
        .unwrap());
    let err = store.sync_replicas("kg:d:a").await.unwrap_err();
    assert!(matches!(err, StoreError::NotReplicated { .. }), "{err:?}");

    let plain = durable_store(&redis, 0).await;
    assert!(plain.swap(&swap("kg:d:a", b"4", b"5", true)).await.unwrap());
    plain.sync_replicas("kg:d:a").await.unwrap();
    assert_eq!(store.connected_replicas().await.unwrap(), 0);
}

/// With a replica, durable writes succeed, and each is on the replica by the
/// time the call returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_replica_durable_writes_succeed_and_are_replicated_first() {
    let master = RedisServer::new();
    let replica = RedisServer::new();
    replicate(&replica, &master);
    let store = durable_store(&master, 1).await;
    // The master lists the replica once its side of the link is up too.
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.connected_replicas().await.unwrap() != 1 {
        assert!(
            Instant::now() < deadline,
            "the master never listed its replica"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store.put("kg:d:b", b"0", None).await.unwrap();
    for i in 0..20u32 {
        let (old, new) = (i.to_string(), (i + 1).to_string());
        assert!(store
            .swap(&swap("kg:d:b", old.as_bytes(), new.as_bytes(), true))
            .await
            .unwrap());
        assert_eq!(
            command_as(replica.port(), None, &["GET", "kg:d:b"]).as_deref(),
            Some(new.as_str()),
            "swap {i} was acknowledged, so the replica has it"
        );
    }
    store.put("kg:d:c", b"x", None).await.unwrap();
    store.sync_replicas("kg:d:c").await.unwrap();
    assert_eq!(
        command_as(replica.port(), None, &["GET", "kg:d:c"]).as_deref(),
        Some("x")
    );
}

/// Through HTTP, on a Redis without replicas and `wait_replicas = 1`: a code
/// redemption and a revocation answer 503 `temporarily_unavailable` (no
/// token handed out), while `client_credentials`, which writes nothing
/// single-use, still works. The settings are refused with the memory store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_replicas_redemptions_and_revocations_answer_503() {
    let app = spawn_app_with(Backend::Redis, Alg::RS256, |s| {
        s.store.wait_replicas = 1;
        s.store.timeout_ms = 1500;
    })
    .await;
    let cc = app
        .post_token(
            Some(("basic-client", SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(cc.status(), 200);
    let access = steps::ok_json(cc).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();

    let (code, verifier) = app.web_app_code("profile").await;
    let resp = steps::redeem(
        &app.http,
        &app.addr,
        Some(("web-app", SECRET)),
        &[],
        &code,
        &verifier,
    )
    .await;
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(body.get("access_token").is_none());

    let resp = steps::post_form(
        &app.http,
        &app.url("/oauth/revoke"),
        Some(("basic-client", SECRET)),
        &[("token", &access)],
    )
    .await;
    assert_eq!(
        resp.status(),
        503,
        "the deny-list write was not acknowledged"
    );

    let mut settings = keygate::config::Settings::default();
    settings.store.wait_replicas = 1;
    let err = settings.validate().unwrap_err();
    assert_eq!(err.key, "store.wait_replicas", "{err}");
}
