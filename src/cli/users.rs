//! `keygate user` (stored accounts) and `keygate hash-password` (for `[[users]]`).
//! Passwords are read from standard input, never from the command line.

use clap::Subcommand;
use keygate::clock::{Clock, SystemClock};
use keygate::flows::users;
use keygate::startup::StoreContext;
use keygate::store::repos::User;

/// `keygate user …`
#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input.
    Add {
        /// Login name.
        name: String,
        /// Read the password from stdin (required: passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Email address (unverified).
        #[arg(long)]
        email: Option<String>,
        /// Full name (OpenID Connect claim `name`).
        #[arg(long = "name", value_name = "FULL NAME")]
        full_name: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a stored user's profile. A new email is unverified unless
    /// `--email-verified true` is given too; an empty value clears a field.
    Set {
        /// Login name.
        name: String,
        /// New email address (`""` clears it).
        #[arg(long)]
        email: Option<String>,
        /// New full name (`""` clears it).
        #[arg(long = "name", value_name = "FULL NAME")]
        full_name: Option<String>,
        /// Whether the (new or current) email address is verified.
        #[arg(long, value_name = "true|false")]
        email_verified: Option<bool>,
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

/// A user as `--json` prints it (never the password hash).
fn user_json(u: &User) -> serde_json::Value {
    serde_json::json!({
        "id": u.id,
        "username": u.username,
        "name": u.name,
        "email": u.email,
        "email_verified": u.email_verified,
        "created_at": u.created_at,
        "updated_at": u.updated_at,
    })
}

/// Runs a `user` command against the store.
pub async fn run(ctx: &StoreContext, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add {
            name,
            password_stdin: _,
            email,
            full_name,
            json,
        } => {
            let password = super::read_password(true)?;
            let user = users::create_user_in(
                &ctx.repos,
                &ctx.config_users,
                SystemClock.now(),
                &name,
                email,
                full_name,
                password,
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            if json {
                println!("{}", user_json(&user));
            } else {
                println!("created user {} (id {})", user.username, user.id);
            }
        }
        UserCommand::Set {
            name,
            email,
            full_name,
            email_verified,
            json,
        } => {
            let change = users::ProfileChange {
                name: full_name,
                email,
                email_verified,
            };
            if change == users::ProfileChange::default() {
                anyhow::bail!("nothing to change: give --email, --name or --email-verified");
            }
            let user = users::update_profile_by_name(
                &ctx.repos,
                &ctx.config_users,
                &name,
                &change,
                SystemClock.now(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            if json {
                println!("{}", user_json(&user));
            } else {
                println!(
                    "updated user {}: name {}, email {} ({})",
                    user.username,
                    user.name.as_deref().unwrap_or("-"),
                    user.email.as_deref().unwrap_or("-"),
                    if user.email_verified {
                        "verified"
                    } else {
                        "unverified"
                    }
                );
            }
        }
        UserCommand::List { json } => {
            let list = ctx.repos.users().await?;
            if json {
                println!(
                    "{}",
                    serde_json::Value::Array(list.iter().map(user_json).collect())
                );
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|u| {
                        vec![
                            u.username.clone(),
                            u.id.clone(),
                            u.email.clone().unwrap_or_else(|| "-".into()),
                            u.name.clone().unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                super::print_table(&["USERNAME", "ID", "EMAIL", "NAME"], &rows);
            }
        }
        UserCommand::Delete { name, json } => {
            let user = users::delete_user(&ctx.repos, &name)
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
            let password = super::read_password(true)?;
            let user = users::set_password(&ctx.repos, &name, password)
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

/// `keygate hash-password`: reads a password (a prompt without echo on a
/// terminal, one line from a pipe), prints its argon2id PHC string.
pub fn hash_password() -> anyhow::Result<()> {
    let password = super::read_password(true)?;
    println!("{}", keygate::passwords::hash_blocking(&password)?);
    Ok(())
}
