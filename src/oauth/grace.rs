//! Refresh token grace window: a retry of a just-rotated refresh token by the
//! same client gets the same successor pair back instead of revoking the family
//! (clients with several tabs, retries after a lost response).
//!
//! The successor refresh token must never be stored in clear, so at rotation the
//! successor and the access token's claims are sealed with AES-256-GCM under a
//! key derived (HKDF-SHA256) from the *old* refresh token, and kept in the
//! rotated record. Only a caller who presents the old token can open the seal;
//! the store holds the token's SHA-256, from which the HKDF key cannot be derived.
//! The rotation time and the family id are authenticated as additional data, so
//! the window cannot be stretched by editing the record.
//!
//! Pure: no store, no clock; only ring's AEAD, HKDF and random nonces.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf::{Salt, HKDF_SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use super::token::{RefreshRecord, TokenParams};
use super::types::{Client, ScopeSet};

/// HKDF salt (fixed: the input key material, a 256-bit random token, is already uniform).
const SALT: &[u8] = b"keygate refresh grace salt v1";
/// HKDF info and the prefix of the additional authenticated data.
const INFO: &[u8] = b"keygate refresh grace v1";

/// The seal kept in a rotated [`RefreshRecord`]: the ciphertext of
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
}

/// Sealing or opening failed: wrong token, tampered seal, or no randomness.
/// Deliberately carries no detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the refresh grace seal could not be made or opened")]
pub struct GraceError;

fn key_for(old_token: &str) -> Result<LessSafeKey, GraceError> {
    let prk = Salt::new(HKDF_SHA256, SALT).extract(old_token.as_bytes());
    let okm = prk.expand(&[INFO], &AES_256_GCM).map_err(|_| GraceError)?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

fn aad(family: &str, rotated_at: i64) -> Vec<u8> {
    let mut aad = Vec::with_capacity(INFO.len() + family.len() + 10);
    aad.extend_from_slice(INFO);
    aad.push(0);
    aad.extend_from_slice(&rotated_at.to_be_bytes());
    aad.extend_from_slice(family.as_bytes());
    aad
}

/// Seals `contents` under a key derived from `old_token`, bound to `family`
/// and `rotated_at`.
pub fn seal(
    old_token: &str,
    family: &str,
    rotated_at: i64,
    contents: &GraceContents,
) -> Result<GraceSeal, GraceError> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| GraceError)?;
    let mut buf = serde_json::to_vec(contents).map_err(|_| GraceError)?;
    key_for(old_token)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(family, rotated_at)),
            &mut buf,
        )
        .map_err(|_| GraceError)?;
    Ok(GraceSeal {
        rotated_at,
        nonce: B64.encode(nonce),
        sealed: B64.encode(buf),
    })
}

/// Opens a seal made by [`seal`] with the same token and family; any other
/// token, family, rotation time or a modified ciphertext fails.
pub fn open(old_token: &str, family: &str, seal: &GraceSeal) -> Result<GraceContents, GraceError> {
    let nonce: [u8; NONCE_LEN] = B64
        .decode(&seal.nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or(GraceError)?;
    let mut buf = B64.decode(&seal.sealed).map_err(|_| GraceError)?;
    let plain = key_for(old_token)?
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(family, seal.rotated_at)),
            &mut buf,
        )
        .map_err(|_| GraceError)?;
    serde_json::from_slice(plain).map_err(|_| GraceError)
}

/// Whether a replay of the rotated `stored` token (presented as `token` by
/// `client`) is a grace retry, and if so what it gets back. All must hold:
/// the window is on and `now` lies in `[rotated_at, rotated_at + window)`, the
/// token was issued to this client, the seal opens with this token, and the
/// request asks for the same scope as the one answered. Anything else is reuse
/// (RFC 9700 §4.14.2). The caller still checks that the successor is live
/// ([`successor_is_live`]).
pub fn retry(
    params: &TokenParams,
    stored: &RefreshRecord,
    client: &Client,
    token: &str,
    now: i64,
    window: u64,
) -> Option<GraceContents> {
    let seal = stored.grace.as_ref()?;
    let in_window = window > 0
        && now >= seal.rotated_at
        && now < seal.rotated_at.saturating_add(i64::try_from(window).ok()?);
    if !stored.rotated || !in_window || stored.client_id != client.client_id {
        return None;
    }
    let contents = open(token, &stored.family, seal).ok()?;
    let requested = match params.scope.as_deref() {
        None => stored.scope.to_string(),
        Some(raw) => ScopeSet::parse(raw).ok()?.to_string(),
    };
    (requested == contents.scope).then_some(contents)
}

