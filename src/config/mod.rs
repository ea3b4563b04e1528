//! Settings: what an operator can set, how the layers combine, and what the
//! server runs with.
//!
//! Layering, lowest to highest: built-in defaults (`tree.rs`) < the TOML file
//! (`--config` / `KEYGATE_CONFIG`) < `KEYGATE_<SECTION>_<KEY>` environment
//! variables (`layering.rs`). The merged raw tree ([`Settings`]) is then checked
//! as a whole and turned into [`Validated`] (`validate.rs`, with the checks of
//! `[[clients]]` and `[[users]]` in `clients.rs`): durations as
//! `std::time::Duration`, the profile and log format as enums, and secrets (the
//! Redis URL, registration initial access tokens, plain config-client secrets)
//! in `secrecy` types whose `Debug` never shows the value.
//!
//! Every error is one line that names the offending key (`section.key`, the
//! environment variable, `clients[i].field`, or the file), and never echoes a
//! secret.
//!
//! Must not depend on poem or on the store: the CLI and tests use it without a
//! server.

mod check;
mod clients;
mod layering;
mod tree;
mod validate;

pub use check::placeholder_issuer;
pub(crate) use clients::validate_config_client;
pub use clients::{resource_scopes, DEMO_PASSWORD_HASH};
pub use layering::{documented_keys, env_name};
pub use tree::{
    ConfigClient, ConfigResource, ConfigUser, KeySettings, LimitSettings, LogSettings,
    MetricsSettings, OAuthSettings, RegistrationSettings, ServerSettings, SessionSettings,
    Settings, StoreSettings, TokenSettings, UiSettings,
};
pub use validate::redact_url;
pub use validate::{
    ClientCertFiles, DocumentOptions, KeyOptions, LimitOptions, LogFormat, LogOptions,
    MetricsExposure, Profile, RegistrationOptions, ServerOptions, SessionOptions, StoreBackend,
    StoreOptions, StoreTls, TokenOptions, UiOptions, Validated,
};

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

/// `KEYGATE_*` pairs as [`Settings::load`] takes them (the config tests' input).
#[cfg(test)]
fn test_env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}
