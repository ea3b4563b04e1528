//! OpenID Connect Core 1.0 ID token rules: the claims (§2), `at_hash`
//! (§3.1.3.6), the `nonce` bound into the code (§3.1.2.1, §15.5.2) and the
//! ID token of a refresh (§12.2: same `sub` and `auth_time`, no `nonce`).
//! Signing is in `tokens::jwt`; this module only decides what is signed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::error::OAuthError;
use super::types::ScopeSet;

/// The scope that makes a request an OpenID Connect one (Core §3.1.2.1).
pub const OPENID: &str = "openid";

/// The longest `nonce` accepted (characters). Core sets no limit; the code
/// record carries it, so it is bounded like every stored value.
pub const MAX_NONCE_LEN: usize = 512;

/// Whether `scope` asks for an ID token.
pub fn wants_id_token(scope: &ScopeSet) -> bool {
    scope.iter().any(|s| s == OPENID)
}

/// Checks a `nonce` from an authorization request: at most
/// [`MAX_NONCE_LEN`] characters (an error redirect otherwise).
pub fn check_nonce(nonce: Option<&str>) -> Result<Option<String>, OAuthError> {
    match nonce {
        Some(n) if n.chars().count() > MAX_NONCE_LEN => Err(OAuthError::invalid_request(
            "nonce is too long (at most 512 characters)",
        )),
        other => Ok(other.map(str::to_string)),
    }
}

/// Core §3.1.3.6: base64url of the left half of the hash of the access
/// token's ASCII octets, the hash being the one of the ID token's `alg`:
/// SHA-256 for `RS256`/`ES256`, and SHA-512 for `EdDSA` (Ed25519 hashes
/// with SHA-512; the convention OpenID implementations follow for EdDSA).
/// `None` for an algorithm keygate does not sign with.
pub fn at_hash(alg: &str, access_token: &str) -> Option<String> {
    let algorithm = match alg {
        "RS256" | "ES256" | "PS256" => &ring::digest::SHA256,
        "EdDSA" => &ring::digest::SHA512,
        _ => return None,
    };
    let digest = ring::digest::digest(algorithm, access_token.as_bytes());
    let full = digest.as_ref();
    Some(B64.encode(&full[..full.len() / 2]))
}

/// The ID token claims keygate issues (Core §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdClaims {
    /// Issuer: the same as the access token's.
    pub iss: String,
    /// Subject: the same as the access token's (the user id).
    pub sub: String,
    /// Audience: the client id.
    pub aud: String,
    /// Expiry.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// When the user signed in (the login session's time); absent only for
    /// a code or refresh family stored before keygate recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The authorization request's `nonce`; never on a refresh (§12.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Core §3.1.3.6 hash of the access token issued with it.
    pub at_hash: String,
    /// Authorized party: the client id.
    pub azp: String,
    /// The login session's public id (Back-Channel Logout 1.0 §2.1,
    /// `backchannel_logout_session_supported`): the `sid` a logout token
    /// names. Never the session cookie's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Authentication methods (Core §2, RFC 8176): `["pwd"]` for a sign-in
    /// on the login form, keygate's only way to sign in; absent when the
    /// sign-in is unknown (no `auth_time`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
}

/// The RFC 8176 `amr` value of a password sign-in.
pub const AMR_PASSWORD: &str = "pwd";

/// What an ID token is issued for.
#[derive(Debug, Clone, Copy)]
pub struct IdGrant<'a> {
    /// `iss`
    pub issuer: &'a str,
    /// `sub`
    pub subject: &'a str,
    /// `aud` and `azp`
    pub client_id: &'a str,
    /// `auth_time`
    pub auth_time: Option<i64>,
    /// `nonce` (authorization-code redemption only)
    pub nonce: Option<&'a str>,
    /// `sid`: the login session of the sign-in
    pub sid: Option<&'a str>,
}

impl IdClaims {
    /// The claims for `grant`, issued at `now` for `ttl` seconds, with the
    /// `at_hash` of `access_token` under `alg`; `None` for an unknown `alg`.
    pub fn new(
        grant: IdGrant<'_>,
        now: i64,
        ttl: i64,
        alg: &str,
        access_token: &str,
    ) -> Option<Self> {
        Some(Self {
            iss: grant.issuer.to_string(),
            sub: grant.subject.to_string(),
            aud: grant.client_id.to_string(),
            exp: now + ttl,
            iat: now,
            auth_time: grant.auth_time,
            nonce: grant.nonce.map(str::to_string),
            at_hash: at_hash(alg, access_token)?,
            azp: grant.client_id.to_string(),
            sid: grant.sid.map(str::to_string),
            amr: grant.auth_time.map(|_| vec![AMR_PASSWORD.to_string()]),
        })
    }
}

