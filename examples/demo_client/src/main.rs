//! keygate demo client: a small web app that signs a person in through keygate
//! with the authorization code grant + PKCE (S256), the way a real client should.
//!
//! ```text
//! cargo run --release -p keygate-demo-client -- [--issuer URL] [--server-url URL] [--client-id ID]
//!     [--client-secret S] [--redirect-uri URI] [--listen ADDR]
//! ```
//! (`make demo` starts keygate and this app together.) Every flag has an
//! environment fallback: `DEMO_ISSUER` (default `http://127.0.0.1:8080`),
//! `DEMO_SERVER_URL` (default: the issuer), `DEMO_CLIENT_ID` (`demo-app`),
//! `DEMO_CLIENT_SECRET` (`demo-app-secret`; empty = public client, PKCE only),
//! `DEMO_REDIRECT_URI` (`http://127.0.0.1:3000/callback`), `DEMO_LISTEN`
//! (`127.0.0.1:3000`).
//!
//! What it shows a client author:
//! - Endpoints come from the OpenID Connect discovery document (RFC 8414
//!   metadata plus `end_session_endpoint`), whose `issuer` must be the
//!   configured issuer; nothing but `/api/me` (a resource, not an OAuth
//!   endpoint) is hard-coded.
//! - `GET /login` draws a random `state` and PKCE verifier, keeps them
//!   server-side under a fresh session id (cookie `demo_session`: HttpOnly,
//!   SameSite=Lax) and redirects to the authorization endpoint.
//! - `GET /callback` checks `state`, then `iss` (RFC 9207), then redeems the
//!   code with the verifier. Tokens stay in this process's memory, keyed by the
//!   session id: the cookie never holds a token.
//! - `GET /` verifies the access token like an API gateway (JWKS by `kid`,
//!   `iss`, `aud`, `exp`) and calls `/api/me` with it.
//! - `POST /refresh` rotates the tokens; `POST /logout` revokes the refresh
//!   token (RFC 7009), forgets the session and ends the keygate session too:
//!   OpenID Connect RP-initiated logout, a redirect to `end_session_endpoint`
//!   with the ID token as `id_token_hint`, `post_logout_redirect_uri` (this
//!   app's `/`, which keygate must have registered) and a random `state`
//!   (checked against a short-lived cookie when keygate sends the browser
//!   back). Both forms carry a CSRF token; both end on a page with a notice.
//!
//! `--server-url` is a dev/test convenience: when keygate is reached at another
//! address than its issuer URL (tests run it on a random port), endpoint URLs
//! from the metadata that start with the issuer are rewritten to start with the
//! server URL. `iss` and the metadata `issuer` are still checked against
//! `--issuer`. Sessions live in memory and vanish when the app stops.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use askama::Template;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use clap::Parser;
use dashmap::DashMap;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use poem::http::{header, StatusCode};
use poem::listener::TcpListener;
use poem::middleware::{Csrf, SetHeader};
use poem::web::cookie::{Cookie, CookieJar, SameSite};
use poem::web::{CsrfToken, CsrfVerifier, Data, Form, Query};
use poem::{get, handler, post, Endpoint, EndpointExt, IntoResponse, Response, Route, Server};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;

/// Name of the session cookie (holds only a random session id).
const SESSION_COOKIE: &str = "demo_session";
/// Scope asked for: `openid` for an ID token (the `id_token_hint` of the
/// sign-out), `/api/me` needs `profile`; `email` adds the address.
const SCOPE: &str = "openid profile email";
/// Holds the `state` of an RP-initiated logout until keygate sends the
/// browser back (HttpOnly, SameSite=Lax, 10 minutes).
const LOGOUT_COOKIE: &str = "demo_logout_state";
/// How long a started sign-in may wait for its callback.
const PENDING_TTL: Duration = Duration::from_secs(600);
/// Upper bound on live sessions (pending sign-ins included), so anonymous
/// `/login` requests cannot grow memory without limit.
const MAX_SESSIONS: usize = 10_000;
/// Timeout of every call to keygate.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// The same strict policy as keygate's own pages: no scripts, one
/// stylesheet. `form-action` also allows keygate's origin: the sign-out
/// form's answer redirects there (browsers check redirects of a form
/// submission against `form-action`).
fn content_security_policy(meta: &Metadata) -> String {
    let keygate = meta
        .end_session_endpoint
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .map(|u| format!(" {}", u.origin().ascii_serialization()))
        .unwrap_or_default();
    format!(
        "default-src 'none'; style-src 'self'; base-uri 'none'; \
         form-action 'self'{keygate}; frame-ancestors 'none'"
    )
}

