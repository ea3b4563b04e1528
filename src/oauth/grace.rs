//! Refresh token grace window, the crypto half: sealing and opening the
//! successor pair that a retry of a just-rotated refresh token gets back.
//!
//! The successor refresh token must never be stored in clear, so at rotation the
//! successor and the access token's claims are sealed with AES-256-GCM under a
//! key derived (HKDF-SHA256) from the *old* refresh token, and kept in the
//! rotated record. Only a caller who presents the old token can open the seal;
//! the store holds the token's SHA-256, from which the HKDF key cannot be derived.
//! The rotation time and the family id are authenticated as additional data, so
//! the window cannot be stretched by editing the record.
//!
//! Who may retry within the window and what the retry answers (RFC 9700
//! §4.14.2) is the token rules' business: [`super::token::grace_retry`], beside
//! `redeem_refresh`. The dependency runs one way: `token` uses this module (the
//! seal kept in its `RefreshRecord`, [`open`] in the retry check); this module
//! must not import `token` or any other token rule, nor `types`.
//!
//! Pure: no store, no clock; only ring's AEAD, HKDF and random nonces.

use serde::{Deserialize, Serialize};

use super::sealed::{self, Domain};

/// HKDF salt (fixed: the input key material, a 256-bit random token, is already uniform).
const SALT: &[u8] = b"keygate refresh grace salt v1";
/// HKDF info and the prefix of the additional authenticated data.
const INFO: &[u8] = b"keygate refresh grace v1";

/// The seal kept in a rotated refresh record: the ciphertext of
/// [`GraceContents`], its random nonce and the (authenticated) rotation time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraceSeal {
    /// When the token was rotated (seconds since the epoch); the window starts here.
    pub rotated_at: i64,
    /// The 96-bit AES-GCM nonce, base64url.
    pub nonce: String,
    /// Ciphertext and tag, base64url.
    pub sealed: String,
}

/// What a grace retry needs to answer with the same pair: the successor
/// refresh token and the access token claims that differ between tokens
/// (`iss`, `aud`, `sub` and `client_id` come from the config and the record;
/// `nbf` equals `iat`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraceContents {
    /// The successor refresh token.
    pub refresh_token: String,
    /// The access token's `jti`.
    pub jti: String,
    /// The access token's `iat` (and `nbf`).
    pub iat: i64,
    /// The access token's `exp`.
    pub exp: i64,
    /// The access token's `scope`.
    pub scope: String,
    /// The access token's RFC 8707 resources (empty: the default audience).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aud: Vec<String>,
}

/// Sealing or opening failed: wrong token, tampered seal, or no randomness.
/// Deliberately carries no detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the refresh grace seal could not be made or opened")]
pub struct GraceError;

fn aad(family: &str, rotated_at: i64) -> Vec<u8> {
    let mut aad = Vec::with_capacity(INFO.len() + family.len() + 10);
    aad.extend_from_slice(INFO);
    aad.push(0);
    aad.extend_from_slice(&rotated_at.to_be_bytes());
    aad.extend_from_slice(family.as_bytes());
    aad
}

/// The grace seal's HKDF salt and info.
const DOMAIN: Domain = Domain {
    salt: SALT,
    info: INFO,
};

/// Seals `contents` under a key derived from `old_token`, bound to `family`
/// and `rotated_at`.
pub fn seal(
    old_token: &str,
    family: &str,
    rotated_at: i64,
    contents: &GraceContents,
) -> Result<GraceSeal, GraceError> {
    let plain = serde_json::to_vec(contents).map_err(|_| GraceError)?;
    let (nonce, sealed) =
        sealed::seal(DOMAIN, old_token, &aad(family, rotated_at), &plain).ok_or(GraceError)?;
    Ok(GraceSeal {
        rotated_at,
        nonce,
        sealed,
    })
}

/// Opens a seal made by [`seal`] with the same token and family; any other
/// token, family, rotation time or a modified ciphertext fails.
pub fn open(old_token: &str, family: &str, seal: &GraceSeal) -> Result<GraceContents, GraceError> {
    let plain = sealed::open(
        DOMAIN,
        old_token,
        &aad(family, seal.rotated_at),
        &seal.nonce,
        &seal.sealed,
    )
    .ok_or(GraceError)?;
    serde_json::from_slice(&plain).map_err(|_| GraceError)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;

    const OLD: &str = "old-refresh-token-0123456789abcdefghijklmnopq";

    fn contents() -> GraceContents {
        GraceContents {
            refresh_token: "successor-token".into(),
            jti: "j1".into(),
            iat: 1000,
            exp: 1900,
            scope: "email profile".into(),
            aud: vec![],
        }
    }

    #[test]
    fn seal_opens_with_the_old_token_only() {
        let s = seal(OLD, "fam", 1000, &contents()).unwrap();
        assert_eq!(open(OLD, "fam", &s).unwrap(), contents());
        assert!(!s.sealed.contains("successor"), "not in clear");
        assert_eq!(open("another-token", "fam", &s), Err(GraceError));
        assert_eq!(open(OLD, "other-family", &s), Err(GraceError));
        // a fresh nonce every time: two seals of the same contents differ
        let t = seal(OLD, "fam", 1000, &contents()).unwrap();
        assert_ne!((&s.nonce, &s.sealed), (&t.nonce, &t.sealed));
    }

    #[test]
    fn tampering_fails() {
        let s = seal(OLD, "fam", 1000, &contents()).unwrap();
        // stretching the window
        let later = GraceSeal {
            rotated_at: 2000,
            ..s.clone()
        };
        assert_eq!(open(OLD, "fam", &later), Err(GraceError));
        // any flipped ciphertext or tag bit
        let raw = B64.decode(&s.sealed).unwrap();
        for i in [0, raw.len() / 2, raw.len() - 1] {
            let mut bad = raw.clone();
            bad[i] ^= 1;
            let bad = GraceSeal {
                sealed: B64.encode(bad),
                ..s.clone()
            };
            assert_eq!(open(OLD, "fam", &bad), Err(GraceError), "byte {i}");
        }
        // another nonce, a truncated or garbage seal
        let mut nonce = B64.decode(&s.nonce).unwrap();
        nonce[0] ^= 1;
        for bad in [
            GraceSeal {
                nonce: B64.encode(nonce),
                ..s.clone()
            },
            GraceSeal {
                nonce: "short".into(),
                ..s.clone()
            },
            GraceSeal {
                sealed: B64.encode(&raw[..raw.len() - 1]),
                ..s.clone()
            },
            GraceSeal {
                sealed: "!!".into(),
                ..s.clone()
            },
        ] {
            assert_eq!(open(OLD, "fam", &bad), Err(GraceError));
        }
    }
}
