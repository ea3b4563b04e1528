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
        limited(state, "signup", peer, decision)?;
    }
    let config_users = &state.config_users;
    create_user_in(
        &state.repos,
        config_users,
        state.clock.now(),
        username,
        email,
        None,
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
    name: Option<String>,
    password: String,
) -> Result<User, SignupError> {
    check_signup(username, email.as_deref(), &password)?;
    let name = clean_name(name.as_deref().unwrap_or("")).map_err(SignupError::Invalid)?;
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
        name,
        email_verified: false,
        updated_at: now,
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
    if email.is_some_and(|e| !valid_email(e)) {
        return Err(SignupError::Invalid(BAD_EMAIL));
    }
    Ok(())
}

const BAD_EMAIL: &str = "that email address does not look right";

/// The sign-up check of an email address: an `@`, at most 254 bytes.
fn valid_email(e: &str) -> bool {
    e.contains('@') && e.len() <= 254
}

/// A full name as stored: trimmed, empty = none; at most 200 characters
/// and no control characters.
pub fn clean_name(raw: &str) -> Result<Option<String>, &'static str> {
    let name = raw.trim();
    if name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err("names are at most 200 characters, without control characters");
    }
    Ok((!name.is_empty()).then(|| name.to_string()))
}

/// A profile edit (account page, `keygate user set`); `None` keeps a field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileChange {
    /// The full name; empty clears it.
    pub name: Option<String>,
    /// The email address; empty clears it.
    pub email: Option<String>,
    /// Marks the (new or current) email verified or not.
    pub email_verified: Option<bool>,
}

/// Applies `change` to `user` at `now`: a new email address is unverified
/// unless `change` says it is verified, a cleared one is never verified;
/// `updated_at` moves only when something changed. The error is a sentence
/// for the user.
pub fn apply_profile(user: &User, change: &ProfileChange, now: i64) -> Result<User, &'static str> {
    let mut next = user.clone();
    if let Some(raw) = &change.name {
        next.name = clean_name(raw)?;
    }
    if let Some(raw) = &change.email {
        let email = raw.trim();
        if email.is_empty() {
            next.email = None;
        } else if !valid_email(email) || email.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(BAD_EMAIL);
        } else {
            next.email = Some(email.to_string());
        }
        if next.email != user.email {
            next.email_verified = false;
        }
    }
    if let Some(verified) = change.email_verified {
        if verified && next.email.is_none() {
            return Err("there is no email address to mark verified");
        }
        next.email_verified = verified;
    }
    if next.email.is_none() {
        next.email_verified = false;
    }
    if next != *user {
        next.updated_at = now;
    }
    Ok(next)
}

