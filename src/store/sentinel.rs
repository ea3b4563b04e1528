//! The shared store behind Redis Sentinel
//! (`redis+sentinel://[user:password@]HOST:PORT,HOST:PORT…/MASTER_NAME`).
//!
//! Sentinel watches one master and its replicas and promotes a replica when
//! the master fails. keygate asks the sentinels where the master is, keeps
//! one multiplexed connection to it, and asks again whenever that
//! connection shows a sign of a failover:
//!
//! - the connection broke, or the master did not answer within the store
//!   timeout (a request abandoned mid-flight counts: [`Suspect`]);
//! - the node answers `READONLY` (it was demoted to a replica) or
//!   `MASTERDOWN`.
//!
//! The request that sees the sign fails (`503 temporarily_unavailable`,
//! never a wrong answer); the next one finds the master the sentinels name
//! then. While no master is known, look-ups are retried at most every
//! [`LOOKUP_BACKOFF`], so an outage costs each request one failed look-up
//! at most, not a queue of them. The redis crate's sentinel client checks
//! the named master with `ROLE` before keygate uses it.
//!
//! [`SentinelConnection`] is a [`ConnectionLike`], so the single-Redis
//! store ([`super::redis::RedisStore`]) runs every command, script and
//! `WAIT` over it unchanged.
//!
//! Never logs the URL (it may hold passwords), keys or values.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, RedisError, RedisFuture, ServerErrorKind, Value,
};

use super::StoreError;

/// The shortest time between two master look-ups that failed.
const LOOKUP_BACKOFF: Duration = Duration::from_millis(200);

/// A parsed `redis+sentinel://` URL. `Debug` never shows a password.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelUrl {
    /// `user:password@` before the first host (still percent-encoded): the
    /// ACL user keygate logs in as on the master and the replicas.
    userinfo: Option<String>,
    /// The sentinels, `host:port` (IPv6 hosts in brackets; port 26379 when
    /// omitted).
    pub sentinels: Vec<String>,
    /// The name the sentinels monitor the master under.
    pub master_name: String,
    /// `?sentinel_username=…&sentinel_password=…`: what the sentinels
    /// themselves require (`requirepass` / ACL in sentinel.conf), if any.
    sentinel_username: Option<String>,
    sentinel_password: Option<String>,
}

