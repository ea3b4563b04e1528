//! Validation: the raw [`Settings`] tree checked as a whole and turned into
//! [`Validated`], the typed settings the server runs with. Checks run in a
//! fixed order and the first failure is reported, naming its key.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::clients::{check_clients, check_resources, check_users};
use super::{ConfigError, Settings};
use crate::oauth::types::{is_loopback_url, ScopeSet};
use crate::rate::Quota;
use crate::tokens::keys::Rotation;

/// The protocol profile (SPEC.md "Profiles").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// OAuth 2.1: no implicit, no password grant, PKCE everywhere.
    OAuth21,
    /// Adds implicit and password for clients registered for them.
    Legacy,
}

/// The store backend chosen by `store.url`.
#[derive(Debug, Clone)]
pub enum StoreBackend {
    /// The embedded dashmap store.
    Memory,
    /// A Redis server; the URL may hold credentials, so it is a secret
    /// (`Debug` shows `[REDACTED]`) and is never logged.
    Redis(SecretString),
    /// A Redis Cluster (`redis+cluster://HOST:PORT,HOST:PORT…`, checked by
    /// [`crate::store::cluster::ClusterUrl::parse`]); a secret like `Redis`.
    RedisCluster(SecretString),
    /// The master of a Redis Sentinel deployment
    /// (`redis+sentinel://HOST:PORT,…/MASTER_NAME`, checked by
    /// [`crate::store::sentinel::SentinelUrl::parse`]); a secret like `Redis`.
    RedisSentinel(SecretString),
}

impl PartialEq for StoreBackend {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Memory, Self::Memory) => true,
            (Self::Redis(a), Self::Redis(b)) => a.expose_secret() == b.expose_secret(),
            (Self::RedisCluster(a), Self::RedisCluster(b))
            | (Self::RedisSentinel(a), Self::RedisSentinel(b)) => {
                a.expose_secret() == b.expose_secret()
            }
            _ => false,
        }
    }
}

impl Eq for StoreBackend {}

/// `log.format`: how log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[server]` after validation (the listener address and issuer are on
/// [`Validated`] itself).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Largest accepted request body in bytes (larger → 413).
    pub max_body_bytes: u64,
    /// Largest accepted request header section in bytes (larger → 431).
    pub max_header_bytes: u64,
    /// Time the server keeps serving, not ready, after SIGTERM/Ctrl-C.
    pub drain: Duration,
    /// Time in-flight requests get to finish once the listener is closed.
    pub shutdown_grace: Duration,
    /// Time a client gets to send a complete request head (also the
    /// keep-alive idle timeout).
    pub header_read_timeout: Duration,
    /// Time a client gets to send a complete request body.
    pub body_read_timeout: Duration,
    /// `server.trusted_proxies`: the peers whose `X-Forwarded-For` is
    /// believed ([`crate::limits::forwarded_client`]).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// Where `GET /metrics` is served (`[metrics]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsExposure {
    /// On the main listener, next to the API (the default).
    Main,
    /// Only on a listener of its own (`metrics.listen`), e.g. a private
    /// address the Prometheus scraper reaches and the internet does not.
    Separate(SocketAddr),
    /// Nowhere (`metrics.enabled = false`).
    Off,
}

/// `[store]` after validation, besides the backend.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Upper bound on one store call.
    pub timeout: Duration,
    /// Refuse to start on a Redis whose `maxmemory-policy` is not `noeviction`.
    pub require_noeviction: bool,
    /// Most keys the in-memory store holds.
    pub memory_max_entries: usize,
    /// `store.tls_*`: the files a `rediss://` connection verifies the server
    /// with and authenticates with (each checked to be readable PEM).
    pub tls: StoreTls,
    /// `store.wait_replicas`: the replicas that acknowledge single-use,
    /// rotation and revocation writes (0 with the memory store).
    pub durability: crate::store::Durability,
}

/// `store.tls_ca_file`, `store.tls_cert_file` and `store.tls_key_file` after
/// validation: readable PEM files of the right kind, set only with a
/// `rediss://` URL. Paths, not contents: the store reads them when it
/// connects (`store::redis::tls_certificates`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreTls {
    /// CA certificates that verify the Redis server instead of the built-in
    /// web roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (chain) and its private key, for servers with
    /// `tls-auth-clients yes`.
    pub client: Option<ClientCertFiles>,
}

/// A client certificate and its key (`store.tls_cert_file`, `store.tls_key_file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertFiles {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// `[keys]` after validation, besides the directory and the rotation timing.
#[derive(Debug, Clone)]
pub struct KeyOptions {
    /// Period of the key directory re-read; `None` = only on SIGHUP.
    pub reload_every: Option<Duration>,
    /// `Cache-Control: max-age` of the JWKS document.
    pub jwks_max_age: Duration,
}

/// `[tokens]` lifetimes (the audience is on [`Validated`] itself).
#[derive(Debug, Clone)]
pub struct TokenOptions {
    /// Access token lifetime.
    pub access_ttl: Duration,
    /// Refresh token lifetime.
    pub refresh_ttl: Duration,
    /// Authorization code lifetime.
    pub code_ttl: Duration,
    /// Window after a refresh token's rotation in which a retry by the same
    /// client gets the same successor pair; zero = off.
    pub refresh_grace: Duration,
}

/// `[session]` after validation.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Login session lifetime.
    pub ttl: Duration,
}

/// `[ui]` after validation.
#[derive(Debug, Clone)]
pub struct UiOptions {
    /// Whether anyone may create an account at `/signup`.
    pub signup: bool,
    /// `oauth.scope_descriptions`: the consent page's wording of scopes
    /// without a built-in one.
    pub scope_descriptions: std::collections::BTreeMap<String, String>,
}

/// `[log]` after validation.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// Line format.
    pub format: LogFormat,
    /// Default filter when `RUST_LOG` is unset (`EnvFilter` syntax).
    pub level: String,
}

/// `[limits]` after validation, as GCRA quotas.
#[derive(Debug, Clone)]
pub struct LimitOptions {
    /// Off switch for every rate limit below.
    pub enabled: bool,
    /// Failed client authentications per (`client_id`, IP address).
    pub auth_failures: Quota,
    /// Failed client authentications per IP address.
    pub ip_auth_failures: Quota,
    /// Token requests of a public client per (`client_id`, IP address).
    pub public: Quota,
    /// Token requests per confidential client; `None`: no ceiling.
    pub client: Option<Quota>,
    /// Failed logins per (IP address, username), shared through the store.
    pub login: Quota,
    /// Sign-ups per IP address, shared through the store.
    pub signup: Quota,
    /// Anonymous client registrations per IP address, shared through the store.
    pub registration: Quota,
    /// Period of the sweep that forgets idle in-process limiter keys.
    pub sweep_every: Duration,
}

