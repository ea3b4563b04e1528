//! Test harness: `spawn_app(Backend)` starts the real server on `127.0.0.1:0`
//! (through `Application::build`, as `keygate serve` does) and returns a client.

use keygate::config::{ConfigClient, Settings};
use keygate::oauth::client_meta::ClientMetadata;
use keygate::oauth::types::{AuthMethod, GrantType, ScopeSet};
use keygate::startup::Application;
use keygate::state::AppState;
use keygate::tokens::keys::{generate_into, Alg};

use crate::redis_server::RedisServer;

/// Which store the app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Redis,
}

/// Both backends, for tests that must pass on each.
pub const BACKENDS: [Backend; 2] = [Backend::Memory, Backend::Redis];

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

fn config_client(id: &str, method: &str, grants: &[&str], scope: &str) -> ConfigClient {
    ConfigClient {
        client_id: id.into(),
        client_name: format!("{id} (test)"),
        client_secret: (method != "none").then(|| SECRET.to_string()),
        redirect_uris: if grants.contains(&"authorization_code") {
            vec!["http://127.0.0.1:3000/callback".into()]
        } else {
            vec![]
        },
        grant_types: grants.iter().map(|g| g.to_string()).collect(),
        scope: scope.into(),
        token_endpoint_auth_method: Some(method.into()),
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
    ];
    s
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
    let keys = tempfile::tempdir().unwrap();
    generate_into(keys.path(), alg, 1).unwrap();
    let redis = (backend == Backend::Redis).then(RedisServer::new);
    let url = redis.as_ref().map_or("memory".to_string(), |r| r.url());
    let mut settings = test_settings(keys.path(), &url);
    tweak(&mut settings);
    let app = Application::build(settings)
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
    };
    let reg = keygate::flows::clients::register(&state.clients, meta, &state.cfg.scopes, 0)
        .await
        .unwrap();
    let stored_client = (reg.client.client_id.clone(), reg.secret.clone().unwrap());
    TestApp {
        addr,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
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
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut req = self
            .http
            .post(self.url("/oauth/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some((u, p)) = basic {
            req = req.basic_auth(u, Some(p));
        }
        req.send().await.unwrap()
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
