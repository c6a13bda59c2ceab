//! Transactions: a change and what it implies commit together or not at all.

use diesel::Connection;

use super::connect::SQLITE_BUSY_TIMEOUT;
use super::executor::{run, unavailable, Pool};
use super::DbConnection;
use crate::error::ApiError;

/// [`run`] inside one transaction: a write and its read-back commit together or not at
/// all, so a connection lost half-way never leaves a stored row behind an error answer.
pub async fn transaction<T, F>(pool: &Pool, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let write_turn = pool.write_turn.clone();
    run(pool, move |conn| {
        // SQLite lets one transaction write at a time, and a writer that finds the lock
        // taken sleeps in SQLite's busy handler, in steps growing to 100 ms, however soon
        // the lock is free again. Waiting here instead, on a lock that hands over to the
        // next writer when the last one commits, keeps the write p99 in milliseconds
        // under load. It is bounded like the busy handler; other processes on the file
        // (the admin CLI) still meet the busy handler.
        let _turn = match &write_turn {
            Some(turn) => Some(turn.try_lock_for(SQLITE_BUSY_TIMEOUT).ok_or_else(|| {
                unavailable("waited for SQLite's write lock past the busy timeout")
            })?),
            None => None,
        };
        in_transaction(conn, f)
    })
    .await
}

/// Runs `f` in a transaction on `conn`. On SQLite it is `BEGIN IMMEDIATE`: a deferred
/// transaction that reads before it writes must upgrade its lock, and SQLite refuses
/// that upgrade at once (SQLITE_BUSY, no busy timeout, to avoid deadlock) whenever
/// another writer is active; taking the write lock up front makes it wait its turn
/// instead; without it, concurrent writers answer 503s.
pub fn in_transaction<T, F>(conn: &mut DbConnection, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    type Manager = <DbConnection as Connection>::TransactionManager;

    let DbConnection::Sqlite(sqlite) = conn else {
        return conn.transaction(f);
    };
    AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
    match f(conn) {
        Ok(value) => match Manager::commit_transaction(conn) {
            Ok(()) => Ok(value),
            Err(e) => {
                // Diesel leaves the transaction open when COMMIT fails; end it.
                let _ = Manager::rollback_transaction(conn);
                Err(e.into())
            }
        },
        Err(e) => {
            // The caller's error is the one to report; a failed rollback on top of it
            // marks the connection broken and the pool drops it.
            let _ = Manager::rollback_transaction(conn);
            Err(e)
        }
    }
}
