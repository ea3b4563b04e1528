//! The apps a user allowed (remembered consent, [`crate::oauth::consent`]):
//! the `/account/apps` page lists them and revokes one.

use super::FlowError;
use crate::oauth::types::ScopeSet;
use crate::state::AppState;

/// One allowed app as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedAppView {
    /// The client id.
    pub client_id: String,
    /// Its registered name; `None` when it is no longer registered.
    pub name: Option<String>,
    /// For a client ID metadata document's client: the host of its URL
    /// (its self-asserted name is not fetched for this page).
    pub document_host: Option<String>,
    /// Everything the user allowed it.
    pub scope: ScopeSet,
    /// The RFC 8707 resources the user allowed it to reach.
    pub resources: Vec<String>,
    /// When the user first allowed it.
    pub granted_at: i64,
}

/// The apps `user_id` allowed, by client id, with their names (config
/// clients and stored ones; one store read per stored client).
pub async fn list(state: &AppState, user_id: &str) -> Result<Vec<AllowedAppView>, FlowError> {
    let apps = state.repos.allowed_apps(user_id).await?;
    let mut views = Vec::with_capacity(apps.len());
    for (client_id, app) in apps {
        let document_host = super::client_documents::is_document_id(state, &client_id)
            .then(|| url::Url::parse(&client_id).ok())
            .flatten()
            .and_then(|u| u.host_str().map(str::to_string));
        let name = match state.config_clients.get(&client_id) {
            Some(c) => Some(c.client_name.clone()),
            None if document_host.is_some() => None,
            None => state.repos.client(&client_id).await?.map(|c| c.client_name),
        };
        views.push(AllowedAppView {
            client_id,
            name,
            document_host,
            scope: app.scope,
            resources: app.resources.into_iter().collect(),
            granted_at: app.granted_at,
        });
    }
    Ok(views)
}

/// Revokes what `user_id` allowed `client_id`: the client's refresh tokens
/// and codes for the user stop working at once, its access tokens for the
/// user are revoked (introspection, UserInfo, `/api/me`), and the next
/// authorization request asks for consent again. `false`: it was not allowed.
#[tracing::instrument(skip_all, fields(client_id = %client_id))]
pub async fn revoke(state: &AppState, user_id: &str, client_id: &str) -> Result<bool, FlowError> {
    let revoked = state.repos.forget_consent(user_id, client_id).await?;
    if revoked {
        tracing::info!(event = "app_revoked", user_id = %user_id, "the user revoked an app's access");
    }
    Ok(revoked)
}
