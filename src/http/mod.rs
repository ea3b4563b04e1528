//! HTTP surface: the OpenAPI service, its document and docs UI, and the
//! cross-cutting middleware (metrics, body limit, headers). Maps wire types to
//! flows and errors to responses, and nothing more.

pub mod api;
pub mod client_pages;
pub mod pages;
pub mod payload;
pub mod registration;
pub mod responses;
pub mod views;

use std::time::{Duration, Instant};

use poem::http::{header, StatusCode};
use poem::{get, post, Endpoint, EndpointExt, IntoResponse, Middleware, Request, Response, Route};
use poem_openapi::OpenApiService;

use crate::metrics::{RequestLabels, RouteLabels};
use crate::state::AppState;

/// Routes reported by name in metrics; any other path is `other`, so label
/// cardinality stays bounded whatever clients send.
const KNOWN_ROUTES: &[&str] = &[
    "/",
    "/login",
    "/signup",
    "/logout",
    "/oauth/authorize",
    "/oauth/revoke",
    "/oauth/introspect",
    "/api/me",
    "/static/style.css",
    "/oauth/token",
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
    "/.well-known/jwks.json",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
];

/// The OpenAPI service. Start-up and the snapshot test build it the same way.
pub fn api_service() -> OpenApiService<(api::Api, registration::RegistrationApi), ()> {
    OpenApiService::new(
        (api::Api, registration::RegistrationApi),
        "keygate",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "A stateless, JWT-issuing OAuth 2.0 authorization server. Access tokens are \
             RFC 9068 JWTs verifiable offline with the keys at /.well-known/jwks.json.",
    )
    .license("Apache-2.0")
}

/// Every route of the server, with middleware and state attached.
pub fn routes(state: AppState) -> impl Endpoint {
    let api = api_service();
    let spec = api.spec_endpoint();
    let ui = api.swagger_ui();
    let max_body = state.cfg.server.max_body_bytes;
    let max_header = state.cfg.server.max_header_bytes;
    let body_timeout = state.cfg.server.body_read_timeout;
    let csrf = |ep| {
        poem::middleware::Csrf::new()
            .cookie_name("kg_csrf")
            .key(state.csrf_key)
            .secure(state.cfg.issuer.starts_with("https://"))
            .same_site(poem::web::cookie::SameSite::Lax)
            .transform(ep)
    };
    let allow = std::sync::Arc::new(AllowTable::new(&api));
    // The API is mounted per prefix (not at "/") so that "/" stays the home page.
    let mut route = Route::new();
    for prefix in ["/oauth", "/.well-known", "/api"] {
        route = route.nest_no_strip(prefix, api_service());
    }
    for path in ["/healthz", "/readyz", "/metrics"] {
        route = route.at(path, api_service());
    }
    route
        .at("/openapi.json", spec)
        .nest("/docs", ui)
        .at("/", csrf(get(pages::home).boxed()))
        .at(
            "/login",
            csrf(get(pages::login_form).post(pages::login).boxed()),
        )
        .at(
            "/signup",
            csrf(get(pages::signup_form).post(pages::signup).boxed()),
        )
        .at("/logout", csrf(post(pages::logout).boxed()))
        .at(
            "/oauth/authorize",
            csrf(
                get(pages::authorize_get)
                    .post(pages::authorize_post)
                    .boxed(),
            ),
        )
        .at(
            "/clients",
            csrf(get(client_pages::list).post(client_pages::create).boxed()),
        )
        .at("/clients/new", csrf(get(client_pages::new_form).boxed()))
        .at(
            "/clients/:id",
            csrf(
                get(client_pages::edit_form)
                    .post(client_pages::update)
                    .boxed(),
            ),
        )
        .at(
            "/clients/:id/rotate",
            csrf(post(client_pages::rotate).boxed()),
        )
        .at(
            "/clients/:id/delete",
            csrf(
                get(client_pages::delete_form)
                    .post(client_pages::delete)
                    .boxed(),
            ),
        )
        .at("/static/style.css", get(views::stylesheet))
        .around(move |ep, req| {
            let allow = allow.clone();
            async move { with_allow(ep, req, &allow).await }
        })
        .around(move |ep, req| size_limits(ep, req, max_body, max_header, body_timeout))
        .around(observe)
        .data(state)
}

/// The methods each path answers, for the `Allow` header that RFC 9110
/// §15.5.6 requires on `405 Method Not Allowed` (poem sends none). API paths
/// come from the OpenAPI document, so they cannot drift; the pages are listed
/// here next to their routes.
pub struct AllowTable {
    /// (path segments, `{…}`/`:…` matching any one segment; methods)
    entries: Vec<(Vec<String>, String)>,
}

/// The HTML pages and plain routes of [`routes`] with their methods.
const PAGE_METHODS: &[(&str, &str)] = &[
    ("/", "GET, HEAD"),
    ("/login", "GET, HEAD, POST"),
    ("/signup", "GET, HEAD, POST"),
    ("/logout", "POST"),
    ("/oauth/authorize", "GET, HEAD, POST"),
    ("/clients", "GET, HEAD, POST"),
    ("/clients/new", "GET, HEAD"),
    ("/clients/:id", "GET, HEAD, POST"),
    ("/clients/:id/rotate", "POST"),
    ("/clients/:id/delete", "GET, HEAD, POST"),
    ("/static/style.css", "GET, HEAD"),
    ("/openapi.json", "GET, HEAD"),
];

