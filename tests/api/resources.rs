//! RFC 8707 resource indicators: `resource` on authorize and at the token
//! endpoint sets `aud`; unknown resources and scopes a resource does not
//! accept are `invalid_target`; codes and refresh families bind their set,
//! which later requests may only narrow; `/api/me` refuses tokens for other
//! resources; a resource server sees its tokens at introspection; stored
//! resources take effect at once.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use keygate::config::{ConfigResource, Settings};
use keygate::oauth::resource::{Resource, ResourceId};
use keygate::oauth::types::ScopeSet;
use keygate::tokens::keys::Alg;
use serde_json::{json, Value};

use crate::helpers::{
    assert_oauth_error, config_client, location, params_of, per_backend, pkce_pair, spawn_app_with,
    store_calls, urlencode, Backend, TestApp, ISSUER, SECRET,
};
use crate::steps::{self, code_of, ok_json, redeem};

/// Registered as `https://api.example` (no trailing slash): the `aud` form.
const API: &str = "https://api.example";
const BILLING: &str = "https://billing.example/v1";
/// Registered only in the store, by the tests that need it.
const STORED: &str = "https://store.example/api";

fn resource(
    uri: &str,
    scopes: &[&str],
    name: Option<&str>,
    client: Option<&str>,
) -> ConfigResource {
    ConfigResource {
        uri: uri.into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        name: name.map(str::to_string),
        client_id: client.map(str::to_string),
    }
}

/// Two config resources, each with its resource server's confidential client.
fn with_resources(s: &mut Settings) {
    for id in ["rs-api", "rs-billing"] {
        s.clients.push(config_client(
            id,
            "client_secret_basic",
            &["client_credentials"],
            "api:read",
        ));
    }
    s.resources = vec![
        resource(
            API,
            &["api:read", "api:write", "profile"],
            Some("Example <API>"),
            Some("rs-api"),
        ),
        resource(BILLING, &["api:read"], None, Some("rs-billing")),
    ];
}

async fn spawn(backend: Backend) -> TestApp {
    spawn_app_with(backend, Alg::RS256, with_resources).await
}

/// The payload of a JWT (the signature is checked by other tests).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap()
}

fn aud_of(body: &Value) -> Value {
    claims(body["access_token"].as_str().unwrap())["aud"].clone()
}

async fn cc(app: &TestApp, basic: (&str, &str), form: &[(&str, &str)]) -> reqwest::Response {
    let mut f = vec![("grant_type", "client_credentials")];
    f.extend_from_slice(form);
    app.post_token(Some(basic), &f).await
}

const BASIC: (&str, &str) = ("basic-client", SECRET);

