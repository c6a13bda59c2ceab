//! The revocation log: one row per revocation, written in the transaction of the change
//! it records so that every instance learns it, and the session reads the follower
//! learns new sessions from.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::{self, DbConnection};
use crate::error::ApiError;
use crate::metrics::metrics;
use crate::schema::{revocations, sessions};

/// What a revocation log row covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A session: every token carrying its `sid`.
    Session,
    /// One sid-less token, by `jti`.
    Token,
    /// A deleted user: every token whose `sub` names them.
    User,
    /// A change to a user's security state (password, admin flag, every session
    /// revoked): sid-less tokens of the user issued until then are refused.
    NotBefore,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Session => "session",
            Kind::Token => "token",
            Kind::User => "user",
            Kind::NotBefore => "not_before",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        match s {
            "session" => Some(Kind::Session),
            "token" => Some(Kind::Token),
            "user" => Some(Kind::User),
            "not_before" => Some(Kind::NotBefore),
            _ => None,
        }
    }
}

/// One revocation, as logged and as entered into the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// What it covers.
    pub kind: Kind,
    /// The sid, the jti, or the user id as text.
    pub subject: String,
    /// The owner (or the deleted user).
    pub user_id: i64,
    /// When it happened, by the database's clock.
    pub at: NaiveDateTime,
    /// When the entry may be dropped: the covered tokens' expiry plus the leeway.
    pub expires_at: NaiveDateTime,
}

/// A session as the follower reads it.
#[derive(Debug, Clone, Queryable)]
pub struct SessionRow {
    /// The sid.
    pub id: String,
    /// The owner.
    pub user_id: i64,
    /// When its newest token expires.
    pub expires_at: NaiveDateTime,
    /// Set once ended.
    pub revoked_at: Option<NaiveDateTime>,
}

/// What one poll brought back.
#[derive(Debug, Default)]
pub struct Changes {
    /// Log rows.
    pub revocations: Vec<Revocation>,
    /// New or rotated sessions.
    pub sessions: Vec<SessionRow>,
    /// Where the next poll goes on from.
    pub cursor: Cursor,
}

/// Where the follower is in the log: past every id up to `after`, except `gaps`.
///
/// Ids are handed out when a row is inserted but become visible when its transaction
/// commits, so a poll can see id 12 before 11 commits, however late 11 commits; a
/// rolled-back insert leaves its id unused for ever. Polls ask for new ids and the
/// gaps again, so a late commit is applied by the next poll after it, and gaps are
/// given up on only after [`GAP_PATIENCE`]. No clock is involved: instances whose
/// clocks differ still agree on what they have read.
#[derive(Debug, Clone, Default)]
pub struct Cursor {
    /// The highest id read.
    pub after: i64,
    /// Ids below `after` not seen yet, with the database time they were first missed.
    pub gaps: Vec<(i64, NaiveDateTime)>,
    /// The database's time when this cursor was taken.
    pub read_at: Option<NaiveDateTime>,
}

/// How long an id missing from the log is waited for: longer than any transaction
/// that writes a revocation can run.
pub const GAP_PATIENCE: chrono::Duration = chrono::Duration::minutes(10);
/// Gaps followed at most; beyond them the oldest are given up (only a burst of
/// rolled-back revocations makes that many).
const MAX_GAPS: usize = 10_000;
/// How far back each poll re-reads the sessions, by the database's clock: a session
/// row becomes visible when its transaction commits, which can be a little after the
/// time it was stamped with. A session learned late costs only a database read on its
/// first token check, never a wrong answer.
const SESSION_REREAD: chrono::Duration = chrono::Duration::seconds(10);

/// Appends revocations to the log (inside the caller's transaction).
pub fn log(conn: &mut DbConnection, revoked: &[Revocation]) -> Result<(), diesel::result::Error> {
    for r in revoked {
        diesel::insert_into(revocations::table)
            .values((
                revocations::kind.eq(r.kind.as_str()),
                revocations::subject.eq(&r.subject),
                revocations::user_id.eq(r.user_id),
                revocations::revoked_at.eq(r.at),
                revocations::expires_at.eq(r.expires_at),
            ))
            .execute(conn)?;
        // Counted once it holds: a transaction that rolls back revoked nothing.
        let kind = r.kind.as_str();
        crate::db::after_commit(move || {
            if let Some(m) = metrics() {
                m.revocations.with_label_values(&[kind]).inc();
            }
        });
    }
    Ok(())
}

type Row = (i64, String, String, i64, NaiveDateTime, NaiveDateTime);

