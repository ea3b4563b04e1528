//! Issue 17 item 1: keygate on a Redis Cluster (`redis+cluster://…`), a
//! local 3-master / 3-replica cluster started by [`RedisCluster`].
//!
//! - the store conformance suite, the cross-slot refusal, an outage of every
//!   node (a store made while the cluster is down included) and recovery;
//! - the OAuth flows of the other modules (code + PKCE, refresh rotation,
//!   reuse detection, revocation and introspection, registration, consent,
//!   the store round-trip budget per grant), each on a keygate instance of
//!   its own, in turn on one cluster;
//! - two instances: a client changed through one (secret rotated, deleted)
//!   is refused by the other, whose client cache was serving it.
//!
//! A cluster takes seconds to start, so each test starts one and runs
//! several scenarios on it. Waits are bounded polls; nothing asserts a
//! wall-clock duration.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use keygate::store::cluster::RedisClusterStore;
use keygate::store::{slots, KvStore, Put, StoreError, Swap};

use crate::helpers::{spawn_app, store_calls, Backend, TestApp, CLUSTER_URL};
use crate::redis_cluster::RedisCluster;
use crate::steps;

/// Per-call store timeout.
const TIMEOUT: Duration = Duration::from_millis(500);
/// Longest wait for recovery or propagation.
const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `check` until it is true, panicking with `what` after [`DEADLINE`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_store_conformance_outage_and_recovery() {
    let mut cluster = RedisCluster::new();
    assert_eq!(cluster.masters().len(), 3, "3 masters");
    let url = cluster.url();
    let store = RedisClusterStore::connect(&url, TIMEOUT).await.unwrap();
    // The start-up check reads every node, replicas included.
    let policies = store.eviction_policies().await.unwrap();
    assert_eq!(policies.len(), 6, "{policies:?}");
    assert!(
        policies.iter().all(|(_, p)| p == "noeviction"),
        "{policies:?}"
    );
    crate::store_conformance::suite(Arc::new(store.clone())).await;
    cross_slot_swaps_are_refused(&store).await;
    a_replica_that_may_evict_stops_the_start(&store, &cluster).await;
    the_subscription_moves_to_the_next_seed(&mut cluster).await;

    // Every node down: calls fail (within the timeout: the suite's 503
    // path), and a store made now starts anyway.
    let ports = cluster.ports();
    for p in &ports {
        cluster.stop_node(*p);
    }
    assert!(store.get("t:outage").await.is_err());
    let late = RedisClusterStore::connect(&url, TIMEOUT).await.unwrap();
    assert!(late.ping().await.is_err());
    for p in &ports {
        cluster.start_node(*p);
    }
    cluster.wait_until_ok();
    for (name, s) in [("the first store", &store), ("the late store", &late)] {
        eventually(&format!("{name} works again"), || async {
            s.put("t:back", b"1", None).await.is_ok()
                && s.get("t:back").await.ok().flatten().as_deref() == Some(&b"1"[..])
        })
        .await;
    }
}

/// The client-change subscription takes the next seed when one fails: a
/// dead first seed is skipped, and when the node it subscribed on dies the
/// feed is distrusted and re-made on another seed. Its epoch moves only on
/// (re)subscriptions and notices, so this is observed without a clock.
async fn the_subscription_moves_to_the_next_seed(cluster: &mut RedisCluster) {
    let masters = cluster.masters();
    let closed = crate::ports::free_port();
    let url = format!(
        "redis+cluster://127.0.0.1:{closed},127.0.0.1:{},127.0.0.1:{}",
        masters[0], masters[1]
    );
    let store = RedisClusterStore::connect(&url, TIMEOUT).await.unwrap();
    let feed = store.invalidations().unwrap();
    assert!(!feed.live(), "not live before it subscribes");
    store.watch_invalidations();
    eventually("subscribed past the dead seed", || {
        let live = feed.live();
        async move { live }
    })
    .await;
    let seen = feed.epoch();
    store.publish_invalidation("c1").await.unwrap();
    eventually("a notice arrives", || {
        let moved = feed.epoch() > seen;
        async move { moved }
    })
    .await;
    // Its node (the first live seed) dies: lost (epoch + 1), then made
    // again on the next seed (+ 1) and live.
    let seen = feed.epoch();
    cluster.stop_node(masters[0]);
    eventually("subscribed again on the next seed", || {
        let again = feed.epoch() >= seen + 2 && feed.live();
        async move { again }
    })
    .await;
    cluster.start_node(masters[0]);
    cluster.wait_until_ok();
}

/// The `noeviction` start check covers the replicas too (one becomes a
/// master at failover): one set to `allkeys-lru` is named, and refused.
async fn a_replica_that_may_evict_stops_the_start(
    store: &RedisClusterStore,
    cluster: &RedisCluster,
) {
    let masters = cluster.masters();
    let replica = cluster
        .ports()
        .into_iter()
        .find(|p| !masters.contains(p))
        .expect("a replica");
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{replica}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let set = |policy: &'static str| {
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("SET").arg("maxmemory-policy").arg(policy);
        cmd
    };
    let _: () = set("allkeys-lru").query_async(&mut conn).await.unwrap();
    let node = format!("127.0.0.1:{replica}");
    let policies = store.eviction_policies().await.unwrap();
    assert!(
        policies.contains(&(node.clone(), "allkeys-lru".to_string())),
        "{policies:?}"
    );
    let keys = tempfile::tempdir().unwrap();
    keygate::tokens::keys::generate_into(keys.path(), keygate::tokens::keys::Alg::ES256, 1)
        .unwrap();
    let settings = crate::helpers::test_settings(keys.path(), &cluster.url());
    let err = keygate::startup::Application::build(settings)
        .await
        .err()
        .expect("start-up refused");
    let err = err.to_string();
    assert!(err.contains("noeviction") && err.contains(&node), "{err}");
    let _: () = set("noeviction").query_async(&mut conn).await.unwrap();
}

