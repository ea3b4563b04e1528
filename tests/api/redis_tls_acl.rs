//! Issue 17 item 4: Redis over TLS (`rediss://` with `store.tls_ca_file`,
//! and a client certificate for `tls-auth-clients yes`) as an ACL user
//! restricted to keygate's keys and commands — the ACL line read from
//! docs/redis.md, so the docs cannot drift from what works.
//!
//! Every server is a real TLS-only `redis-server` from `redis_tls.rs`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use keygate::rate::{Decision, Quota};
use keygate::startup::Application;
use keygate::store::redis::{tls_certificates, RedisStore};
use keygate::store::{KvStore, Put, StoreError, Swap};
use keygate::tokens::keys::{generate_into, Alg};

use crate::helpers::{assert_oauth_error, pkce_pair, spawn_app_with, Backend, SECRET};
use crate::process::{command, Keygate};
use crate::redis_tls::{
    acl_line_with_password, documented_acl_line, random_password, TlsOptions, TlsRedis,
};
use crate::steps;

const TIMEOUT: Duration = Duration::from_millis(1000);
/// The ACL user of docs/redis.md.
const USER: &str = "keygate";

/// A TLS Redis whose only usable user is the documented `keygate` line
/// (`auth_clients`: whether it requires a client certificate), and that
/// user's password.
fn tls_redis(auth_clients: bool) -> (TlsRedis, String) {
    tls_redis_with_line(auth_clients, |line| line.to_string())
}

/// [`tls_redis`] with the documented line changed by `edit` first.
fn tls_redis_with_line(auth_clients: bool, edit: impl Fn(&str) -> String) -> (TlsRedis, String) {
    let password = random_password();
    let line = acl_line_with_password(&edit(&documented_acl_line()), &password);
    let redis = TlsRedis::start(TlsOptions {
        auth_clients,
        users: vec![line],
    });
    (redis, password)
}

