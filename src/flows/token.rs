//! `POST /oauth/token` (RFC 6749 §3.2): parse → authenticate the client →
//! grant-specific checks → persist atomically → sign one JWT.
//!
//! Store round trips: `client_credentials` 0–1 (the client lookup, with the
//! stored RFC 8707 resources it names in the same `MGET`; none for
//! config-file clients and resources); `authorization_code` and
//! `refresh_token` 2 (codes and refresh families carry their validated
//! resource set, so narrowing it reads nothing): one read
//! of the client and the code or refresh token together (`MGET`), and one
//! atomic swap; `password` 1–2 more for the shared guess limit (reserve,
//! and refund on success). A retry of a just-rotated refresh token (the
//! grace window) may take up to 2 more reads; the normal path never does.
//! The token-endpoint limits are in process and cost no round trip; an
//! address over its failed-authentication budget is refused before the
//! client lookup.
//! On a Redis Cluster the client lives on another slot than the user's
//! code or refresh token, so it comes from the in-process client cache
//! (`store::repos`, invalidated on every instance when a client changes)
//! and the same budgets hold; on a cache miss the one `MGET` reaches two
//! slots in parallel (docs/redis.md "Redis Cluster").
//!
//! The rules, including who may retry within the grace window and what the
//! retry answers, are in [`crate::oauth::token`]; this module only loads,
//! persists, logs and signs around them. It never calls the seal crypto
//! ([`crate::oauth::grace`]) for a decision, only to seal at rotation.

use std::net::IpAddr;

use super::FlowError;
use crate::metrics::GrantLabels;
use crate::oauth::authorize::Policy;
use crate::oauth::client_auth::{authenticate, select_credentials, ClientCredentials};
use crate::oauth::grace::{self, GraceSeal};
use crate::oauth::id_token::{wants_id_token, IdClaims, IdGrant};
use crate::oauth::introspection::require_client_secret;
use crate::oauth::resource::{self, Resource, ResourceId, Target};
use crate::oauth::token::{
    client_credentials, code_targets, grace_claims, grace_contents, grace_retry, granted_scope,
    redeem_code, redeem_refresh, refresh_scope, refresh_targets, requested_resources,
    require_grant, required, successor_is_live, AccessClaims, CodeRecord, Grant, Issuance,
    RedeemError, RefreshRecord, TokenParams,
};
use crate::oauth::types::{AuthMethod, Client, GrantType};
use crate::oauth::OAuthError;
use crate::state::AppState;
use crate::store::repos::Versioned;
use crate::tokens::jwt;

/// Grant types served at the token endpoint under the active profile.
pub fn supported_grants(policy: &Policy) -> Vec<GrantType> {
    let mut g = vec![
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
    ];
    if policy.password {
        g.push(GrantType::Password);
    }
    g
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone)]
pub struct Issued {
    /// The signed JWT.
    pub access_token: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// The granted scope.
    pub scope: String,
    /// A new refresh token, when the client is registered for them.
    pub refresh_token: Option<String>,
    /// The OpenID Connect ID token (scope `openid`, code and refresh grants).
    pub id_token: Option<String>,
}

/// The raw inputs of a token, revocation or introspection request.
#[derive(Debug, Default)]
pub struct TokenInput {
    /// `Authorization: Basic` user-id and password, still form-encoded.
    pub basic: Option<(String, String)>,
    /// Decoded form pairs in order.
    pub form: Vec<(String, String)>,
    /// The TCP peer's address, which the rate limits key on (`None`: unknown).
    pub peer: Option<IpAddr>,
}

/// Parses the form and authenticates the client (shared with revocation and
/// introspection, RFC 7009 §2.1, RFC 7662 §2.1), under the failed-client-
/// authentication limits.
pub async fn authenticated_client(
    state: &AppState,
    input: &TokenInput,
) -> Result<(TokenParams, Client, ClientCredentials), FlowError> {
    let (params, creds) = parse(input)?;
    admit(state, &creds, input.peer)?;
    let client = find_client(state, creds.client_id())
        .await
        .inspect_err(|e| document_refused(state, &creds, input.peer, e))?;
    let client = check_client(state, &creds, input.peer, client)?;
    Ok((params, client, creds))
}

