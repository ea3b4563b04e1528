//! The authorization endpoint's request rules (RFC 6749 §3.1, §4.1.1, §4.2.1,
//! RFC 7636 §4.3, RFC 9207, RFC 9700 §2.1).
//!
//! Order matters: `client_id` and `redirect_uri` are checked first and their
//! errors are shown to the user, never redirected (RFC 6749 §4.1.2.1), so the
//! endpoint can never be used as an open redirector. Every later error is sent
//! back to the verified redirect URI with `state` and `iss`.

use std::borrow::Cow;

use super::error::{ErrorCode, OAuthError};
use super::pkce::{self, Challenge};
use super::resource::{self, Resource, ResourceId};
use super::types::{Client, GrantType, ScopeSet};

/// What the server allows beyond the registration (from `oauth.profile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// `response_type=token` for clients registered for `implicit` (legacy).
    pub implicit: bool,
    /// The password grant for clients registered for it (legacy).
    pub password: bool,
    /// PKCE on every code request, confidential clients included (OAuth 2.1).
    pub pkce_required_for_all: bool,
    /// Accept `code_challenge_method=plain`.
    pub allow_plain_pkce: bool,
}

/// `response_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseType {
    /// Authorization code (RFC 6749 §4.1).
    Code,
    /// Implicit: token in the fragment (RFC 6749 §4.2; legacy profile only).
    Token,
}

/// The recognised query parameters; a repeated one is recorded in `duplicate`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizeParams {
    /// `response_type`
    pub response_type: Option<String>,
    /// `client_id`
    pub client_id: Option<String>,
    /// `redirect_uri`
    pub redirect_uri: Option<String>,
    /// `scope`
    pub scope: Option<String>,
    /// `state`
    pub state: Option<String>,
    /// `code_challenge`
    pub code_challenge: Option<String>,
    /// `code_challenge_method`
    pub code_challenge_method: Option<String>,
    /// `response_mode` (OAuth 2.0 Multiple Response Type Encoding Practices §2.1)
    pub response_mode: Option<String>,
    /// `nonce` (OpenID Connect Core §3.1.2.1): echoed in the ID token.
    pub nonce: Option<String>,
    /// `request` (Core §6.1): not supported, refused with `request_not_supported`.
    pub request: Option<String>,
    /// `request_uri` (Core §6.2): not supported, refused with `request_uri_not_supported`.
    pub request_uri: Option<String>,
    /// `prompt` (Core §3.1.2.1): `none`, `login`, `consent`, `select_account`.
    pub prompt: Option<String>,
    /// `max_age` (Core §3.1.2.1): the longest time since sign-in, in seconds.
    pub max_age: Option<String>,
    /// `login_hint` (Core §3.1.2.1): prefills the login form's username.
    pub login_hint: Option<String>,
    /// The first parameter seen more than once (RFC 6749 §3.1: MUST NOT repeat).
    pub duplicate: Option<&'static str>,
    /// `resource` (RFC 8707 §2): the one parameter that may repeat.
    pub resource: Vec<String>,
}

impl AuthorizeParams {
    /// Collects the parameters from decoded query pairs. Empty values count as
    /// omitted; unknown parameters are ignored (RFC 6749 §3.1).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut p = Self::default();
        for (name, value) in pairs {
            if name == "resource" {
                p.resource.push(value.to_string());
                continue;
            }
            let (slot, name): (&mut Option<String>, &'static str) = match name {
                "response_type" => (&mut p.response_type, "response_type"),
                "client_id" => (&mut p.client_id, "client_id"),
                "redirect_uri" => (&mut p.redirect_uri, "redirect_uri"),
                "scope" => (&mut p.scope, "scope"),
                "state" => (&mut p.state, "state"),
                "code_challenge" => (&mut p.code_challenge, "code_challenge"),
                "code_challenge_method" => (&mut p.code_challenge_method, "code_challenge_method"),
                "response_mode" => (&mut p.response_mode, "response_mode"),
                "nonce" => (&mut p.nonce, "nonce"),
                "request" => (&mut p.request, "request"),
                "request_uri" => (&mut p.request_uri, "request_uri"),
                "prompt" => (&mut p.prompt, "prompt"),
                "max_age" => (&mut p.max_age, "max_age"),
                "login_hint" => (&mut p.login_hint, "login_hint"),
                _ => continue,
            };
            if slot.is_some() {
                p.duplicate.get_or_insert(name);
            } else if !value.is_empty() {
                *slot = Some(value.to_string());
            }
        }
        p
    }
}

