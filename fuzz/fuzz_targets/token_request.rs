//! The token endpoint's input parsing, through the real poem routes: an
//! arbitrary `Authorization` header, `Content-Type` and form body never
//! panic and never get a 5xx; the store is the in-memory one.
#![no_main]

use std::sync::{Arc, OnceLock};

use keygate::clock::SystemClock;
use keygate::config::Settings;
use libfuzzer_sys::fuzz_target;
use poem::http::{header, Method, StatusCode};
use poem::{Endpoint, EndpointExt, Request};

struct Fixture {
    rt: tokio::runtime::Runtime,
    app: poem::endpoint::BoxEndpoint<'static, poem::Response>,
    _keys: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let keys = tempfile::tempdir().expect("temp dir");
        let mut settings = Settings::default();
        settings.keys.dir = keys.path().display().to_string();
        settings.oauth.profile = "legacy".into();
        let app = rt.block_on(async {
            let state = keygate::startup::build_state(settings, Arc::new(SystemClock))
                .await
                .expect("state");
            keygate::http::routes(state).map_to_response().boxed()
        });
        Fixture {
            rt,
            app,
            _keys: keys,
        }
    })
}

fuzz_target!(|data: (&[u8], &[u8], &[u8], u8)| {
    let (authorization, content_type, body, path) = data;
    let f = fixture();
    let path = ["/oauth/token", "/oauth/revoke", "/oauth/introspect"][usize::from(path) % 3];
    let mut req = Request::builder().method(Method::POST).uri_str(path);
    if let Ok(v) = header::HeaderValue::from_bytes(authorization) {
        req = req.header(header::AUTHORIZATION, v);
    }
    match header::HeaderValue::from_bytes(content_type) {
        Ok(v) if !content_type.is_empty() => req = req.header(header::CONTENT_TYPE, v),
        _ => req = req.content_type("application/x-www-form-urlencoded"),
    }
    let req = req.body(body.to_vec());
    let resp =
        f.rt.block_on(f.app.call(req))
            .expect("map_to_response never fails");
    assert!(
        resp.status() != StatusCode::INTERNAL_SERVER_ERROR && !resp.status().is_server_error()
            || resp.status() == StatusCode::SERVICE_UNAVAILABLE,
        "{path}: {} for authorization={:?} content-type={:?} body={:?}",
        resp.status(),
        String::from_utf8_lossy(authorization),
        String::from_utf8_lossy(content_type),
        String::from_utf8_lossy(body)
    );
});
