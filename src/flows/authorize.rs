//! `GET/POST /oauth/authorize`: check the request against the registered
//! client, then, once the signed-in user decides, issue a code (or, for
//! implicit clients in the legacy profile, a token) and build the redirect.

use super::token::issue_access_token;
use super::FlowError;
use crate::oauth::authorize::{
    bind_resources, error_redirect_url, redirect_url, validate, AuthorizeError, AuthorizeParams,
    ResponseType, ValidRequest,
};
use crate::oauth::error::ErrorCode;
use crate::oauth::resource::{self, Target};
use crate::oauth::token::{CodeRecord, Grant};
use crate::oauth::types::Client;
use crate::oauth::OAuthError;
use crate::state::AppState;
use crate::store::repos::Session;

/// Why the authorization request cannot proceed.
#[derive(Debug)]
pub enum Refusal {
    /// A protocol error (page or redirect, as the core decided).
    Authorize(AuthorizeError),
    /// The store failed: show a 503 page (the client cannot be checked, so
    /// never redirect).
    Flow(FlowError),
}

impl From<FlowError> for Refusal {
    fn from(e: FlowError) -> Self {
        Self::Flow(e)
    }
}

/// Parses and validates the request: one store round trip at most, for the
/// client and the requested RFC 8707 resources together. A refused request
/// is logged at `info` with the values it sent (`authorize_refused`).
pub async fn check(
    state: &AppState,
    pairs: &[(String, String)],
) -> Result<(ValidRequest, Client), Refusal> {
    let result = check_request(state, pairs).await;
    if let Err(Refusal::Authorize(e)) = &result {
        log_refusal(pairs, e);
    }
    result
}

/// One `authorize_refused` line: the `client_id`, `redirect_uri` and
/// `response_type` sent (escaped and truncated, `-` when absent) and why.
fn log_refusal(pairs: &[(String, String)], e: &AuthorizeError) {
    let sent = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map_or_else(|| "-".to_string(), |(_, v)| super::loggable(v))
    };
    let (client_id, redirect_uri) = (sent("client_id"), sent("redirect_uri"));
    let response_type = sent("response_type");
    match e {
        AuthorizeError::ShowToUser { title, message } => tracing::info!(
            event = "authorize_refused",
            client_id = %client_id,
            redirect_uri = %redirect_uri,
            response_type = %response_type,
            reason = %title,
            detail = ?message,
            "authorization request refused with an error page"
        ),
        AuthorizeError::Redirect { error, .. } => tracing::info!(
            event = "authorize_refused",
            client_id = %client_id,
            redirect_uri = %redirect_uri,
            response_type = %response_type,
            error = %error.code.as_str(),
            detail = ?error.description,
            "authorization request refused with an error redirect"
        ),
    }
}

async fn check_request(
    state: &AppState,
    pairs: &[(String, String)],
) -> Result<(ValidRequest, Client), Refusal> {
    let params = AuthorizeParams::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let client_id = crate::oauth::authorize::client_id(&params).map_err(Refusal::Authorize)?;
    // A malformed `resource` is reported only once the client and redirect
    // URI are trusted (an error redirect), so it looks nothing up.
    let requested = resource::requested(&params.resource);
    let ids = requested.as_deref().unwrap_or_default();
    let (client, found) = super::resources::client_and_resources(state, client_id, ids).await?;
    let req = validate(&params, client.as_ref(), &state.policy).map_err(Refusal::Authorize)?;
    let req = bind_resources(&params, req, requested, &found).map_err(Refusal::Authorize)?;
    match client {
        Some(c) => {
            // An anonymously registered client in use lives on (no round trip here).
            super::registration::keep_alive(state, &c);
            Ok((req, c))
        }
        None => Err(Refusal::Flow(FlowError::Internal(
            "validated request without a client".into(),
        ))),
    }
}

/// The consent id under which `user_id` already allowed everything `req`
/// asks for (scope and resources), if they did ([`crate::oauth::consent`]).
pub async fn remembered(
    state: &AppState,
    user_id: &str,
    req: &ValidRequest,
) -> Result<Option<String>, FlowError> {
    let apps = state.repos.allowed_apps(user_id).await?;
    Ok(apps
        .get(&req.client_id)
        .filter(|app| app.covers(&req.scope, req.resources.iter().map(|r| r.uri.as_str())))
        .map(|app| app.id.clone()))
}

