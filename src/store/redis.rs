//! The shared store: Redis (≥ 6.2) through one multiplexed, self-healing
//! [`ConnectionManager`], or, under Sentinel, one multiplexed connection to
//! the master the sentinels name ([`super::sentinel`]).
//!
//! Several keygate instances pointed at one Redis behave as one server. TTLs
//! are Redis expiries (`SET .. PX`), single use (code redemption, refresh
//! rotation) is one Lua compare-and-swap script ([`KvStore::swap`]), and every call is
//! bounded by the configured timeout so an unreachable Redis turns into a fast
//! [`StoreError`] (mapped to `503 temporarily_unavailable`), never a hang.
//! The connection is made lazily: keygate starts while Redis is down and
//! recovers by itself when it comes back (SPEC.md "Store").
//!
//! Never logs keys or values: keys embed code and token ids, values hold grants.
//!
//! Must not depend on poem or on the OAuth core: it stores opaque bytes.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{ClientTlsConfig, Cmd, FromRedisValue, TlsCertificates};

use super::sentinel::SentinelConnection;
use super::{Durability, KvStore, StoreError, Swap};
use crate::rate::{Decision, Quota};

/// Keys asked for per `SCAN` round trip: a hint to Redis, not a limit.
pub(crate) const SCAN_COUNT: usize = 1000;
/// Reconnection attempts per outage-detection, each after an exponential,
/// jittered back-off between these bounds. Kept short so that a request made
/// while Redis is down fails quickly, and the first request after Redis is back
/// is not stuck behind a long back-off sleep.
const RECONNECT_RETRIES: usize = 2;
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(50);
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(500);
/// Largest `PX` sent. Redis rejects an expiry whose absolute time overflows
/// an `i64` of milliseconds; this is still about 146 million years.
const MAX_TTL_MS: u128 = (i64::MAX / 2) as u128;

/// A [`KvStore`] backed by Redis. Cheap to clone: clones share one connection.
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    timeout: Duration,
    durability: Durability,
}

/// Where a [`RedisStore`]'s commands go: one fixed Redis, or the master
/// that Sentinel names ([`super::sentinel`]).
#[derive(Clone)]
enum Conn {
    Direct(ConnectionManager),
    Sentinel(SentinelConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Conn::Direct(c) => c.req_packed_command(cmd),
            Conn::Sentinel(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Direct(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Direct(c) => c.get_db(),
            Conn::Sentinel(c) => c.get_db(),
        }
    }
}

impl fmt::Debug for RedisStore {
    // Hand-written so that the URL (which may hold a password) is never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Prepares a store for `url` (`redis://…`, or `rediss://…` for TLS),
    /// where every later call gives up after `timeout` with
    /// [`StoreError::Timeout`].
    ///
    /// Does not contact Redis: this succeeds while the server is down, and the
    /// first call connects (SPEC.md: keygate starts while Redis is down).
    /// Afterwards a dropped connection is re-made by the next call.
    ///
    /// # Errors
    /// [`StoreError::Misconfigured`] at once if the URL does not parse.
    ///
    /// # Panics
    /// Outside a tokio runtime (the connection manager spawns a task).
    pub async fn connect(url: &str, timeout: Duration) -> Result<RedisStore, StoreError> {
        Self::connect_tls(url, None, timeout).await
    }

    /// [`RedisStore::connect`] for a `rediss://` URL whose server is verified
    /// with `tls` (a private CA, a client certificate: [`tls_certificates`])
    /// instead of the built-in web roots. `None` is [`RedisStore::connect`].
    ///
    /// # Errors
    /// [`StoreError::Misconfigured`] at once if the URL does not parse, or
    /// `tls` is given with a URL that is not `rediss://`, or its PEM does
    /// not hold usable certificates or key.
    pub async fn connect_tls(
        url: &str,
        tls: Option<&TlsCertificates>,
        timeout: Duration,
    ) -> Result<RedisStore, StoreError> {
        let client = open_client(url, tls)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(RECONNECT_MIN_DELAY)
            .set_max_delay(RECONNECT_MAX_DELAY);
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(RedisStore {
            conn: Conn::Direct(conn),
            timeout,
            durability: Durability::default(),
        })
    }

