//! Async orchestration: load → call the pure core → persist → sign. The only
//! code that touches both the store and the OAuth core. Must not depend on poem.

pub mod apps;
pub mod authorize;
pub mod client_documents;
pub mod clients;
pub mod logout;
pub mod registration;
pub mod resource;
pub mod resources;
pub mod revoke;
pub mod token;
pub mod users;

use std::net::IpAddr;

use crate::oauth::OAuthError;
use crate::store::StoreError;
use crate::tokens::jwt::SignError;

/// A value a client sent, as a log field: at most 64 characters, with
/// control characters, quotes and backslashes escaped, so it can neither
/// forge a log line nor flood the log.
pub fn loggable(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(64)
        .flat_map(char::escape_debug)
        .collect();
    if value.chars().nth(64).is_some() {
        out.push('…');
    }
    out
}

/// The client IP address as a log field (`unknown` without one).
pub fn client_ip(peer: Option<IpAddr>) -> String {
    peer.map_or_else(|| "unknown".into(), |ip| ip.to_string())
}

/// Why a flow failed: a protocol error for the client, or an internal fault.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// An RFC error to send to the client.
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    /// The store failed (→ 503 `temporarily_unavailable`).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing failed (→ 500 `server_error`).
    #[error(transparent)]
    Signing(#[from] SignError),
    /// The client's metadata document (`client_id` is its URL) could not be
    /// fetched or is invalid: an error page at the authorization endpoint
    /// (never a redirect), `invalid_client` elsewhere.
    #[error("client metadata document refused: {0}")]
    ClientDocument(crate::oauth::client_document::DocumentError),
    /// A rate limit refused the request (→ 429 with `Retry-After`).
    #[error("rate limited; retry after {} s", .0 .0)]
    RateLimited(crate::limits::RetryAfter),
    /// Another internal fault (→ 500 `server_error`). The cause keeps its
    /// own source chain, which `http::errors` logs once with the 500.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl FlowError {
    /// An internal fault caused by `cause` (a string or any error).
    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal(cause.into())
    }
}
