//! Token endpoint rules (RFC 6749 §3.2, §4.4, §5), RFC 9068 access token
//! claims, and refresh token reuse with its grace window for retries
//! (RFC 9700 §4.14.2: [`redeem_refresh`], [`grace_retry`]).
//!
//! Depends on [`super::grace`] for sealing and opening the successor pair;
//! `grace` is crypto only and never imports these rules.

use serde::{Deserialize, Serialize};

use super::error::{ErrorCode, OAuthError};
use super::grace::{self, GraceContents, GraceSeal};
use super::pkce::{self, Challenge};
use super::resource::{self, Audience, ResourceId, Target};
use super::types::{Client, GrantType, ScopeSet};

/// The recognised token request parameters (RFC 6749 §4.1.3, §4.3.2, §4.4.2, §6).
/// Unrecognised parameters are ignored (RFC 6749 §3.2); empty values count as
/// omitted (RFC 6749 §3.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenParams {
    /// `grant_type`
    pub grant_type: Option<String>,
    /// `scope`
    pub scope: Option<String>,
    /// `client_id`
    pub client_id: Option<String>,
    /// `client_secret`
    pub client_secret: Option<String>,
    /// `code`
    pub code: Option<String>,
    /// `redirect_uri`
    pub redirect_uri: Option<String>,
    /// `code_verifier`
    pub code_verifier: Option<String>,
    /// `refresh_token`
    pub refresh_token: Option<String>,
    /// `username`
    pub username: Option<String>,
    /// `password`
    pub password: Option<String>,
    /// `token` (revocation, introspection)
    pub token: Option<String>,
    /// `token_type_hint` (revocation, introspection)
    pub token_type_hint: Option<String>,
    /// `resource` (RFC 8707 §2): may be repeated, in order.
    pub resource: Vec<String>,
}

impl TokenParams {
    /// Builds the parameters from decoded form pairs; a recognised parameter
    /// given twice is `invalid_request` (RFC 6749 §3.2).
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, OAuthError> {
        let mut p = TokenParams::default();
        for (name, value) in pairs {
            if name == "resource" {
                // RFC 8707 §2: repeatable; an empty value is still a value
                // (and not an absolute URI: invalid_target).
                p.resource.push(value.to_string());
                continue;
            }
            let slot = match name {
                "grant_type" => &mut p.grant_type,
                "scope" => &mut p.scope,
                "client_id" => &mut p.client_id,
                "client_secret" => &mut p.client_secret,
                "code" => &mut p.code,
                "redirect_uri" => &mut p.redirect_uri,
                "code_verifier" => &mut p.code_verifier,
                "refresh_token" => &mut p.refresh_token,
                "username" => &mut p.username,
                "password" => &mut p.password,
                "token" => &mut p.token,
                "token_type_hint" => &mut p.token_type_hint,
                _ => continue,
            };
            if slot.is_some() {
                return Err(OAuthError::invalid_request(format!(
                    "parameter `{name}` is included more than once"
                )));
            }
            if !value.is_empty() {
                *slot = Some(value.to_string());
            }
        }
        Ok(p)
    }

    /// The grant type, checked against what this server supports.
    pub fn grant(&self, supported: &[GrantType]) -> Result<GrantType, OAuthError> {
        let raw = self.grant_type.as_deref().ok_or_else(|| {
            OAuthError::invalid_request("missing required parameter `grant_type`")
        })?;
        GrantType::parse(raw)
            .filter(|g| *g != GrantType::Implicit && supported.contains(g))
            .ok_or_else(|| {
                OAuthError::new(
                    ErrorCode::UnsupportedGrantType,
                    "this grant type is not supported by this server",
                )
            })
    }
}

