//! The JSON API as poem-openapi operations: token endpoint, discovery (RFC 8414,
//! JWKS) and operations endpoints. Handlers map wire types to flows and nothing
//! more; `errors` turns their failures into responses.

use poem::web::Data;
use poem::Request;
use poem_openapi::auth::{Basic, Bearer};
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi, SecurityScheme, Tags};

use super::errors;
use super::payload::{FormPairs, RawJson};
use super::responses::{
    IntrospectResponse, IntrospectionBody, MeBody, MeResponse, RevokeResponse, TokenBody,
    TokenResponse, UserInfoBody, UserInfoResponse, NO_STORE,
};
use crate::config::MetricsExposure;
use crate::flows;
use crate::flows::token::TokenInput;
use crate::oauth::authorize::Policy;
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
    /// Demo resources protected by keygate access tokens.
    Resources,
    /// Dynamic client registration (RFC 7591, RFC 7592).
    Registration,
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

/// Form parameters of `POST /oauth/token` (RFC 6749 §4.1.3, §4.3.2, §4.4.2, §6).
#[derive(Debug, Object)]
#[oai(rename = "TokenRequest")]
pub struct TokenRequestForm {
    /// `authorization_code`, `refresh_token`, `client_credentials`, or
    /// `password` (legacy profile only).
    pub grant_type: String,
    /// Requested scopes (space-separated); defaults to every scope registered
    /// for the client (client_credentials, password) or the original grant (refresh).
    pub scope: Option<String>,
    /// For `client_secret_post` and public clients: the client id.
    pub client_id: Option<String>,
    /// For `client_secret_post`: the client secret.
    pub client_secret: Option<String>,
    /// `authorization_code`: the code from the redirect.
    pub code: Option<String>,
    /// `authorization_code`: required when it was in the authorization request.
    pub redirect_uri: Option<String>,
    /// `authorization_code`: the PKCE verifier (RFC 7636).
    pub code_verifier: Option<String>,
    /// `refresh_token`: the refresh token.
    pub refresh_token: Option<String>,
    /// `password`: the user's name.
    pub username: Option<String>,
    /// `password`: the user's password.
    pub password: Option<String>,
    /// RFC 8707 resource indicator: the absolute URI of a registered
    /// resource the token is for (its `aud`); repeat the parameter for
    /// several. `authorization_code` and `refresh_token` may only narrow the
    /// set chosen at authorization. Unknown, or not accepting the scope:
    /// `invalid_target`.
    pub resource: Option<String>,
}

/// Form parameters of revocation (RFC 7009 §2.1) and introspection (RFC 7662 §2.1).
#[derive(Debug, Object)]
#[oai(rename = "TokenActionRequest")]
pub struct TokenActionForm {
    /// The access or refresh token.
    pub token: String,
    /// `access_token` or `refresh_token` (optional; keygate tells them apart itself).
    pub token_type_hint: Option<String>,
    /// For `client_secret_post` and public clients: the client id.
    pub client_id: Option<String>,
    /// For `client_secret_post`: the client secret.
    pub client_secret: Option<String>,
}

/// A Bearer access token (RFC 6750 §2.1): a JWT from the token endpoint.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT")]
pub struct BearerJwt(pub Bearer);

/// Bearer authentication; a missing token still reaches the handler so it can
/// answer with the RFC 6750 challenge.
#[derive(SecurityScheme)]
pub enum BearerAuth {
    /// `Authorization: Bearer <jwt>`
    Bearer(BearerJwt),
    /// No token.
    #[oai(fallback)]
    Missing,
}

