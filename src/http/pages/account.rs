//! The account page (`/account`): the signed-in user's profile, the data
//! behind the OpenID Connect claims (`name`, `preferred_username`, `email`,
//! `email_verified`). Stored users edit their name and email here (a new
//! email is unverified); config-file users see theirs read-only. Must not
//! depend on the other features' files (only on the kit).
//!
//! The form posts `csrf_token`, `name` and `email`.

use askama::Template;
use poem::http::StatusCode;
use poem::web::{CsrfToken, Data};
use poem::{handler, Response};
use serde::Deserialize;

use super::kit::{nav_for, render, CsrfForm, Nav, PageError, SignedIn};
use crate::flows::users::{self, ProfileChange, ProfileError};
use crate::state::AppState;
use crate::store::repos::{Session, User};

/// `GET /account`: the profile, as a form for stored users.
#[derive(Debug, Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    /// Site header.
    pub nav: Nav,
    /// CSRF token for the form.
    pub csrf_token: String,
    /// The login name (not editable).
    pub username: String,
    /// The full name as shown in the form (empty when unset).
    pub name: String,
    /// The email address as shown in the form (empty when unset).
    pub email: String,
    /// Whether the stored address is verified.
    pub email_verified: bool,
    /// The user comes from the config file: no form, a sentence why.
    pub read_only: bool,
    /// Why the last submission was refused (shown above the form).
    pub error: Option<String>,
    /// Outcome of the last submission, e.g. "Profile saved.".
    pub notice: Option<String>,
}

/// The posted profile form.
#[derive(Debug, Deserialize)]
pub struct ProfileForm {
    /// Full name; empty clears it.
    #[serde(default)]
    pub name: String,
    /// Email address; empty clears it.
    #[serde(default)]
    pub email: String,
}

impl AccountPage {
    fn of(nav: Nav, csrf: &CsrfToken, user: &User, read_only: bool) -> Self {
        Self {
            nav,
            csrf_token: csrf.0.clone(),
            username: user.username.clone(),
            name: user.name.clone().unwrap_or_default(),
            email: user.email.clone().unwrap_or_default(),
            email_verified: user.email_verified,
            read_only,
            error: None,
            notice: None,
        }
    }
}

/// The session's user, and whether they come from the config file.
async fn me(state: &AppState, session: &Session) -> Result<(User, bool), PageError> {
    let user = users::find_by_id(state, &session.user_id)
        .await?
        .ok_or(ProfileError::Unknown)?;
    let config = users::is_config_user(state, &user.id);
    Ok((user, config))
}

/// `GET /account`
#[handler]
pub async fn show(
    Data(state): Data<&AppState>,
    SignedIn(session): SignedIn,
    csrf: &CsrfToken,
) -> Result<Response, PageError> {
    let (user, read_only) = me(state, &session).await?;
    let page = AccountPage::of(nav_for(state, Some(&session), csrf), csrf, &user, read_only);
    Ok(render(&page, StatusCode::OK))
}

/// `POST /account`: saves the name and email; a refused value shows the
/// form again (400) with what was typed.
#[handler]
pub async fn update(
    Data(state): Data<&AppState>,
    SignedIn(session): SignedIn,
    csrf: &CsrfToken,
    CsrfForm(form): CsrfForm<ProfileForm>,
) -> Result<Response, PageError> {
    let change = ProfileChange {
        name: Some(form.name.clone()),
        email: Some(form.email.clone()),
        email_verified: None,
    };
    let nav = nav_for(state, Some(&session), csrf);
    match users::update_profile(state, &session.user_id, &change).await {
        Ok(user) => {
            let mut page = AccountPage::of(nav, csrf, &user, false);
            page.notice = Some("Profile saved.".into());
            Ok(render(&page, StatusCode::OK))
        }
        Err(ProfileError::Invalid(message)) => {
            let (user, read_only) = me(state, &session).await?;
            let page = AccountPage {
                name: form.name,
                email: form.email,
                error: Some(message.into()),
                ..AccountPage::of(nav, csrf, &user, read_only)
            };
            Ok(render(&page, StatusCode::BAD_REQUEST))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::pages::testing::{form, names, nav_in, XSS};

    fn page(read_only: bool) -> AccountPage {
        AccountPage {
            nav: nav_in("alice"),
            csrf_token: "tok-123".into(),
            username: "alice".into(),
            name: XSS.into(),
            email: format!("{XSS}@example.com"),
            email_verified: false,
            read_only,
            error: Some(XSS.into()),
            notice: None,
        }
    }

    #[test]
    fn the_profile_form_escapes_what_users_typed() {
        let html = page(false).render().unwrap();
        assert!(!html.contains(XSS), "{html}");
        assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"));
        let f = form(&html, "<form method=\"post\" action=\"/account\"");
        assert_eq!(names(f), ["csrf_token", "name", "email"]);
        assert!(f.contains("value=\"tok-123\""));
        assert!(html.contains("role=\"alert\""));
        assert!(html.contains("Not verified"));
        assert!(html.contains("href=\"/account\""), "nav links the page");
    }

    #[test]
    fn config_users_see_their_profile_read_only() {
        let mut p = page(true);
        p.error = None;
        p.email_verified = true;
        let html = p.render().unwrap();
        assert!(!html.contains("action=\"/account\""), "no form");
        assert!(html.contains("configuration file"));
        assert!(html.contains("Verified"));
        assert!(!html.contains(XSS));
    }
}
