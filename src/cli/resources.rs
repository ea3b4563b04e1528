//! `keygate resource`: add, list and remove RFC 8707 resources (APIs,
//! resource servers) in the store. Running servers read stored resources on
//! every request, so a change takes effect at once. `--json` prints
//! `{"uri", "scopes", "name"}` (plus `client_id` when set).

use clap::Subcommand;
use keygate::config::Settings;
use keygate::flows::resources::{self, ResourceError};
use keygate::oauth::resource::{Resource, ResourceId};
use keygate::startup::StoreContext;
use serde::Serialize;

/// `keygate resource …`
#[derive(Subcommand)]
pub enum ResourceCommand {
    /// Register a resource (or replace the one with the same URI).
    Add {
        /// The resource identifier: an https URI (http only on a loopback
        /// host), without fragment. Tokens for it carry it as `aud`.
        uri: String,
        /// Space-separated scopes the resource accepts (from oauth.scopes).
        #[arg(long)]
        scope: String,
        /// Display name, shown on the consent page.
        #[arg(long)]
        name: Option<String>,
        /// A confidential client the resource server introspects with: it
        /// then sees the tokens issued for this resource.
        #[arg(long = "client-id", allow_hyphen_values = true)]
        client_id: Option<String>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List stored resources (`[[resources]]` from the config file are not listed).
    List {
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Remove a stored resource: new grants for it are refused at once;
    /// codes and refresh tokens already issued for it keep their audience
    /// until they expire or are revoked.
    Remove {
        /// The resource URI (any equivalent spelling).
        uri: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The one output shape of a resource.
#[derive(Serialize)]
struct ResourceView<'a> {
    uri: &'a str,
    scopes: Vec<&'a str>,
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
}

impl<'a> From<&'a Resource> for ResourceView<'a> {
    fn from(r: &'a Resource) -> Self {
        Self {
            uri: &r.uri,
            scopes: r.scopes.iter().collect(),
            name: r.name.as_deref(),
            client_id: r.client_id.as_deref(),
        }
    }
}

const STILL_BOUND: &str = "codes and refresh tokens already issued for it keep their audience until they expire or are revoked";

/// Runs a `resource` command against the store.
pub async fn run(
    ctx: &StoreContext,
    settings: &Settings,
    cmd: ResourceCommand,
) -> anyhow::Result<()> {
    let repos = &ctx.repos;
    match cmd {
        ResourceCommand::Add {
            uri,
            scope,
            name,
            client_id,
            json,
        } => {
            let r = resources::add(
                repos,
                &ctx.cfg.client_rules.scopes,
                &settings.clients,
                &uri,
                &scope,
                name,
                client_id,
            )
            .await
            .map_err(resource_error)?;
            if ctx.cfg.resources.iter().any(|c| c.id() == r.id()) {
                eprintln!("warning: a [[resources]] entry in the config file has this URI and takes precedence over the stored one");
            }
            if json {
                println!("{}", serde_json::to_string(&ResourceView::from(&r))?);
            } else {
                print_text(&r);
            }
        }
        ResourceCommand::List { json } => {
            let list = repos.resources().await?;
            if json {
                let views: Vec<ResourceView> = list.iter().map(ResourceView::from).collect();
                println!("{}", serde_json::to_string(&views)?);
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|r| {
                        vec![
                            r.uri.clone(),
                            r.scopes.to_string(),
                            r.client_id.clone().unwrap_or_else(|| "-".into()),
                            r.name.clone().unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                super::print_table(&["URI", "SCOPES", "INTROSPECTOR", "NAME"], &rows);
            }
        }
        ResourceCommand::Remove { uri, json } => {
            let r = resources::remove(repos, &uri).await.map_err(|e| match e {
                ResourceError::NotFound
                    if ResourceId::parse(&uri)
                        .is_ok_and(|id| ctx.cfg.resources.iter().any(|c| c.id() == id)) =>
                {
                    anyhow::anyhow!("`{uri}` is a [[resources]] entry of the config file, not a stored resource: remove it there")
                }
                other => resource_error(other),
            })?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"uri": r.uri, "removed": true, "note": STILL_BOUND})
                );
            } else {
                println!("removed resource {} ({STILL_BOUND})", r.uri);
            }
        }
    }
    Ok(())
}

fn print_text(r: &Resource) {
    println!("uri:       {}", r.uri);
    println!("scopes:    {}", r.scopes);
    if let Some(n) = &r.name {
        println!("name:      {n}");
    }
    if let Some(c) = &r.client_id {
        println!("client_id: {c}");
    }
}

fn resource_error(e: ResourceError) -> anyhow::Error {
    match e {
        ResourceError::Invalid(m) => anyhow::anyhow!("{m}"),
        other => anyhow::anyhow!("{other}"),
    }
}
