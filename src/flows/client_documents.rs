//! Client ID metadata documents (draft-ietf-oauth-client-id-metadata-document,
//! `registration.metadata_documents`): when on, a `client_id` that is a
//! Client Identifier URL names a public client whose metadata keygate
//! fetches from that URL, wherever a client is looked up (authorization,
//! token, revocation; introspection refuses it before any lookup, as it
//! refuses every public client). The rules are in
//! [`crate::oauth::client_document`]; this module fetches and caches.
//!
//! Fetching, as a production server must:
//! - `GET` over https only, no redirects followed, no proxy (a proxy would
//!   resolve the name itself), 200 only, a JSON content type, at most
//!   [`MAX_DOCUMENT_BYTES`] read, everything within [`FETCH_TIMEOUT`];
//! - SSRF (§8.6): a literal IP must be public
//!   ([`is_public_address`]); a name is resolved by keygate's own resolver,
//!   which hands the connector only the addresses that pass the same check,
//!   so there is no second lookup to rebind. `allow_private` (tests and
//!   development) turns the check off;
//! - the cache keeps a valid document's client for its `Cache-Control`
//!   lifetime within `[MIN_CACHE_SECS, max_cache_secs]`, nothing for
//!   `no-store`, and never a failure (§5.2); it holds at most
//!   [`MAX_CACHED_DOCUMENTS`] entries;
//! - concurrent requests for one URL share one fetch (single flight), and at
//!   most [`MAX_CONCURRENT_FETCHES`] fetches run at once.
//!
//! The cache is per process: instances behind a load balancer each fetch
//! (at most once per lifetime each). Nothing is written to the store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tokio::sync::{OnceCell, Semaphore};

use super::FlowError;
use crate::config::DocumentOptions;
use crate::oauth::client_document::{
    client_from_document, document_url, freshness, is_json_content_type, is_public_address,
    literal_ip, DocumentError, DocumentRules,
};
use crate::oauth::types::Client;
use crate::state::AppState;

/// The most bytes of a document read (§8.7 recommends 5 KiB).
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024;
/// The whole fetch (resolution, connection, TLS, headers, body).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The shortest time a valid document is kept, whatever its `max-age`: a
/// hostile `max-age=0` cannot make keygate fetch on every request.
pub const MIN_CACHE_SECS: u64 = 60;
/// Documents kept at most (one entry per client URL).
pub const MAX_CACHED_DOCUMENTS: usize = 1000;
/// Document fetches in flight at once, across all URLs.
pub const MAX_CONCURRENT_FETCHES: usize = 32;

/// A client read from a document, and until when it may be used.
#[derive(Debug, Clone)]
struct Cached {
    client: Client,
    /// Seconds since the epoch (from the state's clock).
    until: i64,
}

/// The outcome of one fetch, shared by everyone waiting for it.
type Flight = Arc<OnceCell<Result<Cached, DocumentError>>>;

/// The document fetcher and its cache (one per process, in `AppState`).
pub struct ClientDocuments {
    options: DocumentOptions,
    http: reqwest::Client,
    cache: DashMap<String, Cached>,
    in_flight: DashMap<String, Flight>,
    permits: Semaphore,
}

impl std::fmt::Debug for ClientDocuments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientDocuments")
            .field("options", &self.options)
            .field("cached", &self.cache.len())
            .finish_non_exhaustive()
    }
}

/// Why the fetcher could not be built (a bad CA file).
#[derive(Debug, thiserror::Error)]
#[error("registration.metadata_documents_ca_file: {0}")]
pub struct SetupError(String);

/// Whether a name resolved to addresses that may not be fetched from.
#[derive(Debug, thiserror::Error)]
#[error("{0} resolves to no public address")]
struct PrivateAddress(String);

/// The DNS resolver of the document client: the system resolver, then only
/// the addresses [`is_public_address`] accepts (all when `allow_private`).
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow_private || is_public_address(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(Box::new(PrivateAddress(host)) as Box<_>);
            }
            Ok(Box::new(found.into_iter()) as Addrs)
        })
    }
}

impl ClientDocuments {
    /// Builds the HTTP client (reading `options.ca_file`, if any).
    pub fn new(options: DocumentOptions) -> Result<Self, SetupError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .https_only(true)
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .user_agent(concat!("keygate/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver {
                allow_private: options.allow_private,
            }));
        if let Some(path) = &options.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| SetupError(format!("cannot read {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| SetupError(format!("{}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(SetupError(format!(
                    "{} holds no PEM certificate",
                    path.display()
                )));
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder
            .build()
            .map_err(|e| SetupError(format!("HTTP client: {e}")))?;
        Ok(Self {
            options,
            http,
            cache: DashMap::new(),
            in_flight: DashMap::new(),
            permits: Semaphore::new(MAX_CONCURRENT_FETCHES),
        })
    }

    /// Whether documents are on (`registration.metadata_documents`).
    pub fn enabled(&self) -> bool {
        self.options.enabled
    }

    /// Documents in the cache now (for tests and metrics).
    pub fn cached(&self) -> usize {
        self.cache.len()
    }
}

/// Whether `client_id` names a metadata document here: documents are on and
/// it is a Client Identifier URL ([`document_url`]).
pub fn is_document_id(state: &AppState, client_id: &str) -> bool {
    state.documents.enabled() && document_url(client_id).is_some()
}

