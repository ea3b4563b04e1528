//! Typed settings: built-in defaults < TOML file (`--config`/`KEYGATE_CONFIG`) <
//! `KEYGATE_<SECTION>_<KEY>` environment variables, then validated as a whole.
//!
//! Every error names the offending key in one line. Must not depend on poem or
//! on the store.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Value;

use crate::oauth::types::{AuthMethod, ScopeSet};
use crate::tokens::keys::Rotation;

/// Environment variables with the `KEYGATE_` prefix that are tool switches,
/// not settings (they are never treated as unknown keys).
const TOOL_VARS: &[&str] = &["KEYGATE_CONFIG", "KEYGATE_BLESS"];
const TOOL_PREFIXES: &[&str] = &["KEYGATE_TEST_"];

/// A configuration problem, naming the key it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config error: `{key}`: {message}")]
pub struct ConfigError {
    /// The setting (`section.key`), the environment variable or the file at fault.
    pub key: String,
    /// What is wrong, without echoing secret values.
    pub message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

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
    /// `[limits]`: in-process rate limits.
    pub limits: LimitSettings,
    /// `[[clients]]`: clients defined in the file (not overridable by env).
    pub clients: Vec<ConfigClient>,
    /// `[[users]]`: users defined in the file (not overridable by env).
    pub users: Vec<ConfigUser>,
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

/// `[limits]`: in-process rate limits (per process, not shared between instances).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Off switch for every rate limit below.
    pub enabled: bool,
    /// Token requests per second each authenticated client may sustain.
    pub token_per_second: u32,
    /// Token requests a client may send at once before the rate applies.
    pub token_burst: u32,
    /// Login attempts per minute for one username from one IP address.
    pub login_per_minute: u32,
    /// Login attempts for one username from one IP address before the rate applies.
    pub login_burst: u32,
    /// Seconds between sweeps that forget idle limiter keys (bounds memory).
    pub sweep_secs: u64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            token_per_second: 50,
            token_burst: 100,
            login_per_minute: 10,
            login_burst: 5,
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
    /// Seconds that in-flight requests get to finish on SIGTERM/Ctrl-C.
    pub shutdown_grace_secs: u64,
    /// Seconds a client gets to send a complete request head, counted from
    /// when the connection waits for one (so also the keep-alive idle timeout).
    pub header_read_timeout_secs: u64,
    /// Seconds a client gets to send a complete request body.
    pub body_read_timeout_secs: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            issuer: "http://127.0.0.1:8080".into(),
            max_body_bytes: 64 * 1024,
            max_header_bytes: 16 * 1024,
            shutdown_grace_secs: 10,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 10,
        }
    }
}

/// `[store]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// `memory`, `redis://…` or `rediss://…`. May hold a password: never logged.
    pub url: String,
    /// Upper bound on one store call, in milliseconds.
    pub timeout_ms: u64,
    /// Refuse to start on a Redis whose `maxmemory-policy` is not `noeviction`
    /// (`false`: log an error and run anyway).
    pub require_noeviction: bool,
    /// Most keys the in-memory store holds; writes beyond it answer 503.
    pub memory_max_entries: u64,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            url: "memory".into(),
            timeout_ms: 2000,
            require_noeviction: true,
            memory_max_entries: 1_000_000,
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
}

impl Default for OAuthSettings {
    fn default() -> Self {
        Self {
            profile: "oauth21".into(),
            scopes: vec!["profile".into(), "email".into()],
            allow_plain_pkce: false,
            http_loopback_redirects: true,
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

/// `[registration]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrationSettings {
    /// Initial access tokens for `POST /oauth/register`; empty = registration closed.
    pub initial_access_tokens: Vec<String>,
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

/// A client defined in the configuration file (`[[clients]]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigClient {
    /// The client identifier.
    pub client_id: String,
    /// Human-readable name.
    #[serde(default)]
    pub client_name: String,
    /// Plain-text secret: a dev-only convenience, refused unless the issuer is a
    /// loopback URL. Production clients are created with `keygate client create`.
    #[serde(default)]
    pub client_secret: Option<String>,
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
}

/// The protocol profile (SPEC.md "Profiles").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// OAuth 2.1: no implicit, no password grant, PKCE everywhere.
    OAuth21,
    /// Adds implicit and password for clients registered for them.
    Legacy,
}

/// The store backend chosen by `store.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    /// The embedded dashmap store.
    Memory,
    /// A Redis server; the URL may hold credentials and is never logged.
    Redis(String),
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
    /// Access token audience.
    pub audience: String,
    /// The store backend.
    pub store: StoreBackend,
    /// The protocol profile.
    pub profile: Profile,
    /// Rules every client's metadata must follow.
    pub client_rules: crate::oauth::client_meta::Rules,
    /// Keys directory.
    pub keys_dir: PathBuf,
    /// When keys start signing and may be deleted.
    pub rotation: Rotation,
}

