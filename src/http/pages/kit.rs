//! What every page shares: the [`Nav`] bar, the one [`render`] helper and the
//! security headers of HTML answers, the embedded stylesheet, 303 redirects,
//! the session cookie, and the page error type with its extractors:
//! [`SignedIn`] (the signed-in user, or the way to the login page),
//! [`CsrfForm`] (a posted form whose `csrf_token` poem's `CsrfVerifier`
//! accepted) and [`PageError`] (an early answer, rendered through
//! `templates/error.html` by the [`error_pages`] layer).
//!
//! Handlers return `Result<Response, PageError>` and use `?`: the flows'
//! errors become pages through the one mapping in [`PageError`]'s `From`
//! impls. The kit knows no feature: it must not depend on the feature files
//! beside it.

use std::borrow::Cow;
use std::future::Future;
use std::time::Duration;

use askama::Template;
use poem::error::ResponseError;
use poem::http::{header, HeaderValue, StatusCode};
use poem::web::cookie::{Cookie, SameSite};
use poem::web::{CsrfToken, CsrfVerifier, Data, Form};
use poem::{Endpoint, EndpointExt, FromRequest, IntoResponse, Request, RequestBody, Response};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::flows::clients::ClientError;
use crate::flows::users;
use crate::flows::FlowError;
use crate::http::errors::{self, PageErrorParts};
use crate::state::AppState;
use crate::store::repos::{Session, User};

/// The login session cookie (HttpOnly, SameSite=Lax, Secure with an https issuer).
pub const SESSION_COOKIE: &str = "kg_session";

/// The stylesheet served at `/static/style.css`, embedded at compile time so
/// the binary needs no files next to it.
pub const STYLESHEET: &str = include_str!("../../../static/style.css");

/// `Content-Security-Policy` of every HTML page.
///
/// There is deliberately no `form-action`: the consent form's POST answers
/// with a redirect to the client's origin, and Chrome applies `form-action` to
/// the redirect target as well, which would block the OAuth flow.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; \
     img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'";

/// Body of the last-resort 500 page, used when a template fails to render (a
/// static string: no user input can reach it).
const RENDER_FAILURE_PAGE: &str = "<!doctype html>\n<html lang=\"en\"><head>\
<meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>Server error · keygate</title></head><body><h1>Something went wrong</h1>\
<p>The page could not be displayed. Please try again later.</p>\
<p><a href=\"/\">Go to the home page</a></p></body></html>\n";

/// The site header shown on every page (rendered by `base.html`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Nav {
    /// Name of the signed-in user; `None` shows the sign-in links instead of
    /// the sign-out button.
    pub username: Option<String>,
    /// CSRF token for the sign-out form (poem `CsrfToken`). Pass the same token
    /// the page's own form uses: a page may then hold two `csrf_token` fields.
    pub csrf_token: String,
    /// Whether self-service sign-up is open; shows the `/signup` link.
    pub signup_enabled: bool,
}

/// The navigation bar for a page.
pub fn nav_for(state: &AppState, session: Option<&Session>, csrf: &CsrfToken) -> Nav {
    Nav {
        username: session.map(|s| s.username.clone()),
        csrf_token: csrf.0.clone(),
        signup_enabled: state.cfg.ui.signup,
    }
}

/// Any error shown to the user (unknown client, bad `redirect_uri`, 404, …).
/// Deliberately offers only a link home, never a link to an untrusted URI
/// (RFC 6749 §4.1.2.1).
#[derive(Debug, Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    /// Site header.
    pub nav: Nav,
    /// HTTP status code, shown in small print.
    pub status: u16,
    /// Short headline, e.g. "Unknown client".
    pub title: String,
    /// One or two sentences explaining what happened and what to do.
    pub message: String,
    /// What the request sent, when it helps to see it (the `client_id`
    /// and `redirect_uri` of a refused authorization request): label and
    /// value, the value already cut to [`DETAIL_MAX_CHARS`] (untrusted:
    /// escaped, shown as code, never a link).
    pub details: Vec<(String, String)>,
}