/// How the user's consent to a request was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consent {
    /// On the consent page just now: remember it.
    Given,
    /// Before (the consent id [`remembered`] found): nothing to ask.
    Remembered(String),
}

/// The user allowed the request: returns the redirect URL carrying the code
/// (or the implicit token in the fragment), `state` and `iss`. `auth_time`
/// is when the user signed in (the login session's), bound into the code
/// with the request's `nonce` for the OpenID Connect ID token; the code
/// names the consent, so revoking the app revokes what the code issues.
#[tracing::instrument(skip_all, fields(client_id = %req.client_id))]
pub async fn approve(
    state: &AppState,
    req: &ValidRequest,
    session: &Session,
    consent: Consent,
) -> Result<String, FlowError> {
    let user_id = session.user_id.as_str();
    let auth_time = session.auth_time;
    let issuer = &state.cfg.issuer;
    // A session outlives a deleted user (sessions are not indexed by user):
    // issue nothing for a user who no longer exists.
    if super::users::find_by_id(state, user_id).await?.is_none() {
        tracing::warn!(event = "consent_refused", user_id = %user_id, "the signed-in user no longer exists");
        return Ok(error_redirect_url(
            &req.target,
            &OAuthError::new(
                ErrorCode::AccessDenied,
                "the signed-in user no longer exists",
            ),
            issuer,
        ));
    }
    let consent = match consent {
        Consent::Remembered(id) => id,
        Consent::Given => {
            let resources: Vec<String> = req.resources.iter().map(|r| r.uri.clone()).collect();
            state
                .repos
                .remember_consent(
                    user_id,
                    &req.client_id,
                    &req.scope,
                    &resources,
                    &state.repos.new_consent_id(user_id),
                )
                .await?
        }
    };
    match req.response_type {
        ResponseType::Code => {
            let code = state.repos.new_code(user_id);
            let ttl = state.cfg.tokens.code_ttl.as_secs() as i64;
            let rec = CodeRecord {
                client_id: req.client_id.clone(),
                redirect_uri: req.target.uri.clone(),
                redirect_uri_given: req.redirect_uri_param.is_some(),
                scope: req.scope.clone(),
                sub: user_id.to_string(),
                pkce: req.pkce.clone(),
                expires_at: state.clock.now() + ttl,
                redeemed: None,
                resources: req.resources.iter().map(Target::from).collect(),
                nonce: req.nonce.clone(),
                auth_time: Some(auth_time),
                consent: Some(consent),
                sid: (!session.sid.is_empty()).then(|| session.sid.clone()),
            };
            state.repos.put_code(&code, &rec, ttl).await?;
            if req.backchannel_logout {
                super::logout::record_client(state, session, &req.client_id).await?;
            }
            tracing::info!(event = "code_issued", "authorization code issued");
            Ok(redirect_url(&req.target, &[("code", &code)], issuer))
        }
        ResponseType::Token => {
            let grant = Grant {
                subject: user_id.to_string(),
                client_id: req.client_id.clone(),
                scope: req.scope.clone(),
                family: None,
            };
            let targets: Vec<Target> = req.resources.iter().map(Target::from).collect();
            let t = issue_access_token(
                state,
                &grant,
                &targets,
                crate::oauth::types::GrantType::Implicit,
            )?;
            tracing::info!(
                event = "token_issued",
                grant_type = "implicit",
                "access token issued"
            );
            let expires_in = t.expires_in.to_string();
            Ok(redirect_url(
                &req.target,
                &[
                    ("access_token", &t.access_token),
                    ("token_type", "Bearer"),
                    ("expires_in", &expires_in),
                    ("scope", &t.scope),
                ],
                issuer,
            ))
        }
    }
}

/// The user denied the request: `access_denied` back to the client.
pub fn deny(state: &AppState, req: &ValidRequest) -> String {
    tracing::info!(event = "consent_denied", client_id = %req.client_id, "user denied the request");
    error_redirect_url(
        &req.target,
        &OAuthError::new(ErrorCode::AccessDenied, "the user denied the request"),
        &state.cfg.issuer,
    )
}
