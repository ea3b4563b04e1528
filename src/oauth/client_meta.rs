//! Client metadata: the one pipeline from text to a validated client and back.
//!
//! Every source of client metadata (the RFC 7591 registration body, the "my
//! clients" page form, the CLI flags, `[[clients]]` in the config file) fills
//! one [`RawClientMetadata`] with the RFC 7591 names and calls [`parse`] with
//! the [`Defaults`] of that source; [`parse`] turns the text into types, and
//! [`validate`] applies the one set of server-wide [`Rules`]. Every place that shows a client (the JSON
//! API, the CLI `--json`, the pages) renders the one [`ClientView`].
//!
//! Part of the pure core: no I/O, and it must not depend on `flows`, `http`,
//! `store` or the CLI (only on the other `oauth` modules).

use serde::Serialize;

use super::error::ErrorCode;
use super::types::{response_types_for, AuthMethod, Client, GrantType, ScopeSet};

/// Requested client metadata, before an id or secret exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMetadata {
    /// Human-readable name.
    pub client_name: String,
    /// Redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Grant types.
    pub grant_types: Vec<GrantType>,
    /// Scopes the client may request.
    pub scope: ScopeSet,
    /// Token endpoint auth method.
    pub auth_method: AuthMethod,
    /// Home page (optional).
    pub client_uri: Option<String>,
    /// Logo (optional).
    pub logo_uri: Option<String>,
    /// The OpenID Connect fields (logout, `max_age`, ID token `alg`).
    pub oidc: OidcMetadata,
}

/// The OpenID Connect client metadata keygate serves (Registration 1.0 §2,
/// RP-Initiated Logout 1.0 §3.1, Back-Channel Logout 1.0 §2.2); stored as
/// the fields of the same names on [`Client`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OidcMetadata {
    /// `post_logout_redirect_uris`
    pub post_logout_redirect_uris: Vec<String>,
    /// `backchannel_logout_uri`
    pub backchannel_logout_uri: Option<String>,
    /// `backchannel_logout_session_required`
    pub backchannel_logout_session_required: bool,
    /// `default_max_age` (seconds, at most [`MAX_DEFAULT_MAX_AGE`])
    pub default_max_age: Option<u64>,
    /// `require_auth_time`
    pub require_auth_time: bool,
    /// `id_token_signed_response_alg`
    pub id_token_signed_response_alg: Option<String>,
}

impl OidcMetadata {
    /// The fields as stored on `c`.
    pub fn of(c: &Client) -> Self {
        Self {
            post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
            backchannel_logout_uri: c.backchannel_logout_uri.clone(),
            backchannel_logout_session_required: c.backchannel_logout_session_required,
            default_max_age: c.default_max_age,
            require_auth_time: c.require_auth_time,
            id_token_signed_response_alg: c.id_token_signed_response_alg.clone(),
        }
    }

    /// Writes the fields onto `c`.
    pub fn apply_to(self, c: &mut Client) {
        c.post_logout_redirect_uris = self.post_logout_redirect_uris;
        c.backchannel_logout_uri = self.backchannel_logout_uri;
        c.backchannel_logout_session_required = self.backchannel_logout_session_required;
        c.default_max_age = self.default_max_age;
        c.require_auth_time = self.require_auth_time;
        c.id_token_signed_response_alg = self.id_token_signed_response_alg;
    }
}

/// The largest `default_max_age` accepted: one year, in seconds.
pub const MAX_DEFAULT_MAX_AGE: u64 = 365 * 24 * 3600;

/// Client metadata as text, with the RFC 7591 §2 names; `None` means the
/// source did not give the field, and [`Defaults`] says what it becomes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawClientMetadata {
    /// `client_name`
    pub client_name: Option<String>,
    /// `redirect_uris`
    pub redirect_uris: Option<Vec<String>>,
    /// `grant_types`
    pub grant_types: Option<Vec<String>>,
    /// `response_types`: when given, must match the grant types (RFC 7591 §2.1).
    pub response_types: Option<Vec<String>>,
    /// `scope`, space-separated.
    pub scope: Option<String>,
    /// `token_endpoint_auth_method`
    pub token_endpoint_auth_method: Option<String>,
    /// `client_uri`
    pub client_uri: Option<String>,
    /// `logo_uri`
    pub logo_uri: Option<String>,
    /// `post_logout_redirect_uris`
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// `backchannel_logout_uri`
    pub backchannel_logout_uri: Option<String>,
    /// `backchannel_logout_session_required`
    pub backchannel_logout_session_required: Option<bool>,
    /// `default_max_age`
    pub default_max_age: Option<u64>,
    /// `require_auth_time`
    pub require_auth_time: Option<bool>,
    /// `id_token_signed_response_alg`
    pub id_token_signed_response_alg: Option<String>,
}

/// What a field missing from [`RawClientMetadata`] becomes. The sources
/// differ, so each has a constructor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    /// Name when none is given.
    pub client_name: String,
    /// Redirect URIs when none are given.
    pub redirect_uris: Vec<String>,
    /// Grant types when none are given.
    pub grant_types: Vec<GrantType>,
    /// Scope when none is given.
    pub scope: ScopeSet,
    /// Auth method when none is given; `None`: the source must name one.
    pub auth_method: Option<AuthMethod>,
    /// Home page when none is given.
    pub client_uri: Option<String>,
    /// Logo when none is given.
    pub logo_uri: Option<String>,
    /// The OpenID Connect fields, each taken when not given.
    pub oidc: OidcMetadata,
}

impl Defaults {
    /// RFC 7591 §2 (registration, and the CLI's `client create`, whose flags
    /// always give name, grant types, scope and auth method):
    /// `grant_types` `["authorization_code"]`, `client_secret_basic`, no scope,
    /// name "Unnamed client".
    pub fn rfc7591() -> Self {
        Self {
            client_name: "Unnamed client".into(),
            redirect_uris: vec![],
            grant_types: vec![GrantType::AuthorizationCode],
            scope: ScopeSet::default(),
            auth_method: Some(AuthMethod::ClientSecretBasic),
            client_uri: None,
            logo_uri: None,
            oidc: OidcMetadata::default(),
        }
    }

