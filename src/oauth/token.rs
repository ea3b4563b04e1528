//! Token endpoint rules (RFC 6749 §3.2, §4.4, §5) and RFC 9068 access token claims.

use serde::{Deserialize, Serialize};

use super::error::{ErrorCode, OAuthError};
use super::types::{Client, GrantType, ScopeSet};

/// The recognised token request parameters (RFC 6749 §4.1.3, §4.3.2, §4.4.2, §6).
/// Unrecognised parameters are ignored (RFC 6749 §3.2); empty values count as
/// omitted (RFC 6749 §3.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenParams {
    /// `grant_type`
    pub grant_type: Option<String>,
    /// `scope`
    pub scope: Option<String>,
    /// `client_id`
    pub client_id: Option<String>,
    /// `client_secret`
    pub client_secret: Option<String>,
    /// `code`
    pub code: Option<String>,
    /// `redirect_uri`
    pub redirect_uri: Option<String>,
    /// `code_verifier`
    pub code_verifier: Option<String>,
    /// `refresh_token`
    pub refresh_token: Option<String>,
    /// `username`
    pub username: Option<String>,
    /// `password`
    pub password: Option<String>,
}

impl TokenParams {
    /// Builds the parameters from decoded form pairs; a recognised parameter
    /// given twice is `invalid_request` (RFC 6749 §3.2).
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, OAuthError> {
        let mut p = TokenParams::default();
        for (name, value) in pairs {
            let slot = match name {
                "grant_type" => &mut p.grant_type,
                "scope" => &mut p.scope,
                "client_id" => &mut p.client_id,
                "client_secret" => &mut p.client_secret,
                "code" => &mut p.code,
                "redirect_uri" => &mut p.redirect_uri,
                "code_verifier" => &mut p.code_verifier,
                "refresh_token" => &mut p.refresh_token,
                "username" => &mut p.username,
                "password" => &mut p.password,
                _ => continue,
            };
            if slot.is_some() {
                return Err(OAuthError::invalid_request(format!(
                    "parameter `{name}` is included more than once"
                )));
            }
            if !value.is_empty() {
                *slot = Some(value.to_string());
            }
        }
        Ok(p)
    }

    /// The grant type, checked against what this server supports.
    pub fn grant(&self, supported: &[GrantType]) -> Result<GrantType, OAuthError> {
        let raw = self.grant_type.as_deref().ok_or_else(|| {
            OAuthError::invalid_request("missing required parameter `grant_type`")
        })?;
        GrantType::parse(raw)
            .filter(|g| *g != GrantType::Implicit && supported.contains(g))
            .ok_or_else(|| {
                OAuthError::new(
                    ErrorCode::UnsupportedGrantType,
                    "this grant type is not supported by this server",
                )
            })
    }
}

/// Scope granted for a request: the requested scope if it lies within the
/// client's registration, or the whole registered scope when none is requested
/// (RFC 6749 §3.3 "predefined default value").
pub fn granted_scope(client: &Client, requested: Option<&str>) -> Result<ScopeSet, OAuthError> {
    let Some(raw) = requested else {
        return Ok(client.scope.clone());
    };
    let scope = ScopeSet::parse(raw)?;
    if !scope.is_subset(&client.scope) {
        return Err(OAuthError::invalid_scope(
            "the requested scope exceeds the scope registered for this client",
        ));
    }
    Ok(scope)
}

/// RFC 6749 §4.4: the client must be registered for `client_credentials` and be
/// confidential (authentication already succeeded). Returns the granted scope.
pub fn client_credentials(
    client: &Client,
    requested: Option<&str>,
) -> Result<ScopeSet, OAuthError> {
    if !client.allows(GrantType::ClientCredentials) {
        return Err(OAuthError::unauthorized_client(
            "this client is not registered for the client_credentials grant",
        ));
    }
    if !client.is_confidential() {
        return Err(OAuthError::unauthorized_client(
            "the client_credentials grant requires a confidential client",
        ));
    }
    granted_scope(client, requested)
}

/// RFC 9068 §2.2 access token claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: the user id, or the client id for client_credentials.
    pub sub: String,
    /// Audience.
    pub aud: String,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Unique token id (used for revocation deny-lists).
    pub jti: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// Space-separated granted scopes; omitted when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
}

/// What a token is being issued for; the inputs of [`AccessClaims`].
#[derive(Debug, Clone)]
pub struct Grant {
    /// `sub`
    pub subject: String,
    /// `client_id`
    pub client_id: String,
    /// The granted scope.
    pub scope: ScopeSet,
}

impl AccessClaims {
    /// Builds claims valid from `now` for `ttl` seconds.
    pub fn new(
        issuer: &str,
        audience: &str,
        grant: &Grant,
        now: i64,
        ttl: i64,
        jti: String,
    ) -> Self {
        Self {
            iss: issuer.to_string(),
            sub: grant.subject.clone(),
            aud: audience.to_string(),
            exp: now + ttl,
            iat: now,
            nbf: now,
            jti,
            client_id: grant.client_id.clone(),
            scope: grant.scope.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::types::AuthMethod;

    fn client() -> Client {
        Client {
            client_id: "svc".into(),
            client_name: "Service".into(),
            secret_sha256: Some([0; 32]),
            auth_method: AuthMethod::ClientSecretBasic,
            grant_types: vec![GrantType::ClientCredentials],
            redirect_uris: vec![],
            scope: ScopeSet::parse("read write").unwrap(),
            created_at: 0,
        }
    }

    #[test]
    fn duplicates_are_invalid_request() {
        let e = TokenParams::from_pairs([("grant_type", "a"), ("grant_type", "a")]).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        // unknown parameters are ignored, even repeated
        let p = TokenParams::from_pairs([("x", "1"), ("x", "2"), ("scope", "")]).unwrap();
        assert_eq!(p.scope, None);
    }

    #[test]
    fn grant_type_rules() {
        let supported = [GrantType::ClientCredentials];
        let p = TokenParams::default();
        assert_eq!(
            p.grant(&supported).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        for g in ["password", "foo", "implicit"] {
            let p = TokenParams::from_pairs([("grant_type", g)]).unwrap();
            assert_eq!(
                p.grant(&supported).unwrap_err().code,
                ErrorCode::UnsupportedGrantType
            );
        }
    }

    #[test]
    fn scope_must_be_within_registration() {
        assert_eq!(
            client_credentials(&client(), None).unwrap().to_string(),
            "read write"
        );
        assert_eq!(
            client_credentials(&client(), Some("read"))
                .unwrap()
                .to_string(),
            "read"
        );
        assert_eq!(
            client_credentials(&client(), Some("read admin"))
                .unwrap_err()
                .code,
            ErrorCode::InvalidScope
        );
    }

    #[test]
    fn client_must_be_registered_and_confidential() {
        let mut c = client();
        c.grant_types = vec![GrantType::AuthorizationCode];
        assert_eq!(
            client_credentials(&c, None).unwrap_err().code,
            ErrorCode::UnauthorizedClient
        );
        let mut c = client();
        c.auth_method = AuthMethod::None;
        assert_eq!(
            client_credentials(&c, None).unwrap_err().code,
            ErrorCode::UnauthorizedClient
        );
    }

    #[test]
    fn claims_times() {
        let g = Grant {
            subject: "svc".into(),
            client_id: "svc".into(),
            scope: ScopeSet::parse("read").unwrap(),
        };
        let c = AccessClaims::new("https://i", "https://a", &g, 1000, 900, "j".into());
        assert_eq!((c.iat, c.nbf, c.exp), (1000, 1000, 1900));
        assert_eq!(c.scope, "read");
    }
}
