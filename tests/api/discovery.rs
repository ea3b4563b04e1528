//! Metadata (RFC 8414), JWKS, health, readiness and metrics over real HTTP.

use crate::helpers::{
    per_backend, spawn_app, spawn_app_with, verify_like_a_gateway, Backend, ISSUER, SECRET,
};
use keygate::tokens::Alg;

per_backend!(metadata_lists_only_what_works);
async fn metadata_lists_only_what_works(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let resp = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let m: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(m["issuer"], ISSUER);
        assert_eq!(m["token_endpoint"], format!("{ISSUER}/oauth/token"));
        assert_eq!(m["jwks_uri"], format!("{ISSUER}/.well-known/jwks.json"));
        assert_eq!(
            m["authorization_endpoint"],
            format!("{ISSUER}/oauth/authorize")
        );
        assert_eq!(m["revocation_endpoint"], format!("{ISSUER}/oauth/revoke"));
        assert_eq!(
            m["introspection_endpoint"],
            format!("{ISSUER}/oauth/introspect")
        );
        // oauth21 profile: no implicit, no password, S256 only
        assert_eq!(
            m["grant_types_supported"],
            serde_json::json!(["authorization_code", "refresh_token", "client_credentials"])
        );
        assert_eq!(m["response_types_supported"], serde_json::json!(["code"]));
        assert_eq!(
            m["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
        assert_eq!(m["authorization_response_iss_parameter_supported"], true);
        assert_eq!(
            m["token_endpoint_auth_methods_supported"],
            serde_json::json!(["client_secret_basic", "client_secret_post", "none"])
        );
        // RFC 7662 §2.1: public clients may not introspect, so no `none` there.
        assert_eq!(
            m["introspection_endpoint_auth_methods_supported"],
            serde_json::json!(["client_secret_basic", "client_secret_post"])
        );
        assert_eq!(
            m["revocation_endpoint_auth_methods_supported"],
            m["token_endpoint_auth_methods_supported"]
        );
        assert_eq!(
            m["scopes_supported"],
            serde_json::json!(["api:read", "api:write", "email", "profile"])
        );
    }
}

#[tokio::test]
async fn legacy_profile_advertises_implicit_and_password() {
    let app =
        crate::helpers::spawn_app_with(Backend::Memory, keygate::tokens::keys::Alg::RS256, |s| {
            s.oauth.profile = "legacy".into();
            s.oauth.allow_plain_pkce = true;
        })
        .await;
    let m = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(
        m["grant_types_supported"],
        serde_json::json!([
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "password",
            "implicit"
        ])
    );
    assert_eq!(
        m["response_types_supported"],
        serde_json::json!(["code", "token"])
    );
    assert_eq!(
        m["code_challenge_methods_supported"],
        serde_json::json!(["S256", "plain"])
    );
}

#[tokio::test]
async fn issuer_never_comes_from_the_host_header() {
    let app = spawn_app(Backend::Memory).await;
    let m: serde_json::Value = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(m["issuer"], ISSUER);
}

#[tokio::test]
async fn jwks_publishes_public_keys_with_caching() {
    let app = spawn_app(Backend::Memory).await;
    let resp = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cc = resp
        .headers()
        .get("cache-control")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let max_age: u64 = cc
        .strip_prefix("public, max-age=")
        .unwrap()
        .parse()
        .unwrap();
    assert!(max_age > 0);
    let jwks: serde_json::Value = resp.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    for field in ["kid", "kty", "alg", "use", "n", "e"] {
        assert!(keys[0][field].is_string(), "{field}");
    }
    assert_eq!(keys[0]["use"], "sig");
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        assert!(
            keys[0].get(private).is_none(),
            "private member {private} leaked"
        );
    }
}

