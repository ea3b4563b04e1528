//! The command line: the clap definitions and the dispatch to one module per
//! command group (`serve`, `openapi`, `keys`, `client`, `user`, `resource`).
//!
//! Part of the binary: it uses only the library's public API, and it is the
//! one place besides `startup` where `anyhow` errors are fine. The client and
//! user commands open only the store ([`keygate::startup::open_store_only`]),
//! never the signing keys or the CSRF secret.

mod check_config;
mod clients;
mod keys;
mod openapi;
mod resources;
mod serve;
mod users;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use keygate::config::{Settings, StoreBackend};
use keygate::startup::StoreContext;

/// `keygate [--config FILE] <command>`.
#[derive(Parser)]
#[command(
    name = "keygate",
    version,
    about = "A stateless, JWT-issuing OAuth 2.0 authorization server"
)]
pub struct Cli {
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
        format: openapi::Format,
    },
    /// Manage signing keys in `keys.dir`.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Manage OAuth clients in the configured store.
    #[command(subcommand)]
    Client(clients::ClientCommand),
    /// Manage users in the configured store.
    #[command(subcommand)]
    User(users::UserCommand),
    /// Manage RFC 8707 resources (APIs) in the configured store.
    #[command(subcommand)]
    Resource(resources::ResourceCommand),
    /// Read a password on stdin and print its argon2id PHC string (for `[[users]]`).
    HashPassword,
    /// Check a configuration without starting the server: report every
    /// problem (exit 1) or none (exit 0).
    CheckConfig {
        /// Print one JSON object: `{"config", "ok", "problems": [{"key", "message"}]}`.
        #[arg(long)]
        json: bool,
    },
}

/// Runs one command; `check-config` chooses its exit code.
pub async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let config = cli.config.as_deref();
    match cli.command {
        Command::Serve => serve::run(config).await,
        Command::Openapi { format } => openapi::run(format),
        Command::Keys(cmd) => keys::run(config, cmd),
        Command::Client(cmd) if memory_store(config)? => clients::run_on_config(config, cmd),
        Command::Client(cmd) => clients::run(&open_store(config).await?, config, cmd).await,
        Command::User(cmd) => users::run(&open_store(config).await?, cmd).await,
        Command::Resource(cmd) => {
            let settings = load_settings(config)?;
            resources::run(&open_store(config).await?, &settings, cmd).await
        }
        Command::HashPassword => users::hash_password(),
        Command::CheckConfig { json } => return check_config::run(config, json).await,
    }
    .map(|()| std::process::ExitCode::SUCCESS)
}

/// Settings from defaults < `--config` file < `KEYGATE_*` environment.
fn load_settings(config: Option<&Path>) -> anyhow::Result<Settings> {
    Ok(Settings::load(config, std::env::vars())?)
}

const MEMORY_STORE: &str = "store.url is `memory`: what this command writes would vanish when it exits. \
     Point --config or KEYGATE_STORE_URL at Redis, or define it in the config file ([[clients]] / [[users]])";

/// Whether the configured store is the in-memory one (which holds nothing
/// between runs of the CLI).
fn memory_store(config: Option<&Path>) -> anyhow::Result<bool> {
    Ok(load_settings(config)?.validate()?.store == StoreBackend::Memory)
}

/// The configured persistent store for the client and user commands: the
/// memory store is refused, since what they write would vanish on exit.
async fn open_store(config: Option<&Path>) -> anyhow::Result<StoreContext> {
    let settings = load_settings(config)?;
    if settings.validate()?.store == StoreBackend::Memory {
        bail!("{MEMORY_STORE}");
    }
    keygate::startup::open_store_only(&settings).await
}

/// Reads the password: on a terminal, a prompt without echo (`rpassword`)
/// and, when `confirm`, a second one that must match; from a pipe or file,
/// one line. Never from the command line.
fn read_password(confirm: bool) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").context("reading the password")?;
        if confirm && !first.is_empty() {
            let again =
                rpassword::prompt_password("Password (again): ").context("reading the password")?;
            if again != first {
                bail!("the two passwords differ");
            }
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.is_empty() {
        bail!(
            "no password given (type it at the prompt, or pipe it in: `printf '%s' \"$PW\" | keygate ...`)"
        );
    }
    Ok(password)
}

/// Prints `rows` under `header`, each column padded to its widest cell
/// (the list commands' text output; `--json` is for scripts).
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            out.push_str(cell);
            if i + 1 < widths.len() {
                out.push_str(&" ".repeat(w - cell.chars().count() + 2));
            }
        }
        println!("{}", out.trim_end());
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}
