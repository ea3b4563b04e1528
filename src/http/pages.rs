//! Server-rendered pages: home, sign-up, login, logout and the authorization
//! endpoint with its consent form. Handlers map requests to flows and flows'
//! answers to pages or redirects; the protocol rules live in `oauth::authorize`.

use poem::http::StatusCode;
use poem::web::cookie::{Cookie, SameSite};
use poem::web::{CsrfToken, CsrfVerifier, Data, Form, Query};
use poem::{handler, Request, Response};
use serde::Deserialize;

use super::views::{
    render, secure_html_headers, ConsentPage, ErrorPage, HomePage, LoginPage, Nav, ScopeView,
    SignupPage,
};
use crate::flows::authorize::{approve, check, deny, Refusal};
use crate::flows::users;
use crate::flows::FlowError;
use crate::limits::RetryAfter;
use crate::oauth::authorize::{error_redirect_url, AuthorizeError, ValidRequest};
use crate::state::AppState;
use crate::store::repos::{Session, User};

/// The login session cookie (HttpOnly, SameSite=Lax, Secure with an https issuer).
pub const SESSION_COOKIE: &str = "kg_session";

/// The navigation bar for a page.
pub fn nav_for(state: &AppState, session: Option<&Session>, csrf: &CsrfToken) -> Nav {
    Nav {
        username: session.map(|s| s.username.clone()),
        csrf_token: csrf.0.clone(),
        signup_enabled: state.cfg.ui.signup,
    }
}

/// A 303 redirect carrying the page security headers.
pub fn see_other(location: &str) -> Response {
    let mut resp = Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header("Location", location)
        .finish();
    secure_html_headers(&mut resp);
    resp
}

/// An error page.
pub fn error_page(
    state: &AppState,
    csrf: &CsrfToken,
    status: StatusCode,
    title: &str,
    message: &str,
) -> Response {
    render(
        &ErrorPage {
            nav: nav_for(state, None, csrf),
            status: status.as_u16(),
            title: title.to_string(),
            message: message.to_string(),
        },
        status,
    )
}

/// The page for a flow failure (503 for the store, 500 otherwise).
pub fn flow_error_page(state: &AppState, csrf: &CsrfToken, e: FlowError) -> Response {
    match e {
        FlowError::Store(cause) => {
            tracing::error!(error = %cause, "store unavailable");
            error_page(
                state,
                csrf,
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "The sign-in service cannot reach its storage right now. Please try again in a moment.",
            )
        }
        other => {
            tracing::error!(error = %other, "page failed");
            error_page(
                state,
                csrf,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Please try again.",
            )
        }
    }
}

/// 429 with `Retry-After` for a rate-limited form post.
pub fn too_many_attempts(state: &AppState, csrf: &CsrfToken, retry_after: u64) -> Response {
    let mut resp = error_page(
        state,
        csrf,
        StatusCode::TOO_MANY_REQUESTS,
        "Too many attempts",
        &format!(
            "Too many sign-in attempts for this account. Wait {retry_after} seconds and try again."
        ),
    );
    resp.headers_mut()
        .insert(poem::http::header::RETRY_AFTER, retry_after.into());
    resp
}

/// Whether a posted `csrf_token` matches the request's CSRF cookie.
pub fn csrf_valid(verifier: &CsrfVerifier, token: Option<&str>) -> bool {
    token.is_some_and(|t| verifier.is_valid(t))
}

/// The page for a failed CSRF check.
pub fn csrf_failed(state: &AppState, csrf: &CsrfToken) -> Response {
    error_page(
        state,
        csrf,
        StatusCode::FORBIDDEN,
        "This form has expired",
        "For your security the form could not be accepted. Go back, reload the page and try again.",
    )
}

/// Only same-site paths are followed after login (no open redirector).
fn safe_return_to(raw: Option<&str>) -> String {
    match raw {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.starts_with("/\\")
                && p.len() <= 4096
                && !p.contains(['\r', '\n']) =>
        {
            p.to_string()
        }
        _ => "/".to_string(),
    }
}

/// The session of the request's cookie, if live.
pub async fn current_session(
    state: &AppState,
    req: &Request,
) -> Result<Option<(String, Session)>, FlowError> {
    let Some(cookie) = req.cookie().get(SESSION_COOKIE) else {
        return Ok(None);
    };
    let sid = cookie.value_str().to_string();
    Ok(users::session(state, &sid).await?.map(|s| (sid, s)))
}

fn session_cookie(state: &AppState, value: &str, max_age: std::time::Duration) -> Cookie {
    let mut c = Cookie::new_with_str(SESSION_COOKIE, value);
    c.set_http_only(true);
    c.set_same_site(SameSite::Lax);
    c.set_secure(state.cfg.issuer.starts_with("https://"));
    c.set_path("/");
    c.set_max_age(max_age);
    c
}

