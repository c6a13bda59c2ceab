//! The `stores-api` binary: serve (default), migrate, and operator subcommands.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stores_api::auth::flows::Accounts;
use stores_api::config::Settings;
use stores_api::db;
use stores_api::input::{NewPassword, Username};
use stores_api::models::user::User;
use stores_api::startup::Application;
use stores_api::state::AppState;

/// A JWT-secured REST API for stores, items and tags.
///
/// Configuration comes from config/default.toml, config/<APP_ENV>.toml and
/// environment variables (DATABASE_URL, JWT_SECRET_KEY, PORT, ...; every setting is in
/// docs/API.md, "Configuration").
#[derive(Parser)]
#[command(name = "stores-api", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default): runs pending migrations, then listens on HOST:PORT.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Operator actions on accounts, straight on the database (DATABASE_URL).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Print the OpenAPI document the server serves at /openapi.json (the committed
    /// copy is docs/openapi.json).
    Openapi,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an admin account. The password is read from standard input (prompted,
    /// without echo, on a terminal), never from the command line.
    Create {
        /// Username of the new admin (3 to 80 characters).
        username: String,
    },
    /// Make an existing user an admin and end their sessions (new tokens carry the claim).
    Promote {
        /// Username to promote.
        username: String,
    },
    /// Remove the admin flag from a user and end their sessions.
    Demote {
        /// Username to demote.
        username: String,
    },
    /// End every session of a user: their access and refresh tokens stop working.
    Revoke {
        /// Username whose sessions end.
        username: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(e) => {
            for line in &e.0 {
                eprintln!("error: {line}");
            }
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
        Command::Migrate => db::migrate(&settings.database)
            .map(|n| println!("applied {n} migration(s); the database is up to date"))
            .map_err(|e| e.to_string()),
        Command::Admin(command) => run_admin(settings, command),
        Command::Openapi => {
            println!("{}", stores_api::routes::docs::document());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn serve(settings: Settings) -> Result<(), String> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings)
            .await
            .map_err(|e| e.to_string())?;
        app.run_until_stopped().await.map_err(|e| e.to_string())?;
        log::info!("stopped");
        Ok(())
    })
}

/// Runs an admin command through the same account flows as the HTTP API. This process
/// serves no requests: running instances learn the revocations from the database.
fn run_admin(settings: Settings, command: AdminCommand) -> Result<(), String> {
    db::migrate(&settings.database).map_err(|e| e.to_string())?;
    let pool = db::pool(&settings.database);
    let revocations = std::sync::Arc::new(stores_api::auth::revocation::Revocations::new(
        &settings.tokens,
        settings.revocation.poll_interval,
    ));
    let state = AppState::new(settings, pool, revocations).map_err(|e| e.to_string())?;
    let accounts = state.accounts;
    actix_web::rt::System::new().block_on(async move {
        let line = match command {
            AdminCommand::Create { username } => {
                let username = parse_username(&username)?;
                let password = NewPassword::parse(&serde_json::Value::from(read_password()?))
                    .map_err(|problem| format!("password: {problem}"))?;
                if let Some(existing) = accounts
                    .find_by_username(&username)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    return Err(format!(
                        "a user named '{}' already exists (use `stores-api admin promote`)",
                        existing.username
                    ));
                }
                let user = accounts
                    .register(username, password, true)
                    .await
                    .map_err(|e| e.to_string())?;
                format!("admin user '{}' created", user.username)
            }
            AdminCommand::Promote { username } => {
                let user = find(&accounts, &username).await?;
                let change = accounts
                    .set_admin(user.id, true)
                    .await
                    .map_err(|e| e.to_string())?;
                if change.changed {
                    format!(
                        "user '{}' promoted to admin; their sessions were revoked",
                        user.username
                    )
                } else {
                    format!("user '{}' is already an admin", user.username)
                }
            }
            AdminCommand::Demote { username } => {
                let user = find(&accounts, &username).await?;
                let change = accounts
                    .set_admin(user.id, false)
                    .await
                    .map_err(|e| e.to_string())?;
                if change.changed {
                    format!(
                        "user '{}' is no longer an admin; their sessions were revoked",
                        user.username
                    )
                } else {
                    format!("user '{}' is already not an admin", user.username)
                }
            }
            AdminCommand::Revoke { username } => {
                let user = find(&accounts, &username).await?;
                let count = accounts
                    .revoke_sessions(user.id)
                    .await
                    .map_err(|e| e.to_string())?;
                format!("revoked {count} session(s) of user '{}'", user.username)
            }
        };
        println!("{line}");
        Ok(())
    })
}

fn parse_username(raw: &str) -> Result<Username, String> {
    Username::parse(&serde_json::Value::from(raw)).map_err(|problem| format!("username: {problem}"))
}

/// The user an admin command names, or a clear refusal.
async fn find(accounts: &Accounts, raw: &str) -> Result<User, String> {
    let username = parse_username(raw)?;
    accounts
        .find_by_username(&username)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no user named '{}'", username.as_str()))
}

fn read_password() -> Result<String, String> {
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password("Password: ").map_err(|e| e.to_string());
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    std::io::stderr().flush().ok();
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
