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
//! The client form posts `client_name`, `redirect_uris`, `grant_types`,
//! `scope`, `token_endpoint_auth_method`, `client_uri`, `logo_uri` and
//! `csrf_token` (see [`ClientFormPage`]).
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

/// One row of the "My clients" list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRow {
    /// The client's `client_id`; also the path segment of its edit and delete
    /// pages.
    pub client_id: String,
    /// The registered display name (untrusted: escaped).
    pub client_name: String,
    /// Registered grant types, space-joined (RFC 7591 §2 `grant_types`).
    pub grant_types: String,
    /// Registered `token_endpoint_auth_method` (RFC 7591 §2).
    pub auth_method: String,
    /// When the client was registered, already formatted for people.
    pub created: String,
}

/// `GET /clients`: the signed-in user's clients, each with edit and delete
/// links, and a link to `/clients/new`.
#[derive(Debug, Template)]
#[template(path = "clients.html")]
pub struct ClientsPage {
    /// Site header.
    pub nav: Nav,
    /// The user's clients (only theirs: the handler filters by owner).
    pub clients: Vec<ClientRow>,
    /// Outcome of the last action, e.g. "Client deleted." (a `role="status"`
    /// box).
    pub notice: Option<String>,
}

/// The values of the client form: what the user typed, so a rejected form
/// comes back filled in. Field names match the form's `name` attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientFormValues {
    /// `client_name`.
    pub client_name: String,
    /// `redirect_uris`, one URI per line.
    pub redirect_uris: String,
    /// The checked `grant_types`.
    pub grant_types: Vec<String>,
    /// `scope`, space-separated.
    pub scope: String,
    /// `token_endpoint_auth_method`: `client_secret_basic`,
    /// `client_secret_post` or `none`.
    pub token_endpoint_auth_method: String,
    /// `client_uri` (optional; empty when unset).
    pub client_uri: String,
    /// `logo_uri` (optional; empty when unset).
    pub logo_uri: String,
}

/// A validation error of the client form, shown next to the field it names
/// and summarized at the top of the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The form field at fault: one of the `name`s of [`ClientFormValues`]
    /// (`client_name`, `redirect_uris`, `grant_types`, …).
    pub field: String,
    /// What is wrong, in plain words.
    pub message: String,
}

/// `GET /clients/new` and `GET /clients/{id}`: the create and edit form.
///
/// Posts `csrf_token`, `client_name`, `redirect_uris`, `grant_types` (one per
/// checked box), `scope`, `token_endpoint_auth_method`, `client_uri` and
/// `logo_uri` to [`action`](Self::action). When editing, a second form posts
/// `csrf_token` to `/clients/{id}/rotate`.
#[derive(Debug, Template)]
#[template(path = "client_form.html")]
pub struct ClientFormPage {
    /// Site header.
    pub nav: Nav,
    /// CSRF token for the form (and the rotate form when editing).
    pub csrf_token: String,
    /// Where the form posts: `/clients` to create, `/clients/{id}` to edit.
    pub action: String,
    /// The `client_id` when editing; `None` on the create page.
    pub editing: Option<String>,
    /// Current values of the fields.
    pub values: ClientFormValues,
    /// Grant types offered as checkboxes (those the active profile enables).
    pub known_grants: Vec<String>,
    /// Scopes the server knows, shown as a hint under the scope field.
    pub known_scopes: Vec<String>,
    /// The validation error to show, if the last submission was rejected.
    pub error: Option<FieldError>,
}

impl ClientFormPage {
    /// The error message for `field`, when the page's error names it.
    pub fn error_for(&self, field: &str) -> Option<&str> {
        self.error
            .as_ref()
            .filter(|e| e.field == field)
            .map(|e| e.message.as_str())
    }

    /// Whether the `grant` checkbox is checked.
    pub fn is_checked(&self, grant: &str) -> bool {
        self.values.grant_types.iter().any(|g| g == grant)
    }

    /// A few words on what `grant` is for, for the grant types keygate knows.
    pub fn grant_hint(&self, grant: &str) -> Option<&'static str> {
        match grant {
            "authorization_code" => Some("Users sign in through the browser (with PKCE)."),
            "refresh_token" => Some("Renew access without asking the user again."),
            "client_credentials" => Some("The app acts on its own behalf, no user."),
            "implicit" => Some("Legacy: token in the URL fragment."),
            "password" => Some("Legacy: the app handles the user's password."),
            _ => None,
        }
    }
}

