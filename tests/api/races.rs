//! Refresh token races and the grace window (issue 7): concurrent use of one
//! refresh token with and without the window, retries after it or from another
//! client, and revocation racing refresh, on both stores. Time moves by hand
//! (`TestClock`); refresh families are minted straight into the store, as the
//! code grant would, so that many can be raced quickly.

use std::sync::Arc;

use keygate::clock::{Clock, SystemClock, TestClock};
use keygate::metrics::GrantLabels;
use keygate::oauth::token::RefreshRecord;
use keygate::oauth::types::ScopeSet;
use keygate::tokens::keys::Alg;

use crate::helpers::{
    assert_oauth_error, per_backend, spawn_app_clocked, verify_like_a_gateway, Backend, TestApp,
    SECRET,
};
use crate::steps;

const N: usize = 20;

/// An app on a stopped test clock with a `grace`-second window.
async fn app_with_grace(backend: Backend, alg: Alg, grace: u64) -> (Arc<TestApp>, TestClock) {
    let clock = TestClock::new(SystemClock.now());
    let app = spawn_app_clocked(
        backend,
        alg,
        |s| s.tokens.refresh_grace_secs = grace,
        Arc::new(clock.clone()),
    )
    .await;
    (Arc::new(app), clock)
}

/// Starts a refresh family for `web-app` (as the code grant does); returns
/// the token and the family id.
async fn mint(app: &TestApp) -> (String, String) {
    // Ids made as the flows make them (on a cluster they carry the user's slot tag).
    let token = app.state.repos.new_refresh_token("cfg-alice");
    let family = app.state.repos.new_family("cfg-alice");
    let rec = RefreshRecord {
        family: family.clone(),
        client_id: "web-app".into(),
        sub: "cfg-alice".into(),
        scope: ScopeSet::parse("profile email").unwrap(),
        expires_at: app.state.clock.now() + 3600,
        rotated: false,
        grace: None,
        resources: vec![],
        auth_time: None,
        consent: None,
        sid: None,
    };
    app.state
        .repos
        .put_refresh_family(&token, &rec, 3600)
        .await
        .unwrap();
    (token, family)
}

/// `grant_type=refresh_token` as `web-app`: status and JSON body.
async fn refresh(app: &TestApp, token: &str) -> (u16, serde_json::Value) {
    let resp = steps::refresh(&app.http, &app.addr, ("web-app", SECRET), token).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// `n` concurrent refreshes of `token` as `web-app`.
async fn refresh_concurrently(
    app: &Arc<TestApp>,
    token: &str,
    n: usize,
) -> Vec<(u16, serde_json::Value)> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (app, token) = (app.clone(), token.to_string());
            tokio::spawn(async move { refresh(&app, &token).await })
        })
        .collect();
    let mut out = vec![];
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// The (refresh, access) pair of a 200 answer.
fn pair(body: &serde_json::Value) -> (String, String) {
    (
        body["refresh_token"].as_str().unwrap().to_string(),
        body["access_token"].as_str().unwrap().to_string(),
    )
}

/// Refresh tokens of `family` in the store that are not rotated.
async fn live_successors(app: &TestApp, family: &str) -> usize {
    let mut n = 0;
    for key in app.state.store.scan_prefix("kg:rt:").await.unwrap() {
        if let Some(raw) = app.state.store.get(&key).await.unwrap() {
            let rec: RefreshRecord = serde_json::from_slice(&raw).unwrap();
            n += usize::from(rec.family == family && !rec.rotated);
        }
    }
    n
}

fn rotations(app: &TestApp) -> u64 {
    app.state
        .metrics
        .tokens_issued
        .get_or_create(&GrantLabels {
            grant_type: "refresh_token",
        })
        .get()
}

async fn refresh_is_active(app: &TestApp, token: &str) -> bool {
    let resp = app
        .post_token_to(
            "/oauth/introspect",
            Some(("web-app", SECRET)),
            &[("token", token)],
        )
        .await;
    let body: serde_json::Value = resp.json().await.unwrap();
    body["active"] == true
}

async fn assert_dead(app: &TestApp, token: &str, what: &str) {
    let (status, body) = refresh(app, token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{what}: {body}"
    );
    assert!(
        !refresh_is_active(app, token).await,
        "{what} introspects inactive"
    );
}