/// Command line and environment configuration.
#[derive(Debug, Clone, Parser)]
#[command(about = "keygate demo client: authorization code + PKCE against a running keygate")]
pub struct DemoConfig {
    /// keygate's issuer URL: the metadata `issuer`, `iss` and token `iss`/`aud` must equal it.
    #[arg(long, env = "DEMO_ISSUER", default_value = "http://127.0.0.1:8080")]
    pub issuer: String,
    /// Where keygate is reached, when not at the issuer URL (dev/test only).
    #[arg(long, env = "DEMO_SERVER_URL")]
    pub server_url: Option<String>,
    /// This app's client id.
    #[arg(long, env = "DEMO_CLIENT_ID", default_value = "demo-app")]
    pub client_id: String,
    /// Client secret (client_secret_basic); empty means a public client.
    #[arg(long, env = "DEMO_CLIENT_SECRET", default_value = "demo-app-secret")]
    pub client_secret: String,
    /// The redirect URI registered for this client.
    #[arg(
        long,
        env = "DEMO_REDIRECT_URI",
        default_value = "http://127.0.0.1:3000/callback"
    )]
    pub redirect_uri: String,
    /// Address to listen on.
    #[arg(long, env = "DEMO_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: String,
}

impl DemoConfig {
    fn issuer(&self) -> &str {
        self.issuer.trim_end_matches('/')
    }

    fn server_url(&self) -> &str {
        self.server_url
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or(&self.issuer)
            .trim_end_matches('/')
    }

    fn secret(&self) -> Option<&str> {
        Some(self.client_secret.as_str()).filter(|s| !s.is_empty())
    }

    /// This app's home page (`/` next to the redirect URI): the
    /// `post_logout_redirect_uri` of the sign-out.
    fn home_url(&self) -> String {
        url::Url::parse(&self.redirect_uri)
            .and_then(|u| u.join("/"))
            .map_or_else(|_| "/".to_string(), String::from)
    }
}

/// The discovery fields this app uses (RFC 8414, and OpenID Connect
/// RP-Initiated Logout 1.0's `end_session_endpoint`).
#[derive(Debug, Clone, Deserialize)]
struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    revocation_endpoint: String,
    #[serde(default)]
    end_session_endpoint: Option<String>,
}

/// A token endpoint success answer (RFC 6749 §5.1).
#[derive(Debug, Clone, Deserialize)]
struct TokenResponse {
    access_token: String,
    refresh_token: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

/// An OAuth error answer (RFC 6749 §5.2).
#[derive(Debug, Deserialize)]
struct OAuthErrorBody {
    error: String,
    error_description: Option<String>,
}

/// A sign-in waiting for its callback.
#[derive(Debug, Clone)]
struct Pending {
    state: String,
    verifier: String,
    started: SystemTime,
}

/// Tokens of a signed-in session (server-side only).
#[derive(Debug, Clone)]
struct Tokens {
    access_token: String,
    refresh_token: Option<String>,
    /// Kept for the sign-out's `id_token_hint`.
    id_token: Option<String>,
    scope: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct Session {
    pending: Option<Pending>,
    tokens: Option<Tokens>,
}

/// Shared by every handler.
struct Demo {
    config: DemoConfig,
    meta: Metadata,
    http: reqwest::Client,
    sessions: DashMap<String, Session>,
}

type Shared = Arc<Demo>;

/// A readable error: what to show and with which status.
#[derive(Debug)]
struct UiError {
    status: StatusCode,
    title: String,
    message: String,
}

impl UiError {
    fn new(status: StatusCode, title: &str, message: impl Into<String>) -> Self {
        UiError {
            status,
            title: title.into(),
            message: message.into(),
        }
    }

