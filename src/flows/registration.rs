//! Dynamic client registration (RFC 7591) and its management endpoint
//! (RFC 7592), guarded by initial access tokens from the config and by the
//! per-client registration access token.

use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::clients::{self, ClientError, Registered};
use super::FlowError;
use crate::oauth::client_auth::hash_secret;
use crate::oauth::client_meta::{parse, Defaults, MetadataError, RawClientMetadata};
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

/// `POST /oauth/register` (RFC 7591 §3).
#[tracing::instrument(skip_all)]
pub async fn register(
    state: &AppState,
    initial_token: Option<&str>,
    req: MetadataRequest,
) -> Result<Registered, RegistrationError> {
    if !initial_token_ok(state, initial_token) {
        return Err(RegistrationError::Unauthorized);
    }
    let meta = parse(req.metadata, Defaults::rfc7591()).map_err(RegistrationError::Metadata)?;
    Ok(clients::register(
        &state.repos,
        meta,
        &state.cfg.client_rules,
        state.clock.now(),
        None,
        true,
    )
    .await?)
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
    authorized(state, client_id, token).await?;
    if req.client_id.as_deref() != Some(client_id) {
        return Err(RegistrationError::Metadata(MetadataError::invalid(
            "client_id",
            "the body's client_id must equal the client in the URL",
        )));
    }
    let meta = parse(req.metadata, Defaults::rfc7591()).map_err(RegistrationError::Metadata)?;
    Ok(clients::update(&state.repos, client_id, None, meta, &state.cfg.client_rules).await?)
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
