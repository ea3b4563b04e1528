//! `/account/apps`: the apps the signed-in user allowed (remembered
//! consent), each with a form that revokes it. Must not depend on the other
//! features' files (only on the kit and the consent page's scope wording).

use askama::Template;
use poem::http::StatusCode;
use poem::web::{CsrfToken, Data, Query};
use poem::{handler, Response};
use serde::Deserialize;

use super::authorize::ScopeView;
use super::kit::{nav_for, render, see_other, CsrfForm, Nav, PageError, SignedIn};
use crate::flows::apps::{self, AllowedAppView};
use crate::state::AppState;

/// One allowed app as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRow {
    /// The client id (the revoke form posts it).
    pub client_id: String,
    /// Display name: the registered name, the document's host, or a note
    /// that the app is no longer registered.
    pub name: String,
    /// For a client ID metadata document's client: the host vouched for.
    pub document_host: Option<String>,
    /// What it may do.
    pub scopes: Vec<ScopeView>,
    /// The services (RFC 8707 resources) it may reach.
    pub resources: Vec<String>,
    /// When the user first allowed it (YYYY-MM-DD, UTC).
    pub allowed_on: String,
}

/// `GET /account/apps`. Each revoke form posts `csrf_token` and `client_id`.
#[derive(Debug, Template)]
#[template(path = "account_apps.html")]
pub struct AppsPage {
    /// Site header.
    pub nav: Nav,
    /// CSRF token of the revoke forms.
    pub csrf_token: String,
    /// The apps, by client id.
    pub apps: Vec<AppRow>,
    /// A line about what just happened (after a revocation).
    pub notice: Option<String>,
}

fn row(app: AllowedAppView) -> AppRow {
    let mut allowed_on = crate::clock::rfc3339(app.granted_at);
    allowed_on.truncate(10);
    let name = match (&app.name, &app.document_host) {
        (Some(name), _) => name.clone(),
        (None, Some(host)) => format!("An app published at {host}"),
        (None, None) => "An app that is no longer registered".into(),
    };
    AppRow {
        name,
        document_host: app.document_host,
        scopes: app.scope.iter().map(ScopeView::for_scope).collect(),
        resources: app.resources,
        allowed_on,
        client_id: app.client_id,
    }
}

async fn page(
    state: &AppState,
    csrf: &CsrfToken,
    me: &SignedIn,
    notice: Option<String>,
) -> Result<Response, PageError> {
    let apps = apps::list(state, &me.0.user_id).await?;
    Ok(render(
        &AppsPage {
            nav: nav_for(state, Some(&me.0), csrf),
            csrf_token: csrf.0.clone(),
            apps: apps.into_iter().map(row).collect(),
            notice,
        },
        StatusCode::OK,
    ))
}

/// `?revoked=1` after a revocation.
#[derive(Deserialize)]
pub struct Done {
    revoked: Option<String>,
}

/// `GET /account/apps`
#[handler]
pub async fn list(
    state: Data<&AppState>,
    csrf: &CsrfToken,
    me: SignedIn,
    Query(done): Query<Done>,
) -> Result<Response, PageError> {
    let notice = done
        .revoked
        .is_some()
        .then(|| "Access revoked. The app has to ask you again.".to_string());
    page(&state, csrf, &me, notice).await
}

/// The revoke form.
#[derive(Deserialize)]
pub struct RevokeForm {
    client_id: Option<String>,
}

/// `POST /account/apps`: revoke one app, then back to the list.
#[handler]
pub async fn revoke(
    state: Data<&AppState>,
    me: SignedIn,
    CsrfForm(f): CsrfForm<RevokeForm>,
) -> Result<Response, PageError> {
    let Some(client_id) = f.client_id.filter(|id| !id.is_empty() && id.len() <= 2048) else {
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "Choose an app to revoke.",
        ));
    };
    if !apps::revoke(&state, &me.0.user_id, &client_id).await? {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            "Not found",
            "You have not allowed that app anything.",
        ));
    }
    Ok(see_other("/account/apps?revoked=1"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::pages::testing::{form, names, nav_in, XSS};

    fn page_with(apps: Vec<AppRow>) -> AppsPage {
        AppsPage {
            nav: nav_in("alice"),
            csrf_token: "tok-123".into(),
            apps,
            notice: None,
        }
    }

    fn app(id: &str, name: &str) -> AppRow {
        AppRow {
            client_id: id.into(),
            name: name.into(),
            document_host: None,
            scopes: vec![
                ScopeView::for_scope("openid"),
                ScopeView::for_scope("email"),
            ],
            resources: vec![],
            allowed_on: "2026-12-02".into(),
        }
    }

    #[test]
    fn each_app_has_a_revoke_form_with_csrf_and_client_id() {
        let html = page_with(vec![app("web-app", "Web App"), app("cli", "CLI")])
            .render()
            .unwrap();
        assert!(html.contains("Web App") && html.contains("CLI"));
        assert!(html.contains("See your email address."));
        let f = form(
            &html,
            "<form method=\"post\" action=\"/account/apps\" id=\"revoke-web-app\"",
        );
        assert_eq!(names(f), ["csrf_token", "client_id"]);
        assert!(f.contains("value=\"tok-123\"") && f.contains("value=\"web-app\""));
        // Two revoke forms and the nav's sign-out form.
        assert_eq!(html.matches("<form").count(), 3);
    }

    #[test]
    fn names_and_ids_are_escaped() {
        let mut a = app(XSS, XSS);
        a.document_host = Some("evil<i>.example".into());
        a.resources = vec!["https://api.example/<b>".into()];
        let html = page_with(vec![a]).render().unwrap();
        assert!(!html.contains("<script") && !html.contains("<i>") && !html.contains("<b>"));
        assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"));
    }

    #[test]
    fn no_apps_says_so() {
        let html = page_with(vec![]).render().unwrap();
        assert!(html.contains("You have not allowed any app yet."));
        assert_eq!(html.matches("<form").count(), 1);
    }
}
