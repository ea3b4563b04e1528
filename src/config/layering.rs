//! Loading: built-in defaults < TOML file < `KEYGATE_<SECTION>_<KEY>`
//! environment variables, merged by hand over `toml::Value` so that an unknown
//! key or a value of the wrong type is refused with its name (serde's own
//! errors would not say which layer or key was at fault).

use std::collections::BTreeMap;
use std::path::Path;

use toml::Value;

use super::{ConfigClient, ConfigError, ConfigResource, ConfigUser, Settings};

/// Environment variables with the `KEYGATE_` prefix that are tool switches,
/// not settings (they are never treated as unknown keys).
const TOOL_VARS: &[&str] = &["KEYGATE_CONFIG", "KEYGATE_BLESS"];
const TOOL_PREFIXES: &[&str] = &["KEYGATE_TEST_"];

impl Settings {
    /// Loads defaults, then `file` (if given), then `KEYGATE_*` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let defaults = Value::try_from(Settings::default())
            .map_err(|e| ConfigError::new("defaults", e.to_string()))?;
        let mut merged = defaults.clone();
        if let Some(path) = file {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::new(&name, format!("cannot read the file: {e}")))?;
            let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
                ConfigError::new(&name, one_line(e.message()) + &line_of(&text, e.span()))
            })?;
            merge_file(&defaults, &mut merged, table, &name)?;
        }
        merge_env(&defaults, &mut merged, env)?;
        let clients = merged
            .as_table_mut()
            .and_then(|t| t.remove("clients"))
            .unwrap_or(Value::Array(vec![]));
        let users = merged
            .as_table_mut()
            .and_then(|t| t.remove("users"))
            .unwrap_or(Value::Array(vec![]));
        let resources = merged
            .as_table_mut()
            .and_then(|t| t.remove("resources"))
            .unwrap_or(Value::Array(vec![]));
        let mut settings: Settings = merged
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::new("config", one_line(e.message())))?;
        if let Value::Array(list) = clients {
            for (i, c) in list.into_iter().enumerate() {
                let client: ConfigClient = c.try_into().map_err(|e: toml::de::Error| {
                    ConfigError::new(format!("clients[{i}]"), one_line(e.message()))
                })?;
                settings.clients.push(client);
            }
        }
        if let Value::Array(list) = users {
            for (i, u) in list.into_iter().enumerate() {
                let user: ConfigUser = u.try_into().map_err(|e: toml::de::Error| {
                    ConfigError::new(format!("users[{i}]"), one_line(e.message()))
                })?;
                settings.users.push(user);
            }
        }
        if let Value::Array(list) = resources {
            for (i, r) in list.into_iter().enumerate() {
                let resource: ConfigResource = r.try_into().map_err(|e: toml::de::Error| {
                    ConfigError::new(format!("resources[{i}]"), one_line(e.message()))
                })?;
                settings.resources.push(resource);
            }
        }
        Ok(settings)
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(r) => format!(
            " (line {})",
            text[..r.start.min(text.len())].matches('\n').count() + 1
        ),
        None => String::new(),
    }
}

/// Merges a parsed file into `merged`, refusing keys the defaults do not have
/// and values whose type differs from the default's.
fn merge_file(
    defaults: &Value,
    merged: &mut Value,
    file: toml::Table,
    name: &str,
) -> Result<(), ConfigError> {
    let (Some(def), Some(out)) = (defaults.as_table(), merged.as_table_mut()) else {
        return Ok(());
    };
    for (section, value) in file {
        if section == "clients" || section == "users" || section == "resources" {
            if !value.is_array() {
                let msg = format!("must be an array of tables `[[{section}]]`");
                return Err(ConfigError::new(&section, msg));
            }
            out.insert(section, value);
            continue;
        }
        let Some(Value::Table(def_section)) = def.get(&section) else {
            return Err(ConfigError::new(
                &section,
                format!("unknown section in {name}"),
            ));
        };
        let Value::Table(entries) = value else {
            return Err(ConfigError::new(&section, "must be a table `[section]`"));
        };
        for (key, v) in entries {
            let path = format!("{section}.{key}");
            let Some(default) = def_section.get(&key) else {
                return Err(ConfigError::new(path, format!("unknown key in {name}")));
            };
            if default.type_str() != v.type_str()
                || (v.is_array() && !v.as_array().is_some_and(|a| a.iter().all(Value::is_str)))
                || (v.is_table() && !v.as_table().is_some_and(|t| t.values().all(Value::is_str)))
            {
                return Err(ConfigError::new(
                    path,
                    format!("must be {}", type_words(default)),
                ));
            }
            if let Some(Value::Table(s)) = out.get_mut(&section) {
                s.insert(key, v);
            }
        }
    }
    Ok(())
}

fn type_words(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "a non-negative integer",
        Value::Boolean(_) => "true or false",
        Value::Array(_) => "a list of strings",
        _ => "a table of strings",
    }
}