/// The documented line without one permission token (which must be in it).
fn without(token: &'static str) -> impl Fn(&str) -> String {
    move |line: &str| {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(words.contains(&token), "{token} is not in {line}");
        words
            .into_iter()
            .filter(|w| *w != token)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A store on `redis` as the ACL user, verifying the server with the test CA.
async fn acl_store(redis: &TlsRedis, password: &str) -> RedisStore {
    let tls = tls_certificates(Some(&redis.pki().ca_file()), None).unwrap();
    RedisStore::connect_tls(&redis.url(USER, password), tls.as_ref(), TIMEOUT)
        .await
        .unwrap()
}

/// Entries of `ACL LOG` (commands or keys the ACL refused), each as text.
async fn acl_log(redis: &TlsRedis) -> Vec<String> {
    match redis.admin(&["ACL", "LOG"]).await {
        redis::Value::Array(entries) => entries.iter().map(|e| format!("{e:?}")).collect(),
        other => panic!("ACL LOG answered {other:?}"),
    }
}

/// Runs a store's keys under `prefix`: the conformance suite's keys (`t:…`,
/// `rl:…`) are outside keygate's `kg:` namespace, which the ACL user may
/// not touch; keygate itself never writes outside it.
struct Prefixed {
    inner: RedisStore,
    prefix: &'static str,
}

impl Prefixed {
    fn key(&self, k: &str) -> String {
        format!("{}{k}", self.prefix)
    }
}

#[async_trait]
impl KvStore for Prefixed {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(&self.key(key)).await
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let owned: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
        self.inner.get_many(&refs).await
    }
    async fn put(&self, key: &str, val: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        self.inner.put(&self.key(key), val, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        self.inner.delete(&self.key(key)).await
    }
    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let keys = self.inner.scan_prefix(&self.key(prefix)).await?;
        Ok(keys
            .into_iter()
            .map(|k| k[self.prefix.len()..].to_string())
            .collect())
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    async fn put_new(
        &self,
        key: &str,
        val: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.inner.put_new(&self.key(key), val, ttl).await
    }
    async fn swap(&self, op: &Swap<'_>) -> Result<bool, StoreError> {
        let key = self.key(op.key);
        let require: Vec<String> = op.require.iter().map(|k| self.key(k)).collect();
        let require: Vec<&str> = require.iter().map(String::as_str).collect();
        let put_keys: Vec<String> = op.puts.iter().map(|(k, _, _)| self.key(k)).collect();
        let puts: Vec<Put<'_>> = op
            .puts
            .iter()
            .zip(&put_keys)
            .map(|((_, v, t), k)| (k.as_str(), *v, *t))
            .collect();
        self.inner
            .swap(&Swap {
                key: &key,
                expected: op.expected,
                new: op.new,
                require: &require,
                puts: &puts,
                durable: false,
            })
            .await
    }
    async fn rate(&self, key: &str, quota: Quota, cost: i64) -> Result<Decision, StoreError> {
        self.inner.rate(&self.key(key), quota, cost).await
    }
    async fn sync_replicas(&self, key: &str) -> Result<bool, StoreError> {
        self.inner.sync_replicas(&self.key(key)).await
    }
}

/// (a) The whole store contract holds over TLS as the documented ACL user,
/// which may use keygate's keys (`kg:…`, and `{kg:…}` hash-tagged ones) and
/// nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_acl_store_conformance() {
    let (redis, password) = tls_redis(false);
    let store = acl_store(&redis, &password).await;
    // `CONFIG GET maxmemory-policy` is allowed (the start-up check).
    assert_eq!(store.eviction_policy().await.unwrap(), "noeviction");
    crate::store_conformance::suite(Arc::new(Prefixed {
        inner: store.clone(),
        prefix: "kg:conformance:",
    }))
    .await;
    // Hash-tagged keys (Redis Cluster) are keygate's too.
    store
        .put("{kg:user:u1}:sessions", b"v", None)
        .await
        .unwrap();
    assert!(store.delete("{kg:user:u1}:sessions").await.unwrap());
    assert_eq!(
        acl_log(&redis).await,
        Vec::<String>::new(),
        "nothing was refused"
    );

    // The ACL is in force: another key or command is refused with NOPERM,
    // an error like any other (503 upstream), not a panic.
    for err in [
        store.put("t:outside", b"v", None).await.unwrap_err(),
        store.get("other:key").await.unwrap_err(),
    ] {
        assert!(err.is_command_refused(), "{err:?}");
        assert!(err.to_string().contains("no permissions"), "{err}");
    }
    let tls = tls_certificates(Some(&redis.pki().ca_file()), None)
        .unwrap()
        .unwrap();
    let client = redis::Client::build_with_tls(redis.url(USER, &password), tls).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for cmd in [
        redis::cmd("FLUSHALL"),
        redis::cmd("KEYS").arg("*").clone(),
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory-policy")
            .arg("allkeys-lru")
            .clone(),
    ] {
        let err = cmd
            .query_async::<redis::Value>(&mut conn)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("NOPERM"), "{err}");
    }
    assert_eq!(store.eviction_policy().await.unwrap(), "noeviction");
}

/// Every store operation once, on a fresh Redis (scripts not yet loaded):
/// the first error, if any.
async fn every_operation(store: &RedisStore) -> Result<(), StoreError> {
    store.ping().await?;
    store
        .put("kg:op:a", b"1", Some(Duration::from_secs(60)))
        .await?;
    store.get("kg:op:a").await?;
    store.get_many(&["kg:op:a", "kg:op:b"]).await?;
    store.put_new("kg:op:b", b"2", None).await?;
    store.scan_prefix("kg:op:").await?;
    let swapped = store
        .swap(&Swap {
            key: "kg:op:a",
            expected: b"1",
            new: None,
            require: &["kg:op:b"],
            puts: &[("kg:op:c", b"3", None)],
            durable: false,
        })
        .await?;
    assert!(swapped);
    let quota = Quota {
        emission: Duration::from_secs(1),
        burst: std::num::NonZeroU32::new(2).unwrap(),
    };
    store.rate("kg:op:rl", quota, 1).await?;
    store.delete("kg:op:c").await?;
    store.eviction_policy().await?;
    Ok(())
}

