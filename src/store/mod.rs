//! The key-value store behind keygate: one small trait, two implementations.
//!
//! Only short-lived OAuth state lives here (clients, codes, refresh tokens,
//! sessions, users). Access tokens are never stored. Typed access goes through
//! [`repos`]; nothing else builds raw keys.
//!
//! Dependencies: nothing here depends on poem. The trait and its backends
//! ([`memory`], [`redis`]) move bytes under keys and must not depend on the
//! OAuth core either. [`repos`] is the one part that does: it stores the core's
//! record types (`oauth::types::Client`, `oauth::token::{CodeRecord,
//! RefreshRecord}`) and hashes secrets with `oauth::client_auth::hash_secret`.
//! The direction is `store::repos` → `oauth`; the core never imports the store.
//! [`KvStore::rate`] speaks the types of [`crate::rate`] (arithmetic only).

pub mod cluster;
pub mod invalidation;
pub mod memory;
pub mod redis;
pub mod repos;
pub mod sentinel;
pub mod slots;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::rate::{Decision, Quota};
use invalidation::Invalidations;

/// Why a store call failed. Callers map every variant to `503 temporarily_unavailable`
/// (SPEC.md "Store") except `Corrupt`, which is a server error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or answered with an error.
    #[error("store backend error: {0}")]
    Backend(#[from] ::redis::RedisError),
    /// The call did not finish within the configured store timeout.
    #[error("store call timed out")]
    Timeout,
    /// A stored value could not be decoded.
    #[error("stored value is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// The in-memory store holds `store.memory_max_entries` keys already.
    #[error("the in-memory store is full ({0} entries; store.memory_max_entries)")]
    Full(usize),
    /// A compare-and-swap loop lost to concurrent writers of the key every
    /// time (the bound keeps a request from spinning).
    #[error("store key {0} kept changing under concurrent writers; gave up")]
    Contended(String),
    /// The backend is configured in a way keygate refuses to run with.
    #[error("store misconfigured: {0}")]
    Misconfigured(String),
    /// A [`KvStore::swap`] named keys in different Redis Cluster hash
    /// slots, which no cluster can run atomically (a bug in key naming:
    /// see [`Layout::Slotted`]); refused before it reaches Redis.
    #[error("store keys of one atomic operation are in different cluster slots: {0}")]
    CrossSlot(String),
    /// A durable write ([`Durability`]) happened on the master, but fewer
    /// replicas than `store.wait_replicas` acknowledged it in time: it
    /// could still be lost in a failover, so the request is not answered
    /// as a success.
    #[error("only {acked} of the {wanted} Redis replicas of store.wait_replicas acknowledged the write in time")]
    NotReplicated {
        /// `store.wait_replicas`.
        wanted: u32,
        /// The replicas that acknowledged (`WAIT`'s answer).
        acked: u32,
    },
}

/// `store.wait_replicas`: how many Redis replicas must hold a single-use,
/// rotation or revocation write before keygate answers, and how long Redis
/// waits for them (`WAIT numreplicas timeout`). Replication is
/// asynchronous otherwise: a code consumed or a refresh token rotated just
/// before the master dies could come back on the promoted replica.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Durability {
    /// Replicas that must acknowledge (0: no waiting).
    pub replicas: u32,
    /// How long Redis waits for them: a third of the store timeout, so
    /// that its answer arrives before the call's own deadline even when
    /// the call is sent twice (a Redis that lost its scripts answers the
    /// first with `NOSCRIPT`, after its `WAIT` ran) and Redis ends each
    /// `WAIT` up to 100 ms late (its timeouts run on the server's clock
    /// tick, `hz 10`).
    pub wait: Duration,
}

impl Durability {
    /// `replicas` acknowledgements within a third of `store_timeout`.
    pub fn new(replicas: u32, store_timeout: Duration) -> Durability {
        Durability {
            replicas,
            wait: (store_timeout / 3).max(Duration::from_millis(1)),
        }
    }