/// Where errors and results go once the client and redirect URI are trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectTarget {
    /// The verified redirect URI.
    pub uri: String,
    /// `state` to echo back.
    pub state: Option<String>,
    /// Parameters go in the fragment (implicit) instead of the query.
    pub fragment: bool,
}

/// Why an authorization request failed, and therefore how to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// Unknown client or bad redirect URI: render an error page, never redirect.
    ShowToUser {
        /// Short title.
        title: &'static str,
        /// Explanation for the person.
        message: Cow<'static, str>,
    },
    /// Send the error back to the client (RFC 6749 §4.1.2.1).
    Redirect {
        /// Where.
        target: RedirectTarget,
        /// What.
        error: OAuthError,
    },
}

/// A request that passed every check: what the consent page shows and what
/// the code or token will be bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidRequest {
    /// The client.
    pub client_id: String,
    /// Where the answer goes.
    pub target: RedirectTarget,
    /// `redirect_uri` as sent (`None` when omitted): the token request must match it.
    pub redirect_uri_param: Option<String>,
    /// Code or token.
    pub response_type: ResponseType,
    /// The scope to grant.
    pub scope: ScopeSet,
    /// The PKCE challenge, if any.
    pub pkce: Option<Challenge>,
    /// The RFC 8707 resources the token will be for (empty: the default
    /// audience), as registered ([`bind_resources`]).
    pub resources: Vec<Resource>,
    /// The OpenID Connect `nonce`, bound into the code for the ID token.
    pub nonce: Option<String>,
    /// `prompt` (OpenID Connect Core §3.1.2.1).
    pub prompt: Prompt,
    /// The longest time since the user signed in, in seconds: the request's
    /// `max_age`, else the client's registered `default_max_age`.
    pub max_age: Option<i64>,
    /// `login_hint`, when it could be a username (prefills the login form).
    pub login_hint: Option<String>,
    /// The client registered a `backchannel_logout_uri`: the session must
    /// remember it was issued a code (no store write for other clients).
    pub backchannel_logout: bool,
}

/// The `prompt` values of a request (OpenID Connect Core §3.1.2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    /// `none`: answer without showing any page, or with an error.
    pub none: bool,
    /// `login`: sign the user in again.
    pub login: bool,
    /// `consent`: ask again even if the user allowed it before.
    pub consent: bool,
    /// `select_account`: let the user choose the account (keygate keeps one
    /// session per browser, so the login form is shown to pick it).
    pub select_account: bool,
}

impl Prompt {
    /// Parses the space-separated values; an unknown value, or `none` with
    /// another value (Core §3.1.2.1), is `invalid_request`.
    pub fn parse(raw: Option<&str>) -> Result<Self, OAuthError> {
        let mut p = Self::default();
        for value in raw.unwrap_or_default().split(' ').filter(|v| !v.is_empty()) {
            match value {
                "none" => p.none = true,
                "login" => p.login = true,
                "consent" => p.consent = true,
                "select_account" => p.select_account = true,
                _ => {
                    return Err(OAuthError::invalid_request(
                        "unsupported prompt value: use none, login, consent or select_account",
                    ))
                }
            }
        }
        if p.none && (p.login || p.consent || p.select_account) {
            return Err(OAuthError::invalid_request(
                "prompt=none cannot be combined with other prompt values",
            ));
        }
        Ok(p)
    }
}

/// The longest `max_age` accepted: ten years (anything longer means "any
/// sign-in will do" just as well).
const MAX_MAX_AGE: i64 = 10 * 366 * 24 * 3600;

/// Parses `max_age`: a non-negative decimal integer of seconds.
fn parse_max_age(raw: Option<&str>) -> Result<Option<i64>, OAuthError> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.is_empty() || raw.len() > 12 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(OAuthError::invalid_request(
            "max_age must be a non-negative number of seconds",
        ));
    }
    Ok(Some(
        raw.parse::<i64>().unwrap_or(MAX_MAX_AGE).min(MAX_MAX_AGE),
    ))
}

