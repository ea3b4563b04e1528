//! keygate's own protected resources, the demo `/api/me` and the OpenID
//! Connect UserInfo endpoint: Bearer JWT verified locally (signature by
//! `kid`, `iss`, `aud` = `tokens.audience`, `exp`, deny-list) and a scope
//! check (RFC 6750).

use super::FlowError;
use crate::oauth::token::AccessClaims;
use crate::state::AppState;
use crate::tokens::jwt;

/// Why a bearer token was refused (RFC 6750 §3.1).
#[derive(Debug)]
pub enum BearerError {
    /// No bearer token in the request: 401 with a bare challenge.
    Missing,
    /// Malformed, expired, revoked or not ours: 401 `invalid_token`.
    InvalidToken(&'static str),
    /// Valid but lacking the scope: 403 `insufficient_scope`.
    InsufficientScope(&'static str),
    /// The store failed (the deny-list could not be checked): 503.
    Flow(FlowError),
}

/// The `/api/me` answer.
#[derive(Debug, Clone)]
pub struct Me {
    /// The user id.
    pub sub: String,
    /// The username.
    pub username: String,
    /// The email, only with scope `email`.
    pub email: Option<String>,
    /// The full name, when the user gave one.
    pub name: Option<String>,
}

/// Verifies a bearer token (from `Authorization: Bearer`, RFC 6750 §2.1) and requires `scope`.
pub async fn authorize(
    state: &AppState,
    token: Option<&str>,
    scope: &'static str,
) -> Result<AccessClaims, BearerError> {
    let token = token.ok_or(BearerError::Missing)?;
    let claims = jwt::verify(
        &state.keys.current(),
        token,
        &state.cfg.issuer,
        &state.cfg.audience,
    )
    .map_err(|_| BearerError::InvalidToken("the access token is invalid or has expired"))?;
    if state
        .repos
        .access_revoked(&claims)
        .await
        .map_err(|e| BearerError::Flow(e.into()))?
    {
        return Err(BearerError::InvalidToken(
            "the access token has been revoked",
        ));
    }
    if !claims.scope.split(' ').any(|s| s == scope) {
        return Err(BearerError::InsufficientScope(scope));
    }
    Ok(claims)
}

/// `GET /api/me`: the token's user (scope `profile`; `email` adds the address).
pub async fn me(state: &AppState, token: Option<&str>) -> Result<Me, BearerError> {
    let claims = authorize(state, token, "profile").await?;
    let user = super::users::find_by_id(state, &claims.sub)
        .await
        .map_err(BearerError::Flow)?
        .ok_or(BearerError::InvalidToken(
            "the access token does not belong to a user",
        ))?;
    let email = if claims.scope.split(' ').any(|s| s == "email") {
        user.email
    } else {
        None
    };
    Ok(Me {
        sub: user.id,
        username: user.username,
        email,
        name: user.name,
    })
}

/// The UserInfo answer (OpenID Connect Core §5.3.2): only claims keygate
/// has for the user, by the token's scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// The user id: the `sub` of the access and ID tokens.
    pub sub: String,
    /// The full name (scope `profile`, when the user gave one).
    pub name: Option<String>,
    /// The username (scope `profile`).
    pub preferred_username: Option<String>,
    /// When the profile last changed (scope `profile`, when known).
    pub updated_at: Option<i64>,
    /// The email address (scope `email`, when the user has one).
    pub email: Option<String>,
    /// Whether the address was verified (with `email`): only an operator
    /// marks it so (`keygate user set --email-verified true`).
    pub email_verified: Option<bool>,
}

/// `GET|POST /oauth/userinfo` (OpenID Connect Core §5.3): a token for
/// keygate's own audience with scope `openid`; claims by scope (§5.4):
/// `profile` adds `name` (when set), `preferred_username` and `updated_at`
/// (when known), `email` adds `email` and `email_verified` (when the user
/// has an address). Every claim here is in `claims_supported`.
pub async fn userinfo(state: &AppState, token: Option<&str>) -> Result<UserInfo, BearerError> {
    let claims = authorize(state, token, crate::oauth::id_token::OPENID).await?;
    let user = super::users::find_by_id(state, &claims.sub)
        .await
        .map_err(BearerError::Flow)?
        .ok_or(BearerError::InvalidToken(
            "the access token does not belong to a user",
        ))?;
    let has = |s: &str| claims.scope.split(' ').any(|x| x == s);
    let profile = has("profile");
    let email = if has("email") { user.email } else { None };
    Ok(UserInfo {
        sub: user.id,
        name: user.name.filter(|_| profile),
        preferred_username: profile.then_some(user.username),
        updated_at: (profile && user.updated_at > 0).then_some(user.updated_at),
        email_verified: email.as_ref().map(|_| user.email_verified),
        email,
    })
}
