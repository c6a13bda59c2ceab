//! Sessions, refresh rotation with reuse detection, and revocation.
//!
//! Writes that depend on what is stored are single conditional UPDATEs, so two
//! instances (or two racing requests) cannot both spend one refresh token. Every
//! revocation is logged in the same transaction (for the other instances) and entered
//! into this instance's in-memory set at once (so it holds here from the next request).

use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use crate::auth::revocation::log::{self as revocation, Kind, Revocation};
use crate::auth::revocation::Revocations;
use crate::auth::tokens::{Claims, TokenType};
use crate::db::{self, now, DbConnection};
use crate::error::ApiError;
use crate::models::user::User;
use crate::schema::{revoked_tokens, sessions};

/// A login, and the refresh tokens minted for it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct Session {
    /// UUID; the tokens' `sid`.
    pub id: String,
    /// Owner.
    pub user_id: i64,
    /// Login time.
    pub created_at: NaiveDateTime,
    /// Last rotation.
    pub refreshed_at: Option<NaiveDateTime>,
    /// When the newest refresh token (or, without one, the access token) expires.
    pub expires_at: NaiveDateTime,
    /// Set once the session is ended.
    pub revoked_at: Option<NaiveDateTime>,
    /// The refresh token that may still be spent.
    pub refresh_jti: Option<String>,
    /// The refresh token spent last.
    pub previous_refresh_jti: Option<String>,
    /// User-Agent of the login request.
    pub user_agent: Option<String>,
    /// Client address of the login request.
    pub ip: Option<String>,
}

#[derive(Insertable)]
#[diesel(table_name = sessions)]
struct NewSession<'a> {
    id: &'a str,
    user_id: i64,
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
    refresh_jti: Option<&'a str>,
    user_agent: Option<&'a str>,
    ip: Option<&'a str>,
}

/// Where a login came from, as shown in GET /sessions.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// User-Agent header, truncated.
    pub user_agent: Option<String>,
    /// Peer address.
    pub ip: Option<String>,
}

/// What presenting a refresh token to [`Session::rotate`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Spent {
    /// The refresh token to hand out next.
    Rotated(String),
    /// The token was spent already: reuse, and its session has ended.
    Reused,
}

/// A session as GET /sessions shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// The tokens' `sid`.
    #[schema(format = "uuid")]
    pub id: String,
    /// Login time.
    pub created_at: DateTime<Utc>,
    /// Last refresh, or null.
    #[schema(required = true)]
    pub refreshed_at: Option<DateTime<Utc>>,
    /// Login User-Agent, or null.
    #[schema(required = true)]
    pub user_agent: Option<String>,
    /// Login address, or null.
    #[schema(required = true)]
    pub ip: Option<String>,
    /// Whether the calling token belongs to it.
    pub current: bool,
}

/// What a logout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum LogoutScope {
    /// This session.
    Local,
    /// Every session of the caller.
    Global,
    /// Every session of the caller but this one.
    Others,
}

impl LogoutScope {
    /// The name the API uses (`scope` of POST /logout).
    pub fn as_str(self) -> &'static str {
        match self {
            LogoutScope::Local => "local",
            LogoutScope::Global => "global",
            LogoutScope::Others => "others",
        }
    }
}

fn live() -> diesel::dsl::And<
    diesel::dsl::IsNull<sessions::revoked_at>,
    diesel::dsl::Gt<sessions::expires_at, NaiveDateTime>,
> {
    sessions::revoked_at
        .is_null()
        .and(sessions::expires_at.gt(now()))
}

impl Session {
    /// Opens a session for a login; `refresh_jti` is None for a fresh-login.
    pub fn open(
        conn: &mut DbConnection,
        id: &str,
        user_id: i64,
        refresh_jti: Option<&str>,
        expires_at: DateTime<Utc>,
        client: &ClientInfo,
    ) -> Result<(), ApiError> {
        diesel::insert_into(sessions::table)
            .values(NewSession {
                id,
                user_id,
                created_at: now(),
                expires_at: expires_at.naive_utc(),
                refresh_jti,
                user_agent: client.user_agent.as_deref(),
                ip: client.ip.as_deref(),
            })
            .execute(conn)?;
        Ok(())
    }

