//! RFC 7591 dynamic client registration and the RFC 7592 management endpoint,
//! as poem-openapi operations.

use poem::web::Data;
use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::api::{ApiTags, BearerAuth, BearerJwt};
use super::errors::registration_bad_request;
use super::responses::{OAuthErrorBody, NO_STORE};
use crate::flows::clients::Registered;
use crate::flows::registration::{self, MetadataRequest};
use crate::oauth::client_meta::{ClientView, RawClientMetadata};
use crate::oauth::types::Client;
use crate::state::AppState;

/// Client metadata (RFC 7591 §2). Unknown members are ignored.
#[derive(Debug, Clone, Default, Object)]
pub struct ClientMetadataBody {
    /// Required on update (RFC 7592): the client in the URL.
    pub client_id: Option<String>,
    /// Human-readable name.
    pub client_name: Option<String>,
    /// Redirect URIs (required for authorization_code and implicit); https unless loopback.
    pub redirect_uris: Option<Vec<String>>,
    /// Default `["authorization_code"]`.
    pub grant_types: Option<Vec<String>>,
    /// Must match the grant types (`code` ↔ authorization_code, `token` ↔ implicit).
    pub response_types: Option<Vec<String>>,
    /// Space-separated scopes the client may request (default: none).
    pub scope: Option<String>,
    /// `client_secret_basic` (default), `client_secret_post` or `none`.
    pub token_endpoint_auth_method: Option<String>,
    /// Home page.
    pub client_uri: Option<String>,
    /// Logo.
    pub logo_uri: Option<String>,
    /// Where the user may be sent after logging out (OpenID Connect
    /// RP-Initiated Logout 1.0 §3.1); the redirect URI rules apply.
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// Where logout tokens are POSTed (Back-Channel Logout 1.0 §2.2): https,
    /// or http on a loopback host.
    pub backchannel_logout_uri: Option<String>,
    /// Whether the logout token must carry `sid` (keygate always sends it).
    pub backchannel_logout_session_required: Option<bool>,
    /// `max_age` (seconds, at most one year) applied when a request gives none.
    pub default_max_age: Option<u64>,
    /// Whether the ID token must carry `auth_time` (it always does when known).
    pub require_auth_time: Option<bool>,
    /// The ID token's JWS `alg`: one of the published keys' algorithms.
    pub id_token_signed_response_alg: Option<String>,
}

impl From<ClientMetadataBody> for MetadataRequest {
    fn from(b: ClientMetadataBody) -> Self {
        Self {
            client_id: b.client_id,
            metadata: RawClientMetadata {
                client_name: b.client_name,
                redirect_uris: b.redirect_uris,
                grant_types: b.grant_types,
                response_types: b.response_types,
                scope: b.scope,
                token_endpoint_auth_method: b.token_endpoint_auth_method,
                client_uri: b.client_uri,
                logo_uri: b.logo_uri,
                post_logout_redirect_uris: b.post_logout_redirect_uris,
                backchannel_logout_uri: b.backchannel_logout_uri,
                backchannel_logout_session_required: b.backchannel_logout_session_required,
                default_max_age: b.default_max_age,
                require_auth_time: b.require_auth_time,
                id_token_signed_response_alg: b.id_token_signed_response_alg,
            },
        }
    }
}

