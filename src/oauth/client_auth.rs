//! Client authentication at the token endpoint (RFC 6749 §2.3.1, RFC 7591 §2
//! `token_endpoint_auth_method`). Secrets are compared as SHA-256 digests in
//! constant time.

use std::borrow::Borrow;

use ring::digest::{digest, SHA256};
use subtle::ConstantTimeEq;

use super::error::OAuthError;
use super::types::{AuthMethod, Client};

/// The credentials a request presented, after picking exactly one method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCredentials {
    /// HTTP Basic with the client id and secret.
    Basic {
        /// client_id from the header.
        client_id: String,
        /// client_secret from the header.
        secret: String,
    },
    /// `client_id` and `client_secret` in the form body.
    Post {
        /// client_id from the body.
        client_id: String,
        /// client_secret from the body.
        secret: String,
    },
    /// A public client identifying itself with `client_id` only.
    None {
        /// client_id from the body.
        client_id: String,
    },
}

impl ClientCredentials {
    /// The client id the request claims.
    pub fn client_id(&self) -> &str {
        match self {
            Self::Basic { client_id, .. }
            | Self::Post { client_id, .. }
            | Self::None { client_id } => client_id,
        }
    }
    fn method(&self) -> AuthMethod {
        match self {
            Self::Basic { .. } => AuthMethod::ClientSecretBasic,
            Self::Post { .. } => AuthMethod::ClientSecretPost,
            Self::None { .. } => AuthMethod::None,
        }
    }
    fn secret(&self) -> Option<&str> {
        match self {
            Self::Basic { secret, .. } | Self::Post { secret, .. } => Some(secret),
            Self::None { .. } => None,
        }
    }
}

/// The `invalid_client` description for a request that authenticates no
/// client (no credentials; at introspection also a `client_id` alone).
pub const AUTH_REQUIRED: &str = "client authentication is required";

/// Picks the one authentication method a request used.
///
/// `basic` is the already-decoded pair from `Authorization: Basic` (each part
/// form-urlencoded per RFC 6749 §2.3.1, decoded here). RFC 6749 §2.3: a client
/// MUST NOT use more than one method in a request.
pub fn select_credentials(
    basic: Option<(&str, &str)>,
    form_client_id: Option<&str>,
    form_client_secret: Option<&str>,
) -> Result<ClientCredentials, OAuthError> {
    match (basic, form_client_id, form_client_secret) {
        (Some(_), _, Some(_)) => Err(OAuthError::invalid_request(
            "client credentials were sent both in the Authorization header and in the body; use one method",
        )),
        (Some((id, secret)), form_id, None) => {
            let client_id = form_decode(id);
            if form_id.is_some_and(|f| f != client_id) {
                return Err(OAuthError::invalid_request(
                    "client_id in the body does not match the Authorization header",
                ));
            }
            if client_id.is_empty() {
                return Err(OAuthError::invalid_client("empty client_id in the Authorization header"));
            }
            Ok(ClientCredentials::Basic {
                client_id,
                secret: form_decode(secret),
            })
        }
        (None, Some(id), Some(secret)) => Ok(ClientCredentials::Post {
            client_id: id.to_string(),
            secret: secret.to_string(),
        }),
        (None, Some(id), None) => Ok(ClientCredentials::None {
            client_id: id.to_string(),
        }),
        (None, None, Some(_)) => Err(OAuthError::invalid_request(
            "client_secret was sent without client_id",
        )),
        (None, None, None) => Err(OAuthError::invalid_client(AUTH_REQUIRED)),
    }
}

/// Checks presented credentials against the registered client (`None` when the
/// id is unknown). Unknown client and wrong secret give the same description,
/// so the response does not reveal which client ids exist.
pub fn authenticate<C: Borrow<Client>>(
    creds: &ClientCredentials,
    client: Option<C>,
) -> Result<C, OAuthError> {
    const FAILED: &str = "client authentication failed";
    let Some(found) = client else {
        return Err(OAuthError::invalid_client(FAILED));
    };
    let client = found.borrow();
    if creds.method() != client.auth_method {
        return Err(OAuthError::invalid_client(match client.auth_method {
            AuthMethod::ClientSecretBasic => {
                "this client must authenticate with client_secret_basic"
            }
            AuthMethod::ClientSecretPost => "this client must authenticate with client_secret_post",
            AuthMethod::None => "this client is public and must not send a client secret",
        }));
    }
    match (creds.secret(), &client.secret_sha256) {
        (None, None) => Ok(found),
        (Some(secret), Some(stored)) if secret_matches(secret, stored) => Ok(found),
        _ => Err(OAuthError::invalid_client(FAILED)),
    }
}

/// SHA-256 of a client secret, as stored.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    let d = digest(&SHA256, secret.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Constant-time comparison of a presented secret with the stored digest.
pub fn secret_matches(presented: &str, stored: &[u8; 32]) -> bool {
    hash_secret(presented).ct_eq(stored).into()
}

/// `application/x-www-form-urlencoded` decoding of one value (RFC 6749 §2.3.1
/// applies it to the Basic user-id and password).
fn form_decode(s: &str) -> String {
    // Most ids and secrets have nothing to decode.
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return s.to_string();
    }
    form_urlencoded::parse(format!("v={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::types::{GrantType, ScopeSet};
    use crate::oauth::ErrorCode;

    fn client(method: AuthMethod) -> Client {
        Client {
            client_id: "c1".into(),
            client_name: "C".into(),
            secret_sha256: (method != AuthMethod::None).then(|| hash_secret("s3cret")),
            auth_method: method,
            grant_types: vec![GrantType::ClientCredentials],
            redirect_uris: vec![],
            scope: ScopeSet::parse("a b").unwrap(),
            created_at: 0,
            ..Default::default()
        }
    }

    #[test]
    fn one_method_only() {
        let e = select_credentials(Some(("c1", "x")), None, Some("x")).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        let e = select_credentials(None, None, None).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidClient);
        let e = select_credentials(Some(("c1", "x")), Some("c2"), None).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn basic_parts_are_form_decoded() {
        let c = select_credentials(Some(("my%3Aid", "a+b%25")), None, None).unwrap();
        assert_eq!(
            c,
            ClientCredentials::Basic {
                client_id: "my:id".into(),
                secret: "a b%".into()
            }
        );
    }

    #[test]
    fn registered_method_is_enforced() {
        let basic = select_credentials(Some(("c1", "s3cret")), None, None).unwrap();
        let post = select_credentials(None, Some("c1"), Some("s3cret")).unwrap();
        authenticate(&basic, Some(&client(AuthMethod::ClientSecretBasic))).unwrap();
        authenticate(&post, Some(&client(AuthMethod::ClientSecretPost))).unwrap();
        assert!(authenticate(&post, Some(&client(AuthMethod::ClientSecretBasic))).is_err());
        assert!(authenticate(&basic, Some(&client(AuthMethod::ClientSecretPost))).is_err());
        let none = select_credentials(None, Some("c1"), None).unwrap();
        assert!(authenticate(&none, Some(&client(AuthMethod::ClientSecretBasic))).is_err());
        authenticate(&none, Some(&client(AuthMethod::None))).unwrap();
    }

    #[test]
    fn wrong_secret_and_unknown_client_look_alike() {
        let bad = select_credentials(Some(("c1", "nope")), None, None).unwrap();
        let e1 = authenticate(&bad, Some(&client(AuthMethod::ClientSecretBasic))).unwrap_err();
        let e2 = authenticate::<&Client>(&bad, None).unwrap_err();
        assert_eq!(e1, e2);
        assert_eq!(e1.code, ErrorCode::InvalidClient);
    }
}
