//! The shared store on a Redis Cluster (`redis+cluster://HOST:PORT,HOST:PORT…`).
//!
//! The redis crate's async cluster client does the routing (by slot, with
//! `MOVED`/`ASK` and topology refresh), and splits a multi-slot `MGET` into
//! one request per node, sent in parallel. keygate's part:
//!
//! - the seed-list URL ([`ClusterUrl`]), checked at start;
//! - atomic operations stay on one slot: [`KvStore::swap`] refuses keys of
//!   different slots ([`StoreError::CrossSlot`]) before they reach Redis,
//!   and [`super::repos`] names keys so that it never has to
//!   ([`Layout::Slotted`], [`super::slots`]);
//! - operations that no single node can answer walk every master: the
//!   `SCAN` of [`KvStore::scan_prefix`] and the start-up check that every
//!   node runs with `maxmemory-policy noeviction`;
//! - the client cache's invalidation feed ([`super::invalidation`]): client
//!   writes `PUBLISH` the client id on [`INVALIDATION_CHANNEL`] (a cluster
//!   broadcasts it to every node) and a task of each serving process keeps
//!   one subscription on a seed node, reporting every notice, and every
//!   subscribe and disconnect, to the feed.
//!
//! Like [`super::redis`], the connection is lazy (keygate starts while the
//! cluster is down and recovers by itself), every call is bounded by the
//! store timeout, and nothing here logs keys, values or the URL (which may
//! hold a password).
//!
//! Must not depend on poem or on the OAuth core: it stores opaque bytes.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
};
use redis::{Cmd, FromRedisValue, Value};

use super::invalidation::Invalidations;
use super::redis::{
    invoke, prefix_pattern, rate_decision, rate_invocation, set_cmd, swap_on, SCAN_COUNT,
};
use super::{slots, Durability, KvStore, Layout, StoreError, Swap};
use crate::rate::{Decision, Quota};

/// The pub/sub channel of client-change notices (payload: the client id).
pub const INVALIDATION_CHANNEL: &str = "kg:invalidate:clients";
/// Retries of one request on `MOVED`/`ASK`/`TRYAGAIN` or a broken node
/// connection; the store timeout bounds the whole call anyway.
const RETRIES: u32 = 3;
const MIN_RETRY_WAIT_MS: u64 = 20;
const MAX_RETRY_WAIT_MS: u64 = 200;
/// How often the subscription is checked with a `PING` (a silently dead
/// connection would otherwise keep the feed "live" while notices are lost).
const SUBSCRIPTION_PING: Duration = Duration::from_secs(2);
/// Back-off between subscription attempts, doubling up to the maximum.
const RESUBSCRIBE_MIN: Duration = Duration::from_millis(50);
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(2);

/// A parsed `redis+cluster://` (or `rediss+cluster://`) URL: seed nodes and
/// the ACL credentials, which go on the first host only and apply to every
/// node. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterUrl {
    /// `rediss+cluster://`: TLS to every node.
    pub tls: bool,
    /// `user:password@` as written (still percent-encoded), if any.
    userinfo: Option<String>,
    /// The seed nodes, `host:port` (IPv6 hosts in brackets).
    pub nodes: Vec<String>,
}

