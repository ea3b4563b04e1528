//! Client ID metadata documents (draft-ietf-oauth-client-id-metadata-document,
//! "CIMD"; section numbers of draft -02): the rules a `client_id` URL, the
//! address it resolves to, the fetched document and its caching headers must
//! follow. The fetching itself (HTTP, DNS, cache, single flight) is in
//! `flows::client_documents`; this module decides, from values, and performs
//! no I/O.
//!
//! Part of the pure core: it must not depend on `flows`, `http`, `store` or
//! the config (only on the other `oauth` modules).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};

use super::client_meta::{
    check_open_registration, parse, validate, Defaults, RawClientMetadata, Rules,
};
use super::types::{AuthMethod, Client, ScopeSet};

/// Why a client ID metadata document cannot be used. The message is shown to
/// the user (authorization endpoint, escaped) or sent as the
/// `error_description` of `invalid_client` (token endpoint): it says what is
/// wrong with the document, never anything about keygate's network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DocumentError(pub String);

impl DocumentError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// The longest `client_id` URL considered (longer ones are unknown clients).
pub const MAX_URL_LEN: usize = 2048;

/// §3: whether `raw` is a Client Identifier URL: `https`, a host, a path, no
/// userinfo, no fragment, no `.`/`..` segments. Besides, it must be written
/// exactly as the `url` crate writes it (lower-case host, no default port, no
/// dot segments, the path's escapes as normalised): client IDs are compared
/// as plain strings (§3), so two spellings of one URL would be two clients
/// fetched from one document. `None`: not such a URL, an unknown client.
pub fn document_url(raw: &str) -> Option<url::Url> {
    if raw.len() > MAX_URL_LEN || !raw.starts_with("https://") || raw.contains('#') {
        return None;
    }
    let url = url::Url::parse(raw).ok()?;
    let ok = url.scheme() == "https"
        && url.username().is_empty()
        && url.password().is_none()
        && url.host().is_some()
        && url.fragment().is_none()
        && url.as_str() == raw
        && url
            .path_segments()
            .is_some_and(|mut s| s.all(|seg| seg != "." && seg != ".."));
    ok.then_some(url)
}

/// The IP address a URL names literally, if it does (no DNS lookup happens
/// for it, so the caller checks it with [`is_public_address`] itself).
pub fn literal_ip(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

/// §8.6 (SSRF): whether a document may be fetched from `ip`. Refused: the
/// special-use blocks of RFC 6890 and its successors (the IANA special-purpose
/// registries) that are not globally reachable or could reach this network:
/// unspecified, loopback, private (RFC 1918), shared address space / CGNAT
/// (RFC 6598), link-local, IETF protocol assignments, documentation,
/// benchmarking, multicast, reserved and broadcast; for IPv6 everything
/// outside global unicast `2000::/3`, plus ULA (`fc00::/7`), Teredo and the
/// other `2001::/23` assignments, documentation, 6to4 (`2002::/16`, which
/// embeds any IPv4 address); IPv4-mapped and NAT64 (`64:ff9b::/96`) addresses
/// are judged by the IPv4 address they carry.
pub fn is_public_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let special = a == 0                                   // 0.0.0.0/8 "this network"
        || a == 10                                         // RFC 1918
        || (a == 100 && (64..128).contains(&b))            // 100.64.0.0/10 CGNAT
        || a == 127                                        // loopback
        || (a == 169 && b == 254)                          // link-local
        || (a == 172 && (16..32).contains(&b))             // RFC 1918
        || (a == 192 && b == 0 && c == 0)                  // 192.0.0.0/24 IETF
        || (a == 192 && b == 0 && c == 2)                  // TEST-NET-1
        || (a == 192 && b == 88 && c == 99)                // 6to4 relay anycast
        || (a == 192 && b == 168)                          // RFC 1918
        || (a == 198 && (b == 18 || b == 19))              // benchmarking
        || (a == 198 && b == 51 && c == 100)               // TEST-NET-2
        || (a == 203 && b == 0 && c == 113)                // TEST-NET-3
        || a >= 224; // multicast, reserved, broadcast
    !special
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // NAT64 well-known prefix: the embedded IPv4 address is what is reached.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    let global_unicast = (s[0] & 0xe000) == 0x2000; // 2000::/3
                                                    // 2001::/23 IETF assignments (Teredo, ORCHID …) and 2001:db8::/32 documentation.
    let special = (s[0] == 0x2001 && (s[1] < 0x0200 || s[1] == 0x0db8))
        || s[0] == 0x2002                               // 6to4
        || (s[0] & 0xfff0) == 0x3ff0; // 3fff::/20 documentation
    global_unicast && !special
}