async fn client_credentials_aud_is_the_resource(backend: Backend) {
    let app = spawn(backend).await;
    // Without `resource`: the default audience, as before.
    let body = ok_json(cc(&app, BASIC, &[("scope", "api:read")]).await).await;
    assert_eq!(aud_of(&body), json!(ISSUER));
    // One resource, named with a trailing slash, upper-case host and the
    // default port: the same resource; `aud` is the registered form.
    for spelling in [API, "https://api.example/", "https://API.example:443/"] {
        let body = ok_json(
            cc(
                &app,
                BASIC,
                &[("scope", "api:write"), ("resource", spelling)],
            )
            .await,
        )
        .await;
        assert_eq!(aud_of(&body), json!(API), "{spelling}");
        assert_eq!(body["scope"], "api:write");
    }
    // Several: an array, in request order.
    let body = ok_json(
        cc(
            &app,
            BASIC,
            &[
                ("scope", "api:read"),
                ("resource", BILLING),
                ("resource", API),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(aud_of(&body), json!([BILLING, API]));
    // A scope accepted by one of several resources is enough.
    let body = ok_json(
        cc(
            &app,
            BASIC,
            &[
                ("scope", "api:read api:write"),
                ("resource", BILLING),
                ("resource", API),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(body["scope"], "api:read api:write");
    // No scope asked for: the client's default scope, cut down to what the
    // resource accepts.
    let body = ok_json(cc(&app, BASIC, &[("resource", BILLING)]).await).await;
    assert_eq!(body["scope"], "api:read");
    assert_eq!(aud_of(&body), json!(BILLING));
    // invalid_target: unknown, not accepting the scope, not an absolute
    // URI, a fragment, another path spelling.
    for form in [
        vec![("resource", "https://unknown.example/")],
        vec![("scope", "api:write"), ("resource", BILLING)],
        vec![("scope", "api:read"), ("resource", "/relative")],
        vec![
            ("scope", "api:read"),
            ("resource", "https://api.example/#x"),
        ],
        vec![
            ("scope", "api:read"),
            ("resource", "https://billing.example/v1/"),
        ],
        vec![("scope", "api:read"), ("resource", "")],
    ] {
        assert_oauth_error(cc(&app, BASIC, &form).await, 400, "invalid_target").await;
    }
    // The client's own registration still bounds the scope first.
    let resp = app
        .post_token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "post-client"),
                ("client_secret", SECRET),
                ("scope", "api:write"),
                ("resource", API),
            ],
        )
        .await;
    assert_oauth_error(resp, 400, "invalid_scope").await;
    // A bad resource reveals nothing before the client is authenticated.
    assert_oauth_error(
        cc(
            &app,
            ("basic-client", "wrong-secret-000000"),
            &[("resource", "x")],
        )
        .await,
        401,
        "invalid_client",
    )
    .await;
}

async fn client_credentials_with_resource_costs_no_extra_round_trip(backend: Backend) {
    let app = spawn(backend).await;
    app.state
        .repos
        .put_resource(&Resource {
            uri: STORED.into(),
            scopes: ScopeSet::parse("api:read").unwrap(),
            name: None,
            client_id: None,
        })
        .await
        .unwrap();
    let (id, secret) = app.stored_client.clone();
    let stored = (id.as_str(), secret.as_str());
    let calls = |f: Vec<(&'static str, &'static str)>, basic: (&'static str, &'static str)| {
        let app = &app;
        async move {
            let before = store_calls(&app.state);
            ok_json(cc(app, basic, &f).await).await;
            store_calls(&app.state) - before
        }
    };
    // A config client and config resources: no round trip at all.
    assert_eq!(calls(vec![("resource", API)], BASIC).await, 0);
    // A stored client: one round trip, with or without a stored resource
    // (the resource is read in the client's MGET).
    let before = store_calls(&app.state);
    ok_json(cc(&app, stored, &[]).await).await;
    assert_eq!(store_calls(&app.state) - before, 1, "plain");
    let before = store_calls(&app.state);
    let body = ok_json(cc(&app, stored, &[("resource", STORED), ("resource", API)]).await).await;
    assert_eq!(store_calls(&app.state) - before, 1, "with resources");
    assert_eq!(aud_of(&body), json!([STORED, API]));
    // A config client naming a stored resource: one round trip.
    assert_eq!(calls(vec![("resource", STORED)], BASIC).await, 1);
}

fn query(scope: &str, challenge: &str, resources: &[&str]) -> String {
    let mut q = steps::code_query("web-app", scope, challenge);
    for r in resources {
        q.push_str(&format!("&resource={}", urlencode(r)));
    }
    q
}

const WEB: (&str, &str) = ("web-app", SECRET);

/// A code for `web-app` bound to `resources`; returns (code, verifier).
async fn code_for(app: &TestApp, scope: &str, resources: &[&str]) -> (String, String) {
    let (verifier, challenge) = pkce_pair();
    let redirect = app
        .authorize(&query(scope, &challenge, resources), "allow")
        .await;
    (code_of(&redirect), verifier)
}

async fn refresh_with(app: &TestApp, token: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut f = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    f.extend_from_slice(extra);
    app.post_token(Some(WEB), &f).await
}

async fn code_binds_and_token_requests_narrow(backend: Backend) {
    let app = spawn(backend).await;
    let base = app.addr.clone();
    // The code binds the set chosen at authorization.
    let (code, v) = code_for(&app, "api:read profile", &[API, BILLING]).await;
    let body = ok_json(redeem(&app.http, &base, Some(WEB), &[], &code, &v).await).await;
    assert_eq!(aud_of(&body), json!([API, BILLING]));
    let rt = body["refresh_token"].as_str().unwrap().to_string();
    // Refresh: the family's set; a subset narrows this access token only.
    let body =
        ok_json(refresh_with(&app, &rt, &[("resource", "https://api.example/")]).await).await;
    assert_eq!(aud_of(&body), json!(API));
    let rt = body["refresh_token"].as_str().unwrap().to_string();
    let body = ok_json(refresh_with(&app, &rt, &[]).await).await;
    assert_eq!(
        aud_of(&body),
        json!([API, BILLING]),
        "the successor keeps the whole set"
    );
    let rt = body["refresh_token"].as_str().unwrap().to_string();
    // Widening is invalid_target, and nothing is spent: the token still works.
    for extra in [
        vec![("resource", "https://unknown.example")],
        vec![("resource", BILLING), ("scope", "profile")],
    ] {
        assert_oauth_error(refresh_with(&app, &rt, &extra).await, 400, "invalid_target").await;
    }
    ok_json(refresh_with(&app, &rt, &[("resource", BILLING)]).await).await;

    // At the token endpoint a subset narrows; anything outside the code's
    // set is invalid_target and leaves the code redeemable.
    let (code, v) = code_for(&app, "api:read", &[API, BILLING]).await;
    for extra in [
        vec![("resource", "https://unknown.example")],
        vec![("resource", "https://billing.example/v1/")],
    ] {
        assert_oauth_error(
            redeem(&app.http, &base, Some(WEB), &extra, &code, &v).await,
            400,
            "invalid_target",
        )
        .await;
    }
    let body = ok_json(
        redeem(
            &app.http,
            &base,
            Some(WEB),
            &[("resource", BILLING)],
            &code,
            &v,
        )
        .await,
    )
    .await;
    assert_eq!(aud_of(&body), json!(BILLING));
    // The refresh family keeps the code's set.
    let rt = body["refresh_token"].as_str().unwrap();
    let body = ok_json(refresh_with(&app, rt, &[]).await).await;
    assert_eq!(aud_of(&body), json!([API, BILLING]));

    // Narrowing cuts the code's scope down to what the narrowed set accepts.
    let (code, v) = code_for(&app, "api:read profile", &[API, BILLING]).await;
    let body = ok_json(
        redeem(
            &app.http,
            &base,
            Some(WEB),
            &[("resource", BILLING)],
            &code,
            &v,
        )
        .await,
    )
    .await;
    assert_eq!(body["scope"], "api:read");
    let rt = body["refresh_token"].as_str().unwrap();
    let body = ok_json(refresh_with(&app, rt, &[]).await).await;
    assert_eq!(
        body["scope"], "api:read profile",
        "the family keeps the code's scope"
    );

    // A code without resources has nothing to narrow.
    let (code, v) = code_for(&app, "profile", &[]).await;
    assert_oauth_error(
        redeem(&app.http, &base, Some(WEB), &[("resource", API)], &code, &v).await,
        400,
        "invalid_target",
    )
    .await;
    let body = ok_json(redeem(&app.http, &base, Some(WEB), &[], &code, &v).await).await;
    assert_eq!(aud_of(&body), json!(ISSUER));
    // ... and neither has its refresh family.
    let rt = body["refresh_token"].as_str().unwrap();
    assert_oauth_error(
        refresh_with(&app, rt, &[("resource", API)]).await,
        400,
        "invalid_target",
    )
    .await;
}

/// A grace retry (same old token, within the window) must ask for the same
/// resources as the first answer; another set is reuse.
async fn grace_retry_must_name_the_same_resources(backend: Backend) {
    let app = spawn(backend).await;
    let (code, v) = code_for(&app, "api:read", &[API, BILLING]).await;
    let body = ok_json(redeem(&app.http, &app.addr, Some(WEB), &[], &code, &v).await).await;
    let rt = body["refresh_token"].as_str().unwrap().to_string();
    let first = ok_json(refresh_with(&app, &rt, &[("resource", API)]).await).await;
    let again =
        ok_json(refresh_with(&app, &rt, &[("resource", "https://api.example/")]).await).await;
    assert_eq!(again["refresh_token"], first["refresh_token"]);
    assert_eq!(aud_of(&again), json!(API));
    assert_oauth_error(refresh_with(&app, &rt, &[]).await, 400, "invalid_grant").await;
    let successor = first["refresh_token"].as_str().unwrap();
    assert_oauth_error(
        refresh_with(&app, successor, &[]).await,
        400,
        "invalid_grant",
    )
    .await;
}

async fn authorize_refuses_with_invalid_target(backend: Backend) {
    let app = spawn(backend).await;
    let (_, challenge) = pkce_pair();
    let http = steps::browser();
    for (scope, resources) in [
        ("api:read", vec!["https://unknown.example/"]),
        ("profile", vec![BILLING]),
        ("api:read", vec!["not-absolute"]),
        ("api:read", vec![API, "https://api.example/#f"]),
    ] {
        let resp = http
            .get(app.url(&format!(
                "/oauth/authorize?{}",
                query(scope, &challenge, &resources)
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303, "{resources:?}");
        let to = location(&resp);
        assert!(to.starts_with(crate::helpers::REDIRECT), "{to}");
        let p = params_of(&to, false);
        assert_eq!(p["error"], "invalid_target", "{resources:?}");
        assert_eq!(p["state"], steps::STATE);
        assert_eq!(p["iss"], ISSUER);
    }
    // An unknown client is still an error page, never a redirect.
    let q =
        query("api:read", &challenge, &["https://unknown.example/"]).replace("web-app", "nobody");
    let resp = http
        .get(app.url(&format!("/oauth/authorize?{q}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

async fn consent_page_names_the_resources(backend: Backend) {
    let app = spawn(backend).await;
    let (_, challenge) = pkce_pair();
    let browser = app.browser();
    let path = format!(
        "/oauth/authorize?{}",
        query("api:read", &challenge, &[API, BILLING])
    );
    assert_eq!(app.login(&browser, &path).await.status(), 303);
    let html = app.page(&browser, &path).await;
    assert!(
        html.contains("<strong class=\"resource-name\">Example &#60;API&#62;</strong>"),
        "{html}"
    );
    assert!(html.contains("<code class=\"resource-uri\">https://api.example</code>"));
    assert!(html.contains("<code class=\"resource-uri\">https://billing.example/v1</code>"));
    assert!(!html.contains("Example <API>"));
    // Without `resource` there is no list.
    let plain = format!("/oauth/authorize?{}", query("api:read", &challenge, &[]));
    assert!(!app
        .page(&browser, &plain)
        .await
        .contains("class=\"resources\""));
}

async fn api_me_refuses_a_token_for_another_resource(backend: Backend) {
    let app = spawn(backend).await;
    let (code, v) = code_for(&app, "profile", &[API]).await;
    let body = ok_json(redeem(&app.http, &app.addr, Some(WEB), &[], &code, &v).await).await;
    assert_eq!(aud_of(&body), json!(API));
    let resp = steps::me(&app.http, &app.addr, body["access_token"].as_str().unwrap()).await;
    assert_eq!(resp.status(), 401, "a token for another resource");
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    // The same flow without `resource`: keygate's own audience, accepted.
    let (code, v) = code_for(&app, "profile", &[]).await;
    let body = ok_json(redeem(&app.http, &app.addr, Some(WEB), &[], &code, &v).await).await;
    let resp = steps::me(&app.http, &app.addr, body["access_token"].as_str().unwrap()).await;
    assert_eq!(resp.status(), 200);
}

async fn introspect(app: &TestApp, who: &str, token: &str) -> Value {
    let resp = app
        .post_token_to(
            "/oauth/introspect",
            Some((who, SECRET)),
            &[("token", token)],
        )
        .await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn resource_server_introspects_its_tokens(backend: Backend) {
    let app = spawn(backend).await;
    let token = |body: &Value| body["access_token"].as_str().unwrap().to_string();
    let for_api =
        token(&ok_json(cc(&app, BASIC, &[("scope", "api:read"), ("resource", API)]).await).await);
    // The token's own client, as before.
    let own = introspect(&app, "basic-client", &for_api).await;
    assert_eq!(own["active"], true);
    assert_eq!(own["aud"], json!(API));
    // The resource server of its audience.
    let rs = introspect(&app, "rs-api", &for_api).await;
    assert_eq!(rs["active"], true, "{rs}");
    assert_eq!(rs["client_id"], "basic-client");
    assert_eq!(rs["aud"], json!(API));
    // Another resource server sees nothing.
    assert_eq!(
        introspect(&app, "rs-billing", &for_api).await,
        json!({"active": false})
    );
    // A token for both: both resource servers see it, `aud` an array.
    let both = token(
        &ok_json(
            cc(
                &app,
                BASIC,
                &[
                    ("scope", "api:read"),
                    ("resource", API),
                    ("resource", BILLING),
                ],
            )
            .await,
        )
        .await,
    );
    for who in ["rs-api", "rs-billing"] {
        let v = introspect(&app, who, &both).await;
        assert_eq!(v["active"], true, "{who}");
        assert_eq!(v["aud"], json!([API, BILLING]));
    }
    // A default-audience token is no resource server's.
    let plain = token(&ok_json(cc(&app, BASIC, &[("scope", "api:read")]).await).await);
    assert_eq!(
        introspect(&app, "rs-api", &plain).await,
        json!({"active": false})
    );
    assert_eq!(
        introspect(&app, "basic-client", &plain).await["aud"],
        json!(ISSUER)
    );
    // The client can revoke its resource token; then no one sees it.
    let resp = app
        .post_token_to("/oauth/revoke", Some(BASIC), &[("token", &for_api)])
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        introspect(&app, "rs-api", &for_api).await,
        json!({"active": false})
    );
}

async fn stored_resources_take_effect_at_once(backend: Backend) {
    let app = spawn(backend).await;
    let form = [("scope", "api:read"), ("resource", STORED)];
    assert_oauth_error(cc(&app, BASIC, &form).await, 400, "invalid_target").await;
    let r = Resource {
        uri: STORED.into(),
        scopes: ScopeSet::parse("api:read").unwrap(),
        name: Some("Stored".into()),
        client_id: None,
    };
    app.state.repos.put_resource(&r).await.unwrap();
    let body = ok_json(cc(&app, BASIC, &form).await).await;
    assert_eq!(aud_of(&body), json!(STORED));
    // A code bound before the removal keeps its audience; new grants stop.
    let (code, v) = code_for(&app, "api:read", &[STORED]).await;
    let id = ResourceId::parse(STORED).unwrap();
    assert!(app.state.repos.delete_resource(&id).await.unwrap());
    assert_oauth_error(cc(&app, BASIC, &form).await, 400, "invalid_target").await;
    let body = ok_json(redeem(&app.http, &app.addr, Some(WEB), &[], &code, &v).await).await;
    assert_eq!(aud_of(&body), json!(STORED));
    let rt = body["refresh_token"].as_str().unwrap();
    let body = ok_json(refresh_with(&app, rt, &[]).await).await;
    assert_eq!(aud_of(&body), json!(STORED), "the family keeps it too");
}

async fn stored_resources_round_trip_and_config_shadows_them(backend: Backend) {
    let app = spawn(backend).await;
    let repos = &app.state.repos;
    let put = |uri: &str, scopes: &str| Resource {
        uri: uri.into(),
        scopes: ScopeSet::parse(scopes).unwrap(),
        name: None,
        client_id: Some("rs-api".into()),
    };
    repos
        .put_resource(&put("https://b.example", "api:read"))
        .await
        .unwrap();
    repos
        .put_resource(&put("https://a.example/x?y=1", "api:write"))
        .await
        .unwrap();
    // Replaced under any spelling of its URI.
    repos
        .put_resource(&put("https://B.example:443/", "api:read api:write"))
        .await
        .unwrap();
    let list = repos.resources().await.unwrap();
    let uris: Vec<&str> = list.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(uris, ["https://B.example:443/", "https://a.example/x?y=1"]);
    let id = ResourceId::parse("https://b.example/").unwrap();
    let (client, found) = repos
        .client_and_resources(
            Some(&app.stored_client.0),
            &[&id, &ResourceId::parse("https://c.example").unwrap()],
        )
        .await
        .unwrap();
    assert!(client.is_some());
    assert_eq!(
        found[0].as_ref().unwrap().scopes.to_string(),
        "api:read api:write"
    );
    assert!(found[1].is_none());
    assert!(repos.delete_resource(&id).await.unwrap());
    assert!(!repos.delete_resource(&id).await.unwrap());
    assert_eq!(repos.resources().await.unwrap().len(), 1);
    // A config resource shadows a stored one with the same URI.
    repos
        .put_resource(&put("https://api.example/", "api:write"))
        .await
        .unwrap();
    let (_, found) = keygate::flows::resources::client_and_resources(
        &app.state,
        "basic-client",
        &[ResourceId::parse(API).unwrap()],
    )
    .await
    .unwrap();
    assert!(
        found[0].as_ref().unwrap().scopes.contains("profile"),
        "the config entry"
    );
}

/// The legacy profile's password and implicit grants honour `resource` too.
async fn legacy_grants_with_resource(backend: Backend) {
    let app = spawn_app_with(backend, Alg::RS256, |s| {
        with_resources(s);
        s.oauth.profile = "legacy".into();
    })
    .await;
    let form = |resource: &'static str| {
        vec![
            ("client_id", "legacy-app"),
            ("client_secret", SECRET),
            ("grant_type", "password"),
            ("username", crate::helpers::USER),
            ("password", crate::helpers::PASSWORD),
            ("scope", "profile"),
            ("resource", resource),
        ]
    };
    let body = ok_json(app.post_token(None, &form(API)).await).await;
    assert_eq!(aud_of(&body), json!(API));
    let rt = body["refresh_token"].as_str().unwrap();
    let resp = app
        .post_token(
            None,
            &[
                ("client_id", "legacy-app"),
                ("client_secret", SECRET),
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
            ],
        )
        .await;
    assert_eq!(aud_of(&ok_json(resp).await), json!(API));
    assert_oauth_error(
        app.post_token(None, &form(BILLING)).await,
        400,
        "invalid_target",
    )
    .await;
    // Implicit: the token in the fragment carries the resource as `aud`.
    let q = format!(
        "response_type=token&client_id=legacy-app&redirect_uri={}&scope=profile&state={}&resource={}",
        urlencode(crate::helpers::REDIRECT),
        steps::STATE,
        urlencode(API)
    );
    let redirect = app.authorize(&q, "allow").await;
    let token = params_of(&redirect, true).remove("access_token").unwrap();
    assert_eq!(claims(&token)["aud"], json!(API));
}

per_backend!(
    client_credentials_aud_is_the_resource,
    client_credentials_with_resource_costs_no_extra_round_trip,
    code_binds_and_token_requests_narrow,
    grace_retry_must_name_the_same_resources,
    authorize_refuses_with_invalid_target,
    consent_page_names_the_resources,
    api_me_refuses_a_token_for_another_resource,
    resource_server_introspects_its_tokens,
    stored_resources_take_effect_at_once,
    stored_resources_round_trip_and_config_shadows_them,
    legacy_grants_with_resource,
);

/// Runs `keygate` against `redis`; returns (exit code, stdout, stderr).
fn keygate(
    dir: &std::path::Path,
    redis: &crate::redis_server::RedisServer,
    args: &[&str],
) -> (Option<i32>, String, String) {
    let out = crate::process::command(dir)
        .env("KEYGATE_STORE_URL", redis.url())
        .env("KEYGATE_OAUTH_SCOPES", "profile,email,api:read,api:write")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `keygate resource add|list|remove` with `--json`, against the Redis a
/// running server uses: every change takes effect there at once.
#[tokio::test]
async fn resource_cli_add_list_remove_on_a_running_server() {
    let app = spawn(Backend::Redis).await;
    let redis = app.redis.as_ref().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let form = [("scope", "api:read"), ("resource", "https://cli.example/")];
    assert_oauth_error(cc(&app, BASIC, &form).await, 400, "invalid_target").await;

    let (code, out, err) = keygate(
        d,
        redis,
        &[
            "resource",
            "add",
            "https://cli.example",
            "--scope",
            "api:read api:write",
            "--name",
            "CLI API",
            "--json",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let added: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        added,
        json!({"uri": "https://cli.example", "scopes": ["api:read", "api:write"], "name": "CLI API"})
    );
    // At once, on the running server.
    let body = ok_json(cc(&app, BASIC, &form).await).await;
    assert_eq!(aud_of(&body), json!("https://cli.example"));

    let (code, out, err) = keygate(
        d,
        redis,
        &[
            "resource",
            "add",
            "https://two.example/mcp",
            "--scope",
            "api:read",
            "--client-id",
            "tEsT",
            "--json",
        ],
    );
    assert_eq!(code, Some(2), "an unknown client: {out}");
    assert!(err.contains("--client-id"), "{err}");
    let (id, _) = app.stored_client.clone();
    let (code, out, err) = keygate(
        d,
        redis,
        &[
            "resource",
            "add",
            "https://two.example/mcp",
            "--scope",
            "api:read",
            "--client-id",
            &id,
            "--json",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let two: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(two["client_id"], id.as_str());
    assert_eq!(two["name"], Value::Null);

    let (code, out, err) = keygate(d, redis, &["resource", "list", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list, json!([added, two]));

    // Refused: http on a public host, an unknown scope, no scope.
    for args in [
        vec![
            "resource",
            "add",
            "http://api.example/",
            "--scope",
            "api:read",
        ],
        vec![
            "resource",
            "add",
            "https://api.example/",
            "--scope",
            "admin",
        ],
        vec!["resource", "add", "https://api.example/", "--scope", ""],
    ] {
        let (code, _, err) = keygate(d, redis, &args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
    }

    let (code, out, err) = keygate(
        d,
        redis,
        &["resource", "remove", "https://cli.example/", "--json"],
    );
    assert_eq!(code, Some(0), "{err}");
    let removed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(removed["removed"], true);
    assert!(removed["note"]
        .as_str()
        .unwrap()
        .contains("keep their audience"));
    assert_oauth_error(cc(&app, BASIC, &form).await, 400, "invalid_target").await;
    let (code, _, err) = keygate(d, redis, &["resource", "remove", "https://cli.example/"]);
    assert_eq!(code, Some(2), "already gone");
    assert!(err.contains("no such resource"), "{err}");
    let (_, out, _) = keygate(d, redis, &["resource", "list"]);
    let pad = " ".repeat(id.len() - "INTROSPECTOR".len());
    assert_eq!(
        out,
        format!("URI                      SCOPES    INTROSPECTOR{pad}  NAME\nhttps://two.example/mcp  api:read  {id}  -\n")
    );
}
