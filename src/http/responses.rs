//! The wire types of the JSON API's answers: bodies and response enums.
//! Which error becomes which variant is decided in `errors`, not here.

use poem_openapi::payload::Json;
use poem_openapi::types::{Example, ToJSON};
use poem_openapi::{ApiResponse, Object};

use super::errors::{introspect_bad_request, revoke_bad_request, token_bad_request};
use super::payload::RawJson;
use crate::oauth::{ErrorCode, OAuthError};

/// `Cache-Control` of every token and error response (RFC 6749 §5.1).
pub const NO_STORE: &str = "no-store";

/// An OAuth error body (RFC 6749 §5.2).
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct OAuthErrorBody {
    /// The RFC error code.
    pub error: String,
    /// Human-readable detail.
    #[oai(skip_serializing_if_is_none)]
    pub error_description: Option<String>,
}

impl Example for OAuthErrorBody {
    fn example() -> Self {
        Self {
            error: "invalid_scope".into(),
            error_description: Some(
                "the requested scope exceeds the scope registered for this client".into(),
            ),
        }
    }
}

impl OAuthErrorBody {
    /// Body for an error code and description.
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Json<Self> {
        Json(Self {
            error: code.as_str().into(),
            error_description: Some(description.into()),
        })
    }
}

impl From<&OAuthError> for OAuthErrorBody {
    fn from(e: &OAuthError) -> Self {
        Self {
            error: e.code.as_str().into(),
            error_description: Some(e.description.to_string()),
        }
    }
}

// Serialised with serde (`RawJson::serialize`); the `oai` attributes give its
// schema, so the two must agree (the optional `refresh_token` is skipped by both).
/// A successful token response (RFC 6749 §5.1, RFC 9068).
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(example)]
pub struct TokenBody {
    /// The access token: a JWT signed with the key published at `jwks_uri`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Lifetime of the access token in seconds.
    pub expires_in: u64,
    /// The granted scope (space-separated).
    pub scope: String,
    /// A refresh token (opaque), for clients registered for the refresh_token
    /// grant; rotated on every use.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// OpenID Connect ID token (a JWT with header `typ: JWT`, signed with the
    /// same key), when the grant's scope has `openid` (authorization code
    /// and refresh grants).
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl Example for TokenBody {
    fn example() -> Self {
        Self {
            access_token:
                "eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6Ii4uLiJ9.eyJpc3MiOiIuLi4ifQ.c2ln"
                    .into(),
            token_type: "Bearer".into(),
            expires_in: 900,
            scope: "profile".into(),
            refresh_token: Some("5bV3Yq2kQx0y3ZlV0yq1dQ".into()),
            id_token: None,
        }
    }
}

/// Responses of the token endpoint.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "token_bad_request")]
pub enum TokenResponse {
    /// Access token issued (RFC 6749 §5.1).
    #[oai(status = 200)]
    Ok(
        RawJson<TokenBody>,
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "Pragma")] String,
    ),
    /// RFC 6749 §5.2 error: invalid_request, invalid_grant, unauthorized_client,
    /// unsupported_grant_type or invalid_scope.
    #[oai(status = 400)]
    BadRequest(
        Json<OAuthErrorBody>,
        #[oai(header = "Cache-Control")] String,
    ),
    /// `invalid_client`: client authentication failed or was missing.
    #[oai(status = 401)]
    Unauthorized(
        Json<OAuthErrorBody>,
        #[oai(header = "WWW-Authenticate")] String,
        #[oai(header = "Cache-Control")] String,
    ),
    /// The request body is larger than `server.max_body_bytes`.
    #[oai(status = 413)]
    TooLarge(
        Json<OAuthErrorBody>,
        #[oai(header = "Cache-Control")] String,
    ),
    /// A rate limit refused the request (`[limits]`: failed client
    /// authentications from this address, a public client's requests from
    /// this address, an operator's per-client ceiling, or failed password
    /// grants for this username from this address): `temporarily_unavailable`
    /// (RFC 6749 has no rate-limit code); retry after `Retry-After` seconds.
    #[oai(status = 429)]
    TooManyRequests(
        Json<OAuthErrorBody>,
        #[oai(header = "Retry-After")] String,
        #[oai(header = "Cache-Control")] String,
    ),
    /// An unexpected server fault (details are in the server log).
    #[oai(status = 500)]
    ServerError(
        Json<OAuthErrorBody>,
        #[oai(header = "Cache-Control")] String,
    ),
    /// The store is unreachable: `temporarily_unavailable`; retry later.
    #[oai(status = 503)]
    Unavailable(
        Json<OAuthErrorBody>,
        #[oai(header = "Retry-After")] String,
        #[oai(header = "Cache-Control")] String,
    ),
}

