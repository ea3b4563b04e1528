//! JWT validation: arbitrary tokens never panic and never verify; a real
//! token with any byte changed never verifies.
#![no_main]

use std::sync::OnceLock;

use keygate::oauth::token::{AccessClaims, Grant};
use keygate::oauth::types::ScopeSet;
use keygate::tokens::jwt;
use keygate::tokens::keys::{generate_into, Alg, KeySet, Rotation};
use libfuzzer_sys::fuzz_target;

const ISS: &str = "https://issuer.example";

fn fixture() -> &'static (KeySet, String) {
    static F: OnceLock<(KeySet, String)> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        generate_into(dir.path(), Alg::ES256, 1).expect("key");
        generate_into(dir.path(), Alg::EdDSA, 2).expect("key");
        let set = KeySet::load_dir(dir.path(), Rotation::IMMEDIATE).expect("key set");
        let grant = Grant {
            subject: "user".into(),
            client_id: "client".into(),
            scope: ScopeSet::parse("profile").expect("scope"),
        };
        let claims = AccessClaims::new(ISS, ISS, &grant, 1_000, 4_000_000_000, "jti".into());
        let token = jwt::sign(set.signer_at(1_000), &claims).expect("sign");
        (set, token)
    })
}

fuzz_target!(|data: &[u8]| {
    let (set, token) = fixture();
    // Arbitrary input as a token.
    if let Ok(s) = std::str::from_utf8(data) {
        if s != token {
            assert!(
                jwt::verify(set, s, ISS, ISS).is_err(),
                "forged token verified: {s}"
            );
        }
    }
    // The real token with one byte changed (position and value from the input).
    if data.len() >= 3 {
        let mut bytes = token.clone().into_bytes();
        let at = (usize::from(data[0]) << 8 | usize::from(data[1])) % bytes.len();
        if bytes[at] != data[2] {
            bytes[at] = data[2];
            if let Ok(s) = String::from_utf8(bytes) {
                assert!(
                    jwt::verify(set, &s, ISS, ISS).is_err(),
                    "tampered token verified: {s}"
                );
            }
        }
    }
});