/// Scope granted for a request: the requested scope if it lies within the
/// client's registration, or the whole registered scope when none is requested
/// (RFC 6749 §3.3 "predefined default value").
pub fn granted_scope(client: &Client, requested: Option<&str>) -> Result<ScopeSet, OAuthError> {
    let Some(raw) = requested else {
        return Ok(client.scope.clone());
    };
    let scope = ScopeSet::parse(raw)?;
    if !scope.is_subset(&client.scope) {
        return Err(OAuthError::invalid_scope(
            "the requested scope exceeds the scope registered for this client",
        ));
    }
    Ok(scope)
}

/// RFC 6749 §4.4: the client must be registered for `client_credentials` and be
/// confidential (authentication already succeeded). Returns the granted scope.
pub fn client_credentials(
    client: &Client,
    requested: Option<&str>,
) -> Result<ScopeSet, OAuthError> {
    if !client.allows(GrantType::ClientCredentials) {
        return Err(OAuthError::unauthorized_client(
            "this client is not registered for the client_credentials grant",
        ));
    }
    if !client.is_confidential() {
        return Err(OAuthError::unauthorized_client(
            "the client_credentials grant requires a confidential client",
        ));
    }
    granted_scope(client, requested)
}

/// RFC 9068 §2.2 access token claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: the user id, or the client id for client_credentials.
    pub sub: String,
    /// Audience: the configured default, or the RFC 8707 resource(s).
    pub aud: Audience,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Unique token id (used for revocation deny-lists).
    pub jti: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// Space-separated granted scopes; omitted when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// The refresh token family (grant) the token was issued with, if any: a
    /// private claim, so that revoking the family (RFC 7009, reuse
    /// detection, code replay) revokes its access tokens for keygate's own
    /// checks. It names the grant, not a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
}

/// What a token is being issued for; the inputs of [`AccessClaims`].
#[derive(Debug, Clone)]
pub struct Grant {
    /// `sub`
    pub subject: String,
    /// `client_id`
    pub client_id: String,
    /// The granted scope.
    pub scope: ScopeSet,
    /// The refresh token family issued with it, if any (`grant_id`).
    pub family: Option<String>,
}

impl AccessClaims {
    /// Builds claims valid from `now` for `ttl` seconds.
    pub fn new(
        issuer: &str,
        audience: impl Into<Audience>,
        grant: &Grant,
        now: i64,
        ttl: i64,
        jti: String,
    ) -> Self {
        Self {
            iss: issuer.to_string(),
            sub: grant.subject.clone(),
            aud: audience.into(),
            exp: now + ttl,
            iat: now,
            nbf: now,
            jti,
            client_id: grant.client_id.clone(),
            scope: grant.scope.to_string(),
            grant_id: grant.family.clone(),
        }
    }
}

/// A stored authorization code: everything it is bound to (RFC 6749 §4.1.2,
/// RFC 7636 §4.4). Stored under the code's hash; the code itself never is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRecord {
    /// The client it was issued to.
    pub client_id: String,
    /// The redirect URI the code was sent to.
    pub redirect_uri: String,
    /// Whether `redirect_uri` was in the authorization request (then the token
    /// request must repeat it, RFC 6749 §4.1.3).
    pub redirect_uri_given: bool,
    /// The approved scope.
    pub scope: ScopeSet,
    /// The user id.
    pub sub: String,
    /// The PKCE challenge.
    pub pkce: Option<Challenge>,
    /// Expiry (seconds since the epoch).
    pub expires_at: i64,
    /// `None` until redeemed; then what was issued from it, so a replay can revoke it.
    pub redeemed: Option<Issuance>,
    /// The RFC 8707 resources chosen at authorization (empty: none named,
    /// the default audience). The token request may only narrow them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Target>,
    /// OpenID Connect: the authorization request's `nonce`, for the ID token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// OpenID Connect: when the user signed in (the login session's
    /// `auth_time`), for the ID token's `auth_time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The remembered consent it was issued under ([`super::consent`]):
    /// redeemable only while the user still allows the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<String>,
    /// OpenID Connect: the public id (`sid`) of the login session that
    /// approved the code, for the ID token's `sid` (Back-Channel Logout 1.0
    /// §2.1) and the refresh family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// What one redemption issued (for replay revocation, RFC 6749 §4.1.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issuance {
    /// The access token's `jti` and expiry.
    pub jti: String,
    /// Access token expiry.
    pub access_exp: i64,
    /// The refresh token family, if one was issued.
    pub family: Option<String>,
}

