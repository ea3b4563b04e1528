//! `keygate keys`: generate, list and prune signing keys in `keys.dir`.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::Subcommand;
use keygate::clock::{rfc3339, Clock, SystemClock};
use keygate::tokens::keys::{generate_into, prune_dir, Alg};
use keygate::tokens::{KeySet, KeyState};

/// `keygate keys …`
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Generate a new signing key. It is published in the JWKS at once and
    /// signs after `keys.activation_delay_secs` (a first key signs at once);
    /// older keys stay published until `keygate keys prune` removes them.
    Generate {
        /// Signature algorithm.
        #[arg(long, default_value = "RS256", value_parser = ["RS256", "ES256", "EdDSA"])]
        alg: String,
        /// Print JSON: `{"kid", "alg", "path", "state", "activates_at"}`.
        #[arg(long)]
        json: bool,
    },
    /// List the keys in `keys.dir`, newest first: kid, algorithm, creation
    /// time, state (pending, active, retired, prunable), when it changes, file.
    List {
        /// Print JSON (times in seconds since the Unix epoch).
        #[arg(long)]
        json: bool,
    },
    /// Delete the key files whose every token has expired (retired for
    /// `tokens.access_ttl` + `keys.jwks_max_age`). Never the signing key, a
    /// pending key or the only key.
    Prune {
        /// Print what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `keys` command against `keys.dir`.
pub fn run(config: Option<&Path>, cmd: KeysCommand) -> anyhow::Result<()> {
    let cfg = super::load_settings(config)?.validate()?;
    let dir = &cfg.keys_dir;
    let now = SystemClock.now();
    let mut out = std::io::stdout().lock();
    match cmd {
        KeysCommand::Generate { alg, json } => {
            let alg = Alg::parse(&alg).context("--alg must be RS256, ES256 or EdDSA")?;
            let key = generate_into(dir, alg, now)?;
            if json {
                let set = KeySet::load_dir(dir, cfg.rotation)?;
                let status = set.status_at(now);
                let state = status
                    .iter()
                    .find(|(k, _)| k.kid == key.kid)
                    .map(|(_, s)| s);
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({
                        "kid": key.kid,
                        "alg": key.alg.as_str(),
                        "path": key.path,
                        "state": state.map(|s| s.state.as_str()),
                        "activates_at": state.map(|s| s.activates_at),
                    })
                )?;
                return Ok(());
            }
            writeln!(
                out,
                "created {} key {} in {}",
                key.alg,
                key.kid,
                key.path.display()
            )?;
            let set = KeySet::load_dir(dir, cfg.rotation)?;
            let status = set.status_at(now);
            match status.iter().find(|(k, _)| k.kid == key.kid) {
                Some((_, s)) if s.state == KeyState::Active => writeln!(
                    out,
                    "no older key exists: it signs as soon as a server loads it"
                )?,
                Some((_, s)) => writeln!(
                    out,
                    "published in the JWKS once running servers re-read keys (SIGHUP, or within keys.reload_secs); \
                     signs from {} (keys.activation_delay_secs = {})",
                    rfc3339(s.activates_at),
                    cfg.rotation.activation_delay
                )?,
                None => {}
            }
        }
        KeysCommand::List { json } => {
            let set = KeySet::load_dir(dir, cfg.rotation)?;
            let status = set.status_at(now);
            if json {
                let list: Vec<_> = status
                    .iter()
                    .map(|(k, s)| {
                        serde_json::json!({
                            "kid": k.kid,
                            "alg": k.alg.as_str(),
                            "created": k.created,
                            "state": s.state.as_str(),
                            "activates_at": s.activates_at,
                            "retired_at": s.retired_at,
                            "prunable_at": s.prunable_at,
                            "path": k.path,
                        })
                    })
                    .collect();
                writeln!(out, "{}", serde_json::Value::Array(list))?;
            } else {
                let rows: Vec<Vec<String>> = status
                    .iter()
                    .map(|(k, s)| {
                        let when = match s.state {
                            KeyState::Pending => format!("signs from {}", rfc3339(s.activates_at)),
                            KeyState::Active => match s.retired_at {
                                Some(t) => format!("signs until {}", rfc3339(t)),
                                None => format!("signs since {}", rfc3339(s.activates_at)),
                            },
                            KeyState::Retired => {
                                format!("prunable from {}", rfc3339(s.prunable_at.unwrap_or(now)))
                            }
                            KeyState::Prunable => {
                                format!("prunable since {}", rfc3339(s.prunable_at.unwrap_or(now)))
                            }
                        };
                        vec![
                            k.kid.clone(),
                            k.alg.to_string(),
                            rfc3339(k.created),
                            s.state.to_string(),
                            when,
                            k.path.display().to_string(),
                        ]
                    })
                    .collect();
                drop(out);
                super::print_table(&["KID", "ALG", "CREATED", "STATE", "WHEN", "FILE"], &rows);
                return Ok(());
            }
        }
        KeysCommand::Prune { dry_run, json } => {
            let pruned = prune_dir(dir, cfg.rotation, now, dry_run)?;
            if json {
                let keys: Vec<_> = pruned
                    .iter()
                    .map(|k| {
                        serde_json::json!({
                            "kid": k.kid,
                            "alg": k.alg.as_str(),
                            "created": k.created,
                            "path": k.path,
                        })
                    })
                    .collect();
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"dry_run": dry_run, "pruned": keys})
                )?;
            } else if pruned.is_empty() {
                writeln!(out, "no prunable key in {}", dir.display())?;
            } else {
                let verb = if dry_run { "would remove" } else { "removed" };
                for k in &pruned {
                    writeln!(out, "{verb} {} key {} ({})", k.alg, k.kid, k.path.display())?;
                }
                if !dry_run {
                    writeln!(out, "running servers drop it from the JWKS when they re-read keys (SIGHUP, or within keys.reload_secs)")?;
                }
            }
        }
    }
    Ok(())
}
