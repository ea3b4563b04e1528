//! Dynamic client registration (RFC 7591) and its management endpoint
//! (RFC 7592), guarded by initial access tokens from the config and by the
//! per-client registration access token.
//!
//! The `[registration]` policy: *closed* (not `open`, no tokens: every
//! request is refused), *protected* (an initial access token gives full
//! rights) or *open* (a request without an `Authorization` header registers
//! within the limits of [`check_open_registration`], spends the caller's
//! address's budget `limits.registration_*`, and gets a client that expires
//! when unused, `registration.open_client_ttl`). A request that carries an
//! `Authorization` header is judged by it alone: a bad token is refused,
//! never treated as anonymous.
//!
//! Expiry costs the token endpoint no round trip: the client record
//! carries its expiry, and only a use in the second half of its life
//! extends it ([`keep_alive`]), with a write off the response path.

use std::net::IpAddr;

use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::clients::{self, ClientError, Registered};
use super::FlowError;
use crate::limits::client_key;
use crate::oauth::client_auth::hash_secret;
use crate::oauth::client_meta::{
    check_open_registration, parse, validate, ClientMetadata, Defaults, MetadataError,
    RawClientMetadata,
};
use crate::oauth::types::Client;
use crate::state::AppState;

/// An RFC 7591 / RFC 7592 request body; unknown members are ignored.
#[derive(Debug, Clone, Default)]
pub struct MetadataRequest {
    /// `client_id` (RFC 7592 update only: must match the URL).
    pub client_id: Option<String>,
    /// The client metadata (RFC 7591 §2).
    pub metadata: RawClientMetadata,
}

/// Why a registration request failed.
#[derive(Debug)]
pub enum RegistrationError {
    /// Missing or wrong initial access token / registration access token, or
    /// an unknown client: 401 `invalid_token`.
    Unauthorized,
    /// RFC 7591 §3.2.2 `invalid_redirect_uri` / `invalid_client_metadata`.
    Metadata(MetadataError),
    /// Store failure and the like.
    Flow(FlowError),
}

impl From<ClientError> for RegistrationError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Metadata(m) => Self::Metadata(m),
            ClientError::NotFound => Self::Unauthorized,
            ClientError::NotApplicable(m) => Self::Flow(FlowError::Internal(m.into())),
            ClientError::Store(s) => Self::Flow(s.into()),
        }
    }
}

fn initial_token_ok(state: &AppState, token: Option<&str>) -> bool {
    let Some(token) = token else { return false };
    let given = hash_secret(token);
    // Check every configured token so the time does not depend on which matched.
    state
        .cfg
        .registration
        .initial_access_tokens
        .iter()
        .fold(false, |acc, t| {
            acc | bool::from(hash_secret(t.expose_secret()).ct_eq(&given))
        })
}

/// `POST /oauth/register` (RFC 7591 §3). `credential` is what the
/// `Authorization` header carried (the bearer token, or the whole value
/// when it is not a Bearer token), `None` without the header; `peer` is the
/// TCP peer's address, which the anonymous-registration limit keys on.
#[tracing::instrument(skip_all)]
pub async fn register(
    state: &AppState,
    peer: Option<IpAddr>,
    credential: Option<&str>,
    req: MetadataRequest,
) -> Result<Registered, RegistrationError> {
    if credential.is_none() && state.cfg.registration.open {
        return register_anonymous(state, peer, req).await;
    }
    if !initial_token_ok(state, credential) {
        return Err(RegistrationError::Unauthorized);
    }
    let meta = parse(req.metadata, Defaults::rfc7591()).map_err(RegistrationError::Metadata)?;
    Ok(clients::register(
        &state.repos,
        meta,
        &clients::rules_with_keys(&state.cfg.client_rules, &state.keys.current()),
        state.clock.now(),
        None,
        true,
    )
    .await?)
}

/// Parses metadata from an anonymous caller: a missing `scope` becomes
/// `registration.open_scopes`; then the server rules and the open-
/// registration limits apply.
fn parse_open(state: &AppState, raw: RawClientMetadata) -> Result<ClientMetadata, MetadataError> {
    let open_scopes = &state.cfg.registration.open_scopes;
    let defaults = Defaults {
        scope: open_scopes.clone(),
        ..Defaults::rfc7591()
    };
    let meta = parse(raw, defaults)?;
    check_open_registration(&meta, open_scopes)?;
    validate(
        &meta,
        &clients::rules_with_keys(&state.cfg.client_rules, &state.keys.current()),
    )?;
    Ok(meta)
}