impl AllowTable {
    fn new<T: poem_openapi::OpenApi, W: poem_openapi::Webhook>(api: &OpenApiService<T, W>) -> Self {
        let mut entries: Vec<(Vec<String>, String)> = PAGE_METHODS
            .iter()
            .map(|(p, m)| (segments(p), (*m).to_string()))
            .collect();
        let spec: serde_json::Value = serde_json::from_str(&api.spec()).unwrap_or_default();
        if let Some(paths) = spec["paths"].as_object() {
            for (path, ops) in paths {
                let mut methods: Vec<String> = ops
                    .as_object()
                    .map(|o| o.keys().map(|m| m.to_uppercase()).collect())
                    .unwrap_or_default();
                if methods.iter().any(|m| m == "GET") {
                    methods.push("HEAD".into());
                }
                let order = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];
                methods.sort_by_key(|m| order.iter().position(|o| o == m));
                entries.push((segments(path), methods.join(", ")));
            }
        }
        Self { entries }
    }

    /// The methods of the route `path` matches, if any.
    pub fn methods(&self, path: &str) -> Option<&str> {
        let given: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        self.entries
            .iter()
            .find(|(pattern, _)| {
                pattern.len() == given.len()
                    && pattern.iter().zip(&given).all(|(p, g)| {
                        p == g || (!g.is_empty() && (p.starts_with('{') || p.starts_with(':')))
                    })
            })
            .map(|(_, m)| m.as_str())
    }
}

fn segments(path: &str) -> Vec<String> {
    path.trim_end_matches('/')
        .split('/')
        .map(str::to_string)
        .collect()
}

/// Adds `Allow` to a 405 answer.
async fn with_allow<E: Endpoint>(
    ep: E,
    req: Request,
    allow: &AllowTable,
) -> poem::Result<Response> {
    let path = req.uri().path().to_string();
    let mut resp = match ep.call(req).await {
        Ok(r) => r.into_response(),
        Err(e) => e.into_response(),
    };
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED
        && !resp.headers().contains_key(header::ALLOW)
    {
        if let Some(methods) = allow.methods(&path) {
            if let Ok(v) = header::HeaderValue::from_str(methods) {
                resp.headers_mut().insert(header::ALLOW, v);
            }
        }
    }
    Ok(resp)
}

/// Refuses oversized header sections with 431 and bodies whose declared
/// length exceeds the limit with 413, before any handler runs. hyper's own
/// header cap (~400 KiB) stays as the outer bound. Then reads the body (every
/// body keygate accepts is a small form or JSON document) within
/// `body_timeout`: a client that never finishes its body gets 408 and the
/// connection is closed, and a streamed body over the limit gets 413.
async fn size_limits<E: Endpoint>(
    ep: E,
    mut req: Request,
    max: u64,
    max_header: u64,
    body_timeout: Duration,
) -> poem::Result<Response> {
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes as u64 > max_header {
        return Ok(oauth_json_error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "invalid_request",
            "request header fields too large",
        ));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Ok(oauth_json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "request body too large",
        ));
    }
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    match tokio::time::timeout(body_timeout, req.take_body().into_bytes_limit(limit)).await {
        Ok(Ok(body)) => req.set_body(body),
        Ok(Err(poem::error::ReadBodyError::PayloadTooLarge)) => {
            return Ok(oauth_json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "request body too large",
            ))
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "unreadable request body");
            return Ok(oauth_json_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the request body could not be read",
            ));
        }
        Err(_) => {
            let mut resp = oauth_json_error(
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request",
                "the request body was not received in time",
            );
            resp.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            return Ok(resp);
        }
    }
    Ok(ep.call(req).await?.into_response())
}

/// Counts requests by route and status, times them, and adds headers every
/// response should carry.
async fn observe<E: Endpoint>(ep: E, req: Request) -> poem::Result<Response> {
    let start = Instant::now();
    let route = KNOWN_ROUTES
        .iter()
        .find(|r| **r == req.uri().path())
        .copied()
        .unwrap_or(if req.uri().path().starts_with("/docs") {
            "/docs"
        } else {
            "other"
        });
    let method = req.method().as_str().to_string();
    let metrics = req.data::<AppState>().map(|s| s.metrics.clone());
    let mut resp = match ep.call(req).await {
        Ok(r) => r.into_response(),
        Err(e) => e.into_response(),
    };
    resp.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    if let Some(m) = metrics {
        m.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status: resp.status().as_u16(),
            })
            .inc();
        m.latency
            .get_or_create(&RouteLabels { route })
            .observe(start.elapsed().as_secs_f64());
    }
    Ok(resp)
}

/// A JSON OAuth-style error response with `Cache-Control: no-store`.
pub fn oauth_json_error(status: StatusCode, code: &str, description: &str) -> Response {
    let body = serde_json::json!({"error": code, "error_description": description});
    Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(body.to_string())
}
