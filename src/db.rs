//! The one place that knows there are two database backends: the connection enum,
//! the pool, migrations, and running blocking queries off the async workers.

use std::time::{Duration, Instant};

use actix_web::web;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::R2D2Connection;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, ConnectionError};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::config::{DatabaseUrl, Settings};
use crate::error::ApiError;

const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// A connection to either backend; queries are written once against it.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// PostgreSQL, for production and several instances.
    Pg(PgConnection),
    /// An embedded SQLite file, the default.
    Sqlite(SqliteConnection),
}

/// The shared connection pool.
pub type Pool = r2d2::Pool<ConnectionManager>;

/// Opens connections for the pool, picking the backend from the URL so that the
/// driver's own error ("connection refused", "password authentication failed")
/// reaches the log instead of the derived `establish`'s generic one.
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: DatabaseUrl,
}

impl ConnectionManager {
    /// A manager for `url`.
    pub fn new(url: DatabaseUrl) -> Self {
        ConnectionManager { url }
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = ConnectionError;

    fn connect(&self) -> Result<DbConnection, ConnectionError> {
        match &self.url {
            DatabaseUrl::Postgres(url) => {
                PgConnection::establish(url.expose()).map(DbConnection::Pg)
            }
            DatabaseUrl::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(&path.to_string_lossy())?;
                // Foreign keys are off by default in SQLite; WAL lets readers run beside the
                // writer; the busy timeout makes a second writer wait instead of failing.
                conn.batch_execute(
                    "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; \
                     PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;",
                )
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), ConnectionError> {
        conn.batch_execute("SELECT 1")
            .map_err(ConnectionError::CouldntSetupConfiguration)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        match conn {
            DbConnection::Pg(c) => c.is_broken(),
            DbConnection::Sqlite(c) => c.is_broken(),
        }
    }
}

/// Builds the pool without connecting, so that a database that is down at a
/// request gives 503 instead of stopping the service.
pub fn pool(settings: &Settings) -> Pool {
    let max_size = match settings.database_url {
        DatabaseUrl::Postgres(_) => settings.database_pool_size,
        // SQLite has one writer at a time; a few connections serve the readers.
        DatabaseUrl::Sqlite(_) => settings.database_pool_size.min(4),
    };
    r2d2::Pool::builder()
        .max_size(max_size)
        .min_idle(Some(0))
        .connection_timeout(settings.database_pool_timeout)
        .build_unchecked(ConnectionManager::new(settings.database_url.clone()))
}

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
pub fn migrate(settings: &Settings) -> Result<usize, SetupError> {
    if let DatabaseUrl::Sqlite(path) = &settings.database_url {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| SetupError::Directory(dir.display().to_string(), e))?;
        }
    }
    let manager = ConnectionManager::new(settings.database_url.clone());
    let deadline = Instant::now() + settings.database_startup_timeout;
    let mut conn = loop {
        match r2d2::ManageConnection::connect(&manager) {
            Ok(conn) => break conn,
            Err(e) if Instant::now() < deadline => {
                log::warn!(
                    "waiting for the database at {}: {e}",
                    settings.database_url.redacted()
                );
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => {
                return Err(SetupError::Unreachable {
                    url: settings.database_url.redacted(),
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

/// Runs `f` on a pooled connection on the blocking thread pool. A pool that cannot
/// hand out a connection in time is a 503.
pub async fn run<T, F>(pool: &Pool, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    web::block(move || {
        let mut conn = pool.get()?;
        f(&mut conn)
    })
    .await?
}

/// The current UTC time as stored: microseconds, the precision PostgreSQL keeps, so
/// both backends store and compare the same value.
pub fn now() -> chrono::NaiveDateTime {
    use chrono::SubsecRound;
    chrono::Utc::now().naive_utc().trunc_subsecs(6)
}

/// Whether the database answers a trivial query now.
pub async fn ping(pool: &Pool) -> bool {
    run(pool, |conn| {
        conn.batch_execute("SELECT 1")
            .map_err(|_| ApiError::ServiceUnavailable)
    })
    .await
    .is_ok()
}
