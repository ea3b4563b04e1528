//! `keygate::flows` called directly over the memory store, on a `TestClock`:
//! the branches that are awkward over HTTP (expiry to the second, the end of
//! the grace window, revocation that must not write, a full store, tokens
//! whose user is gone). State is built by `startup::build_state`, as `serve`
//! does; requests are the flows' own inputs, not HTTP.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use keygate::clock::{Clock, SystemClock, TestClock};
use keygate::config::Settings;
use keygate::flows::revoke::{introspect, revoke, Introspection};
use keygate::flows::token::{exchange, Issued, TokenInput};
use keygate::flows::FlowError;
use keygate::oauth::{ErrorCode, OAuthError};
use keygate::state::AppState;
use keygate::store::StoreError;
use keygate::tokens::keys::{generate_into, Alg};

use crate::helpers::{pkce_pair, store_calls, test_settings, REDIRECT, SECRET, USER};
use crate::steps;

const CODE_TTL: i64 = 60;
const ACCESS_TTL: i64 = 900;
const REFRESH_TTL: i64 = 3600;
const GRACE: i64 = 5;
/// The id of the config-file user `alice`.
const ALICE: &str = "cfg-alice";
const WEB_APP: Option<(&str, &str)> = Some(("web-app", SECRET));

/// An `AppState` on the memory store and a stopped clock.
struct Direct {
    state: AppState,
    clock: TestClock,
    _keys: tempfile::TempDir,
}

async fn direct(tweak: impl FnOnce(&mut Settings)) -> Direct {
    let keys = tempfile::tempdir().unwrap();
    generate_into(keys.path(), Alg::RS256, 1).unwrap();
    let mut settings = test_settings(keys.path(), "memory");
    settings.tokens.code_ttl = CODE_TTL as u64;
    settings.tokens.access_ttl = ACCESS_TTL as u64;
    settings.tokens.refresh_ttl = REFRESH_TTL as u64;
    settings.tokens.refresh_grace_secs = GRACE as u64;
    tweak(&mut settings);
    let clock = TestClock::new(SystemClock.now());
    let state = keygate::startup::build_state(settings, Arc::new(clock.clone()))
        .await
        .unwrap();
    Direct {
        state,
        clock,
        _keys: keys,
    }
}

fn input(basic: Option<(&str, &str)>, form: &[(&str, &str)]) -> TokenInput {
    TokenInput {
        basic: basic.map(|(u, p)| (u.to_string(), p.to_string())),
        form: form
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        peer: None,
    }
}

/// A code for `web-app` approved by `user`, and its PKCE verifier.
async fn code_for(d: &Direct, user: &str) -> (String, String) {
    let (verifier, challenge) = pkce_pair();
    let query = steps::code_query("web-app", "profile email", &challenge);
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let (req, client) = keygate::flows::authorize::check(&d.state, &pairs)
        .await
        .unwrap_or_else(|e| panic!("the request is valid: {e:?}"));
    assert_eq!(client.client_id, "web-app");
    let to = keygate::flows::authorize::approve(
        &d.state,
        &req,
        &session_of(user, d.state.clock.now()),
        keygate::flows::authorize::Consent::Given,
    )
    .await
    .unwrap();
    (steps::code_of(&to), verifier)
}

async fn redeem(d: &Direct, code: &str, verifier: &str) -> Result<Issued, FlowError> {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
    ];
    exchange(&d.state, input(WEB_APP, &form)).await
}

/// Code → tokens for `web-app` and `user`.
async fn tokens_for(d: &Direct, user: &str) -> Issued {
    let (code, verifier) = code_for(d, user).await;
    redeem(d, &code, &verifier).await.unwrap()
}

async fn refresh(d: &Direct, token: &str) -> Result<Issued, FlowError> {
    let form = [("grant_type", "refresh_token"), ("refresh_token", token)];
    exchange(&d.state, input(WEB_APP, &form)).await
}

async fn client_credentials(d: &Direct, client: &str) -> Issued {
    let form = [("grant_type", "client_credentials")];
    exchange(&d.state, input(Some((client, SECRET)), &form))
        .await
        .unwrap()
}

/// The protocol error of a refused request (anything else fails the test).
fn refused<T: std::fmt::Debug>(r: Result<T, FlowError>) -> OAuthError {
    match r {
        Err(FlowError::OAuth(e)) => e,
        other => panic!("expected an OAuth error, got {other:?}"),
    }
}

async fn family_of(d: &Direct, refresh_token: &str) -> String {
    let rec = d.state.repos.refresh(refresh_token).await.unwrap();
    rec.expect("the refresh token is stored").value.family
}

