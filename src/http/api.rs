//! The JSON API as poem-openapi operations: token endpoint, discovery (RFC 8414,
//! JWKS) and operations endpoints. Handlers map wire types to flows and nothing more.

use poem::web::Data;
use poem::Request;
use poem_openapi::auth::Basic;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi, SecurityScheme, Tags};

use super::payload::{FormPairs, RawJson};
use super::responses::{TokenBody, TokenResponse, NO_STORE};
use crate::flows;
use crate::flows::token::TokenInput;
use crate::oauth::OAuthError;
use crate::state::AppState;

/// Operation groups in the document.
#[derive(Tags)]
pub enum ApiTags {
    /// OAuth 2.0 protocol endpoints.
    OAuth,
    /// Discovery documents for clients and resource servers.
    Discovery,
    /// Health, readiness and metrics for operators.
    Operations,
}

/// HTTP Basic client authentication (RFC 6749 §2.3.1): user-id = client_id,
/// password = client_secret, each form-urlencoded.
#[derive(SecurityScheme)]
#[oai(ty = "basic")]
pub struct ClientSecretBasic(Basic);

/// Client authentication at the token endpoint: HTTP Basic, or
/// `client_id`/`client_secret` in the form body (client_secret_post).
#[derive(SecurityScheme)]
pub enum ClientAuth {
    /// `client_secret_basic`
    Basic(ClientSecretBasic),
    /// No Basic header: credentials, if any, are in the body.
    #[oai(fallback)]
    InBody,
}

/// Form parameters of `POST /oauth/token` (RFC 6749 §4.4.2).
#[derive(Debug, Object)]
#[oai(rename = "TokenRequest")]
pub struct TokenRequestForm {
    /// `client_credentials`.
    pub grant_type: String,
    /// Requested scopes (space-separated); defaults to every scope registered for the client.
    pub scope: Option<String>,
    /// For `client_secret_post`: the client id.
    pub client_id: Option<String>,
    /// For `client_secret_post`: the client secret.
    pub client_secret: Option<String>,
}

/// A public signing key (RFC 7517 §4).
#[derive(Debug, Object)]
pub struct Jwk {
    /// Key type: `RSA`, `EC` or `OKP`.
    pub kty: String,
    /// Key id: the RFC 7638 thumbprint; matches the `kid` header of tokens.
    pub kid: String,
    /// `RS256`, `ES256` or `EdDSA`.
    pub alg: String,
    /// Always `sig`.
    #[oai(rename = "use")]
    pub use_: String,
    /// RSA modulus (base64url).
    pub n: Option<String>,
    /// RSA exponent (base64url).
    pub e: Option<String>,
    /// Curve: `P-256` or `Ed25519`.
    pub crv: Option<String>,
    /// EC/OKP x coordinate (base64url).
    pub x: Option<String>,
    /// EC y coordinate (base64url).
    pub y: Option<String>,
}

/// A JWK Set (RFC 7517 §5).
#[derive(Debug, Object)]
pub struct JwkSet {
    /// Every key that may have signed a live token; the newest signs.
    pub keys: Vec<Jwk>,
}

/// Authorization server metadata (RFC 8414 §2). Only what works is advertised.
#[derive(Debug, Object, serde::Serialize)]
pub struct ServerMetadata {
    /// The issuer identifier; equals the `iss` of every token.
    pub issuer: String,
    /// The token endpoint.
    pub token_endpoint: String,
    /// The JWKS document.
    pub jwks_uri: String,
    /// Scopes clients may request.
    pub scopes_supported: Vec<String>,
    /// Supported `response_type` values (empty until the authorization endpoint is served).
    pub response_types_supported: Vec<String>,
    /// Supported grant types.
    pub grant_types_supported: Vec<String>,
    /// Client authentication methods at the token endpoint.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// Where the API is described.
    pub service_documentation: String,
}

/// Liveness or readiness status.
#[derive(Debug, Object)]
pub struct Status {
    /// `ok`, `ready` or `unavailable`.
    pub status: String,
}

/// Discovery document responses.
#[derive(ApiResponse)]
pub enum MetadataResponse {
    /// The metadata document.
    #[oai(status = 200)]
    Ok(
        RawJson<ServerMetadata>,
        #[oai(header = "Cache-Control")] String,
    ),
}