/// `[registration]` after validation.
#[derive(Debug, Clone)]
pub struct RegistrationOptions {
    /// Initial access tokens for `POST /oauth/register` (each ≥ 16
    /// characters).
    pub initial_access_tokens: Vec<SecretString>,
    /// Anonymous registration (RFC 7591 without a token) within limits.
    pub open: bool,
    /// What an anonymous registration may ask for (⊆ `oauth.scopes`), and
    /// gets when it asks for nothing.
    pub open_scopes: crate::oauth::types::ScopeSet,
    /// Lifetime of an unused anonymously registered client, in seconds.
    pub open_client_ttl: i64,
    /// Client ID metadata documents (`registration.metadata_documents*`).
    pub documents: DocumentOptions,
}

/// `registration.metadata_documents*` after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentOptions {
    /// An https URL used as `client_id` is fetched as the client's metadata.
    pub enabled: bool,
    /// The longest a fetched document is used, in seconds (≥ 1).
    pub max_cache_secs: u64,
    /// Tests and development only: no SSRF address check.
    pub allow_private: bool,
    /// Tests and development only: extra trusted CA certificates (PEM).
    pub ca_file: Option<PathBuf>,
}

impl RegistrationOptions {
    /// Whether `POST /oauth/register` can succeed at all (and is advertised
    /// in the metadata): open, or at least one initial access token.
    pub fn possible(&self) -> bool {
        self.open || !self.initial_access_tokens.is_empty()
    }
}

/// Settings after validation, in the types the server uses.
#[derive(Debug, Clone)]
pub struct Validated {
    /// Address to bind.
    pub listen: SocketAddr,
    /// Issuer URL without a trailing slash.
    pub issuer: String,
    /// Whether the issuer's host is a loopback address (dev mode).
    pub issuer_is_loopback: bool,
    /// Why dev credentials (plain-text `[[clients]]` secrets, the demo
    /// user's published password hash) are refused: `server.issuer` or
    /// `server.listen` is not loopback. `None` in dev mode.
    pub dev_refusal: Option<String>,
    /// Access token audience.
    pub audience: String,
    /// The store backend.
    pub store: StoreBackend,
    /// Store call timeout and memory-store bound.
    pub store_options: StoreOptions,
    /// The protocol profile.
    pub profile: Profile,
    /// Accept PKCE `code_challenge_method=plain` (RFC 7636).
    pub allow_plain_pkce: bool,
    /// Rules every client's metadata must follow.
    pub client_rules: crate::oauth::client_meta::Rules,
    /// Keys directory.
    pub keys_dir: PathBuf,
    /// When keys start signing and may be deleted.
    pub rotation: Rotation,
    /// Key reload period and JWKS caching.
    pub keys: KeyOptions,
    /// Body and header limits, timeouts.
    pub server: ServerOptions,
    /// Token lifetimes.
    pub tokens: TokenOptions,
    /// Login sessions.
    pub session: SessionOptions,
    /// HTML pages.
    pub ui: UiOptions,
    /// Logging.
    pub log: LogOptions,
    /// Rate limits (in process and shared through the store).
    pub limits: LimitOptions,
    /// Where `/metrics` is served.
    pub metrics: MetricsExposure,
    /// Dynamic client registration.
    pub registration: RegistrationOptions,
    /// `[[resources]]` (RFC 8707), checked.
    pub resources: Vec<crate::oauth::resource::Resource>,
}

impl Settings {
    /// The store backend `store.url` names (checked as [`Settings::validate`] does).
    pub fn store_backend(&self) -> Result<StoreBackend, ConfigError> {
        parse_store_url(&self.store.url)
    }

    /// `store.tls_*` checked as [`Settings::validate`] does: each file set
    /// only with a `rediss://` URL, the certificate and key together, and
    /// every file readable PEM of its kind. Reads the files (a few KiB).
    pub fn store_tls(&self) -> Result<StoreTls, ConfigError> {
        let path = |raw: &str| {
            Some(raw.trim())
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
        };
        let ca = path(&self.store.tls_ca_file);
        let cert = path(&self.store.tls_cert_file);
        let key = path(&self.store.tls_key_file);
        let set = [
            ("store.tls_ca_file", ca.is_some()),
            ("store.tls_cert_file", cert.is_some()),
            ("store.tls_key_file", key.is_some()),
        ];
        if let Some((name, _)) = set.iter().find(|(_, on)| *on) {
            let scheme = self.store.url.split(':').next().unwrap_or_default();
            if scheme.to_ascii_lowercase().ends_with("+cluster") {
                return Err(ConfigError::new(
                    *name,
                    "is not supported with a Redis Cluster URL yet: `rediss+cluster://` verifies the nodes against the built-in web roots (remove the setting, or use a single `rediss://` Redis)",
                ));
            }
            if !url_uses_tls(&self.store.url) {
                return Err(ConfigError::new(
                    *name,
                    "is set, but store.url is not a `rediss://` URL: the TLS files apply only to TLS connections (use `rediss://`, or remove the setting)",
                ));
            }
        }
        let client =
            match (cert, key) {
                (Some(cert_file), Some(key_file)) => Some(ClientCertFiles {
                    cert_file,
                    key_file,
                }),
                (None, None) => None,
                (Some(_), None) => return Err(ConfigError::new(
                    "store.tls_key_file",
                    "must be set with store.tls_cert_file (the client certificate's private key)",
                )),
                (None, Some(_)) => {
                    return Err(ConfigError::new(
                        "store.tls_cert_file",
                        "must be set with store.tls_key_file (the private key's certificate)",
                    ))
                }
            };
        if let Some(ca) = &ca {
            check_pem("store.tls_ca_file", ca, PemKind::Certificates)?;
        }
        if let Some(c) = &client {
            check_pem("store.tls_cert_file", &c.cert_file, PemKind::Certificates)?;
            check_pem("store.tls_key_file", &c.key_file, PemKind::PrivateKey)?;
        }
        Ok(StoreTls {
            ca_file: ca,
            client,
        })
    }

