//! Sign-in and sign-up: the home page, the login and sign-up forms (logout
//! is in `logout.rs`).
//! Handlers map the forms to `flows::users` and its answers to pages or the
//! session cookie; rate limits (`flows::users`) are checked before any
//! password hashing.
//! Must not depend on the other features' files (only on the kit).

use askama::Template;
use poem::http::StatusCode;
use poem::web::{CsrfToken, Data, Query};
use poem::{handler, FromRequest, Request, RequestBody, Response};
use serde::Deserialize;

use super::kit::{
    current_session, nav_for, render, safe_return_to, sign_in, CsrfForm, Nav, PageError,
};
use crate::flows::client_documents::is_document_id;
use crate::flows::{clients, users};
use crate::state::AppState;

/// `GET /`: a short welcome with links to the docs and discovery documents.
#[derive(Debug, Template)]
#[template(path = "home.html")]
pub struct HomePage {
    /// Site header.
    pub nav: Nav,
    /// The configured issuer URL (`server.issuer`), shown for reference.
    pub issuer: String,
}

/// `GET /login`: the sign-in form (posts `username`, `password`, `csrf_token`,
/// `return_to` to `/login`).
#[derive(Debug, Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    /// Site header.
    pub nav: Nav,
    /// CSRF token for the login form.
    pub csrf_token: String,
    /// Where to go after signing in (already validated by the handler; the page
    /// only echoes it in a hidden field).
    pub return_to: String,
    /// Prefill for the username field (e.g. after a failed attempt).
    pub username: String,
    /// Message shown above the form, e.g. "Invalid username or password".
    pub error: Option<String>,
    /// The registered name of the app that sent the user here, when
    /// `return_to` is an authorization request of a known client
    /// (untrusted: escaped).
    pub app_name: Option<String>,
}

/// `GET /signup`: the account creation form (posts `username`, `email`,
/// `password`, `csrf_token`, `return_to` to `/signup`).
#[derive(Debug, Template)]
#[template(path = "signup.html")]
pub struct SignupPage {
    /// Site header.
    pub nav: Nav,
    /// CSRF token for the sign-up form.
    pub csrf_token: String,
    /// Where to go after the account is created (validated by the handler).
    pub return_to: String,
    /// Prefill for the username field.
    pub username: String,
    /// Prefill for the optional email field.
    pub email: String,
    /// Message shown above the form, e.g. "That username is taken".
    pub error: Option<String>,
}

/// `GET /`
#[handler]
pub async fn home(state: Data<&AppState>, req: &Request, csrf: &CsrfToken) -> Response {
    // The home page shows even when the store is down: signed out, then.
    let session = current_session(&state, req).await.ok().flatten();
    render(
        &HomePage {
            nav: nav_for(&state, session.as_ref(), csrf),
            issuer: state.cfg.issuer.clone(),
        },
        StatusCode::OK,
    )
}

/// `?return_to=` on the login and sign-up pages, and `login_hint` on the
/// login page (an authorization request's, OpenID Connect Core §3.1.2.1).
#[derive(Debug, Deserialize)]
pub struct ReturnTo {
    return_to: Option<String>,
    login_hint: Option<String>,
}

/// The login page with `username` filled in and `error` above the form,
/// naming the app that sent the user here ([`app_name`]).
async fn login_page(
    state: &AppState,
    csrf: &CsrfToken,
    return_to: String,
    username: String,
    error: Option<String>,
) -> LoginPage {
    LoginPage {
        nav: nav_for(state, None, csrf),
        csrf_token: csrf.0.clone(),
        app_name: app_name(state, &return_to).await,
        return_to,
        username,
        error,
    }
}

/// The name of the client whose authorization request `return_to` (already
/// made safe: a local path) is: a config-file client, or one store read; `None` for any other
/// page, an unknown client, a client ID metadata document (not fetched for
/// the login page) or a store failure (the page is still useful without it).
async fn app_name(state: &AppState, return_to: &str) -> Option<String> {
    let (path, query) = return_to.split_once('?')?;
    if path != "/oauth/authorize" {
        return None;
    }
    let client_id = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "client_id")
        .map(|(_, v)| v.into_owned())?;
    if is_document_id(state, &client_id) {
        return None;
    }
    if let Some(c) = state.config_clients.get(&client_id) {
        return Some(c.client_name.clone());
    }
    clients::get(&state.repos, &client_id, None)
        .await
        .ok()
        .map(|c| c.client_name)
}

