//! The authorization-code flow step by step (authorize → login → consent →
//! code → token) and the token-endpoint calls around it, against any keygate
//! base URL: an in-process `TestApp` (`app.addr`) or a `keygate serve`
//! process (`Keygate::base`), one or several. Each step asserts what a
//! browser or a client relies on (status, `Location`), so a failure names the
//! step that broke. Must not depend on `TestApp` or on how keygate was started.

use crate::helpers::{hidden_value, location, params_of, urlencode, PASSWORD, REDIRECT, USER};

/// The `state` every [`code_query`] carries.
pub const STATE: &str = "st-123";

/// A client that never follows redirects and keeps no cookies: the OAuth client.
pub fn api_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A client that keeps cookies and does not follow redirects, like a browser
/// whose every step the test checks. Cookies for 127.0.0.1 go to every port,
/// as behind a load balancer.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}

/// The query of a code request for `client_id` with S256 PKCE, `scope`,
/// [`REDIRECT`] and [`STATE`].
pub fn code_query(client_id: &str, scope: &str, challenge: &str) -> String {
    format!(
        "response_type=code&client_id={client_id}&redirect_uri={}&scope={}&state={STATE}&code_challenge={challenge}&code_challenge_method=S256",
        urlencode(REDIRECT),
        urlencode(scope)
    )
}

/// POSTs `form` to `url` with optional Basic credentials.
pub async fn post_form(
    http: &reqwest::Client,
    url: &str,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut req = http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some((u, p)) = basic {
        req = req.basic_auth(u, Some(p));
    }
    req.send().await.unwrap()
}

/// GETs `base` + `path` with `browser` and returns the page's HTML.
pub async fn page(browser: &reqwest::Client, base: &str, path: &str) -> String {
    browser
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Signs `USER` in through the login form with `browser`.
pub async fn login(browser: &reqwest::Client, base: &str, return_to: &str) -> reqwest::Response {
    let html = page(
        browser,
        base,
        &format!("/login?return_to={}", urlencode(return_to)),
    )
    .await;
    let csrf = hidden_value(&html, "csrf_token");
    browser
        .post(format!("{base}/login"))
        .form(&[
            ("username", USER),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
            ("return_to", return_to),
        ])
        .send()
        .await
        .unwrap()
}

/// Signs a new user up through the sign-up form with `browser` (returning to `/`).
pub async fn sign_up(
    browser: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
) -> reqwest::Response {
    let html = page(browser, base, "/signup").await;
    let csrf = hidden_value(&html, "csrf_token");
    browser
        .post(format!("{base}/signup"))
        .form(&[
            ("username", username),
            ("password", password),
            ("csrf_token", csrf.as_str()),
            ("return_to", "/"),
        ])
        .send()
        .await
        .unwrap()
}

/// Signs `browser` out with the form on the home page.
pub async fn logout(browser: &reqwest::Client, base: &str) -> reqwest::Response {
    let home = page(browser, base, "/").await;
    let csrf = hidden_value(&home, "csrf_token");
    browser
        .post(format!("{base}/logout"))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap()
}

/// With a signed-in `browser`: GETs the consent page for the authorization
/// request `path` and returns its CSRF token.
pub async fn consent_page(browser: &reqwest::Client, base: &str, path: &str) -> String {
    let resp = browser.get(format!("{base}{path}")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "consent page");
    hidden_value(&resp.text().await.unwrap(), "csrf_token")
}

/// Posts `decision` (`allow` or `deny`) on the consent form of `path` with
/// `csrf`; returns the redirect `Location` (to the client).
pub async fn decide(
    browser: &reqwest::Client,
    base: &str,
    path: &str,
    csrf: &str,
    decision: &str,
) -> String {
    let resp = browser
        .post(format!("{base}{path}"))
        .form(&[("csrf_token", csrf), ("decision", decision)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "consent decision redirects");
    location(&resp)
}

/// With a signed-in `browser`: GET the consent page and post `decision`.
/// When the user allowed the client this before (remembered consent, the
/// request answers at once with a redirect), `allow` is that redirect and
/// `deny` asks again with `prompt=consent`.
pub async fn consent(browser: &reqwest::Client, base: &str, path: &str, decision: &str) -> String {
    let resp = browser.get(format!("{base}{path}")).send().await.unwrap();
    if resp.status() == 303 {
        let to = location(&resp);
        assert!(
            !to.starts_with('/'),
            "a remembered consent redirects to the client: {to}"
        );
        if decision == "allow" {
            return to;
        }
        let again = format!("{path}&prompt=consent");
        let csrf = consent_page(browser, base, &again).await;
        return decide(browser, base, &again, &csrf, decision).await;
    }
    assert_eq!(resp.status(), 200, "consent page");
    let csrf = hidden_value(&resp.text().await.unwrap(), "csrf_token");
    decide(browser, base, path, &csrf, decision).await
}

/// Follows authorize → login → consent → decision as a new browser would and
/// returns the final redirect `Location` (to the client).
pub async fn authorize(base: &str, query: &str, decision: &str) -> String {
    let browser = browser();
    let path = format!("/oauth/authorize?{query}");
    let resp = browser.get(format!("{base}{path}")).send().await.unwrap();
    assert_eq!(
        resp.status(),
        303,
        "unauthenticated authorize redirects to login"
    );
    let to_login = location(&resp);
    assert!(to_login.starts_with("/login?return_to="), "{to_login}");
    let resp = login(&browser, base, &path).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(
        location(&resp),
        path,
        "login returns to the authorization request"
    );
    consent(&browser, base, &path, decision).await
}

/// The `code` of a redirect to the client.
pub fn code_of(redirect: &str) -> String {
    params_of(redirect, false)
        .remove("code")
        .unwrap_or_else(|| panic!("no code in {redirect}"))
}

/// `grant_type=authorization_code` for `code` with [`REDIRECT`] and
/// `verifier`, Basic credentials if given, and `extra` (e.g. `client_id`).
pub async fn redeem(
    http: &reqwest::Client,
    base: &str,
    basic: Option<(&str, &str)>,
    extra: &[(&str, &str)],
    code: &str,
    verifier: &str,
) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
    ];
    form.extend_from_slice(extra);
    post_form(http, &format!("{base}/oauth/token"), basic, &form).await
}

