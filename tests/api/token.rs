//! `POST /oauth/token` with client_credentials: success paths on both stores,
//! every RFC 6749 §5.2 error, and gateway-style verification of the JWT.

use keygate::tokens::keys::Alg;

use crate::helpers::{
    assert_oauth_error, per_backend, spawn_app, spawn_app_with, verify_like_a_gateway, Backend,
    ISSUER, SECRET,
};

async fn issued(resp: reqwest::Response) -> serde_json::Value {
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers().get("cache-control").unwrap(), "no-store");
    assert_eq!(resp.headers().get("pragma").unwrap(), "no-cache");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(
        body.get("refresh_token").is_none(),
        "no refresh token for client_credentials (RFC 6749 §4.4.3)"
    );
    body
}

per_backend!(client_credentials_with_basic_and_post_on_both_stores);
async fn client_credentials_with_basic_and_post_on_both_stores(backend: Backend) {
    let app = spawn_app(backend).await;
    // client_secret_basic, default scope = everything registered
    let body = issued(
        app.post_token(
            Some(("basic-client", SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await,
    )
    .await;
    assert_eq!(body["scope"], "api:read api:write");
    let claims = verify_like_a_gateway(&app, body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], ISSUER);
    assert_eq!(claims["sub"], "basic-client");
    assert_eq!(claims["client_id"], "basic-client");
    assert_eq!(claims["scope"], "api:read api:write");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert_eq!(claims["nbf"], claims["iat"]);
    assert!(claims["jti"].as_str().unwrap().len() >= 16);

    // client_secret_post with a narrower scope
    let body = issued(
        app.post_token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "post-client"),
                ("client_secret", SECRET),
                ("scope", "api:read"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(body["scope"], "api:read");
    let claims = verify_like_a_gateway(&app, body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["sub"], "post-client");

    // a client registered in the store (not the config file)
    let (id, secret) = app.stored_client.clone();
    let body = issued(
        app.post_token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await,
    )
    .await;
    let claims = verify_like_a_gateway(&app, body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["client_id"], id.as_str(), "{backend:?}");
}

#[tokio::test]
async fn every_token_has_a_fresh_jti() {
    let app = spawn_app(Backend::Memory).await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let body = issued(
            app.post_token(
                Some(("basic-client", SECRET)),
                &[("grant_type", "client_credentials")],
            )
            .await,
        )
        .await;
        let claims = verify_like_a_gateway(&app, body["access_token"].as_str().unwrap()).await;
        assert!(seen.insert(claims["jti"].as_str().unwrap().to_string()));
    }
}

#[tokio::test]
async fn es256_and_eddsa_work_end_to_end() {
    for alg in [Alg::ES256, Alg::EdDSA] {
        let app = spawn_app_with(Backend::Memory, alg, |_| {}).await;
        let jwks = app.get_json("/.well-known/jwks.json").await;
        assert_eq!(jwks["keys"][0]["alg"], alg.as_str());
        let body = issued(
            app.post_token(
                Some(("basic-client", SECRET)),
                &[("grant_type", "client_credentials")],
            )
            .await,
        )
        .await;
        let token = body["access_token"].as_str().unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(token).unwrap().alg,
            alg.jwt_alg()
        );
        verify_like_a_gateway(&app, token).await;
    }
}

per_backend!(rfc6749_errors_are_exact);
async fn rfc6749_errors_are_exact(backend: Backend) {
    let app = spawn_app(backend).await;
    let cc = ("grant_type", "client_credentials");

    // invalid_request: missing grant_type
    assert_oauth_error(
        app.post_token(Some(("basic-client", SECRET)), &[]).await,
        400,
        "invalid_request",
    )
    .await;
    // invalid_request: duplicated parameter
    assert_oauth_error(
        app.post_token(
            Some(("basic-client", SECRET)),
            &[cc, ("scope", "api:read"), ("scope", "api:write")],
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    // invalid_request: JSON body
    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth("basic-client", Some(SECRET))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_oauth_error(resp, 400, "invalid_request").await;
    // invalid_request: no content type at all
    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_oauth_error(resp, 400, "invalid_request").await;
    // invalid_request: two authentication methods at once
    assert_oauth_error(
        app.post_token(
            Some(("basic-client", SECRET)),
            &[cc, ("client_id", "basic-client"), ("client_secret", SECRET)],
        )
        .await,
        400,
        "invalid_request",
    )
    .await;

    // invalid_client: none, wrong secret (Basic and post), unknown client, wrong method
    for (basic, form) in [
        (None, vec![cc]),
        (Some(("basic-client", "wrong")), vec![cc]),
        (Some(("nobody", SECRET)), vec![cc]),
        (
            None,
            vec![cc, ("client_id", "post-client"), ("client_secret", "wrong")],
        ),
        (
            None,
            vec![cc, ("client_id", "basic-client"), ("client_secret", SECRET)],
        ),
        (Some(("post-client", SECRET)), vec![cc]),
    ] {
        let h = assert_oauth_error(app.post_token(basic, &form).await, 401, "invalid_client").await;
        assert!(
            h.get("www-authenticate")
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("Basic"),
            "RFC 6749 §5.2"
        );
    }
    // invalid_client: an Authorization header that is not Basic
    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", "Bearer abc")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_oauth_error(resp, 401, "invalid_client").await;

    // unauthorized_client: confidential client not registered for client_credentials
    assert_oauth_error(
        app.post_token(Some(("code-client", SECRET)), &[cc]).await,
        400,
        "unauthorized_client",
    )
    .await;
    // unsupported_grant_type
    for g in ["password", "urn:example:nope", "implicit"] {
        assert_oauth_error(
            app.post_token(Some(("basic-client", SECRET)), &[("grant_type", g)])
                .await,
            400,
            "unsupported_grant_type",
        )
        .await;
    }
    // invalid_scope: beyond the registration, unknown, malformed
    for scope in ["api:read profile", "admin", "api:read \"x"] {
        assert_oauth_error(
            app.post_token(
                None,
                &[
                    cc,
                    ("client_id", "post-client"),
                    ("client_secret", SECRET),
                    ("scope", scope),
                ],
            )
            .await,
            400,
            "invalid_scope",
        )
        .await;
    }
}

#[tokio::test]
async fn hostile_bodies_never_crash() {
    let app = spawn_app(Backend::Memory).await;
    // over the 64 KiB limit (declared length and chunked)
    let big = format!(
        "grant_type=client_credentials&pad={}",
        "a".repeat(70 * 1024)
    );
    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth("basic-client", Some(SECRET))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(big.into_bytes())]);
    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth("basic-client", Some(SECRET))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    // oversized headers
    let resp = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth("basic-client", Some(SECRET))
        .header("x-padding", "p".repeat(20 * 1024))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 431);
    // invalid UTF-8, stray percent signs, huge client ids, NUL bytes
    for body in [
        b"grant_type=client_credentials&scope=%ff%fe".to_vec(),
        b"grant_type=%%%&&&==".to_vec(),
        vec![0xff, 0x00, 0x3d, 0x26],
        format!(
            "grant_type=client_credentials&client_id={}&client_secret=x",
            "c".repeat(5000)
        )
        .into_bytes(),
    ] {
        let resp = app
            .http
            .post(app.url("/oauth/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        assert!(status == 400 || status == 401, "status {status}");
    }
    // malformed Basic headers
    for h in ["Basic", "Basic !!!", "Basic Zm9v", "basic Og=="] {
        let resp = app
            .http
            .post(app.url("/oauth/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", h)
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{h}");
    }
    // the server is still fine
    let body = issued(
        app.post_token(
            Some(("basic-client", SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await,
    )
    .await;
    verify_like_a_gateway(&app, body["access_token"].as_str().unwrap()).await;
}

#[tokio::test]
async fn store_outage_is_503_and_recovers() {
    let mut app = spawn_app(Backend::Redis).await;
    let (id, secret) = app.stored_client.clone();
    app.redis.as_mut().unwrap().stop();
    let resp = app
        .post_token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    let h = assert_oauth_error(resp, 503, "temporarily_unavailable").await;
    assert!(h.get("retry-after").is_some());
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"status": "unavailable", "store": "unreachable"}),
        "/readyz names the dependency that is not ready"
    );
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // config-file clients and discovery need no store
    issued(
        app.post_token(
            Some(("basic-client", SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await,
    )
    .await;
    assert_eq!(
        app.http
            .get(app.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.redis.as_mut().unwrap().start_again();
    // the stored client's data died with the (non-persistent) server; recovery means
    // the store answers again without a keygate restart.
    crate::steps::wait_ready(
        &app.http,
        &app.addr,
        "keygate did not recover after Redis came back",
    )
    .await;
    let resp = app
        .post_token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_oauth_error(resp, 401, "invalid_client").await;
}
