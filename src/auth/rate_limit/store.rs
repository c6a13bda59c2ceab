//! The windows in the database, for PostgreSQL: every instance counts in the same rows
//! of `auth_limits`, so N instances do not give an attacker N times the attempts.
//!
//! Raw SQL, because the two-backend connection cannot compile diesel's `on_conflict`.
//! Placeholders appear first in number order, so the text means the same to SQLite
//! (where `$N` is a named parameter, numbered by first appearance) as to PostgreSQL.

use std::time::Duration;

use diesel::sql_types::{BigInt, Text};
use diesel::{QueryableByName, RunQueryDsl};

use crate::db::DbConnection;

/// One subject's open window: hits counted, and milliseconds until it closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Counted {
    /// Hits counted in the window, this one included.
    pub hits: u64,
    /// Time until the window closes.
    pub left: Duration,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = BigInt)]
    hits: i64,
    #[diesel(sql_type = BigInt)]
    resets_at_ms: i64,
}

impl Row {
    fn counted(&self, now_ms: i64) -> Counted {
        Counted {
            hits: u64::try_from(self.hits).unwrap_or(0),
            left: Duration::from_millis(
                u64::try_from(self.resets_at_ms.saturating_sub(now_ms)).unwrap_or(0),
            ),
        }
    }
}

/// Counts a hit in one statement: a new row, a hit more in an open window, or a new
/// window in place of a closed one. PostgreSQL locks the row for the update, so
/// concurrent hits on any instance are each counted once.
const HIT: &str = "INSERT INTO auth_limits (subject, hits, resets_at_ms) VALUES ($1, 1, $2) \
    ON CONFLICT (subject) DO UPDATE SET \
    hits = CASE WHEN auth_limits.resets_at_ms > $3 THEN auth_limits.hits + 1 ELSE 1 END, \
    resets_at_ms = CASE WHEN auth_limits.resets_at_ms > $3 \
        THEN auth_limits.resets_at_ms ELSE $2 END \
    RETURNING hits, resets_at_ms";

/// Milliseconds since the Unix epoch.
pub(super) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Counts a hit for `subject` in a window of `length` from `now_ms`.
pub(super) fn hit(
    conn: &mut DbConnection,
    subject: &str,
    length: Duration,
    now_ms: i64,
) -> Result<Counted, diesel::result::Error> {
    let length_ms = i64::try_from(length.as_millis()).unwrap_or(i64::MAX);
    let row: Row = diesel::sql_query(HIT)
        .bind::<Text, _>(subject)
        .bind::<BigInt, _>(now_ms.saturating_add(length_ms))
        .bind::<BigInt, _>(now_ms)
        .get_result(conn)?;
    Ok(row.counted(now_ms))
}

/// `subject`'s open window, if any.
pub(super) fn get(
    conn: &mut DbConnection,
    subject: &str,
    now_ms: i64,
) -> Result<Option<Counted>, diesel::result::Error> {
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT hits, resets_at_ms FROM auth_limits WHERE subject = $1 AND resets_at_ms > $2",
    )
    .bind::<Text, _>(subject)
    .bind::<BigInt, _>(now_ms)
    .load(conn)?;
    Ok(rows.first().map(|row| row.counted(now_ms)))
}

/// Forgets `subject`.
pub(super) fn remove(conn: &mut DbConnection, subject: &str) -> Result<(), diesel::result::Error> {
    diesel::sql_query("DELETE FROM auth_limits WHERE subject = $1")
        .bind::<Text, _>(subject)
        .execute(conn)?;
    Ok(())
}

/// Deletes the windows closed by `now_ms`; returns how many.
pub(super) fn prune(conn: &mut DbConnection, now_ms: i64) -> Result<usize, diesel::result::Error> {
    diesel::sql_query("DELETE FROM auth_limits WHERE resets_at_ms <= $1")
        .bind::<BigInt, _>(now_ms)
        .execute(conn)
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, SqliteConnection};

    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    /// The statements run on SQLite here, on PostgreSQL in the integration tests.
    fn database() -> DbConnection {
        let mut conn = DbConnection::Sqlite(
            SqliteConnection::establish(":memory:").expect("in-memory SQLite"),
        );
        conn.batch_execute(include_str!(
            "../../../migrations/sqlite/2026-11-26-000001_auth_limits/up.sql"
        ))
        .expect("the table");
        conn
    }

    #[test]
    fn hits_count_in_one_window_then_a_new_one_opens() {
        let mut conn = database();
        let t0 = 1_000_000;
        assert_eq!(hit(&mut conn, "a", MINUTE, t0).unwrap().hits, 1);
        let second = hit(&mut conn, "a", MINUTE, t0 + 1_000).unwrap();
        assert_eq!(second.hits, 2);
        assert_eq!(
            second.left,
            Duration::from_secs(59),
            "fixed from the first hit"
        );
        assert_eq!(
            hit(&mut conn, "b", MINUTE, t0).unwrap().hits,
            1,
            "per subject"
        );
        let next = hit(&mut conn, "a", MINUTE, t0 + 60_000).unwrap();
        assert_eq!((next.hits, next.left), (1, MINUTE), "a new window");
    }

    #[test]
    fn get_sees_only_open_windows_and_remove_and_prune_forget() {
        let mut conn = database();
        let t0 = 1_000_000;
        hit(&mut conn, "a", MINUTE, t0).unwrap();
        hit(&mut conn, "b", MINUTE, t0).unwrap();
        hit(&mut conn, "c", 2 * MINUTE, t0).unwrap();
        assert_eq!(get(&mut conn, "a", t0).unwrap().map(|c| c.hits), Some(1));
        assert_eq!(get(&mut conn, "a", t0 + 60_000).unwrap(), None);
        remove(&mut conn, "b").unwrap();
        assert_eq!(get(&mut conn, "b", t0).unwrap(), None);
        assert_eq!(
            prune(&mut conn, t0 + 60_000).unwrap(),
            1,
            "a's window closed"
        );
        assert!(get(&mut conn, "c", t0 + 60_000).unwrap().is_some());
    }
}
