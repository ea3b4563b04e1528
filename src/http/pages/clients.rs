//! "My clients" pages: list, create, edit, rotate secret, delete. A signed-in
//! user sees and changes only their own clients (another user's id answers
//! 404). The secret is shown once, right after creation or rotation. Must not
//! depend on the other features' files (only on the kit).
//!
//! Every successful POST answers with a redirect (post/redirect/get), so a
//! reload never posts again. A new secret travels to the page that shows it
//! through a single-read flash in the store, bound to the session and kept
//! [`clients::SECRET_FLASH_TTL`]; reloading that page says the secret was
//! already shown. The create form and the rotate confirmation carry a
//! one-time `form_nonce`: the same form posted twice acts once, the second
//! post gets [`PageError::already_submitted`]. Rotating a secret asks for
//! confirmation first, like deleting a client.

use askama::Template;
use poem::http::StatusCode;
use poem::web::{CsrfToken, Data, Path, Query};
use poem::{handler, FromRequest, Request, RequestBody, Response};
use serde::Deserialize;

use super::kit::{nav_for, render, see_other, CsrfForm, Nav, PageError, PostedForm, SignedIn};
use crate::flows::clients::{self, ClientError, Registered};
use crate::oauth::client_meta::{
    self, ClientMetadata, ClientView, Defaults, MetadataError, OidcMetadata, RawClientMetadata,
    Rules,
};
use crate::oauth::types::Client;
use crate::state::AppState;
use crate::store::repos::Session;

/// The grant types keygate knows, in the order the client form offers them
/// (see [`offered_grants`]).
pub const KNOWN_GRANTS: [&str; 5] = [
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "password",
    "implicit",
];

/// The grant types the form offers: [`KNOWN_GRANTS`] without `password`
/// and `implicit` unless the `legacy` profile serves them.
pub fn offered_grants(legacy_grants: bool) -> Vec<String> {
    KNOWN_GRANTS
        .iter()
        .filter(|g| legacy_grants || !matches!(**g, "password" | "implicit"))
        .map(|g| g.to_string())
        .collect()
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
    /// `post_logout_redirect_uris`, one URI per line (OpenID Connect logout).
    pub post_logout_redirect_uris: String,
    /// `backchannel_logout_uri` (optional; empty when unset).
    pub backchannel_logout_uri: String,
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
/// Posts `csrf_token`, `form_nonce`, `client_name`, `redirect_uris`,
/// `grant_types` (one per checked box), `scope`, `token_endpoint_auth_method`,
/// `client_uri`, `logo_uri`, `post_logout_redirect_uris` and
/// `backchannel_logout_uri` to [`action`](Self::action). When editing, it
/// links to the rotate confirmation (`/clients/{id}/rotate`) and the delete
/// confirmation.
#[derive(Debug, Template)]
#[template(path = "client_form.html")]
pub struct ClientFormPage {
    /// Site header.
    pub nav: Nav,
    /// CSRF token for the form.
    pub csrf_token: String,
    /// One-time nonce of this form (hidden `form_nonce`): the same form
    /// posted twice creates one client.
    pub form_nonce: String,
    /// Where the form posts: `/clients` to create, `/clients/{id}` to edit.
    pub action: String,
    /// The `client_id` when editing; `None` on the create page.
    pub editing: Option<String>,
    /// Current values of the fields.
    pub values: ClientFormValues,
    /// Grant types offered as checkboxes: those the active profile serves
    /// ([`offered_grants`]); registration refuses the others.
    pub known_grants: Vec<String>,
    /// Scopes the server knows, shown as a hint under the scope field.
    pub known_scopes: Vec<String>,
    /// The validation errors of the last submission, every one at once
    /// (at most one per field); empty when there are none.
    pub errors: Vec<FieldError>,
}

impl ClientFormPage {
    /// The error message for `field`, when one of the page's errors names it.
    pub fn error_for(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field == field)
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

/// `GET /clients/{id}/secret?flash=…`, the redirect after a client is
/// created or its secret rotated: the `client_id` and, for a confidential
/// client, the plaintext secret (which is stored only as a hash and can
/// never be shown again). Shown once: a reload (the flash already read)
/// says so instead, without any secret.
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
    /// The secrets were already shown (or their time ran out): the page
    /// says so and shows none.
    pub already_shown: bool,
}

/// `GET /clients/{id}/rotate`: asks for confirmation before a new secret
/// replaces the current one; posts `csrf_token` and `form_nonce` to
/// `/clients/{id}/rotate`.
#[derive(Debug, Template)]
#[template(path = "client_rotate.html")]
pub struct ClientRotatePage {
    /// Site header.
    pub nav: Nav,
    /// CSRF token for the confirmation form.
    pub csrf_token: String,
    /// One-time nonce of the confirmation form.
    pub form_nonce: String,
    /// The client's `client_id`.
    pub client_id: String,
    /// The client's display name (untrusted: escaped).
    pub client_name: String,
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

/// The client form as posted: what was typed, the metadata it means with
/// every problem found reading it, and the form's one-time nonce.
pub struct ClientPost {
    values: ClientFormValues,
    meta: ClientMetadata,
    problems: Vec<MetadataError>,
    nonce: Option<String>,
}

/// Read with [`parse_form`] from the raw body (repeated `grant_types`), as
/// the rotate and delete forms are too.
impl PostedForm for ClientPost {
    async fn read(req: &Request, body: &mut RequestBody) -> poem::Result<(Option<String>, Self)> {
        let body = Vec::<u8>::from_request(req, body).await?;
        let (token, nonce, values, (meta, problems)) = parse_form(&body);
        Ok((
            token,
            Self {
                values,
                meta,
                problems,
                nonce,
            },
        ))
    }
}

/// Extractor: the signed-in owner of the clients shown, with what every
/// client page renders with. Without a session the page answers with the way
/// to the login page (see [`SignedIn`]).
pub struct Owner<'a> {
    state: &'a AppState,
    session: Session,
    csrf: &'a CsrfToken,
}

impl<'a> FromRequest<'a> for Owner<'a> {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let SignedIn(session) = SignedIn::from_request(req, body).await?;
        let Data(state) = <Data<&'a AppState>>::from_request_without_body(req).await?;
        let csrf = <&'a CsrfToken>::from_request_without_body(req).await?;
        Ok(Self {
            state,
            session,
            csrf,
        })
    }
}