/// Starts a session for `user`, sets the cookie and goes to `return_to`.
async fn sign_in(
    state: &AppState,
    req: &Request,
    csrf: &CsrfToken,
    user: &User,
    return_to: &str,
) -> Response {
    match users::start_session(state, user).await {
        Ok(sid) => {
            let ttl = state.cfg.session.ttl;
            req.cookie().add(session_cookie(state, &sid, ttl));
            see_other(return_to)
        }
        Err(e) => flow_error_page(state, csrf, e),
    }
}

/// `GET /`
#[handler]
pub async fn home(state: Data<&AppState>, req: &Request, csrf: &CsrfToken) -> Response {
    let session = current_session(&state, req).await.ok().flatten();
    render(
        &HomePage {
            nav: nav_for(&state, session.as_ref().map(|(_, s)| s), csrf),
            issuer: state.cfg.issuer.clone(),
        },
        StatusCode::OK,
    )
}

/// `?return_to=` on the login and sign-up pages.
#[derive(Debug, Deserialize)]
pub struct ReturnTo {
    return_to: Option<String>,
}

/// `GET /login`
#[handler]
pub async fn login_form(
    state: Data<&AppState>,
    csrf: &CsrfToken,
    Query(q): Query<ReturnTo>,
) -> Response {
    render(
        &LoginPage {
            nav: nav_for(&state, None, csrf),
            csrf_token: csrf.0.clone(),
            return_to: safe_return_to(q.return_to.as_deref()),
            username: String::new(),
            error: None,
        },
        StatusCode::OK,
    )
}

/// The login form (SPEC.md form contract).
#[derive(Deserialize)]
pub struct LoginForm {
    username: Option<String>,
    password: Option<String>,
    csrf_token: Option<String>,
    return_to: Option<String>,
}

/// `POST /login`
#[handler]
pub async fn login(
    state: Data<&AppState>,
    req: &Request,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Form(f): Form<LoginForm>,
) -> Response {
    if !csrf_valid(verifier, f.csrf_token.as_deref()) {
        return csrf_failed(&state, csrf);
    }
    let return_to = safe_return_to(f.return_to.as_deref());
    let username = f.username.unwrap_or_default();
    let password = f.password.unwrap_or_default();
    // Before argon2: a refused guess must cost (almost) nothing. The peer is
    // the TCP peer; X-Forwarded-For is not trusted (README "Rate limits and slow clients").
    let peer = req.remote_addr().as_socket_addr().map(|a| a.ip());
    if let Err(RetryAfter(secs)) = state.limits.check_login(peer, &username) {
        return too_many_attempts(&state, csrf, secs);
    }
    let user = match users::authenticate(&state, username.trim(), password).await {
        Ok(u) => u,
        Err(e) => return flow_error_page(&state, csrf, e),
    };
    let Some(user) = user else {
        return render(
            &LoginPage {
                nav: nav_for(&state, None, csrf),
                csrf_token: csrf.0.clone(),
                return_to,
                username,
                error: Some("Incorrect username or password.".into()),
            },
            StatusCode::UNAUTHORIZED,
        );
    };
    sign_in(&state, req, csrf, &user, &return_to).await
}

/// `GET /signup`
#[handler]
pub async fn signup_form(
    state: Data<&AppState>,
    csrf: &CsrfToken,
    Query(q): Query<ReturnTo>,
) -> Response {
    if !state.cfg.ui.signup {
        return error_page(
            &state,
            csrf,
            StatusCode::NOT_FOUND,
            "Sign-up is closed",
            "Ask an administrator for an account.",
        );
    }
    render(
        &SignupPage {
            nav: nav_for(&state, None, csrf),
            csrf_token: csrf.0.clone(),
            return_to: safe_return_to(q.return_to.as_deref()),
            username: String::new(),
            email: String::new(),
            error: None,
        },
        StatusCode::OK,
    )
}

/// The sign-up form.
#[derive(Deserialize)]
pub struct SignupForm {
    username: Option<String>,
    email: Option<String>,
    password: Option<String>,
    csrf_token: Option<String>,
    return_to: Option<String>,
}

/// `POST /signup`
#[handler]
pub async fn signup(
    state: Data<&AppState>,
    req: &Request,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Form(f): Form<SignupForm>,
) -> Response {
    if !state.cfg.ui.signup {
        return error_page(
            &state,
            csrf,
            StatusCode::NOT_FOUND,
            "Sign-up is closed",
            "Ask an administrator for an account.",
        );
    }
    if !csrf_valid(verifier, f.csrf_token.as_deref()) {
        return csrf_failed(&state, csrf);
    }
    let return_to = safe_return_to(f.return_to.as_deref());
    let username = f.username.unwrap_or_default().trim().to_string();
    let email = f
        .email
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty());
    let result = users::create_user(
        &state,
        &username,
        email.clone(),
        f.password.unwrap_or_default(),
    )
    .await;
    let user = match result {
        Ok(u) => u,
        Err(users::SignupError::Flow(e)) => return flow_error_page(&state, csrf, e),
        Err(e) => {
            return render(
                &SignupPage {
                    nav: nav_for(&state, None, csrf),
                    csrf_token: csrf.0.clone(),
                    return_to,
                    username,
                    email: email.unwrap_or_default(),
                    error: Some(e.to_string()),
                },
                StatusCode::BAD_REQUEST,
            )
        }
    };
    sign_in(&state, req, csrf, &user, &return_to).await
}

