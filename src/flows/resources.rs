//! RFC 8707 resources: lookups for the authorization and token endpoints and
//! introspection, and the registry operations behind `keygate resource`.
//!
//! `[[resources]]` from the config file live in memory and shadow stored
//! resources with the same (normalised) URI, as config clients do. Stored
//! resources are read on every request, never cached, so a change by the CLI
//! or another instance takes effect at once. A lookup of the requested
//! resources shares the client's round trip (`MGET`), so naming resources
//! adds no store round trip to any grant.

use super::FlowError;
use crate::oauth::resource::{Resource, ResourceId};
use crate::oauth::types::{Client, ScopeSet};
use crate::state::AppState;
use crate::store::repos::Repos;
use crate::store::StoreError;

/// Looks up a client (config first, then a client ID metadata document,
/// then the store; `None` for an over-long id) and the resources `ids`
/// (config first, then the store) together: at most one store round trip,
/// none when everything is in the config file.
pub async fn client_and_resources(
    state: &AppState,
    client_id: &str,
    ids: &[ResourceId],
) -> Result<(Option<Client>, Vec<Option<Resource>>), FlowError> {
    let config_client = match state.config_clients.get(client_id) {
        Some(c) => Some(c.clone()),
        None => super::client_documents::resolve(state, client_id).await?,
    };
    let lookup = (config_client.is_none() && client_id.len() <= 256).then_some(client_id);
    let (client, resources) = lookup_with(state, lookup, ids).await?;
    Ok((config_client.or(client), resources))
}

/// The resources `ids` (config first, then the store) and, when
/// `client_id` is given, the stored client, in one round trip at most.
async fn lookup_with(
    state: &AppState,
    client_id: Option<&str>,
    ids: &[ResourceId],
) -> Result<(Option<Client>, Vec<Option<Resource>>), FlowError> {
    let missing: Vec<&ResourceId> = ids
        .iter()
        .filter(|id| !state.config_resources.contains_key(*id))
        .collect();
    let (client, mut stored) = state
        .repos
        .client_and_resources(client_id, &missing)
        .await?;
    let mut stored = stored.drain(..);
    let resources = ids
        .iter()
        .map(|id| match state.config_resources.get(id) {
            Some(r) => Some(r.clone()),
            None => stored.next().flatten(),
        })
        .collect();
    Ok((client, resources))
}

/// The registered resources named by a token's `aud` (introspection: which
/// resource servers may see it). One round trip at most.
pub async fn for_audience(state: &AppState, aud: &[String]) -> Result<Vec<Resource>, FlowError> {
    let ids: Vec<ResourceId> = aud
        .iter()
        .filter_map(|a| ResourceId::parse(a).ok())
        .collect();
    let (_, found) = lookup_with(state, None, &ids).await?;
    Ok(found.into_iter().flatten().collect())
}

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// The URI, scopes or client are not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// No stored resource has this URI.
    #[error("no such resource in the store")]
    NotFound,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Registers (or replaces) a stored resource. `known` are `oauth.scopes`;
/// `client_id`, when given, must be a confidential client (config or store).
pub async fn add(
    repos: &Repos,
    known: &ScopeSet,
    config_clients: &[crate::config::ConfigClient],
    uri: &str,
    scopes: &str,
    name: Option<String>,
    client_id: Option<String>,
) -> Result<Resource, ResourceError> {
    ResourceId::parse_registered(uri).map_err(ResourceError::Invalid)?;
    let scopes = crate::config::resource_scopes(scopes, known)
        .map_err(|m| ResourceError::Invalid(format!("--scope: {m}")))?;
    if let Some(c) = &client_id {
        let confidential = match config_clients.iter().find(|k| &k.client_id == c) {
            Some(k) => Some(k.client_secret.is_some()),
            None => repos.client(c).await?.map(|k| k.is_confidential()),
        };
        match confidential {
            None => {
                return Err(ResourceError::Invalid(format!(
                    "--client-id: no client `{c}`"
                )))
            }
            Some(false) => {
                return Err(ResourceError::Invalid(format!(
                    "--client-id: `{c}` is a public client; introspection needs a confidential one"
                )))
            }
            Some(true) => {}
        }
    }
    let r = Resource {
        uri: uri.to_string(),
        scopes,
        name: name.filter(|n| !n.trim().is_empty()),
        client_id,
    };
    repos.put_resource(&r).await?;
    Ok(r)
}

/// Removes a stored resource (by any spelling of its URI).
pub async fn remove(repos: &Repos, uri: &str) -> Result<Resource, ResourceError> {
    let id = ResourceId::parse(uri).map_err(|e| ResourceError::Invalid(e.description.into()))?;
    let existing = repos.resource(&id).await?.ok_or(ResourceError::NotFound)?;
    if !repos.delete_resource(&id).await? {
        return Err(ResourceError::NotFound);
    }
    Ok(existing)
}