    /// Spends the presented refresh token and records `new_jti` as the next one;
    /// returns the jti the new refresh token must carry.
    ///
    /// A token that is not the session's current one is reuse (RFC 6819 5.2.2.3,
    /// OAuth 2.0 Security BCP 4.14): the whole session is revoked, unless it is the
    /// token spent last and the configured grace period since that rotation has not
    /// run out (a client's concurrent double submit).
    pub fn rotate(
        conn: &mut DbConnection,
        revoked: &Arc<Revocations>,
        id: &str,
        presented_jti: &str,
        new_jti: &str,
        new_expires_at: DateTime<Utc>,
        grace: chrono::Duration,
    ) -> Result<Spent, ApiError> {
        // Two passes at most: a compare-and-swap lost to a concurrent rotation is
        // judged again, now as a re-presentation of the spent token.
        for _ in 0..2 {
            let session: Session = sessions::table
                .find(id)
                .select(Session::as_select())
                .first(conn)
                .optional()?
                .ok_or(ApiError::TokenRevoked)?;
            if session.revoked_at.is_some() {
                return Err(ApiError::TokenRevoked);
            }
            let Some(current) = session.refresh_jti.as_deref() else {
                return Err(ApiError::TokenRevoked);
            };
            let matches = |jti: Option<&str>| {
                jti.is_some_and(|jti| bool::from(jti.as_bytes().ct_eq(presented_jti.as_bytes())))
            };
            if !matches(Some(current)) {
                let double_submit = matches(session.previous_refresh_jti.as_deref())
                    && session.refreshed_at.is_some_and(|at| now() < at + grace);
                if double_submit {
                    // Hand out the current jti again rather than rotating once more, so
                    // whichever of the two responses the client keeps stays valid.
                    return Ok(Spent::Rotated(current.to_string()));
                }
                log::warn!("refresh token reuse detected; revoking session {id}");
                db::after_commit(|| {
                    crate::metrics::metrics().inspect(|m| m.refresh_reuse.inc());
                });
                Session::revoke(conn, revoked, id)?;
                return Ok(Spent::Reused);
            }
            // Compare-and-swap on the current jti: of two racing rotations one matches.
            let swapped = diesel::update(
                sessions::table
                    .find(id)
                    .filter(sessions::revoked_at.is_null())
                    .filter(sessions::refresh_jti.eq(current)),
            )
            .set((
                sessions::refresh_jti.eq(new_jti),
                sessions::previous_refresh_jti.eq(presented_jti),
                sessions::refreshed_at.eq(now()),
                sessions::expires_at.eq(new_expires_at.naive_utc()),
            ))
            .execute(conn)?;
            if swapped == 1 {
                return Ok(Spent::Rotated(new_jti.to_string()));
            }
        }
        Err(ApiError::TokenRevoked)
    }

    /// Ends one session.
    pub fn revoke(
        conn: &mut DbConnection,
        revoked: &Arc<Revocations>,
        id: &str,
    ) -> Result<bool, ApiError> {
        let ended = end_sessions(
            conn,
            revoked,
            |conn, at| {
                diesel::update(
                    sessions::table
                        .find(id)
                        .filter(sessions::revoked_at.is_null()),
                )
                .set(sessions::revoked_at.eq(at))
                .execute(conn)
            },
            |conn, at| ended_at(conn, id, at),
        )?;
        Ok(ended > 0)
    }

    /// Ends one live session of this user; false if it is not theirs or not live.
    pub fn revoke_owned(
        conn: &mut DbConnection,
        revoked: &Arc<Revocations>,
        id: &str,
        user_id: i64,
    ) -> Result<bool, ApiError> {
        let ended = end_sessions(
            conn,
            revoked,
            |conn, at| {
                diesel::update(
                    sessions::table
                        .find(id)
                        .filter(sessions::user_id.eq(user_id))
                        .filter(live()),
                )
                .set(sessions::revoked_at.eq(at))
                .execute(conn)
            },
            |conn, at| ended_at(conn, id, at),
        )?;
        Ok(ended > 0)
    }

