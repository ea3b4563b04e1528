//! RFC 9068 JWT access tokens and OpenID Connect ID tokens: signing with the
//! cached AWS-LC key (one signature per token), verification with
//! jsonwebtoken (AWS-LC backend).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::{decode, decode_header, Validation};

use super::keys::{KeySet, SigningKey};
use crate::oauth::id_token::IdClaims;
use crate::oauth::token::AccessClaims;

/// Signing failed (the key or the RNG refused); never expected in practice.
#[derive(Debug, thiserror::Error)]
#[error("signing failed")]
pub struct SignError;

/// Serialises `claims` and signs them as a compact JWS with `key`'s cached header.
pub fn sign(key: &SigningKey, claims: &AccessClaims) -> Result<String, SignError> {
    sign_with(key, &key.header_b64, claims)
}

/// Signs an OpenID Connect ID token with `key` (header `typ: JWT`, `alg`,
/// `kid`, cached like the access token's).
pub fn sign_id_token(key: &SigningKey, claims: &IdClaims) -> Result<String, SignError> {
    sign_with(key, &key.id_header_b64, claims)
}

fn sign_with(
    key: &SigningKey,
    header_b64: &str,
    claims: &impl serde::Serialize,
) -> Result<String, SignError> {
    let payload = serde_json::to_vec(claims).map_err(|_| SignError)?;
    let mut out = String::with_capacity(header_b64.len() + payload.len() * 4 / 3 + 400);
    out.push_str(header_b64);
    out.push('.');
    B64.encode_string(&payload, &mut out);
    let sig = key.sign_raw(out.as_bytes()).map_err(|_| SignError)?;
    out.push('.');
    B64.encode_string(&sig, &mut out);
    Ok(out)
}

/// Signs an OpenID Connect Back-Channel Logout 1.0 §2.4 logout token with
/// `key` (header `typ: logout+jwt`, §2.4 recommends the explicit type).
pub fn sign_logout_token(
    key: &SigningKey,
    claims: &impl serde::Serialize,
) -> Result<String, SignError> {
    let header = serde_json::json!({"alg": key.alg.as_str(), "typ": "logout+jwt", "kid": key.kid});
    let header_b64 = B64.encode(header.to_string());
    sign_with(key, &header_b64, claims)
}

/// What keygate reads from an `id_token_hint` (RP-Initiated Logout 1.0 §2).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct IdTokenHint {
    /// The user.
    pub sub: String,
    /// The client the ID token was issued to.
    pub aud: String,
    /// The login session, when the ID token named one.
    #[serde(default)]
    pub sid: Option<String>,
}

/// Verifies an `id_token_hint`: an ID token keygate issued (key by `kid`,
/// algorithm pinned to that key's, `typ` `JWT` or absent, never an access
/// token's `at+jwt`), signature and `iss`. An expired ID token is still a
/// good hint (RP-Initiated Logout 1.0 §2: the OP need not check `exp`), so
/// `exp` is not checked; `aud` is read, not checked.
pub fn verify_id_token_hint(
    keys: &KeySet,
    token: &str,
    issuer: &str,
) -> Result<IdTokenHint, VerifyError> {
    let id_token_typ = |typ: Option<&str>| typ.is_none_or(|t| t.eq_ignore_ascii_case("JWT"));
    let key = signing_key(keys, token, id_token_typ, "typ is not JWT")?;
    let mut v = Validation::new(key.alg.jwt_alg());
    v.set_issuer(&[issuer]);
    v.validate_aud = false;
    v.validate_exp = false;
    v.validate_nbf = false;
    v.set_required_spec_claims(&["iss", "aud", "sub"]);
    Ok(decode::<IdTokenHint>(token, &key.decoding, &v)?.claims)
}

/// Why a token did not verify. The reason is for logs, never for clients.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Not a JWT, wrong `typ`, unknown `kid`, or an algorithm other than the key's.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// Signature, issuer, audience or time checks failed.
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

