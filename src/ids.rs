//! Random identifiers and secrets from the operating system's CSPRNG (ring).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};

/// `n` random bytes, base64url-encoded without padding.
pub fn random_token(n: usize) -> String {
    let mut buf = vec![0u8; n];
    // SystemRandom only fails when the OS has no entropy source at all; a
    // server that cannot draw random numbers must not issue credentials.
    #[allow(clippy::expect_used)]
    SystemRandom::new()
        .fill(&mut buf)
        .expect("the operating system's random number generator failed");
    B64.encode(buf)
}

/// A new client secret: 32 bytes = 256 bits of entropy.
pub fn client_secret() -> String {
    random_token(32)
}

/// A new client id: 16 random bytes.
pub fn client_id() -> String {
    random_token(16)
}

/// A new JWT id: 16 random bytes.
pub fn jti() -> String {
    random_token(16)
}