/// The `jti` claim of a JWT (read, not verified).
fn jti(jwt: &str) -> String {
    let body = jwt.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&B64.decode(body).unwrap()).unwrap();
    claims["jti"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_code_redeems_until_its_ttl_and_not_after() {
    let d = direct(|_| {}).await;
    let (code, verifier) = code_for(&d, ALICE).await;
    d.clock.advance(CODE_TTL - 1);
    let issued = redeem(&d, &code, &verifier)
        .await
        .expect("redeemable in the code's last second");
    assert_eq!(issued.scope, "email profile");
    assert!(issued.refresh_token.is_some(), "web-app has refresh tokens");

    let (code, verifier) = code_for(&d, ALICE).await;
    d.clock.advance(CODE_TTL);
    let e = refused(redeem(&d, &code, &verifier).await);
    assert_eq!(e.code, ErrorCode::InvalidGrant);
    assert!(e.description.contains("expired"), "{}", e.description);
}

#[tokio::test]
async fn a_refresh_token_expires_without_its_family_being_revoked() {
    let d = direct(|_| {}).await;
    let early = tokens_for(&d, ALICE).await.refresh_token.unwrap();
    let late = tokens_for(&d, ALICE).await.refresh_token.unwrap();
    let family = family_of(&d, &late).await;
    d.clock.advance(REFRESH_TTL - 1);
    refresh(&d, &early)
        .await
        .expect("usable in its last second");
    d.clock.advance(1);
    let e = refused(refresh(&d, &late).await);
    assert_eq!(e.code, ErrorCode::InvalidGrant);
    assert!(e.description.contains("expired"), "{}", e.description);
    assert!(
        d.state.repos.family_alive(&family).await.unwrap(),
        "expiry is not reuse: the family is not revoked"
    );
}

#[tokio::test]
async fn a_retry_after_the_grace_window_is_reuse_and_revokes_the_family() {
    let d = direct(|_| {}).await;
    let token = tokens_for(&d, ALICE).await.refresh_token.unwrap();
    let family = family_of(&d, &token).await;
    let first = refresh(&d, &token).await.unwrap();
    d.clock.advance(GRACE - 1);
    let again = refresh(&d, &token)
        .await
        .expect("a retry in the window's last second");
    assert_eq!(
        again.refresh_token, first.refresh_token,
        "the same successor"
    );
    assert_eq!(
        again.access_token, first.access_token,
        "RS256: byte-identical"
    );
    assert_eq!(again.expires_in, first.expires_in - (GRACE - 1) as u64);
    d.clock.advance(1);
    let e = refused(refresh(&d, &token).await);
    assert_eq!(e.code, ErrorCode::InvalidGrant);
    assert!(!d.state.repos.family_alive(&family).await.unwrap());
    let successor = first.refresh_token.unwrap();
    assert_eq!(
        refused(refresh(&d, &successor).await).code,
        ErrorCode::InvalidGrant,
        "the successor died with its family"
    );
}

#[tokio::test]
async fn revoking_an_unknown_token_succeeds_and_writes_nothing() {
    let d = direct(|_| {}).await;
    let keys = d.state.store.scan_prefix("").await.unwrap();
    let before = store_calls(&d.state);
    let form = [("token", "nonsense"), ("token_type_hint", "refresh_token")];
    revoke(&d.state, input(WEB_APP, &form)).await.unwrap();
    assert_eq!(
        store_calls(&d.state) - before,
        1,
        "one refresh-token lookup (web-app is a config client)"
    );
    let long = "a".repeat(8193);
    let before = store_calls(&d.state);
    revoke(&d.state, input(WEB_APP, &[("token", &long)]))
        .await
        .unwrap();
    assert_eq!(
        store_calls(&d.state),
        before,
        "an over-long token is never looked up"
    );
    assert_eq!(d.state.store.scan_prefix("").await.unwrap(), keys);
}

#[tokio::test]
async fn revoking_an_access_token_denies_it_only_while_it_can_be_used() {
    let d = direct(|_| {}).await;
    let live = client_credentials(&d, "basic-client").await.access_token;
    let stale = client_credentials(&d, "basic-client").await.access_token;
    let own = Some(("basic-client", SECRET));
    // Another client's token: success, and nothing denied.
    revoke(
        &d.state,
        input(Some(("cc-profile", SECRET)), &[("token", &live)]),
    )
    .await
    .unwrap();
    assert!(!d.state.repos.is_denied(&jti(&live)).await.unwrap());
    revoke(&d.state, input(own, &[("token", &live)]))
        .await
        .unwrap();
    assert!(d.state.repos.is_denied(&jti(&live)).await.unwrap());
    // Past its `exp` the token is dead anyway: revocation succeeds, denies nothing.
    d.clock.advance(ACCESS_TTL);
    revoke(&d.state, input(own, &[("token", &stale)]))
        .await
        .unwrap();
    assert!(!d.state.repos.is_denied(&jti(&stale)).await.unwrap());
}

#[tokio::test]
async fn introspection_of_a_refresh_token_is_for_its_own_client_until_it_expires() {
    let d = direct(|_| {}).await;
    let issued_at = d.clock.now();
    let token = tokens_for(&d, ALICE).await.refresh_token.unwrap();
    let ask = |client: (&'static str, &'static str)| {
        let state = d.state.clone();
        let token = token.clone();
        async move {
            introspect(&state, input(Some(client), &[("token", &token)]))
                .await
                .unwrap()
        }
    };
    let i = ask(("web-app", SECRET)).await;
    assert!(i.active);
    assert_eq!(i.token_type.as_deref(), Some("refresh_token"));
    assert_eq!(i.client_id.as_deref(), Some("web-app"));
    assert_eq!(i.username.as_deref(), Some(USER));
    assert_eq!(i.sub.as_deref(), Some(ALICE));
    assert_eq!(i.exp, Some(issued_at + REFRESH_TTL));
    assert_eq!(
        ask(("basic-client", SECRET)).await,
        Introspection::default(),
        "another client learns nothing"
    );
    d.clock.advance(REFRESH_TTL);
    assert_eq!(ask(("web-app", SECRET)).await, Introspection::default());
}

#[tokio::test]
async fn a_code_replayed_after_its_access_token_expired_still_revokes_the_family() {
    let d = direct(|_| {}).await;
    let (code, verifier) = code_for(&d, ALICE).await;
    let issued = redeem(&d, &code, &verifier).await.unwrap();
    let family = family_of(&d, issued.refresh_token.as_deref().unwrap()).await;
    d.clock.advance(ACCESS_TTL);
    let e = refused(redeem(&d, &code, &verifier).await);
    assert_eq!(e.code, ErrorCode::InvalidGrant);
    assert!(e.description.contains("already used"), "{}", e.description);
    assert!(!d.state.repos.family_alive(&family).await.unwrap());
    assert!(
        !d.state
            .repos
            .is_denied(&jti(&issued.access_token))
            .await
            .unwrap(),
        "an expired access token needs no deny-list entry"
    );
}

#[tokio::test]
async fn a_token_whose_user_is_gone_is_refused_by_the_resource() {
    let d = direct(|_| {}).await;
    let alice = tokens_for(&d, ALICE).await.access_token;
    let me = keygate::flows::resource::me(&d.state, Some(&alice))
        .await
        .unwrap_or_else(|e| panic!("alice's token: {e:?}"));
    assert_eq!(me.username, USER);
    assert_eq!(me.email.as_deref(), Some("alice@example.com"));
    // No code is issued for a user who does not exist (flows::authorize::
    // approve checks), so sign such a token as keygate would have.
    let now = d.state.clock.now();
    let grant = keygate::oauth::token::Grant {
        subject: "no-such-user".into(),
        client_id: "web-app".into(),
        scope: keygate::oauth::types::ScopeSet::parse("profile").unwrap(),
        family: None,
    };
    let claims = keygate::oauth::token::AccessClaims::new(
        &d.state.cfg.issuer,
        &d.state.cfg.audience,
        &grant,
        now,
        600,
        keygate::ids::jti(),
    );
    let keys = d.state.keys.current();
    let ghost = keygate::tokens::jwt::sign(keys.signer_at(now), &claims).unwrap();
    match keygate::flows::resource::me(&d.state, Some(&ghost)).await {
        Err(keygate::flows::resource::BearerError::InvalidToken(why)) => {
            assert!(why.contains("user"), "{why}")
        }
        other => panic!("expected invalid_token, got {other:?}"),
    }
}

#[tokio::test]
async fn a_full_memory_store_refuses_new_codes_and_keeps_serving_reads() {
    const CAP: u64 = 64;
    let d = direct(|s| s.store.memory_max_entries = CAP).await;
    let mut filled = 0;
    while d
        .state
        .store
        .put(&format!("filler:{filled}"), b"x", None)
        .await
        .is_ok()
    {
        filled += 1;
        assert!(filled <= CAP, "the cap is enforced");
    }
    let (_, challenge) = pkce_pair();
    let query = steps::code_query("web-app", "profile", &challenge);
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let (req, _) = keygate::flows::authorize::check(&d.state, &pairs)
        .await
        .unwrap_or_else(|e| panic!("checking reads only: {e:?}"));
    match keygate::flows::authorize::approve(
        &d.state,
        &req,
        &session_of(ALICE, 0),
        keygate::flows::authorize::Consent::Given,
    )
    .await
    {
        Err(FlowError::Store(StoreError::Full(cap))) => assert_eq!(cap as u64, CAP),
        other => panic!("expected a full store, got {other:?}"),
    }
    // A grant that writes nothing still works.
    let issued = client_credentials(&d, "basic-client").await;
    assert_eq!(issued.scope, "api:read api:write");
}

#[tokio::test]
async fn over_long_codes_and_refresh_tokens_are_refused_without_a_lookup() {
    let d = direct(|_| {}).await;
    let long = "c".repeat(257);
    let before = store_calls(&d.state);
    let e = refused(redeem(&d, &long, "verifier").await);
    assert_eq!(e.code, ErrorCode::InvalidGrant);
    let e = refused(refresh(&d, &long).await);
    assert_eq!(e.code, ErrorCode::InvalidGrant);
    assert_eq!(
        store_calls(&d.state),
        before,
        "no store call for values that cannot be ours"
    );
}

/// A login session of `user` signed in at `auth_time` (for `approve`).
fn session_of(user: &str, auth_time: i64) -> keygate::store::repos::Session {
    keygate::store::repos::Session {
        user_id: user.into(),
        username: user.into(),
        auth_time,
        expires_at: auth_time + 3600,
        sid: "sid-1".into(),
    }
}