/// Verifies an access token against `keys` the way a resource server does:
/// key by `kid`, algorithm pinned to that key's, `typ: at+jwt` (RFC 9068 §4),
/// signature, `iss`, `aud`, `exp` and `nbf`.
pub fn verify(
    keys: &KeySet,
    token: &str,
    issuer: &str,
    audience: &str,
) -> Result<AccessClaims, VerifyError> {
    verify_inner(keys, token, issuer, Some(audience), true)
}

/// Verifies a token keygate issued for any audience (the default one or an
/// RFC 8707 resource): everything [`verify`] checks but `aud`, which must
/// still be present. For keygate's own token endpoints (introspection,
/// revocation), never for a resource; `check_time: false` skips `exp` and
/// `nbf` (revocation of a token that may have expired).
pub fn verify_any_audience(
    keys: &KeySet,
    token: &str,
    issuer: &str,
    check_time: bool,
) -> Result<AccessClaims, VerifyError> {
    verify_inner(keys, token, issuer, None, check_time)
}

fn verify_inner(
    keys: &KeySet,
    token: &str,
    issuer: &str,
    audience: Option<&str>,
    check_time: bool,
) -> Result<AccessClaims, VerifyError> {
    // RFC 9068 §4: `at+jwt` (or its full media type) is required.
    let access_typ = |typ: Option<&str>| {
        typ.is_some_and(|t| {
            t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
        })
    };
    let key = signing_key(keys, token, access_typ, "typ is not at+jwt")?;
    let mut v = Validation::new(key.alg.jwt_alg());
    v.set_issuer(&[issuer]);
    match audience {
        Some(a) => v.set_audience(&[a]),
        None => v.validate_aud = false,
    }
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.validate_nbf = check_time;
    v.validate_exp = check_time;
    v.leeway = 0;
    Ok(decode::<AccessClaims>(token, &key.decoding, &v)?.claims)
}

/// The published key that signed `token`, found by its header's `kid`,
/// with the header's `alg` pinned to that key's (RFC 8725 §3.1): a header
/// that names critical extensions (RFC 7515 §4.1.11) or whose `typ` fails
/// `typ_ok` is refused (`typ_error`) before any key is used.
fn signing_key<'k>(
    keys: &'k KeySet,
    token: &str,
    typ_ok: impl Fn(Option<&str>) -> bool,
    typ_error: &'static str,
) -> Result<&'k SigningKey, VerifyError> {
    let header = decode_header(token).map_err(|_| VerifyError::Malformed("bad header"))?;
    if names_critical_extensions(token) {
        return Err(VerifyError::Malformed(
            "crit names extensions keygate does not support",
        ));
    }
    if !typ_ok(header.typ.as_deref()) {
        return Err(VerifyError::Malformed(typ_error));
    }
    let kid = header
        .kid
        .as_deref()
        .ok_or(VerifyError::Malformed("no kid"))?;
    let key = keys
        .find(kid)
        .ok_or(VerifyError::Malformed("unknown kid"))?;
    if header.alg != key.alg.jwt_alg() {
        return Err(VerifyError::Malformed("alg does not match the key"));
    }
    Ok(key.as_ref())
}