    /// Checks every setting and converts to the types the server runs with;
    /// the first problem (in the order of [`Settings::validate_all`]).
    pub fn validate(&self) -> Result<Validated, ConfigError> {
        self.validate_all().map_err(|mut all| all.swap_remove(0))
    }

    /// Checks every setting and converts to the types the server runs with,
    /// or every problem found, each naming its key (`keygate check-config`
    /// lists them all). A setting that failed stands in with a harmless
    /// value so that the checks after it still run.
    pub fn validate_all(&self) -> Result<Validated, Vec<ConfigError>> {
        let mut errs: Vec<ConfigError> = vec![];
        let listen: SocketAddr = self.server.listen.parse().unwrap_or_else(|_| {
            errs.push(ConfigError::new(
                "server.listen",
                format!("`{}` is not an IP:port socket address", self.server.listen),
            ));
            SocketAddr::from(([127, 0, 0, 1], 0))
        });
        let issuer = parse_issuer(&self.server.issuer).unwrap_or_else(|e| {
            errs.push(e);
            self.server.issuer.clone()
        });
        let issuer_is_loopback = is_loopback_url(&issuer);
        let audience = if self.tokens.audience.is_empty() {
            issuer.clone()
        } else {
            self.tokens.audience.clone()
        };
        let store = parse_store_url(&self.store.url).unwrap_or_else(|e| {
            errs.push(e);
            StoreBackend::Memory
        });
        let store_tls = self.store_tls().unwrap_or_else(|e| {
            errs.push(e);
            StoreTls::default()
        });
        if self.store.memory_max_entries == 0 {
            errs.push(ConfigError::new(
                "store.memory_max_entries",
                "must be at least 1",
            ));
        }
        if self.store.timeout_ms == 0 {
            errs.push(ConfigError::new("store.timeout_ms", "must be at least 1"));
        }
        if self.store.wait_replicas > 0
            && store == StoreBackend::Memory
            && self.store.url == "memory"
        {
            errs.push(ConfigError::new(
                "store.wait_replicas",
                "needs a Redis store with replicas: the memory store has none (set 0, or store.url to Redis)",
            ));
        }
        let profile = match self.oauth.profile.as_str() {
            "oauth21" => Profile::OAuth21,
            "legacy" => Profile::Legacy,
            other => {
                errs.push(ConfigError::new(
                    "oauth.profile",
                    format!("must be `oauth21` or `legacy` (got `{other}`)"),
                ));
                Profile::OAuth21
            }
        };
        let scopes = ScopeSet::parse(&self.oauth.scopes.join(" ")).unwrap_or_else(|e| {
            errs.push(ConfigError::new("oauth.scopes", e.description.to_string()));
            ScopeSet::default()
        });
        for (scope, text) in &self.oauth.scope_descriptions {
            let key = format!("oauth.scope_descriptions.{scope}");
            if !scopes.contains(scope) {
                errs.push(ConfigError::new(key, "is not one of oauth.scopes"));
            } else if text.trim().is_empty()
                || text.chars().count() > 200
                || text.chars().any(char::is_control)
            {
                errs.push(ConfigError::new(
                    key,
                    "must be 1 to 200 characters without control characters",
                ));
            }
        }
        let open_scopes =
            ScopeSet::parse(&self.registration.open_scopes.join(" ")).unwrap_or_else(|e| {
                errs.push(ConfigError::new(
                    "registration.open_scopes",
                    e.description.to_string(),
                ));
                ScopeSet::default()
            });
        // Checked only when open: the defaults must not stop a server whose
        // `oauth.scopes` lack `profile` or `email` from starting closed.
        let unknown = open_scopes.iter().find(|s| !scopes.contains(s));
        let uses_open_scopes = self.registration.open || self.registration.metadata_documents;
        if let Some(unknown) = unknown.filter(|_| uses_open_scopes) {
            errs.push(ConfigError::new(
                "registration.open_scopes",
                format!("`{unknown}` is not one of oauth.scopes"),
            ));
        }
        for (key, v) in [
            ("tokens.access_ttl", self.tokens.access_ttl),
            ("tokens.refresh_ttl", self.tokens.refresh_ttl),
            ("tokens.code_ttl", self.tokens.code_ttl),
            ("server.max_body_bytes", self.server.max_body_bytes),
            ("server.max_header_bytes", self.server.max_header_bytes),
            (
                "server.header_read_timeout_secs",
                self.server.header_read_timeout_secs,
            ),
            (
                "server.body_read_timeout_secs",
                self.server.body_read_timeout_secs,
            ),
            ("keys.jwks_max_age", self.keys.jwks_max_age),
            (
                "limits.auth_failures_per_minute",
                self.limits.auth_failures_per_minute.into(),
            ),
            (
                "limits.auth_failures_burst",
                self.limits.auth_failures_burst.into(),
            ),
            (
                "limits.ip_auth_failures_per_minute",
                self.limits.ip_auth_failures_per_minute.into(),
            ),
            (
                "limits.ip_auth_failures_burst",
                self.limits.ip_auth_failures_burst.into(),
            ),
            (
                "limits.public_per_second",
                self.limits.public_per_second.into(),
            ),
            ("limits.public_burst", self.limits.public_burst.into()),
            ("limits.client_burst", self.limits.client_burst.into()),
            (
                "limits.login_per_minute",
                self.limits.login_per_minute.into(),
            ),
            ("limits.login_burst", self.limits.login_burst.into()),
            ("limits.signup_per_hour", self.limits.signup_per_hour.into()),
            ("limits.signup_burst", self.limits.signup_burst.into()),
            (
                "limits.registration_per_hour",
                self.limits.registration_per_hour.into(),
            ),
            (
                "limits.registration_burst",
                self.limits.registration_burst.into(),
            ),
            (
                "registration.open_client_ttl",
                self.registration.open_client_ttl,
            ),
            (
                "registration.metadata_documents_max_cache_secs",
                self.registration.metadata_documents_max_cache_secs,
            ),
            ("limits.sweep_secs", self.limits.sweep_secs),
        ] {
            if v == 0 {
                errs.push(ConfigError::new(key, "must be greater than 0"));
            }
        }
        // A drain is a few health-check intervals; hours are a unit mistake
        // (milliseconds?) that would keep a stopping process around.
        if self.server.drain_secs > MAX_DRAIN_SECS {
            errs.push(ConfigError::new(
                "server.drain_secs",
                format!(
                    "must be at most {MAX_DRAIN_SECS} (seconds; a load balancer needs its \
                     health-check interval × unhealthy threshold, typically 5 to 30)"
                ),
            ));
        }
        let metrics = match (self.metrics.enabled, self.metrics.listen.trim()) {
            (false, _) => MetricsExposure::Off,
            (true, "") => MetricsExposure::Main,
            (true, raw) => match raw.parse::<SocketAddr>() {
                Err(_) => {
                    errs.push(ConfigError::new(
                        "metrics.listen",
                        format!(
                            "`{raw}` is not an IP:port socket address (or \"\" for server.listen)"
                        ),
                    ));
                    MetricsExposure::Off
                }
                Ok(addr) if addr == listen && addr.port() != 0 => {
                    errs.push(ConfigError::new(
                        "metrics.listen",
                        "must differ from server.listen (use \"\" to serve /metrics there)",
                    ));
                    MetricsExposure::Off
                }
                Ok(addr) => MetricsExposure::Separate(addr),
            },
        };
        let trusted_proxies = self
            .server
            .trusted_proxies
            .iter()
            .enumerate()
            .filter_map(|(i, raw)| {
                let net = parse_proxy(raw);
                if net.is_none() {
                    errs.push(ConfigError::new(
                        format!("server.trusted_proxies[{i}]"),
                        format!("`{raw}` is not an IP address or CIDR block (e.g. 10.0.0.7 or 10.0.0.0/24)"),
                    ));
                }
                net
            })
            .collect();
        let log_format = match self.log.format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => {
                errs.push(ConfigError::new("log.format", "must be `text` or `json`"));
                LogFormat::Text
            }
        };
        if self.keys.dir.is_empty() {
            errs.push(ConfigError::new("keys.dir", "must not be empty"));
        }
        if self.keys.activation_delay_secs < self.keys.jwks_max_age {
            errs.push(ConfigError::new(
                "keys.activation_delay_secs",
                format!(
                    "must be at least keys.jwks_max_age ({}): a verifier with a cached JWKS would not know a new key's first tokens",
                    self.keys.jwks_max_age
                ),
            ));
        }
        for (i, t) in self.registration.initial_access_tokens.iter().enumerate() {
            if t.expose_secret().len() < 16 {
                errs.push(ConfigError::new(
                    format!("registration.initial_access_tokens[{i}]"),
                    "must be at least 16 characters",
                ));
            }
        }
        let client_rules = crate::oauth::client_meta::Rules {
            scopes,
            http_loopback_redirects: self.oauth.http_loopback_redirects,
            legacy_grants: profile == Profile::Legacy,
            signing_algs: vec![],
        };
        let dev_refusal = dev_refusal(issuer_is_loopback, listen);
        check_clients(
            &self.clients,
            &client_rules.for_config_file(),
            dev_refusal.as_deref(),
            &mut errs,
        );
        check_users(&self.users, dev_refusal.as_deref(), &mut errs);
        let resources = check_resources(
            &self.resources,
            &client_rules.scopes,
            &self.clients,
            &mut errs,
        );
        if self.session.ttl == 0 {
            errs.push(ConfigError::new("session.ttl", "must be greater than 0"));
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        let seconds = Duration::from_secs;
        // Zero rates and bursts were refused above; MIN is never used.
        let nonzero = |v: u32| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
        let quota = |period: Duration, count: u32, burst: u32| {
            Quota::new(period, nonzero(count), nonzero(burst))
        };
        const SECOND: Duration = Duration::from_secs(1);
        const MINUTE: Duration = Duration::from_secs(60);
        const HOUR: Duration = Duration::from_secs(3600);
        Ok(Validated {
            listen,
            issuer,
            issuer_is_loopback,
            dev_refusal,
            audience,
            store,
            store_options: StoreOptions {
                timeout: Duration::from_millis(self.store.timeout_ms),
                require_noeviction: self.store.require_noeviction,
                memory_max_entries: usize::try_from(self.store.memory_max_entries)
                    .unwrap_or(usize::MAX),
                tls: store_tls,
                durability: crate::store::Durability::new(
                    self.store.wait_replicas,
                    Duration::from_millis(self.store.timeout_ms),
                ),
            },
            profile,
            allow_plain_pkce: self.oauth.allow_plain_pkce,
            client_rules,
            keys_dir: PathBuf::from(&self.keys.dir),
            rotation: Rotation {
                activation_delay: secs(self.keys.activation_delay_secs),
                // A retired key outlives its last token by one JWKS lifetime:
                // room for clock skew between instances and a late reload.
                retention: secs(self.tokens.access_ttl)
                    .saturating_add(secs(self.keys.jwks_max_age)),
            },
            keys: KeyOptions {
                reload_every: (self.keys.reload_secs > 0).then(|| seconds(self.keys.reload_secs)),
                jwks_max_age: seconds(self.keys.jwks_max_age),
            },
            server: ServerOptions {
                max_body_bytes: self.server.max_body_bytes,
                max_header_bytes: self.server.max_header_bytes,
                drain: seconds(self.server.drain_secs),
                shutdown_grace: seconds(self.server.shutdown_grace_secs),
                header_read_timeout: seconds(self.server.header_read_timeout_secs),
                body_read_timeout: seconds(self.server.body_read_timeout_secs),
                trusted_proxies,
            },
            tokens: TokenOptions {
                access_ttl: seconds(self.tokens.access_ttl),
                refresh_ttl: seconds(self.tokens.refresh_ttl),
                code_ttl: seconds(self.tokens.code_ttl),
                refresh_grace: seconds(self.tokens.refresh_grace_secs),
            },
            session: SessionOptions {
                ttl: seconds(self.session.ttl),
            },
            ui: UiOptions {
                signup: self.ui.signup,
                scope_descriptions: self.oauth.scope_descriptions.clone(),
            },
            log: LogOptions {
                format: log_format,
                level: self.log.level.clone(),
            },
            metrics,
            limits: LimitOptions {
                enabled: self.limits.enabled,
                auth_failures: quota(
                    MINUTE,
                    self.limits.auth_failures_per_minute,
                    self.limits.auth_failures_burst,
                ),
                ip_auth_failures: quota(
                    MINUTE,
                    self.limits.ip_auth_failures_per_minute,
                    self.limits.ip_auth_failures_burst,
                ),
                public: quota(
                    SECOND,
                    self.limits.public_per_second,
                    self.limits.public_burst,
                ),
                client: (self.limits.client_per_second > 0).then(|| {
                    quota(
                        SECOND,
                        self.limits.client_per_second,
                        self.limits.client_burst,
                    )
                }),
                login: quota(
                    MINUTE,
                    self.limits.login_per_minute,
                    self.limits.login_burst,
                ),
                signup: quota(HOUR, self.limits.signup_per_hour, self.limits.signup_burst),
                registration: quota(
                    HOUR,
                    self.limits.registration_per_hour,
                    self.limits.registration_burst,
                ),
                sweep_every: seconds(self.limits.sweep_secs),
            },
            registration: RegistrationOptions {
                initial_access_tokens: self.registration.initial_access_tokens.clone(),
                open: self.registration.open,
                open_scopes,
                open_client_ttl: secs(self.registration.open_client_ttl),
                documents: DocumentOptions {
                    enabled: self.registration.metadata_documents,
                    max_cache_secs: self.registration.metadata_documents_max_cache_secs,
                    allow_private: self.registration.metadata_documents_allow_private,
                    ca_file: Some(self.registration.metadata_documents_ca_file.trim())
                        .filter(|f| !f.is_empty())
                        .map(PathBuf::from),
                },
            },
            resources,
        })
    }
}