/// The longest value shown in an error page's details; longer values are
/// cut and end with "…".
pub const DETAIL_MAX_CHARS: usize = 200;

/// `value` cut to [`DETAIL_MAX_CHARS`] characters (with "…" when cut), for
/// an error page's details.
pub fn detail_value(value: &str) -> String {
    if value.chars().count() <= DETAIL_MAX_CHARS {
        return value.to_string();
    }
    let mut cut: String = value.chars().take(DETAIL_MAX_CHARS).collect();
    cut.push('…');
    cut
}

/// Renders `page` into an HTML response with `status`, `Content-Type:
/// text/html; charset=utf-8` and the [`secure_html_headers`]. A render failure
/// is logged and becomes a plain 500 page.
pub fn render<T: Template>(page: &T, status: StatusCode) -> Response {
    let (status, body) = match page.render() {
        Ok(body) => (status, body),
        Err(err) => {
            tracing::error!(
                error = %err,
                template = std::any::type_name::<T>(),
                "failed to render HTML template"
            );
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                RENDER_FAILURE_PAGE.to_string(),
            )
        }
    };
    let mut resp = Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .body(body);
    secure_html_headers(&mut resp);
    resp
}

/// Sets the headers every HTML page carries: the strict
/// [`CONTENT_SECURITY_POLICY`], `X-Frame-Options: DENY` (clickjacking on the
/// consent page), `Referrer-Policy: no-referrer` (authorization URLs must not
/// leak to other sites), `Cache-Control: no-store` (pages hold CSRF tokens and
/// personal data) and `X-Content-Type-Options: nosniff`.
pub fn secure_html_headers(resp: &mut Response) {
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// Lets `resp` (an HTML page) load images from `origin` too (an
/// `https://host[:port]` serialised origin, e.g. a client's logo on the
/// consent page): the [`CONTENT_SECURITY_POLICY`] with that origin added to
/// `img-src`, nothing else loosened. A value that cannot be a header leaves
/// the policy as it was.
pub fn allow_images_from(resp: &mut Response, origin: &str) {
    if !origin.starts_with("https://") || origin.contains([';', ' ', ',', '\'', '"']) {
        return;
    }
    let policy = CONTENT_SECURITY_POLICY.replace(
        "img-src 'self' data:",
        &format!("img-src 'self' data: {origin}"),
    );
    if let Ok(value) = HeaderValue::from_str(&policy) {
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
}

/// `GET /static/style.css`: the embedded [`STYLESHEET`], cacheable for an hour.
#[poem::handler]
pub fn stylesheet() -> Response {
    Response::builder()
        .content_type("text/css; charset=utf-8")
        .header(header::CACHE_CONTROL, "public, max-age=3600")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .body(STYLESHEET)
}

/// The page for a path no route serves (404), for browsers: the router
/// calls it, wrapped like every page, when nothing else matched.
#[poem::handler]
pub fn not_found() -> Result<Response, PageError> {
    Err(PageError::not_found())
}

/// A 303 redirect carrying the page security headers (a form post is never
/// answered with 307: RFC 9700 §4.12).
pub fn see_other(location: &str) -> Response {
    // A value that cannot be a header (control characters) would drop the
    // header and leave a 303 without `Location`: go home instead.
    let location = HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/"));
    let mut resp = Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, location)
        .finish();
    secure_html_headers(&mut resp);
    resp
}

/// Where to go after login or sign-up: `raw` resolved against the issuer
/// the way a browser resolves a `Location` (WHATWG URL parsing with the `url`
/// crate: tabs and newlines removed, `\\` read as `/`, dot segments applied),
/// kept only when it stays on the issuer's origin, and returned as the
/// normalised path and query (percent-encoded, so always a valid header
/// value). Anything else — another origin, a protocol-relative result
/// (`//host`), an unparsable or over-long value — is `/`, so the answer is
/// never an open redirect (RFC 9700 §4.11) nor a redirect without `Location`.
pub fn safe_return_to(issuer: &str, raw: Option<&str>) -> String {
    const HOME: &str = "/";
    let Some(raw) = raw.filter(|r| r.len() <= 4096) else {
        return HOME.into();
    };
    let Ok(base) = url::Url::parse(issuer) else {
        return HOME.into();
    };
    let Ok(target) = base.join(raw) else {
        return HOME.into();
    };
    // The path must not start with `//`: sent back as a `Location`, it would
    // be read as a protocol-relative URL naming another host.
    if target.origin() != base.origin() || target.path().starts_with("//") {
        return HOME.into();
    }
    match target.query() {
        Some(q) => format!("{}?{q}", target.path()),
        None => target.path().to_string(),
    }
}

/// The session of the request's cookie, if live.
pub async fn current_session(
    state: &AppState,
    req: &Request,
) -> Result<Option<Session>, FlowError> {
    let Some(cookie) = req.cookie().get(SESSION_COOKIE) else {
        return Ok(None);
    };
    users::session(state, cookie.value_str()).await
}

/// The session cookie carrying `value` (an empty value with a zero
/// `max_age` removes it).
pub fn session_cookie(state: &AppState, value: &str, max_age: Duration) -> Cookie {
    let mut c = Cookie::new_with_str(SESSION_COOKIE, value);
    c.set_http_only(true);
    c.set_same_site(SameSite::Lax);
    c.set_secure(state.cfg.issuer.starts_with("https://"));
    c.set_path("/");
    c.set_max_age(max_age);
    c
}

/// Starts a session for `user`, sets the cookie and goes to `return_to`.
pub async fn sign_in(
    state: &AppState,
    req: &Request,
    user: &User,
    return_to: &str,
) -> Result<Response, PageError> {
    let sid = users::start_session(state, user).await?;
    let ttl = state.cfg.session.ttl;
    req.cookie().add(session_cookie(state, &sid, ttl));
    Ok(see_other(return_to))
}

/// An answer that ends a page handler early: an error page rendered through
/// `templates/error.html`, or a 303 redirect (to the login page, or an
/// authorization error sent back to the client).
///
/// [`error_pages`] renders it with the request's [`Nav`] and CSRF token:
/// `IntoResponse` cannot see the request, so the error is only the content
/// and the layer around every page route adds the rest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// `templates/error.html` with this status.
    #[error("{status}: {title}")]
    Page {
        /// The HTTP status of the page.
        status: StatusCode,
        /// The headline.
        title: Cow<'static, str>,
        /// What happened and what to do.
        message: Cow<'static, str>,
        /// `Retry-After` seconds, for a rate-limited post.
        retry_after: Option<u64>,
        /// What the request sent, shown under the message
        /// ([`ErrorPage::details`]).
        details: Vec<(String, String)>,
    },
    /// `303 See Other` to this location.
    #[error("redirect to {0}")]
    Redirect(String),
}

