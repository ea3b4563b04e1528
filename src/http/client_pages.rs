//! "My clients" pages: list, create, edit, rotate secret, delete. A signed-in
//! user sees and changes only their own clients (another user's id answers
//! 404). The secret is shown once, right after creation or rotation.

use poem::http::StatusCode;
use poem::web::{CsrfToken, CsrfVerifier, Data, Path};
use poem::{handler, Request, Response};

use super::pages::{current_session, error_page, flow_error_page, nav_for, see_other};
use super::views::{
    render, ClientDeletePage, ClientFormPage, ClientFormValues, ClientRow, ClientSecretPage,
    ClientsPage, FieldError,
};
use crate::flows::clients::{self, ClientError, Registered};
use crate::oauth::client_meta::{self, ClientMetadata, Defaults, MetadataError, RawClientMetadata};
use crate::oauth::types::Client;
use crate::state::AppState;
use crate::store::repos::Session;

const KNOWN_GRANTS: [&str; 5] = [
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "password",
    "implicit",
];

/// The signed-in user, or a redirect to the login page.
async fn signed_in(state: &AppState, req: &Request, csrf: &CsrfToken) -> Result<Session, Response> {
    match current_session(state, req).await {
        Ok(Some((_, s))) => Ok(s),
        Ok(None) => {
            let here = req.uri().path().to_string();
            let to: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("return_to", &here)
                .finish();
            Err(see_other(&format!("/login?{to}")))
        }
        Err(e) => Err(flow_error_page(state, csrf, e)),
    }
}

/// The common start of every POST: signed in, form parsed, CSRF checked.
async fn posted(
    state: &AppState,
    req: &Request,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    body: &[u8],
) -> Result<
    (
        Session,
        ClientFormValues,
        Result<ClientMetadata, MetadataError>,
    ),
    Response,
> {
    let session = signed_in(state, req, csrf).await?;
    let (token, values, meta) = parse_form(body);
    if !super::pages::csrf_valid(verifier, token.as_deref()) {
        return Err(super::pages::csrf_failed(state, csrf));
    }
    Ok((session, values, meta))
}

fn client_error(state: &AppState, csrf: &CsrfToken, e: ClientError) -> Response {
    match e {
        ClientError::NotFound => error_page(
            state,
            csrf,
            StatusCode::NOT_FOUND,
            "Client not found",
            "There is no such client among yours.",
        ),
        ClientError::NotApplicable(m) => {
            error_page(state, csrf, StatusCode::BAD_REQUEST, "Not possible", m)
        }
        ClientError::Store(s) => flow_error_page(state, csrf, s.into()),
        ClientError::Metadata(m) => error_page(
            state,
            csrf,
            StatusCode::BAD_REQUEST,
            "Invalid client",
            &m.to_string(),
        ),
    }
}

fn values_of(c: &Client) -> ClientFormValues {
    ClientFormValues {
        client_name: c.client_name.clone(),
        redirect_uris: c.redirect_uris.join("\n"),
        grant_types: c
            .grant_types
            .iter()
            .map(|g| g.as_str().to_string())
            .collect(),
        scope: c.scope.to_string(),
        token_endpoint_auth_method: c.auth_method.as_str().into(),
        client_uri: c.client_uri.clone().unwrap_or_default(),
        logo_uri: c.logo_uri.clone().unwrap_or_default(),
    }
}

