//! The embedded, in-process store: a [`DashMap`] with per-entry expiry and a
//! background sweeper (the shape of mini-redis `db.rs`).
//!
//! Used by `make run`, by single-instance deployments and by the flow tests.
//! Expiry is honoured on every read, so a key is gone the moment its TTL passes
//! even if the sweeper has not run yet; the sweeper only reclaims memory.
//! State is lost on restart and is not shared between processes.
//!
//! Must not depend on poem, redis or the OAuth core: it stores opaque bytes.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use dashmap::mapref::entry::Entry as MapEntry;
use dashmap::DashMap;
use tokio::task::AbortHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::{KvStore, StoreError, Swap};
use crate::rate::{self, Decision, Quota};

/// How often [`MemoryStore::new`] sweeps expired entries.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// One stored value and when it stops being visible.
#[derive(Debug, Clone)]
struct Entry {
    val: Vec<u8>,
    /// `None` never expires. `tokio` time, so tests with a paused clock work.
    expires_at: Option<Instant>,
}

impl Entry {
    fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// An in-memory [`KvStore`] with TTLs, safe to share between tasks.
///
/// Build it with [`MemoryStore::new`] or [`MemoryStore::with_sweep_interval`];
/// both return an `Arc` because the sweeper task keeps a `Weak` to it and stops
/// when the last `Arc` is dropped.
#[derive(Debug)]
pub struct MemoryStore {
    entries: DashMap<String, Entry>,
    /// Serialises the multi-key operations (`swap`) against deletes, so that a
    /// key a swap requires cannot vanish between its check and the write.
    multi_key: std::sync::Mutex<()>,
    /// Lets `Drop` stop the sweeper at once instead of at its next tick.
    sweeper: OnceLock<AbortHandle>,
    /// Writes that would add keys beyond this many fail with
    /// [`StoreError::Full`] (a soft cap: concurrent writers may overshoot it
    /// by a few), so memory stays bounded however many codes or sessions
    /// are requested.
    max_entries: usize,
}

impl MemoryStore {
    /// A store whose sweeper runs every [`DEFAULT_SWEEP_INTERVAL`].
    ///
    /// # Panics
    /// If called outside a tokio runtime (the sweeper is a spawned task).
    pub fn new() -> Arc<Self> {
        Self::with_sweep_interval(DEFAULT_SWEEP_INTERVAL)
    }

    /// A store whose sweeper removes expired entries every `sweep_interval`
    /// (a zero interval is raised to 1 ms).
    ///
    /// # Panics
    /// If called outside a tokio runtime (the sweeper is a spawned task).
    pub fn with_sweep_interval(sweep_interval: Duration) -> Arc<Self> {
        Self::with_limits(sweep_interval, usize::MAX)
    }

    /// A store that sweeps every `sweep_interval` and holds at most about
    /// `max_entries` keys (`store.memory_max_entries`).
    ///
    /// # Panics
    /// If called outside a tokio runtime (the sweeper is a spawned task).
    pub fn with_limits(sweep_interval: Duration, max_entries: usize) -> Arc<Self> {
        let store = Arc::new(Self {
            entries: DashMap::new(),
            multi_key: std::sync::Mutex::new(()),
            sweeper: OnceLock::new(),
            max_entries,
        });
        let period = sweep_interval.max(Duration::from_millis(1));
        let task = tokio::spawn(sweep(Arc::downgrade(&store), period));
        // Cannot fail: the cell was created empty just above.
        let _ = store.sweeper.set(task.abort_handle());
        store
    }

    /// Number of raw entries, including expired ones the sweeper has not yet
    /// removed. For tests that show memory is reclaimed; not a count of live keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no raw entries at all (see [`MemoryStore::len`]).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Refuses a write that would add `new_keys` keys beyond the cap, after
    /// reclaiming expired entries once. Call it before taking any entry guard
    /// (`DashMap::len` locks every shard).
    fn room_for(&self, new_keys: usize) -> Result<(), StoreError> {
        if new_keys == 0 || self.entries.len().saturating_add(new_keys) <= self.max_entries {
            return Ok(());
        }
        self.purge_expired();
        if self.entries.len().saturating_add(new_keys) <= self.max_entries {
            return Ok(());
        }
        Err(StoreError::Full(self.max_entries))
    }

    /// How many of `keys` are not in the map yet.
    fn absent(&self, keys: impl IntoIterator<Item = impl AsRef<str>>) -> usize {
        keys.into_iter()
            .filter(|k| !self.entries.contains_key(k.as_ref()))
            .count()
    }

    /// Removes every expired entry; returns how many were removed.
    fn purge_expired(&self) -> usize {
        let now = Instant::now();
        let before = self.entries.len();
        self.entries.retain(|_, e| !e.is_expired(now));
        before.saturating_sub(self.entries.len())
    }
}

impl Drop for MemoryStore {
    fn drop(&mut self) {
        if let Some(handle) = self.sweeper.get() {
            handle.abort();
        }
    }
}

/// The sweeper loop. Holds only a `Weak`, so it never keeps the store alive.
async fn sweep(store: Weak<MemoryStore>, period: Duration) {
    // The first tick is one period from now, not immediately.
    let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(store) = store.upgrade() else {
            return;
        };
        let removed = store.purge_expired();
        if removed > 0 {
            tracing::trace!(removed, "memory store: swept expired entries");
        }
    }
}

