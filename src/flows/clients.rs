//! Client management shared by the web pages, RFC 7591/7592 and the CLI:
//! generate ids and secrets, validate metadata (one set of rules), store only
//! hashes of secrets and registration access tokens.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::oauth::client_auth::hash_secret;
use crate::oauth::client_meta::{validate, validate_all, ClientMetadata, MetadataError, Rules};
use crate::oauth::flash::SealedFlash;
use crate::oauth::types::{AuthMethod, Client};
use crate::store::repos::{Repos, Session};
use crate::store::StoreError;
use crate::tokens::keys::KeySet;

/// A client with the secrets shown once (never stored in clear).
#[derive(Debug)]
pub struct Registered {
    /// The stored client.
    pub client: Client,
    /// The plain secret for confidential clients.
    pub secret: Option<String>,
    /// The RFC 7592 registration access token, when one was issued.
    pub registration_token: Option<String>,
}

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The metadata is invalid.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// No such client (or not yours).
    #[error("no such client")]
    NotFound,
    /// The operation does not apply (e.g. rotating a public client's secret).
    #[error("{0}")]
    NotApplicable(&'static str),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `rules` with the algorithms of the keys published now
/// ([`Rules::signing_algs`]), for a change to a client's metadata: an
/// `id_token_signed_response_alg` must name one of them.
pub fn rules_with_keys(rules: &Rules, keys: &KeySet) -> Rules {
    let mut algs: Vec<String> = keys
        .all()
        .iter()
        .map(|k| k.alg.as_str().to_string())
        .collect();
    algs.sort_unstable();
    algs.dedup();
    Rules {
        signing_algs: algs,
        ..rules.clone()
    }
}

/// Builds a client (id, secret, hash) from metadata after validating it.
pub fn build(
    meta: ClientMetadata,
    rules: &Rules,
    now: i64,
    client_id: Option<String>,
    secret: Option<String>,
) -> Result<Registered, MetadataError> {
    validate(&meta, rules)?;
    let secret = match meta.auth_method {
        AuthMethod::None => None,
        _ => Some(secret.unwrap_or_else(crate::ids::client_secret)),
    };
    let client = Client {
        client_id: client_id.unwrap_or_else(crate::ids::client_id),
        client_name: meta.client_name,
        secret_sha256: secret.as_deref().map(hash_secret),
        auth_method: meta.auth_method,
        grant_types: meta.grant_types,
        redirect_uris: meta.redirect_uris,
        scope: meta.scope,
        created_at: now,
        owner: None,
        client_uri: meta.client_uri,
        logo_uri: meta.logo_uri,
        registration_token_sha256: None,
        expires_at: None,
        ..Client::default()
    };
    let mut client = client;
    meta.oidc.apply_to(&mut client);
    Ok(Registered {
        client,
        secret,
        registration_token: None,
    })
}

/// Validates, generates credentials and stores a new client. `owner` is the
/// signed-in user for clients made in the web pages; `with_registration_token`
/// issues an RFC 7592 registration access token.
#[tracing::instrument(skip_all, fields(client_name = %meta.client_name))]
pub async fn register(
    repos: &Repos,
    meta: ClientMetadata,
    rules: &Rules,
    now: i64,
    owner: Option<String>,
    with_registration_token: bool,
) -> Result<Registered, ClientError> {
    store_new(
        repos,
        meta,
        rules,
        now,
        owner,
        with_registration_token,
        None,
    )
    .await
}

/// Like [`register`] for an anonymous RFC 7591 registration (open
/// registration): a registration access token is issued, and the client
/// expires at `expires_at` unless its use extends it
/// (`flows::registration::keep_alive`).
#[tracing::instrument(skip_all, fields(client_name = %meta.client_name))]
pub async fn register_expiring(
    repos: &Repos,
    meta: ClientMetadata,
    rules: &Rules,
    now: i64,
    expires_at: i64,
) -> Result<Registered, ClientError> {
    store_new(repos, meta, rules, now, None, true, Some(expires_at)).await
}

async fn store_new(
    repos: &Repos,
    meta: ClientMetadata,
    rules: &Rules,
    now: i64,
    owner: Option<String>,
    with_registration_token: bool,
    expires_at: Option<i64>,
) -> Result<Registered, ClientError> {
    let mut reg = build(meta, rules, now, None, None)?;
    reg.client.owner = owner;
    reg.client.expires_at = expires_at;
    if with_registration_token {
        let token = crate::ids::random_token(32);
        reg.client.registration_token_sha256 = Some(hash_secret(&token));
        reg.registration_token = Some(token);
    }
    repos.put_client(&reg.client).await?;
    tracing::info!(event = "client_changed", action = "created", client_id = %reg.client.client_id, "client registered");
    Ok(reg)
}

/// Reads a stored client, optionally only if `owner` owns it.
pub async fn get(
    repos: &Repos,
    client_id: &str,
    owner: Option<&str>,
) -> Result<Client, ClientError> {
    if client_id.len() > 256 {
        return Err(ClientError::NotFound);
    }
    let client = repos
        .client(client_id)
        .await?
        .ok_or(ClientError::NotFound)?;
    match owner {
        Some(o) if client.owner.as_deref() != Some(o) => Err(ClientError::NotFound),
        _ => Ok(client),
    }
}

/// Replaces a client's metadata (RFC 7592 §2.2 full replacement); the id,
/// secret, owner and registration token stay. Switching between public and
/// confidential issues or drops the secret.
pub async fn update(
    repos: &Repos,
    client_id: &str,
    owner: Option<&str>,
    meta: ClientMetadata,
    rules: &Rules,
) -> Result<Registered, ClientError> {
    let old = get(repos, client_id, owner).await?;
    validate(&meta, rules)?;
    let mut secret = None;
    let secret_sha256 = match (meta.auth_method, old.secret_sha256) {
        (AuthMethod::None, _) => None,
        (_, Some(h)) => Some(h),
        (_, None) => {
            let s = crate::ids::client_secret();
            let h = hash_secret(&s);
            secret = Some(s);
            Some(h)
        }
    };
    let mut client = Client {
        client_name: meta.client_name,
        secret_sha256,
        auth_method: meta.auth_method,
        grant_types: meta.grant_types,
        redirect_uris: meta.redirect_uris,
        scope: meta.scope,
        client_uri: meta.client_uri,
        logo_uri: meta.logo_uri,
        ..old
    };
    meta.oidc.apply_to(&mut client);
    repos.put_client(&client).await?;
    tracing::info!(event = "client_changed", action = "updated", client_id = %client.client_id, "client updated");
    Ok(Registered {
        client,
        secret,
        registration_token: None,
    })
}

/// Issues a new secret (the old one stops working at once).
pub async fn rotate_secret(
    repos: &Repos,
    client_id: &str,
    owner: Option<&str>,
) -> Result<Registered, ClientError> {
    let mut client = get(repos, client_id, owner).await?;
    if !client.is_confidential() {
        return Err(ClientError::NotApplicable(
            "public clients have no secret to rotate",
        ));
    }
    let secret = crate::ids::client_secret();
    client.secret_sha256 = Some(hash_secret(&secret));
    repos.put_client(&client).await?;
    tracing::info!(event = "client_changed", action = "secret_rotated", client_id = %client.client_id, "client secret rotated");
    Ok(Registered {
        client,
        secret: Some(secret),
        registration_token: None,
    })
}

/// All the problems of `meta` under `rules` (one per field), for a form
/// that shows them at once; [`register`] and [`update`] refuse the first.
pub fn problems(meta: &ClientMetadata, rules: &Rules) -> Vec<MetadataError> {
    validate_all(meta, rules)
}

/// How long the secret of a client just created or rotated waits for the
/// page that shows it (the redirect after the POST), in the store.
pub const SECRET_FLASH_TTL: Duration = Duration::from_secs(120);

/// The secrets of a client just created or rotated, kept for one read by
/// the session that made them ([`stash_secret`], [`take_secret`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretFlash {
    /// The user who made the change.
    pub user_id: String,
    /// The public id of their session (`Session::sid`).
    pub sid: String,
    /// The client.
    pub client_id: String,
    /// Its plain secret, `None` for a public client.
    pub secret: Option<String>,
    /// The RFC 7592 registration access token, on creation.
    pub registration_token: Option<String>,
    /// Whether the secret replaces an old one.
    pub rotated: bool,
}