/// The client a metadata document describes, when `client_id` names one
/// ([`is_document_id`]; `Ok(None)` otherwise, for the caller's usual
/// lookup). A document that cannot be fetched or is invalid is
/// [`FlowError::ClientDocument`]: an error page at the authorization
/// endpoint, `invalid_client` elsewhere. Never a store call.
#[tracing::instrument(skip_all, fields(client_id = %client_id))]
pub async fn resolve(state: &AppState, client_id: &str) -> Result<Option<Client>, FlowError> {
    if !state.documents.enabled() {
        return Ok(None);
    }
    let Some(url) = document_url(client_id) else {
        return Ok(None);
    };
    let docs = &state.documents;
    let now = state.clock.now();
    if let Some(c) = docs.cache.get(client_id).filter(|c| c.until > now) {
        return Ok(Some(c.client.clone()));
    }
    // Single flight: the first caller's fetch is everyone's. A failure is
    // shared with those already waiting, and then forgotten.
    let flight = docs
        .in_flight
        .entry(client_id.to_string())
        .or_default()
        .clone();
    let result = flight
        .get_or_init(|| async {
            // A flight that started after another one cached the document.
            match docs.cache.get(client_id).filter(|c| c.until > now) {
                Some(c) => Ok(c.clone()),
                None => fetch(state, &url).await,
            }
        })
        .await
        .clone();
    docs.in_flight
        .remove_if(client_id, |_, f| Arc::ptr_eq(f, &flight));
    match result {
        Ok(c) => Ok(Some(c.client)),
        Err(e) => {
            tracing::info!(event = "client_document_refused", reason = %e, "client metadata document refused");
            Err(FlowError::ClientDocument(e))
        }
    }
}

/// Fetches and validates the document at `url`, and caches a valid one.
async fn fetch(state: &AppState, url: &url::Url) -> Result<Cached, DocumentError> {
    let docs = &state.documents;
    let fetched = tokio::time::timeout(FETCH_TIMEOUT, async {
        let _permit = docs
            .permits
            .acquire()
            .await
            .map_err(|_| DocumentError("the document could not be fetched".into()))?;
        download(docs, url).await
    })
    .await
    .unwrap_or_else(|_| Err(timed_out()))?;
    let (body, fresh_for) = fetched;
    let rules = DocumentRules {
        client_rules: &state.cfg.client_rules,
        open_scopes: &state.cfg.registration.open_scopes,
    };
    let now = state.clock.now();
    let client = client_from_document(url, &body, rules, now)?;
    let cached = Cached {
        client,
        until: fresh_for.map_or(now, |s| {
            now.saturating_add(i64::try_from(s).unwrap_or(i64::MAX))
        }),
    };
    if fresh_for.is_some() {
        remember(docs, url.as_str(), cached.clone(), now);
    }
    tracing::info!(event = "client_document_fetched", client_id = %url, cache_secs = fresh_for.unwrap_or(0), "client metadata document fetched");
    Ok(cached)
}

fn timed_out() -> DocumentError {
    DocumentError(format!(
        "the document was not served within {} s",
        FETCH_TIMEOUT.as_secs()
    ))
}

/// The HTTP part: the body (at most [`MAX_DOCUMENT_BYTES`]) and how long it
/// may be cached (`None`: not at all).
async fn download(
    docs: &ClientDocuments,
    url: &url::Url,
) -> Result<(Vec<u8>, Option<u64>), DocumentError> {
    if let Some(ip) = literal_ip(url) {
        if !docs.options.allow_private && !is_public_address(ip) {
            return Err(DocumentError(format!(
                "the document's address {ip} is not a public address"
            )));
        }
    }
    let mut resp = docs
        .http
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| request_failed(&e))?;
    let status = resp.status();
    if status != reqwest::StatusCode::OK {
        return Err(DocumentError(format!(
            "fetching the document answered HTTP {} (a metadata document is served with 200, and redirects are not followed)",
            status.as_u16()
        )));
    }
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !is_json_content_type(content_type) {
        return Err(DocumentError(
            "the document is not served as application/json".into(),
        ));
    }
    let too_large = || {
        DocumentError(format!(
            "the document is larger than {MAX_DOCUMENT_BYTES} bytes"
        ))
    };
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(too_large());
    }
    let fresh_for = freshness(
        resp.headers()
            .get_all(reqwest::header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok()),
        MIN_CACHE_SECS,
        docs.options.max_cache_secs,
    );
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| request_failed(&e))? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, fresh_for))
}

/// Says why a request failed, in terms of the document (the address check,
/// a timeout, TLS or the connection), without keygate's network details.
fn request_failed(e: &reqwest::Error) -> DocumentError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(p) = s.downcast_ref::<PrivateAddress>() {
            return DocumentError(format!("the document's host {p}"));
        }
        source = s.source();
    }
    if e.is_timeout() {
        return timed_out();
    }
    tracing::debug!(error = ?e, "client document fetch failed");
    DocumentError("the document could not be fetched (connection or TLS failure)".into())
}

/// Caches `cached` under `url`, keeping at most [`MAX_CACHED_DOCUMENTS`]:
/// expired entries go first, then the one that expires soonest.
fn remember(docs: &ClientDocuments, url: &str, cached: Cached, now: i64) {
    if docs.cache.len() >= MAX_CACHED_DOCUMENTS && !docs.cache.contains_key(url) {
        docs.cache.retain(|_, c| c.until > now);
        if docs.cache.len() >= MAX_CACHED_DOCUMENTS {
            let soonest = docs
                .cache
                .iter()
                .min_by_key(|e| e.until)
                .map(|e| e.key().clone());
            if let Some(k) = soonest {
                docs.cache.remove(&k);
            }
        }
    }
    docs.cache.insert(url.to_string(), cached);
}