/// Client information response (RFC 7591 §3.2.1, RFC 7592 §3).
#[derive(Debug, Clone, Object)]
pub struct ClientInformation {
    /// The client identifier.
    pub client_id: String,
    /// The secret, only in the response that creates it (stored as a hash only).
    #[oai(skip_serializing_if_is_none)]
    pub client_secret: Option<String>,
    /// When the client id was issued.
    pub client_id_issued_at: i64,
    /// 0: the secret does not expire (present for confidential clients).
    #[oai(skip_serializing_if_is_none)]
    pub client_secret_expires_at: Option<i64>,
    /// RFC 7592 token for the management endpoint, only in the creation response.
    #[oai(skip_serializing_if_is_none)]
    pub registration_access_token: Option<String>,
    /// RFC 7592 management URL of this client.
    pub registration_client_uri: String,
    /// Human-readable name.
    pub client_name: String,
    /// Redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Grant types.
    pub grant_types: Vec<String>,
    /// Response types.
    pub response_types: Vec<String>,
    /// Scopes.
    pub scope: String,
    /// Token endpoint auth method.
    pub token_endpoint_auth_method: String,
    /// Home page.
    #[oai(skip_serializing_if_is_none)]
    pub client_uri: Option<String>,
    /// Logo.
    #[oai(skip_serializing_if_is_none)]
    pub logo_uri: Option<String>,
    /// Post-logout redirect URIs (absent when none).
    #[oai(skip_serializing_if_is_empty)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Back-channel logout URI.
    #[oai(skip_serializing_if_is_none)]
    pub backchannel_logout_uri: Option<String>,
    /// Whether logout tokens must carry `sid` (with a back-channel logout URI).
    #[oai(skip_serializing_if_is_none)]
    pub backchannel_logout_session_required: Option<bool>,
    /// Default `max_age` in seconds.
    #[oai(skip_serializing_if_is_none)]
    pub default_max_age: Option<u64>,
    /// Whether ID tokens must carry `auth_time` (present when set).
    #[oai(skip_serializing_if_is_none)]
    pub require_auth_time: Option<bool>,
    /// The ID token's JWS `alg`.
    #[oai(skip_serializing_if_is_none)]
    pub id_token_signed_response_alg: Option<String>,
}

/// The response body: the one [`ClientView`] plus the RFC 7592 fields.
fn information(
    state: &AppState,
    c: &Client,
    secret: Option<String>,
    rat: Option<String>,
) -> ClientInformation {
    let v = ClientView::from(c).with_secret(secret);
    ClientInformation {
        registration_client_uri: format!("{}/oauth/register/{}", state.cfg.issuer, v.client_id),
        client_id: v.client_id,
        client_secret: v.client_secret,
        client_id_issued_at: v.client_id_issued_at,
        // RFC 7591 §3.2.1: present for every confidential client, not only
        // in the response that issues the secret.
        client_secret_expires_at: c.is_confidential().then_some(0),
        registration_access_token: rat,
        client_name: v.client_name,
        redirect_uris: v.redirect_uris,
        grant_types: v.grant_types,
        response_types: v.response_types,
        scope: v.scope,
        token_endpoint_auth_method: v.token_endpoint_auth_method,
        client_uri: v.client_uri,
        logo_uri: v.logo_uri,
        post_logout_redirect_uris: v.post_logout_redirect_uris,
        backchannel_logout_uri: v.backchannel_logout_uri,
        backchannel_logout_session_required: v.backchannel_logout_session_required,
        default_max_age: v.default_max_age,
        require_auth_time: v.require_auth_time.then_some(true),
        id_token_signed_response_alg: v.id_token_signed_response_alg,
    }
}

