//! The one place where errors become HTTP: every JSON OAuth error (token,
//! revocation, introspection, `/api/me`, registration, the middlewares' 408,
//! 413 and 431) and the classification of flow failures for the error page.
//! Internal faults are logged here, once, with their whole source chain, and
//! leave as an opaque `server_error` / `temporarily_unavailable`.
//!
//! The wire types (bodies and response enums) live in `responses` and
//! `registration`; this module only decides which variant an error becomes.
//! Depends on flows' error types, never on the store or the handlers.

use std::borrow::Cow;
use std::fmt;

use poem::http::{header, StatusCode};
use poem::Response;
use poem_openapi::payload::Json;
use poem_openapi::types::ToJSON;

use super::registration::RegistrationResponse;
use super::responses::{
    BearerResponse, IntrospectResponse, OAuthErrorBody, RevokeResponse, TokenResponse, NO_STORE,
};
use crate::flows::clients::ClientError;
use crate::flows::registration::RegistrationError;
use crate::flows::resource::BearerError;
use crate::flows::users::ProfileError;
use crate::flows::FlowError;
use crate::limits::RetryAfter;
use crate::oauth::{ErrorCode, OAuthError};

/// The `WWW-Authenticate` challenge sent with `invalid_client` (RFC 6749 §5.2).
pub const BASIC_CHALLENGE: &str = "Basic realm=\"keygate\", charset=\"UTF-8\"";

/// `Retry-After` of a 503 for an unreachable store, in seconds.
const STORE_RETRY_AFTER: &str = "1";

/// Writes `e` and then each of its sources on a `Caused by:` line (the
/// zero2prod `error_chain_fmt`), so one log line carries the whole chain.
pub fn error_chain_fmt(e: &dyn std::error::Error, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{e}")?;
    let mut current = e.source();
    while let Some(cause) = current {
        write!(f, "\nCaused by:\n\t{cause}")?;
        current = cause.source();
    }
    Ok(())
}

/// Displays an error with its source chain (see [`error_chain_fmt`]).
pub struct ErrorChain<'a>(pub &'a dyn std::error::Error);

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        error_chain_fmt(self.0, f)
    }
}

/// Logs a flow failure that is the server's fault (store, signing, internal)
/// with its source chain; protocol errors and rate limits are the client's
/// business and are not logged. Call it once, where the error becomes a
/// response.
pub fn log_fault(e: &FlowError) {
    match e {
        FlowError::OAuth(_) | FlowError::RateLimited(_) | FlowError::ClientDocument(_) => {}
        FlowError::Store(_) => tracing::error!(error = %ErrorChain(e), "store unavailable"),
        FlowError::Signing(_) => tracing::error!(error = %ErrorChain(e), "signing failed"),
        FlowError::Internal(_) => tracing::error!(error = %ErrorChain(e), "internal error"),
    }
}

/// The OAuth error sent to the client for a flow failure; server faults are
/// logged with their cause and become opaque.
pub fn oauth_error(e: FlowError) -> OAuthError {
    log_fault(&e);
    match e {
        FlowError::OAuth(e) => e,
        FlowError::ClientDocument(e) => OAuthError::new(
            ErrorCode::InvalidClient,
            format!("the client's metadata document cannot be used: {e}"),
        ),
        FlowError::Store(_) => OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            "the authorization server's store is unavailable; retry shortly",
        ),
        FlowError::Signing(_) | FlowError::Internal(_) => {
            OAuthError::new(ErrorCode::ServerError, "internal error")
        }
        FlowError::RateLimited(RetryAfter(secs)) => OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            format!("too many requests; retry after {secs} s"),
        ),
    }
}

/// A JSON OAuth-style error response with `Cache-Control: no-store`, for the
/// middlewares that answer before any endpoint runs (408, 413, 431, 400).
pub fn oauth_json_error(status: StatusCode, code: ErrorCode, description: &str) -> Response {
    let body = serde_json::json!({"error": code.as_str(), "error_description": description});
    Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .header(header::CACHE_CONTROL, NO_STORE)
        .body(body.to_string())
}

// ---------------------------------------------------------------------------
// The form-posting endpoints: token, revocation, introspection.

