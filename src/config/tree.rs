//! The raw configuration tree: one serde struct per `[section]`, with the
//! built-in defaults. This is what the file and the environment fill in and
//! what tests mutate; the server runs with [`super::Validated`] instead.
//!
//! Secrets that are always secret (initial access tokens, plain client
//! secrets) are `SecretString` already here, so no `Debug` of the tree shows
//! them; `store.url` is usually `memory` and stays a `String`, with a `Debug`
//! that hides it.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// The whole configuration tree.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `[server]`: listener and public identity.
    pub server: ServerSettings,
    /// `[store]`: where OAuth state lives.
    pub store: StoreSettings,
    /// `[keys]`: signing keys.
    pub keys: KeySettings,
    /// `[oauth]`: protocol profile and known scopes.
    pub oauth: OAuthSettings,
    /// `[tokens]`: lifetimes and audience.
    pub tokens: TokenSettings,
    /// `[registration]`: dynamic client registration (RFC 7591).
    pub registration: RegistrationSettings,
    /// `[session]`: login sessions.
    pub session: SessionSettings,
    /// `[ui]`: HTML pages.
    pub ui: UiSettings,
    /// `[log]`: log format and level.
    pub log: LogSettings,
    /// `[metrics]`: where `GET /metrics` is served, if at all.
    pub metrics: MetricsSettings,
    /// `[limits]`: rate limits.
    pub limits: LimitSettings,
    /// `[[clients]]`: clients defined in the file (not overridable by env).
    pub clients: Vec<ConfigClient>,
    /// `[[users]]`: users defined in the file (not overridable by env).
    pub users: Vec<ConfigUser>,
    /// `[[resources]]`: RFC 8707 resources defined in the file (not
    /// overridable by env; they shadow stored resources with the same URI).
    pub resources: Vec<ConfigResource>,
}

/// `[session]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    /// Login session lifetime in seconds.
    pub ttl: u64,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self { ttl: 8 * 3600 }
    }
}

/// `[limits]`: rate limits. The token-endpoint limits are per process; the
/// login, password-grant and sign-up limits are shared through the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Off switch for every rate limit below.
    pub enabled: bool,
    /// Failed client authentications per minute for one `client_id` from one
    /// IP address (token, revocation, introspection).
    pub auth_failures_per_minute: u32,
    /// Failed client authentications for one `client_id` from one IP address
    /// before the rate applies.
    pub auth_failures_burst: u32,
    /// Failed client authentications per minute from one IP address, any client.
    pub ip_auth_failures_per_minute: u32,
    /// Failed client authentications from one IP address before the rate applies.
    pub ip_auth_failures_burst: u32,
    /// Token requests per second of one public client from one IP address.
    pub public_per_second: u32,
    /// Token requests of one public client from one IP address before the rate applies.
    pub public_burst: u32,
    /// Operator ceiling: token requests per second of one authenticated
    /// confidential client, over all addresses; 0 = no ceiling.
    pub client_per_second: u32,
    /// Token requests one confidential client may send at once under the
    /// ceiling (only used when `client_per_second` > 0).
    pub client_burst: u32,
    /// Failed logins (form and password grant) per minute for one username
    /// from one IP address.
    pub login_per_minute: u32,
    /// Failed logins for one username from one IP address before the rate applies.
    pub login_burst: u32,
    /// Sign-ups per hour from one IP address.
    pub signup_per_hour: u32,
    /// Sign-ups from one IP address before the rate applies.
    pub signup_burst: u32,
    /// Anonymous client registrations (`registration.open`) per hour from
    /// one IP address.
    pub registration_per_hour: u32,
    /// Anonymous client registrations from one IP address before the rate applies.
    pub registration_burst: u32,
    /// Seconds between sweeps that forget idle in-process limiter keys (bounds memory).
    pub sweep_secs: u64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            auth_failures_per_minute: 10,
            auth_failures_burst: 10,
            ip_auth_failures_per_minute: 60,
            ip_auth_failures_burst: 30,
            public_per_second: 10,
            public_burst: 50,
            client_per_second: 0,
            client_burst: 100,
            login_per_minute: 10,
            login_burst: 5,
            signup_per_hour: 10,
            signup_burst: 5,
            registration_per_hour: 10,
            registration_burst: 5,
            sweep_secs: 60,
        }
    }
}

/// `[ui]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UiSettings {
    /// Whether anyone may create an account at `/signup`.
    pub signup: bool,
}

/// An RFC 8707 resource (API, resource server) defined in the configuration
/// file (`[[resources]]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigResource {
    /// The resource identifier: an https URI (http on a loopback host for
    /// development), without fragment. Tokens for it carry it as `aud`.
    pub uri: String,
    /// The scopes the resource accepts (each one of `oauth.scopes`).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Display name (consent page).
    #[serde(default)]
    pub name: Option<String>,
    /// A confidential `[[clients]]` entry the resource server introspects with.
    #[serde(default)]
    pub client_id: Option<String>,
}

