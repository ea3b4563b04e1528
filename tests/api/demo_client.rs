//! The demo client (`examples/demo_client/`, the `keygate-demo-client` crate)
//! against an in-process keygate.
//!
//! The crate is built once with `cargo build -p keygate-demo-client` (a no-op
//! under `make test`, which builds it first) and run as a child
//! process on a free loopback port P; keygate registers a client whose redirect
//! URI is `http://127.0.0.1:P/callback`. keygate's issuer in tests is
//! `http://localhost:8080` while it listens on a random port, so the demo gets
//! `--issuer` (what is checked) and `--server-url` (where keygate is reached).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use keygate::config::ConfigClient;
use keygate::tokens::keys::Alg;

use crate::chromium::Browser;
use crate::helpers::{
    location, params_of, per_backend, spawn_app_with, Backend, TestApp, ISSUER, PASSWORD, SECRET,
    USER,
};
use crate::ports::free_port;

const CLIENT_ID: &str = "demo-under-test";
/// How long the demo may take to read the metadata and answer `/`.
const READY_DEADLINE: Duration = Duration::from_secs(60);
const STEP: Duration = Duration::from_secs(20);

/// Builds the demo crate once per test binary and returns its path.
fn demo_binary() -> PathBuf {
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.as_ref() {
        return path.clone();
    }
    // The test binary is `<target>/<profile>/deps/api-…`.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap().to_path_buf();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "build",
        "--quiet",
        "-p",
        "keygate-demo-client",
    ]);
    // Drop what cargo sets for a running test (CARGO_MANIFEST_DIR, CARGO_PKG_*…):
    // build scripts watch some of them (ring: CARGO_MANIFEST_DIR), so keeping
    // them would make this build and a shell's `cargo build` rebuild each other.
    const TEST_ONLY: [&str; 6] = [
        "CARGO_MANIFEST_",
        "CARGO_PKG_",
        "CARGO_CRATE_",
        "CARGO_BIN_",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
    ];
    for (name, _) in std::env::vars_os() {
        if TEST_ONLY
            .iter()
            .any(|p| name.to_string_lossy().starts_with(p))
        {
            cmd.env_remove(&name);
        }
    }
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .expect("run cargo build -p keygate-demo-client");
    assert!(
        status.success(),
        "cargo build -p keygate-demo-client failed"
    );
    let path = profile_dir.join("keygate-demo-client");
    assert!(path.exists(), "{} was not built", path.display());
    *built = Some(path.clone());
    path
}