impl fmt::Debug for ClusterUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl ClusterUrl {
    /// Parses the URL form of SPEC.md "Store URL forms". The error says what
    /// is wrong without echoing the URL (it may hold a password).
    ///
    /// # Errors
    /// Not a cluster URL, no host, an empty or malformed host, credentials
    /// anywhere but before the first host, or a path or query.
    pub fn parse(raw: &str) -> Result<ClusterUrl, String> {
        let (tls, rest) = if let Some(rest) = raw.strip_prefix("redis+cluster://") {
            (false, rest)
        } else if let Some(rest) = raw.strip_prefix("rediss+cluster://") {
            (true, rest)
        } else {
            return Err(
                "a cluster URL starts with `redis+cluster://` or `rediss+cluster://`".into(),
            );
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if !(tail.is_empty() || tail == "/") {
            return Err("a cluster URL takes no path, query or fragment: \
                 `redis+cluster://[user:password@]HOST:PORT,HOST:PORT…`"
                .into());
        }
        let (userinfo, hosts) = split_userinfo(authority)?;
        let nodes = parse_nodes(hosts, "seed node", "cluster", 6379)?;
        Ok(ClusterUrl {
            tls,
            userinfo,
            nodes,
        })
    }

    /// One `redis://` (or `rediss://`) URL per seed node, with the
    /// credentials: what the redis crate's cluster client takes. Secret.
    fn seed_urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| self.node_url(n)).collect()
    }

    /// The URL of the node `host:port`, with the credentials. Secret.
    fn node_url(&self, node: &str) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let auth = self
            .userinfo
            .as_ref()
            .map_or(String::new(), |u| format!("{u}@"));
        format!("{scheme}://{auth}{node}")
    }

    /// The URL with the password replaced by `REDACTED`, for logs.
    pub fn redacted(&self) -> String {
        let scheme = if self.tls {
            "rediss+cluster"
        } else {
            "redis+cluster"
        };
        let auth = match &self.userinfo {
            Some(u) => match u.split_once(':') {
                Some((user, _)) => format!("{user}:REDACTED@"),
                None => format!("{u}@"),
            },
            None => String::new(),
        };
        format!("{scheme}://{auth}{}", self.nodes.join(","))
    }
}

/// Splits `user:password@` off the authority of a multi-host URL
/// (`redis+cluster://`, `redis+sentinel://`): credentials go before the
/// first host only. Checked the way the redis crate will read them.
///
/// # Errors
/// Credentials after a later host, or malformed credentials. The message
/// never echoes them.
pub(crate) fn split_userinfo(authority: &str) -> Result<(Option<String>, &str), String> {
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, _)) if u.contains(',') => {
            return Err("credentials (`user:password@`) go before the first host only".into())
        }
        Some((u, h)) => (Some(u.to_string()), h),
        None => (None, authority),
    };
    if let Some(u) = &userinfo {
        url::Url::parse(&format!("redis://{u}@h"))
            .map_err(|_| "the credentials of the URL are malformed".to_string())?;
    }
    Ok((userinfo, hosts))
}

/// The comma-separated `HOST[:PORT]` list of a multi-host URL as
/// `host:port` (IPv6 hosts in brackets, `default_port` when omitted).
/// `what` names one entry in errors ("seed node"), `kind` the URL
/// ("cluster").
///
/// # Errors
/// No host, an empty entry, or one that is not `HOST[:PORT]`.
pub(crate) fn parse_nodes(
    hosts: &str,
    what: &str,
    kind: &str,
    default_port: u16,
) -> Result<Vec<String>, String> {
    if hosts.is_empty() {
        return Err(format!(
            "the {kind} URL names no {what} (HOST:PORT,HOST:PORT…)"
        ));
    }
    let mut nodes = vec![];
    for (i, host) in hosts.split(',').enumerate() {
        let n = i + 1;
        if host.is_empty() {
            return Err(format!("{what} {n} of the {kind} URL is empty"));
        }
        let url = url::Url::parse(&format!("redis://{host}"))
            .map_err(|e| format!("{what} {n} of the {kind} URL is not HOST:PORT ({e})"))?;
        let Some(h) = url.host_str() else {
            return Err(format!("{what} {n} of the {kind} URL has no host"));
        };
        if url.path() != "" && url.path() != "/" {
            return Err(format!("{what} {n} of the {kind} URL is not HOST:PORT"));
        }
        nodes.push(format!("{h}:{}", url.port().unwrap_or(default_port)));
    }
    Ok(nodes)
}

/// A [`KvStore`] on a Redis Cluster. Cheap to clone: clones share the
/// connections and the invalidation feed.
#[derive(Clone)]
pub struct RedisClusterStore {
    conn: ClusterConnection,
    timeout: Duration,
    durability: Durability,
    /// Secret (may hold the password): for the connections the cluster
    /// client does not make (the subscription, the replicas' start check).
    url: Arc<ClusterUrl>,
    /// Secret: [`ClusterUrl::seed_urls`].
    seeds: Arc<Vec<String>>,
    feed: Arc<Invalidations>,
    /// Set once the subscription task runs ([`Self::watch_invalidations`]).
    watching: Arc<OnceLock<()>>,
}