    /// Prepares a store on the master that the sentinels of `url`
    /// (`redis+sentinel://…/MASTER_NAME`) name, found again after a
    /// failover ([`super::sentinel`]). Contacts nobody yet, like
    /// [`RedisStore::connect`].
    ///
    /// # Errors
    /// [`StoreError::Misconfigured`] at once if the URL does not parse.
    pub fn connect_sentinel(url: &str, timeout: Duration) -> Result<RedisStore, StoreError> {
        Ok(RedisStore {
            conn: Conn::Sentinel(SentinelConnection::new(url, timeout)?),
            timeout,
            durability: Durability::default(),
        })
    }

    /// The same store, with durable writes acknowledged by replicas as
    /// `durability` says (`store.wait_replicas`).
    #[must_use]
    pub fn with_durability(mut self, durability: Durability) -> RedisStore {
        self.durability = durability;
        self
    }

    /// The `maxmemory-policy` of every replica the sentinels list
    /// (`redis+sentinel://`, [`SentinelConnection::replica_eviction_policies`]);
    /// empty for one Redis, whose replicas keygate does not know.
    ///
    /// # Errors
    /// As for any call.
    pub async fn replica_eviction_policies(&self) -> Result<Vec<(String, String)>, StoreError> {
        match &self.conn {
            Conn::Direct(_) => Ok(vec![]),
            Conn::Sentinel(s) => s.replica_eviction_policies().await,
        }
    }

    /// How many replicas are connected to the master now (the third part
    /// of `ROLE`'s answer on a master; 0 on anything else): start-up warns
    /// when `store.wait_replicas` asks for more.
    ///
    /// # Errors
    /// As for any call (`ROLE` needs `+role` in the ACL).
    pub async fn connected_replicas(&self) -> Result<u32, StoreError> {
        let role: Vec<redis::Value> = self.query(&redis::cmd("ROLE")).await?;
        Ok(connected_replicas(&role))
    }

    /// The server's `maxmemory-policy` (`CONFIG GET`), which start-up requires
    /// to be `noeviction`: an evicted used-code or revocation record would
    /// bring a dead token back (SPEC.md "Store").
    ///
    /// # Errors
    /// As for any call; also [`StoreError::Misconfigured`] if the server does
    /// not report the setting (some managed services disable `CONFIG`).
    pub async fn eviction_policy(&self) -> Result<String, StoreError> {
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("GET").arg("maxmemory-policy");
        // An array of pairs under RESP2, a map under RESP3: both decode to a map.
        let mut reply: std::collections::HashMap<String, String> = self.query(&cmd).await?;
        reply.remove("maxmemory-policy").ok_or_else(|| {
            StoreError::Misconfigured("Redis did not report maxmemory-policy".to_owned())
        })
    }

    /// Runs one command, bounded by the timeout.
    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut conn)).await {
            Ok(reply) => Ok(reply?),
            Err(_elapsed) => Err(StoreError::Timeout),
        }
    }

    /// All `SCAN` rounds for one pattern, deduplicated (SCAN may repeat keys).
    async fn scan_all(&self, pattern: &str) -> Result<BTreeSet<String>, StoreError> {
        let mut conn = self.conn.clone();
        let mut keys = BTreeSet::new();
        let mut cursor: u64 = 0;
        loop {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT);
            let (next, batch): (u64, Vec<Vec<u8>>) = cmd.query_async(&mut conn).await?;
            // A key that is not UTF-8 cannot be one of ours; skip it.
            keys.extend(batch.into_iter().filter_map(|k| String::from_utf8(k).ok()));
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }
}

/// The redis client for `url`, with `tls` when given. Kept apart from the
/// connection manager's set-up so that other connection kinds can share it.
///
/// Connections skip the `CLIENT SETINFO` the redis crate sends by default
/// (library name and version, for `CLIENT LIST` only): it needs an ACL
/// permission of its own and does not exist before Redis 7.2, so the ACL
/// line of docs/redis.md lists exactly the commands keygate runs.
///
/// The error texts come from the redis crate and never echo the URL (which
/// may hold a password) or key material.
fn open_client(url: &str, tls: Option<&TlsCertificates>) -> Result<redis::Client, StoreError> {
    // Parsed first, so that a bad URL reads as one and not as a TLS problem.
    let info = redis::IntoConnectionInfo::into_connection_info(url)
        .map_err(|e| StoreError::Misconfigured(format!("invalid Redis URL: {e}")))?;
    let settings = info.redis_settings().clone().set_skip_set_lib_name();
    let info = info.set_redis_settings(settings);
    match tls {
        None => redis::Client::open(info)
            .map_err(|e| StoreError::Misconfigured(format!("invalid Redis URL: {e}"))),
        Some(tls) => redis::Client::build_with_tls(info, tls.clone()).map_err(|e| {
            StoreError::Misconfigured(format!(
                "store.tls_ca_file / store.tls_cert_file / store.tls_key_file: {e}"
            ))
        }),
    }
}

