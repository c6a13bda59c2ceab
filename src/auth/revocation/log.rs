//! The revocation log: one row per revocation, written in the transaction of the change
//! it records so that every instance learns it, and the session reads the follower
//! learns new sessions from.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::{self, DbConnection};
use crate::error::ApiError;
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
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Session => "session",
            Kind::Token => "token",
            Kind::User => "user",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        match s {
            "session" => Some(Kind::Session),
            "token" => Some(Kind::Token),
            "user" => Some(Kind::User),
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
}

/// Appends revocations to the log (inside the caller's transaction).
pub fn log(
    conn: &mut DbConnection,
    revoked: &[Revocation],
    at: NaiveDateTime,
) -> Result<(), diesel::result::Error> {
    for r in revoked {
        diesel::insert_into(revocations::table)
            .values((
                revocations::kind.eq(r.kind.as_str()),
                revocations::subject.eq(&r.subject),
                revocations::user_id.eq(r.user_id),
                revocations::revoked_at.eq(at),
                revocations::expires_at.eq(r.expires_at),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Reads the log and the sessions: everything still live when `since` is None (the
/// start-up fill), else what was written from `since` on.
pub fn fetch(conn: &mut DbConnection, since: Option<NaiveDateTime>) -> Result<Changes, ApiError> {
    let query = revocations::table
        .select((
            revocations::kind,
            revocations::subject,
            revocations::user_id,
            revocations::expires_at,
        ))
        .into_boxed();
    let query = match since {
        Some(since) => query.filter(revocations::revoked_at.ge(since)),
        None => query.filter(revocations::expires_at.ge(db::now())),
    };
    let rows: Vec<(String, String, i64, NaiveDateTime)> = query.load(conn)?;
    let revocations = rows
        .into_iter()
        .filter_map(|(kind, subject, user_id, expires_at)| {
            Some(Revocation {
                kind: Kind::parse(&kind)?,
                subject,
                user_id,
                expires_at,
            })
        })
        .collect();
    Ok(Changes {
        revocations,
        sessions: sessions_changed_since(conn, since)?,
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
            .filter(sessions::expires_at.ge(db::now()))
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
