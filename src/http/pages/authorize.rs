//! The authorization endpoint (RFC 6749 §3.1) with its consent form. The
//! handlers only sequence the steps (check the request, find the signed-in
//! user, show or apply the consent); the protocol rules live in
//! `oauth::authorize` and the store work in `flows::authorize`. Must not
//! depend on the other features' files (only on the kit).

use std::collections::BTreeMap;

use askama::Template;
use poem::http::StatusCode;
use poem::web::{CsrfToken, CsrfVerifier, Data, Form};
use poem::{handler, Request, Response};

use super::kit::{
    allow_images_from, current_session, nav_for, render, see_other, signed_in, Nav, PageError,
};
use crate::flows::authorize::{approve, check, deny, remembered, Consent, Refusal};
use crate::flows::client_documents::is_document_id;
use crate::oauth::authorize::{
    after_sign_in, error_redirect_url, next_step, AuthorizeError, Situation, Step, ValidRequest,
};
use crate::oauth::types::Client;
use crate::state::AppState;
use crate::store::repos::Session;

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
        Self::described(name, &BTreeMap::new())
    }

    /// A view of `name` worded by `custom` (`oauth.scope_descriptions`)
    /// when it names the scope, else as [`for_scope`](Self::for_scope).
    pub fn described(name: &str, custom: &BTreeMap<String, String>) -> Self {
        if let Some(text) = custom.get(name) {
            return Self {
                name: name.to_string(),
                description: text.clone(),
            };
        }
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
    /// Host of the redirect URI the user will be sent back to, with its
    /// port when it is not the scheme's default (`localhost:8081`).
    pub redirect_host: String,
    /// The client's registered `logo_uri`, when it is https (the page's
    /// CSP then allows images from its origin only; loaded without a
    /// `Referer`).
    pub logo_uri: Option<String>,
    /// The client's registered home page (`client_uri`, http or https),
    /// linked.
    pub client_uri: Option<String>,
    /// The requested scopes with descriptions; may be empty.
    pub scopes: Vec<ScopeView>,
    /// The RFC 8707 resources the token will be for (empty: none named).
    pub resources: Vec<ResourceView>,
    /// For a client ID metadata document's client: the host of its URL,
    /// shown next to the (self-asserted) name, since only the host is
    /// vouched for (draft-ietf-oauth-client-id-metadata-document §8.5).
    pub document_host: Option<String>,
}

/// One resource the client will reach, as shown on the consent page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceView {
    /// The registered display name, if any (escaped).
    pub name: Option<String>,
    /// The registered URI (escaped).
    pub uri: String,
}

/// The authorization endpoint's URL with `pairs` as its query: where the
/// consent form posts the request back, and where the login form returns.
fn authorize_url(pairs: &[(String, String)]) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    if query.is_empty() {
        "/oauth/authorize".into()
    } else {
        format!("/oauth/authorize?{query}")
    }
}

/// The query string's decoded pairs.
fn query_pairs(req: &Request) -> Vec<(String, String)> {
    form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// The authorization request `pairs`, checked; a refusal is an error page
/// for problems with the client or redirect URI (never a redirect), a
/// redirect to the client otherwise (RFC 6749 §4.1.2.1).
async fn checked(
    state: &AppState,
    pairs: &[(String, String)],
) -> Result<(ValidRequest, Client), PageError> {
    check(state, pairs).await.map_err(|r| match r {
        Refusal::Authorize(e) => refused(state, pairs, e),
        Refusal::Flow(e) => e.into(),
    })
}

/// The page or redirect of a protocol error. The page (a problem with the
/// client or its redirect URI) shows the `client_id` and `redirect_uri`
/// that were sent, so the person or the app's developer can see what is
/// wrong.
fn refused(state: &AppState, pairs: &[(String, String)], e: AuthorizeError) -> PageError {
    match e {
        AuthorizeError::ShowToUser { title, message } => {
            let sent = |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| k == name)
                    .map_or_else(|| "(none)".to_string(), |(_, v)| v.clone())
            };
            PageError::new(StatusCode::BAD_REQUEST, title, message).with_details(vec![
                ("Client ID sent", sent("client_id")),
                ("Redirect URI sent", sent("redirect_uri")),
            ])
        }
        AuthorizeError::Redirect { target, error } => {
            PageError::Redirect(error_redirect_url(&target, &error, &state.cfg.issuer))
        }
    }
}