    fn upstream(what: &str, e: impl std::fmt::Display) -> Self {
        UiError::new(
            StatusCode::BAD_GATEWAY,
            "keygate could not be reached",
            format!("{what}: {e}"),
        )
    }
}

/// Random bytes, base64url without padding.
fn random_b64(n: usize) -> String {
    let mut buf = vec![0u8; n];
    #[allow(clippy::expect_used)]
    SystemRandom::new()
        .fill(&mut buf)
        .expect("the operating system's random number generator failed");
    URL_SAFE_NO_PAD.encode(buf)
}

/// PKCE S256 challenge (RFC 7636 §4.2).
fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

/// The wall clock. keygate reads time only through its `Clock`; this example
/// is not part of the server and has no other source of time.
#[allow(clippy::disallowed_methods)]
fn now() -> SystemTime {
    SystemTime::now()
}

fn now_secs() -> i64 {
    now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Replaces the issuer prefix of an endpoint URL with the server URL.
fn rewrite(url: &str, config: &DemoConfig) -> String {
    match url.strip_prefix(config.issuer()) {
        Some(rest) if config.server_url() != config.issuer() => {
            format!("{}{rest}", config.server_url())
        }
        _ => url.to_string(),
    }
}

/// Fetches the RFC 8414 metadata and checks its `issuer`.
async fn discover(config: &DemoConfig, http: &reqwest::Client) -> anyhow::Result<Metadata> {
    let url = format!("{}/.well-known/openid-configuration", config.server_url());
    let resp = http.get(&url).send().await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "{url} answered {}",
        resp.status()
    );
    let meta: Metadata = resp.json().await?;
    anyhow::ensure!(
        meta.issuer == config.issuer(),
        "the metadata issuer {:?} is not the configured issuer {:?} (RFC 8414 §3.3)",
        meta.issuer,
        config.issuer()
    );
    Ok(Metadata {
        authorization_endpoint: rewrite(&meta.authorization_endpoint, config),
        token_endpoint: rewrite(&meta.token_endpoint, config),
        jwks_uri: rewrite(&meta.jwks_uri, config),
        revocation_endpoint: rewrite(&meta.revocation_endpoint, config),
        end_session_endpoint: meta
            .end_session_endpoint
            .as_deref()
            .map(|u| rewrite(u, config)),
        issuer: meta.issuer,
    })
}

/// Reads the metadata and builds the app.
pub async fn app(config: DemoConfig) -> anyhow::Result<impl Endpoint> {
    let http = reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let meta = discover(&config, &http).await?;
    tracing::info!(issuer = %meta.issuer, authorize = %meta.authorization_endpoint, "metadata read");
    let csp = content_security_policy(&meta);
    let demo: Shared = Arc::new(Demo {
        config,
        meta,
        http,
        sessions: DashMap::new(),
    });
    let mut key = [0u8; 32];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| anyhow::anyhow!("no random numbers"))?;
    let csrf = Csrf::new()
        .cookie_name("demo_csrf")
        .key(key)
        .same_site(SameSite::Lax);
    let headers = SetHeader::new()
        .overriding(header::CONTENT_SECURITY_POLICY, csp)
        .overriding(header::X_FRAME_OPTIONS, "DENY")
        .overriding(header::REFERRER_POLICY, "no-referrer")
        .overriding(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .overriding(header::CACHE_CONTROL, "no-store");
    Ok(Route::new()
        .at("/", get(home))
        .at("/login", get(login))
        .at("/callback", get(callback))
        .at("/refresh", post(refresh))
        .at("/logout", post(logout))
        .at("/style.css", get(stylesheet))
        .with(csrf)
        .with(headers)
        .data(demo))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = DemoConfig::parse();
    let listen = config.listen.clone();
    let endpoint = app(config).await?;
    tracing::info!("demo client on http://{listen}");
    // Ctrl-C (also when started in the background by `make demo`) stops it.
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    Server::new(TcpListener::bind(listen))
        .run_with_graceful_shutdown(endpoint, ctrl_c, Some(Duration::from_secs(5)))
        .await?;
    Ok(())
}

// ---------------------------------------------------------------- pages

/// A time claim of the access token, as a date and in epoch seconds.
struct TimeRow {
    claim: &'static str,
    label: &'static str,
    epoch: i64,
    /// RFC 3339, UTC.
    date: String,
}

/// RFC 3339 in UTC (`2026-01-31T12:00:00Z`) of epoch seconds.
fn rfc3339(epoch: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(epoch)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "(out of range)".into())
}

/// What a signed-in page shows.
struct SignedIn {
    times: Vec<TimeRow>,
    profile: String,
    username: String,
    header: String,
    claims: String,
    verified: Result<i64, String>,
    scope: String,
    has_refresh: bool,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · keygate demo client</title>
<link rel="stylesheet" href="/style.css"></head>
<body><main>
<header><span class="brand">keygate demo client</span></header>
{% if let Some(n) = notice %}<p class="notice" id="notice" role="status">{{ n }}</p>{% endif %}
{% if let Some(err) = error %}
<section class="card error" id="error">
<h1>{{ err.title }}</h1>
<p id="error-message">{{ err.message }}</p>
<p><a href="/">Back to the demo</a></p>
</section>
{% else if let Some(s) = signed_in %}
<section class="card">
<h1>Signed in as <span id="username">{{ s.username }}</span></h1>
<h2>Profile (<code>GET /api/me</code>)</h2>
<pre id="profile">{{ s.profile }}</pre>
<h2>Access token</h2>
{% match s.verified %}{% when Ok(secs) %}
<p class="ok" id="verified">Signature, <code>iss</code>, <code>aud</code> and <code>exp</code> verified against the JWKS; expires in <span id="expires-in">{{ secs }}</span> s.</p>
{% when Err(why) %}
<p class="bad" id="verified">Not valid: {{ why }}</p>
{% endmatch %}
<p>Granted scope: <code id="scope">{{ s.scope }}</code></p>
<h3>Times (UTC)</h3>
<dl class="times" id="times">
{% for t in s.times %}<dt>{{ t.label }} (<code>{{ t.claim }}</code>)</dt>
<dd><time id="{{ t.claim }}-date" datetime="{{ t.date }}">{{ t.date }}</time> · <span id="{{ t.claim }}-epoch">{{ t.epoch }}</span> s since 1970</dd>
{% endfor %}</dl>
<h3>Header</h3>
<pre id="header">{{ s.header }}</pre>
<h3>Claims</h3>
<pre id="claims">{{ s.claims }}</pre>
<div class="actions">
{% if s.has_refresh %}<form method="post" action="/refresh"><input type="hidden" name="csrf_token" value="{{ csrf_token }}"><button type="submit" id="refresh">Refresh tokens</button></form>{% endif %}
<form method="post" action="/logout"><input type="hidden" name="csrf_token" value="{{ csrf_token }}"><button type="submit" id="logout" class="secondary">Sign out</button></form>
</div>
</section>
{% else %}
<section class="card">
<h1>Welcome</h1>
<p>This small app is an OAuth client of keygate at <code>{{ issuer }}</code>. Signing in uses the authorization code grant with PKCE; the tokens stay on this app's server.</p>
<p><a class="button" id="sign-in" href="/login">Sign in with keygate</a></p>
</section>
{% endif %}
</main></body></html>
"#
)]
struct Page<'a> {
    title: &'a str,
    notice: Option<&'static str>,
    issuer: &'a str,
    csrf_token: &'a str,
    signed_in: Option<SignedIn>,
    error: Option<UiError>,
}

