//! The one place that knows there are two database backends: the connection enum and
//! how to reach each backend (`connect`), the migrations (`migrate`), the threads that
//! run queries off the async workers (`executor`), batched reads (`batch`), and
//! transactions (`transaction`).

mod batch;
mod connect;
mod executor;
mod migrate;
mod transaction;

use diesel::pg::PgConnection;
use diesel::sqlite::SqliteConnection;

pub use batch::{BatchedReads, BATCH_MAX};
pub use connect::{establish_postgres, keep_openssl_at_exit, ConnectionManager};
pub use executor::{ping, pool, run, Pool, PooledConnection};
pub use migrate::{migrate, SetupError};
pub use transaction::{after_commit, in_transaction, transaction};

/// A connection to either backend; queries are written once against it.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// PostgreSQL, for production and several instances.
    Pg(PgConnection),
    /// An embedded SQLite file, the default.
    Sqlite(SqliteConnection),
}

/// The database's clock, as stored: what revocations are stamped with, so that
/// instances whose clocks differ agree on their order. SQLite runs on this machine,
/// whose clock it is.
pub fn clock(conn: &mut DbConnection) -> diesel::QueryResult<chrono::NaiveDateTime> {
    use diesel::RunQueryDsl;
    match conn {
        DbConnection::Pg(pg) => diesel::select(diesel::dsl::sql::<diesel::sql_types::Timestamp>(
            "date_trunc('microseconds', clock_timestamp() AT TIME ZONE 'utc')",
        ))
        .get_result(pg),
        DbConnection::Sqlite(_) => Ok(now()),
    }
}

/// The current UTC time as stored: microseconds, the precision PostgreSQL keeps, so
/// both backends store and compare the same value.
pub fn now() -> chrono::NaiveDateTime {
    use chrono::SubsecRound;
    chrono::Utc::now().naive_utc().trunc_subsecs(6)
}
