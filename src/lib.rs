//! keygate: a stateless, JWT-issuing OAuth 2.0 authorization server.
//!
//! Where each concern lives:
//! - [`oauth`]: the pure protocol core (RFC rules; no I/O, no poem, no redis).
//! - [`flows`]: async orchestration (load → core → persist → sign).
//! - [`http`]: poem / poem-openapi handlers, the OpenAPI document, middleware.
//! - [`store`]: the `KvStore` trait, its memory and Redis implementations, typed repos.
//! - [`tokens`]: signing keys, JWKS, JWT signing and verification.
//! - [`config`]: settings (defaults < file < `KEYGATE_*` env) and validation.
//! - [`limits`]: in-process rate limits (token endpoint per client, login per IP + username).
//! - [`startup`]: building and running the server; [`telemetry`]: logging;
//!   [`metrics`]: Prometheus metrics; [`clock`]: the only reader of time.

pub mod clock;
pub mod config;
pub mod flows;
pub mod http;
pub mod ids;
pub mod limits;
pub mod metrics;
pub mod oauth;
pub mod passwords;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tokens;
