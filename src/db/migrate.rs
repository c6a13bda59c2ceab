//! Preparing the database at start-up: waiting for it, then the pending migrations.

use std::time::{Duration, Instant};

use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::connect::ConnectionManager;
use super::DbConnection;
use crate::config::{DatabaseSettings, DatabaseUrl};

const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Failure to prepare the database at start-up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The database never answered within the start-up timeout.
    #[error("cannot connect to the database at {url}: {cause}")]
    Unreachable {
        /// Where (password removed).
        url: String,
        /// The driver's last error.
        cause: String,
    },
    /// A migration failed.
    #[error("migrations failed: {0}")]
    Migration(String),
    /// The SQLite file's folder could not be created.
    #[error("cannot create {0}: {1}")]
    Directory(String, std::io::Error),
}

/// Waits for the database (up to the start-up timeout) and applies pending migrations,
/// logging each one.
pub fn migrate(settings: &DatabaseSettings) -> Result<usize, SetupError> {
    if let DatabaseUrl::Sqlite(path) = &settings.url {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| SetupError::Directory(dir.display().to_string(), e))?;
        }
    }
    let manager = ConnectionManager::new(settings.url.clone());
    let deadline = Instant::now() + settings.startup_timeout;
    let mut conn = loop {
        match r2d2::ManageConnection::connect(&manager) {
            Ok(conn) => break conn,
            Err(e) if Instant::now() < deadline => {
                log::warn!(
                    "waiting for the database at {}: {e}",
                    settings.url.redacted()
                );
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => {
                return Err(SetupError::Unreachable {
                    url: settings.url.redacted(),
                    cause: e.to_string(),
                })
            }
        }
    };
    let applied = match &mut conn {
        DbConnection::Pg(c) => run_migrations(c, POSTGRES_MIGRATIONS),
        DbConnection::Sqlite(c) => run_migrations(c, SQLITE_MIGRATIONS),
    }?;
    Ok(applied)
}

fn run_migrations<C>(conn: &mut C, migrations: EmbeddedMigrations) -> Result<usize, SetupError>
where
    C: MigrationHarness<C::Backend> + Connection,
{
    let pending = conn
        .pending_migrations(migrations)
        .map_err(|e| SetupError::Migration(e.to_string()))?;
    let total = pending.len();
    for (n, migration) in pending.iter().enumerate() {
        log::info!(
            "applying migration {}/{}: {}",
            n + 1,
            total,
            migration.name()
        );
        conn.run_migration(migration.as_ref())
            .map_err(|e| SetupError::Migration(format!("{}: {e}", migration.name())))?;
    }
    Ok(total)
}
