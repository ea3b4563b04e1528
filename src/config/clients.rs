//! The checks of `[[clients]]` and `[[users]]`: what only a config-file entry
//! can get wrong (duplicate ids and names, plain secrets outside dev, password
//! hashes that are not PHC strings). Errors name `clients[i].field` or
//! `users[i].field`.

use std::collections::HashSet;

use secrecy::ExposeSecret;

use super::{ConfigClient, ConfigError, ConfigResource, ConfigUser};
use crate::oauth::client_meta::{
    parse, validate, ClientMetadata, Defaults, RawClientMetadata, Rules,
};
use crate::oauth::resource::{Resource, ResourceId};
use crate::oauth::types::{AuthMethod, ScopeSet};

/// Checks every `[[resources]]` entry (RFC 8707) and returns them: the URI
/// is a registrable identifier ([`ResourceId::parse_registered`]) and not a
/// duplicate (compared normalised, so `https://a` and `https://a/` clash),
/// the scopes are known (`oauth.scopes`) and not empty, and `client_id`
/// names a confidential `[[clients]]` entry. Returns the good entries and
/// adds the first problem of each bad one to `errs`.
pub(super) fn check_resources(
    resources: &[ConfigResource],
    known_scopes: &ScopeSet,
    clients: &[ConfigClient],
    errs: &mut Vec<ConfigError>,
) -> Vec<Resource> {
    let mut seen = HashSet::new();
    let mut out = vec![];
    for (i, r) in resources.iter().enumerate() {
        match check_resource(i, r, known_scopes, clients, &mut seen) {
            Ok(resource) => out.push(resource),
            Err(e) => errs.push(e),
        }
    }
    out
}