impl Owner<'_> {
    /// The owner's user id, the filter of every client operation.
    fn id(&self) -> Option<&str> {
        Some(&self.session.user_id)
    }

    fn nav(&self) -> Nav {
        nav_for(self.state, Some(&self.session), self.csrf)
    }

    /// The create (`editing: None`) or edit form, with the rejected
    /// fields' messages when `errors` is not empty.
    fn form_page(
        &self,
        editing: Option<String>,
        values: ClientFormValues,
        errors: Vec<FieldError>,
    ) -> Response {
        let status = if !errors.is_empty() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        render(
            &ClientFormPage {
                nav: self.nav(),
                csrf_token: self.csrf.0.clone(),
                form_nonce: clients::form_nonce(),
                action: editing.as_ref().map_or_else(
                    || "/clients".into(),
                    |id| format!("/clients/{}", urlencode(id)),
                ),
                editing,
                values,
                known_grants: offered_grants(self.state.cfg.client_rules.legacy_grants),
                known_scopes: self
                    .state
                    .cfg
                    .client_rules
                    .scopes
                    .iter()
                    .map(str::to_string)
                    .collect(),
                errors,
            },
            status,
        )
    }

    /// The answer to a saved form: invalid metadata shows the form again
    /// with the field's message; other failures are error pages.
    fn saved(
        &self,
        editing: Option<String>,
        values: ClientFormValues,
        result: Result<Response, ClientError>,
    ) -> Result<Response, PageError> {
        match result {
            Ok(resp) => Ok(resp),
            Err(ClientError::Metadata(e)) => {
                Ok(self.form_page(editing, values, vec![field_error(&e)]))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every problem of the posted form under the server's `rules`: those
    /// found reading it, then those of the rules for the other fields.
    fn problems(&self, post: &ClientPost, rules: &Rules) -> Vec<FieldError> {
        let mut errors: Vec<FieldError> = post.problems.iter().map(field_error).collect();
        for e in clients::problems(&post.meta, rules) {
            let e = field_error(&e);
            if !errors.iter().any(|known| known.field == e.field) {
                errors.push(e);
            }
        }
        errors
    }

    /// Claims the posted form's nonce; a form without one (or posted
    /// before) is refused.
    async fn claim(&self, nonce: Option<&str>) -> Result<String, PageError> {
        let nonce = nonce
            .filter(|n| !n.is_empty() && n.len() <= 128)
            .ok_or_else(PageError::csrf_failed)?;
        let ttl = self.state.cfg.session.ttl;
        if clients::claim_form(&self.state.repos, nonce, ttl).await? {
            Ok(nonce.to_string())
        } else {
            Err(PageError::already_submitted())
        }
    }

    /// The redirect to the page that shows `reg`'s secrets once.
    async fn show_secret_once(
        &self,
        reg: &Registered,
        rotated: bool,
    ) -> Result<Response, ClientError> {
        let flash = clients::stash_secret(&self.state.repos, &self.session, reg, rotated).await?;
        Ok(see_other(&format!(
            "/clients/{}/secret?flash={}",
            urlencode(&reg.client.client_id),
            urlencode(&flash)
        )))
    }
}

/// The form's values for a stored client, from the one RFC 7591 view.
fn values_of(c: &Client) -> ClientFormValues {
    let v = ClientView::from(c);
    ClientFormValues {
        client_name: v.client_name,
        redirect_uris: v.redirect_uris.join("\n"),
        grant_types: v.grant_types,
        scope: v.scope,
        token_endpoint_auth_method: v.token_endpoint_auth_method,
        client_uri: v.client_uri.unwrap_or_default(),
        logo_uri: v.logo_uri.unwrap_or_default(),
        post_logout_redirect_uris: v.post_logout_redirect_uris.join("\n"),
        backchannel_logout_uri: v.backchannel_logout_uri.unwrap_or_default(),
    }
}

/// A row of the list, from the one RFC 7591 view.
fn row_of(c: &Client) -> ClientRow {
    let v = ClientView::from(c);
    ClientRow {
        created: date(v.client_id_issued_at),
        client_id: v.client_id,
        client_name: v.client_name,
        grant_types: v.grant_types.join(" "),
        auth_method: v.token_endpoint_auth_method,
    }
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Parses the posted form (repeated `grant_types`) into its CSRF token, its
/// nonce, the values, and the metadata with every problem found reading it.
fn parse_form(
    body: &[u8],
) -> (
    Option<String>,
    Option<String>,
    ClientFormValues,
    (ClientMetadata, Vec<MetadataError>),
) {
    let mut v = ClientFormValues::default();
    let mut csrf = None;
    let mut nonce = None;
    for (k, val) in form_urlencoded::parse(body) {
        let val = val.into_owned();
        match k.as_ref() {
            "csrf_token" => csrf = Some(val),
            "form_nonce" => nonce = Some(val),
            "client_name" => v.client_name = val.trim().to_string(),
            "redirect_uris" => v.redirect_uris = val,
            "grant_types" => v.grant_types.push(val),
            "scope" => v.scope = val.trim().to_string(),
            "token_endpoint_auth_method" => v.token_endpoint_auth_method = val,
            "client_uri" => v.client_uri = val.trim().to_string(),
            "logo_uri" => v.logo_uri = val.trim().to_string(),
            "post_logout_redirect_uris" => v.post_logout_redirect_uris = val,
            "backchannel_logout_uri" => v.backchannel_logout_uri = val.trim().to_string(),
            _ => {}
        }
    }
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let lines = |s: &str| {
        s.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    };
    let raw = RawClientMetadata {
        client_name: Some(v.client_name.clone()),
        redirect_uris: Some(lines(&v.redirect_uris)),
        post_logout_redirect_uris: Some(lines(&v.post_logout_redirect_uris)),
        backchannel_logout_uri: opt(&v.backchannel_logout_uri),
        grant_types: Some(v.grant_types.clone()),
        response_types: None,
        scope: Some(v.scope.clone()),
        token_endpoint_auth_method: opt(&v.token_endpoint_auth_method),
        client_uri: opt(&v.client_uri),
        logo_uri: opt(&v.logo_uri),
        ..RawClientMetadata::default()
    };
    let meta = client_meta::parse_all(raw, Defaults::form());
    (csrf, nonce, v, meta)
}

fn field_error(m: &MetadataError) -> FieldError {
    let field = match m.field {
        "response_types" => "grant_types",
        f => f,
    };
    FieldError {
        field: field.into(),
        message: m.message.clone(),
    }
}

fn date(unix: i64) -> String {
    let mut day = crate::clock::rfc3339(unix);
    day.truncate(10);
    day
}

/// `GET /clients`
#[handler]
pub async fn list(me: Owner<'_>) -> Result<Response, PageError> {
    let list = clients::list(&me.state.repos, me.id()).await?;
    let rows = list.iter().map(row_of).collect();
    let page = ClientsPage {
        nav: me.nav(),
        clients: rows,
        notice: None,
    };
    Ok(render(&page, StatusCode::OK))
}

/// `GET /clients/new`
#[handler]
pub async fn new_form(me: Owner<'_>) -> Response {
    let values = ClientFormValues {
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        scope: "profile".into(),
        token_endpoint_auth_method: "client_secret_basic".into(),
        ..Default::default()
    };
    me.form_page(None, values, Vec::new())
}

/// `POST /clients`: create, once per form (its `form_nonce`), then 303 to
/// the page that shows the secret once.
#[handler]
pub async fn create(
    me: Owner<'_>,
    CsrfForm(post): CsrfForm<ClientPost>,
) -> Result<Response, PageError> {
    let state = me.state;
    let rules = clients::rules_with_keys(&state.cfg.client_rules, &state.keys.current());
    let errors = me.problems(&post, &rules);
    if !errors.is_empty() {
        return Ok(me.form_page(None, post.values, errors));
    }
    let nonce = me.claim(post.nonce.as_deref()).await?;
    let registered = clients::register(
        &state.repos,
        post.meta,
        &rules,
        state.clock.now(),
        Some(me.session.user_id.clone()),
        true,
    )
    .await;
    let result = match registered {
        Ok(reg) => me.show_secret_once(&reg, false).await,
        Err(e) => Err(e),
    };
    if result.is_err() {
        // Nothing was created (or its secret cannot be shown): the same
        // form may be sent again.
        clients::release_form(&state.repos, &nonce).await?;
    }
    me.saved(None, post.values, result)
}

/// `GET /clients/{id}`: the edit form.
#[handler]
pub async fn edit_form(me: Owner<'_>, Path(id): Path<String>) -> Result<Response, PageError> {
    let c = clients::get(&me.state.repos, &id, me.id()).await?;
    Ok(me.form_page(Some(c.client_id.clone()), values_of(&c), Vec::new()))
}

/// `POST /clients/{id}`: save changes, then 303 to the list (or, when the
/// change issued a secret, to the page that shows it once).
#[handler]
pub async fn update(
    me: Owner<'_>,
    CsrfForm(post): CsrfForm<ClientPost>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let state = me.state;
    let old = clients::get(&state.repos, &id, me.id()).await?;
    let rules = clients::rules_with_keys(&state.cfg.client_rules, &state.keys.current());
    let errors = me.problems(&post, &rules);
    if !errors.is_empty() {
        return Ok(me.form_page(Some(id), post.values, errors));
    }
    let mut meta = post.meta;
    // The form edits the logout URIs only: the other OpenID Connect
    // fields (set through the API or the CLI) stay.
    let kept = OidcMetadata::of(&old);
    meta.oidc = OidcMetadata {
        post_logout_redirect_uris: meta.oidc.post_logout_redirect_uris,
        backchannel_logout_uri: meta.oidc.backchannel_logout_uri,
        ..kept
    };
    let result = match clients::update(&state.repos, &id, me.id(), meta, &rules).await {
        // Turning a public client confidential issues a secret: show it once.
        Ok(reg) if reg.secret.is_some() => me.show_secret_once(&reg, true).await,
        Ok(_) => Ok(see_other("/clients")),
        Err(e) => Err(e),
    };
    me.saved(Some(id), post.values, result)
}

/// `GET /clients/{id}/secret?flash=…`: the secrets of the client just
/// created or rotated, once (see [`ClientSecretPage`]).
#[handler]
pub async fn show_secret(
    me: Owner<'_>,
    Path(id): Path<String>,
    Query(q): Query<FlashQuery>,
) -> Result<Response, PageError> {
    let c = clients::get(&me.state.repos, &id, me.id()).await?;
    let flash = match q.flash.as_deref().filter(|f| f.len() <= 128) {
        Some(f) => clients::take_secret(&me.state.repos, f, &me.session, &c.client_id).await?,
        None => None,
    };
    let page = ClientSecretPage {
        nav: me.nav(),
        client_id: c.client_id,
        client_name: c.client_name,
        already_shown: flash.is_none(),
        rotated: flash.as_ref().is_some_and(|f| f.rotated),
        client_secret: flash.as_ref().and_then(|f| f.secret.clone()),
        registration_access_token: flash.and_then(|f| f.registration_token),
    };
    Ok(render(&page, StatusCode::OK))
}

/// The query of [`show_secret`].
#[derive(Debug, Deserialize)]
pub struct FlashQuery {
    /// The id of the single-read flash holding the secrets.
    flash: Option<String>,
}

/// `GET /clients/{id}/rotate`: confirmation (a public client has no
/// secret: 400).
#[handler]
pub async fn rotate_form(me: Owner<'_>, Path(id): Path<String>) -> Result<Response, PageError> {
    let c = clients::get(&me.state.repos, &id, me.id()).await?;
    if !c.is_confidential() {
        return Err(ClientError::NotApplicable("public clients have no secret to rotate").into());
    }
    let page = ClientRotatePage {
        nav: me.nav(),
        csrf_token: me.csrf.0.clone(),
        form_nonce: clients::form_nonce(),
        client_id: c.client_id,
        client_name: c.client_name,
    };
    Ok(render(&page, StatusCode::OK))
}

/// `POST /clients/{id}/rotate`: the confirmed rotation, once per
/// confirmation form, then 303 to the page that shows the new secret once.
#[handler]
pub async fn rotate(
    me: Owner<'_>,
    CsrfForm(post): CsrfForm<ClientPost>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    // Only the owner's client: another user's id is 404 before any claim.
    clients::get(&me.state.repos, &id, me.id()).await?;
    let nonce = me.claim(post.nonce.as_deref()).await?;
    let result = match clients::rotate_secret(&me.state.repos, &id, me.id()).await {
        Ok(reg) => me.show_secret_once(&reg, true).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(resp) => Ok(resp),
        Err(e) => {
            clients::release_form(&me.state.repos, &nonce).await?;
            Err(e.into())
        }
    }
}

/// `GET /clients/{id}/delete`: confirmation.
#[handler]
pub async fn delete_form(me: Owner<'_>, Path(id): Path<String>) -> Result<Response, PageError> {
    let c = clients::get(&me.state.repos, &id, me.id()).await?;
    let page = ClientDeletePage {
        nav: me.nav(),
        csrf_token: me.csrf.0.clone(),
        client_id: c.client_id,
        client_name: c.client_name,
    };
    Ok(render(&page, StatusCode::OK))
}

/// `POST /clients/{id}/delete`
#[handler]
pub async fn delete(
    me: Owner<'_>,
    CsrfForm(_): CsrfForm<ClientPost>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    clients::delete(&me.state.repos, &id, me.id()).await?;
    Ok(see_other("/clients"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::pages::testing::{form, names, nav_in, tag_with_id, XSS};

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
            form_nonce: "nonce-1".into(),
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
                post_logout_redirect_uris: "https://app.example.com/bye".into(),
                backchannel_logout_uri: String::new(),
            },
            known_grants: vec![
                "authorization_code".into(),
                "refresh_token".into(),
                "client_credentials".into(),
            ],
            known_scopes: vec!["profile".into(), "email".into()],
            errors: Vec::new(),
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
            already_shown: false,
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
        for part in [
            "Demo App",
            "CLI tool",
            "<code class=\"chip\">authorization_code</code>",
            "<code class=\"chip\">refresh_token</code>",
            "client_secret_basic",
            "28 Nov 2026",
        ] {
            assert!(html.contains(part), "missing {part}");
        }
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
                "backchannel_logout_uri",
                "client_name",
                "client_uri",
                "csrf_token",
                "form_nonce",
                "grant_types",
                "grant_types",
                "grant_types",
                "logo_uri",
                "post_logout_redirect_uris",
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
            "post_logout_redirect_uris",
            "backchannel_logout_uri",
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
        assert!(f.contains("<input type=\"hidden\" name=\"form_nonce\" value=\"nonce-1\">"));
        // Rotating asks for confirmation: a link, never a form posting here.
        assert!(html.contains(
            "<a class=\"button button-secondary\" id=\"rotate\" href=\"/clients/c1/rotate\">Rotate secret…</a>"
        ));
        assert!(!html.contains("action=\"/clients/c1/rotate\""));
        assert!(html.contains("href=\"/clients/c1/delete\">Delete this client</a>"));
        // Sign-out, client form.
        assert_eq!(html.matches("<form").count(), 2);
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
            page.errors = vec![FieldError {
                field: field.into(),
                message: format!("Bad {field} {XSS}"),
            }];
            let html = page.render().unwrap();
            assert!(!html.contains(XSS));
            let escaped = format!("Bad {field} &#60;script&#62;");
            // Summary at the top, before the form, linking to the field.
            let alert = html.find("role=\"alert\"").expect("summary");
            assert!(alert < html.find("action=\"/clients\"").unwrap());
            assert!(html.contains(&format!("<li><a href=\"#{field}\">{escaped}")));
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

    /// Issue 16 item 4: every error at once, each next to its field.
    #[test]
    fn client_form_shows_every_error_next_to_its_field() {
        let mut page = client_form(None);
        page.errors = vec![
            FieldError {
                field: "client_name".into(),
                message: "must be 1 to 200 characters".into(),
            },
            FieldError {
                field: "redirect_uris".into(),
                message: format!("`{XSS}` is not an absolute URI"),
            },
            FieldError {
                field: "scope".into(),
                message: "unknown scope(s): bogus".into(),
            },
        ];
        let html = page.render().unwrap();
        assert!(!html.contains(XSS));
        assert!(html.contains("Please correct the form (3 problems)."));
        assert_eq!(html.matches("class=\"field-error\"").count(), 3);
        assert_eq!(html.matches("<li><a href=\"#").count(), 3);
        for (field, message) in [
            ("client_name", "must be 1 to 200 characters"),
            (
                "redirect_uris",
                "`&#60;script&#62;alert(1)&#60;/script&#62;` is not",
            ),
            ("scope", "unknown scope(s): bogus"),
        ] {
            let next = format!("<p class=\"field-error\" id=\"{field}-error\">{message}");
            assert!(html.contains(&next), "{field}: {html}");
            assert!(tag_with_id(&html, field).contains("aria-invalid=\"true\""));
        }
        assert!(!tag_with_id(&html, "client_uri").contains("aria-invalid"));
    }

    #[test]
    fn client_rotate_page_confirms_with_a_one_time_form() {
        let html = ClientRotatePage {
            nav: nav_in("alice"),
            csrf_token: "tok-123".into(),
            form_nonce: "nonce-9".into(),
            client_id: "c1".into(),
            client_name: XSS.into(),
        }
        .render()
        .unwrap();
        assert!(!html.contains(XSS));
        assert!(html.contains("Rotate the secret of <span class=\"client-name\">&#60;script&#62;"));
        assert!(html.contains("The current secret stops working at once"));
        let f = form(&html, "<form method=\"post\" action=\"/clients/c1/rotate\"");
        assert_eq!(names(f), ["csrf_token", "form_nonce"]);
        assert!(f.contains("value=\"nonce-9\""));
        assert!(tag_with_id(f, "confirm-rotate").starts_with("<button type=\"submit\""));
        assert!(html.contains("href=\"/clients/c1\">Cancel</a>"));
    }

    #[test]
    fn client_secret_page_already_shown_has_no_secret() {
        let mut page = secret_page(None, false);
        page.already_shown = true;
        let html = page.render().unwrap();
        assert!(html.contains("The secret was already shown."));
        assert!(!html.contains("secret-box"));
        assert!(!html.contains("Copy it now"));
        assert!(!html.contains("it has no secret"));
        assert!(html.contains("<code id=\"client_id\" class=\"copyable\">c1</code>"));
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
        for part in [
            "&#60;script&#62;alert(1)&#60;/script&#62;</span>",
            "value=\"&#60;script&#62;alert(1)&#60;/script&#62;\"",
            "https://a.example/cb?x=&#34;&#62;&#60;script&#62;",
            "value=\"https://a.example/&#34; onfocus=&#34;alert(1)\"",
            "value=\"javascript:alert(&#39;x&#39;)\"",
        ] {
            assert!(html.contains(part), "missing {part}");
        }
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
