//! The audit log: one row per security event (who acted, on which account, from where,
//! how it went), written in the transaction of the change it records, so that there is
//! no change without its event and no event without its change (OWASP Logging Cheat
//! Sheet, "Which events to log"). Never a password, a token or a hash.
//!
//! Failed and limited logins change nothing, and an attacker decides how many there are:
//! they go through [`AuditLog`], a bounded queue written in batches by one task, so that
//! a flood of them costs one insert per batch, not one per attempt.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::Notify;
use utoipa::ToSchema;

use crate::auth::sessions::ClientInfo;
use crate::db::{self, DbConnection, Pool};
use crate::error::ApiError;
use crate::metrics::metrics;
use crate::schema::audit_events;

/// Failed or limited logins waiting to be written; beyond this they are counted, and the
/// count is written as one event.
const MAX_PENDING: usize = 10_000;

/// Rows per INSERT: ten columns each stays far below SQLite's variable limit.
const ROWS_PER_INSERT: usize = 500;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum Action {
    /// An account was created.
    Register,
    /// A login (a new session).
    Login,
    /// A fresh login (re-confirming the password).
    FreshLogin,
    /// A refresh token was spent.
    Refresh,
    /// A spent refresh token came back: its session was ended.
    RefreshReuse,
    /// A logout; `details.scope` says what it ended.
    Logout,
    /// One session was ended by its owner (or by holding its token).
    SessionRevoked,
    /// A password was changed.
    PasswordChanged,
    /// An account was deleted.
    UserDeleted,
    /// A user was made an admin.
    Promoted,
    /// A user's admin flag was withdrawn.
    Demoted,
    /// Every session of a user was ended by an admin or an operator.
    AdminRevoke,
    /// The start-up admin (`ADMIN_USERNAME`) was created or promoted.
    BootstrapAdmin,
    /// A signing key was generated.
    KeyGenerated,
    /// The next signing key started to sign.
    KeyRotated,
    /// A retired signing key was deleted.
    KeyRetired,
}

impl Action {
    /// Every action, in the documented order.
    pub const ALL: [Action; 16] = [
        Action::Register,
        Action::Login,
        Action::FreshLogin,
        Action::Refresh,
        Action::RefreshReuse,
        Action::Logout,
        Action::SessionRevoked,
        Action::PasswordChanged,
        Action::UserDeleted,
        Action::Promoted,
        Action::Demoted,
        Action::AdminRevoke,
        Action::BootstrapAdmin,
        Action::KeyGenerated,
        Action::KeyRotated,
        Action::KeyRetired,
    ];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Register => "register",
            Action::Login => "login",
            Action::FreshLogin => "fresh_login",
            Action::Refresh => "refresh",
            Action::RefreshReuse => "refresh_reuse",
            Action::Logout => "logout",
            Action::SessionRevoked => "session_revoked",
            Action::PasswordChanged => "password_changed",
            Action::UserDeleted => "user_deleted",
            Action::Promoted => "promoted",
            Action::Demoted => "demoted",
            Action::AdminRevoke => "admin_revoke",
            Action::BootstrapAdmin => "bootstrap_admin",
            Action::KeyGenerated => "key_generated",
            Action::KeyRotated => "key_rotated",
            Action::KeyRetired => "key_retired",
        }
    }
}

impl FromStr for Action {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL.into_iter().find(|a| a.as_str() == s).ok_or(())
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum Outcome {
    /// Done.
    Ok,
    /// Refused: wrong credentials, a reused token.
    Failed,
    /// Refused by a rate limit or the hashing pool's shedding.
    Limited,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 3] = [Outcome::Ok, Outcome::Failed, Outcome::Limited];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Limited => "limited",
        }
    }
}

impl FromStr for Outcome {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s).ok_or(())
    }
}

/// Who acts and from where: a signed-in user over HTTP, an anonymous client (a login,
/// a registration: the actor is the account), the command line, or the start-up.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    actor_id: Option<i64>,
    client: ClientInfo,
    via: Option<&'static str>,
}

