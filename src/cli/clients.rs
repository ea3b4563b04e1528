//! `keygate client`: create, list, show, update, delete clients and rotate
//! secrets in the store. Flags become [`RawClientMetadata`] and go through the
//! one metadata pipeline; `--json` prints the one [`ClientView`].

use std::path::Path;

use anyhow::bail;
use clap::Subcommand;
use keygate::clock::{Clock, SystemClock};
use keygate::flows::clients::{self, ClientError, Registered};
use keygate::oauth::client_meta::{parse, ClientView, Defaults, MetadataError, RawClientMetadata};
use keygate::startup::StoreContext;
use keygate::tokens::keys::KeySet;

/// `keygate client …`
#[derive(Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints client_id and, for confidential clients, the
    /// client_secret (shown once).
    Create {
        /// Human-readable name.
        #[arg(long)]
        name: String,
        /// Redirect URI (repeatable); required for authorization_code and implicit.
        #[arg(long = "redirect-uri", num_args = 1..)]
        redirect_uris: Vec<String>,
        /// Grant type (repeatable): authorization_code, refresh_token, client_credentials, password, implicit.
        #[arg(long = "grant-type", required = true, num_args = 1..)]
        grant_types: Vec<String>,
        /// Space-separated scopes the client may request.
        #[arg(long, default_value = "")]
        scope: String,
        /// Token endpoint auth method.
        #[arg(long = "auth-method", default_value = "client_secret_basic",
              value_parser = ["client_secret_basic", "client_secret_post", "none"])]
        auth_method: String,
        /// Post-logout redirect URI (repeatable; OpenID Connect RP-Initiated Logout).
        #[arg(long = "post-logout-redirect-uri", num_args = 1..)]
        post_logout_redirect_uris: Vec<String>,
        /// Back-channel logout URI (https, or http on a loopback host).
        #[arg(long = "backchannel-logout-uri")]
        backchannel_logout_uri: Option<String>,
        /// `default_max_age` in seconds (at most one year).
        #[arg(long = "default-max-age")]
        default_max_age: Option<u64>,
        /// Set `require_auth_time`.
        #[arg(long = "require-auth-time")]
        require_auth_time: bool,
        /// `id_token_signed_response_alg`: the algorithm of a key in `keys.dir`.
        #[arg(long = "id-token-alg")]
        id_token_alg: Option<String>,
        /// Print one JSON object with RFC 7591 field names.
        #[arg(long)]
        json: bool,
    },
    /// List stored clients.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one client's metadata (never its secret).
    Show {
        /// The client id (ids may start with `-`: base64url).
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a client: only the flags given change.
    Update {
        /// The client id (ids may start with `-`: base64url).
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// Replace the redirect URIs (repeatable).
        #[arg(long = "redirect-uri", num_args = 1..)]
        redirect_uris: Option<Vec<String>>,
        /// Replace the grant types (repeatable).
        #[arg(long = "grant-type", num_args = 1..)]
        grant_types: Option<Vec<String>>,
        /// Replace the scope.
        #[arg(long)]
        scope: Option<String>,
        /// Change the auth method.
        #[arg(long = "auth-method", value_parser = ["client_secret_basic", "client_secret_post", "none"])]
        auth_method: Option<String>,
        /// Replace the post-logout redirect URIs (repeatable).
        #[arg(long = "post-logout-redirect-uri", num_args = 1..)]
        post_logout_redirect_uris: Option<Vec<String>>,
        /// Change the back-channel logout URI.
        #[arg(long = "backchannel-logout-uri")]
        backchannel_logout_uri: Option<String>,
        /// Change `default_max_age` (seconds).
        #[arg(long = "default-max-age")]
        default_max_age: Option<u64>,
        /// Change `require_auth_time` (true or false).
        #[arg(long = "require-auth-time")]
        require_auth_time: Option<bool>,
        /// Change `id_token_signed_response_alg`.
        #[arg(long = "id-token-alg")]
        id_token_alg: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a client.
    Delete {
        /// The client id (ids may start with `-`: base64url).
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Issue a new secret (printed once); the old one stops working at once.
    RotateSecret {
        /// The client id (ids may start with `-`: base64url).
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `client` command against the store (`client show` looks in the
/// config file `config` first).
pub async fn run(
    ctx: &StoreContext,
    config: Option<&Path>,
    cmd: ClientCommand,
) -> anyhow::Result<()> {
    let repos = &ctx.repos;
    // `id_token_signed_response_alg` must be the algorithm of a published
    // key: the keys of `keys.dir`, when they can be read.
    let rules = &match KeySet::load_dir(&ctx.cfg.keys_dir, ctx.cfg.rotation) {
        Ok(set) => clients::rules_with_keys(&ctx.cfg.client_rules, &set),
        Err(_) => ctx.cfg.client_rules.clone(),
    };
    match cmd {
        ClientCommand::Create {
            name,
            redirect_uris,
            grant_types,
            scope,
            auth_method,
            post_logout_redirect_uris,
            backchannel_logout_uri,
            default_max_age,
            require_auth_time,
            id_token_alg,
            json,
        } => {
            let raw = RawClientMetadata {
                client_name: Some(name),
                redirect_uris: Some(redirect_uris),
                grant_types: Some(grant_types),
                scope: Some(scope),
                token_endpoint_auth_method: Some(auth_method),
                post_logout_redirect_uris: Some(post_logout_redirect_uris),
                backchannel_logout_uri,
                default_max_age,
                require_auth_time: Some(require_auth_time),
                id_token_signed_response_alg: id_token_alg,
                ..RawClientMetadata::default()
            };
            let meta = parse(raw, Defaults::rfc7591()).map_err(flag_error)?;
            let reg = clients::register(repos, meta, rules, SystemClock.now(), None, false)
                .await
                .map_err(client_error)?;
            print_registered(&reg, json)?;
        }
        ClientCommand::List { json } => {
            let list = clients::list(repos, None).await.map_err(client_error)?;
            if json {
                let views: Vec<ClientView> = list.iter().map(ClientView::from).collect();
                println!("{}", serde_json::to_string(&views)?);
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|c| {
                        let grants: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
                        vec![
                            c.client_id.clone(),
                            c.auth_method.as_str().to_string(),
                            grants.join(","),
                            c.client_name.clone(),
                        ]
                    })
                    .collect();
                super::print_table(&["CLIENT_ID", "AUTH_METHOD", "GRANT_TYPES", "NAME"], &rows);
            }
        }
        ClientCommand::Show { client_id, json } => {
            if show_config_client(config, &client_id, json)? {
                return Ok(());
            }
            let c = clients::get(repos, &client_id, None)
                .await
                .map_err(client_error)?;
            let view = ClientView::from(&c);
            if json {
                println!("{}", serde_json::to_string(&view)?);
            } else {
                println!("{}", serde_json::to_string_pretty(&view)?);
            }
        }
        ClientCommand::Update {
            client_id,
            name,
            redirect_uris,
            grant_types,
            scope,
            auth_method,
            post_logout_redirect_uris,
            backchannel_logout_uri,
            default_max_age,
            require_auth_time,
            id_token_alg,
            json,
        } => {
            let old = clients::get(repos, &client_id, None)
                .await
                .map_err(client_error)?;
            let raw = RawClientMetadata {
                client_name: name,
                redirect_uris,
                grant_types,
                scope,
                token_endpoint_auth_method: auth_method,
                post_logout_redirect_uris,
                backchannel_logout_uri,
                default_max_age,
                require_auth_time,
                id_token_signed_response_alg: id_token_alg,
                ..RawClientMetadata::default()
            };
            let meta = parse(raw, Defaults::from_client(&old)).map_err(flag_error)?;
            let reg = clients::update(repos, &client_id, None, meta, rules)
                .await
                .map_err(client_error)?;
            print_registered(&reg, json)?;
        }
        ClientCommand::Delete { client_id, json } => {
            clients::delete(repos, &client_id, None)
                .await
                .map_err(client_error)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"client_id": client_id, "deleted": true})
                );
            } else {
                println!("deleted client {client_id}");
            }
        }
        ClientCommand::RotateSecret { client_id, json } => {
            let reg = clients::rotate_secret(repos, &client_id, None)
                .await
                .map_err(client_error)?;
            print_registered(&reg, json)?;
        }
    }
    Ok(())
}

