//! Protocol value types with `parse()`: scopes, grant types, auth methods, clients.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::OAuthError;

/// A set of scope tokens (RFC 6749 §3.3): order-insensitive, duplicates merged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ScopeSet(BTreeSet<String>);

impl ScopeSet {
    /// Parses a space-delimited scope string. Each token must be
    /// `1*( %x21 / %x23-5B / %x5D-7E )` (RFC 6749 §3.3).
    pub fn parse(raw: &str) -> Result<Self, OAuthError> {
        let mut set = BTreeSet::new();
        for token in raw.split(' ').filter(|t| !t.is_empty()) {
            if !token
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
            {
                return Err(OAuthError::invalid_scope(
                    "scope tokens must be printable ASCII without quotes or backslashes",
                ));
            }
            set.insert(token.to_string());
        }
        Ok(Self(set))
    }
    /// Whether every scope here is also in `other`.
    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }
    /// The scopes in either set.
    pub fn union(&self, other: &ScopeSet) -> ScopeSet {
        ScopeSet(self.0.union(&other.0).cloned().collect())
    }
    /// The scopes in both sets.
    pub fn intersection(&self, other: &ScopeSet) -> ScopeSet {
        ScopeSet(self.0.intersection(&other.0).cloned().collect())
    }
    /// Whether the set holds `scope`.
    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }
    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The scopes in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
            first = false;
        }
        Ok(())
    }
}

impl TryFrom<String> for ScopeSet {
    type Error = OAuthError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ScopeSet> for String {
    fn from(s: ScopeSet) -> Self {
        s.to_string()
    }
}

/// A grant type a client can be registered for (RFC 7591 §2 `grant_types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// RFC 6749 §4.1
    AuthorizationCode,
    /// RFC 6749 §4.2 (legacy profile only)
    Implicit,
    /// RFC 6749 §4.3 (legacy profile only)
    Password,
    /// RFC 6749 §4.4
    ClientCredentials,
    /// RFC 6749 §6
    RefreshToken,
}

impl GrantType {
    /// Parses the RFC 7591 name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "authorization_code" => Self::AuthorizationCode,
            "implicit" => Self::Implicit,
            "password" => Self::Password,
            "client_credentials" => Self::ClientCredentials,
            "refresh_token" => Self::RefreshToken,
            _ => return None,
        })
    }
    /// The RFC 7591 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::Implicit => "implicit",
            Self::Password => "password",
            Self::ClientCredentials => "client_credentials",
            Self::RefreshToken => "refresh_token",
        }
    }
}

/// The `response_types` that go with `grants` (RFC 7591 §2.1):
/// `authorization_code` ↔ `code`, `implicit` ↔ `token`.
pub fn response_types_for(grants: &[GrantType]) -> Vec<&'static str> {
    let mut out = vec![];
    if grants.contains(&GrantType::AuthorizationCode) {
        out.push("code");
    }
    if grants.contains(&GrantType::Implicit) {
        out.push("token");
    }
    out
}

/// How a client authenticates at the token endpoint (RFC 7591 §2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// HTTP Basic (RFC 6749 §2.3.1).
    #[default]
    ClientSecretBasic,
    /// `client_id` + `client_secret` form fields (RFC 6749 §2.3.1).
    ClientSecretPost,
    /// A public client: no secret.
    None,
}

impl AuthMethod {
    /// Parses the RFC 7591 name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "client_secret_basic" => Self::ClientSecretBasic,
            "client_secret_post" => Self::ClientSecretPost,
            "none" => Self::None,
            _ => return None,
        })
    }
    /// The RFC 7591 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::None => "none",
        }
    }
}