/// `GET /login`
#[handler]
pub async fn login_form(
    state: Data<&AppState>,
    csrf: &CsrfToken,
    Query(q): Query<ReturnTo>,
) -> Response {
    let return_to = safe_return_to(&state.cfg.issuer, q.return_to.as_deref());
    let hint: String = q.login_hint.unwrap_or_default().chars().take(64).collect();
    let page = login_page(&state, csrf, return_to, hint, None).await;
    render(&page, StatusCode::OK)
}

/// The login form (SPEC.md form contract; `csrf_token` is checked by
/// [`CsrfForm`]).
#[derive(Deserialize)]
pub struct LoginForm {
    username: Option<String>,
    password: Option<String>,
    return_to: Option<String>,
}

/// `POST /login`
#[handler]
pub async fn login(
    state: Data<&AppState>,
    req: &Request,
    csrf: &CsrfToken,
    CsrfForm(f): CsrfForm<LoginForm>,
) -> Result<Response, PageError> {
    let return_to = safe_return_to(&state.cfg.issuer, f.return_to.as_deref());
    let username = f.username.unwrap_or_default();
    let password = f.password.unwrap_or_default();
    // The TCP peer, or the client behind server.trusted_proxies (README
    // "Rate limits and slow clients"). A refused guess is a 429 page, before argon2.
    let peer = crate::http::client_ip(req, &state);
    let Some(user) = users::login(&state, peer, username.trim(), password).await? else {
        let error = Some("Incorrect username or password.".into());
        let page = login_page(&state, csrf, return_to, username, error).await;
        return Ok(render(&page, StatusCode::UNAUTHORIZED));
    };
    sign_in(&state, req, &user, &return_to).await
}

/// Extractor guarding the sign-up pages: 404 while `ui.signup` is off.
pub struct SignupOpen;

impl<'a> FromRequest<'a> for SignupOpen {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let state = <Data<&AppState>>::from_request_without_body(req).await?;
        if state.cfg.ui.signup {
            Ok(Self)
        } else {
            Err(PageError::new(
                StatusCode::NOT_FOUND,
                "Sign-up is closed",
                "Ask an administrator for an account.",
            )
            .into())
        }
    }
}

/// `GET /signup`
#[handler]
pub async fn signup_form(
    _open: SignupOpen,
    state: Data<&AppState>,
    csrf: &CsrfToken,
    Query(q): Query<ReturnTo>,
) -> Response {
    render(
        &SignupPage {
            nav: nav_for(&state, None, csrf),
            csrf_token: csrf.0.clone(),
            return_to: safe_return_to(&state.cfg.issuer, q.return_to.as_deref()),
            username: String::new(),
            email: String::new(),
            error: None,
        },
        StatusCode::OK,
    )
}

/// The sign-up form (`csrf_token` is checked by [`CsrfForm`]).
#[derive(Deserialize)]
pub struct SignupForm {
    username: Option<String>,
    email: Option<String>,
    password: Option<String>,
    return_to: Option<String>,
}

