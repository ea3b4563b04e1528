//! The one place where errors become HTTP responses, and the wire types of
//! those responses.

use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object};

use crate::flows::FlowError;
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

/// A successful token response (RFC 6749 §5.1, RFC 9068).
#[derive(Debug, Clone, Object)]
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
        Json<TokenBody>,
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

/// The `WWW-Authenticate` challenge sent with `invalid_client` (RFC 6749 §5.2).
pub const BASIC_CHALLENGE: &str = "Basic realm=\"keygate\", charset=\"UTF-8\"";

impl From<OAuthError> for TokenResponse {
    fn from(e: OAuthError) -> Self {
        let body = Json(OAuthErrorBody::from(&e));
        match e.code {
            ErrorCode::InvalidClient => {
                Self::Unauthorized(body, BASIC_CHALLENGE.into(), NO_STORE.into())
            }
            ErrorCode::TemporarilyUnavailable => {
                Self::Unavailable(body, "1".into(), NO_STORE.into())
            }
            ErrorCode::ServerError => Self::ServerError(body, NO_STORE.into()),
            _ => Self::BadRequest(body, NO_STORE.into()),
        }
    }
}

impl From<FlowError> for TokenResponse {
    fn from(e: FlowError) -> Self {
        internal_to_oauth(e).into()
    }
}

/// Maps a flow error to the OAuth error sent to the client; internal faults
/// are logged with their cause and become opaque.
pub fn internal_to_oauth(e: FlowError) -> OAuthError {
    match e {
        FlowError::OAuth(e) => e,
        FlowError::Store(cause) => {
            tracing::error!(error = %cause, "store unavailable");
            OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "the authorization server's store is unavailable; retry shortly",
            )
        }
        FlowError::Signing(cause) => {
            tracing::error!(error = %cause, "signing failed");
            OAuthError::new(ErrorCode::ServerError, "internal error")
        }
    }
}

/// A request the token endpoint could not even parse (wrong content type,
/// unreadable or oversized body) still gets an RFC 6749 §5.2 JSON error.
fn token_bad_request(err: poem::Error) -> TokenResponse {
    if err.status() == poem::http::StatusCode::PAYLOAD_TOO_LARGE {
        return TokenResponse::TooLarge(
            OAuthErrorBody::new(ErrorCode::InvalidRequest, "request body too large"),
            NO_STORE.into(),
        );
    }
    let description = if err.is::<poem_openapi::error::ContentTypeError>() {
        "the request body must be application/x-www-form-urlencoded".to_string()
    } else {
        format!("malformed request: {err}")
    };
    TokenResponse::BadRequest(
        OAuthErrorBody::new(ErrorCode::InvalidRequest, description),
        NO_STORE.into(),
    )
}
