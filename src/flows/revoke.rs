//! Token revocation (RFC 7009) and introspection (RFC 7662).

use super::token::{authenticated_client, confidential_client, TokenInput};
use super::FlowError;
use crate::oauth::introspection::{may_see, may_see_as_resource};
use crate::oauth::resource::Audience;
use crate::oauth::token::{required, AccessClaims};
use crate::state::AppState;
use crate::tokens::jwt;

/// RFC 7009 §2.1: revokes a refresh token (its whole family) or an access
/// token (its `jti` on the deny-list until it expires). Unknown tokens and
/// other clients' tokens are a successful no-op (§2.2). A store failure is an
/// error, never a false success.
#[tracing::instrument(skip_all, fields(client_id))]
pub async fn revoke(state: &AppState, input: TokenInput) -> Result<(), FlowError> {
    let (params, client, _) = authenticated_client(state, &input).await?;
    let token = required(&params.token, "token")?;
    if token.len() > 8192 {
        return Ok(());
    }
    if let Some(claims) = verified_access_token(state, token) {
        if claims.client_id == client.client_id {
            let ttl = claims.exp - state.clock.now();
            state.repos.deny_jti(&claims.jti, ttl).await?;
            tracing::info!(event = "access_token_revoked", "access token revoked");
        }
        return Ok(());
    }
    if let Some(rec) = state.repos.refresh(token).await? {
        if rec.value.client_id == client.client_id {
            state.repos.revoke_family(&rec.value.family).await?;
            tracing::info!(
                event = "refresh_family_revoked",
                "refresh token family revoked by the client"
            );
        }
    }
    Ok(())
}

/// Verifies signature and issuer, ignoring expiry (a revoked token may be
/// expired) and accepting any audience (keygate issues tokens for RFC 8707
/// resources too).
fn verified_access_token(state: &AppState, token: &str) -> Option<AccessClaims> {
    if token.matches('.').count() != 2 {
        return None;
    }
    jwt::verify_any_audience(&state.keys.current(), token, &state.cfg.issuer, false).ok()
}

/// What introspection reports (RFC 7662 §2.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Introspection {
    /// Whether the token is active.
    pub active: bool,
    /// `scope`
    pub scope: Option<String>,
    /// `client_id`
    pub client_id: Option<String>,
    /// `username`
    pub username: Option<String>,
    /// `token_type`: `Bearer` or `refresh_token`.
    pub token_type: Option<String>,
    /// `exp`
    pub exp: Option<i64>,
    /// `iat`
    pub iat: Option<i64>,
    /// `nbf`
    pub nbf: Option<i64>,
    /// `sub`
    pub sub: Option<String>,
    /// `aud`: a string, or an array for several RFC 8707 resources.
    pub aud: Option<Audience>,
    /// `iss`
    pub iss: Option<String>,
    /// `jti`
    pub jti: Option<String>,
}

/// RFC 7662 §2: only a confidential client may ask (§2.1; a public client is
/// `invalid_client`), and it gets `active: true` with the claims only for its
/// own valid, unrevoked access token or live refresh token
/// ([`may_see`]); `active: false` for everything else, other clients' tokens
/// included.
#[tracing::instrument(skip_all, fields(client_id))]
pub async fn introspect(state: &AppState, input: TokenInput) -> Result<Introspection, FlowError> {
    let (params, client) = confidential_client(state, &input).await?;
    let token = required(&params.token, "token")?;
    if token.len() > 8192 {
        return Ok(Introspection::default());
    }
    let now = state.clock.now();
    if token.matches('.').count() == 2 {
        // Any audience: tokens for RFC 8707 resources are keygate's too.
        let Ok(claims) =
            jwt::verify_any_audience(&state.keys.current(), token, &state.cfg.issuer, true)
        else {
            return Ok(Introspection::default());
        };
        if !may_see(&client, &claims.client_id) {
            // The resource server a token is for may see it (RFC 7662 §4):
            // its registered client_id, looked up now (a removed resource,
            // or one whose client changed, no longer sees it).
            let resources = super::resources::for_audience(state, claims.aud.values()).await?;
            if !may_see_as_resource(&client, &resources) {
                return Ok(Introspection::default());
            }
        }
        if state.repos.access_revoked(&claims).await? {
            return Ok(Introspection::default());
        }
        let username = super::users::find_by_id(state, &claims.sub)
            .await?
            .map(|u| u.username);
        return Ok(Introspection {
            active: true,
            scope: Some(claims.scope),
            client_id: Some(claims.client_id),
            username,
            token_type: Some("Bearer".into()),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            nbf: Some(claims.nbf),
            sub: Some(claims.sub),
            aud: Some(claims.aud),
            iss: Some(claims.iss),
            jti: Some(claims.jti),
        });
    }
    let Some(rec) = state.repos.refresh(token).await? else {
        return Ok(Introspection::default());
    };
    let r = rec.value;
    if r.rotated
        || r.expires_at <= now
        || !may_see(&client, &r.client_id)
        || !state.repos.refresh_alive(&r).await?
    {
        return Ok(Introspection::default());
    }
    let username = super::users::find_by_id(state, &r.sub)
        .await?
        .map(|u| u.username);
    Ok(Introspection {
        active: true,
        scope: Some(r.scope.to_string()),
        client_id: Some(r.client_id),
        username,
        token_type: Some("refresh_token".into()),
        exp: Some(r.expires_at),
        sub: Some(r.sub),
        iss: Some(state.cfg.issuer.clone()),
        ..Default::default()
    })
}
