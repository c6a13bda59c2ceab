//! Transactions: a change and what it implies commit together or not at all.

use std::cell::RefCell;

use diesel::Connection;

use super::connect::SQLITE_BUSY_TIMEOUT;
use super::executor::{run, unavailable, Pool};
use super::DbConnection;
use crate::error::ApiError;

/// An effect that waits for a commit.
type Hook = Box<dyn FnOnce()>;

thread_local! {
    /// What waits for the commit of the transaction this database thread is running;
    /// `None` outside [`in_transaction`].
    static AFTER_COMMIT: RefCell<Option<Vec<Hook>>> = const { RefCell::new(None) };
}

/// Runs `f` once the transaction of [`in_transaction`] running on this thread commits,
/// and never if it rolls back; outside one, at once (what came before is committed).
/// For effects outside the database that must follow its state, such as the in-memory
/// revoked set: a revocation written by a transaction that then fails is never noted.
pub fn after_commit(f: impl FnOnce() + 'static) {
    let now = AFTER_COMMIT.with(|hooks| match hooks.borrow_mut().as_mut() {
        Some(waiting) => {
            waiting.push(Box::new(f));
            None
        }
        None => Some(f),
    });
    if let Some(f) = now {
        f();
    }
}

/// Drops the hooks of an outermost transaction however it ends, a panic included, so
/// that the thread's next job starts with none.
struct HooksScope;

impl HooksScope {
    /// Starts collecting hooks, unless an enclosing transaction already does.
    fn enter() -> Option<HooksScope> {
        AFTER_COMMIT.with(|hooks| {
            let mut hooks = hooks.borrow_mut();
            if hooks.is_some() {
                return None;
            }
            *hooks = Some(Vec::new());
            Some(HooksScope)
        })
    }

    /// The hooks collected, now to run.
    fn take(self) -> Vec<Hook> {
        AFTER_COMMIT.with(|hooks| hooks.borrow_mut().take().unwrap_or_default())
    }
}

impl Drop for HooksScope {
    fn drop(&mut self) {
        AFTER_COMMIT.with(|hooks| hooks.borrow_mut().take());
    }
}

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
    let scope = HooksScope::enter();
    let result = transact(conn, f);
    if let Some(scope) = scope {
        let hooks = scope.take();
        if result.is_ok() {
            hooks.into_iter().for_each(|hook| hook());
        }
    }
    result
}

fn transact<T, F>(conn: &mut DbConnection, f: F) -> Result<T, ApiError>
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
