//! Typed facade over the store: owns key naming (`kg:<kind>:<id>`) and serde.
//! The flows never see raw keys. Codes, refresh tokens and sessions are keyed
//! by the SHA-256 of the secret value, so the store never holds them in clear.
//!
//! Key layout on a Redis Cluster ([`Layout::Slotted`]; docs/redis.md "Redis
//! Cluster"): every atomic operation must stay on one hash slot, so a
//! user's grant state is kept on the slot of the user's record
//! `kg:user:<id>`. Its ids carry a tag with that slot
//! ([`slots::tag_for`]): codes, refresh tokens, family ids, consent ids and
//! access-token `jti`s are `<tag>.<random>`, and their keys are
//! `kg:<kind>:{<tag>}<…>`; markers named by a subject (`kg:revoked:sub:`,
//! `kg:revoked:app:`) and the list of allowed apps (`kg:apps:`) take the
//! subject's tag. An id without a tag (every id on the flat layout, and any
//! record written before) keeps the key it always had, so the flat layout
//! is byte-for-byte what it was. Clients live on their own slots: the token
//! path reads them from [`ClientCache`], which every instance invalidates
//! when a client changes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::invalidation::{Invalidations, Listener};
use super::{slots, Layout, Put, Store, StoreError, Swap};
use crate::clock::{Clock, SystemClock, UnixTime};
use crate::oauth::consent::{self, AllowedApps};
use crate::oauth::grace::GraceSeal;
use crate::oauth::resource::{Resource, ResourceId};
use crate::oauth::token::{AccessClaims, CodeRecord, RefreshRecord};
use crate::oauth::types::{Client, ScopeSet};
use crate::rate::{Decision, Quota};

const CLIENT: &str = "kg:client:";
/// `kg:resource:<normalised URI>` ([`ResourceId`]); listed by prefix, like clients.
const RESOURCE: &str = "kg:resource:";
const USER: &str = "kg:user:";
const USERNAME: &str = "kg:uname:";
const CODE: &str = "kg:code:";
const REFRESH: &str = "kg:rt:";
const FAMILY: &str = "kg:fam:";
const DENY: &str = "kg:deny:";
const REVOKED_GRANT: &str = "kg:revoked:grant:";
const REVOKED_CLIENT: &str = "kg:revoked:client:";
const REVOKED_SUB: &str = "kg:revoked:sub:";
const SESSION: &str = "kg:sess:";
const SESSION_CLIENTS: &str = "kg:sessclients:";
/// `kg:apps:<user id>`: the apps the user allowed ([`AllowedApps`]), no TTL.
const APPS: &str = "kg:apps:";
/// `kg:consent:<consent id>`: exists while the user allows the app; codes
/// and refresh families issued under the consent require it.
const CONSENT: &str = "kg:consent:";
/// `kg:revoked:app:<sub> <client id>`: when the user revoked the app (its
/// access tokens issued until then are revoked), for the access-token lifetime.
const REVOKED_APP: &str = "kg:revoked:app:";
const ORIGIN: &str = "kg:origin:";
const CORS: &str = "kg:cors:";
const ORIGINS_INDEXED: &str = "kg:meta:origins-indexed";
const RATE_LOGIN: &str = "kg:rl:login:";
const RATE_SIGNUP: &str = "kg:rl:signup:";
const RATE_REGISTER: &str = "kg:rl:register:";
/// `kg:flash:<hash of id>`: a one-time message for the next page of one
/// session (the secret of a client just created), read once, short TTL.
const FLASH: &str = "kg:flash:";
/// `kg:formused:<hash of nonce>`: a page form that was submitted; a second
/// submission of the same form finds it and is refused.
const FORM_USED: &str = "kg:formused:";

/// Attempts of a compare-and-swap loop before [`StoreError::Contended`].
const CAS_ATTEMPTS: usize = 16;

/// The store key part for a secret value: base64url(SHA-256(value)).
pub fn secret_key(value: &str) -> String {
    B64.encode(crate::oauth::client_auth::hash_secret(value))
}

fn ttl_secs(secs: i64) -> Option<Duration> {
    Some(Duration::from_secs(secs.max(1) as u64))
}

/// The key of `id` under `prefix`: `prefix{tag}id` when `id` carries a tag
/// (`<tag>.<random>`, made on the slotted layout), else `prefix` + `id`.
fn id_key(prefix: &str, id: &str) -> String {
    match carried_tag(id) {
        Some(tag) => format!("{prefix}{{{tag}}}{id}"),
        None => format!("{prefix}{id}"),
    }
}

/// The key of a secret value (code, refresh token): `prefix{tag}<hash>`
/// when it carries a tag, else `prefix<hash>` ([`secret_key`]).
fn secret_id_key(prefix: &str, secret: &str) -> String {
    match carried_tag(secret) {
        Some(tag) => format!("{prefix}{{{tag}}}{}", secret_key(secret)),
        None => format!("{prefix}{}", secret_key(secret)),
    }
}

/// The slot tag an id or token carries (`<tag>.<random>`), if it has one.
fn carried_tag(id: &str) -> Option<&str> {
    let (tag, _) = id.split_once('.')?;
    slots::is_tag(tag).then_some(tag)
}

/// How long a cached client is trusted without a store read even while
/// the invalidation feed is live: the bound on staleness if a notice is
/// lost without the subscription noticing (a safety net; notices normally
/// arrive within milliseconds).
pub const CLIENT_REVALIDATE: Duration = Duration::from_secs(10);

/// Typed access to everything keygate stores.
#[derive(Clone)]
pub struct Repos {
    store: Store,
    /// How keys are named on this store.
    layout: Layout,
    /// Clients decoded from the bytes last read for them (see [`ClientCache`]).
    clients: Arc<ClientCache>,
    /// How long a revocation marker must outlive its write: the access-token
    /// lifetime, so every token issued before it has expired when it goes.
    revocation_ttl: Duration,
    /// Turns the absolute expiry of an expiring client
    /// ([`Client::expires_at`]) into the store TTL of its key and of its
    /// CORS origin entries.
    clock: Arc<dyn Clock>,
}

/// Most clients [`ClientCache`] holds; past it, it starts over.
const CLIENT_CACHE_MAX: usize = 1024;

/// Decoded clients by id, each with the exact bytes it was decoded from.
///
/// Without an invalidation feed (memory, one Redis) every lookup still
/// reads the store, in the same round trip as the code or refresh token (so
/// an update, a secret rotation or a deletion by any instance is seen at
/// once); only the JSON decoding, which costs more than the rest of a
/// memory-store token request but the signature, is skipped when the bytes
/// read are the bytes decoded last time.
///
/// With a feed (Redis Cluster, [`Invalidations`]) an entry is also *trusted*
/// without a read while the feed is live, for at most
/// [`CLIENT_REVALIDATE`] after it was read and never past the client's
/// expiry: every write of a client publishes its id and every instance
/// drops the entry. An entry read while a notice went by is not kept (the
/// epoch check in [`ClientCache::decode`]), so a read racing a change can
/// never leave the old client cached.
///
/// Bounded: when full, it is emptied and fills again with the clients in use.
#[derive(Default)]
struct ClientCache {
    by_id: dashmap::DashMap<String, Arc<CachedClient>>,
    feed: Option<Arc<Invalidations>>,
}

/// One [`ClientCache`] entry.
struct CachedClient {
    bytes: Vec<u8>,
    client: Client,
    /// When the bytes were last read from the store.
    read_at: std::sync::Mutex<std::time::Instant>,
}

impl CachedClient {
    fn read_at(&self) -> Option<std::time::Instant> {
        self.read_at.lock().ok().map(|t| *t)
    }

    /// The same bytes were just read again.
    fn touch(&self) {
        if let Ok(mut t) = self.read_at.lock() {
            *t = std::time::Instant::now();
        }
    }
}

impl Listener for ClientCache {
    fn invalidate(&self, id: Option<&str>) {
        match id {
            Some(id) => {
                self.by_id.remove(id);
            }
            None => self.by_id.clear(),
        }
    }
}

impl ClientCache {
    fn new(feed: Option<Arc<Invalidations>>) -> Arc<Self> {
        let cache = Arc::new(Self {
            by_id: dashmap::DashMap::new(),
            feed,
        });
        if let Some(feed) = &cache.feed {
            let weak = Arc::downgrade(&cache);
            let weak: std::sync::Weak<dyn Listener> = weak;
            feed.listen(weak);
        }
        cache
    }

    /// The feed's epoch before a store read (0 without a feed).
    fn epoch(&self) -> u64 {
        self.feed.as_ref().map_or(0, |f| f.epoch())
    }

    /// The client `id` if it may be used without reading the store: the
    /// feed is live, the entry is fresh, and the client has not expired.
    fn trusted(&self, id: &str, now: UnixTime) -> Option<Client> {
        let feed = self.feed.as_ref()?;
        if !feed.live() {
            return None;
        }
        let hit = self.by_id.get(id).map(|e| Arc::clone(e.value()))?;
        let fresh = hit
            .read_at()
            .is_some_and(|t| t.elapsed() < CLIENT_REVALIDATE)
            && hit.client.expires_at.is_none_or(|at| now < at);
        fresh.then(|| hit.client.clone())
    }

