//! Server-rendered HTML pages: one askama template struct per page, the shared
//! [`Nav`] bar, the one [`render`] helper that turns a page into a response with
//! the security headers every HTML page carries, and the embedded stylesheet.
//!
//! Templates live in `templates/` at the crate root (Jinja syntax, HTML
//! auto-escaping on: every user-controlled string is escaped by askama, never
//! by hand). Pages use no JavaScript and load nothing from other origins, so the
//! Content-Security-Policy below can stay strict. Field names of the login and
//! consent forms are a stable contract for scripts and tests (SPEC.md, "HTTP
//! surface"): login posts `username`, `password`, `csrf_token`; consent posts
//! `csrf_token` and `decision=allow|deny`.
//!
//! This module holds presentation only: it must not depend on the store, the
//! flows or the protocol core.

use askama::Template;
use poem::http::{header, HeaderValue, StatusCode};
use poem::Response;

/// The stylesheet served at `/static/style.css`, embedded at compile time so
/// the binary needs no files next to it.
pub const STYLESHEET: &str = include_str!("../../static/style.css");

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

/// One requested scope as shown on the consent page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeView {
    /// The scope token, e.g. `profile`.
    pub name: String,
    /// What granting it allows, in plain words.
    pub description: String,
}

impl ScopeView {
    /// A view of `name` with the built-in wording for the scopes keygate knows
    /// out of the box (`profile`, `email`, `openid`, `offline_access`) and a
    /// generic sentence for any other scope.
    pub fn for_scope(name: &str) -> Self {
        let description = match name {
            "profile" => "See your username and basic profile.".to_string(),
            "email" => "See your email address.".to_string(),
            "openid" => "Confirm your identity (sign you in).".to_string(),
            "offline_access" => "Keep access while you are away.".to_string(),
            other => format!("Use the \u{201c}{other}\u{201d} permission."),
        };
        Self {
            name: name.to_string(),
            description,
        }
    }
}