/// The PEM files of `store.tls_*` as the redis crate takes them: `ca` (CA
/// certificates replacing the web roots) and `client` (certificate chain,
/// private key). `Ok(None)` when neither is set: a `rediss://` URL then
/// verifies the server with the built-in web roots.
///
/// # Errors
/// [`StoreError::Misconfigured`] naming the setting if a file cannot be read
/// (the message names the file, never its contents).
pub fn tls_certificates(
    ca: Option<&Path>,
    client: Option<(&Path, &Path)>,
) -> Result<Option<TlsCertificates>, StoreError> {
    fn read(key: &str, path: &Path) -> Result<Vec<u8>, StoreError> {
        std::fs::read(path).map_err(|e| {
            StoreError::Misconfigured(format!("{key}: cannot read `{}`: {e}", path.display()))
        })
    }
    if ca.is_none() && client.is_none() {
        return Ok(None);
    }
    let root_cert = ca.map(|p| read("store.tls_ca_file", p)).transpose()?;
    let client_tls = match client {
        Some((cert, key)) => Some(ClientTlsConfig {
            client_cert: read("store.tls_cert_file", cert)?,
            client_key: read("store.tls_key_file", key)?,
        }),
        None => None,
    };
    Ok(Some(TlsCertificates {
        client_tls,
        root_cert,
    }))
}

/// `KvStore::swap` as one atomic script. KEYS = [key, require…, puts…];
/// ARGV = [expected, has_new, new, new_ttl_ms, n_require, (val, ttl_ms)…];
/// a TTL of "0" means none.
pub(crate) const SWAP_LUA: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local nreq = tonumber(ARGV[5])
for i = 2, 1 + nreq do
  if redis.call('EXISTS', KEYS[i]) == 0 then return 0 end
end
local function set(k, v, ttl)
  if ttl == '0' then redis.call('SET', k, v) else redis.call('SET', k, v, 'PX', ttl) end
end
if ARGV[2] == '1' then set(KEYS[1], ARGV[3], ARGV[4]) else redis.call('DEL', KEYS[1]) end
local j = 6
for i = 2 + nreq, #KEYS do
  set(KEYS[i], ARGV[j], ARGV[j + 1])
  j = j + 2
end
return 1
"#;

/// `KvStore::rate` as one atomic script: the GCRA step of [`crate::rate`]
/// in microseconds. KEYS = [key]; ARGV = [emission_us, tolerance_us, cost].
/// The value is the TAT (microseconds since the epoch, by the server's
/// `TIME`: one clock for every instance), written as an integer (`%.0f`:
/// Lua 5.1's `tostring` would round it); the key expires when the bucket is
/// full again. Returns 0 when allowed, else the wait in microseconds.
/// `TIME` in a script that writes is fine: Redis ≥ 5 replicates a script's
/// effects, not the script (Redis 7 only does that).
pub(crate) const RATE_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local emission = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local next = tat + cost * emission
if cost > 0 and next - now > tolerance then
  return next - now - tolerance
end
if next <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], string.format('%.0f', next), 'PX', math.ceil((next - now) / 1000))
end
return 0
"#;

/// Whole microseconds of `d`, rounded up and kept well inside what a Lua
/// double holds exactly (2^53): about 285 years.
pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1000))
        .unwrap_or(u64::MAX)
        .min(1 << 53)
}

pub(crate) fn ttl_arg(ttl: Option<Duration>) -> String {
    ttl.map_or_else(|| "0".to_owned(), |t| ttl_millis(t).to_string())
}

/// Milliseconds for `PX`: rounded up, at least 1 (so a zero TTL still expires
/// instead of being rejected by Redis), at most [`MAX_TTL_MS`].
pub(crate) fn ttl_millis(ttl: Duration) -> u128 {
    ttl.as_nanos().div_ceil(1_000_000).clamp(1, MAX_TTL_MS)
}

/// `SET key val [NX] [PX ms]`: the write of `put` (and, with `nx`, of
/// `put_new`) on both Redis backends.
pub(crate) fn set_cmd(key: &str, val: &[u8], ttl: Option<Duration>, nx: bool) -> Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(val);
    if nx {
        cmd.arg("NX");
    }
    if let Some(ttl) = ttl {
        // u128 is not a Redis argument type; the clamp makes it fit an i64.
        let ms = u64::try_from(ttl_millis(ttl)).unwrap_or(u64::MAX);
        cmd.arg("PX").arg(ms);
    }
    cmd
}

