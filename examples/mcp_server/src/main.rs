//! An MCP server protected by keygate: the reference for a resource server.
//!
//! - MCP over streamable HTTP at the resource URL (default
//!   `http://127.0.0.1:3001/mcp`) with the official Rust SDK (`rmcp`): tools
//!   `whoami` (who the token speaks for) and `add`.
//! - Every MCP request needs `Authorization: Bearer <access token>`: a keygate
//!   RFC 9068 JWT verified offline with keygate's JWKS (`typ` `at+jwt`, the
//!   key's own algorithm, `iss` = keygate, `aud` = this server's resource URL,
//!   `exp`), carrying the scope `mcp:tools`. keygate issues such a token when
//!   the client sends `resource=<this URL>` (RFC 8707) and the URL is
//!   registered as a resource (`[[resources]]` or `keygate resource add`).
//! - A 401 names this server's RFC 9728 metadata in `WWW-Authenticate`
//!   (`resource_metadata`), served at
//!   `/.well-known/oauth-protected-resource/mcp` (path-inserted, RFC 9728 §3.1)
//!   and at `/.well-known/oauth-protected-resource`: that is how MCP clients
//!   find keygate, then register, authorize and come back with a token.
//!
//! `make mcp-demo` runs keygate (dev config) and this server together.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Parser;
use http::{header, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{schemars, tool, tool_handler, tool_router, ServerHandler};
use tokio::sync::RwLock;
use tower_service::Service;

#[derive(Parser, Debug)]
#[command(about = "An MCP server (streamable HTTP) that accepts keygate access tokens")]
struct Args {
    /// The address to listen on.
    #[arg(long, env = "MCP_LISTEN", default_value = "127.0.0.1:3001")]
    listen: SocketAddr,
    /// This server's resource identifier: the URL MCP clients connect to and
    /// the `aud` its tokens must carry. Default: `http://<listen>/mcp`.
    #[arg(long, env = "MCP_RESOURCE")]
    resource: Option<String>,
    /// keygate's issuer URL (its metadata names the JWKS).
    #[arg(long, env = "MCP_ISSUER", default_value = "http://127.0.0.1:8080")]
    issuer: String,
    /// The scope every MCP request needs.
    #[arg(long, env = "MCP_SCOPE", default_value = "mcp:tools")]
    scope: String,
}

/// The claims this server reads from a verified access token.
#[derive(Debug, Clone, serde::Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

/// keygate's public keys, fetched from the JWKS its metadata names.
struct Jwks {
    /// No fetch before this instant: 10 s after a success, 1 s after a
    /// failure (keygate may still be starting).
    next_fetch: Option<Instant>,
    keys: HashMap<String, (Algorithm, DecodingKey)>,
}

struct App {
    issuer: String,
    resource: String,
    /// The path MCP is served on (the resource URL's path).
    path: String,
    scope: String,
    http: reqwest::Client,
    jwks: RwLock<Jwks>,
}

/// Why a request is refused (RFC 6750 §3).
enum Refusal {
    /// No token: 401 without an error code.
    Missing,
    /// 401 `invalid_token`.
    Invalid(String),
    /// 403 `insufficient_scope`.
    Scope,
}

impl App {
    /// The RFC 9728 metadata URL for the resource (path-inserted, §3.1).
    fn metadata_url(&self) -> String {
        let origin = self
            .resource
            .strip_suffix(&self.path)
            .unwrap_or(&self.resource);
        format!("{origin}/.well-known/oauth-protected-resource{}", self.path)
    }

    fn metadata(&self) -> serde_json::Value {
        serde_json::json!({
            "resource": self.resource,
            "authorization_servers": [self.issuer],
            "scopes_supported": [self.scope],
            "bearer_methods_supported": ["header"],
            "resource_name": "keygate example MCP server",
        })
    }

    /// Fetches the JWKS (through keygate's RFC 8414 metadata) at most once
    /// every 10 s (every second while it fails), so an unknown `kid` cannot
    /// make this server hammer keygate.
    async fn refresh_keys(&self) -> anyhow::Result<()> {
        let mut jwks = self.jwks.write().await;
        if jwks.next_fetch.is_some_and(|t| Instant::now() < t) {
            return Ok(());
        }
        jwks.next_fetch = Some(Instant::now() + Duration::from_secs(1));
        jwks.keys = self.fetch_keys().await?;
        jwks.next_fetch = Some(Instant::now() + Duration::from_secs(10));
        Ok(())
    }

    async fn fetch_keys(&self) -> anyhow::Result<HashMap<String, (Algorithm, DecodingKey)>> {
        let meta: serde_json::Value = self
            .http
            .get(format!(
                "{}/.well-known/oauth-authorization-server",
                self.issuer
            ))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if meta["issuer"] != self.issuer.as_str() {
            bail!("the metadata's issuer is not {}", self.issuer);
        }
        let uri = meta["jwks_uri"].as_str().context("no jwks_uri")?;
        let set: JwkSet = self
            .http
            .get(uri)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let (Some(kid), Some(alg)) = (&jwk.common.key_id, jwk.common.key_algorithm) else {
                continue;
            };
            let Ok(alg) = alg.to_string().parse::<Algorithm>() else {
                continue;
            };
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(kid.clone(), (alg, key));
            }
        }
        Ok(keys)
    }

    /// Verifies a keygate access token the way RFC 9068 §4 asks.
    async fn verify(&self, token: &str) -> Result<Claims, Refusal> {
        let bad = |m: &str| Refusal::Invalid(m.to_string());
        let header = jsonwebtoken::decode_header(token).map_err(|_| bad("not a JWT"))?;
        let typ = header.typ.as_deref().unwrap_or_default();
        if !typ.eq_ignore_ascii_case("at+jwt") && !typ.eq_ignore_ascii_case("application/at+jwt") {
            return Err(bad("not an access token (typ)"));
        }
        let kid = header.kid.ok_or_else(|| bad("no kid"))?;
        if !self.jwks.read().await.keys.contains_key(&kid) {
            if let Err(e) = self.refresh_keys().await {
                tracing::warn!(error = %e, "fetching keygate's keys failed");
            }
        }
        let jwks = self.jwks.read().await;
        let (alg, key) = jwks.keys.get(&kid).ok_or_else(|| bad("unknown kid"))?;
        if header.alg != *alg {
            return Err(bad("alg is not the key's"));
        }
        let mut v = Validation::new(*alg);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.resource]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.leeway = 0;
        let claims = jsonwebtoken::decode::<Claims>(token, key, &v)
            .map_err(|e| Refusal::Invalid(format!("{e}")))?
            .claims;
        let has_scope = claims
            .scope
            .as_deref()
            .unwrap_or_default()
            .split(' ')
            .any(|s| s == self.scope);
        if !has_scope {
            return Err(Refusal::Scope);
        }
        Ok(claims)
    }

    fn refuse(&self, why: Refusal) -> Response<BoxBody<Bytes, Infallible>> {
        let rm = format!("resource_metadata=\"{}\"", self.metadata_url());
        let (status, challenge) = match why {
            Refusal::Missing => (StatusCode::UNAUTHORIZED, format!("Bearer {rm}")),
            Refusal::Invalid(d) => {
                tracing::info!(reason = %d, "token refused");
                (
                    StatusCode::UNAUTHORIZED,
                    format!("Bearer error=\"invalid_token\", {rm}"),
                )
            }
            Refusal::Scope => (
                StatusCode::FORBIDDEN,
                format!(
                    "Bearer error=\"insufficient_scope\", scope=\"{}\", {rm}",
                    self.scope
                ),
            ),
        };
        let mut resp = text(status, "");
        if let Ok(v) = challenge.parse() {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        resp
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<BoxBody<Bytes, Infallible>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())).boxed());
    *resp.status_mut() = status;
    resp
}

