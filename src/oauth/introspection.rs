//! Who may introspect, and which tokens it may see (RFC 7662 §2.1, §4).
//! Pure: takes the presented credentials and the clients, returns a decision.

use super::client_auth::{ClientCredentials, AUTH_REQUIRED};
use super::error::OAuthError;
use super::resource::Resource;
use super::types::Client;

/// RFC 7662 §2.1: the endpoint MUST require authorization, and a `client_id`
/// alone (a public client, method `none`) authenticates no one. Refused before
/// any lookup with the same `invalid_client` as a request without credentials,
/// so the answer says nothing about the client id or the token.
pub fn require_client_secret(creds: &ClientCredentials) -> Result<(), OAuthError> {
    match creds {
        ClientCredentials::None { .. } => Err(OAuthError::invalid_client(AUTH_REQUIRED)),
        ClientCredentials::Basic { .. } | ClientCredentials::Post { .. } => Ok(()),
    }
}

/// RFC 7662 §4: whether the authenticated `caller` may see the claims of a
/// token issued to `token_client_id`. Only a confidential client, and only for
/// its own tokens (access and refresh alike); every other token is reported as
/// `{"active": false}`, as if unknown; the other caller allowed is the
/// resource server the token is for ([`may_see_as_resource`]).
pub fn may_see(caller: &Client, token_client_id: &str) -> bool {
    caller.is_confidential() && caller.client_id == token_client_id
}

/// RFC 7662 §4 with RFC 8707: a confidential `caller` registered as the
/// `client_id` of one of `resources` (the registered resources the token's
/// `aud` names) may see the token's claims.
pub fn may_see_as_resource(caller: &Client, resources: &[Resource]) -> bool {
    caller.is_confidential()
        && resources
            .iter()
            .any(|r| r.client_id.as_deref() == Some(caller.client_id.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::client_auth::select_credentials;
    use crate::oauth::types::AuthMethod;
    use crate::oauth::ErrorCode;

    fn client(id: &str, method: AuthMethod) -> Client {
        Client {
            client_id: id.into(),
            auth_method: method,
            ..Default::default()
        }
    }

    #[test]
    fn a_client_id_alone_is_refused_like_no_credentials() {
        let none = select_credentials(None, Some("spa"), None).unwrap();
        let e = require_client_secret(&none).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidClient);
        let missing = select_credentials(None, None, None).unwrap_err();
        assert_eq!(
            e, missing,
            "a public client learns nothing more than no client"
        );
        let basic = select_credentials(Some(("c1", "s")), None, None).unwrap();
        let post = select_credentials(None, Some("c1"), Some("s")).unwrap();
        require_client_secret(&basic).unwrap();
        require_client_secret(&post).unwrap();
    }

    #[test]
    fn a_confidential_client_sees_only_its_own_tokens() {
        let a = client("a", AuthMethod::ClientSecretBasic);
        assert!(may_see(&a, "a"));
        assert!(!may_see(&a, "b"));
        assert!(!may_see(&a, ""));
        assert!(may_see(&client("a", AuthMethod::ClientSecretPost), "a"));
        assert!(
            !may_see(&client("a", AuthMethod::None), "a"),
            "a public client sees nothing, not even its own tokens"
        );
    }

    #[test]
    fn a_resource_server_sees_tokens_for_its_resource() {
        let rs = |uri: &str, cid: Option<&str>| Resource {
            uri: uri.into(),
            scopes: crate::oauth::types::ScopeSet::parse("read").unwrap(),
            name: None,
            client_id: cid.map(str::to_string),
        };
        let a = client("rs-a", AuthMethod::ClientSecretBasic);
        assert!(may_see_as_resource(&a, &[rs("https://a", Some("rs-a"))]));
        assert!(may_see_as_resource(
            &a,
            &[rs("https://b", Some("rs-b")), rs("https://a", Some("rs-a"))]
        ));
        assert!(!may_see_as_resource(&a, &[rs("https://b", Some("rs-b"))]));
        assert!(!may_see_as_resource(&a, &[rs("https://a", None)]));
        assert!(!may_see_as_resource(&a, &[]));
        assert!(!may_see_as_resource(
            &client("rs-a", AuthMethod::None),
            &[rs("https://a", Some("rs-a"))]
        ));
    }
}