impl PageError {
    /// An error page.
    pub fn new(
        status: StatusCode,
        title: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::Page {
            status,
            title: title.into(),
            message: message.into(),
            retry_after: None,
            details: Vec::new(),
        }
    }

    /// This error page showing `details` (label, value as sent; values are
    /// cut with [`detail_value`]). A redirect is left as it is.
    pub fn with_details(mut self, sent: Vec<(&str, String)>) -> Self {
        if let Self::Page { details, .. } = &mut self {
            *details = sent
                .into_iter()
                .map(|(label, value)| (label.to_string(), detail_value(&value)))
                .collect();
        }
        self
    }

    /// The page for a path that names nothing (404).
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Page not found",
            "There is no page at this address. Check the link, or start again from the home page.",
        )
    }

    /// The page for a failed CSRF check.
    pub fn csrf_failed() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "For your security the form could not be accepted. Go back, reload the page and try again.",
        )
    }

    /// The page for a form posted a second time (its one-time nonce was
    /// used): the first post counted, this one did nothing.
    pub fn already_submitted() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "This form was already sent",
            "The same form was submitted twice: the first submission counted, this one changed nothing. Open your pages again to see the result.",
        )
    }

    /// 429 with `Retry-After` for a rate-limited sign-in or sign-up.
    pub fn too_many_attempts(retry_after: u64) -> Self {
        Self::Page {
            status: StatusCode::TOO_MANY_REQUESTS,
            title: "Too many attempts".into(),
            message: format!(
                "Too many attempts from here. Wait {retry_after} seconds and try again."
            )
            .into(),
            retry_after: Some(retry_after),
            details: Vec::new(),
        }
    }

    /// The way to the login page, coming back to this request's path and
    /// query after signing in.
    pub fn sign_in_first(req: &Request) -> Self {
        let here = match req.uri().query() {
            Some(q) => format!("{}?{q}", req.uri().path()),
            None => req.uri().path().to_string(),
        };
        let to: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("return_to", &here)
            .finish();
        Self::Redirect(format!("/login?{to}"))
    }

    /// The response, with `nav` in the page's header.
    pub fn render(self, nav: Nav) -> Response {
        match self {
            Self::Page {
                status,
                title,
                message,
                retry_after,
                details,
            } => {
                let page = ErrorPage {
                    nav,
                    status: status.as_u16(),
                    title: title.into_owned(),
                    message: message.into_owned(),
                    details,
                };
                let mut resp = render(&page, status);
                if let Some(secs) = retry_after {
                    resp.headers_mut().insert(header::RETRY_AFTER, secs.into());
                }
                resp
            }
            Self::Redirect(location) => see_other(&location),
        }
    }

    fn of_parts((status, title, message): PageErrorParts) -> Self {
        Self::new(status, title, message)
    }
}

