//! Accounts and login sessions: sign-up, password login (argon2id on the
//! blocking pool, dummy hash for unknown users), session cookies' server side.
//!
//! The store-shared rate limits live here (see [`crate::limits`]): failed
//! logins per (IP, username) for the login form and the password grant
//! ([`login`]), sign-ups per IP ([`create_user`]). Both are stepped before
//! argon2 runs, so a refused attempt costs one store round trip.

use std::collections::HashMap;
use std::net::IpAddr;

use super::FlowError;
use crate::limits::{client_key, login_name, RetryAfter};
use crate::oauth::OAuthError;
use crate::passwords;
use crate::rate::Decision;
use crate::state::AppState;
use crate::store::repos::{Repos, Session, User};

/// Why a sign-up was refused (shown on the form).
#[derive(Debug, thiserror::Error)]
pub enum SignupError {
    /// The input is not acceptable.
    #[error("{0}")]
    Invalid(&'static str),
    /// The name is taken.
    #[error("that username is taken")]
    Taken,
    /// Store or hashing failure.
    #[error(transparent)]
    Flow(#[from] FlowError),
}

/// Checks a username: 1–64 chars of letters, digits, `.`, `_`, `-`, `@`.
pub fn valid_username(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// Creates an account in the store (sign-up page). Each acceptable request
/// spends one unit of `peer`'s sign-up budget (shared through the store)
/// before the password is hashed; a request refused for its input is free.
pub async fn create_user(
    state: &AppState,
    peer: Option<IpAddr>,
    username: &str,
    email: Option<String>,
    password: String,
) -> Result<User, SignupError> {
    check_signup(username, email.as_deref(), &password)?;
    if let Some(quota) = state.limits.signup() {
        let decision = state
            .repos
            .rate_signup(&client_key(peer), quota, 1)
            .await
            .map_err(FlowError::from)?;
        limited("signup", decision)?;
    }
    let config_users = &state.config_users;
    create_user_in(
        &state.repos,
        config_users,
        state.clock.now(),
        username,
        email,
        password,
    )
    .await
}

/// Creates an account in the store; the names of `config_users` are taken
/// (CLI `user add`, which opens only the store).
#[tracing::instrument(skip_all, fields(username = %username))]
pub async fn create_user_in(
    repos: &Repos,
    config_users: &HashMap<String, User>,
    now: i64,
    username: &str,
    email: Option<String>,
    password: String,
) -> Result<User, SignupError> {
    check_signup(username, email.as_deref(), &password)?;
    if config_users.contains_key(&username.to_lowercase()) {
        return Err(SignupError::Taken);
    }
    let password_hash = passwords::hash(password)
        .await
        .map_err(FlowError::internal)?;
    let user = User {
        id: crate::ids::random_token(16),
        username: username.to_string(),
        email,
        password_hash,
        created_at: now,
    };
    if !repos.create_user(&user).await.map_err(FlowError::from)? {
        return Err(SignupError::Taken);
    }
    tracing::info!(event = "user_created", user_id = %user.id, "user created");
    Ok(user)
}

/// The checks of a sign-up's input (before any hashing).
fn check_signup(username: &str, email: Option<&str>, password: &str) -> Result<(), SignupError> {
    if !valid_username(username) {
        return Err(SignupError::Invalid(
            "usernames are 1 to 64 letters, digits, '.', '_', '-' or '@'",
        ));
    }
    if password.chars().count() < 8 || password.len() > 1024 {
        return Err(SignupError::Invalid("passwords need 8 to 1024 characters"));
    }
    if email.is_some_and(|e| !e.contains('@') || e.len() > 254) {
        return Err(SignupError::Invalid(
            "that email address does not look right",
        ));
    }
    Ok(())
}

/// A rate decision of the `limit` limiter as a flow result.
pub(super) fn limited(limit: &'static str, decision: Decision) -> Result<(), FlowError> {
    match decision {
        Decision::Allowed => Ok(()),
        Decision::Limited { retry_after } => {
            tracing::info!(
                event = "rate_limited",
                limit,
                "request refused by a rate limit"
            );
            Err(FlowError::RateLimited(RetryAfter::from(retry_after)))
        }
    }
}

/// Checks a username and password from `peer` under the failed-login limit
/// shared by the login form and the password grant: one unit of the
/// (`peer`, username) budget is reserved before argon2 runs (none left:
/// [`FlowError::RateLimited`] without hashing) and refunded when the
/// password is right, so only failures count and concurrent guesses cannot
/// all slip past the check. `Ok(None)`: wrong username or password.
#[tracing::instrument(skip_all)]
pub async fn login(
    state: &AppState,
    peer: Option<IpAddr>,
    username: &str,
    password: String,
) -> Result<Option<User>, FlowError> {
    let quota = state.limits.login();
    let (client, name) = (client_key(peer), login_name(username));
    if let Some(quota) = quota {
        limited(
            "login",
            state.repos.rate_login(&client, &name, quota, 1).await?,
        )?;
    }
    let user = authenticate(state, username, password).await?;
    if let (Some(quota), Some(_)) = (quota, &user) {
        // A refund that fails only leaves the unit spent until it refills;
        // the user, who gave the right password, is let in.
        if let Err(e) = state.repos.rate_login(&client, &name, quota, -1).await {
            tracing::warn!(error = %e, "login limiter: refund failed");
        }
    }
    Ok(user)
}

/// Finds a user by name: config-file users first, then the store.
pub async fn find_by_name(state: &AppState, username: &str) -> Result<Option<User>, FlowError> {
    if let Some(u) = state.config_users.get(&username.to_lowercase()) {
        return Ok(Some(u.clone()));
    }
    if !valid_username(username) {
        return Ok(None);
    }
    Ok(state.repos.user_by_name(username).await?)
}

/// Whether `id` is a config-file user's (never in the store).
pub fn is_config_user(state: &AppState, id: &str) -> bool {
    state.config_users.values().any(|u| u.id == id)
}

/// Finds a user by id (the `sub` of their tokens).
pub async fn find_by_id(state: &AppState, id: &str) -> Result<Option<User>, FlowError> {
    if let Some(u) = state.config_users.values().find(|u| u.id == id) {
        return Ok(Some(u.clone()));
    }
    if id.len() > 64 {
        return Ok(None);
    }
    Ok(state.repos.user(id).await?)
}

/// Checks a username and password. `Ok(None)` for a wrong password or an
/// unknown user alike, after the same argon2 cost.
#[tracing::instrument(skip_all)]
pub async fn authenticate(
    state: &AppState,
    username: &str,
    password: String,
) -> Result<Option<User>, FlowError> {
    let user = find_by_name(state, username).await?;
    let ok = passwords::verify(password, user.as_ref().map(|u| u.password_hash.clone())).await;
    let result = user.filter(|_| ok);
    match &result {
        Some(u) => tracing::info!(event = "login_succeeded", user_id = %u.id, "password accepted"),
        None => tracing::info!(event = "login_failed", "password refused"),
    }
    Ok(result)
}

/// Starts a session for `user`; returns the cookie value (random, 256 bits).
pub async fn start_session(state: &AppState, user: &User) -> Result<String, FlowError> {
    let sid = crate::ids::random_token(32);
    let now = state.clock.now();
    let ttl = state.cfg.session.ttl.as_secs() as i64;
    let s = Session {
        user_id: user.id.clone(),
        username: user.username.clone(),
        auth_time: now,
        expires_at: now + ttl,
        sid: crate::ids::random_token(16),
    };
    state.repos.put_session(&sid, &s, ttl).await?;
    Ok(sid)
}

/// The live session for a cookie value, if any.
pub async fn session(state: &AppState, sid: &str) -> Result<Option<Session>, FlowError> {
    if sid.len() > 128 {
        return Ok(None);
    }
    let s = state.repos.session(sid).await?;
    Ok(s.filter(|s| s.expires_at > state.clock.now()))
}

/// Ends a session.
pub async fn end_session(state: &AppState, sid: &str) -> Result<(), FlowError> {
    if sid.len() <= 128 {
        state.repos.delete_session(sid).await?;
    }
    Ok(())
}

/// Password grant user check, under the login form's limit ([`login`]):
/// wrong credentials are `invalid_grant` (RFC 6749 §5.2).
pub async fn password_grant_user(
    state: &AppState,
    peer: Option<IpAddr>,
    username: &str,
    password: String,
) -> Result<User, FlowError> {
    login(state, peer, username, password)
        .await?
        .ok_or_else(|| OAuthError::invalid_grant("invalid username or password").into())
}

/// Sets a stored user's password (CLI `user set-password`).
pub async fn set_password(
    repos: &Repos,
    username: &str,
    password: String,
) -> Result<User, SignupError> {
    if password.chars().count() < 8 || password.len() > 1024 {
        return Err(SignupError::Invalid("passwords need 8 to 1024 characters"));
    }
    let mut user = repos
        .user_by_name(username)
        .await
        .map_err(FlowError::from)?
        .ok_or(SignupError::Invalid("no such user in the store"))?;
    user.password_hash = passwords::hash(password)
        .await
        .map_err(FlowError::internal)?;
    repos.put_user(&user).await.map_err(FlowError::from)?;
    tracing::info!(event = "user_password_changed", user_id = %user.id, "password changed");
    Ok(user)
}

/// Deletes a stored user (CLI `user delete`); their sessions expire on their own.
pub async fn delete_user(repos: &Repos, username: &str) -> Result<User, SignupError> {
    let user = repos
        .user_by_name(username)
        .await
        .map_err(FlowError::from)?
        .ok_or(SignupError::Invalid("no such user in the store"))?;
    repos.delete_user(&user).await.map_err(FlowError::from)?;
    tracing::info!(event = "user_deleted", user_id = %user.id, "user deleted");
    Ok(user)
}
