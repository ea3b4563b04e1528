//! One conformance suite for every `KvStore`, run against the memory store and
//! a real Redis, plus what only one backend can show: the memory sweeper
//! reclaiming entries, and Redis outages and recovery.
//!
//! Waits are polls with deadlines, never fixed sleeps used as assertions.
//! Must not depend on the OAuth core or HTTP: it tests raw bytes under raw keys.

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use keygate::rate::{Decision, Quota};
use keygate::store::memory::MemoryStore;
use keygate::store::redis::RedisStore;
use keygate::store::{KvStore, Store, StoreError};
use tokio::time::Instant;

use crate::redis_server::RedisServer;

/// The deadline for anything that waits on expiry or recovery.
const DEADLINE: Duration = Duration::from_secs(5);
/// Short TTL used where a key must expire during the test.
const SHORT_TTL: Duration = Duration::from_millis(200);
/// Per-call store timeout for the Redis tests.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// Every `KvStore` must pass this. Keys live under `t:`; the store starts empty
/// of them.
pub async fn suite(store: Store) {
    get_put_delete(&store).await;
    get_many_reads_in_order(&store).await;
    ttl_expiry(&store).await;
    scan_prefix_lists_live_keys(&store).await;
    scan_prefix_is_literal(&store).await;
    scan_prefix_walks_many_keys(&store).await;
    uri_shaped_keys(&store).await;
    put_new_writes_only_once(&store).await;
    swap_is_compare_and_set_with_side_writes(&store).await;
    concurrent_swap_has_one_winner(&store).await;
    rate_is_gcra_with_refunds(&store).await;
    concurrent_rate_admits_exactly_the_burst(&store).await;
    store.ping().await.unwrap();
}

fn quota(emission: Duration, burst: u32) -> Quota {
    Quota {
        emission,
        burst: NonZeroU32::new(burst).unwrap(),
    }
}

async fn allowed(store: &Store, key: &str, q: Quota, cost: i64) -> bool {
    store.rate(key, q, cost).await.unwrap() == Decision::Allowed
}

/// `KvStore::rate`: `burst` units at once, then refusals that say how long
/// to wait; refunds give a unit back but never beyond a full bucket; keys
/// are independent; a key exists only while its bucket is not full.
async fn rate_is_gcra_with_refunds(store: &Store) {
    // One unit a minute: nothing refills while the test runs.
    let slow = quota(Duration::from_secs(60), 3);
    for _ in 0..3 {
        assert!(allowed(store, "rl:a", slow, 1).await);
    }
    match store.rate("rl:a", slow, 1).await.unwrap() {
        Decision::Limited { retry_after } => assert!(
            retry_after > Duration::from_secs(50) && retry_after <= Duration::from_secs(60),
            "{retry_after:?}"
        ),
        Decision::Allowed => panic!("a fourth unit within the burst of 3"),
    }
    // A refused cost of 2 takes nothing either.
    assert!(!allowed(store, "rl:a", slow, 2).await);
    // Another key has its own bucket.
    assert!(allowed(store, "rl:b", slow, 1).await);
    // A refund gives exactly one unit back.
    assert!(allowed(store, "rl:a", slow, -1).await);
    assert!(allowed(store, "rl:a", slow, 1).await);
    assert!(!allowed(store, "rl:a", slow, 1).await);
    // Refunds on a full bucket do not raise it above `burst`.
    for _ in 0..5 {
        assert!(allowed(store, "rl:c", slow, -1).await);
    }
    let mut taken = 0;
    for _ in 0..6 {
        taken += usize::from(allowed(store, "rl:c", slow, 1).await);
    }
    assert_eq!(taken, 3);
    // Refunded back to full, the key is gone at once; otherwise it expires
    // when its bucket has refilled.
    assert!(allowed(store, "rl:d", slow, 1).await);
    assert!(store.get("rl:d").await.unwrap().is_some());
    assert!(allowed(store, "rl:d", slow, -1).await);
    assert!(store.get("rl:d").await.unwrap().is_none());
    let fast = quota(Duration::from_millis(100), 2);
    assert!(allowed(store, "rl:e", fast, 1).await);
    assert!(allowed(store, "rl:e", fast, 1).await);
    assert!(store.get("rl:e").await.unwrap().is_some());
    eventually("a refilled bucket's key expires", || async {
        store.get("rl:e").await.unwrap().is_none()
    })
    .await;
    assert!(allowed(store, "rl:e", fast, 1).await);
}