/// Shown once, right after a client is created or its secret rotated: the
/// `client_id` and, for a confidential client, the plaintext secret (which
/// is stored only as a hash and can never be shown again).
#[derive(Debug, Template)]
#[template(path = "client_secret.html")]
pub struct ClientSecretPage {
    /// Site header.
    pub nav: Nav,
    /// The client's `client_id`.
    pub client_id: String,
    /// The client's display name (untrusted: escaped).
    pub client_name: String,
    /// The new secret; `None` for a public client (`none` auth method).
    pub client_secret: Option<String>,
    /// `true` after a rotation (wording says "New secret").
    pub rotated: bool,
    /// The RFC 7592 registration access token, on creation only.
    pub registration_access_token: Option<String>,
}

/// `GET /clients/{id}/delete`: asks for confirmation; posts `csrf_token` to
/// `/clients/{id}/delete`.
#[derive(Debug, Template)]
#[template(path = "client_delete.html")]
pub struct ClientDeletePage {
    /// Site header.
    pub nav: Nav,
    /// CSRF token for the confirmation form.
    pub csrf_token: String,
    /// The client's `client_id`.
    pub client_id: String,
    /// The client's display name (untrusted: escaped).
    pub client_name: String,
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

    fn client_row(id: &str, name: &str) -> ClientRow {
        ClientRow {
            client_id: id.into(),
            client_name: name.into(),
            grant_types: "authorization_code refresh_token".into(),
            auth_method: "client_secret_basic".into(),
            created: "28 Nov 2026".into(),
        }
    }

    fn client_form(editing: Option<&str>) -> ClientFormPage {
        ClientFormPage {
            nav: nav_in("alice"),
            csrf_token: "tok-123".into(),
            action: editing.map_or_else(|| "/clients".into(), |id| format!("/clients/{id}")),
            editing: editing.map(Into::into),
            values: ClientFormValues {
                client_name: "Demo App".into(),
                redirect_uris: "https://app.example.com/cb\nhttp://localhost:8080/cb".into(),
                grant_types: vec!["authorization_code".into(), "refresh_token".into()],
                scope: "profile email".into(),
                token_endpoint_auth_method: "client_secret_post".into(),
                client_uri: "https://app.example.com".into(),
                logo_uri: String::new(),
            },
            known_grants: vec![
                "authorization_code".into(),
                "refresh_token".into(),
                "client_credentials".into(),
            ],
            known_scopes: vec!["profile".into(), "email".into()],
            error: None,
        }
    }

    fn secret_page(secret: Option<&str>, rotated: bool) -> ClientSecretPage {
        ClientSecretPage {
            nav: nav_in("alice"),
            client_id: "c1".into(),
            client_name: "Demo App".into(),
            client_secret: secret.map(Into::into),
            rotated,
            registration_access_token: None,
        }
    }

    fn delete_page(client_name: &str) -> ClientDeletePage {
        ClientDeletePage {
            nav: nav_in("alice"),
            csrf_token: "tok-123".into(),
            client_id: "c1".into(),
            client_name: client_name.into(),
        }
    }