/// The mapping itself lives in [`crate::http::errors`]; faults are logged
/// there once, with their cause chain.
impl From<FlowError> for PageError {
    fn from(e: FlowError) -> Self {
        if let FlowError::RateLimited(crate::limits::RetryAfter(secs)) = e {
            return Self::too_many_attempts(secs);
        }
        errors::log_fault(&e);
        Self::of_parts(errors::page_error(&e))
    }
}

impl From<ClientError> for PageError {
    fn from(e: ClientError) -> Self {
        if let ClientError::Store(cause) = e {
            return FlowError::Store(cause).into();
        }
        Self::of_parts(errors::client_page_error(&e))
    }
}

impl From<users::ProfileError> for PageError {
    fn from(e: users::ProfileError) -> Self {
        if let users::ProfileError::Flow(cause) = e {
            return cause.into();
        }
        Self::of_parts(errors::profile_page_error(&e))
    }
}

/// Lets a handler return `Result<Response, PageError>`. Outside
/// [`error_pages`] (a route wired without it) the page would lack the
/// sign-up link and sign-out token of the request, so every page route is
/// wrapped.
impl ResponseError for PageError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Page { status, .. } => *status,
            Self::Redirect(_) => StatusCode::SEE_OTHER,
        }
    }

    fn as_response(&self) -> Response {
        self.clone().render(Nav::default())
    }
}

