//! Prometheus metrics (text exposition format): the build, requests by route
//! and status, request latency, tokens issued by grant, logins by outcome,
//! rate-limit refusals by limit, store calls and errors.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of `keygate_http_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route pattern from `http::routes` (e.g. `/clients/:id`): a bounded
    /// set; paths no route matches are `other`.
    pub route: &'static str,
    /// HTTP method ([`method_label`]).
    pub method: &'static str,
    /// Response status code.
    pub status: u16,
}

/// The `method` label: the standard methods by name, any other `other`, so
/// label cardinality stays bounded whatever clients send (and the label
/// costs no allocation).
pub fn method_label(method: &poem::http::Method) -> &'static str {
    use poem::http::Method;
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::HEAD, "HEAD"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::PATCH, "PATCH"),
        (Method::DELETE, "DELETE"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    KNOWN
        .iter()
        .find(|(m, _)| m == method)
        .map_or("other", |(_, name)| name)
}

/// Labels of route-only metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route pattern, as in [`RequestLabels`].
    pub route: &'static str,
}

/// Labels of `keygate_tokens_issued_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrantLabels {
    /// The grant type.
    pub grant_type: &'static str,
}

/// Labels of `keygate_logins_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `success`, `failure` (wrong username or password) or `limited`
    /// (refused by the failed-login limit before the password was checked).
    pub outcome: &'static str,
}

/// Labels of `keygate_rate_limited_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// The limit that refused the request (`login`, `signup`,
    /// `registration`, `client_auth_failures`, `public_client`, `client_ceiling`).
    pub limit: &'static str,
}

/// Labels of `keygate_build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// The crate version.
    pub version: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// All metrics and their registry.
pub struct Metrics {
    registry: Registry,
    /// Requests by route, method and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Latency by route, in seconds.
    pub latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// Access tokens issued by grant type.
    pub tokens_issued: Family<GrantLabels, Counter>,
    /// Store calls (round trips) by operation.
    pub store_calls: Family<StoreOpLabels, Counter>,
    /// Store calls that failed.
    pub store_errors: Counter,
    /// Back-channel logout deliveries abandoned after their last try.
    pub backchannel_logout_failures: Counter,
    /// Password checks (login form and password grant) by outcome.
    pub logins: Family<OutcomeLabels, Counter>,
    /// Requests refused by a rate limit, by limit.
    pub rate_limited: Family<LimitLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("keygate");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let tokens_issued = Family::<GrantLabels, Counter>::default();
        let store_calls = Family::<StoreOpLabels, Counter>::default();
        let store_errors = Counter::default();
        let backchannel_logout_failures = Counter::default();
        let logins = Family::<OutcomeLabels, Counter>::default();
        let rate_limited = Family::<LimitLabels, Counter>::default();
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register(
            "build_info",
            "The running keygate version (always 1)",
            build_info,
        );
        registry.register(
            "logins",
            "Password checks (login form and password grant) by outcome",
            logins.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused by a rate limit, by limit",
            rate_limited.clone(),
        );
        registry.register(
            "backchannel_logout_failures",
            "Back-channel logout tokens not delivered after every try",
            backchannel_logout_failures.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register(
            "tokens_issued",
            "Access tokens issued by grant type",
            tokens_issued.clone(),
        );
        registry.register(
            "store_calls",
            "Store calls (backend round trips) by operation",
            store_calls.clone(),
        );
        registry.register(
            "store_errors",
            "Store calls that failed or timed out",
            store_errors.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            tokens_issued,
            store_calls,
            store_errors,
            backchannel_logout_failures,
            logins,
            rate_limited,
        }
    }

    /// Counts a password check's outcome (`keygate_logins_total`).
    pub fn login(&self, outcome: &'static str) {
        self.logins.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Counts a refusal by the rate limit `limit` (`keygate_rate_limited_total`).
    pub fn limited(&self, limit: &'static str) {
        self.rate_limited
            .get_or_create(&LimitLabels { limit })
            .inc();
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Labels of `keygate_store_calls_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreOpLabels {
    /// The store operation (`get`, `get_many`, `swap`, …).
    pub op: &'static str,
}

/// A store wrapper that counts every call (one call is one backend round
/// trip) in `keygate_store_calls_total` and the failed ones in
/// `keygate_store_errors_total`.
pub struct InstrumentedStore {
    inner: crate::store::Store,
    calls: Family<StoreOpLabels, Counter>,
    errors: Counter,
}

impl InstrumentedStore {
    /// Wraps `inner`, counting into `metrics`.
    pub fn new(inner: crate::store::Store, metrics: &Metrics) -> Self {
        Self {
            inner,
            calls: metrics.store_calls.clone(),
            errors: metrics.store_errors.clone(),
        }
    }
    fn count<T>(&self, op: &'static str, r: Result<T, StoreError>) -> Result<T, StoreError> {
        self.calls.get_or_create(&StoreOpLabels { op }).inc();
        if r.is_err() {
            self.errors.inc();
        }
        r
    }
}

use crate::store::{KvStore, StoreError};

#[async_trait::async_trait]
impl KvStore for InstrumentedStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.count("get", self.inner.get(key).await)
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.count("get_many", self.inner.get_many(keys).await)
    }
    async fn put(
        &self,
        key: &str,
        val: &[u8],
        ttl: Option<std::time::Duration>,
    ) -> Result<(), StoreError> {
        self.count("put", self.inner.put(key, val, ttl).await)
    }
    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        self.count("delete", self.inner.delete(key).await)
    }
    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.count("scan_prefix", self.inner.scan_prefix(prefix).await)
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.count("ping", self.inner.ping().await)
    }
    async fn put_new(
        &self,
        key: &str,
        val: &[u8],
        ttl: Option<std::time::Duration>,
    ) -> Result<bool, StoreError> {
        self.count("put_new", self.inner.put_new(key, val, ttl).await)
    }
    async fn swap(&self, op: &crate::store::Swap<'_>) -> Result<bool, StoreError> {
        self.count("swap", self.inner.swap(op).await)
    }
    async fn rate(
        &self,
        key: &str,
        quota: crate::rate::Quota,
        cost: i64,
    ) -> Result<crate::rate::Decision, StoreError> {
        self.count("rate", self.inner.rate(key, quota, cost).await)
    }
    async fn sync_replicas(&self, key: &str) -> Result<bool, StoreError> {
        match self.inner.sync_replicas(key).await {
            // Nothing to wait for: no round trip to count.
            Ok(false) => Ok(false),
            r => self.count("wait", r),
        }
    }
    fn layout(&self) -> crate::store::Layout {
        self.inner.layout()
    }
    fn invalidations(&self) -> Option<std::sync::Arc<crate::store::invalidation::Invalidations>> {
        self.inner.invalidations()
    }
    async fn publish_invalidation(&self, id: &str) -> Result<(), StoreError> {
        // A backend without a feed publishes nothing: no round trip to count.
        if self.inner.invalidations().is_none() {
            return Ok(());
        }
        self.count("publish", self.inner.publish_invalidation(id).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_labels_are_the_standard_methods_or_other() {
        use poem::http::Method;
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(method_label(&Method::OPTIONS), "OPTIONS");
        let brew = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&brew), "other");
    }

    #[test]
    fn build_info_names_the_version() {
        let text = Metrics::new().render();
        let line = format!(
            "keygate_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.lines().any(|l| l == line), "{text}");
    }
}