/// The logout form.
#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf_token: Option<String>,
}

/// `POST /logout`
#[handler]
pub async fn logout(
    state: Data<&AppState>,
    req: &Request,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if !csrf_valid(verifier, f.csrf_token.as_deref()) {
        return csrf_failed(&state, csrf);
    }
    if let Some(cookie) = req.cookie().get(SESSION_COOKIE) {
        if let Err(e) = users::end_session(&state, cookie.value_str()).await {
            return flow_error_page(&state, csrf, e);
        }
    }
    req.cookie()
        .add(session_cookie(&state, "", std::time::Duration::ZERO));
    see_other("/")
}

fn query_pairs(req: &Request) -> Vec<(String, String)> {
    form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// Answers a refused authorization request: an error page for problems with
/// the client or redirect URI (never a redirect), a redirect otherwise.
fn refusal(state: &AppState, csrf: &CsrfToken, r: Refusal) -> Response {
    match r {
        Refusal::Authorize(AuthorizeError::ShowToUser { title, message }) => {
            error_page(state, csrf, StatusCode::BAD_REQUEST, title, &message)
        }
        Refusal::Authorize(AuthorizeError::Redirect { target, error }) => {
            see_other(&error_redirect_url(&target, &error, &state.cfg.issuer))
        }
        Refusal::Flow(e) => flow_error_page(state, csrf, e),
    }
}

fn consent_page(
    state: &AppState,
    req: &Request,
    csrf: &CsrfToken,
    session: &Session,
    valid: &ValidRequest,
    client_name: &str,
) -> Response {
    let redirect_host = url::Url::parse(&valid.target.uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let action = match req.uri().query() {
        Some(q) => format!("/oauth/authorize?{q}"),
        None => "/oauth/authorize".into(),
    };
    render(
        &ConsentPage {
            nav: nav_for(state, Some(session), csrf),
            csrf_token: csrf.0.clone(),
            action,
            client_name: client_name.to_string(),
            client_id: valid.client_id.clone(),
            redirect_host,
            scopes: valid.scope.iter().map(ScopeView::for_scope).collect(),
        },
        StatusCode::OK,
    )
}

fn login_redirect(req: &Request) -> Response {
    let here = match req.uri().query() {
        Some(q) => format!("/oauth/authorize?{q}"),
        None => "/oauth/authorize".into(),
    };
    let to: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", &here)
        .finish();
    see_other(&format!("/login?{to}"))
}

/// `GET /oauth/authorize` (RFC 6749 §3.1): validate, then login or consent.
#[handler]
pub async fn authorize_get(state: Data<&AppState>, req: &Request, csrf: &CsrfToken) -> Response {
    let (valid, client) = match check(&state, &query_pairs(req)).await {
        Ok(v) => v,
        Err(r) => return refusal(&state, csrf, r),
    };
    match current_session(&state, req).await {
        Ok(Some((_, session))) => {
            consent_page(&state, req, csrf, &session, &valid, &client.client_name)
        }
        Ok(None) => login_redirect(req),
        Err(e) => flow_error_page(&state, csrf, e),
    }
}

/// The consent form (SPEC.md form contract).
#[derive(Deserialize)]
pub struct ConsentForm {
    csrf_token: Option<String>,
    decision: Option<String>,
}

/// `POST /oauth/authorize`: the consent decision.
#[handler]
pub async fn authorize_post(
    state: Data<&AppState>,
    req: &Request,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Form(f): Form<ConsentForm>,
) -> Response {
    if !csrf_valid(verifier, f.csrf_token.as_deref()) {
        return csrf_failed(&state, csrf);
    }
    let (valid, _) = match check(&state, &query_pairs(req)).await {
        Ok(v) => v,
        Err(r) => return refusal(&state, csrf, r),
    };
    let session = match current_session(&state, req).await {
        Ok(Some((_, s))) => s,
        Ok(None) => return login_redirect(req),
        Err(e) => return flow_error_page(&state, csrf, e),
    };
    match f.decision.as_deref() {
        Some("allow") => match approve(&state, &valid, &session.user_id).await {
            Ok(url) => see_other(&url),
            Err(e) => flow_error_page(&state, csrf, e),
        },
        Some("deny") => see_other(&deny(&state, &valid)),
        _ => error_page(
            &state,
            csrf,
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "Choose Allow or Deny.",
        ),
    }
}