/// Wraps a page endpoint so that a [`PageError`] from its extractors or its
/// handler becomes the error page (or redirect), with the request's CSRF
/// token, the sign-up setting and the signed-in user in its header as on
/// every other page (the session is read only when an error page is shown;
/// if that read fails the header shows the sign-in links). Other errors
/// (poem's own, e.g. an unparsable form) pass through unchanged. Apply it
/// inside poem's `Csrf` middleware, which provides the token.
pub fn error_pages<E: Endpoint + 'static>(ep: E) -> impl Endpoint<Output = Response> {
    ep.around(|ep, req| async move {
        let state = req.data::<AppState>().cloned();
        // The cookie jar exists wherever the state does (poem's `Csrf`
        // installs it); a bare endpoint in a unit test has neither.
        let cookie = state.as_ref().and_then(|_| {
            req.cookie()
                .get(SESSION_COOKIE)
                .map(|c| c.value_str().to_string())
        });
        let mut nav = Nav {
            username: None,
            csrf_token: req
                .extensions()
                .get::<CsrfToken>()
                .map(|t| t.0.clone())
                .unwrap_or_default(),
            signup_enabled: state.as_ref().is_some_and(|s| s.cfg.ui.signup),
        };
        match ep.call(req).await {
            Ok(resp) => Ok(resp.into_response()),
            Err(e) => {
                let page = e.downcast::<PageError>()?;
                if let (PageError::Page { .. }, Some(state), Some(cookie)) = (&page, state, cookie)
                {
                    if let Ok(Some(session)) = users::session(&state, &cookie).await {
                        nav.username = Some(session.username);
                    }
                }
                Ok(page.render(nav))
            }
        }
    })
}

/// The signed-in user, or [`PageError::sign_in_first`] (503 when the store
/// cannot be read).
pub async fn signed_in(state: &AppState, req: &Request) -> Result<Session, PageError> {
    current_session(state, req)
        .await?
        .ok_or_else(|| PageError::sign_in_first(req))
}

/// Extractor: the signed-in user's session; without one the page answers
/// with the way to the login page (see [`signed_in`]).
#[derive(Debug)]
pub struct SignedIn(pub Session);

impl<'a> FromRequest<'a> for SignedIn {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let state = <Data<&AppState>>::from_request_without_body(req).await?;
        Ok(Self(signed_in(&state, req).await?))
    }
}

/// A form a page posts: how it is read from the body, and its `csrf_token`.
///
/// Every `serde` form is one (read by poem's `Form`, which refuses a body that
/// is not `application/x-www-form-urlencoded`); a form that needs repeated
/// fields implements it by hand.
pub trait PostedForm: Sized + Send {
    /// Reads the form and its `csrf_token` from the request body.
    fn read(
        req: &Request,
        body: &mut RequestBody,
    ) -> impl Future<Output = poem::Result<(Option<String>, Self)>> + Send;
}

/// A serde form with the `csrf_token` field every page form posts.
#[derive(Deserialize)]
struct WithToken<T> {
    csrf_token: Option<String>,
    #[serde(flatten)]
    fields: T,
}

impl<T: DeserializeOwned + Send> PostedForm for T {
    async fn read(req: &Request, body: &mut RequestBody) -> poem::Result<(Option<String>, Self)> {
        let Form(form) = Form::<WithToken<T>>::from_request(req, body).await?;
        Ok((form.csrf_token, form.fields))
    }
}

/// A form without fields of its own (the logout form posts only `csrf_token`).
#[derive(Debug, Deserialize)]
pub struct NoFields {}

/// Extractor: a posted form whose `csrf_token` poem's `CsrfVerifier`
/// accepted; otherwise the page answers with [`PageError::csrf_failed`].
#[derive(Debug)]
pub struct CsrfForm<T>(pub T);