per_backend!(concurrent_refresh_within_the_grace_window_yields_one_successor_pair);
/// (a) N callers of the same client race one token inside the window: one
/// rotation, every 200 carries the same pair, the family lives on.
async fn concurrent_refresh_within_the_grace_window_yields_one_successor_pair(backend: Backend) {
    let (app, _clock) = app_with_grace(backend, Alg::RS256, 5).await;
    let (token, family) = mint(&app).await;
    let answers = refresh_concurrently(&app, &token, N).await;
    let ok: Vec<_> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| pair(b))
        .collect();
    // the losers of the rotation race were answered through the window
    assert!(ok.len() > 1, "{backend:?}: {answers:?}");
    assert!(
        ok.iter().all(|p| *p == ok[0]),
        "{backend:?}: one pair, byte-identical under RS256: {ok:?}"
    );
    for (status, body) in &answers {
        assert!(
            *status == 200 || (*status == 400 && body["error"] == "invalid_grant"),
            "{backend:?}: {status} {body}"
        );
    }
    assert_eq!(rotations(&app), 1, "{backend:?}: exactly one rotation");
    assert_eq!(live_successors(&app, &family).await, 1, "{backend:?}");
    assert!(
        app.state.repos.family_alive(&family).await.unwrap(),
        "{backend:?}"
    );
    let (successor, access) = ok[0].clone();
    assert_ne!(successor, token);
    let claims = verify_like_a_gateway(&app, &access).await;
    assert_eq!(claims["client_id"], "web-app");
    // the successor is the family's live token
    let (status, next) = refresh(&app, &successor).await;
    assert_eq!(status, 200, "{backend:?}: {next}");
    assert_eq!(rotations(&app), 2);
}

per_backend!(concurrent_refresh_without_grace_revokes_the_family);
/// (b) Without a window: at most one winner; any reuse revokes the family,
/// so the one successor dies too (RFC 9700 §4.14.2).
async fn concurrent_refresh_without_grace_revokes_the_family(backend: Backend) {
    let (app, _clock) = app_with_grace(backend, Alg::RS256, 0).await;
    let (token, family) = mint(&app).await;
    let answers = refresh_concurrently(&app, &token, N).await;
    let ok: Vec<_> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| pair(b))
        .collect();
    assert!(ok.len() <= 1, "{backend:?}: {answers:?}");
    for (status, body) in &answers {
        assert!(
            *status == 200 || (*status == 400 && body["error"] == "invalid_grant"),
            "{backend:?}: {status} {body}"
        );
    }
    assert!(rotations(&app) <= 1, "{backend:?}");
    assert!(
        !app.state.repos.family_alive(&family).await.unwrap(),
        "{backend:?}: family revoked"
    );
    assert_dead(&app, &token, "the raced token").await;
    for (successor, _) in &ok {
        assert_dead(&app, successor, "the winner's successor").await;
    }
}

per_backend!(grace_retry_rules_over_time);
/// (c) A retry inside the window gets the same pair; after it, or once the
/// successor was used or the family revoked, it is reuse and revokes.
async fn grace_retry_rules_over_time(backend: Backend) {
    let (app, clock) = app_with_grace(backend, Alg::RS256, 5).await;
    let (token, family) = mint(&app).await;
    let (status, first) = refresh(&app, &token).await;
    assert_eq!(status, 200, "{first}");
    clock.advance(4);
    let (status, again) = refresh(&app, &token).await;
    assert_eq!(status, 200, "{backend:?}: retry 4 s later: {again}");
    assert_eq!(pair(&again), pair(&first), "same pair");
    assert_eq!(
        again["expires_in"],
        first["expires_in"].as_u64().unwrap() - 4
    );
    // the window is [rotation, rotation + 5 s)
    clock.advance(1);
    assert_dead(&app, &token, "retry after the window").await;
    assert!(!app.state.repos.family_alive(&family).await.unwrap());
    assert_dead(&app, &pair(&first).0, "the successor after reuse").await;

    // the successor was used: a retry of its predecessor is reuse
    let (token, family) = mint(&app).await;
    let (_, first) = refresh(&app, &token).await;
    let (status, second) = refresh(&app, &pair(&first).0).await;
    assert_eq!(status, 200, "{second}");
    assert_dead(&app, &token, "retry after the successor was used").await;
    assert!(!app.state.repos.family_alive(&family).await.unwrap());
    assert_dead(&app, &pair(&second).0, "the second successor").await;

    // the family was revoked: nothing comes back
    let (token, _) = mint(&app).await;
    let (_, first) = refresh(&app, &token).await;
    let resp = app
        .post_token_to(
            "/oauth/revoke",
            Some(("web-app", SECRET)),
            &[("token", &token)],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_dead(&app, &token, "retry after revocation").await;
    assert_dead(&app, &pair(&first).0, "successor after revocation").await;

    // a retry asking for another scope is not a retry of the same request
    let (token, family) = mint(&app).await;
    let (_, first) = refresh(&app, &token).await;
    let resp = app
        .post_token(
            Some(("web-app", SECRET)),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &token),
                ("scope", "profile"),
            ],
        )
        .await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
    assert!(!app.state.repos.family_alive(&family).await.unwrap());
    assert_dead(&app, &pair(&first).0, "successor after a different retry").await;
}

