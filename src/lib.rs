//! keygate: a stateless, JWT-issuing OAuth 2.0 authorization server.
//!
//! Where each concern lives:
//! - [`oauth`]: the pure protocol core (RFC rules; no I/O, no poem, no redis).
//! - [`flows`]: async orchestration (load → core → persist → sign).
//! - [`http`]: poem / poem-openapi handlers, the OpenAPI document, middleware.
//! - [`store`]: the `KvStore` trait, its memory and Redis implementations, typed repos.
//! - [`tokens`]: signing keys, JWKS, JWT signing and verification.
//! - [`config`]: settings (defaults < file < `KEYGATE_*` env) and validation.
//! - [`limits`]: rate limits (token endpoint in process; login, password
//!   grant and sign-up shared through the store); [`rate`]: the GCRA arithmetic.
//! - [`startup`]: building and running the server; [`lifecycle`]: how it
//!   stops (drain, close, grace); [`telemetry`]: logging;
//!   [`metrics`]: Prometheus metrics; [`clock`]: the only reader of time;
//!   [`ids`]: random identifiers and secrets.
//!
//! Dependencies point inwards: everything may use the core (`oauth`, `ids`,
//! `clock`), the core uses nothing else of the crate. Cargo enforces it: every
//! module but those three is behind the default `server` feature, and
//! `cargo check --lib --no-default-features` (part of `make lint`) builds the
//! core alone, without poem, redis or tokio.

pub mod clock;
pub mod ids;
pub mod oauth;

#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod flows;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod lifecycle;
#[cfg(feature = "server")]
pub mod limits;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod passwords;
#[cfg(feature = "server")]
pub mod rate;
#[cfg(feature = "server")]
pub mod startup;
#[cfg(feature = "server")]
pub mod state;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod telemetry;
#[cfg(feature = "server")]
pub mod tokens;