/// Applies `KEYGATE_<SECTION>_<KEY>` variables; an unknown one is an error.
fn merge_env(
    defaults: &Value,
    merged: &mut Value,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let Some(def) = defaults.as_table() else {
        return Ok(());
    };
    // Map every overridable key to its env var name.
    let mut known: BTreeMap<String, (String, String, Value)> = BTreeMap::new();
    for (section, v) in def {
        if let Value::Table(t) = v {
            for (key, default) in t {
                known.insert(
                    env_name(section, key),
                    (section.clone(), key.clone(), default.clone()),
                );
            }
        }
    }
    for (var, raw) in env {
        if !var.starts_with("KEYGATE_")
            || TOOL_VARS.contains(&var.as_str())
            || TOOL_PREFIXES.iter().any(|p| var.starts_with(p))
        {
            continue;
        }
        let Some((section, key, default)) = known.get(&var) else {
            return Err(ConfigError::new(
                &var,
                "unknown setting variable (see the configuration table in README.md)",
            ));
        };
        let value = match default {
            Value::Integer(_) => Value::Integer(
                raw.trim()
                    .parse::<u32>()
                    .map_err(|_| ConfigError::new(&var, "must be a non-negative integer"))?
                    .into(),
            ),
            Value::Boolean(_) => Value::Boolean(
                raw.trim()
                    .parse()
                    .map_err(|_| ConfigError::new(&var, "must be true or false"))?,
            ),
            Value::Table(_) => {
                return Err(ConfigError::new(
                    &var,
                    "is a table: set it in the config file",
                ))
            }
            Value::Array(_) => Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_string()))
                    .collect(),
            ),
            _ => Value::String(raw),
        };
        if let Some(Value::Table(s)) = merged.as_table_mut().and_then(|t| t.get_mut(section)) {
            s.insert(key.clone(), value);
        }
    }
    Ok(())
}

/// The environment variable that overrides `section.key`.
pub fn env_name(section: &str, key: &str) -> String {
    format!("KEYGATE_{}_{}", section.to_uppercase(), key.to_uppercase())
}

/// Every overridable `(section.key, env var, default)`, for docs and `--help`.
pub fn documented_keys() -> Vec<(String, String, String)> {
    let mut out = vec![];
    if let Ok(Value::Table(def)) = Value::try_from(Settings::default()) {
        for (section, v) in def {
            if let Value::Table(t) = v {
                for (key, d) in t {
                    out.push((
                        format!("{section}.{key}"),
                        env_name(&section, &key),
                        d.to_string(),
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_env as env;
    use crate::config::StoreBackend;

    #[test]
    fn env_overrides_and_lists() {
        let s = Settings::load(
            None,
            env(&[
                ("KEYGATE_STORE_URL", "redis://127.0.0.1:6379"),
                ("KEYGATE_TOKENS_ACCESS_TTL", "60"),
                ("KEYGATE_OAUTH_SCOPES", "a, b,,c"),
                ("KEYGATE_CONFIG", "ignored"),
                ("KEYGATE_TEST_WHATEVER", "ignored"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(s.tokens.access_ttl, 60);
        assert_eq!(s.oauth.scopes, vec!["a", "b", "c"]);
        assert!(matches!(
            s.validate().unwrap().store,
            StoreBackend::Redis(_)
        ));
    }

    #[test]
    fn unknown_env_var_is_an_error() {
        let e = Settings::load(None, env(&[("KEYGATE_SERVER_LISTN", "x")])).unwrap_err();
        assert_eq!(e.key, "KEYGATE_SERVER_LISTN");
        let e = Settings::load(None, env(&[("KEYGATE_TOKENS_ACCESS_TTL", "soon")])).unwrap_err();
        assert_eq!(e.key, "KEYGATE_TOKENS_ACCESS_TTL");
    }

    #[test]
    fn file_errors_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        let cases = [
            ("[server]\nlisten_addr = \"x\"\n", "server.listen_addr"),
            ("[nope]\na = 1\n", "nope"),
            ("[tokens]\naccess_ttl = \"15m\"\n", "tokens.access_ttl"),
        ];
        for (text, key) in cases {
            std::fs::write(&path, text).unwrap();
            let e = Settings::load(Some(&path), vec![]).unwrap_err();
            assert_eq!(e.key, key, "{text}");
        }
        std::fs::write(&path, "[server\n").unwrap();
        let e = Settings::load(Some(&path), vec![]).unwrap_err();
        assert!(e.message.contains("line 1"), "{e}");
    }

    /// Issue 16 item 5: `[oauth.scope_descriptions]` is a table of
    /// strings in the file, each naming a known scope; not an env var.
    #[test]
    fn scope_descriptions_come_from_the_file_and_name_known_scopes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        let base = "[oauth]\nscopes = [\"profile\", \"api:read\"]\n[oauth.scope_descriptions]\n";
        std::fs::write(&path, format!("{base}\"api:read\" = \"Read your data\"\n")).unwrap();
        let s = Settings::load(Some(&path), vec![]).unwrap();
        assert_eq!(s.oauth.scope_descriptions["api:read"], "Read your data");
        let v = s.validate().unwrap();
        assert_eq!(v.ui.scope_descriptions["api:read"], "Read your data");
        for (entry, key) in [
            (
                "\"api:write\" = \"Write\"\n",
                "oauth.scope_descriptions.api:write",
            ),
            ("\"api:read\" = \"\"\n", "oauth.scope_descriptions.api:read"),
        ] {
            std::fs::write(&path, format!("{base}{entry}")).unwrap();
            let e = Settings::load(Some(&path), vec![])
                .and_then(|s| s.validate().map(|_| ()))
                .unwrap_err();
            assert_eq!(e.key, key, "{entry}");
        }
        std::fs::write(&path, format!("{base}\"api:read\" = 1\n")).unwrap();
        let e = Settings::load(Some(&path), vec![]).unwrap_err();
        assert_eq!(e.key, "oauth.scope_descriptions");
        let e =
            Settings::load(None, env(&[("KEYGATE_OAUTH_SCOPE_DESCRIPTIONS", "x")])).unwrap_err();
        assert_eq!(e.key, "KEYGATE_OAUTH_SCOPE_DESCRIPTIONS");
    }

    #[test]
    fn readme_documents_every_key() {
        let readme = include_str!("../../README.md");
        for (key, env, _) in documented_keys() {
            assert!(
                readme.contains(&format!("`{key}`")),
                "README.md lacks {key}"
            );
            assert!(readme.contains(&env), "README.md lacks {env}");
        }
    }
}