/// How long a fetched document may be used, from its `Cache-Control`
/// header values (§5.2 lets the server bound what RFC 9111 would allow):
/// `None` for `no-store` or `no-cache` (keygate does not revalidate, so it
/// refetches); otherwise `max-age` clamped to `[floor, max]`, or `floor`
/// without a `max-age`. The floor keeps a hostile `max-age=0` from making
/// keygate fetch on every request.
pub fn freshness<'a>(
    cache_control: impl IntoIterator<Item = &'a str>,
    floor: u64,
    max: u64,
) -> Option<u64> {
    let mut max_age = None;
    for directive in cache_control.into_iter().flat_map(|v| v.split(',')) {
        let directive = directive.trim();
        let (name, value) = match directive.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (directive, None),
        };
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return None;
        }
        if name.eq_ignore_ascii_case("max-age") {
            // An invalid max-age is stale (RFC 9111 §4.2.1): the floor.
            max_age = Some(value.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0));
        }
    }
    let floor = floor.min(max);
    Some(max_age.unwrap_or(floor).clamp(floor, max))
}

/// §4: a document is JSON: `application/json` or a more specific
/// `application/…+json` type (parameters such as `charset` aside).
pub fn is_json_content_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json") && sub.len() > "+json".len())
}

/// What a document's client may be, beyond the server-wide [`Rules`].
#[derive(Debug, Clone, Copy)]
pub struct DocumentRules<'a> {
    /// The rules every client follows (`oauth.scopes`, loopback redirects …).
    pub client_rules: &'a Rules,
    /// `registration.open_scopes`: a document's client, like an anonymously
    /// registered one, may ask for these only (and gets them without `scope`).
    pub open_scopes: &'a ScopeSet,
}

/// Turns a fetched document (`body`, at `url`) into the public client it
/// describes, checking in order:
/// 1. a JSON object whose `client_id` equals `url` exactly (§4);
/// 2. no shared secret (§4.1): `client_secret` and
///    `client_secret_expires_at` absent, `token_endpoint_auth_method`
///    absent or `none` (`private_key_jwt` would be allowed by §8.2 but is
///    not supported here);
/// 3. `redirect_uris` present (§4.2), and everything the client-metadata
///    pipeline checks for any client ([`parse`], [`validate`]), within the
///    limits of anonymous registration ([`check_open_registration`]: grant
///    types `authorization_code` and `refresh_token`, https / loopback /
///    private-use redirect URIs, `open_scopes`).
///
/// The client is public, so PKCE is required for it like for any public client.
/// Without `client_name`, it is named after the URL's host.
pub fn client_from_document(
    url: &url::Url,
    body: &[u8],
    rules: DocumentRules<'_>,
    now: i64,
) -> Result<Client, DocumentError> {
    let doc: Map<String, Value> = match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err(DocumentError::new("the document is not a JSON object")),
        Err(_) => return Err(DocumentError::new("the document is not valid JSON")),
    };
    match doc.get("client_id") {
        Some(Value::String(id)) if id == url.as_str() => {}
        Some(Value::String(_)) => {
            return Err(DocumentError::new(
                "the document's client_id is not the URL it was fetched from",
            ))
        }
        _ => return Err(DocumentError::new("the document has no client_id string")),
    }
    for field in ["client_secret", "client_secret_expires_at"] {
        if doc.contains_key(field) {
            return Err(DocumentError::new(format!(
                "the document must not contain `{field}` (no shared secret can be established this way)"
            )));
        }
    }
    match doc.get("token_endpoint_auth_method") {
        None => {}
        Some(Value::String(m)) if m == "none" => {}
        Some(Value::String(m)) if m == "private_key_jwt" => {
            return Err(DocumentError::new(
                "token_endpoint_auth_method `private_key_jwt` is not supported by this server; use `none`",
            ))
        }
        Some(Value::String(m)) => {
            return Err(DocumentError::new(format!(
                "token_endpoint_auth_method `{m}` is not allowed: a metadata document's client is public (`none`)"
            )))
        }
        Some(_) => {
            return Err(DocumentError::new(
                "token_endpoint_auth_method must be a string",
            ))
        }
    }
    if !doc.contains_key("redirect_uris") {
        return Err(DocumentError::new("the document has no redirect_uris"));
    }
    let raw = RawClientMetadata {
        client_name: string(&doc, "client_name")?,
        redirect_uris: strings(&doc, "redirect_uris")?,
        grant_types: strings(&doc, "grant_types")?,
        response_types: strings(&doc, "response_types")?,
        scope: string(&doc, "scope")?,
        token_endpoint_auth_method: Some(AuthMethod::None.as_str().into()),
        client_uri: string(&doc, "client_uri")?,
        logo_uri: string(&doc, "logo_uri")?,
        ..RawClientMetadata::default()
    };
    let defaults = Defaults {
        client_name: url.host_str().unwrap_or_default().to_string(),
        scope: rules.open_scopes.clone(),
        ..Defaults::rfc7591()
    };
    let invalid = |e: super::client_meta::MetadataError| DocumentError::new(e.to_string());
    let meta = parse(raw, defaults).map_err(invalid)?;
    check_open_registration(&meta, rules.open_scopes).map_err(invalid)?;
    validate(&meta, rules.client_rules).map_err(invalid)?;
    Ok(Client {
        client_id: url.as_str().to_string(),
        client_name: meta.client_name,
        secret_sha256: None,
        auth_method: AuthMethod::None,
        grant_types: meta.grant_types,
        redirect_uris: meta.redirect_uris,
        scope: meta.scope,
        created_at: now,
        owner: None,
        client_uri: meta.client_uri,
        logo_uri: meta.logo_uri,
        registration_token_sha256: None,
        expires_at: None,
        ..Client::default()
    })
}