/// Concurrent takes on one key: exactly `burst` win, whatever the interleaving.
async fn concurrent_rate_admits_exactly_the_burst(store: &Store) {
    let q = quota(Duration::from_secs(60), 5);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { allowed(&store, "rl:race", q, 1).await })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 5, "exactly the burst passes");
}

async fn put_new_writes_only_once(store: &Store) {
    assert!(store.put_new("pn:a", b"1", None).await.unwrap());
    assert!(!store.put_new("pn:a", b"2", None).await.unwrap());
    assert_eq!(store.get("pn:a").await.unwrap().as_deref(), Some(&b"1"[..]));
    // an expired key counts as absent
    store
        .put("pn:b", b"old", Some(Duration::from_millis(50)))
        .await
        .unwrap();
    eventually("pn:b expires", || async {
        store.get("pn:b").await.unwrap().is_none()
    })
    .await;
    assert!(store.put_new("pn:b", b"new", None).await.unwrap());
    assert_eq!(
        store.get("pn:b").await.unwrap().as_deref(),
        Some(&b"new"[..])
    );
}

/// The keys of one swap share the hash tag `{sw}`: a Redis Cluster runs a
/// script only on keys of one slot (the memory store and one Redis ignore it).
async fn swap_is_compare_and_set_with_side_writes(store: &Store) {
    use keygate::store::Swap;
    store.put("{sw}:k", b"v1", None).await.unwrap();
    store.put("{sw}:fam", b"x", None).await.unwrap();
    let puts: &[keygate::store::Put<'_>] = &[
        ("{sw}:side", b"s", None),
        ("{sw}:ttl", b"t", Some(Duration::from_secs(60))),
    ];
    // wrong expected value: nothing changes
    let op = Swap {
        key: "{sw}:k",
        expected: b"nope",
        new: Some((b"v2", None)),
        require: &[],
        puts,
        durable: false,
    };
    assert!(!store.swap(&op).await.unwrap());
    assert_eq!(
        store.get("{sw}:k").await.unwrap().as_deref(),
        Some(&b"v1"[..])
    );
    assert!(store.get("{sw}:side").await.unwrap().is_none());
    // a required key is missing: nothing changes
    let op = Swap {
        key: "{sw}:k",
        expected: b"v1",
        new: Some((b"v2", None)),
        require: &["{sw}:fam", "{sw}:gone"],
        puts,
        durable: false,
    };
    assert!(!store.swap(&op).await.unwrap());
    assert!(store.get("{sw}:side").await.unwrap().is_none());
    // everything holds: replace + side writes
    let op = Swap {
        key: "{sw}:k",
        expected: b"v1",
        new: Some((b"v2", None)),
        require: &["{sw}:fam"],
        puts,
        durable: false,
    };
    assert!(store.swap(&op).await.unwrap());
    assert_eq!(
        store.get("{sw}:k").await.unwrap().as_deref(),
        Some(&b"v2"[..])
    );
    assert_eq!(
        store.get("{sw}:side").await.unwrap().as_deref(),
        Some(&b"s"[..])
    );
    assert_eq!(
        store.get("{sw}:ttl").await.unwrap().as_deref(),
        Some(&b"t"[..])
    );
    // the same swap again fails: v1 is gone
    assert!(!store.swap(&op).await.unwrap());
    // delete form, and a new value with a TTL
    let op = Swap {
        key: "{sw}:k",
        expected: b"v2",
        new: None,
        require: &[],
        puts: &[],
        durable: false,
    };
    assert!(store.swap(&op).await.unwrap());
    assert!(store.get("{sw}:k").await.unwrap().is_none());
    store.put("{sw}:t", b"a", None).await.unwrap();
    let op = Swap {
        key: "{sw}:t",
        expected: b"a",
        new: Some((b"b", Some(Duration::from_millis(100)))),
        require: &[],
        puts: &[],
        durable: false,
    };
    assert!(store.swap(&op).await.unwrap());
    eventually("swapped value expires", || async {
        store.get("{sw}:t").await.unwrap().is_none()
    })
    .await;
    // a missing key never matches
    let op = Swap {
        key: "{sw}:missing",
        expected: b"",
        new: Some((b"x", None)),
        require: &[],
        puts: &[],
        durable: false,
    };
    assert!(!store.swap(&op).await.unwrap());
}