impl Settings {
    /// Loads defaults, then `file` (if given), then `KEYGATE_*` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let defaults = Value::try_from(Settings::default())
            .map_err(|e| ConfigError::new("defaults", e.to_string()))?;
        let mut merged = defaults.clone();
        if let Some(path) = file {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::new(&name, format!("cannot read the file: {e}")))?;
            let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
                ConfigError::new(&name, one_line(e.message()) + &line_of(&text, e.span()))
            })?;
            merge_file(&defaults, &mut merged, table, &name)?;
        }
        merge_env(&defaults, &mut merged, env)?;
        let clients = merged
            .as_table_mut()
            .and_then(|t| t.remove("clients"))
            .unwrap_or(Value::Array(vec![]));
        let users = merged
            .as_table_mut()
            .and_then(|t| t.remove("users"))
            .unwrap_or(Value::Array(vec![]));
        let mut settings: Settings = merged
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::new("config", one_line(e.message())))?;
        if let Value::Array(list) = clients {
            for (i, c) in list.into_iter().enumerate() {
                let client: ConfigClient = c.try_into().map_err(|e: toml::de::Error| {
                    ConfigError::new(format!("clients[{i}]"), one_line(e.message()))
                })?;
                settings.clients.push(client);
            }
        }
        if let Value::Array(list) = users {
            for (i, u) in list.into_iter().enumerate() {
                let user: ConfigUser = u.try_into().map_err(|e: toml::de::Error| {
                    ConfigError::new(format!("users[{i}]"), one_line(e.message()))
                })?;
                settings.users.push(user);
            }
        }
        Ok(settings)
    }

    /// Checks every setting and converts to the types the server runs with.
    pub fn validate(&self) -> Result<Validated, ConfigError> {
        let listen: SocketAddr = self.server.listen.parse().map_err(|_| {
            ConfigError::new(
                "server.listen",
                format!("`{}` is not an IP:port socket address", self.server.listen),
            )
        })?;
        let issuer = parse_issuer(&self.server.issuer)?;
        let issuer_is_loopback = is_loopback_url(&issuer);
        let audience = if self.tokens.audience.is_empty() {
            issuer.clone()
        } else {
            self.tokens.audience.clone()
        };
        let store = parse_store_url(&self.store.url)?;
        if self.store.memory_max_entries == 0 {
            return Err(ConfigError::new(
                "store.memory_max_entries",
                "must be at least 1",
            ));
        }
        if self.store.timeout_ms == 0 {
            return Err(ConfigError::new("store.timeout_ms", "must be at least 1"));
        }
        let profile = match self.oauth.profile.as_str() {
            "oauth21" => Profile::OAuth21,
            "legacy" => Profile::Legacy,
            other => {
                return Err(ConfigError::new(
                    "oauth.profile",
                    format!("must be `oauth21` or `legacy` (got `{other}`)"),
                ))
            }
        };
        let scopes = ScopeSet::parse(&self.oauth.scopes.join(" "))
            .map_err(|e| ConfigError::new("oauth.scopes", e.description.to_string()))?;
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
                "limits.token_per_second",
                self.limits.token_per_second.into(),
            ),
            ("limits.token_burst", self.limits.token_burst.into()),
            (
                "limits.login_per_minute",
                self.limits.login_per_minute.into(),
            ),
            ("limits.login_burst", self.limits.login_burst.into()),
            ("limits.sweep_secs", self.limits.sweep_secs),
        ] {
            if v == 0 {
                return Err(ConfigError::new(key, "must be greater than 0"));
            }
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(ConfigError::new("log.format", "must be `text` or `json`"));
        }
        if self.keys.dir.is_empty() {
            return Err(ConfigError::new("keys.dir", "must not be empty"));
        }
        if self.keys.activation_delay_secs < self.keys.jwks_max_age {
            return Err(ConfigError::new(
                "keys.activation_delay_secs",
                format!(
                    "must be at least keys.jwks_max_age ({}): a verifier with a cached JWKS would not know a new key's first tokens",
                    self.keys.jwks_max_age
                ),
            ));
        }
        for (i, t) in self.registration.initial_access_tokens.iter().enumerate() {
            if t.len() < 16 {
                return Err(ConfigError::new(
                    format!("registration.initial_access_tokens[{i}]"),
                    "must be at least 16 characters",
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, c) in self.clients.iter().enumerate() {
            let key = format!("clients[{i}]");
            if !seen.insert(c.client_id.as_str()) {
                return Err(ConfigError::new(key, "duplicate client_id"));
            }
            let rules = crate::oauth::client_meta::Rules {
                scopes: scopes.clone(),
                http_loopback_redirects: self.oauth.http_loopback_redirects,
            };
            validate_config_client(c, &rules, issuer_is_loopback)
                .map_err(|(field, msg)| ConfigError::new(format!("{key}.{field}"), msg))?;
        }
        let mut names = std::collections::HashSet::new();
        for (i, u) in self.users.iter().enumerate() {
            let key = format!("users[{i}]");
            if u.username.trim().is_empty() || !names.insert(u.username.to_lowercase()) {
                return Err(ConfigError::new(
                    key,
                    "username must be non-empty and unique",
                ));
            }
            if !crate::passwords::is_valid_phc(&u.password_hash) {
                return Err(ConfigError::new(
                    format!("{key}.password_hash"),
                    "must be an argon2 PHC string (make one with `keygate hash-password`)",
                ));
            }
        }
        if self.session.ttl == 0 {
            return Err(ConfigError::new("session.ttl", "must be greater than 0"));
        }
        Ok(Validated {
            listen,
            issuer,
            issuer_is_loopback,
            audience,
            store,
            profile,
            client_rules: crate::oauth::client_meta::Rules {
                scopes,
                http_loopback_redirects: self.oauth.http_loopback_redirects,
            },
            keys_dir: PathBuf::from(&self.keys.dir),
            rotation: Rotation {
                activation_delay: secs(self.keys.activation_delay_secs),
                // A retired key outlives its last token by one JWKS lifetime:
                // room for clock skew between instances and a late reload.
                retention: secs(self.tokens.access_ttl)
                    .saturating_add(secs(self.keys.jwks_max_age)),
            },
        })
    }
}

fn secs(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A `[[clients]]` entry as client metadata: the config-only checks (id
/// length, plain secrets only with a loopback issuer, secret length, secret vs
/// auth method), then the one metadata pipeline (`client_meta::parse` with the
/// config defaults, and the server-wide rules). Errors name the field.
pub(crate) fn validate_config_client(
    c: &ConfigClient,
    rules: &crate::oauth::client_meta::Rules,
    issuer_is_loopback: bool,
) -> Result<crate::oauth::client_meta::ClientMetadata, (&'static str, String)> {
    use crate::oauth::client_meta::{parse, validate, Defaults, RawClientMetadata};
    if c.client_id.is_empty() || c.client_id.len() > 128 {
        return Err(("client_id", "must be 1 to 128 characters".into()));
    }
    if let Some(secret) = &c.client_secret {
        if !issuer_is_loopback {
            return Err((
                "client_secret",
                "plain-text client secrets are dev-only and refused unless server.issuer is a loopback URL; create production clients with `keygate client create`".into(),
            ));
        }
        if secret.len() < 8 {
            return Err(("client_secret", "must be at least 8 characters".into()));
        }
    }
    let raw = RawClientMetadata {
        client_name: (!c.client_name.is_empty()).then(|| c.client_name.clone()),
        redirect_uris: Some(c.redirect_uris.clone()),
        grant_types: Some(c.grant_types.clone()),
        response_types: None,
        scope: Some(c.scope.clone()),
        token_endpoint_auth_method: c.token_endpoint_auth_method.clone(),
        client_uri: None,
        logo_uri: None,
    };
    let defaults = Defaults::config(&c.client_id, c.client_secret.is_some());
    let meta = parse(raw, defaults).map_err(|e| (e.field, e.message))?;
    if (meta.auth_method == AuthMethod::None) != c.client_secret.is_none() {
        return Err((
            "token_endpoint_auth_method",
            "`none` is for clients without a secret; a client with a secret needs client_secret_basic or client_secret_post".into(),
        ));
    }
    validate(&meta, rules).map_err(|e| (e.field, e.message))?;
    Ok(meta)
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

/// Whether `raw` is an http(s) URL whose host is `localhost` or a loopback IP.
pub fn is_loopback_url(raw: &str) -> bool {
    match url::Url::parse(raw).ok().as_ref().and_then(|u| u.host()) {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn parse_store_url(raw: &str) -> Result<StoreBackend, ConfigError> {
    if raw == "memory" {
        return Ok(StoreBackend::Memory);
    }
    // Never echo the URL: it may carry a password.
    let scheme = raw.split(':').next().unwrap_or_default();
    let bad = |why: &str| ConfigError::new("store.url", why.to_string());
    match url::Url::parse(raw) {
        Ok(u) if matches!(u.scheme(), "redis" | "rediss") && u.host().is_some() => {
            Ok(StoreBackend::Redis(raw.to_string()))
        }
        Ok(u) if matches!(u.scheme(), "redis" | "rediss") => Err(bad("the Redis URL has no host")),
        _ => Err(bad(&format!(
            "must be `memory`, `redis://…` or `rediss://…` (got a `{}` URL)",
            if scheme.len() > 16 {
                "malformed"
            } else {
                scheme
            }
        ))),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(r) => format!(
            " (line {})",
            text[..r.start.min(text.len())].matches('\n').count() + 1
        ),
        None => String::new(),
    }
}

/// Merges a parsed file into `merged`, refusing keys the defaults do not have
/// and values whose type differs from the default's.
fn merge_file(
    defaults: &Value,
    merged: &mut Value,
    file: toml::Table,
    name: &str,
) -> Result<(), ConfigError> {
    let (Some(def), Some(out)) = (defaults.as_table(), merged.as_table_mut()) else {
        return Ok(());
    };
    for (section, value) in file {
        if section == "clients" || section == "users" {
            if !value.is_array() {
                let msg = format!("must be an array of tables `[[{section}]]`");
                return Err(ConfigError::new(&section, msg));
            }
            out.insert(section, value);
            continue;
        }
        let Some(Value::Table(def_section)) = def.get(&section) else {
            return Err(ConfigError::new(
                &section,
                format!("unknown section in {name}"),
            ));
        };
        let Value::Table(entries) = value else {
            return Err(ConfigError::new(&section, "must be a table `[section]`"));
        };
        for (key, v) in entries {
            let path = format!("{section}.{key}");
            let Some(default) = def_section.get(&key) else {
                return Err(ConfigError::new(path, format!("unknown key in {name}")));
            };
            if default.type_str() != v.type_str()
                || (v.is_array() && !v.as_array().is_some_and(|a| a.iter().all(Value::is_str)))
            {
                return Err(ConfigError::new(
                    path,
                    format!("must be {}", type_words(default)),
                ));
            }
            if let Some(Value::Table(s)) = out.get_mut(&section) {
                s.insert(key, v);
            }
        }
    }
    Ok(())
}

fn type_words(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "a non-negative integer",
        Value::Boolean(_) => "true or false",
        Value::Array(_) => "a list of strings",
        _ => "a table",
    }
}

/// Applies `KEYGATE_<SECTION>_<KEY>` variables; an unknown one is an error.
fn merge_env(
    defaults: &Value,
    merged: &mut Value,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let Some(def) = defaults.as_table() else {
        return Ok(());
    };
    // Map every overridable key to its env var name.
    let mut known: BTreeMap<String, (String, String, Value)> = BTreeMap::new();
    for (section, v) in def {
        if let Value::Table(t) = v {
            for (key, default) in t {
                known.insert(
                    env_name(section, key),
                    (section.clone(), key.clone(), default.clone()),
                );
            }
        }
    }
    for (var, raw) in env {
        if !var.starts_with("KEYGATE_")
            || TOOL_VARS.contains(&var.as_str())
            || TOOL_PREFIXES.iter().any(|p| var.starts_with(p))
        {
            continue;
        }
        let Some((section, key, default)) = known.get(&var) else {
            return Err(ConfigError::new(
                &var,
                "unknown setting variable (see the configuration table in README.md)",
            ));
        };
        let value = match default {
            Value::Integer(_) => Value::Integer(
                raw.trim()
                    .parse::<u32>()
                    .map_err(|_| ConfigError::new(&var, "must be a non-negative integer"))?
                    .into(),
            ),
            Value::Boolean(_) => Value::Boolean(
                raw.trim()
                    .parse()
                    .map_err(|_| ConfigError::new(&var, "must be true or false"))?,
            ),
            Value::Array(_) => Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_string()))
                    .collect(),
            ),
            _ => Value::String(raw),
        };
        if let Some(Value::Table(s)) = merged.as_table_mut().and_then(|t| t.get_mut(section)) {
            s.insert(key.clone(), value);
        }
    }
    Ok(())
}

/// The environment variable that overrides `section.key`.
pub fn env_name(section: &str, key: &str) -> String {
    format!("KEYGATE_{}_{}", section.to_uppercase(), key.to_uppercase())
}

/// Every overridable `(section.key, env var, default)`, for docs and `--help`.
pub fn documented_keys() -> Vec<(String, String, String)> {
    let mut out = vec![];
    if let Ok(Value::Table(def)) = Value::try_from(Settings::default()) {
        for (section, v) in def {
            if let Value::Table(t) = v {
                for (key, d) in t {
                    out.push((
                        format!("{section}.{key}"),
                        env_name(&section, &key),
                        d.to_string(),
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

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
    fn env_overrides_and_lists() {
        let s = Settings::load(
            None,
            env(&[
                ("KEYGATE_STORE_URL", "redis://127.0.0.1:6379"),
                ("KEYGATE_TOKENS_ACCESS_TTL", "60"),
                ("KEYGATE_OAUTH_SCOPES", "a, b,,c"),
                ("KEYGATE_CONFIG", "ignored"),
                ("KEYGATE_TEST_WHATEVER", "ignored"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(s.tokens.access_ttl, 60);
        assert_eq!(s.oauth.scopes, vec!["a", "b", "c"]);
        assert!(matches!(
            s.validate().unwrap().store,
            StoreBackend::Redis(_)
        ));
    }

    #[test]
    fn unknown_env_var_is_an_error() {
        let e = Settings::load(None, env(&[("KEYGATE_SERVER_LISTN", "x")])).unwrap_err();
        assert_eq!(e.key, "KEYGATE_SERVER_LISTN");
        let e = Settings::load(None, env(&[("KEYGATE_TOKENS_ACCESS_TTL", "soon")])).unwrap_err();
        assert_eq!(e.key, "KEYGATE_TOKENS_ACCESS_TTL");
    }

    #[test]
    fn file_errors_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        let cases = [
            ("[server]\nlisten_addr = \"x\"\n", "server.listen_addr"),
            ("[nope]\na = 1\n", "nope"),
            ("[tokens]\naccess_ttl = \"15m\"\n", "tokens.access_ttl"),
        ];
        for (text, key) in cases {
            std::fs::write(&path, text).unwrap();
            let e = Settings::load(Some(&path), vec![]).unwrap_err();
            assert_eq!(e.key, key, "{text}");
        }
        std::fs::write(&path, "[server\n").unwrap();
        let e = Settings::load(Some(&path), vec![]).unwrap_err();
        assert!(e.message.contains("line 1"), "{e}");
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
            ("KEYGATE_SERVER_LISTEN", "localhost", "server.listen"),
            ("KEYGATE_OAUTH_PROFILE", "oauth3", "oauth.profile"),
            ("KEYGATE_TOKENS_ACCESS_TTL", "0", "tokens.access_ttl"),
            (
                "KEYGATE_KEYS_ACTIVATION_DELAY_SECS",
                "299",
                "keys.activation_delay_secs",
            ),
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
    fn plaintext_client_secret_needs_loopback_issuer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        std::fs::write(
            &path,
            "[[clients]]\nclient_id = \"demo\"\nclient_secret = \"demo-secret\"\ngrant_types = [\"client_credentials\"]\nscope = \"profile\"\n",
        )
        .unwrap();
        let s = Settings::load(Some(&path), vec![]).unwrap();
        s.validate().unwrap();
        let s = Settings::load(
            Some(&path),
            env(&[("KEYGATE_SERVER_ISSUER", "https://auth.example.com")]),
        )
        .unwrap();
        assert_eq!(s.validate().unwrap_err().key, "clients[0].client_secret");
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback_url("http://127.0.0.1:8080"));
        assert!(is_loopback_url("http://localhost"));
        assert!(is_loopback_url("http://[::1]:1"));
        assert!(!is_loopback_url("http://127.0.0.1.example.com"));
        assert!(!is_loopback_url("https://auth.example.com"));
    }

    #[test]
    fn readme_documents_every_key() {
        let readme = include_str!("../README.md");
        for (key, env, _) in documented_keys() {
            assert!(
                readme.contains(&format!("`{key}`")),
                "README.md lacks {key}"
            );
            assert!(readme.contains(&env), "README.md lacks {env}");
        }
    }
}