/// An error answer of a form-posting OAuth endpoint, before it is put into
/// that endpoint's response enum (they share these variants).
enum FormError {
    /// 400 with an RFC 6749 §5.2 body.
    BadRequest(Json<OAuthErrorBody>),
    /// 401 `invalid_client` with the Basic challenge.
    Unauthorized(Json<OAuthErrorBody>),
    /// 413: the body is over `server.max_body_bytes`.
    TooLarge(Json<OAuthErrorBody>),
    /// 429 with `Retry-After` (seconds).
    TooManyRequests(Json<OAuthErrorBody>, u64),
    /// 500 `server_error`.
    ServerError(Json<OAuthErrorBody>),
    /// 503 `temporarily_unavailable`, retry after a second.
    Unavailable(Json<OAuthErrorBody>),
}

impl From<OAuthError> for FormError {
    fn from(e: OAuthError) -> Self {
        let body = Json(OAuthErrorBody::from(&e));
        match e.code {
            ErrorCode::InvalidClient => Self::Unauthorized(body),
            ErrorCode::TemporarilyUnavailable => Self::Unavailable(body),
            ErrorCode::ServerError => Self::ServerError(body),
            _ => Self::BadRequest(body),
        }
    }
}

impl From<FlowError> for FormError {
    fn from(e: FlowError) -> Self {
        match e {
            FlowError::RateLimited(RetryAfter(secs)) => Self::TooManyRequests(
                OAuthErrorBody::new(
                    ErrorCode::TemporarilyUnavailable,
                    format!("too many requests; retry after {secs} s"),
                ),
                secs,
            ),
            e => oauth_error(e).into(),
        }
    }
}

impl FormError {
    /// A request the endpoint could not even parse (wrong content type,
    /// unreadable or oversized body) still gets an RFC 6749 §5.2 JSON error.
    fn unparsable(err: &poem::Error) -> Self {
        if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::TooLarge(OAuthErrorBody::new(
                ErrorCode::InvalidRequest,
                "request body too large",
            ));
        }
        let description = if err.is::<poem_openapi::error::ContentTypeError>() {
            "the request body must be application/x-www-form-urlencoded".to_string()
        } else {
            format!("malformed request: {err}")
        };
        Self::BadRequest(OAuthErrorBody::new(ErrorCode::InvalidRequest, description))
    }
}

impl From<FormError> for TokenResponse {
    fn from(e: FormError) -> Self {
        match e {
            FormError::BadRequest(b) => Self::BadRequest(b, NO_STORE.into()),
            FormError::Unauthorized(b) => {
                Self::Unauthorized(b, BASIC_CHALLENGE.into(), NO_STORE.into())
            }
            FormError::TooLarge(b) => Self::TooLarge(b, NO_STORE.into()),
            FormError::TooManyRequests(b, secs) => {
                Self::TooManyRequests(b, secs.to_string(), NO_STORE.into())
            }
            FormError::ServerError(b) => Self::ServerError(b, NO_STORE.into()),
            FormError::Unavailable(b) => {
                Self::Unavailable(b, STORE_RETRY_AFTER.into(), NO_STORE.into())
            }
        }
    }
}

impl From<OAuthError> for TokenResponse {
    fn from(e: OAuthError) -> Self {
        FormError::from(e).into()
    }
}

impl From<FlowError> for TokenResponse {
    fn from(e: FlowError) -> Self {
        FormError::from(e).into()
    }
}

/// The `bad_request_handler` of the token endpoint.
pub fn token_bad_request(err: poem::Error) -> TokenResponse {
    FormError::unparsable(&err).into()
}

/// The error mapping of revocation and introspection, which share the token
/// endpoint's error variants.
macro_rules! token_action_errors {
    ($name:ident, $bad:ident) => {
        impl From<FormError> for $name {
            fn from(e: FormError) -> Self {
                match e {
                    FormError::BadRequest(b) => Self::BadRequest(b, NO_STORE.into()),
                    FormError::Unauthorized(b) => {
                        Self::Unauthorized(b, BASIC_CHALLENGE.into(), NO_STORE.into())
                    }
                    FormError::TooLarge(b) => Self::TooLarge(b, NO_STORE.into()),
                    FormError::TooManyRequests(b, secs) => {
                        Self::TooManyRequests(b, secs.to_string(), NO_STORE.into())
                    }
                    FormError::ServerError(b) => Self::ServerError(b, NO_STORE.into()),
                    FormError::Unavailable(b) => {
                        Self::Unavailable(b, STORE_RETRY_AFTER.into(), NO_STORE.into())
                    }
                }
            }
        }

        impl From<FlowError> for $name {
            fn from(e: FlowError) -> Self {
                FormError::from(e).into()
            }
        }

        impl From<OAuthError> for $name {
            fn from(e: OAuthError) -> Self {
                FormError::from(e).into()
            }
        }

        /// The `bad_request_handler` of this endpoint.
        pub fn $bad(err: poem::Error) -> $name {
            FormError::unparsable(&err).into()
        }
    };
}

