//! Shared server state: cheap to clone, handed to every handler.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Validated;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::oauth::authorize::Policy;
use crate::oauth::types::Client;
use crate::store::repos::Repos;
use crate::store::repos::User;
use crate::store::Store;
use crate::tokens::Keys;

/// Everything a request needs.
#[derive(Clone)]
pub struct AppState {
    /// The key-value store.
    pub store: Store,
    /// Typed access to stored state.
    pub repos: Repos,
    /// Clients from `[[clients]]` in the config file (looked up before the store).
    pub config_clients: Arc<HashMap<String, Client>>,
    /// RFC 8707 resources from `[[resources]]` in the config file, by
    /// normalised URI (looked up before the store, which they shadow).
    pub config_resources:
        Arc<HashMap<crate::oauth::resource::ResourceId, crate::oauth::resource::Resource>>,
    /// The CORS origins of the public clients in `config_clients` (stored
    /// clients' origins are indexed in the store).
    pub config_origins: Arc<BTreeSet<String>>,
    /// Signing keys and the JWKS document.
    pub keys: Arc<Keys>,
    /// The only source of time.
    pub clock: Arc<dyn Clock>,
    /// Validated, typed settings (durations, enums, secrets that never print).
    pub cfg: Arc<Validated>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The RFC 8414 metadata document, serialised once.
    pub metadata: bytes::Bytes,
    /// Users from `[[users]]` in the config file, by lower-case username.
    pub config_users: Arc<HashMap<String, User>>,
    /// What the profile allows.
    pub policy: Policy,
    /// Key of the CSRF cookie protection (shared by instances through the store).
    pub csrf_key: [u8; 32],
    /// In-process rate limiters (`[limits]`).
    pub limits: Arc<Limits>,
    /// Client ID metadata documents: the fetcher and its in-process cache.
    pub documents: Arc<crate::flows::client_documents::ClientDocuments>,
    /// Serving, draining or closing: `/readyz` and the accept loops read it.
    pub lifecycle: Arc<crate::lifecycle::Lifecycle>,
}
