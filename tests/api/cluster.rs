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