    /// The page form: every field comes from the form; an empty name or grant
    /// list fails the rules, and the auth method must be chosen.
    pub fn form() -> Self {
        Self {
            client_name: String::new(),
            redirect_uris: vec![],
            grant_types: vec![],
            scope: ScopeSet::default(),
            auth_method: None,
            client_uri: None,
            logo_uri: None,
            oidc: OidcMetadata::default(),
        }
    }

    /// `[[clients]]` in the config file: the name defaults to the client id,
    /// and the auth method to `client_secret_basic` with a secret, `none` without.
    pub fn config(client_id: &str, has_secret: bool) -> Self {
        Self {
            client_name: client_id.to_string(),
            auth_method: Some(if has_secret {
                AuthMethod::ClientSecretBasic
            } else {
                AuthMethod::None
            }),
            ..Self::form()
        }
    }

    /// A change to a stored client (CLI `client update`): what is not given stays.
    pub fn from_client(c: &Client) -> Self {
        Self {
            client_name: c.client_name.clone(),
            redirect_uris: c.redirect_uris.clone(),
            grant_types: c.grant_types.clone(),
            scope: c.scope.clone(),
            auth_method: Some(c.auth_method),
            client_uri: c.client_uri.clone(),
            logo_uri: c.logo_uri.clone(),
            oidc: OidcMetadata::of(c),
        }
    }
}

/// A metadata problem: the RFC 7591 §3.2.2 code and the field it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct MetadataError {
    /// [`ErrorCode::InvalidRedirectUri`] or [`ErrorCode::InvalidClientMetadata`].
    pub code: ErrorCode,
    /// The metadata field at fault.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

impl MetadataError {
    /// `invalid_client_metadata` about `field`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::InvalidClientMetadata,
            field,
            message: message.into(),
        }
    }

    /// `invalid_redirect_uri` (always about `redirect_uris`).
    pub fn redirect_uri(message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::InvalidRedirectUri,
            field: "redirect_uris",
            message: message.into(),
        }
    }
}

/// Server-wide rules for client metadata (from the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Scopes clients may be registered for.
    pub scopes: ScopeSet,
    /// Accept `http://` redirect URIs on loopback hosts (RFC 8252 §7.3 native apps).
    pub http_loopback_redirects: bool,
    /// Accept the `implicit` and `password` grants (the `legacy` profile);
    /// under `oauth21` no new client may be registered for a grant the
    /// server does not serve.
    pub legacy_grants: bool,
    /// The JWS algorithms of the published signing keys: the only values
    /// accepted for `id_token_signed_response_alg`. Filled from the key set
    /// at the time of the change (`flows::clients::rules_with_keys`); empty
    /// where no keys are known, which refuses every value.
    pub signing_algs: Vec<String>,
}

impl Rules {
    /// The rules for `[[clients]]` entries of the config file: the same, but
    /// legacy grants are accepted under `oauth21` too (the operator wrote
    /// them; the endpoints refuse those grants and start-up warns).
    pub fn for_config_file(&self) -> Self {
        Self {
            legacy_grants: true,
            ..self.clone()
        }
    }
}

/// Turns text into typed metadata, in this order: grant type names
/// (duplicates merged), `response_types` against the grant types, auth
/// method, scope syntax; missing fields come from `defaults`.
///
/// The server-wide [`Rules`] are checked by [`validate`], which
/// `flows::clients` applies to every client it builds or changes (and config
/// validation to every `[[clients]]` entry), so a source without access to the
/// settings (the page form parser) still goes through this one conversion.
pub fn parse(raw: RawClientMetadata, defaults: Defaults) -> Result<ClientMetadata, MetadataError> {
    let (meta, problems) = parse_all(raw, defaults);
    match problems.into_iter().next() {
        Some(first) => Err(first),
        None => Ok(meta),
    }
}

/// [`parse`], but finding every problem instead of stopping at the first
/// (at most one per field, in [`parse`]'s order), so that a form can show
/// them all at once. A field that failed is left at a placeholder in the
/// returned metadata (no grant types, `client_secret_basic`, no scope),
/// which is meaningful only for checking the other fields with
/// [`validate_all`]. RFC 7591 answers keep using [`parse`] (one error).
pub fn parse_all(
    raw: RawClientMetadata,
    defaults: Defaults,
) -> (ClientMetadata, Vec<MetadataError>) {
    let mut problems = vec![];
    let grant_types = match &raw.grant_types {
        None => defaults.grant_types,
        Some(names) => {
            let mut grants = vec![];
            let mut unknown = None;
            for g in names {
                match GrantType::parse(g) {
                    Some(g) if !grants.contains(&g) => grants.push(g),
                    Some(_) => {}
                    None => {
                        unknown = Some(g);
                        break;
                    }
                }
            }
            match unknown {
                Some(g) => {
                    problems.push(MetadataError::invalid(
                        "grant_types",
                        format!("unknown grant type `{g}`"),
                    ));
                    vec![]
                }
                None => grants,
            }
        }
    };
    if let (Some(rt), true) = (&raw.response_types, problems.is_empty()) {
        if let Err(e) = check_response_types(&grant_types, rt) {
            problems.push(e);
        }
    }
    let auth_method = match raw.token_endpoint_auth_method.as_deref() {
        Some(m) => AuthMethod::parse(m).ok_or_else(|| {
            MetadataError::invalid(
                "token_endpoint_auth_method",
                format!("unsupported method `{m}`"),
            )
        }),
        None => defaults.auth_method.ok_or_else(|| {
            MetadataError::invalid(
                "token_endpoint_auth_method",
                "choose an authentication method",
            )
        }),
    }
    .unwrap_or_else(|e| {
        problems.push(e);
        AuthMethod::ClientSecretBasic
    });
    let scope = match raw.scope.as_deref() {
        Some(s) => ScopeSet::parse(s).unwrap_or_else(|e| {
            problems.push(MetadataError::invalid("scope", e.description.into_owned()));
            ScopeSet::default()
        }),
        None => defaults.scope,
    };
    let d = defaults.oidc;
    let oidc = OidcMetadata {
        post_logout_redirect_uris: raw
            .post_logout_redirect_uris
            .unwrap_or(d.post_logout_redirect_uris),
        backchannel_logout_uri: raw.backchannel_logout_uri.or(d.backchannel_logout_uri),
        backchannel_logout_session_required: raw
            .backchannel_logout_session_required
            .unwrap_or(d.backchannel_logout_session_required),
        default_max_age: raw.default_max_age.or(d.default_max_age),
        require_auth_time: raw.require_auth_time.unwrap_or(d.require_auth_time),
        id_token_signed_response_alg: raw
            .id_token_signed_response_alg
            .or(d.id_token_signed_response_alg),
    };
    let meta = ClientMetadata {
        oidc,
        client_name: raw.client_name.unwrap_or(defaults.client_name),
        redirect_uris: raw.redirect_uris.unwrap_or(defaults.redirect_uris),
        grant_types,
        scope,
        auth_method,
        client_uri: raw.client_uri.or(defaults.client_uri),
        logo_uri: raw.logo_uri.or(defaults.logo_uri),
    };
    (meta, problems)
}

