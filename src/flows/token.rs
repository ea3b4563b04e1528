//! `POST /oauth/token` (RFC 6749 §3.2): parse → authenticate the client →
//! grant-specific checks → sign one JWT. `client_credentials` costs one store
//! read at most (none for clients defined in the config file).

use super::FlowError;
use crate::metrics::GrantLabels;
use crate::oauth::client_auth::{authenticate, select_credentials};
use crate::oauth::token::{client_credentials, AccessClaims, Grant, TokenParams};
use crate::oauth::types::{Client, GrantType};
use crate::oauth::{ErrorCode, OAuthError};
use crate::state::AppState;
use crate::tokens::jwt;

/// Grant types this build serves at the token endpoint.
pub const SUPPORTED_GRANTS: &[GrantType] = &[GrantType::ClientCredentials];

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone)]
pub struct Issued {
    /// The signed JWT.
    pub access_token: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// The granted scope.
    pub scope: String,
}

/// The raw inputs of a token request.
#[derive(Debug, Default)]
pub struct TokenInput {
    /// `Authorization: Basic` user-id and password, still form-encoded.
    pub basic: Option<(String, String)>,
    /// Decoded form pairs in order.
    pub form: Vec<(String, String)>,
}

/// Runs one token request.
#[tracing::instrument(skip_all, fields(client_id, grant_type))]
pub async fn exchange(state: &AppState, input: TokenInput) -> Result<Issued, FlowError> {
    let params = TokenParams::from_pairs(input.form.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    let creds = select_credentials(
        input.basic.as_ref().map(|(u, p)| (u.as_str(), p.as_str())),
        params.client_id.as_deref(),
        params.client_secret.as_deref(),
    )?;
    tracing::Span::current().record("client_id", creds.client_id());
    let grant_type = params.grant(SUPPORTED_GRANTS)?;
    tracing::Span::current().record("grant_type", grant_type.as_str());
    let client = find_client(state, creds.client_id()).await?;
    let client = authenticate(&creds, client).inspect_err(|_| {
        tracing::info!(event = "client_auth_failed", "client authentication failed");
    })?;
    let scope = match grant_type {
        GrantType::ClientCredentials => client_credentials(&client, params.scope.as_deref())?,
        other => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                format!("grant type {} is not served", other.as_str()),
            )
            .into())
        }
    };
    let grant = Grant {
        subject: client.client_id.clone(),
        client_id: client.client_id.clone(),
        scope,
    };
    let issued = issue_access_token(state, &grant)?;
    state
        .metrics
        .tokens_issued
        .get_or_create(&GrantLabels {
            grant_type: grant_type.as_str(),
        })
        .inc();
    tracing::info!(event = "token_issued", "access token issued");
    Ok(issued)
}

/// Looks a client up: config-file clients first, then the store.
pub async fn find_client(state: &AppState, client_id: &str) -> Result<Option<Client>, FlowError> {
    if let Some(c) = state.config_clients.get(client_id) {
        return Ok(Some(c.clone()));
    }
    if client_id.len() > 256 {
        return Ok(None);
    }
    Ok(state.clients.get(client_id).await?)
}

/// Builds and signs an access token for `grant` with the current key.
pub fn issue_access_token(state: &AppState, grant: &Grant) -> Result<Issued, FlowError> {
    let ttl = state.settings.tokens.access_ttl;
    let claims = AccessClaims::new(
        &state.cfg.issuer,
        &state.cfg.audience,
        grant,
        state.clock.now(),
        ttl as i64,
        crate::ids::jti(),
    );
    let keys = state.keys.current();
    let access_token = jwt::sign(keys.signer(), &claims)?;
    Ok(Issued {
        access_token,
        expires_in: ttl,
        scope: claims.scope,
    })
}