#[async_trait]
impl KvStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let now = Instant::now();
        // The read guard must be dropped before any write to the same shard,
        // or DashMap deadlocks: it lives only until the end of this `match`.
        match self.entries.get(key) {
            None => return Ok(None),
            Some(e) if !e.is_expired(now) => return Ok(Some(e.val.clone())),
            Some(_) => {}
        }
        // Expired: reclaim eagerly, unless someone has put a fresh value meanwhile.
        self.entries.remove_if(key, |_, e| e.is_expired(now));
        Ok(None)
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.get(key).await?);
        }
        Ok(out)
    }

    async fn put(&self, key: &str, val: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        self.room_for(self.absent([key]))?;
        // A TTL too large for `Instant` is as good as none.
        let expires_at = ttl.and_then(|ttl| Instant::now().checked_add(ttl));
        self.entries.insert(
            key.to_owned(),
            Entry {
                val: val.to_vec(),
                expires_at,
            },
        );
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let _serial = self.lock_multi_key();
        let now = Instant::now();
        Ok(self
            .entries
            .remove(key)
            .is_some_and(|(_, e)| !e.is_expired(now)))
    }

    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let now = Instant::now();
        let mut keys: Vec<String> = self
            .entries
            .iter()
            .filter(|kv| kv.key().starts_with(prefix) && !kv.value().is_expired(now))
            .map(|kv| kv.key().clone())
            .collect();
        keys.sort_unstable();
        Ok(keys)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn put_new(
        &self,
        key: &str,
        val: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.room_for(self.absent([key]))?;
        let now = Instant::now();
        let fresh = Entry {
            val: val.to_vec(),
            expires_at: ttl.and_then(|ttl| now.checked_add(ttl)),
        };
        match self.entries.entry(key.to_owned()) {
            MapEntry::Occupied(mut o) if o.get().is_expired(now) => {
                o.insert(fresh);
                Ok(true)
            }
            MapEntry::Occupied(_) => Ok(false),
            MapEntry::Vacant(v) => {
                v.insert(fresh);
                Ok(true)
            }
        }
    }

    async fn swap(&self, op: &Swap<'_>) -> Result<bool, StoreError> {
        let _serial = self.lock_multi_key();
        let now = Instant::now();
        let live = |k: &str| self.entries.get(k).is_some_and(|e| !e.is_expired(now));
        if !op.require.iter().all(|k| live(k)) {
            return Ok(false);
        }
        self.room_for(self.absent(op.puts.iter().map(|(k, _, _)| *k)))?;
        // The entry guard makes compare-and-replace atomic for `op.key`; it is
        // dropped before the side writes, which may land in the same shard.
        match self.entries.entry(op.key.to_owned()) {
            MapEntry::Occupied(mut o) if !o.get().is_expired(now) && o.get().val == op.expected => {
                match op.new {
                    Some((val, ttl)) => {
                        o.insert(Entry {
                            val: val.to_vec(),
                            expires_at: ttl.and_then(|ttl| now.checked_add(ttl)),
                        });
                    }
                    None => {
                        o.remove();
                    }
                }
            }
            _ => return Ok(false),
        }
        for (key, val, ttl) in op.puts {
            self.entries.insert(
                (*key).to_owned(),
                Entry {
                    val: val.to_vec(),
                    expires_at: ttl.and_then(|ttl| now.checked_add(ttl)),
                },
            );
        }
        Ok(true)
    }

    /// The TAT is the entry's expiry: the entry vanishes exactly when its
    /// bucket is full again, and the sweeper reclaims it like any other.
    /// The entry guard makes the step atomic for the key.
    /// Nothing to wait for: the memory store has no replicas
    /// (`store.wait_replicas` is refused with it at start).
    async fn sync_replicas(&self, _key: &str) -> Result<bool, StoreError> {
        Ok(false)
    }

    async fn rate(&self, key: &str, quota: Quota, cost: i64) -> Result<Decision, StoreError> {
        let new_keys = if cost > 0 { self.absent([key]) } else { 0 };
        self.room_for(new_keys)?;
        let now = Instant::now();
        let entry = self.entries.entry(key.to_owned());
        let ahead = match &entry {
            MapEntry::Occupied(o) => o
                .get()
                .expires_at
                .map_or(Duration::ZERO, |at| at.saturating_duration_since(now)),
            MapEntry::Vacant(_) => Duration::ZERO,
        };
        let next = match rate::step(ahead, quota, cost) {
            Ok(next) => next,
            Err(retry_after) => return Ok(Decision::Limited { retry_after }),
        };
        match (entry, now.checked_add(next).filter(|_| !next.is_zero())) {
            (MapEntry::Occupied(o), None) => {
                o.remove();
            }
            (MapEntry::Vacant(_), None) => {}
            (entry, Some(tat)) => {
                entry.insert(Entry {
                    val: Vec::new(),
                    expires_at: Some(tat),
                });
            }
        }
        Ok(Decision::Allowed)
    }
}

impl MemoryStore {
    fn lock_multi_key(&self) -> std::sync::MutexGuard<'_, ()> {
        // The mutex guards no data, so a poisoned lock is still usable.
        self.multi_key.lock().unwrap_or_else(|p| p.into_inner())
    }
}