/// `grant_type=refresh_token` for `token` with Basic credentials.
pub async fn refresh(
    http: &reqwest::Client,
    base: &str,
    basic: (&str, &str),
    token: &str,
) -> reqwest::Response {
    post_form(
        http,
        &format!("{base}/oauth/token"),
        Some(basic),
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await
}

/// The JSON body of a 200 token-endpoint answer, which must not be cached.
pub async fn ok_json(resp: reqwest::Response) -> serde_json::Value {
    let status = resp.status();
    let cache = resp
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_string());
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(cache.as_deref(), Some("no-store"));
    body
}

/// RFC 7591 registration with an initial access token; returns the 201 body.
pub async fn register(
    http: &reqwest::Client,
    base: &str,
    initial_token: &str,
    metadata: &serde_json::Value,
) -> serde_json::Value {
    let resp = post_registration(http, base, initial_token, metadata).await;
    assert_eq!(resp.status(), 201, "registration");
    resp.json().await.unwrap()
}

/// `POST /oauth/register` (RFC 7591) of `metadata` with `initial_token` as
/// the bearer, or anonymously (no `Authorization` header) for `None`; the
/// answer, whatever it is.
pub async fn post_registration<'a>(
    http: &reqwest::Client,
    base: &str,
    initial_token: impl Into<Option<&'a str>>,
    metadata: &serde_json::Value,
) -> reqwest::Response {
    let req = http.post(format!("{base}/oauth/register")).json(metadata);
    match initial_token.into() {
        Some(token) => req.bearer_auth(token),
        None => req,
    }
    .send()
    .await
    .unwrap()
}

/// `PUT /oauth/register/{client_id}` (RFC 7592 update) of `metadata` with
/// the client's registration access token; the answer, whatever it is.
pub async fn put_registration(
    http: &reqwest::Client,
    base: &str,
    client_id: &str,
    registration_token: &str,
    metadata: &serde_json::Value,
) -> reqwest::Response {
    http.put(format!("{base}/oauth/register/{client_id}"))
        .bearer_auth(registration_token)
        .json(metadata)
        .send()
        .await
        .unwrap()
}

/// `GET /api/me` with `token` as the bearer.
pub async fn me(http: &reqwest::Client, base: &str, token: &str) -> reqwest::Response {
    http.get(format!("{base}/api/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Polls `/readyz` until it answers 200; fails with `what` after 15 s.
pub async fn wait_ready(http: &reqwest::Client, base: &str, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