    /// Decodes `bytes`, read for `id` from the store after [`Self::epoch`]
    /// returned `epoch`, and remembers them.
    fn decode(&self, id: &str, bytes: Vec<u8>, epoch: u64) -> Result<Client, StoreError> {
        let client = match self.by_id.get(id).map(|e| Arc::clone(e.value())) {
            Some(hit) if hit.bytes == bytes => {
                hit.touch();
                hit.client.clone()
            }
            _ => {
                let client: Client = serde_json::from_slice(&bytes)?;
                if self.by_id.len() >= CLIENT_CACHE_MAX {
                    self.by_id.clear();
                }
                self.by_id.insert(
                    id.to_string(),
                    Arc::new(CachedClient {
                        bytes,
                        client: client.clone(),
                        read_at: std::sync::Mutex::new(std::time::Instant::now()),
                    }),
                );
                client
            }
        };
        // A notice (or a lost subscription) since the read may concern
        // these bytes: do not keep them. Checked after the insert, so a
        // notice handled between the check and the insert cannot be missed
        // (the feed moves its epoch before it removes entries).
        if let Some(feed) = &self.feed {
            if !feed.live() || feed.epoch() != epoch {
                self.by_id.remove(id);
            }
        }
        Ok(client)
    }
}

/// A stored value with the exact bytes it was read as, for compare-and-swap.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    /// The decoded value.
    pub value: T,
    /// The raw bytes.
    pub raw: Vec<u8>,
}

/// A user account, with the profile behind the OpenID Connect claims
/// (Core §5.1: `name`, `email`, `email_verified`, `updated_at`).
///
/// Records written before the profile fields existed still parse: no
/// `name`, `email_verified: false`, and `updated_at` = `created_at` (the
/// profile has not changed since the account was made).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredUser")]
pub struct User {
    /// Stable id: the `sub` of the user's tokens (never the username).
    pub id: String,
    /// Login name (unique, compared case-insensitively).
    pub username: String,
    /// Optional email address.
    pub email: Option<String>,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Creation time.
    pub created_at: i64,
    /// Full name (claim `name`), when the user gave one.
    pub name: Option<String>,
    /// Whether `email` was verified (claim `email_verified`); set only by an
    /// operator (`keygate user set --email-verified`), reset by a new email.
    pub email_verified: bool,
    /// When the profile last changed (claim `updated_at`; 0 = unknown).
    pub updated_at: i64,
}

/// A [`User`] as stored, with the profile fields optional (older records).
#[derive(Deserialize)]
struct StoredUser {
    id: String,
    username: String,
    #[serde(default)]
    email: Option<String>,
    password_hash: String,
    created_at: i64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email_verified: bool,
    #[serde(default)]
    updated_at: Option<i64>,
}

impl From<StoredUser> for User {
    fn from(u: StoredUser) -> Self {
        Self {
            updated_at: u.updated_at.unwrap_or(u.created_at),
            id: u.id,
            username: u.username,
            email: u.email,
            password_hash: u.password_hash,
            created_at: u.created_at,
            name: u.name,
            email_verified: u.email_verified,
        }
    }
}

/// A login session (cookie value hashed in the key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The signed-in user's id.
    pub user_id: String,
    /// Their username (for display).
    pub username: String,
    /// When the user authenticated.
    pub auth_time: i64,
    /// Expiry (seconds since the epoch).
    pub expires_at: i64,
    /// The session's public id: the `sid` of the ID tokens and logout
    /// tokens issued for it (OpenID Connect Back-Channel Logout 1.0 §2.1).
    /// Random and unrelated to the cookie value, which stays secret. Empty
    /// for a session stored before keygate recorded it.
    #[serde(default)]
    pub sid: String,
}

impl Repos {
    /// Wraps the store. `access_ttl` (`tokens.access_ttl`) is how long the
    /// markers that revoke a refresh family's, a deleted client's or a
    /// deleted user's access tokens are kept.
    pub fn new(store: Store, access_ttl: Duration) -> Self {
        Self {
            layout: store.layout(),
            clients: ClientCache::new(store.invalidations()),
            store,
            revocation_ttl: access_ttl.max(Duration::from_secs(1)),
            clock: Arc::new(SystemClock),
        }
    }