fn consent_page(
    state: &AppState,
    csrf: &CsrfToken,
    session: &Session,
    pairs: &[(String, String)],
    valid: &ValidRequest,
    client: &Client,
) -> Response {
    let redirect_host = url::Url::parse(&valid.target.uri)
        .ok()
        .and_then(|u| {
            let host = u.host_str()?.to_string();
            // `port()` is `None` for the scheme's default port.
            Some(match u.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            })
        })
        .unwrap_or_default();
    let logo = client
        .logo_uri
        .as_deref()
        .and_then(|l| url::Url::parse(l).ok())
        .filter(|u| u.scheme() == "https" && u.host_str().is_some());
    let client_uri = client
        .client_uri
        .as_deref()
        .and_then(|l| url::Url::parse(l).ok())
        .filter(|u| matches!(u.scheme(), "https" | "http") && u.host_str().is_some());
    let mut resp = render(
        &ConsentPage {
            nav: nav_for(state, Some(session), csrf),
            csrf_token: csrf.0.clone(),
            action: authorize_url(pairs),
            client_name: client.client_name.clone(),
            client_id: valid.client_id.clone(),
            redirect_host,
            logo_uri: logo.as_ref().map(|u| u.to_string()),
            client_uri: client_uri.map(|u| u.to_string()),
            scopes: valid
                .scope
                .iter()
                .map(|s| ScopeView::described(s, &state.cfg.ui.scope_descriptions))
                .collect(),
            resources: valid
                .resources
                .iter()
                .map(|r| ResourceView {
                    name: r.name.clone(),
                    uri: r.uri.clone(),
                })
                .collect(),
            document_host: is_document_id(state, &valid.client_id)
                .then(|| url::Url::parse(&valid.client_id).ok())
                .flatten()
                .and_then(|u| u.host_str().map(str::to_string)),
        },
        StatusCode::OK,
    );
    if let Some(logo) = &logo {
        allow_images_from(&mut resp, &logo.origin().ascii_serialization());
    }
    resp
}

/// The login form, coming back to the request once the user has signed in
/// (without the `prompt`/`max_age` the sign-in satisfies), its username
/// prefilled with `login_hint`.
fn sign_in_first(pairs: &[(String, String)], valid: &ValidRequest) -> Response {
    let mut to = form_urlencoded::Serializer::new(String::new());
    to.append_pair("return_to", &authorize_url(&after_sign_in(pairs)));
    if let Some(hint) = &valid.login_hint {
        to.append_pair("login_hint", hint);
    }
    see_other(&format!("/login?{}", to.finish()))
}

/// The authorization request `pairs` (from the query, or a `POST` body
/// turned into one): sign in, consent, or the code at once (OpenID Connect
/// Core §3.1.2.3–4: `prompt`, `max_age`, remembered consent).
async fn authorize(
    state: &AppState,
    req: &Request,
    csrf: &CsrfToken,
    pairs: &[(String, String)],
) -> Result<Response, PageError> {
    let (valid, client) = checked(state, pairs).await?;
    let session = current_session(state, req).await?;
    let remembered = match &session {
        Some(s) if !valid.prompt.consent => remembered(state, &s.user_id, &valid).await?,
        _ => None,
    };
    let situation = Situation {
        auth_time: session.as_ref().map(|s| s.auth_time),
        now: state.clock.now(),
        remembered: remembered.is_some(),
    };
    let step = next_step(&valid, situation).map_err(|e| refused(state, pairs, e))?;
    match (step, session, remembered) {
        (Step::Consent, Some(session), _) => {
            Ok(consent_page(state, csrf, &session, pairs, &valid, &client))
        }
        (Step::Issue, Some(session), Some(consent)) => Ok(see_other(
            &approve(state, &valid, &session, Consent::Remembered(consent)).await?,
        )),
        _ => Ok(sign_in_first(pairs, &valid)),
    }
}

/// `GET /oauth/authorize` (RFC 6749 §3.1): validate, then login or consent.
#[handler]
pub async fn authorize_get(
    state: Data<&AppState>,
    req: &Request,
    csrf: &CsrfToken,
) -> Result<Response, PageError> {
    authorize(&state, req, csrf, &query_pairs(req)).await
}