/// A `login_hint` worth prefilling: a plausible username (1–64 visible
/// characters); anything else is ignored, as Core allows for hints.
fn login_hint(raw: Option<&str>) -> Option<String> {
    raw.map(str::trim)
        .filter(|h| (1..=64).contains(&h.chars().count()))
        .filter(|h| !h.chars().any(char::is_control))
        .map(str::to_string)
}

/// What the authorization endpoint does with a valid request, given the
/// browser's login session (OpenID Connect Core §3.1.2.3, §3.1.2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Show the login form, then come back ([`after_sign_in`]).
    SignIn,
    /// Show the consent page.
    Consent,
    /// Issue the code (or token) now: the user is signed in recently enough
    /// and allowed this client these scopes before.
    Issue,
}

/// The browser's situation at the authorization endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Situation {
    /// When the session's user signed in; `None`: nobody is signed in.
    pub auth_time: Option<i64>,
    /// Now (seconds since the epoch).
    pub now: i64,
    /// The user allowed this client this scope (and these resources) before.
    pub remembered: bool,
}

/// Decides the next step: sign in when there is no session, when
/// `prompt=login` or `select_account` asks for it, or when the sign-in is
/// older than `max_age`; consent unless it is remembered (and
/// `prompt=consent` does not ask again). With `prompt=none` a needed page
/// is an error redirect instead: `login_required` or `consent_required`.
pub fn next_step(req: &ValidRequest, s: Situation) -> Result<Step, AuthorizeError> {
    let fail = |code: ErrorCode, d: &'static str| AuthorizeError::Redirect {
        target: req.target.clone(),
        error: OAuthError::new(code, d),
    };
    let too_old = |at: i64| req.max_age.is_some_and(|max| s.now - at > max);
    let sign_in = match s.auth_time {
        None => true,
        Some(at) => req.prompt.login || req.prompt.select_account || too_old(at),
    };
    if sign_in {
        return if req.prompt.none {
            Err(fail(
                ErrorCode::LoginRequired,
                "the user must sign in (prompt=none)",
            ))
        } else {
            Ok(Step::SignIn)
        };
    }
    if req.prompt.consent || !s.remembered {
        return if req.prompt.none {
            Err(fail(
                ErrorCode::ConsentRequired,
                "the user has not allowed this client these scopes (prompt=none)",
            ))
        } else {
            Ok(Step::Consent)
        };
    }
    Ok(Step::Issue)
}

