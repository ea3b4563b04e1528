//! PKCE (RFC 7636): parsing a challenge and checking a verifier never
//! panics, and S256 of a well-formed verifier always verifies.
#![no_main]

use keygate::oauth::pkce;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: (&str, &str, Option<&str>, bool)| {
    let (challenge, verifier, method, allow_plain) = data;
    if let Ok(Some(c)) = pkce::parse_challenge(Some(challenge), method, allow_plain) {
        let _ = pkce::verify(&c, verifier);
    }
    if pkce::well_formed(verifier) {
        let c = pkce::parse_challenge(Some(&pkce::s256(verifier)), Some("S256"), false)
            .expect("an S256 challenge of a well-formed verifier parses")
            .expect("a challenge was given");
        assert!(pkce::verify(&c, verifier), "S256 round trip");
    }
});