impl<'a, T: PostedForm> FromRequest<'a> for CsrfForm<T> {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let verifier = <&CsrfVerifier>::from_request_without_body(req).await?;
        let (token, form) = T::read(req, body).await?;
        if token.is_some_and(|t| verifier.is_valid(&t)) {
            Ok(Self(form))
        } else {
            Err(PageError::csrf_failed().into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::pages::testing::{consent, nav_out, XSS};

    /// Issue 12 item 1: `return_to` is decided as a browser would read it.
    #[test]
    fn return_to_stays_on_the_issuer_origin() {
        let issuer = "http://localhost:8080";
        for (raw, want) in [
            ("/clients", "/clients"),
            (
                "/oauth/authorize?client_id=c1&state=x",
                "/oauth/authorize?client_id=c1&state=x",
            ),
            ("http://localhost:8080/clients?a=1", "/clients?a=1"),
            ("/a/../clients", "/clients"),
            // WHATWG parsing strips TAB and newlines: these are `//evil.example/`
            ("/\t/evil.example/", "/"),
            ("/%09/evil.example/", "/%09/evil.example/"),
            ("/\n/evil.example/", "/"),
            ("\t//evil.example", "/"),
            ("//evil.example/x", "/"),
            ("/\\evil.example", "/"),
            ("\\\\evil.example", "/"),
            ("https://evil.example", "/"),
            ("http://localhost:8081/", "/"),
            ("javascript:alert(1)", "/"),
            ("/.//evil.example", "/"),
            ("", "/"),
        ] {
            assert_eq!(safe_return_to(issuer, Some(raw)), want, "{raw:?}");
        }
        assert_eq!(safe_return_to(issuer, None), "/");
        assert_eq!(safe_return_to(issuer, Some(&"/a".repeat(3000))), "/");
        // Control characters are percent-encoded, never a broken header.
        let encoded = safe_return_to(issuer, Some("/x\u{1}y z"));
        assert_eq!(encoded, "/x%01y%20z");
        assert!(HeaderValue::from_str(&encoded).is_ok());
    }

    /// Issue 16 item 5: what was sent is shown escaped and cut.
    #[test]
    fn error_page_details_are_escaped_and_cut() {
        let long = format!("https://app.example/{}", "a".repeat(400));
        let page = PageError::new(StatusCode::BAD_REQUEST, "Unknown application", "x")
            .with_details(vec![
                ("Client ID sent", XSS.to_string()),
                ("Redirect URI sent", long.clone()),
            ]);
        let PageError::Page { details, .. } = &page else {
            panic!("a page")
        };
        assert_eq!(details[1].1.chars().count(), DETAIL_MAX_CHARS + 1);
        assert!(details[1].1.ends_with('…'));
        let html = ErrorPage {
            nav: nav_out(),
            status: 400,
            title: "Unknown application".into(),
            message: "x".into(),
            details: details.clone(),
        }
        .render()
        .unwrap();
        assert!(!html.contains(XSS));
        assert!(html.contains("<dt>Client ID sent</dt>"));
        assert!(html.contains("<dd><code>&#60;script&#62;alert(1)&#60;/script&#62;</code></dd>"));
        assert!(html.contains(&format!(
            "<dd><code>{}…</code></dd>",
            &long[..DETAIL_MAX_CHARS]
        )));
        assert!(!html.contains(&long));
        assert!(!html.contains("href=\"http"), "never a link");
        assert_eq!(
            detail_value("é".repeat(DETAIL_MAX_CHARS).as_str()),
            "é".repeat(DETAIL_MAX_CHARS)
        );
    }

    #[test]
    fn images_are_allowed_from_one_https_origin_only() {
        let csp = |origin: &str| {
            let mut resp = render(&consent("Demo"), StatusCode::OK);
            allow_images_from(&mut resp, origin);
            resp.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(
            csp("https://cdn.example:8443"),
            "default-src 'none'; style-src 'self'; img-src 'self' data: https://cdn.example:8443; \
             base-uri 'none'; frame-ancestors 'none'"
        );
        for bad in [
            "http://cdn.example",
            "https://a; script-src *",
            "https://a b",
            "*",
        ] {
            assert_eq!(csp(bad), CONTENT_SECURITY_POLICY, "{bad}");
        }
    }

    #[test]
    fn see_other_always_has_a_location() {
        let resp = see_other("/\u{1}x");
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        assert_eq!(resp.headers()[header::LOCATION], "/");
        assert_eq!(
            see_other("/clients").headers()[header::LOCATION],
            "/clients"
        );
    }

    #[test]
    fn error_page_renders_escaped_and_links_home_only() {
        let html = ErrorPage {
            nav: nav_out(),
            status: 400,
            title: "Unknown client".into(),
            message: format!("No client {XSS} is registered."),
            details: vec![("Client ID sent".into(), XSS.into())],
        }
        .render()
        .unwrap();
        assert!(html.contains("Unknown client"));
        assert!(html.contains("400"));
        assert!(!html.contains(XSS));
        assert!(html.contains("href=\"/\""));
        // Links: home (brand + button), login, signup, stylesheet, nothing else.
        assert!(!html.contains("href=\"http"));
    }

    #[test]
    fn render_sets_status_type_and_security_headers() {
        let resp = render(&consent("Demo App"), StatusCode::OK);
        assert_eq!(resp.status(), StatusCode::OK);
        let h = resp.headers();
        assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(
            h[header::CONTENT_SECURITY_POLICY],
            "default-src 'none'; style-src 'self'; img-src 'self' data:; \
             base-uri 'none'; frame-ancestors 'none'"
        );
        assert!(!h[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("form-action"));
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");

        let resp = render(
            &ErrorPage {
                nav: nav_out(),
                status: 404,
                title: "Not found".into(),
                message: String::new(),
                details: Vec::new(),
            },
            StatusCode::NOT_FOUND,
        );
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(resp.headers()[header::X_FRAME_OPTIONS], "DENY");
    }

    /// A value whose `Display` fails, to make rendering fail.
    struct Broken;
    impl std::fmt::Display for Broken {
        fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            Err(std::fmt::Error)
        }
    }

    #[derive(Template)]
    #[template(source = "<p>{{ value }}</p>", ext = "html")]
    struct BrokenPage {
        value: Broken,
    }

    #[tokio::test]
    async fn render_failure_is_a_plain_500_with_headers() {
        let resp = render(&BrokenPage { value: Broken }, StatusCode::OK);
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        let body = resp.into_body().into_string().await.unwrap();
        assert!(body.contains("Something went wrong"));
    }

    #[tokio::test]
    async fn stylesheet_is_served_as_cacheable_css() {
        let resp = stylesheet
            .call(poem::Request::builder().finish())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "text/css; charset=utf-8"
        );
        assert_eq!(
            resp.headers()[header::CACHE_CONTROL],
            "public, max-age=3600"
        );
        let body = resp.into_body().into_string().await.unwrap();
        assert_eq!(body, STYLESHEET);
    }

    #[test]
    fn sign_in_first_comes_back_to_the_path_and_query() {
        let req = |uri: &'static str| {
            Request::builder()
                .uri(poem::http::Uri::from_static(uri))
                .finish()
        };
        assert_eq!(
            PageError::sign_in_first(&req("/clients")),
            PageError::Redirect("/login?return_to=%2Fclients".into())
        );
        assert_eq!(
            PageError::sign_in_first(&req("/oauth/authorize?client_id=c1&state=x")),
            PageError::Redirect(
                "/login?return_to=%2Foauth%2Fauthorize%3Fclient_id%3Dc1%26state%3Dx".into()
            )
        );
        let resp = PageError::sign_in_first(&req("/clients")).render(nav_out());
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            resp.headers()[header::LOCATION],
            "/login?return_to=%2Fclients"
        );
        assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
    }

    #[tokio::test]
    async fn error_pages_renders_page_errors_and_passes_others_through() {
        #[poem::handler]
        fn refused() -> Result<Response, PageError> {
            Err(PageError::too_many_attempts(7))
        }
        #[poem::handler]
        fn missing() -> poem::Result<Response> {
            Err(poem::error::NotFoundError.into())
        }
        let resp = error_pages(refused)
            .call(Request::builder().finish())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "7");
        assert_eq!(resp.headers()[header::X_FRAME_OPTIONS], "DENY");
        let body = resp.into_body().into_string().await.unwrap();
        assert!(body.contains("Too many attempts"));
        assert!(body.contains("Wait 7 seconds"));
        let err = error_pages(missing)
            .call(Request::builder().finish())
            .await
            .unwrap_err();
        assert!(err.is::<poem::error::NotFoundError>());
    }
}