/// Client credentials from the Basic header (if any), the form pairs and
/// the client's address (for the rate limits: [`crate::http::client_ip`]).
fn token_input(
    state: &AppState,
    auth: ClientAuth,
    req: &Request,
    form: Vec<(String, String)>,
) -> Result<TokenInput, OAuthError> {
    let basic = match auth {
        ClientAuth::Basic(ClientSecretBasic(b)) => Some((b.username, b.password)),
        ClientAuth::InBody if req.headers().contains_key("authorization") => {
            return Err(OAuthError::invalid_client(
                "the Authorization header is not valid HTTP Basic client authentication",
            ))
        }
        ClientAuth::InBody => None,
    };
    let peer = super::client_ip(req, state);
    Ok(TokenInput { basic, form, peer })
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
    /// The authorization endpoint.
    pub authorization_endpoint: String,
    /// The token endpoint.
    pub token_endpoint: String,
    /// The JWKS document.
    pub jwks_uri: String,
    /// RFC 7009 revocation endpoint.
    pub revocation_endpoint: String,
    /// RFC 7662 introspection endpoint.
    pub introspection_endpoint: String,
    /// Scopes clients may request.
    pub scopes_supported: Vec<String>,
    /// Supported `response_type` values.
    pub response_types_supported: Vec<String>,
    /// Supported response modes.
    pub response_modes_supported: Vec<String>,
    /// Supported grant types.
    pub grant_types_supported: Vec<String>,
    /// Client authentication methods at the token endpoint.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// Client authentication methods at the revocation endpoint.
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// Client authentication methods at the introspection endpoint: secrets
    /// only, since public clients may not introspect (RFC 7662 §2.1).
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// PKCE methods (RFC 7636).
    pub code_challenge_methods_supported: Vec<String>,
    /// RFC 9207: every authorization response carries `iss`.
    pub authorization_response_iss_parameter_supported: bool,
    /// RFC 7591 registration endpoint (only when registration is possible:
    /// `registration.open` or at least one initial access token).
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    /// draft-ietf-oauth-client-id-metadata-document §6: an https URL may be
    /// used as `client_id` (only present, `true`, when
    /// `registration.metadata_documents` is on).
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id_metadata_document_supported: Option<bool>,
    /// Where the API is described.
    pub service_documentation: String,
}

/// Protected resource metadata (RFC 9728 §2) of keygate's own API (`/api/me`),
/// whose resource identifier is `tokens.audience`.
#[derive(Debug, Object)]
pub struct ProtectedResourceMetadata {
    /// The resource identifier: the `aud` of the tokens `/api/me` accepts.
    pub resource: String,
    /// The authorization servers that issue those tokens (keygate itself).
    pub authorization_servers: Vec<String>,
    /// Scopes `/api/me` understands: `profile`, and `email` for the address.
    pub scopes_supported: Vec<String>,
    /// How the token is sent: the `Authorization` header only.
    pub bearer_methods_supported: Vec<String>,
    /// A human-readable name.
    pub resource_name: String,
    /// Where the API is described.
    pub resource_documentation: String,
}

/// Protected resource metadata responses.
#[derive(ApiResponse)]
pub enum ProtectedResourceResponse {
    /// The metadata document.
    #[oai(status = 200)]
    Ok(
        Json<ProtectedResourceMetadata>,
        #[oai(header = "Cache-Control")] String,
    ),
}

/// Where keygate publishes its own API's RFC 9728 metadata; `/api/me`'s
/// `WWW-Authenticate` challenges name it in `resource_metadata`.
pub fn protected_resource_metadata_url(issuer: &str) -> String {
    format!("{issuer}/.well-known/oauth-protected-resource")
}

/// Liveness or readiness status.
#[derive(Debug, Object)]
pub struct Status {
    /// `ok`.
    pub status: String,
}

/// Readiness, by dependency.
#[derive(Debug, Object)]
pub struct Readiness {
    /// `ready` when every dependency answers and the process is not
    /// stopping, else `unavailable`.
    pub status: String,
    /// The store: `ok`, or `unreachable` (the cause is logged, not shown).
    pub store: String,
    /// `draining` once SIGTERM or Ctrl-C was received: not ready whatever
    /// the dependencies say, though requests are still served until
    /// `server.drain_secs` ends (README "Rolling restarts"). Absent
    /// otherwise, when the dependency fields say what is down.
    #[oai(skip_serializing_if_is_none)]
    pub reason: Option<String>,
}