/// The [`SWAP_LUA`] call for `op` (keys and arguments as the script
/// documents), on both Redis backends.
pub(crate) fn swap_invocation(op: &Swap<'_>) -> redis::ScriptInvocation<'static> {
    static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
    let script = SCRIPT.get_or_init(|| redis::Script::new(SWAP_LUA));
    let mut inv = script.prepare_invoke();
    inv.key(op.key);
    for k in op.require {
        inv.key(*k);
    }
    for (k, _, _) in op.puts {
        inv.key(*k);
    }
    inv.arg(op.expected);
    match op.new {
        Some((val, ttl)) => inv.arg("1").arg(val).arg(ttl_arg(ttl)),
        None => inv.arg("0").arg("").arg("0"),
    };
    inv.arg(op.require.len());
    for (_, val, ttl) in op.puts {
        inv.arg(*val).arg(ttl_arg(*ttl));
    }
    inv
}

/// The [`RATE_LUA`] call for one GCRA step, on both Redis backends. The
/// cost is bounded so that cost × emission stays exact in Lua.
pub(crate) fn rate_invocation(
    key: &str,
    quota: Quota,
    cost: i64,
) -> redis::ScriptInvocation<'static> {
    static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
    let script = SCRIPT.get_or_init(|| redis::Script::new(RATE_LUA));
    let mut inv = script.prepare_invoke();
    inv.key(key)
        .arg(micros(quota.emission))
        .arg(micros(quota.tolerance()))
        .arg(cost.clamp(-1_000_000, 1_000_000));
    inv
}

/// [`RATE_LUA`]'s answer: 0 when allowed, else the wait in microseconds.
pub(crate) fn rate_decision(wait_us: i64) -> Decision {
    if wait_us > 0 {
        Decision::Limited {
            retry_after: Duration::from_micros(wait_us.unsigned_abs()),
        }
    } else {
        Decision::Allowed
    }
}

/// Runs a script call (EVALSHA, then loading the script if the server
/// lacks it) on `conn`, bounded by `timeout`.
pub(crate) async fn invoke<T: FromRedisValue>(
    inv: &redis::ScriptInvocation<'_>,
    conn: &mut impl redis::aio::ConnectionLike,
    timeout: Duration,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, inv.invoke_async::<T>(conn)).await {
        Ok(reply) => Ok(reply?),
        Err(_elapsed) => Err(StoreError::Timeout),
    }
}

/// The replicas of a `ROLE` answer: `["master", offset, [[ip, port,
/// offset], …]]` on a master; 0 for any other role.
fn connected_replicas(role: &[redis::Value]) -> u32 {
    match (role.first(), role.get(2)) {
        (Some(redis::Value::BulkString(r)), Some(redis::Value::Array(replicas)))
            if r.as_slice() == b"master" =>
        {
            u32::try_from(replicas.len()).unwrap_or(u32::MAX)
        }
        _ => 0,
    }
}

/// [`KvStore::swap`] on both Redis backends: the [`SWAP_LUA`] call, and,
/// for a durable swap with `durability` on, `WAIT` in the same pipeline
/// (one round trip; `WAIT` cannot run inside a script). `WAIT` covers
/// every earlier write of the connection, the script's included. A
/// swap that did not happen wrote nothing, so its acknowledgements do not
/// matter.
pub(crate) async fn swap_on(
    conn: &mut impl ConnectionLike,
    op: &Swap<'_>,
    timeout: Duration,
    durability: Durability,
) -> Result<bool, StoreError> {
    let inv = swap_invocation(op);
    if !(op.durable && durability.enabled()) {
        return Ok(invoke::<i64>(&inv, conn, timeout).await? == 1);
    }
    let mut pipe = redis::pipe();
    pipe.invoke_script(&inv).add_command(durability.wait_cmd());
    let run = async {
        match pipe.query_async::<(i64, i64)>(conn).await {
            // A pipeline does not load the script by itself (a restarted
            // or newly promoted Redis has an empty script cache).
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                inv.load_async(conn).await?;
                pipe.query_async::<(i64, i64)>(conn).await
            }
            reply => reply,
        }
    };
    let (swapped, acked) = match tokio::time::timeout(timeout, run).await {
        Ok(reply) => reply?,
        Err(_elapsed) => return Err(StoreError::Timeout),
    };
    if swapped == 1 {
        durability.check(acked)?;
    }
    Ok(swapped == 1)
}

