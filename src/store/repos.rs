//! Typed facade over the store: owns key naming (`kg:<kind>:<id>`) and serde.
//! The flows never see raw keys. Codes, refresh tokens and sessions are keyed
//! by the SHA-256 of the secret value, so the store never holds them in clear.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{Put, Store, StoreError, Swap};
use crate::oauth::grace::GraceSeal;
use crate::oauth::token::{CodeRecord, RefreshRecord};
use crate::oauth::types::Client;
use crate::rate::{Decision, Quota};

const CLIENT: &str = "kg:client:";
const USER: &str = "kg:user:";
const USERNAME: &str = "kg:uname:";
const CODE: &str = "kg:code:";
const REFRESH: &str = "kg:rt:";
const FAMILY: &str = "kg:fam:";
const DENY: &str = "kg:deny:";
const SESSION: &str = "kg:sess:";
const RATE_LOGIN: &str = "kg:rl:login:";
const RATE_SIGNUP: &str = "kg:rl:signup:";

/// The store key part for a secret value: base64url(SHA-256(value)).
pub fn secret_key(value: &str) -> String {
    B64.encode(crate::oauth::client_auth::hash_secret(value))
}

fn ttl_secs(secs: i64) -> Option<Duration> {
    Some(Duration::from_secs(secs.max(1) as u64))
}

/// Typed access to everything keygate stores.
#[derive(Clone)]
pub struct Repos {
    store: Store,
}

/// A stored value with the exact bytes it was read as, for compare-and-swap.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    /// The decoded value.
    pub value: T,
    /// The raw bytes.
    pub raw: Vec<u8>,
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Stable id: the `sub` of the user's tokens.
    pub id: String,
    /// Login name (unique, compared case-insensitively).
    pub username: String,
    /// Optional email address.
    pub email: Option<String>,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Creation time.
    pub created_at: i64,
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
}

impl Repos {
    /// Wraps the store.
    pub fn new(store: Store) -> Self {
        Self { store }
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

    /// Reads a client.
    pub async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        self.get_json(&format!("{CLIENT}{client_id}")).await
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
        let client_key = format!("{CLIENT}{id}");
        let mut vals = self.store.get_many(&[&client_key, key]).await?.into_iter();
        let client = match vals.next().flatten() {
            Some(bytes) => Some(serde_json::from_slice(&bytes)?),
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
        self.client_and(client_id, &format!("{CODE}{}", secret_key(code)))
            .await
    }

    /// Reads a stored client (unless `client_id` is `None`) and a refresh
    /// token record together.
    pub async fn client_and_refresh(
        &self,
        client_id: Option<&str>,
        token: &str,
    ) -> Result<(Option<Client>, Option<Versioned<RefreshRecord>>), StoreError> {
        self.client_and(client_id, &format!("{REFRESH}{}", secret_key(token)))
            .await
    }

    /// Creates or replaces a client.
    pub async fn put_client(&self, client: &Client) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(client)?;
        self.store
            .put(&format!("{CLIENT}{}", client.client_id), &bytes, None)
            .await
    }

    /// Deletes a client; returns whether it existed.
    pub async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        self.store.delete(&format!("{CLIENT}{client_id}")).await
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

    /// Deletes a user and frees the name; returns whether it existed.
    pub async fn delete_user(&self, user: &User) -> Result<bool, StoreError> {
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
            .put(
                &format!("{CODE}{}", secret_key(code)),
                &bytes,
                ttl_secs(ttl),
            )
            .await
    }

    /// Reads a code record (fresh or redeemed).
    pub async fn code(&self, code: &str) -> Result<Option<Versioned<CodeRecord>>, StoreError> {
        self.get_versioned(&format!("{CODE}{}", secret_key(code)))
            .await
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
        let code_key = format!("{CODE}{}", secret_key(code));
        let new = serde_json::to_vec(redeemed)?;
        let mut owned: Vec<(String, Vec<u8>, Option<Duration>)> = vec![];
        if let Some((token, rec, ttl)) = refresh {
            owned.push((
                format!("{REFRESH}{}", secret_key(token)),
                serde_json::to_vec(rec)?,
                ttl_secs(ttl),
            ));
            owned.push((
                format!("{FAMILY}{}", rec.family),
                b"1".to_vec(),
                ttl_secs(ttl),
            ));
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
                require: &[],
                puts: &puts,
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
            .put(&format!("{FAMILY}{}", rec.family), b"1", ttl_secs(ttl))
            .await?;
        self.store
            .put(
                &format!("{REFRESH}{}", secret_key(token)),
                &bytes,
                ttl_secs(ttl),
            )
            .await
    }

    /// Reads a refresh token record.
    pub async fn refresh(
        &self,
        token: &str,
    ) -> Result<Option<Versioned<RefreshRecord>>, StoreError> {
        self.get_versioned(&format!("{REFRESH}{}", secret_key(token)))
            .await
    }

    /// Whether the family is alive (not revoked, not expired).
    pub async fn family_alive(&self, family: &str) -> Result<bool, StoreError> {
        Ok(self
            .store
            .get(&format!("{FAMILY}{family}"))
            .await?
            .is_some())
    }

    /// Atomically: if `old` is unchanged and its family alive, mark it rotated
    /// (keeping `grace`, the sealed successor pair, in it) and store `next`
    /// (extending the family's life). `false` otherwise.
    pub async fn rotate_refresh(
        &self,
        old_token: &str,
        current: &Versioned<RefreshRecord>,
        next_token: &str,
        next: &RefreshRecord,
        ttl: i64,
        grace: Option<GraceSeal>,
    ) -> Result<bool, StoreError> {
        let old_key = format!("{REFRESH}{}", secret_key(old_token));
        let fam_key = format!("{FAMILY}{}", next.family);
        let next_key = format!("{REFRESH}{}", secret_key(next_token));
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
                require: &[&fam_key],
                puts: &[
                    (&next_key, &next_bytes, ttl_secs(ttl)),
                    (&fam_key, b"1", ttl_secs(ttl)),
                ],
            })
            .await
    }

    /// Reads a refresh token record and whether `family` is alive, in one
    /// round trip (the grace-retry check of a successor).
    pub async fn refresh_and_family(
        &self,
        token: &str,
        family: &str,
    ) -> Result<(Option<RefreshRecord>, bool), StoreError> {
        let rt_key = format!("{REFRESH}{}", secret_key(token));
        let fam_key = format!("{FAMILY}{family}");
        let mut vals = self.store.get_many(&[&rt_key, &fam_key]).await?.into_iter();
        let record = match vals.next().flatten() {
            Some(bytes) => Some(serde_json::from_slice(&bytes)?),
            None => None,
        };
        Ok((record, vals.next().flatten().is_some()))
    }

    /// Revokes a whole refresh family; returns whether it was alive.
    pub async fn revoke_family(&self, family: &str) -> Result<bool, StoreError> {
        self.store.delete(&format!("{FAMILY}{family}")).await
    }

    // ---- access token deny-list ---------------------------------------

    /// Denies an access token's `jti` until `ttl` seconds from now (its expiry).
    pub async fn deny_jti(&self, jti: &str, ttl: i64) -> Result<(), StoreError> {
        if ttl <= 0 {
            return Ok(()); // already expired: nothing to deny
        }
        self.store
            .put(&format!("{DENY}{jti}"), b"1", ttl_secs(ttl))
            .await
    }

    /// Whether the `jti` is denied.
    pub async fn is_denied(&self, jti: &str) -> Result<bool, StoreError> {
        Ok(self.store.get(&format!("{DENY}{jti}")).await?.is_some())
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
}
