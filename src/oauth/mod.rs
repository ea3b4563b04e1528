//! Pure OAuth 2.0 rules. Must not import poem, redis or tokio, nor any other
//! module of the crate (`config`, `store`, `flows` … depend on the core, never
//! the reverse), and performs no I/O: functions take values (including `now`)
//! and return decisions or RFC-coded errors. The build without the `server`
//! feature compiles this module alone and so checks all of that.
//!
//! RFC map:
//! - RFC 6749 §2.3.1 client authentication → [`client_auth`]
//! - RFC 6749 §3.3 scope, §4.4 client credentials, §5.1/§5.2 token responses → [`token`]
//! - RFC 6749 §5.2 error codes → [`error`]
//! - RFC 7662 §2.1, §4 who may introspect which token → [`introspection`]
//! - RFC 9068 access token claims → [`token::AccessClaims`]
//! - RFC 8707 resource indicators (`aud`, `invalid_target`) → [`resource`]
//! - client ID metadata documents (draft-ietf-oauth-client-id-metadata-document:
//!   the URL, SSRF address, document and caching rules) → [`client_document`]
//! - RFC 9700 §4.14.2 refresh token reuse, and its grace window for retries →
//!   [`token::redeem_refresh`], [`token::grace_retry`]; the seal that keeps the
//!   successor pair for those retries → [`grace`] (crypto only: `token` depends on
//!   `grace`, never the reverse)
//! - OpenID Connect Core 1.0 §2, §3.1.3.6, §12.2 ID token claims, `at_hash`,
//!   `nonce` → [`id_token`]; §3.1.2.1 request rules (`nonce`, `request`,
//!   `request_uri`) → [`authorize`]

pub mod authorize;
pub mod client_auth;
pub mod client_document;
pub mod client_meta;
pub mod consent;
pub mod error;
pub mod flash;
pub mod grace;
pub mod id_token;
pub mod introspection;
pub mod pkce;
pub mod resource;
pub mod sealed;
pub mod token;
pub mod types;

pub use error::{ErrorCode, OAuthError};
