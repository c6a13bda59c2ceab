//! The `stores-api` binary: serve (default), migrate, and operator subcommands.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stores_api::auth::audit::Origin;
use stores_api::auth::flows::Accounts;
use stores_api::auth::keys::{KeyError, KeyState};
use stores_api::config::{is_hmac, KeySource, Settings};
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
    /// The signing keys of public-key algorithms (JWT_ALGORITHM EdDSA, ES256 or RS256
    /// without JWT_PRIVATE_KEY), kept in the database: generate, list, rotate, retire.
    /// Running instances follow every change within a few seconds, without a restart.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The audit log, straight from the database.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Print the OpenAPI document the server serves at /openapi.json (the committed
    /// copy is docs/openapi.json).
    Openapi,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a new key. It signs at once when no key signs yet; otherwise it is `next`:
    /// published in the JWKS now, signing after `keys rotate`.
    Generate {
        /// EdDSA, ES256 or RS256 (default: JWT_ALGORITHM).
        #[arg(long)]
        algorithm: Option<String>,
    },
    /// List the keys: kid, algorithm, state and times.
    List,
    /// Make the oldest `next` key sign, once every instance has published it for
    /// JWKS_MAX_AGE (JWKS_MAX_AGE + 3 s after it was generated, so no verifier with a
    /// cached JWKS meets an unknown kid); the key that signed becomes
    /// `retired` and verifies until its last token expires. Too early: says how long to
    /// wait and fails, unless --wait.
    Rotate {
        /// Wait until the next key may sign, then rotate.
        #[arg(long)]
        wait: bool,
    },
    /// Delete a retired key whose tokens have all expired: it leaves the JWKS (it would
    /// anyway) and the database. Refused before.
    Retire {
        /// The key's id (its kid; base64url, so it may begin with a hyphen).
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Write the events of a time range to standard output as NDJSON (one JSON object a
    /// line, oldest first, the fields of GET /audit), for a SIEM or an archive.
    Export {
        /// The first time to include (RFC 3339, e.g. 2026-12-01T00:00:00Z).
        #[arg(long)]
        since: String,
        /// The time to stop before (RFC 3339; default: no end, every event written so
        /// far). On PostgreSQL, end the range a few seconds in the past: an event whose
        /// transaction is still committing is not exported yet.
        #[arg(long)]
        until: Option<String>,
    },
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
    stores_api::logging::init(stores_api::config::log_format());
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(e) => {
            for line in &e.0 {
                stores_api::logging::report_error(line);
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
        Command::Keys(command) => run_keys(settings, command),
        Command::Audit(command) => run_audit(settings, command),
        Command::Openapi => {
            println!("{}", stores_api::routes::docs::document());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            stores_api::logging::report_error(&message);
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
                    .register(username, password, true, &Origin::cli())
                    .await
                    .map_err(|e| e.to_string())?;
                format!("admin user '{}' created", user.username)
            }
            AdminCommand::Promote { username } => {
                let user = find(&accounts, &username).await?;
                let change = accounts
                    .set_admin(user.id, true, &Origin::cli())
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
                    .set_admin(user.id, false, &Origin::cli())
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
                    .revoke_sessions(user.id, &Origin::cli())
                    .await
                    .map_err(|e| e.to_string())?;
                format!("revoked {count} session(s) of user '{}'", user.username)
            }
        };
        println!("{line}");
        Ok(())
    })
}

/// Runs an `audit` command.
fn run_audit(settings: Settings, command: AuditCommand) -> Result<(), String> {
    use std::io::Write;
    use stores_api::auth::audit;
    let AuditCommand::Export { since, until } = command;
    let time = |name: &str, raw: &str| {
        chrono::DateTime::parse_from_rfc3339(raw.trim())
            .map(|t| t.naive_utc())
            .map_err(|_| {
                format!("--{name}: '{raw}' is not an RFC 3339 time (e.g. 2026-12-01T00:00:00Z)")
            })
    };
    let since = time("since", &since)?;
    let until = until.map(|raw| time("until", &raw)).transpose()?;
    db::migrate(&settings.database).map_err(|e| e.to_string())?;
    let pool = db::pool(&settings.database);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    actix_web::rt::System::new().block_on(async move {
        let mut after = 0;
        loop {
            let page = db::run(&pool, move |conn| {
                audit::export_page(conn, since, until, after, 1000)
            })
            .await
            .map_err(|e| e.to_string())?;
            let Some(last) = page.last() else {
                break;
            };
            after = last.id;
            for event in &page {
                let line = serde_json::to_string(event).map_err(|e| e.to_string())?;
                writeln!(out, "{line}").map_err(|e| format!("writing the export: {e}"))?;
            }
        }
        out.flush().map_err(|e| format!("writing the export: {e}"))
    })
}

