//! The cross-cutting middleware of every route: metrics and common headers
//! (`observe`), request size and body-time limits (`size_limits`) and the
//! `Allow` header of a 405 (`with_allow`). Route knowledge comes from the
//! route table; error bodies from `errors`. Must not depend on handlers.

use std::time::{Duration, Instant};

use poem::http::{header, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response};

use super::errors::oauth_json_error;
use super::routes::RouteTable;
use crate::metrics::{method_label, RequestLabels, RouteLabels};
use crate::oauth::ErrorCode;
use crate::state::AppState;

/// Adds `Allow` to a 405 answer (RFC 9110 §15.5.6 requires it; poem sends
/// none), with the methods the route table lists for the path.
pub async fn with_allow<E: Endpoint>(
    ep: E,
    req: Request,
    table: &'static RouteTable,
) -> poem::Result<Response> {
    // The URI shares its bytes: keeping it costs no copy of the path.
    let uri = req.uri().clone();
    let mut resp = match ep.call(req).await {
        Ok(r) => r.into_response(),
        Err(e) => e.into_response(),
    };
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED
        && !resp.headers().contains_key(header::ALLOW)
    {
        if let Some(allow) = table.find(uri.path()).and_then(|e| e.allow()) {
            resp.headers_mut().insert(header::ALLOW, allow.clone());
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
pub async fn size_limits<E: Endpoint>(
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
            ErrorCode::InvalidRequest,
            "request header fields too large",
        ));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Ok(body_too_large());
    }
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    match tokio::time::timeout(body_timeout, req.take_body().into_bytes_limit(limit)).await {
        Ok(Ok(body)) => req.set_body(body),
        Ok(Err(poem::error::ReadBodyError::PayloadTooLarge)) => return Ok(body_too_large()),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "unreadable request body");
            return Ok(oauth_json_error(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRequest,
                "the request body could not be read",
            ));
        }
        Err(_) => {
            let mut resp = oauth_json_error(
                StatusCode::REQUEST_TIMEOUT,
                ErrorCode::InvalidRequest,
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

fn body_too_large() -> Response {
    oauth_json_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::InvalidRequest,
        "request body too large",
    )
}

/// Counts requests by route pattern and status, times them, and adds headers
/// every response should carry.
pub async fn observe<E: Endpoint>(
    ep: E,
    req: Request,
    table: &'static RouteTable,
) -> poem::Result<Response> {
    let start = Instant::now();
    let route = table.label(req.uri().path());
    let method = method_label(req.method());
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