/// Checks that the metadata describes a usable client: the first problem
/// [`validate_all`] finds.
pub fn validate(m: &ClientMetadata, rules: &Rules) -> Result<(), MetadataError> {
    match validate_all(m, rules).into_iter().next() {
        Some(first) => Err(first),
        None => Ok(()),
    }
}

/// Every problem of the metadata under `rules`, at most one per field, in
/// this order: name, grant types, redirect URIs, auth method,
/// `client_uri`, `logo_uri`, the OpenID Connect fields, scope. Empty when
/// the client is usable.
pub fn validate_all(m: &ClientMetadata, rules: &Rules) -> Vec<MetadataError> {
    let mut problems = vec![];
    let known_scopes = &rules.scopes;
    if m.client_name.trim().is_empty() || m.client_name.len() > 200 {
        problems.push(MetadataError::invalid(
            "client_name",
            "must be 1 to 200 characters",
        ));
    }
    if m.grant_types.is_empty() {
        problems.push(MetadataError::invalid(
            "grant_types",
            "at least one grant type is required",
        ));
    } else if !rules.legacy_grants {
        if let Some(g) = m
            .grant_types
            .iter()
            .find(|g| matches!(g, GrantType::Implicit | GrantType::Password))
        {
            problems.push(MetadataError::invalid(
                "grant_types",
                format!(
                    "the `{}` grant is not served by this server (oauth.profile = \"oauth21\")",
                    g.as_str()
                ),
            ));
        }
    }
    let needs_redirect = m
        .grant_types
        .iter()
        .any(|g| matches!(g, GrantType::AuthorizationCode | GrantType::Implicit));
    if needs_redirect && m.redirect_uris.is_empty() {
        problems.push(MetadataError::redirect_uri(
            "authorization_code and implicit clients need at least one redirect URI",
        ));
    }
    if let Some(e) = m.redirect_uris.iter().find_map(|uri| {
        check_redirect_uri(
            uri,
            rules.http_loopback_redirects,
            m.auth_method == AuthMethod::None,
        )
        .err()
    }) {
        problems.push(e);
    }
    let confidential_only = m
        .grant_types
        .iter()
        .any(|g| matches!(g, GrantType::ClientCredentials));
    if confidential_only && m.auth_method == AuthMethod::None {
        problems.push(MetadataError::invalid(
            "token_endpoint_auth_method",
            "client_credentials needs a confidential client (client_secret_basic or client_secret_post)",
        ));
    }
    for (field, uri) in [("client_uri", &m.client_uri), ("logo_uri", &m.logo_uri)] {
        if let Some(u) = uri {
            let ok = url::Url::parse(u).is_ok_and(|p| {
                p.scheme() == "https" || (p.scheme() == "http" && super::types::is_loopback_url(u))
            });
            if !ok {
                problems.push(MetadataError::invalid(
                    field,
                    format!("`{u}` must be an absolute https URL"),
                ));
            }
        }
    }
    check_oidc(
        &m.oidc,
        rules,
        m.auth_method == AuthMethod::None,
        &mut problems,
    );
    if !m.scope.is_subset(known_scopes) {
        let unknown: Vec<&str> = m
            .scope
            .iter()
            .filter(|s| !known_scopes.contains(s))
            .collect();
        problems.push(MetadataError::invalid(
            "scope",
            format!("unknown scope(s): {}", unknown.join(" ")),
        ));
    }
    problems
}

/// The OpenID Connect fields: post-logout redirect URIs under the redirect
/// URI rules ([`check_redirect_uri`]), a back-channel logout URI that is
/// https (or http on a loopback host) without fragment (Back-Channel Logout
/// 1.0 §2.2), `default_max_age` at most [`MAX_DEFAULT_MAX_AGE`], and an
/// `id_token_signed_response_alg` among `rules.signing_algs`. All
/// `invalid_client_metadata` naming the field, pushed onto `problems`.
fn check_oidc(o: &OidcMetadata, rules: &Rules, native: bool, problems: &mut Vec<MetadataError>) {
    if let Some(e) = o
        .post_logout_redirect_uris
        .iter()
        .find_map(|uri| check_redirect_uri(uri, rules.http_loopback_redirects, native).err())
    {
        problems.push(MetadataError::invalid(
            "post_logout_redirect_uris",
            e.message,
        ));
    }
    if let Some(uri) = &o.backchannel_logout_uri {
        if let Err(e) = check_backchannel_uri(uri) {
            problems.push(e);
        }
    }
    if o.default_max_age.is_some_and(|a| a > MAX_DEFAULT_MAX_AGE) {
        problems.push(MetadataError::invalid(
            "default_max_age",
            format!("must be at most {MAX_DEFAULT_MAX_AGE} seconds (one year)"),
        ));
    }
    if let Some(alg) = &o.id_token_signed_response_alg {
        if !rules.signing_algs.iter().any(|a| a == alg) {
            problems.push(MetadataError::invalid(
                "id_token_signed_response_alg",
                format!(
                    "`{alg}` is not the algorithm of a published key (published: [{}])",
                    rules.signing_algs.join(", ")
                ),
            ));
        }
    }
}

