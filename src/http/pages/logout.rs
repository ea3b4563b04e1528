//! OpenID Connect RP-Initiated Logout 1.0 at `GET|POST /oauth/logout`
//! (`end_session_endpoint`), and the site's own sign-out button
//! (`POST /logout`): both end the session through `flows::logout::end`,
//! which also starts the back-channel logouts.
//!
//! Without an `id_token_hint` naming the signed-in user, the user confirms
//! on a page whose form posts the hidden `csrf_token`, the request's
//! parameters and `decision=logout` or `decision=cancel` (SPEC.md). Cancel
//! goes to the home page and keeps the session.
//! Must not depend on the other features' files (only on the kit).

use askama::Template;
use poem::http::StatusCode;
use poem::web::{CsrfToken, CsrfVerifier, Data, Form, Query};
use poem::{handler, Request, Response};
use serde::Deserialize;

use super::kit::{
    current_session, nav_for, render, see_other, session_cookie, CsrfForm, Nav, NoFields,
    PageError, SESSION_COOKIE,
};
use crate::flows::logout::{self as flow, LogoutError, LogoutRequest};
use crate::http::errors;
use crate::state::AppState;
use crate::store::repos::Session;

/// The confirmation page ("Sign out of keygate?") and the "You are signed
/// out" page, one template.
#[derive(Debug, Template)]
#[template(path = "logout.html")]
pub struct LogoutPage {
    /// Site header.
    pub nav: Nav,
    /// Whether this is the confirmation form (else: signed out).
    pub confirm: bool,
    /// CSRF token of the confirmation form.
    pub csrf_token: String,
    /// The request's parameters, echoed in hidden fields.
    pub id_token_hint: String,
    /// `client_id`
    pub client_id: String,
    /// `post_logout_redirect_uri`
    pub post_logout_redirect_uri: String,
    /// `state`
    pub state: String,
}

/// The parameters of `/oauth/logout` (query or form); on the confirmation
/// form also `csrf_token` and `decision`.
#[derive(Debug, Default, Deserialize)]
pub struct LogoutParams {
    id_token_hint: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    csrf_token: Option<String>,
    decision: Option<String>,
}

impl From<LogoutError> for PageError {
    fn from(e: LogoutError) -> Self {
        if let LogoutError::Flow(f) = e {
            return f.into();
        }
        let (status, title, message) = errors::logout_page_error(&e);
        PageError::new(status, title, message)
    }
}

/// `GET /oauth/logout`
#[handler]
pub async fn logout_get(
    state: Data<&AppState>,
    req: &Request,
    csrf: &CsrfToken,
    Query(p): Query<LogoutParams>,
) -> Result<Response, PageError> {
    answer(&state, req, csrf, p, None).await
}

/// `POST /oauth/logout`: an RP's form-serialised request, or the
/// confirmation form (with `decision`, whose `csrf_token` must verify).
#[handler]
pub async fn logout_post(
    state: Data<&AppState>,
    req: &Request,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Form(p): Form<LogoutParams>,
) -> Result<Response, PageError> {
    let decision = match p.decision.clone() {
        None => None,
        Some(d)
            if p.csrf_token
                .as_deref()
                .is_some_and(|t| verifier.is_valid(t)) =>
        {
            Some(d)
        }
        Some(_) => return Err(PageError::csrf_failed()),
    };
    answer(&state, req, csrf, p, decision).await
}