/// The fields OpenID Connect Discovery 1.0 §3 adds to the RFC 8414 document
/// (REQUIRED ones and those that apply), advertising only what works.
#[derive(Debug, Object, serde::Serialize)]
pub struct OpenIdFields {
    /// The UserInfo endpoint (Core §5.3), `GET` and `POST`.
    pub userinfo_endpoint: String,
    /// `public` only: `sub` is the user id for every client.
    pub subject_types_supported: Vec<String>,
    /// The algorithms of the published keys (ID tokens are signed like
    /// access tokens, by the active key).
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// The claims keygate can return in ID tokens and from UserInfo.
    pub claims_supported: Vec<String>,
    /// Request objects (`request`) are refused: `request_not_supported`.
    pub request_parameter_supported: bool,
    /// `request_uri` is refused: `request_uri_not_supported`.
    pub request_uri_parameter_supported: bool,
    /// The `claims` request parameter is not supported (ignored).
    pub claims_parameter_supported: bool,
    /// RP-Initiated Logout 1.0 §2.1: `GET|POST /oauth/logout`.
    pub end_session_endpoint: String,
    /// Back-Channel Logout 1.0 §2.1: logout tokens are POSTed to the
    /// clients' `backchannel_logout_uri`.
    pub backchannel_logout_supported: bool,
    /// Back-Channel Logout 1.0 §2.1: logout tokens and ID tokens carry `sid`.
    pub backchannel_logout_session_supported: bool,
}

/// The OpenID Connect discovery document: the RFC 8414 document plus the
/// OpenID Provider fields (a schema only: it is served as merged JSON).
#[derive(Debug, Object)]
pub struct OpenIdConfiguration {
    /// Everything of the RFC 8414 document, with the same values.
    #[oai(flatten)]
    pub oauth: ServerMetadata,
    /// The OpenID Connect fields.
    #[oai(flatten)]
    pub openid: OpenIdFields,
}

/// The claims of [`OpenIdFields::claims_supported`].
pub const CLAIMS_SUPPORTED: &[&str] = &[
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "amr",
    "nonce",
    "at_hash",
    "azp",
    "name",
    "sid",
    "preferred_username",
    "updated_at",
    "email",
    "email_verified",
];

/// The OpenID Connect discovery document: `metadata` (the RFC 8414 JSON)
/// with the fields of [`OpenIdFields`], the signing algorithms read from
/// the keys published now (`algs`, in order, duplicates dropped).
pub fn openid_configuration(
    metadata: &[u8],
    issuer: &str,
    algs: impl IntoIterator<Item = &'static str>,
) -> bytes::Bytes {
    let mut signing: Vec<String> = Vec::new();
    for a in algs {
        if !signing.iter().any(|s| s == a) {
            signing.push(a.to_string());
        }
    }
    let fields = OpenIdFields {
        userinfo_endpoint: format!("{issuer}/oauth/userinfo"),
        subject_types_supported: vec!["public".into()],
        id_token_signing_alg_values_supported: signing,
        claims_supported: CLAIMS_SUPPORTED.iter().map(|c| c.to_string()).collect(),
        request_parameter_supported: false,
        request_uri_parameter_supported: false,
        claims_parameter_supported: false,
        end_session_endpoint: format!("{issuer}/oauth/logout"),
        backchannel_logout_supported: true,
        backchannel_logout_session_supported: true,
    };
    let mut doc: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(metadata).unwrap_or_default();
    if let Ok(serde_json::Value::Object(extra)) = serde_json::to_value(&fields) {
        doc.extend(extra);
    }
    serde_json::to_vec(&doc).unwrap_or_default().into()
}

/// OpenID Connect discovery responses.
#[derive(ApiResponse)]
pub enum OpenIdConfigurationResponse {
    /// The discovery document.
    #[oai(status = 200)]
    Ok(
        RawJson<OpenIdConfiguration>,
        #[oai(header = "Cache-Control")] String,
    ),
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
    /// The store answers and the process is not stopping.
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// A dependency does not answer (the body names it), or the process is
    /// draining before it stops (`"reason": "draining"`).
    #[oai(status = 503)]
    NotReady(Json<Readiness>),
}

/// `/metrics` responses.
#[derive(ApiResponse)]
pub enum MetricsResponse {
    /// The metrics, in the Prometheus text exposition format.
    #[oai(status = 200)]
    Ok(PlainText<String>),
    /// Not served on this listener (`metrics.listen` or `metrics.enabled`).
    #[oai(status = 404)]
    NotFound,
}

/// The keygate JSON API.
pub struct Api;