/// Like [`authenticated_client`], for endpoints that only a confidential
/// client may call (introspection, RFC 7662 §2.1): a `client_id` alone is
/// refused before the client is looked up.
pub async fn confidential_client(
    state: &AppState,
    input: &TokenInput,
) -> Result<(TokenParams, Client), FlowError> {
    let (params, creds) = parse(input)?;
    require_client_secret(&creds).inspect_err(|_| {
        tracing::info!(event = "client_auth_failed", "client authentication failed");
    })?;
    admit(state, &creds, input.peer)?;
    // A metadata document's client is public: never fetched here.
    let client = find_registered(state, creds.client_id()).await?;
    let client = check_client(state, &creds, input.peer, client)?;
    Ok((params, client))
}

fn parse(input: &TokenInput) -> Result<(TokenParams, ClientCredentials), FlowError> {
    let params = TokenParams::from_pairs(input.form.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    let creds = select_credentials(
        input.basic.as_ref().map(|(u, p)| (u.as_str(), p.as_str())),
        params.client_id.as_deref(),
        params.client_secret.as_deref(),
    )?;
    tracing::Span::current().record("client_id", creds.client_id());
    Ok((params, creds))
}

/// Refuses, before any lookup or secret comparison, a client id or an
/// address that has used up its failed-authentication budget
/// ([`crate::limits`]).
fn admit(
    state: &AppState,
    creds: &ClientCredentials,
    peer: Option<IpAddr>,
) -> Result<(), FlowError> {
    state
        .limits
        .admit_client_auth(creds.client_id(), peer)
        .map_err(|wait| {
            state.metrics.limited("client_auth_failures");
            tracing::info!(
                event = "rate_limited",
                limit = "client_auth_failures",
                client_ip = %super::client_ip(peer),
                "request refused by a rate limit"
            );
            FlowError::RateLimited(wait)
        })
}

/// Authenticates the client; a failure spends failed-authentication budget.
fn check_client(
    state: &AppState,
    creds: &ClientCredentials,
    peer: Option<IpAddr>,
    client: Option<Client>,
) -> Result<Client, FlowError> {
    Ok(authenticate(creds, client).inspect_err(|_| {
        state.limits.client_auth_failed(creds.client_id(), peer);
        tracing::info!(event = "client_auth_failed", "client authentication failed");
    })?)
}

/// A refused client metadata document spends failed-authentication budget,
/// as an unknown client or a wrong secret does (each try costs a fetch).
fn document_refused(
    state: &AppState,
    creds: &ClientCredentials,
    peer: Option<IpAddr>,
    e: &FlowError,
) {
    if matches!(e, FlowError::ClientDocument(_)) {
        state.limits.client_auth_failed(creds.client_id(), peer);
    }
}

/// What a code or refresh grant redeems, read in the same round trip as the
/// client; for the other grants, the RFC 8707 resources the request names.
enum Redeemable {
    Nothing(Vec<Option<Resource>>),
    Code(Option<Versioned<CodeRecord>>),
    Refresh(Option<Versioned<RefreshRecord>>),
}

/// Looks the client up together with the record its grant redeems: one
/// store round trip for a stored client, whatever the grant.
async fn client_and_record(
    state: &AppState,
    client_id: &str,
    grant_type: Option<GrantType>,
    params: &TokenParams,
    resources: &[ResourceId],
) -> Result<(Option<Client>, Redeemable), FlowError> {
    // Only the code and refresh grants read a record with the client; the
    // others resolve the client with their resources (documents included).
    let redeems = matches!(
        grant_type,
        Some(GrantType::AuthorizationCode | GrantType::RefreshToken)
    );
    let config_client = match state.config_clients.get(client_id) {
        Some(c) => Some(c.clone()),
        None if redeems => super::client_documents::resolve(state, client_id).await?,
        None => None,
    };
    // A config-file or document client needs no lookup; an over-long id cannot be stored.
    let lookup = (config_client.is_none() && client_id.len() <= 256).then_some(client_id);
    // Over-long values cannot be one of ours: don't hash and look them up.
    fn short(v: &Option<String>) -> Option<&str> {
        v.as_deref().filter(|v| v.len() <= 256)
    }
    let (client, record) = match grant_type {
        Some(GrantType::AuthorizationCode) => match short(&params.code) {
            Some(code) => {
                let (c, r) = state.repos.client_and_code(lookup, code).await?;
                (c, Redeemable::Code(r))
            }
            None => (find_stored(state, lookup).await?, Redeemable::Code(None)),
        },
        Some(GrantType::RefreshToken) => match short(&params.refresh_token) {
            Some(token) => {
                let (c, r) = state.repos.client_and_refresh(lookup, token).await?;
                (c, Redeemable::Refresh(r))
            }
            None => (find_stored(state, lookup).await?, Redeemable::Refresh(None)),
        },
        _ => {
            let (c, found) =
                super::resources::client_and_resources(state, client_id, resources).await?;
            return Ok((c, Redeemable::Nothing(found)));
        }
    };
    Ok((config_client.or(client), record))
}

async fn find_stored(
    state: &AppState,
    client_id: Option<&str>,
) -> Result<Option<Client>, FlowError> {
    match client_id {
        Some(id) => Ok(state.repos.client(id).await?),
        None => Ok(None),
    }
}

/// Runs one token request.
#[tracing::instrument(skip_all, fields(client_id, grant_type))]
pub async fn exchange(state: &AppState, input: TokenInput) -> Result<Issued, FlowError> {
    let (params, creds) = parse(&input)?;
    let grant_type = params.grant(&supported_grants(&state.policy));
    // RFC 8707: a malformed `resource` is reported after client
    // authentication, and looks nothing up.
    let requested = requested_resources(&params);
    admit(state, &creds, input.peer)?;
    let (client, record) = client_and_record(
        state,
        creds.client_id(),
        grant_type.as_ref().ok().copied(),
        &params,
        requested.as_deref().unwrap_or_default(),
    )
    .await
    .inspect_err(|e| document_refused(state, &creds, input.peer, e))?;
    // The client is authenticated before any grant error is reported, so an
    // unauthenticated caller learns nothing about which grants this server supports.
    let client = check_client(state, &creds, input.peer, client)?;
    // Counted after authentication. A public client (id alone) is counted per
    // address, so naming it spends no one else's budget; a confidential one
    // only against the operator's ceiling (README "Rate limits and slow clients").
    let public = client.auth_method == AuthMethod::None;
    state
        .limits
        .check_token(&client.client_id, public, input.peer)
        .map_err(|wait| {
            let limit = if public {
                "public_client"
            } else {
                "client_ceiling"
            };
            state.metrics.limited(limit);
            tracing::info!(
                event = "rate_limited",
                limit,
                client_ip = %super::client_ip(input.peer),
                "request refused by a rate limit"
            );
            FlowError::RateLimited(wait)
        })?;
    let grant_type = grant_type?;
    tracing::Span::current().record("grant_type", grant_type.as_str());
    // `record` is `Code` exactly for the code grant and `Refresh` for the refresh grant.
    let issued = match record {
        Redeemable::Code(stored) => authorization_code(state, &params, &client, stored).await?,
        Redeemable::Refresh(stored) => refresh(state, &params, &client, stored).await?,
        Redeemable::Nothing(found) => match grant_type {
            GrantType::ClientCredentials => {
                let scope = client_credentials(&client, params.scope.as_deref())?;
                let (targets, scope) = select(&params, requested?, &found, scope)?;
                let grant = Grant {
                    subject: client.client_id.clone(),
                    client_id: client.client_id.clone(),
                    scope,
                    family: None,
                };
                issue_access_token(state, &grant, &targets, grant_type)?
            }
            GrantType::Password => {
                password(state, &params, &client, input.peer, requested?, &found).await?
            }
            _ => {
                return Err(OAuthError::new(
                    crate::oauth::ErrorCode::UnsupportedGrantType,
                    "implicit is not a token endpoint grant",
                )
                .into())
            }
        },
    };
    tracing::info!(event = "token_issued", "access token issued");
    // An anonymously registered client in use lives on (no round trip here).
    super::registration::keep_alive(state, &client);
    Ok(issued)
}

/// RFC 8707 §2 for a new grant (`client_credentials`, `password`): the
/// requested resources must be registered and accept the scope (an asked-for
/// scope strictly, the client's default scope cut down).
fn select(
    params: &TokenParams,
    requested: Vec<ResourceId>,
    found: &[Option<Resource>],
    scope: crate::oauth::types::ScopeSet,
) -> Result<(Vec<Target>, crate::oauth::types::ScopeSet), OAuthError> {
    if requested.is_empty() {
        return Ok((vec![], scope));
    }
    let (chosen, scope) = resource::select(&requested, found, &scope, params.scope.is_some())?;
    Ok((chosen.iter().map(Target::from).collect(), scope))
}

async fn authorization_code(
    state: &AppState,
    params: &TokenParams,
    client: &Client,
    stored: Option<Versioned<CodeRecord>>,
) -> Result<Issued, FlowError> {
    require_grant(client, GrantType::AuthorizationCode)?;
    let code = required(&params.code, "code")?;
    let now = state.clock.now();
    let Some(stored) = stored else {
        return Err(OAuthError::invalid_grant("the code is invalid or has expired").into());
    };
    let mut grant = match redeem_code(params, &stored.value, client, now) {
        Ok(g) => g,
        Err(RedeemError::Refused(e)) => return Err(e.into()),
        Err(RedeemError::Replayed) => return Err(code_replayed(state, &stored.value).await),
    };
    // RFC 8707: `resource` may narrow the code's set for this access token;
    // the refresh family keeps the code's whole set and scope.
    let (targets, scope) = code_targets(params, &stored.value)?;
    grant.family = client
        .allows(GrantType::RefreshToken)
        .then(|| state.repos.new_family(&grant.subject));
    let claims = claims_for(
        state,
        &Grant {
            scope,
            ..grant.clone()
        },
        &targets,
        now,
    );
    let refresh = grant.family.is_some().then(|| {
        new_refresh(
            state,
            &grant,
            &stored.value.resources,
            now,
            Started {
                auth_time: stored.value.auth_time,
                consent: stored.value.consent.clone(),
                sid: stored.value.sid.clone(),
            },
        )
    });
    let refresh_ttl = state.cfg.tokens.refresh_ttl.as_secs() as i64;
    let redeemed = CodeRecord {
        redeemed: Some(Issuance {
            jti: claims.jti.clone(),
            access_exp: claims.exp,
            family: refresh.as_ref().map(|(_, r)| r.family.clone()),
        }),
        ..stored.value.clone()
    };
    // Keep the redeemed marker as long as anything issued from it can live.
    let keep = if refresh.is_some() {
        refresh_ttl
    } else {
        claims.exp - now
    };
    let won = state
        .repos
        .redeem_code(
            code,
            &stored,
            &redeemed,
            keep,
            refresh.as_ref().map(|(t, r)| (t.as_str(), r, refresh_ttl)),
        )
        .await?;
    if !won {
        // Another request redeemed it between our read and our swap: a replay.
        let again = state.repos.code(code).await?;
        return Err(match again {
            Some(Versioned { value, .. }) => code_replayed(state, &value).await,
            None => OAuthError::invalid_grant("the code is invalid or has expired").into(),
        });
    }
    count(state, GrantType::AuthorizationCode);
    // OpenID Connect Core §3.1.3.3: the code's scope asks for an ID token.
    let oidc = wants_id_token(&stored.value.scope).then_some(Oidc {
        auth_time: stored.value.auth_time,
        nonce: stored.value.nonce.as_deref(),
        sid: stored.value.sid.as_deref(),
        alg: client.id_token_signed_response_alg.as_deref(),
    });
    sign(state, claims, refresh.map(|(t, _)| t), oidc)
}

/// RFC 6749 §4.1.2: a code used twice is refused and what it issued is revoked.
async fn code_replayed(state: &AppState, rec: &CodeRecord) -> FlowError {
    if let Some(issued) = &rec.redeemed {
        tracing::warn!(event = "code_replay", client_id = %rec.client_id, "authorization code replayed: revoking what it issued");
        let now = state.clock.now();
        if let Err(e) = state
            .repos
            .deny_jti(&issued.jti, issued.access_exp - now)
            .await
        {
            return e.into();
        }
        if let Some(family) = &issued.family {
            if let Err(e) = state.repos.revoke_family(family).await {
                return e.into();
            }
        }
    }
    OAuthError::invalid_grant("the code was already used; tokens issued from it are revoked").into()
}

async fn refresh(
    state: &AppState,
    params: &TokenParams,
    client: &Client,
    stored: Option<Versioned<RefreshRecord>>,
) -> Result<Issued, FlowError> {
    require_grant(client, GrantType::RefreshToken)?;
    let token = required(&params.refresh_token, "refresh_token")?;
    let now = state.clock.now();
    let Some(stored) = stored else {
        return Err(
            OAuthError::invalid_grant("the refresh token is invalid or has expired").into(),
        );
    };
    let scope = match redeem_refresh(params, &stored.value, client, now) {
        Ok(s) => s,
        Err(RedeemError::Refused(e)) => return Err(e.into()),
        Err(RedeemError::Replayed) => {
            return grace_retry_or_revoke(state, params, client, token, &stored.value).await
        }
    };
    // RFC 8707: `resource` narrows the family's set for this access token
    // only (widening is invalid_target); the successor keeps the whole set.
    let (targets, scope) = refresh_targets(params, &stored.value, &scope)?;
    let family_grant = Grant {
        subject: stored.value.sub.clone(),
        client_id: client.client_id.clone(),
        scope: refresh_scope(&stored.value, client),
        family: Some(stored.value.family.clone()),
    };
    let (next_token, next) = new_refresh(
        state,
        &family_grant,
        &stored.value.resources,
        now,
        Started {
            auth_time: stored.value.auth_time,
            consent: stored.value.consent.clone(),
            sid: stored.value.sid.clone(),
        },
    );
    let oidc = refresh_oidc(&next, client);
    let grant = Grant {
        scope,
        ..family_grant
    };
    let claims = claims_for(state, &grant, &targets, now);
    let window = state.cfg.tokens.refresh_grace.as_secs();
    let seal = (window > 0)
        .then(|| {
            seal_grace(
                token,
                &stored.value.family,
                now,
                &next_token,
                &claims,
                &targets,
            )
        })
        .flatten();
    let ttl = state.cfg.tokens.refresh_ttl.as_secs() as i64;
    if !state
        .repos
        .rotate_refresh(
            token,
            &stored,
            &next_token,
            &next,
            ttl,
            seal,
            !super::users::is_config_user(state, &next.sub),
        )
        .await?
    {
        // Rotated concurrently, or the family was revoked. A concurrent
        // rotation by this token's holder may have left a grace seal: look
        // again (this extra read is only on the losing path).
        if window > 0 {
            if let Some(again) = state.repos.refresh(token).await? {
                if again.value.rotated {
                    return grace_retry_or_revoke(state, params, client, token, &again.value).await;
                }
            }
        }
        // Otherwise no token may come out of this one again.
        return Err(refresh_replayed(state, &stored.value).await);
    }
    count(state, GrantType::RefreshToken);
    sign(state, claims, Some(next_token), oidc)
}

/// Seals the successor pair for grace retries (one HKDF, one AES-GCM seal).
/// Without randomness there is no seal, and a retry is plain reuse.
fn seal_grace(
    old_token: &str,
    family: &str,
    now: i64,
    next_token: &str,
    claims: &AccessClaims,
    targets: &[Target],
) -> Option<GraceSeal> {
    grace::seal(
        old_token,
        family,
        now,
        &grace_contents(next_token, claims, targets),
    )
    .inspect_err(|e| tracing::warn!(error = %e, "refresh grace seal failed"))
    .ok()
}

/// A rotated refresh token came back. Within the grace window, from its own
/// client, asking for the same scope, while the successor is unused and the
/// family alive: answer with the same successor pair (2 more store reads at
/// most, never on the normal path). Otherwise it is reuse: revoke the family.
async fn grace_retry_or_revoke(
    state: &AppState,
    params: &TokenParams,
    client: &Client,
    token: &str,
    rec: &RefreshRecord,
) -> Result<Issued, FlowError> {
    let now = state.clock.now();
    let window = state.cfg.tokens.refresh_grace.as_secs();
    let Some(c) = grace_retry(params, rec, client, token, now, window) else {
        return Err(refresh_replayed(state, rec).await);
    };
    let (successor, family_alive) = state
        .repos
        .refresh_and_family(&c.refresh_token, rec)
        .await?;
    if !successor_is_live(successor.as_ref(), &rec.family, family_alive, now) {
        return Err(refresh_replayed(state, rec).await);
    }
    tracing::info!(event = "refresh_grace_retry", client_id = %rec.client_id, "rotated refresh token retried within the grace window: same successor pair");
    // The same claims: RS256 and EdDSA signatures are deterministic, so the
    // access token is byte-identical (with an unchanged signing key); ES256
    // signs the same claims with a fresh signature.
    let claims = grace_claims(&state.cfg.issuer, &state.cfg.audience, rec, &c);
    let mut issued = sign(
        state,
        claims,
        Some(c.refresh_token),
        refresh_oidc(rec, client),
    )?;
    issued.expires_in = u64::try_from(c.exp - now).unwrap_or(0);
    Ok(issued)
}

/// RFC 9700 §4.14.2: reuse of a rotated refresh token revokes its family.
async fn refresh_replayed(state: &AppState, rec: &RefreshRecord) -> FlowError {
    tracing::warn!(event = "refresh_family_revoked", client_id = %rec.client_id, "refresh token reuse: family revoked");
    if let Err(e) = state.repos.revoke_family(&rec.family).await {
        return e.into();
    }
    OAuthError::invalid_grant(
        "the refresh token was already used or revoked; its family is revoked",
    )
    .into()
}

/// The password grant (legacy profile): the guess limit is the login form's
/// (`flows::users::login`), so guesses through either count against both.
async fn password(
    state: &AppState,
    params: &TokenParams,
    client: &Client,
    peer: Option<IpAddr>,
    requested: Vec<ResourceId>,
    found: &[Option<Resource>],
) -> Result<Issued, FlowError> {
    require_grant(client, GrantType::Password)?;
    let username = required(&params.username, "username")?;
    let pw = required(&params.password, "password")?;
    let scope = granted_scope(client, params.scope.as_deref())?;
    // Before the password is checked: an invalid_target spends no guess.
    let (targets, scope) = select(params, requested, found, scope)?;
    let user = super::users::password_grant_user(state, peer, username, pw.to_string()).await?;
    let now = state.clock.now();
    let family = client
        .allows(GrantType::RefreshToken)
        .then(|| state.repos.new_family(&user.id));
    let grant = Grant {
        subject: user.id,
        client_id: client.client_id.clone(),
        scope,
        family,
    };
    let claims = claims_for(state, &grant, &targets, now);
    let refresh = if grant.family.is_some() {
        // Not an OpenID Connect sign-in: no `auth_time`, so no ID token on refresh.
        let (t, rec) = new_refresh(state, &grant, &targets, now, Started::default());
        state
            .repos
            .put_refresh_family(&t, &rec, state.cfg.tokens.refresh_ttl.as_secs() as i64)
            .await?;
        Some(t)
    } else {
        None
    };
    count(state, GrantType::Password);
    sign(state, claims, refresh, None)
}

/// What a refresh family keeps from the authorization that started it
/// (nothing for the password grant).
#[derive(Debug, Clone, Default)]
struct Started {
    /// The OpenID Connect `auth_time` of the sign-in.
    auth_time: Option<i64>,
    /// The remembered consent the code was issued under.
    consent: Option<String>,
    /// The login session's public id, for the ID token's `sid`.
    sid: Option<String>,
}

/// A new refresh token of `grant`'s family (which must be set), bound to
/// the RFC 8707 `resources`, with what the family keeps from its start.
fn new_refresh(
    state: &AppState,
    grant: &Grant,
    resources: &[Target],
    now: i64,
    started: Started,
) -> (String, RefreshRecord) {
    let rec = RefreshRecord {
        family: grant.family.clone().unwrap_or_default(),
        client_id: grant.client_id.clone(),
        sub: grant.subject.clone(),
        scope: grant.scope.clone(),
        expires_at: now + state.cfg.tokens.refresh_ttl.as_secs() as i64,
        rotated: false,
        grace: None,
        resources: resources.to_vec(),
        auth_time: started.auth_time,
        consent: started.consent,
        sid: started.sid,
    };
    (state.repos.new_refresh_token(&grant.subject), rec)
}

/// The access token claims for `grant`; `aud` is the resources' URIs, or
/// `tokens.audience` without any (RFC 8707 §2, RFC 9068 §3).
fn claims_for(state: &AppState, grant: &Grant, targets: &[Target], now: i64) -> AccessClaims {
    AccessClaims::new(
        &state.cfg.issuer,
        resource::audience(targets, &state.cfg.audience),
        grant,
        now,
        state.cfg.tokens.access_ttl.as_secs() as i64,
        state.repos.new_jti(&grant.subject),
    )
}

/// What an ID token needs beyond the access token's claims.
#[derive(Debug, Clone, Copy)]
struct Oidc<'a> {
    auth_time: Option<i64>,
    nonce: Option<&'a str>,
    /// The login session's public id (`sid`).
    sid: Option<&'a str>,
    /// The client's `id_token_signed_response_alg`.
    alg: Option<&'a str>,
}