/// A user defined in the configuration file (`[[users]]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigUser {
    /// Login name.
    pub username: String,
    /// argon2id PHC string from `keygate hash-password`.
    pub password_hash: String,
    /// Optional email.
    #[serde(default)]
    pub email: Option<String>,
    /// Optional stable id (the `sub` of the user's tokens): 1–64 characters
    /// of `A-Za-z0-9._-`. Unset: `cfg-` and 22 characters derived from the
    /// lower-cased username (never the username itself). Setting it pins
    /// `sub` across renames.
    #[serde(default)]
    pub id: Option<String>,
    /// Optional full name (claim `name`).
    #[serde(default)]
    pub name: Option<String>,
}

/// `[server]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Socket address to listen on.
    pub listen: String,
    /// The issuer identifier (RFC 8414 §2): absolute URL, never taken from `Host`.
    pub issuer: String,
    /// Largest accepted request body in bytes (larger → 413).
    pub max_body_bytes: u64,
    /// Largest accepted request header section in bytes (larger → 431).
    pub max_header_bytes: u64,
    /// Seconds the server keeps serving after SIGTERM/Ctrl-C while `/readyz`
    /// answers 503, so load balancers take it out of rotation before the
    /// listener closes (0 = close at once).
    pub drain_secs: u64,
    /// Seconds that in-flight requests get to finish once the listener is
    /// closed (after the drain).
    pub shutdown_grace_secs: u64,
    /// Seconds a client gets to send a complete request head, counted from
    /// when the connection waits for one (so also the keep-alive idle timeout).
    pub header_read_timeout_secs: u64,
    /// Seconds a client gets to send a complete request body.
    pub body_read_timeout_secs: u64,
    /// Reverse proxies (IP addresses or CIDR blocks) whose `X-Forwarded-For`
    /// names the client; empty: the TCP peer is the client.
    pub trusted_proxies: Vec<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            issuer: "http://127.0.0.1:8080".into(),
            max_body_bytes: 64 * 1024,
            max_header_bytes: 16 * 1024,
            drain_secs: 0,
            shutdown_grace_secs: 10,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 10,
            trusted_proxies: vec![],
        }
    }
}

/// `[store]`
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// `memory`, `redis://…` or `rediss://…`. May hold a password: never logged.
    pub url: String,
    /// Upper bound on one store call, in milliseconds.
    pub timeout_ms: u64,
    /// Refuse to start on a Redis whose `maxmemory-policy` is not `noeviction`,
    /// or cannot be read (`CONFIG GET` refused) (`false`: log and run anyway).
    pub require_noeviction: bool,
    /// Most keys the in-memory store holds; writes beyond it answer 503.
    pub memory_max_entries: u64,
    /// `rediss://` only: a PEM bundle of the CA certificates that verify the
    /// Redis server, instead of the built-in web roots (`""`: web roots).
    pub tls_ca_file: String,
    /// `rediss://` only: a PEM client certificate (chain) for Redis servers
    /// that require one (`tls-auth-clients yes`); set with `tls_key_file`.
    pub tls_cert_file: String,
    /// `rediss://` only: the PEM private key of `tls_cert_file`.
    pub tls_key_file: String,
    /// Redis replicas that must acknowledge (`WAIT`) a code redemption, a
    /// refresh rotation or a revocation before keygate answers (0: none,
    /// replication stays asynchronous). Not with the memory store.
    pub wait_replicas: u32,
}

impl std::fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A Redis URL may hold a password.
        let url = if self.url == "memory" {
            "memory"
        } else {
            "[REDACTED]"
        };
        f.debug_struct("StoreSettings")
            .field("url", &url)
            .field("timeout_ms", &self.timeout_ms)
            .field("require_noeviction", &self.require_noeviction)
            .field("memory_max_entries", &self.memory_max_entries)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &self.tls_key_file)
            .field("wait_replicas", &self.wait_replicas)
            .finish()
    }
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            url: "memory".into(),
            timeout_ms: 2000,
            require_noeviction: true,
            memory_max_entries: 1_000_000,
            tls_ca_file: String::new(),
            tls_cert_file: String::new(),
            tls_key_file: String::new(),
            wait_replicas: 0,
        }
    }
}

/// `[keys]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeySettings {
    /// Directory of PKCS#8 PEM private keys.
    pub dir: String,
    /// Seconds between re-reads of `dir` (also re-read on SIGHUP); 0 = only on SIGHUP.
    pub reload_secs: u64,
    /// `Cache-Control: max-age` of the JWKS document, in seconds.
    pub jwks_max_age: u64,
    /// Seconds a new key is published before it signs, so that verifiers
    /// caching the JWKS know it first; at least `jwks_max_age`. The oldest key
    /// (a first key) signs at once.
    pub activation_delay_secs: u64,
}

impl Default for KeySettings {
    fn default() -> Self {
        Self {
            dir: "keys".into(),
            reload_secs: 60,
            jwks_max_age: 300,
            activation_delay_secs: 600,
        }
    }
}