impl fmt::Debug for SentinelUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl SentinelUrl {
    /// Parses the URL form of SPEC.md "Store URL forms". The error says what
    /// is wrong without echoing the URL (it may hold a password).
    ///
    /// # Errors
    /// Not a sentinel URL, no sentinel, a malformed host, credentials
    /// anywhere but before the first host, no master name, or an unknown
    /// query parameter.
    pub fn parse(raw: &str) -> Result<SentinelUrl, String> {
        const FORM: &str = "`redis+sentinel://[user:password@]HOST:PORT,HOST:PORT…/MASTER_NAME`";
        let Some(rest) = raw.strip_prefix("redis+sentinel://") else {
            return Err(if raw.starts_with("rediss+sentinel://") {
                "TLS to Redis under Sentinel (`rediss+sentinel://`) is not supported yet; \
                 use `redis+sentinel://` on a private network, or Redis Cluster or one Redis \
                 over `rediss://`"
                    .into()
            } else {
                format!("a sentinel URL has the form {FORM}")
            });
        };
        if rest.contains('#') {
            return Err(format!("a sentinel URL takes no fragment: {FORM}"));
        }
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let Some((authority, master_name)) = rest.split_once('/') else {
            return Err(format!(
                "the sentinel URL names no master (`/MASTER_NAME`): {FORM}"
            ));
        };
        if master_name.is_empty() || master_name.contains(['/', ' ']) {
            return Err(format!(
                "the master name of the sentinel URL must be one path segment: {FORM}"
            ));
        }
        let (userinfo, hosts) = super::cluster::split_userinfo(authority)?;
        let sentinels = super::cluster::parse_nodes(hosts, "sentinel", "sentinel", 26379)?;
        let master_name = percent_decode(master_name)
            .ok_or("the master name of the sentinel URL is not valid percent-encoded UTF-8")?;
        let mut url = SentinelUrl {
            userinfo,
            sentinels,
            master_name,
            sentinel_username: None,
            sentinel_password: None,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v).ok_or_else(|| {
                format!("the sentinel URL's `{k}` is not valid percent-encoded UTF-8")
            })?;
            match k {
                "sentinel_username" => url.sentinel_username = Some(v),
                "sentinel_password" => url.sentinel_password = Some(v),
                _ => {
                    return Err(
                        "the sentinel URL takes only the query parameters `sentinel_username` \
                         and `sentinel_password` (what the sentinels themselves require)"
                            .into(),
                    )
                }
            }
        }
        Ok(url)
    }

    /// One `redis://` URL per sentinel, with the sentinels' own
    /// credentials. Secret.
    fn sentinel_urls(&self) -> Vec<String> {
        let auth = match (&self.sentinel_username, &self.sentinel_password) {
            (None, None) => String::new(),
            (user, pass) => format!(
                "{}:{}@",
                encode(user.as_deref().unwrap_or("")),
                encode(pass.as_deref().unwrap_or(""))
            ),
        };
        self.sentinels
            .iter()
            .map(|s| format!("redis://{auth}{s}"))
            .collect()
    }

    /// How keygate logs in on the master and the replicas (the URL's
    /// `user:password@`), without `CLIENT SETINFO` (see
    /// [`super::redis`]'s `open_client`).
    fn data_node_settings(&self) -> Result<redis::RedisConnectionInfo, String> {
        let auth = self
            .userinfo
            .as_ref()
            .map_or(String::new(), |u| format!("{u}@"));
        let info = redis::IntoConnectionInfo::into_connection_info(format!("redis://{auth}h"))
            .map_err(|_| "the credentials of the sentinel URL are malformed".to_string())?;
        Ok(info.redis_settings().clone().set_skip_set_lib_name())
    }

    /// The URL with every password replaced by `REDACTED`, for logs.
    pub fn redacted(&self) -> String {
        let auth = match &self.userinfo {
            Some(u) => match u.split_once(':') {
                Some((user, _)) => format!("{user}:REDACTED@"),
                None => format!("{u}@"),
            },
            None => String::new(),
        };
        let mut query = vec![];
        if let Some(u) = &self.sentinel_username {
            query.push(format!("sentinel_username={}", encode(u)));
        }
        if self.sentinel_password.is_some() {
            query.push("sentinel_password=REDACTED".to_owned());
        }
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{}", query.join("&"))
        };
        format!(
            "redis+sentinel://{auth}{}/{}{query}",
            self.sentinels.join(","),
            encode(&self.master_name)
        )
    }
}

fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The master keygate talks to now.
#[derive(Clone)]
struct Current {
    /// Counts look-ups, so that a stale failure report cannot drop a newer
    /// connection.
    generation: u64,
    conn: MultiplexedConnection,
}

struct Resolver {
    client: SentinelClient,
    /// Earliest time of the next look-up after one failed, and its error.
    failed: Option<(Instant, RedisError)>,
    generation: u64,
}

struct Inner {
    /// Secret (passwords): for the start-up look-up of the replicas.
    url: SentinelUrl,
    resolver: tokio::sync::Mutex<Resolver>,
    current: Mutex<Option<Current>>,
    config: AsyncConnectionConfig,
    timeout: Duration,
}

/// One multiplexed connection to the master the sentinels name, found
/// again after every sign of a failover (module docs). Cheap to clone:
/// clones share the connection.
#[derive(Clone)]
pub struct SentinelConnection {
    inner: Arc<Inner>,
}

