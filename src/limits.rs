//! In-process abuse limits: keyed GCRA rate limiters from `governor`.
//!
//! - Token endpoint: per client, counted *after* the client authenticated, so
//!   nobody can spend another client's budget by naming its `client_id`.
//! - Login form: per (peer IP, lower-cased username), checked before argon2 runs.
//!
//! State is per process (several instances each allow the configured rate).
//! Keyed limiters grow with their keys; [`Limits::retain_recent`] drops the
//! keys whose bucket is full again and runs periodically (see `startup`).
//! Must not depend on poem or on the store.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::LimitOptions;

/// A refused request: how long the caller should wait, in whole seconds (≥ 1),
/// as sent in `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

/// The limiters of one process; `None` when `limits.enabled = false`.
#[derive(Default)]
pub struct Limits {
    token: Option<DefaultKeyedRateLimiter<String>>,
    login: Option<DefaultKeyedRateLimiter<String>>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("enabled", &self.token.is_some())
            .field("keys", &self.len())
            .finish()
    }
}

/// The longest username kept in a login key: valid usernames have at most 64
/// characters, so a longer one cannot sign in and need not be told apart.
const MAX_KEYED_USERNAME: usize = 64;

impl Limits {
    /// Builds the limiters from validated settings (rates and bursts are
    /// non-zero by type).
    pub fn new(s: &LimitOptions) -> Self {
        if !s.enabled {
            return Self::default();
        }
        let quota = |period: Duration, burst: NonZeroU32| {
            Quota::with_period(period)
                .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
                .allow_burst(burst)
        };
        let token = quota(
            Duration::from_secs(1) / s.token_per_second.get(),
            s.token_burst,
        );
        let login = quota(
            Duration::from_secs(60) / s.login_per_minute.get(),
            s.login_burst,
        );
        Self {
            token: Some(RateLimiter::dashmap(token)),
            login: Some(RateLimiter::dashmap(login)),
        }
    }

    /// Counts one token request of an authenticated client.
    pub fn check_token(&self, client_id: &str) -> Result<(), RetryAfter> {
        check(self.token.as_ref(), client_id.to_string())
    }

    /// Counts one login attempt for `username` from `ip` (`None` when the peer
    /// address is unknown, e.g. a Unix socket or an in-process test client).
    pub fn check_login(&self, ip: Option<IpAddr>, username: &str) -> Result<(), RetryAfter> {
        let name: String = username
            .trim()
            .chars()
            .take(MAX_KEYED_USERNAME)
            .collect::<String>()
            .to_lowercase();
        let ip = ip.map_or_else(|| "-".to_string(), |ip| ip.to_string());
        check(self.login.as_ref(), format!("{ip} {name}"))
    }

    /// Forgets keys whose bucket has refilled (they behave exactly like new
    /// keys), bounding memory to the keys active in the last refill period.
    pub fn retain_recent(&self) {
        for l in [&self.token, &self.login].into_iter().flatten() {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// Number of keys currently held.
    pub fn len(&self) -> usize {
        [&self.token, &self.login]
            .into_iter()
            .flatten()
            .map(|l| l.len())
            .sum()
    }

    /// Whether `limits.enabled = false`.
    pub fn is_disabled(&self) -> bool {
        self.token.is_none()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn check(limiter: Option<&DefaultKeyedRateLimiter<String>>, key: String) -> Result<(), RetryAfter> {
    let Some(limiter) = limiter else {
        return Ok(());
    };
    limiter.check_key(&key).map_err(|not_until| {
        let wait = not_until.wait_time_from(limiter.clock().now());
        RetryAfter(retry_secs(wait))
    })
}

/// Whole seconds to wait, rounded up, at least 1 (RFC 9110 §10.2.3).
fn retry_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LimitOptions {
        let nz = |v: u32| NonZeroU32::new(v).unwrap();
        LimitOptions {
            enabled: true,
            token_per_second: nz(1),
            token_burst: nz(3),
            login_per_minute: nz(1),
            login_burst: nz(2),
            sweep_every: Duration::from_secs(60),
        }
    }

    #[test]
    fn burst_then_refused_with_retry_after() {
        let l = Limits::new(&settings());
        for _ in 0..3 {
            l.check_token("a").unwrap();
        }
        assert_eq!(l.check_token("a"), Err(RetryAfter(1)));
        // another client has its own budget
        l.check_token("b").unwrap();
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        l.check_login(ip, "Alice").unwrap();
        l.check_login(ip, "alice ").unwrap();
        let RetryAfter(secs) = l.check_login(ip, "ALICE").unwrap_err();
        assert!((1..=60).contains(&secs), "{secs}");
        // same name from another address, or another name: separate budgets
        l.check_login(Some(IpAddr::from([10, 0, 0, 2])), "alice")
            .unwrap();
        l.check_login(ip, "bob").unwrap();
    }

    #[test]
    fn disabled_never_refuses() {
        let l = Limits::new(&LimitOptions {
            enabled: false,
            ..settings()
        });
        for _ in 0..100 {
            l.check_token("a").unwrap();
            l.check_login(None, "alice").unwrap();
        }
        assert!(l.is_empty());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_secs(Duration::ZERO), 1);
        assert_eq!(retry_secs(Duration::from_millis(20)), 1);
        assert_eq!(retry_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_secs(Duration::from_secs(6)), 6);
    }

    #[test]
    fn long_usernames_share_one_key() {
        let l = Limits::new(&settings());
        let long = "x".repeat(10_000);
        l.check_login(None, &long).unwrap();
        l.check_login(None, &format!("{long}y")).unwrap();
        assert!(l.check_login(None, &long).is_err());
        assert_eq!(l.len(), 1);
    }
}