impl fmt::Debug for RedisClusterStore {
    // Hand-written: the seeds may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisClusterStore")
            .field("timeout", &self.timeout)
            .field("seeds", &self.seeds.len())
            .finish_non_exhaustive()
    }
}

impl RedisClusterStore {
    /// Prepares a store for the cluster URL `url`; every later call gives up
    /// after `timeout` with [`StoreError::Timeout`].
    ///
    /// Kept apart from [`super::redis::RedisStore::connect`] on purpose:
    /// connection construction (TLS, ACL) for the cluster is this function.
    ///
    /// Does not contact the cluster: this succeeds while it is down, the
    /// first call connects, and a lost node connection or a changed
    /// topology is recovered by later calls.
    ///
    /// # Errors
    /// [`StoreError::Misconfigured`] at once if the URL does not parse.
    ///
    /// # Panics
    /// Outside a tokio runtime (the cluster client spawns a task).
    pub async fn connect(url: &str, timeout: Duration) -> Result<RedisClusterStore, StoreError> {
        let parsed = ClusterUrl::parse(url).map_err(StoreError::Misconfigured)?;
        let seeds = parsed.seed_urls();
        // The error text comes from the redis crate and never echoes the URL.
        let client: ClusterClient = ClusterClientBuilder::new(seeds.clone())
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(RETRIES)
            .min_retry_wait(MIN_RETRY_WAIT_MS)
            .max_retry_wait(MAX_RETRY_WAIT_MS)
            .build()
            .map_err(|e| StoreError::Misconfigured(format!("invalid Redis Cluster URL: {e}")))?;
        let config = ClusterConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout);
        let conn = client.get_pending_async_connection_with_config(config);
        // Builds the slot-tag table now rather than in the first request.
        let _ = slots::tag_for("");
        Ok(RedisClusterStore {
            conn,
            timeout,
            durability: Durability::default(),
            url: Arc::new(parsed),
            seeds: Arc::new(seeds),
            feed: Arc::new(Invalidations::new()),
            watching: Arc::new(OnceLock::new()),
        })
    }

    /// The same store, with durable writes acknowledged by each shard's
    /// replicas as `durability` says (`store.wait_replicas`).
    #[must_use]
    pub fn with_durability(mut self, durability: Durability) -> RedisClusterStore {
        self.durability = durability;
        self
    }

    /// Starts (once) the task that keeps this process subscribed to client
    /// changes, so that [`KvStore::invalidations`] becomes live and the
    /// client cache can be trusted. `keygate serve` calls it; one-shot CLI
    /// commands do not (they read clients from the store every time). The
    /// task ends when the last clone of the store is dropped.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn watch_invalidations(&self) {
        if self.watching.set(()).is_err() {
            return;
        }
        let feed = Arc::downgrade(&self.feed);
        let seeds = Arc::clone(&self.seeds);
        let timeout = self.timeout;
        tokio::spawn(subscribe_forever(feed, seeds, timeout));
    }

    /// The `maxmemory-policy` of every node (masters and replicas: a
    /// replica becomes a master at failover), by `host:port`, which
    /// start-up requires to be `noeviction` (SPEC.md "Store").
    ///
    /// # Errors
    /// As for any call (including any node being unreachable); also
    /// [`StoreError::Misconfigured`] if a node does not report the setting.
    pub async fn eviction_policies(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("GET").arg("maxmemory-policy");
        let policy = |node: &str, reply: Value| -> Result<String, StoreError> {
            let mut map: std::collections::HashMap<String, String> = parse(reply)?;
            map.remove("maxmemory-policy").ok_or_else(|| {
                StoreError::Misconfigured(format!(
                    "Redis node {node} did not report maxmemory-policy"
                ))
            })
        };
        // The masters through the cluster client; it has no connection to
        // the replicas (reads go to masters only), so they get one each.
        let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
        let mut out = vec![];
        for (node, reply) in self.route(cmd.clone(), routing).await? {
            let p = policy(&node, reply)?;
            out.push((node, p));
        }
        let nodes: String = self.query(redis::cmd("CLUSTER").arg("NODES")).await?;
        for node in replicas(&nodes) {
            let client = redis::Client::open(self.url.node_url(&node))?;
            let reply = tokio::time::timeout(self.timeout, async {
                let mut conn = client.get_multiplexed_async_connection().await?;
                cmd.query_async::<Value>(&mut conn).await
            })
            .await
            .map_err(|_elapsed| StoreError::Timeout)??;
            let p = policy(&node, reply)?;
            out.push((node, p));
        }
        out.sort();
        Ok(out)
    }

    /// Sends `cmd` to several nodes; the replies by node `host:port`.
    async fn route(
        &self,
        cmd: Cmd,
        routing: RoutingInfo,
    ) -> Result<Vec<(String, Value)>, StoreError> {
        let mut conn = self.conn.clone();
        let reply = match tokio::time::timeout(self.timeout, conn.route_command(cmd, routing)).await
        {
            Ok(reply) => reply?,
            Err(_elapsed) => return Err(StoreError::Timeout),
        };
        let Value::Map(pairs) = reply else {
            return Err(StoreError::Misconfigured(
                "Redis Cluster answered a multi-node command with no per-node map".into(),
            ));
        };
        let mut out = vec![];
        for (node, value) in pairs {
            let node: String = parse(node)?;
            out.push((node, value));
        }
        Ok(out)
    }

    /// Runs one command, bounded by the timeout.
    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut conn)).await {
            Ok(reply) => Ok(reply?),
            Err(_elapsed) => Err(StoreError::Timeout),
        }
    }

    /// Every `SCAN` round of every master for one pattern, deduplicated.
    async fn scan_all(&self, pattern: &str) -> Result<BTreeSet<String>, StoreError> {
        let scan = |cursor: u64| {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT);
            cmd
        };
        let mut keys = BTreeSet::new();
        let first = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
        let mut conn = self.conn.clone();
        for (node, reply) in self.route(scan(0), first).await? {
            let (mut cursor, batch): (u64, Vec<Vec<u8>>) = parse(reply)?;
            keys.extend(batch.into_iter().filter_map(|k| String::from_utf8(k).ok()));
            let Some((host, port)) = node.rsplit_once(':') else {
                return Err(StoreError::Misconfigured(format!(
                    "Redis Cluster node address {node} has no port"
                )));
            };
            let port: u16 = port.parse().map_err(|_| {
                StoreError::Misconfigured(format!("Redis Cluster node address {node} has no port"))
            })?;
            while cursor != 0 {
                let at = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.to_string(),
                    port,
                });
                let reply = conn.route_command(scan(cursor), at).await?;
                let (next, batch): (u64, Vec<Vec<u8>>) = parse(reply)?;
                keys.extend(batch.into_iter().filter_map(|k| String::from_utf8(k).ok()));
                cursor = next;
            }
        }
        Ok(keys)
    }
}