/// Why a code or refresh token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedeemError {
    /// An ordinary RFC error.
    Refused(OAuthError),
    /// A used code or rotated refresh token came back: refuse with
    /// `invalid_grant` and revoke what was issued from it.
    Replayed,
}

impl From<OAuthError> for RedeemError {
    fn from(e: OAuthError) -> Self {
        Self::Refused(e)
    }
}

/// RFC 6749 §4.1.3 and RFC 7636 §4.6 checks, in order: not yet redeemed,
/// issued to this client, not expired, redirect URI, PKCE.
pub fn redeem_code(
    params: &TokenParams,
    stored: &CodeRecord,
    client: &Client,
    now: i64,
) -> Result<Grant, RedeemError> {
    if stored.redeemed.is_some() {
        return Err(RedeemError::Replayed);
    }
    if stored.client_id != client.client_id {
        return Err(OAuthError::invalid_grant("the code was issued to another client").into());
    }
    if now >= stored.expires_at {
        return Err(OAuthError::invalid_grant("the code has expired").into());
    }
    match params.redirect_uri.as_deref() {
        Some(u) if u == stored.redirect_uri => {}
        None if !stored.redirect_uri_given => {}
        None => {
            return Err(OAuthError::invalid_grant(
                "redirect_uri is required: it was in the authorization request",
            )
            .into())
        }
        Some(_) => {
            return Err(OAuthError::invalid_grant(
                "redirect_uri does not match the authorization request",
            )
            .into())
        }
    }
    match (&stored.pkce, params.code_verifier.as_deref()) {
        (Some(ch), Some(v)) if pkce::verify(ch, v) => {}
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "code_verifier does not match the code_challenge",
            )
            .into())
        }
        (Some(_), None) => {
            return Err(OAuthError::invalid_grant("code_verifier is required (PKCE)").into())
        }
        (None, Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "code_verifier sent, but the authorization request had no code_challenge",
            )
            .into())
        }
        (None, None) => {}
    }
    Ok(Grant {
        subject: stored.sub.clone(),
        client_id: client.client_id.clone(),
        scope: stored.scope.clone(),
        family: None,
    })
}

/// A stored refresh token (under its hash). A family is the chain of tokens
/// rotated from one grant; it lives while `kg:fam:{family}` exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshRecord {
    /// The family id.
    pub family: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The user id.
    pub sub: String,
    /// The scope of the original grant (RFC 6749 §6: never widens).
    pub scope: ScopeSet,
    /// Expiry (seconds since the epoch).
    pub expires_at: i64,
    /// Set once the token has been exchanged for a successor.
    pub rotated: bool,
    /// Set at rotation (when the grace window is on): the successor pair,
    /// sealed under a key only the old token yields (see [`super::grace`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace: Option<GraceSeal>,
    /// The family's RFC 8707 resources (from its code or grant; empty: the
    /// default audience). A refresh may narrow them for one access token;
    /// the successor keeps them all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Target>,
    /// OpenID Connect: when the user signed in, carried from the code so
    /// the ID token of a refresh keeps it (Core §12.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The remembered consent of the code that started the family
    /// ([`super::consent`]): it rotates only while the user allows the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<String>,
    /// OpenID Connect: the login session's `sid`, carried from the code so
    /// the ID token of a refresh keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// RFC 6749 §6 checks: issued to this client, not rotated (else reuse), not