    /// Ends every session of a user, but `except` when given. Returns how many.
    pub fn revoke_all_for_user(
        conn: &mut DbConnection,
        revoked: &Arc<Revocations>,
        user_id: i64,
        except: Option<&str>,
    ) -> Result<usize, ApiError> {
        end_sessions(
            conn,
            revoked,
            |conn, at| {
                let target = sessions::table
                    .filter(sessions::user_id.eq(user_id))
                    .filter(sessions::revoked_at.is_null());
                match except {
                    Some(keep) => diesel::update(target.filter(sessions::id.ne(keep)))
                        .set(sessions::revoked_at.eq(at))
                        .execute(conn),
                    None => diesel::update(target)
                        .set(sessions::revoked_at.eq(at))
                        .execute(conn),
                }
            },
            |conn, at| {
                sessions::table
                    .filter(sessions::user_id.eq(user_id))
                    .filter(sessions::revoked_at.eq(at))
                    .select((sessions::id, sessions::user_id, sessions::expires_at))
                    .load(conn)
            },
        )
    }

    /// Ends the user's oldest live sessions beyond the newest `keep`, never `newest`
    /// (the session just opened), as a logout ends them; returns how many ended.
    pub fn revoke_oldest_beyond(
        conn: &mut DbConnection,
        revoked: &Arc<Revocations>,
        user_id: i64,
        keep: i64,
        newest: &str,
    ) -> Result<usize, ApiError> {
        let live_count: i64 = sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(live())
            .count()
            .get_result(conn)?;
        let excess = live_count - keep;
        if excess <= 0 {
            return Ok(0);
        }
        let oldest: Vec<String> = sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(live())
            .filter(sessions::id.ne(newest))
            .order((sessions::created_at, sessions::id))
            .limit(excess)
            .select(sessions::id)
            .load(conn)?;
        end_sessions(
            conn,
            revoked,
            |conn, at| {
                diesel::update(
                    sessions::table
                        .filter(sessions::id.eq_any(&oldest))
                        .filter(sessions::revoked_at.is_null()),
                )
                .set(sessions::revoked_at.eq(at))
                .execute(conn)
            },
            |conn, at| {
                sessions::table
                    .filter(sessions::id.eq_any(&oldest))
                    .filter(sessions::revoked_at.eq(at))
                    .select((sessions::id, sessions::user_id, sessions::expires_at))
                    .load(conn)
            },
        )
    }

    /// A page of the user's live sessions, oldest first, and how many there are.
    pub fn list_live(
        conn: &mut DbConnection,
        user_id: i64,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Session>, i64), ApiError> {
        let total = sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(live())
            .count()
            .get_result(conn)?;
        let page = sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(live())
            .order((sessions::created_at, sessions::id))
            .limit(limit)
            .offset(offset)
            .select(Session::as_select())
            .load(conn)?;
        Ok((page, total))
    }

    /// As GET /sessions shows it.
    pub fn view(self, current_sid: Option<&str>) -> SessionView {
        SessionView {
            current: current_sid == Some(self.id.as_str()),
            id: self.id,
            created_at: self.created_at.and_utc(),
            refreshed_at: self.refreshed_at.map(|t| t.and_utc()),
            user_agent: self.user_agent,
            ip: self.ip,
        }
    }

    /// Deletes sessions whose last token expired before `cutoff`. Revoked sessions are
    /// kept until then, so every instance can still tell their tokens are revoked.
    pub fn prune(conn: &mut DbConnection, cutoff: NaiveDateTime) -> Result<usize, ApiError> {
        Ok(
            diesel::delete(sessions::table.filter(sessions::expires_at.lt(cutoff)))
                .execute(conn)?,
        )
    }
}

/// Revoked tokens that have no session.
pub struct RevokedToken;