token_action_errors!(RevokeResponse, revoke_bad_request);
token_action_errors!(IntrospectResponse, introspect_bad_request);

// ---------------------------------------------------------------------------
// Bearer-protected resources and registration.

/// The RFC 6750 §3 answer of a Bearer-protected resource (`/api/me`, and
/// the OpenID Connect UserInfo endpoint, Core §5.3.3); every challenge
/// names the resource's RFC 9728 metadata (`resource_metadata`, RFC 9728 §5.1)
/// so that a client can discover the authorization server from a 401.
pub fn bearer_challenge<T: ToJSON + Send>(
    e: BearerError,
    resource_metadata: &str,
) -> BearerResponse<T> {
    let rm = format!("resource_metadata=\"{resource_metadata}\"");
    match e {
        BearerError::Missing => BearerResponse::Unauthorized(
            OAuthErrorBody::new(
                ErrorCode::InvalidRequest,
                "a Bearer access token is required",
            ),
            format!("Bearer realm=\"keygate\", {rm}"),
        ),
        BearerError::InvalidToken(d) => BearerResponse::Unauthorized(
            OAuthErrorBody::new(ErrorCode::InvalidToken, d),
            format!(
                "Bearer realm=\"keygate\", error=\"invalid_token\", error_description=\"{d}\", {rm}"
            ),
        ),
        BearerError::InsufficientScope(scope) => BearerResponse::Forbidden(
            OAuthErrorBody::new(
                ErrorCode::InsufficientScope,
                format!("the `{scope}` scope is required"),
            ),
            format!(
                "Bearer realm=\"keygate\", error=\"insufficient_scope\", scope=\"{scope}\", {rm}"
            ),
        ),
        // The only fault on this path is the deny-list lookup in the store.
        BearerError::Flow(e) => {
            let e = oauth_error(e);
            BearerResponse::Unavailable(Json(OAuthErrorBody::from(&e)), STORE_RETRY_AFTER.into())
        }
    }
}

/// The `bad_request_handler` of the registration endpoints: the body is not
/// a JSON object of client metadata (RFC 7591 §3.2.2).
pub fn registration_bad_request(err: poem::Error) -> RegistrationResponse {
    RegistrationResponse::BadRequest(
        Json(OAuthErrorBody {
            error: "invalid_client_metadata".into(),
            error_description: Some(format!(
                "the request body must be a JSON object of client metadata: {err}"
            )),
        }),
        NO_STORE.into(),
    )
}