/// expired, requested scope within the original. Returns the access token
/// scope, which is never more than the client is registered for *now*: a
/// client whose scope was narrowed after the grant gets only what remains
/// (asked for nothing, the remainder; asked for a scope it lost,
/// `invalid_scope`; nothing left, `invalid_scope`).
pub fn redeem_refresh(
    params: &TokenParams,
    stored: &RefreshRecord,
    client: &Client,
    now: i64,
) -> Result<ScopeSet, RedeemError> {
    if stored.client_id != client.client_id {
        return Err(
            OAuthError::invalid_grant("the refresh token was issued to another client").into(),
        );
    }
    if stored.rotated {
        return Err(RedeemError::Replayed);
    }
    if now >= stored.expires_at {
        return Err(OAuthError::invalid_grant("the refresh token has expired").into());
    }
    let allowed = refresh_scope(stored, client);
    let scope = match params.scope.as_deref() {
        None => allowed,
        Some(raw) => {
            let s = ScopeSet::parse(raw)?;
            if !s.is_subset(&stored.scope) {
                return Err(OAuthError::invalid_scope(
                    "a refresh request may only narrow the original scope",
                )
                .into());
            }
            if !s.is_subset(&allowed) {
                return Err(OAuthError::invalid_scope(
                    "the client is no longer registered for the requested scope",
                )
                .into());
            }
            s
        }
    };
    if scope.is_empty() && !stored.scope.is_empty() {
        return Err(OAuthError::invalid_scope(
            "the client is no longer registered for any scope of this grant",
        )
        .into());
    }
    Ok(scope)
}

/// What a refresh token may still grant: its original scope, within the
/// client's current registration. The successor refresh token keeps only this.
pub fn refresh_scope(stored: &RefreshRecord, client: &Client) -> ScopeSet {
    stored.scope.intersection(&client.scope)
}

/// Whether a replay of the rotated `stored` token (presented as `token` by
/// `client`) is a grace retry, and if so what it gets back. All must hold:
/// the window is on and `now` lies in `[rotated_at, rotated_at + window)`, the
/// token was issued to this client, the seal opens with this token, and the
/// request asks for the same scope as the one answered. Anything else is reuse
/// (RFC 9700 §4.14.2). The caller still checks that the successor is live
/// ([`successor_is_live`]).
pub fn grace_retry(
    params: &TokenParams,
    stored: &RefreshRecord,
    client: &Client,
    token: &str,
    now: i64,
    window: u64,
) -> Option<GraceContents> {
    let seal = stored.grace.as_ref()?;
    let in_window = window > 0
        && now >= seal.rotated_at
        && now < seal.rotated_at.saturating_add(i64::try_from(window).ok()?);
    if !stored.rotated || !in_window || stored.client_id != client.client_id {
        return None;
    }
    let contents = grace::open(token, &stored.family, seal).ok()?;
    let (targets, scope) = refresh_targets(params, stored, &stored.scope).ok()?;
    let aud: Vec<String> = targets.into_iter().map(|t| t.uri).collect();
    (scope.to_string() == contents.scope && aud == contents.aud).then_some(contents)
}

/// RFC 8707 at a refresh: the `resource` values narrow the family's set for
/// this access token (widening is `invalid_target`), and the scope must fit
/// the narrowed set ([`resource::confine`]: an asked-for `scope` strictly,
/// the inherited `scope` cut down). Returns the targets and the scope; with
/// no resources bound and none named, `scope` unchanged.
pub fn refresh_targets(
    params: &TokenParams,
    stored: &RefreshRecord,
    scope: &ScopeSet,
) -> Result<(Vec<Target>, ScopeSet), OAuthError> {
    let requested = resource::requested(&params.resource)?;
    let targets = resource::narrow(&stored.resources, &requested)?;
    let scope = match params.scope.as_deref() {
        Some(raw) => resource::confine(&ScopeSet::parse(raw)?, &targets, true)?,
        None => resource::confine(scope, &targets, false)?,
    };
    Ok((targets, scope))
}