/// Keeps the secrets of `reg` for one read by `session` within
/// [`SECRET_FLASH_TTL`], sealed under a key derived from the random id it
/// returns (`oauth::flash`: the store never holds them in clear).
pub async fn stash_secret(
    repos: &Repos,
    session: &Session,
    reg: &Registered,
    rotated: bool,
) -> Result<String, ClientError> {
    let id = crate::ids::random_token(24);
    let flash = SecretFlash {
        user_id: session.user_id.clone(),
        sid: session.sid.clone(),
        client_id: reg.client.client_id.clone(),
        secret: reg.secret.clone(),
        registration_token: reg.registration_token.clone(),
        rotated,
    };
    let plain = serde_json::to_vec(&flash).map_err(StoreError::from)?;
    let sealed = crate::oauth::flash::seal(&id, &plain)
        .map_err(|e| ClientError::Store(StoreError::Misconfigured(e.to_string())))?;
    repos.put_flash(&id, &sealed, SECRET_FLASH_TTL).await?;
    Ok(id)
}

/// The secrets stashed under `id` for `client_id` by this `session`, once:
/// `None` when already read, expired, or made by another session.
pub async fn take_secret(
    repos: &Repos,
    id: &str,
    session: &Session,
    client_id: &str,
) -> Result<Option<SecretFlash>, ClientError> {
    let opened = |sealed: &SealedFlash| -> Option<SecretFlash> {
        let plain = crate::oauth::flash::open(id, sealed).ok()?;
        serde_json::from_slice(&plain).ok()
    };
    let mine = |sealed: &SealedFlash| {
        opened(sealed).is_some_and(|f| {
            f.user_id == session.user_id && f.sid == session.sid && f.client_id == client_id
        })
    };
    Ok(repos.take_flash(id, mine).await?.as_ref().and_then(opened))
}