#[tokio::test]
async fn new_key_signs_after_reload_and_old_tokens_still_verify() {
    let app = spawn_app(Backend::Memory).await;
    let old = app
        .post_token(
            Some(("basic-client", SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    let old: serde_json::Value = old.json().await.unwrap();
    let dir = app.state.cfg.keys_dir.clone();
    let new_key =
        keygate::tokens::keys::generate_into(&dir, keygate::tokens::keys::Alg::ES256, 2).unwrap();
    assert!(app.state.keys.reload().unwrap());
    let jwks = app.get_json("/.well-known/jwks.json").await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    let fresh = app
        .post_token(
            Some(("basic-client", SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    let fresh: serde_json::Value = fresh.json().await.unwrap();
    let fresh = fresh["access_token"].as_str().unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(fresh).unwrap().kid.unwrap(),
        new_key.kid
    );
    verify_like_a_gateway(&app, fresh).await;
    verify_like_a_gateway(&app, old["access_token"].as_str().unwrap()).await;
}

per_backend!(health_readiness_and_metrics);
async fn health_readiness_and_metrics(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(app.get_json("/healthz").await["status"], "ok");
    let ready = app.get_json("/readyz").await;
    assert_eq!(ready, serde_json::json!({"status": "ready", "store": "ok"}));
    let _ = app
        .post_token(
            Some(("basic-client", SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    let _ = app
        .post_token(
            Some(("basic-client", "nope")),
            &[("grant_type", "client_credentials")],
        )
        .await;
    let _ = app.http.get(app.url("/no/such/path")).send().await.unwrap();
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("keygate_tokens_issued_total{grant_type=\"client_credentials\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(
            "keygate_http_requests_total{route=\"/oauth/token\",method=\"POST\",status=\"200\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "keygate_http_requests_total{route=\"/oauth/token\",method=\"POST\",status=\"401\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("route=\"other\",method=\"GET\",status=\"404\""),
        "{text}"
    );
    assert!(
        text.contains("keygate_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("keygate_store_errors_total 0"), "{text}");
}

#[tokio::test]
async fn docs_and_openapi_are_served() {
    let app = spawn_app(Backend::Memory).await;
    let doc = app.get_json("/openapi.json").await;
    assert!(doc["paths"]["/oauth/token"]["post"].is_object());
    let resp = app.http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    // Issue 12 item 10: the docs page may not be framed either.
    let h = resp.headers();
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(resp.text().await.unwrap().contains("swagger"));
}

#[tokio::test]
async fn refuses_to_start_unless_redis_is_noeviction() {
    let redis = crate::redis_server::RedisServer::new();
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("allkeys-lru")
        .query_async(&mut conn)
        .await
        .unwrap();
    let keys = tempfile::tempdir().unwrap();
    keygate::tokens::keys::generate_into(keys.path(), keygate::tokens::keys::Alg::ES256, 1)
        .unwrap();
    let settings = crate::helpers::test_settings(keys.path(), &redis.url());
    let err = keygate::startup::Application::build(settings.clone())
        .await
        .err()
        .expect("start-up refused");
    assert!(err.to_string().contains("noeviction"), "{err}");
    // The operator may choose to run anyway (an error is logged).
    let mut settings = settings;
    settings.store.require_noeviction = false;
    keygate::startup::Application::build(settings)
        .await
        .expect("runs with store.require_noeviction = false");
}

#[tokio::test]
async fn starts_while_redis_is_down_and_reports_not_ready() {
    let mut redis = crate::redis_server::RedisServer::new();
    let url = redis.url();
    redis.stop();
    let keys = tempfile::tempdir().unwrap();
    keygate::tokens::keys::generate_into(keys.path(), keygate::tokens::keys::Alg::ES256, 1)
        .unwrap();
    let app =
        keygate::startup::Application::build(crate::helpers::test_settings(keys.path(), &url))
            .await
            .expect("starts without Redis");
    let state = app.state().clone();
    let addr = app.addr();
    let server = tokio::spawn(app.run_until_stopped(std::future::pending()));
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(format!("http://{addr}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    assert_eq!(
        http.get(format!("http://{addr}/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    redis.start_again();
    crate::steps::wait_ready(&http, &format!("http://{addr}"), "never became ready").await;
    assert!(state.store.ping().await.is_ok());
    server.abort();
}

/// RFC 9110 §15.5.6: a 405 carries `Allow`; every listed method is served
/// (schemathesis found the header missing).
#[tokio::test]
async fn method_not_allowed_lists_the_allowed_methods() {
    let app = spawn_app(Backend::Memory).await;
    let doc: serde_json::Value =
        serde_json::from_str(&keygate::http::api_service().spec()).unwrap();
    let mut paths: Vec<(String, Vec<String>)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(p, ops)| {
            let methods = ops
                .as_object()
                .unwrap()
                .keys()
                .map(|m| m.to_uppercase())
                .collect();
            (p.replace("{client_id}", "some-client"), methods)
        })
        .collect();
    for page in [
        "/",
        "/login",
        "/logout",
        "/oauth/authorize",
        "/clients/abc/rotate",
    ] {
        paths.push((page.to_string(), vec![]));
    }
    for (path, documented) in paths {
        let resp = app
            .http
            .request(reqwest::Method::TRACE, app.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 405, "TRACE {path}");
        let allow = resp.headers()["allow"].to_str().unwrap().to_string();
        for m in &documented {
            assert!(allow.contains(m.as_str()), "{path}: {allow} lacks {m}");
        }
        if allow.contains("HEAD") {
            let head = app.http.head(app.url(&path)).send().await.unwrap();
            assert_ne!(
                head.status(),
                405,
                "HEAD {path} is listed in Allow: {allow}"
            );
        }
    }
    // Every route of the one route table answers a wrong method with 405
    // and exactly its listed methods, and is counted under its own pattern.
    let table = keygate::http::routes::table();
    let mut counted = Vec::new();
    for entry in table.entries() {
        let path: String = entry
            .pattern()
            .split('/')
            .map(|s| {
                if s.starts_with(':') || s.starts_with('{') {
                    "abc"
                } else {
                    s
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let path = if path.is_empty() {
            "/".to_string()
        } else {
            path
        };
        let Some(listed) = entry.allow() else {
            // A mounted tree (the docs UI) answers every method.
            let resp = app.http.get(app.url(&path)).send().await.unwrap();
            assert_eq!(resp.status(), 200, "GET {path}");
            counted.push((entry.pattern().to_string(), "GET", 200));
            continue;
        };
        let resp = app
            .http
            .request(reqwest::Method::TRACE, app.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 405, "TRACE {path}");
        assert_eq!(resp.headers()["allow"], listed, "Allow of {path}");
        counted.push((entry.pattern().to_string(), "TRACE", 405));
    }
    let metrics = app.state.metrics.render();
    for (pattern, method, status) in counted {
        let line = format!(
            "keygate_http_requests_total{{route=\"{pattern}\",method=\"{method}\",status=\"{status}\"}}"
        );
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    assert!(
        !metrics.contains("route=\"other\""),
        "a routed path was counted as other:\n{metrics}"
    );
}

/// Issue 12 item 10: `/metrics` can move to a listener of its own (then the
/// main listener answers 404 for it) or be switched off; bad settings are
/// refused at start with the key's name.
#[tokio::test]
async fn metrics_can_move_to_their_own_listener_or_be_switched_off() {
    let keys = tempfile::tempdir().unwrap();
    keygate::tokens::keys::generate_into(keys.path(), keygate::tokens::keys::Alg::RS256, 1)
        .unwrap();
    let start = |tweak: &dyn Fn(&mut keygate::config::Settings)| {
        let mut s = crate::helpers::test_settings(keys.path(), "memory");
        tweak(&mut s);
        async move {
            let app = keygate::startup::Application::build(s).await?;
            let main = format!("http://{}", app.addr());
            let metrics = app.metrics_addr().map(|a| format!("http://{a}"));
            let task = tokio::spawn(app.run_until_stopped(std::future::pending()));
            anyhow::Ok((main, metrics, task))
        }
    };
    let http = crate::steps::api_client();
    let status = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };

    let (main, metrics, task) = start(&|s| s.metrics.listen = "127.0.0.1:0".into())
        .await
        .unwrap();
    let metrics = metrics.expect("a metrics listener");
    assert_ne!(main, metrics);
    assert_eq!(status(format!("{main}/healthz")).await, 200);
    assert_eq!(status(format!("{main}/metrics")).await, 404);
    let resp = http.get(format!("{metrics}/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    assert!(text.contains("keygate_http_requests_total"), "{text}");
    // Only the metrics there: no API, no pages.
    for path in ["/healthz", "/", "/oauth/token", "/.well-known/jwks.json"] {
        assert_eq!(status(format!("{metrics}{path}")).await, 404, "{path}");
    }
    task.abort();

    let (main, metrics, task) = start(&|s| s.metrics.enabled = false).await.unwrap();
    assert!(metrics.is_none());
    assert_eq!(status(format!("{main}/metrics")).await, 404);
    assert_eq!(status(format!("{main}/healthz")).await, 200);
    task.abort();

    for (listen, wanted) in [
        ("localhost:9100", "metrics.listen"),
        ("127.0.0.1:8080", "metrics.listen"),
    ] {
        let err = start(&|s| {
            s.server.listen = "127.0.0.1:8080".into();
            s.metrics.listen = listen.into();
        })
        .await
        .expect_err("refused");
        assert!(err.to_string().contains(wanted), "{err}");
    }
}

/// RFC 9728: every `/api/me` challenge (401 without or with a bad token, 403
/// for a missing scope) names the protected resource metadata, and that
/// document names keygate as the authorization server for the audience
/// `/api/me` accepts, so a client can go from a 401 to the right AS.
#[tokio::test]
async fn api_me_challenges_lead_to_its_protected_resource_metadata() {
    let audience = "https://api.example.test/me";
    let app = spawn_app_with(Backend::Memory, Alg::RS256, |s| {
        s.tokens.audience = audience.into();
    })
    .await;
    let want = format!("resource_metadata=\"{ISSUER}/.well-known/oauth-protected-resource\"");
    let cc: serde_json::Value = app
        .post_token(
            Some(("basic-client", SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await
        .json()
        .await
        .unwrap();
    let no_profile = format!("Bearer {}", cc["access_token"].as_str().unwrap());
    for (auth, status) in [
        (None, 401),
        (Some("Bearer not-a-jwt".to_string()), 401),
        (Some(no_profile), 403),
    ] {
        let mut req = app.http.get(app.url("/api/me"));
        if let Some(a) = &auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), status, "{auth:?}");
        let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains(&want),
            "{challenge}"
        );
    }
    let resp = app
        .http
        .get(app.url("/.well-known/oauth-protected-resource"))
        .header("origin", "https://elsewhere.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["access-control-allow-origin"]
            .to_str()
            .unwrap(),
        "*"
    );
    let doc: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(doc["resource"], audience);
    assert_eq!(doc["authorization_servers"], serde_json::json!([ISSUER]));
    assert_eq!(
        doc["bearer_methods_supported"],
        serde_json::json!(["header"])
    );
    assert_eq!(
        doc["scopes_supported"],
        serde_json::json!(["profile", "email"])
    );
    // The authorization server it names is this one.
    let meta: serde_json::Value = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], ISSUER);
}