fn render(page: &Page<'_>, status: StatusCode) -> Response {
    match page.render() {
        Ok(html) => Response::builder()
            .status(status)
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .content_type("text/plain; charset=utf-8")
                .body("the page could not be rendered")
        }
    }
}

fn error_page(demo: &Demo, err: UiError) -> Response {
    tracing::warn!(status = %err.status, title = %err.title, message = %err.message, "shown to the user");
    let status = err.status;
    render(
        &Page {
            title: "Error",
            notice: None,
            issuer: demo.config.issuer(),
            csrf_token: "",
            signed_in: None,
            error: Some(err),
        },
        status,
    )
}

fn see_other(to: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, to)
        .finish()
}

#[handler]
fn stylesheet() -> impl IntoResponse {
    Response::builder()
        .content_type("text/css; charset=utf-8")
        .body(STYLESHEET)
}

fn session_id(jar: &CookieJar) -> Option<String> {
    jar.get(SESSION_COOKIE).map(|c| c.value_str().to_string())
}

#[derive(Debug, Default, Deserialize)]
struct HomeParams {
    /// Set by this app's own redirects: `refreshed` or `signed-out`.
    notice: Option<String>,
    /// Sent back by keygate after an RP-initiated logout.
    state: Option<String>,
}

/// The notice for `GET /`: one of a fixed set (the query never reaches the
/// page as text). An RP-initiated logout's answer counts only when its
/// `state` is the one this browser's logout cookie holds.
fn notice(q: &HomeParams, jar: &CookieJar) -> Option<&'static str> {
    if let Some(state) = q.state.as_deref() {
        let expected = jar.get(LOGOUT_COOKIE)?;
        jar.add(gone_cookie(LOGOUT_COOKIE));
        let ok = bool::from(subtle::ConstantTimeEq::ct_eq(
            state.as_bytes(),
            expected.value_str().as_bytes(),
        ));
        return ok.then_some(
            "Signed out of the demo client and of keygate: the refresh token is revoked and keygate's session has ended.",
        );
    }
    match q.notice.as_deref()? {
        "refreshed" => Some(
            "Tokens refreshed: keygate rotated the refresh token and issued a new access token.",
        ),
        "signed-out" => Some("Signed out of the demo client: the refresh token is revoked."),
        _ => None,
    }
}