/// The successor may be handed out again only while it is unused (not
/// rotated), unexpired and of the same family, and that family is alive.
pub fn successor_is_live(
    successor: Option<&RefreshRecord>,
    family: &str,
    family_alive: bool,
    now: i64,
) -> bool {
    family_alive
        && successor.is_some_and(|s| !s.rotated && s.family == family && now < s.expires_at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::types::{AuthMethod, GrantType};

    const OLD: &str = "old-refresh-token-0123456789abcdefghijklmnopq";

    fn contents() -> GraceContents {
        GraceContents {
            refresh_token: "successor-token".into(),
            jti: "j1".into(),
            iat: 1000,
            exp: 1900,
            scope: "email profile".into(),
        }
    }

    fn client() -> Client {
        Client {
            client_id: "web".into(),
            client_name: "Web".into(),
            secret_sha256: Some([0; 32]),
            auth_method: AuthMethod::ClientSecretBasic,
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            redirect_uris: vec![],
            scope: ScopeSet::parse("email profile").unwrap(),
            created_at: 0,
            ..Default::default()
        }
    }

    fn rotated(seal: GraceSeal) -> RefreshRecord {
        RefreshRecord {
            family: "fam".into(),
            client_id: "web".into(),
            sub: "u1".into(),
            scope: ScopeSet::parse("profile email").unwrap(),
            expires_at: 5000,
            rotated: true,
            grace: Some(seal),
        }
    }

    fn params(pairs: &[(&str, &str)]) -> TokenParams {
        TokenParams::from_pairs(pairs.iter().copied()).unwrap()
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

    #[test]
    fn retry_rules() {
        let rec = rotated(seal(OLD, "fam", 1000, &contents()).unwrap());
        let c = client();
        let p = params(&[]);
        assert_eq!(retry(&p, &rec, &c, OLD, 1000, 5), Some(contents()));
        assert_eq!(retry(&p, &rec, &c, OLD, 1004, 5), Some(contents()));
        assert_eq!(
            retry(&p, &rec, &c, OLD, 1005, 5),
            None,
            "window is [t, t+5)"
        );
        assert_eq!(retry(&p, &rec, &c, OLD, 999, 5), None, "before rotation");
        assert_eq!(retry(&p, &rec, &c, OLD, 1000, 0), None, "disabled");
        assert_eq!(retry(&p, &rec, &c, "x", 1000, 5), None, "wrong token");
        let mut other = client();
        other.client_id = "other".into();
        assert_eq!(retry(&p, &rec, &other, OLD, 1000, 5), None);
        // the same scope, spelled in another order, is the same request
        let same = params(&[("scope", "profile email")]);
        assert_eq!(retry(&same, &rec, &c, OLD, 1000, 5), Some(contents()));
        let narrower = params(&[("scope", "profile")]);
        assert_eq!(retry(&narrower, &rec, &c, OLD, 1000, 5), None);
        let mut unrotated = rec.clone();
        unrotated.rotated = false;
        assert_eq!(retry(&p, &unrotated, &c, OLD, 1000, 5), None);
        let mut no_seal = rec;
        no_seal.grace = None;
        assert_eq!(retry(&p, &no_seal, &c, OLD, 1000, 5), None);
    }

    #[test]
    fn successor_liveness() {
        let s = seal(OLD, "fam", 1000, &contents()).unwrap();
        let mut succ = rotated(s);
        succ.rotated = false;
        succ.grace = None;
        assert!(successor_is_live(Some(&succ), "fam", true, 1000));
        assert!(!successor_is_live(Some(&succ), "fam", false, 1000));
        assert!(!successor_is_live(None, "fam", true, 1000));
        assert!(!successor_is_live(Some(&succ), "fam", true, 5000));
        assert!(!successor_is_live(Some(&succ), "other", true, 1000));
        succ.rotated = true;
        assert!(!successor_is_live(Some(&succ), "fam", true, 1000));
    }
}
