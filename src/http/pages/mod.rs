//! Server-rendered HTML pages, one file per feature, each holding its
//! handlers and the askama template structs they fill:
//!
//! - [`signin`]: home, login, sign-up;
//! - [`logout`]: `/oauth/logout` (RP-initiated logout) and `POST /logout`;
//! - [`authorize`]: the authorization endpoint and its consent form;
//! - [`clients`]: the "My clients" pages;
//! - [`account`]: the signed-in user's profile (`/account`);
//! - [`apps`]: "Apps you allowed" (remembered consent, revocable);
//! - [`kit`]: what they share: the [`Nav`](kit::Nav) bar, [`render`](kit::render)
//!   and the security headers, the stylesheet, the session cookie, and the
//!   extractors [`SignedIn`] and [`CsrfForm`] with the [`PageError`] that
//!   handlers return (rendered through `error.html` by [`error_pages`]).
//!
//! Templates live in `templates/` at the crate root (Jinja syntax, HTML
//! auto-escaping on: every user-controlled string is escaped by askama, never
//! by hand). Pages use no JavaScript and load nothing from other origins, so the
//! Content-Security-Policy can stay strict. Field names of the login and
//! consent forms are a stable contract for scripts and tests (SPEC.md, "HTTP
//! surface"): login posts `username`, `password`, `csrf_token`; consent posts
//! `csrf_token` and `decision=allow|deny`.
//! The client form posts `client_name`, `redirect_uris`, `grant_types`,
//! `scope`, `token_endpoint_auth_method`, `client_uri`, `logo_uri`,
//! `post_logout_redirect_uris`, `backchannel_logout_uri`, `csrf_token` and
//! the one-time `form_nonce` (see [`clients::ClientFormPage`]); the rotate
//! confirmation posts `csrf_token` and `form_nonce`. The logout confirmation page
//! ([`logout`]) posts `csrf_token` and `decision=logout` or
//! `decision=cancel` with the request's parameters. The account form posts
//! `csrf_token`, `name` and `email`; each revoke form of `/account/apps`
//! posts `csrf_token` and `client_id`.
//!
//! Handlers call flows, never the store or the protocol core's rules
//! directly; template structs hold display strings only, so templates never
//! see domain types.

pub mod account;
pub mod apps;
pub mod authorize;
pub mod clients;
pub mod kit;
pub mod logout;
pub mod signin;
#[cfg(test)]
mod testing;

pub use authorize::{authorize_get, authorize_post};
pub use kit::{error_pages, stylesheet, CsrfForm, PageError, SignedIn, SESSION_COOKIE};
pub use logout::{logout_get, logout_post, sign_out};
pub use signin::{home, login, login_form, signup, signup_form};

#[cfg(test)]
mod tests {
    use askama::Template;

    use super::signin::HomePage;
    use super::testing::{consent, login, nav_in};

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
            super::account::AccountPage {
                nav: nav_in("alice"),
                csrf_token: "tok-123".into(),
                username: "alice".into(),
                name: "Alice".into(),
                email: "alice@example.com".into(),
                email_verified: false,
                read_only: false,
                error: None,
                notice: None,
            }
            .render()
            .unwrap(),
        ];
        for html in pages {
            assert!(!html.contains("<script"));
            assert!(!html.contains(" style=\""));
            assert!(!html.contains("<style"));
            assert!(html.contains("name=\"viewport\""));
        }
    }
}