impl RevokedToken {
    /// Records `claims`' jti as revoked; false if it already was (the insert is the
    /// atomic "spend", so two racing refreshes cannot both succeed).
    pub fn revoke(
        conn: &mut DbConnection,
        revoked: &Arc<Revocations>,
        claims: &Claims,
    ) -> Result<bool, ApiError> {
        let expires_at = claims.expires_at().naive_utc();
        let inserted = conn.transaction(|conn| {
            let at = db::clock(conn)?;
            let entry = [Revocation {
                kind: Kind::Token,
                subject: claims.jti.clone(),
                user_id: claims.user_id,
                at,
                expires_at: revoked.drop_time(expires_at),
            }];
            diesel::insert_into(revoked_tokens::table)
                .values((
                    revoked_tokens::jti.eq(&claims.jti),
                    revoked_tokens::user_id.eq(claims.user_id),
                    revoked_tokens::revoked_at.eq(at),
                    revoked_tokens::expires_at.eq(expires_at),
                ))
                .execute(conn)?;
            revocation::log(conn, &entry)?;
            Ok(entry)
        });
        match inserted {
            Ok(entry) => {
                note_after_commit(revoked, entry.into());
                Ok(true)
            }
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes entries whose tokens have expired anyway.
    pub fn prune(conn: &mut DbConnection, cutoff: NaiveDateTime) -> Result<usize, ApiError> {
        Ok(
            diesel::delete(revoked_tokens::table.filter(revoked_tokens::expires_at.lt(cutoff)))
                .execute(conn)?,
        )
    }
}

/// Ends the sessions `update` marks with `at`, logs those `ended` finds, and enters them
/// into `revoked`: all or nothing. The write comes first so that on SQLite the
/// transaction holds the writer lock from its first statement. Returns how many ended.
/// The session `id` if this very revocation (stamped `at`) ended it.
fn ended_at(
    conn: &mut DbConnection,
    id: &str,
    at: NaiveDateTime,
) -> QueryResult<Vec<(String, i64, NaiveDateTime)>> {
    sessions::table
        .find(id)
        .filter(sessions::revoked_at.eq(at))
        .select((sessions::id, sessions::user_id, sessions::expires_at))
        .load(conn)
}

fn end_sessions<U, E>(
    conn: &mut DbConnection,
    revoked: &Arc<Revocations>,
    update: U,
    ended: E,
) -> Result<usize, ApiError>
where
    U: FnOnce(&mut DbConnection, NaiveDateTime) -> QueryResult<usize>,
    E: FnOnce(&mut DbConnection, NaiveDateTime) -> QueryResult<Vec<(String, i64, NaiveDateTime)>>,
{
    let (count, entries) = conn.transaction(|conn| {
        let at = db::clock(conn)?;
        let count = update(conn, at)?;
        if count == 0 {
            return Ok((0, Vec::new()));
        }
        let entries: Vec<Revocation> = ended(conn, at)?
            .into_iter()
            .map(|(id, user_id, expires_at)| Revocation {
                kind: Kind::Session,
                subject: id,
                user_id,
                at,
                expires_at: revoked.drop_time(expires_at),
            })
            .collect();
        revocation::log(conn, &entries)?;
        Ok::<_, diesel::result::Error>((count, entries))
    })?;
    note_after_commit(revoked, entries);
    Ok(count)
}

/// Enters `entries` into this instance's revoked set once the transaction that logged
/// them commits (at once outside one): a change that rolls back revokes nothing here
/// either.
fn note_after_commit(revoked: &Arc<Revocations>, entries: Vec<Revocation>) {
    let revoked = Arc::clone(revoked);
    db::after_commit(move || revoked.note(&entries));
}

/// Before a user is deleted: logs the user itself, then ends their sessions. Their
/// sessions cascade away with the user, so only this entry tells the other instances
/// to refuse the user's tokens, sid-less ones included.
pub fn revoke_user(
    conn: &mut DbConnection,
    revoked: &Arc<Revocations>,
    user_id: i64,
) -> Result<(), ApiError> {
    let at = db::clock(conn)?;
    let entry = [Revocation {
        kind: Kind::User,
        subject: user_id.to_string(),
        user_id,
        at,
        expires_at: revoked.user_drop_time(at),
    }];
    revocation::log(conn, &entry)?;
    note_after_commit(revoked, entry.into());
    Session::revoke_all_for_user(conn, revoked, user_id, None)?;
    Ok(())
}

/// A change that must end what was issued before it (a password change, an admin flag
/// change, an admin's revoke of every session), inside the caller's transaction: the
/// user's security version goes up, so that a login that read the user before it opens
/// no session; sid-less tokens issued until now are refused on every instance; and
/// every session but `except` ends. Returns how many sessions ended.
pub fn security_change(
    conn: &mut DbConnection,
    revoked: &Arc<Revocations>,
    user_id: i64,
    except: Option<&str>,
) -> Result<usize, ApiError> {
    let at = db::clock(conn)?;
    if !User::bump_security(conn, user_id, at)? {
        return Ok(0);
    }
    let entry = [Revocation {
        kind: Kind::NotBefore,
        subject: user_id.to_string(),
        user_id,
        at,
        expires_at: revoked.user_drop_time(at),
    }];
    revocation::log(conn, &entry)?;
    note_after_commit(revoked, entry.into());
    Session::revoke_all_for_user(conn, revoked, user_id, except)
}

/// Logs out: ends what `scope` names. A token without a session has its jti revoked.
pub fn logout(
    conn: &mut DbConnection,
    revoked: &Arc<Revocations>,
    claims: &Claims,
    scope: LogoutScope,
) -> Result<(), ApiError> {
    debug_assert_eq!(claims.token_type, TokenType::Access);
    let sid = claims.sid.as_deref();
    match (scope, sid) {
        (LogoutScope::Local, Some(sid)) => {
            Session::revoke(conn, revoked, sid)?;
        }
        (LogoutScope::Global, _) => {
            Session::revoke_all_for_user(conn, revoked, claims.user_id, None)?;
        }
        (LogoutScope::Others, _) => {
            Session::revoke_all_for_user(conn, revoked, claims.user_id, sid)?;
        }
        (LogoutScope::Local, None) => {}
    }
    if sid.is_none() && scope != LogoutScope::Others {
        RevokedToken::revoke(conn, revoked, claims)?;
    }
    Ok(())
}

/// Revokes what holding `claims`' token allows (RFC 7009): its session (the tokens'
/// owner's, live), or, for a token without a session, its jti. Returns whether
/// anything was live.
pub fn revoke_by_token(
    conn: &mut DbConnection,
    revoked: &Arc<Revocations>,
    claims: &Claims,
) -> Result<bool, ApiError> {
    match claims.sid.as_deref() {
        Some(sid) => Session::revoke_owned(conn, revoked, sid, claims.user_id),
        None => RevokedToken::revoke(conn, revoked, claims),
    }
}

/// Whether a refresh token with a session is the one its session would take now: not
/// spent by a rotation (reading it spends nothing and is no reuse).
pub fn is_unspent_refresh(conn: &mut DbConnection, claims: &Claims) -> Result<bool, ApiError> {
    let Some(sid) = claims.sid.as_deref() else {
        return Ok(true);
    };
    let current: Option<Option<String>> = sessions::table
        .find(sid)
        .filter(live())
        .select(sessions::refresh_jti)
        .first(conn)
        .optional()?;
    Ok(current
        .flatten()
        .is_some_and(|jti| bool::from(jti.as_bytes().ct_eq(claims.jti.as_bytes()))))
}

/// Deletes expired sessions, revoked-token entries and revocation log rows; returns
/// how many rows went.
pub fn prune_expired(conn: &mut DbConnection) -> Result<usize, ApiError> {
    let cutoff = now();
    Ok(Session::prune(conn, cutoff)?
        + RevokedToken::prune(conn, cutoff)?
        + revocation::prune_log(conn, cutoff)?)
}