/// A `SCAN MATCH` pattern matching exactly the keys that start with `prefix`:
/// glob metacharacters in the prefix are escaped so they match literally.
pub(crate) fn prefix_pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 8);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    pattern
}

#[async_trait]
impl KvStore for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.query(redis::cmd("GET").arg(key)).await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.is_empty() {
            return Ok(vec![]);
        }
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
        // One deadline for the whole walk, however many round trips it takes.
        let pattern = prefix_pattern(prefix);
        match tokio::time::timeout(self.timeout, self.scan_all(&pattern)).await {
            Ok(keys) => Ok(keys?.into_iter().collect()),
            Err(_elapsed) => Err(StoreError::Timeout),
        }
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
        let mut conn = self.conn.clone();
        swap_on(&mut conn, op, self.timeout, self.durability).await
    }

    async fn sync_replicas(&self, _key: &str) -> Result<bool, StoreError> {
        // One connection carries every write of this process: one WAIT
        // covers them all, whatever the key.
        if !self.durability.enabled() {
            return Ok(false);
        }
        let acked: i64 = self.query(&self.durability.wait_cmd()).await?;
        self.durability.check(acked)?;
        Ok(true)
    }

    async fn rate(&self, key: &str, quota: Quota, cost: i64) -> Result<Decision, StoreError> {
        let mut conn = self.conn.clone();
        let wait_us = invoke(&rate_invocation(key, quota, cost), &mut conn, self.timeout).await?;
        Ok(rate_decision(wait_us))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let _pong: String = self.query(&redis::cmd("PING")).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_to_whole_milliseconds() {
        assert_eq!(ttl_millis(Duration::ZERO), 1);
        assert_eq!(ttl_millis(Duration::from_nanos(1)), 1);
        assert_eq!(ttl_millis(Duration::from_micros(1500)), 2);
        assert_eq!(ttl_millis(Duration::from_millis(200)), 200);
        assert_eq!(ttl_millis(Duration::MAX), MAX_TTL_MS);
    }

    #[test]
    fn connected_replicas_are_read_from_role() {
        use redis::Value::{Array, BulkString, Int};
        let replica = |port: &str| {
            Array(vec![
                BulkString(b"127.0.0.1".to_vec()),
                BulkString(port.as_bytes().to_vec()),
                BulkString(b"42".to_vec()),
            ])
        };
        let master = [
            BulkString(b"master".to_vec()),
            Int(42),
            Array(vec![replica("7001"), replica("7002")]),
        ];
        assert_eq!(connected_replicas(&master), 2);
        let replica_role = [
            BulkString(b"slave".to_vec()),
            BulkString(b"127.0.0.1".to_vec()),
            Int(7000),
            BulkString(b"connected".to_vec()),
            Int(42),
        ];
        assert_eq!(connected_replicas(&replica_role), 0);
        assert_eq!(connected_replicas(&[]), 0);
    }

    #[test]
    fn durability_checks_the_acknowledgements() {
        let d = Durability::new(2, Duration::from_millis(3000));
        assert_eq!(d.wait, Duration::from_secs(1));
        assert!(d.check(2).is_ok());
        assert!(d.check(3).is_ok());
        assert!(matches!(
            d.check(1),
            Err(StoreError::NotReplicated {
                wanted: 2,
                acked: 1
            })
        ));
        assert!(matches!(
            d.check(-1),
            Err(StoreError::NotReplicated {
                wanted: 2,
                acked: 0
            })
        ));
        assert_eq!(
            Durability::new(1, Duration::from_millis(1)).wait,
            Duration::from_millis(1)
        );
        let cmd = Durability::new(1, Duration::from_millis(3)).wait_cmd();
        assert_eq!(cmd.args_iter().count(), 3);
        assert!(!Durability::default().enabled());
    }

    #[test]
    fn prefix_pattern_escapes_glob_metacharacters() {
        assert_eq!(prefix_pattern("kg:code:"), "kg:code:*");
        assert_eq!(prefix_pattern("kg:a*"), r"kg:a\**");
        assert_eq!(prefix_pattern(r"a?b[c]d\e"), r"a\?b\[c\]d\\e*");
        assert_eq!(prefix_pattern(""), "*");
    }
}