/// A registered client as the core sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    /// The client identifier.
    pub client_id: String,
    /// Human-readable name.
    pub client_name: String,
    /// SHA-256 of the secret (server-generated secrets carry ≥ 256 bits, so a
    /// fast hash is enough); `None` for public clients.
    pub secret_sha256: Option<[u8; 32]>,
    /// The registered token endpoint auth method.
    pub auth_method: AuthMethod,
    /// Registered grant types.
    pub grant_types: Vec<GrantType>,
    /// Registered redirect URIs (exact match).
    pub redirect_uris: Vec<String>,
    /// The scopes the client may request.
    pub scope: ScopeSet,
    /// Creation time, seconds since the epoch.
    pub created_at: i64,
    /// The user who created it in the web pages (`None`: CLI, API or config).
    #[serde(default)]
    pub owner: Option<String>,
    /// Home page of the client (RFC 7591 §2).
    #[serde(default)]
    pub client_uri: Option<String>,
    /// Logo of the client (RFC 7591 §2).
    #[serde(default)]
    pub logo_uri: Option<String>,
    /// SHA-256 of the RFC 7592 registration access token, for clients
    /// registered through `POST /oauth/register`.
    #[serde(default)]
    pub registration_token_sha256: Option<[u8; 32]>,
    /// When an anonymously registered client (open registration) expires
    /// unless used, seconds since the epoch; `None` for every other client
    /// (config file, pages, CLI, initial access token), which never expire.
    /// Its presence is what marks a client as anonymous: an RFC 7592 update
    /// stays within the open-registration limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// OpenID Connect RP-Initiated Logout 1.0 §3.1: where the user may be
    /// sent after logging out (exact match, the redirect URI rules).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<String>,
    /// OpenID Connect Back-Channel Logout 1.0 §2.2: where logout tokens are
    /// POSTed (https, or http on a loopback host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    /// Back-Channel Logout 1.0 §2.2: the client wants `sid` in logout
    /// tokens (keygate always sends it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backchannel_logout_session_required: bool,
    /// OpenID Connect Registration 1.0 §2: the `max_age` applied when an
    /// authorization request gives none (seconds, at most one year).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_max_age: Option<u64>,
    /// Registration 1.0 §2: the ID token must carry `auth_time` (keygate's
    /// always does when the sign-in time is known).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_auth_time: bool,
    /// Registration 1.0 §2: the JWS `alg` of this client's ID tokens; one of
    /// the algorithms of the published keys. `None`: the active key's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_signed_response_alg: Option<String>,
}

impl Client {
    /// Registration 1.0 §2 `default_max_age`: the `max_age` (seconds) of an
    /// authorization request that gives none.
    pub fn default_max_age(&self) -> Option<u64> {
        self.default_max_age
    }
    /// Whether `given` is one of the client's post-logout redirect URIs
    /// (exact string match, RP-Initiated Logout 1.0 §3).
    pub fn has_post_logout_redirect_uri(&self, given: &str) -> bool {
        self.post_logout_redirect_uris.iter().any(|u| u == given)
    }
    /// The `response_types` implied by the grant types (RFC 7591 §2.1).
    pub fn response_types(&self) -> Vec<&'static str> {
        response_types_for(&self.grant_types)
    }
    /// Whether the client may use `grant`.
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }
    /// Whether the client was registered anonymously (open registration):
    /// it is limited and expires when unused.
    pub fn is_anonymous(&self) -> bool {
        self.expires_at.is_some()
    }
    /// Whether the client is confidential (has a secret).
    pub fn is_confidential(&self) -> bool {
        self.auth_method != AuthMethod::None
    }
    /// Whether `given` is one of the client's redirect URIs
    /// ([`redirect_uri_matches`]).
    pub fn has_redirect_uri(&self, given: &str) -> bool {
        self.redirect_uris
            .iter()
            .any(|r| redirect_uri_matches(r, given))
    }
    /// The web origins a browser may call the token and revocation endpoints
    /// from on this client's behalf (SPEC.md "CORS"): the origins of a public
    /// client's http(s) redirect URIs. A confidential client has none (its
    /// secret must not be in a browser), nor has a private-use scheme
    /// redirect (a native app, which needs no CORS; its origin is opaque).
    pub fn cors_origins(&self) -> BTreeSet<String> {
        if self.is_confidential() {
            return BTreeSet::new();
        }
        self.redirect_uris
            .iter()
            .filter_map(|uri| url::Url::parse(uri).ok())
            .map(|u| u.origin())
            .filter(url::Origin::is_tuple)
            .map(|o| o.ascii_serialization())
            .collect()
    }
}