/// Back-Channel Logout 1.0 §2.2: an absolute URL, https or http on a loopback
/// host, no fragment, no whitespace or control characters; keygate POSTs
/// logout tokens to it.
pub fn check_backchannel_uri(uri: &str) -> Result<(), MetadataError> {
    let bad = |why: &str| {
        MetadataError::invalid(
            "backchannel_logout_uri",
            format!("`{}` {why}", uri.escape_debug()),
        )
    };
    if uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad("must not contain control characters or whitespace"));
    }
    let u = url::Url::parse(uri).map_err(|_| bad("is not an absolute URL"))?;
    if u.fragment().is_some() {
        return Err(bad("must not contain a fragment"));
    }
    match u.scheme() {
        "https" => Ok(()),
        "http" if super::types::is_loopback_url(uri) => Ok(()),
        _ => Err(bad("must use https (http only on a loopback host)")),
    }
}

/// The limits of anonymous registration (`registration.open`), checked on
/// top of [`validate`] for a client registered without an initial access
/// token and for every RFC 7592 update of such a client. An anonymous caller
/// gets only what a self-registering app needs to act for a user who
/// signs in and consents:
/// - grant types `authorization_code` and `refresh_token` only (no
///   `client_credentials`, `implicit` or `password`: nothing that issues
///   tokens without a user's consent at this server);
/// - redirect URIs `https`, `http` on a loopback host (any port at use,
///   RFC 8252 §7.3) or, for public clients, a private-use scheme
///   (RFC 8252 §7.1), never a fragment (whatever `rules.http_loopback_redirects`
///   says, [`validate`] may still be stricter);
/// - scopes within `open_scopes`;
/// - post-logout redirect URIs under the same rules as redirect URIs, and
///   an https back-channel logout URI only (keygate POSTs to it by itself).
///
/// The auth method may be any of `none`, `client_secret_basic`,
/// `client_secret_post`: a secret is always generated by the server.
pub fn check_open_registration(
    m: &ClientMetadata,
    open_scopes: &ScopeSet,
) -> Result<(), MetadataError> {
    if let Some(g) = m
        .grant_types
        .iter()
        .find(|g| !matches!(g, GrantType::AuthorizationCode | GrantType::RefreshToken))
    {
        return Err(MetadataError::invalid(
            "grant_types",
            format!(
                "anonymous registration allows only authorization_code and refresh_token, not `{}` \
                 (register with an initial access token for more)",
                g.as_str()
            ),
        ));
    }
    for uri in &m.redirect_uris {
        check_redirect_uri(uri, true, m.auth_method == AuthMethod::None)?;
    }
    for uri in &m.oidc.post_logout_redirect_uris {
        check_redirect_uri(uri, true, m.auth_method == AuthMethod::None)
            .map_err(|e| MetadataError::invalid("post_logout_redirect_uris", e.message))?;
    }
    // keygate POSTs to a back-channel URI by itself: an anonymous caller may
    // not point it at a port on keygate's own host.
    if let Some(uri) = &m.oidc.backchannel_logout_uri {
        if !uri.starts_with("https://") {
            return Err(MetadataError::invalid(
                "backchannel_logout_uri",
                "anonymous registration allows only an https back-channel logout URI",
            ));
        }
    }
    if !m.scope.is_subset(open_scopes) {
        let outside: Vec<&str> = m
            .scope
            .iter()
            .filter(|s| !open_scopes.contains(s))
            .collect();
        return Err(MetadataError::invalid(
            "scope",
            format!(
                "anonymous registration allows only the scopes [{}], not {}",
                open_scopes.iter().collect::<Vec<_>>().join(" "),
                outside.join(" ")
            ),
        ));
    }
    Ok(())
}

/// RFC 7591 §2.1: `response_types` must match the grant types
/// (`code` ↔ `authorization_code`, `token` ↔ `implicit`).
pub fn check_response_types(
    grants: &[GrantType],
    response_types: &[String],
) -> Result<(), MetadataError> {
    let mut expected: Vec<&str> = response_types_for(grants);
    let mut given: Vec<&str> = response_types.iter().map(String::as_str).collect();
    expected.sort_unstable();
    given.sort_unstable();
    given.dedup();
    if expected == given {
        Ok(())
    } else {
        Err(MetadataError::invalid(
            "response_types",
            format!(
                "response_types [{}] do not match grant_types (expected [{}])",
                given.join(", "),
                expected.join(", ")
            ),
        ))
    }
}

/// A redirect URI is accepted by allowlist (RFC 9700 §2.1, §4.1): absolute,
/// without fragment (RFC 6749 §3.1.2), without control characters or
/// whitespace (URL parsers strip some of them silently, so the URI matched
/// at request time would not be the one registered), and with one of these
/// schemes:
/// - `https`;
/// - `http` on a loopback host, when the rules allow it (RFC 8252 §7.3);
/// - for native apps (public clients, `native`), a private-use scheme in
///   reverse-domain form such as `com.example.app:/cb` (RFC 8252 §7.1).
///
/// Everything else (`javascript:`, `data:`, `vbscript:`, `about:`, `blob:`,
/// a custom scheme without a dot …) is refused.
pub fn check_redirect_uri(
    uri: &str,
    http_loopback: bool,
    native: bool,
) -> Result<(), MetadataError> {
    let bad = MetadataError::redirect_uri;
    if uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad(format!(
            "`{}` must not contain control characters or whitespace",
            uri.escape_debug()
        )));
    }
    let u = url::Url::parse(uri).map_err(|_| bad(format!("`{uri}` is not an absolute URI")))?;
    if u.fragment().is_some() {
        return Err(bad(format!("`{uri}` must not contain a fragment")));
    }
    match u.scheme() {
        "https" => Ok(()),
        "http" if http_loopback && super::types::is_loopback_url(uri) => Ok(()),
        "http" => Err(bad(if http_loopback {
            format!("`{uri}` must use https (http is allowed only for loopback hosts)")
        } else {
            format!("`{uri}` must use https")
        })),
        scheme if native && is_private_use_scheme(scheme) => Ok(()),
        _ => Err(bad(format!(
            "`{uri}` uses a forbidden scheme (allowed: https, http on loopback hosts, \
             and for native apps a reverse-domain private-use scheme like com.example.app)"
        ))),
    }
}