fn form_page(
    state: &AppState,
    session: &Session,
    csrf: &CsrfToken,
    editing: Option<String>,
    values: ClientFormValues,
    error: Option<FieldError>,
) -> Response {
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    render(
        &ClientFormPage {
            nav: nav_for(state, Some(session), csrf),
            csrf_token: csrf.0.clone(),
            action: editing.as_ref().map_or_else(
                || "/clients".into(),
                |id| format!("/clients/{}", urlencode(id)),
            ),
            editing,
            values,
            known_grants: KNOWN_GRANTS.iter().map(|g| g.to_string()).collect(),
            known_scopes: state
                .cfg
                .client_rules
                .scopes
                .iter()
                .map(str::to_string)
                .collect(),
            error,
        },
        status,
    )
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Parses the posted form (repeated `grant_types`) into values and metadata.
fn parse_form(
    body: &[u8],
) -> (
    Option<String>,
    ClientFormValues,
    Result<ClientMetadata, MetadataError>,
) {
    let mut v = ClientFormValues::default();
    let mut csrf = None;
    for (k, val) in form_urlencoded::parse(body) {
        let val = val.into_owned();
        match k.as_ref() {
            "csrf_token" => csrf = Some(val),
            "client_name" => v.client_name = val.trim().to_string(),
            "redirect_uris" => v.redirect_uris = val,
            "grant_types" => v.grant_types.push(val),
            "scope" => v.scope = val.trim().to_string(),
            "token_endpoint_auth_method" => v.token_endpoint_auth_method = val,
            "client_uri" => v.client_uri = val.trim().to_string(),
            "logo_uri" => v.logo_uri = val.trim().to_string(),
            _ => {}
        }
    }
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let raw = RawClientMetadata {
        client_name: Some(v.client_name.clone()),
        redirect_uris: Some(
            v.redirect_uris
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect(),
        ),
        grant_types: Some(v.grant_types.clone()),
        response_types: None,
        scope: Some(v.scope.clone()),
        token_endpoint_auth_method: opt(&v.token_endpoint_auth_method),
        client_uri: opt(&v.client_uri),
        logo_uri: opt(&v.logo_uri),
    };
    let meta = client_meta::parse(raw, Defaults::form());
    (csrf, v, meta)
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

fn secret_page(
    state: &AppState,
    session: &Session,
    csrf: &CsrfToken,
    reg: &Registered,
    rotated: bool,
) -> Response {
    render(
        &ClientSecretPage {
            nav: nav_for(state, Some(session), csrf),
            client_id: reg.client.client_id.clone(),
            client_name: reg.client.client_name.clone(),
            client_secret: reg.secret.clone(),
            rotated,
            registration_access_token: reg.registration_token.clone(),
        },
        StatusCode::OK,
    )
}

fn date(unix: i64) -> String {
    let mut day = crate::clock::rfc3339(unix);
    day.truncate(10);
    day
}

/// `GET /clients`
#[handler]
pub async fn list(state: Data<&AppState>, req: &Request, csrf: &CsrfToken) -> Response {
    let session = match signed_in(&state, req, csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match clients::list(&state.repos, Some(&session.user_id)).await {
        Ok(list) => render(
            &ClientsPage {
                nav: nav_for(&state, Some(&session), csrf),
                clients: list
                    .iter()
                    .map(|c| ClientRow {
                        client_id: c.client_id.clone(),
                        client_name: c.client_name.clone(),
                        grant_types: c
                            .grant_types
                            .iter()
                            .map(|g| g.as_str())
                            .collect::<Vec<_>>()
                            .join(" "),
                        auth_method: c.auth_method.as_str().into(),
                        created: date(c.created_at),
                    })
                    .collect(),
                notice: None,
            },
            StatusCode::OK,
        ),
        Err(e) => client_error(&state, csrf, e),
    }
}

/// `GET /clients/new`
#[handler]
pub async fn new_form(state: Data<&AppState>, req: &Request, csrf: &CsrfToken) -> Response {
    let session = match signed_in(&state, req, csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let values = ClientFormValues {
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        scope: "profile".into(),
        token_endpoint_auth_method: "client_secret_basic".into(),
        ..Default::default()
    };
    form_page(&state, &session, csrf, None, values, None)
}

/// `POST /clients`: create.
#[handler]
pub async fn create(
    state: Data<&AppState>,
    req: &Request,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    body: Vec<u8>,
) -> Response {
    let (session, values, meta) = match posted(&state, req, csrf, verifier, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let meta = match meta {
        Ok(m) => m,
        Err(e) => return form_page(&state, &session, csrf, None, values, Some(field_error(&e))),
    };
    match clients::register(
        &state.repos,
        meta,
        &state.cfg.client_rules,
        state.clock.now(),
        Some(session.user_id.clone()),
        true,
    )
    .await
    {
        Ok(reg) => secret_page(&state, &session, csrf, &reg, false),
        Err(ClientError::Metadata(e)) => {
            form_page(&state, &session, csrf, None, values, Some(field_error(&e)))
        }
        Err(e) => client_error(&state, csrf, e),
    }
}

/// `GET /clients/{id}`: the edit form.
#[handler]
pub async fn edit_form(
    state: Data<&AppState>,
    req: &Request,
    csrf: &CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let session = match signed_in(&state, req, csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match clients::get(&state.repos, &id, Some(&session.user_id)).await {
        Ok(c) => form_page(
            &state,
            &session,
            csrf,
            Some(c.client_id.clone()),
            values_of(&c),
            None,
        ),
        Err(e) => client_error(&state, csrf, e),
    }
}

/// `POST /clients/{id}`: save changes.
#[handler]
pub async fn update(
    state: Data<&AppState>,
    req: &Request,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Path(id): Path<String>,
    body: Vec<u8>,
) -> Response {
    let (session, values, meta) = match posted(&state, req, csrf, verifier, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let meta = match meta {
        Ok(m) => m,
        Err(e) => {
            return form_page(
                &state,
                &session,
                csrf,
                Some(id),
                values,
                Some(field_error(&e)),
            )
        }
    };
    match clients::update(
        &state.repos,
        &id,
        Some(&session.user_id),
        meta,
        &state.cfg.client_rules,
    )
    .await
    {
        // Turning a public client confidential issues a secret: show it once.
        Ok(reg) if reg.secret.is_some() => secret_page(&state, &session, csrf, &reg, true),
        Ok(_) => see_other("/clients"),
        Err(ClientError::Metadata(e)) => form_page(
            &state,
            &session,
            csrf,
            Some(id),
            values,
            Some(field_error(&e)),
        ),
        Err(e) => client_error(&state, csrf, e),
    }
}

/// `POST /clients/{id}/rotate`
#[handler]
pub async fn rotate(
    state: Data<&AppState>,
    req: &Request,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Path(id): Path<String>,
    body: Vec<u8>,
) -> Response {
    let (session, _, _) = match posted(&state, req, csrf, verifier, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match clients::rotate_secret(&state.repos, &id, Some(&session.user_id)).await {
        Ok(reg) => secret_page(&state, &session, csrf, &reg, true),
        Err(e) => client_error(&state, csrf, e),
    }
}

/// `GET /clients/{id}/delete`: confirmation.
#[handler]
pub async fn delete_form(
    state: Data<&AppState>,
    req: &Request,
    csrf: &CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let session = match signed_in(&state, req, csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match clients::get(&state.repos, &id, Some(&session.user_id)).await {
        Ok(c) => render(
            &ClientDeletePage {
                nav: nav_for(&state, Some(&session), csrf),
                csrf_token: csrf.0.clone(),
                client_id: c.client_id,
                client_name: c.client_name,
            },
            StatusCode::OK,
        ),
        Err(e) => client_error(&state, csrf, e),
    }
}

/// `POST /clients/{id}/delete`
#[handler]
pub async fn delete(
    state: Data<&AppState>,
    req: &Request,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Path(id): Path<String>,
    body: Vec<u8>,
) -> Response {
    let (session, _, _) = match posted(&state, req, csrf, verifier, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match clients::delete(&state.repos, &id, Some(&session.user_id)).await {
        Ok(()) => see_other("/clients"),
        Err(e) => client_error(&state, csrf, e),
    }
}
