//! Sealing a one-time page flash (the secret of a client just created or
//! rotated, on its way to the page that shows it once).
//!
//! The store must never hold a client secret in clear, not even for the
//! two minutes a flash lives. The flash is sealed with AES-256-GCM under a
//! key derived (HKDF-SHA256) from its random id, which only the browser's
//! redirect URL carries; the store key is the id's SHA-256, from which the
//! key cannot be derived. Same construction as [`super::grace`].
//!
//! Pure: no store, no clock; only ring's AEAD, HKDF and random nonces.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf::{Salt, HKDF_SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// HKDF salt (fixed: the input, a random id of at least 128 bits, is uniform).
const SALT: &[u8] = b"keygate page flash salt v1";
/// HKDF info and the additional authenticated data.
const INFO: &[u8] = b"keygate page flash v1";

/// A sealed flash as stored: nonce and ciphertext with tag, base64url.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedFlash {
    /// The 96-bit AES-GCM nonce.
    pub nonce: String,
    /// Ciphertext and tag.
    pub sealed: String,
}

/// Sealing or opening failed: wrong id, tampered seal, or no randomness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the page flash could not be sealed or opened")]
pub struct FlashError;

fn key_for(id: &str) -> Result<LessSafeKey, FlashError> {
    let prk = Salt::new(HKDF_SHA256, SALT).extract(id.as_bytes());
    let okm = prk.expand(&[INFO], &AES_256_GCM).map_err(|_| FlashError)?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

/// Seals `plain` under a key derived from the flash `id`.
pub fn seal(id: &str, plain: &[u8]) -> Result<SealedFlash, FlashError> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| FlashError)?;
    let mut buf = plain.to_vec();
    key_for(id)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(INFO),
            &mut buf,
        )
        .map_err(|_| FlashError)?;
    Ok(SealedFlash {
        nonce: B64.encode(nonce),
        sealed: B64.encode(buf),
    })
}

/// Opens a flash sealed by [`seal`] with the same `id`.
pub fn open(id: &str, flash: &SealedFlash) -> Result<Vec<u8>, FlashError> {
    let nonce: [u8; NONCE_LEN] = B64
        .decode(&flash.nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or(FlashError)?;
    let mut buf = B64.decode(&flash.sealed).map_err(|_| FlashError)?;
    let plain = key_for(id)?
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(INFO),
            &mut buf,
        )
        .map_err(|_| FlashError)?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flash_opens_with_its_id_only_and_holds_no_clear_text() {
        let plain = b"{\"secret\":\"s3cr3t-value-0123456789\"}";
        let sealed = seal("flash-id-1", plain).unwrap();
        assert_eq!(open("flash-id-1", &sealed).unwrap(), plain);
        assert_eq!(open("flash-id-2", &sealed), Err(FlashError));
        let stored = serde_json::to_string(&sealed).unwrap();
        assert!(!stored.contains("s3cr3t"));
        let mut tampered = sealed.clone();
        tampered.sealed.replace_range(
            0..1,
            if tampered.sealed.starts_with('A') {
                "B"
            } else {
                "A"
            },
        );
        assert_eq!(open("flash-id-1", &tampered), Err(FlashError));
        assert_ne!(seal("flash-id-1", plain).unwrap().nonce, sealed.nonce);
    }
}