/// One `[[resources]]` entry of [`check_resources`]; `seen` holds the URIs before it.
fn check_resource(
    i: usize,
    r: &ConfigResource,
    known_scopes: &ScopeSet,
    clients: &[ConfigClient],
    seen: &mut HashSet<ResourceId>,
) -> Result<Resource, ConfigError> {
    let key = |field: &str| format!("resources[{i}].{field}");
    let id = ResourceId::parse_registered(&r.uri).map_err(|m| ConfigError::new(key("uri"), m))?;
    if !seen.insert(id) {
        return Err(ConfigError::new(
            key("uri"),
            "duplicate resource (URIs are compared normalised: a trailing `/` on the bare host, the case of scheme and host and a default port make no difference)",
        ));
    }
    let scopes = resource_scopes(&r.scopes.join(" "), known_scopes)
        .map_err(|m| ConfigError::new(key("scopes"), m))?;
    if let Some(c) = &r.client_id {
        match clients.iter().find(|k| &k.client_id == c) {
            None => {
                return Err(ConfigError::new(
                    key("client_id"),
                    format!("`{c}` is not a [[clients]] entry"),
                ))
            }
            Some(k) if k.client_secret.is_none() => {
                return Err(ConfigError::new(
                    key("client_id"),
                    format!("`{c}` is a public client; introspection needs a confidential one"),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(Resource {
        uri: r.uri.clone(),
        scopes,
        name: r.name.clone().filter(|n| !n.trim().is_empty()),
        client_id: r.client_id.clone(),
    })
}

/// The scopes of a resource being registered (config or CLI): a non-empty
/// subset of the known scopes (a scope no client may be registered for
/// could never reach the resource).
pub fn resource_scopes(raw: &str, known: &ScopeSet) -> Result<ScopeSet, String> {
    let scopes = ScopeSet::parse(raw).map_err(|e| e.description.to_string())?;
    if scopes.is_empty() {
        return Err("a resource must accept at least one scope".into());
    }
    if let Some(s) = scopes.iter().find(|s| !known.contains(s)) {
        return Err(format!("`{s}` is not one of oauth.scopes"));
    }
    Ok(scopes)
}

/// Checks every config client: ids are unique, and each entry passes
/// [`validate_config_client`]; the first problem of each entry goes to `errs`.
pub(super) fn check_clients(
    clients: &[ConfigClient],
    rules: &Rules,
    dev_refusal: Option<&str>,
    errs: &mut Vec<ConfigError>,
) {
    let mut seen = HashSet::new();
    for (i, c) in clients.iter().enumerate() {
        let key = format!("clients[{i}]");
        if !seen.insert(c.client_id.as_str()) {
            errs.push(ConfigError::new(key, "duplicate client_id"));
        } else if let Err((field, msg)) = validate_config_client(c, rules, dev_refusal) {
            errs.push(ConfigError::new(format!("{key}.{field}"), msg));
        }
    }
}

/// The password hash of the demo user in `config/keygate.toml` (its
/// password is published in the README): refused outside dev mode.
pub const DEMO_PASSWORD_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$ypBRGiWwYWKo8qiG/nyCog$4oY5jXa63kjYgFquHi33MTBbXwF8fS8BFNwP7kfr/40";

/// Checks every config user: usernames are non-empty and unique (ignoring
/// case), ids (when given) well-formed and unique, names bounded, and
/// password hashes are argon2 PHC strings, and not the demo user's
/// published one unless in dev mode (`dev_refusal` is `None`). The first
/// problem of each entry goes to `errs`.
pub(super) fn check_users(
    users: &[ConfigUser],
    dev_refusal: Option<&str>,
    errs: &mut Vec<ConfigError>,
) {
    let mut names = HashSet::new();
    let mut ids = HashSet::new();
    for (i, u) in users.iter().enumerate() {
        if let Err(e) = check_user(i, u, dev_refusal, &mut names, &mut ids) {
            errs.push(e);
        }
    }
}

/// One `[[users]]` entry of [`check_users`]; `names` and `ids` hold those before it.
fn check_user(
    i: usize,
    u: &ConfigUser,
    dev_refusal: Option<&str>,
    names: &mut HashSet<String>,
    ids: &mut HashSet<String>,
) -> Result<(), ConfigError> {
    let key = format!("users[{i}]");
    if u.username.trim().is_empty() || !names.insert(u.username.to_lowercase()) {
        return Err(ConfigError::new(
            key,
            "username must be non-empty and unique",
        ));
    }
    if let Some(id) = &u.id {
        let ok = (1..=64).contains(&id.len())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !ok {
            return Err(ConfigError::new(
                format!("{key}.id"),
                "must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'",
            ));
        }
        if !ids.insert(id.clone()) {
            return Err(ConfigError::new(format!("{key}.id"), "must be unique"));
        }
    }
    if u.name
        .as_deref()
        .is_some_and(|n| crate::flows::users::clean_name(n).is_err())
    {
        return Err(ConfigError::new(
            format!("{key}.name"),
            "must be at most 200 characters, without control characters",
        ));
    }
    if !crate::passwords::is_valid_phc(&u.password_hash) {
        return Err(ConfigError::new(
            format!("{key}.password_hash"),
            "must be an argon2 PHC string (make one with `keygate hash-password`)",
        ));
    }
    if let (Some(why), true) = (dev_refusal, u.password_hash == DEMO_PASSWORD_HASH) {
        return Err(ConfigError::new(
            format!("{key}.password_hash"),
            format!("is the demo user's published password hash, refused because {why}; make a new one with `keygate hash-password`"),
        ));
    }
    Ok(())
}

/// A `[[clients]]` entry as client metadata: the config-only checks (id
/// length, plain secrets only with a loopback issuer and listener, secret length, secret vs
/// auth method), then the one metadata pipeline (`client_meta::parse` with the
/// config defaults, and the server-wide rules). Errors name the field.
pub(crate) fn validate_config_client(
    c: &ConfigClient,
    rules: &Rules,
    dev_refusal: Option<&str>,
) -> Result<ClientMetadata, (&'static str, String)> {
    if c.client_id.is_empty() || c.client_id.len() > 128 {
        return Err(("client_id", "must be 1 to 128 characters".into()));
    }
    if let Some(secret) = &c.client_secret {
        if let Some(why) = dev_refusal {
            return Err((
                "client_secret",
                format!("plain-text client secrets are dev-only and refused unless server.issuer and server.listen are both loopback ({why}); create production clients with `keygate client create`"),
            ));
        }
        if secret.expose_secret().len() < 8 {
            return Err(("client_secret", "must be at least 8 characters".into()));
        }
    }
    let raw = RawClientMetadata {
        client_name: (!c.client_name.is_empty()).then(|| c.client_name.clone()),
        redirect_uris: Some(c.redirect_uris.clone()),
        grant_types: Some(c.grant_types.clone()),
        response_types: None,
        scope: Some(c.scope.clone()),
        token_endpoint_auth_method: c.token_endpoint_auth_method.clone(),
        post_logout_redirect_uris: Some(c.post_logout_redirect_uris.clone()),
        ..RawClientMetadata::default()
    };
    let defaults = Defaults::config(&c.client_id, c.client_secret.is_some());
    let meta = parse(raw, defaults).map_err(|e| (e.field, e.message))?;
    if (meta.auth_method == AuthMethod::None) != c.client_secret.is_none() {
        return Err((
            "token_endpoint_auth_method",
            "`none` is for clients without a secret; a client with a secret needs client_secret_basic or client_secret_post".into(),
        ));
    }
    validate(&meta, rules).map_err(|e| (e.field, e.message))?;
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use crate::config::test_env as env;
    use crate::config::Settings;

    #[test]
    fn config_user_ids_are_checked() {
        const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$ypBRGiWwYWKo8qiG/nyCog$4oY5jXa63kjYgFquHi33MTBbXwF8fS8BFNwP7kfr/40";
        let check = |users: &str| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("k.toml");
            std::fs::write(&path, users.replace("HASH", HASH)).unwrap();
            Settings::load(Some(&path), vec![])
                .unwrap()
                .validate()
                .map(|_| ())
                .map_err(|e| e.key)
        };
        let user = |name: &str, extra: &str| {
            format!("[[users]]\nusername = \"{name}\"\npassword_hash = \"HASH\"\n{extra}")
        };
        assert_eq!(
            check(&user("a", "id = \"u-1.A_z\"\nname = \"A Person\"\n")),
            Ok(())
        );
        for bad in ["", "has space", "slash/", &"x".repeat(65)] {
            assert_eq!(
                check(&user("a", &format!("id = \"{bad}\"\n"))),
                Err("users[0].id".into()),
                "{bad:?}"
            );
        }
        let twice = format!(
            "{}{}",
            user("a", "id = \"same\"\n"),
            user("b", "id = \"same\"\n")
        );
        assert_eq!(check(&twice), Err("users[1].id".into()));
        let long_name = format!("name = \"{}\"\n", "n".repeat(201));
        assert_eq!(check(&user("a", &long_name)), Err("users[0].name".into()));
    }

    #[test]
    fn plaintext_client_secret_needs_loopback_issuer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        std::fs::write(
            &path,
            "[[clients]]\nclient_id = \"demo\"\nclient_secret = \"demo-secret\"\ngrant_types = [\"client_credentials\"]\nscope = \"profile\"\n",
        )
        .unwrap();
        let s = Settings::load(Some(&path), vec![]).unwrap();
        s.validate().unwrap();
        let s = Settings::load(
            Some(&path),
            env(&[("KEYGATE_SERVER_ISSUER", "https://auth.example.com")]),
        )
        .unwrap();
        assert_eq!(s.validate().unwrap_err().key, "clients[0].client_secret");
    }

    /// Dev credentials need a loopback listener too: a loopback issuer
    /// behind `0.0.0.0` still serves them to the network.
    #[test]
    fn dev_credentials_need_a_loopback_listener() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        let secret = "[[clients]]\nclient_id = \"demo\"\nclient_secret = \"demo-secret\"\ngrant_types = [\"client_credentials\"]\nscope = \"profile\"\n";
        let demo_user = format!(
            "[[users]]\nusername = \"demo\"\npassword_hash = \"{}\"\n",
            super::DEMO_PASSWORD_HASH
        );
        let load = |toml: &str, listen: &str| {
            std::fs::write(&path, toml).unwrap();
            Settings::load(Some(&path), env(&[("KEYGATE_SERVER_LISTEN", listen)]))
                .unwrap()
                .validate()
        };
        for listen in ["127.0.0.1:8080", "[::1]:8080"] {
            load(secret, listen).unwrap();
            load(&demo_user, listen).unwrap();
        }
        for listen in ["0.0.0.0:8080", "192.0.2.1:8080", "[::]:8080"] {
            let e = load(secret, listen).unwrap_err();
            assert_eq!(e.key, "clients[0].client_secret", "{listen}");
            assert!(e.message.contains("server.listen"), "{e}");
            assert!(!e.to_string().contains("demo-secret"), "{e}");
            let e = load(&demo_user, listen).unwrap_err();
            assert_eq!(e.key, "users[0].password_hash", "{listen}");
            assert!(e.message.contains("server.listen"), "{e}");
        }
        // Any other hash is an operator's own user: fine on any address.
        let own = demo_user.replace("$ypBR", "$zpBR");
        load(&own, "0.0.0.0:8080").unwrap();
    }

    const RS_CLIENT: &str = "[[clients]]\nclient_id = \"rs\"\nclient_secret = \"rs-secret-1\"\ngrant_types = [\"client_credentials\"]\nscope = \"profile\"\n[[clients]]\nclient_id = \"spa\"\nredirect_uris = [\"http://127.0.0.1:3000/cb\"]\ngrant_types = [\"authorization_code\"]\ntoken_endpoint_auth_method = \"none\"\n";

    fn load(resources: &str) -> Result<crate::config::Validated, crate::config::ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        std::fs::write(&path, format!("{RS_CLIENT}{resources}")).unwrap();
        Settings::load(Some(&path), vec![])?.validate()
    }

    #[test]
    fn resources_are_checked_at_start() {
        let ok = load(
            "[[resources]]\nuri = \"https://api.example\"\nscopes = [\"profile\", \"email\"]\nname = \"API\"\nclient_id = \"rs\"\n[[resources]]\nuri = \"http://127.0.0.1:3001/mcp\"\nscopes = [\"profile\"]\n",
        )
        .unwrap();
        assert_eq!(ok.resources.len(), 2);
        assert_eq!(ok.resources[0].uri, "https://api.example");
        assert_eq!(ok.resources[0].scopes.to_string(), "email profile");
        assert_eq!(ok.resources[0].client_id.as_deref(), Some("rs"));
        assert_eq!(ok.resources[1].name, None);
        for (toml, key) in [
            ("uri = \"http://api.example/\"\nscopes = [\"profile\"]", "resources[0].uri"),
            ("uri = \"https://api.example/#x\"\nscopes = [\"profile\"]", "resources[0].uri"),
            ("uri = \"api.example\"\nscopes = [\"profile\"]", "resources[0].uri"),
            ("uri = \"https://api.example/\"\nscopes = [\"admin\"]", "resources[0].scopes"),
            ("uri = \"https://api.example/\"\nscopes = []", "resources[0].scopes"),
            ("uri = \"https://api.example/\"\nscopes = [\"profile\"]\nclient_id = \"nobody\"", "resources[0].client_id"),
            ("uri = \"https://api.example/\"\nscopes = [\"profile\"]\nclient_id = \"spa\"", "resources[0].client_id"),
            ("uri = \"https://api.example/\"\nscopes = [\"profile\"]\naudience = \"x\"", "resources[0]"),
            ("uri = \"https://api.example\"\nscopes = [\"profile\"]\n[[resources]]\nuri = \"https://API.example:443/\"\nscopes = [\"profile\"]", "resources[1].uri"),
        ] {
            let e = load(&format!("[[resources]]\n{toml}\n")).unwrap_err();
            assert_eq!(e.key, key, "{toml}: {e}");
        }
    }

    #[test]
    fn config_clients_register_post_logout_redirect_uris_under_the_redirect_rules() {
        let client = |uris: &str| {
            format!("[[clients]]\nclient_id = \"web\"\nclient_secret = \"web-secret-1\"\nredirect_uris = [\"http://127.0.0.1:3000/callback\"]\ngrant_types = [\"authorization_code\"]\npost_logout_redirect_uris = {uris}\n")
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        let load = |toml: String| {
            std::fs::write(&path, toml).unwrap();
            Settings::load(Some(&path), vec![]).unwrap()
        };
        let s = load(client("[\"http://127.0.0.1:3000/\"]"));
        let v = s.validate().unwrap();
        let meta = super::validate_config_client(&s.clients[0], &v.client_rules, None).unwrap();
        assert_eq!(
            meta.oidc.post_logout_redirect_uris,
            vec!["http://127.0.0.1:3000/".to_string()]
        );
        let load = |toml: String| load(toml).validate();
        for bad in ["[\"http://app.example/\"]", "[\"https://app.example/#x\"]"] {
            let e = load(client(bad)).unwrap_err();
            assert_eq!(e.key, "clients[0].post_logout_redirect_uris", "{bad}: {e}");
        }
    }
}