/// The `events` member of a logout token (Back-Channel Logout 1.0 §2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// How long a logout token is valid: two minutes (Back-Channel Logout 1.0
/// §2.4 recommends a short life).
pub const LOGOUT_TOKEN_TTL: i64 = 120;

/// The claims of a logout token (Back-Channel Logout 1.0 §2.4): `iss`,
/// `aud`, `iat`, `exp`, `jti`, `sub`, `sid`, `events`; never a `nonce`
/// (§2.4: "A nonce Claim MUST NOT be present").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutClaims {
    /// Issuer.
    pub iss: String,
    /// The client it is sent to.
    pub aud: String,
    /// Issued at.
    pub iat: i64,
    /// Expiry: `iat` + [`LOGOUT_TOKEN_TTL`].
    pub exp: i64,
    /// Unique id, so the client can refuse a replay.
    pub jti: String,
    /// The user who logged out.
    pub sub: String,
    /// The session that ended (the `sid` of its ID tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// `{"http://schemas.openid.net/event/backchannel-logout": {}}`
    pub events: serde_json::Value,
}

impl LogoutClaims {
    /// The logout token for `client_id` of the session `sid` of `sub`, at `now`.
    pub fn new(
        issuer: &str,
        client_id: &str,
        sub: &str,
        sid: Option<&str>,
        now: i64,
        jti: String,
    ) -> Self {
        Self {
            iss: issuer.to_string(),
            aud: client_id.to_string(),
            iat: now,
            exp: now + LOGOUT_TOKEN_TTL,
            jti,
            sub: sub.to_string(),
            sid: sid.map(str::to_string),
            events: serde_json::json!({ BACKCHANNEL_LOGOUT_EVENT: {} }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of Ping Identity's documentation (RS256):
    /// SHA-256's left 128 bits of the token, base64url.
    #[test]
    fn at_hash_rs256_and_es256_use_sha256_left_half() {
        let t = "dNZX1hEZ9wBCzNL40Upu646bdzQA";
        assert_eq!(at_hash("RS256", t).unwrap(), "wfgvmE9VxjAudsl9lc6TqA");
        assert_eq!(at_hash("ES256", t), at_hash("RS256", t));
    }

    #[test]
    fn at_hash_eddsa_uses_sha512_left_half() {
        let t = "dNZX1hEZ9wBCzNL40Upu646bdzQA";
        let h = at_hash("EdDSA", t).unwrap();
        let full = ring::digest::digest(&ring::digest::SHA512, t.as_bytes());
        assert_eq!(h, B64.encode(&full.as_ref()[..32]));
        assert_eq!(B64.decode(&h).unwrap().len(), 32);
        assert_ne!(Some(h), at_hash("RS256", t));
        assert_eq!(at_hash("HS256", t), None);
    }

    #[test]
    fn nonce_is_bounded() {
        assert_eq!(check_nonce(None).unwrap(), None);
        let ok = "n".repeat(MAX_NONCE_LEN);
        assert_eq!(check_nonce(Some(&ok)).unwrap().as_deref(), Some(&ok[..]));
        let e = check_nonce(Some(&"n".repeat(MAX_NONCE_LEN + 1))).unwrap_err();
        assert_eq!(e.code, super::super::ErrorCode::InvalidRequest);
    }

    #[test]
    fn claims_name_the_client_twice_and_omit_a_missing_nonce() {
        let g = IdGrant {
            issuer: "https://iss",
            subject: "u1",
            client_id: "c1",
            auth_time: Some(90),
            nonce: None,
            sid: None,
        };
        let c = IdClaims::new(g, 100, 60, "RS256", "tok").unwrap();
        assert_eq!((c.aud.as_str(), c.azp.as_str()), ("c1", "c1"));
        assert_eq!((c.iat, c.exp, c.auth_time), (100, 160, Some(90)));
        let json = serde_json::to_value(&c).unwrap();
        assert!(json.get("nonce").is_none());
        let c = IdClaims::new(
            IdGrant {
                nonce: Some("n-1"),
                ..g
            },
            100,
            60,
            "EdDSA",
            "tok",
        );
        assert_eq!(c.unwrap().nonce.as_deref(), Some("n-1"));
    }

    #[test]
    fn logout_claims_carry_the_event_and_no_nonce() {
        let c = LogoutClaims::new("https://iss", "c1", "u1", Some("s1"), 100, "j".into());
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v["events"],
            serde_json::json!({BACKCHANNEL_LOGOUT_EVENT: {}})
        );
        assert_eq!((c.iat, c.exp), (100, 100 + LOGOUT_TOKEN_TTL));
        assert_eq!(
            (v["aud"].as_str(), v["sid"].as_str()),
            (Some("c1"), Some("s1"))
        );
        assert!(v.get("nonce").is_none());
    }
}