    /// The opening tag of the element with `id="…"`.
    fn tag_with_id<'a>(html: &'a str, id: &str) -> &'a str {
        let at = html.find(&format!(" id=\"{id}\"")).expect("id present");
        let start = html[..at].rfind('<').expect("tag start");
        let end = at + html[at..].find('>').expect("tag end");
        &html[start..=end]
    }

    #[test]
    fn nav_signed_in_links_to_my_clients() {
        let html = HomePage {
            nav: nav_in("alice"),
            issuer: String::new(),
        }
        .render()
        .unwrap();
        assert!(html.contains("<a class=\"nav-link\" href=\"/clients\">My clients</a>"));
        let html = HomePage {
            nav: nav_out(),
            issuer: String::new(),
        }
        .render()
        .unwrap();
        assert!(!html.contains("href=\"/clients\""));
    }

    #[test]
    fn clients_page_lists_clients_with_edit_and_delete_links() {
        let html = ClientsPage {
            nav: nav_in("alice"),
            clients: vec![client_row("c1", "Demo App"), client_row("c2", "CLI tool")],
            notice: None,
        }
        .render()
        .unwrap();
        assert!(html.contains("<h1>My clients</h1>"));
        assert!(html.contains("href=\"/clients/new\""));
        assert!(html.contains(">New client</a>"));
        for id in ["c1", "c2"] {
            assert!(html.contains(&format!("href=\"/clients/{id}\">Edit")));
            assert!(html.contains(&format!("href=\"/clients/{id}/delete\">Delete")));
            assert!(html.contains(&format!("<code class=\"client-id\">{id}</code>")));
        }
        assert!(html.contains("Demo App"));
        assert!(html.contains("CLI tool"));
        assert!(html.contains("<code class=\"chip\">authorization_code</code>"));
        assert!(html.contains("<code class=\"chip\">refresh_token</code>"));
        assert!(html.contains("client_secret_basic"));
        assert!(html.contains("28 Nov 2026"));
        assert!(!html.contains("role=\"status\""));
        assert!(!html.contains("no clients yet"));
        // Only the nav's sign-out form: the list itself only links.
        assert_eq!(html.matches("<form").count(), 1);
    }

    #[test]
    fn clients_page_empty_state_and_notice() {
        let html = ClientsPage {
            nav: nav_in("alice"),
            clients: Vec::new(),
            notice: Some(format!("Client {XSS} deleted.")),
        }
        .render()
        .unwrap();
        assert!(html.contains("You have no clients yet."));
        assert!(html.contains("href=\"/clients/new\""));
        assert!(!html.contains("<table"));
        assert!(html.contains("<div class=\"notice\" role=\"status\">Client &#60;script&#62;"));
        assert!(!html.contains(XSS));
    }

    #[test]
    fn clients_page_escapes_names_and_encodes_ids_in_links() {
        let html = ClientsPage {
            nav: nav_in("alice"),
            clients: vec![client_row("a/b\"c", XSS)],
            notice: None,
        }
        .render()
        .unwrap();
        assert!(!html.contains(XSS));
        assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"));
        assert!(html.contains("href=\"/clients/a%2Fb%22c\""));
        assert!(html.contains("href=\"/clients/a%2Fb%22c/delete\""));
        assert!(!html.contains("a/b\"c"));
    }

    #[test]
    fn client_form_create_has_exactly_the_contract_fields() {
        let html = client_form(None).render().unwrap();
        assert!(html.contains("<h1>New client</h1>"));
        let f = form(&html, "<form method=\"post\" action=\"/clients\"");
        let mut got = names(f);
        got.sort_unstable();
        assert_eq!(
            got,
            [
                "client_name",
                "client_uri",
                "csrf_token",
                "grant_types",
                "grant_types",
                "grant_types",
                "logo_uri",
                "redirect_uris",
                "scope",
                "token_endpoint_auth_method",
            ]
        );
        assert!(f.contains("<input type=\"hidden\" name=\"csrf_token\" value=\"tok-123\">"));
        for field in [
            "client_name",
            "redirect_uris",
            "scope",
            "token_endpoint_auth_method",
            "client_uri",
            "logo_uri",
        ] {
            let tag = tag_with_id(f, field);
            assert!(tag.contains(&format!("name=\"{field}\"")), "{tag}");
            assert!(f.contains(&format!("<label for=\"{field}\">")), "{field}");
        }
        assert!(tag_with_id(f, "client_name").contains("type=\"text\""));
        assert!(tag_with_id(f, "client_name").contains(" required"));
        assert!(tag_with_id(f, "redirect_uris").starts_with("<textarea"));
        assert!(f.contains(">https://app.example.com/cb\nhttp://localhost:8080/cb</textarea>"));
        assert!(tag_with_id(f, "scope").contains("value=\"profile email\""));
        assert!(tag_with_id(f, "token_endpoint_auth_method").starts_with("<select"));
        assert!(tag_with_id(f, "client_uri").contains("type=\"url\""));
        assert!(tag_with_id(f, "logo_uri").contains("type=\"url\""));
        // One checkbox per known grant, checked when in the values.
        for (grant, checked) in [
            ("authorization_code", true),
            ("refresh_token", true),
            ("client_credentials", false),
        ] {
            let tag = tag_with_id(f, &format!("grant_{grant}"));
            assert!(tag.contains("type=\"checkbox\""), "{tag}");
            assert!(tag.contains("name=\"grant_types\""), "{tag}");
            assert!(tag.contains(&format!("value=\"{grant}\"")), "{tag}");
            assert_eq!(tag.contains(" checked"), checked, "{tag}");
            assert!(f.contains(&format!("<label for=\"grant_{grant}\">")));
        }
        // Auth methods, the stored one selected, and the public-client note.
        for method in ["client_secret_basic", "client_secret_post", "none"] {
            assert!(f.contains(&format!("<option value=\"{method}\"")));
        }
        assert!(f.contains("<option value=\"client_secret_post\" selected>"));
        assert_eq!(f.matches(" selected>").count(), 1);
        assert!(f.contains("none</strong> = public client (single-page/native app), PKCE required"));
        // Known scopes as a hint.
        assert!(f.contains("Known scopes: <code>profile</code> <code>email</code>."));
        let save = tag_with_id(f, "save");
        assert!(save.starts_with("<button type=\"submit\""));
        assert!(f.contains("id=\"save\" class=\"button button-primary\">Create client</button>"));
        // No rotate form, no delete link, no error when creating.
        assert!(!html.contains("id=\"rotate\""));
        assert!(!html.contains("/delete\""));
        assert!(!html.contains("role=\"alert\""));
        assert!(!html.contains("aria-invalid"));
        assert_eq!(html.matches("<form").count(), 2);
    }

    #[test]
    fn client_form_edit_has_save_rotate_and_delete() {
        let html = client_form(Some("c1")).render().unwrap();
        assert!(html.contains("Edit <span class=\"client-name\">Demo App</span>"));
        assert!(html.contains("<code>c1</code>"));
        let f = form(&html, "<form method=\"post\" action=\"/clients/c1\"");
        assert!(f.contains(">Save changes</button>"));
        assert!(!f.contains("Create client"));
        let rotate = form(&html, "<form method=\"post\" action=\"/clients/c1/rotate\"");
        assert_eq!(names(rotate), ["csrf_token"]);
        assert!(rotate.contains("value=\"tok-123\""));
        assert!(rotate.contains("id=\"rotate\""));
        assert!(rotate.contains(">Rotate secret</button>"));
        assert!(html.contains("href=\"/clients/c1/delete\">Delete this client</a>"));
        // Sign-out, client form, rotate form.
        assert_eq!(html.matches("<form").count(), 3);
        // The rotate form comes after the main form, not inside it.
        assert!(html.find("/rotate\"").unwrap() > html.find("id=\"save\"").unwrap());
    }

    #[test]
    fn client_form_shows_field_error_next_to_field_and_in_summary() {
        for field in [
            "client_name",
            "redirect_uris",
            "grant_types",
            "scope",
            "token_endpoint_auth_method",
            "client_uri",
            "logo_uri",
        ] {
            let mut page = client_form(None);
            page.error = Some(FieldError {
                field: field.into(),
                message: format!("Bad {field} {XSS}"),
            });
            let html = page.render().unwrap();
            assert!(!html.contains(XSS));
            let escaped = format!("Bad {field} &#60;script&#62;");
            // Summary at the top, before the form, linking to the field.
            let alert = html.find("role=\"alert\"").expect("summary");
            assert!(alert < html.find("action=\"/clients\"").unwrap());
            assert!(html.contains(&format!("<a href=\"#{field}\">{escaped}")));
            // Next to the field.
            let next = format!("<p class=\"field-error\" id=\"{field}-error\">{escaped}");
            assert!(html.contains(&next), "{field}");
            assert_eq!(html.matches("class=\"field-error\"").count(), 1);
            let tag = tag_with_id(&html, field);
            assert!(
                tag.contains(&format!("aria-describedby=\"{field}-error")),
                "{tag}"
            );
            assert_eq!(html.matches(" field-invalid").count(), 1);
            if field == "grant_types" {
                assert!(tag.contains(" field-invalid"), "{tag}");
            } else {
                assert!(tag.contains("aria-invalid=\"true\""), "{tag}");
                let wrapper = &html[..html.find(tag).unwrap()];
                let wrapper = &wrapper[wrapper.rfind("<div class=\"field").unwrap()..];
                assert!(wrapper.starts_with("<div class=\"field field-invalid\">"));
            }
        }
    }

    #[test]
    fn client_form_escapes_values() {
        let mut page = client_form(Some("c1"));
        page.values.client_name = XSS.into();
        page.values.redirect_uris = "https://a.example/cb?x=\"><script>alert(1)</script>".into();
        page.values.client_uri = "https://a.example/\" onfocus=\"alert(1)".into();
        page.values.logo_uri = "javascript:alert('x')".into();
        page.values.scope = "<b>".into();
        let html = page.render().unwrap();
        assert!(!html.contains("<script"));
        assert!(!html.contains("\" onfocus"));
        assert!(!html.contains("<b>"));
        assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62;</span>"));
        assert!(html.contains("value=\"&#60;script&#62;alert(1)&#60;/script&#62;\""));
        assert!(html.contains("https://a.example/cb?x=&#34;&#62;&#60;script&#62;"));
        assert!(html.contains("value=\"https://a.example/&#34; onfocus=&#34;alert(1)\""));
        assert!(html.contains("value=\"javascript:alert(&#39;x&#39;)\""));
        // The URI is only a field value, never a link.
        assert!(!html.contains("href=\"javascript"));
    }

    #[test]
    fn client_form_with_public_auth_and_no_grants() {
        let mut page = client_form(None);
        page.values = ClientFormValues {
            token_endpoint_auth_method: "none".into(),
            ..ClientFormValues::default()
        };
        page.known_scopes.clear();
        let html = page.render().unwrap();
        assert!(html.contains("<option value=\"none\" selected>"));
        assert_eq!(html.matches(" selected>").count(), 1);
        assert!(!html.contains(" checked"));
        assert!(!html.contains("Known scopes"));
        assert!(tag_with_id(&html, "client_name").contains("value=\"\""));
    }

    #[test]
    fn client_secret_page_shows_secret_box_only_when_some() {
        let html = secret_page(Some("s3cr3t-<value>"), false).render().unwrap();
        assert!(html.contains("<code id=\"client_id\" class=\"copyable\">c1</code>"));
        assert!(html.contains("<div class=\"secret-box\">"));
        assert!(html.contains(
            "<code id=\"client_secret\" class=\"copyable\">s3cr3t-&#60;value&#62;</code>"
        ));
        assert!(html.contains("Copy it now: it is shown only once and stored only as a hash."));
        assert!(html.contains(">Client secret</p>"));
        assert!(!html.contains("New secret"));
        assert!(html.contains("href=\"/clients\""));
        assert!(!html.contains("no secret"));
        assert_eq!(html.matches("<form").count(), 1);

        let html = secret_page(Some("n3w"), true).render().unwrap();
        assert!(html.contains(">New secret</p>"));
        assert!(html.contains("<code id=\"client_secret\" class=\"copyable\">n3w</code>"));
        assert!(html.contains("The previous secret no longer works."));

        let html = secret_page(None, false).render().unwrap();
        assert!(!html.contains("client_secret"));
        assert!(!html.contains("secret-box"));
        assert!(!html.contains("Copy it now"));
        assert!(html.contains("it has no secret"));
        assert!(html.contains("PKCE"));
        assert!(html.contains("href=\"/clients\""));
    }

    #[test]
    fn client_secret_page_escapes_client_name() {
        let mut page = secret_page(Some("s"), false);
        page.client_name = XSS.into();
        let html = page.render().unwrap();
        assert!(!html.contains(XSS));
        assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"));
    }

    #[test]
    fn client_delete_page_confirms_with_csrf_form() {
        let html = delete_page("Demo App").render().unwrap();
        assert!(html.contains("Delete <span class=\"client-name\">Demo App</span>?"));
        assert!(html.contains("Apps using it stop working at once."));
        let f = form(&html, "<form method=\"post\" action=\"/clients/c1/delete\"");
        assert_eq!(names(f), ["csrf_token"]);
        assert!(f.contains("value=\"tok-123\""));
        let button = tag_with_id(f, "confirm-delete");
        assert!(button.starts_with("<button type=\"submit\""));
        assert!(button.contains("button-danger"));
        assert!(html.contains("href=\"/clients/c1\">Cancel</a>"));
        assert_eq!(html.matches("<form").count(), 2);
    }

    #[test]
    fn client_delete_page_escapes_client_name() {
        let html = delete_page(XSS).render().unwrap();
        assert!(!html.contains(XSS));
        assert!(html.contains(
            "Delete <span class=\"client-name\">&#60;script&#62;alert(1)&#60;/script&#62;</span>?"
        ));
    }

    #[test]
    fn client_pages_use_no_scripts_or_inline_styles() {
        let pages = [
            ClientsPage {
                nav: nav_in("alice"),
                clients: vec![client_row("c1", "Demo")],
                notice: Some("Saved.".into()),
            }
            .render()
            .unwrap(),
            client_form(Some("c1")).render().unwrap(),
            secret_page(Some("s"), true).render().unwrap(),
            secret_page(None, false).render().unwrap(),
            delete_page("Demo").render().unwrap(),
        ];
        for html in pages {
            assert!(html.starts_with("<!doctype html>"));
            assert!(!html.contains("<script"));
            assert!(!html.contains(" style=\""));
            assert!(!html.contains("<style"));
            assert!(html.contains("name=\"viewport\""));
            assert!(html.contains("href=\"/clients\""));
        }
    }
}