/// A swap naming keys on two slots never reaches Redis: a debug build
/// stops at the assertion (a key-naming bug), a release build refuses with
/// `StoreError::CrossSlot`; either way nothing is written.
async fn cross_slot_swaps_are_refused(store: &RedisClusterStore) {
    let (a, b) = ("t:cross:a", "t:cross:b");
    assert!(
        !slots::same_slot([a, b].into_iter()),
        "pick keys on two slots"
    );
    store.put(a, b"1", None).await.unwrap();
    let s = store.clone();
    let outcome = tokio::spawn(async move {
        let puts: &[Put<'_>] = &[(b, b"2", None)];
        s.swap(&Swap {
            key: a,
            expected: b"1",
            new: None,
            require: &[],
            puts,
            durable: false,
        })
        .await
    })
    .await;
    match outcome {
        Err(join) => assert!(join.is_panic() && cfg!(debug_assertions), "{join}"),
        Ok(Err(StoreError::CrossSlot(_))) => {}
        Ok(other) => panic!("a cross-slot swap answered {other:?}"),
    }
    assert_eq!(store.get(a).await.unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(store.get(b).await.unwrap(), None);
}

/// The flows of the per-backend tests, each on a keygate of its own, in
/// turn on one cluster (their keys are their own: fresh clients, tokens
/// and families; the config user is shared, and each scenario copes with a
/// consent remembered by an earlier one).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oauth_flows_on_a_cluster() {
    let cluster = RedisCluster::new();
    CLUSTER_URL
        .scope(cluster.url(), async {
            use crate::{consent, oauth_flows as flows, oidc, races, registration, revocation, token};
            flows::code_flow_confidential_client_end_to_end::on_cluster().await;
            flows::code_flow_public_client_needs_pkce_and_rotates_refresh_tokens::on_cluster()
                .await;
            flows::code_replay_is_refused_and_revokes_what_it_issued::on_cluster().await;
            flows::concurrent_redemption_has_exactly_one_winner::on_cluster().await;
            flows::revocation_rules::on_cluster().await;
            flows::introspection_is_for_confidential_clients_and_their_own_tokens::on_cluster()
                .await;
            flows::token_grants_stay_within_their_store_round_trips::on_cluster().await;
            revocation::revoking_a_refresh_token_revokes_its_access_tokens::on_cluster().await;
            revocation::refresh_token_reuse_revokes_the_familys_access_tokens::on_cluster().await;
            revocation::a_replayed_code_revokes_access_tokens_from_later_rotations::on_cluster()
                .await;
            revocation::deleting_a_client_revokes_its_access_tokens::on_cluster().await;
            races::concurrent_refresh_without_grace_revokes_the_family::on_cluster().await;
            races::concurrent_refresh_within_the_grace_window_yields_one_successor_pair::on_cluster()
                .await;
            registration::register_use_read_update_delete::on_cluster().await;
            consent::revoking_an_app_revokes_what_it_holds::on_cluster().await;
            token::client_credentials_with_basic_and_post_on_both_stores::on_cluster().await;
            oidc::code_and_refresh_grants_issue_id_tokens::on_cluster().await;
        })
        .await;
}

/// Waits until `app`'s client-change subscription is live.
async fn subscribed(app: &TestApp) {
    let feed = app
        .state
        .store
        .invalidations()
        .expect("a cluster store has an invalidation feed");
    eventually("the client-change subscription is live", || {
        let live = feed.live();
        async move { live }
    })
    .await;
}

/// `client_credentials` at `app` with Basic `id:secret`; the status.
async fn cc_status(app: &TestApp, id: &str, secret: &str) -> u16 {
    app.post_token(Some((id, secret)), &[("grant_type", "client_credentials")])
        .await
        .status()
        .as_u16()
}

/// Polls until a `client_credentials` grant at `app` costs no store round
/// trip: the client comes from the cache (bounded by a count).
async fn served_from_cache(app: &TestApp, id: &str, secret: &str) {
    for _ in 0..50 {
        let before = store_calls(&app.state);
        assert_eq!(cc_status(app, id, secret).await, 200);
        if store_calls(&app.state) == before {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("client_credentials kept reading the store: the client cache is not used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_changed_through_one_instance_is_refused_by_the_other() {
    let cluster = RedisCluster::new();
    CLUSTER_URL
        .scope(cluster.url(), async {
            let a = spawn_app(Backend::Cluster).await;
            let b = spawn_app(Backend::Cluster).await;
            subscribed(&a).await;
            subscribed(&b).await;
            // A client registered at A: B serves it, then from its cache.
            let (id, old) = a.stored_client.clone();
            served_from_cache(&b, &id, &old).await;

            // Rotated through A: once B got the notice (its feed's epoch
            // moves only on notices and reconnections), B refuses the old
            // secret at once, not after the cache's revalidation bound.
            let feed = b.state.store.invalidations().unwrap();
            let seen = feed.epoch();
            let rotated = keygate::flows::clients::rotate_secret(&a.state.repos, &id, None)
                .await
                .unwrap();
            let new = rotated.secret.unwrap();
            eventually("B gets the rotation notice", || {
                let moved = feed.epoch() > seen;
                async move { moved }
            })
            .await;
            assert_eq!(cc_status(&b, &id, &old).await, 401, "old secret at B");
            assert_eq!(cc_status(&b, &id, &new).await, 200, "new secret at B");
            served_from_cache(&b, &id, &new).await;
            assert_eq!(cc_status(&b, &id, &old).await, 401, "still refused");

            // Deleted through A: the same for the client itself.
            let seen = feed.epoch();
            keygate::flows::clients::delete(&a.state.repos, &id, None)
                .await
                .unwrap();
            eventually("B gets the deletion notice", || {
                let moved = feed.epoch() > seen;
                async move { moved }
            })
            .await;
            assert_eq!(cc_status(&b, &id, &new).await, 401, "deleted client at B");

            // And the other way round: B's client, served by A's cache.
            let (id2, secret2) = b.stored_client.clone();
            served_from_cache(&a, &id2, &secret2).await;
        })
        .await;
}

/// Runs a `keygate` CLI command on the cluster; stdout, asserting success.
fn cli(dir: &std::path::Path, url: &str, args: &[&str]) -> String {
    let out = crate::process::command(dir)
        .env("KEYGATE_STORE_URL", url)
        .env("KEYGATE_OAUTH_SCOPES", "profile,api:read")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "keygate {args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `client_credentials` at a process's `base` URL; the status.
async fn cc_at(http: &reqwest::Client, base: &str, id: &str, secret: &str) -> u16 {
    steps::post_form(
        http,
        &format!("{base}/oauth/token"),
        Some((id, secret)),
        &[("grant_type", "client_credentials")],
    )
    .await
    .status()
    .as_u16()
}

/// Two `keygate serve` processes on the cluster, and the CLI: a client the
/// CLI creates works at both; rotated and then deleted by the CLI (which
/// does not subscribe, only publishes), the old secret and then the client
/// are refused by both servers (SPEC.md: what the CLI changes in the store
/// takes effect at once on running servers). `check-config` checks every
/// node of the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_and_the_cli_on_a_cluster() {
    let cluster = RedisCluster::new();
    let url = cluster.url();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygate::tokens::keys::generate_into(&d.join("keys"), keygate::tokens::keys::Alg::ES256, 1)
        .unwrap();
    let env = [
        ("KEYGATE_STORE_URL", url.as_str()),
        ("KEYGATE_OAUTH_SCOPES", "profile,api:read"),
    ];
    let a = crate::process::Keygate::start(d, &env);
    let b = crate::process::Keygate::start(d, &env);
    let http = steps::api_client();
    steps::wait_ready(&http, &a.base, "A ready").await;
    steps::wait_ready(&http, &b.base, "B ready").await;

    let created: serde_json::Value = serde_json::from_str(&cli(
        d,
        &url,
        &[
            "client",
            "create",
            "--name",
            "cli on a cluster",
            "--grant-type",
            "client_credentials",
            "--scope",
            "api:read",
            "--json",
        ],
    ))
    .unwrap();
    let id = created["client_id"].as_str().unwrap().to_string();
    let old = created["client_secret"].as_str().unwrap().to_string();
    for base in [&a.base, &b.base] {
        // Twice: the second is served from the process's client cache.
        assert_eq!(cc_at(&http, base, &id, &old).await, 200);
        assert_eq!(cc_at(&http, base, &id, &old).await, 200);
    }

    let rotated: serde_json::Value =
        serde_json::from_str(&cli(d, &url, &["client", "rotate-secret", &id, "--json"])).unwrap();
    let new = rotated["client_secret"].as_str().unwrap().to_string();
    for base in [&a.base, &b.base] {
        eventually("the rotated secret is refused", || async {
            cc_at(&http, base, &id, &old).await == 401
        })
        .await;
        assert_eq!(cc_at(&http, base, &id, &new).await, 200);
        assert_eq!(cc_at(&http, base, &id, &new).await, 200);
    }

    cli(d, &url, &["client", "delete", &id]);
    for base in [&a.base, &b.base] {
        eventually("the deleted client is refused", || async {
            cc_at(&http, base, &id, &new).await == 401
        })
        .await;
    }

    let report = cli(d, &url, &["check-config"]);
    assert!(report.trim().ends_with("OK"), "{report}");
}

crate::helpers::per_backend!(records_stored_by_the_previous_version_still_work);
/// Upgrade compatibility (issue 17 item 1): on the memory store and a single
/// Redis, a refresh token and a code stored by the version before the
/// cluster layout (untagged ids under the old key names, written here as raw
/// keys) are rotated, detected when replayed, and redeemed through HTTP.
/// (A cluster holds no such records: it starts empty.)
async fn records_stored_by_the_previous_version_still_work(backend: Backend) {
    use keygate::oauth::pkce::{Challenge, Method};
    use keygate::oauth::token::{CodeRecord, RefreshRecord};
    use keygate::oauth::types::ScopeSet;
    use keygate::store::repos::secret_key;
    if backend == Backend::Cluster {
        return;
    }
    // No grace window: the replay below is reuse at once.
    let app = crate::helpers::spawn_app_with(backend, keygate::tokens::keys::Alg::RS256, |s| {
        s.tokens.refresh_grace_secs = 0
    })
    .await;
    let store = &app.state.store;
    let now = keygate::clock::Clock::now(app.state.clock.as_ref());
    let ttl = Some(Duration::from_secs(3600));
    let web_app = ("web-app", crate::helpers::SECRET);

    let token = keygate::ids::random_token(32);
    let family = keygate::ids::random_token(16);
    let rec = RefreshRecord {
        family: family.clone(),
        client_id: "web-app".into(),
        sub: "cfg-alice".into(),
        scope: ScopeSet::parse("profile email").unwrap(),
        expires_at: now + 3600,
        rotated: false,
        grace: None,
        resources: vec![],
        auth_time: None,
        consent: None,
        sid: None,
    };
    store
        .put(&format!("kg:fam:{family}"), b"1", ttl)
        .await
        .unwrap();
    store
        .put(
            &format!("kg:rt:{}", secret_key(&token)),
            &serde_json::to_vec(&rec).unwrap(),
            ttl,
        )
        .await
        .unwrap();
    let next = steps::ok_json(steps::refresh(&app.http, &app.addr, web_app, &token).await).await;
    let next = next["refresh_token"].as_str().unwrap().to_string();
    // The old token comes back: reuse, and its (old-layout) family dies.
    let replay = steps::refresh(&app.http, &app.addr, web_app, &token).await;
    assert_eq!(replay.status(), 400);
    let after = steps::refresh(&app.http, &app.addr, web_app, &next).await;
    assert_eq!(after.status(), 400, "the successor died with the family");
    assert!(store
        .get(&format!("kg:fam:{family}"))
        .await
        .unwrap()
        .is_none());

    let (verifier, challenge) = crate::helpers::pkce_pair();
    let code = keygate::ids::random_token(32);
    let rec = CodeRecord {
        client_id: "web-app".into(),
        redirect_uri: crate::helpers::REDIRECT.into(),
        redirect_uri_given: true,
        scope: ScopeSet::parse("profile").unwrap(),
        sub: "cfg-alice".into(),
        pkce: Some(Challenge {
            challenge,
            method: Method::S256,
        }),
        expires_at: now + 60,
        redeemed: None,
        resources: vec![],
        nonce: None,
        auth_time: None,
        consent: None,
        sid: None,
    };
    store
        .put(
            &format!("kg:code:{}", secret_key(&code)),
            &serde_json::to_vec(&rec).unwrap(),
            ttl,
        )
        .await
        .unwrap();
    let tokens = steps::ok_json(
        steps::redeem(&app.http, &app.addr, Some(web_app), &[], &code, &verifier).await,
    )
    .await;
    assert!(tokens["refresh_token"].is_string());
    let again = steps::redeem(&app.http, &app.addr, Some(web_app), &[], &code, &verifier).await;
    assert_eq!(again.status(), 400, "single use");
}

/// `user:password@` on the first host authenticates on every node: the
/// cluster client's, the replicas' start check and the subscription; a
/// wrong password fails every call without the password in the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_protected_cluster() {
    let cluster = RedisCluster::with_password("cluster-secret-pw");
    let url = cluster.url();
    assert!(
        url.starts_with("redis+cluster://:cluster-secret-pw@"),
        "{url}"
    );
    let store = RedisClusterStore::connect(&url, TIMEOUT).await.unwrap();
    let policies = store.eviction_policies().await.unwrap();
    assert_eq!(policies.len(), 6, "{policies:?}");
    store.put("t:auth", b"1", None).await.unwrap();
    assert!(store
        .swap(&Swap {
            key: "t:auth",
            expected: b"1",
            new: Some((b"2", None)),
            require: &[],
            puts: &[],
            durable: false,
        })
        .await
        .unwrap());
    let feed = store.invalidations().unwrap();
    store.watch_invalidations();
    eventually("subscribed with the password", || {
        let live = feed.live();
        async move { live }
    })
    .await;
    let seen = feed.epoch();
    store.publish_invalidation("c1").await.unwrap();
    eventually("a notice arrives", || {
        let moved = feed.epoch() > seen;
        async move { moved }
    })
    .await;

    let wrong = url.replace("cluster-secret-pw", "wrong-pw-123");
    let refused = RedisClusterStore::connect(&wrong, TIMEOUT).await.unwrap();
    let err = refused.get("t:auth").await.unwrap_err().to_string();
    assert!(!err.contains("wrong-pw-123"), "{err}");
    assert!(refused.eviction_policies().await.is_err());
}
