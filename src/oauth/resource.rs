//! RFC 8707 resource indicators: which resource server (API) a token is for.
//!
//! A client names the resource(s) it wants to reach with `resource` (repeatable)
//! at the authorization and token endpoints. Each must be a registered
//! [`Resource`], and every scope asked for must be one that at least one of
//! the named resources accepts; anything else is `invalid_target` (§2). The
//! set chosen for a new grant ([`select`]) is bound to its code or refresh
//! family as [`Target`]s (a snapshot, so later registry changes never widen a
//! grant); later requests may only narrow it ([`narrow`]). The token's `aud`
//! is the registered URI(s) ([`audience`]), or the configured default
//! audience when no resource was named.
//!
//! Identifiers are compared in their `url` crate serialisation
//! ([`ResourceId`]): `https://api.example` and `https://api.example/` are
//! the same resource, as are differences in the case of scheme and host and
//! an explicit default port; any other path difference makes another resource.
//!
//! Pure: no I/O; the callers look the resources up.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::error::{ErrorCode, OAuthError};
use super::types::{is_loopback_url, ScopeSet};

/// Most `resource` values one request may carry.
pub const MAX_PER_REQUEST: usize = 16;

/// Longest resource URI accepted, in bytes.
pub const MAX_URI_LEN: usize = 2048;

fn invalid_target(d: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidTarget, d)
}

/// A resource identifier in its comparable form (RFC 8707 §2: an absolute
/// URI without a fragment), normalised by the `url` crate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceId(String);

impl ResourceId {
    /// Parses a requested `resource` value: an absolute URI without a
    /// fragment, else `invalid_target`.
    pub fn parse(raw: &str) -> Result<Self, OAuthError> {
        if raw.len() > MAX_URI_LEN {
            return Err(invalid_target("the resource URI is too long"));
        }
        let url = url::Url::parse(raw)
            .map_err(|_| invalid_target("the resource must be an absolute URI"))?;
        if url.fragment().is_some() {
            return Err(invalid_target(
                "the resource URI must not include a fragment",
            ));
        }
        Ok(Self(url.to_string()))
    }

    /// Parses a URI being registered as a resource: [`ResourceId::parse`],
    /// plus `https` (or `http` on a loopback host, for development) and no
    /// user information. The error is a sentence for the operator.
    pub fn parse_registered(raw: &str) -> Result<Self, String> {
        let id = Self::parse(raw).map_err(|e| format!("`{raw}`: {}", e.description))?;
        let url = url::Url::parse(&id.0).map_err(|e| e.to_string())?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback_url(&id.0) => {}
            _ => {
                return Err(format!(
                    "`{raw}` must use https (http is allowed only on a loopback host)"
                ))
            }
        }
        if url.host().is_none() {
            return Err(format!("`{raw}` has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("`{raw}` must not contain user information"));
        }
        Ok(id)
    }

    /// The normalised form (the store key of a resource).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The `resource` values of one request: parsed, duplicates (by
/// [`ResourceId`]) merged, at most [`MAX_PER_REQUEST`].
pub fn requested(raw: &[String]) -> Result<Vec<ResourceId>, OAuthError> {
    if raw.len() > MAX_PER_REQUEST {
        return Err(invalid_target(format!(
            "at most {MAX_PER_REQUEST} resource parameters per request"
        )));
    }
    let mut seen = BTreeSet::new();
    let mut out = vec![];
    for r in raw {
        let id = ResourceId::parse(r)?;
        if seen.insert(id.clone()) {
            out.push(id);
        }
    }
    Ok(out)
}

/// A registered resource (API, resource server).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// The identifier as registered: the tokens' `aud`.
    pub uri: String,
    /// The scopes this resource accepts.
    pub scopes: ScopeSet,
    /// A display name (consent page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The confidential client the resource server authenticates with at
    /// introspection (RFC 7662): it sees the tokens whose `aud` names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl Resource {
    /// The comparable identifier (the registered URI was checked by
    /// [`ResourceId::parse_registered`]; an unparsable one compares as is).
    pub fn id(&self) -> ResourceId {
        ResourceId::parse(&self.uri).unwrap_or_else(|_| ResourceId(self.uri.clone()))
    }
}

/// A resource bound to a code or refresh family: its registered URI and the
/// scopes it accepted when the grant was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The registered URI (`aud`).
    pub uri: String,
    /// The scopes it accepted at binding time.
    pub scopes: ScopeSet,
}

impl From<&Resource> for Target {
    fn from(r: &Resource) -> Self {
        Self {
            uri: r.uri.clone(),
            scopes: r.scopes.clone(),
        }
    }
}