/// The authorization request to come back to once the user has signed in:
/// the same parameters without what the sign-in just satisfied (`prompt`'s
/// `login` and `select_account`, `max_age`), so the request does not send
/// the user to the login form again. The ID token's `auth_time` tells the
/// client when the sign-in happened.
pub fn after_sign_in(pairs: &[(String, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .filter(|(k, _)| k != "max_age")
        .filter_map(|(k, v)| {
            if k != "prompt" {
                return Some((k.clone(), v.clone()));
            }
            let rest: Vec<&str> = v
                .split(' ')
                .filter(|p| !p.is_empty() && *p != "login" && *p != "select_account")
                .collect();
            (!rest.is_empty()).then(|| (k.clone(), rest.join(" ")))
        })
        .collect()
}

fn show(title: &'static str, message: impl Into<Cow<'static, str>>) -> AuthorizeError {
    AuthorizeError::ShowToUser {
        title,
        message: message.into(),
    }
}

/// Step 1: the client id as sent (an error page if it is missing or repeated).
pub fn client_id(p: &AuthorizeParams) -> Result<&str, AuthorizeError> {
    if matches!(p.duplicate, Some("client_id") | Some("redirect_uri")) {
        return Err(show(
            "Invalid request",
            "The request repeats client_id or redirect_uri.",
        ));
    }
    p.client_id
        .as_deref()
        .ok_or_else(|| show("Invalid request", "The request has no client_id."))
}

/// Step 2: every rule, given the registered client (`None` if unknown).
pub fn validate(
    p: &AuthorizeParams,
    client: Option<&Client>,
    policy: &Policy,
) -> Result<ValidRequest, AuthorizeError> {
    client_id(p)?;
    let client = client.ok_or_else(|| {
        show(
            "Unknown application",
            "The application that sent you here is not registered with this server.",
        )
    })?;
    // Exact string match (RFC 9700 §4.1.3) but any port on a loopback URI
    // (RFC 8252 §7.3); a single registered URI may be omitted.
    let uri = match (&p.redirect_uri, client.redirect_uris.as_slice()) {
        (Some(given), _) if client.has_redirect_uri(given) => given.clone(),
        (Some(_), _) => {
            return Err(show(
                "Invalid redirect URI",
                "The redirect URI in the request is not registered for this application.",
            ))
        }
        (None, [only]) => only.clone(),
        (None, []) => {
            return Err(show(
                "Invalid request",
                "This application has no registered redirect URI.",
            ))
        }
        (None, _) => {
            return Err(show(
                "Invalid request",
                "This application has several redirect URIs, so the request must name one.",
            ))
        }
    };
    // Implicit answers (and its errors) go in the fragment (RFC 6749 §4.2.2);
    // when implicit is disabled, `token` is just an unsupported type.
    let response_type = match p.response_type.as_deref() {
        Some("token") if policy.implicit => ResponseType::Token,
        _ => ResponseType::Code,
    };
    let mut target = RedirectTarget {
        uri,
        state: p.state.clone(),
        fragment: response_type == ResponseType::Token,
    };
    // `response_mode` (Multiple Response Type Encoding Practices §2.1):
    // `query` and `fragment` are served (and advertised); anything else, or
    // tokens in a query (§2.1 MUST NOT), is `invalid_request`, sent in the
    // response type's default mode.
    match (p.response_mode.as_deref(), response_type) {
        (None, _) => {}
        (Some("fragment"), _) => target.fragment = true,
        (Some("query"), ResponseType::Code) => target.fragment = false,
        (Some("query"), ResponseType::Token) => {
            return Err(AuthorizeError::Redirect {
                target,
                error: OAuthError::invalid_request(
                    "response_mode=query may not carry tokens; use fragment",
                ),
            })
        }
        (Some(_), _) => {
            return Err(AuthorizeError::Redirect {
                target,
                error: OAuthError::invalid_request(
                    "unsupported response_mode: this server answers in `query` or `fragment`",
                ),
            })
        }
    }
    let fail = |code: ErrorCode, d: &'static str| AuthorizeError::Redirect {
        target: target.clone(),
        error: OAuthError::new(code, d),
    };
    if let Some(name) = p.duplicate {
        return Err(AuthorizeError::Redirect {
            target: target.clone(),
            error: OAuthError::invalid_request(format!(
                "parameter `{name}` is included more than once"
            )),
        });
    }
    // OpenID Connect Core §3.1.2.6: request objects are not supported (and
    // Discovery says so); refused before anything else about the request.
    if p.request.is_some() {
        return Err(fail(
            ErrorCode::RequestNotSupported,
            "the request parameter (request object) is not supported",
        ));
    }
    if p.request_uri.is_some() {
        return Err(fail(
            ErrorCode::RequestUriNotSupported,
            "the request_uri parameter is not supported",
        ));
    }
    match p.response_type.as_deref() {
        None => {
            return Err(fail(
                ErrorCode::InvalidRequest,
                "missing required parameter `response_type`",
            ))
        }
        Some("code") => {
            if !client.allows(GrantType::AuthorizationCode) {
                return Err(fail(
                    ErrorCode::UnauthorizedClient,
                    "this client is not registered for the authorization code grant",
                ));
            }
        }
        Some("token") => {
            if !policy.implicit {
                return Err(fail(
                    ErrorCode::UnsupportedResponseType,
                    "the implicit grant is disabled on this server (oauth21 profile)",
                ));
            }
            if !client.allows(GrantType::Implicit) {
                return Err(fail(
                    ErrorCode::UnauthorizedClient,
                    "this client is not registered for the implicit grant",
                ));
            }
        }
        Some(_) => {
            return Err(fail(
                ErrorCode::UnsupportedResponseType,
                "response_type must be `code` (or `token` for implicit clients)",
            ))
        }
    }
    let scope = match p.scope.as_deref() {
        None => client.scope.clone(),
        Some(raw) => match ScopeSet::parse(raw) {
            Ok(s) if s.is_subset(&client.scope) => s,
            Ok(_) => {
                return Err(fail(
                    ErrorCode::InvalidScope,
                    "the requested scope exceeds the scope registered for this client",
                ))
            }
            Err(e) => {
                return Err(AuthorizeError::Redirect {
                    target: target.clone(),
                    error: e,
                })
            }
        },
    };
    let nonce = super::id_token::check_nonce(p.nonce.as_deref()).map_err(|error| {
        AuthorizeError::Redirect {
            target: target.clone(),
            error,
        }
    })?;
    let prompt = Prompt::parse(p.prompt.as_deref()).map_err(|error| AuthorizeError::Redirect {
        target: target.clone(),
        error,
    })?;
    let max_age =
        parse_max_age(p.max_age.as_deref()).map_err(|error| AuthorizeError::Redirect {
            target: target.clone(),
            error,
        })?;
    // OpenID Connect Registration 1.0 §2: the client's `default_max_age`
    // applies when the request has no `max_age`.
    let max_age = max_age.or(client
        .default_max_age()
        .map(|secs| secs.min(MAX_MAX_AGE as u64) as i64));
    let pkce = match response_type {
        ResponseType::Token => None,
        ResponseType::Code => {
            let pkce = pkce::parse_challenge(
                p.code_challenge.as_deref(),
                p.code_challenge_method.as_deref(),
                policy.allow_plain_pkce,
            )
            .map_err(|error| AuthorizeError::Redirect {
                target: target.clone(),
                error,
            })?;
            if pkce.is_none() && (!client.is_confidential() || policy.pkce_required_for_all) {
                return Err(fail(
                    ErrorCode::InvalidRequest,
                    "PKCE is required: send code_challenge with code_challenge_method=S256",
                ));
            }
            pkce
        }
    };
    Ok(ValidRequest {
        client_id: client.client_id.clone(),
        target,
        redirect_uri_param: p.redirect_uri.clone(),
        response_type,
        scope,
        pkce,
        resources: vec![],
        nonce,
        prompt,
        max_age,
        login_hint: login_hint(p.login_hint.as_deref()),
        backchannel_logout: client.backchannel_logout_uri.is_some(),
    })
}

/// Step 3 (RFC 8707 §2), after [`validate`]: `requested` is the parse of
/// the `resource` values ([`resource::requested`]) and `found[i]` the
/// registered resource for `requested[i]`. Every one must be registered and
/// every scope must be accepted by one of them; an asked-for `scope`
/// strictly, the client's default scope cut down. Errors go back to the
/// client (`invalid_target`, with `state` and `iss`).
pub fn bind_resources(
    p: &AuthorizeParams,
    mut req: ValidRequest,
    requested: Result<Vec<ResourceId>, OAuthError>,
    found: &[Option<Resource>],
) -> Result<ValidRequest, AuthorizeError> {
    let fail = |error| AuthorizeError::Redirect {
        target: req.target.clone(),
        error,
    };
    let requested = requested.map_err(fail)?;
    if requested.is_empty() {
        return Ok(req);
    }
    let (chosen, scope) =
        resource::select(&requested, found, &req.scope, p.scope.is_some()).map_err(fail)?;
    req.scope = scope;
    req.resources = chosen;
    Ok(req)
}

/// The URL to send the browser to: `params`, then `state` and `iss` (RFC 9207),
/// in the query (code) or fragment (implicit). An existing query in the
/// registered URI is kept (RFC 6749 §3.1.2).
pub fn redirect_url(target: &RedirectTarget, params: &[(&str, &str)], issuer: &str) -> String {
    let mut extra = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        extra.append_pair(k, v);
    }
    if let Some(state) = &target.state {
        extra.append_pair("state", state);
    }
    extra.append_pair("iss", issuer);
    let extra = extra.finish();
    match url::Url::parse(&target.uri) {
        Ok(mut url) => {
            if target.fragment {
                url.set_fragment(Some(&extra));
            } else {
                let query = match url.query() {
                    Some(q) if !q.is_empty() => format!("{q}&{extra}"),
                    _ => extra,
                };
                url.set_query(Some(&query));
            }
            url.to_string()
        }
        // Registered URIs are validated absolute URIs; keep a safe fallback.
        Err(_) => format!(
            "{}{}{extra}",
            target.uri,
            if target.fragment { '#' } else { '?' }
        ),
    }
}

