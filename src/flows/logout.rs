//! OpenID Connect logout: RP-Initiated Logout 1.0 (`/oauth/logout`: check
//! the request, end the session) and Back-Channel Logout 1.0 (a logout token
//! POSTed to every client that was issued a code in the session and
//! registered a `backchannel_logout_uri`).
//!
//! Back-channel deliveries run on spawned tasks: the user's answer never
//! waits for a client. Each gets [`TRIES`] tries, [`TRY_TIMEOUT`] each, with
//! [`BACKOFF`] between them, only to https or loopback http URIs (checked at
//! registration and again here), redirects not followed. A delivery given up
//! is counted in `keygate_backchannel_logout_failures_total` and logged
//! (`event = "backchannel_logout_failed"`), never with the token.
//! Must not depend on poem.

use std::sync::OnceLock;
use std::time::Duration;

use super::FlowError;
use crate::oauth::client_meta::check_backchannel_uri;
use crate::oauth::id_token::LogoutClaims;
use crate::state::AppState;
use crate::store::repos::Session;
use crate::tokens::jwt;

/// Tries per back-channel delivery.
pub const TRIES: usize = 3;
/// Wait before the 2nd and 3rd try.
pub const BACKOFF: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(2)];
/// Timeout of one try (connect and answer).
pub const TRY_TIMEOUT: Duration = Duration::from_secs(5);

/// The RP-Initiated Logout 1.0 §2 parameters keygate reads (`ui_locales`
/// and `logout_hint` are ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogoutRequest {
    /// `id_token_hint`
    pub id_token_hint: Option<String>,
    /// `client_id`
    pub client_id: Option<String>,
    /// `post_logout_redirect_uri`
    pub post_logout_redirect_uri: Option<String>,
    /// `state`
    pub state: Option<String>,
}

/// A logout request that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedLogout {
    /// Where to send the user afterwards (the registered
    /// `post_logout_redirect_uri` with `state`), if anywhere.
    pub redirect: Option<String>,
    /// The `sub` of a valid `id_token_hint`.
    pub hint_sub: Option<String>,
}

impl CheckedLogout {
    /// RP-Initiated Logout 1.0 §2: the OP may log out without asking when
    /// the `id_token_hint` names the signed-in user.
    pub fn hint_names(&self, session: &Session) -> bool {
        self.hint_sub.as_deref() == Some(session.user_id.as_str())
    }
}