    /// Uses `clock` (the server's) instead of the system clock for the TTLs
    /// of expiring clients.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The key layout of the store (see the module docs).
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The slot tag of `user_id`'s grant state on the slotted layout.
    fn user_tag(&self, user_id: &str) -> Option<&'static str> {
        (self.layout == Layout::Slotted).then(|| slots::tag_for(&format!("{USER}{user_id}")))
    }

    /// A new random id of `bytes` random bytes for state of `user_id`:
    /// `<tag>.<random>` on the slotted layout, else just the random part.
    fn new_user_id(&self, user_id: &str, bytes: usize) -> String {
        let random = crate::ids::random_token(bytes);
        match self.user_tag(user_id) {
            Some(tag) => format!("{tag}.{random}"),
            None => random,
        }
    }

    /// The key of a marker or list named by a subject (`prefix<sub><rest>`),
    /// on the subject's slot when slotted.
    fn subject_key(&self, prefix: &str, sub: &str, rest: &str) -> String {
        match self.user_tag(sub) {
            Some(tag) => format!("{prefix}{{{tag}}}{sub}{rest}"),
            None => format!("{prefix}{sub}{rest}"),
        }
    }

    /// A new authorization code (32 random bytes) for `sub`.
    pub fn new_code(&self, sub: &str) -> String {
        self.new_user_id(sub, 32)
    }

    /// A new refresh token (32 random bytes) for `sub`.
    pub fn new_refresh_token(&self, sub: &str) -> String {
        self.new_user_id(sub, 32)
    }

    /// A new refresh family id (16 random bytes) for `sub`.
    pub fn new_family(&self, sub: &str) -> String {
        self.new_user_id(sub, 16)
    }

    /// A new remembered-consent id (16 random bytes) for `user_id`.
    pub fn new_consent_id(&self, user_id: &str) -> String {
        self.new_user_id(user_id, 16)
    }

    /// A new access-token `jti` (16 random bytes) for `sub`: its deny
    /// marker then lives on the subject's slot.
    pub fn new_jti(&self, sub: &str) -> String {
        self.new_user_id(sub, 16)
    }

    /// Tells every instance that `client_id` changed (their client caches
    /// drop it; this one's at once, before the notice goes out). A failure
    /// to publish is logged, not returned: the write it follows
    /// succeeded, and cached entries are re-read within
    /// [`CLIENT_REVALIDATE`] anyway.
    async fn client_changed(&self, client_id: &str) {
        // This process at once (read-your-writes: the next request here
        // must not be served the old client while the notice travels).
        if let Some(feed) = &self.clients.feed {
            feed.notify(Some(client_id));
        }
        if let Err(e) = self.store.publish_invalidation(client_id).await {
            tracing::warn!(error = %e, "could not publish a client change; other instances may use the old client for up to {CLIENT_REVALIDATE:?}");
        }
    }

    /// The store TTL of `client`'s key: until its expiry for an anonymously
    /// registered client, none (never expires) for every other.
    fn client_ttl(&self, client: &Client) -> Option<Duration> {
        client
            .expires_at
            .and_then(|at| ttl_secs(at - self.clock.now()))
    }

    /// Writes a revocation marker for every access token carrying `key`'s
    /// id, kept until the longest-lived of them has expired.
    /// Durable (`store.wait_replicas`): a lost marker would bring the
    /// tokens back after a failover.
    async fn mark_revoked(&self, key: &str) -> Result<(), StoreError> {
        self.store.put(key, b"1", Some(self.revocation_ttl)).await?;
        self.store.sync_replicas(key).await?;
        Ok(())
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.store.get(key).await? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    async fn get_versioned<T: for<'de> Deserialize<'de>>(
        &self,
        key: &str,
    ) -> Result<Option<Versioned<T>>, StoreError> {
        match self.store.get(key).await? {
            Some(raw) => Ok(Some(Versioned {
                value: serde_json::from_slice(&raw)?,
                raw,
            })),
            None => Ok(None),
        }
    }

    // ---- clients -------------------------------------------------------

    /// Reads a client from the store (always: read-modify-write callers
    /// such as secret rotation must start from the stored client; only the
    /// token path's combined reads may use the cache, see [`ClientCache`]).
    pub async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        let epoch = self.clients.epoch();
        match self.store.get(&format!("{CLIENT}{client_id}")).await? {
            Some(bytes) => Ok(Some(self.clients.decode(client_id, bytes, epoch)?)),
            None => Ok(None),
        }
    }

    /// Reads a client (when `client_id` is given) and the record under `key`
    /// in one round trip.
    async fn client_and<T: for<'de> Deserialize<'de>>(
        &self,
        client_id: Option<&str>,
        key: &str,
    ) -> Result<(Option<Client>, Option<Versioned<T>>), StoreError> {
        let Some(id) = client_id else {
            return Ok((None, self.get_versioned(key).await?));
        };
        // On a cluster the client is on another slot: from the cache when
        // it can be trusted, so that the record is the only read.
        if let Some(c) = self.clients.trusted(id, self.clock.now()) {
            return Ok((Some(c), self.get_versioned(key).await?));
        }
        let epoch = self.clients.epoch();
        let client_key = format!("{CLIENT}{id}");
        let mut vals = self.store.get_many(&[&client_key, key]).await?.into_iter();
        let client = match vals.next().flatten() {
            Some(bytes) => Some(self.clients.decode(id, bytes, epoch)?),
            None => None,
        };
        let record = match vals.next().flatten() {
            Some(raw) => Some(Versioned {
                value: serde_json::from_slice(&raw)?,
                raw,
            }),
            None => None,
        };
        Ok((client, record))
    }

    /// Reads a stored client (unless `client_id` is `None`) and a code record
    /// together: the token endpoint's first round trip.
    pub async fn client_and_code(
        &self,
        client_id: Option<&str>,
        code: &str,
    ) -> Result<(Option<Client>, Option<Versioned<CodeRecord>>), StoreError> {
        self.client_and(client_id, &secret_id_key(CODE, code)).await
    }

    /// Reads a stored client (unless `client_id` is `None`) and a refresh
    /// token record together.
    pub async fn client_and_refresh(
        &self,
        client_id: Option<&str>,
        token: &str,
    ) -> Result<(Option<Client>, Option<Versioned<RefreshRecord>>), StoreError> {
        self.client_and(client_id, &secret_id_key(REFRESH, token))
            .await
    }

    /// Creates or replaces a client, then updates the CORS origin index
    /// (see [`Repos::origin_allowed`]). The write is a compare-and-swap so
    /// that the client it replaced, whose origins may have to leave the
    /// index, is known exactly. A client with [`Client::expires_at`] is
    /// stored with a TTL until then, and so are its origin entries.
    pub async fn put_client(&self, client: &Client) -> Result<(), StoreError> {
        let key = format!("{CLIENT}{}", client.client_id);
        let bytes = serde_json::to_vec(client)?;
        let ttl = self.client_ttl(client);
        let mut touched = client.cors_origins();
        for _ in 0..CAS_ATTEMPTS {
            let wrote = match self.get_versioned::<Client>(&key).await? {
                None => self.store.put_new(&key, &bytes, ttl).await?,
                Some(old) => {
                    touched.extend(old.value.cors_origins());
                    self.store
                        .swap(&Swap {
                            key: &key,
                            expected: &old.raw,
                            new: Some((&bytes, ttl)),
                            require: &[],
                            puts: &[],
                            durable: false,
                        })
                        .await?
                }
            };
            if wrote {
                self.client_changed(&client.client_id).await;
                return self.sync_origins(&client.client_id, &touched).await;
            }
        }
        Err(StoreError::Contended(key))
    }

    /// Moves an expiring client's expiry forward to `expires_at` (its key's
    /// TTL and its CORS origin entries' with it), if it still exists and
    /// expires earlier; a deleted or expired client is never brought back,
    /// and a client that never expires is left alone. Returns whether it
    /// wrote.
    pub async fn extend_client(
        &self,
        client_id: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let key = format!("{CLIENT}{client_id}");
        for _ in 0..CAS_ATTEMPTS {
            let Some(old) = self.get_versioned::<Client>(&key).await? else {
                return Ok(false);
            };
            if old.value.expires_at.is_none_or(|at| at >= expires_at) {
                return Ok(false);
            }
            let client = Client {
                expires_at: Some(expires_at),
                ..old.value
            };
            let bytes = serde_json::to_vec(&client)?;
            let extended = self
                .store
                .swap(&Swap {
                    key: &key,
                    expected: &old.raw,
                    new: Some((&bytes, self.client_ttl(&client))),
                    require: &[],
                    puts: &[],
                    durable: false,
                })
                .await?;
            if extended {
                self.client_changed(client_id).await;
                self.sync_origins(client_id, &client.cors_origins()).await?;
                return Ok(true);
            }
        }
        Err(StoreError::Contended(key))
    }

    /// Deletes a client (and its CORS origins) and revokes the access tokens
    /// issued to it (RFC 7592 §2.3); returns whether it existed. Its refresh
    /// tokens die with it, as no one can authenticate as the client any more.
    pub async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        self.mark_revoked(&format!("{REVOKED_CLIENT}{client_id}"))
            .await?;
        let key = format!("{CLIENT}{client_id}");
        for _ in 0..CAS_ATTEMPTS {
            let Some(old) = self.get_versioned::<Client>(&key).await? else {
                return Ok(false);
            };
            let deleted = self
                .store
                .swap(&Swap {
                    key: &key,
                    expected: &old.raw,
                    new: None,
                    require: &[],
                    puts: &[],
                    durable: false,
                })
                .await?;
            if deleted {
                self.client_changed(client_id).await;
                self.sync_origins(client_id, &old.value.cors_origins())
                    .await?;
                return Ok(true);
            }
        }
        Err(StoreError::Contended(key))
    }

    // ---- CORS origin index ---------------------------------------------
    //
    // The token and revocation endpoints answer CORS requests from the
    // origins of public clients' redirect URIs (SPEC.md "CORS"). Clients are
    // registered and deleted at runtime, by any instance or the CLI, so the
    // allowed origins live in the store, next to the clients:
    //
    // - `kg:origin:<origin>`: the ids of the stored clients that have the
    //   origin, each with the expiry of an anonymously registered client or
    //   `null` (a JSON object; older keygates wrote an array of ids, read as
    //   never expiring). Several clients may share an origin, so this is
    //   a set rather than a flag: deleting one leaves the others' origin.
    // - `kg:cors:<origin>`: `1` while that set is non-empty, else `0`. It is
    //   written in the same compare-and-swap as the set, so it always agrees
    //   with it, and it is what a request reads: one small `GET` whatever the
    //   number of clients sharing the origin.
    //
    // Expiring clients vanish without a write (their key's TTL), so the
    // index expires with them instead of being told: the set and its flag
    // carry the TTL of their longest-lived member (none while any member
    // never expires), a change drops memberships that have lapsed, and an
    // emptied set is deleted with its flag. Extending a client
    // ([`Repos::extend_client`]) extends its entries. So the index never
    // holds an origin past the expiry of its last client, and open
    // registration does not grow it without bound.
    //
    // Membership changes are idempotent set updates, never counts, which is
    // what makes the concurrent protocol of `sync_origins` converge.

    /// The key of `origin`'s client set: `kg:origin:<origin>`, or on the
    /// slotted layout `kg:origin:{kg:cors:<origin>}`, on the slot of the
    /// flag it is swapped with. (Origins hold no braces: they are
    /// normalised `scheme://host[:port]`.)
    fn origin_set_key(&self, origin: &str) -> String {
        match self.layout {
            Layout::Flat => format!("{ORIGIN}{origin}"),
            Layout::Slotted => format!("{ORIGIN}{{{CORS}{origin}}}"),
        }
    }

    /// Whether a stored public client has `origin` (an exact
    /// [`crate::oauth::types::web_origin`]): one store read.
    pub async fn origin_allowed(&self, origin: &str) -> Result<bool, StoreError> {
        Ok(self.store.get(&format!("{CORS}{origin}")).await?.as_deref() == Some(b"1"))
    }

    /// Makes `client_id`'s membership of every `touched` origin match the
    /// client as stored: read the client, add or remove the id under each
    /// origin, read the client again, and repeat until the two reads agree.
    ///
    /// Why this is correct under concurrency and across instances: writers
    /// of one client are serialised by the client's compare-and-swap, and
    /// each then calls this with the origins of what it replaced and what it
    /// wrote. Every membership update here is decided by a read of the
    /// client, and one round ends only when a second read, after the updates,
    /// finds the same bytes, so its decisions held for the stored client
    /// throughout. The last writer's final round runs after every earlier
    /// write, and a concurrent round that decided on an older record reads
    /// the newer one afterwards and goes again; so once writers stop, the
    /// index holds exactly the origins of the stored client. A decision taken
    /// on bytes that changed and changed back (ABA) is still right: the
    /// origins are a function of the bytes. What is left is a window of a
    /// few round trips during a write, and a process dying between its client
    /// write and this call (the next write of that client repairs it).
    async fn sync_origins(
        &self,
        client_id: &str,
        touched: &BTreeSet<String>,
    ) -> Result<(), StoreError> {
        if touched.is_empty() {
            return Ok(());
        }
        let key = format!("{CLIENT}{client_id}");
        let mut seen = self.store.get(&key).await?;
        for _ in 0..CAS_ATTEMPTS {
            // origin → the membership's expiry (the client's)
            let wanted: BTreeMap<String, Option<UnixTime>> = match &seen {
                Some(raw) => {
                    let c = serde_json::from_slice::<Client>(raw)?;
                    c.cors_origins()
                        .into_iter()
                        .map(|o| (o, c.expires_at))
                        .collect()
                }
                None => BTreeMap::new(),
            };
            for origin in touched {
                self.set_origin_member(origin, client_id, wanted.get(origin).copied())
                    .await?;
            }
            let again = self.store.get(&key).await?;
            if again == seen {
                return Ok(());
            }
            seen = again;
        }
        Err(StoreError::Contended(key))
    }

    /// Makes `client_id` a member of the clients of `origin` with the
    /// expiry `member` (`Some(None)`: never expires), or no member (`None`),
    /// drops lapsed memberships, and sets the origin's flag in the same
    /// compare-and-swap, both with the TTL of the longest-lived member. A
    /// missing set is created empty first; an emptied one is deleted (its
    /// flag becomes `0` for a second), so every change is one swap.
    async fn set_origin_member(
        &self,
        origin: &str,
        client_id: &str,
        member: Option<Option<UnixTime>>,
    ) -> Result<(), StoreError> {
        let flag = format!("{CORS}{origin}");
        let key = self.origin_set_key(origin);
        let now = self.clock.now();
        for _ in 0..CAS_ATTEMPTS {
            let Some(raw) = self.store.get(&key).await? else {
                let Some(expiry) = member else {
                    return Ok(());
                };
                let ttl = expiry.and_then(|at| ttl_secs(at - now));
                self.store.put_new(&key, b"{}", ttl).await?;
                continue;
            };
            let current = decode_members(&raw)?;
            let mut ids = current.clone();
            ids.retain(|_, expiry| expiry.is_none_or(|at| at > now));
            match member {
                Some(expiry) => ids.insert(client_id.to_string(), expiry),
                None => ids.remove(client_id),
            };
            if ids == current {
                return Ok(());
            }
            let bytes = serde_json::to_vec(&ids)?;
            let (new, allowed, ttl): (Option<&[u8]>, &[u8], _) = if ids.is_empty() {
                (None, b"0", ttl_secs(1))
            } else {
                let ttl = match ids.values().try_fold(0, |max, e| e.map(|at| max.max(at))) {
                    None => None, // a member that never expires
                    Some(latest) => ttl_secs(latest - now),
                };
                (Some(bytes.as_slice()), b"1", ttl)
            };
            if self
                .store
                .swap(&Swap {
                    key: &key,
                    expected: &raw,
                    new: new.map(|b| (b, ttl)),
                    require: &[],
                    puts: &[(&flag, allowed, ttl)],
                    durable: false,
                })
                .await?
            {
                return Ok(());
            }
        }
        Err(StoreError::Contended(key))
    }

    /// Indexes the CORS origins of every stored client, once per store (a
    /// marker records a complete run): clients stored before the index
    /// existed get their origins. Safe beside concurrent client writes (it
    /// goes through [`Repos::sync_origins`]); returns whether it ran.
    pub async fn index_origins_once(&self) -> Result<bool, StoreError> {
        if self.store.get(ORIGINS_INDEXED).await?.is_some() {
            return Ok(false);
        }
        for id in self.client_ids().await? {
            if let Some(client) = self.client(&id).await? {
                self.sync_origins(&id, &client.cors_origins()).await?;
            }
        }
        self.store.put(ORIGINS_INDEXED, b"1", None).await?;
        Ok(true)
    }

    // ---- resources (RFC 8707) -------------------------------------------

    /// Reads a client (when `client_id` is given) and the resources `ids`
    /// in one round trip (`MGET`); no round trip when there is nothing to
    /// read. The token and authorization endpoints use this, so naming
    /// resources costs no extra round trip.
    pub async fn client_and_resources(
        &self,
        client_id: Option<&str>,
        ids: &[&ResourceId],
    ) -> Result<(Option<Client>, Vec<Option<Resource>>), StoreError> {
        let trusted = client_id.and_then(|id| self.clients.trusted(id, self.clock.now()));
        if ids.is_empty() || trusted.is_some() {
            let client = match (trusted, client_id) {
                (Some(c), _) => Some(c),
                (None, Some(id)) => self.client(id).await?,
                (None, None) => None,
            };
            let mut resources = Vec::with_capacity(ids.len());
            if !ids.is_empty() {
                let keys: Vec<String> = ids
                    .iter()
                    .map(|id| format!("{RESOURCE}{}", id.as_str()))
                    .collect();
                let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                for v in self.store.get_many(&refs).await? {
                    resources.push(match v {
                        Some(bytes) => Some(serde_json::from_slice(&bytes)?),
                        None => None,
                    });
                }
            }
            return Ok((client, resources));
        }
        let epoch = self.clients.epoch();
        let mut keys: Vec<String> = ids
            .iter()
            .map(|id| format!("{RESOURCE}{}", id.as_str()))
            .collect();
        if let Some(id) = client_id {
            keys.push(format!("{CLIENT}{id}"));
        }
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut vals = self.store.get_many(&refs).await?;
        let client = match (client_id, vals.len() > ids.len()) {
            (Some(id), true) => match vals.pop().flatten() {
                Some(bytes) => Some(self.clients.decode(id, bytes, epoch)?),
                None => None,
            },
            _ => None,
        };
        let mut resources = Vec::with_capacity(ids.len());
        for v in vals {
            resources.push(match v {
                Some(bytes) => Some(serde_json::from_slice(&bytes)?),
                None => None,
            });
        }
        Ok((client, resources))
    }

    /// Reads one stored resource.
    pub async fn resource(&self, id: &ResourceId) -> Result<Option<Resource>, StoreError> {
        self.get_json(&format!("{RESOURCE}{}", id.as_str())).await
    }

    /// Creates or replaces a stored resource (keyed by its normalised URI).
    pub async fn put_resource(&self, r: &Resource) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(r)?;
        self.store
            .put(&format!("{RESOURCE}{}", r.id().as_str()), &bytes, None)
            .await
    }

    /// Deletes a stored resource; returns whether it existed. Codes and
    /// refresh families already bound to it keep their audience until they
    /// expire or are revoked (they carry their validated set).
    pub async fn delete_resource(&self, id: &ResourceId) -> Result<bool, StoreError> {
        self.store
            .delete(&format!("{RESOURCE}{}", id.as_str()))
            .await
    }

    /// Every stored resource, by URI.
    pub async fn resources(&self) -> Result<Vec<Resource>, StoreError> {
        let mut out = vec![];
        for key in self.store.scan_prefix(RESOURCE).await? {
            if let Some(r) = self.get_json::<Resource>(&key).await? {
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.uri.cmp(&b.uri));
        Ok(out)
    }

    /// Every stored client id.
    pub async fn client_ids(&self) -> Result<Vec<String>, StoreError> {
        let keys = self.store.scan_prefix(CLIENT).await?;
        Ok(keys
            .into_iter()
            .map(|k| k[CLIENT.len()..].to_string())
            .collect())
    }

    // ---- users ---------------------------------------------------------

    /// Creates a user; `Ok(false)` when the username is taken.
    pub async fn create_user(&self, user: &User) -> Result<bool, StoreError> {
        let name_key = format!("{USERNAME}{}", user.username.to_lowercase());
        if !self
            .store
            .put_new(&name_key, user.id.as_bytes(), None)
            .await?
        {
            return Ok(false);
        }
        let bytes = serde_json::to_vec(user)?;
        self.store
            .put(&format!("{USER}{}", user.id), &bytes, None)
            .await?;
        Ok(true)
    }

    /// Replaces a stored user (same id and username).
    pub async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(user)?;
        self.store
            .put(&format!("{USER}{}", user.id), &bytes, None)
            .await
    }

    /// Deletes a user, revokes their access tokens and frees the name;
    /// returns whether it existed. Their refresh tokens can no longer be
    /// rotated ([`Self::rotate_refresh`] requires the user).
    pub async fn delete_user(&self, user: &User) -> Result<bool, StoreError> {
        self.mark_revoked(&self.subject_key(REVOKED_SUB, &user.id, ""))
            .await?;
        let existed = self.store.delete(&format!("{USER}{}", user.id)).await?;
        self.store
            .delete(&format!("{USERNAME}{}", user.username.to_lowercase()))
            .await?;
        Ok(existed)
    }

    /// Every stored user, by username.
    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        let mut out = vec![];
        for key in self.store.scan_prefix(USER).await? {
            if let Some(u) = self.get_json::<User>(&key).await? {
                out.push(u);
            }
        }
        out.sort_by_key(|u| u.username.to_lowercase());
        Ok(out)
    }

    /// Reads a user by id.
    pub async fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.get_json(&format!("{USER}{id}")).await
    }

    /// Reads a user by username (case-insensitive).
    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        let Some(id) = self
            .store
            .get(&format!("{USERNAME}{}", username.to_lowercase()))
            .await?
        else {
            return Ok(None);
        };
        self.user(&String::from_utf8_lossy(&id)).await
    }

    // ---- authorization codes ------------------------------------------

    /// Stores a fresh code record for `ttl` seconds.
    pub async fn put_code(&self, code: &str, rec: &CodeRecord, ttl: i64) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(rec)?;
        self.store
            .put(&secret_id_key(CODE, code), &bytes, ttl_secs(ttl))
            .await
    }

    /// Reads a code record (fresh or redeemed).
    pub async fn code(&self, code: &str) -> Result<Option<Versioned<CodeRecord>>, StoreError> {
        self.get_versioned(&secret_id_key(CODE, code)).await
    }

    /// Atomically marks the code redeemed (keeping the marker for `keep_secs`)
    /// and writes the new refresh token and family, if any. `false`: someone
    /// else redeemed it first.
    pub async fn redeem_code(
        &self,
        code: &str,
        current: &Versioned<CodeRecord>,
        redeemed: &CodeRecord,
        keep_secs: i64,
        refresh: Option<(&str, &RefreshRecord, i64)>,
    ) -> Result<bool, StoreError> {
        let code_key = secret_id_key(CODE, code);
        // A code issued under a consent the user has since revoked is dead.
        let consent_key = current.value.consent.as_ref().map(|id| id_key(CONSENT, id));
        let require: Vec<&str> = consent_key.iter().map(String::as_str).collect();
        let new = serde_json::to_vec(redeemed)?;
        let mut owned: Vec<(String, Vec<u8>, Option<Duration>)> = vec![];
        if let Some((token, rec, ttl)) = refresh {
            owned.push((
                secret_id_key(REFRESH, token),
                serde_json::to_vec(rec)?,
                ttl_secs(ttl),
            ));
            owned.push((id_key(FAMILY, &rec.family), b"1".to_vec(), ttl_secs(ttl)));
        }
        let puts: Vec<Put<'_>> = owned
            .iter()
            .map(|(k, v, t)| (k.as_str(), v.as_slice(), *t))
            .collect();
        self.store
            .swap(&Swap {
                key: &code_key,
                expected: &current.raw,
                new: Some((&new, ttl_secs(keep_secs))),
                require: &require,
                puts: &puts,
                durable: true,
            })
            .await
    }

    // ---- refresh tokens -----------------------------------------------

    /// Stores a new refresh token and starts its family (password grant).
    pub async fn put_refresh_family(
        &self,
        token: &str,
        rec: &RefreshRecord,
        ttl: i64,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(rec)?;
        self.store
            .put(&id_key(FAMILY, &rec.family), b"1", ttl_secs(ttl))
            .await?;
        self.store
            .put(&secret_id_key(REFRESH, token), &bytes, ttl_secs(ttl))
            .await
    }

    /// Reads a refresh token record.
    pub async fn refresh(
        &self,
        token: &str,
    ) -> Result<Option<Versioned<RefreshRecord>>, StoreError> {
        self.get_versioned(&secret_id_key(REFRESH, token)).await
    }

    /// Whether the family is alive (not revoked, not expired).
    pub async fn family_alive(&self, family: &str) -> Result<bool, StoreError> {
        Ok(self.store.get(&id_key(FAMILY, family)).await?.is_some())
    }

    /// Whether a refresh token's family is alive (not revoked, not expired)
    /// and, for a family started under a consent, the user still allows the
    /// app: what rotation requires, in one round trip.
    pub async fn refresh_alive(&self, rec: &RefreshRecord) -> Result<bool, StoreError> {
        let mut keys = vec![id_key(FAMILY, &rec.family)];
        keys.extend(rec.consent.iter().map(|id| id_key(CONSENT, id)));
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        Ok(self
            .store
            .get_many(&keys)
            .await?
            .iter()
            .all(Option::is_some))
    }

    /// Atomically: if `old` is unchanged, its family alive and (when
    /// `stored_user`: the subject is a store user, not a config-file one) the
    /// user still exists, mark it rotated (keeping `grace`, the sealed
    /// successor pair, in it) and store `next` (extending the family's life).
    /// `false` otherwise.
    #[allow(clippy::too_many_arguments)]
    pub async fn rotate_refresh(
        &self,
        old_token: &str,
        current: &Versioned<RefreshRecord>,
        next_token: &str,
        next: &RefreshRecord,
        ttl: i64,
        grace: Option<GraceSeal>,
        stored_user: bool,
    ) -> Result<bool, StoreError> {
        let old_key = secret_id_key(REFRESH, old_token);
        let fam_key = id_key(FAMILY, &next.family);
        // On the slotted layout the family's tag is the slot of this key.
        let user_key = format!("{USER}{}", next.sub);
        let consent_key = next.consent.as_ref().map(|id| id_key(CONSENT, id));
        let mut require: Vec<&str> = vec![&fam_key];
        if stored_user {
            require.push(&user_key);
        }
        // A family started under a consent the user has since revoked is dead.
        require.extend(consent_key.as_deref());
        let next_key = secret_id_key(REFRESH, next_token);
        let mut rotated = current.value.clone();
        rotated.rotated = true;
        rotated.grace = grace;
        let rotated = serde_json::to_vec(&rotated)?;
        let next_bytes = serde_json::to_vec(next)?;
        // The rotated record stays until the original expiry, so a replay is recognised.
        let keep = ttl_secs(current.value.expires_at - next.expires_at + ttl);
        self.store
            .swap(&Swap {
                key: &old_key,
                expected: &current.raw,
                new: Some((&rotated, keep)),
                require: &require,
                puts: &[
                    (&next_key, &next_bytes, ttl_secs(ttl)),
                    (&fam_key, b"1", ttl_secs(ttl)),
                ],
                durable: true,
            })
            .await
    }

    /// Reads a refresh token record and whether the family of `rec` is
    /// alive (as [`Repos::family_alive`]), in one round trip (the
    /// grace-retry check of a successor).
    pub async fn refresh_and_family(
        &self,
        token: &str,
        rec: &RefreshRecord,
    ) -> Result<(Option<RefreshRecord>, bool), StoreError> {
        let mut keys = vec![secret_id_key(REFRESH, token), id_key(FAMILY, &rec.family)];
        keys.extend(rec.consent.iter().map(|id| id_key(CONSENT, id)));
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut vals = self.store.get_many(&keys).await?.into_iter();
        let record = match vals.next().flatten() {
            Some(bytes) => Some(serde_json::from_slice(&bytes)?),
            None => None,
        };
        Ok((record, vals.all(|v| v.is_some())))
    }

    /// Revokes a whole refresh family and the access tokens issued from it
    /// (their `grant_id` claim); returns whether the family was alive. The
    /// marker is written first, so a failure in between never leaves the
    /// family dead and its access tokens alive.
    pub async fn revoke_family(&self, family: &str) -> Result<bool, StoreError> {
        let marker = id_key(REVOKED_GRANT, family);
        self.store
            .put(&marker, b"1", Some(self.revocation_ttl))
            .await?;
        let fam_key = id_key(FAMILY, family);
        let alive = self.store.delete(&fam_key).await?;
        // One WAIT for both writes: the two keys share the family's slot.
        self.store.sync_replicas(&fam_key).await?;
        Ok(alive)
    }

    // ---- access token deny-list ---------------------------------------

    /// Denies an access token's `jti` until `ttl` seconds from now (its expiry).
    pub async fn deny_jti(&self, jti: &str, ttl: i64) -> Result<(), StoreError> {
        if ttl <= 0 {
            return Ok(()); // already expired: nothing to deny
        }
        let key = id_key(DENY, jti);
        self.store.put(&key, b"1", ttl_secs(ttl)).await?;
        self.store.sync_replicas(&key).await?;
        Ok(())
    }

    /// Whether the `jti` is denied.
    pub async fn is_denied(&self, jti: &str) -> Result<bool, StoreError> {
        Ok(self.store.get(&id_key(DENY, jti)).await?.is_some())
    }

    /// Whether an access token is revoked, in one round trip: its own `jti`,
    /// the refresh family it came from (`grant_id`), its client (deleted),
    /// its subject (a deleted user), or the user revoked the app after it
    /// was issued (`/account/apps`).
    pub async fn access_revoked(&self, claims: &AccessClaims) -> Result<bool, StoreError> {
        // On the slotted layout all but the client's marker are on the
        // subject's slot; the cluster client reads the two slots in parallel.
        let mut keys = vec![
            self.subject_key(REVOKED_APP, &claims.sub, &format!(" {}", claims.client_id)),
            id_key(DENY, &claims.jti),
            format!("{REVOKED_CLIENT}{}", claims.client_id),
            self.subject_key(REVOKED_SUB, &claims.sub, ""),
        ];
        if let Some(grant) = &claims.grant_id {
            keys.push(id_key(REVOKED_GRANT, grant));
        }
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut found = self.store.get_many(&keys).await?.into_iter();
        // The app marker holds the revocation time: a token issued in the
        // same second or before is revoked, a later one (allowed again) not.
        let app_revoked = found.next().flatten().is_some_and(|at| {
            std::str::from_utf8(&at)
                .ok()
                .and_then(|at| at.parse::<i64>().ok())
                .is_none_or(|at| claims.iat <= at)
        });
        Ok(app_revoked || found.any(|v| v.is_some()))
    }

    // ---- sessions ------------------------------------------------------

    /// Stores a session under the hash of its cookie value.
    pub async fn put_session(&self, sid: &str, s: &Session, ttl: i64) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(s)?;
        self.store
            .put(
                &format!("{SESSION}{}", secret_key(sid)),
                &bytes,
                ttl_secs(ttl),
            )
            .await
    }

    /// Reads a session.
    pub async fn session(&self, sid: &str) -> Result<Option<Session>, StoreError> {
        self.get_json(&format!("{SESSION}{}", secret_key(sid)))
            .await
    }

    /// Ends a session.
    pub async fn delete_session(&self, sid: &str) -> Result<bool, StoreError> {
        self.store
            .delete(&format!("{SESSION}{}", secret_key(sid)))
            .await
    }

    /// Adds `client_id` to the clients issued codes in the session whose
    /// public id is `sid` (read-modify-write, compare-and-swap), kept for
    /// `ttl` seconds (the session's remaining life). Back-channel logout
    /// reads it.
    pub async fn add_session_client(
        &self,
        sid: &str,
        client_id: &str,
        ttl: i64,
    ) -> Result<(), StoreError> {
        let key = format!("{SESSION_CLIENTS}{sid}");
        for _ in 0..CAS_ATTEMPTS {
            let wrote = match self.get_versioned::<Vec<String>>(&key).await? {
                None => {
                    let bytes = serde_json::to_vec(&[client_id])?;
                    self.store.put_new(&key, &bytes, ttl_secs(ttl)).await?
                }
                Some(old) if old.value.iter().any(|c| c == client_id) => return Ok(()),
                Some(old) => {
                    let mut ids = old.value;
                    ids.push(client_id.to_string());
                    let bytes = serde_json::to_vec(&ids)?;
                    self.store
                        .swap(&Swap {
                            key: &key,
                            expected: &old.raw,
                            new: Some((&bytes, ttl_secs(ttl))),
                            require: &[],
                            puts: &[],
                            durable: false,
                        })
                        .await?
                }
            };
            if wrote {
                return Ok(());
            }
        }
        Err(StoreError::Contended(key))
    }

    /// Takes (reads and deletes) the clients recorded for the session `sid`.
    pub async fn take_session_clients(&self, sid: &str) -> Result<Vec<String>, StoreError> {
        let key = format!("{SESSION_CLIENTS}{sid}");
        let ids = self
            .get_json::<Vec<String>>(&key)
            .await?
            .unwrap_or_default();
        self.store.delete(&key).await?;
        Ok(ids)
    }

    // ---- remembered consent (oauth::consent) ---------------------------

    /// The apps `user_id` allowed, by client id.
    pub async fn allowed_apps(&self, user_id: &str) -> Result<AllowedApps, StoreError> {
        Ok(self
            .get_json(&self.subject_key(APPS, user_id, ""))
            .await?
            .unwrap_or_default())
    }

    /// Records that `user_id` allowed `client_id` the `scope` and
    /// `resources` ([`consent::allow`]; `new_id` is the consent id if the
    /// app is new) and keeps its consent marker; returns the consent id.
    pub async fn remember_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &ScopeSet,
        resources: &[String],
        new_id: &str,
    ) -> Result<String, StoreError> {
        let key = self.subject_key(APPS, user_id, "");
        let now = self.clock.now();
        for _ in 0..CAS_ATTEMPTS {
            let Some(raw) = self.store.get(&key).await? else {
                self.store.put_new(&key, b"{}", None).await?;
                continue;
            };
            let apps: AllowedApps = serde_json::from_slice(&raw)?;
            let next = consent::allow(&apps, client_id, scope, resources, now, || {
                new_id.to_string()
            });
            let id = next[client_id].id.clone();
            let bytes = serde_json::to_vec(&next)?;
            let marker = id_key(CONSENT, &id);
            if self
                .store
                .swap(&Swap {
                    key: &key,
                    expected: &raw,
                    new: Some((&bytes, None)),
                    require: &[],
                    puts: &[(&marker, b"1", None)],
                    durable: false,
                })
                .await?
            {
                return Ok(id);
            }
        }
        Err(StoreError::Contended(key))
    }

    /// Forgets that `user_id` allowed `client_id`: first the consent marker
    /// goes (so no code or refresh family issued under it can be used
    /// again) and the access tokens issued to the app until now are
    /// revoked, then the app leaves the list. Returns whether it was there.
    pub async fn forget_consent(&self, user_id: &str, client_id: &str) -> Result<bool, StoreError> {
        let key = self.subject_key(APPS, user_id, "");
        for _ in 0..CAS_ATTEMPTS {
            let Some(raw) = self.store.get(&key).await? else {
                return Ok(false);
            };
            let mut apps: AllowedApps = serde_json::from_slice(&raw)?;
            let Some(app) = apps.remove(client_id) else {
                return Ok(false);
            };
            let consent_key = id_key(CONSENT, &app.id);
            self.store.delete(&consent_key).await?;
            let now = self.clock.now().to_string();
            self.store
                .put(
                    &self.subject_key(REVOKED_APP, user_id, &format!(" {client_id}")),
                    now.as_bytes(),
                    Some(self.revocation_ttl),
                )
                .await?;
            // Both keys carry the user's slot on a cluster: one WAIT.
            self.store.sync_replicas(&consent_key).await?;
            let bytes = serde_json::to_vec(&apps)?;
            if self
                .store
                .swap(&Swap {
                    key: &key,
                    expected: &raw,
                    new: Some((&bytes, None)),
                    require: &[],
                    puts: &[],
                    durable: false,
                })
                .await?
            {
                return Ok(true);
            }
        }
        Err(StoreError::Contended(key))
    }

    // ---- shared rate limits (crate::limits) ----------------------------

    /// One step of the password-guess limiter shared by the login form and
    /// the password grant: `client` is the client address key
    /// (`limits::client_key`), `name` the normalised username
    /// (`limits::login_name`), hashed here so that neither long nor odd
    /// names reach the key and no username is stored in clear.
    pub async fn rate_login(
        &self,
        client: &str,
        name: &str,
        quota: Quota,
        cost: i64,
    ) -> Result<Decision, StoreError> {
        let key = format!("{RATE_LOGIN}{client}:{}", secret_key(name));
        self.store.rate(&key, quota, cost).await
    }

    /// One step of the anonymous-registration limiter for the client
    /// address key `client`.
    pub async fn rate_registration(
        &self,
        client: &str,
        quota: Quota,
        cost: i64,
    ) -> Result<Decision, StoreError> {
        self.store
            .rate(&format!("{RATE_REGISTER}{client}"), quota, cost)
            .await
    }

    /// One step of the sign-up limiter for the client address key `client`.
    pub async fn rate_signup(
        &self,
        client: &str,
        quota: Quota,
        cost: i64,
    ) -> Result<Decision, StoreError> {
        self.store
            .rate(&format!("{RATE_SIGNUP}{client}"), quota, cost)
            .await
    }

    // ---- page flashes and one-time forms (http::pages) -----------------

    /// Stores a one-time flash under the hash of its random `id` for `ttl`.
    pub async fn put_flash<T: Serialize>(
        &self,
        id: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value)?;
        self.store
            .put(&format!("{FLASH}{}", secret_key(id)), &bytes, Some(ttl))
            .await
    }

    /// Reads the flash `id` and deletes it, when `mine` accepts it (a
    /// flash of another session is left alone): of concurrent readers,
    /// exactly one gets it (compare-and-delete).
    pub async fn take_flash<T: for<'de> Deserialize<'de>>(
        &self,
        id: &str,
        mine: impl Fn(&T) -> bool,
    ) -> Result<Option<T>, StoreError> {
        let key = format!("{FLASH}{}", secret_key(id));
        let Some(bytes) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let value: T = serde_json::from_slice(&bytes)?;
        if !mine(&value) {
            return Ok(None);
        }
        let taken = self
            .store
            .swap(&Swap {
                key: &key,
                expected: &bytes,
                new: None,
                require: &[],
                puts: &[],
                durable: false,
            })
            .await?;
        Ok(taken.then_some(value))
    }

    /// Marks the form `nonce` as submitted for `ttl`; `false` when it was
    /// already (a replayed form). Atomic: of two concurrent submissions
    /// exactly one gets `true`.
    pub async fn claim_form(&self, nonce: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.store
            .put_new(
                &format!("{FORM_USED}{}", secret_key(nonce)),
                b"1",
                Some(ttl),
            )
            .await
    }

    /// Forgets that the form `nonce` was submitted (its action failed, so
    /// submitting it again is not a replay).
    pub async fn release_form(&self, nonce: &str) -> Result<(), StoreError> {
        self.store
            .delete(&format!("{FORM_USED}{}", secret_key(nonce)))
            .await
            .map(|_| ())
    }
}