/// `GET /`: the sign-in link, or what the tokens say.
#[handler]
async fn home(
    demo: Data<&Shared>,
    jar: &CookieJar,
    csrf: &CsrfToken,
    q: Query<HomeParams>,
) -> Response {
    let notice = notice(&q, jar);
    let tokens =
        session_id(jar).and_then(|id| demo.sessions.get(&id).and_then(|s| s.tokens.clone()));
    let signed_in = match tokens {
        Some(t) => Some(describe(&demo, &t).await),
        None => None,
    };
    render(
        &Page {
            title: if signed_in.is_some() {
                "Signed in"
            } else {
                "Welcome"
            },
            notice,
            issuer: demo.config.issuer(),
            csrf_token: &csrf.0,
            signed_in,
            error: None,
        },
        StatusCode::OK,
    )
}

/// Verifies the access token against the JWKS and asks `/api/me` who it is.
async fn describe(demo: &Demo, t: &Tokens) -> SignedIn {
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let mut parts = t.access_token.split('.');
    let decode_part = |p: Option<&str>| -> serde_json::Value {
        p.and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(serde_json::Value::Null)
    };
    let header = decode_part(parts.next());
    let claims = decode_part(parts.next());
    let verified = verify(demo, &t.access_token).await;
    let (profile, username) = match me(demo, &t.access_token).await {
        Ok(v) => (
            pretty(&v),
            v["username"].as_str().unwrap_or("(unknown)").to_string(),
        ),
        Err(e) => (e, "(profile unavailable)".to_string()),
    };
    let times = [
        ("iat", "Issued"),
        ("nbf", "Not before"),
        ("exp", "Expires"),
        ("auth_time", "Signed in"),
    ]
    .into_iter()
    .filter_map(|(claim, label)| {
        let epoch = claims[claim].as_i64()?;
        Some(TimeRow {
            claim,
            label,
            epoch,
            date: rfc3339(epoch),
        })
    })
    .collect();
    SignedIn {
        times,
        profile,
        username,
        header: pretty(&header),
        claims: pretty(&claims),
        verified,
        scope: t.scope.clone().unwrap_or_else(|| {
            claims["scope"]
                .as_str()
                .unwrap_or("(not stated)")
                .to_string()
        }),
        has_refresh: t.refresh_token.is_some(),
    }
}

/// Verifies like an API gateway: key by `kid` from the JWKS, signature,
/// `iss`, `aud` (= the issuer), `exp`. Returns the seconds left.
async fn verify(demo: &Demo, token: &str) -> Result<i64, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| format!("bad header: {e}"))?;
    let kid = header.kid.ok_or("the header has no kid")?;
    let jwks: JwkSet = demo
        .http
        .get(&demo.meta.jwks_uri)
        .send()
        .await
        .map_err(|e| format!("JWKS unreachable: {e}"))?
        .json()
        .await
        .map_err(|e| format!("JWKS unreadable: {e}"))?;
    let jwk = jwks
        .find(&kid)
        .ok_or_else(|| format!("kid {kid:?} is not in the JWKS"))?;
    if let Some(alg) = jwk.common.key_algorithm {
        if format!("{alg:?}") != format!("{:?}", header.alg) {
            return Err(format!(
                "the key is for {alg:?}, the token says {:?}",
                header.alg
            ));
        }
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("unusable key: {e}"))?;
    let mut v = Validation::new(header.alg);
    v.set_issuer(&[demo.config.issuer()]);
    v.set_audience(&[demo.config.issuer()]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.leeway = 0;
    let data =
        jsonwebtoken::decode::<serde_json::Value>(token, &key, &v).map_err(|e| e.to_string())?;
    Ok(data.claims["exp"].as_i64().unwrap_or(0) - now_secs())
}

/// `GET /api/me` with the access token as a Bearer token.
async fn me(demo: &Demo, token: &str) -> Result<serde_json::Value, String> {
    let url = format!("{}/api/me", demo.config.server_url());
    let resp = demo
        .http
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status();
    if status.is_success() {
        resp.json().await.map_err(|e| format!("{url}: {e}"))
    } else {
        let why = resp
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_string();
        Err(format!("{url} answered {status} {why}"))
    }
}

