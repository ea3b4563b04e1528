//! The one sealing construction keygate uses for values the store must not
//! hold in clear (the refresh grace window's successor pair,
//! [`super::grace`]; a page flash's client secret, [`super::flash`]):
//! AES-256-GCM under a key derived with HKDF-SHA256 from a secret only the
//! caller holds (the old refresh token, the flash id), a random 96-bit
//! nonce, nonce and ciphertext base64url. Pure: only ring.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf::{Salt, HKDF_SHA256};
use ring::rand::{SecureRandom, SystemRandom};

/// The HKDF salt and info of one use (each use has its own, so a key of
/// one can never open the other).
#[derive(Debug, Clone, Copy)]
pub struct Domain {
    /// HKDF salt.
    pub salt: &'static [u8],
    /// HKDF info.
    pub info: &'static [u8],
}

fn key_for(domain: Domain, secret: &str) -> Option<LessSafeKey> {
    let prk = Salt::new(HKDF_SHA256, domain.salt).extract(secret.as_bytes());
    let info = [domain.info];
    let okm = prk.expand(&info, &AES_256_GCM).ok()?;
    Some(LessSafeKey::new(UnboundKey::from(okm)))
}

/// Seals `plain` bound to `aad`: `(nonce, sealed)` in base64url; `None`
/// only without randomness.
pub fn seal(domain: Domain, secret: &str, aad: &[u8], plain: &[u8]) -> Option<(String, String)> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new().fill(&mut nonce).ok()?;
    let mut buf = plain.to_vec();
    key_for(domain, secret)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buf,
        )
        .ok()?;
    Some((B64.encode(nonce), B64.encode(buf)))
}

/// Opens what [`seal`] made with the same domain, secret and `aad`; any
/// other, or a modified nonce or ciphertext, is `None`.
pub fn open(
    domain: Domain,
    secret: &str,
    aad: &[u8],
    nonce: &str,
    sealed: &str,
) -> Option<Vec<u8>> {
    let nonce: [u8; NONCE_LEN] = B64.decode(nonce).ok()?.try_into().ok()?;
    let mut buf = B64.decode(sealed).ok()?;
    let plain = key_for(domain, secret)?
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buf,
        )
        .ok()?;
    Some(plain.to_vec())
}
