//! The protected demo resource `/api/me`: Bearer JWT verified locally
//! (signature by `kid`, `iss`, `aud`, `exp`, deny-list) and a scope check
//! (RFC 6750).

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
    })
}
