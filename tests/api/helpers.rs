//! Test harness: `spawn_app(Backend)` starts the real server on `127.0.0.1:0`
//! (through `Application::build`, as `keygate serve` does) and returns a client.

use std::sync::Arc;

use keygate::clock::{Clock, SystemClock};
use keygate::config::{ConfigClient, Settings};
use keygate::oauth::client_meta::ClientMetadata;
use keygate::oauth::types::{AuthMethod, GrantType, ScopeSet};
use keygate::startup::Application;
use keygate::state::AppState;
use keygate::tokens::keys::{generate_into, Alg};

use crate::redis_server::RedisServer;
use crate::steps;

/// Which store the app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Redis,
    /// The Redis Cluster of the enclosing [`CLUSTER_URL`] scope: one
    /// cluster (seconds to start) shared by the scenarios that
    /// tests/api/cluster.rs runs on it in turn.
    Cluster,
}

tokio::task_local! {
    /// The `redis+cluster://` URL that `Backend::Cluster` apps use.
    pub static CLUSTER_URL: String;
}

/// Turns `async fn name(backend: Backend)` into one test per backend,
/// `name::memory` and `name::redis`, so a failure on one store never hides
/// the other's result. `cargo test --test api name` runs both. It also
/// makes `name::on_cluster()`, which tests/api/cluster.rs runs, in turn
/// with other scenarios, on the one Redis Cluster it starts.
macro_rules! per_backend {
    ($($name:ident),+ $(,)?) => {$(
        pub(crate) mod $name {
            #[tokio::test]
            async fn memory() {
                super::$name($crate::helpers::Backend::Memory).await;
            }
            #[tokio::test]
            async fn redis() {
                super::$name($crate::helpers::Backend::Redis).await;
            }
            /// This scenario on the cluster of the enclosing
            /// `helpers::CLUSTER_URL` scope.
            #[allow(dead_code)]
            pub(crate) async fn on_cluster() {
                super::$name($crate::helpers::Backend::Cluster).await;
            }
        }
    )+};
}
pub(crate) use per_backend;

pub const ISSUER: &str = "http://localhost:8080";
pub const SECRET: &str = "test-secret-0123456789";

/// A running keygate and what the test needs to talk to it.
pub struct TestApp {
    pub addr: String,
    pub http: reqwest::Client,
    pub state: AppState,
    pub redis: Option<RedisServer>,
    /// id and secret of a client registered in the store (not the config file).
    pub stored_client: (String, String),
    _keys: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub fn config_client(id: &str, method: &str, grants: &[&str], scope: &str) -> ConfigClient {
    ConfigClient {
        client_id: id.into(),
        client_name: format!("{id} (test)"),
        client_secret: (method != "none").then(|| SECRET.into()),
        redirect_uris: if grants.contains(&"authorization_code") || grants.contains(&"implicit") {
            vec![REDIRECT.into()]
        } else {
            vec![]
        },
        grant_types: grants.iter().map(|g| g.to_string()).collect(),
        scope: scope.into(),
        token_endpoint_auth_method: Some(method.into()),
        post_logout_redirect_uris: vec![],
    }
}

/// Settings every test app starts from.
pub fn test_settings(keys_dir: &std::path::Path, store_url: &str) -> Settings {
    let mut s = Settings::default();
    s.server.listen = "127.0.0.1:0".into();
    s.server.issuer = ISSUER.into();
    s.store.url = store_url.into();
    s.store.timeout_ms = 500;
    s.keys.dir = keys_dir.display().to_string();
    s.oauth.scopes = vec![
        "profile".into(),
        "email".into(),
        "api:read".into(),
        "api:write".into(),
    ];
    s.clients = vec![
        config_client(
            "basic-client",
            "client_secret_basic",
            &["client_credentials"],
            "api:read api:write",
        ),
        config_client(
            "post-client",
            "client_secret_post",
            &["client_credentials"],
            "api:read",
        ),
        config_client(
            "code-client",
            "client_secret_basic",
            &["authorization_code"],
            "profile",
        ),
        config_client("public-client", "none", &["authorization_code"], "profile"),
        config_client(
            "web-app",
            "client_secret_basic",
            &["authorization_code", "refresh_token"],
            "profile email api:read",
        ),
        config_client(
            "spa",
            "none",
            &["authorization_code", "refresh_token"],
            "profile email",
        ),
        config_client(
            "legacy-app",
            "client_secret_post",
            &[
                "password",
                "implicit",
                "refresh_token",
                "authorization_code",
            ],
            "profile email",
        ),
        config_client(
            "cc-profile",
            "client_secret_basic",
            &["client_credentials"],
            "profile api:read",
        ),
    ];
    s.users = vec![keygate::config::ConfigUser {
        username: USER.into(),
        password_hash: password_hash().into(),
        email: Some("alice@example.com".into()),
        // Pinned, so tests can name alice's `sub` (the default is derived
        // from a hash of the username, see tests/api/profile.rs).
        id: Some("cfg-alice".into()),
        name: None,
    }];
    s.ui.signup = true;
    // Tests send bursts far above any sane production rate; tests/api/limits.rs
    // turns the limits on.
    s.limits.enabled = false;
    s
}

pub const USER: &str = "alice";
pub const PASSWORD: &str = "alice-password-1";
pub const REDIRECT: &str = "http://127.0.0.1:3000/callback";

/// The Argon2 hash of [`PASSWORD`] (computed once).
pub fn password_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| keygate::passwords::hash_blocking(PASSWORD).unwrap())
}