/// `GET /login`: start a sign-in with a fresh session, `state` and PKCE verifier.
#[handler]
fn login(demo: Data<&Shared>, jar: &CookieJar) -> Response {
    // Forget expired pending sign-ins and the previous session of this browser.
    demo.sessions.retain(|_, s| {
        s.tokens.is_some()
            || s.pending
                .as_ref()
                .is_some_and(|p| p.started.elapsed().unwrap_or(PENDING_TTL) < PENDING_TTL)
    });
    if let Some(old) = session_id(jar) {
        demo.sessions.remove(&old);
    }
    if demo.sessions.len() >= MAX_SESSIONS {
        return error_page(
            &demo,
            UiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many sign-ins in progress",
                "Please try again in a few minutes.",
            ),
        );
    }
    let id = random_b64(32);
    let state = random_b64(16);
    let verifier = random_b64(32);
    let mut url = match url::Url::parse(&demo.meta.authorization_endpoint) {
        Ok(u) => u,
        Err(e) => {
            return error_page(
                &demo,
                UiError::upstream("the authorization endpoint is not a URL", e),
            )
        }
    };
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &demo.config.client_id)
        .append_pair("redirect_uri", &demo.config.redirect_uri)
        .append_pair("scope", SCOPE)
        .append_pair("state", &state)
        .append_pair("code_challenge", &s256(&verifier))
        .append_pair("code_challenge_method", "S256");
    demo.sessions.insert(
        id.clone(),
        Session {
            pending: Some(Pending {
                state,
                verifier,
                started: now(),
            }),
            tokens: None,
        },
    );
    jar.add(session_cookie(id));
    see_other(url.as_str())
}

fn session_cookie(id: String) -> Cookie {
    app_cookie(SESSION_COOKIE, id)
}

/// An HttpOnly, SameSite=Lax cookie for the whole app.
fn app_cookie(name: &str, value: String) -> Cookie {
    let mut c = Cookie::new_with_str(name, value);
    c.set_http_only(true);
    c.set_same_site(SameSite::Lax);
    c.set_path("/");
    c
}

/// Deletes the cookie `name`.
fn gone_cookie(name: &str) -> Cookie {
    let mut c = app_cookie(name, String::new());
    c.set_max_age(Duration::ZERO);
    c
}