fn json(value: &serde_json::Value) -> Response<BoxBody<Bytes, Infallible>> {
    let mut resp = Response::new(Full::new(Bytes::from(value.to_string())).boxed());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    // Browser-based MCP clients read the metadata cross-origin.
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::HeaderValue::from_static("*"),
    );
    resp
}

/// The MCP tools.
#[derive(Clone)]
struct Tools {
    tool_router: ToolRouter<Self>,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct AddRequest {
    /// The first number.
    a: i64,
    /// The second number.
    b: i64,
}

#[tool_router]
impl Tools {
    fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    /// Who the access token speaks for: its `sub`, `client_id` and `scope`.
    #[tool(description = "Who the access token speaks for: subject, client and scopes")]
    async fn whoami(&self, Extension(parts): Extension<http::request::Parts>) -> String {
        match parts.extensions.get::<Claims>() {
            Some(c) => serde_json::json!({
                "sub": c.sub,
                "client_id": c.client_id,
                "scope": c.scope,
            })
            .to_string(),
            None => "no token".into(),
        }
    }

    /// Adds two integers.
    #[tool(description = "Add two integers")]
    fn add(&self, Parameters(AddRequest { a, b }): Parameters<AddRequest>) -> String {
        a.saturating_add(b).to_string()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let resource = args
        .resource
        .unwrap_or_else(|| format!("http://{}/mcp", args.listen));
    let url = reqwest::Url::parse(&resource).context("--resource is not a URL")?;
    if url.fragment().is_some() || url.query().is_some() {
        bail!("--resource must have no query or fragment");
    }
    let host = url
        .host_str()
        .context("--resource has no host")?
        .to_string();
    let app = Arc::new(App {
        issuer: args.issuer.trim_end_matches('/').to_string(),
        path: url.path().to_string(),
        resource,
        scope: args.scope,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
        jwks: RwLock::new(Jwks {
            next_fetch: None,
            keys: HashMap::new(),
        }),
    });
    if let Err(e) = app.refresh_keys().await {
        tracing::warn!(error = %e, issuer = %app.issuer, "keygate's keys are not available yet; retrying on the first request");
    }
    let mcp = StreamableHttpService::new(
        || Ok(Tools::new()),
        LocalSessionManager::default().into(),
        StreamableHttpServerConfig::default()
            .with_allowed_hosts([host.clone(), url.authority().to_string()]),
    );
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(resource = %app.resource, issuer = %app.issuer, "MCP server listening");
    loop {
        let (stream, _) = tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            accepted = listener.accept() => accepted?,
        };
        let app = app.clone();
        let mcp = mcp.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let app = app.clone();
                let mut mcp = mcp.clone();
                async move {
                    let path = req.uri().path();
                    let well_known = "/.well-known/oauth-protected-resource";
                    if path == well_known || path == format!("{well_known}{}", app.path) {
                        return Ok::<_, Infallible>(json(&app.metadata()));
                    }
                    if path != app.path {
                        return Ok(text(StatusCode::NOT_FOUND, "not found\n"));
                    }
                    let token = req
                        .headers()
                        .get(header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| {
                            v.get(..7)
                                .filter(|p| p.eq_ignore_ascii_case("bearer "))
                                .map(|_| v[7..].trim().to_string())
                        });
                    let Some(token) = token else {
                        return Ok(app.refuse(Refusal::Missing));
                    };
                    match app.verify(&token).await {
                        Ok(claims) => {
                            let mut req = req;
                            req.extensions_mut().insert(claims);
                            let delete = req.method() == http::Method::DELETE;
                            let mut resp = mcp.call(req).await?;
                            // rmcp ends a session with 202; the Python SDK
                            // expects 200 or 204 (and warns "Session
                            // termination failed: 202"): answer 204.
                            if delete && resp.status() == StatusCode::ACCEPTED {
                                resp = text(StatusCode::NO_CONTENT, "");
                            }
                            Ok(resp)
                        }
                        Err(why) => Ok(app.refuse(why)),
                    }
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
    Ok(())
}
