//! Reaching each backend: the pool's connection manager, libpq's URL defaults, and
//! OpenSSL's exit-time cleanup.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::R2D2Connection;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, ConnectionError};

use super::DbConnection;
use crate::config::DatabaseUrl;

/// How long an SQLite writer waits for the file's write lock before it gives up.
pub(super) const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

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

/// Opens a PostgreSQL connection; every PostgreSQL connection of the process goes
/// through here (or calls [`keep_openssl_at_exit`] first).
pub fn establish_postgres(url: &str) -> Result<PgConnection, ConnectionError> {
    keep_openssl_at_exit();
    PgConnection::establish(&connection_url(url))
}

/// `url` with libpq's defaults changed where they cost without protecting anything;
/// whatever the URL (or libpq's `PGGSSENCMODE` / `PGSSLMODE`) chooses is kept.
///
/// - `gssencmode=disable`: libpq's default (`prefer`) probes Kerberos on every connect,
///   and Kerberos tears its locks down at exit just as OpenSSL does: a pool thread
///   connecting then can abort the process. A deployment that uses GSSAPI encryption
///   sets `gssencmode` itself.
/// - `sslmode=disable` for a server on a loopback address: libpq's default (`prefer`)
///   negotiates TLS there, which encrypts bytes that never leave the kernel and checks
///   no certificate (`prefer` never does), and costs a good part of PostgreSQL's read
///   throughput (PERFORMANCE.md). Any other host keeps libpq's default.
fn connection_url(url: &str) -> String {
    connection_url_given(url, |name| std::env::var_os(name).is_some())
}

/// [`connection_url`], with the question "is this libpq variable set" answered by
/// `set_by_env`.
fn connection_url_given(url: &str, set_by_env: impl Fn(&str) -> bool) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_owned();
    };
    let has = |key: &str| parsed.query_pairs().any(|(k, _)| k == key);
    let gss = !has("gssencmode") && !set_by_env("PGGSSENCMODE");
    // `postgres:` is not a scheme the url crate knows, so an IPv4 host comes as a name.
    let loopback = match parsed.host() {
        Some(url::Host::Domain(name)) => {
            name.eq_ignore_ascii_case("localhost")
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    let ssl = loopback && !has("sslmode") && !has("host") && !set_by_env("PGSSLMODE");
    {
        let mut query = parsed.query_pairs_mut();
        if gss {
            query.append_pair("gssencmode", "disable");
        }
        if ssl {
            query.append_pair("sslmode", "disable");
        }
    }
    if !gss && !ssl {
        return url.to_owned();
    }
    parsed.into()
}

/// Stops OpenSSL (loaded by libpq, for TLS and SCRAM) from tearing its global state down
/// in an `atexit` handler. The process exits while r2d2's worker threads may still be
/// opening connections (a pool retrying an unreachable server, say); when OpenSSL's
/// cleanup runs under them they crash on freed locks and the exit becomes a SIGSEGV
/// (diesel-rs/diesel#3441). The OS frees it all at exit anyway.
/// It must run before libpq first touches OpenSSL: the first caller wins.
pub fn keep_openssl_at_exit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // OPENSSL_INIT_NO_ATEXIT from <openssl/crypto.h> (OpenSSL 1.1.1b and later).
        const OPENSSL_INIT_NO_ATEXIT: u64 = 0x0008_0000;
        type InitCrypto = unsafe extern "C" fn(u64, *const libc::c_void) -> libc::c_int;
        // Looked up at run time rather than linked, so that the build needs no OpenSSL
        // development files; libcrypto is already mapped as a dependency of libpq.
        // SAFETY: dlsym with a NUL-terminated name; a null result is checked before use,
        // and the symbol has the C signature declared above in every OpenSSL >= 1.1.0.
        unsafe {
            let symbol = libc::dlsym(libc::RTLD_DEFAULT, c"OPENSSL_init_crypto".as_ptr());
            if !symbol.is_null() {
                let init: InitCrypto = std::mem::transmute::<*mut libc::c_void, InitCrypto>(symbol);
                init(OPENSSL_INIT_NO_ATEXIT, std::ptr::null());
            }
        }
    });
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = ConnectionError;

    fn connect(&self) -> Result<DbConnection, ConnectionError> {
        match &self.url {
            DatabaseUrl::Postgres(url) => establish_postgres(url.expose()).map(DbConnection::Pg),
            DatabaseUrl::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(&path.to_string_lossy())?;
                // Foreign keys are off by default in SQLite; WAL lets readers run beside the
                // writer; the busy timeout makes a second writer wait instead of failing.
                conn.batch_execute(&format!(
                    "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {}; \
                     PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;",
                    SQLITE_BUSY_TIMEOUT.as_millis()
                ))
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

#[cfg(test)]
mod tests {
    use super::connection_url_given;

    fn connection_url(url: &str) -> String {
        connection_url_given(url, |_| false)
    }

    #[test]
    fn connections_skip_the_kerberos_probe_unless_the_url_chooses_a_gss_mode() {
        assert_eq!(
            connection_url("postgres://u:p@db.example:5432/db"),
            "postgres://u:p@db.example:5432/db?gssencmode=disable"
        );
        assert_eq!(
            connection_url("postgres://u:p@h/db?sslmode=require"),
            "postgres://u:p@h/db?sslmode=require&gssencmode=disable"
        );
        assert_eq!(
            connection_url("postgres://u:p@h/db?gssencmode=require"),
            "postgres://u:p@h/db?gssencmode=require"
        );
    }

    #[test]
    fn a_server_on_loopback_is_reached_without_tls_unless_the_url_asks_for_it() {
        for host in ["127.0.0.1", "127.0.0.2", "localhost", "LOCALHOST", "[::1]"] {
            assert_eq!(
                connection_url(&format!("postgres://u:p@{host}:5432/db")),
                format!("postgres://u:p@{host}:5432/db?gssencmode=disable&sslmode=disable"),
            );
        }
        assert_eq!(
            connection_url("postgres://u:p@127.0.0.1/db?sslmode=require"),
            "postgres://u:p@127.0.0.1/db?sslmode=require&gssencmode=disable"
        );
        assert_eq!(
            connection_url("postgres://u:p@localhost/db?sslmode=verify-full&gssencmode=prefer"),
            "postgres://u:p@localhost/db?sslmode=verify-full&gssencmode=prefer"
        );
        // A `host` parameter overrides the URL's host: nothing is assumed then.
        assert_eq!(
            connection_url("postgres://u:p@localhost/db?host=db.example"),
            "postgres://u:p@localhost/db?host=db.example&gssencmode=disable"
        );
        // libpq's own variables choose too.
        assert_eq!(
            connection_url_given("postgres://u:p@127.0.0.1/db", |name| name == "PGSSLMODE"),
            "postgres://u:p@127.0.0.1/db?gssencmode=disable"
        );
        for host in ["10.0.0.5", "db.internal", "[2001:db8::1]"] {
            assert_eq!(
                connection_url(&format!("postgres://u:p@{host}/db")),
                format!("postgres://u:p@{host}/db?gssencmode=disable"),
            );
        }
    }
}