/// RFC 8252 §7.1: a private-use scheme is a reverse domain name (it contains
/// a dot), so it names its owner and collides with no registered scheme.
fn is_private_use_scheme(scheme: &str) -> bool {
    scheme.contains('.') && !scheme.starts_with('.') && !scheme.ends_with('.')
}

/// A client as every output shows it, with the RFC 7591 §2 / §3.2.1 names:
/// the JSON API builds its response from it, the CLI prints it with `--json`,
/// the pages fill their lists and forms from it. Never holds a stored hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientView {
    /// `client_id`
    pub client_id: String,
    /// `client_secret`: only right after it was issued (creation, rotation,
    /// a switch to confidential); see [`ClientView::with_secret`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// `client_id_issued_at`, seconds since the epoch.
    pub client_id_issued_at: i64,
    /// `client_secret_expires_at`: 0 (never) whenever `client_secret` is present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<i64>,
    /// `client_name`
    pub client_name: String,
    /// `redirect_uris`
    pub redirect_uris: Vec<String>,
    /// `grant_types`
    pub grant_types: Vec<String>,
    /// `response_types`, implied by the grant types (RFC 7591 §2.1).
    pub response_types: Vec<String>,
    /// `scope`, space-separated.
    pub scope: String,
    /// `token_endpoint_auth_method`
    pub token_endpoint_auth_method: String,
    /// `client_uri`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    /// `logo_uri`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    /// `post_logout_redirect_uris`
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<String>,
    /// `backchannel_logout_uri`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    /// `backchannel_logout_session_required`, shown when a back-channel
    /// logout URI is registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_session_required: Option<bool>,
    /// `default_max_age`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_max_age: Option<u64>,
    /// `require_auth_time`, shown when set.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub require_auth_time: bool,
    /// `id_token_signed_response_alg`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token_signed_response_alg: Option<String>,
}

impl ClientView {
    /// Adds the plain secret that was just issued (with
    /// `client_secret_expires_at` 0); `None` leaves both out.
    pub fn with_secret(mut self, secret: Option<String>) -> Self {
        self.client_secret_expires_at = secret.is_some().then_some(0);
        self.client_secret = secret;
        self
    }
}

impl From<&Client> for ClientView {
    fn from(c: &Client) -> Self {
        Self {
            client_id: c.client_id.clone(),
            client_secret: None,
            client_id_issued_at: c.created_at,
            client_secret_expires_at: None,
            client_name: c.client_name.clone(),
            redirect_uris: c.redirect_uris.clone(),
            grant_types: c
                .grant_types
                .iter()
                .map(|g| g.as_str().to_string())
                .collect(),
            response_types: c.response_types().into_iter().map(String::from).collect(),
            scope: c.scope.to_string(),
            token_endpoint_auth_method: c.auth_method.as_str().into(),
            client_uri: c.client_uri.clone(),
            logo_uri: c.logo_uri.clone(),
            post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
            backchannel_logout_uri: c.backchannel_logout_uri.clone(),
            backchannel_logout_session_required: c
                .backchannel_logout_uri
                .is_some()
                .then_some(c.backchannel_logout_session_required),
            default_max_age: c.default_max_age,
            require_auth_time: c.require_auth_time,
            id_token_signed_response_alg: c.id_token_signed_response_alg.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> ClientMetadata {
        ClientMetadata {
            client_name: "App".into(),
            redirect_uris: vec!["https://app.example/cb".into()],
            grant_types: vec![GrantType::AuthorizationCode],
            scope: ScopeSet::parse("profile").unwrap(),
            auth_method: AuthMethod::None,
            client_uri: None,
            logo_uri: None,
            oidc: OidcMetadata::default(),
        }
    }

    /// Issue 16 item 4: the form shows every problem at once; RFC 7591
    /// (`parse`, `validate`) still answers with the first one.
    #[test]
    fn all_problems_are_found_one_per_field_and_the_first_is_the_rfc_error() {
        let raw = RawClientMetadata {
            client_name: Some(String::new()),
            redirect_uris: Some(vec!["http://app.example/cb".into(), "javascript:x".into()]),
            grant_types: Some(vec!["authorization_code".into()]),
            scope: Some("profile bogus\u{1}".into()),
            token_endpoint_auth_method: Some("smoke_signals".into()),
            logo_uri: Some("ftp://logo.example/x.png".into()),
            ..RawClientMetadata::default()
        };
        let (meta, parsed) = parse_all(raw.clone(), Defaults::form());
        let fields: Vec<&str> = parsed.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["token_endpoint_auth_method", "scope"]);
        assert_eq!(parse(raw, Defaults::form()).unwrap_err(), parsed[0]);
        let rules = Rules {
            scopes: ScopeSet::parse("profile").unwrap(),
            http_loopback_redirects: true,
            legacy_grants: false,
            signing_algs: vec![],
        };
        let checked = validate_all(&meta, &rules);
        let fields: Vec<&str> = checked.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["client_name", "redirect_uris", "logo_uri"]);
        assert!(checked[1].message.contains("http://app.example/cb"));
        assert_eq!(validate(&meta, &rules).unwrap_err(), checked[0]);
        let mut ok = m();
        ok.scope = ScopeSet::default();
        assert!(validate_all(&ok, &rules).is_empty());
    }