async fn answer(
    state: &AppState,
    req: &Request,
    csrf: &CsrfToken,
    p: LogoutParams,
    decision: Option<String>,
) -> Result<Response, PageError> {
    let lr = LogoutRequest {
        id_token_hint: p.id_token_hint,
        client_id: p.client_id,
        post_logout_redirect_uri: p.post_logout_redirect_uri,
        state: p.state,
    };
    let checked = flow::check(state, &lr).await?;
    let session = current_session(state, req).await?;
    match (decision.as_deref(), &session) {
        (Some("cancel"), _) => return Ok(see_other("/")),
        (Some("logout"), Some(s)) => end(state, req, s).await?,
        (Some("logout"), None) => {}
        (Some(_), _) => {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                "Invalid request",
                "Choose to sign out or to stay signed in.",
            ))
        }
        (None, Some(s)) if checked.hint_names(s) => end(state, req, s).await?,
        (None, Some(s)) => {
            let page = LogoutPage {
                nav: nav_for(state, Some(s), csrf),
                confirm: true,
                csrf_token: csrf.0.clone(),
                id_token_hint: lr.id_token_hint.unwrap_or_default(),
                client_id: lr.client_id.unwrap_or_default(),
                post_logout_redirect_uri: lr.post_logout_redirect_uri.unwrap_or_default(),
                state: lr.state.unwrap_or_default(),
            };
            return Ok(render(&page, StatusCode::OK));
        }
        (None, None) => {}
    }
    Ok(match checked.redirect {
        Some(to) => see_other(&to),
        None => signed_out(state, csrf),
    })
}

/// Ends the session and clears the cookie.
async fn end(state: &AppState, req: &Request, s: &Session) -> Result<(), PageError> {
    if let Some(cookie) = req.cookie().get(SESSION_COOKIE) {
        flow::end(state, cookie.value_str(), s).await?;
    }
    req.cookie()
        .add(session_cookie(state, "", std::time::Duration::ZERO));
    Ok(())
}

/// "You are signed out".
fn signed_out(state: &AppState, csrf: &CsrfToken) -> Response {
    let page = LogoutPage {
        nav: nav_for(state, None, csrf),
        confirm: false,
        csrf_token: String::new(),
        id_token_hint: String::new(),
        client_id: String::new(),
        post_logout_redirect_uri: String::new(),
        state: String::new(),
    };
    render(&page, StatusCode::OK)
}

/// `POST /logout` (the sign-out button; posts only `csrf_token`): the same
/// logout as `/oauth/logout`, back-channel included, then home.
#[handler]
pub async fn sign_out(
    state: Data<&AppState>,
    req: &Request,
    CsrfForm(NoFields {}): CsrfForm<NoFields>,
) -> Result<Response, PageError> {
    match current_session(&state, req).await? {
        Some(s) => end(&state, req, &s).await?,
        None => req
            .cookie()
            .add(session_cookie(&state, "", std::time::Duration::ZERO)),
    }
    Ok(see_other("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::pages::testing::{form, names, nav_in, XSS};

    fn confirm_page(value: &str) -> LogoutPage {
        LogoutPage {
            nav: nav_in("alice"),
            confirm: true,
            csrf_token: "tok-123".into(),
            id_token_hint: value.into(),
            client_id: value.into(),
            post_logout_redirect_uri: value.into(),
            state: value.into(),
        }
    }

    /// SPEC.md: the confirmation form posts the hidden `csrf_token` and
    /// `decision=logout` or `decision=cancel`, with the request echoed,
    /// escaped, in hidden fields.
    #[test]
    fn confirmation_form_contract_and_escaping() {
        let html = confirm_page(XSS).render().unwrap();
        let f = form(&html, "<form method=\"post\" action=\"/oauth/logout\"");
        let mut got = names(f);
        got.sort_unstable();
        assert_eq!(
            got,
            [
                "client_id",
                "csrf_token",
                "decision",
                "decision",
                "id_token_hint",
                "post_logout_redirect_uri",
                "state"
            ]
        );
        assert!(f.contains("value=\"tok-123\""));
        assert!(f.contains("name=\"decision\" value=\"logout\""));
        assert!(f.contains("name=\"decision\" value=\"cancel\""));
        assert!(!html.contains(XSS));
        let out = LogoutPage {
            confirm: false,
            ..confirm_page("")
        }
        .render()
        .unwrap();
        assert!(out.contains("You are signed out"));
        assert!(!out.contains("action=\"/oauth/logout\""));
    }
}