/// The `host:port` of every replica in a `CLUSTER NODES` reply (flag
/// `slave`; one that is marked failed too: it may come back).
fn replicas(nodes: &str) -> Vec<String> {
    nodes
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let addr = fields.nth(1)?;
            let flags = fields.next()?;
            flags.split(',').any(|f| f == "slave").then(|| {
                // `ip:port@cport[,hostname]`
                addr.split('@').next().unwrap_or(addr).to_string()
            })
        })
        .collect()
}

/// Decodes one reply.
fn parse<T: FromRedisValue>(v: Value) -> Result<T, StoreError> {
    T::from_redis_value(v).map_err(|e| StoreError::Backend(e.into()))
}

/// Keeps one subscription to [`INVALIDATION_CHANNEL`] on one of the seed
/// nodes (the next one after a failure), reporting to `feed`, until the
/// feed is dropped with the store.
async fn subscribe_forever(feed: Weak<Invalidations>, seeds: Arc<Vec<String>>, timeout: Duration) {
    let mut backoff = RESUBSCRIBE_MIN;
    for seed in seeds.iter().cycle() {
        let Some(live) = feed.upgrade() else {
            return;
        };
        drop(live);
        match subscribe_once(&feed, seed, timeout).await {
            // It was live: the next failure starts from a short back-off.
            Ok(()) => backoff = RESUBSCRIBE_MIN,
            Err(e) => {
                tracing::debug!(error = %e, "client-change subscription failed; retrying");
            }
        }
        if let Some(f) = feed.upgrade() {
            f.set_live(false);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RESUBSCRIBE_MAX);
    }
}