/// RFC 8707 at code redemption: the `resource` values narrow the code's
/// set (anything outside it is `invalid_target`); the code's scope is cut
/// down to what the narrowed set accepts.
pub fn code_targets(
    params: &TokenParams,
    stored: &CodeRecord,
) -> Result<(Vec<Target>, ScopeSet), OAuthError> {
    let requested = resource::requested(&params.resource)?;
    let targets = resource::narrow(&stored.resources, &requested)?;
    let scope = resource::confine(&stored.scope, &targets, false)?;
    Ok((targets, scope))
}

/// The parsed `resource` values of a new grant's request.
pub fn requested_resources(params: &TokenParams) -> Result<Vec<ResourceId>, OAuthError> {
    resource::requested(&params.resource)
}

/// The successor may be handed out again only while it is unused (not
/// rotated), unexpired and of the same family, and that family is alive.
pub fn successor_is_live(
    successor: Option<&RefreshRecord>,
    family: &str,
    family_alive: bool,
    now: i64,
) -> bool {
    family_alive
        && successor.is_some_and(|s| !s.rotated && s.family == family && now < s.expires_at)
}

/// What a rotation seals for grace retries: the successor refresh token and
/// the access token claims that differ between tokens.
/// `targets` are the resources the access token was narrowed to.
pub fn grace_contents(
    next_token: &str,
    claims: &AccessClaims,
    targets: &[Target],
) -> GraceContents {
    GraceContents {
        refresh_token: next_token.to_string(),
        jti: claims.jti.clone(),
        iat: claims.iat,
        exp: claims.exp,
        scope: claims.scope.clone(),
        aud: targets.iter().map(|t| t.uri.clone()).collect(),
    }
}

/// The access token claims a grace retry answers with: the sealed ones
/// ([`grace_contents`]), completed from the configuration and the rotated
/// record, so they equal the claims of the first answer.
pub fn grace_claims(
    issuer: &str,
    audience: &str,
    rotated: &RefreshRecord,
    contents: &GraceContents,
) -> AccessClaims {
    let aud = match contents.aud.as_slice() {
        [] => Audience::One(audience.to_string()),
        [one] => Audience::One(one.clone()),
        many => Audience::Many(many.to_vec()),
    };
    AccessClaims {
        iss: issuer.to_string(),
        sub: rotated.sub.clone(),
        aud,
        exp: contents.exp,
        iat: contents.iat,
        nbf: contents.iat,
        jti: contents.jti.clone(),
        client_id: rotated.client_id.clone(),
        scope: contents.scope.clone(),
        grant_id: Some(rotated.family.clone()),
    }
}

/// The grant type must be registered for the client (→ `unauthorized_client`).
pub fn require_grant(client: &Client, grant: GrantType) -> Result<(), OAuthError> {
    if client.allows(grant) {
        Ok(())
    } else {
        Err(OAuthError::unauthorized_client(format!(
            "this client is not registered for the {} grant",
            grant.as_str()
        )))
    }
}