    /// Whether writes wait for replicas at all.
    pub fn enabled(&self) -> bool {
        self.replicas > 0
    }

    /// The `WAIT` command (timeout in whole milliseconds, at least 1: `WAIT
    /// n 0` would block for ever).
    pub(crate) fn wait_cmd(&self) -> ::redis::Cmd {
        let ms = u64::try_from(self.wait.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut cmd = ::redis::cmd("WAIT");
        cmd.arg(self.replicas).arg(ms);
        cmd
    }

    /// `WAIT`'s answer checked against the wanted count.
    ///
    /// # Errors
    /// [`StoreError::NotReplicated`] when fewer replicas acknowledged.
    pub fn check(&self, acked: i64) -> Result<(), StoreError> {
        let acked = u32::try_from(acked.max(0)).unwrap_or(u32::MAX);
        if acked >= self.replicas {
            Ok(())
        } else {
            Err(StoreError::NotReplicated {
                wanted: self.replicas,
                acked,
            })
        }
    }
}

/// How [`repos`] names keys on a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One keyspace (memory, one Redis): every key may go into any
    /// operation. Keys are named as they always were.
    Flat,
    /// Redis Cluster: the keys of one [`KvStore::swap`] must hash to one
    /// slot (a shared hash tag, [`slots`]), so a user's grant state
    /// (codes, refresh tokens, families, consents, revocation markers)
    /// carries the slot of the user's record (`kg:user:<id>`), and a
    /// client is read from an in-process cache instead of in the same
    /// `MGET` as a code or refresh token.
    Slotted,
}

impl StoreError {
    /// Redis answered but refused the command itself: the ACL user lacks
    /// the permission (`NOPERM`; inside a Lua script Redis 7.0 says `ERR The
    /// user executing the script can't run this command`), or the command
    /// is disabled or renamed (`ERR unknown command`, as on some managed
    /// services). Not an outage: retrying will not help until the server's
    /// configuration changes.
    pub fn is_command_refused(&self) -> bool {
        use ::redis::{ErrorKind, ServerErrorKind};
        let StoreError::Backend(e) = self else {
            return false;
        };
        match e.kind() {
            ErrorKind::Server(ServerErrorKind::NoPerm) => true,
            ErrorKind::Server(ServerErrorKind::ResponseError) => e.detail().is_some_and(|d| {
                d.starts_with("unknown command") || d.contains("can't run this command")
            }),
            _ => false,
        }
    }

    /// Redis refused keygate's credentials (wrong user or password, or
    /// the ACL user is `off`).
    pub fn is_auth_failure(&self) -> bool {
        matches!(self, StoreError::Backend(e) if e.kind() == ::redis::ErrorKind::AuthenticationFailed)
    }
}