impl From<RegistrationError> for RegistrationResponse {
    fn from(e: RegistrationError) -> Self {
        match e {
            RegistrationError::Unauthorized => Self::Unauthorized(
                Json(OAuthErrorBody {
                    error: "invalid_token".into(),
                    error_description: Some(
                        "a valid access token for this endpoint is required".into(),
                    ),
                }),
                "Bearer realm=\"keygate\", error=\"invalid_token\"".into(),
            ),
            RegistrationError::Metadata(m) => Self::BadRequest(
                Json(OAuthErrorBody {
                    error: m.code.as_str().into(),
                    error_description: Some(format!("{}: {}", m.field, m.message)),
                }),
                NO_STORE.into(),
            ),
            RegistrationError::Flow(FlowError::RateLimited(RetryAfter(secs))) => {
                Self::TooManyRequests(
                    OAuthErrorBody::new(
                        ErrorCode::TemporarilyUnavailable,
                        format!("too many registrations from this address; retry after {secs} s"),
                    ),
                    secs.to_string(),
                    NO_STORE.into(),
                )
            }
            RegistrationError::Flow(f) => {
                let e = oauth_error(f);
                let body = Json(OAuthErrorBody::from(&e));
                if e.code == ErrorCode::TemporarilyUnavailable {
                    Self::Unavailable(body, STORE_RETRY_AFTER.into())
                } else {
                    Self::ServerError(body)
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// HTML pages.

/// What the error page shows: status, title and message.
pub type PageErrorParts = (StatusCode, &'static str, Cow<'static, str>);

/// The error page for a flow failure: 503 when the store is unreachable, 500
/// for anything else (pages answer rate limits and protocol errors
/// themselves before they get here). Pure: the caller renders it and calls
/// [`log_fault`] once.
pub fn page_error(e: &FlowError) -> PageErrorParts {
    match e {
        FlowError::Store(_) => store_page_error(),
        // Like an unknown client: a page for the person, never a redirect.
        FlowError::ClientDocument(d) => (
            StatusCode::BAD_REQUEST,
            "Unknown application",
            Cow::Owned(format!(
                "The application that sent you here describes itself in a metadata document that this server cannot use: {d}."
            )),
        ),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            Cow::Borrowed("Please try again."),
        ),
    }
}

/// The error page of a refused RP-initiated logout (OpenID Connect
/// RP-Initiated Logout 1.0 §2–§3): shown to the user, never a redirect.
pub fn logout_page_error(e: &crate::flows::logout::LogoutError) -> PageErrorParts {
    match e {
        crate::flows::logout::LogoutError::Invalid(why) => (
            StatusCode::BAD_REQUEST,
            "Invalid logout request",
            Cow::Owned(format!(
                "The application that sent you here made a logout request this server cannot accept. {why}"
            )),
        ),
        crate::flows::logout::LogoutError::Flow(f) => page_error(f),
    }
}

fn store_page_error() -> PageErrorParts {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        Cow::Borrowed(
            "The sign-in service cannot reach its storage right now. Please try again in a moment.",
        ),
    )
}

/// The error page for a failed operation on the signed-in user's clients.
/// Pure, like [`page_error`]; a store failure is a fault to log
/// (`log_fault(&FlowError::Store(..))`).
pub fn client_page_error(e: &ClientError) -> PageErrorParts {
    match e {
        ClientError::NotFound => (
            StatusCode::NOT_FOUND,
            "Client not found",
            Cow::Borrowed("There is no such client among yours."),
        ),
        ClientError::NotApplicable(m) => {
            (StatusCode::BAD_REQUEST, "Not possible", Cow::Borrowed(m))
        }
        ClientError::Store(_) => store_page_error(),
        ClientError::Metadata(m) => (
            StatusCode::BAD_REQUEST,
            "Invalid client",
            Cow::Owned(m.to_string()),
        ),
    }
}

/// The error page for a refused profile edit (account page) that the page
/// does not show in its form. Pure, like [`page_error`]; a store failure
/// goes through [`page_error`].
pub fn profile_page_error(e: &ProfileError) -> PageErrorParts {
    match e {
        ProfileError::Unknown => (
            StatusCode::NOT_FOUND,
            "Account not found",
            Cow::Borrowed("Your account no longer exists. Sign out and sign in again."),
        ),
        ProfileError::ConfigUser => (
            StatusCode::FORBIDDEN,
            "Profile set by the operator",
            Cow::Borrowed(
                "Your account is defined in this server's configuration file, so only its operator can change your profile.",
            ),
        ),
        ProfileError::Invalid(m) => (StatusCode::BAD_REQUEST, "Invalid profile", Cow::Borrowed(m)),
        ProfileError::Flow(f) => page_error(f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner;

    #[test]
    fn the_chain_names_every_cause() {
        let e = FlowError::internal(Outer(Inner));
        assert_eq!(
            ErrorChain(&e).to_string(),
            "internal error\nCaused by:\n\touter\nCaused by:\n\tinner"
        );
    }

    #[test]
    fn internal_faults_are_opaque_to_the_client() {
        let e = oauth_error(FlowError::internal("secret detail"));
        assert_eq!(e.code, ErrorCode::ServerError);
        assert_eq!(e.description, "internal error");
    }

    #[test]
    fn a_store_failure_is_a_503_page_and_anything_else_a_500() {
        let store = FlowError::Store(crate::store::StoreError::Timeout);
        assert_eq!(page_error(&store).0, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            page_error(&FlowError::internal("x")).0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            client_page_error(&ClientError::NotFound).0,
            StatusCode::NOT_FOUND
        );
    }
}
