//! Client registration shared by the CLI and the config file: generate the id
//! and secret, validate metadata, store only the secret's hash.

use crate::oauth::client_auth::hash_secret;
use crate::oauth::client_meta::{validate, ClientMetadata, MetadataError};
use crate::oauth::types::{AuthMethod, Client, ScopeSet};
use crate::store::repos::Repos;
use crate::store::StoreError;

/// A freshly registered client and its secret (shown once, never stored).
#[derive(Debug)]
pub struct Registered {
    /// The stored client.
    pub client: Client,
    /// The plain secret for confidential clients.
    pub secret: Option<String>,
}

/// Why registration failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The metadata is invalid.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Builds a client (id, secret, hash) from metadata after validating it.
pub fn build(
    meta: ClientMetadata,
    known_scopes: &ScopeSet,
    now: i64,
    client_id: Option<String>,
    secret: Option<String>,
) -> Result<Registered, MetadataError> {
    validate(&meta, known_scopes)?;
    let secret = match meta.auth_method {
        AuthMethod::None => None,
        _ => Some(secret.unwrap_or_else(crate::ids::client_secret)),
    };
    let client = Client {
        client_id: client_id.unwrap_or_else(crate::ids::client_id),
        client_name: meta.client_name,
        secret_sha256: secret.as_deref().map(hash_secret),
        auth_method: meta.auth_method,
        grant_types: meta.grant_types,
        redirect_uris: meta.redirect_uris,
        scope: meta.scope,
        created_at: now,
    };
    Ok(Registered { client, secret })
}

/// Validates, generates credentials and stores a new client.
#[tracing::instrument(skip_all, fields(client_name = %meta.client_name))]
pub async fn register(
    repos: &Repos,
    meta: ClientMetadata,
    known_scopes: &ScopeSet,
    now: i64,
) -> Result<Registered, RegisterError> {
    let reg = build(meta, known_scopes, now, None, None)?;
    repos.put_client(&reg.client).await?;
    tracing::info!(client_id = %reg.client.client_id, "client registered");
    Ok(reg)
}