/// Why dev credentials are refused, or `None` when both the issuer and the
/// listen address are loopback (a wildcard address such as `0.0.0.0` is not:
/// it listens on every interface).
pub(super) fn dev_refusal(issuer_is_loopback: bool, listen: SocketAddr) -> Option<String> {
    if !issuer_is_loopback {
        Some("server.issuer is not a loopback URL".into())
    } else if !listen.ip().is_loopback() {
        Some(format!(
            "server.listen `{listen}` is not a loopback address"
        ))
    } else {
        None
    }
}

impl StoreBackend {
    /// How the store is named in logs and reports: `memory`, or the Redis URL
    /// with any password replaced by `REDACTED` (the URL itself is a secret).
    pub fn redacted(&self) -> String {
        match self {
            StoreBackend::Memory => "memory".into(),
            StoreBackend::Redis(url) => redact_url(url.expose_secret()),
            StoreBackend::RedisCluster(url) => {
                crate::store::cluster::ClusterUrl::parse(url.expose_secret())
                    .map_or_else(|_| "(unparsable URL)".into(), |u| u.redacted())
            }
            StoreBackend::RedisSentinel(url) => {
                crate::store::sentinel::SentinelUrl::parse(url.expose_secret())
                    .map_or_else(|_| "(unparsable URL)".into(), |u| u.redacted())
            }
        }
    }
}