/// A fresh one-time nonce for a page form (see [`claim_form`]).
pub fn form_nonce() -> String {
    crate::ids::random_token(16)
}

/// Marks the page form `nonce` as submitted (for `ttl`); `false` when it
/// already was: the same form posted twice acts once.
pub async fn claim_form(repos: &Repos, nonce: &str, ttl: Duration) -> Result<bool, ClientError> {
    Ok(repos.claim_form(nonce, ttl).await?)
}

/// Forgets a claimed form whose action failed, so it can be sent again.
pub async fn release_form(repos: &Repos, nonce: &str) -> Result<(), ClientError> {
    Ok(repos.release_form(nonce).await?)
}

/// Deletes a client.
pub async fn delete(
    repos: &Repos,
    client_id: &str,
    owner: Option<&str>,
) -> Result<(), ClientError> {
    get(repos, client_id, owner).await?;
    repos.delete_client(client_id).await?;
    tracing::info!(event = "client_changed", action = "deleted", client_id = %client_id, "client deleted");
    Ok(())
}

/// Every stored client (optionally only `owner`'s), oldest first.
pub async fn list(repos: &Repos, owner: Option<&str>) -> Result<Vec<Client>, ClientError> {
    let mut out = vec![];
    for id in repos.client_ids().await? {
        if let Some(c) = repos.client(&id).await? {
            if owner.is_none() || c.owner.as_deref() == owner {
                out.push(c);
            }
        }
    }
    out.sort_by(|a, b| (a.created_at, &a.client_id).cmp(&(b.created_at, &b.client_id)));
    Ok(out)
}

/// RFC 7592 §3: the client named in the URL, if `token` is its registration
/// access token (compared in constant time). Unknown client and wrong token
/// look the same.
pub async fn by_registration_token(
    repos: &Repos,
    client_id: &str,
    token: &str,
) -> Result<Option<Client>, ClientError> {
    let client = match get(repos, client_id, None).await {
        Ok(c) => c,
        Err(ClientError::NotFound) => return Ok(None),
        Err(e) => return Err(e),
    };
    let ok = client
        .registration_token_sha256
        .is_some_and(|h| bool::from(hash_secret(token).ct_eq(&h)));
    Ok(ok.then_some(client))
}

/// Whether a browser at `origin` (an exact `oauth::types::web_origin`) may
/// call the token and revocation endpoints (SPEC.md "CORS"): it is the origin
/// of a redirect URI of a public client, from the config file
/// (`config_origins`, no store read) or the store (one read of the origin
/// index that [`Repos::put_client`] and [`Repos::delete_client`] keep).
pub async fn cors_origin_allowed(
    repos: &Repos,
    config_origins: &std::collections::BTreeSet<String>,
    origin: &str,
) -> Result<bool, StoreError> {
    if config_origins.contains(origin) {
        return Ok(true);
    }
    repos.origin_allowed(origin).await
}