/// OpenID Connect Core §12.2: a refresh of a family whose scope has
/// `openid` and that began with a sign-in (it has an `auth_time`) answers
/// with an ID token: same `sub` and `auth_time`, no `nonce`.
fn refresh_oidc<'a>(rec: &'a RefreshRecord, client: &'a Client) -> Option<Oidc<'a>> {
    (wants_id_token(&rec.scope) && rec.auth_time.is_some()).then_some(Oidc {
        auth_time: rec.auth_time,
        nonce: None,
        sid: rec.sid.as_deref(),
        alg: client.id_token_signed_response_alg.as_deref(),
    })
}

/// Signs the access token and, for `oidc`, the ID token that goes with it,
/// both with the key that signs at the token's issue time (rotation: see
/// tokens::keys). The ID token lives as long as the access token
/// (`tokens.access_ttl`); its `sub`, `iss` and `iat` are the access token's,
/// its `aud` and `azp` the client id, its `at_hash` this access token's.
fn sign(
    state: &AppState,
    claims: AccessClaims,
    refresh_token: Option<String>,
    oidc: Option<Oidc<'_>>,
) -> Result<Issued, FlowError> {
    let keys = state.keys.current();
    let key = keys.signer_at(claims.iat);
    let access_token = jwt::sign(key, &claims)?;
    let id_token = match oidc {
        None => None,
        Some(o) => {
            let grant = IdGrant {
                issuer: &claims.iss,
                subject: &claims.sub,
                client_id: &claims.client_id,
                auth_time: o.auth_time,
                nonce: o.nonce,
                sid: o.sid,
            };
            // Registration §2 `id_token_signed_response_alg`: a key of that
            // alg (checked at registration); the access token's key else.
            let id_key = match o.alg {
                Some(alg) if alg != key.alg.as_str() => {
                    keys.signer_for_alg(alg, claims.iat).unwrap_or_else(|| {
                        tracing::warn!(event = "id_token_alg_unavailable", client_id = %claims.client_id, alg = %alg, "no published key of the client's id_token_signed_response_alg: signing with the active key");
                        key
                    })
                }
                _ => key,
            };
            let ttl = state.cfg.tokens.access_ttl.as_secs() as i64;
            let id = IdClaims::new(grant, claims.iat, ttl, id_key.alg.as_str(), &access_token)
                .ok_or(jwt::SignError)?;
            Some(jwt::sign_id_token(id_key, &id)?)
        }
    };
    Ok(Issued {
        access_token,
        expires_in: state.cfg.tokens.access_ttl.as_secs(),
        scope: claims.scope,
        refresh_token,
        id_token,
    })
}