impl fmt::Debug for SentinelConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentinelConnection")
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl SentinelConnection {
    /// Prepares the connection; contacts nobody (the first command looks
    /// the master up).
    ///
    /// # Errors
    /// [`StoreError::Misconfigured`] if `url` is not a valid sentinel URL.
    pub fn new(url: &str, timeout: Duration) -> Result<SentinelConnection, StoreError> {
        let parsed = SentinelUrl::parse(url).map_err(StoreError::Misconfigured)?;
        let settings = parsed
            .data_node_settings()
            .map_err(StoreError::Misconfigured)?;
        let node = SentinelNodeConnectionInfo::default().set_redis_connection_info(settings);
        let client = SentinelClient::build(
            parsed.sentinel_urls(),
            parsed.master_name.clone(),
            Some(node),
            SentinelServerType::Master,
        )
        .map_err(|e| StoreError::Misconfigured(format!("invalid sentinel URL: {e}")))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        Ok(SentinelConnection {
            inner: Arc::new(Inner {
                url: parsed,
                resolver: tokio::sync::Mutex::new(Resolver {
                    client,
                    failed: None,
                    generation: 0,
                }),
                current: Mutex::new(None),
                config,
                timeout,
            }),
        })
    }

    /// The `maxmemory-policy` of every replica the sentinels list as
    /// healthy, as `(host:port, policy)`: a replica becomes the master at
    /// failover, so start-up requires `noeviction` there too.
    ///
    /// # Errors
    /// No sentinel answers, or a replica does not answer `CONFIG GET`.
    pub async fn replica_eviction_policies(&self) -> Result<Vec<(String, String)>, StoreError> {
        let run = async {
            let url = &self.inner.url;
            let settings = url
                .data_node_settings()
                .map_err(StoreError::Misconfigured)?;
            let node = SentinelNodeConnectionInfo::default().set_redis_connection_info(settings);
            let mut sentinel = redis::sentinel::Sentinel::build(url.sentinel_urls())?;
            let replicas = sentinel
                .async_get_replica_clients(&url.master_name, Some(&node))
                .await?;
            let mut out = vec![];
            for replica in replicas {
                let addr = replica.get_connection_info().addr().to_string();
                let mut conn = replica
                    .get_multiplexed_async_connection_with_config(&self.inner.config)
                    .await?;
                let mut reply: std::collections::HashMap<String, String> = redis::cmd("CONFIG")
                    .arg("GET")
                    .arg("maxmemory-policy")
                    .query_async(&mut conn)
                    .await?;
                let policy = reply.remove("maxmemory-policy").ok_or_else(|| {
                    StoreError::Misconfigured(format!(
                        "the Redis replica {addr} did not report maxmemory-policy"
                    ))
                })?;
                out.push((addr, policy));
            }
            Ok::<_, StoreError>(out)
        };
        match tokio::time::timeout(self.inner.timeout, run).await {
            Ok(r) => r,
            Err(_elapsed) => Err(StoreError::Timeout),
        }
    }

    fn current(&self) -> Option<Current> {
        self.inner
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The master's connection, looking it up first if there is none.
    async fn connection(&self) -> Result<Current, RedisError> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let mut resolver = self.inner.resolver.lock().await;
        // Another request may have looked it up while this one waited.
        if let Some(c) = self.current() {
            return Ok(c);
        }
        if let Some((until, err)) = &resolver.failed {
            if Instant::now() < *until {
                return Err(err.clone());
            }
        }
        let lookup = async {
            let client = resolver.client.async_get_client().await?;
            client
                .get_multiplexed_async_connection_with_config(&self.inner.config)
                .await
        };
        let found = match tokio::time::timeout(self.inner.timeout, lookup).await {
            Ok(found) => found,
            Err(_elapsed) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the sentinels or the master they name did not answer in time",
            ))),
        };
        match found {
            Ok(conn) => {
                resolver.failed = None;
                resolver.generation += 1;
                let current = Current {
                    generation: resolver.generation,
                    conn,
                };
                *self
                    .inner
                    .current
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(current.clone());
                tracing::info!(
                    lookup = resolver.generation,
                    "store: connected to the Redis master named by the sentinels"
                );
                Ok(current)
            }
            Err(e) => {
                resolver.failed = Some((Instant::now() + LOOKUP_BACKOFF, e.clone()));
                Err(e)
            }
        }
    }

    /// Drops the connection of look-up `generation` (if it is still the
    /// current one), so that the next command looks the master up again.
    fn forget(&self, generation: u64) {
        let mut current = self
            .inner
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.as_ref().is_some_and(|c| c.generation == generation) {
            *current = None;
            tracing::warn!(
                lookup = generation,
                "store: the Redis master stopped answering as a master; asking the sentinels again"
            );
        }
    }
}