#[OpenApi]
impl Api {
    /// Token endpoint (RFC 6749 §3.2).
    ///
    /// Grants: `authorization_code` (RFC 6749 §4.1.3; PKCE, RFC 7636),
    /// `refresh_token` (RFC 6749 §6; rotated on every use), `client_credentials`
    /// (RFC 6749 §4.4) and, under the legacy profile only, `password` (RFC 6749
    /// §4.3). Authenticate with HTTP Basic (`client_secret_basic`) or with
    /// `client_id` and `client_secret` in the body (`client_secret_post`), as the
    /// client is registered; a public client sends only `client_id`. Returns an
    /// RFC 9068 JWT access token, and a refresh token when the client is
    /// registered for them; errors follow RFC 6749 §5.2.
    #[oai(path = "/oauth/token", method = "post", tag = "ApiTags::OAuth")]
    async fn token(
        &self,
        state: Data<&AppState>,
        auth: ClientAuth,
        req: &Request,
        body: FormPairs<TokenRequestForm>,
    ) -> TokenResponse {
        let input = match token_input(&state, auth, req, body.pairs) {
            Ok(i) => i,
            Err(e) => return e.into(),
        };
        let issued = flows::token::exchange(&state, input).await.and_then(|t| {
            // Serialised straight from the struct (poem-openapi's `Json`
            // goes through a `serde_json::Value` first).
            RawJson::serialize(&TokenBody {
                access_token: t.access_token,
                token_type: "Bearer".into(),
                expires_in: t.expires_in,
                scope: t.scope,
                refresh_token: t.refresh_token,
                id_token: t.id_token,
            })
            .map_err(flows::FlowError::internal)
        });
        match issued {
            Ok(body) => TokenResponse::Ok(body, NO_STORE.into(), "no-cache".into()),
            Err(e) => e.into(),
        }
    }

    /// Token revocation (RFC 7009).
    ///
    /// A refresh token revokes its whole family; an access token is denied
    /// until it expires. Unknown tokens and other clients' tokens answer 200
    /// and change nothing. Public clients identify with `client_id`.
    #[oai(path = "/oauth/revoke", method = "post", tag = "ApiTags::OAuth")]
    async fn revoke(
        &self,
        state: Data<&AppState>,
        auth: ClientAuth,
        req: &Request,
        body: FormPairs<TokenActionForm>,
    ) -> RevokeResponse {
        let input = match token_input(&state, auth, req, body.pairs) {
            Ok(i) => i,
            Err(e) => return e.into(),
        };
        match flows::revoke::revoke(&state, input).await {
            Ok(()) => RevokeResponse::Ok(NO_STORE.into()),
            Err(e) => e.into(),
        }
    }

    /// Token introspection (RFC 7662).
    ///
    /// Only confidential clients may introspect (a public client is
    /// `invalid_client`), and each sees only its own access and refresh
    /// tokens, plus, for a resource server registered as an RFC 8707
    /// resource's `client_id`, the access tokens whose `aud` names that
    /// resource: any other token is `{"active": false}`.
    #[oai(path = "/oauth/introspect", method = "post", tag = "ApiTags::OAuth")]
    async fn introspect(
        &self,
        state: Data<&AppState>,
        auth: ClientAuth,
        req: &Request,
        body: FormPairs<TokenActionForm>,
    ) -> IntrospectResponse {
        let input = match token_input(&state, auth, req, body.pairs) {
            Ok(i) => i,
            Err(e) => return e.into(),
        };
        match flows::revoke::introspect(&state, input).await {
            Ok(i) => IntrospectResponse::Ok(
                Json(IntrospectionBody {
                    active: i.active,
                    scope: i.scope,
                    client_id: i.client_id,
                    username: i.username,
                    token_type: i.token_type,
                    exp: i.exp,
                    iat: i.iat,
                    nbf: i.nbf,
                    sub: i.sub,
                    aud: i.aud.and_then(|a| serde_json::to_value(a).ok()),
                    iss: i.iss,
                    jti: i.jti,
                }),
                NO_STORE.into(),
            ),
            Err(e) => e.into(),
        }
    }