/// Why a logout request is refused: shown to the user on an error page,
/// never a redirect (the redirect target is not trusted).
#[derive(Debug, thiserror::Error)]
pub enum LogoutError {
    /// The request is invalid (bad hint, unregistered URI, …).
    #[error("{0}")]
    Invalid(&'static str),
    /// An internal fault.
    #[error(transparent)]
    Flow(#[from] FlowError),
}

/// RP-Initiated Logout 1.0 §2–§3 checks, in order: the `id_token_hint`
/// verifies with keygate's keys and names keygate as `iss` (an expired one
/// is accepted); its `aud` and `client_id` agree when both are given; a
/// `post_logout_redirect_uri` needs a client (from the hint or `client_id`)
/// that registered it exactly.
pub async fn check(state: &AppState, req: &LogoutRequest) -> Result<CheckedLogout, LogoutError> {
    let hint = match req.id_token_hint.as_deref().filter(|h| !h.is_empty()) {
        None => None,
        Some(h) => {
            let keys = state.keys.current();
            match jwt::verify_id_token_hint(&keys, h, &state.cfg.issuer) {
                Ok(hint) => Some(hint),
                Err(e) => {
                    tracing::info!(event = "logout_refused", reason = %e, "id_token_hint refused");
                    return Err(LogoutError::Invalid(
                        "The id_token_hint is not an ID token issued by this server.",
                    ));
                }
            }
        }
    };
    let client_id = req.client_id.as_deref().filter(|c| !c.is_empty());
    if let (Some(h), Some(c)) = (&hint, client_id) {
        if h.aud != c {
            return Err(LogoutError::Invalid(
                "The client_id does not match the id_token_hint's audience.",
            ));
        }
    }
    let client_id = client_id.or(hint.as_ref().map(|h| h.aud.as_str()));
    let redirect = match req.post_logout_redirect_uri.as_deref() {
        None | Some("") => None,
        Some(uri) => {
            let Some(client_id) = client_id else {
                return Err(LogoutError::Invalid(
                    "A post_logout_redirect_uri needs an id_token_hint or a client_id.",
                ));
            };
            let client = super::token::find_client(state, client_id).await?;
            if !client.is_some_and(|c| c.has_post_logout_redirect_uri(uri)) {
                return Err(LogoutError::Invalid(
                    "The post_logout_redirect_uri is not registered for this client.",
                ));
            }
            Some(with_state(uri, req.state.as_deref()))
        }
    };
    Ok(CheckedLogout {
        redirect,
        hint_sub: hint.map(|h| h.sub),
    })
}

/// `uri` with `state` added to its query (RP-Initiated Logout 1.0 §3).
fn with_state(uri: &str, state: Option<&str>) -> String {
    match (state, url::Url::parse(uri)) {
        (Some(s), Ok(mut u)) => {
            u.query_pairs_mut().append_pair("state", s);
            u.into()
        }
        _ => uri.to_string(),
    }
}

/// Records that `client_id` was issued a code in `session`, for
/// back-channel logout; kept as long as the session lives.
pub async fn record_client(
    state: &AppState,
    session: &Session,
    client_id: &str,
) -> Result<(), FlowError> {
    if session.sid.is_empty() {
        return Ok(());
    }
    let ttl = session.expires_at - state.clock.now();
    state
        .repos
        .add_session_client(&session.sid, client_id, ttl)
        .await?;
    Ok(())
}

/// Ends the session of cookie value `cookie` (its store record deleted) and
/// starts the back-channel logout of the clients recorded for it. Returns
/// at once: deliveries run on their own tasks.
pub async fn end(state: &AppState, cookie: &str, session: &Session) -> Result<(), FlowError> {
    super::users::end_session(state, cookie).await?;
    tracing::info!(event = "logout", user_id = %session.user_id, "session ended");
    if session.sid.is_empty() {
        return Ok(());
    }
    let client_ids = state.repos.take_session_clients(&session.sid).await?;
    let now = state.clock.now();
    for client_id in client_ids {
        let Some(client) = super::token::find_client(state, &client_id).await? else {
            continue;
        };
        let Some(uri) = client.backchannel_logout_uri else {
            continue;
        };
        if check_backchannel_uri(&uri).is_err() {
            continue;
        }
        let claims = LogoutClaims::new(
            &state.cfg.issuer,
            &client_id,
            &session.user_id,
            Some(&session.sid),
            now,
            crate::ids::jti(),
        );
        let keys = state.keys.current();
        let token = jwt::sign_logout_token(keys.signer_at(now), &claims)?;
        let metrics = state.metrics.clone();
        tokio::spawn(async move {
            if !deliver(&uri, &token).await {
                metrics.backchannel_logout_failures.inc();
                tracing::warn!(event = "backchannel_logout_failed", client_id = %client_id, tries = TRIES, "back-channel logout not delivered");
            }
        });
    }
    Ok(())
}

/// The HTTP client of back-channel deliveries: no redirects, no proxy,
/// [`TRY_TIMEOUT`]; built once per process (its connection pool is shared).
fn http() -> Option<&'static reqwest::Client> {
    static HTTP: OnceLock<Option<reqwest::Client>> = OnceLock::new();
    HTTP.get_or_init(|| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(TRY_TIMEOUT)
            .connect_timeout(TRY_TIMEOUT)
            .build()
            .ok()
    })
    .as_ref()
}

/// POSTs `logout_token=<token>` (Back-Channel Logout 1.0 §2.5) up to
/// [`TRIES`] times; a 2xx answer is a success (§2.8: 200, or 204).
async fn deliver(uri: &str, token: &str) -> bool {
    let Some(http) = http() else {
        return false;
    };
    for attempt in 0..TRIES {
        if attempt > 0 {
            tokio::time::sleep(BACKOFF[attempt - 1]).await;
        }
        let sent = http
            .post(uri)
            .header(reqwest::header::CACHE_CONTROL, "no-store")
            .form(&[("logout_token", token)])
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => return true,
            Ok(r) => {
                tracing::info!(
                    event = "backchannel_logout_retry",
                    status = r.status().as_u16(),
                    attempt,
                    "back-channel logout answered with an error"
                );
            }
            Err(e) => {
                tracing::info!(
                    event = "backchannel_logout_retry",
                    timeout = e.is_timeout(),
                    attempt,
                    "back-channel logout request failed"
                );
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_added_to_the_query() {
        assert_eq!(
            with_state("https://rp.example/bye?x=1", Some("a b")),
            "https://rp.example/bye?x=1&state=a+b"
        );
        assert_eq!(
            with_state("https://rp.example/bye", None),
            "https://rp.example/bye"
        );
    }
}
