//! Cross-instance invalidation of in-process caches (Redis Cluster).
//!
//! On a cluster the token endpoint cannot read a client in the same `MGET`
//! as the user's code or refresh token (they live on different slots), so
//! [`super::repos`] keeps decoded clients in process. Every instance must
//! then learn when a client changes anywhere: the writer publishes the
//! client id ([`super::KvStore::publish_invalidation`]) and every instance's
//! subscription ([`super::cluster`]) reports it here, to the listeners.
//!
//! The feed is only trusted while it is *live* (subscribed). Whenever the
//! subscription is made or lost, everything is invalidated, since notices
//! published meanwhile were missed. [`Invalidations::epoch`] moves on every
//! notice and every change of liveness, which lets a cache refuse an entry
//! read while a notice went by (see `repos::ClientCache`).
//!
//! Must not depend on poem, on Redis or on the OAuth core.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, Weak};

/// Something that caches records by id and must forget them when told.
pub trait Listener: Send + Sync {
    /// `Some(id)`: the record `id` changed; `None`: anything may have changed.
    fn invalidate(&self, id: Option<&str>);
}

/// The notices of one store connection, and whether they can be trusted.
#[derive(Default)]
pub struct Invalidations {
    /// Moves on every notice and every change of [`Self::live`].
    epoch: AtomicU64,
    /// Whether the subscription is established (notices are arriving).
    live: AtomicBool,
    /// Caches to tell; dropped ones are pruned on the next notice.
    listeners: Mutex<Vec<Weak<dyn Listener>>>,
}

impl std::fmt::Debug for Invalidations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invalidations")
            .field("epoch", &self.epoch())
            .field("live", &self.live())
            .finish_non_exhaustive()
    }
}

impl Invalidations {
    /// A feed that is not live yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a cache to be told about changes.
    pub fn listen(&self, listener: Weak<dyn Listener>) {
        if let Ok(mut ls) = self.listeners.lock() {
            ls.push(listener);
        }
    }

    /// A counter that changes whenever a cached entry may have become stale.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Whether notices are arriving, so that cached entries can be trusted.
    pub fn live(&self) -> bool {
        self.live.load(Ordering::SeqCst)
    }

    /// Reports that record `id` changed (`None`: anything may have).
    pub fn notify(&self, id: Option<&str>) {
        // The epoch moves before the listeners drop the entry: a reader
        // that inserted after our removal sees the new epoch (and undoes
        // its insert); one that checked the epoch before it moved inserted
        // before our removal.
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let listeners: Vec<_> = match self.listeners.lock() {
            Ok(mut ls) => {
                ls.retain(|l| l.strong_count() > 0);
                ls.iter().filter_map(Weak::upgrade).collect()
            }
            Err(_) => return,
        };
        for l in listeners {
            l.invalidate(id);
        }
    }

    /// The subscription was made (`true`) or lost (`false`): either way,
    /// notices may have been missed, so everything is invalidated.
    pub fn set_live(&self, live: bool) {
        if live {
            self.notify(None);
            self.live.store(true, Ordering::SeqCst);
        } else {
            self.live.store(false, Ordering::SeqCst);
            self.notify(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Default)]
    struct Seen(Mutex<Vec<Option<String>>>);
    impl Listener for Seen {
        fn invalidate(&self, id: Option<&str>) {
            self.0.lock().unwrap().push(id.map(str::to_string));
        }
    }

    #[test]
    fn notices_reach_listeners_and_move_the_epoch() {
        let feed = Invalidations::new();
        let seen = Arc::new(Seen::default());
        let weak: Weak<dyn Listener> = Arc::downgrade(&(seen.clone() as Arc<dyn Listener>));
        feed.listen(weak);
        assert!(!feed.live());
        let e0 = feed.epoch();
        feed.set_live(true);
        assert!(feed.live());
        feed.notify(Some("c1"));
        assert!(feed.epoch() > e0 + 1);
        feed.set_live(false);
        assert!(!feed.live());
        assert_eq!(
            *seen.0.lock().unwrap(),
            vec![None, Some("c1".to_string()), None]
        );
        drop(seen);
        feed.notify(Some("c2")); // a dropped listener is pruned, not called
        assert!(feed.listeners.lock().unwrap().is_empty());
    }
}