/// Prints a `[[clients]]` entry of the config file named `client_id`, saying
/// where it is defined (never its secret); `false` when there is none.
/// A config-file client's authentication method as the server reads it.
fn config_auth_method(c: &keygate::config::ConfigClient) -> String {
    c.token_endpoint_auth_method.clone().unwrap_or_else(|| {
        if c.client_secret.is_some() {
            "client_secret_basic"
        } else {
            "none"
        }
        .to_string()
    })
}

/// `client list` and `client show` when `store.url` is `memory`: that store
/// holds nothing between runs, so they show the clients of the config file
/// (`[[clients]]`, which a server on that config serves); every command that
/// writes is refused.
pub fn run_on_config(config: Option<&Path>, cmd: ClientCommand) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Show { client_id, json } => {
            if show_config_client(config, &client_id, json)? {
                return Ok(());
            }
            bail!(
                "no client {client_id} in the config file's [[clients]] (store.url is `memory`, \
                 which keeps no clients between runs)"
            )
        }
        ClientCommand::List { json } => {
            let settings = super::load_settings(config)?;
            eprintln!(
                "store.url is `memory`: these are the config file's [[clients]] (a server on this \
                 config serves them; clients registered while it runs are not kept)"
            );
            if json {
                let views: Vec<serde_json::Value> = settings
                    .clients
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "client_id": c.client_id,
                            "client_name": c.client_name,
                            "redirect_uris": c.redirect_uris,
                            "grant_types": c.grant_types,
                            "scope": c.scope,
                            "token_endpoint_auth_method": config_auth_method(c),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string(&views)?);
            } else {
                let rows: Vec<Vec<String>> = settings
                    .clients
                    .iter()
                    .map(|c| {
                        vec![
                            c.client_id.clone(),
                            config_auth_method(c),
                            c.grant_types.join(","),
                            c.client_name.clone(),
                        ]
                    })
                    .collect();
                super::print_table(&["CLIENT_ID", "AUTH_METHOD", "GRANT_TYPES", "NAME"], &rows);
            }
            Ok(())
        }
        _ => bail!("{}", super::MEMORY_STORE),
    }
}