fn accepted(targets: &[Target]) -> BTreeSet<&str> {
    targets.iter().flat_map(|t| t.scopes.iter()).collect()
}

/// RFC 8707 §2 scope rule for `scope` and the resources `targets` (non-empty):
/// a scope the client asked for (`explicit`) must be accepted by at least one
/// target, else `invalid_target`; a default scope (not asked for, or inherited
/// from a code or refresh family) is cut down to what the targets accept, and
/// `invalid_target` if nothing of a non-empty scope remains.
pub fn confine(
    scope: &ScopeSet,
    targets: &[Target],
    explicit: bool,
) -> Result<ScopeSet, OAuthError> {
    if targets.is_empty() {
        return Ok(scope.clone());
    }
    let ok = accepted(targets);
    if explicit {
        if let Some(s) = scope.iter().find(|s| !ok.contains(s)) {
            return Err(invalid_target(format!(
                "the scope `{s}` is not accepted by the requested resource(s)"
            )));
        }
        return Ok(scope.clone());
    }
    let kept: Vec<&str> = scope.iter().filter(|s| ok.contains(s)).collect();
    if kept.is_empty() && !scope.is_empty() {
        return Err(invalid_target(
            "none of the granted scopes is accepted by the requested resource(s)",
        ));
    }
    ScopeSet::parse(&kept.join(" "))
}

/// A new grant (authorization request, `client_credentials`, `password`):
/// every requested resource must be registered (`found[i]` is the lookup of
/// `requested[i]`), and the scope must fit them ([`confine`]). Returns the
/// resources to bind and the scope to grant.
pub fn select(
    requested: &[ResourceId],
    found: &[Option<Resource>],
    scope: &ScopeSet,
    explicit: bool,
) -> Result<(Vec<Resource>, ScopeSet), OAuthError> {
    let mut chosen = vec![];
    for i in 0..requested.len() {
        match found.get(i).and_then(Option::as_ref) {
            Some(r) => chosen.push(r.clone()),
            None => return Err(invalid_target("the requested resource is not registered")),
        }
    }
    let targets: Vec<Target> = chosen.iter().map(Target::from).collect();
    let scope = confine(scope, &targets, explicit)?;
    Ok((chosen, scope))
}

/// A redemption (code) or refresh: `requested` must lie within the `bound`
/// set (compared as [`ResourceId`]s), and narrows it; none requested keeps
/// the whole bound set. Widening, or naming a resource when none is bound, is
/// `invalid_target`.
pub fn narrow(bound: &[Target], requested: &[ResourceId]) -> Result<Vec<Target>, OAuthError> {
    if requested.is_empty() {
        return Ok(bound.to_vec());
    }
    let mut out = vec![];
    for id in requested {
        match bound
            .iter()
            .find(|t| ResourceId::parse(&t.uri).is_ok_and(|b| &b == id))
        {
            Some(t) => out.push(t.clone()),
            None => {
                return Err(invalid_target(
                    "the resource was not part of the original grant",
                ))
            }
        }
    }
    Ok(out)
}

/// The `aud` claim (RFC 7519 §4.1.3): one string or an array of strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience (serialised as a JSON string).
    One(String),
    /// Several audiences (a JSON array).
    Many(Vec<String>),
}

impl From<&str> for Audience {
    fn from(s: &str) -> Self {
        Self::One(s.to_string())
    }
}

impl From<&String> for Audience {
    fn from(s: &String) -> Self {
        Self::One(s.clone())
    }
}

impl Audience {
    /// The audience values.
    pub fn values(&self) -> &[String] {
        match self {
            Self::One(s) => std::slice::from_ref(s),
            Self::Many(v) => v,
        }
    }
}

