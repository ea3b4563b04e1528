//! Users behind the OpenID Connect claims (issue 15 item 2): the `/account`
//! page edits the profile that UserInfo returns by scope (Core §5.4), a
//! changed email is unverified, `claims_supported` is exactly what can be
//! returned, and `sub` is never the username.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use keygate::config::Settings;
use keygate::flows::users::{self, ProfileChange};
use keygate::tokens::Alg;

use crate::helpers::{
    config_client, hidden_value, location, per_backend, pkce_pair, spawn_app_with, Backend,
    TestApp, SECRET, USER,
};
use crate::steps;

const RP: &str = "rp";

/// `openid` known and a relying party registered for `openid profile email`.
fn oidc(s: &mut Settings) {
    s.oauth.scopes.insert(0, "openid".into());
    s.clients.push(config_client(
        RP,
        "client_secret_basic",
        &["authorization_code"],
        "openid profile email",
    ));
}

fn payload(jwt: &str) -> serde_json::Value {
    let body = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64.decode(body).unwrap()).unwrap()
}

/// A code flow through `rp` with the already signed-in `browser`; returns
/// the token response.
async fn code_flow(app: &TestApp, browser: &reqwest::Client, scope: &str) -> serde_json::Value {
    let (verifier, challenge) = pkce_pair();
    let path = format!(
        "/oauth/authorize?{}&nonce=n-1",
        steps::code_query(RP, scope, &challenge)
    );
    let to = steps::consent(browser, &app.addr, &path, "allow").await;
    let code = steps::code_of(&to);
    steps::ok_json(
        steps::redeem(
            &app.http,
            &app.addr,
            Some((RP, SECRET)),
            &[],
            &code,
            &verifier,
        )
        .await,
    )
    .await
}

async fn userinfo(app: &TestApp, access_token: &str) -> serde_json::Value {
    let resp = app
        .http
        .get(app.url("/oauth/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn post_account(
    browser: &reqwest::Client,
    app: &TestApp,
    form: &[(&str, &str)],
) -> (u16, String) {
    let resp = browser
        .post(app.url("/account"))
        .form(form)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

per_backend!(account_page_edits_reach_userinfo);
/// A signed-up user edits name and email on `/account` (a CSRF-less POST
/// and a bad address are refused); a code flow with `openid profile email`
/// then shows the new values in UserInfo, `email_verified: false` although
/// the operator had verified the old address, and `sub` the random id. The
/// ID token's and UserInfo's claims together are exactly
/// `claims_supported`.
async fn account_page_edits_reach_userinfo(backend: Backend) {
    let app = spawn_app_with(backend, Alg::RS256, oidc).await;
    // Signed out: the way to the login page, coming back here.
    let resp = app.browser().get(app.url("/account")).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/login?return_to=%2Faccount");

    let browser = app.browser();
    let resp = steps::sign_up(&browser, &app.addr, "bob", "bob-password").await;
    assert_eq!(resp.status(), 303);
    let now = app.state.clock.now();
    users::update_profile_by_name(
        &app.state.repos,
        &app.state.config_users,
        "bob",
        &ProfileChange {
            email: Some("bob@example.com".into()),
            email_verified: Some(true),
            ..Default::default()
        },
        now,
    )
    .await
    .unwrap();

    let html = app.page(&browser, "/account").await;
    assert!(html.contains("value=\"bob@example.com\""), "{html}");
    assert!(html.contains("href=\"/account\""), "the nav links the page");
    let csrf = hidden_value(&html, "csrf_token");

    let (status, _) = post_account(&browser, &app, &[("name", "Mallory"), ("email", "")]).await;
    assert_eq!(status, 403, "no CSRF token: refused");
    let (status, html) = post_account(
        &browser,
        &app,
        &[
            ("csrf_token", &csrf),
            ("name", "Bob <Example>"),
            ("email", "not-an-address"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(html.contains("role=\"alert\""), "{html}");
    assert!(
        html.contains("value=\"not-an-address\""),
        "what was typed comes back"
    );
    assert!(html.contains("Bob &#60;Example&#62;") || html.contains("Bob &lt;Example&gt;"));
    let unchanged = app.state.repos.user_by_name("bob").await.unwrap().unwrap();
    assert_eq!(unchanged.name, None, "nothing half-written");

    let (status, html) = post_account(
        &browser,
        &app,
        &[
            ("csrf_token", &csrf),
            ("name", "Bob Example"),
            ("email", "bob@example.org"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Profile saved."));

    let t = code_flow(&app, &browser, "openid profile email").await;
    let at = t["access_token"].as_str().unwrap();
    let id_claims = payload(t["id_token"].as_str().unwrap());
    let info = userinfo(&app, at).await;
    let stored = app.state.repos.user_by_name("bob").await.unwrap().unwrap();
    assert_eq!(
        info,
        serde_json::json!({
            "sub": stored.id,
            "name": "Bob Example",
            "preferred_username": "bob",
            "updated_at": stored.updated_at,
            "email": "bob@example.org",
            "email_verified": false,
        })
    );
    assert_eq!(id_claims["sub"], info["sub"]);
    assert!(!stored.id.contains("bob"));

    // claims_supported lists exactly what the ID token and UserInfo return.
    let discovery = app.get_json("/.well-known/openid-configuration").await;
    let mut supported: Vec<&str> = discovery["claims_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    supported.sort_unstable();
    let mut returned: Vec<&str> = id_claims
        .as_object()
        .unwrap()
        .keys()
        .chain(info.as_object().unwrap().keys())
        .map(String::as_str)
        .collect();
    returned.sort_unstable();
    returned.dedup();
    assert_eq!(returned, supported);

    // Without `profile`/`email`: only `sub`.
    let t = code_flow(&app, &browser, "openid").await;
    let info = userinfo(&app, t["access_token"].as_str().unwrap()).await;
    assert_eq!(info, serde_json::json!({ "sub": stored.id }));
}

/// A `[[users]]` user without `id` gets a `sub` that is not and does not
/// contain the username; their `/account` page is read-only and a POST is
/// refused.
#[tokio::test]
async fn config_users_sub_is_not_the_username() {
    let app = spawn_app_with(Backend::Memory, Alg::RS256, |s| {
        oidc(s);
        s.users[0].id = None;
        s.users[0].name = Some("Alice Example".into());
    })
    .await;
    let browser = app.browser();
    let resp = steps::login(&browser, &app.addr, "/account").await;
    assert_eq!(resp.status(), 303);
    let html = app.page(&browser, "/account").await;
    assert!(html.contains("Alice Example"), "{html}");
    assert!(html.contains("configuration file"));
    assert!(
        !html.contains("action=\"/account\""),
        "no form for config users"
    );
    let csrf = hidden_value(&html, "csrf_token");
    let (status, _) = post_account(
        &browser,
        &app,
        &[("csrf_token", &csrf), ("name", "X"), ("email", "")],
    )
    .await;
    assert_eq!(status, 403);

    let t = code_flow(&app, &browser, "openid profile").await;
    let sub = payload(t["id_token"].as_str().unwrap())["sub"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(sub, keygate::startup::config_user_id(USER));
    assert!(!sub.to_lowercase().contains(USER), "{sub}");
    let info = userinfo(&app, t["access_token"].as_str().unwrap()).await;
    assert_eq!(
        info,
        serde_json::json!({"sub": sub, "name": "Alice Example", "preferred_username": USER})
    );
}
