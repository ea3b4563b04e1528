//! GCRA (the generic cell rate algorithm) as plain arithmetic, shared by the
//! in-process limiters ([`crate::limits`]) and the memory store's
//! [`crate::store::KvStore::rate`]; the Redis store runs the same steps in a
//! Lua script (`store::redis`).
//!
//! GCRA keeps one instant per key, the *theoretical arrival time* (TAT): when
//! the key's bucket is full again. Here it is handled relative to now, as
//! `ahead = max(TAT − now, 0)`, so the arithmetic needs no clock and an
//! absent key is simply `ahead = 0`. A unit costs one `emission` interval;
//! a request is allowed while `ahead + cost × emission ≤ burst × emission`,
//! i.e. `burst` units at once, then one per `emission`. A negative cost is a
//! refund and never takes `ahead` below zero (a bucket cannot be fuller than
//! full). A key whose `ahead` is zero carries no information and can be
//! forgotten: that is what bounds memory (the store's TTL, the sweeper).
//!
//! Must not depend on anything else in the crate: it is arithmetic only.

use std::num::NonZeroU32;
use std::time::Duration;

/// A rate: `burst` units at once, refilled at one unit per `emission`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Time one unit takes to refill (the period divided by the count).
    pub emission: Duration,
    /// Units available at once when the bucket is full.
    pub burst: NonZeroU32,
}

impl Quota {
    /// `count` units per `period`, with `burst` at once. The interval is
    /// at least 1 µs (the Redis script's resolution).
    pub fn new(period: Duration, count: NonZeroU32, burst: NonZeroU32) -> Self {
        Self {
            emission: (period / count.get()).max(Duration::from_micros(1)),
            burst,
        }
    }

    /// How far ahead of now the TAT may be after an allowed request.
    pub fn tolerance(&self) -> Duration {
        self.emission.saturating_mul(self.burst.get())
    }
}

/// What a rate check answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The units were taken (or refunded).
    Allowed,
    /// Over the limit: nothing was taken; the same request is allowed after
    /// `retry_after`.
    Limited {
        /// How long until the request would be allowed.
        retry_after: Duration,
    },
}

/// One GCRA step: `ahead` is how far the key's TAT is past now (zero for an
/// absent or full key). Returns the new `ahead` to store (zero: forget the
/// key), or how long to wait when `cost` units are not available. A cost
/// ≤ 0 is always allowed.
pub fn step(ahead: Duration, quota: Quota, cost: i64) -> Result<Duration, Duration> {
    let units = u32::try_from(cost.unsigned_abs()).unwrap_or(u32::MAX);
    let delta = quota.emission.saturating_mul(units);
    if cost <= 0 {
        return Ok(ahead.saturating_sub(delta));
    }
    let next = ahead.saturating_add(delta);
    let tolerance = quota.tolerance();
    if next > tolerance {
        Err(next - tolerance)
    } else {
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(emission_ms: u64, burst: u32) -> Quota {
        Quota {
            emission: Duration::from_millis(emission_ms),
            burst: NonZeroU32::new(burst).unwrap(),
        }
    }

    #[test]
    fn burst_then_one_per_emission() {
        let q = quota(100, 3);
        let mut ahead = Duration::ZERO;
        for _ in 0..3 {
            ahead = step(ahead, q, 1).unwrap();
        }
        assert_eq!(ahead, Duration::from_millis(300));
        // Full: the next unit is 100 ms away, and a refused step changes nothing.
        assert_eq!(step(ahead, q, 1), Err(Duration::from_millis(100)));
        assert_eq!(step(ahead, q, 2), Err(Duration::from_millis(200)));
        // 100 ms later (ahead shrinks with time) one more fits.
        assert_eq!(
            step(ahead - Duration::from_millis(100), q, 1),
            Ok(Duration::from_millis(300))
        );
    }

    #[test]
    fn refunds_never_go_below_full() {
        let q = quota(100, 2);
        let ahead = step(Duration::ZERO, q, 1).unwrap();
        assert_eq!(step(ahead, q, -1), Ok(Duration::ZERO));
        assert_eq!(step(Duration::ZERO, q, -1), Ok(Duration::ZERO));
        assert_eq!(step(Duration::ZERO, q, -5), Ok(Duration::ZERO));
        // A huge cost saturates instead of overflowing.
        assert!(step(Duration::ZERO, q, i64::MAX).is_err());
        assert_eq!(
            step(Duration::from_secs(3600), q, i64::MIN),
            Ok(Duration::ZERO)
        );
    }

    #[test]
    fn quota_from_a_period() {
        let nz = |v| NonZeroU32::new(v).unwrap();
        let q = Quota::new(Duration::from_secs(60), nz(10), nz(5));
        assert_eq!(q.emission, Duration::from_secs(6));
        assert_eq!(q.tolerance(), Duration::from_secs(30));
        let q = Quota::new(Duration::from_secs(1), nz(u32::MAX), nz(1));
        assert_eq!(q.emission, Duration::from_micros(1));
    }
}