    #[test]
    fn rules() {
        let known = Rules {
            scopes: ScopeSet::parse("profile email").unwrap(),
            http_loopback_redirects: true,
            legacy_grants: true,
            signing_algs: vec!["ES256".into()],
        };
        validate(&m(), &known).unwrap();
        let mut x = m();
        x.redirect_uris.clear();
        assert_eq!(
            validate(&x, &known).unwrap_err().code,
            ErrorCode::InvalidRedirectUri
        );
        let mut x = m();
        x.redirect_uris = vec!["http://app.example/cb".into()];
        assert_eq!(validate(&x, &known).unwrap_err().field, "redirect_uris");
        let mut x = m();
        x.redirect_uris = vec!["http://127.0.0.1:3000/cb".into()];
        validate(&x, &known).unwrap();
        let strict = Rules {
            http_loopback_redirects: false,
            ..known.clone()
        };
        assert_eq!(validate(&x, &strict).unwrap_err().field, "redirect_uris");
        let mut x = m();
        x.redirect_uris = vec!["https://a/cb#f".into()];
        assert!(validate(&x, &known).is_err());
    }

    /// Issue 12 item 8: under `oauth21` no client is registered for a grant
    /// the server does not serve.
    #[test]
    fn oauth21_refuses_legacy_grants() {
        let oauth21 = Rules {
            legacy_grants: false,
            ..server_rules()
        };
        for g in [GrantType::Implicit, GrantType::Password] {
            let mut x = m();
            x.grant_types.push(g);
            validate(&x, &server_rules()).unwrap();
            let e = validate(&x, &oauth21).unwrap_err();
            assert_eq!(
                (e.code, e.field),
                (ErrorCode::InvalidClientMetadata, "grant_types")
            );
            assert!(e.message.contains(g.as_str()), "{}", e.message);
        }
        validate(&m(), &oauth21).unwrap();
    }

    /// Issue 12 item 7: redirect URIs by allowlist; control characters and
    /// whitespace are refused, not stripped.
    #[test]
    fn redirect_uris_by_allowlist() {
        let known = Rules {
            scopes: ScopeSet::parse("profile email").unwrap(),
            http_loopback_redirects: true,
            legacy_grants: true,
            signing_algs: vec!["ES256".into()],
        };
        let with = |uri: &str, auth_method: AuthMethod| {
            let mut x = m();
            x.auth_method = auth_method;
            x.redirect_uris = vec![uri.into()];
            validate(&x, &known)
        };
        for uri in [
            "vbscript:msgbox(1)",
            "about:blank",
            "blob:https://a.example/x",
            "javascript:alert(1)",
            "data:text/html,x",
            "file:///etc/passwd",
            "myapp://cb",
            "https://a.example/c\rb",
            "https://a.example/c\nb",
            "https://a.example/c b",
            "https://a.example/cb\t",
            " https://a.example/cb",
        ] {
            for method in [AuthMethod::None, AuthMethod::ClientSecretBasic] {
                let e = with(uri, method).unwrap_err();
                assert_eq!(e.code, ErrorCode::InvalidRedirectUri, "{uri:?}");
            }
        }
        // A reverse-domain private-use scheme is for native (public) apps only.
        with("com.example.app:/oauth2redirect", AuthMethod::None).unwrap();
        assert!(with(
            "com.example.app:/oauth2redirect",
            AuthMethod::ClientSecretBasic
        )
        .is_err());
        with("https://a.example/cb?x=1", AuthMethod::ClientSecretBasic).unwrap();
        with("http://[::1]/cb", AuthMethod::None).unwrap();
        let mut x = m();
        x.grant_types = vec![GrantType::ClientCredentials];
        assert_eq!(
            validate(&x, &known).unwrap_err().field,
            "token_endpoint_auth_method"
        );
        let mut x = m();
        x.scope = ScopeSet::parse("admin").unwrap();
        assert_eq!(validate(&x, &known).unwrap_err().field, "scope");
    }

    fn server_rules() -> Rules {
        Rules {
            scopes: ScopeSet::parse("profile email").unwrap(),
            http_loopback_redirects: true,
            legacy_grants: true,
            signing_algs: vec!["ES256".into()],
        }
    }

    fn strings(v: &[&str]) -> Option<Vec<String>> {
        Some(v.iter().map(|s| s.to_string()).collect())
    }

    fn parse_err(raw: RawClientMetadata, d: Defaults) -> (ErrorCode, &'static str, String) {
        let e = parse(raw, d).unwrap_err();
        (e.code, e.field, e.message)
    }

    #[test]
    fn rfc7591_defaults() {
        let m = parse(RawClientMetadata::default(), Defaults::rfc7591()).unwrap();
        assert_eq!(m.client_name, "Unnamed client");
        assert_eq!(m.grant_types, vec![GrantType::AuthorizationCode]);
        assert_eq!(m.auth_method, AuthMethod::ClientSecretBasic);
        assert!(m.scope.is_empty() && m.redirect_uris.is_empty());
        assert_eq!((m.client_uri, m.logo_uri), (None, None));
    }

    #[test]
    fn form_defaults_require_a_name_grants_and_an_auth_method() {
        let (code, field, message) = parse_err(RawClientMetadata::default(), Defaults::form());
        assert_eq!(code, ErrorCode::InvalidClientMetadata);
        assert_eq!(field, "token_endpoint_auth_method");
        assert_eq!(message, "choose an authentication method");
        let raw = RawClientMetadata {
            token_endpoint_auth_method: Some("none".into()),
            ..Default::default()
        };
        let m = parse(raw, Defaults::form()).unwrap();
        assert_eq!(m.client_name, "");
        assert!(m.grant_types.is_empty());
        assert_eq!(
            validate(&m, &server_rules()).unwrap_err().field,
            "client_name"
        );
    }

    #[test]
    fn config_defaults_follow_the_secret() {
        let raw = || RawClientMetadata {
            grant_types: strings(&["client_credentials"]),
            ..Default::default()
        };
        let m = parse(raw(), Defaults::config("svc", true)).unwrap();
        assert_eq!(m.client_name, "svc");
        assert_eq!(m.auth_method, AuthMethod::ClientSecretBasic);
        let m = parse(raw(), Defaults::config("spa", false)).unwrap();
        assert_eq!(m.auth_method, AuthMethod::None);
        assert_eq!(
            validate(&m, &server_rules()).unwrap_err().field,
            "token_endpoint_auth_method"
        );
    }