/// A byte-oriented key-value store with per-key TTLs.
///
/// Every method is a single round trip to the backend. TTLs are garbage
/// collection only: records carry their own expiry, which the OAuth core checks.
///
/// Redis Cluster ([`Layout::Slotted`]): all keys of one [`KvStore::swap`]
/// must share a hash slot (a common `{hash tag}`, see [`slots`]); the
/// cluster backend refuses any other swap with [`StoreError::CrossSlot`].
/// [`KvStore::get_many`] may span slots there (the cluster client sends one
/// `MGET` per node, in parallel: still one round trip of latency, but no
/// single snapshot), which is why the token path reads a user's keys from
/// one slot and its client from the in-process cache. The memory store and a
/// single Redis ignore tags.
#[async_trait]
pub trait KvStore: Send + Sync + 'static {
    /// Reads a value; an expired key reads as absent.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Reads several keys in one round trip, in order (`MGET`). The token
    /// endpoint reads the client and the code or refresh token together.
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StoreError>;
    /// Writes a value, replacing any previous one; `ttl: None` never expires.
    async fn put(&self, key: &str, val: &[u8], ttl: Option<Duration>) -> Result<(), StoreError>;
    /// Deletes a key; returns whether it existed (and had not expired).
    async fn delete(&self, key: &str) -> Result<bool, StoreError>;
    /// Lists the live keys that start with `prefix` (admin listings only; O(n)).
    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Checks that the backend answers (used by `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;
    /// Writes only if the key is absent (or expired); returns whether it wrote.
    /// Unique names (usernames) use this.
    async fn put_new(
        &self,
        key: &str,
        val: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError>;
    /// All-or-nothing compare-and-swap with side writes, in one round trip:
    /// if `op.key` holds exactly `op.expected` and every key in `op.require`
    /// exists, replace `op.key` (or delete it) and write every `op.puts` entry,
    /// returning `true`; otherwise change nothing and return `false`.
    /// Code redemption and refresh rotation use this, so that of concurrent
    /// callers exactly one wins and a revoked family can never be rotated.
    async fn swap(&self, op: &Swap<'_>) -> Result<bool, StoreError>;
    /// One atomic GCRA step on `key` ([`crate::rate`]): takes `cost` units
    /// of `quota` if they are available (a negative cost refunds, never
    /// beyond a full bucket) and answers whether it did. Every instance on
    /// one backend shares the key, so a limit holds however requests are
    /// spread over instances. The key lives only while its bucket is not
    /// full (its TTL is the time until it is), and the backend's clock is
    /// the only one used (Redis: `TIME` inside the script), so instances
    /// with skewed clocks still agree.
    async fn rate(&self, key: &str, quota: Quota, cost: i64) -> Result<Decision, StoreError>;
    /// How keys must be laid out on this backend (default: [`Layout::Flat`]).
    fn layout(&self) -> Layout {
        Layout::Flat
    }
    /// Waits until the replicas of `store.wait_replicas` hold every write
    /// made so far to `key`'s shard (one `WAIT` on the connection that made
    /// them). Revocations call it after their writes; a [`Swap`] marked
    /// `durable` waits in the same round trip instead. A no-op where there
    /// is nothing to wait for (memory, `wait_replicas = 0`): then it
    /// answers `false` (no round trip made). Required of every backend and
    /// wrapper: a default no-op in a wrapper would silently drop the wait.
    ///
    /// # Errors
    /// [`StoreError::NotReplicated`] when too few replicas acknowledged in
    /// time, or any store error.
    async fn sync_replicas(&self, key: &str) -> Result<bool, StoreError>;
    /// The feed that tells this process when a cached record changed on
    /// any instance ([`invalidation`]); `None` when the backend has none
    /// (memory, one Redis: their token path reads clients in the same
    /// round trip as the code, so nothing is cached across requests).
    fn invalidations(&self) -> Option<Arc<Invalidations>> {
        None
    }
    /// Tells every instance's [`KvStore::invalidations`] feed that the
    /// record `id` changed (Redis Cluster: one `PUBLISH`). A no-op where
    /// there is no feed.
    async fn publish_invalidation(&self, id: &str) -> Result<(), StoreError> {
        let _ = id;
        Ok(())
    }
}

/// One write of a [`Swap`]: key, value, TTL (`None` never expires).
pub type Put<'a> = (&'a str, &'a [u8], Option<Duration>);

/// The arguments of [`KvStore::swap`].
#[derive(Debug, Clone, Copy)]
pub struct Swap<'a> {
    /// The key compared and replaced.
    pub key: &'a str,
    /// The exact bytes `key` must hold.
    pub expected: &'a [u8],
    /// The new value of `key`, with its TTL; `None` deletes it.
    pub new: Option<(&'a [u8], Option<Duration>)>,
    /// Keys that must exist for the swap to happen.
    pub require: &'a [&'a str],
    /// Further writes made only when the swap happens.
    pub puts: &'a [Put<'a>],
    /// A single-use, rotation or revocation write: when it happens, the
    /// replicas of `store.wait_replicas` must acknowledge it (`WAIT`, in
    /// the same round trip) before the call succeeds ([`Durability`]).
    pub durable: bool,
}

/// Shared handle to the configured store.
pub type Store = Arc<dyn KvStore>;
