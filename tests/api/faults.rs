//! Issue 7 item 1: store faults. A full (out of memory) or read-only Redis
//! and a stopped one: every endpoint that needs the store answers 503 (JSON
//! `temporarily_unavailable` or an error page), nothing is half-written, and
//! everything works again once Redis is back.

use keygate::tokens::keys::Alg;

use crate::helpers::{
    assert_oauth_error, hidden_value, pkce_pair, spawn_app_with, urlencode, Backend, TestApp,
    PASSWORD, REDIRECT, SECRET, USER,
};
use crate::steps;

const INITIAL: &str = "faults-initial-token";

async fn app() -> TestApp {
    spawn_app_with(Backend::Redis, Alg::ES256, |s| {
        s.registration.initial_access_tokens = vec![INITIAL.into()];
    })
    .await
}

async fn redis_cmd(app: &TestApp, args: &[&str]) {
    let client = redis::Client::open(app.redis.as_ref().unwrap().url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    let _: redis::Value = cmd.query_async(&mut conn).await.unwrap();
}

/// A fresh code for `web-app` and its verifier.
async fn code(app: &TestApp) -> (String, String) {
    app.web_app_code("profile").await
}

async fn redeem(app: &TestApp, code: &str, verifier: &str) -> reqwest::Response {
    steps::redeem(
        &app.http,
        &app.addr,
        Some(("web-app", SECRET)),
        &[],
        code,
        verifier,
    )
    .await
}

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    steps::refresh(&app.http, &app.addr, ("web-app", SECRET), token).await
}

async fn register(app: &TestApp) -> reqwest::Response {
    crate::steps::post_registration(
        &app.http,
        &app.addr,
        INITIAL,
        &serde_json::json!({"client_name": "x", "grant_types": ["client_credentials"]}),
    )
    .await
}

#[tokio::test]
async fn full_or_read_only_redis_answers_503_and_changes_nothing() {
    let app = app().await;
    // (fault, the command that causes it, the command that ends it)
    let faults: [(&str, &[&str], &[&str]); 2] = [
        (
            "out of memory",
            &["CONFIG", "SET", "maxmemory", "1"],
            &["CONFIG", "SET", "maxmemory", "0"],
        ),
        (
            "read-only replica",
            &["REPLICAOF", "127.0.0.1", "1"],
            &["REPLICAOF", "NO", "ONE"],
        ),
    ];
    for (fault, start, end) in faults {
        let (c, v) = code(&app).await;
        let tokens = steps::ok_json(redeem(&app, &c, &v).await).await;
        let access = tokens["access_token"].as_str().unwrap().to_string();
        let refresh_token = tokens["refresh_token"].as_str().unwrap().to_string();
        let (c, v) = code(&app).await;
        let browser = app.browser();
        let login_page = app.page(&browser, "/login").await;
        let csrf = hidden_value(&login_page, "csrf_token");

        redis_cmd(&app, start).await;
        assert_oauth_error(redeem(&app, &c, &v).await, 503, "temporarily_unavailable").await;
        assert_oauth_error(
            refresh(&app, &refresh_token).await,
            503,
            "temporarily_unavailable",
        )
        .await;
        // Revoking an access token writes to the deny-list: never 200 unless it did.
        let resp = app
            .post_token_to(
                "/oauth/revoke",
                Some(("web-app", SECRET)),
                &[("token", &access)],
            )
            .await;
        assert_oauth_error(resp, 503, "temporarily_unavailable").await;
        assert_eq!(register(&app).await.status(), 503, "{fault}: registration");
        let resp = browser
            .post(app.url("/login"))
            .form(&[
                ("username", USER),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            503,
            "{fault}: login cannot store its session"
        );
        assert!(
            resp.text().await.unwrap().contains("<html"),
            "{fault}: an error page"
        );
        redis_cmd(&app, end).await;

        // Nothing was half-written: the code, the refresh token and the access
        // token are exactly as before the fault.
        steps::ok_json(redeem(&app, &c, &v).await).await;
        steps::ok_json(refresh(&app, &refresh_token).await).await;
        let me = steps::me(&app.http, &app.addr, &access).await;
        assert_eq!(
            me.status(),
            200,
            "{fault}: the access token was not revoked"
        );
        assert_eq!(
            register(&app).await.status(),
            201,
            "{fault}: registration is back"
        );
    }
}

#[tokio::test]
async fn stopped_redis_answers_503_on_every_endpoint_that_needs_it() {
    let mut app = app().await;
    let (c, v) = code(&app).await;
    let tokens = steps::ok_json(redeem(&app, &c, &v).await).await;
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let browser = app.browser();
    let resp = app.login(&browser, "/").await;
    assert_eq!(resp.status(), 303);
    let (stored_id, _) = app.stored_client.clone();

    app.redis.as_mut().unwrap().stop();
    // /oauth/authorize cannot check the client or the session: a 503 page, never a redirect.
    for (client, who) in [("web-app", &browser), (stored_id.as_str(), &app.http)] {
        let (_, challenge) = pkce_pair();
        let q = format!(
            "/oauth/authorize?response_type=code&client_id={client}&redirect_uri={}&state=s&code_challenge={challenge}&code_challenge_method=S256",
            urlencode(REDIRECT)
        );
        let resp = who.get(app.url(&q)).send().await.unwrap();
        assert_eq!(resp.status(), 503, "authorize for {client}");
        assert!(resp.headers().get("location").is_none());
    }
    for (path, form) in [
        ("/oauth/revoke", vec![("token", access.as_str())]),
        ("/oauth/introspect", vec![("token", access.as_str())]),
    ] {
        let resp = app
            .post_token_to(path, Some(("web-app", SECRET)), &form)
            .await;
        assert_oauth_error(resp, 503, "temporarily_unavailable").await;
    }
    assert_eq!(register(&app).await.status(), 503);
    let me = steps::me(&app.http, &app.addr, &access).await;
    assert_eq!(me.status(), 503);

    app.redis.as_mut().unwrap().start_again();
    steps::wait_ready(&app.http, &app.addr, "no recovery").await;
    assert_eq!(register(&app).await.status(), 201);
}