    #[test]
    fn client_defaults_keep_what_is_not_given() {
        let old = Client {
            client_id: "c1".into(),
            client_name: "Old".into(),
            auth_method: AuthMethod::ClientSecretPost,
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            redirect_uris: vec!["https://app.example/cb".into()],
            scope: ScopeSet::parse("profile").unwrap(),
            client_uri: Some("https://app.example".into()),
            ..Client::default()
        };
        let raw = RawClientMetadata {
            client_name: Some("New".into()),
            scope: Some("email profile".into()),
            ..Default::default()
        };
        let m = parse(raw, Defaults::from_client(&old)).unwrap();
        assert_eq!(m.client_name, "New");
        assert_eq!(m.scope.to_string(), "email profile");
        assert_eq!(m.grant_types, old.grant_types);
        assert_eq!(m.redirect_uris, old.redirect_uris);
        assert_eq!(m.auth_method, AuthMethod::ClientSecretPost);
        assert_eq!(m.client_uri, old.client_uri);
        validate(&m, &server_rules()).unwrap();
    }

    #[test]
    fn grant_types_are_parsed_and_merged() {
        let raw = RawClientMetadata {
            grant_types: strings(&["refresh_token", "authorization_code", "refresh_token"]),
            ..Default::default()
        };
        let m = parse(raw, Defaults::rfc7591()).unwrap();
        assert_eq!(
            m.grant_types,
            vec![GrantType::RefreshToken, GrantType::AuthorizationCode]
        );
        let raw = RawClientMetadata {
            grant_types: strings(&["authorization_code", "device_code"]),
            ..Default::default()
        };
        assert_eq!(
            parse_err(raw, Defaults::rfc7591()),
            (
                ErrorCode::InvalidClientMetadata,
                "grant_types",
                "unknown grant type `device_code`".into()
            )
        );
    }

    #[test]
    fn response_types_must_match_the_grants() {
        let raw = |rt: &[&str]| RawClientMetadata {
            grant_types: strings(&["authorization_code", "implicit"]),
            response_types: strings(rt),
            ..Default::default()
        };
        parse(raw(&["token", "code", "code"]), Defaults::rfc7591()).unwrap();
        let (code, field, message) = parse_err(raw(&["code"]), Defaults::rfc7591());
        assert_eq!(code, ErrorCode::InvalidClientMetadata);
        assert_eq!(field, "response_types");
        assert_eq!(
            message,
            "response_types [code] do not match grant_types (expected [code, token])"
        );
    }

    #[test]
    fn auth_method_and_scope_syntax() {
        let raw = RawClientMetadata {
            token_endpoint_auth_method: Some("private_key_jwt".into()),
            ..Default::default()
        };
        assert_eq!(
            parse_err(raw, Defaults::rfc7591()),
            (
                ErrorCode::InvalidClientMetadata,
                "token_endpoint_auth_method",
                "unsupported method `private_key_jwt`".into()
            )
        );
        let raw = RawClientMetadata {
            scope: Some("a\"b".into()),
            ..Default::default()
        };
        let (code, field, _) = parse_err(raw, Defaults::rfc7591());
        assert_eq!((code, field), (ErrorCode::InvalidClientMetadata, "scope"));
        let raw = RawClientMetadata {
            redirect_uris: strings(&["https://app.example/cb"]),
            scope: Some("profile admin".into()),
            ..Default::default()
        };
        let m = parse(raw, Defaults::rfc7591()).unwrap();
        let e = validate(&m, &server_rules()).unwrap_err();
        assert_eq!(
            (e.code, e.field, e.message.as_str()),
            (
                ErrorCode::InvalidClientMetadata,
                "scope",
                "unknown scope(s): admin"
            )
        );
    }