/// The clients of one origin in the CORS index: id → the expiry of an
/// anonymously registered client, `None` for one that never expires.
type Members = BTreeMap<String, Option<UnixTime>>;

/// Reads an origin set, in either of its stored forms.
fn decode_members(raw: &[u8]) -> Result<Members, StoreError> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Members(Members),
        /// Before expiring clients: an array of ids, none of which expires.
        Ids(BTreeSet<String>),
    }
    Ok(match serde_json::from_slice(raw)? {
        Stored::Members(m) => m,
        Stored::Ids(ids) => ids.into_iter().map(|id| (id, None)).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    fn repos() -> Repos {
        let store = MemoryStore::with_limits(Duration::from_secs(60), 1000);
        Repos::new(store, Duration::from_secs(60))
    }

    fn client(name: &str) -> Client {
        Client {
            client_id: "c1".into(),
            client_name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn user_records_without_profile_fields_still_parse() {
        let old = br#"{"id":"u1","username":"bob","email":"bob@example.com","password_hash":"$argon2id$x","created_at":1700000000}"#;
        let u: User = serde_json::from_slice(old).unwrap();
        assert_eq!(u.name, None);
        assert!(!u.email_verified);
        assert_eq!(
            u.updated_at, 1_700_000_000,
            "updated_at falls back to created_at"
        );
        assert_eq!(u.email.as_deref(), Some("bob@example.com"));
        // And a record with every field round-trips.
        let full = User {
            name: Some("Bob Example".into()),
            email_verified: true,
            updated_at: 1_700_000_500,
            ..u
        };
        let back: User = serde_json::from_slice(&serde_json::to_vec(&full).unwrap()).unwrap();
        assert_eq!(back, full);
    }

    #[test]
    fn origin_sets_are_read_in_both_forms() {
        let old = decode_members(br#"["a","b"]"#).unwrap();
        assert_eq!(old, Members::from([("a".into(), None), ("b".into(), None)]));
        let new = decode_members(br#"{"a":null,"b":1700000000}"#).unwrap();
        assert_eq!(
            new,
            Members::from([("a".into(), None), ("b".into(), Some(1_700_000_000))])
        );
        assert!(decode_members(b"7").is_err());
    }

    #[tokio::test]
    async fn a_client_is_decoded_once_and_every_change_is_seen() {
        let repos = repos();
        let key = format!("{CLIENT}c1");
        let put = |c: Client| {
            let store = repos.store.clone();
            let key = key.clone();
            async move {
                let bytes = serde_json::to_vec(&c).unwrap();
                store.put(&key, &bytes, None).await.unwrap();
            }
        };
        put(client("one")).await;
        assert_eq!(repos.client("c1").await.unwrap(), Some(client("one")));
        let first = repos.clients.by_id.get("c1").map(|e| Arc::clone(e.value()));
        assert_eq!(repos.client("c1").await.unwrap(), Some(client("one")));
        let again = repos.clients.by_id.get("c1").map(|e| Arc::clone(e.value()));
        assert!(
            Arc::ptr_eq(&first.unwrap(), &again.unwrap()),
            "the same bytes are not decoded again"
        );
        // An update (e.g. a rotated secret) is read as the new client.
        put(client("two")).await;
        assert_eq!(repos.client("c1").await.unwrap(), Some(client("two")));
        // A deleted client is gone, whatever the cache holds.
        repos.store.delete(&key).await.unwrap();
        assert_eq!(repos.client("c1").await.unwrap(), None);
        let (c, _) = repos.client_and_code(Some("c1"), "code").await.unwrap();
        assert_eq!(c, None);
    }

    use crate::oauth::token::{Grant, Issuance};
    use crate::oauth::types::AuthMethod;
    use crate::store::{KvStore, Put as StorePut};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// A memory store that names itself [`Layout::Slotted`] and records
    /// the key sets a Redis Cluster would have to run atomically (every
    /// swap) or read together (every `get_many`); `checked` makes a swap
    /// across slots fail the test, as the cluster backend refuses it.
    struct SlotRecorder {
        inner: Store,
        checked: bool,
        swaps: AtomicUsize,
        reads: Mutex<Vec<Vec<String>>>,
        /// An invalidation feed, as a cluster store has.
        feed: Option<Arc<Invalidations>>,
        /// A client id the feed is told about in the middle of every
        /// `get_many` (a notice racing the read).
        notify_during_reads: Mutex<Option<String>>,
    }

    impl SlotRecorder {
        fn new(checked: bool) -> Arc<Self> {
            Self::with_feed(checked, None)
        }

        fn with_feed(checked: bool, feed: Option<Arc<Invalidations>>) -> Arc<Self> {
            Arc::new(Self {
                inner: MemoryStore::with_limits(Duration::from_secs(60), 1000),
                checked,
                swaps: AtomicUsize::new(0),
                reads: Mutex::new(vec![]),
                feed,
                notify_during_reads: Mutex::new(None),
            })
        }
    }

    #[async_trait::async_trait]
    impl KvStore for SlotRecorder {
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get(key).await
        }
        async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
            let ks = keys.iter().map(|k| k.to_string()).collect();
            self.reads.lock().unwrap().push(ks);
            let vals = self.inner.get_many(keys).await;
            let racing = self.notify_during_reads.lock().unwrap().clone();
            if let (Some(feed), Some(id)) = (&self.feed, racing) {
                feed.notify(Some(&id));
            }
            vals
        }
        async fn put(
            &self,
            key: &str,
            val: &[u8],
            ttl: Option<Duration>,
        ) -> Result<(), StoreError> {
            self.inner.put(key, val, ttl).await
        }
        async fn delete(&self, key: &str) -> Result<bool, StoreError> {
            self.inner.delete(key).await
        }
        async fn scan_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
            self.inner.scan_prefix(prefix).await
        }
        async fn ping(&self) -> Result<(), StoreError> {
            self.inner.ping().await
        }
        async fn put_new(
            &self,
            key: &str,
            val: &[u8],
            ttl: Option<Duration>,
        ) -> Result<bool, StoreError> {
            self.inner.put_new(key, val, ttl).await
        }
        async fn swap(&self, op: &Swap<'_>) -> Result<bool, StoreError> {
            let keys: Vec<&str> = std::iter::once(op.key)
                .chain(op.require.iter().copied())
                .chain(op.puts.iter().map(|p: &StorePut<'_>| p.0))
                .collect();
            if self.checked {
                assert!(
                    slots::same_slot(keys.iter().copied()),
                    "a swap across slots: {keys:?}"
                );
            }
            self.swaps.fetch_add(1, Ordering::SeqCst);
            self.inner.swap(op).await
        }
        async fn rate(&self, key: &str, quota: Quota, cost: i64) -> Result<Decision, StoreError> {
            self.inner.rate(key, quota, cost).await
        }
        async fn sync_replicas(&self, key: &str) -> Result<bool, StoreError> {
            self.inner.sync_replicas(key).await
        }
        fn layout(&self) -> Layout {
            Layout::Slotted
        }
        fn invalidations(&self) -> Option<Arc<Invalidations>> {
            self.feed.clone()
        }
    }

    /// The client cache on a store with a feed (a cluster): while the feed
    /// is live, the token path reads only the record once the client was
    /// read; a notice for the client, a read racing a notice, and a lost
    /// subscription each send it back to the store.
    #[tokio::test]
    async fn a_live_feed_lets_the_token_path_skip_the_client_read() {
        let feed = Arc::new(Invalidations::new());
        let store = SlotRecorder::with_feed(true, Some(feed.clone()));
        let repos = Repos::new(store.clone(), Duration::from_secs(60));
        repos.put_client(&client("one")).await.unwrap();
        let client_reads = || {
            store
                .reads
                .lock()
                .unwrap()
                .iter()
                .filter(|ks| ks.iter().any(|k| k.starts_with(CLIENT)))
                .count()
        };
        let lookup = || async {
            let (c, _) = repos.client_and_refresh(Some("c1"), "t.x").await.unwrap();
            assert_eq!(c, Some(client("one")));
        };
        // Not live yet: every lookup reads the client.
        lookup().await;
        lookup().await;
        assert_eq!(client_reads(), 2);
        feed.set_live(true);
        lookup().await; // read, cached
        lookup().await; // from the cache
        lookup().await;
        assert_eq!(client_reads(), 3);
        // A notice for the client: read again, then cached again.
        feed.notify(Some("c1"));
        lookup().await;
        lookup().await;
        assert_eq!(client_reads(), 4);
        // A notice for another client leaves it cached.
        feed.notify(Some("c2"));
        lookup().await;
        assert_eq!(client_reads(), 4);
        // A read that a notice raced is not kept.
        feed.notify(Some("c1"));
        *store.notify_during_reads.lock().unwrap() = Some("c9".into());
        lookup().await;
        lookup().await;
        assert_eq!(client_reads(), 6, "reads racing notices are not cached");
        *store.notify_during_reads.lock().unwrap() = None;
        lookup().await; // read, cached
        lookup().await;
        assert_eq!(client_reads(), 7);
        // A lost subscription: nothing is trusted until it is back.
        feed.set_live(false);
        lookup().await;
        lookup().await;
        assert_eq!(client_reads(), 9);
        // A client written through these repos is dropped here at once,
        // before any notice comes back (read-your-writes).
        feed.set_live(true);
        lookup().await;
        lookup().await;
        assert_eq!(client_reads(), 10);
        repos.put_client(&client("two")).await.unwrap();
        let (c, _) = repos.client_and_refresh(Some("c1"), "t.x").await.unwrap();
        assert_eq!(c, Some(client("two")));
        assert_eq!(client_reads(), 11);
    }

    fn code_record(sub: &str, consent: Option<String>) -> CodeRecord {
        CodeRecord {
            client_id: "c1".into(),
            redirect_uri: "http://127.0.0.1:3000/cb".into(),
            redirect_uri_given: true,
            scope: ScopeSet::parse("profile").unwrap(),
            sub: sub.into(),
            pkce: None,
            expires_at: i64::MAX / 4,
            redeemed: None,
            resources: vec![],
            nonce: None,
            auth_time: None,
            consent,
            sid: None,
        }
    }

    fn refresh_record(sub: &str, family: &str, consent: Option<String>) -> RefreshRecord {
        RefreshRecord {
            family: family.into(),
            client_id: "c1".into(),
            sub: sub.into(),
            scope: ScopeSet::parse("profile").unwrap(),
            expires_at: i64::MAX / 4,
            rotated: false,
            grace: None,
            resources: vec![],
            auth_time: None,
            consent,
            sid: None,
        }
    }

    fn user(id: &str) -> User {
        User {
            id: id.into(),
            username: format!("name-{id}"),
            email: None,
            password_hash: "$argon2id$x".into(),
            created_at: 1,
            name: None,
            email_verified: false,
            updated_at: 1,
        }
    }

    /// Redeems `code` (issued to `sub` under `consent`) into a refresh
    /// token, rotates it, and checks the family, consent and revocation
    /// reads; `fresh` makes new ids the way the flows do.
    async fn grant_lifecycle(
        repos: &Repos,
        sub: &str,
        code: &str,
        consent: Option<String>,
        fresh: bool,
    ) {
        let new_id = |mk: fn(&Repos, &str) -> String, n: usize| {
            if fresh {
                mk(repos, sub)
            } else {
                crate::ids::random_token(n)
            }
        };
        let current = repos.code(code).await.unwrap().expect("the code is found");
        let family = new_id(Repos::new_family, 16);
        let token = new_id(Repos::new_refresh_token, 32);
        let rec = refresh_record(sub, &family, consent.clone());
        let redeemed = CodeRecord {
            redeemed: Some(Issuance {
                jti: "j".into(),
                access_exp: 1,
                family: Some(family.clone()),
            }),
            ..current.value.clone()
        };
        let refresh = Some((token.as_str(), &rec, 600));
        assert!(repos
            .redeem_code(code, &current, &redeemed, 600, refresh)
            .await
            .unwrap());
        assert!(
            !repos
                .redeem_code(code, &current, &redeemed, 600, refresh)
                .await
                .unwrap(),
            "single use"
        );
        let (_, found) = repos.client_and_refresh(None, &token).await.unwrap();
        let found = found.expect("the refresh token is found");
        assert!(repos.refresh_alive(&found.value).await.unwrap());
        let next = new_id(Repos::new_refresh_token, 32);
        assert!(repos
            .rotate_refresh(&token, &found, &next, &rec, 600, None, true)
            .await
            .unwrap());
        let (again, alive) = repos.refresh_and_family(&next, &rec).await.unwrap();
        assert!(again.is_some() && alive);
        let grant = Grant {
            subject: sub.into(),
            client_id: "c1".into(),
            scope: ScopeSet::parse("profile").unwrap(),
            family: Some(family.clone()),
        };
        let jti = new_id(Repos::new_jti, 16);
        let claims = AccessClaims::new("https://i", "https://a", &grant, 1, 600, jti.clone());
        assert!(!repos.access_revoked(&claims).await.unwrap());
        repos.deny_jti(&jti, 600).await.unwrap();
        assert!(repos.is_denied(&jti).await.unwrap());
        assert!(repos.access_revoked(&claims).await.unwrap());
        let other = new_id(Repos::new_jti, 16);
        let claims = AccessClaims::new("https://i", "https://a", &grant, 1, 600, other);
        assert!(repos.revoke_family(&family).await.unwrap());
        assert!(
            repos.access_revoked(&claims).await.unwrap(),
            "family revoked"
        );
        assert!(!repos.refresh_alive(&rec).await.unwrap());
    }

    /// Issue 17 item 1: on the slotted layout every compare-and-swap that
    /// repos makes names keys of one hash slot, and so do the token path's
    /// reads of a user's state (all but the client and its marker).
    #[tokio::test]
    async fn every_swap_stays_in_one_cluster_slot() {
        let store = SlotRecorder::new(true);
        let repos = Repos::new(store.clone(), Duration::from_secs(60));
        assert_eq!(repos.layout(), Layout::Slotted);
        let public = Client {
            client_id: "c1".into(),
            client_name: "spa".into(),
            auth_method: AuthMethod::None,
            redirect_uris: vec!["https://app.example/cb".into()],
            expires_at: Some(repos.clock.now() + 60),
            ..Default::default()
        };
        repos.put_client(&public).await.unwrap();
        repos
            .put_client(&Client {
                client_name: "spa 2".into(),
                ..public.clone()
            })
            .await
            .unwrap();
        assert!(repos.origin_allowed("https://app.example").await.unwrap());
        assert!(repos
            .extend_client("c1", repos.clock.now() + 120)
            .await
            .unwrap());
        for id in ["u1", "cfg-alice", "Zx9"] {
            assert!(repos.create_user(&user(id)).await.unwrap());
            let consent = repos
                .remember_consent(
                    id,
                    "c1",
                    &ScopeSet::parse("profile").unwrap(),
                    &[],
                    &repos.new_consent_id(id),
                )
                .await
                .unwrap();
            let code = repos.new_code(id);
            repos
                .put_code(&code, &code_record(id, Some(consent.clone())), 60)
                .await
                .unwrap();
            grant_lifecycle(&repos, id, &code, Some(consent), true).await;
            assert!(repos.forget_consent(id, "c1").await.unwrap());
        }
        repos.add_session_client("sid", "c1", 60).await.unwrap();
        repos.add_session_client("sid", "c2", 60).await.unwrap();
        repos
            .put_flash("f", &1, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            repos.take_flash::<i32>("f", |_| true).await.unwrap(),
            Some(1)
        );
        assert!(repos.delete_client("c1").await.unwrap());
        assert!(!repos.origin_allowed("https://app.example").await.unwrap());
        assert!(store.swaps.load(Ordering::SeqCst) >= 20);
        for keys in store.reads.lock().unwrap().iter() {
            let user_state = keys
                .iter()
                .filter(|k| !k.starts_with(CLIENT) && !k.starts_with(REVOKED_CLIENT));
            assert!(
                slots::same_slot(user_state.map(String::as_str)),
                "a token-path read across slots: {keys:?}"
            );
        }
    }

    /// Upgrade compatibility: records written by earlier versions (untagged
    /// ids under the old key names, written here as raw keys) are redeemed,
    /// rotated and revoked, on the flat layout (memory, one Redis: nothing
    /// changed) and by the slotted layout's code (an untagged id keeps its
    /// old key).
    #[tokio::test]
    async fn old_layout_records_are_redeemed_and_rotated() {
        let flat = repos();
        let slotted = Repos::new(SlotRecorder::new(false), Duration::from_secs(60));
        for repos in [&flat, &slotted] {
            let store = &repos.store;
            store
                .put(
                    "kg:user:old-user",
                    &serde_json::to_vec(&user("old-user")).unwrap(),
                    None,
                )
                .await
                .unwrap();
            // A remembered consent as the previous version wrote it.
            let consent = crate::ids::random_token(16);
            let apps = serde_json::json!({"c1": {"id": consent, "scope": "profile", "granted_at": 1, "updated_at": 1}});
            store
                .put(
                    "kg:apps:old-user",
                    &serde_json::to_vec(&apps).unwrap(),
                    None,
                )
                .await
                .unwrap();
            store
                .put(&format!("kg:consent:{consent}"), b"1", None)
                .await
                .unwrap();
            // A code as the previous version wrote it.
            let code = crate::ids::random_token(32);
            let rec = code_record("old-user", Some(consent.clone()));
            store
                .put(
                    &format!("kg:code:{}", secret_key(&code)),
                    &serde_json::to_vec(&rec).unwrap(),
                    None,
                )
                .await
                .unwrap();
            grant_lifecycle(repos, "old-user", &code, Some(consent.clone()), false).await;
            // An old refresh token and its family rotate, and the family key
            // it names is the old one.
            let family = crate::ids::random_token(16);
            let token = crate::ids::random_token(32);
            let rec = refresh_record("old-user", &family, Some(consent.clone()));
            store
                .put(&format!("kg:fam:{family}"), b"1", None)
                .await
                .unwrap();
            store
                .put(
                    &format!("kg:rt:{}", secret_key(&token)),
                    &serde_json::to_vec(&rec).unwrap(),
                    None,
                )
                .await
                .unwrap();
            let current = repos
                .refresh(&token)
                .await
                .unwrap()
                .expect("old token found");
            let next = crate::ids::random_token(32);
            assert!(repos
                .rotate_refresh(&token, &current, &next, &rec, 600, None, true)
                .await
                .unwrap());
            assert!(repos.revoke_family(&family).await.unwrap());
            assert!(store
                .get(&format!("kg:fam:{family}"))
                .await
                .unwrap()
                .is_none());
            assert!(store
                .get(&format!("kg:revoked:grant:{family}"))
                .await
                .unwrap()
                .is_some());
            // The old deny marker of an old token is still honoured.
            store.put("kg:deny:old-jti", b"1", None).await.unwrap();
            assert!(repos.is_denied("old-jti").await.unwrap());
        }
        // Only the flat layout reads the old list of allowed apps: the
        // slotted layout is for a new cluster, which holds no old records.
        assert!(flat
            .allowed_apps("old-user")
            .await
            .unwrap()
            .contains_key("c1"));
        assert!(flat.forget_consent("old-user", "c1").await.unwrap());
    }
}
