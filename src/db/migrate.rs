//! Preparing the database at start-up: waiting for it, then the pending migrations.

use std::time::{Duration, Instant};

use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::connect::ConnectionManager;
use super::DbConnection;
use crate::config::{DatabaseSettings, DatabaseUrl};
use crate::models::user::User;

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
    /// The database answered that it will never accept this connection.
    #[error("cannot connect to the database at {url}: {cause} ({hint})")]
    Refused {
        /// Where (password removed).
        url: String,
        /// The driver's error.
        cause: String,
        /// What to do about it.
        hint: String,
    },
    /// A migration failed.
    #[error("migrations failed: {0}")]
    Migration(String),
    /// The SQLite file's folder could not be created.
    #[error("cannot create {0}: {1}")]
    Directory(String, std::io::Error),
    /// The SQLite file could not be created.
    #[error("cannot create the SQLite file {0}: {1}")]
    File(String, std::io::Error),
}

/// Waits for the database (up to the start-up timeout), applies pending migrations,
/// logging each one, and settles the username keys they left provisional.
pub fn migrate(settings: &DatabaseSettings) -> Result<usize, SetupError> {
    if let DatabaseUrl::Sqlite(path) = &settings.url {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| SetupError::Directory(dir.display().to_string(), e))?;
        }
        create_private(path).map_err(|e| SetupError::File(path.display().to_string(), e))?;
    }
    let manager = ConnectionManager::new(settings.url.clone());
    let deadline = Instant::now() + settings.startup_timeout;
    let mut conn = loop {
        match r2d2::ManageConnection::connect(&manager) {
            Ok(conn) => break conn,
            Err(e) => {
                if let Some(hint) = never_answers(&e.to_string(), &settings.url) {
                    return Err(SetupError::Refused {
                        url: settings.url.redacted(),
                        cause: first_line(&e.to_string()),
                        hint,
                    });
                }
                if Instant::now() >= deadline {
                    return Err(SetupError::Unreachable {
                        url: settings.url.redacted(),
                        cause: first_line(&e.to_string()),
                    });
                }
                log::warn!(
                    "waiting for the database at {}: {e}",
                    settings.url.redacted()
                );
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    };
    let applied = match &mut conn {
        DbConnection::Pg(c) => run_migrations(c, POSTGRES_MIGRATIONS),
        DbConnection::Sqlite(c) => run_migrations(c, SQLITE_MIGRATIONS),
    }?;
    // The username keys that SQL cannot compute, before anything reads the users.
    let settled = super::in_transaction(&mut conn, |conn| Ok(User::settle_keys(conn)?))
        .map_err(|e| SetupError::Migration(format!("username keys: {e}")))?;
    if settled > 0 {
        log::info!("computed the username keys of {settled} existing user(s)");
    }
    Ok(applied)
}

/// Creates the SQLite file, empty (SQLite's empty database), with mode 0600 before
/// SQLite first opens it: SQLite would create it readable by every local user (0644
/// less the umask), and it gives the -wal and -shm files it makes beside it the
/// database file's mode. The mode is set outright, whatever the umask. An existing file
/// keeps its mode (the operator's choice), with a warning if others may open it.
#[cfg(unix)]
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(file) => file.set_permissions(std::fs::Permissions::from_mode(0o600)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                let path = path.display();
                log::warn!(
                    "the SQLite file {path} has mode {mode:04o}, open to group or others: \
                     run `chmod 600 {path}`"
                );
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Elsewhere the file's access is the operating system's ACLs' business.
#[cfg(not(unix))]
fn create_private(_path: &std::path::Path) -> std::io::Result<()> {
    Ok(())
}

/// A hint for a connection error that waiting cannot cure (an unknown host, a refused
/// login, a missing database): start-up then fails at once instead of retrying until
/// DATABASE_STARTUP_TIMEOUT. None for what may pass (refused, timed out, starting up).
fn never_answers(error: &str, url: &DatabaseUrl) -> Option<String> {
    let error = error.to_ascii_lowercase();
    let database = match url {
        DatabaseUrl::Postgres(secret) => url::Url::parse(secret.expose())
            .ok()
            .map(|u| u.path().trim_start_matches('/').to_owned())
            .filter(|name| !name.is_empty()),
        DatabaseUrl::Sqlite(_) => None,
    };
    if error.contains("does not exist") && error.contains("database") {
        let name = database.unwrap_or_else(|| "the database".to_owned());
        return Some(format!(
            "create it first, e.g. `createdb {name}` or `CREATE DATABASE {name};` in psql"
        ));
    }
    if error.contains("password authentication failed")
        || error.contains("no password supplied")
        || error.contains("authentication failed")
        || (error.contains("role") && error.contains("does not exist"))
    {
        return Some("check the user name and password in DATABASE_URL".to_owned());
    }
    if error.contains("could not translate host name")
        || error.contains("name or service not known")
    {
        return Some("check the host name in DATABASE_URL".to_owned());
    }
    if error.contains("unable to open database file") {
        return Some("check that the SQLite file's folder exists and is writable".to_owned());
    }
    None
}

/// libpq's messages run over several lines; the first says what happened.
fn first_line(error: &str) -> String {
    error.lines().next().unwrap_or_default().trim().to_owned()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn postgres(url: &str) -> DatabaseUrl {
        DatabaseUrl::parse(url).unwrap()
    }

    #[test]
    fn errors_that_waiting_cannot_cure_fail_at_once_with_a_hint() {
        let url = postgres("postgres://u:p@db.example:5432/shop");
        let missing = "connection to server at \"db.example\", port 5432 failed: FATAL:  database \"shop\" does not exist";
        assert!(never_answers(missing, &url)
            .unwrap()
            .contains("createdb shop"));
        let login =
            "connection to server failed: FATAL:  password authentication failed for user \"u\"";
        assert!(never_answers(login, &url)
            .unwrap()
            .contains("password in DATABASE_URL"));
        let host =
            "could not translate host name \"db.example\" to address: Name or service not known";
        assert!(never_answers(host, &url).unwrap().contains("host name"));
    }

    #[test]
    fn errors_that_may_pass_are_retried() {
        let url = postgres("postgres://u:p@127.0.0.1:5432/shop");
        for transient in [
            "connection to server at \"127.0.0.1\", port 5432 failed: Connection refused",
            "connection to server failed: timeout expired",
            "FATAL:  the database system is starting up",
        ] {
            assert_eq!(never_answers(transient, &url), None, "{transient}");
        }
    }
}