    #[test]
    fn open_registration_limits() {
        let open = ScopeSet::parse("profile email").unwrap();
        check_open_registration(&m(), &open).unwrap();
        let mut x = m();
        x.grant_types = vec![GrantType::AuthorizationCode, GrantType::RefreshToken];
        x.redirect_uris = vec![
            "https://app.example/cb".into(),
            "http://127.0.0.1/cb".into(),
            "http://[::1]:8080/cb".into(),
            "com.example.app:/cb".into(),
        ];
        check_open_registration(&x, &open).unwrap();
        for g in [
            GrantType::ClientCredentials,
            GrantType::Implicit,
            GrantType::Password,
        ] {
            let mut x = m();
            x.auth_method = AuthMethod::ClientSecretBasic;
            x.grant_types.push(g);
            let e = check_open_registration(&x, &open).unwrap_err();
            assert_eq!(
                (e.code, e.field),
                (ErrorCode::InvalidClientMetadata, "grant_types")
            );
            assert!(e.message.contains(g.as_str()), "{}", e.message);
        }
        for uri in [
            "http://app.example/cb",
            "http://10.0.0.1/cb",
            "https://app.example/cb#x",
            "myapp:/cb",
        ] {
            let mut x = m();
            x.redirect_uris = vec![uri.into()];
            let e = check_open_registration(&x, &open).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRedirectUri, "{uri}");
        }
        let mut x = m();
        x.auth_method = AuthMethod::ClientSecretPost;
        x.redirect_uris = vec!["com.example.app:/cb".into()];
        assert_eq!(
            check_open_registration(&x, &open).unwrap_err().code,
            ErrorCode::InvalidRedirectUri
        );
        let mut x = m();
        x.scope = ScopeSet::parse("profile api:write").unwrap();
        let e = check_open_registration(&x, &open).unwrap_err();
        assert_eq!(e.field, "scope");
        assert_eq!(
            e.message,
            "anonymous registration allows only the scopes [email profile], not api:write"
        );
    }

    #[test]
    fn error_codes_and_fields() {
        let e = MetadataError::redirect_uri("x");
        assert_eq!(e.code.as_str(), "invalid_redirect_uri");
        assert_eq!(e.field, "redirect_uris");
        let e = MetadataError::invalid("logo_uri", "y");
        assert_eq!(e.code.as_str(), "invalid_client_metadata");
        assert_eq!(e.to_string(), "logo_uri: y");
        let mut x = m();
        x.logo_uri = Some("http://cdn.example/logo.png".into());
        assert_eq!(validate(&x, &server_rules()).unwrap_err().field, "logo_uri");
        let mut x = m();
        x.client_name = "n".repeat(201);
        assert_eq!(
            validate(&x, &server_rules()).unwrap_err().field,
            "client_name"
        );
        let mut x = m();
        x.grant_types.clear();
        assert_eq!(
            validate(&x, &server_rules()).unwrap_err().field,
            "grant_types"
        );
    }

    #[test]
    fn the_view_uses_rfc7591_names_and_shows_a_secret_only_when_issued() {
        let c = Client {
            client_id: "c1".into(),
            client_name: "App".into(),
            auth_method: AuthMethod::ClientSecretBasic,
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            redirect_uris: vec!["https://app.example/cb".into()],
            scope: ScopeSet::parse("profile email").unwrap(),
            created_at: 7,
            secret_sha256: Some([1; 32]),
            ..Client::default()
        };
        let v = serde_json::to_value(ClientView::from(&c)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "client_id": "c1",
                "client_id_issued_at": 7,
                "client_name": "App",
                "redirect_uris": ["https://app.example/cb"],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "scope": "email profile",
                "token_endpoint_auth_method": "client_secret_basic",
            })
        );
        let v = serde_json::to_value(ClientView::from(&c).with_secret(Some("s".into()))).unwrap();
        assert_eq!(v["client_secret"], "s");
        assert_eq!(v["client_secret_expires_at"], 0);
    }

    #[test]
    fn oidc_fields_are_parsed_validated_and_shown() {
        let raw = RawClientMetadata {
            redirect_uris: strings(&["https://app.example/cb"]),
            post_logout_redirect_uris: strings(&[
                "https://app.example/bye",
                "http://127.0.0.1/bye",
            ]),
            backchannel_logout_uri: Some("https://app.example/bc".into()),
            backchannel_logout_session_required: Some(true),
            default_max_age: Some(3600),
            require_auth_time: Some(true),
            id_token_signed_response_alg: Some("ES256".into()),
            ..Default::default()
        };
        let m = parse(raw, Defaults::rfc7591()).unwrap();
        validate(&m, &server_rules()).unwrap();
        let mut c = Client::default();
        m.oidc.clone().apply_to(&mut c);
        assert_eq!(OidcMetadata::of(&c), m.oidc);
        assert_eq!(c.default_max_age(), Some(3600));
        assert!(c.has_post_logout_redirect_uri("https://app.example/bye"));
        assert!(!c.has_post_logout_redirect_uri("https://app.example/bye/"));
        let v = serde_json::to_value(ClientView::from(&c)).unwrap();
        assert_eq!(v["backchannel_logout_session_required"], true);
        assert_eq!(v["id_token_signed_response_alg"], "ES256");
        // Kept by a change that does not name them.
        let kept = parse(RawClientMetadata::default(), Defaults::from_client(&c)).unwrap();
        assert_eq!(kept.oidc, m.oidc);
        // Records stored before the fields existed (they are left out when
        // unset) still parse.
        let old = serde_json::to_value(Client::default()).unwrap();
        assert!(
            old.get("post_logout_redirect_uris").is_none()
                && old.get("require_auth_time").is_none()
        );
        assert_eq!(
            serde_json::from_value::<Client>(old).unwrap(),
            Client::default()
        );
    }

    #[test]
    fn bad_oidc_fields_are_invalid_client_metadata() {
        let with = |f: &dyn Fn(&mut OidcMetadata)| {
            let mut x = m();
            f(&mut x.oidc);
            validate(&x, &server_rules()).unwrap_err()
        };
        for uri in [
            "https://app.example/bye#x",
            "http://app.example/bye",
            "javascript:alert(1)",
            "bye",
        ] {
            let e = with(&|o| o.post_logout_redirect_uris = vec![uri.into()]);
            assert_eq!(
                (e.code, e.field),
                (
                    ErrorCode::InvalidClientMetadata,
                    "post_logout_redirect_uris"
                ),
                "{uri}"
            );
        }
        for uri in [
            "http://app.example/bc",
            "https://app.example/bc#f",
            "ftp://x/y",
            "/bc",
            "https://a.example/b c",
        ] {
            let e = with(&|o| o.backchannel_logout_uri = Some(uri.into()));
            assert_eq!(
                (e.code, e.field),
                (ErrorCode::InvalidClientMetadata, "backchannel_logout_uri"),
                "{uri}"
            );
        }
        check_backchannel_uri("http://127.0.0.1:9/bc").unwrap();
        check_backchannel_uri("http://[::1]/bc?x=1").unwrap();
        let e = with(&|o| o.default_max_age = Some(MAX_DEFAULT_MAX_AGE + 1));
        assert_eq!(e.field, "default_max_age");
        let mut ok = m();
        ok.oidc.default_max_age = Some(MAX_DEFAULT_MAX_AGE);
        validate(&ok, &server_rules()).unwrap();
        for alg in ["RS256", "none", "HS256"] {
            let e = with(&|o| o.id_token_signed_response_alg = Some(alg.into()));
            assert_eq!(
                (e.code, e.field),
                (
                    ErrorCode::InvalidClientMetadata,
                    "id_token_signed_response_alg"
                ),
                "{alg}"
            );
        }
        // Open registration: the post-logout URIs follow the redirect URI limits.
        let mut x = m();
        x.oidc.post_logout_redirect_uris = vec!["http://10.0.0.1/bye".into()];
        let open = ScopeSet::parse("profile").unwrap();
        assert_eq!(
            check_open_registration(&x, &open).unwrap_err().field,
            "post_logout_redirect_uris"
        );
        let mut x = m();
        x.oidc.backchannel_logout_uri = Some("http://127.0.0.1:6379/".into());
        assert_eq!(
            check_open_registration(&x, &open).unwrap_err().field,
            "backchannel_logout_uri"
        );
        x.oidc.backchannel_logout_uri = Some("https://rp.example/bc".into());
        check_open_registration(&x, &open).unwrap();
    }
}