/// An anonymous registration: metadata within limits first (a refused
/// request is free), then one unit of the address's budget, then the
/// client, which expires after `registration.open_client_ttl` unless used.
async fn register_anonymous(
    state: &AppState,
    peer: Option<IpAddr>,
    req: MetadataRequest,
) -> Result<Registered, RegistrationError> {
    let meta = parse_open(state, req.metadata).map_err(RegistrationError::Metadata)?;
    if let Some(quota) = state.limits.registration() {
        let decision = state
            .repos
            .rate_registration(&client_key(peer), quota, 1)
            .await
            .map_err(|e| RegistrationError::Flow(e.into()))?;
        super::users::limited(state, "registration", peer, decision)
            .map_err(RegistrationError::Flow)?;
    }
    let now = state.clock.now();
    let reg = clients::register_expiring(
        &state.repos,
        meta,
        &clients::rules_with_keys(&state.cfg.client_rules, &state.keys.current()),
        now,
        now + state.cfg.registration.open_client_ttl,
    )
    .await?;
    tracing::info!(event = "client_registered_anonymously", client_id = %reg.client.client_id, "anonymous client registered");
    Ok(reg)
}

/// Extends an anonymously registered client in use (a successful token
/// request or authorization request) to a full `registration.open_client_ttl`
/// from now, once at most half of it is left. The check reads only the
/// client already in hand, so the common case costs nothing; the write
/// happens in a task of its own, off the response path. Clients that never
/// expire are left alone.
pub fn keep_alive(state: &AppState, client: &Client) {
    let Some(expires_at) = client.expires_at else {
        return;
    };
    let ttl = state.cfg.registration.open_client_ttl;
    let now = state.clock.now();
    if (expires_at - now).saturating_mul(2) > ttl {
        return;
    }
    let repos = state.repos.clone();
    let client_id = client.client_id.clone();
    tokio::spawn(async move {
        if let Err(e) = repos.extend_client(&client_id, now + ttl).await {
            tracing::warn!(error = %e, client_id = %client_id, "could not extend an anonymously registered client");
        }
    });
}

async fn authorized(
    state: &AppState,
    client_id: &str,
    token: Option<&str>,
) -> Result<Client, RegistrationError> {
    let token = token.ok_or(RegistrationError::Unauthorized)?;
    clients::by_registration_token(&state.repos, client_id, token)
        .await?
        .ok_or(RegistrationError::Unauthorized)
}

/// `GET /oauth/register/{client_id}` (RFC 7592 §2.1).
pub async fn read(
    state: &AppState,
    client_id: &str,
    token: Option<&str>,
) -> Result<Client, RegistrationError> {
    authorized(state, client_id, token).await
}

/// `PUT /oauth/register/{client_id}` (RFC 7592 §2.2): full replacement.
pub async fn replace(
    state: &AppState,
    client_id: &str,
    token: Option<&str>,
    req: MetadataRequest,
) -> Result<Registered, RegistrationError> {
    let client = authorized(state, client_id, token).await?;
    if req.client_id.as_deref() != Some(client_id) {
        return Err(RegistrationError::Metadata(MetadataError::invalid(
            "client_id",
            "the body's client_id must equal the client in the URL",
        )));
    }
    // An anonymously registered client stays within the same limits.
    let meta = if client.is_anonymous() {
        parse_open(state, req.metadata)
    } else {
        parse(req.metadata, Defaults::rfc7591())
    }
    .map_err(RegistrationError::Metadata)?;
    Ok(clients::update(
        &state.repos,
        client_id,
        None,
        meta,
        &clients::rules_with_keys(&state.cfg.client_rules, &state.keys.current()),
    )
    .await?)
}

/// `DELETE /oauth/register/{client_id}` (RFC 7592 §2.3).
pub async fn delete(
    state: &AppState,
    client_id: &str,
    token: Option<&str>,
) -> Result<(), RegistrationError> {
    authorized(state, client_id, token).await?;
    Ok(clients::delete(&state.repos, client_id, None).await?)
}
