//! The authorization endpoint's OpenID Connect request parameters and
//! remembered consent (issue 15 items 1 and 3): `prompt=none` never shows
//! a page, `prompt=login`/`max_age` send the user to sign in again and come
//! back, `login_hint` prefills the login form, a request by `POST` works
//! like one by `GET`, a user is asked again only for something new, and
//! revoking an app on `/account/apps` revokes what it holds.

use std::sync::Arc;

use keygate::clock::TestClock;
use keygate::config::Settings;
use keygate::tokens::Alg;

use crate::helpers::{
    config_client, hidden_value, location, params_of, per_backend, pkce_pair, spawn_app_clocked,
    spawn_app_with, Backend, TestApp, ISSUER, REDIRECT, SECRET,
};
use crate::steps::{self, STATE};

const RP: &str = "rp";

/// A relying party registered for `openid profile email` with refresh tokens.
fn rp(s: &mut Settings) {
    s.oauth.scopes.insert(0, "openid".into());
    s.clients.push(config_client(
        RP,
        "client_secret_basic",
        &["authorization_code", "refresh_token"],
        "openid profile email",
    ));
}

/// The authorization request path for `rp` with `scope` and `extra`
/// parameters, and its PKCE verifier.
fn request(scope: &str, extra: &str) -> (String, String) {
    let (verifier, challenge) = pkce_pair();
    let path = format!(
        "/oauth/authorize?{}{extra}",
        steps::code_query(RP, scope, &challenge)
    );
    (path, verifier)
}

/// GETs `path` with `browser`; returns the status and `Location` (if any).
async fn get(app: &TestApp, browser: &reqwest::Client, path: &str) -> (u16, String) {
    let resp = browser.get(app.url(path)).send().await.unwrap();
    let status = resp.status().as_u16();
    let to = resp
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, to)
}

/// Asserts that `to` is an error redirect to the client with `error`,
/// `state` and `iss` (RFC 9207).
fn assert_error_redirect(to: &str, error: &str) {
    assert!(to.starts_with(REDIRECT), "to the client: {to}");
    let p = params_of(to, false);
    assert_eq!(p.get("error").map(String::as_str), Some(error), "{to}");
    assert_eq!(p.get("state").map(String::as_str), Some(STATE), "{to}");
    assert_eq!(p.get("iss").map(String::as_str), Some(ISSUER), "{to}");
    assert!(!p.contains_key("code"), "{to}");
}

/// Signs `browser` in for `path` (the login form, back to `path`).
async fn sign_in(app: &TestApp, browser: &reqwest::Client, path: &str) {
    let resp = app.login(browser, path).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), path);
}

/// Redeems `code` for `rp`; returns the token response.
async fn redeem(app: &TestApp, code: &str, verifier: &str) -> serde_json::Value {
    steps::ok_json(
        steps::redeem(
            &app.http,
            &app.addr,
            Some((RP, SECRET)),
            &[],
            code,
            verifier,
        )
        .await,
    )
    .await
}

