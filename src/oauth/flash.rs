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

use serde::{Deserialize, Serialize};

use super::sealed::{self, Domain};

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

/// The flash's HKDF salt and info.
const DOMAIN: Domain = Domain {
    salt: SALT,
    info: INFO,
};

/// Seals `plain` under a key derived from the flash `id`.
pub fn seal(id: &str, plain: &[u8]) -> Result<SealedFlash, FlashError> {
    let (nonce, sealed) = sealed::seal(DOMAIN, id, INFO, plain).ok_or(FlashError)?;
    Ok(SealedFlash { nonce, sealed })
}

/// Opens a flash sealed by [`seal`] with the same `id`.
pub fn open(id: &str, flash: &SealedFlash) -> Result<Vec<u8>, FlashError> {
    sealed::open(DOMAIN, id, INFO, &flash.nonce, &flash.sealed).ok_or(FlashError)
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