/// Whether a redirect URI sent in a request matches a registered one: the
/// exact same string (RFC 9700 §4.1.3), except that for a registered
/// `http` loopback URI (`127.0.0.1`, `[::1]` or `localhost`) the port may
/// differ, since native apps listen on whatever port the OS gives them
/// (RFC 8252 §7.3: "MUST allow any port"). Path, query, scheme and host stay
/// exact, and `given` must be written the way the `url` crate writes it
/// (no default port, no dot segments, lower-case host), so no two spellings
/// of one URL ever both match.
pub fn redirect_uri_matches(registered: &str, given: &str) -> bool {
    if registered == given {
        return true;
    }
    if !given.starts_with("http://") || !registered.starts_with("http://") {
        return false;
    }
    let without_port = |raw: &str| -> Option<String> {
        let mut url = url::Url::parse(raw).ok()?;
        if url.as_str() != raw || !is_loopback_url(raw) {
            return None;
        }
        url.set_port(None).ok()?;
        Some(url.into())
    };
    match (without_port(registered), without_port(given)) {
        (Some(r), Some(g)) => r == g,
        _ => false,
    }
}

/// The web origin named by an `Origin` request header (RFC 6454 §7), if it
/// is one exactly as a browser serialises it (`scheme://host[:port]`, the
/// `url` crate's `origin().ascii_serialization()`): anything else, including
/// `null` and a trailing slash, names no origin keygate could have registered.
pub fn web_origin(header: &str) -> Option<&str> {
    let url = url::Url::parse(header).ok()?;
    let origin = url.origin();
    (origin.is_tuple() && origin.ascii_serialization() == header).then_some(header)
}