/// `POST /oauth/authorize`: the consent form (SPEC.md form contract:
/// `csrf_token` and `decision=allow|deny`, the request in the query), or
/// an authorization request sent by `POST` (OpenID Connect Core
/// §3.1.2.1: the parameters in the form body, no `csrf_token`).
///
/// A `POST` request is answered with a `303` to the same request by `GET`:
/// the login session cookie is `SameSite=Lax`, so a browser sends it with
/// a cross-site top-level `GET` but never with the client's cross-site
/// form `POST`, and the user would look signed out.
#[handler]
pub async fn authorize_post(
    state: Data<&AppState>,
    req: &Request,
    verifier: &CsrfVerifier,
    Form(body): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let field = |name: &str| {
        body.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if field("csrf_token").is_none() && field("decision").is_none() {
        return Ok(see_other(&authorize_url(&body)));
    }
    if !field("csrf_token").is_some_and(|t| verifier.is_valid(t)) {
        return Err(PageError::csrf_failed());
    }
    let (valid, _) = checked(&state, &query_pairs(req)).await?;
    let session = signed_in(&state, req).await?;
    match field("decision") {
        Some("allow") => Ok(see_other(
            &approve(&state, &valid, &session, Consent::Given).await?,
        )),
        Some("deny") => Ok(see_other(&deny(&state, &valid))),
        _ => Err(PageError::new(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "Choose Allow or Deny.",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::pages::testing::{consent, form, names, XSS};

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
        for part in [
            "value=\"tok-123\"",
            "id=\"allow\"",
            "id=\"deny\"",
            "name=\"decision\" value=\"allow\"",
            "name=\"decision\" value=\"deny\"",
        ] {
            assert!(f.contains(part), "missing {part}");
        }
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
    fn consent_names_the_resources_escaped() {
        let mut page = consent("Demo App");
        let html = page.render().unwrap();
        assert!(!html.contains("class=\"resources\""), "none named: no list");
        page.resources = vec![
            ResourceView {
                name: Some(XSS.into()),
                uri: "https://api.example/mcp?a=<b>".into(),
            },
            ResourceView {
                name: None,
                uri: "https://billing.example/".into(),
            },
        ];
        let html = page.render().unwrap();
        assert!(!html.contains("<script"));
        assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62;</strong>"));
        assert!(html.contains("https://api.example/mcp?a=&#60;b&#62;"));
        assert!(html.contains("<code class=\"resource-uri\">https://billing.example/</code>"));
        assert!(html.contains("these services only"));
    }

    #[test]
    fn consent_names_a_document_clients_host_escaped() {
        let mut page = consent(XSS);
        let html = page.render().unwrap();
        assert!(
            !html.contains("document-host"),
            "registered client: no host"
        );
        page.document_host = Some("app.example<i>".into());
        let html = page.render().unwrap();
        assert!(!html.contains("<script") && !html.contains("<i>"));
        assert!(html.contains(
            "&#60;/script&#62;</span> <span class=\"client-origin\">— from <strong class=\"document-host\">app.example&#60;i&#62;</strong></span> wants to access"
        ));
        assert!(html.contains("published at <strong>app.example&#60;i&#62;</strong>"));
    }

    /// Issue 16 item 5: the redirect host's port, the logo (no referrer),
    /// the home page and configured scope wording, all escaped.
    #[test]
    fn consent_shows_port_logo_home_page_and_scope_descriptions_escaped() {
        let html = consent("Demo App").render().unwrap();
        assert!(!html.contains("<img"), "no logo registered");
        assert!(!html.contains("client-home"));
        let mut page = consent("Demo App");
        page.redirect_host = "localhost:8081".into();
        page.logo_uri = Some("https://cdn.example/logo.png?a=1&b=\"<x>".into());
        page.client_uri = Some("https://app.example/\"onmouseover=\"x".into());
        let custom = BTreeMap::from([("api:read".to_string(), format!("Read {XSS}"))]);
        page.scopes = vec![
            ScopeView::described("api:read", &custom),
            ScopeView::described("api:write", &custom),
            ScopeView::described("email", &custom),
        ];
        let html = page.render().unwrap();
        assert!(!html.contains("<script") && !html.contains("<x>"));
        assert!(html.contains("You will be sent back to <strong>localhost:8081</strong>."));
        assert!(html.contains(
            "<img class=\"client-logo\" src=\"https://cdn.example/logo.png?a=1&#38;b=&#34;&#60;x&#62;\" alt=\"\" width=\"56\" height=\"56\" referrerpolicy=\"no-referrer\">"
        ));
        assert!(html.contains(
            "Home page <a class=\"client-home\" href=\"https://app.example/&#34;onmouseover=&#34;x\" rel=\"noopener noreferrer\">"
        ));
        assert!(html.contains("Read &#60;script&#62;alert(1)&#60;/script&#62;"));
        assert!(html.contains("Use the \u{201c}api:write\u{201d} permission."));
        assert!(html.contains("See your email address."));
    }

    #[test]
    fn consent_without_scopes_says_so() {
        let mut page = consent("Demo App");
        page.scopes.clear();
        let html = page.render().unwrap();
        assert!(html.contains("id=\"allow\""));
        assert!(!html.contains("<ul class=\"scopes\""));
    }
}