/// Responses of the registration endpoints.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "registration_bad_request")]
pub enum RegistrationResponse {
    /// Registered (RFC 7591 §3.2.1).
    #[oai(status = 201)]
    Created(
        Json<ClientInformation>,
        #[oai(header = "Cache-Control")] String,
    ),
    /// The client's current metadata (RFC 7592 §3).
    #[oai(status = 200)]
    Ok(
        Json<ClientInformation>,
        #[oai(header = "Cache-Control")] String,
    ),
    /// Deleted (RFC 7592 §2.3).
    #[oai(status = 204)]
    Deleted,
    /// `invalid_redirect_uri` or `invalid_client_metadata` (RFC 7591 §3.2.2).
    #[oai(status = 400)]
    BadRequest(
        Json<OAuthErrorBody>,
        #[oai(header = "Cache-Control")] String,
    ),
    /// Missing or invalid initial / registration access token, or unknown client.
    #[oai(status = 401)]
    Unauthorized(
        Json<OAuthErrorBody>,
        #[oai(header = "WWW-Authenticate")] String,
    ),
    /// Too many anonymous registrations from this address
    /// (`limits.registration_*`): `temporarily_unavailable` (RFC 7591 has
    /// no rate-limit code); retry after `Retry-After` seconds.
    #[oai(status = 429)]
    TooManyRequests(
        Json<OAuthErrorBody>,
        #[oai(header = "Retry-After")] String,
        #[oai(header = "Cache-Control")] String,
    ),
    /// The store is unreachable; retry.
    #[oai(status = 503)]
    Unavailable(Json<OAuthErrorBody>, #[oai(header = "Retry-After")] String),
    /// An unexpected server fault.
    #[oai(status = 500)]
    ServerError(Json<OAuthErrorBody>),
}

fn token(auth: &BearerAuth) -> Option<&str> {
    match auth {
        BearerAuth::Bearer(BearerJwt(b)) => Some(b.token.as_str()),
        BearerAuth::Missing => None,
    }
}

/// The credential an `Authorization` header carries: its bearer token, or,
/// for any other scheme, the whole value (which matches no token), so that
/// a request with a header is never taken for an anonymous one.
fn credential<'a>(auth: &'a BearerAuth, req: &'a Request) -> Option<&'a str> {
    token(auth).or_else(|| {
        req.headers()
            .get(poem::http::header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or_default())
    })
}

fn created(state: &AppState, reg: Registered) -> RegistrationResponse {
    RegistrationResponse::Created(
        Json(information(
            state,
            &reg.client,
            reg.secret,
            reg.registration_token,
        )),
        NO_STORE.into(),
    )
}

/// RFC 7591 / RFC 7592 operations.
pub struct RegistrationApi;

#[OpenApi]
impl RegistrationApi {
    /// Dynamic client registration (RFC 7591).
    ///
    /// Send an initial access token from `registration.initial_access_tokens`
    /// as `Authorization: Bearer`; with `registration.open`, a request
    /// without an `Authorization` header registers anonymously, within
    /// limits (public clients or generated secrets, the code and refresh
    /// grants, https / loopback / private-use redirect URIs,
    /// `registration.open_scopes`), rate-limited per address, and the client
    /// expires when unused. The response carries the client secret and a
    /// registration access token for the management endpoint, once.
    #[oai(
        path = "/oauth/register",
        method = "post",
        tag = "ApiTags::Registration"
    )]
    async fn register(
        &self,
        state: Data<&AppState>,
        req: &Request,
        auth: BearerAuth,
        body: Json<ClientMetadataBody>,
    ) -> RegistrationResponse {
        let peer = super::client_ip(req, &state);
        let credential = credential(&auth, req);
        match registration::register(&state, peer, credential, body.0.into()).await {
            Ok(reg) => created(&state, reg),
            Err(e) => e.into(),
        }
    }

    /// Read a registered client (RFC 7592 §2.1), with its registration access token.
    #[oai(
        path = "/oauth/register/:client_id",
        method = "get",
        tag = "ApiTags::Registration"
    )]
    async fn read(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        client_id: Path<String>,
    ) -> RegistrationResponse {
        match registration::read(&state, &client_id.0, token(&auth)).await {
            Ok(c) => {
                RegistrationResponse::Ok(Json(information(&state, &c, None, None)), NO_STORE.into())
            }
            Err(e) => e.into(),
        }
    }

    /// Replace a registered client's metadata (RFC 7592 §2.2, full replacement).
    #[oai(
        path = "/oauth/register/:client_id",
        method = "put",
        tag = "ApiTags::Registration"
    )]
    async fn replace(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        client_id: Path<String>,
        body: Json<ClientMetadataBody>,
    ) -> RegistrationResponse {
        match registration::replace(&state, &client_id.0, token(&auth), body.0.into()).await {
            Ok(reg) => RegistrationResponse::Ok(
                Json(information(&state, &reg.client, reg.secret, None)),
                NO_STORE.into(),
            ),
            Err(e) => e.into(),
        }
    }

    /// Delete a registered client (RFC 7592 §2.3).
    #[oai(
        path = "/oauth/register/:client_id",
        method = "delete",
        tag = "ApiTags::Registration"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        client_id: Path<String>,
    ) -> RegistrationResponse {
        match registration::delete(&state, &client_id.0, token(&auth)).await {
            Ok(()) => RegistrationResponse::Deleted,
            Err(e) => e.into(),
        }
    }
}
