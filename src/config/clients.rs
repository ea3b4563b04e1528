//! The checks of `[[clients]]` and `[[users]]`: what only a config-file entry
//! can get wrong (duplicate ids and names, plain secrets outside dev, password
//! hashes that are not PHC strings). Errors name `clients[i].field` or
//! `users[i].field`.

use std::collections::HashSet;

use secrecy::ExposeSecret;

use super::{ConfigClient, ConfigError, ConfigUser};
use crate::oauth::client_meta::{
    parse, validate, ClientMetadata, Defaults, RawClientMetadata, Rules,
};
use crate::oauth::types::AuthMethod;

/// Checks every config client: ids are unique, and each entry passes
/// [`validate_config_client`].
pub(super) fn check_clients(
    clients: &[ConfigClient],
    rules: &Rules,
    issuer_is_loopback: bool,
) -> Result<(), ConfigError> {
    let mut seen = HashSet::new();
    for (i, c) in clients.iter().enumerate() {
        let key = format!("clients[{i}]");
        if !seen.insert(c.client_id.as_str()) {
            return Err(ConfigError::new(key, "duplicate client_id"));
        }
        validate_config_client(c, rules, issuer_is_loopback)
            .map_err(|(field, msg)| ConfigError::new(format!("{key}.{field}"), msg))?;
    }
    Ok(())
}

/// Checks every config user: usernames are non-empty and unique (ignoring
/// case), and password hashes are argon2 PHC strings.
pub(super) fn check_users(users: &[ConfigUser]) -> Result<(), ConfigError> {
    let mut names = HashSet::new();
    for (i, u) in users.iter().enumerate() {
        let key = format!("users[{i}]");
        if u.username.trim().is_empty() || !names.insert(u.username.to_lowercase()) {
            return Err(ConfigError::new(
                key,
                "username must be non-empty and unique",
            ));
        }
        if !crate::passwords::is_valid_phc(&u.password_hash) {
            return Err(ConfigError::new(
                format!("{key}.password_hash"),
                "must be an argon2 PHC string (make one with `keygate hash-password`)",
            ));
        }
    }
    Ok(())
}

/// A `[[clients]]` entry as client metadata: the config-only checks (id
/// length, plain secrets only with a loopback issuer, secret length, secret vs
/// auth method), then the one metadata pipeline (`client_meta::parse` with the
/// config defaults, and the server-wide rules). Errors name the field.
pub(crate) fn validate_config_client(
    c: &ConfigClient,
    rules: &Rules,
    issuer_is_loopback: bool,
) -> Result<ClientMetadata, (&'static str, String)> {
    if c.client_id.is_empty() || c.client_id.len() > 128 {
        return Err(("client_id", "must be 1 to 128 characters".into()));
    }
    if let Some(secret) = &c.client_secret {
        if !issuer_is_loopback {
            return Err((
                "client_secret",
                "plain-text client secrets are dev-only and refused unless server.issuer is a loopback URL; create production clients with `keygate client create`".into(),
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
        client_uri: None,
        logo_uri: None,
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
}