/// The documented line grants nothing keygate does not use: every store
/// operation works with it, and without any one of its commands one of
/// them fails with NOPERM (and Redis' ACL LOG names the command).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_of_the_documented_line_is_needed() {
    let (redis, password) = tls_redis(false);
    every_operation(&acl_store(&redis, &password).await)
        .await
        .unwrap();
    let line = documented_acl_line();
    let commands: Vec<String> = line
        .split_whitespace()
        .filter(|w| w.starts_with('+'))
        .map(str::to_string)
        .collect();
    assert!(commands.len() >= 10, "{commands:?}");
    for command in commands {
        let command: &'static str = Box::leak(command.into_boxed_str());
        let (redis, password) = tls_redis_with_line(false, without(command));
        let err = every_operation(&acl_store(&redis, &password).await)
            .await
            .expect_err(command);
        assert!(err.is_command_refused(), "{command}: {err:?}");
        let name = command.trim_start_matches('+');
        let log = acl_log(&redis).await;
        assert!(
            log.iter().any(|e| e.contains(&format!("\"{name}\""))),
            "{command}: ACL LOG {log:?}"
        );
    }
}

/// (b) The full flow over TLS as the documented ACL user: client
/// credentials, authorization code + PKCE, refresh rotation, revocation and
/// introspection, through `Application::build` as `keygate serve` does.
/// The ACL LOG stays empty: no command or key keygate used was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_over_tls_as_the_acl_user() {
    let (redis, password) = tls_redis(false);
    let url = redis.url(USER, &password);
    let ca = redis.pki().ca_file().display().to_string();
    // `Backend::Memory` only means "start no plain Redis": the store is ours.
    let app = spawn_app_with(Backend::Memory, Alg::ES256, |s| {
        s.store.url = url;
        s.store.tls_ca_file = ca;
        s.store.timeout_ms = 2000;
    })
    .await;
    assert_eq!(
        app.http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // client_credentials, as a config-file client and as a stored one.
    let cc = steps::ok_json(
        app.post_token(
            Some(("basic-client", SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await,
    )
    .await;
    assert!(cc["access_token"].is_string());
    let (id, secret) = app.stored_client.clone();
    steps::ok_json(
        app.post_token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await,
    )
    .await;

    // Authorization code + PKCE (login session, consent, code in Redis).
    let (code, verifier) = app.web_app_code("profile email").await;
    let tokens = steps::ok_json(
        steps::redeem(
            &app.http,
            &app.addr,
            Some(("web-app", SECRET)),
            &[],
            &code,
            &verifier,
        )
        .await,
    )
    .await;
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(steps::me(&app.http, &app.addr, &access).await.status(), 200);

    // Refresh rotation (the swap script), then revocation of the successor.
    let next =
        steps::ok_json(steps::refresh(&app.http, &app.addr, ("web-app", SECRET), &refresh).await)
            .await;
    let next_refresh = next["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(next_refresh, refresh);
    let revoke = app
        .post_token_to(
            "/oauth/revoke",
            Some(("web-app", SECRET)),
            &[("token", &next_refresh)],
        )
        .await;
    assert_eq!(revoke.status(), 200);
    assert_oauth_error(
        steps::refresh(&app.http, &app.addr, ("web-app", SECRET), &next_refresh).await,
        400,
        "invalid_grant",
    )
    .await;
    let next_access = next["access_token"].as_str().unwrap();
    let introspected = steps::ok_json(
        app.post_token_to(
            "/oauth/introspect",
            Some(("web-app", SECRET)),
            &[("token", next_access)],
        )
        .await,
    )
    .await;
    assert_eq!(introspected["active"], false, "revoked with its family");
    // The code was single use.
    assert_oauth_error(
        steps::redeem(
            &app.http,
            &app.addr,
            Some(("web-app", SECRET)),
            &[],
            &code,
            &verifier,
        )
        .await,
        400,
        "invalid_grant",
    )
    .await;

    // The state really is in this Redis, under kg: only.
    let keys = format!("{:?}", redis.admin(&["KEYS", "*"]).await);
    assert!(keys.contains("kg:"), "{keys}");
    assert_eq!(
        acl_log(&redis).await,
        Vec::<String>::new(),
        "nothing was refused"
    );
}

/// Writes a key, starts `keygate serve` on `env` and returns it with its
/// `/readyz` status and a token request's answer (an unknown client: the
/// lookup needs the store).
async fn serve_and_probe(
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (Keygate, u16, reqwest::Response) {
    generate_into(&dir.join("keys"), Alg::ES256, 1).unwrap();
    let server = Keygate::start(dir, env);
    let http = reqwest::Client::new();
    let ready = http
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    let token = steps::post_form(
        &http,
        &server.url("/oauth/token"),
        Some(("some-client", "some-secret-0123456789")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    (server, ready, token)
}

/// (c) A CA that did not sign the server's certificate: keygate starts,
/// is not ready, answers 503 `temporarily_unavailable`, says why in the
/// log (the certificate), and does not panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_is_not_ready_and_says_why() {
    let (redis, password) = tls_redis(false);
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url(USER, &password);
    let other_ca = redis.pki().other_ca_file();
    let (server, ready, token) = serve_and_probe(
        dir.path(),
        &[
            ("KEYGATE_STORE_URL", &url),
            ("KEYGATE_STORE_TLS_CA_FILE", other_ca.to_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(ready, 503);
    assert_oauth_error(token, 503, "temporarily_unavailable").await;
    let log = server.log.lock().unwrap().join("\n");
    let line = log
        .lines()
        .find(|l| l.contains("not reachable at start"))
        .unwrap_or_else(|| panic!("no start-up line about the store in:\n{log}"));
    assert!(
        line.contains("WARN")
            && line.contains("invalid peer certificate: UnknownIssuer")
            && line.contains("store.tls_ca_file"),
        "the line says the certificate is the problem, and what to check: {line}"
    );
    assert!(!log.contains("panicked"), "{log}");
    assert_no_password(&log, &password);
    // Without any CA file the web roots do not know the test CA either.
    drop(server);
    let dir = tempfile::tempdir().unwrap();
    let (_server, ready, _) = serve_and_probe(dir.path(), &[("KEYGATE_STORE_URL", &url)]).await;
    assert_eq!(ready, 503);
}

/// `password` appears in `log` neither as it is nor percent-encoded.
fn assert_no_password(log: &str, password: &str) {
    let encoded: String = url::form_urlencoded::byte_serialize(password.as_bytes()).collect();
    let hex_part = &password[password.len() - 16..];
    for needle in [password, encoded.as_str(), hex_part] {
        assert!(!log.contains(needle), "the password is in the log:\n{log}");
    }
}

/// (d) A wrong password: keygate starts, is not ready, answers 503
/// `temporarily_unavailable`, logs that Redis refused its credentials, and
/// neither the wrong nor the right password is in the log; the banner
/// shows the URL redacted. With the right password the same server is
/// ready and the password is not logged either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_not_ready_and_never_logged() {
    let (redis, password) = tls_redis(false);
    let ca = redis.pki().ca_file();
    let ca = ca.to_str().unwrap();
    let wrong = random_password();
    let dir = tempfile::tempdir().unwrap();
    let (server, ready, token) = serve_and_probe(
        dir.path(),
        &[
            ("KEYGATE_STORE_URL", &redis.url(USER, &wrong)),
            ("KEYGATE_STORE_TLS_CA_FILE", ca),
        ],
    )
    .await;
    assert_eq!(ready, 503);
    assert_oauth_error(token, 503, "temporarily_unavailable").await;
    let log = server.log.lock().unwrap().join("\n");
    let refused = log
        .lines()
        .find(|l| l.contains("Redis refused keygate's credentials"))
        .unwrap_or_else(|| panic!("no line about the credentials in:\n{log}"));
    assert!(refused.contains("WARN"), "{refused}");
    let serving = log
        .lines()
        .find(|l| l.contains("serving") && l.contains("store="))
        .unwrap();
    assert!(
        serving.contains(&format!(
            "rediss://{USER}:REDACTED@127.0.0.1:{}/0",
            redis.port()
        )),
        "{serving}"
    );
    assert!(!log.contains("panicked"), "{log}");
    assert_no_password(&log, &wrong);
    assert_no_password(&log, &password);
    drop(server);

    let dir = tempfile::tempdir().unwrap();
    let (server, ready, token) = serve_and_probe(
        dir.path(),
        &[
            ("KEYGATE_STORE_URL", &redis.url(USER, &password)),
            ("KEYGATE_STORE_TLS_CA_FILE", ca),
        ],
    )
    .await;
    assert_eq!(ready, 200);
    assert_oauth_error(token, 401, "invalid_client").await;
    let log = server.log.lock().unwrap().join("\n");
    assert!(
        log.contains("store: redis (maxmemory-policy noeviction)"),
        "{log}"
    );
    assert_no_password(&log, &password);
}

/// Builds keygate (as `serve` does) on `url` with `tweak`.
async fn build(
    url: &str,
    tweak: impl FnOnce(&mut keygate::config::Settings),
) -> anyhow::Result<Application> {
    let keys = tempfile::tempdir().unwrap();
    generate_into(keys.path(), Alg::ES256, 1).unwrap();
    let mut settings = crate::helpers::test_settings(keys.path(), url);
    tweak(&mut settings);
    let app = Application::build(settings).await;
    drop(keys);
    app
}

/// (e) A Redis that requires client certificates (`tls-auth-clients yes`,
/// Redis' default) accepts keygate with `store.tls_cert_file` and
/// `store.tls_key_file`, and refuses it without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_satisfies_tls_auth_clients() {
    let (redis, password) = tls_redis(true);
    let url = redis.url(USER, &password);
    let pki = redis.pki();
    let ca = pki.ca_file().display().to_string();

    let app = build(&url, |s| s.store.tls_ca_file = ca.clone())
        .await
        .expect("starts while Redis refuses it");
    assert!(
        app.state().store.ping().await.is_err(),
        "no client certificate, no connection"
    );

    let app = spawn_app_with(Backend::Memory, Alg::ES256, |s| {
        s.store.url = url.clone();
        s.store.tls_ca_file = ca.clone();
        s.store.tls_cert_file = pki.client_cert_file().display().to_string();
        s.store.tls_key_file = pki.client_key_file().display().to_string();
    })
    .await;
    app.state.store.ping().await.unwrap();
    steps::ok_json(
        app.post_token(
            Some(("basic-client", SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await,
    )
    .await;
    let (id, secret) = app.stored_client.clone();
    steps::ok_json(
        app.post_token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await,
    )
    .await;
    assert_eq!(
        acl_log(&redis).await,
        Vec::<String>::new(),
        "nothing was refused"
    );
}

/// The documented decision: when the ACL forbids `CONFIG GET`, the
/// `noeviction` check cannot be made, and keygate refuses to start (as for
/// a policy that is not `noeviction`), saying how to fix it; with
/// `store.require_noeviction = false` it starts and works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_get_forbidden_refuses_to_start_unless_noeviction_is_not_required() {
    let (redis, password) = tls_redis_with_line(false, without("+config|get"));
    let url = redis.url(USER, &password);
    let ca = redis.pki().ca_file().display().to_string();
    let err = build(&url, |s| s.store.tls_ca_file = ca.clone())
        .await
        .err()
        .expect("start-up refused");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("cannot verify Redis' maxmemory-policy")
            && msg.contains("no permissions to run the 'config|get' command")
            && msg.contains("+config|get")
            && msg.contains("store.require_noeviction = false"),
        "{msg}"
    );
    assert!(!msg.contains(&password), "{msg}");

    let app = spawn_app_with(Backend::Memory, Alg::ES256, |s| {
        s.store.url = url.clone();
        s.store.tls_ca_file = ca.clone();
        s.store.require_noeviction = false;
    })
    .await;
    steps::ok_json(
        app.post_token(
            Some(("basic-client", SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await,
    )
    .await;
}

/// An ACL user without a command keygate needs (`EVALSHA`, used for
/// consent, code redemption and refresh rotation) gets a clear NOPERM
/// error: 503 for that request, no panic, and the rest of the server keeps
/// working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_permission_is_a_clear_error_not_a_panic() {
    let (redis, password) = tls_redis_with_line(false, without("+evalsha"));
    let store = acl_store(&redis, &password).await;
    let swap = Swap {
        key: "kg:code:x",
        expected: b"v",
        new: None,
        require: &[],
        puts: &[],
        durable: false,
    };
    let err = store.swap(&swap).await.unwrap_err();
    assert!(err.is_command_refused(), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("no permissions to run the 'evalsha' command"),
        "{text}"
    );

    let url = redis.url(USER, &password);
    let ca = redis.pki().ca_file().display().to_string();
    let app = spawn_app_with(Backend::Memory, Alg::ES256, |s| {
        s.store.url = url;
        s.store.tls_ca_file = ca;
    })
    .await;
    // Signing in works (no script); the consent decision, which marks its
    // form used with the compare-and-swap script, gets a 503 page.
    let (_, challenge) = pkce_pair();
    let path = format!(
        "/oauth/authorize?{}",
        steps::code_query("web-app", "profile", &challenge)
    );
    let browser = app.browser();
    assert_eq!(app.login(&browser, &path).await.status(), 303);
    let csrf = steps::consent_page(&browser, &app.addr, &path).await;
    let resp = browser
        .post(app.url(&path))
        .form(&[("csrf_token", csrf.as_str()), ("decision", "allow")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    // Still serving: what needs no script works.
    steps::ok_json(
        app.post_token(
            Some(("basic-client", SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await,
    )
    .await;
    let log = acl_log(&redis).await;
    assert!(log.iter().any(|e| e.contains("evalsha")), "{log:?}");
}

/// `keygate check-config` connects with the TLS files (OK against the TLS
/// server as the ACL user) and reports a bad CA file by its key, without
/// the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_uses_the_tls_files_and_reports_a_bad_one() {
    let (redis, password) = tls_redis(true);
    let pki = redis.pki();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    generate_into(&d.join("keys"), Alg::ES256, 1).unwrap();
    let url = redis.url(USER, &password);
    let run = |ca: &std::path::Path| {
        let out = command(d)
            .env("KEYGATE_STORE_URL", &url)
            .env("KEYGATE_STORE_TLS_CA_FILE", ca)
            .env("KEYGATE_STORE_TLS_CERT_FILE", pki.client_cert_file())
            .env("KEYGATE_STORE_TLS_KEY_FILE", pki.client_key_file())
            .args(["check-config", "--json"])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(!text.contains(&password), "{text}");
        (out.status.code(), text)
    };
    let (code, text) = run(&pki.ca_file());
    assert_eq!(code, Some(0), "{text}");

    // Not PEM (the client key is PEM, but not certificates).
    let (code, text) = run(&pki.client_key_file());
    assert_eq!(code, Some(1), "{text}");
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{text}");
    assert_eq!(problems[0]["key"], "store.tls_ca_file");
    assert!(
        problems[0]["message"]
            .as_str()
            .unwrap()
            .contains("`PRIVATE KEY`"),
        "{text}"
    );

    // Missing.
    let (code, text) = run(&d.join("nope.crt"));
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("store.tls_ca_file") && text.contains("cannot read"),
        "{text}"
    );
}