/// One subscription: connect, subscribe, report notices until the
/// connection fails (or stops answering `PING`) or the feed is dropped.
/// `Ok` if it was live at some point.
async fn subscribe_once(
    feed: &Weak<Invalidations>,
    seed: &str,
    timeout: Duration,
) -> Result<(), StoreError> {
    let client = redis::Client::open(seed)?;
    let pubsub = match tokio::time::timeout(timeout, client.get_async_pubsub()).await {
        Ok(p) => p?,
        Err(_elapsed) => return Err(StoreError::Timeout),
    };
    let (mut sink, mut stream) = pubsub.split();
    match tokio::time::timeout(timeout, sink.subscribe(INVALIDATION_CHANNEL)).await {
        Ok(r) => r?,
        Err(_elapsed) => return Err(StoreError::Timeout),
    }
    match feed.upgrade() {
        Some(f) => f.set_live(true),
        None => return Ok(()),
    }
    let mut ping = tokio::time::interval(SUBSCRIPTION_PING);
    ping.tick().await; // the first tick is immediate
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else {
                    return Ok(()); // the connection closed
                };
                let Some(f) = feed.upgrade() else {
                    return Ok(());
                };
                match std::str::from_utf8(msg.get_payload_bytes()) {
                    Ok(id) => f.notify(Some(id)),
                    Err(_) => f.notify(None),
                }
            }
            _ = ping.tick() => {
                if feed.strong_count() == 0 {
                    return Ok(());
                }
                match tokio::time::timeout(timeout, sink.ping::<Value>()).await {
                    Ok(Ok(_)) => {}
                    _ => return Ok(()),
                }
            }
        }
    }
}