    /// The signed-in user's profile (demo protected resource).
    ///
    /// Send `Authorization: Bearer <access token>` with scope `profile`;
    /// scope `email` adds the email address. Errors follow RFC 6750 §3.
    #[oai(path = "/api/me", method = "get", tag = "ApiTags::Resources")]
    async fn me(&self, state: Data<&AppState>, auth: BearerAuth) -> MeResponse {
        let token = match &auth {
            BearerAuth::Bearer(BearerJwt(b)) => Some(b.token.as_str()),
            BearerAuth::Missing => None,
        };
        match flows::resource::me(&state, token).await {
            Ok(me) => MeResponse::Ok(
                Json(MeBody {
                    sub: me.sub,
                    username: me.username,
                    email: me.email,
                    name: me.name,
                }),
                NO_STORE.into(),
            ),
            Err(e) => {
                errors::bearer_challenge(e, &protected_resource_metadata_url(&state.cfg.issuer))
            }
        }
    }

    /// OpenID Connect UserInfo (Core §5.3).
    ///
    /// Send `Authorization: Bearer <access token>`: a token for keygate's own
    /// audience with scope `openid`. Returns `sub`; `profile` adds `name`
    /// (when set), `preferred_username` and `updated_at`, `email` adds
    /// `email` and `email_verified` (when the user has an address).
    /// Errors follow RFC 6750 §3.
    #[oai(path = "/oauth/userinfo", method = "get", tag = "ApiTags::OAuth")]
    async fn userinfo_get(&self, state: Data<&AppState>, auth: BearerAuth) -> UserInfoResponse {
        userinfo(&state, &auth).await
    }

    /// OpenID Connect UserInfo (Core §5.3) by `POST`: the same as `GET`
    /// (the token in the `Authorization` header; a body is ignored).
    #[oai(path = "/oauth/userinfo", method = "post", tag = "ApiTags::OAuth")]
    async fn userinfo_post(&self, state: Data<&AppState>, auth: BearerAuth) -> UserInfoResponse {
        userinfo(&state, &auth).await
    }

    /// Protected resource metadata (RFC 9728) of `/api/me`.
    ///
    /// A client that gets a 401 from `/api/me` finds this document through the
    /// `resource_metadata` parameter of the `WWW-Authenticate` challenge, and
    /// from it the authorization server and the scopes to ask for.
    #[oai(
        path = "/.well-known/oauth-protected-resource",
        method = "get",
        tag = "ApiTags::Discovery"
    )]
    async fn protected_resource(&self, state: Data<&AppState>) -> ProtectedResourceResponse {
        let issuer = &state.cfg.issuer;
        ProtectedResourceResponse::Ok(
            Json(ProtectedResourceMetadata {
                resource: state.cfg.audience.clone(),
                authorization_servers: vec![issuer.clone()],
                scopes_supported: vec!["profile".into(), "email".into()],
                bearer_methods_supported: vec!["header".into()],
                resource_name: "keygate demo API (/api/me)".into(),
                resource_documentation: format!("{issuer}/docs"),
            }),
            "public, max-age=3600".into(),
        )
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

    /// OpenID Connect Discovery 1.0: the RFC 8414 metadata plus the OpenID
    /// Provider fields (`userinfo_endpoint`, `subject_types_supported`,
    /// `id_token_signing_alg_values_supported`, …). Cached as long as the
    /// JWKS, since it names the published keys' algorithms.
    #[oai(
        path = "/.well-known/openid-configuration",
        method = "get",
        tag = "ApiTags::Discovery"
    )]
    async fn openid_configuration(&self, state: Data<&AppState>) -> OpenIdConfigurationResponse {
        let keys = state.keys.current();
        OpenIdConfigurationResponse::Ok(
            RawJson::new(openid_configuration(
                &state.metadata,
                &state.cfg.issuer,
                keys.all().iter().map(|k| k.alg.as_str()),
            )),
            format!("public, max-age={}", state.cfg.keys.jwks_max_age.as_secs()),
        )
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
            format!("public, max-age={}", state.cfg.keys.jwks_max_age.as_secs()),
        )
    }

    /// Liveness: the process is up.
    #[oai(path = "/healthz", method = "get", tag = "ApiTags::Operations")]
    async fn healthz(&self) -> Json<Status> {
        Json(Status {
            status: "ok".into(),
        })
    }

    /// Readiness: the store answers and the process is not stopping. The
    /// body names each dependency's state (`{"status": "unavailable",
    /// "store": "unreachable"}` with 503) and, from SIGTERM on, the reason
    /// (`"reason": "draining"`, 503 while requests are still served).
    #[oai(path = "/readyz", method = "get", tag = "ApiTags::Operations")]
    async fn readyz(&self, state: Data<&AppState>) -> ReadyResponse {
        let draining = state.lifecycle.is_stopping();
        let store = match state.store.ping().await {
            Ok(()) => "ok",
            Err(e) => {
                tracing::warn!(error = %e, dependency = "store", "readiness check failed: the store does not answer");
                "unreachable"
            }
        };
        let body = Readiness {
            status: if draining || store != "ok" {
                "unavailable"
            } else {
                "ready"
            }
            .into(),
            store: store.into(),
            reason: draining.then(|| "draining".into()),
        };
        if body.status == "ready" {
            ReadyResponse::Ready(Json(body))
        } else {
            ReadyResponse::NotReady(Json(body))
        }
    }

    /// Prometheus metrics (text exposition format). 404 when `[metrics]`
    /// moves them to a listener of their own or switches them off.
    #[oai(path = "/metrics", method = "get", tag = "ApiTags::Operations")]
    async fn metrics(&self, state: Data<&AppState>) -> MetricsResponse {
        if state.cfg.metrics == MetricsExposure::Main {
            MetricsResponse::Ok(PlainText(state.metrics.render()))
        } else {
            MetricsResponse::NotFound
        }
    }
}