/// The demo client as a child process; killed (by its PID) on drop.
struct Demo {
    child: Child,
    base: String,
    log: tempfile::NamedTempFile,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Demo {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

/// Starts keygate with the demo's client registered (redirect URI on a free
/// port), then the demo on that port, and waits until the demo answers `/`.
async fn start(backend: Backend) -> (TestApp, Demo) {
    let port = free_port();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let r = redirect.clone();
    let app = spawn_app_with(backend, Alg::RS256, move |s| {
        s.oauth.scopes.insert(0, "openid".into());
        s.clients.push(ConfigClient {
            client_id: CLIENT_ID.into(),
            client_name: "Demo client under test".into(),
            client_secret: Some(SECRET.into()),
            redirect_uris: vec![r],
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            scope: "openid profile email api:read".into(),
            token_endpoint_auth_method: Some("client_secret_basic".into()),
            post_logout_redirect_uris: vec![format!("http://127.0.0.1:{port}/")],
        });
    })
    .await;
    let demo = spawn_demo(&app, ISSUER, port, &redirect).await;
    wait_ready(&demo).await;
    (app, demo)
}

async fn spawn_demo(app: &TestApp, issuer: &str, port: u16, redirect: &str) -> Demo {
    let bin = tokio::task::spawn_blocking(demo_binary).await.unwrap();
    let log = tempfile::NamedTempFile::new().unwrap();
    let child = Command::new(bin)
        .args([
            "--issuer",
            issuer,
            "--server-url",
            &app.addr,
            "--client-id",
            CLIENT_ID,
            "--client-secret",
            SECRET,
            "--redirect-uri",
            redirect,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .spawn()
        .expect("start the demo client");
    Demo {
        child,
        base: format!("http://127.0.0.1:{port}"),
        log,
    }
}

async fn wait_ready(demo: &Demo) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        if let Ok(r) = http.get(demo.url("/")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the demo client did not answer within {READY_DEADLINE:?}; log:\n{}",
            demo.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `jti` in the claims the page shows.
async fn shown_jti(browser: &Browser) -> String {
    let claims: serde_json::Value = serde_json::from_str(&browser.text("#claims").await).unwrap();
    claims["jti"].as_str().expect("jti claim").to_string()
}

/// Signs in through the demo client (keygate's login form, then consent).
async fn sign_in(browser: &Browser, demo: &Demo) {
    browser.goto(&demo.url("/")).await;
    browser.click("#sign-in").await;
    browser.wait_for_url(|u| u.path() == "/login", STEP).await;
    browser.fill("#username", USER).await;
    browser.fill("#password", PASSWORD).await;
    browser
        .click("form[action='/login'] button[type=submit]")
        .await;
    browser
        .wait_for_url(|u| u.path() == "/oauth/authorize", STEP)
        .await;
    assert!(browser
        .page_source()
        .await
        .contains("Demo client under test"));
    browser.click("#allow").await;
    browser
        .wait_for_url(|u| u.as_str() == demo.url("/"), STEP)
        .await;
}

/// Waits until the page contains `needle`.
async fn wait_for_text(browser: &Browser, demo: &Demo, needle: &str) -> String {
    let deadline = Instant::now() + STEP;
    loop {
        let page = browser.page_source().await;
        if page.contains(needle) {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} on the page:\n{page}\nlog:\n{}",
            demo.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

per_backend!(chromium_signs_in_through_the_demo_client_refreshes_and_logs_out);
async fn chromium_signs_in_through_the_demo_client_refreshes_and_logs_out(backend: Backend) {
    let (app, demo) = start(backend).await;
    let browser = Browser::start().await;
    sign_in(&browser, &demo).await;

    // The profile from /api/me and the verified claims.
    assert_eq!(browser.text("#username").await, USER, "{backend:?}");
    let profile: serde_json::Value = serde_json::from_str(&browser.text("#profile").await).unwrap();
    assert_eq!(profile["username"], USER);
    assert_eq!(profile["email"], "alice@example.com");
    let verified = browser.text("#verified").await;
    assert!(verified.contains("verified"), "{verified}");
    let expires_in: i64 = browser.text("#expires-in").await.parse().unwrap();
    assert!(
        (1..=app.state.cfg.tokens.access_ttl.as_secs() as i64).contains(&expires_in),
        "{expires_in}"
    );
    let claims: serde_json::Value = serde_json::from_str(&browser.text("#claims").await).unwrap();
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["client_id"], CLIENT_ID);
    let header: serde_json::Value = serde_json::from_str(&browser.text("#header").await).unwrap();
    assert_eq!(header["typ"], "at+jwt");
    // Times as UTC dates (RFC 3339) next to the epoch seconds.
    for claim in ["iat", "exp"] {
        let epoch = claims[claim].as_i64().unwrap();
        assert_eq!(
            browser.text(&format!("#{claim}-date")).await,
            keygate::clock::rfc3339(epoch),
            "{claim}"
        );
        assert_eq!(
            browser.text(&format!("#{claim}-epoch")).await,
            epoch.to_string()
        );
    }
    assert!(!browser.page_source().await.contains("id=\"notice\""));
    let first_jti = shown_jti(&browser).await;
    assert_eq!(
        app.state.store.scan_prefix("kg:fam:").await.unwrap().len(),
        1,
        "one live refresh family"
    );

    // Refresh: a new access token (rotation keeps one family), and a notice.
    browser.click("#refresh").await;
    let deadline = Instant::now() + STEP;
    loop {
        let page = browser.page_source().await;
        if page.contains("id=\"claims\"") && !page.contains(&first_jti) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no new token after refresh; page:\n{page}\nlog:\n{}",
            demo.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second_jti = shown_jti(&browser).await;
    assert_ne!(first_jti, second_jti, "refresh shows a new access token");
    assert_eq!(browser.text("#username").await, USER);
    assert!(
        browser.text("#notice").await.contains("Tokens refreshed"),
        "{}",
        browser.page_source().await
    );

    // Sign out: the refresh token (its family) is revoked at keygate, and
    // keygate's session ends too (RP-initiated logout, back to the demo's
    // `/` with the state it sent).
    browser.click("#logout").await;
    wait_for_text(&browser, &demo, "id=\"sign-in\"").await;
    let back = browser.current_url().await;
    assert_eq!(back.path(), "/", "{back}");
    assert_eq!(back.port(), url::Url::parse(&demo.base).unwrap().port());
    assert!(back.query().unwrap_or("").starts_with("state="), "{back}");
    let notice = browser.text("#notice").await;
    assert!(notice.contains("and of keygate"), "{notice}");
    assert!(
        app.state
            .store
            .scan_prefix("kg:fam:")
            .await
            .unwrap()
            .is_empty(),
        "logout revoked the refresh token family ({backend:?})"
    );
    // Signing in again asks for the password: keygate's session is gone.
    browser.click("#sign-in").await;
    let at = browser
        .wait_for_url(
            |u| u.path() == "/login" || u.as_str().starts_with(&demo.base),
            STEP,
        )
        .await;
    assert_eq!(at.path(), "/login", "keygate still had a session: {at}");
    assert!(at.as_str().starts_with(&app.addr), "{at}");
    wait_for_text(&browser, &demo, "id=\"password\"").await;
    browser.close().await;
    drop(demo);
}

/// On a phone-sized window, the signed-in page (JWT claims, profile,
/// scope) wraps: no block scrolls sideways and neither does the page.
#[tokio::test]
async fn chromium_demo_client_page_wraps_on_a_phone() {
    let (_app, demo) = start(Backend::Memory).await;
    let browser = Browser::start().await;
    browser.client().set_window_size(360, 800).await.unwrap();
    sign_in(&browser, &demo).await;
    wait_for_text(&browser, &demo, "id=\"claims\"").await;
    let overflow = browser
        .client()
        .execute(
            "const wide = [...document.querySelectorAll('pre, code, dd')]\
               .filter(e => e.scrollWidth > e.clientWidth + 1)\
               .map(e => e.id || e.tagName);\
             if (document.documentElement.scrollWidth > window.innerWidth) wide.push('page');\
             return wide;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        overflow,
        serde_json::json!([]),
        "{}",
        browser.page_source().await
    );
    browser.close().await;
    drop(demo);
}

/// `GET /login` on the demo: checks the session cookie, returns the
/// authorization request's parameters.
async fn login(http: &reqwest::Client, demo: &Demo) -> std::collections::HashMap<String, String> {
    let resp = http.get(demo.url("/login")).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("demo_session="))
        .expect("a session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    params_of(&location(&resp), false)
}

#[tokio::test]
async fn demo_client_login_redirect_and_callback_errors_are_readable() {
    let (_app, demo) = start(Backend::Memory).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();

    // Signed out: a sign-in link and keygate's security headers.
    let resp = http.get(demo.url("/")).send().await.unwrap();
    let h = resp.headers().clone();
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-store");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert!(resp.text().await.unwrap().contains("Sign in with keygate"));

    // /login: PKCE S256 + state, session cookie HttpOnly + SameSite=Lax.
    let p = login(&http, &demo).await;
    assert_eq!(p["response_type"], "code");
    assert_eq!(p["client_id"], CLIENT_ID);
    assert_eq!(p["redirect_uri"], demo.url("/callback"));
    assert_eq!(p["scope"], "openid profile email");
    assert_eq!(p["code_challenge_method"], "S256");
    assert_eq!(p["code_challenge"].len(), 43);
    assert!(p["state"].len() >= 22);

    // A wrong state is refused before keygate is asked anything.
    let resp = http
        .get(demo.url(&format!(
            "/callback?code=forged&state=wrong&iss={}",
            crate::helpers::urlencode(ISSUER)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("State mismatch"));
    assert!(!demo.log().contains("token endpoint"), "{}", demo.log());

    // The right state without `iss` (RFC 9207) is refused too.
    let resp = http
        .get(demo.url(&format!("/callback?code=x&state={}", p["state"])))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("Missing issuer"));

    // A code keygate does not know: invalid_grant, shown readably.
    let p = login(&http, &demo).await;
    let resp = http
        .get(demo.url(&format!(
            "/callback?code=not-a-code&state={}&iss={}",
            p["state"],
            crate::helpers::urlencode(ISSUER)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let page = resp.text().await.unwrap();
    assert!(page.contains("invalid_grant"), "{page}");

    // access_denied: "You declined…".
    let p = login(&http, &demo).await;
    let resp = http
        .get(demo.url(&format!(
            "/callback?error=access_denied&state={}&iss={}",
            p["state"],
            crate::helpers::urlencode(ISSUER)
        )))
        .send()
        .await
        .unwrap();
    let page = resp.text().await.unwrap();
    assert!(page.contains("You declined"), "{page}");

    // POST forms without the CSRF token are refused.
    let resp = http
        .post(demo.url("/logout"))
        .form(&[("csrf_token", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

#[tokio::test]
async fn demo_client_refuses_metadata_for_another_issuer() {
    let app = spawn_app_with(Backend::Memory, Alg::RS256, |_| {}).await;
    let port = free_port();
    let mut demo = spawn_demo(
        &app,
        "http://127.0.0.1:9",
        port,
        &format!("http://127.0.0.1:{port}/callback"),
    )
    .await;
    let deadline = Instant::now() + READY_DEADLINE;
    let status = loop {
        if let Some(status) = demo.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the demo kept running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success());
    assert!(
        demo.log().contains("is not the configured issuer"),
        "{}",
        demo.log()
    );
}