/// `url` with its password (if any) replaced by `REDACTED`; an unparsable
/// URL is not echoed at all.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("REDACTED"));
            }
            u.to_string()
        }
        Err(_) => "(unparsable URL)".into(),
    }
}

/// Longest accepted `server.drain_secs`.
const MAX_DRAIN_SECS: u64 = 3600;

fn secs(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A trusted proxy: an address (a one-address block) or a CIDR block.
fn parse_proxy(raw: &str) -> Option<ipnet::IpNet> {
    let raw = raw.trim();
    raw.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| raw.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

fn parse_issuer(raw: &str) -> Result<String, ConfigError> {
    let bad = |why: &str| ConfigError::new("server.issuer", format!("`{raw}` {why}"));
    let url = url::Url::parse(raw).map_err(|_| bad("is not an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(bad("must be an absolute http(s) URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment (RFC 8414 §2)"));
    }
    if url.scheme() == "http" && !is_loopback_url(raw) {
        return Err(bad("must use https unless the host is a loopback address"));
    }
    Ok(raw.trim_end_matches('/').to_string())
}

/// Whether `url` asks for TLS: `rediss://`, or a `rediss+…://` form.
fn url_uses_tls(url: &str) -> bool {
    let scheme = url.split(':').next().unwrap_or_default();
    scheme.eq_ignore_ascii_case("rediss") || scheme.to_ascii_lowercase().starts_with("rediss+")
}

/// What a `store.tls_*` file must hold.
#[derive(Clone, Copy)]
enum PemKind {
    /// One or more `CERTIFICATE` blocks (a CA bundle or a chain).
    Certificates,
    /// One private key block (PKCS#8, PKCS#1 RSA or SEC1 EC).
    PrivateKey,
}

/// Checks that `path` is a readable PEM file of `kind`. The messages name the
/// file, never its contents (a key file is a secret).
fn check_pem(key: &str, path: &std::path::Path, kind: PemKind) -> Result<(), ConfigError> {
    let shown = path.display();
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError::new(key, format!("cannot read `{shown}`: {e}")))?;
    let blocks = pem::parse_many(&bytes).map_err(|_| {
        ConfigError::new(key, format!("`{shown}` is not a PEM file (malformed PEM)"))
    })?;
    let tags: Vec<&str> = blocks.iter().map(pem::Pem::tag).collect();
    match kind {
        PemKind::Certificates => {
            if tags.is_empty() || tags.iter().any(|t| *t != "CERTIFICATE") {
                return Err(ConfigError::new(
                    key,
                    format!(
                        "`{shown}` must hold PEM `CERTIFICATE` blocks only (found {})",
                        describe_tags(&tags)
                    ),
                ));
            }
        }
        PemKind::PrivateKey => {
            const KEYS: [&str; 3] = ["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"];
            if tags.len() != 1 || !KEYS.contains(&tags[0]) {
                return Err(ConfigError::new(
                    key,
                    format!(
                        "`{shown}` must hold one PEM private key (`PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`; found {})",
                        describe_tags(&tags)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// `no PEM block`, or the blocks' labels: `` `CERTIFICATE`, `PRIVATE KEY` ``.
fn describe_tags(tags: &[&str]) -> String {
    if tags.is_empty() {
        "no PEM block".into()
    } else {
        tags.iter()
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn parse_store_url(raw: &str) -> Result<StoreBackend, ConfigError> {
    if raw == "memory" {
        return Ok(StoreBackend::Memory);
    }
    // Never echo the URL: it may carry a password.
    let scheme = raw.split(':').next().unwrap_or_default();
    let bad = |why: &str| ConfigError::new("store.url", why.to_string());
    if matches!(scheme, "redis+cluster" | "rediss+cluster") {
        return match crate::store::cluster::ClusterUrl::parse(raw) {
            Ok(_) => Ok(StoreBackend::RedisCluster(SecretString::from(raw))),
            Err(why) => Err(bad(&why)),
        };
    }
    if matches!(scheme, "redis+sentinel" | "rediss+sentinel") {
        return match crate::store::sentinel::SentinelUrl::parse(raw) {
            Ok(_) => Ok(StoreBackend::RedisSentinel(SecretString::from(raw))),
            Err(why) => Err(bad(&why)),
        };
    }
    match url::Url::parse(raw) {
        Ok(u) if matches!(u.scheme(), "redis" | "rediss") && u.fragment() == Some("insecure") => {
            Err(bad("`#insecure` (no verification of the Redis server's certificate) is not supported: set store.tls_ca_file to the CA that signed it"))
        }
        Ok(u) if matches!(u.scheme(), "redis" | "rediss") && u.host().is_some() => {
            Ok(StoreBackend::Redis(SecretString::from(raw)))
        }
        Ok(u) if matches!(u.scheme(), "redis" | "rediss") => Err(bad("the Redis URL has no host")),
        _ => Err(bad(&format!(
            "must be `memory`, `redis://…`, `rediss://…`, `redis+cluster://HOST:PORT,HOST:PORT…` or `redis+sentinel://HOST:PORT,HOST:PORT…/MASTER_NAME` (got a `{}` URL)",
            if scheme.len() > 16 {
                "malformed"
            } else {
                scheme
            }
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_env as env;

    #[test]
    fn defaults_validate() {
        let s = Settings::load(None, vec![]).unwrap();
        let v = s.validate().unwrap();
        assert_eq!(v.issuer, "http://127.0.0.1:8080");
        assert_eq!(v.audience, v.issuer);
        assert_eq!(v.store, StoreBackend::Memory);
        assert_eq!(v.profile, Profile::OAuth21);
    }

    #[test]
    fn validation_names_the_key() {
        let cases: &[(&str, &str, &str)] = &[
            ("KEYGATE_SERVER_ISSUER", "not a url", "server.issuer"),
            (
                "KEYGATE_SERVER_ISSUER",
                "http://auth.example.com",
                "server.issuer",
            ),
            (
                "KEYGATE_SERVER_ISSUER",
                "https://a.example/?x=1",
                "server.issuer",
            ),
            ("KEYGATE_STORE_URL", "mysql://u:secretpw@h/db", "store.url"),
            (
                "KEYGATE_STORE_URL",
                "redis+cluster://h1:7000,u:secretpw@h2:7001",
                "store.url",
            ),
            (
                "KEYGATE_STORE_URL",
                "redis+cluster://u:secretpw@",
                "store.url",
            ),
            ("KEYGATE_SERVER_LISTEN", "localhost", "server.listen"),
            ("KEYGATE_OAUTH_PROFILE", "oauth3", "oauth.profile"),
            ("KEYGATE_TOKENS_ACCESS_TTL", "0", "tokens.access_ttl"),
            (
                "KEYGATE_REGISTRATION_OPEN_SCOPES",
                "profile a\"b",
                "registration.open_scopes",
            ),
            (
                "KEYGATE_REGISTRATION_OPEN_CLIENT_TTL",
                "0",
                "registration.open_client_ttl",
            ),
            (
                "KEYGATE_LIMITS_REGISTRATION_PER_HOUR",
                "0",
                "limits.registration_per_hour",
            ),
            (
                "KEYGATE_REGISTRATION_METADATA_DOCUMENTS_MAX_CACHE_SECS",
                "0",
                "registration.metadata_documents_max_cache_secs",
            ),
            (
                "KEYGATE_KEYS_ACTIVATION_DELAY_SECS",
                "299",
                "keys.activation_delay_secs",
            ),
            ("KEYGATE_SERVER_DRAIN_SECS", "3601", "server.drain_secs"),
        ];
        for (var, val, key) in cases {
            let e = Settings::load(None, env(&[(var, val)]))
                .unwrap()
                .validate()
                .unwrap_err();
            assert_eq!(&e.key, key);
            assert!(!e.to_string().contains("secretpw"));
        }
    }

    #[test]
    fn cluster_store_urls_validate_and_print_redacted() {
        let v = Settings::load(
            None,
            env(&[(
                "KEYGATE_STORE_URL",
                "redis+cluster://kg:secretpw@10.0.0.1:7000,10.0.0.2:7001",
            )]),
        )
        .unwrap()
        .validate()
        .unwrap();
        assert!(matches!(v.store, StoreBackend::RedisCluster(_)));
        assert_eq!(
            v.store.redacted(),
            "redis+cluster://kg:REDACTED@10.0.0.1:7000,10.0.0.2:7001"
        );
        assert!(!format!("{v:?}").contains("secretpw"));
        let e = Settings::load(None, env(&[("KEYGATE_STORE_URL", "redis+cluster://h:1/0")]))
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("no path"), "{e}");
    }

    #[test]
    fn sentinel_store_urls_validate_and_print_redacted() {
        let v = Settings::load(
            None,
            env(&[(
                "KEYGATE_STORE_URL",
                "redis+sentinel://kg:secretpw@10.0.0.1:26379,10.0.0.2/keygate",
            )]),
        )
        .unwrap()
        .validate()
        .unwrap();
        assert!(matches!(v.store, StoreBackend::RedisSentinel(_)));
        assert_eq!(
            v.store.redacted(),
            "redis+sentinel://kg:REDACTED@10.0.0.1:26379,10.0.0.2:26379/keygate"
        );
        assert!(!format!("{v:?}").contains("secretpw"));
        let e = Settings::load(
            None,
            env(&[("KEYGATE_STORE_URL", "redis+sentinel://kg:secretpw@h:1")]),
        )
        .unwrap()
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("names no master"), "{e}");
        assert!(!e.to_string().contains("secretpw"), "{e}");
    }

    #[test]
    fn rotation_comes_from_keys_and_tokens() {
        let v = Settings::load(None, vec![]).unwrap().validate().unwrap();
        assert_eq!(v.rotation.activation_delay, 600);
        assert_eq!(v.rotation.retention, 900 + 300);
        let v = Settings::load(
            None,
            env(&[
                ("KEYGATE_KEYS_ACTIVATION_DELAY_SECS", "60"),
                ("KEYGATE_KEYS_JWKS_MAX_AGE", "60"),
                ("KEYGATE_TOKENS_ACCESS_TTL", "120"),
            ]),
        )
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!(v.rotation.activation_delay, 60);
        assert_eq!(v.rotation.retention, 180);
    }

    #[test]
    fn durations_and_enums_are_typed() {
        let v = Settings::load(
            None,
            env(&[
                ("KEYGATE_TOKENS_ACCESS_TTL", "120"),
                ("KEYGATE_TOKENS_REFRESH_GRACE_SECS", "0"),
                ("KEYGATE_STORE_TIMEOUT_MS", "250"),
                ("KEYGATE_KEYS_RELOAD_SECS", "0"),
                ("KEYGATE_LOG_FORMAT", "json"),
                ("KEYGATE_LIMITS_SWEEP_SECS", "7"),
                ("KEYGATE_SERVER_DRAIN_SECS", "8"),
            ]),
        )
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!(v.tokens.access_ttl, Duration::from_secs(120));
        assert_eq!(v.tokens.refresh_ttl, Duration::from_secs(14 * 24 * 3600));
        assert_eq!(v.tokens.code_ttl, Duration::from_secs(60));
        assert_eq!(v.tokens.refresh_grace, Duration::ZERO);
        assert_eq!(v.session.ttl, Duration::from_secs(8 * 3600));
        assert_eq!(v.store_options.timeout, Duration::from_millis(250));
        assert_eq!(v.keys.reload_every, None);
        assert_eq!(v.keys.jwks_max_age, Duration::from_secs(300));
        assert_eq!(v.server.header_read_timeout, Duration::from_secs(10));
        assert_eq!(v.server.drain, Duration::from_secs(8));
        assert_eq!(v.server.shutdown_grace, Duration::from_secs(10));
        assert_eq!(v.limits.sweep_every, Duration::from_secs(7));
        assert_eq!(v.limits.client, None, "no per-client ceiling by default");
        assert_eq!(v.limits.login.emission, Duration::from_secs(6));
        assert_eq!(v.limits.signup.burst.get(), 5);
        assert_eq!(v.log.format, LogFormat::Json);
        let v = Settings::default().validate().unwrap();
        assert_eq!(v.server.drain, Duration::ZERO, "no drain unless configured");
        assert_eq!(v.keys.reload_every, Some(Duration::from_secs(60)));
        assert_eq!(v.log.format, LogFormat::Text);
    }

    #[test]
    fn registration_defaults_are_closed() {
        let v = Settings::default().validate().unwrap();
        let r = &v.registration;
        assert!(!r.open && !r.possible());
        assert_eq!(r.open_scopes.to_string(), "email profile");
        assert_eq!(r.open_client_ttl, 30 * 24 * 3600);
        assert_eq!(v.limits.registration.burst.get(), 5);
        let mut s = Settings::default();
        s.oauth.scopes = vec!["api".into()];
        s.validate()
            .expect("closed: the default open scopes do not matter");
        s.registration.open = true;
        let e = s.validate().unwrap_err();
        assert_eq!(e.key, "registration.open_scopes");
        assert_eq!(e.message, "`email` is not one of oauth.scopes");
        // Metadata documents' clients get the open scopes too.
        s.registration.open = false;
        s.registration.metadata_documents = true;
        assert_eq!(s.validate().unwrap_err().key, "registration.open_scopes");
        let d = &Settings::default()
            .validate()
            .unwrap()
            .registration
            .documents;
        assert!(!d.enabled && !d.allow_private && d.ca_file.is_none());
        assert_eq!(d.max_cache_secs, 86400);
    }

    #[test]
    fn secrets_never_print() {
        let mut s = Settings::load(
            None,
            env(&[
                (
                    "KEYGATE_STORE_URL",
                    "redis://:hunter2-password@127.0.0.1:6379",
                ),
                (
                    "KEYGATE_REGISTRATION_INITIAL_ACCESS_TOKENS",
                    "iat-secret-0123456789",
                ),
            ]),
        )
        .unwrap();
        s.clients.push(crate::config::ConfigClient {
            client_id: "demo".into(),
            client_name: String::new(),
            client_secret: Some("plain-client-secret".into()),
            redirect_uris: vec![],
            grant_types: vec!["client_credentials".into()],
            scope: "profile".into(),
            token_endpoint_auth_method: None,
            post_logout_redirect_uris: vec![],
        });
        let v = s.validate().unwrap();
        let printed = format!("{s:?} {v:?}");
        for secret in ["hunter2", "iat-secret", "plain-client-secret"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        let StoreBackend::Redis(url) = &v.store else {
            panic!("not redis")
        };
        assert_eq!(
            url.expose_secret(),
            "redis://:hunter2-password@127.0.0.1:6379"
        );
        assert_eq!(
            v.registration.initial_access_tokens[0].expose_secret(),
            "iat-secret-0123456789"
        );
    }
}

#[cfg(test)]
mod store_tls_tests {
    use super::*;
    use crate::config::test_env as env;

    /// A PEM file with one block per tag (the bodies are not real DER:
    /// validation checks the PEM, the TLS library the DER).
    fn pem_file(dir: &std::path::Path, name: &str, tags: &[&str]) -> String {
        let text: String = tags
            .iter()
            .map(|t| pem::encode(&pem::Pem::new(*t, b"secret-key-bytes".to_vec())))
            .collect();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    fn tls_error(vars: &[(&str, &str)]) -> ConfigError {
        let s = Settings::load(None, env(vars)).unwrap();
        let e = s.validate().unwrap_err();
        assert_eq!(s.store_tls().unwrap_err(), e, "validate reports it too");
        e
    }

    #[test]
    fn store_tls_files_are_checked_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ca = pem_file(d, "ca.pem", &["CERTIFICATE", "CERTIFICATE"]);
        let cert = pem_file(d, "cert.pem", &["CERTIFICATE"]);
        let key = pem_file(d, "key.pem", &["PRIVATE KEY"]);
        let ec_key = pem_file(d, "ec.pem", &["EC PRIVATE KEY"]);
        let two_keys = pem_file(d, "two.pem", &["PRIVATE KEY", "PRIVATE KEY"]);
        let text = d.join("text.pem");
        std::fs::write(&text, "not a PEM file\n").unwrap();
        let text = text.display().to_string();
        let broken = d.join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let broken = broken.display().to_string();
        let missing = d.join("missing.pem").display().to_string();
        let tls_url = "rediss://keygate:pw@127.0.0.1:6380/0";

        // Defaults: no TLS files.
        let v = Settings::default().validate().unwrap();
        assert_eq!(v.store_options.tls, StoreTls::default());

        // Everything set, through the environment.
        let v = Settings::load(
            None,
            env(&[
                ("KEYGATE_STORE_URL", tls_url),
                ("KEYGATE_STORE_TLS_CA_FILE", &ca),
                ("KEYGATE_STORE_TLS_CERT_FILE", &cert),
                ("KEYGATE_STORE_TLS_KEY_FILE", &ec_key),
            ]),
        )
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!(v.store_options.tls.ca_file, Some(PathBuf::from(&ca)));
        assert_eq!(
            v.store_options.tls.client,
            Some(ClientCertFiles {
                cert_file: PathBuf::from(&cert),
                key_file: PathBuf::from(&ec_key),
            })
        );

        // (environment, key at fault, part of the message)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: &[Case] = &[
            // TLS files with a URL that is not rediss://.
            (
                &[("KEYGATE_STORE_TLS_CA_FILE", &ca)],
                "store.tls_ca_file",
                "store.url is not a `rediss://` URL",
            ),
            (
                &[
                    ("KEYGATE_STORE_URL", "redis://127.0.0.1:6379"),
                    ("KEYGATE_STORE_TLS_CERT_FILE", &cert),
                    ("KEYGATE_STORE_TLS_KEY_FILE", &key),
                ],
                "store.tls_cert_file",
                "store.url is not a `rediss://` URL",
            ),
            // Certificate and key come together.
            (
                &[
                    ("KEYGATE_STORE_URL", tls_url),
                    ("KEYGATE_STORE_TLS_CERT_FILE", &cert),
                ],
                "store.tls_key_file",
                "must be set with store.tls_cert_file",
            ),
            (
                &[
                    ("KEYGATE_STORE_URL", tls_url),
                    ("KEYGATE_STORE_TLS_KEY_FILE", &key),
                ],
                "store.tls_cert_file",
                "must be set with store.tls_key_file",
            ),
            // Missing, not PEM, malformed PEM, the wrong kind.
            (
                &[
                    ("KEYGATE_STORE_URL", tls_url),
                    ("KEYGATE_STORE_TLS_CA_FILE", &missing),
                ],
                "store.tls_ca_file",
                "cannot read",
            ),
            (
                &[
                    ("KEYGATE_STORE_URL", tls_url),
                    ("KEYGATE_STORE_TLS_CA_FILE", &text),
                ],
                "store.tls_ca_file",
                "found no PEM block",
            ),
            (
                &[
                    ("KEYGATE_STORE_URL", tls_url),
                    ("KEYGATE_STORE_TLS_CA_FILE", &broken),
                ],
                "store.tls_ca_file",
                "is not a PEM file",
            ),
            (
                &[
                    ("KEYGATE_STORE_URL", tls_url),
                    ("KEYGATE_STORE_TLS_CA_FILE", &key),
                ],
                "store.tls_ca_file",
                "must hold PEM `CERTIFICATE` blocks only (found `PRIVATE KEY`)",
            ),
            (
                &[
                    ("KEYGATE_STORE_URL", tls_url),
                    ("KEYGATE_STORE_TLS_CERT_FILE", &cert),
                    ("KEYGATE_STORE_TLS_KEY_FILE", &cert),
                ],
                "store.tls_key_file",
                "must hold one PEM private key",
            ),
            (
                &[
                    ("KEYGATE_STORE_URL", tls_url),
                    ("KEYGATE_STORE_TLS_CERT_FILE", &cert),
                    ("KEYGATE_STORE_TLS_KEY_FILE", &two_keys),
                ],
                "store.tls_key_file",
                "found `PRIVATE KEY`, `PRIVATE KEY`",
            ),
        ];
        for (vars, key, message) in cases {
            let e = tls_error(vars);
            assert_eq!(e.key, *key, "{vars:?}: {e}");
            assert!(e.message.contains(message), "{vars:?}: {e}");
            // Names the file, never echoes its contents or the password.
            assert!(!e.message.contains("c2VjcmV0"), "{e}");
            assert!(!e.message.contains(":pw@"), "{e}");
        }
    }

    #[test]
    fn an_insecure_rediss_url_is_refused() {
        let e = Settings::load(
            None,
            env(&[(
                "KEYGATE_STORE_URL",
                "rediss://u:hunter2@10.0.0.1:6380/#insecure",
            )]),
        )
        .unwrap()
        .validate()
        .unwrap_err();
        assert_eq!(e.key, "store.url");
        assert!(e.message.contains("store.tls_ca_file"), "{e}");
        assert!(!e.message.contains("hunter2"), "{e}");
    }

    /// The cluster connection does not take the TLS files yet: refused
    /// rather than silently ignored.
    #[test]
    fn tls_files_with_a_cluster_url_are_refused() {
        let e = Settings::load(
            None,
            env(&[
                (
                    "KEYGATE_STORE_URL",
                    "rediss+cluster://10.0.0.1:6380,10.0.0.2:6380",
                ),
                ("KEYGATE_STORE_TLS_CA_FILE", "/etc/keygate/redis-ca.pem"),
            ]),
        )
        .unwrap()
        .validate()
        .unwrap_err();
        assert_eq!(e.key, "store.tls_ca_file");
        assert!(e.message.contains("Redis Cluster"), "{e}");
    }
}

#[cfg(test)]
mod example_files {
    use super::*;
    use std::path::Path;

    /// The shipped example configurations load and validate as they are
    /// (production's puts `/metrics` on a listener of its own).
    #[test]
    fn shipped_configs_validate() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let prod = Settings::load(Some(&root.join("config/production.example.toml")), vec![])
            .and_then(|s| s.validate())
            .unwrap();
        assert_eq!(
            prod.metrics,
            MetricsExposure::Separate("127.0.0.1:9100".parse().unwrap())
        );
        let dev = Settings::load(Some(&root.join("config/keygate.toml")), vec![])
            .and_then(|s| s.validate())
            .unwrap();
        assert_eq!(dev.metrics, MetricsExposure::Main);
    }
}