/// Why a profile edit was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A value is not acceptable (a sentence for the user).
    #[error("{0}")]
    Invalid(&'static str),
    /// No such stored user.
    #[error("no such user in the store")]
    Unknown,
    /// The user comes from the config file's `[[users]]`.
    #[error("this user is defined in the config file ([[users]]); edit the profile there")]
    ConfigUser,
    /// Store failure.
    #[error(transparent)]
    Flow(#[from] FlowError),
}

/// Edits a stored user's profile, found by id (account page). Config-file
/// users cannot be edited here.
pub async fn update_profile(
    state: &AppState,
    user_id: &str,
    change: &ProfileChange,
) -> Result<User, ProfileError> {
    if is_config_user(state, user_id) {
        return Err(ProfileError::ConfigUser);
    }
    if user_id.len() > 64 {
        return Err(ProfileError::Unknown);
    }
    let user = state
        .repos
        .user(user_id)
        .await
        .map_err(FlowError::from)?
        .ok_or(ProfileError::Unknown)?;
    save_profile(&state.repos, &user, change, state.clock.now()).await
}

/// Edits a stored user's profile, found by username (CLI `user set`).
pub async fn update_profile_by_name(
    repos: &Repos,
    config_users: &HashMap<String, User>,
    username: &str,
    change: &ProfileChange,
    now: i64,
) -> Result<User, ProfileError> {
    if config_users.contains_key(&username.to_lowercase()) {
        return Err(ProfileError::ConfigUser);
    }
    if !valid_username(username) {
        return Err(ProfileError::Unknown);
    }
    let user = repos
        .user_by_name(username)
        .await
        .map_err(FlowError::from)?
        .ok_or(ProfileError::Unknown)?;
    save_profile(repos, &user, change, now).await
}

async fn save_profile(
    repos: &Repos,
    user: &User,
    change: &ProfileChange,
    now: i64,
) -> Result<User, ProfileError> {
    let next = apply_profile(user, change, now).map_err(ProfileError::Invalid)?;
    if next != *user {
        repos.put_user(&next).await.map_err(FlowError::from)?;
        tracing::info!(event = "user_profile_changed", user_id = %next.id, "profile changed");
    }
    Ok(next)
}

/// A rate decision of the `limit` limiter for `peer` as a flow result; a
/// refusal is logged with the limit and client IP, and counted.
pub(super) fn limited(
    state: &AppState,
    limit: &'static str,
    peer: Option<IpAddr>,
    decision: Decision,
) -> Result<(), FlowError> {
    match decision {
        Decision::Allowed => Ok(()),
        Decision::Limited { retry_after } => {
            state.metrics.limited(limit);
            tracing::info!(
                event = "rate_limited",
                limit,
                client_ip = %super::client_ip(peer),
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
        let decision = state.repos.rate_login(&client, &name, quota, 1).await?;
        if decision != Decision::Allowed {
            state.metrics.login("limited");
        }
        limited(state, "login", peer, decision)?;
    }
    let user = authenticate(state, username, password).await?;
    let ip = super::client_ip(peer);
    match &user {
        Some(u) => {
            state.metrics.login("success");
            tracing::info!(event = "login_succeeded", user_id = %u.id, client_ip = %ip, "password accepted");
        }
        None => {
            state.metrics.login("failure");
            tracing::info!(
                event = "login_failed",
                username = %super::loggable(username),
                client_ip = %ip,
                "wrong username or password"
            );
        }
    }
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
    // [`login`] logs and counts the outcome, with the client IP.
    Ok(user.filter(|_| ok))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User {
            id: "u1".into(),
            username: "bob".into(),
            email: Some("bob@example.com".into()),
            password_hash: "$argon2id$x".into(),
            created_at: 100,
            name: None,
            email_verified: true,
            updated_at: 100,
        }
    }

    fn change(name: Option<&str>, email: Option<&str>, verified: Option<bool>) -> ProfileChange {
        ProfileChange {
            name: name.map(Into::into),
            email: email.map(Into::into),
            email_verified: verified,
        }
    }

    #[test]
    fn names_are_bounded_and_free_of_control_characters() {
        assert_eq!(clean_name("  Bob Example "), Ok(Some("Bob Example".into())));
        assert_eq!(clean_name("  "), Ok(None));
        assert_eq!(clean_name(&"é".repeat(200)), Ok(Some("é".repeat(200))));
        assert!(clean_name(&"a".repeat(201)).is_err());
        assert!(clean_name("Bob\nExample").is_err());
        assert!(clean_name("Bob\u{7f}").is_err());
    }

    #[test]
    fn a_new_email_is_unverified_unless_said_otherwise() {
        let u = user();
        let same = apply_profile(&u, &change(None, Some("bob@example.com"), None), 200).unwrap();
        assert_eq!(same, u, "no change: verified kept, updated_at kept");
        let new = apply_profile(&u, &change(None, Some("b@example.org"), None), 200).unwrap();
        assert_eq!(new.email.as_deref(), Some("b@example.org"));
        assert!(!new.email_verified);
        assert_eq!(new.updated_at, 200);
        let vouched =
            apply_profile(&u, &change(None, Some("b@example.org"), Some(true)), 200).unwrap();
        assert!(vouched.email_verified);
        let cleared = apply_profile(&u, &change(None, Some(""), None), 200).unwrap();
        assert_eq!(
            (cleared.email.clone(), cleared.email_verified),
            (None, false)
        );
        assert!(apply_profile(&cleared, &change(None, None, Some(true)), 200).is_err());
        assert!(apply_profile(&u, &change(None, Some("nope"), None), 200).is_err());
        assert!(apply_profile(&u, &change(None, Some("a b@example.com"), None), 200).is_err());
    }

    #[test]
    fn an_empty_name_clears_it() {
        let named = apply_profile(&user(), &change(Some("Bob"), None, None), 300).unwrap();
        assert_eq!(named.name.as_deref(), Some("Bob"));
        assert_eq!(named.updated_at, 300);
        let cleared = apply_profile(&named, &change(Some(""), None, None), 400).unwrap();
        assert_eq!(cleared.name, None);
        assert!(apply_profile(&user(), &change(Some("x\u{0}"), None, None), 1).is_err());
    }
}