/// Whether `e` may mean that the node is no longer the master.
fn is_failover_sign(e: &RedisError) -> bool {
    e.is_unrecoverable_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || matches!(
            e.kind(),
            ErrorKind::Io
                | ErrorKind::Server(ServerErrorKind::ReadOnly)
                | ErrorKind::Server(ServerErrorKind::MasterDown)
        )
}

/// Forgets the connection unless the command it guards finished without a
/// failover sign; a command abandoned mid-flight (the store timeout fired)
/// leaves the guard armed.
struct Suspect<'a> {
    conn: &'a SentinelConnection,
    generation: u64,
    armed: bool,
}

impl Suspect<'_> {
    fn settle<T>(mut self, result: &Result<T, RedisError>) {
        self.armed = matches!(result, Err(e) if is_failover_sign(e));
    }
}

impl Drop for Suspect<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.conn.forget(self.generation);
        }
    }
}

impl ConnectionLike for SentinelConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut current = self.connection().await?;
            let guard = Suspect {
                conn: self,
                generation: current.generation,
                armed: true,
            };
            let result = current.conn.req_packed_command(cmd).await;
            guard.settle(&result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut current = self.connection().await?;
            let guard = Suspect {
                conn: self,
                generation: current.generation,
                armed: true,
            };
            let result = current
                .conn
                .req_packed_commands(pipeline, offset, count)
                .await;
            guard.settle(&result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_parse_with_precise_errors() {
        let u = SentinelUrl::parse(
            "redis+sentinel://kg:p%40ss@127.0.0.1:26379,[::1]:26380,s3/mymaster",
        )
        .unwrap();
        assert_eq!(u.sentinels, ["127.0.0.1:26379", "[::1]:26380", "s3:26379"]);
        assert_eq!(u.master_name, "mymaster");
        assert_eq!(
            u.redacted(),
            "redis+sentinel://kg:REDACTED@127.0.0.1:26379,[::1]:26380,s3:26379/mymaster"
        );
        assert_eq!(
            u.sentinel_urls(),
            [
                "redis://127.0.0.1:26379",
                "redis://[::1]:26380",
                "redis://s3:26379"
            ]
        );
        let settings = u.data_node_settings().unwrap();
        assert_eq!(settings.username(), Some("kg"));
        assert_eq!(settings.password(), Some("p@ss"));
        assert!(!format!("{u:?}").contains("p%40ss"));

        let q = SentinelUrl::parse(
            "redis+sentinel://h:1/m?sentinel_username=s&sentinel_password=a%26b",
        )
        .unwrap();
        assert_eq!(q.sentinel_urls(), ["redis://s:a%26b@h:1"]);
        assert_eq!(
            q.redacted(),
            "redis+sentinel://h:1/m?sentinel_username=s&sentinel_password=REDACTED"
        );

        for (url, why) in [
            ("redis+sentinel://h:1", "names no master"),
            ("redis+sentinel://h:1/", "one path segment"),
            ("redis+sentinel://h:1/a/b", "one path segment"),
            ("redis+sentinel:///m", "names no"),
            ("redis+sentinel://h:1,,h:2/m", "sentinel 2"),
            ("redis+sentinel://h:1/m?db=2", "only the query parameters"),
            ("redis+sentinel://h:1/m#x", "no fragment"),
            ("rediss+sentinel://h:1/m", "not supported yet"),
            ("redis://h:1/m", "has the form"),
        ] {
            let err = SentinelUrl::parse(url).unwrap_err();
            assert!(err.contains(why), "{url}: {err}");
        }
        let err = SentinelUrl::parse("redis+sentinel://u:secret@h:1,x@h:2/m").unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn failover_signs_are_connection_faults_and_demotions() {
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(is_failover_sign(&io));
        let timeout = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(is_failover_sign(&timeout));
        let readonly = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ReadOnly),
            "You can't write against a read only replica.",
        ));
        assert!(is_failover_sign(&readonly));
        let wrongtype = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ResponseError),
            "WRONGTYPE",
        ));
        assert!(!is_failover_sign(&wrongtype));
    }
}
