//! Rate limits that protect instead of locking out: no single party can spend
//! a budget that other people depend on, and a busy app is never throttled
//! by default (README "Rate limits and slow clients").
//!
//! **In process** (per instance; GCRA from [`crate::rate`] over a `DashMap`),
//! at the token endpoint (`flows::token`):
//! - *Failed client authentications*, per (`client_id`, IP) and per IP, at
//!   the token, revocation and introspection endpoints alike. Both budgets
//!   are *checked* before the client is looked up and its secret compared
//!   ([`Limits::admit_client_auth`]) and *spent* only when authentication
//!   fails ([`Limits::client_auth_failed`]): an address that keeps sending
//!   wrong secrets gets 429 without further work, while the right secret from
//!   any other address, and every request of an app that authenticates,
//!   spends nothing. Check-then-spend lets a burst of concurrent failures
//!   overshoot by its concurrency; that is accepted here because client
//!   secrets are random and compared as a hash (reserving before the check
//!   instead would make a busy app's in-flight requests count against it).
//! - *Public clients*, per (`client_id`, IP): a public client authenticates
//!   by its id alone, so a per-client budget is anyone's to spend.
//! - *Confidential clients*, per client after authentication: no limit unless
//!   the operator sets a ceiling (`limits.client_per_second`).
//!
//! **Shared through the store** ([`crate::store::KvStore::rate`]; every
//! instance on one Redis counts together, since attackers spread requests
//! over a load balancer), stepped by `flows::users`:
//! - *Failed logins* per (IP, username), one budget for the login form and
//!   the password grant. A unit is reserved before argon2 runs (refused: 429
//!   without hashing) and refunded when the password is right, so successes
//!   cost nothing and N concurrent guesses cannot all pass.
//! - *Sign-ups* per IP (each one runs argon2 and creates an account).
//! - *Anonymous client registrations* per IP (`registration.open`; each one
//!   stores a client until it expires unused), stepped by `flows::registration`.
//!
//! This module holds their quotas and builds their key parts
//! ([`client_key`], [`login_name`]).
//!
//! Must not depend on poem or on the store.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use crate::config::LimitOptions;
use crate::rate::{self, Quota};

/// A refused request: how long the caller should wait, in whole seconds (≥ 1),
/// as sent in `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

impl From<Duration> for RetryAfter {
    /// Whole seconds to wait, rounded up, at least 1 (RFC 9110 §10.2.3).
    fn from(wait: Duration) -> Self {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Self(secs.max(1))
    }
}

/// The longest username kept in a login key: valid usernames have at most 64
/// characters, so a longer one cannot sign in and need not be told apart.
const MAX_KEYED_USERNAME: usize = 64;
/// The longest client id kept in a key: longer ids are never registered.
const MAX_KEYED_CLIENT_ID: usize = 256;

/// The limits of one process; every check passes when `limits.enabled = false`.
#[derive(Debug, Default)]
pub struct Limits {
    on: Option<On>,
}

#[derive(Debug)]
struct On {
    auth_failures: Keyed,
    ip_auth_failures: Keyed,
    public: Keyed,
    client: Option<Keyed>,
    login: Quota,
    signup: Quota,
    registration: Quota,
}

impl Limits {
    /// Builds the limiters from validated settings.
    pub fn new(s: &LimitOptions) -> Self {
        if !s.enabled {
            return Self::default();
        }
        Self {
            on: Some(On {
                auth_failures: Keyed::new(s.auth_failures),
                ip_auth_failures: Keyed::new(s.ip_auth_failures),
                public: Keyed::new(s.public),
                client: s.client.map(Keyed::new),
                login: s.login,
                signup: s.signup,
                registration: s.registration,
            }),
        }
    }

    /// Before a client is authenticated: refused while `ip`, or `client_id`
    /// from `ip`, has no failed-authentication budget left. Spends nothing.
    pub fn admit_client_auth(&self, client_id: &str, ip: Option<IpAddr>) -> Result<(), RetryAfter> {
        let Some(on) = &self.on else {
            return Ok(());
        };
        let now = Instant::now();
        on.ip_auth_failures.peek(&client_key(ip), now)?;
        on.auth_failures.peek(&client_ip_key(client_id, ip), now)
    }