/// Starts keygate on `backend` with an RS256 key.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, Alg::RS256, |_| {}).await
}

/// Starts keygate with a key of `alg` and `tweak` applied to the settings.
pub async fn spawn_app_with(
    backend: Backend,
    alg: Alg,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    spawn_app_clocked(backend, alg, tweak, Arc::new(SystemClock)).await
}

/// [`spawn_app_with`] on an injected clock (a `TestClock` to move time by hand).
/// Store TTLs still run on real time: they are garbage collection only.
pub async fn spawn_app_clocked(
    backend: Backend,
    alg: Alg,
    tweak: impl FnOnce(&mut Settings),
    clock: Arc<dyn Clock>,
) -> TestApp {
    let keys = tempfile::tempdir().unwrap();
    generate_into(keys.path(), alg, 1).unwrap();
    let redis = (backend == Backend::Redis).then(RedisServer::new);
    let url = match (backend, &redis) {
        (Backend::Cluster, _) => CLUSTER_URL.try_with(Clone::clone).expect(
            "Backend::Cluster runs inside helpers::CLUSTER_URL.scope (tests/api/cluster.rs)",
        ),
        (_, Some(r)) => r.url(),
        (_, None) => "memory".to_string(),
    };
    let mut settings = test_settings(keys.path(), &url);
    tweak(&mut settings);
    let app = Application::build_with_clock(settings, clock)
        .await
        .expect("application builds");
    let state = app.state().clone();
    let addr = format!("http://{}", app.addr());
    let server = tokio::spawn(async move {
        let _ = app.run_until_stopped(std::future::pending()).await;
    });
    let meta = ClientMetadata {
        client_name: "stored".into(),
        redirect_uris: vec![],
        grant_types: vec![GrantType::ClientCredentials],
        scope: ScopeSet::parse("api:read").unwrap(),
        auth_method: AuthMethod::ClientSecretBasic,
        client_uri: None,
        logo_uri: None,
        oidc: Default::default(),
    };
    let reg = keygate::flows::clients::register(
        &state.repos,
        meta,
        &state.cfg.client_rules,
        0,
        None,
        false,
    )
    .await
    .unwrap();
    let stored_client = (reg.client.client_id.clone(), reg.secret.clone().unwrap());
    TestApp {
        addr,
        http: steps::api_client(),
        state,
        redis,
        stored_client,
        _keys: keys,
        server,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.addr)
    }

    /// POSTs a form to the token endpoint with optional Basic credentials.
    pub async fn post_token(
        &self,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.post_token_to("/oauth/token", basic, form).await
    }

    /// POSTs a form to `path` (token, revoke, introspect) with optional Basic credentials.
    pub async fn post_token_to(
        &self,
        path: &str,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        steps::post_form(&self.http, &self.url(path), basic, form).await
    }

    /// A client that keeps cookies and does not follow redirects ([`steps::browser`]).
    pub fn browser(&self) -> reqwest::Client {
        steps::browser()
    }

    /// GETs `path` with `browser` and returns the page's HTML.
    pub async fn page(&self, browser: &reqwest::Client, path: &str) -> String {
        steps::page(browser, &self.addr, path).await
    }

    /// Signs `USER` in through the login form with `browser`.
    pub async fn login(&self, browser: &reqwest::Client, return_to: &str) -> reqwest::Response {
        steps::login(browser, &self.addr, return_to).await
    }

    /// Follows authorize → login → consent → decision as a browser would and
    /// returns the final redirect `Location` (to the client).
    pub async fn authorize(&self, query: &str, decision: &str) -> String {
        steps::authorize(&self.addr, query, decision).await
    }

    /// A fresh code for `web-app` with `scope` (the user allows), and its
    /// PKCE verifier.
    pub async fn web_app_code(&self, scope: &str) -> (String, String) {
        let (verifier, challenge) = pkce_pair();
        let to = self
            .authorize(&steps::code_query("web-app", scope, &challenge), "allow")
            .await;
        (steps::code_of(&to), verifier)
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// Sum of `keygate_store_calls_total` (one call is one backend round trip).
pub fn store_calls(state: &AppState) -> u64 {
    state
        .metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("keygate_store_calls_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

/// Asserts an RFC 6749 §5.2 error: status, code, JSON body with a description,
/// and `Cache-Control: no-store`.
pub async fn assert_oauth_error(
    resp: reqwest::Response,
    status: u16,
    code: &str,
) -> reqwest::header::HeaderMap {
    assert_eq!(resp.status().as_u16(), status, "status for {code}");
    let headers = resp.headers().clone();
    assert_eq!(headers.get("cache-control").unwrap(), "no-store");
    assert!(headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    headers
}

/// Verifies an access token the way an API gateway does: fetch the JWKS over
/// HTTP, pick the key by `kid`, verify signature, `iss`, `aud`, `exp`.
pub async fn verify_like_a_gateway(app: &TestApp, token: &str) -> serde_json::Value {
    let jwks: jsonwebtoken::jwk::JwkSet = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"), "RFC 9068 §2.1 typ");
    let kid = header.kid.expect("kid in header");
    let jwk = jwks.find(&kid).expect("kid is published in the JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_issuer(&[ISSUER]);
    v.set_audience(&[ISSUER]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub", "nbf", "iat"]);
    v.validate_nbf = true;
    jsonwebtoken::decode::<serde_json::Value>(token, &key, &v)
        .expect("token verifies against the published JWKS")
        .claims
}

pub fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .expect("Location header")
        .to_str()
        .unwrap()
        .to_string()
}

/// The `value` of the `<input>` named `name` in an HTML page.
pub fn hidden_value(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no input named {name} in:\n{html}"));
    let start = html[..at].rfind('<').unwrap();
    let end = at + html[at..].find('>').unwrap();
    let tag = &html[start..end];
    let v = tag
        .find("value=\"")
        .unwrap_or_else(|| panic!("input {name} has no value: {tag}"))
        + 7;
    let raw = &tag[v..v + tag[v..].find('"').unwrap()];
    raw.replace("&#43;", "+")
        .replace("&#x2B;", "+")
        .replace("&#61;", "=")
        .replace("&#x3D;", "=")
        .replace("&#47;", "/")
        .replace("&#x2F;", "/")
        .replace("&amp;", "&")
}

/// The query (or fragment) parameters of a redirect URL.
pub fn params_of(url: &str, fragment: bool) -> std::collections::HashMap<String, String> {
    let u = url::Url::parse(url).unwrap();
    let raw = if fragment {
        u.fragment().unwrap_or_default().to_string()
    } else {
        u.query().unwrap_or_default().to_string()
    };
    form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .collect()
}

/// A PKCE verifier and its S256 challenge.
pub fn pkce_pair() -> (String, String) {
    let verifier = keygate::ids::random_token(32);
    let challenge = keygate::oauth::pkce::s256(&verifier);
    (verifier, challenge)
}