/// JWKS responses.
#[derive(ApiResponse)]
pub enum JwksResponse {
    /// The public keys; cache for the `max-age` given.
    #[oai(status = 200)]
    Ok(RawJson<JwkSet>, #[oai(header = "Cache-Control")] String),
}

/// Readiness responses.
#[derive(ApiResponse)]
pub enum ReadyResponse {
    /// The store answers.
    #[oai(status = 200)]
    Ready(Json<Status>),
    /// The store does not answer.
    #[oai(status = 503)]
    NotReady(Json<Status>),
}

/// The keygate JSON API.
pub struct Api;

#[OpenApi]
impl Api {
    /// Token endpoint (RFC 6749 §3.2).
    ///
    /// Grants: `client_credentials` (RFC 6749 §4.4). Authenticate with HTTP Basic
    /// (`client_secret_basic`) or with `client_id` and `client_secret` in the
    /// body (`client_secret_post`), as the client is registered. Returns an
    /// RFC 9068 JWT access token; errors follow RFC 6749 §5.2.
    #[oai(path = "/oauth/token", method = "post", tag = "ApiTags::OAuth")]
    async fn token(
        &self,
        state: Data<&AppState>,
        auth: ClientAuth,
        req: &Request,
        body: FormPairs<TokenRequestForm>,
    ) -> TokenResponse {
        let basic = match auth {
            ClientAuth::Basic(ClientSecretBasic(b)) => Some((b.username, b.password)),
            ClientAuth::InBody if req.headers().contains_key("authorization") => {
                return OAuthError::invalid_client(
                    "the Authorization header is not valid HTTP Basic client authentication",
                )
                .into()
            }
            ClientAuth::InBody => None,
        };
        let input = TokenInput {
            basic,
            form: body.pairs,
        };
        match flows::token::exchange(&state, input).await {
            Ok(t) => TokenResponse::Ok(
                Json(TokenBody {
                    access_token: t.access_token,
                    token_type: "Bearer".into(),
                    expires_in: t.expires_in,
                    scope: t.scope,
                }),
                NO_STORE.into(),
                "no-cache".into(),
            ),
            Err(e) => e.into(),
        }
    }

    /// Authorization server metadata (RFC 8414).
    #[oai(
        path = "/.well-known/oauth-authorization-server",
        method = "get",
        tag = "ApiTags::Discovery"
    )]
    async fn metadata(&self, state: Data<&AppState>) -> MetadataResponse {
        MetadataResponse::Ok(
            RawJson::new(state.metadata.clone()),
            "public, max-age=3600".into(),
        )
    }

    /// The same metadata at the OpenID Connect discovery location.
    #[oai(
        path = "/.well-known/openid-configuration",
        method = "get",
        tag = "ApiTags::Discovery"
    )]
    async fn openid_configuration(&self, state: Data<&AppState>) -> MetadataResponse {
        self.metadata(state).await
    }

    /// Public signing keys (RFC 7517 JWK Set) for verifying access tokens offline.
    #[oai(
        path = "/.well-known/jwks.json",
        method = "get",
        tag = "ApiTags::Discovery"
    )]
    async fn jwks(&self, state: Data<&AppState>) -> JwksResponse {
        JwksResponse::Ok(
            RawJson::new(state.keys.current().jwks_bytes()),
            format!("public, max-age={}", state.settings.keys.jwks_max_age),
        )
    }

    /// Liveness: the process is up.
    #[oai(path = "/healthz", method = "get", tag = "ApiTags::Operations")]
    async fn healthz(&self) -> Json<Status> {
        Json(Status {
            status: "ok".into(),
        })
    }

    /// Readiness: the store answers.
    #[oai(path = "/readyz", method = "get", tag = "ApiTags::Operations")]
    async fn readyz(&self, state: Data<&AppState>) -> ReadyResponse {
        match state.store.ping().await {
            Ok(()) => ReadyResponse::Ready(Json(Status {
                status: "ready".into(),
            })),
            Err(e) => {
                tracing::warn!(error = %e, "readiness check failed");
                ReadyResponse::NotReady(Json(Status {
                    status: "unavailable".into(),
                }))
            }
        }
    }

    /// Prometheus metrics (text exposition format).
    #[oai(path = "/metrics", method = "get", tag = "ApiTags::Operations")]
    async fn metrics(&self, state: Data<&AppState>) -> PlainText<String> {
        PlainText(state.metrics.render())
    }
}

/// Builds the metadata document for `issuer` (serialised once at start-up).
pub fn server_metadata(state_issuer: &str, scopes: Vec<String>) -> ServerMetadata {
    let grants = flows::token::SUPPORTED_GRANTS
        .iter()
        .map(|g| g.as_str().to_string())
        .collect();
    ServerMetadata {
        issuer: state_issuer.to_string(),
        token_endpoint: format!("{state_issuer}/oauth/token"),
        jwks_uri: format!("{state_issuer}/.well-known/jwks.json"),
        scopes_supported: scopes,
        response_types_supported: vec![],
        grant_types_supported: grants,
        token_endpoint_auth_methods_supported: vec![
            "client_secret_basic".into(),
            "client_secret_post".into(),
        ],
        service_documentation: format!("{state_issuer}/docs"),
    }
}
