//! `keygate check-config`'s offline checks: every problem of a settings tree
//! that can be found without the network ([`Settings::validate`] stops at
//! the first). The store's reachability is the CLI's
//! part (it needs the store).

use std::path::Path;

use super::validate::dev_refusal;
use super::{ConfigError, Settings};
use crate::oauth::types::is_loopback_url;
use crate::tokens::keys::Rotation;
use crate::tokens::{KeyError, KeySet};

impl Settings {
    /// Every problem found offline: every validation error
    /// ([`Settings::validate_all`]), a placeholder issuer, a bad
    /// `store.tls_*` file, each dev credential (plain-text `[[clients]]`
    /// secret, the demo user's published hash) outside dev mode, and a
    /// missing, unreadable or empty `keys.dir`. One per key, in that order.
    pub fn problems(&self) -> Vec<ConfigError> {
        let mut out: Vec<ConfigError> = vec![];
        let mut push = |p: ConfigError| {
            if !out.iter().any(|q| q.key == p.key) {
                out.push(p);
            }
        };
        // Includes a bad `store.tls_*` file, whatever else failed.
        for p in self.validate_all().err().unwrap_or_default() {
            push(p);
        }
        if let Some(m) = placeholder_issuer(&self.server.issuer) {
            push(ConfigError::new("server.issuer", m));
        }
        for p in self.dev_credential_problems() {
            push(p);
        }
        if let Some(p) = keys_dir_problem(Path::new(&self.keys.dir)) {
            push(p);
        }
        out
    }

    fn dev_credential_problems(&self) -> Vec<ConfigError> {
        let Ok(listen) = self.server.listen.parse() else {
            return vec![];
        };
        let Some(why) = dev_refusal(is_loopback_url(&self.server.issuer), listen) else {
            return vec![];
        };
        let clients = self.clients.iter().enumerate().filter(|(_, c)| c.client_secret.is_some()).map(|(i, _)| {
            ConfigError::new(
                format!("clients[{i}].client_secret"),
                format!("a plain-text client secret is dev-only ({why}); create production clients with `keygate client create`"),
            )
        });
        let users = self
            .users
            .iter()
            .enumerate()
            .filter(|(_, u)| u.password_hash == super::DEMO_PASSWORD_HASH)
            .map(|(i, _)| {
                ConfigError::new(
                    format!("users[{i}].password_hash"),
                    format!("is the demo user's published password hash ({why}); make a new one with `keygate hash-password`"),
                )
            });
        clients.chain(users).collect()
    }
}

/// Why `issuer` is a placeholder, if its host is a name reserved for
/// documentation (RFC 2606: `example.com`, `.net`, `.org` and their
/// subdomains, the `.example` and `.invalid` TLDs), as the production
/// example's `https://auth.example.com` is. `keygate serve` refuses it.
pub fn placeholder_issuer(issuer: &str) -> Option<String> {
    let url = url::Url::parse(issuer).ok()?;
    let host = url.host_str()?.trim_end_matches('.').to_ascii_lowercase();
    let reserved = [
        "example.com",
        "example.net",
        "example.org",
        "example",
        "invalid",
    ]
    .iter()
    .any(|r| host == *r || host.ends_with(&format!(".{r}")));
    reserved.then(|| {
        format!(
            "`{issuer}` is a placeholder (`{host}` is reserved for documentation): set the public https URL your clients use"
        )
    })
}

/// A `keys.dir` that `serve` could not load as it is: missing (each
/// instance would create a key of its own), unreadable, or without keys.
fn keys_dir_problem(dir: &Path) -> Option<ConfigError> {
    let problem = |m: String| Some(ConfigError::new("keys.dir", m));
    let shown = dir.display();
    if !dir.exists() {
        return problem(format!(
            "`{shown}` does not exist: `keygate serve` would create it with a new key that no other instance shares; create it with `keygate keys generate` (and copy it to every instance)"
        ));
    }
    match KeySet::load_dir(dir, Rotation::IMMEDIATE) {
        Ok(_) => None,
        Err(KeyError::Empty(_)) => problem(format!(
            "`{shown}` holds no signing key: run `keygate keys generate`"
        )),
        Err(e) => problem(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documentation_hosts_are_placeholders() {
        for p in [
            "https://auth.example.com",
            "https://example.org/",
            "https://AUTH.EXAMPLE.NET.",
            "https://sso.corp.example",
            "https://x.invalid",
        ] {
            assert!(placeholder_issuer(p).is_some(), "{p}");
        }
        for ok in [
            "https://auth.mycompany.com",
            "https://example.community",
            "https://notexample.com",
            "http://127.0.0.1:8080",
        ] {
            assert_eq!(placeholder_issuer(ok), None, "{ok}");
        }
    }
}