/// RFC 7515 §4.1.11: a recipient MUST reject a JWS whose `crit` header lists
/// extensions it does not understand. keygate understands none, so any `crit`
/// is refused. jsonwebtoken's `Header` drops unknown members, so the header's
/// JSON (already decoded once by `decode_header`) is read for this one member.
fn names_critical_extensions(token: &str) -> bool {
    token
        .split('.')
        .next()
        .and_then(|h| B64.decode(h).ok())
        .and_then(|json| {
            serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&json).ok()
        })
        .is_some_and(|header| header.contains_key("crit"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::token::Grant;
    use crate::oauth::types::ScopeSet;
    use crate::tokens::keys::{generate_into, Alg, Rotation};

    fn claims(now: i64) -> AccessClaims {
        let g = Grant {
            subject: "svc".into(),
            client_id: "svc".into(),
            scope: ScopeSet::parse("a").unwrap(),
            family: None,
        };
        AccessClaims::new("https://iss", "https://aud", &g, now, 600, "jti1".into())
    }

    fn now() -> i64 {
        use crate::clock::{Clock, SystemClock};
        SystemClock.now()
    }

    #[test]
    fn sign_verify_every_alg_and_refuse_tampering() {
        let dir = tempfile::tempdir().unwrap();
        for (i, alg) in [Alg::RS256, Alg::ES256, Alg::EdDSA].into_iter().enumerate() {
            generate_into(dir.path(), alg, i as i64).unwrap();
            let set = KeySet::load_dir(dir.path(), Rotation::IMMEDIATE).unwrap();
            let key = set.signer_at(now());
            assert_eq!(key.alg, alg);
            let t = sign(key, &claims(now())).unwrap();
            let c = verify(&set, &t, "https://iss", "https://aud").unwrap();
            assert_eq!(c.sub, "svc");
            assert!(verify(&set, &t, "https://other", "https://aud").is_err());
            assert!(verify(&set, &t, "https://iss", "https://other").is_err());
            let mut forged = t.clone();
            forged.pop();
            forged.push(if t.ends_with('A') { 'B' } else { 'A' });
            assert!(verify(&set, &forged, "https://iss", "https://aud").is_err());
            let expired = sign(key, &claims(now() - 10_000)).unwrap();
            assert!(verify(&set, &expired, "https://iss", "https://aud").is_err());
        }
    }

    /// OpenID Connect: an ID token of every alg has header `typ: JWT` with
    /// the key's `alg` and `kid`, verifies with the key, and carries the
    /// `at_hash` of its alg (SHA-512 for EdDSA); an access token verifier
    /// refuses it (`typ`), so one can never pass for the other.
    #[test]
    fn id_tokens_of_every_alg() {
        use crate::oauth::id_token::{at_hash, IdGrant};
        let dir = tempfile::tempdir().unwrap();
        for (i, alg) in [Alg::RS256, Alg::ES256, Alg::EdDSA].into_iter().enumerate() {
            generate_into(dir.path(), alg, i as i64).unwrap();
            let set = KeySet::load_dir(dir.path(), Rotation::IMMEDIATE).unwrap();
            let key = set.signer_at(now());
            let access = sign(key, &claims(now())).unwrap();
            let grant = IdGrant {
                issuer: "https://iss",
                subject: "svc",
                client_id: "rp",
                auth_time: Some(now() - 5),
                nonce: Some("n-1"),
                sid: Some("s-1"),
            };
            let c = IdClaims::new(grant, now(), 600, alg.as_str(), &access).unwrap();
            let t = sign_id_token(key, &c).unwrap();
            let h = decode_header(&t).unwrap();
            assert_eq!(h.typ.as_deref(), Some("JWT"));
            assert_eq!(h.kid.as_deref(), Some(key.kid.as_str()));
            assert_eq!(h.alg, alg.jwt_alg());
            let mut v = Validation::new(alg.jwt_alg());
            v.set_issuer(&["https://iss"]);
            v.set_audience(&["rp"]);
            let got = decode::<IdClaims>(&t, &key.decoding, &v).unwrap().claims;
            assert_eq!(got, c);
            let half = if alg == Alg::EdDSA { 32 } else { 16 };
            assert_eq!(B64.decode(&got.at_hash).unwrap().len(), half, "{alg}");
            assert_eq!(Some(got.at_hash), at_hash(alg.as_str(), &access));
            assert!(verify_any_audience(&set, &t, "https://iss", true).is_err());
        }
    }

    #[test]
    fn alg_none_and_hs256_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = generate_into(dir.path(), Alg::RS256, 1).unwrap();
        let set = KeySet::load_dir(dir.path(), Rotation::IMMEDIATE).unwrap();
        let body = B64.encode(serde_json::to_vec(&claims(now())).unwrap());
        let none = format!(
            "{}.{body}.",
            B64.encode(format!(
                r#"{{"alg":"none","typ":"at+jwt","kid":"{}"}}"#,
                key.kid
            ))
        );
        assert!(verify(&set, &none, "https://iss", "https://aud").is_err());
        // HS256 keyed with the public JWK (the classic alg-confusion attack).
        let hs = jsonwebtoken::encode(
            &jsonwebtoken::Header {
                alg: jsonwebtoken::Algorithm::HS256,
                typ: Some("at+jwt".into()),
                kid: Some(key.kid.clone()),
                ..Default::default()
            },
            &claims(now()),
            &jsonwebtoken::EncodingKey::from_secret(key.jwk.to_string().as_bytes()).unwrap(),
        )
        .unwrap();
        assert!(verify(&set, &hs, "https://iss", "https://aud").is_err());
    }

    /// Issue 12 item 10: a token whose header has `crit` is refused, even
    /// with a valid signature; the same token without it verifies.
    #[test]
    fn a_crit_header_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        generate_into(dir.path(), Alg::ES256, 1).unwrap();
        let set = KeySet::load_dir(dir.path(), Rotation::IMMEDIATE).unwrap();
        let key = set.signer_at(now());
        let header: serde_json::Value =
            serde_json::from_slice(&B64.decode(&key.header_b64).unwrap()).unwrap();
        let body = B64.encode(serde_json::to_vec(&claims(now())).unwrap());
        let signed = |header: &serde_json::Value| {
            let input = format!("{}.{body}", B64.encode(header.to_string()));
            let sig = key.sign_raw(input.as_bytes()).unwrap();
            format!("{input}.{}", B64.encode(sig))
        };
        let plain = signed(&header);
        assert!(verify(&set, &plain, "https://iss", "https://aud").is_ok());
        for crit in [
            serde_json::json!(["exp"]),
            serde_json::json!([]),
            serde_json::json!("x"),
        ] {
            let mut h = header.clone();
            h["crit"] = crit.clone();
            h["exp"] = serde_json::json!(1);
            let t = signed(&h);
            assert!(
                matches!(
                    verify(&set, &t, "https://iss", "https://aud"),
                    Err(VerifyError::Malformed(_))
                ),
                "crit {crit}"
            );
            assert!(verify_any_audience(&set, &t, "https://iss", false).is_err());
        }
    }

    /// RFC 8707: a token for a resource verifies for that resource (also
    /// inside an `aud` array) and for keygate's own endpoints, never for
    /// the default audience (`/api/me`).
    #[test]
    fn resource_audiences() {
        use crate::oauth::resource::Audience;
        let dir = tempfile::tempdir().unwrap();
        generate_into(dir.path(), Alg::EdDSA, 0).unwrap();
        let set = KeySet::load_dir(dir.path(), Rotation::IMMEDIATE).unwrap();
        let key = set.signer_at(now());
        let mut c = claims(now());
        c.aud = Audience::One("https://api.example/".into());
        let t = sign(key, &c).unwrap();
        assert!(verify(&set, &t, "https://iss", "https://aud").is_err());
        assert!(verify(&set, &t, "https://iss", "https://api.example/").is_ok());
        assert_eq!(
            verify_any_audience(&set, &t, "https://iss", true).unwrap(),
            c
        );
        assert!(verify_any_audience(&set, &t, "https://other", true).is_err());
        c.aud = Audience::Many(vec!["https://a.example".into(), "https://b.example".into()]);
        let t = sign(key, &c).unwrap();
        assert!(verify(&set, &t, "https://iss", "https://b.example").is_ok());
        assert!(verify(&set, &t, "https://iss", "https://aud").is_err());
        assert_eq!(
            verify_any_audience(&set, &t, "https://iss", true).unwrap(),
            c
        );
    }
}
