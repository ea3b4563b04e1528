//! Builds the application from settings (store, keys, clients, routes), binds
//! the listener, and runs it until a shutdown signal.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;

use crate::clock::{Clock, SystemClock};
use crate::config::{MetricsExposure, Profile, Settings, StoreBackend, Validated};
use crate::flows::clients::build;
use crate::lifecycle::{Lifecycle, Phase, StopRequests};
use crate::limits::Limits;
use crate::metrics::{InstrumentedStore, Metrics};
use crate::oauth::authorize::Policy;
use crate::oauth::types::{Client, GrantType};
use crate::state::AppState;
use crate::store::cluster::RedisClusterStore;
use crate::store::memory::MemoryStore;
use crate::store::redis::RedisStore;
use crate::store::repos::{Repos, User};
use crate::store::{Store, StoreError};
use crate::tokens::keys::{generate_into, Alg};
use crate::tokens::{KeyError, KeySet, Keys};

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    /// The `/metrics` listener, when `metrics.listen` names one.
    metrics: Option<(TcpListener, SocketAddr)>,
    state: AppState,
}

impl Application {
    /// Validates `settings`, opens the store, loads (or creates) keys, and binds.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// [`Application::build`] with an injected clock (tests).
    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let state = build_state(settings, clock).await?;
        let listener = TcpListener::bind(state.cfg.listen)
            .await
            .with_context(|| format!("server.listen: cannot listen on {}", state.cfg.listen))?;
        let addr = listener
            .local_addr()
            .context("listener has no socket address")?;
        let metrics = match state.cfg.metrics {
            MetricsExposure::Separate(at) => {
                let l = TcpListener::bind(at)
                    .await
                    .with_context(|| format!("metrics.listen: cannot listen on {at}"))?;
                let a = l.local_addr().context("listener has no socket address")?;
                Some((l, a))
            }
            MetricsExposure::Main | MetricsExposure::Off => None,
        };
        Ok(Self {
            listener,
            addr,
            metrics,
            state,
        })
    }

    /// The bound port (useful with `server.listen = "127.0.0.1:0"`).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound address of the `/metrics` listener, if it has its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(_, a)| *a)
    }

    /// The shared state (tests inspect the store through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Logs what is about to run (README "Observability"): version, config
    /// file, profile, store (password redacted), issuer and listen address,
    /// signing keys, the config file's entries, and a warning for each kind
    /// of dev credential loaded. Never a secret.
    pub fn log_banner(&self, settings: &Settings, config_file: Option<&std::path::Path>) {
        let cfg = &self.state.cfg;
        let version = env!("CARGO_PKG_VERSION");
        let config = config_file.map_or_else(
            || "none (built-in defaults and KEYGATE_* variables)".to_string(),
            |p| p.display().to_string(),
        );
        let profile = match cfg.profile {
            Profile::OAuth21 => "oauth21",
            Profile::Legacy => "legacy",
        };
        tracing::info!(version, config = %config, profile, "keygate {version} starting");
        let metrics = match cfg.metrics {
            MetricsExposure::Main => "main listener".to_string(),
            MetricsExposure::Separate(at) => at.to_string(),
            MetricsExposure::Off => "off".to_string(),
        };
        tracing::info!(
            store = %cfg.store.redacted(),
            issuer = %cfg.issuer,
            listen = %self.addr,
            metrics = %metrics,
            "serving"
        );
        let set = self.state.keys.current();
        let signer = set.signer_at(self.state.clock.now());
        let published: Vec<String> = set
            .all()
            .iter()
            .map(|k| format!("{}/{}", k.kid, k.alg))
            .collect();
        tracing::info!(
            kid = %signer.kid,
            alg = %signer.alg,
            published = %published.join(","),
            dir = %cfg.keys_dir.display(),
            "signing keys"
        );
        tracing::info!(
            clients = settings.clients.len(),
            users = settings.users.len(),
            resources = settings.resources.len(),
            "config file entries"
        );
        let plain: Vec<&str> = settings
            .clients
            .iter()
            .filter(|c| c.client_secret.is_some())
            .map(|c| c.client_id.as_str())
            .collect();
        if !plain.is_empty() {
            tracing::warn!(
                clients = %plain.join(","),
                "DEV CREDENTIALS LOADED: [[clients]] with plain-text secrets from the config file (development only; refused unless server.issuer and server.listen are loopback)"
            );
        }
        let demo: Vec<&str> = settings
            .users
            .iter()
            .filter(|u| u.password_hash == crate::config::DEMO_PASSWORD_HASH)
            .map(|u| u.username.as_str())
            .collect();
        if !demo.is_empty() {
            tracing::warn!(
                users = %demo.join(","),
                "DEV CREDENTIALS LOADED: [[users]] with the demo user's published password (development only; refused unless server.issuer and server.listen are loopback)"
            );
        }
    }

    /// Serves until `shutdown` resolves, then stops as on SIGTERM: drain,
    /// close, grace (see [`crate::lifecycle`]). Only one stop request comes
    /// from `shutdown`, so the drain and the grace period run their course.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.run(StopRequests::once(shutdown)).await
    }

    /// Serves until the first of `stops` (see [`crate::lifecycle`]): then
    /// `/readyz` answers 503 while every request is still served, with
    /// `Connection: close`, for `server.drain_secs` (the next stop request
    /// ends the drain early); then both listeners (main and `metrics.listen`)
    /// stop accepting and in-flight requests get `server.shutdown_grace_secs`
    /// to finish (the next stop request drops them). Each phase is logged.
    pub async fn run(self, mut stops: StopRequests) -> std::io::Result<()> {
        let cfg = self.state.cfg.clone();
        let life = self.state.lifecycle.clone();
        let (drain, grace) = (cfg.server.drain, cfg.server.shutdown_grace);
        spawn_key_reloader(
            self.state.keys.clone(),
            self.state.clock.clone(),
            cfg.keys.reload_every,
        );
        spawn_limit_sweeper(self.state.limits.clone(), cfg.limits.sweep_every);
        tracing::info!(addr = %self.addr, issuer = %cfg.issuer, "keygate listening");
        let header_timeout = cfg.server.header_read_timeout;
        // The metrics listener follows the same lifecycle as the main one:
        // a scrape during the drain still succeeds.
        let metrics = self.metrics.map(|(listener, addr)| {
            tracing::info!(%addr, "metrics listening");
            let ep = crate::http::metrics_only(self.state.clone());
            tokio::spawn(serve(
                listener,
                addr,
                ep,
                header_timeout,
                life.clone(),
                grace,
            ))
        });
        let app = crate::http::routes(self.state);
        let main = tokio::spawn(serve(
            self.listener,
            self.addr,
            app,
            header_timeout,
            life.clone(),
            grace,
        ));

        let signal = stops.next().await;
        life.advance(Phase::Draining);
        tracing::info!(
            signal,
            drain_secs = drain.as_secs(),
            "stop requested: draining (/readyz answers 503, requests are still served with Connection: close; a second stop request skips the rest of the drain)"
        );
        tokio::select! {
            () = tokio::time::sleep(drain) => {
                tracing::info!(drain_secs = drain.as_secs(), "drain over");
            }
            signal = stops.next() => {
                tracing::info!(signal, "second stop request: skipping the rest of the drain");
            }
        }
        life.advance(Phase::Closing);
        tracing::info!(
            grace_secs = grace.as_secs(),
            "no longer accepting connections; in-flight requests are finishing (idle connections are closed)"
        );
        let finished = async move {
            let main = main.await;
            if let Some(task) = metrics {
                task.await.map_err(std::io::Error::other)??;
            }
            main.map_err(std::io::Error::other)?
        };
        let mut finished = std::pin::pin!(finished);
        let served = tokio::select! {
            served = &mut finished => served,
            signal = stops.next() => {
                tracing::warn!(signal, "another stop request: dropping the connections still open");
                life.advance(Phase::Abandoning);
                finished.await
            }
        };
        tracing::info!("stopped");
        served
    }
}