fn string(doc: &Map<String, Value>, field: &'static str) -> Result<Option<String>, DocumentError> {
    match doc.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(DocumentError::new(format!("{field} must be a string"))),
    }
}

fn strings(
    doc: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<Vec<String>>, DocumentError> {
    match doc.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(DocumentError::new(format!(
                    "{field} must be an array of strings"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(DocumentError::new(format!(
            "{field} must be an array of strings"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://app.example/oauth/client.json";

    fn rules() -> Rules {
        Rules {
            scopes: ScopeSet::parse("profile email api:read").unwrap(),
            http_loopback_redirects: true,
            legacy_grants: false,
            signing_algs: vec![],
        }
    }

    fn load(doc: Value) -> Result<Client, DocumentError> {
        let open = ScopeSet::parse("profile email").unwrap();
        client_from_document(
            &document_url(URL).unwrap(),
            doc.to_string().as_bytes(),
            DocumentRules {
                client_rules: &rules(),
                open_scopes: &open,
            },
            7,
        )
    }

    fn doc() -> Value {
        serde_json::json!({
            "client_id": URL,
            "client_name": "App",
            "redirect_uris": ["https://app.example/cb", "http://127.0.0.1/cb"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "client_uri": "https://app.example/",
        })
    }

    #[test]
    fn url_rules() {
        for ok in [
            URL,
            "https://app.example/",
            "https://app.example:8443/c?x=1",
            "https://127.0.0.1:9/c",
        ] {
            assert!(document_url(ok).is_some(), "{ok}");
        }
        for bad in [
            "http://app.example/c",
            "https://app.example",
            "https://user@app.example/c",
            "https://u:p@app.example/c",
            "https://app.example/c#f",
            "https://app.example/c#",
            "https://app.example/a/../c",
            "https://app.example/a/./c",
            "https://app.example/a/%2e%2e/c",
            "https://APP.example/c",
            "https://app.example:443/c",
            "https:app.example/c",
            "HTTPS://app.example/c",
            "app-123",
            "",
        ] {
            assert!(document_url(bad).is_none(), "{bad}");
        }
        let long = format!("https://app.example/{}", "a".repeat(MAX_URL_LEN));
        assert!(document_url(&long).is_none());
    }

    #[test]
    fn special_use_addresses_are_refused() {
        for bad in [
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001::1",
            "2001:db8::1",
            "2002:a00:1::1",
            "3fff::1",
            "100::1",
            "::127.0.0.1",
        ] {
            let ip: IpAddr = bad.parse().unwrap();
            assert!(!is_public_address(ip), "{bad}");
        }
        for good in [
            "93.184.216.34",
            "1.1.1.1",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:93.184.216.34",
            "64:ff9b::5db8:d822",
        ] {
            let ip: IpAddr = good.parse().unwrap();
            assert!(is_public_address(ip), "{good}");
        }
    }

    #[test]
    fn literal_ips_are_found() {
        let u = document_url("https://[::1]:8443/c").unwrap();
        assert_eq!(literal_ip(&u), Some("::1".parse().unwrap()));
        assert_eq!(literal_ip(&document_url(URL).unwrap()), None);
    }

    #[test]
    fn caching_headers_are_bounded() {
        assert_eq!(freshness(["max-age=300"], 60, 86400), Some(300));
        assert_eq!(freshness(["public, max-age=0"], 60, 86400), Some(60));
        assert_eq!(freshness(["max-age=999999999"], 60, 86400), Some(86400));
        assert_eq!(freshness(["max-age=\"120\""], 60, 86400), Some(120));
        assert_eq!(freshness(["max-age=x"], 60, 86400), Some(60));
        assert_eq!(freshness([], 60, 86400), Some(60));
        assert_eq!(freshness(["max-age=300", "No-Store"], 60, 86400), None);
        assert_eq!(freshness(["no-cache"], 60, 86400), None);
        // A maximum below the floor wins.
        assert_eq!(freshness(["max-age=300"], 60, 30), Some(30));
    }

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/oauth-client+json",
        ] {
            assert!(is_json_content_type(ok), "{ok}");
        }
        for bad in [
            "text/html",
            "application/+json",
            "text/json",
            "application/jsonp",
            "",
        ] {
            assert!(!is_json_content_type(bad), "{bad}");
        }
    }

    #[test]
    fn a_valid_document_is_a_public_client() {
        let c = load(doc()).unwrap();
        assert_eq!(c.client_id, URL);
        assert_eq!(c.client_name, "App");
        assert_eq!(c.auth_method, AuthMethod::None);
        assert!(c.secret_sha256.is_none());
        assert_eq!(c.created_at, 7);
        assert_eq!(
            c.scope.to_string(),
            "email profile",
            "open_scopes by default"
        );
        assert!(
            c.has_redirect_uri("http://127.0.0.1:5555/cb"),
            "RFC 8252 port rule"
        );
        assert!(!c.has_redirect_uri("https://app.example/cb/"));
        // Minimal: client_id and redirect_uris; named after the host.
        let c = load(
            serde_json::json!({"client_id": URL, "redirect_uris": ["https://app.example/cb"]}),
        )
        .unwrap();
        assert_eq!(c.client_name, "app.example");
        assert_eq!(
            c.grant_types,
            [super::super::types::GrantType::AuthorizationCode]
        );
    }

    #[test]
    fn invalid_documents_say_why() {
        let with = |k: &str, v: Value| {
            let mut d = doc();
            d[k] = v;
            load(d).unwrap_err().0
        };
        assert!(with("client_id", "https://app.example/other".into()).contains("client_id"));
        assert!(with("client_id", Value::Null).contains("client_id"));
        assert!(
            with("token_endpoint_auth_method", "client_secret_basic".into())
                .contains("client_secret_basic")
        );
        assert!(
            with("token_endpoint_auth_method", "client_secret_post".into()).contains("not allowed")
        );
        assert!(
            with("token_endpoint_auth_method", "private_key_jwt".into()).contains("not supported")
        );
        assert!(with("client_secret", "s3cret".into()).contains("client_secret"));
        let mut d = doc();
        d.as_object_mut().unwrap().remove("response_types");
        d["grant_types"] = serde_json::json!(["authorization_code", "client_credentials"]);
        assert!(load(d).unwrap_err().0.contains("client_credentials"));
        assert!(with("grant_types", serde_json::json!(["implicit"])).contains("response_types"));
        assert!(with("scope", "api:read".into()).contains("api:read"));
        assert!(with("redirect_uris", serde_json::json!([])).contains("redirect URI"));
        assert!(with("redirect_uris", "https://app.example/cb".into()).contains("array"));
        assert!(
            with("redirect_uris", serde_json::json!(["javascript:alert(1)"]))
                .contains("forbidden scheme")
        );
        assert!(with("logo_uri", "ftp://x/".into()).contains("logo_uri"));
        let mut d = doc();
        d.as_object_mut().unwrap().remove("redirect_uris");
        assert!(load(d).unwrap_err().0.contains("redirect_uris"));
        let err = |b: &[u8]| {
            client_from_document(
                &document_url(URL).unwrap(),
                b,
                DocumentRules {
                    client_rules: &rules(),
                    open_scopes: &ScopeSet::default(),
                },
                0,
            )
            .unwrap_err()
            .0
        };
        assert!(err(b"[1]").contains("not a JSON object"));
        assert!(err(b"{").contains("not valid JSON"));
    }
}
