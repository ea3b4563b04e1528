//! Fixtures and HTML probes shared by the page tests (test builds only).

use super::authorize::{ConsentPage, ScopeView};
use super::kit::Nav;
use super::signin::LoginPage;

/// A value that must never reach a page unescaped.
pub const XSS: &str = "<script>alert(1)</script>";

/// The header of a signed-out visitor, sign-up open.
pub fn nav_out() -> Nav {
    Nav {
        username: None,
        csrf_token: "nav-csrf".into(),
        signup_enabled: true,
    }
}

/// The header of signed-in `name`, sign-up closed.
pub fn nav_in(name: &str) -> Nav {
    Nav {
        username: Some(name.into()),
        csrf_token: "tok-123".into(),
        signup_enabled: false,
    }
}

/// The `<form …>…</form>` whose opening tag contains `opening`.
pub fn form<'a>(html: &'a str, opening: &str) -> &'a str {
    let start = html.find(opening).expect("form present");
    let len = html[start..].find("</form>").expect("form closed");
    &html[start..start + len]
}

/// Values of every `name="…"` attribute in `fragment`, in order.
pub fn names(fragment: &str) -> Vec<&str> {
    fragment
        .split(" name=\"")
        .skip(1)
        .map(|s| &s[..s.find('"').expect("closing quote")])
        .collect()
}

/// The opening tag of the element with `id="…"`.
pub fn tag_with_id<'a>(html: &'a str, id: &str) -> &'a str {
    let at = html.find(&format!(" id=\"{id}\"")).expect("id present");
    let start = html[..at].rfind('<').expect("tag start");
    let end = at + html[at..].find('>').expect("tag end");
    &html[start..=end]
}

/// The login page after a failed attempt (`error`) or fresh.
pub fn login(error: Option<&str>, username: &str) -> LoginPage {
    LoginPage {
        nav: nav_out(),
        csrf_token: "tok-123".into(),
        return_to: "/oauth/authorize?client_id=c1&state=x".into(),
        username: username.into(),
        error: error.map(Into::into),
        app_name: None,
    }
}

/// The consent page for `client_name` asking for `profile email`.
pub fn consent(client_name: &str) -> ConsentPage {
    ConsentPage {
        nav: nav_in("alice"),
        csrf_token: "tok-123".into(),
        action: "/oauth/authorize?response_type=code&client_id=c1".into(),
        client_name: client_name.into(),
        client_id: "c1".into(),
        redirect_host: "app.example.com".into(),
        logo_uri: None,
        client_uri: None,
        scopes: vec![
            ScopeView::for_scope("profile"),
            ScopeView::for_scope("email"),
        ],
        resources: vec![],
        document_host: None,
    }
}