impl Origin {
    /// A request from `client`, by the signed-in user `actor_id` when there is one.
    pub fn http(actor_id: Option<i64>, client: ClientInfo) -> Self {
        Origin {
            actor_id,
            client,
            via: None,
        }
    }

    /// A `stores-api` command (`details.via: "cli"`).
    pub fn cli() -> Self {
        Origin {
            via: Some("cli"),
            ..Origin::default()
        }
    }

    /// The service's own start-up (`details.via: "startup"`).
    pub fn startup() -> Self {
        Origin {
            via: Some("startup"),
            ..Origin::default()
        }
    }

    /// The client's address and User-Agent.
    pub fn client(&self) -> &ClientInfo {
        &self.client
    }

    /// Whether an account acting on itself is the actor (HTTP), or nobody (the CLI and
    /// the start-up act on accounts without being one).
    fn is_http(&self) -> bool {
        self.via.is_none()
    }
}

/// An event to record.
#[derive(Debug, Clone)]
pub struct Event {
    action: Action,
    outcome: Outcome,
    actor_id: Option<i64>,
    target_id: Option<i64>,
    session_id: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    details: Map<String, Value>,
}

impl Event {
    /// `action` with `outcome`, acted by `origin`.
    pub fn new(action: Action, outcome: Outcome, origin: &Origin) -> Self {
        let mut details = Map::new();
        if let Some(via) = origin.via {
            details.insert("via".into(), via.into());
        }
        Event {
            action,
            outcome,
            actor_id: origin.actor_id,
            target_id: None,
            session_id: None,
            ip: origin.client.ip.clone(),
            user_agent: origin.client.user_agent.clone(),
            details,
        }
    }

    /// The account acted on; over HTTP without a signed-in user (a login, a
    /// registration) that account is also the actor.
    pub fn target(mut self, user_id: i64, origin: &Origin) -> Self {
        self.target_id = Some(user_id);
        if origin.is_http() && self.actor_id.is_none() {
            self.actor_id = Some(user_id);
        }
        self
    }

    /// The session concerned.
    pub fn session(mut self, session_id: Option<&str>) -> Self {
        self.session_id = session_id.map(str::to_owned);
        self
    }

    /// One entry of `details`.
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }
}

#[derive(Insertable)]
#[diesel(table_name = audit_events)]
struct NewRow<'a> {
    at: NaiveDateTime,
    action: &'static str,
    outcome: &'static str,
    actor_id: Option<i64>,
    target_id: Option<i64>,
    session_id: Option<&'a str>,
    ip: Option<&'a str>,
    user_agent: Option<&'a str>,
    details: String,
}

impl<'a> NewRow<'a> {
    fn of(event: &'a Event, at: NaiveDateTime) -> Self {
        NewRow {
            at,
            action: event.action.as_str(),
            outcome: event.outcome.as_str(),
            actor_id: event.actor_id,
            target_id: event.target_id,
            session_id: event.session_id.as_deref(),
            ip: event.ip.as_deref(),
            user_agent: event.user_agent.as_deref(),
            details: Value::Object(event.details.clone()).to_string(),
        }
    }
}

/// Writes `event`, in the caller's transaction.
pub fn record(conn: &mut DbConnection, event: Event) -> QueryResult<()> {
    record_all(conn, std::slice::from_ref(&event))
}

/// Writes `events`, in the caller's transaction, a few hundred rows an INSERT.
pub fn record_all(conn: &mut DbConnection, events: &[Event]) -> QueryResult<()> {
    let at = db::clock(conn)?;
    for chunk in events.chunks(ROWS_PER_INSERT) {
        let rows: Vec<NewRow<'_>> = chunk.iter().map(|e| NewRow::of(e, at)).collect();
        match conn {
            DbConnection::Pg(pg) => diesel::insert_into(audit_events::table)
                .values(&rows)
                .execute(pg)?,
            DbConnection::Sqlite(lite) => diesel::insert_into(audit_events::table)
                .values(rows)
                .execute(lite)?,
        };
    }
    Ok(())
}