/// `GET /oauth/authorize` after sign-in: asks the user to allow or deny a
/// client (RFC 6749 §4.1.1). Posts `csrf_token` and `decision=allow|deny`.
#[derive(Debug, Template)]
#[template(path = "consent.html")]
pub struct ConsentPage {
    /// Site header (the signed-in user's name is shown on the page too).
    pub nav: Nav,
    /// CSRF token for the consent form.
    pub csrf_token: String,
    /// The form's action URL, query string included (the authorization request
    /// travels with the POST).
    pub action: String,
    /// The client's registered display name (untrusted: escaped).
    pub client_name: String,
    /// The client's `client_id`, shown in small print.
    pub client_id: String,
    /// Host of the redirect URI the user will be sent back to.
    pub redirect_host: String,
    /// The requested scopes with descriptions; may be empty.
    pub scopes: Vec<ScopeView>,
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

/// `GET /static/style.css`: the embedded [`STYLESHEET`], cacheable for an hour.
#[poem::handler]
pub fn stylesheet() -> Response {
    Response::builder()
        .content_type("text/css; charset=utf-8")
        .header(header::CACHE_CONTROL, "public, max-age=3600")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .body(STYLESHEET)
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::Endpoint;

    const XSS: &str = "<script>alert(1)</script>";

    fn nav_out() -> Nav {
        Nav {
            username: None,
            csrf_token: "nav-csrf".into(),
            signup_enabled: true,
        }
    }

    fn nav_in(name: &str) -> Nav {
        Nav {
            username: Some(name.into()),
            csrf_token: "tok-123".into(),
            signup_enabled: false,
        }
    }

    fn login(error: Option<&str>, username: &str) -> LoginPage {
        LoginPage {
            nav: nav_out(),
            csrf_token: "tok-123".into(),
            return_to: "/oauth/authorize?client_id=c1&state=x".into(),
            username: username.into(),
            error: error.map(Into::into),
        }
    }

    fn consent(client_name: &str) -> ConsentPage {
        ConsentPage {
            nav: nav_in("alice"),
            csrf_token: "tok-123".into(),
            action: "/oauth/authorize?response_type=code&client_id=c1".into(),
            client_name: client_name.into(),
            client_id: "c1".into(),
            redirect_host: "app.example.com".into(),
            scopes: vec![
                ScopeView::for_scope("profile"),
                ScopeView::for_scope("email"),
            ],
        }
    }

    /// The `<form …>…</form>` whose opening tag contains `opening`.
    fn form<'a>(html: &'a str, opening: &str) -> &'a str {
        let start = html.find(opening).expect("form present");
        let len = html[start..].find("</form>").expect("form closed");
        &html[start..start + len]
    }

    /// Values of every `name="…"` attribute in `fragment`, in order.
    fn names(fragment: &str) -> Vec<&str> {
        fragment
            .split(" name=\"")
            .skip(1)
            .map(|s| &s[..s.find('"').expect("closing quote")])
            .collect()
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
        let html = HomePage {
            nav: nav.clone(),
            issuer: String::new(),
        }
        .render()
        .unwrap();
        assert!(html.contains("href=\"/login\""));
        assert!(html.contains("href=\"/signup\""));
        assert!(!html.contains("action=\"/logout\""));

        nav.signup_enabled = false;
        let html = HomePage {
            nav,
            issuer: String::new(),
        }
        .render()
        .unwrap();
        assert!(html.contains("href=\"/login\""));
        assert!(!html.contains("/signup"));
    }

    #[test]
    fn nav_signed_in_has_logout_form_with_csrf() {
        let html = HomePage {
            nav: nav_in("alice"),
            issuer: String::new(),
        }
        .render()
        .unwrap();
        assert!(html.contains("Signed in as"));
        assert!(html.contains("alice"));
        let logout = form(&html, "<form method=\"post\" action=\"/logout\"");
        assert_eq!(names(logout), ["csrf_token"]);
        assert!(logout.contains("value=\"tok-123\""));
        assert!(logout.contains("Sign out"));
        assert!(!html.contains("href=\"/login\""));
    }

    #[test]
    fn login_form_has_exactly_the_contract_fields() {
        let html = login(None, "").render().unwrap();
        let f = form(&html, "<form method=\"post\" action=\"/login\"");
        let mut got = names(f);
        got.sort_unstable();
        assert_eq!(got, ["csrf_token", "password", "return_to", "username"]);
        assert!(f.contains("value=\"tok-123\""));
        assert!(f.contains("id=\"username\""));
        assert!(f.contains("for=\"username\""));
        assert!(f.contains("id=\"password\""));
        assert!(f.contains("for=\"password\""));
        assert!(f.contains("autocomplete=\"username\""));
        assert!(f.contains("autocomplete=\"current-password\""));
        assert!(f.contains(">Sign in</button>"));
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
        assert!(f.contains("type=\"email\""));
        assert!(f.contains("autocomplete=\"new-password\""));
        assert!(f.contains("minlength=\"8\""));
        assert!(f.contains("value=\"bob@example.com\""));
        assert!(f.contains(">Create account</button>"));
        assert!(html.contains("role=\"alert\""));
        assert!(html.contains("That username is taken."));
    }

    #[test]
    fn consent_has_both_decisions_and_csrf() {
        let html = consent("Demo App").render().unwrap();
        assert!(html.contains("Demo App</span> wants to access your account"));
        assert!(html.contains("app.example.com"));
        assert!(html.contains("See your email address."));
        let f = form(
            &html,
            "<form method=\"post\" action=\"/oauth/authorize?response_type=code&#38;client_id=c1\"",
        );
        assert_eq!(names(f), ["csrf_token", "decision", "decision"]);
        assert!(f.contains("value=\"tok-123\""));
        assert!(f.contains("id=\"allow\""));
        assert!(f.contains("id=\"deny\""));
        assert!(f.contains("name=\"decision\" value=\"allow\""));
        assert!(f.contains("name=\"decision\" value=\"deny\""));
        // Exactly one consent form besides the nav's sign-out form.
        assert_eq!(html.matches("<form").count(), 2);
    }

    #[test]
    fn consent_escapes_client_name() {
        let html = consent(XSS).render().unwrap();
        assert!(!html.contains(XSS));
        assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62;</span> wants to access"));
        assert!(!html.contains("<script"));
    }

    #[test]
    fn consent_without_scopes_says_so() {
        let mut page = consent("Demo App");
        page.scopes.clear();
        let html = page.render().unwrap();
        assert!(html.contains("id=\"allow\""));
        assert!(!html.contains("<ul class=\"scopes\""));
    }

    #[test]
    fn error_page_renders_escaped_and_links_home_only() {
        let html = ErrorPage {
            nav: nav_out(),
            status: 400,
            title: "Unknown client".into(),
            message: format!("No client {XSS} is registered."),
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
    fn pages_use_no_scripts_or_inline_styles() {
        let pages = [
            HomePage {
                nav: nav_in("alice"),
                issuer: "https://auth.example.com".into(),
            }
            .render()
            .unwrap(),
            login(Some("x"), "a").render().unwrap(),
            consent("Demo").render().unwrap(),
        ];
        for html in pages {
            assert!(!html.contains("<script"));
            assert!(!html.contains(" style=\""));
            assert!(!html.contains("<style"));
            assert!(html.contains("name=\"viewport\""));
        }
    }
}
