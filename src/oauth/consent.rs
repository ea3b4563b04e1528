//! Remembered consent (issue 15 item 3): what a user allowed each client, so
//! the consent page is shown only for something new (OpenID Connect Core
//! §3.1.2.4 leaves it to the provider; `prompt=consent` asks again).
//!
//! Each allowed app carries a consent id. The codes and refresh families
//! issued under it name it, and the store keeps a marker for it while the
//! user allows the app: revoking the app deletes the marker, so none of
//! them can be redeemed or rotated again, and a later "allow" starts a new
//! id rather than bringing them back.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::types::ScopeSet;

/// One client a user allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowedApp {
    /// The consent id (random): codes and refresh families name it.
    pub id: String,
    /// Every scope the user allowed the client, over all their decisions.
    pub scope: ScopeSet,
    /// The RFC 8707 resources (registered URIs) the user allowed it to reach.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub resources: BTreeSet<String>,
    /// When the user first allowed it.
    pub granted_at: i64,
    /// When the user last allowed it something.
    pub updated_at: i64,
}

impl AllowedApp {
    /// Whether this consent already covers a request for `scope` and
    /// `resources`: both are within what the user allowed.
    pub fn covers<'a>(
        &self,
        scope: &ScopeSet,
        resources: impl IntoIterator<Item = &'a str>,
    ) -> bool {
        scope.is_subset(&self.scope) && resources.into_iter().all(|r| self.resources.contains(r))
    }
}

/// The apps a user allowed, by client id.
pub type AllowedApps = BTreeMap<String, AllowedApp>;

/// The user allowed `client_id` the `scope` and `resources` at `now`: the
/// apps afterwards. An app allowed before keeps its id and gains what was
/// new (so the families it already has keep working); a new one gets
/// `new_id`.
pub fn allow(
    apps: &AllowedApps,
    client_id: &str,
    scope: &ScopeSet,
    resources: &[String],
    now: i64,
    new_id: impl FnOnce() -> String,
) -> AllowedApps {
    let mut apps = apps.clone();
    let resources: BTreeSet<String> = resources.iter().cloned().collect();
    match apps.get_mut(client_id) {
        Some(app) => {
            app.scope = app.scope.union(scope);
            app.resources.extend(resources);
            app.updated_at = now;
        }
        None => {
            apps.insert(
                client_id.to_string(),
                AllowedApp {
                    id: new_id(),
                    scope: scope.clone(),
                    resources,
                    granted_at: now,
                    updated_at: now,
                },
            );
        }
    }
    apps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(s: &str) -> ScopeSet {
        ScopeSet::parse(s).unwrap()
    }

    #[test]
    fn covers_the_same_or_fewer_scopes_and_resources_only() {
        let apps = allow(
            &AllowedApps::new(),
            "c1",
            &scope("openid profile"),
            &["https://api.example/".into()],
            10,
            || "k1".into(),
        );
        let app = &apps["c1"];
        assert!(app.covers(&scope("openid profile"), ["https://api.example/"]));
        assert!(app.covers(&scope("openid"), []));
        assert!(!app.covers(&scope("openid email"), []));
        assert!(!app.covers(&scope("openid"), ["https://other.example/"]));
    }

    #[test]
    fn allowing_again_widens_and_keeps_the_id() {
        let once = allow(&AllowedApps::new(), "c1", &scope("openid"), &[], 10, || {
            "k1".into()
        });
        let twice = allow(&once, "c1", &scope("email"), &[], 20, || "k2".into());
        let app = &twice["c1"];
        assert_eq!(app.id, "k1");
        assert_eq!(app.scope, scope("openid email"));
        assert_eq!((app.granted_at, app.updated_at), (10, 20));
        let other = allow(&twice, "c2", &scope("openid"), &[], 30, || "k3".into());
        assert_eq!(other["c2"].id, "k3");
        assert_eq!(other.len(), 2);
    }
}