/// The UserInfo answer for either method.
async fn userinfo(state: &AppState, auth: &BearerAuth) -> UserInfoResponse {
    let token = match auth {
        BearerAuth::Bearer(BearerJwt(b)) => Some(b.token.as_str()),
        BearerAuth::Missing => None,
    };
    match flows::resource::userinfo(state, token).await {
        Ok(u) => UserInfoResponse::Ok(
            Json(UserInfoBody {
                sub: u.sub,
                name: u.name,
                preferred_username: u.preferred_username,
                updated_at: u.updated_at,
                email: u.email,
                email_verified: u.email_verified,
            }),
            NO_STORE.into(),
        ),
        Err(e) => errors::bearer_challenge(e, &protected_resource_metadata_url(&state.cfg.issuer)),
    }
}

/// Builds the metadata document (serialised once at start-up): only what the
/// active profile serves is advertised.
pub fn server_metadata(
    issuer: &str,
    scopes: Vec<String>,
    policy: &Policy,
    registration_possible: bool,
    metadata_documents: bool,
) -> ServerMetadata {
    let mut grants: Vec<String> = flows::token::supported_grants(policy)
        .iter()
        .map(|g| g.as_str().to_string())
        .collect();
    let mut response_types = vec!["code".to_string()];
    if policy.implicit {
        grants.push("implicit".into());
        response_types.push("token".into());
    }
    let mut pkce = vec!["S256".to_string()];
    if policy.allow_plain_pkce {
        pkce.push("plain".into());
    }
    let auth_methods = vec![
        "client_secret_basic".to_string(),
        "client_secret_post".to_string(),
        "none".to_string(),
    ];
    ServerMetadata {
        issuer: issuer.to_string(),
        authorization_endpoint: format!("{issuer}/oauth/authorize"),
        token_endpoint: format!("{issuer}/oauth/token"),
        jwks_uri: format!("{issuer}/.well-known/jwks.json"),
        revocation_endpoint: format!("{issuer}/oauth/revoke"),
        introspection_endpoint: format!("{issuer}/oauth/introspect"),
        scopes_supported: scopes,
        response_types_supported: response_types,
        response_modes_supported: vec!["query".into(), "fragment".into()],
        grant_types_supported: grants,
        token_endpoint_auth_methods_supported: auth_methods.clone(),
        revocation_endpoint_auth_methods_supported: auth_methods.clone(),
        // RFC 7662 §2.1: a client_id alone (`none`) may not introspect.
        introspection_endpoint_auth_methods_supported: auth_methods
            .iter()
            .filter(|m| *m != "none")
            .cloned()
            .collect(),
        code_challenge_methods_supported: pkce,
        authorization_response_iss_parameter_supported: true,
        registration_endpoint: registration_possible.then(|| format!("{issuer}/oauth/register")),
        client_id_metadata_document_supported: metadata_documents.then_some(true),
        service_documentation: format!("{issuer}/docs"),
    }
}