/// The `aud` of a token for `targets`: the registered URI (a string) for one,
/// an array for several, `default` (the configured audience) for none.
pub fn audience(targets: &[Target], default: &str) -> Audience {
    match targets {
        [] => Audience::One(default.to_string()),
        [one] => Audience::One(one.uri.clone()),
        many => Audience::Many(many.iter().map(|t| t.uri.clone()).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ResourceId {
        ResourceId::parse(s).unwrap()
    }

    fn resource(uri: &str, scopes: &str) -> Resource {
        Resource {
            uri: uri.into(),
            scopes: ScopeSet::parse(scopes).unwrap(),
            name: None,
            client_id: None,
        }
    }

    fn scopes(s: &str) -> ScopeSet {
        ScopeSet::parse(s).unwrap()
    }

    #[test]
    fn same_resource_in_other_spellings() {
        let base = id("https://api.example");
        for same in [
            "https://api.example/",
            "HTTPS://API.EXAMPLE/",
            "https://api.example:443",
            "https://Api.Example:443/",
        ] {
            assert_eq!(id(same), base, "{same}");
        }
        for other in [
            "https://api.example/v1",
            "https://api.example:8443/",
            "http://api.example/",
            "https://api.example.com/",
            "https://api.example/?x=1",
        ] {
            assert_ne!(id(other), base, "{other}");
        }
        // other paths are compared exactly, trailing slash included
        assert_ne!(
            id("https://api.example/mcp"),
            id("https://api.example/mcp/")
        );
        assert_ne!(id("https://api.example/MCP"), id("https://api.example/mcp"));
    }

    #[test]
    fn requested_resources_must_be_absolute_without_fragment() {
        for bad in [
            "",
            "api.example",
            "/relative",
            "https://api.example/#frag",
            "https://api.example/#",
        ] {
            let e = ResourceId::parse(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidTarget, "{bad}");
        }
        assert!(ResourceId::parse(&format!("https://a/{}", "x".repeat(MAX_URI_LEN))).is_err());
        // an absolute URI of another scheme is a valid identifier (it just is
        // never registered)
        ResourceId::parse("urn:example:api").unwrap();
        let many: Vec<String> = (0..=MAX_PER_REQUEST)
            .map(|i| format!("https://r{i}.example"))
            .collect();
        assert_eq!(requested(&many).unwrap_err().code, ErrorCode::InvalidTarget);
        let dup = vec!["https://a.example".into(), "https://A.example/".into()];
        assert_eq!(requested(&dup).unwrap().len(), 1, "duplicates merged");
    }

    #[test]
    fn registered_resources_are_https_or_loopback_http() {
        for ok in [
            "https://api.example",
            "https://api.example/mcp",
            "http://127.0.0.1:3001/mcp",
            "http://localhost:8000/",
            "http://[::1]/",
        ] {
            ResourceId::parse_registered(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "http://api.example/",
            "ftp://api.example/",
            "urn:example:api",
            "https://user:pw@api.example/",
            "https://api.example/#x",
            "not a uri",
        ] {
            assert!(ResourceId::parse_registered(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn selection_needs_registered_resources_that_accept_the_scope() {
        let req = vec![id("https://a.example"), id("https://b.example")];
        let found = vec![
            Some(resource("https://a.example/", "read")),
            Some(resource("https://b.example", "write")),
        ];
        let (t, s) = select(&req, &found, &scopes("read write"), true).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].uri, "https://a.example/", "the registered form");
        assert_eq!(t[1], found[1].clone().unwrap());
        assert_eq!(s, scopes("read write"));
        // a scope neither accepts
        let e = select(&req, &found, &scopes("read admin"), true).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidTarget);
        // an unknown resource
        let e = select(&req, &[found[0].clone(), None], &scopes("read"), true).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidTarget);
        // a default scope is cut down to what the resources accept
        let (_, s) = select(&req[..1], &found[..1], &scopes("read write other"), false).unwrap();
        assert_eq!(s, scopes("read"));
        let e = select(&req[1..], &found[1..], &scopes("read"), false).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidTarget);
    }

    #[test]
    fn narrowing_only() {
        let bound = vec![
            Target::from(&resource("https://a.example", "read")),
            Target::from(&resource("https://b.example/x", "write")),
        ];
        assert_eq!(narrow(&bound, &[]).unwrap(), bound);
        assert_eq!(
            narrow(&bound, &[id("https://a.example/")]).unwrap(),
            bound[..1].to_vec(),
            "the trailing slash names the same resource"
        );
        let e = narrow(&bound, &[id("https://c.example")]).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidTarget);
        let e = narrow(&bound, &[id("https://b.example/x/")]).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidTarget);
        let e = narrow(&[], &[id("https://a.example")]).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidTarget, "nothing to narrow");
    }

    #[test]
    fn audience_is_a_string_for_one_and_an_array_for_several() {
        let a = Target::from(&resource("https://a.example", "read"));
        let b = Target::from(&resource("https://b.example", "read"));
        let json = |aud: Audience| serde_json::to_string(&aud).unwrap();
        assert_eq!(json(audience(&[], "https://as")), "\"https://as\"");
        assert_eq!(
            json(audience(std::slice::from_ref(&a), "x")),
            "\"https://a.example\""
        );
        assert_eq!(
            json(audience(&[a, b], "x")),
            "[\"https://a.example\",\"https://b.example\"]"
        );
        let back: Audience = serde_json::from_str("[\"x\",\"y\"]").unwrap();
        assert_eq!(back.values(), ["x", "y"]);
    }
}