/// An event as `GET /audit` shows it.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct AuditEvent {
    /// Increasing with each event written.
    pub id: i64,
    /// When it was written (UTC).
    pub at: DateTime<Utc>,
    /// What happened: `register`, `login`, `fresh_login`, `refresh`, `refresh_reuse`,
    /// `logout`, `session_revoked`, `password_changed`, `user_deleted`, `promoted`,
    /// `demoted`, `admin_revoke`, `bootstrap_admin`, `key_generated`, `key_rotated`,
    /// `key_retired`.
    pub action: String,
    /// `ok`, `failed` or `limited`.
    pub outcome: String,
    /// The user who acted, or null (an unknown username, the command line, the start-up).
    #[schema(required = true)]
    pub actor_id: Option<i64>,
    /// The account acted on, or null.
    #[schema(required = true)]
    pub target_id: Option<i64>,
    /// The session concerned, or null.
    #[schema(required = true, format = "uuid")]
    pub session_id: Option<String>,
    /// The client's address, or null.
    #[schema(required = true)]
    pub ip: Option<String>,
    /// The client's User-Agent, or null.
    #[schema(required = true)]
    pub user_agent: Option<String>,
    /// More about it: `via` (`cli`, `startup`), `scope` of a logout, `username` of a
    /// failed login for an unknown name, `kid` of a key, ...
    #[schema(value_type = Object)]
    pub details: Value,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = audit_events)]
struct StoredRow {
    id: i64,
    at: NaiveDateTime,
    action: String,
    outcome: String,
    actor_id: Option<i64>,
    target_id: Option<i64>,
    session_id: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    details: String,
}

impl From<StoredRow> for AuditEvent {
    fn from(row: StoredRow) -> Self {
        AuditEvent {
            id: row.id,
            at: row.at.and_utc(),
            action: row.action,
            outcome: row.outcome,
            actor_id: row.actor_id,
            target_id: row.target_id,
            session_id: row.session_id,
            ip: row.ip,
            user_agent: row.user_agent,
            details: serde_json::from_str(&row.details)
                .unwrap_or_else(|_| Value::Object(Map::new())),
        }
    }
}

/// Which events a query wants; every filter given must hold.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Events whose actor or target is this user.
    pub user_id: Option<i64>,
    /// This action.
    pub action: Option<Action>,
    /// This outcome.
    pub outcome: Option<Outcome>,
    /// From this address.
    pub ip: Option<String>,
    /// Written at or after.
    pub since: Option<NaiveDateTime>,
    /// Written before.
    pub until: Option<NaiveDateTime>,
    /// Older than this event (the previous page's last id).
    pub before_id: Option<i64>,
}

/// Up to `limit` events matching `filter`, newest first, and whether more follow.
pub fn query(
    conn: &mut DbConnection,
    filter: &Filter,
    limit: usize,
) -> Result<(Vec<AuditEvent>, bool), ApiError> {
    let mut q = audit_events::table
        .select(StoredRow::as_select())
        .order(audit_events::id.desc())
        .limit(limit as i64 + 1)
        .into_boxed::<<DbConnection as diesel::Connection>::Backend>();
    if let Some(user) = filter.user_id {
        q = q.filter(
            audit_events::actor_id
                .eq(user)
                .or(audit_events::target_id.eq(user)),
        );
    }
    if let Some(action) = filter.action {
        q = q.filter(audit_events::action.eq(action.as_str()));
    }
    if let Some(outcome) = filter.outcome {
        q = q.filter(audit_events::outcome.eq(outcome.as_str()));
    }
    if let Some(ip) = &filter.ip {
        q = q.filter(audit_events::ip.eq(ip.clone()));
    }
    if let Some(since) = filter.since {
        q = q.filter(audit_events::at.ge(since));
    }
    if let Some(until) = filter.until {
        q = q.filter(audit_events::at.lt(until));
    }
    if let Some(before) = filter.before_id {
        q = q.filter(audit_events::id.lt(before));
    }
    let mut rows: Vec<AuditEvent> = q
        .load::<StoredRow>(conn)?
        .into_iter()
        .map(AuditEvent::from)
        .collect();
    let more = rows.len() > limit;
    rows.truncate(limit);
    Ok((rows, more))
}