#[async_trait]
impl KvStore for RedisClusterStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.query(redis::cmd("GET").arg(key)).await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.is_empty() {
            return Ok(vec![]);
        }
        // Split per slot by the cluster client, answered in order.
        self.query(redis::cmd("MGET").arg(keys)).await
    }

    async fn put(&self, key: &str, val: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        self.query(&set_cmd(key, val, ttl, false)).await
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let removed: u64 = self.query(redis::cmd("DEL").arg(key)).await?;
        Ok(removed > 0)
    }

    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let pattern = prefix_pattern(prefix);
        match tokio::time::timeout(self.timeout, self.scan_all(&pattern)).await {
            Ok(keys) => Ok(keys?.into_iter().collect()),
            Err(_elapsed) => Err(StoreError::Timeout),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // Routed to every master by the cluster client: ready means every
        // slot's master answers.
        let _pong: Value = self.query(&redis::cmd("PING")).await?;
        Ok(())
    }

    async fn put_new(
        &self,
        key: &str,
        val: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let reply: Option<String> = self.query(&set_cmd(key, val, ttl, true)).await?;
        Ok(reply.is_some())
    }

    async fn swap(&self, op: &Swap<'_>) -> Result<bool, StoreError> {
        let keys = std::iter::once(op.key)
            .chain(op.require.iter().copied())
            .chain(op.puts.iter().map(|(k, _, _)| *k));
        if !slots::same_slot(keys) {
            // A key-naming bug: never let Redis answer CROSSSLOT at runtime.
            // (Keys and values are never printed: they hold token hashes and grants.)
            debug_assert!(false, "a swap named keys on different cluster slots");
            let n = 1 + op.require.len() + op.puts.len();
            return Err(StoreError::CrossSlot(format!("a swap of {n} keys")));
        }
        let mut conn = self.conn.clone();
        // EVALSHA to the slot's master; on NOSCRIPT the script is loaded
        // (SCRIPT LOAD goes to every node) and the call retried. A durable
        // swap pipelines WAIT behind it: a pipeline goes to the node of its
        // first keyed command, over the connection that made the write.
        swap_on(&mut conn, op, self.timeout, self.durability).await
    }

    async fn sync_replicas(&self, key: &str) -> Result<bool, StoreError> {
        if !self.durability.enabled() {
            return Ok(false);
        }
        // To the master of `key`'s slot: WAIT counts that node's
        // replicas, for the writes of keygate's connection to it.
        let at = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_key(
            key,
            SlotAddr::Master,
        )));
        let mut conn = self.conn.clone();
        let reply = match tokio::time::timeout(
            self.timeout,
            conn.route_command(self.durability.wait_cmd(), at),
        )
        .await
        {
            Ok(reply) => reply?,
            Err(_elapsed) => return Err(StoreError::Timeout),
        };
        self.durability.check(parse(reply)?)?;
        Ok(true)
    }

    async fn rate(&self, key: &str, quota: Quota, cost: i64) -> Result<Decision, StoreError> {
        let mut conn = self.conn.clone();
        let wait_us = invoke(&rate_invocation(key, quota, cost), &mut conn, self.timeout).await?;
        Ok(rate_decision(wait_us))
    }

    fn layout(&self) -> Layout {
        Layout::Slotted
    }

    fn invalidations(&self) -> Option<Arc<Invalidations>> {
        Some(Arc::clone(&self.feed))
    }

    async fn publish_invalidation(&self, id: &str) -> Result<(), StoreError> {
        let _receivers: i64 = self
            .query(redis::cmd("PUBLISH").arg(INVALIDATION_CHANNEL).arg(id))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_read_from_cluster_nodes() {
        let text = "\
07c3 127.0.0.1:30004@31004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
e7d1 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460
6ec2 10.0.0.9:30005@31005,replica-5 slave,fail 67ed 1426238316232 1426238314232 5 disconnected
";
        assert_eq!(replicas(text), ["127.0.0.1:30004", "10.0.0.9:30005"]);
    }

    #[test]
    fn cluster_urls_parse_with_precise_errors() {
        let u =
            ClusterUrl::parse("redis+cluster://10.0.0.1:7000,10.0.0.2:7001,[::1]:7002").unwrap();
        assert!(!u.tls);
        assert_eq!(u.nodes, ["10.0.0.1:7000", "10.0.0.2:7001", "[::1]:7002"]);
        assert_eq!(
            u.seed_urls(),
            [
                "redis://10.0.0.1:7000",
                "redis://10.0.0.2:7001",
                "redis://[::1]:7002"
            ]
        );
        let u = ClusterUrl::parse("rediss+cluster://kg:s3cret@h1:7000,h2/").unwrap();
        assert!(u.tls);
        assert_eq!(u.nodes, ["h1:7000", "h2:6379"]);
        assert_eq!(
            u.seed_urls(),
            ["rediss://kg:s3cret@h1:7000", "rediss://kg:s3cret@h2:6379"]
        );
        assert_eq!(u.redacted(), "rediss+cluster://kg:REDACTED@h1:7000,h2:6379");
        assert!(!format!("{u:?}").contains("s3cret"));
        for (bad, why) in [
            ("redis://h:1", "starts with"),
            ("redis+cluster://", "no seed node"),
            ("redis+cluster://h1:1,,h2:2", "seed node 2"),
            ("redis+cluster://h1:1,u:p@h2:2", "first host only"),
            ("redis+cluster://h1:1/0", "no path"),
            ("redis+cluster://h1:1?x=1", "no path"),
            ("redis+cluster://h1:99999", "seed node 1"),
            ("redis+cluster://u:p@", "no seed node"),
        ] {
            let err = ClusterUrl::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(!err.contains(":p@"), "{err}");
        }
    }
}