async fn concurrent_swap_has_one_winner(store: &Store) {
    store.put("{sw}:race", b"start", None).await.unwrap();
    let mut tasks = vec![];
    for i in 0..50u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let val = format!("winner-{i}");
            let side = format!("{{sw}}:race-side-{i}");
            let puts: &[keygate::store::Put<'_>] = &[(side.as_str(), b"1", None)];
            let op = keygate::store::Swap {
                key: "{sw}:race",
                expected: b"start",
                new: Some((val.as_bytes(), None)),
                require: &[],
                puts,
                durable: false,
            };
            store.swap(&op).await.unwrap()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1, "exactly one concurrent swap wins");
    assert_eq!(
        store.scan_prefix("{sw}:race-side-").await.unwrap().len(),
        1,
        "only the winner's side writes land"
    );
}

/// Polls `check` until it is true, panicking with `what` after [`DEADLINE`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {DEADLINE:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn sorted_scan(store: &Store, prefix: &str) -> Vec<String> {
    let mut keys = store.scan_prefix(prefix).await.unwrap();
    keys.sort();
    keys
}

async fn get_many_reads_in_order(store: &Store) {
    assert_eq!(
        store.get_many(&[]).await.unwrap(),
        Vec::<Option<Vec<u8>>>::new()
    );
    store.put("t:gm:a", b"A", None).await.unwrap();
    store.put("t:gm:b", b"", None).await.unwrap();
    store.put("t:gm:gone", b"x", Some(SHORT_TTL)).await.unwrap();
    eventually("t:gm:gone expires", move || async move {
        store.get("t:gm:gone").await.unwrap().is_none()
    })
    .await;
    assert_eq!(
        store
            .get_many(&["t:gm:b", "t:gm:missing", "t:gm:a", "t:gm:gone", "t:gm:a"])
            .await
            .unwrap(),
        vec![
            Some(vec![]),
            None,
            Some(b"A".to_vec()),
            None,
            Some(b"A".to_vec())
        ]
    );
    assert_eq!(store.get_many(&["t:gm:missing"]).await.unwrap(), vec![None]);
}

async fn get_put_delete(store: &Store) {
    assert_eq!(store.get("t:kv:missing").await.unwrap(), None);

    // Every byte value, including NUL and invalid UTF-8.
    let binary: Vec<u8> = (0..=255u8).rev().collect();
    store.put("t:kv:bin", &binary, None).await.unwrap();
    assert_eq!(store.get("t:kv:bin").await.unwrap(), Some(binary));

    store.put("t:kv:empty", b"", None).await.unwrap();
    assert_eq!(store.get("t:kv:empty").await.unwrap(), Some(Vec::new()));

    store.put("t:kv:k", b"one", None).await.unwrap();
    store.put("t:kv:k", b"two", None).await.unwrap();
    assert_eq!(store.get("t:kv:k").await.unwrap(), Some(b"two".to_vec()));

    assert!(store.delete("t:kv:k").await.unwrap());
    assert!(!store.delete("t:kv:k").await.unwrap());
    assert_eq!(store.get("t:kv:k").await.unwrap(), None);
    assert!(!store.delete("t:kv:never").await.unwrap());

    // Overwriting with no TTL removes an earlier TTL.
    store
        .put("t:kv:ttl-cleared", b"a", Some(SHORT_TTL))
        .await
        .unwrap();
    store.put("t:kv:ttl-cleared", b"b", None).await.unwrap();
    store
        .put("t:kv:probe", b"x", Some(SHORT_TTL))
        .await
        .unwrap();
    eventually("probe key expires", move || async move {
        store.get("t:kv:probe").await.unwrap().is_none()
    })
    .await;
    assert_eq!(
        store.get("t:kv:ttl-cleared").await.unwrap(),
        Some(b"b".to_vec())
    );
}