/// `POST /signup`
#[handler]
pub async fn signup(
    _open: SignupOpen,
    state: Data<&AppState>,
    req: &Request,
    csrf: &CsrfToken,
    CsrfForm(f): CsrfForm<SignupForm>,
) -> Result<Response, PageError> {
    let return_to = safe_return_to(&state.cfg.issuer, f.return_to.as_deref());
    let username = f.username.unwrap_or_default().trim().to_string();
    let email = f
        .email
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty());
    let password = f.password.unwrap_or_default();
    let peer = crate::http::client_ip(req, &state);
    let user = match users::create_user(&state, peer, &username, email.clone(), password).await {
        Ok(u) => u,
        Err(users::SignupError::Flow(e)) => return Err(e.into()),
        Err(e) => {
            let page = SignupPage {
                nav: nav_for(&state, None, csrf),
                csrf_token: csrf.0.clone(),
                return_to,
                username,
                email: email.unwrap_or_default(),
                error: Some(e.to_string()),
            };
            return Ok(render(&page, StatusCode::BAD_REQUEST));
        }
    };
    sign_in(&state, req, &user, &return_to).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::pages::testing::{form, login, names, nav_in, nav_out, XSS};

    /// Issue 16 item 5: the login page names the app, escaped.
    #[test]
    fn login_names_the_app_that_sent_the_user_escaped() {
        let html = login(None, "").render().unwrap();
        assert!(html.contains("Use your keygate account to continue."));
        let mut page = login(None, "");
        page.app_name = Some(XSS.into());
        let html = page.render().unwrap();
        assert!(!html.contains(XSS));
        assert!(html.contains(
            "Sign in to continue to <strong class=\"client-name\">&#60;script&#62;alert(1)&#60;/script&#62;</strong>."
        ));
        assert!(!html.contains("Use your keygate account"));
    }

    /// The home page with `nav` and no issuer.
    fn home_html(nav: Nav) -> String {
        HomePage {
            nav,
            issuer: String::new(),
        }
        .render()
        .unwrap()
    }

    #[test]
    fn home_page_renders() {
        let html = HomePage {
            nav: nav_out(),
            issuer: "https://auth.example.com".into(),
        }
        .render()
        .unwrap();
        assert!(html.starts_with("<!doctype html>"));
        assert!(html.contains("<html lang=\"en\">"));
        assert!(html.contains("https://auth.example.com"));
        for link in [
            "href=\"/docs\"",
            "href=\"/.well-known/oauth-authorization-server\"",
            "href=\"/.well-known/jwks.json\"",
            "href=\"/static/style.css\"",
        ] {
            assert!(html.contains(link), "missing {link}");
        }
    }

    #[test]
    fn nav_signed_out_links_to_login_and_signup_when_enabled() {
        let mut nav = nav_out();
        let html = home_html(nav.clone());
        assert!(html.contains("href=\"/login\""));
        assert!(html.contains("href=\"/signup\""));
        assert!(!html.contains("action=\"/logout\""));

        nav.signup_enabled = false;
        let html = home_html(nav);
        assert!(html.contains("href=\"/login\""));
        assert!(!html.contains("/signup"));
    }

    #[test]
    fn nav_signed_in_has_logout_form_with_csrf() {
        let html = home_html(nav_in("alice"));
        assert!(html.contains("Signed in as"));
        assert!(html.contains("alice"));
        let logout_form = form(&html, "<form method=\"post\" action=\"/logout\"");
        assert_eq!(names(logout_form), ["csrf_token"]);
        assert!(logout_form.contains("value=\"tok-123\""));
        assert!(logout_form.contains("Sign out"));
        assert!(!html.contains("href=\"/login\""));
    }

    #[test]
    fn login_form_has_exactly_the_contract_fields() {
        let html = login(None, "").render().unwrap();
        let f = form(&html, "<form method=\"post\" action=\"/login\"");
        let mut got = names(f);
        got.sort_unstable();
        assert_eq!(got, ["csrf_token", "password", "return_to", "username"]);
        for part in [
            "value=\"tok-123\"",
            "id=\"username\"",
            "for=\"username\"",
            "id=\"password\"",
            "for=\"password\"",
            "autocomplete=\"username\"",
            "autocomplete=\"current-password\"",
            ">Sign in</button>",
        ] {
            assert!(f.contains(part), "missing {part}");
        }
        assert!(!html.contains("role=\"alert\""));
        // The return_to value is attribute-escaped, not dropped.
        assert!(f.contains("/oauth/authorize?client_id=c1&#38;state=x"));
        assert!(html.contains("href=\"/signup"));
    }

    #[test]
    fn login_escapes_prefill_and_error() {
        let html = login(Some(XSS), "o\"brien' <b>").render().unwrap();
        assert!(html.contains("role=\"alert\""));
        assert!(!html.contains(XSS));
        assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"));
        assert!(!html.contains("o\"brien"));
        assert!(!html.contains("<b>"));
        assert!(html.contains("value=\"o&#34;brien&#39; &#60;b&#62;\""));
    }

    #[test]
    fn signup_page_renders_its_form() {
        let html = SignupPage {
            nav: nav_out(),
            csrf_token: "tok-123".into(),
            return_to: "/".into(),
            username: "bob".into(),
            email: "bob@example.com".into(),
            error: Some("That username is taken.".into()),
        }
        .render()
        .unwrap();
        let f = form(&html, "<form method=\"post\" action=\"/signup\"");
        let mut got = names(f);
        got.sort_unstable();
        assert_eq!(
            got,
            ["csrf_token", "email", "password", "return_to", "username"]
        );
        for part in [
            "type=\"email\"",
            "autocomplete=\"new-password\"",
            "minlength=\"8\"",
            "value=\"bob@example.com\"",
            ">Create account</button>",
        ] {
            assert!(f.contains(part), "missing {part}");
        }
        assert!(html.contains("role=\"alert\""));
        assert!(html.contains("That username is taken."));
    }

    #[test]
    fn nav_signed_in_links_to_my_clients() {
        let html = home_html(nav_in("alice"));
        assert!(html.contains("<a class=\"nav-link\" href=\"/clients\">My clients</a>"));
        let html = home_html(nav_out());
        assert!(!html.contains("href=\"/clients\""));
    }
}