/// `[oauth]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthSettings {
    /// `oauth21` (production default) or `legacy`.
    pub profile: String,
    /// Scopes clients may be registered for and request.
    pub scopes: Vec<String>,
    /// Accept PKCE `code_challenge_method=plain` (RFC 7636); off by default.
    pub allow_plain_pkce: bool,
    /// Accept `http://` redirect URIs on loopback hosts for new clients (RFC 8252 §7.3).
    pub http_loopback_redirects: bool,
    /// What the consent page says a scope allows, for scopes without a
    /// built-in wording (`api:read = "Read your data"`); a table, set in
    /// the config file only.
    pub scope_descriptions: std::collections::BTreeMap<String, String>,
}

impl Default for OAuthSettings {
    fn default() -> Self {
        Self {
            profile: "oauth21".into(),
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
            allow_plain_pkce: false,
            http_loopback_redirects: true,
            scope_descriptions: std::collections::BTreeMap::new(),
        }
    }
}

/// `[tokens]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSettings {
    /// `aud` of access tokens; empty = the issuer URL.
    pub audience: String,
    /// Access token lifetime in seconds.
    pub access_ttl: u64,
    /// Refresh token lifetime in seconds.
    pub refresh_ttl: u64,
    /// Authorization code lifetime in seconds.
    pub code_ttl: u64,
    /// Seconds after a refresh token's rotation during which a retry of it by
    /// the same client gets the same successor pair instead of revoking the
    /// family; 0 = off (every reuse revokes, RFC 9700 §4.14.2).
    pub refresh_grace_secs: u64,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            audience: String::new(),
            access_ttl: 900,
            refresh_ttl: 14 * 24 * 3600,
            code_ttl: 60,
            refresh_grace_secs: 5,
        }
    }
}

/// `[registration]`: closed (not `open`, no tokens), protected (initial
/// access tokens) or open (anonymous RFC 7591 within limits; a request with
/// a valid initial access token still gets full rights).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrationSettings {
    /// Initial access tokens for `POST /oauth/register`.
    #[serde(serialize_with = "redacted_list")]
    pub initial_access_tokens: Vec<SecretString>,
    /// Accept anonymous registrations (no `Authorization` header), limited
    /// to public clients and generated secrets, the code and refresh grants,
    /// https / loopback / private-use redirect URIs and `open_scopes`.
    pub open: bool,
    /// The scopes an anonymous registration may ask for (and gets when it
    /// asks for none).
    pub open_scopes: Vec<String>,
    /// Seconds an anonymously registered client lives unused; every use
    /// (authorization, token) extends it.
    pub open_client_ttl: u64,
    /// Client ID metadata documents: an https URL used as `client_id` is
    /// fetched and describes a public client (within the open-registration
    /// limits and `open_scopes`).
    pub metadata_documents: bool,
    /// The longest a fetched document is used before it is fetched again,
    /// in seconds (its `Cache-Control: max-age` is honoured up to this).
    pub metadata_documents_max_cache_secs: u64,
    /// Tests and development only: fetch documents from loopback, private
    /// and other special-use addresses too (SSRF protection off).
    pub metadata_documents_allow_private: bool,
    /// Tests and development only: a PEM file of extra CA certificates
    /// trusted when fetching documents (`""`: the built-in web roots only).
    pub metadata_documents_ca_file: String,
}

impl Default for RegistrationSettings {
    fn default() -> Self {
        Self {
            initial_access_tokens: vec![],
            open: false,
            open_scopes: vec!["profile".into(), "email".into()],
            open_client_ttl: 30 * 24 * 3600,
            metadata_documents: false,
            metadata_documents_max_cache_secs: 86400,
            metadata_documents_allow_private: false,
            metadata_documents_ca_file: String::new(),
        }
    }
}

/// Serialises a list of secrets without their values. The tree is serialised
/// only to learn the defaults' keys and types (`layering`), where the list's
/// type is what counts; a secret never leaves the process that way.
fn redacted_list<S: serde::Serializer>(v: &[SecretString], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|_| "[REDACTED]"))
}

/// `[log]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: String,
    /// Default filter when `RUST_LOG` is unset (tracing-subscriber `EnvFilter` syntax).
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

/// `[metrics]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Serve `GET /metrics` at all.
    pub enabled: bool,
    /// `""`: on the main listener (`server.listen`); an `IP:PORT`: on a
    /// listener of its own, and not on the main one.
    pub listen: String,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: String::new(),
        }
    }
}

/// A client defined in the configuration file (`[[clients]]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigClient {
    /// The client identifier.
    pub client_id: String,
    /// Human-readable name.
    #[serde(default)]
    pub client_name: String,
    /// Plain-text secret: a dev-only convenience, refused unless the issuer
    /// and the listen address are loopback. Production clients are created with `keygate client create`.
    #[serde(default, skip_serializing)]
    pub client_secret: Option<SecretString>,
    /// Registered redirect URIs.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Grant types the client may use.
    #[serde(default)]
    pub grant_types: Vec<String>,
    /// Space-separated scopes the client may request.
    #[serde(default)]
    pub scope: String,
    /// `client_secret_basic` (default with a secret), `client_secret_post` or `none`.
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    /// Where an OpenID Connect RP-initiated logout (`/oauth/logout`) may send
    /// the user back (matched exactly; the same rules as redirect URIs).
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
}