/// A required parameter (→ `invalid_request`).
pub fn required<'a>(value: &'a Option<String>, name: &'static str) -> Result<&'a str, OAuthError> {
    value
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_request(format!("missing required parameter `{name}`")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::types::AuthMethod;

    fn client() -> Client {
        Client {
            client_id: "svc".into(),
            client_name: "Service".into(),
            secret_sha256: Some([0; 32]),
            auth_method: AuthMethod::ClientSecretBasic,
            grant_types: vec![GrantType::ClientCredentials],
            redirect_uris: vec![],
            scope: ScopeSet::parse("read write").unwrap(),
            created_at: 0,
            ..Default::default()
        }
    }

    #[test]
    fn duplicates_are_invalid_request() {
        let e = TokenParams::from_pairs([("grant_type", "a"), ("grant_type", "a")]).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        // unknown parameters are ignored, even repeated
        let p = TokenParams::from_pairs([("x", "1"), ("x", "2"), ("scope", "")]).unwrap();
        assert_eq!(p.scope, None);
    }

    #[test]
    fn grant_type_rules() {
        let supported = [GrantType::ClientCredentials];
        let p = TokenParams::default();
        assert_eq!(
            p.grant(&supported).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        for g in ["password", "foo", "implicit"] {
            let p = TokenParams::from_pairs([("grant_type", g)]).unwrap();
            assert_eq!(
                p.grant(&supported).unwrap_err().code,
                ErrorCode::UnsupportedGrantType
            );
        }
    }

    #[test]
    fn scope_must_be_within_registration() {
        assert_eq!(
            client_credentials(&client(), None).unwrap().to_string(),
            "read write"
        );
        assert_eq!(
            client_credentials(&client(), Some("read"))
                .unwrap()
                .to_string(),
            "read"
        );
        assert_eq!(
            client_credentials(&client(), Some("read admin"))
                .unwrap_err()
                .code,
            ErrorCode::InvalidScope
        );
    }

    #[test]
    fn client_must_be_registered_and_confidential() {
        let mut c = client();
        c.grant_types = vec![GrantType::AuthorizationCode];
        assert_eq!(
            client_credentials(&c, None).unwrap_err().code,
            ErrorCode::UnauthorizedClient
        );
        let mut c = client();
        c.auth_method = AuthMethod::None;
        assert_eq!(
            client_credentials(&c, None).unwrap_err().code,
            ErrorCode::UnauthorizedClient
        );
    }

    #[test]
    fn claims_times() {
        let g = Grant {
            subject: "svc".into(),
            client_id: "svc".into(),
            scope: ScopeSet::parse("read").unwrap(),
            family: None,
        };
        let c = AccessClaims::new("https://i", "https://a", &g, 1000, 900, "j".into());
        assert_eq!((c.iat, c.nbf, c.exp), (1000, 1000, 1900));
        assert_eq!(c.scope, "read");
    }

    fn code_client() -> Client {
        let mut c = client();
        c.grant_types = vec![GrantType::AuthorizationCode, GrantType::RefreshToken];
        c
    }

    fn code(pkce: bool) -> CodeRecord {
        CodeRecord {
            client_id: "svc".into(),
            redirect_uri: "https://app/cb".into(),
            redirect_uri_given: true,
            scope: ScopeSet::parse("read").unwrap(),
            sub: "u1".into(),
            pkce: pkce.then(|| Challenge {
                challenge: pkce::s256(&"v".repeat(43)),
                method: pkce::Method::S256,
            }),
            expires_at: 100,
            redeemed: None,
            resources: vec![],
            auth_time: None,
            consent: None,
            nonce: None,
            sid: None,
        }
    }

    fn tp(pairs: &[(&str, &str)]) -> TokenParams {
        TokenParams::from_pairs(pairs.iter().copied()).unwrap()
    }

    fn refused(r: Result<Grant, RedeemError>) -> ErrorCode {
        match r {
            Err(RedeemError::Refused(e)) => e.code,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn code_redemption_rules() {
        let v = "v".repeat(43);
        let ok = tp(&[("redirect_uri", "https://app/cb"), ("code_verifier", &v)]);
        assert_eq!(
            redeem_code(&ok, &code(true), &code_client(), 50)
                .unwrap()
                .subject,
            "u1"
        );
        assert_eq!(
            refused(redeem_code(&ok, &code(true), &code_client(), 100)),
            ErrorCode::InvalidGrant,
            "expired"
        );
        let mut other = code_client();
        other.client_id = "other".into();
        assert_eq!(
            refused(redeem_code(&ok, &code(true), &other, 50)),
            ErrorCode::InvalidGrant
        );
        let no_uri = tp(&[("code_verifier", &v)]);
        assert_eq!(
            refused(redeem_code(&no_uri, &code(true), &code_client(), 50)),
            ErrorCode::InvalidGrant
        );
        let bad_v = tp(&[
            ("redirect_uri", "https://app/cb"),
            ("code_verifier", &"w".repeat(43)),
        ]);
        assert_eq!(
            refused(redeem_code(&bad_v, &code(true), &code_client(), 50)),
            ErrorCode::InvalidGrant
        );
        let no_v = tp(&[("redirect_uri", "https://app/cb")]);
        assert_eq!(
            refused(redeem_code(&no_v, &code(true), &code_client(), 50)),
            ErrorCode::InvalidGrant
        );
        assert_eq!(
            refused(redeem_code(&ok, &code(false), &code_client(), 50)),
            ErrorCode::InvalidGrant,
            "verifier without challenge"
        );
        let mut used = code(true);
        used.redeemed = Some(Issuance {
            jti: "j".into(),
            access_exp: 1,
            family: None,
        });
        assert_eq!(
            redeem_code(&ok, &used, &code_client(), 50).unwrap_err(),
            RedeemError::Replayed
        );
        let mut omitted = code(false);
        omitted.redirect_uri_given = false;
        assert!(redeem_code(&tp(&[]), &omitted, &code_client(), 50).is_ok());
    }

    #[test]
    fn refresh_rules() {
        let rec = RefreshRecord {
            family: "f".into(),
            client_id: "svc".into(),
            sub: "u1".into(),
            scope: ScopeSet::parse("read write").unwrap(),
            expires_at: 100,
            rotated: false,
            grace: None,
            resources: vec![],
            auth_time: None,
            consent: None,
            sid: None,
        };
        let c = code_client();
        assert_eq!(
            redeem_refresh(&tp(&[]), &rec, &c, 1).unwrap().to_string(),
            "read write"
        );
        assert_eq!(
            redeem_refresh(&tp(&[("scope", "read")]), &rec, &c, 1)
                .unwrap()
                .to_string(),
            "read"
        );
        assert!(
            matches!(redeem_refresh(&tp(&[("scope", "admin")]), &rec, &c, 1), Err(RedeemError::Refused(e)) if e.code == ErrorCode::InvalidScope)
        );
        assert!(matches!(
            redeem_refresh(&tp(&[]), &rec, &c, 100),
            Err(RedeemError::Refused(_))
        ));
        let mut rotated = rec.clone();
        rotated.rotated = true;
        assert_eq!(
            redeem_refresh(&tp(&[]), &rotated, &c, 1).unwrap_err(),
            RedeemError::Replayed
        );
        // Issue 12 item 4: the client's current scope bounds every refresh.
        let mut narrowed = c.clone();
        narrowed.scope = ScopeSet::parse("read").unwrap();
        assert_eq!(
            redeem_refresh(&tp(&[]), &rec, &narrowed, 1)
                .unwrap()
                .to_string(),
            "read"
        );
        assert_eq!(refresh_scope(&rec, &narrowed).to_string(), "read");
        assert!(
            matches!(redeem_refresh(&tp(&[("scope", "write")]), &rec, &narrowed, 1), Err(RedeemError::Refused(e)) if e.code == ErrorCode::InvalidScope)
        );
        narrowed.scope = ScopeSet::parse("other").unwrap();
        assert!(
            matches!(redeem_refresh(&tp(&[]), &rec, &narrowed, 1), Err(RedeemError::Refused(e)) if e.code == ErrorCode::InvalidScope)
        );
    }

    const OLD: &str = "old-refresh-token-0123456789abcdefghijklmnopq";

    fn sealed_contents() -> GraceContents {
        GraceContents {
            refresh_token: "successor-token".into(),
            jti: "j1".into(),
            iat: 1000,
            exp: 1900,
            scope: "email profile".into(),
            aud: vec![],
        }
    }

    fn grace_client() -> Client {
        Client {
            client_id: "web".into(),
            client_name: "Web".into(),
            secret_sha256: Some([0; 32]),
            auth_method: AuthMethod::ClientSecretBasic,
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            redirect_uris: vec![],
            scope: ScopeSet::parse("email profile").unwrap(),
            created_at: 0,
            ..Default::default()
        }
    }

    fn rotated(seal: GraceSeal) -> RefreshRecord {
        RefreshRecord {
            family: "fam".into(),
            client_id: "web".into(),
            sub: "u1".into(),
            scope: ScopeSet::parse("profile email").unwrap(),
            expires_at: 5000,
            rotated: true,
            grace: Some(seal),
            resources: vec![],
            auth_time: None,
            consent: None,
            sid: None,
        }
    }

    #[test]
    fn retry_rules() {
        let rec = rotated(grace::seal(OLD, "fam", 1000, &sealed_contents()).unwrap());
        let c = grace_client();
        let p = tp(&[]);
        assert_eq!(
            grace_retry(&p, &rec, &c, OLD, 1000, 5),
            Some(sealed_contents())
        );
        assert_eq!(
            grace_retry(&p, &rec, &c, OLD, 1004, 5),
            Some(sealed_contents())
        );
        assert_eq!(
            grace_retry(&p, &rec, &c, OLD, 1005, 5),
            None,
            "window is [t, t+5)"
        );
        assert_eq!(
            grace_retry(&p, &rec, &c, OLD, 999, 5),
            None,
            "before rotation"
        );
        assert_eq!(grace_retry(&p, &rec, &c, OLD, 1000, 0), None, "disabled");
        assert_eq!(grace_retry(&p, &rec, &c, "x", 1000, 5), None, "wrong token");
        let mut other = grace_client();
        other.client_id = "other".into();
        assert_eq!(grace_retry(&p, &rec, &other, OLD, 1000, 5), None);
        // the same scope, spelled in another order, is the same request
        let same = tp(&[("scope", "profile email")]);
        assert_eq!(
            grace_retry(&same, &rec, &c, OLD, 1000, 5),
            Some(sealed_contents())
        );
        let narrower = tp(&[("scope", "profile")]);
        assert_eq!(grace_retry(&narrower, &rec, &c, OLD, 1000, 5), None);
        let mut unrotated = rec.clone();
        unrotated.rotated = false;
        assert_eq!(grace_retry(&p, &unrotated, &c, OLD, 1000, 5), None);
        let mut no_seal = rec;
        no_seal.grace = None;
        assert_eq!(grace_retry(&p, &no_seal, &c, OLD, 1000, 5), None);
    }

    #[test]
    fn successor_liveness() {
        let s = grace::seal(OLD, "fam", 1000, &sealed_contents()).unwrap();
        let mut succ = rotated(s);
        succ.rotated = false;
        succ.grace = None;
        assert!(successor_is_live(Some(&succ), "fam", true, 1000));
        assert!(!successor_is_live(Some(&succ), "fam", false, 1000));
        assert!(!successor_is_live(None, "fam", true, 1000));
        assert!(!successor_is_live(Some(&succ), "fam", true, 5000));
        assert!(!successor_is_live(Some(&succ), "other", true, 1000));
        succ.rotated = true;
        assert!(!successor_is_live(Some(&succ), "fam", true, 1000));
    }

    #[test]
    fn grace_claims_equal_the_first_answer() {
        let g = Grant {
            subject: "u1".into(),
            client_id: "web".into(),
            scope: ScopeSet::parse("profile email").unwrap(),
            family: Some("fam".into()),
        };
        let first = AccessClaims::new("https://i", "https://a", &g, 1000, 900, "j1".into());
        let contents = grace_contents("successor-token", &first, &[]);
        assert_eq!(contents.refresh_token, "successor-token");
        let rec = rotated(grace::seal(OLD, "fam", 1000, &contents).unwrap());
        assert_eq!(
            grace_claims("https://i", "https://a", &rec, &contents),
            first
        );
    }
}