fn id_claims(id_token: &str) -> serde_json::Value {
    use base64::Engine;
    let body = id_token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

per_backend!(prompt_none_answers_without_a_page);
/// OpenID Connect Core §3.1.2.1: with `prompt=none` nothing is shown:
/// `login_required` without a session, `consent_required` before the
/// user allowed the client, and the code at once after; `none` with
/// another value and unknown values are `invalid_request`.
async fn prompt_none_answers_without_a_page(backend: Backend) {
    let app = spawn_app_with(backend, Alg::RS256, rp).await;
    let browser = app.browser();
    let (path, _) = request("openid profile", "&prompt=none");
    let (status, to) = get(&app, &browser, &path).await;
    assert_eq!(status, 303, "{backend:?}");
    assert_error_redirect(&to, "login_required");

    sign_in(&app, &browser, &path).await;
    let (status, to) = get(&app, &browser, &path).await;
    assert_eq!(status, 303);
    assert_error_redirect(&to, "consent_required");

    let (plain, _) = request("openid profile", "");
    steps::consent(&browser, &app.addr, &plain, "allow").await;
    let (path, verifier) = request("openid profile", "&prompt=none");
    let (status, to) = get(&app, &browser, &path).await;
    assert_eq!(status, 303);
    assert!(to.starts_with(REDIRECT), "{to}");
    let tokens = redeem(&app, &steps::code_of(&to), &verifier).await;
    assert!(tokens["id_token"].is_string(), "{tokens}");

    for bad in [
        "&prompt=none%20login",
        "&prompt=sometimes",
        "&max_age=-1",
        "&max_age=soon",
    ] {
        let (path, _) = request("openid", bad);
        let (status, to) = get(&app, &browser, &path).await;
        assert_eq!(status, 303, "{bad}");
        assert_error_redirect(&to, "invalid_request");
    }
}

per_backend!(consent_is_remembered_for_the_same_or_fewer_scopes);
/// Issue 15 item 3: once the user allowed `rp` some scopes, a request for
/// the same or fewer answers with a code at once; a new scope, or
/// `prompt=consent`, shows the consent page again.
async fn consent_is_remembered_for_the_same_or_fewer_scopes(backend: Backend) {
    let app = spawn_app_with(backend, Alg::RS256, rp).await;
    let browser = app.browser();
    let (path, _) = request("openid profile", "");
    sign_in(&app, &browser, &path).await;
    let (status, _) = get(&app, &browser, &path).await;
    assert_eq!(status, 200, "{backend:?}: consent page the first time");
    steps::consent(&browser, &app.addr, &path, "allow").await;

    for scope in ["openid profile", "openid", "profile"] {
        let (path, verifier) = request(scope, "");
        let (status, to) = get(&app, &browser, &path).await;
        assert_eq!(status, 303, "{scope}: remembered");
        let tokens = redeem(&app, &steps::code_of(&to), &verifier).await;
        assert_eq!(tokens["scope"], scope);
    }
    // The same user in another browser: consent belongs to the user.
    let other = app.browser();
    let (path, _) = request("openid", "");
    sign_in(&app, &other, &path).await;
    assert_eq!(get(&app, &other, &path).await.0, 303);

    for (scope, extra) in [("openid email", ""), ("openid", "&prompt=consent")] {
        let (path, _) = request(scope, extra);
        let (status, _) = get(&app, &browser, &path).await;
        assert_eq!(status, 200, "{scope}{extra}: asks again");
    }
    // Allowing the wider scope remembers it too.
    let (path, _) = request("openid email", "");
    steps::consent(&browser, &app.addr, &path, "allow").await;
    let (path, _) = request("openid profile email", "");
    assert_eq!(get(&app, &browser, &path).await.0, 303);
}

/// `prompt=login` and `max_age` send a signed-in user to the login form
/// (with `login_hint` prefilled), which comes back to the request without
/// what the sign-in satisfied; the ID token's `auth_time` is the new
/// sign-in's. A sign-in recent enough for `max_age` is not asked again.
#[tokio::test]
async fn prompt_login_and_max_age_ask_for_a_fresh_sign_in() {
    let clock = TestClock::new(1_800_000_000);
    let app = spawn_app_clocked(Backend::Memory, Alg::RS256, rp, Arc::new(clock.clone())).await;
    let browser = app.browser();
    let (path, _) = request("openid", "");
    sign_in(&app, &browser, &path).await;
    steps::consent(&browser, &app.addr, &path, "allow").await;
    let first = 1_800_000_000;
    clock.advance(100);

    let (path, verifier) = request("openid", "&max_age=300");
    let (status, to) = get(&app, &browser, &path).await;
    assert_eq!(status, 303);
    let tokens = redeem(&app, &steps::code_of(&to), &verifier).await;
    assert_eq!(
        id_claims(tokens["id_token"].as_str().unwrap())["auth_time"],
        first
    );

    for extra in ["&max_age=60", "&prompt=login", "&prompt=select_account"] {
        let (path, verifier) = request("openid", &format!("{extra}&login_hint=alice"));
        let (status, to) = get(&app, &browser, &path).await;
        assert_eq!(status, 303, "{extra}");
        assert!(to.starts_with("/login?"), "{extra}: {to}");
        let login = params_of(&format!("http://x{to}"), false);
        let back = &login["return_to"];
        assert_eq!(login["login_hint"], "alice");
        assert!(
            !back.contains("max_age") && !back.contains("prompt"),
            "{extra}: the sign-in satisfies it: {back}"
        );
        let html = app.page(&browser, &to).await;
        assert!(
            html.contains("name=\"username\"") && html.contains("value=\"alice\""),
            "{extra}: login_hint prefills the username"
        );
        clock.advance(5);
        let now = clock_now(&clock);
        sign_in(&app, &browser, back).await;
        let (status, to) = get(&app, &browser, back).await;
        assert_eq!(status, 303, "{extra}: remembered consent");
        let code_path = to.clone();
        let tokens = redeem(&app, &steps::code_of(&code_path), &verifier).await;
        assert_eq!(
            id_claims(tokens["id_token"].as_str().unwrap())["auth_time"],
            now,
            "{extra}: auth_time of the new sign-in"
        );
        clock.advance(100);
    }
    // prompt=none with a sign-in too old for max_age: login_required.
    let (path, _) = request("openid", "&prompt=none&max_age=10");
    let (status, to) = get(&app, &browser, &path).await;
    assert_eq!(status, 303);
    assert_error_redirect(&to, "login_required");
}

fn clock_now(clock: &TestClock) -> i64 {
    use keygate::clock::Clock;
    clock.now()
}

/// OpenID Connect Core §3.1.2.1: the request may come as a form `POST`;
/// it is answered with a `303` to the same request by `GET` (whose
/// `SameSite=Lax` session cookie the browser sends), never a CSRF error.
#[tokio::test]
async fn an_authorization_request_by_post_works_like_get() {
    let app = spawn_app_with(Backend::Memory, Alg::RS256, rp).await;
    let browser = app.browser();
    let (path, verifier) = request("openid", "&nonce=n-1");
    let query = path.split_once('?').unwrap().1;
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let resp = browser
        .post(app.url("/oauth/authorize"))
        .form(&pairs)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let to = location(&resp);
    assert!(to.starts_with("/oauth/authorize?"), "{to}");
    let again: Vec<(String, String)> =
        form_urlencoded::parse(to.split_once('?').unwrap().1.as_bytes())
            .into_owned()
            .collect();
    assert_eq!(again, pairs, "the same parameters, in the query");
    sign_in(&app, &browser, &to).await;
    let redirect = steps::consent(&browser, &app.addr, &to, "allow").await;
    let tokens = redeem(&app, &steps::code_of(&redirect), &verifier).await;
    assert_eq!(
        id_claims(tokens["id_token"].as_str().unwrap())["nonce"],
        "n-1"
    );

    // A consent decision without a valid csrf_token is still refused.
    let resp = browser
        .post(app.url(&to))
        .form(&[("decision", "allow")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

per_backend!(revoking_an_app_revokes_what_it_holds);
/// Issue 15 item 3: `/account/apps` lists the apps the user allowed;
/// revoking one makes its refresh tokens and unredeemed codes for the user
/// fail, its access tokens inactive, and the next request ask again. A
/// revoke form without `csrf_token` changes nothing.
async fn revoking_an_app_revokes_what_it_holds(backend: Backend) {
    // A minute in the past, so tokens verified on the real clock are valid.
    let clock = TestClock::new(keygate::clock::Clock::now(&keygate::clock::SystemClock) - 60);
    let app = spawn_app_clocked(backend, Alg::RS256, rp, Arc::new(clock.clone())).await;
    let browser = app.browser();
    let (path, verifier) = request("openid profile", "");
    sign_in(&app, &browser, &path).await;
    let to = steps::consent(&browser, &app.addr, &path, "allow").await;
    let tokens = redeem(&app, &steps::code_of(&to), &verifier).await;
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    // A code issued under the remembered consent, not yet redeemed.
    let (path2, verifier2) = request("openid", "");
    let (status, pending) = get(&app, &browser, &path2).await;
    assert_eq!(status, 303);

    let html = app.page(&browser, "/account/apps").await;
    assert!(html.contains("revoke-rp"), "{backend:?}: listed");
    let csrf = hidden_value(&html, "csrf_token");
    let resp = browser
        .post(app.url("/account/apps"))
        .form(&[("client_id", RP)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "no csrf_token");
    let still = steps::refresh(&app.http, &app.addr, (RP, SECRET), &refresh).await;
    let still = steps::ok_json(still).await;
    let refresh = still["refresh_token"].as_str().unwrap().to_string();

    let resp = browser
        .post(app.url("/account/apps"))
        .form(&[("csrf_token", csrf.as_str()), ("client_id", RP)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/account/apps?revoked=1");
    let html = app.page(&browser, "/account/apps?revoked=1").await;
    assert!(!html.contains("revoke-rp") && html.contains("Access revoked."));

    let resp = steps::refresh(&app.http, &app.addr, (RP, SECRET), &refresh).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    let resp = steps::redeem(
        &app.http,
        &app.addr,
        Some((RP, SECRET)),
        &[],
        &steps::code_of(&pending),
        &verifier2,
    )
    .await;
    assert_eq!(resp.status(), 400, "{backend:?}: the pending code is dead");
    for token in [&access, still["access_token"].as_str().unwrap()] {
        let resp = app
            .post_token_to("/oauth/introspect", Some((RP, SECRET)), &[("token", token)])
            .await;
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["active"], false, "{backend:?}: access token revoked");
        assert_eq!(steps::me(&app.http, &app.addr, token).await.status(), 401);
    }
    let (status, _) = get(&app, &browser, &path2).await;
    assert_eq!(status, 200, "asks for consent again");

    // Allowed again (a second later): a new consent, working tokens; the
    // old refresh family stays dead.
    clock.advance(1);
    let (path3, verifier3) = request("openid profile", "");
    let to = steps::consent(&browser, &app.addr, &path3, "allow").await;
    let tokens = redeem(&app, &steps::code_of(&to), &verifier3).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(steps::me(&app.http, &app.addr, access).await.status(), 200);
    let resp = steps::refresh(&app.http, &app.addr, (RP, SECRET), &refresh).await;
    assert_eq!(resp.status(), 400);
    let ok = steps::refresh(
        &app.http,
        &app.addr,
        (RP, SECRET),
        tokens["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(ok.status(), 200);
}

/// OIDF `oidcc-prompt-none-logged-in`, `oidcc-id-token-hint`,
/// `oidcc-display-*`, `oidcc-ui-locales`, `oidcc-claims-locales`,
/// `oidcc-login-hint`, `oidcc-ensure-request-with-acr-values-succeeds`,
/// `oidcc-ensure-request-with-unknown-parameter-succeeds`: a signed-in user
/// who allowed the client gets a code at once with `prompt=none` and the
/// previous ID token as `id_token_hint`; the parameters keygate does not act
/// on are ignored, never an error; the new ID token has the same `sub` and
/// `auth_time`.
#[tokio::test]
async fn hints_locales_display_acr_values_and_unknown_parameters_are_ignored() {
    let app = spawn_app_with(Backend::Memory, Alg::RS256, rp).await;
    let browser = app.browser();
    let (path, verifier) = request("openid profile", "");
    sign_in(&app, &browser, &path).await;
    let to = steps::consent(&browser, &app.addr, &path, "allow").await;
    let first = redeem(&app, &steps::code_of(&to), &verifier).await;
    let first_token = first["id_token"].as_str().unwrap();
    let first = id_claims(first_token);
    for display in ["page", "popup"] {
        let extra = format!(
            "&prompt=none&id_token_hint={first_token}&display={display}&ui_locales=fr-CA%20fr&claims_locales=de\
             &acr_values=urn%3Amace%3Aincommon%3Aiap%3Asilver&login_hint=alice&extra=foobar&nonce=n-2"
        );
        let (path, verifier) = request("openid profile", &extra);
        let (status, to) = get(&app, &browser, &path).await;
        assert_eq!(status, 303, "{display}");
        assert!(to.starts_with(REDIRECT), "{display}: {to}");
        let again = redeem(&app, &steps::code_of(&to), &verifier).await;
        let again = id_claims(again["id_token"].as_str().unwrap());
        assert_eq!(again["sub"], first["sub"]);
        assert_eq!(again["auth_time"], first["auth_time"]);
        assert_eq!(again["nonce"], "n-2");
    }
}