/// Up to `limit` events written in `[since, until)` with an id above `after_id`, oldest
/// first: the pages of an export.
pub fn export_page(
    conn: &mut DbConnection,
    since: NaiveDateTime,
    until: Option<NaiveDateTime>,
    after_id: i64,
    limit: usize,
) -> Result<Vec<AuditEvent>, ApiError> {
    let mut q = audit_events::table
        .select(StoredRow::as_select())
        .filter(audit_events::id.gt(after_id))
        .filter(audit_events::at.ge(since))
        .order(audit_events::id.asc())
        .limit(limit as i64)
        .into_boxed::<<DbConnection as diesel::Connection>::Backend>();
    if let Some(until) = until {
        q = q.filter(audit_events::at.lt(until));
    }
    Ok(q.load::<StoredRow>(conn)?
        .into_iter()
        .map(AuditEvent::from)
        .collect())
}

/// Deletes the events written before `cutoff`; returns how many.
pub fn prune(conn: &mut DbConnection, cutoff: NaiveDateTime) -> Result<usize, ApiError> {
    Ok(diesel::delete(audit_events::table.filter(audit_events::at.lt(cutoff))).execute(conn)?)
}

/// The events that change nothing (failed and limited logins), queued and written in
/// batches by [`AuditLog::write_pending`]: while one batch is written the next one
/// gathers, so a flood costs one insert per batch.
#[derive(Default)]
pub struct AuditLog {
    pending: Mutex<Vec<Event>>,
    /// Events refused because the queue was full, or lost with a batch that could not
    /// be written: written as one summary event.
    overflow: AtomicU64,
    ready: Notify,
    /// Set when the server stops: the writer writes what is queued, then returns.
    closing: AtomicBool,
}

impl AuditLog {
    /// Queues `event`; a full queue counts it instead.
    pub fn queue(&self, event: Event) {
        let Ok(mut pending) = self.pending.lock() else {
            self.overflow.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if pending.len() < MAX_PENDING {
            pending.push(event);
        } else {
            self.overflow.fetch_add(1, Ordering::Relaxed);
            if let Some(m) = metrics() {
                m.audit_unrecorded.inc();
            }
        }
        drop(pending);
        self.ready.notify_one();
    }

    /// How many events wait to be written.
    pub fn pending(&self) -> usize {
        self.pending.lock().map_or(0, |pending| pending.len())
    }

    /// Writes what is queued whenever something is, until [`AuditLog::close`]; then
    /// writes what is left and returns.
    pub async fn write_pending(&self, pool: &Pool) {
        loop {
            self.ready.notified().await;
            if let Err(e) = self.flush(pool).await {
                log::warn!("writing queued audit events failed: {e}");
            }
            if self.closing.load(Ordering::Acquire) {
                return;
            }
        }
    }

    /// Asks [`AuditLog::write_pending`] to write what is queued and return: a batch
    /// being written when the server stops is finished, not dropped.
    pub fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.ready.notify_one();
    }

    /// Writes every queued event now, in one transaction; returns how many.
    pub async fn flush(&self, pool: &Pool) -> Result<usize, ApiError> {
        let mut batch = match self.pending.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending),
            Err(_) => return Err(ApiError::Internal("the audit queue is poisoned".into())),
        };
        let queued = batch.len() as u64;
        let overflow = self.overflow.swap(0, Ordering::Relaxed);
        if overflow > 0 {
            batch.push(
                Event::new(Action::Login, Outcome::Failed, &Origin::default())
                    .detail("unrecorded", overflow),
            );
        }
        if batch.is_empty() {
            return Ok(0);
        }
        let count = batch.len();
        match db::transaction(pool, move |conn| Ok(record_all(conn, &batch)?)).await {
            Ok(()) => Ok(count),
            Err(e) => {
                // Not retried (a row the database refuses would block every later one),
                // but counted: the next batch says how many went unrecorded.
                self.overflow
                    .fetch_add(queued + overflow, Ordering::Relaxed);
                if let Some(m) = metrics() {
                    m.audit_unrecorded.inc_by(queued);
                }
                Err(e)
            }
        }
    }
}
