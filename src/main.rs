//! The `stores-api` binary: serve (default), migrate, and operator subcommands.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stores_api::admin::{self, AdminError, Outcome};
use stores_api::auth::password::PasswordHasher;
use stores_api::auth::revocation::Revocations;
use stores_api::config::Settings;
use stores_api::db;
use stores_api::error::ApiError;
use stores_api::startup::Application;

/// A JWT-secured REST API for stores, items and tags.
///
/// Configuration comes from config/default.toml, config/<APP_ENV>.toml and
/// environment variables (DATABASE_URL, JWT_SECRET_KEY, PORT, ...; see README.md).
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
        Command::Migrate => db::migrate(&settings)
            .map(|n| println!("applied {n} migration(s); the database is up to date"))
            .map_err(|e| e.to_string()),
        Command::Admin(command) => run_admin(settings, command),
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

fn run_admin(settings: Settings, command: AdminCommand) -> Result<(), String> {
    db::migrate(&settings).map_err(|e| e.to_string())?;
    let pool = db::pool(&settings);
    let mut conn = pool.get().map_err(|e| ApiError::from(e).to_string())?;
    // This process serves no requests: the set is thrown away, and running instances
    // learn the revocations from the log.
    let revoked = Revocations::new(&settings.jwt, settings.revocation_poll_interval);
    let outcome: Result<Outcome, AdminError> = match command {
        AdminCommand::Create { username } => {
            let password = read_password()?;
            let hasher = PasswordHasher::new(settings.bcrypt_cost);
            admin::create_admin(&mut conn, &hasher, &username, &password)
        }
        AdminCommand::Promote { username } => {
            admin::set_admin(&mut conn, &revoked, &username, true)
        }
        AdminCommand::Demote { username } => {
            admin::set_admin(&mut conn, &revoked, &username, false)
        }
        AdminCommand::Revoke { username } => admin::revoke_sessions(&mut conn, &revoked, &username),
    };
    let outcome = outcome.map_err(|e| e.to_string())?;
    println!("{outcome}");
    Ok(())
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
