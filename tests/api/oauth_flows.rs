//! Full authorization flows over HTTP, following the forms as a browser would:
//! code + PKCE (confidential and public), deny, refresh rotation and family
//! revocation, code replay and races, password and implicit (legacy profile),
//! revocation, introspection and `/api/me`, store round trips per grant,
//! on both stores. The sign-in pages themselves are in `sign_in.rs`.

use keygate::tokens::keys::Alg;

use crate::helpers::{
    assert_oauth_error, location, params_of, per_backend, pkce_pair, spawn_app, spawn_app_with,
    store_calls, urlencode, verify_like_a_gateway, Backend, TestApp, ISSUER, PASSWORD, REDIRECT,
    SECRET, USER,
};
use crate::steps;

async fn legacy(backend: Backend) -> TestApp {
    spawn_app_with(backend, Alg::RS256, |s| s.oauth.profile = "legacy".into()).await
}

fn code_query(client: &str, challenge: &str) -> String {
    steps::code_query(client, "profile email", challenge)
}

/// Asserts the redirect goes to the client with `code`, `state` and `iss`; returns the code.
fn code_from(redirect: &str) -> String {
    assert!(redirect.starts_with(REDIRECT), "{redirect}");
    let p = params_of(redirect, false);
    assert_eq!(p["state"], steps::STATE);
    assert_eq!(p["iss"], ISSUER, "RFC 9207 iss");
    p["code"].clone()
}

/// A code for `web-app` (profile and email, approved by `USER`) and its verifier.
async fn web_app_code(app: &TestApp) -> (String, String) {
    let (verifier, challenge) = pkce_pair();
    let redirect = app
        .authorize(&code_query("web-app", &challenge), "allow")
        .await;
    (code_from(&redirect), verifier)
}

async fn redeem(
    app: &TestApp,
    basic: Option<(&str, &str)>,
    extra: &[(&str, &str)],
    code: &str,
    verifier: &str,
) -> reqwest::Response {
    steps::redeem(&app.http, &app.addr, basic, extra, code, verifier).await
}

/// `grant_type=refresh_token` as the confidential `web-app` client.
async fn web_app_refresh(app: &TestApp, token: &str) -> reqwest::Response {
    steps::refresh(&app.http, &app.addr, ("web-app", SECRET), token).await
}

async fn me(app: &TestApp, token: &str) -> reqwest::Response {
    steps::me(&app.http, &app.addr, token).await
}

/// Introspects `token` as `web-app` (the owner of most tokens here).
async fn introspect(app: &TestApp, token: &str) -> serde_json::Value {
    introspect_as(app, "web-app", token).await
}

/// Introspects `token` as the confidential `client` (Basic, [`SECRET`]).
async fn introspect_as(app: &TestApp, client: &str, token: &str) -> serde_json::Value {
    steps::ok_json(
        app.post_token_to(
            "/oauth/introspect",
            Some((client, SECRET)),
            &[("token", token)],
        )
        .await,
    )
    .await
}

