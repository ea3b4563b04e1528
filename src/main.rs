//! The `keygate` command line: `serve`, `openapi`, `keys`, `client`, `user`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use keygate::clock::{rfc3339, Clock, SystemClock};
use keygate::config::{Settings, StoreBackend};
use keygate::oauth::client_meta::ClientMetadata;
use keygate::oauth::types::{AuthMethod, GrantType, ScopeSet};
use keygate::startup::Application;
use keygate::store::redis::RedisStore;
use keygate::store::repos::Repos;
use keygate::tokens::keys::{generate_into, prune_dir, Alg};
use keygate::tokens::{KeySet, KeyState};
use secrecy::ExposeSecret;

#[derive(Parser)]
#[command(
    name = "keygate",
    version,
    about = "A stateless, JWT-issuing OAuth 2.0 authorization server"
)]
struct Cli {
    /// Configuration file (TOML). Also `KEYGATE_CONFIG`. Every key can be
    /// overridden by `KEYGATE_<SECTION>_<KEY>`.
    #[arg(long, global = true, env = "KEYGATE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Print the OpenAPI document generated from the handlers.
    Openapi {
        /// Output format.
        #[arg(long, value_enum, default_value = "json")]
        format: Format,
    },
    /// Manage signing keys in `keys.dir`.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage OAuth clients in the configured store.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage users in the configured store.
    #[command(subcommand)]
    User(UserCommand),
    /// Read a password on stdin and print its argon2id PHC string (for `[[users]]`).
    HashPassword,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input.
    Add {
        /// Login name.
        name: String,
        /// Read the password from stdin (required: passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Email address.
        #[arg(long)]
        email: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List stored users.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a stored user.
    Delete {
        /// Login name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set a stored user's password (read from standard input).
    SetPassword {
        /// Login name.
        name: String,
        /// Read the password from stdin.
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Yaml,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generate a new signing key. It is published in the JWKS at once and
    /// signs after `keys.activation_delay_secs` (a first key signs at once);
    /// older keys stay published until `keygate keys prune` removes them.
    Generate {
        /// Signature algorithm.
        #[arg(long, default_value = "RS256", value_parser = ["RS256", "ES256", "EdDSA"])]
        alg: String,
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

#[derive(Subcommand)]
enum ClientCommand {
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
        /// The client id.
        client_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a client: only the flags given change.
    Update {
        /// The client id.
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
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a client.
    Delete {
        /// The client id.
        client_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Issue a new secret (printed once); the old one stops working at once.
    RotateSecret {
        /// The client id.
        client_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

const MEMORY_STORE: &str = "store.url is `memory`: what this command writes would vanish when it exits. \
     Point --config or KEYGATE_STORE_URL at Redis, or define it in the config file ([[clients]] / [[users]])";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("keygate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keygate: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn load_settings(config: Option<&PathBuf>) -> anyhow::Result<Settings> {
    Ok(Settings::load(
        config.map(PathBuf::as_path),
        std::env::vars(),
    )?)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Openapi { format } => {
            let api = keygate::http::api_service();
            let doc = match format {
                Format::Json => api.spec(),
                Format::Yaml => api.spec_yaml(),
            };
            println!("{}", doc.trim_end());
            Ok(())
        }
        Command::Serve => {
            let settings = load_settings(cli.config.as_ref())?;
            keygate::telemetry::init(&settings.validate()?.log);
            let app = Application::build(settings).await?;
            app.run_until_stopped(keygate::startup::shutdown_signal())
                .await
                .context("server error")
        }
        Command::Keys(cmd) => {
            let settings = load_settings(cli.config.as_ref())?;
            let cfg = settings.validate()?;
            keys_command(&cfg, cmd)
        }
        Command::HashPassword => {
            let password = read_password()?;
            println!("{}", keygate::passwords::hash_blocking(&password)?);
            Ok(())
        }
        Command::User(cmd) => user_command(cli.config.as_ref(), cmd).await,
        Command::Client(
            cmd @ (ClientCommand::List { .. }
            | ClientCommand::Show { .. }
            | ClientCommand::Update { .. }
            | ClientCommand::Delete { .. }
            | ClientCommand::RotateSecret { .. }),
        ) => client_command(cli.config.as_ref(), cmd).await,
        Command::Client(ClientCommand::Create {
            name,
            redirect_uris,
            grant_types,
            scope,
            auth_method,
            json,
        }) => {
            let settings = load_settings(cli.config.as_ref())?;
            let cfg = settings.validate()?;
            let StoreBackend::Redis(url) = &cfg.store else {
                bail!("{MEMORY_STORE}");
            };
            let mut grants = vec![];
            for g in &grant_types {
                grants.push(
                    GrantType::parse(g)
                        .with_context(|| format!("--grant-type: unknown grant type `{g}`"))?,
                );
            }
            let meta = ClientMetadata {
                client_name: name,
                redirect_uris,
                grant_types: grants,
                scope: ScopeSet::parse(&scope)
                    .map_err(|e| anyhow::anyhow!("--scope: {}", e.description))?,
                auth_method: AuthMethod::parse(&auth_method).context("--auth-method")?,
                client_uri: None,
                logo_uri: None,
            };
            let timeout = cfg.store_options.timeout;
            let store = Arc::new(
                RedisStore::connect(url.expose_secret(), timeout)
                    .await
                    .map_err(|e| anyhow::anyhow!("store.url: {e}"))?,
            );
            let repos = Repos::new(store);
            let reg = keygate::flows::clients::register(
                &repos,
                meta,
                &cfg.client_rules,
                SystemClock.now(),
                None,
                false,
            )
            .await
            .map_err(|e| match e {
                keygate::flows::clients::ClientError::Metadata(m) => {
                    anyhow::anyhow!("--{}: {}", cli_flag(m.field), m.message)
                }
                other => anyhow::anyhow!("{other}"),
            })?;
            print_client(&reg, json)
        }
    }
}

fn keys_command(cfg: &keygate::config::Validated, cmd: KeysCommand) -> anyhow::Result<()> {
    let dir = &cfg.keys_dir;
    let now = SystemClock.now();
    let mut out = std::io::stdout().lock();
    match cmd {
        KeysCommand::Generate { alg } => {
            let alg = Alg::parse(&alg).context("--alg must be RS256, ES256 or EdDSA")?;
            let key = generate_into(dir, alg, now)?;
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
                for (k, s) in &status {
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
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        k.kid,
                        k.alg,
                        rfc3339(k.created),
                        s.state,
                        when,
                        k.path.display()
                    )?;
                }
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

/// The server state over a persistent store, for the CLI's store commands.
async fn store_state(config: Option<&PathBuf>) -> anyhow::Result<keygate::state::AppState> {
    let settings = load_settings(config)?;
    if settings.validate()?.store == StoreBackend::Memory {
        bail!("{MEMORY_STORE}");
    }
    keygate::startup::build_state(settings, Arc::new(SystemClock)).await
}

fn client_json(c: &keygate::oauth::types::Client) -> serde_json::Value {
    serde_json::json!({
        "client_id": c.client_id,
        "client_id_issued_at": c.created_at,
        "client_name": c.client_name,
        "redirect_uris": c.redirect_uris,
        "grant_types": c.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "response_types": c.response_types(),
        "scope": c.scope.to_string(),
        "token_endpoint_auth_method": c.auth_method.as_str(),
        "client_uri": c.client_uri,
        "logo_uri": c.logo_uri,
    })
}

fn clients_error(e: keygate::flows::clients::ClientError) -> anyhow::Error {
    match e {
        keygate::flows::clients::ClientError::Metadata(m) => {
            anyhow::anyhow!("--{}: {}", cli_flag(m.field), m.message)
        }
        keygate::flows::clients::ClientError::NotFound => {
            anyhow::anyhow!("no such client in the store")
        }
        other => anyhow::anyhow!("{other}"),
    }
}

async fn client_command(config: Option<&PathBuf>, cmd: ClientCommand) -> anyhow::Result<()> {
    use keygate::flows::clients;
    let state = store_state(config).await?;
    let repos = &state.repos;
    match cmd {
        ClientCommand::List { json } => {
            let list = clients::list(repos, None).await.map_err(clients_error)?;
            if json {
                println!(
                    "{}",
                    serde_json::Value::Array(list.iter().map(client_json).collect())
                );
            } else {
                for c in &list {
                    println!(
                        "{}\t{}\t{}\t{}",
                        c.client_id,
                        c.auth_method.as_str(),
                        c.grant_types
                            .iter()
                            .map(|g| g.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                        c.client_name
                    );
                }
            }
        }
        ClientCommand::Show { client_id, json } => {
            let c = clients::get(repos, &client_id, None)
                .await
                .map_err(clients_error)?;
            if json {
                println!("{}", client_json(&c));
            } else {
                println!("{}", serde_json::to_string_pretty(&client_json(&c))?);
            }
        }
        ClientCommand::Update {
            client_id,
            name,
            redirect_uris,
            grant_types,
            scope,
            auth_method,
            json,
        } => {
            let old = clients::get(repos, &client_id, None)
                .await
                .map_err(clients_error)?;
            let grants =
                match grant_types {
                    Some(list) => {
                        let mut out = vec![];
                        for g in &list {
                            out.push(GrantType::parse(g).with_context(|| {
                                format!("--grant-type: unknown grant type `{g}`")
                            })?);
                        }
                        out
                    }
                    None => old.grant_types.clone(),
                };
            let meta = ClientMetadata {
                client_name: name.unwrap_or(old.client_name.clone()),
                redirect_uris: redirect_uris.unwrap_or(old.redirect_uris.clone()),
                grant_types: grants,
                scope: match scope {
                    Some(s) => ScopeSet::parse(&s)
                        .map_err(|e| anyhow::anyhow!("--scope: {}", e.description))?,
                    None => old.scope.clone(),
                },
                auth_method: match auth_method {
                    Some(m) => AuthMethod::parse(&m).context("--auth-method")?,
                    None => old.auth_method,
                },
                client_uri: old.client_uri.clone(),
                logo_uri: old.logo_uri.clone(),
            };
            let reg = clients::update(repos, &client_id, None, meta, &state.cfg.client_rules)
                .await
                .map_err(clients_error)?;
            print_client(&reg, json)?;
        }
        ClientCommand::Delete { client_id, json } => {
            clients::delete(repos, &client_id, None)
                .await
                .map_err(clients_error)?;
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
                .map_err(clients_error)?;
            print_client(&reg, json)?;
        }
        ClientCommand::Create { .. } => unreachable!("handled by the caller"),
    }
    Ok(())
}

async fn user_command(config: Option<&PathBuf>, cmd: UserCommand) -> anyhow::Result<()> {
    use keygate::flows::users;
    let user_json = |u: &keygate::store::repos::User| serde_json::json!({"id": u.id, "username": u.username, "email": u.email, "created_at": u.created_at});
    let state = store_state(config).await?;
    match cmd {
        UserCommand::Add {
            name,
            password_stdin: _,
            email,
            json,
        } => {
            let password = read_password()?;
            let user = users::create_user(&state, &name, email, password)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if json {
                println!("{}", user_json(&user));
            } else {
                println!("created user {} (id {})", user.username, user.id);
            }
        }
        UserCommand::List { json } => {
            let list = state.repos.users().await?;
            if json {
                println!(
                    "{}",
                    serde_json::Value::Array(list.iter().map(user_json).collect())
                );
            } else {
                for u in &list {
                    println!(
                        "{}\t{}\t{}",
                        u.id,
                        u.username,
                        u.email.as_deref().unwrap_or("-")
                    );
                }
            }
        }
        UserCommand::Delete { name, json } => {
            let user = users::delete_user(&state, &name)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"id": user.id, "username": user.username, "deleted": true})
                );
            } else {
                println!("deleted user {}", user.username);
            }
        }
        UserCommand::SetPassword {
            name,
            password_stdin: _,
            json,
        } => {
            let password = read_password()?;
            let user = users::set_password(&state, &name, password)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"id": user.id, "username": user.username, "password_changed": true})
                );
            } else {
                println!("password changed for {}", user.username);
            }
        }
    }
    Ok(())
}

/// Reads one line (the password) from standard input.
fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!(
            "no password on standard input (pipe it in, e.g. `printf '%s' \"$PW\" | keygate ...`)"
        );
    }
    Ok(password)
}

fn cli_flag(field: &str) -> &str {
    match field {
        "client_name" => "name",
        "redirect_uris" => "redirect-uri",
        "grant_types" => "grant-type",
        "token_endpoint_auth_method" => "auth-method",
        other => other,
    }
}

fn print_client(reg: &keygate::flows::clients::Registered, json: bool) -> anyhow::Result<()> {
    let c = &reg.client;
    let grant_types: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
    let response_types: Vec<&str> = c
        .grant_types
        .iter()
        .filter_map(|g| match g {
            GrantType::AuthorizationCode => Some("code"),
            GrantType::Implicit => Some("token"),
            _ => None,
        })
        .collect();
    if json {
        let mut v = serde_json::json!({
            "client_id": c.client_id,
            "client_id_issued_at": c.created_at,
            "client_name": c.client_name,
            "redirect_uris": c.redirect_uris,
            "grant_types": grant_types,
            "response_types": response_types,
            "scope": c.scope.to_string(),
            "token_endpoint_auth_method": c.auth_method.as_str(),
        });
        if let Some(secret) = &reg.secret {
            v["client_secret"] = serde_json::json!(secret);
            v["client_secret_expires_at"] = serde_json::json!(0);
        }
        println!("{v}");
    } else {
        println!("client_id:     {}", c.client_id);
        if let Some(secret) = &reg.secret {
            println!("client_secret: {secret}");
            println!("(the secret is shown once and stored only as a hash: save it now)");
        }
        println!("grant_types:   {}", grant_types.join(" "));
        println!("scope:         {}", c.scope);
        println!("auth_method:   {}", c.auth_method.as_str());
    }
    Ok(())
}