/// The error redirect for `error` (RFC 6749 §4.1.2.1, §4.2.2.1).
pub fn error_redirect_url(target: &RedirectTarget, error: &OAuthError, issuer: &str) -> String {
    redirect_url(
        target,
        &[
            ("error", error.code.as_str()),
            ("error_description", &error.description),
        ],
        issuer,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::types::AuthMethod;

    const POLICY: Policy = Policy {
        implicit: false,
        password: false,
        pkce_required_for_all: true,
        allow_plain_pkce: false,
    };
    const LEGACY: Policy = Policy {
        implicit: true,
        password: true,
        pkce_required_for_all: false,
        allow_plain_pkce: false,
    };
    const CH: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn client() -> Client {
        Client {
            client_id: "app".into(),
            client_name: "App".into(),
            secret_sha256: Some([0; 32]),
            auth_method: AuthMethod::ClientSecretBasic,
            grant_types: vec![GrantType::AuthorizationCode, GrantType::Implicit],
            redirect_uris: vec!["https://app.example/cb".into()],
            scope: ScopeSet::parse("profile email").unwrap(),
            created_at: 0,
            ..Default::default()
        }
    }

    fn params(q: &str) -> AuthorizeParams {
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(q.as_bytes()).into_owned().collect();
        AuthorizeParams::from_pairs(pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())))
    }

    fn code_q(extra: &str) -> String {
        format!("response_type=code&client_id=app&code_challenge={CH}&code_challenge_method=S256{extra}")
    }

    #[test]
    fn client_and_redirect_errors_are_never_redirected() {
        for q in [
            "response_type=code",
            "response_type=code&client_id=app&client_id=app",
            "response_type=code&client_id=app&redirect_uri=https://evil.example/cb",
            "response_type=code&client_id=app&redirect_uri=https://app.example/cb/",
            "response_type=code&client_id=app&redirect_uri=https://APP.example/cb",
            "response_type=code&client_id=app&redirect_uri=https://app.example/cb?x=1",
        ] {
            let r = validate(&params(q), Some(&client()), &POLICY);
            assert!(
                matches!(r, Err(AuthorizeError::ShowToUser { .. })),
                "{q}: {r:?}"
            );
        }
        let r = validate(
            &params("response_type=code&client_id=nobody"),
            None,
            &POLICY,
        );
        assert!(matches!(r, Err(AuthorizeError::ShowToUser { .. })));
    }

    fn redirected_code(q: &str, policy: &Policy) -> ErrorCode {
        match validate(&params(q), Some(&client()), policy) {
            Err(AuthorizeError::Redirect { error, target }) => {
                assert_eq!(target.uri, "https://app.example/cb");
                error.code
            }
            other => panic!("{q}: {other:?}"),
        }
    }

    /// OpenID Connect Core §3.1.2.6: `request` and `request_uri` are
    /// refused with their own codes once the client and redirect URI are
    /// trusted (an unknown client still gets the page); a `nonce` is bound
    /// into the request, an over-long one is `invalid_request`.
    #[test]
    fn request_objects_are_refused_and_the_nonce_is_kept() {
        let jwt = "&request=eyJhbGciOiJub25lIn0.e30.";
        assert_eq!(
            redirected_code(&code_q(jwt), &POLICY),
            ErrorCode::RequestNotSupported
        );
        assert_eq!(
            redirected_code(&code_q("&request_uri=https://app.example/r.jwt"), &POLICY),
            ErrorCode::RequestUriNotSupported
        );
        let r = validate(&params(&format!("client_id=nobody{jwt}")), None, &POLICY);
        assert!(matches!(r, Err(AuthorizeError::ShowToUser { .. })));
        let ok = validate(&params(&code_q("&nonce=n-0S6")), Some(&client()), &POLICY).unwrap();
        assert_eq!(ok.nonce.as_deref(), Some("n-0S6"));
        let long = format!("&nonce={}", "n".repeat(513));
        assert_eq!(
            redirected_code(&code_q(&long), &POLICY),
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn other_errors_redirect_with_rfc_codes() {
        assert_eq!(
            redirected_code("client_id=app", &POLICY),
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            redirected_code("client_id=app&response_type=id_token", &POLICY),
            ErrorCode::UnsupportedResponseType
        );
        assert_eq!(
            redirected_code(&code_q("&scope=admin"), &POLICY),
            ErrorCode::InvalidScope
        );
        assert_eq!(
            redirected_code(&code_q("&state=a&state=b"), &POLICY),
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            redirected_code("response_type=code&client_id=app", &POLICY),
            ErrorCode::InvalidRequest,
            "PKCE required"
        );
        assert_eq!(
            redirected_code(
                &format!("response_type=code&client_id=app&code_challenge={CH}"),
                &POLICY
            ),
            ErrorCode::InvalidRequest,
            "plain (missing method) refused"
        );
        assert_eq!(
            redirected_code("response_type=token&client_id=app", &POLICY),
            ErrorCode::UnsupportedResponseType
        );
    }

    #[test]
    fn profiles() {
        // legacy: confidential clients may skip PKCE; implicit allowed for registered clients
        let ok = validate(
            &params("response_type=code&client_id=app"),
            Some(&client()),
            &LEGACY,
        )
        .unwrap();
        assert_eq!(ok.pkce, None);
        let ok = validate(
            &params("response_type=token&client_id=app&state=s"),
            Some(&client()),
            &LEGACY,
        )
        .unwrap();
        assert!(ok.target.fragment);
        let mut public = client();
        public.auth_method = AuthMethod::None;
        let r = validate(
            &params("response_type=code&client_id=app"),
            Some(&public),
            &LEGACY,
        );
        assert!(
            matches!(r, Err(AuthorizeError::Redirect { .. })),
            "public clients always need PKCE"
        );
        let mut no_implicit = client();
        no_implicit.grant_types = vec![GrantType::AuthorizationCode];
        let r = validate(
            &params("response_type=token&client_id=app"),
            Some(&no_implicit),
            &LEGACY,
        );
        assert!(
            matches!(r, Err(AuthorizeError::Redirect { error, .. }) if error.code == ErrorCode::UnauthorizedClient)
        );
    }

    #[test]
    fn valid_request_defaults() {
        let ok = validate(&params(&code_q("&state=xyz")), Some(&client()), &POLICY).unwrap();
        assert_eq!(ok.scope.to_string(), "email profile");
        assert_eq!(ok.redirect_uri_param, None);
        assert_eq!(ok.target.state.as_deref(), Some("xyz"));
        assert_eq!(ok.response_type, ResponseType::Code);
    }

    #[test]
    fn redirect_urls_carry_state_and_iss() {
        let t = RedirectTarget {
            uri: "https://app.example/cb?keep=1".into(),
            state: Some("a b&c".into()),
            fragment: false,
        };
        let u = redirect_url(&t, &[("code", "xyz")], "https://issuer.example");
        assert_eq!(
            u,
            "https://app.example/cb?keep=1&code=xyz&state=a+b%26c&iss=https%3A%2F%2Fissuer.example"
        );
        let t = RedirectTarget {
            uri: "https://app.example/cb".into(),
            state: None,
            fragment: true,
        };
        let u = error_redirect_url(
            &t,
            &OAuthError::new(ErrorCode::AccessDenied, "no"),
            "https://i",
        );
        assert_eq!(
            u,
            "https://app.example/cb#error=access_denied&error_description=no&iss=https%3A%2F%2Fi"
        );
    }

    fn valid(q: &str) -> ValidRequest {
        validate(&params(q), Some(&client()), &LEGACY).unwrap()
    }

    #[test]
    fn prompt_values_parse_and_none_stands_alone() {
        let p = Prompt::parse(Some("login consent")).unwrap();
        assert!(p.login && p.consent && !p.none && !p.select_account);
        assert_eq!(Prompt::parse(None).unwrap(), Prompt::default());
        assert!(Prompt::parse(Some("none")).unwrap().none);
        for bad in ["none login", "none consent", "sometimes", "LOGIN"] {
            assert_eq!(
                Prompt::parse(Some(bad)).unwrap_err().code,
                ErrorCode::InvalidRequest,
                "{bad}"
            );
        }
    }

    #[test]
    fn max_age_is_a_non_negative_integer() {
        assert_eq!(parse_max_age(Some("0")).unwrap(), Some(0));
        assert_eq!(parse_max_age(Some("3600")).unwrap(), Some(3600));
        assert_eq!(
            parse_max_age(Some("999999999999")).unwrap(),
            Some(MAX_MAX_AGE)
        );
        for bad in ["-1", "1.5", "1e3", " 1", "9999999999999"] {
            assert!(parse_max_age(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn next_step_follows_the_session_prompt_max_age_and_consent() {
        let at = |auth_time, remembered| Situation {
            auth_time,
            now: 1000,
            remembered,
        };
        let base = "response_type=code&client_id=app&code_challenge=".to_string()
            + CH
            + "&code_challenge_method=S256&state=s";
        let step = |extra: &str, s| next_step(&valid(&format!("{base}{extra}")), s);
        assert_eq!(step("", at(None, false)), Ok(Step::SignIn));
        assert_eq!(step("", at(Some(900), false)), Ok(Step::Consent));
        assert_eq!(step("", at(Some(900), true)), Ok(Step::Issue));
        assert_eq!(
            step("&prompt=consent", at(Some(900), true)),
            Ok(Step::Consent)
        );
        assert_eq!(step("&prompt=login", at(Some(900), true)), Ok(Step::SignIn));
        assert_eq!(
            step("&prompt=select_account", at(Some(900), true)),
            Ok(Step::SignIn)
        );
        assert_eq!(step("&max_age=100", at(Some(900), true)), Ok(Step::Issue));
        assert_eq!(step("&max_age=99", at(Some(900), true)), Ok(Step::SignIn));
        assert_eq!(step("&max_age=0", at(Some(1000), true)), Ok(Step::Issue));
        let error = |extra: &str, s| match step(extra, s) {
            Err(AuthorizeError::Redirect { target, error }) => {
                assert_eq!(target.state.as_deref(), Some("s"));
                error.code
            }
            other => panic!("{extra}: {other:?}"),
        };
        assert_eq!(
            error("&prompt=none", at(None, true)),
            ErrorCode::LoginRequired
        );
        assert_eq!(
            error("&prompt=none&max_age=5", at(Some(900), true)),
            ErrorCode::LoginRequired
        );
        assert_eq!(
            error("&prompt=none", at(Some(900), false)),
            ErrorCode::ConsentRequired
        );
        assert_eq!(step("&prompt=none", at(Some(900), true)), Ok(Step::Issue));
    }

    #[test]
    fn the_clients_default_max_age_applies_without_max_age() {
        let mut c = client();
        c.default_max_age = Some(60);
        let q = "response_type=code&client_id=app&code_challenge=".to_string()
            + CH
            + "&code_challenge_method=S256";
        let req = validate(&params(&q), Some(&c), &LEGACY).unwrap();
        assert_eq!(req.max_age, Some(60));
        let req = validate(&params(&format!("{q}&max_age=600")), Some(&c), &LEGACY).unwrap();
        assert_eq!(req.max_age, Some(600), "the request's max_age wins");
        let req = validate(&params(&q), Some(&client()), &LEGACY).unwrap();
        assert_eq!(req.max_age, None);
    }

    #[test]
    fn the_way_back_from_sign_in_drops_what_the_sign_in_satisfied() {
        let pairs = |q: &str| -> Vec<(String, String)> {
            form_urlencoded::parse(q.as_bytes()).into_owned().collect()
        };
        assert_eq!(
            after_sign_in(&pairs("client_id=a&prompt=login+consent&max_age=0&state=s")),
            pairs("client_id=a&prompt=consent&state=s")
        );
        assert_eq!(
            after_sign_in(&pairs("client_id=a&prompt=select_account")),
            pairs("client_id=a")
        );
    }

    #[test]
    fn login_hints_are_kept_only_when_they_could_be_a_username() {
        assert_eq!(login_hint(Some(" alice ")), Some("alice".into()));
        assert_eq!(login_hint(Some("")), None);
        assert_eq!(login_hint(Some("a\u{1}b")), None);
        assert_eq!(login_hint(Some(&"x".repeat(65))), None);
    }
}