/// Runs a `keys` command on the database's signing keys.
fn run_keys(settings: Settings, command: KeysCommand) -> Result<(), String> {
    use stores_api::auth::keys::store::{self, Removal, Rotation};
    let tokens = settings.tokens.clone();
    let Some(KeySource::Database { encryption_key, .. }) = tokens.keys.clone() else {
        return Err(if is_hmac(tokens.algorithm) {
            format!(
                "JWT_ALGORITHM is {}: an HMAC secret has no key pairs to keep (set \
                 JWT_ALGORITHM to EdDSA, ES256 or RS256)",
                tokens.algorithm_name()
            )
        } else {
            "JWT_PRIVATE_KEY is set: the signing key comes from it, not from the database"
                .to_string()
        });
    };
    db::migrate(&settings.database).map_err(|e| e.to_string())?;
    let pool = db::pool(&settings.database);
    let max_age = chrono::Duration::seconds(tokens.jwks_max_age.as_secs() as i64);
    // A retired key verifies until the last token it signed expires.
    let lifetime = chrono::Duration::seconds(
        (tokens.access_ttl.max(tokens.refresh_ttl) + tokens.leeway).as_secs() as i64,
    );
    actix_web::rt::System::new().block_on(async move {
        match command {
            KeysCommand::Generate { algorithm } => {
                let name = algorithm.unwrap_or_else(|| tokens.algorithm_name());
                let algorithm = name
                    .parse::<jsonwebtoken::Algorithm>()
                    .ok()
                    .filter(|a| !is_hmac(*a))
                    .ok_or_else(|| format!("--algorithm: '{name}' is not EdDSA, ES256 or RS256"))?;
                let key = store::generate(algorithm, &encryption_key).map_err(|e| e.to_string())?;
                let line = db::run(&pool, move |conn| {
                    let state = store::insert(conn, &key, &Origin::cli())?;
                    Ok::<_, KeyError>(match state {
                        KeyState::Current => format!(
                            "key {} ({name}) generated; it signs now (no key signed before)",
                            key.kid()
                        ),
                        _ => format!(
                            "key {} ({name}) generated as next: published in the JWKS now; \
                             `stores-api keys rotate` can make it sign in {} s \
                             (once every instance has published it for JWKS_MAX_AGE)",
                            key.kid(),
                            store::signs_after(max_age).num_seconds()
                        ),
                    })
                })
                .await
                .map_err(|e| e.to_string())?;
                println!("{line}");
            }
            KeysCommand::List => {
                let rows = db::run(&pool, store::list).await.map_err(|e| e.to_string())?;
                if rows.is_empty() {
                    println!("no keys yet (the server makes one at start-up, or run `stores-api keys generate`)");
                }
                let time = |t: Option<chrono::NaiveDateTime>| {
                    t.map_or_else(|| "-".to_owned(), |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                };
                for row in rows {
                    println!(
                        "{}  {:<6} {:<8} created {}  signed from {}  retired {}  tokens until {}",
                        row.kid,
                        row.algorithm_name,
                        row.state.as_str(),
                        time(Some(row.created_at)),
                        time(row.activated_at),
                        time(row.retired_at),
                        time(row.expires_at),
                    );
                }
            }
            KeysCommand::Rotate { wait } => loop {
                let rotation = db::run(&pool, move |conn| store::rotate(conn, max_age, lifetime, &Origin::cli()))
                    .await
                    .map_err(|e| e.to_string())?;
                match rotation {
                    Rotation::Rotated { kid, retired, until } => {
                        println!(
                            "key {kid} signs now{}",
                            retired.map_or_else(String::new, |old| format!(
                                "; {old} is retired and verifies its tokens until {}",
                                until.format("%Y-%m-%dT%H:%M:%SZ")
                            ))
                        );
                        break;
                    }
                    Rotation::NoNextKey => {
                        return Err(
                            "no next key to rotate to: run `stores-api keys generate` first".to_string()
                        )
                    }
                    Rotation::TooEarly { kid, wait_secs } if wait => {
                        eprintln!(
                            "waiting {wait_secs} s for key {kid} to have been published \
                             by every instance for JWKS_MAX_AGE"
                        );
                        std::thread::sleep(std::time::Duration::from_secs(wait_secs.max(1) as u64));
                    }
                    Rotation::TooEarly { kid, wait_secs } => {
                        return Err(format!(
                            "key {kid} has not been published by every instance for JWKS_MAX_AGE \
                             ({} s) yet: verifiers may not have it; try again in {wait_secs} s, \
                             or use --wait",
                            max_age.num_seconds()
                        ))
                    }
                }
            },
            KeysCommand::Retire { kid } => {
                let shown = kid.clone();
                let removal = db::run(&pool, move |conn| store::remove_retired(conn, &kid, &Origin::cli()))
                    .await
                    .map_err(|e| e.to_string())?;
                match removal {
                    Removal::Removed => println!("key {shown} removed from the JWKS and the database"),
                    Removal::Unknown => return Err(format!("no key {shown}")),
                    Removal::NotRetired(state) => {
                        return Err(format!(
                            "key {shown} is {}: only a retired key can be removed (rotate first)",
                            state.as_str()
                        ))
                    }
                    Removal::TooEarly(until) => {
                        return Err(format!(
                            "key {shown} still verifies live tokens until {}: retire it after that",
                            until.format("%Y-%m-%dT%H:%M:%SZ")
                        ))
                    }
                }
            }
        }
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
