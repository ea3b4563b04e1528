//! Client metadata rules shared by the CLI, the config file and (later) RFC 7591
//! registration: which combinations of grant types, redirect URIs, auth method
//! and scope make a valid client.

use super::types::{AuthMethod, GrantType, ScopeSet};

/// Requested client metadata, before an id or secret exists.
#[derive(Debug, Clone)]
pub struct ClientMetadata {
    /// Human-readable name.
    pub client_name: String,
    /// Redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Grant types.
    pub grant_types: Vec<GrantType>,
    /// Scopes the client may request.
    pub scope: ScopeSet,
    /// Token endpoint auth method.
    pub auth_method: AuthMethod,
    /// Home page (optional).
    pub client_uri: Option<String>,
    /// Logo (optional).
    pub logo_uri: Option<String>,
}

/// A metadata problem: the RFC 7591 §3.2.2 code and the field it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct MetadataError {
    /// `invalid_redirect_uri` or `invalid_client_metadata`.
    pub code: &'static str,
    /// The metadata field at fault.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

fn meta(field: &'static str, message: impl Into<String>) -> MetadataError {
    MetadataError {
        code: "invalid_client_metadata",
        field,
        message: message.into(),
    }
}

/// Server-wide rules for client metadata (from the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Scopes clients may be registered for.
    pub scopes: ScopeSet,
    /// Accept `http://` redirect URIs on loopback hosts (RFC 8252 §7.3 native apps).
    pub http_loopback_redirects: bool,
}

/// Checks that the metadata describes a usable client.
pub fn validate(m: &ClientMetadata, rules: &Rules) -> Result<(), MetadataError> {
    let known_scopes = &rules.scopes;
    if m.client_name.trim().is_empty() || m.client_name.len() > 200 {
        return Err(meta("client_name", "must be 1 to 200 characters"));
    }
    if m.grant_types.is_empty() {
        return Err(meta("grant_types", "at least one grant type is required"));
    }
    let needs_redirect = m
        .grant_types
        .iter()
        .any(|g| matches!(g, GrantType::AuthorizationCode | GrantType::Implicit));
    if needs_redirect && m.redirect_uris.is_empty() {
        return Err(MetadataError {
            code: "invalid_redirect_uri",
            field: "redirect_uris",
            message: "authorization_code and implicit clients need at least one redirect URI"
                .into(),
        });
    }
    for uri in &m.redirect_uris {
        check_redirect_uri(uri, rules.http_loopback_redirects)?;
    }
    let confidential_only = m
        .grant_types
        .iter()
        .any(|g| matches!(g, GrantType::ClientCredentials));
    if confidential_only && m.auth_method == AuthMethod::None {
        return Err(meta(
            "token_endpoint_auth_method",
            "client_credentials needs a confidential client (client_secret_basic or client_secret_post)",
        ));
    }
    for (field, uri) in [("client_uri", &m.client_uri), ("logo_uri", &m.logo_uri)] {
        if let Some(u) = uri {
            let ok = url::Url::parse(u).is_ok_and(|p| {
                p.scheme() == "https" || (p.scheme() == "http" && super::types::is_loopback_url(u))
            });
            if !ok {
                return Err(meta(field, format!("`{u}` must be an absolute https URL")));
            }
        }
    }
    if !m.scope.is_subset(known_scopes) {
        let unknown: Vec<&str> = m
            .scope
            .iter()
            .filter(|s| !known_scopes.contains(s))
            .collect();
        return Err(meta(
            "scope",
            format!("unknown scope(s): {}", unknown.join(" ")),
        ));
    }
    Ok(())
}

/// RFC 7591 §2.1: `response_types` must match the grant types
/// (`code` ↔ `authorization_code`, `token` ↔ `implicit`).
pub fn check_response_types(
    grants: &[GrantType],
    response_types: &[String],
) -> Result<(), MetadataError> {
    let mut expected: Vec<&str> = super::types::response_types_for(grants);
    let mut given: Vec<&str> = response_types.iter().map(String::as_str).collect();
    expected.sort_unstable();
    given.sort_unstable();
    given.dedup();
    if expected == given {
        Ok(())
    } else {
        Err(meta(
            "response_types",
            format!(
                "response_types [{}] do not match grant_types (expected [{}])",
                given.join(", "),
                expected.join(", ")
            ),
        ))
    }
}

/// A redirect URI must be absolute, without fragment (RFC 6749 §3.1.2), and
/// https unless the host is loopback (RFC 8252 §7.3, RFC 9700 §2.1).
pub fn check_redirect_uri(uri: &str, http_loopback: bool) -> Result<(), MetadataError> {
    let bad = |message: String| MetadataError {
        code: "invalid_redirect_uri",
        field: "redirect_uris",
        message,
    };
    let u = url::Url::parse(uri).map_err(|_| bad(format!("`{uri}` is not an absolute URI")))?;
    if u.fragment().is_some() {
        return Err(bad(format!("`{uri}` must not contain a fragment")));
    }
    if u.scheme() == "http" && !(http_loopback && super::types::is_loopback_url(uri)) {
        return Err(bad(if http_loopback {
            format!("`{uri}` must use https (http is allowed only for loopback hosts)")
        } else {
            format!("`{uri}` must use https")
        }));
    }
    if matches!(u.scheme(), "javascript" | "data" | "file") {
        return Err(bad(format!("`{uri}` uses a forbidden scheme")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> ClientMetadata {
        ClientMetadata {
            client_name: "App".into(),
            redirect_uris: vec!["https://app.example/cb".into()],
            grant_types: vec![GrantType::AuthorizationCode],
            scope: ScopeSet::parse("profile").unwrap(),
            auth_method: AuthMethod::None,
            client_uri: None,
            logo_uri: None,
        }
    }

    #[test]
    fn rules() {
        let known = Rules {
            scopes: ScopeSet::parse("profile email").unwrap(),
            http_loopback_redirects: true,
        };
        validate(&m(), &known).unwrap();
        let mut x = m();
        x.redirect_uris.clear();
        assert_eq!(
            validate(&x, &known).unwrap_err().code,
            "invalid_redirect_uri"
        );
        let mut x = m();
        x.redirect_uris = vec!["http://app.example/cb".into()];
        assert_eq!(validate(&x, &known).unwrap_err().field, "redirect_uris");
        let mut x = m();
        x.redirect_uris = vec!["http://127.0.0.1:3000/cb".into()];
        validate(&x, &known).unwrap();
        let strict = Rules {
            http_loopback_redirects: false,
            ..known.clone()
        };
        assert_eq!(validate(&x, &strict).unwrap_err().field, "redirect_uris");
        let mut x = m();
        x.redirect_uris = vec!["https://a/cb#f".into()];
        assert!(validate(&x, &known).is_err());
        let mut x = m();
        x.grant_types = vec![GrantType::ClientCredentials];
        assert_eq!(
            validate(&x, &known).unwrap_err().field,
            "token_endpoint_auth_method"
        );
        let mut x = m();
        x.scope = ScopeSet::parse("admin").unwrap();
        assert_eq!(validate(&x, &known).unwrap_err().field, "scope");
    }
}