#[derive(Debug, Deserialize)]
struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /callback`: the authorization response.
#[handler]
async fn callback(demo: Data<&Shared>, jar: &CookieJar, q: Query<CallbackParams>) -> Response {
    match finish_sign_in(&demo, jar, q.0).await {
        Ok(()) => see_other("/"),
        Err(e) => error_page(&demo, e),
    }
}

async fn finish_sign_in(demo: &Demo, jar: &CookieJar, q: CallbackParams) -> Result<(), UiError> {
    let bad = |title: &str, msg: &str| UiError::new(StatusCode::BAD_REQUEST, title, msg);
    if let Some(error) = q.error.as_deref() {
        if let Some(id) = session_id(jar) {
            demo.sessions.remove(&id);
        }
        let message = match error {
            "access_denied" => {
                "You declined to let this app access your account. Nothing was shared.".to_string()
            }
            other => format!(
                "keygate answered `{other}`{}",
                q.error_description
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            ),
        };
        let status = if error == "access_denied" {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::BAD_REQUEST
        };
        return Err(UiError::new(status, "Sign-in did not complete", message));
    }
    let id = session_id(jar).ok_or_else(|| {
        bad(
            "No sign-in in progress",
            "This browser has no sign-in waiting for an answer (cookies off, or the app restarted). Start again from the home page.",
        )
    })?;
    let pending = demo
        .sessions
        .get(&id)
        .and_then(|s| s.pending.clone())
        .ok_or_else(|| {
            bad(
                "No sign-in in progress",
                "This sign-in was already finished or has expired. Start again from the home page.",
            )
        })?;
    // The state check comes first: an answer for someone else's request is
    // refused before anything else is done with it (and the pending sign-in
    // stays, so a forged callback cannot cancel the real one).
    let state_ok = q.state.as_deref().is_some_and(|s| {
        bool::from(subtle::ConstantTimeEq::ct_eq(
            s.as_bytes(),
            pending.state.as_bytes(),
        ))
    });
    if !state_ok {
        return Err(bad(
            "State mismatch",
            "The answer does not belong to the sign-in this browser started (wrong or missing state). It was ignored.",
        ));
    }
    if let Some(mut s) = demo.sessions.get_mut(&id) {
        s.pending = None;
    }
    if pending.started.elapsed().unwrap_or(PENDING_TTL) >= PENDING_TTL {
        return Err(bad(
            "Sign-in expired",
            "This sign-in took too long. Please start again.",
        ));
    }
    match q.iss.as_deref() {
        Some(iss) if iss == demo.config.issuer() => {}
        Some(iss) => {
            return Err(bad(
                "Wrong issuer",
                &format!(
                    "The answer came from {iss:?}, not from {:?} (RFC 9207). It was ignored.",
                    demo.config.issuer()
                ),
            ))
        }
        None => {
            return Err(bad(
                "Missing issuer",
                "The answer has no `iss` parameter (RFC 9207), so its origin cannot be checked. It was ignored.",
            ))
        }
    }
    let code = q.code.ok_or_else(|| {
        bad(
            "No authorization code",
            "keygate's answer carried neither a code nor an error.",
        )
    })?;
    let tokens = token_request(
        demo,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &demo.config.redirect_uri),
            ("code_verifier", &pending.verifier),
        ],
    )
    .await?;
    demo.sessions.insert(
        id,
        Session {
            pending: None,
            tokens: Some(tokens),
        },
    );
    Ok(())
}

/// Authenticates this client on `req`: client_secret_basic with a secret
/// (each part form-encoded, RFC 6749 §2.3.1), else `client_id` in the body.
fn authenticated(
    demo: &Demo,
    req: reqwest::RequestBuilder,
    form: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    let mut pairs: Vec<(&str, &str)> = form.to_vec();
    let req = match demo.config.secret() {
        Some(secret) => {
            let creds = format!(
                "{}:{}",
                form_encode(&demo.config.client_id),
                form_encode(secret)
            );
            req.header(
                header::AUTHORIZATION,
                format!("Basic {}", STANDARD.encode(creds)),
            )
        }
        None => {
            pairs.push(("client_id", &demo.config.client_id));
            req
        }
    };
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
}

/// POSTs to the token endpoint; an OAuth error becomes a readable message.
async fn token_request(demo: &Demo, form: &[(&str, &str)]) -> Result<Tokens, UiError> {
    let req = authenticated(demo, demo.http.post(&demo.meta.token_endpoint), form);
    let resp = req
        .send()
        .await
        .map_err(|e| UiError::upstream("token endpoint", e))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| UiError::upstream("token endpoint", e))?;
    if status.is_success() {
        let t: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| UiError::upstream("unreadable token response", e))?;
        return Ok(Tokens {
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            id_token: t.id_token,
            scope: t.scope,
        });
    }
    let message = match serde_json::from_slice::<OAuthErrorBody>(&body) {
        Ok(e) => {
            let hint = match e.error.as_str() {
                "invalid_grant" => {
                    " The code or refresh token is expired, used or revoked: sign in again."
                }
                "invalid_client" => " Check the client id and secret this app was started with.",
                _ => "",
            };
            format!(
                "keygate answered `{}`{}.{hint}",
                e.error,
                e.error_description
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            )
        }
        Err(_) => format!("the token endpoint answered {status}"),
    };
    Err(UiError::new(
        StatusCode::BAD_GATEWAY,
        "keygate refused the request",
        message,
    ))
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    csrf_token: String,
}

fn check_csrf(demo: &Demo, verifier: &CsrfVerifier, form: &CsrfForm) -> Option<Response> {
    if verifier.is_valid(&form.csrf_token) {
        None
    } else {
        Some(error_page(
            demo,
            UiError::new(
                StatusCode::FORBIDDEN,
                "Form expired",
                "The form's security token is missing or wrong. Reload the page and try again.",
            ),
        ))
    }
}

/// `POST /refresh`: a refresh_token grant; the rotated tokens replace the old.
#[handler]
async fn refresh(
    demo: Data<&Shared>,
    jar: &CookieJar,
    verifier: &CsrfVerifier,
    form: Form<CsrfForm>,
) -> Response {
    if let Some(r) = check_csrf(&demo, verifier, &form) {
        return r;
    }
    let Some(id) = session_id(jar) else {
        return see_other("/");
    };
    let Some(refresh_token) = demo
        .sessions
        .get(&id)
        .and_then(|s| s.tokens.as_ref().and_then(|t| t.refresh_token.clone()))
    else {
        return see_other("/");
    };
    match token_request(
        &demo,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
        ],
    )
    .await
    {
        Ok(mut tokens) => {
            if let Some(mut s) = demo.sessions.get_mut(&id) {
                // A server that does not rotate keeps the old refresh token valid.
                if tokens.refresh_token.is_none() {
                    tokens.refresh_token = Some(refresh_token);
                }
                // A refresh answer need not carry a new ID token.
                if tokens.id_token.is_none() {
                    tokens.id_token = s.tokens.as_ref().and_then(|t| t.id_token.clone());
                }
                s.tokens = Some(tokens);
            }
            see_other("/?notice=refreshed")
        }
        Err(e) => {
            // A refused refresh token is useless: sign the session out.
            demo.sessions.remove(&id);
            error_page(&demo, e)
        }
    }
}

/// `POST /logout`: revoke the refresh token (RFC 7009), forget the session,
/// then end the keygate session (RP-initiated logout) when there is an ID
/// token and keygate has an `end_session_endpoint`.
#[handler]
async fn logout(
    demo: Data<&Shared>,
    jar: &CookieJar,
    verifier: &CsrfVerifier,
    form: Form<CsrfForm>,
) -> Response {
    if let Some(r) = check_csrf(&demo, verifier, &form) {
        return r;
    }
    let session = session_id(jar).and_then(|id| demo.sessions.remove(&id));
    jar.add(gone_cookie(SESSION_COOKIE));
    let Some(tokens) = session.and_then(|(_, s)| s.tokens) else {
        return see_other("/");
    };
    if let Some(refresh_token) = &tokens.refresh_token {
        let req = authenticated(
            &demo,
            demo.http.post(&demo.meta.revocation_endpoint),
            &[
                ("token", refresh_token),
                ("token_type_hint", "refresh_token"),
            ],
        );
        match req.send().await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                return error_page(
                    &demo,
                    UiError::new(
                        StatusCode::BAD_GATEWAY,
                        "Signed out here, but not at keygate",
                        format!(
                            "The revocation endpoint answered {}: the refresh token may still be valid until it expires.",
                            r.status()
                        ),
                    ),
                )
            }
            Err(e) => return error_page(&demo, UiError::upstream("revocation endpoint", e)),
        }
    }
    let (Some(id_token), Some(end_session)) = (&tokens.id_token, &demo.meta.end_session_endpoint)
    else {
        return see_other("/?notice=signed-out");
    };
    let mut url = match url::Url::parse(end_session) {
        Ok(u) => u,
        Err(e) => {
            return error_page(
                &demo,
                UiError::upstream("the end_session_endpoint is not a URL", e),
            )
        }
    };
    let state = random_b64(16);
    url.query_pairs_mut()
        .append_pair("id_token_hint", id_token)
        .append_pair("post_logout_redirect_uri", &demo.config.home_url())
        .append_pair("state", &state);
    let mut cookie = app_cookie(LOGOUT_COOKIE, state);
    cookie.set_max_age(PENDING_TTL);
    jar.add(cookie);
    see_other(url.as_str())
}

const STYLESHEET: &str = r#":root { color-scheme: light dark; --bg: #f3f4f8; --surface: #fff; --text: #1b1f2a;
  --muted: #565d6d; --border: #dde0e8; --primary: #4f46e5; --primary-hover: #4338ca; --code: #eef0f6;
  --ok: #0f7b3f; --bad: #b42318; }
@media (prefers-color-scheme: dark) { :root { --bg: #111318; --surface: #1b1e27; --text: #e9ebf1;
  --muted: #a4aaba; --border: #2e3240; --code: #232735; --ok: #5fd08f; --bad: #ff8a80; } }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text);
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 46rem; margin: 0 auto; padding: 2rem 1rem; }
header { margin-bottom: 1rem; }
.brand { font-weight: 700; color: var(--primary); letter-spacing: .02em; }
.card { background: var(--surface); border: 1px solid var(--border); border-radius: 14px;
  padding: 1.5rem; box-shadow: 0 8px 24px rgba(20, 24, 40, .08); }
.card.error { border-color: var(--bad); }
h1 { margin-top: 0; font-size: 1.5rem; }
h2 { font-size: 1.1rem; margin-top: 1.5rem; }
h3 { font-size: 1rem; color: var(--muted); }
/* Tokens, URLs and JSON wrap anywhere: no sideways scrolling on a phone. */
pre { background: var(--code); padding: .75rem 1rem; border-radius: 10px; font-size: .85rem;
  white-space: pre-wrap; overflow-wrap: anywhere; }
code { background: var(--code); padding: 0 .25rem; border-radius: 4px; overflow-wrap: anywhere; }
.notice { background: var(--surface); border: 1px solid var(--ok); border-left-width: 4px;
  border-radius: 10px; padding: .75rem 1rem; margin: 0 0 1rem; }
.times { display: grid; grid-template-columns: max-content 1fr; gap: .25rem .75rem; margin: 0; }
.times dt { color: var(--muted); } .times dd { margin: 0; overflow-wrap: anywhere; }
.actions { flex-wrap: wrap; }
.ok { color: var(--ok); } .bad { color: var(--bad); }
.actions { display: flex; gap: .75rem; margin-top: 1.5rem; }
a.button, button { display: inline-block; background: var(--primary); color: #fff; border: 0;
  border-radius: 10px; padding: .6rem 1.1rem; font: inherit; font-weight: 600; text-decoration: none; cursor: pointer; }
a.button:hover, button:hover { background: var(--primary-hover); }
button.secondary { background: transparent; color: var(--text); border: 1px solid var(--border); }
button.secondary:hover { background: var(--code); }
a { color: var(--primary); }
"#;