    /// A client authentication failed: spends one unit of both budgets.
    pub fn client_auth_failed(&self, client_id: &str, ip: Option<IpAddr>) {
        let Some(on) = &self.on else {
            return;
        };
        let now = Instant::now();
        // Already over budget is fine: the next request is refused by
        // `admit_client_auth` either way.
        let _ = on.ip_auth_failures.take(client_key(ip), now);
        let _ = on.auth_failures.take(client_ip_key(client_id, ip), now);
    }

    /// Counts one token request of an authenticated client: a public client
    /// per (`client_id`, IP), a confidential one against the operator's
    /// ceiling, if any.
    pub fn check_token(
        &self,
        client_id: &str,
        public: bool,
        ip: Option<IpAddr>,
    ) -> Result<(), RetryAfter> {
        let Some(on) = &self.on else {
            return Ok(());
        };
        let now = Instant::now();
        match (&on.client, public) {
            (_, true) => on.public.take(client_ip_key(client_id, ip), now),
            (Some(ceiling), false) => {
                ceiling.take(bounded(client_id, MAX_KEYED_CLIENT_ID).to_string(), now)
            }
            (None, false) => Ok(()),
        }
    }

    /// The failed-login quota (shared through the store), unless disabled.
    pub fn login(&self) -> Option<Quota> {
        self.on.as_ref().map(|on| on.login)
    }

    /// The sign-up quota (shared through the store), unless disabled.
    pub fn signup(&self) -> Option<Quota> {
        self.on.as_ref().map(|on| on.signup)
    }

    /// The anonymous-registration quota (shared through the store), unless disabled.
    pub fn registration(&self) -> Option<Quota> {
        self.on.as_ref().map(|on| on.registration)
    }

    /// Forgets keys whose bucket is full again (they behave exactly like new
    /// keys), bounding memory to the keys active in the last refill period.
    pub fn retain_recent(&self) {
        let now = Instant::now();
        for k in self.keyed() {
            k.retain_recent(now);
        }
    }

    /// Number of in-process keys currently held.
    pub fn len(&self) -> usize {
        self.keyed().map(Keyed::len).sum()
    }

    /// Whether `limits.enabled = false`.
    pub fn is_disabled(&self) -> bool {
        self.on.is_none()
    }

    /// Whether no in-process key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn keyed(&self) -> impl Iterator<Item = &Keyed> {
        self.on.iter().flat_map(|on| {
            [&on.auth_failures, &on.ip_auth_failures, &on.public]
                .into_iter()
                .chain(on.client.as_ref())
        })
    }
}

