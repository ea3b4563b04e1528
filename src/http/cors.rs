//! CORS (SPEC.md "CORS"; the Fetch standard's CORS protocol): which
//! cross-origin browser requests keygate answers, by the route table's
//! [`Cors`] policy of the path. Metadata and JWKS are public documents and
//! answer any origin with `*`. The token and revocation endpoints answer the
//! origins of registered public clients' redirect URIs, echoed with
//! `Vary: Origin`, and answer their preflights. Nothing is ever allowed with
//! credentials (no `Access-Control-Allow-Credentials`): public clients
//! authenticate with PKCE and tokens in the body, never cookies. Every other
//! path (the pages included) sends no CORS header, so browsers keep it
//! same-origin, and its `OPTIONS` requests are routed as before (405).
//!
//! poem's `Cors` middleware does not fit: its origin predicate is
//! synchronous (the allowed origins are in the store), it refuses unknown
//! origins with an error instead of answering without CORS headers, and it
//! echoes the origin where the public documents want `*`.
//!
//! Depends on the route table and the flows' origin lookup, never on handlers.

use poem::http::{header, HeaderValue, Method, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response};

use super::errors::log_fault;
use super::routes::{Cors, RouteTable};
use crate::flows::FlowError;
use crate::oauth::types::web_origin;
use crate::state::AppState;

/// How long a browser may cache a preflight answer, in seconds. Short: a
/// deleted client's origin loses its preflight within this time (and its
/// actual requests at once, since every response is decided afresh).
pub const PREFLIGHT_MAX_AGE: &str = "600";

/// The request headers a public client's preflight may ask for. Only
/// `Content-Type` (a form post with a charset parameter or a JSON body, which
/// the endpoints refuse with a readable error): public clients send no
/// `Authorization`, and a confidential client's secret has no place in a
/// browser, so it is not allowed even though no credentials mode is offered.
pub const ALLOWED_HEADERS: &str = "content-type";

/// Applies the CORS policy of the path (see the module docs).
pub async fn cors<E: Endpoint>(
    ep: E,
    req: Request,
    table: &'static RouteTable,
) -> poem::Result<Response> {
    let Some(policy) = table.find(req.uri().path()).and_then(|e| e.cors()) else {
        return ep.call(req).await.map(IntoResponse::into_response);
    };
    // A preflight is an OPTIONS request with Origin and
    // Access-Control-Request-Method (Fetch §3.2.2); any other OPTIONS goes to
    // the route as before.
    let preflight = req.method() == Method::OPTIONS
        && req.headers().contains_key(header::ORIGIN)
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    match policy {
        Cors::AnyOrigin => Ok(any_origin(ep, req, preflight).await),
        Cors::PublicClients => Ok(public_clients(ep, req, preflight).await),
    }
}

async fn any_origin<E: Endpoint>(ep: E, req: Request, preflight: bool) -> Response {
    if preflight {
        return Response::builder()
            .status(StatusCode::NO_CONTENT)
            .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
            .header(header::ACCESS_CONTROL_ALLOW_METHODS, "GET")
            .header(header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE)
            .finish();
    }
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    let mut resp = ep.get_response(req).await;
    if read {
        resp.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    resp
}

async fn public_clients<E: Endpoint>(ep: E, req: Request, preflight: bool) -> Response {
    let allowed = allowed_origin(&req).await;
    if preflight {
        let mut resp = Response::builder()
            .status(StatusCode::NO_CONTENT)
            .header(header::VARY, "Origin");
        if let Some(origin) = allowed {
            resp = resp
                .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin)
                .header(header::ACCESS_CONTROL_ALLOW_METHODS, "POST")
                .header(header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOWED_HEADERS)
                .header(header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE);
        }
        return resp.finish();
    }
    let mut resp = ep.get_response(req).await;
    // Whatever the origin, the answer depends on it: caches must know.
    resp.headers_mut()
        .append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = allowed {
        resp.headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    resp
}

/// The request's `Origin`, if it is a public client's: one store read, and
/// only when there is an `Origin` that is a web origin and not a config-file
/// client's. A store failure is logged and allows nothing (the endpoint
/// itself then answers 503 without the header, which a browser reports as a
/// network error: the same thing its app can do about it).
async fn allowed_origin(req: &Request) -> Option<HeaderValue> {
    let value = req.headers().get(header::ORIGIN)?;
    let origin = web_origin(value.to_str().ok()?)?;
    let state = req.data::<AppState>()?;
    match crate::flows::clients::cors_origin_allowed(&state.repos, &state.config_origins, origin)
        .await
    {
        Ok(true) => Some(value.clone()),
        Ok(false) => None,
        Err(e) => {
            log_fault(&FlowError::Store(e));
            None
        }
    }
}