/// The accept loop: every connection is served by hyper's HTTP/1.1 server
/// with poem's endpoint as the service, until `life` reaches
/// [`Phase::Closing`]; then the listener is closed and the open
/// connections get `grace` to finish (see [`crate::lifecycle`]).
///
/// keygate drives hyper itself rather than through `poem::Server` because poem
/// 3 sets no hyper timer, which leaves hyper's header read timeout inert: a
/// client could hold a connection open forever by sending its request head a
/// byte at a time (slowloris). Here `header_timeout` bounds the time from the
/// moment a connection waits for a request head (on accept, and again after
/// each response on a kept-alive connection) until the head is complete, so
/// it is also the keep-alive idle timeout. Bodies are bounded separately by
/// `server.body_read_timeout_secs` (`http::size_limits`).
///
/// HTTP/1.1 only: cleartext HTTP/2 (prior knowledge, which `poem::Server`
/// also accepted) has no request-head timeout in hyper and would reopen the
/// hole; TLS-terminating proxies in front speak HTTP/1.1 to keygate.
///
/// From the stop request on, every response carries `Connection: close`
/// (hyper then closes the connection after it): a keep-alive client moves
/// to a new connection (to another instance) at its next request during the
/// drain, instead of sending on an idle connection just as the server closes
/// it. What is left when the listener closes are connections that stayed
/// idle for the whole drain, which clients with an idle timeout shorter than
/// `server.drain_secs` have given up already (README "Rolling restarts").
async fn serve<E: Endpoint + 'static>(
    listener: TcpListener,
    local: SocketAddr,
    ep: E,
    header_timeout: Duration,
    life: Arc<Lifecycle>,
    grace: Duration,
) -> std::io::Result<()> {
    let ep = Arc::new(ep);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let graceful = GracefulShutdown::new();
    let mut closing = std::pin::pin!(life.reached(Phase::Closing));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // e.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut closing => break,
        };
        let service = hyper::service::service_fn({
            let ep = ep.clone();
            let life = life.clone();
            move |req: hyper::Request<hyper::body::Incoming>| {
                let ep = ep.clone();
                let life = life.clone();
                async move {
                    let req = poem::Request::from((
                        req,
                        LocalAddr(Addr::SocketAddr(local)),
                        RemoteAddr(Addr::SocketAddr(peer)),
                        poem::http::uri::Scheme::HTTP,
                    ));
                    let mut resp: hyper::Response<_> = ep.get_response(req).await.into();
                    if life.is_stopping() {
                        resp.headers_mut().insert(
                            hyper::header::CONNECTION,
                            hyper::header::HeaderValue::from_static("close"),
                        );
                    }
                    Ok::<_, std::convert::Infallible>(resp)
                }
            }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(remote_addr = %peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!(addr = %local, "listener closed");
    tokio::select! {
        finished = tokio::time::timeout(grace, graceful.shutdown()) => {
            if finished.is_err() {
                tracing::warn!(%local, "shutdown grace period over; dropping the remaining connections");
            }
        }
        () = life.reached(Phase::Abandoning) => {}
    }
    Ok(())
}

/// Builds the shared state from settings: validation, store, keys, clients,
/// users, metadata. Used by `serve` (the CLI's store commands use [`open_store_only`]).
pub async fn build_state(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<AppState> {
    let cfg = settings.validate()?;
    // Refused here, not in `validate`: the CLI's key and store commands
    // work with the production example's placeholder issuer.
    if let Some(why) = crate::config::placeholder_issuer(&cfg.issuer) {
        bail!("config error: `server.issuer`: {why}");
    }
    if cfg.profile == Profile::Legacy {
        tracing::warn!("oauth.profile = \"legacy\": implicit and password grants may be enabled for clients registered for them; use \"oauth21\" in production");
    }
    let metrics = Arc::new(Metrics::new());
    let store = open_store(&cfg, true).await?;
    let store: Store = Arc::new(InstrumentedStore::new(store, &metrics));
    let keys = Arc::new(load_or_create_keys(&cfg, clock.now())?);
    let config_clients = config_clients(&settings, &cfg)?;
    if cfg.profile == Profile::OAuth21 {
        for c in config_clients.values() {
            if c.allows(GrantType::Implicit) || c.allows(GrantType::Password) {
                tracing::warn!(client_id = %c.client_id, "this [[clients]] entry names the implicit or password grant, which oauth.profile = \"oauth21\" does not serve: those requests will be refused");
            }
        }
    }
    let policy = Policy {
        implicit: cfg.profile == Profile::Legacy,
        password: cfg.profile == Profile::Legacy,
        pkce_required_for_all: cfg.profile == Profile::OAuth21,
        allow_plain_pkce: cfg.allow_plain_pkce,
    };
    let metadata = serde_json::to_vec(&crate::http::api::server_metadata(
        &cfg.issuer,
        cfg.client_rules.scopes.iter().map(str::to_string).collect(),
        &policy,
        cfg.registration.possible(),
        cfg.registration.documents.enabled,
    ))?
    .into();
    let documents = Arc::new(crate::flows::client_documents::ClientDocuments::new(
        cfg.registration.documents.clone(),
    )?);
    let config_users = config_users(&settings);
    let store_for_key = store.clone();
    let limits = Limits::new(&cfg.limits);
    let config_origins = config_clients
        .values()
        .flat_map(Client::cors_origins)
        .collect();
    let repos = Repos::new(store.clone(), cfg.tokens.access_ttl).with_clock(clock.clone());
    index_origins(&repos).await;
    let state = AppState {
        repos,
        store,
        config_origins: Arc::new(config_origins),
        config_resources: Arc::new(cfg.resources.iter().map(|r| (r.id(), r.clone())).collect()),
        config_clients: Arc::new(config_clients),
        keys,
        clock,
        cfg: Arc::new(cfg),
        metrics,
        metadata,
        config_users: Arc::new(config_users),
        policy,
        csrf_key: shared_key(&store_for_key, "csrf").await,
        limits: Arc::new(limits),
        documents,
        lifecycle: Arc::new(crate::lifecycle::Lifecycle::new()),
    };
    Ok(state)
}

/// Indexes the CORS origins of clients stored before the origin index
/// existed: once per store (later starts read one marker key). Like the
/// shared CSRF key, a store that is down at start does not stop the server:
/// the failure is logged and the next start tries again.
async fn index_origins(repos: &Repos) {
    match repos.index_origins_once().await {
        Ok(true) => tracing::info!("indexed the CORS origins of the stored clients"),
        Ok(false) => {}
        Err(e) => tracing::warn!(
            error = %e,
            "could not index the CORS origins of the stored clients; retrying at the next start"
        ),
    }
}

/// What the CLI's client and user commands work on. Opening it creates no
/// signing key and no CSRF secret, unlike [`build_state`].
pub struct StoreContext {
    /// Validated settings.
    pub cfg: Validated,
    /// Typed access to the store.
    pub repos: Repos,
    /// Users from `[[users]]`, by lower-case username (their names are taken).
    pub config_users: HashMap<String, User>,
}

/// Validates `settings` and opens only the store (see [`StoreContext`]).
pub async fn open_store_only(settings: &Settings) -> anyhow::Result<StoreContext> {
    let cfg = settings.validate()?;
    let store = open_store(&cfg, false).await?;
    Ok(StoreContext {
        repos: Repos::new(store, cfg.tokens.access_ttl),
        config_users: config_users(settings),
        cfg,
    })
}

/// The default id (`sub`) of a `[[users]]` entry without `id`: `cfg-` and
/// the first 22 characters of base64url(SHA-256("keygate-config-user:" +
/// lower-cased username)). Stable for a name, and the name cannot be read
/// back from it.
pub fn config_user_id(username: &str) -> String {
    use base64::Engine;
    let input = format!("keygate-config-user:{}", username.to_lowercase());
    let digest = ring::digest::digest(&ring::digest::SHA256, input.as_bytes());
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref());
    format!("cfg-{}", &b64[..22])
}

/// `[[users]]` from the config file, by lower-case username.
fn config_users(settings: &Settings) -> HashMap<String, User> {
    settings
        .users
        .iter()
        .map(|u| {
            let user = User {
                id: u.id.clone().unwrap_or_else(|| config_user_id(&u.username)),
                username: u.username.clone(),
                email: u.email.clone(),
                password_hash: u.password_hash.clone(),
                created_at: 0,
                name: u
                    .name
                    .as_deref()
                    .and_then(|n| crate::flows::users::clean_name(n).ok().flatten()),
                email_verified: false,
                updated_at: 0,
            };
            (u.username.to_lowercase(), user)
        })
        .collect()
}

/// Opens the configured store. `serving`: a server, which on a Redis
/// Cluster subscribes to client changes so that its client cache can be
/// trusted (a one-shot CLI command does not).
async fn open_store(cfg: &Validated, serving: bool) -> anyhow::Result<Store> {
    let options = &cfg.store_options;
    match &cfg.store {
        StoreBackend::Memory => {
            tracing::info!("store: in-memory (state is lost on restart; use Redis in production)");
            Ok(MemoryStore::with_limits(
                crate::store::memory::DEFAULT_SWEEP_INTERVAL,
                options.memory_max_entries,
            ))
        }
        backend @ (StoreBackend::Redis(_) | StoreBackend::RedisSentinel(_)) => {
            let over_tls = matches!(backend, StoreBackend::Redis(u) if u.expose_secret().starts_with("rediss:"));
            let store = connect_redis(backend, &options.tls, options.timeout)
                .await
                .map_err(|e| anyhow::anyhow!("store.url: {e}"))?
                .with_durability(options.durability);
            match store.eviction_policy().await {
                Ok(p) if p == "noeviction" => tracing::info!("store: redis (maxmemory-policy noeviction)"),
                Ok(p) if options.require_noeviction => bail!(
                    "store.url: Redis runs with maxmemory-policy `{p}`; keygate requires `noeviction` \
                     (an evicted revocation or used-code record would bring a dead token back). \
                     Run `CONFIG SET maxmemory-policy noeviction` or set it in redis.conf \
                     (store.require_noeviction = false runs anyway)"
                ),
                Ok(p) => tracing::error!(
                    policy = %p,
                    "store: Redis may EVICT keys (maxmemory-policy `{p}`): an evicted revocation or \
                     used-code record brings a dead token back. Running anyway because \
                     store.require_noeviction = false; set maxmemory-policy noeviction"
                ),
                // Redis answers but will not say: the ACL forbids `CONFIG
                // GET` or the provider disabled CONFIG. Unverified is not
                // verified (docs/redis.md "TLS and ACL").
                Err(e) if e.is_command_refused() || matches!(e, StoreError::Misconfigured(_)) => {
                    if options.require_noeviction {
                        bail!(
                            "store.url: cannot verify Redis' maxmemory-policy ({e}); keygate requires \
                             `noeviction` (an evicted revocation or used-code record would bring a dead \
                             token back). Allow `CONFIG GET` to keygate's ACL user (`+config|get`, see \
                             docs/redis.md), or, if your provider disables CONFIG and you have checked \
                             that it runs with noeviction, set store.require_noeviction = false"
                        )
                    }
                    tracing::warn!(
                        error = %e,
                        "store: could not verify Redis' maxmemory-policy (CONFIG GET refused); running \
                         because store.require_noeviction = false: make sure Redis runs with noeviction"
                    )
                }
                Err(e) if e.is_auth_failure() => tracing::warn!(
                    error = %e,
                    "store: Redis refused keygate's credentials (check the user and password of \
                     store.url, and that the ACL user is `on`); serving 503 until it accepts them \
                     (see /readyz)"
                ),
                Err(e) if over_tls => tracing::warn!(
                    error = %e,
                    "store: redis is not reachable at start; serving 503 until it is (see /readyz). \
                     If the error names a certificate: store.tls_ca_file must hold the CA that \
                     signed Redis' certificate, which must name the URL's host, and a Redis with \
                     tls-auth-clients needs store.tls_cert_file and store.tls_key_file"
                ),
                Err(e) => tracing::warn!(
                    error = %e,
                    "store: redis is not reachable at start; serving 503 until it is (see /readyz)"
                ),
            }
            if matches!(cfg.store, StoreBackend::RedisSentinel(_)) {
                check_sentinel_replicas_eviction(&store, options.require_noeviction).await?;
            }
            if options.durability.enabled() {
                warn_if_too_few_replicas(&store, options.durability.replicas).await;
            }
            Ok(Arc::new(store))
        }
        StoreBackend::RedisCluster(url) => {
            let store = RedisClusterStore::connect(url.expose_secret(), options.timeout)
                .await
                .map_err(|e| anyhow::anyhow!("store.url: {e}"))?
                .with_durability(options.durability);
            check_cluster_eviction(&store, options.require_noeviction).await?;
            if serving {
                store.watch_invalidations();
            }
            Ok(Arc::new(store))
        }
    }
}

/// The Redis store of `store.url` (one Redis, with the TLS files of
/// `store.tls_*`, or the master named by the sentinels of a
/// `redis+sentinel://` URL). Does not contact Redis ([`RedisStore::connect`]).
///
/// # Errors
/// A URL that does not parse, TLS files that cannot be read or used, or a
/// backend that is not one Redis or Sentinel.
pub async fn connect_redis(
    backend: &StoreBackend,
    tls: &crate::config::StoreTls,
    timeout: Duration,
) -> Result<RedisStore, StoreError> {
    let url = match backend {
        StoreBackend::Redis(url) => url.expose_secret(),
        // validate() refuses store.tls_* without a `rediss://` URL.
        StoreBackend::RedisSentinel(url) => {
            return RedisStore::connect_sentinel(url.expose_secret(), timeout)
        }
        StoreBackend::Memory | StoreBackend::RedisCluster(_) => {
            return Err(StoreError::Misconfigured(
                "not a single-Redis or Sentinel store URL".into(),
            ))
        }
    };
    let client = tls
        .client
        .as_ref()
        .map(|c| (c.cert_file.as_path(), c.key_file.as_path()));
    let certificates = crate::store::redis::tls_certificates(tls.ca_file.as_deref(), client)?;
    RedisStore::connect_tls(url, certificates.as_ref(), timeout).await
}

/// `store.wait_replicas` asks for more replicas than the master has:
/// every code redemption, rotation and revocation would answer 503 until
/// they connect. Said at start rather than discovered in the first 503s.
async fn warn_if_too_few_replicas(store: &RedisStore, wanted: u32) {
    match store.connected_replicas().await {
        Ok(n) if n < wanted => tracing::warn!(
            connected = n,
            wanted,
            "store: Redis has {n} connected replica(s) but store.wait_replicas = {wanted}: code \
             redemptions, refresh rotations and revocations answer 503 until enough replicas \
             acknowledge them"
        ),
        Ok(n) => tracing::info!(
            connected = n,
            wanted,
            "store: code redemptions, refresh rotations and revocations wait for {wanted} \
             replica acknowledgement(s) (store.wait_replicas)"
        ),
        // Not reachable at start: already said above.
        Err(_) => {}
    }
}

/// The `noeviction` start check of a cluster: every node (a replica is a
/// master after a failover) must run with it.
async fn check_cluster_eviction(
    store: &RedisClusterStore,
    require_noeviction: bool,
) -> anyhow::Result<()> {
    match store.eviction_policies().await {
        Ok(nodes) => check_nodes_eviction("Redis Cluster nodes", &nodes, require_noeviction)?,
        Err(e) => tracing::warn!(
            error = %e,
            "store: redis cluster is not reachable at start; serving 503 until it is (see /readyz)"
        ),
    }
    Ok(())
}

/// The `noeviction` start check of the replicas the sentinels list (each
/// may become the master). A look-up that fails is a warning: the master
/// check before it has said whether Redis answers.
async fn check_sentinel_replicas_eviction(
    store: &RedisStore,
    require_noeviction: bool,
) -> anyhow::Result<()> {
    match store.replica_eviction_policies().await {
        Ok(nodes) => check_nodes_eviction("Redis replicas", &nodes, require_noeviction)?,
        Err(e) => tracing::warn!(
            error = %e,
            "store: could not read the maxmemory-policy of the replicas the sentinels list; \
             make sure every replica runs with noeviction"
        ),
    }
    Ok(())
}

/// Refuses (or, with `store.require_noeviction = false`, logs) `nodes`
/// (`host:port`, policy) that may evict keys; `what` names them.
fn check_nodes_eviction(
    what: &str,
    nodes: &[(String, String)],
    require_noeviction: bool,
) -> anyhow::Result<()> {
    let evicting: Vec<String> = nodes
        .iter()
        .filter(|(_, p)| p != "noeviction")
        .map(|(node, p)| format!("{node} (`{p}`)"))
        .collect();
    if evicting.is_empty() {
        tracing::info!(
            nodes = nodes.len(),
            "store: {what}: maxmemory-policy noeviction on every node"
        );
    } else if require_noeviction {
        bail!(
            "store.url: {what} run without maxmemory-policy noeviction: {}; \
             keygate requires `noeviction` on every node (an evicted revocation or \
             used-code record would bring a dead token back). Run `CONFIG SET \
             maxmemory-policy noeviction` on each node or set it in their redis.conf \
             (store.require_noeviction = false runs anyway)",
            evicting.join(", ")
        );
    } else {
        tracing::error!(
            nodes = %evicting.join(", "),
            "store: {what} may EVICT keys: an evicted revocation or used-code \
             record brings a dead token back. Running anyway because \
             store.require_noeviction = false; set maxmemory-policy noeviction"
        );
    }
    Ok(())
}

/// A 256-bit key shared by every instance on the same store: created once
/// with `SET NX`, then read. If the store is down at start, a process-local
/// key is used (forms from other instances then fail CSRF until a restart).
async fn shared_key(store: &Store, name: &str) -> [u8; 32] {
    use base64::Engine;
    use ring::rand::SecureRandom;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut fresh = [0u8; 32];
    if ring::rand::SystemRandom::new().fill(&mut fresh).is_err() {
        tracing::error!("the operating system's random number generator failed");
    }
    let key = format!("kg:secret:{name}");
    let stored = match store
        .put_new(&key, b64.encode(fresh).as_bytes(), None)
        .await
    {
        Ok(_) => store.get(&key).await.ok().flatten(),
        Err(e) => {
            tracing::warn!(error = %e, "store unreachable at start: using a process-local {name} key");
            None
        }
    };
    match stored.map(|v| b64.decode(v)) {
        Some(Ok(bytes)) if bytes.len() == 32 => {
            let mut out = [0u8; 32];
            out.copy_from_slice(&bytes);
            out
        }
        _ => fresh,
    }
}

/// Loads the key directory, creating one RS256 key when it holds none.
pub fn load_or_create_keys(cfg: &Validated, now: i64) -> anyhow::Result<Keys> {
    let dir = &cfg.keys_dir;
    let set = match KeySet::load_dir(dir, cfg.rotation) {
        Ok(set) => set,
        Err(KeyError::Empty(_)) => create_first_key(cfg, now)?,
        Err(KeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            create_first_key(cfg, now)?
        }
        Err(e) => bail!("keys.dir: {e}"),
    };
    let signer = set.signer_at(now);
    tracing::info!(kid = %signer.kid, alg = %signer.alg, keys = set.all().len(), "signing keys loaded");
    Ok(Keys::new(dir.clone(), set))
}

fn create_first_key(cfg: &Validated, now: i64) -> anyhow::Result<KeySet> {
    let dir = &cfg.keys_dir;
    let key = generate_into(dir, Alg::RS256, now).map_err(|e| anyhow::anyhow!("keys.dir: {e}"))?;
    tracing::info!(path = %key.path.display(), kid = %key.kid, "no signing key found: created a new RS256 key (mode 0600)");
    KeySet::load_dir(dir, cfg.rotation).map_err(|e| anyhow::anyhow!("keys.dir: {e}"))
}

fn config_clients(settings: &Settings, cfg: &Validated) -> anyhow::Result<HashMap<String, Client>> {
    let mut out = HashMap::new();
    let rules = cfg.client_rules.for_config_file();
    for (i, c) in settings.clients.iter().enumerate() {
        let named = |field: &str, message: &str| {
            anyhow::anyhow!("config error: `clients[{i}].{field}`: {message}")
        };
        let meta = crate::config::validate_config_client(c, &rules, cfg.dev_refusal.as_deref())
            .map_err(|(field, message)| named(field, &message))?;
        let reg = build(
            meta,
            &rules,
            0,
            Some(c.client_id.clone()),
            c.client_secret
                .as_ref()
                .map(|s| s.expose_secret().to_string()),
        )
        .map_err(|e| named(e.field, &e.message))?;
        out.insert(c.client_id.clone(), reg.client);
    }
    Ok(out)
}

/// Re-reads the key directory on SIGHUP and every `every` (`None` = SIGHUP only).
/// The signer is chosen at signing time; this task only logs when it changed.
fn spawn_key_reloader(keys: Arc<Keys>, clock: Arc<dyn Clock>, every: Option<Duration>) {
    tokio::spawn(async move {
        let mut signing = keys.current().signer_at(clock.now()).kid.clone();
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let period = every.unwrap_or(Duration::from_secs(u64::MAX / 4));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            #[cfg(unix)]
            {
                let hup_recv = async {
                    match hup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = hup_recv => tracing::info!("SIGHUP: re-reading keys"),
                }
            }
            #[cfg(not(unix))]
            tick.tick().await;
            match keys.reload() {
                Ok(true) => {
                    let set = keys.current();
                    tracing::info!(kid = %set.signer_at(clock.now()).kid, keys = set.all().len(), "signing keys reloaded");
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, "key reload failed; keeping the current keys")
                }
            }
            let set = keys.current();
            let signer = set.signer_at(clock.now());
            if signer.kid != signing {
                tracing::info!(kid = %signer.kid, alg = %signer.alg, "key rotation: a new key signs");
                signing = signer.kid.clone();
            }
        }
    });
}

/// Every `every`, forgets rate-limiter keys whose bucket has refilled,
/// so the limiters hold only the keys active in the last refill period.
fn spawn_limit_sweeper(limits: Arc<Limits>, every: Duration) {
    if limits.is_disabled() {
        return;
    }
    let period = every.max(Duration::from_secs(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tick.tick().await;
            limits.retain_recent();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::config_user_id;

    #[test]
    fn a_config_users_default_id_hides_the_username_and_is_stable() {
        let id = config_user_id("Alice");
        assert_eq!(
            id,
            config_user_id("alice"),
            "case-insensitive like the name"
        );
        assert_ne!(id, config_user_id("bob"));
        assert!(id.starts_with("cfg-") && id.len() == 26, "{id}");
        assert!(!id.to_lowercase().contains("alice"), "{id}");
        assert!(id[4..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
