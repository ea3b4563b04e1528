//! Proof Key for Code Exchange (RFC 7636).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::digest::{digest, SHA256};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::error::OAuthError;

/// `code_challenge_method` (RFC 7636 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Method {
    /// `S256`: BASE64URL(SHA256(verifier)).
    S256,
    /// `plain`: the verifier itself; refused unless enabled in config.
    Plain,
}

impl Method {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::S256 => "S256",
            Self::Plain => "plain",
        }
    }
}

/// A code challenge bound to an authorization code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// The challenge string.
    pub challenge: String,
    /// How it was derived.
    pub method: Method,
}

/// Whether `s` is 43–128 characters of `[A-Za-z0-9-._~]` (RFC 7636 §4.1, §4.2).
pub fn well_formed(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Parses the authorization request's PKCE parameters (RFC 7636 §4.3). A
/// missing method means `plain`, which is accepted only when `allow_plain`.
pub fn parse_challenge(
    challenge: Option<&str>,
    method: Option<&str>,
    allow_plain: bool,
) -> Result<Option<Challenge>, OAuthError> {
    let Some(challenge) = challenge else {
        if method.is_some() {
            return Err(OAuthError::invalid_request(
                "code_challenge_method without code_challenge",
            ));
        }
        return Ok(None);
    };
    let method = match method.unwrap_or("plain") {
        "S256" => Method::S256,
        "plain" if allow_plain => Method::Plain,
        "plain" => {
            return Err(OAuthError::invalid_request(
                "PKCE method plain is not allowed: use code_challenge_method=S256",
            ))
        }
        _ => {
            return Err(OAuthError::invalid_request(
                "unsupported code_challenge_method: use S256",
            ))
        }
    };
    if !well_formed(challenge) {
        return Err(OAuthError::invalid_request(
            "code_challenge must be 43 to 128 characters of [A-Za-z0-9-._~]",
        ));
    }
    Ok(Some(Challenge {
        challenge: challenge.to_string(),
        method,
    }))
}

/// The S256 challenge of a verifier.
pub fn s256(verifier: &str) -> String {
    B64.encode(digest(&SHA256, verifier.as_bytes()))
}

/// Checks a `code_verifier` against the stored challenge (RFC 7636 §4.6), in
/// constant time.
pub fn verify(challenge: &Challenge, verifier: &str) -> bool {
    if !well_formed(verifier) {
        return false;
    }
    let derived = match challenge.method {
        Method::S256 => s256(verifier),
        Method::Plain => verifier.to_string(),
    };
    derived
        .as_bytes()
        .ct_eq(challenge.challenge.as_bytes())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc7636_appendix_b_vector() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            s256(verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let c = Challenge {
            challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
            method: Method::S256,
        };
        assert!(verify(&c, verifier));
        assert!(!verify(&c, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj"));
    }

    #[test]
    fn plain_is_refused_unless_enabled() {
        let ch = "a".repeat(43);
        assert!(
            parse_challenge(Some(&ch), None, false).is_err(),
            "missing method = plain"
        );
        assert!(parse_challenge(Some(&ch), Some("plain"), false).is_err());
        assert!(parse_challenge(Some(&ch), Some("plain"), true)
            .unwrap()
            .is_some());
        assert!(parse_challenge(Some(&ch), Some("S512"), true).is_err());
        assert!(parse_challenge(Some("short"), Some("S256"), false).is_err());
        assert!(parse_challenge(None, Some("S256"), false).is_err());
        assert_eq!(parse_challenge(None, None, false).unwrap(), None);
    }

    proptest! {
        #[test]
        fn verify_holds_for_its_own_verifier_only(v in "[A-Za-z0-9._~-]{43,128}", w in "[A-Za-z0-9._~-]{43,128}") {
            let c = Challenge { challenge: s256(&v), method: Method::S256 };
            prop_assert!(verify(&c, &v));
            if v != w {
                prop_assert!(!verify(&c, &w));
            }
        }
    }
}
