//! HTTP surface: the OpenAPI service, its document and docs UI, the pages,
//! and the cross-cutting middleware (`middleware`). Maps wire types to flows
//! and nothing more; errors become responses in `errors`, routes are listed
//! once in `routes`.

pub mod api;
pub mod cors;
pub mod errors;
pub mod middleware;
pub mod pages;
pub mod payload;
pub mod registration;
pub mod responses;
pub mod routes;

use poem::{Endpoint, EndpointExt, Middleware};
use poem_openapi::OpenApiService;

use crate::state::AppState;

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

/// The client's address for the rate limits and the logs: the TCP peer, or
/// behind `server.trusted_proxies` the address their `X-Forwarded-For`
/// names ([`crate::limits::forwarded_client`]).
pub fn client_ip(req: &poem::Request, state: &AppState) -> Option<std::net::IpAddr> {
    let peer = req.remote_addr().as_socket_addr().map(|a| a.ip());
    let trusted = &state.cfg.server.trusted_proxies;
    if trusted.is_empty() {
        return peer;
    }
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .into_iter()
        .filter_map(|v| v.to_str().ok());
    crate::limits::forwarded_client(peer, forwarded, trusted)
}

/// Every route of the server (from the route table), with middleware and
/// state attached.
pub fn routes(state: AppState) -> impl Endpoint {
    let max_body = state.cfg.server.max_body_bytes;
    let max_header = state.cfg.server.max_header_bytes;
    let body_timeout = state.cfg.server.body_read_timeout;
    let csrf_key = state.csrf_key;
    let secure = state.cfg.issuer.starts_with("https://");
    let csrf = move |ep: poem::endpoint::BoxEndpoint<'static>| {
        poem::middleware::Csrf::new()
            .cookie_name("kg_csrf")
            .key(csrf_key)
            .secure(secure)
            .same_site(poem::web::cookie::SameSite::Lax)
            .transform(pages::error_pages(ep))
            .boxed()
    };
    let table = routes::table();
    let not_found = std::sync::Arc::new(csrf(pages::kit::not_found.map_to_response().boxed()));
    routes::router(csrf)
        .around(move |ep, req| html_not_found(ep, req, not_found.clone()))
        .around(move |ep, req| middleware::with_allow(ep, req, table))
        .around(move |ep, req| cors::cors(ep, req, table))
        .around(move |ep, req| middleware::size_limits(ep, req, max_body, max_header, body_timeout))
        .around(move |ep, req| middleware::observe(ep, req, table))
        .data(state)
}

/// A browser's `GET` of a path no route serves gets the styled 404 page
/// (`pages::kit::not_found`, through the CSRF middleware and error pages
/// like every page, so its header shows the signed-in user); any other
/// request keeps the router's answer (an API client gets what the API
/// answers).
async fn html_not_found<E: Endpoint>(
    ep: std::sync::Arc<E>,
    req: poem::Request,
    page: std::sync::Arc<poem::endpoint::BoxEndpoint<'static>>,
) -> poem::Result<poem::Response> {
    use poem::http::{header, Method};
    use poem::IntoResponse;
    let wants_html = req.method() == Method::GET
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
    if !wants_html {
        return ep.call(req).await.map(IntoResponse::into_response);
    }
    let (uri, headers) = (req.uri().clone(), req.headers().clone());
    let state = req.data::<AppState>().cloned();
    match ep.call(req).await {
        Err(e) if e.is::<poem::error::NotFoundError>() => {
            let mut again = poem::Request::builder()
                .method(Method::GET)
                .uri(uri)
                .finish();
            *again.headers_mut() = headers;
            if let Some(state) = state {
                again.extensions_mut().insert(state);
            }
            page.call(again).await
        }
        other => other.map(IntoResponse::into_response),
    }
}

/// The endpoint of a `metrics.listen` listener: `GET /metrics` and nothing
/// else (404), without the API's middleware: the scraper is the only caller.
pub fn metrics_only(state: AppState) -> impl Endpoint {
    poem::Route::new()
        .at("/metrics", poem::get(metrics_text))
        .data(state)
}

#[poem::handler]
fn metrics_text(state: poem::web::Data<&AppState>) -> poem::Response {
    poem::Response::builder()
        .content_type("text/plain; charset=utf-8")
        .body(state.metrics.render())
}