async fn ttl_expiry(store: &Store) {
    store.put("t:ttl:forever", b"stay", None).await.unwrap();
    store
        .put("t:ttl:long", b"stay", Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    // Put before `t:ttl:short`, so it has expired once that has.
    store
        .put("t:ttl:del", b"go", Some(SHORT_TTL))
        .await
        .unwrap();
    let put_at = Instant::now();
    store
        .put("t:ttl:short", b"go", Some(SHORT_TTL))
        .await
        .unwrap();
    let seen = store.get("t:ttl:short").await.unwrap();
    // Only meaningful if the machine did not stall past the TTL meanwhile.
    if put_at.elapsed() < SHORT_TTL {
        assert_eq!(seen, Some(b"go".to_vec()));
    }
    // A zero TTL must expire too (Redis rejects `PX 0`; the store rounds up).
    store
        .put("t:ttl:zero", b"go", Some(Duration::ZERO))
        .await
        .unwrap();

    eventually("a 200 ms key expires", move || async move {
        store.get("t:ttl:short").await.unwrap().is_none()
    })
    .await;
    eventually("a zero-TTL key expires", move || async move {
        store.get("t:ttl:zero").await.unwrap().is_none()
    })
    .await;
    // Expired keys are gone for every kind of read, swept or not.
    assert_eq!(
        store.get_many(&["t:ttl:del", "t:ttl:short"]).await.unwrap(),
        vec![None, None]
    );
    assert!(!store.delete("t:ttl:del").await.unwrap());

    assert_eq!(
        store.get("t:ttl:forever").await.unwrap(),
        Some(b"stay".to_vec())
    );
    assert_eq!(
        store.get("t:ttl:long").await.unwrap(),
        Some(b"stay".to_vec())
    );
}

async fn scan_prefix_lists_live_keys(store: &Store) {
    for key in [
        "t:scan:x:1",
        "t:scan:x:2",
        "t:scan:y:1",
        "t:other:x:1",
        "t:scan:x",
    ] {
        store.put(key, b"v", None).await.unwrap();
    }
    store
        .put("t:scan:x:3", b"v", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let put_at = Instant::now();
    store
        .put("t:scan:x:gone", b"v", Some(SHORT_TTL))
        .await
        .unwrap();
    let listed = sorted_scan(store, "t:scan:x:").await;
    if put_at.elapsed() < SHORT_TTL {
        assert!(listed.contains(&"t:scan:x:gone".to_owned()));
    }

    eventually("t:scan:x:gone expires", move || async move {
        store.get("t:scan:x:gone").await.unwrap().is_none()
    })
    .await;
    assert_eq!(
        sorted_scan(store, "t:scan:x:").await,
        ["t:scan:x:1", "t:scan:x:2", "t:scan:x:3"]
    );
    assert_eq!(sorted_scan(store, "t:scan:y:").await, ["t:scan:y:1"]);
    assert_eq!(sorted_scan(store, "t:nothing:").await, Vec::<String>::new());

    assert!(store.delete("t:scan:x:2").await.unwrap());
    assert_eq!(
        sorted_scan(store, "t:scan:x:").await,
        ["t:scan:x:1", "t:scan:x:3"]
    );
    assert!(store.delete("t:scan:x:1").await.unwrap());
    assert_eq!(sorted_scan(store, "t:scan:x:").await, ["t:scan:x:3"]);
}

async fn scan_prefix_is_literal(store: &Store) {
    for key in [
        "t:glob:a*",
        "t:glob:a*b",
        "t:glob:ab",
        "t:glob:a?c",
        "t:glob:abc",
        "t:glob:[a]1",
        "t:glob:a1",
        "t:glob:]",
        r"t:glob:\x",
        "t:glob:x",
    ] {
        store.put(key, b"v", None).await.unwrap();
    }
    assert_eq!(
        sorted_scan(store, "t:glob:a*").await,
        ["t:glob:a*", "t:glob:a*b"]
    );
    assert_eq!(sorted_scan(store, "t:glob:a?").await, ["t:glob:a?c"]);
    assert_eq!(sorted_scan(store, "t:glob:[a]").await, ["t:glob:[a]1"]);
    assert_eq!(sorted_scan(store, "t:glob:[").await, ["t:glob:[a]1"]);
    assert_eq!(sorted_scan(store, "t:glob:]").await, ["t:glob:]"]);
    assert_eq!(sorted_scan(store, r"t:glob:\").await, [r"t:glob:\x"]);
}

async fn scan_prefix_walks_many_keys(store: &Store) {
    // More than one SCAN batch (COUNT 1000), so the cursor loop and
    // de-duplication are exercised.
    const N: usize = 2500;
    let mut expected: Vec<String> = (0..N).map(|i| format!("t:many:{i:05}")).collect();
    for key in &expected {
        store.put(key, b"v", None).await.unwrap();
    }
    store.put("t:manyother", b"v", None).await.unwrap();
    expected.sort();
    assert_eq!(sorted_scan(store, "t:many:").await, expected);
}

/// RFC 8707 resources are stored under their normalised URI
/// (`kg:resource:https://…`), read together with a client (`MGET`) and
/// listed by prefix: keys with `:/?&%[]=` must round-trip, read in order
/// and list exactly.
async fn uri_shaped_keys(store: &Store) {
    let keys = [
        "t:res:https://api.example/",
        "t:res:https://api.example/mcp?x=1&y=%20",
        "t:res:http://[::1]:8080/",
        "t:res:http://127.0.0.1:3001/mcp",
    ];
    for (i, k) in keys.iter().enumerate() {
        store.put(k, format!("{i}").as_bytes(), None).await.unwrap();
    }
    store.put("t:resx", b"other", None).await.unwrap();
    let got = store
        .get_many(&[keys[3], "t:res:https://api.example", keys[0], "t:client:c"])
        .await
        .unwrap();
    assert_eq!(
        got,
        [Some(b"3".to_vec()), None, Some(b"0".to_vec()), None],
        "in order, absent as None"
    );
    let mut expected: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    expected.sort();
    assert_eq!(sorted_scan(store, "t:res:").await, expected);
    assert!(store.delete(keys[1]).await.unwrap());
    assert_eq!(store.get(keys[1]).await.unwrap(), None);
    assert_eq!(sorted_scan(store, "t:res:").await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_conformance() {
    suite(MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_conformance() {
    let server = RedisServer::new();
    let store = RedisStore::connect(&server.url(), REDIS_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(store.eviction_policy().await.unwrap(), "noeviction");
    suite(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_sweeper_reclaims_expired_entries() {
    let store = MemoryStore::with_sweep_interval(Duration::from_millis(50));
    let put_at = Instant::now();
    for i in 0..100 {
        store
            .put(&format!("t:sweep:{i}"), b"v", Some(SHORT_TTL))
            .await
            .unwrap();
    }
    let len = store.len();
    if put_at.elapsed() < SHORT_TTL {
        assert_eq!(len, 100, "nothing can have expired yet");
    }
    // No reads at all: only the sweeper can bring the count down.
    let raw = &store;
    eventually(
        "the sweeper removes every expired entry",
        move || async move { raw.is_empty() },
    )
    .await;

    // Live entries are kept.
    store.put("t:sweep:live", b"v", None).await.unwrap();
    store
        .put("t:sweep:later", b"v", Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    store
        .put("t:sweep:soon", b"v", Some(SHORT_TTL))
        .await
        .unwrap();
    eventually(
        "the sweeper removes the one expired entry",
        move || async move { raw.len() == 2 },
    )
    .await;
    assert_eq!(
        store.get("t:sweep:live").await.unwrap(),
        Some(b"v".to_vec())
    );
}

#[tokio::test]
async fn memory_sweeper_stops_with_the_store() {
    let store = MemoryStore::with_sweep_interval(Duration::from_millis(10));
    let weak = Arc::downgrade(&store);
    drop(store);
    // The sweeper held only a `Weak`, so nothing keeps the store alive.
    assert!(weak.upgrade().is_none());
}

#[tokio::test]
async fn redis_connect_rejects_a_bad_url_at_once() {
    for url in ["not a url", "http://127.0.0.1:6379", "redis://"] {
        let err = RedisStore::connect(url, REDIS_TIMEOUT).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Misconfigured(_)),
            "{url}: {err:?}"
        );
    }
}

/// Every call fails with an error, and within the timeout (plus slack).
async fn assert_unavailable(store: &RedisStore) {
    let bound = REDIS_TIMEOUT + Duration::from_secs(1);
    let started = Instant::now();
    assert!(store.ping().await.is_err());
    assert!(store.get("t:down").await.is_err());
    assert!(store.put("t:down", b"v", None).await.is_err());
    assert!(store.delete("t:down").await.is_err());
    assert!(store.scan_prefix("t:").await.is_err());
    assert!(
        started.elapsed() < 5 * bound,
        "five calls took {:?}",
        started.elapsed()
    );
}

async fn works(store: &RedisStore) -> bool {
    store.ping().await.is_ok()
        && store.put("t:up", b"v", None).await.is_ok()
        && matches!(store.get("t:up").await, Ok(Some(v)) if v == b"v")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_and_recovery() {
    let mut server = RedisServer::new();
    let pid = server.pid().unwrap();
    assert!(server.url().ends_with(&format!(":{}", server.port())));
    server.stop();
    assert_eq!(server.pid(), None);

    // Starts while Redis is down, fails fast, recovers without a new store.
    let store = RedisStore::connect(&server.url(), REDIS_TIMEOUT)
        .await
        .unwrap();
    assert_unavailable(&store).await;
    server.start_again();
    assert_ne!(server.pid(), Some(pid));
    eventually("the store reconnects after Redis starts", || works(&store)).await;

    // Redis dies under an established connection, then comes back.
    server.stop();
    assert_unavailable(&store).await;
    server.start_again();
    eventually("the store reconnects after a restart", || works(&store)).await;
    assert_eq!(store.eviction_policy().await.unwrap(), "noeviction");
}

/// Issue 7 item 3: the in-memory store is capped; a full store refuses new
/// keys (503 upstream) but still overwrites and deletes, and reclaims
/// expired entries before refusing.
#[tokio::test]
async fn memory_store_cap_bounds_the_number_of_keys() {
    use keygate::store::StoreError;
    let store = MemoryStore::with_limits(Duration::from_secs(3600), 3);
    let short = Some(Duration::from_millis(50));
    store.put("cap:a", b"1", None).await.unwrap();
    store.put("cap:b", b"1", None).await.unwrap();
    store.put("cap:c", b"1", short).await.unwrap();
    // Full of live keys: a new key is refused.
    assert!(matches!(
        store.put("cap:d", b"1", None).await,
        Err(StoreError::Full(3))
    ));
    // An existing key can still be overwritten, and deletes always work.
    store.put("cap:a", b"2", None).await.unwrap();
    assert_eq!(store.get("cap:a").await.unwrap(), Some(b"2".to_vec()));
    // Once `cap:c` has expired it is reclaimed to make room (no sweep ran).
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(store.put_new("cap:d", b"1", None).await.unwrap());
    assert!(matches!(
        store.put_new("cap:e", b"1", None).await,
        Err(StoreError::Full(3))
    ));
    let swap = keygate::store::Swap {
        key: "cap:a",
        expected: b"2",
        new: Some((b"3", None)),
        require: &[],
        puts: &[("cap:e", b"1", None)],
        durable: false,
    };
    assert!(matches!(store.swap(&swap).await, Err(StoreError::Full(3))));
    assert_eq!(
        store.get("cap:a").await.unwrap(),
        Some(b"2".to_vec()),
        "all or nothing"
    );
    assert!(store.delete("cap:b").await.unwrap());
    assert!(
        store.swap(&swap).await.unwrap(),
        "room again after a delete"
    );
}

/// A full in-memory store answers 503 where a request must store
/// something, and keeps serving what needs no new key.
#[tokio::test]
async fn a_full_memory_store_answers_503() {
    use crate::helpers::{spawn_app_with, Backend, SECRET};
    let app = spawn_app_with(Backend::Memory, keygate::tokens::keys::Alg::ES256, |s| {
        s.store.memory_max_entries = 4;
    })
    .await;
    // Fill the store (the CSRF key and the stored client are already in it).
    let mut i = 0;
    while app
        .state
        .store
        .put(&format!("filler:{i}"), b"x", None)
        .await
        .is_ok()
    {
        i += 1;
        assert!(i < 10, "the cap holds");
    }
    let resp = app
        .post_token(
            Some(("basic-client", SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(resp.status(), 200, "an access token needs no new key");
    let browser = app.browser();
    let resp = app.login(&browser, "/").await;
    assert_eq!(resp.status(), 503, "a login session cannot be stored");
}
