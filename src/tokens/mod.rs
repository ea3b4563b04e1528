//! Signing keys, the JWKS document, and RS256/ES256/EdDSA JWT access tokens.
//!
//! Keys are parsed once (AWS-LC key pairs) and kept; a token costs one
//! signature. Verification uses jsonwebtoken with its AWS-LC backend. Must not depend on poem or the store.

pub mod jwt;
pub mod keys;

pub use keys::{Alg, KeyError, KeySet, KeyState, KeyStatus, Keys, Rotation, SigningKey};