fn show_config_client(config: Option<&Path>, client_id: &str, json: bool) -> anyhow::Result<bool> {
    let Some(file) = config else {
        return Ok(false);
    };
    let settings = super::load_settings(config)?;
    let Some((i, c)) = settings
        .clients
        .iter()
        .enumerate()
        .find(|(_, c)| c.client_id == client_id)
    else {
        return Ok(false);
    };
    let secret = c.client_secret.is_some();
    let auth_method = config_auth_method(c);
    let defined_in = format!(
        "{}, [[clients]] entry {} (clients[{i}])",
        file.display(),
        i + 1
    );
    if json {
        let view = serde_json::json!({
            "client_id": c.client_id,
            "client_name": c.client_name,
            "redirect_uris": c.redirect_uris,
            "grant_types": c.grant_types,
            "scope": c.scope,
            "token_endpoint_auth_method": auth_method,
            "defined_in": {"file": file, "entry": format!("clients[{i}]")},
        });
        println!("{view}");
    } else {
        println!("client_id:     {}", c.client_id);
        println!("client_name:   {}", c.client_name);
        println!("defined in:    {defined_in}");
        println!("               (edit the file and restart to change it; the CLI changes stored clients only)");
        if secret {
            println!("client_secret: plain text in the config file (dev only; not shown)");
        }
        println!("redirect_uris: {}", c.redirect_uris.join(" "));
        println!("grant_types:   {}", c.grant_types.join(" "));
        println!("scope:         {}", c.scope);
        println!("auth_method:   {auth_method}");
    }
    Ok(true)
}

/// A metadata problem, named by the flag that set the field.
fn flag_error(m: MetadataError) -> anyhow::Error {
    let flag = match m.field {
        "client_name" => "name",
        "redirect_uris" => "redirect-uri",
        "grant_types" => "grant-type",
        "token_endpoint_auth_method" => "auth-method",
        "post_logout_redirect_uris" => "post-logout-redirect-uri",
        "backchannel_logout_uri" => "backchannel-logout-uri",
        "default_max_age" => "default-max-age",
        "id_token_signed_response_alg" => "id-token-alg",
        other => other,
    };
    anyhow::anyhow!("--{flag}: {}", m.message)
}

fn client_error(e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Metadata(m) => flag_error(m),
        ClientError::NotFound => anyhow::anyhow!("no such client in the store"),
        other => anyhow::anyhow!("{other}"),
    }
}

/// A client after create, update or rotate: `--json` prints the view plus
/// the secret when one was issued; text shows the secret once with a warning.
fn print_registered(reg: &Registered, json: bool) -> anyhow::Result<()> {
    let view = ClientView::from(&reg.client).with_secret(reg.secret.clone());
    if json {
        println!("{}", serde_json::to_string(&view)?);
        return Ok(());
    }
    println!("client_id:     {}", view.client_id);
    if let Some(secret) = &view.client_secret {
        println!("client_secret: {secret}");
        println!("(the secret is shown once and stored only as a hash: save it now)");
    }
    println!("grant_types:   {}", view.grant_types.join(" "));
    println!("scope:         {}", view.scope);
    println!("auth_method:   {}", view.token_endpoint_auth_method);
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::{Cli, Command};
    use super::ClientCommand;

    /// Client ids are base64url, so one in 64 starts with `-`: clap must take
    /// it as the id, not as an unknown flag.
    #[test]
    fn a_client_id_may_start_with_a_hyphen() {
        for args in [
            vec!["keygate", "client", "show", "-Qx1"],
            vec!["keygate", "client", "update", "-Qx1", "--name", "n"],
            vec!["keygate", "client", "delete", "-Qx1"],
            vec!["keygate", "client", "rotate-secret", "-Qx1", "--json"],
        ] {
            let cli = Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            let id = match cli.command {
                Command::Client(
                    ClientCommand::Show { client_id, .. }
                    | ClientCommand::Update { client_id, .. }
                    | ClientCommand::Delete { client_id, .. }
                    | ClientCommand::RotateSecret { client_id, .. },
                ) => client_id,
                _ => panic!("{args:?}: not a client command"),
            };
            assert_eq!(id, "-Qx1", "{args:?}");
        }
    }
}