per_backend!(code_flow_confidential_client_end_to_end);
async fn code_flow_confidential_client_end_to_end(backend: Backend) {
    // No grace window: the replay below must count as reuse at once
    // (retries within the window are in races.rs).
    let app = spawn_app_with(backend, Alg::RS256, |s| s.tokens.refresh_grace_secs = 0).await;
    let (code, verifier) = web_app_code(&app).await;
    let tokens =
        steps::ok_json(redeem(&app, Some(("web-app", SECRET)), &[], &code, &verifier).await).await;
    assert_eq!(tokens["scope"], "email profile");
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    let claims = verify_like_a_gateway(&app, access).await;
    assert_eq!(claims["client_id"], "web-app");
    assert_eq!(claims["sub"], "cfg-alice");

    // /api/me with profile + email
    let resp = me(&app, access).await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"sub": "cfg-alice", "username": USER, "email": "alice@example.com"})
    );

    // refresh rotation, narrowing the scope
    let next = steps::ok_json(
        app.post_token(
            Some(("web-app", SECRET)),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("scope", "profile"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(next["scope"], "profile");
    let next_refresh = next["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(next_refresh, refresh, "rotated");
    let body: serde_json::Value = me(&app, next["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert!(
        body.get("email").is_none(),
        "no email without the email scope"
    );
    // widening is refused
    assert_oauth_error(
        app.post_token(
            Some(("web-app", SECRET)),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &next_refresh),
                ("scope", "profile api:read"),
            ],
        )
        .await,
        400,
        "invalid_scope",
    )
    .await;
    // replaying the rotated token revokes the family: the successor dies too
    assert_oauth_error(web_app_refresh(&app, &refresh).await, 400, "invalid_grant").await;
    assert_oauth_error(
        web_app_refresh(&app, &next_refresh).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(introspect(&app, &next_refresh).await["active"], false);

    // revoking the access token: 200, then inactive and refused by /api/me
    let resp = app
        .post_token_to(
            "/oauth/revoke",
            Some(("web-app", SECRET)),
            &[("token", access)],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        introspect(&app, access).await,
        serde_json::json!({"active": false})
    );
    let resp = me(&app, access).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("error=\"invalid_token\""));
}

per_backend!(code_flow_public_client_needs_pkce_and_rotates_refresh_tokens);
async fn code_flow_public_client_needs_pkce_and_rotates_refresh_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    // without PKCE: error redirect (client and redirect_uri are valid)
    let browser = app.browser();
    let q = format!(
        "response_type=code&client_id=spa&redirect_uri={}&state=st-123",
        urlencode(REDIRECT)
    );
    let resp = browser
        .get(app.url(&format!("/oauth/authorize?{q}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let p = params_of(&location(&resp), false);
    assert_eq!(
        (p["error"].as_str(), p["state"].as_str(), p["iss"].as_str()),
        ("invalid_request", "st-123", ISSUER)
    );

    let (verifier, challenge) = pkce_pair();
    let code = code_from(&app.authorize(&code_query("spa", &challenge), "allow").await);
    // the wrong verifier is refused ...
    let (other, _) = pkce_pair();
    assert_oauth_error(
        redeem(&app, None, &[("client_id", "spa")], &code, &other).await,
        400,
        "invalid_grant",
    )
    .await;
    // ... and a code is single-use even after a failed attempt? No: the failed
    // attempt did not redeem it, so the right verifier still works.
    let tokens =
        steps::ok_json(redeem(&app, None, &[("client_id", "spa")], &code, &verifier).await).await;
    let r1 = tokens["refresh_token"].as_str().unwrap().to_string();
    let t2 = steps::ok_json(
        app.post_token(
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &r1),
                ("client_id", "spa"),
            ],
        )
        .await,
    )
    .await;
    let r2 = t2["refresh_token"].as_str().unwrap();
    assert_ne!(r1, r2);
    // another client cannot use it
    assert_oauth_error(web_app_refresh(&app, r2).await, 400, "invalid_grant").await;
    // and that attempt did not revoke it
    steps::ok_json(
        app.post_token(
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", r2),
                ("client_id", "spa"),
            ],
        )
        .await,
    )
    .await;
}

#[tokio::test]
async fn deny_sends_access_denied_with_state_and_iss() {
    let app = spawn_app(Backend::Memory).await;
    let (_, challenge) = pkce_pair();
    let redirect = app
        .authorize(&code_query("web-app", &challenge), "deny")
        .await;
    let p = params_of(&redirect, false);
    assert_eq!(p["error"], "access_denied");
    assert_eq!(p["state"], "st-123");
    assert_eq!(p["iss"], ISSUER);
    assert!(!p.contains_key("code"));
}

#[tokio::test]
async fn authorize_errors_show_a_page_or_redirect_as_the_rfc_says() {
    let app = spawn_app(Backend::Memory).await;
    let (_, ch) = pkce_pair();
    let r = urlencode(REDIRECT);
    // never redirected: unknown client, unregistered or near-miss redirect URIs, repeated client_id
    for q in [
        format!("response_type=code&client_id=nobody&redirect_uri={r}&code_challenge={ch}&code_challenge_method=S256"),
        format!("response_type=code&client_id=web-app&redirect_uri={}&code_challenge={ch}&code_challenge_method=S256", urlencode("https://evil.example/cb")),
        format!("response_type=code&client_id=web-app&redirect_uri={}&code_challenge={ch}&code_challenge_method=S256", urlencode("http://127.0.0.1:3000/callback/")),
        format!("response_type=code&client_id=web-app&client_id=web-app&code_challenge={ch}&code_challenge_method=S256"),
        "response_type=code".to_string(),
    ] {
        let resp = app.http.get(app.url(&format!("/oauth/authorize?{q}"))).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{q}");
        assert!(resp.headers().get("location").is_none(), "{q}");
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    }
    // redirected with error, state and iss
    for (q, code) in [
        (format!("client_id=web-app&redirect_uri={r}&state=st-123"), "invalid_request"),
        (format!("response_type=id_token&client_id=web-app&redirect_uri={r}&state=st-123"), "unsupported_response_type"),
        (format!("response_type=token&client_id=legacy-app&redirect_uri={r}&state=st-123"), "unsupported_response_type"),
        (format!("response_type=code&client_id=web-app&redirect_uri={r}&state=st-123&code_challenge={ch}"), "invalid_request"),
        (format!("response_type=code&client_id=web-app&redirect_uri={r}&state=st-123&code_challenge={ch}&code_challenge_method=plain"), "invalid_request"),
        (format!("response_type=code&client_id=web-app&redirect_uri={r}&state=st-123"), "invalid_request"),
        (format!("response_type=code&client_id=web-app&redirect_uri={r}&state=st-123&scope=admin&code_challenge={ch}&code_challenge_method=S256"), "invalid_scope"),
        (format!("response_type=code&client_id=basic-client&redirect_uri={r}&state=st-123"), "unauthorized_client"),
    ] {
        let resp = app.http.get(app.url(&format!("/oauth/authorize?{q}"))).send().await.unwrap();
        if code == "unauthorized_client" {
            // basic-client has no redirect URI registered at all: shown, not redirected
            assert_eq!(resp.status(), 400, "{q}");
            continue;
        }
        assert_eq!(resp.status(), 303, "{q}");
        let p = params_of(&location(&resp), false);
        assert_eq!(p["error"], code, "{q}");
        assert_eq!(p["state"], "st-123");
        assert_eq!(p["iss"], ISSUER);
    }
}

per_backend!(code_replay_is_refused_and_revokes_what_it_issued);
async fn code_replay_is_refused_and_revokes_what_it_issued(backend: Backend) {
    let app = spawn_app(backend).await;
    let (code, verifier) = web_app_code(&app).await;
    let tokens =
        steps::ok_json(redeem(&app, Some(("web-app", SECRET)), &[], &code, &verifier).await).await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(introspect(&app, access).await["active"], true);
    assert_oauth_error(
        redeem(&app, Some(("web-app", SECRET)), &[], &code, &verifier).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        introspect(&app, access).await["active"],
        false,
        "access token from the replayed code is revoked"
    );
    assert_oauth_error(web_app_refresh(&app, refresh).await, 400, "invalid_grant").await;
}

per_backend!(concurrent_redemption_has_exactly_one_winner);
async fn concurrent_redemption_has_exactly_one_winner(backend: Backend) {
    let app = std::sync::Arc::new(spawn_app(backend).await);
    let (code, verifier) = web_app_code(&app).await;
    let mut tasks = vec![];
    for _ in 0..20 {
        let (app, code, verifier) = (app.clone(), code.clone(), verifier.clone());
        tasks.push(tokio::spawn(async move {
            redeem(&app, Some(("web-app", SECRET)), &[], &code, &verifier)
                .await
                .status()
                .as_u16()
        }));
    }
    let mut statuses = vec![];
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{backend:?}: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 400),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn token_request_must_match_the_authorization_request() {
    let app = spawn_app(Backend::Memory).await;
    let (code, verifier) = web_app_code(&app).await;
    // missing redirect_uri (it was in the request)
    let resp = app
        .post_token(
            Some(("web-app", SECRET)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
    // another client
    let resp = app
        .post_token(
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", &verifier),
                ("redirect_uri", REDIRECT),
                ("client_id", "spa"),
            ],
        )
        .await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
    // missing verifier
    let resp = app
        .post_token(
            Some(("web-app", SECRET)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
            ],
        )
        .await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
    // missing code
    let resp = app
        .post_token(
            Some(("web-app", SECRET)),
            &[
                ("grant_type", "authorization_code"),
                ("redirect_uri", REDIRECT),
            ],
        )
        .await;
    assert_oauth_error(resp, 400, "invalid_request").await;
    // an unknown code
    let resp = redeem(
        &app,
        Some(("web-app", SECRET)),
        &[],
        "not-a-code",
        &verifier,
    )
    .await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
    // still redeemable correctly
    steps::ok_json(redeem(&app, Some(("web-app", SECRET)), &[], &code, &verifier).await).await;
}

per_backend!(password_grant_only_in_the_legacy_profile);
async fn password_grant_only_in_the_legacy_profile(backend: Backend) {
    let app = legacy(backend).await;
    let form = |pw: &'static str| {
        vec![
            ("grant_type", "password"),
            ("username", USER),
            ("password", pw),
            ("client_id", "legacy-app"),
            ("client_secret", SECRET),
            ("scope", "profile"),
        ]
    };
    let tokens = steps::ok_json(app.post_token(None, &form(PASSWORD)).await).await;
    assert!(tokens["refresh_token"].is_string());
    let body: serde_json::Value = me(&app, tokens["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["username"], USER);
    assert_oauth_error(
        app.post_token(None, &form("wrong-password")).await,
        400,
        "invalid_grant",
    )
    .await;
    let unknown = [
        ("grant_type", "password"),
        ("username", "mallory"),
        ("password", PASSWORD),
        ("client_id", "legacy-app"),
        ("client_secret", SECRET),
    ];
    assert_oauth_error(app.post_token(None, &unknown).await, 400, "invalid_grant").await;
    // a client not registered for it
    let resp = app
        .post_token(
            Some(("web-app", SECRET)),
            &[
                ("grant_type", "password"),
                ("username", USER),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_oauth_error(resp, 400, "unauthorized_client").await;
}

/// The default profile (`oauth21`) has no password grant at all.
#[tokio::test]
async fn password_grant_is_unsupported_outside_the_legacy_profile() {
    let app = spawn_app(Backend::Memory).await;
    let resp = app
        .post_token(
            None,
            &[
                ("grant_type", "password"),
                ("username", USER),
                ("password", PASSWORD),
                ("client_id", "legacy-app"),
                ("client_secret", SECRET),
            ],
        )
        .await;
    assert_oauth_error(resp, 400, "unsupported_grant_type").await;
}

#[tokio::test]
async fn implicit_only_in_the_legacy_profile() {
    let app = legacy(Backend::Memory).await;
    let q = format!(
        "response_type=token&client_id=legacy-app&redirect_uri={}&scope=profile&state=st-123",
        urlencode(REDIRECT)
    );
    let redirect = app.authorize(&q, "allow").await;
    let p = params_of(&redirect, true);
    assert_eq!(p["token_type"], "Bearer");
    assert_eq!(p["state"], "st-123");
    assert_eq!(p["iss"], ISSUER);
    assert!(!p.contains_key("refresh_token"));
    assert!(
        url::Url::parse(&redirect).unwrap().query().is_none(),
        "the token is only in the fragment"
    );
    verify_like_a_gateway(&app, &p["access_token"]).await;
    // errors for implicit go in the fragment too
    let q = format!(
        "response_type=token&client_id=legacy-app&redirect_uri={}&scope=admin&state=st-123",
        urlencode(REDIRECT)
    );
    let resp = app
        .http
        .get(app.url(&format!("/oauth/authorize?{q}")))
        .send()
        .await
        .unwrap();
    let p = params_of(&location(&resp), true);
    assert_eq!(p["error"], "invalid_scope");
    assert_eq!(p["iss"], ISSUER);
    // legacy: confidential clients may skip PKCE
    let q = format!(
        "response_type=code&client_id=legacy-app&redirect_uri={}&state=st-123",
        urlencode(REDIRECT)
    );
    let code = code_from(&app.authorize(&q, "allow").await);
    steps::ok_json(
        app.post_token(
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("client_id", "legacy-app"),
                ("client_secret", SECRET),
            ],
        )
        .await,
    )
    .await;
}

per_backend!(revocation_rules);
async fn revocation_rules(backend: Backend) {
    let app = spawn_app(backend).await;
    let (code, verifier) = web_app_code(&app).await;
    let tokens =
        steps::ok_json(redeem(&app, Some(("web-app", SECRET)), &[], &code, &verifier).await).await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    // another client's token: 200 and no effect
    let resp = app
        .post_token_to(
            "/oauth/revoke",
            Some(("basic-client", SECRET)),
            &[("token", refresh)],
        )
        .await;
    assert_eq!(resp.status(), 200);
    let resp = app
        .post_token_to(
            "/oauth/revoke",
            Some(("basic-client", SECRET)),
            &[("token", access)],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(introspect(&app, access).await["active"], true);
    assert_eq!(introspect(&app, refresh).await["active"], true);
    // unknown token: 200
    let resp = app
        .post_token_to(
            "/oauth/revoke",
            Some(("web-app", SECRET)),
            &[("token", "nonsense"), ("token_type_hint", "refresh_token")],
        )
        .await;
    assert_eq!(resp.status(), 200);
    // no token: invalid_request; no client auth: invalid_client
    assert_oauth_error(
        app.post_token_to("/oauth/revoke", Some(("web-app", SECRET)), &[])
            .await,
        400,
        "invalid_request",
    )
    .await;
    assert_oauth_error(
        app.post_token_to("/oauth/revoke", None, &[("token", refresh)])
            .await,
        401,
        "invalid_client",
    )
    .await;
    // the owner revokes the refresh token: the family is dead
    let resp = app
        .post_token_to(
            "/oauth/revoke",
            Some(("web-app", SECRET)),
            &[("token", refresh)],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(introspect(&app, refresh).await["active"], false);
    assert_oauth_error(web_app_refresh(&app, refresh).await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn introspection_reports_claims_or_inactive() {
    let app = spawn_app(Backend::Memory).await;
    let cc: serde_json::Value = app
        .post_token(
            Some(("basic-client", SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await
        .json()
        .await
        .unwrap();
    let token = cc["access_token"].as_str().unwrap();
    let i = introspect_as(&app, "basic-client", token).await;
    assert_eq!(i["active"], true);
    assert_eq!(i["client_id"], "basic-client");
    assert_eq!(i["token_type"], "Bearer");
    assert_eq!(i["iss"], ISSUER);
    assert!(i["exp"].as_i64().is_some());
    // forged, other issuer, garbage
    let mut forged = token.to_string();
    forged.replace_range(forged.len() - 4.., "AAAA");
    for t in [forged.as_str(), "a.b.c", "garbage"] {
        assert_eq!(
            introspect_as(&app, "basic-client", t).await,
            serde_json::json!({"active": false}),
            "{t}"
        );
    }
    let other = spawn_app(Backend::Memory).await;
    let foreign: serde_json::Value = other
        .post_token(
            Some(("basic-client", SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        introspect_as(
            &app,
            "basic-client",
            foreign["access_token"].as_str().unwrap()
        )
        .await["active"],
        false,
        "signed by another key"
    );
    // client authentication is required
    assert_oauth_error(
        app.post_token_to("/oauth/introspect", None, &[("token", token)])
            .await,
        401,
        "invalid_client",
    )
    .await;
}

per_backend!(introspection_is_for_confidential_clients_and_their_own_tokens);
/// RFC 7662 §2.1: a public client (a `client_id` alone) may not introspect
/// and learns nothing; a confidential client sees only its own tokens.
async fn introspection_is_for_confidential_clients_and_their_own_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let (code, verifier) = web_app_code(&app).await;
    let tokens =
        steps::ok_json(redeem(&app, Some(("web-app", SECRET)), &[], &code, &verifier).await).await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();

    // (a) a public client, or any client_id alone: 401 invalid_client with the
    // Basic challenge, the same answer as no credentials at all, whatever the token.
    let (stored_id, _) = app.stored_client.clone();
    let mut answers = Vec::new();
    for (id, token) in [
        (Some("spa"), access),
        (Some("spa"), refresh),
        (Some("public-client"), access),
        (Some("web-app"), access),
        (Some(stored_id.as_str()), refresh),
        (Some("no-such-client"), access),
        (None, access),
    ] {
        let form: Vec<(&str, &str)> = id
            .map(|id| ("client_id", id))
            .into_iter()
            .chain([("token", token)])
            .collect();
        let resp = app.post_token_to("/oauth/introspect", None, &form).await;
        let status = resp.status().as_u16();
        let challenge = resp.headers().get("www-authenticate").cloned();
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(status, 401, "{id:?}: {body}");
        assert!(
            challenge.is_some_and(|c| c.to_str().unwrap().starts_with("Basic ")),
            "{id:?}"
        );
        assert_eq!(body["error"], "invalid_client", "{id:?}");
        assert_eq!(
            body.as_object().unwrap().len(),
            2,
            "only error and error_description: {body}"
        );
        answers.push(body);
    }
    assert!(
        answers.windows(2).all(|w| w[0] == w[1]),
        "every unauthenticated caller gets the same answer: {answers:?}"
    );

    // (b) another confidential client: exactly {"active": false}, for the
    // access token and the refresh token, by Basic or by post.
    for token in [access, refresh] {
        assert_eq!(
            introspect_as(&app, "basic-client", token).await,
            serde_json::json!({"active": false})
        );
        let by_post = app
            .post_token_to(
                "/oauth/introspect",
                None,
                &[
                    ("client_id", "post-client"),
                    ("client_secret", SECRET),
                    ("token", token),
                ],
            )
            .await;
        assert_eq!(
            steps::ok_json(by_post).await,
            serde_json::json!({"active": false})
        );
    }

    // (c) the owner still sees the full claims of both.
    let i = introspect(&app, access).await;
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["client_id"], "web-app");
    assert_eq!(i["username"], USER);
    assert_eq!(i["token_type"], "Bearer");
    assert_eq!(i["scope"], tokens["scope"]);
    assert_eq!(i["iss"], ISSUER);
    for claim in ["sub", "aud", "jti", "exp", "iat"] {
        assert!(!i[claim].is_null(), "{claim}: {i}");
    }
    let i = introspect(&app, refresh).await;
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["client_id"], "web-app");
    assert_eq!(i["username"], USER);
    assert_eq!(i["token_type"], "refresh_token");
}

#[tokio::test]
async fn expired_tokens_are_inactive() {
    let app = spawn_app_with(Backend::Memory, Alg::ES256, |s| s.tokens.access_ttl = 1).await;
    let cc: serde_json::Value = app
        .post_token(
            Some(("basic-client", SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await
        .json()
        .await
        .unwrap();
    let token = cc["access_token"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while introspect_as(&app, "basic-client", &token).await["active"] == true {
        assert!(std::time::Instant::now() < deadline, "token never expired");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(me(&app, &token).await.status(), 401);
}

#[tokio::test]
async fn api_me_errors_follow_rfc6750() {
    let app = spawn_app(Backend::Memory).await;
    let resp = app.http.get(app.url("/api/me")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.starts_with("Bearer") && !challenge.contains("error="),
        "{challenge}"
    );
    let resp = me(&app, "not-a-jwt").await;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("error=\"invalid_token\""));
    // valid token without the profile scope
    let cc: serde_json::Value = app
        .post_token(
            Some(("basic-client", SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await
        .json()
        .await
        .unwrap();
    let resp = me(&app, cc["access_token"].as_str().unwrap()).await;
    assert_eq!(resp.status(), 403);
    let h = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        h.contains("error=\"insufficient_scope\"") && h.contains("scope=\"profile\""),
        "{h}"
    );
    // profile scope but no user behind the token (client_credentials)
    let cc: serde_json::Value = app
        .post_token(
            Some(("cc-profile", SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await
        .json()
        .await
        .unwrap();
    let resp = me(&app, cc["access_token"].as_str().unwrap()).await;
    assert_eq!(resp.status(), 401);
}

per_backend!(token_grants_stay_within_their_store_round_trips);
/// Issue 6: at most 2 store round trips per code or refresh grant and 1 for
/// `client_credentials`, for a client registered in the store (issue 17:
/// on a Redis Cluster too, see tests/api/cluster.rs).
async fn token_grants_stay_within_their_store_round_trips(backend: Backend) {
    use keygate::oauth::client_meta::ClientMetadata;
    use keygate::oauth::types::{AuthMethod, GrantType, ScopeSet};
    let app = spawn_app(backend).await;
    let meta = ClientMetadata {
        client_name: "round trips".into(),
        redirect_uris: vec![REDIRECT.into()],
        grant_types: vec![
            GrantType::AuthorizationCode,
            GrantType::RefreshToken,
            GrantType::ClientCredentials,
        ],
        scope: ScopeSet::parse("profile email").unwrap(),
        auth_method: AuthMethod::ClientSecretBasic,
        client_uri: None,
        logo_uri: None,
        oidc: Default::default(),
    };
    let reg = keygate::flows::clients::register(
        &app.state.repos,
        meta,
        &app.state.cfg.client_rules,
        0,
        None,
        false,
    )
    .await
    .unwrap();
    let id = reg.client.client_id.clone();
    let secret = reg.secret.unwrap();
    let basic = Some((id.as_str(), secret.as_str()));

    let (verifier, challenge) = pkce_pair();
    let code = code_from(&app.authorize(&code_query(&id, &challenge), "allow").await);
    let before = store_calls(&app.state);
    let tokens = steps::ok_json(redeem(&app, basic, &[], &code, &verifier).await).await;
    assert_eq!(
        store_calls(&app.state) - before,
        2,
        "code grant on {backend:?}"
    );

    let before = store_calls(&app.state);
    let refresh = tokens["refresh_token"].as_str().unwrap();
    steps::ok_json(
        app.post_token(
            basic,
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await,
    )
    .await;
    assert_eq!(
        store_calls(&app.state) - before,
        2,
        "refresh grant on {backend:?}"
    );

    let before = store_calls(&app.state);
    steps::ok_json(
        app.post_token(basic, &[("grant_type", "client_credentials")])
            .await,
    )
    .await;
    let calls = store_calls(&app.state) - before;
    if backend == Backend::Cluster {
        // The client comes from the invalidated cache (0), or from the
        // store while the subscription is not live yet (1).
        assert!(calls <= 1, "client_credentials on {backend:?}: {calls}");
    } else {
        assert_eq!(calls, 1, "client_credentials on {backend:?}");
    }
}

/// Issue 12 item 8: `response_mode` is honoured (`fragment` puts the code in
/// the fragment, `query` is the code default) or refused with
/// `invalid_request` in the default mode (an unknown mode; `query` for a
/// token); the metadata lists exactly the two modes that work.
#[tokio::test]
async fn response_mode_is_honoured_or_refused() {
    let app = legacy(Backend::Memory).await;
    let meta = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(
        meta["response_modes_supported"],
        serde_json::json!(["query", "fragment"])
    );
    let (verifier, challenge) = pkce_pair();
    let q = format!("{}&response_mode=fragment", code_query("spa", &challenge));
    let redirect = app.authorize(&q, "allow").await;
    let url = url::Url::parse(&redirect).unwrap();
    assert_eq!(url.query(), None, "{redirect}");
    let p = params_of(&redirect, true);
    assert_eq!(
        (p["state"].as_str(), p["iss"].as_str()),
        (steps::STATE, ISSUER)
    );
    let resp = steps::redeem(
        &app.http,
        &app.addr,
        None,
        &[("client_id", "spa")],
        &p["code"],
        &verifier,
    )
    .await;
    steps::ok_json(resp).await;
    let (_, challenge) = pkce_pair();
    let q = format!("{}&response_mode=query", code_query("spa", &challenge));
    code_from(&app.authorize(&q, "allow").await);

    let refused = |q: String| {
        let app = &app;
        async move {
            let resp = app
                .http
                .get(app.url(&format!("/oauth/authorize?{q}")))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 303, "{q}");
            location(&resp)
        }
    };
    let (_, challenge) = pkce_pair();
    for mode in ["form_post", "jwt", "query.jwt"] {
        let to = refused(format!(
            "{}&response_mode={mode}",
            code_query("spa", &challenge)
        ))
        .await;
        let p = params_of(&to, false);
        assert_eq!(p["error"], "invalid_request", "{mode}");
        assert!(p["error_description"].contains("response_mode"), "{mode}");
        assert_eq!(p["iss"], ISSUER);
    }
    let q = format!(
        "response_type=token&client_id=legacy-app&redirect_uri={}&scope=profile&state=st-123&response_mode=query",
        urlencode(REDIRECT)
    );
    let to = refused(q).await;
    assert!(url::Url::parse(&to).unwrap().query().is_none(), "{to}");
    let p = params_of(&to, true);
    assert_eq!(p["error"], "invalid_request");
}