/// The key part for a client address: an IPv4 address as is (also when
/// IPv4-mapped), an IPv6 address by its /64 prefix (one subscriber usually
/// holds a whole /64, so per-address keys would let them rotate freely),
/// `-` when unknown (e.g. a Unix socket). The address is the TCP peer:
/// `X-Forwarded-For` is not trusted.
pub fn client_key(ip: Option<IpAddr>) -> String {
    match ip.map(|ip| ip.to_canonical()) {
        None => "-".to_string(),
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// The client's address, for the limits and the logs: the TCP `peer`,
/// unless the peer is one of the `trusted` reverse proxies
/// (`server.trusted_proxies`). Then the `X-Forwarded-For` entries (every
/// header's, in order) are read from the right, skipping trusted proxies,
/// and the first other address is the client: what a client writes into
/// the header itself sits to the left of what its first trusted proxy
/// appended, so it is never reached. A chain of trusted proxies only names
/// its leftmost one; an entry that is not an address (`unknown`, garbage)
/// stops the walk at the last trusted hop read. Entries may carry a port
/// (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
pub fn forwarded_client<'a>(
    peer: Option<IpAddr>,
    forwarded_for: impl Iterator<Item = &'a str>,
    trusted: &[ipnet::IpNet],
) -> Option<IpAddr> {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(&ip.to_canonical()));
    let mut client = peer?;
    if !is_trusted(client) {
        return Some(client);
    }
    let entries: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).collect();
    for entry in entries.iter().rev() {
        let entry = entry.trim();
        let Some(ip) = entry
            .parse::<IpAddr>()
            .ok()
            .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        else {
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    Some(client)
}

/// The login limiter's name part: trimmed, at most 64 characters,
/// lower-cased, so `Alice`, `alice ` and `ALICE` share one budget.
pub fn login_name(username: &str) -> String {
    bounded(username.trim(), MAX_KEYED_USERNAME).to_lowercase()
}

/// The first `max_chars` characters of `s` (a slice: no copy).
fn bounded(s: &str, max_chars: usize) -> &str {
    match s.char_indices().nth(max_chars) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

fn client_ip_key(client_id: &str, ip: Option<IpAddr>) -> String {
    // The address part has no space, so the pair is unambiguous.
    let id = bounded(client_id, MAX_KEYED_CLIENT_ID);
    let mut key = client_key(ip);
    key.reserve(1 + id.len());
    key.push(' ');
    key.push_str(id);
    key
}

/// One in-process keyed GCRA limiter: the theoretical arrival time per key
/// (see [`crate::rate`]); a key whose time has passed is a full bucket.
#[derive(Debug)]
struct Keyed {
    quota: Quota,
    tats: DashMap<String, Instant>,
}

impl Keyed {
    fn new(quota: Quota) -> Self {
        Self {
            quota,
            tats: DashMap::new(),
        }
    }

    /// Takes one unit for `key`; the entry guard makes it atomic per key.
    fn take(&self, key: String, now: Instant) -> Result<(), RetryAfter> {
        let entry = self.tats.entry(key);
        let ahead = match &entry {
            Entry::Occupied(o) => o.get().saturating_duration_since(now),
            Entry::Vacant(_) => Duration::ZERO,
        };
        let next = rate::step(ahead, self.quota, 1).map_err(RetryAfter::from)?;
        entry.insert(now + next);
        Ok(())
    }

    /// Whether one unit is available for `key`, taking nothing.
    fn peek(&self, key: &str, now: Instant) -> Result<(), RetryAfter> {
        let ahead = self
            .tats
            .get(key)
            .map_or(Duration::ZERO, |tat| tat.saturating_duration_since(now));
        rate::step(ahead, self.quota, 1)
            .map(drop)
            .map_err(RetryAfter::from)
    }

    fn retain_recent(&self, now: Instant) {
        self.tats.retain(|_, tat| *tat > now);
        self.tats.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.tats.len()
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    fn quota(per: Duration, burst: u32) -> Quota {
        Quota::new(
            per,
            NonZeroU32::MIN,
            NonZeroU32::new(burst).expect("burst > 0"),
        )
    }

    #[test]
    fn the_client_behind_trusted_proxies_is_the_first_untrusted_hop_from_the_right() {
        let nets: Vec<ipnet::IpNet> = ["10.0.0.0/24", "::1/128"]
            .iter()
            .map(|n| n.parse().expect("net"))
            .collect();
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let client = |peer: &str, xff: &[&str]| {
            forwarded_client(Some(ip(peer)), xff.iter().copied(), &nets).map(|a| a.to_string())
        };
        // An untrusted peer is the client, whatever it writes.
        assert_eq!(
            client("192.0.2.9", &["203.0.113.1"]),
            Some("192.0.2.9".into())
        );
        // Through one trusted proxy.
        assert_eq!(client("10.0.0.7", &["192.0.2.9"]), Some("192.0.2.9".into()));
        // A forged entry sits left of what the proxy appended: not reached.
        assert_eq!(
            client("10.0.0.7", &["203.0.113.1, 192.0.2.9"]),
            Some("192.0.2.9".into())
        );
        // Trusted hops are skipped; several headers read in order; ports dropped.
        assert_eq!(
            client("10.0.0.7", &["198.51.100.4:4711, 10.0.0.3", "10.0.0.5"]),
            Some("198.51.100.4".into())
        );
        assert_eq!(
            client("::1", &["[2001:db8::1]:80"]),
            Some("2001:db8::1".into())
        );
        // IPv4-mapped peers count as their IPv4 address.
        assert_eq!(
            client("::ffff:10.0.0.7", &["192.0.2.9"]),
            Some("192.0.2.9".into())
        );
        // No header, only proxies, or garbage: the last trusted hop read.
        assert_eq!(client("10.0.0.7", &[]), Some("10.0.0.7".into()));
        assert_eq!(client("10.0.0.7", &["10.0.0.5"]), Some("10.0.0.5".into()));
        assert_eq!(
            client("10.0.0.7", &["192.0.2.9, unknown, 10.0.0.5"]),
            Some("10.0.0.5".into())
        );
        assert_eq!(
            forwarded_client(None, ["192.0.2.9"].into_iter(), &nets),
            None
        );
        // Without trusted proxies the header is never read.
        assert_eq!(
            forwarded_client(Some(ip("10.0.0.7")), ["192.0.2.9"].into_iter(), &[]),
            Some(ip("10.0.0.7"))
        );
    }

    fn settings() -> LimitOptions {
        LimitOptions {
            enabled: true,
            auth_failures: quota(Duration::from_secs(60), 2),
            ip_auth_failures: quota(Duration::from_secs(60), 3),
            public: quota(Duration::from_secs(1), 3),
            client: None,
            login: quota(Duration::from_secs(60), 2),
            signup: quota(Duration::from_secs(3600), 2),
            registration: quota(Duration::from_secs(3600), 2),
            sweep_every: Duration::from_secs(60),
        }
    }

    const A: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)));
    const B: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)));

    #[test]
    fn failed_client_auth_is_limited_per_client_and_address_then_per_address() {
        let l = Limits::new(&settings());
        for _ in 0..2 {
            l.admit_client_auth("app", A).unwrap();
            l.client_auth_failed("app", A);
        }
        let RetryAfter(secs) = l.admit_client_auth("app", A).unwrap_err();
        assert!((1..=60).contains(&secs), "{secs}");
        // The same client from another address, another client from this one.
        l.admit_client_auth("app", B).unwrap();
        l.admit_client_auth("other", A).unwrap();
        // A third failure from A (another client) spends A's last unit.
        l.client_auth_failed("other", A);
        assert!(l.admit_client_auth("third", A).is_err());
        l.admit_client_auth("third", B).unwrap();
    }

    #[test]
    fn public_clients_per_address_confidential_unlimited_without_a_ceiling() {
        let l = Limits::new(&settings());
        for _ in 0..3 {
            l.check_token("spa", true, A).unwrap();
        }
        assert_eq!(l.check_token("spa", true, A), Err(RetryAfter(1)));
        l.check_token("spa", true, B).unwrap();
        for _ in 0..1000 {
            l.check_token("web", false, A).unwrap();
        }
        let l = Limits::new(&LimitOptions {
            client: Some(quota(Duration::from_secs(1), 2)),
            ..settings()
        });
        l.check_token("web", false, A).unwrap();
        l.check_token("web", false, B).unwrap();
        assert!(
            l.check_token("web", false, A).is_err(),
            "one ceiling per client"
        );
    }

    #[test]
    fn disabled_never_refuses() {
        let l = Limits::new(&LimitOptions {
            enabled: false,
            ..settings()
        });
        for _ in 0..100 {
            l.client_auth_failed("a", A);
            l.admit_client_auth("a", A).unwrap();
            l.check_token("a", true, A).unwrap();
        }
        assert!(l.is_empty());
        assert_eq!((l.login(), l.signup()), (None, None));
        assert_eq!(l.registration(), None);
    }

    #[test]
    fn keys_are_forgotten_once_their_bucket_is_full() {
        let k = Keyed::new(quota(Duration::from_secs(1), 2));
        let t0 = Instant::now();
        k.take("a".into(), t0).unwrap();
        k.take("a".into(), t0).unwrap();
        assert!(k.take("a".into(), t0).is_err());
        assert!(k.peek("a", t0).is_err());
        k.peek("a", t0 + Duration::from_secs(1)).unwrap();
        k.retain_recent(t0 + Duration::from_secs(1));
        assert_eq!(k.len(), 1, "one unit is still missing");
        k.retain_recent(t0 + Duration::from_secs(2));
        assert_eq!(k.len(), 0);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let r = |d| RetryAfter::from(d).0;
        assert_eq!(r(Duration::ZERO), 1);
        assert_eq!(r(Duration::from_millis(20)), 1);
        assert_eq!(r(Duration::from_millis(1001)), 2);
        assert_eq!(r(Duration::from_secs(6)), 6);
    }

    #[test]
    fn key_parts_are_bounded_and_normalised() {
        assert_eq!(login_name("  ALICE "), "alice");
        let long = "X".repeat(10_000);
        assert_eq!(login_name(&long), login_name(&format!("{long}y")));
        assert_eq!(login_name(&long).len(), 64);
        assert_eq!(client_key(None), "-");
        assert_eq!(client_key(A), "10.0.0.1");
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(client_key(Some(mapped)), "10.0.0.1");
        let v6 = |s: &str| client_key(Some(s.parse().unwrap()));
        assert_eq!(v6("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(v6("2001:db8:1:2::ffff"), v6("2001:db8:1:2:3:4:5:6"));
        assert_ne!(v6("2001:db8:1:3::1"), v6("2001:db8:1:2::1"));
        let id = "c".repeat(1000);
        assert_eq!(client_ip_key(&id, A).len(), "10.0.0.1 ".len() + 256);
    }
}