/// Whether `raw` is an http(s) URL whose host is `localhost` or a loopback IP
/// (RFC 8252 §7.3 redirects, dev-only issuers and plain config secrets).
pub fn is_loopback_url(raw: &str) -> bool {
    match url::Url::parse(raw).ok().as_ref().and_then(|u| u.host()) {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn loopback_redirect_uris_match_at_any_port() {
        let ok = [
            ("http://127.0.0.1/cb", "http://127.0.0.1:51000/cb"),
            ("http://127.0.0.1/cb?x=1", "http://127.0.0.1:8/cb?x=1"),
            ("http://127.0.0.1:3000/cb", "http://127.0.0.1:4000/cb"),
            ("http://127.0.0.1:3000/cb", "http://127.0.0.1/cb"),
            ("http://[::1]/cb", "http://[::1]:61000/cb"),
            ("http://localhost/cb", "http://localhost:1234/cb"),
            ("https://app.example/cb", "https://app.example/cb"),
        ];
        for (registered, given) in ok {
            assert!(
                redirect_uri_matches(registered, given),
                "{registered} {given}"
            );
        }
        let refused = [
            // path, query, host, scheme and user info stay exact
            ("http://127.0.0.1/cb", "http://127.0.0.1:5000/cb/"),
            ("http://127.0.0.1/cb", "http://127.0.0.1:5000/CB"),
            ("http://127.0.0.1/cb", "http://127.0.0.1:5000/cb?x=1"),
            ("http://127.0.0.1/cb?x=1", "http://127.0.0.1:5000/cb?x=2"),
            ("http://127.0.0.1/cb", "http://127.0.0.2:5000/cb"),
            ("http://127.0.0.1/cb", "http://[::1]:5000/cb"),
            ("http://127.0.0.1/cb", "http://localhost:5000/cb"),
            ("http://127.0.0.1/cb", "http://u@127.0.0.1:5000/cb"),
            ("http://127.0.0.1/cb", "http://127.0.0.1:5000/cb#f"),
            // other spellings of the same URL are not the registered string
            ("http://127.0.0.1/cb", "http://127.0.0.1:5000/a/../cb"),
            ("http://127.0.0.1/cb", "http://127.0.0.1:05000/cb"),
            ("http://127.0.0.1/cb", "HTTP://127.0.0.1:5000/cb"),
            ("http://127.0.0.1/cb", "http://127.1:5000/cb"),
            // only loopback hosts, only http
            ("https://127.0.0.1/cb", "https://127.0.0.1:5000/cb"),
            ("https://app.example/cb", "https://app.example:444/cb"),
            ("http://app.example/cb", "http://app.example:81/cb"),
        ];
        for (registered, given) in refused {
            assert!(
                !redirect_uri_matches(registered, given),
                "{registered} {given}"
            );
        }
    }

    #[test]
    fn scope_parse_rejects_bad_chars() {
        assert!(ScopeSet::parse("a \"b").is_err());
        assert!(ScopeSet::parse("a\\b").is_err());
        assert!(ScopeSet::parse("é").is_err());
        assert_eq!(ScopeSet::parse("  b a  a ").unwrap().to_string(), "a b");
        assert!(ScopeSet::parse("").unwrap().is_empty());
    }

    proptest! {
        #[test]
        fn scope_round_trips_and_ignores_order(mut v in prop::collection::vec("[a-z:._-]{1,8}", 0..6)) {
            let a = ScopeSet::parse(&v.join(" ")).unwrap();
            v.reverse();
            let b = ScopeSet::parse(&v.join(" ")).unwrap();
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(ScopeSet::parse(&a.to_string()).unwrap(), a);
        }
    }

    fn public_client(redirect_uris: &[&str]) -> Client {
        Client {
            client_id: "spa".into(),
            client_name: "spa".into(),
            secret_sha256: None,
            auth_method: AuthMethod::None,
            grant_types: vec![GrantType::AuthorizationCode],
            redirect_uris: redirect_uris.iter().map(|u| u.to_string()).collect(),
            scope: ScopeSet::parse("profile").unwrap(),
            created_at: 0,
            owner: None,
            client_uri: None,
            logo_uri: None,
            registration_token_sha256: None,
            expires_at: None,
            ..Client::default()
        }
    }

    #[test]
    fn cors_origins_are_public_web_redirect_origins() {
        let c = public_client(&[
            "http://127.0.0.1:3000/cb",
            "http://127.0.0.1:3000/other",
            "https://app.example.com:443/cb",
            "https://Bücher.example/cb",
            "com.example.app:/cb",
        ]);
        let got: Vec<String> = c.cors_origins().into_iter().collect();
        assert_eq!(
            got,
            [
                "http://127.0.0.1:3000",
                "https://app.example.com",
                "https://xn--bcher-kva.example"
            ]
        );
        let confidential = Client {
            auth_method: AuthMethod::ClientSecretBasic,
            secret_sha256: Some([0; 32]),
            ..c
        };
        assert!(confidential.cors_origins().is_empty());
    }

    #[test]
    fn web_origin_is_exactly_the_serialised_origin() {
        assert_eq!(
            web_origin("http://127.0.0.1:3000"),
            Some("http://127.0.0.1:3000")
        );
        assert_eq!(
            web_origin("https://app.example.com"),
            Some("https://app.example.com")
        );
        for bad in [
            "null",
            "",
            "http://127.0.0.1:3000/",
            "HTTP://127.0.0.1:3000",
            "https://app.example.com:443",
            "http://127.0.0.1:3000/cb",
            "com.example.app:",
            "file:///tmp",
            " http://127.0.0.1:3000",
        ] {
            assert_eq!(web_origin(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback_url("http://127.0.0.1:8080"));
        assert!(is_loopback_url("http://localhost"));
        assert!(is_loopback_url("http://[::1]:1"));
        assert!(!is_loopback_url("http://127.0.0.1.example.com"));
        assert!(!is_loopback_url("https://auth.example.com"));
    }
}