fn count(state: &AppState, grant: GrantType) {
    state
        .metrics
        .tokens_issued
        .get_or_create(&GrantLabels {
            grant_type: grant.as_str(),
        })
        .inc();
}

/// Looks a client up: config-file clients first, then a client ID metadata
/// document (when `client_id` names one), then the store.
pub async fn find_client(state: &AppState, client_id: &str) -> Result<Option<Client>, FlowError> {
    if let Some(c) = state.config_clients.get(client_id) {
        return Ok(Some(c.clone()));
    }
    if let Some(c) = super::client_documents::resolve(state, client_id).await? {
        return Ok(Some(c));
    }
    find_registered(state, client_id).await
}

/// Looks a registered client up: config-file clients first, then the store
/// (never a metadata document).
async fn find_registered(state: &AppState, client_id: &str) -> Result<Option<Client>, FlowError> {
    if let Some(c) = state.config_clients.get(client_id) {
        return Ok(Some(c.clone()));
    }
    if client_id.len() > 256 {
        return Ok(None);
    }
    Ok(state.repos.client(client_id).await?)
}

/// Builds and signs an access token for `grant` (for the RFC 8707
/// `targets`, if any) with the current key, and counts it under `grant_type`.
pub fn issue_access_token(
    state: &AppState,
    grant: &Grant,
    targets: &[Target],
    grant_type: GrantType,
) -> Result<Issued, FlowError> {
    let claims = claims_for(state, grant, targets, state.clock.now());
    count(state, grant_type);
    sign(state, claims, None, None)
}