/// Reads the log and the sessions: everything still live when `cursor` is None (the
/// start-up fill), else what was committed since the cursor.
pub fn fetch(conn: &mut DbConnection, cursor: Option<&Cursor>) -> Result<Changes, ApiError> {
    let read_at = db::clock(conn)?;
    let columns = (
        revocations::id,
        revocations::kind,
        revocations::subject,
        revocations::user_id,
        revocations::revoked_at,
        revocations::expires_at,
    );
    let (rows, mut next): (Vec<Row>, Cursor) = match cursor {
        None => {
            let top: Option<i64> = revocations::table
                .select(diesel::dsl::max(revocations::id))
                .first(conn)?;
            let after = top.unwrap_or(0);
            let rows: Vec<Row> = revocations::table
                .filter(revocations::expires_at.ge(read_at))
                .filter(revocations::id.le(after))
                .select(columns)
                .load(conn)?;
            // Ids just below the top may belong to transactions still open.
            let recent: Vec<i64> = revocations::table
                .filter(revocations::id.gt(after - 1000))
                .select(revocations::id)
                .load(conn)?;
            let gaps = ((after - 1000).max(0) + 1..=after)
                .filter(|id| !recent.contains(id))
                .map(|id| (id, read_at))
                .collect();
            (
                rows,
                Cursor {
                    after,
                    gaps,
                    read_at: None,
                },
            )
        }
        Some(cursor) => {
            let gap_ids: Vec<i64> = cursor.gaps.iter().map(|(id, _)| *id).collect();
            let rows: Vec<Row> = revocations::table
                .filter(
                    revocations::id
                        .gt(cursor.after)
                        .or(revocations::id.eq_any(&gap_ids)),
                )
                .select(columns)
                .load(conn)?;
            (rows, cursor.clone())
        }
    };
    let seen: std::collections::BTreeSet<i64> = rows.iter().map(|r| r.0).collect();
    next.gaps
        .retain(|(id, missed)| !seen.contains(id) && read_at - *missed < GAP_PATIENCE);
    if let Some(&top) = seen.iter().next_back() {
        if top > next.after {
            next.gaps.extend(
                (next.after + 1..top)
                    .filter(|id| !seen.contains(id))
                    .map(|id| (id, read_at)),
            );
            next.after = top;
        }
    }
    if next.gaps.len() > MAX_GAPS {
        let excess = next.gaps.len() - MAX_GAPS;
        log::warn!("revocation follower: giving up on {excess} missing log ids");
        next.gaps.drain(..excess);
    }
    let sessions_since = cursor.and_then(|c| c.read_at).map(|t| t - SESSION_REREAD);
    next.read_at = Some(read_at);
    let revocations = rows
        .into_iter()
        .filter_map(|(_, kind, subject, user_id, at, expires_at)| {
            Some(Revocation {
                kind: Kind::parse(&kind)?,
                subject,
                user_id,
                at,
                expires_at,
            })
        })
        .collect();
    Ok(Changes {
        revocations,
        sessions: sessions_changed_since(conn, sessions_since)?,
        cursor: next,
    })
}

/// Deletes log rows nobody needs any more.
pub fn prune_log(conn: &mut DbConnection, cutoff: NaiveDateTime) -> Result<usize, ApiError> {
    Ok(
        diesel::delete(revocations::table.filter(revocations::expires_at.lt(cutoff)))
            .execute(conn)?,
    )
}

/// Sessions opened or rotated from `since` on, or every live one when None: what the
/// follower learns sessions from.
fn sessions_changed_since(
    conn: &mut DbConnection,
    since: Option<NaiveDateTime>,
) -> Result<Vec<SessionRow>, ApiError> {
    let columns = (
        sessions::id,
        sessions::user_id,
        sessions::expires_at,
        sessions::revoked_at,
    );
    Ok(match since {
        Some(since) => sessions::table
            .filter(
                sessions::created_at
                    .ge(since)
                    .or(sessions::refreshed_at.ge(since)),
            )
            .select(columns)
            .load(conn)?,
        None => sessions::table
            .filter(sessions::expires_at.ge(db::clock(conn)?))
            .select(columns)
            .load(conn)?,
    })
}

/// One session as the revocation check needs it.
pub fn session_row(conn: &mut DbConnection, id: &str) -> Result<Option<SessionRow>, ApiError> {
    Ok(sessions::table
        .find(id)
        .select((
            sessions::id,
            sessions::user_id,
            sessions::expires_at,
            sessions::revoked_at,
        ))
        .first(conn)
        .optional()?)
}