/// Declares the response enum of a form-posting OAuth endpoint (revocation,
/// introspection): its success variant plus the error variants every such
/// endpoint shares with the token endpoint (`errors` maps errors to them).
macro_rules! form_endpoint_response {
    ($(#[$doc:meta])* $name:ident, $handler:literal, $(#[$okdoc:meta])* Ok($($ok:tt)*)) => {
        $(#[$doc])*
        #[derive(ApiResponse)]
        #[oai(bad_request_handler = $handler)]
        pub enum $name {
            $(#[$okdoc])*
            #[oai(status = 200)]
            Ok($($ok)*),
            /// `invalid_request`.
            #[oai(status = 400)]
            BadRequest(Json<OAuthErrorBody>, #[oai(header = "Cache-Control")] String),
            /// `invalid_client`.
            #[oai(status = 401)]
            Unauthorized(
                Json<OAuthErrorBody>,
                #[oai(header = "WWW-Authenticate")] String,
                #[oai(header = "Cache-Control")] String,
            ),
            /// The request body is too large.
            #[oai(status = 413)]
            TooLarge(Json<OAuthErrorBody>, #[oai(header = "Cache-Control")] String),
            /// Too many failed client authentications from this address
            /// (`[limits]`): `temporarily_unavailable`; retry after
            /// `Retry-After` seconds.
            #[oai(status = 429)]
            TooManyRequests(
                Json<OAuthErrorBody>,
                #[oai(header = "Retry-After")] String,
                #[oai(header = "Cache-Control")] String,
            ),
            /// An unexpected server fault.
            #[oai(status = 500)]
            ServerError(Json<OAuthErrorBody>, #[oai(header = "Cache-Control")] String),
            /// The store is unreachable: nothing was done; retry.
            #[oai(status = 503)]
            Unavailable(
                Json<OAuthErrorBody>,
                #[oai(header = "Retry-After")] String,
                #[oai(header = "Cache-Control")] String,
            ),
        }
    };
}

form_endpoint_response!(
    /// Responses of the revocation endpoint (RFC 7009 §2.2).
    RevokeResponse,
    "revoke_bad_request",
    /// Revoked, or nothing to revoke (unknown or another client's token).
    Ok(#[oai(header = "Cache-Control")] String)
);

form_endpoint_response!(
    /// Responses of the introspection endpoint (RFC 7662 §2.2).
    IntrospectResponse,
    "introspect_bad_request",
    /// The token's state.
    Ok(Json<IntrospectionBody>, #[oai(header = "Cache-Control")] String)
);

/// RFC 7662 §2.2 introspection response.
#[derive(Debug, Clone, Default, Object)]
pub struct IntrospectionBody {
    /// Whether the token is active; nothing else is sent when it is not.
    pub active: bool,
    /// Granted scopes.
    #[oai(skip_serializing_if_is_none)]
    pub scope: Option<String>,
    /// The client the token was issued to.
    #[oai(skip_serializing_if_is_none)]
    pub client_id: Option<String>,
    /// The user's name.
    #[oai(skip_serializing_if_is_none)]
    pub username: Option<String>,
    /// `Bearer` or `refresh_token`.
    #[oai(skip_serializing_if_is_none)]
    pub token_type: Option<String>,
    /// Expiry.
    #[oai(skip_serializing_if_is_none)]
    pub exp: Option<i64>,
    /// Issued at.
    #[oai(skip_serializing_if_is_none)]
    pub iat: Option<i64>,
    /// Not before.
    #[oai(skip_serializing_if_is_none)]
    pub nbf: Option<i64>,
    /// Subject.
    #[oai(skip_serializing_if_is_none)]
    pub sub: Option<String>,
    /// Audience: a string, or an array of strings for a token issued for
    /// several RFC 8707 resources.
    #[oai(skip_serializing_if_is_none)]
    pub aud: Option<serde_json::Value>,
    /// Issuer.
    #[oai(skip_serializing_if_is_none)]
    pub iss: Option<String>,
    /// Token id.
    #[oai(skip_serializing_if_is_none)]
    pub jti: Option<String>,
}

/// The `/api/me` body.
#[derive(Debug, Clone, Object)]
pub struct MeBody {
    /// The user id (the token's `sub`).
    pub sub: String,
    /// The username.
    pub username: String,
    /// The email address (scope `email` only).
    #[oai(skip_serializing_if_is_none)]
    pub email: Option<String>,
    /// The full name, when the user gave one.
    #[oai(skip_serializing_if_is_none)]
    pub name: Option<String>,
}

/// The OpenID Connect UserInfo response (Core §5.3.2): `sub` always, the
/// other claims by the token's scopes and only when the user has them.
#[derive(Debug, Object)]
pub struct UserInfoBody {
    /// The user id: the same `sub` as the ID token's.
    pub sub: String,
    /// The full name (scope `profile`, when the user gave one).
    #[oai(skip_serializing_if_is_none)]
    pub name: Option<String>,
    /// The username (scope `profile`).
    #[oai(skip_serializing_if_is_none)]
    pub preferred_username: Option<String>,
    /// When the profile last changed, seconds since the epoch (scope
    /// `profile`, when known).
    #[oai(skip_serializing_if_is_none)]
    pub updated_at: Option<i64>,
    /// The email address (scope `email`, when the user has one).
    #[oai(skip_serializing_if_is_none)]
    pub email: Option<String>,
    /// With `email`: whether the address was verified (only an operator
    /// marks it so; a changed address is unverified).
    #[oai(skip_serializing_if_is_none)]
    pub email_verified: Option<bool>,
}

/// Responses of a Bearer-protected resource (RFC 6750 §3): `/api/me` and
/// the UserInfo endpoint (Core §5.3) answer the same way but for the body.
#[derive(ApiResponse)]
pub enum BearerResponse<T: ToJSON + Send> {
    /// The token's user, as this resource shows it.
    #[oai(status = 200)]
    Ok(Json<T>, #[oai(header = "Cache-Control")] String),
    /// No token, or an invalid, expired or revoked one.
    #[oai(status = 401)]
    Unauthorized(
        Json<OAuthErrorBody>,
        #[oai(header = "WWW-Authenticate")] String,
    ),
    /// The token lacks the scope this resource needs (`profile` for
    /// `/api/me`, `openid` for UserInfo).
    #[oai(status = 403)]
    Forbidden(
        Json<OAuthErrorBody>,
        #[oai(header = "WWW-Authenticate")] String,
    ),
    /// The store is unreachable (revocation cannot be checked); retry.
    #[oai(status = 503)]
    Unavailable(Json<OAuthErrorBody>, #[oai(header = "Retry-After")] String),
}

/// Responses of the UserInfo endpoint.
pub type UserInfoResponse = BearerResponse<UserInfoBody>;

/// Responses of `/api/me`.
pub type MeResponse = BearerResponse<MeBody>;