per_backend!(another_client_cannot_use_the_grace_window);
/// (d) Another client presenting the rotated token is refused, and, as for an
/// unrotated token, that does not revoke the owner's family.
async fn another_client_cannot_use_the_grace_window(backend: Backend) {
    let (app, _clock) = app_with_grace(backend, Alg::RS256, 5).await;
    let (token, family) = mint(&app).await;
    let (_, first) = refresh(&app, &token).await;
    let resp = app
        .post_token(
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &token),
                ("client_id", "spa"),
            ],
        )
        .await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
    assert!(
        app.state.repos.family_alive(&family).await.unwrap(),
        "{backend:?}"
    );
    let (status, again) = refresh(&app, &token).await;
    assert_eq!(
        (status, pair(&again)),
        (200, pair(&first)),
        "{backend:?}: the owner still retries"
    );
}

/// ES256 signatures are randomised: a grace retry re-signs the same claims.
#[tokio::test]
async fn es256_grace_retry_re_signs_the_same_claims() {
    let (app, _clock) = app_with_grace(Backend::Memory, Alg::ES256, 5).await;
    let (token, _) = mint(&app).await;
    let (_, first) = refresh(&app, &token).await;
    let (status, again) = refresh(&app, &token).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(first["refresh_token"], again["refresh_token"]);
    assert_eq!(
        verify_like_a_gateway(&app, first["access_token"].as_str().unwrap()).await,
        verify_like_a_gateway(&app, again["access_token"].as_str().unwrap()).await,
    );
}

per_backend!(revocation_racing_refresh_leaves_no_usable_refresh_token);
/// (e) Revocation racing refreshes of the same token leaves no refresh token
/// usable: not the old one, not any successor that was handed out. (Revoking
/// a refresh token revokes its family only; access tokens already issued from
/// it stay valid until they expire, RFC 7009 §2.1 "MAY".)
async fn revocation_racing_refresh_leaves_no_usable_refresh_token(backend: Backend) {
    let (app, _clock) = app_with_grace(backend, Alg::RS256, 5).await;
    for round in 0..12 {
        let (token, family) = mint(&app).await;
        let revoke = {
            let (app, token) = (app.clone(), token.clone());
            tokio::spawn(async move {
                app.post_token_to(
                    "/oauth/revoke",
                    Some(("web-app", SECRET)),
                    &[("token", &token)],
                )
                .await
                .status()
                .as_u16()
            })
        };
        let answers = refresh_concurrently(&app, &token, 3).await;
        assert_eq!(revoke.await.unwrap(), 200);
        assert!(
            !app.state.repos.family_alive(&family).await.unwrap(),
            "{backend:?} round {round}"
        );
        assert_dead(&app, &token, "the old token").await;
        for (status, body) in &answers {
            match status {
                200 => assert_dead(&app, &pair(body).0, "a returned successor").await,
                400 => assert_eq!(body["error"], "invalid_grant", "{body}"),
                _ => panic!("{backend:?}: {status} {body}"),
            }
        }
    }
}
