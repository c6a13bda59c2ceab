//! The revoked set in memory, so that the token check needs no database round trip.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use uuid::Uuid;

use super::log::{self, Kind, Revocation, SessionRow};
use crate::auth::tokens::Claims;
use crate::config::TokenSettings;
use crate::db::{self, Pool};
use crate::error::ApiError;
use crate::models::user::User;

/// The fail-closed bound never goes below this, so one slow poll is not an outage.
const MIN_STALE_AFTER: Duration = Duration::from_secs(3);
/// The fail-closed bound in poll intervals, when that is longer.
const STALE_AFTER_POLLS: u32 = 10;

#[derive(Debug, Clone, Copy)]
struct SessionEntry {
    user_id: i64,
    /// Unix seconds after which the entry is dropped.
    drop_after: i64,
    revoked: bool,
}

/// What the set knows of a user, for tokens without a session.
#[derive(Debug, Clone, Copy)]
struct UserEntry {
    /// Unix seconds of the account's creation: sid-less tokens issued before it are
    /// refused (`i64::MIN` until read from the database).
    created: i64,
    /// Unix seconds of its last security change: sid-less tokens issued at or before
    /// it are refused (`i64::MIN` for none).
    changed: i64,
    /// Unix seconds after which the entry is dropped (and read again when needed).
    drop_after: i64,
}

/// Users learned from the database at most, so that tokens naming many users cost
/// bounded memory; past it, answers are not kept. Changes from the log always are.
const MAX_LEARNED_USERS: usize = 100_000;
/// How long a user learned from the database is kept: the follower applies its later
/// changes meanwhile, and it is read again after.
const LEARNED_USER_SECS: i64 = 600;

#[derive(Debug, Default)]
struct State {
    sessions: HashMap<Uuid, SessionEntry>,
    /// Revoked jtis of sid-less tokens, with their drop time.
    tokens: HashMap<String, i64>,
    /// Deleted users, with their drop time.
    users: HashMap<i64, i64>,
    /// Existing users as sid-less tokens need them.
    known: HashMap<i64, UserEntry>,
}

/// The answer of the in-memory lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Not revoked.
    Valid,
    /// Revoked (session, jti or user).
    Revoked,
    /// The `sid` names another user's session.
    ForeignSession,
    /// The `sid` names a session this instance has not seen yet.
    UnknownSession,
    /// A token without a session names a user this instance has not seen yet.
    UnknownUser,
    /// The set has not been refreshed within the bound: it cannot be trusted.
    Stale,
}

/// The in-memory revoked set. Reads take a shared lock and allocate nothing.
#[derive(Debug)]
pub struct Revocations {
    state: RwLock<State>,
    epoch: Instant,
    /// Milliseconds from `epoch` to the start of the last successful sync, plus one;
    /// 0 until the first.
    synced: AtomicU64,
    stale_after: Duration,
    leeway: chrono::Duration,
    user_horizon: chrono::Duration,
}

impl Revocations {
    /// An empty set, stale until its first sync.
    pub fn new(jwt: &TokenSettings, poll_interval: Duration) -> Self {
        let leeway = chrono::Duration::seconds(jwt.leeway.as_secs() as i64);
        let longest = jwt.refresh_ttl.max(jwt.access_ttl);
        Revocations {
            state: RwLock::default(),
            epoch: Instant::now(),
            synced: AtomicU64::new(0),
            stale_after: stale_after(poll_interval),
            leeway,
            user_horizon: chrono::Duration::seconds(longest.as_secs() as i64) + leeway,
        }
    }

    /// How long the set stays trusted without a successful poll.
    pub fn stale_after(&self) -> Duration {
        self.stale_after
    }

    /// When an entry covering tokens that expire at `expires_at` may be dropped.
    pub fn drop_time(&self, expires_at: NaiveDateTime) -> NaiveDateTime {
        expires_at
            .checked_add_signed(self.leeway)
            .unwrap_or(NaiveDateTime::MAX)
    }

    /// When a deleted user's entry may be dropped: once every token this service could
    /// have minted for them has expired. (A token minted elsewhere with a longer
    /// lifetime than JWT_REFRESH_TOKEN_EXPIRES outlives it.)
    pub fn user_drop_time(&self, deleted_at: NaiveDateTime) -> NaiveDateTime {
        deleted_at
            .checked_add_signed(self.user_horizon)
            .unwrap_or(NaiveDateTime::MAX)
    }

    /// Whether the last successful sync is older than the bound.
    pub fn is_stale(&self) -> bool {
        self.is_stale_at(Instant::now())
    }

    fn is_stale_at(&self, now: Instant) -> bool {
        match self.synced.load(Ordering::Acquire) {
            0 => true,
            synced => {
                let now = now.saturating_duration_since(self.epoch).as_millis() as u64 + 1;
                now.saturating_sub(synced) > self.stale_after.as_millis() as u64
            }
        }
    }

    /// Time since the start of the last successful sync; `None` before the first.
    pub fn since_sync(&self) -> Option<Duration> {
        match self.synced.load(Ordering::Acquire) {
            0 => None,
            synced => {
                let synced = self.epoch + Duration::from_millis(synced - 1);
                Some(Instant::now().saturating_duration_since(synced))
            }
        }
    }

    /// Records a successful sync that started at `started`.
    pub(super) fn mark_synced(&self, started: Instant) {
        let ms = started.saturating_duration_since(self.epoch).as_millis() as u64 + 1;
        self.synced.fetch_max(ms, Ordering::AcqRel);
    }

    /// The in-memory verdict on a decoded token; no database access.
    pub fn lookup(&self, claims: &Claims) -> Lookup {
        // Fail closed (RFC 8725 3.11 lets the application refuse more; OWASP Session
        // Management: server-side invalidation must hold): a set that has not been
        // refreshed lately may miss a logout done on another instance, so nothing is
        // accepted on its word.
        if self.is_stale() {
            return Lookup::Stale;
        }
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        if state.users.contains_key(&claims.user_id) {
            return Lookup::Revoked;
        }
        let Some(sid) = claims.sid.as_deref() else {
            if state.tokens.contains_key(claims.jti.as_str()) {
                return Lookup::Revoked;
            }
            // A token minted elsewhere with the shared key: it obeys the user's state.
            // Issued in the same second as the change is refused too: iat has no finer
            // grain to tell before from after.
            let issued = claims.iat.unwrap_or(i64::MIN);
            return match state.known.get(&claims.user_id) {
                None => Lookup::UnknownUser,
                Some(user) if user.created == i64::MIN => Lookup::UnknownUser,
                Some(user) if issued < user.created || issued <= user.changed => Lookup::Revoked,
                Some(_) => Lookup::Valid,
            };
        };
        // The decoder refused malformed sids already.
        let Ok(sid) = Uuid::parse_str(sid) else {
            return Lookup::Revoked;
        };
        match state.sessions.get(&sid) {
            None => Lookup::UnknownSession,
            Some(entry) if entry.user_id != claims.user_id => Lookup::ForeignSession,
            Some(entry) if entry.revoked => Lookup::Revoked,
            Some(_) => Lookup::Valid,
        }
    }

    /// Refuses a revoked token. Only a `sid` this instance has not seen yet (a session
    /// opened on another instance since the last poll) costs a database read; what it
    /// finds is kept.
    pub async fn check(&self, pool: &Pool, claims: &Claims) -> Result<(), ApiError> {
        let lookup = match self.lookup(claims) {
            Lookup::UnknownSession => {
                let sid = claims.sid.clone().unwrap_or_default();
                match db::run(pool, move |conn| log::session_row(conn, &sid)).await? {
                    Some(row) => {
                        self.learn_sessions(std::slice::from_ref(&row));
                        self.lookup(claims)
                    }
                    None => Lookup::Revoked,
                }
            }
            Lookup::UnknownUser => {
                let id = claims.user_id;
                match db::run(pool, move |conn| User::token_state(conn, id)).await? {
                    Some((created_at, changed_at)) => {
                        self.learn_user(id, created_at, changed_at);
                        self.lookup(claims)
                    }
                    // A user who never existed, or was deleted and pruned.
                    None => Lookup::Revoked,
                }
            }
            other => other,
        };
        match lookup {
            Lookup::Valid => Ok(()),
            Lookup::Revoked | Lookup::UnknownSession | Lookup::UnknownUser => {
                Err(ApiError::TokenRevoked)
            }
            Lookup::ForeignSession => Err(ApiError::InvalidToken(
                "The token's session belongs to another user.",
            )),
            Lookup::Stale => Err(ApiError::ServiceUnavailable),
        }
    }

    /// Enters revocations (logged ones, or this instance's own as they happen).
    pub fn note(&self, revoked: &[Revocation]) {
        if revoked.is_empty() {
            return;
        }
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        for r in revoked {
            let drop_after = r.expires_at.and_utc().timestamp();
            match r.kind {
                Kind::Session => {
                    if let Ok(sid) = Uuid::parse_str(&r.subject) {
                        state.merge_session(sid, r.user_id, drop_after, true);
                    }
                }
                Kind::Token => {
                    let entry = state.tokens.entry(r.subject.clone()).or_insert(drop_after);
                    *entry = (*entry).max(drop_after);
                }
                Kind::User => {
                    let entry = state.users.entry(r.user_id).or_insert(drop_after);
                    *entry = (*entry).max(drop_after);
                }
                Kind::NotBefore => {
                    let changed = r.at.and_utc().timestamp();
                    state.merge_user(r.user_id, i64::MIN, changed, drop_after);
                }
            }
        }
    }

    /// Enters sessions as read from the database.
    pub fn learn_sessions(&self, rows: &[SessionRow]) {
        if rows.is_empty() {
            return;
        }
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        for row in rows {
            if let Ok(sid) = Uuid::parse_str(&row.id) {
                let drop_after = self.drop_time(row.expires_at).and_utc().timestamp();
                state.merge_session(sid, row.user_id, drop_after, row.revoked_at.is_some());
            }
        }
    }

    /// Enters a user read from the database, created at `created_at` and last changed
    /// at `changed_at`.
    fn learn_user(
        &self,
        user_id: i64,
        created_at: NaiveDateTime,
        changed_at: Option<NaiveDateTime>,
    ) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if state.known.len() >= MAX_LEARNED_USERS && !state.known.contains_key(&user_id) {
            return;
        }
        let drop_after = chrono::Utc::now().timestamp() + LEARNED_USER_SECS;
        let changed = changed_at.map_or(i64::MIN, |t| t.and_utc().timestamp());
        state.merge_user(
            user_id,
            created_at.and_utc().timestamp(),
            changed,
            drop_after,
        );
    }

    /// Drops entries whose tokens have all expired; returns how many went.
    pub fn prune(&self, now: NaiveDateTime) -> usize {
        let now = now.and_utc().timestamp();
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let before = state.len();
        state.sessions.retain(|_, e| e.drop_after >= now);
        state.tokens.retain(|_, drop_after| *drop_after >= now);
        state.users.retain(|_, drop_after| *drop_after >= now);
        state.known.retain(|_, user| user.drop_after >= now);
        before - state.len()
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl State {
    /// Idempotent and order-free: revoked is sticky and the later expiry wins, so a
    /// row read twice, or a session read after its revocation, changes nothing.
    fn merge_session(&mut self, sid: Uuid, user_id: i64, drop_after: i64, revoked: bool) {
        let entry = self.sessions.entry(sid).or_insert(SessionEntry {
            user_id,
            drop_after,
            revoked,
        });
        entry.revoked |= revoked;
        entry.drop_after = entry.drop_after.max(drop_after);
    }

    /// Order-free like sessions: the later not-before and the later drop time win.
    fn merge_user(&mut self, user_id: i64, created: i64, changed: i64, drop_after: i64) {
        let entry = self.known.entry(user_id).or_insert(UserEntry {
            created,
            changed,
            drop_after,
        });
        entry.created = entry.created.max(created);
        entry.changed = entry.changed.max(changed);
        entry.drop_after = entry.drop_after.max(drop_after);
    }

    fn len(&self) -> usize {
        self.sessions.len() + self.tokens.len() + self.users.len() + self.known.len()
    }
}

fn stale_after(poll_interval: Duration) -> Duration {
    (poll_interval * STALE_AFTER_POLLS).max(MIN_STALE_AFTER)
}

#[cfg(test)]
mod tests {
    use super::log::{Kind, Revocation, SessionRow};
    use super::*;
    use crate::auth::tokens::{Freshness, TokenType};
    use crate::config::Secret;
    use jsonwebtoken::Algorithm;

    fn jwt(leeway: u64) -> TokenSettings {
        TokenSettings {
            secret: Secret::new("k"),
            algorithm: Algorithm::HS256,
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(3600),
            leeway: Duration::from_secs(leeway),
            issuer: None,
            audience: None,
            refresh_reuse_grace: Duration::ZERO,
            max_sessions_per_user: 100,
            generated_key_file: None,
            keys: None,
            jwks_max_age: Duration::from_secs(300),
            verify_cache_size: 0,
        }
    }

    /// A set with 5 s of leeway, just synced.
    fn set() -> Revocations {
        let set = Revocations::new(&jwt(5), Duration::from_millis(250));
        set.mark_synced(Instant::now());
        set
    }

    fn claims(user_id: i64, sid: Option<&str>, jti: &str) -> Claims {
        Claims {
            sub: user_id.to_string(),
            token_type: TokenType::Access,
            fresh: Freshness::Flag(false),
            jti: jti.into(),
            iat: None,
            nbf: None,
            exp: 0,
            is_admin: false,
            sid: sid.map(str::to_owned),
            iss: None,
            aud: None,
            csrf: None,
            user_id,
        }
    }

    fn at(secs: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(secs, 0)
            .expect("in range")
            .naive_utc()
    }

    const SID: &str = "6f1c2d0e-7a4b-4c59-9d7e-2b1f0a3c4d5e";

    #[test]
    fn a_revoked_session_stays_revoked_whatever_order_rows_arrive_in() {
        let set = set();
        let token = claims(7, Some(SID), "j");
        assert_eq!(set.lookup(&token), Lookup::UnknownSession);
        let live = SessionRow {
            id: SID.into(),
            user_id: 7,
            expires_at: at(2_000),
            revoked_at: None,
        };
        set.learn_sessions(std::slice::from_ref(&live));
        assert_eq!(set.lookup(&token), Lookup::Valid);
        assert_eq!(
            set.lookup(&claims(8, Some(SID), "j")),
            Lookup::ForeignSession
        );
        set.note(&[Revocation {
            at: at(0),
            kind: Kind::Session,
            subject: SID.into(),
            user_id: 7,
            expires_at: at(2_005),
        }]);
        // The session read again as live (an older read, or the overlap window) does
        // not bring it back.
        set.learn_sessions(&[live]);
        assert_eq!(set.lookup(&token), Lookup::Revoked);
    }

    #[test]
    fn pruning_drops_only_entries_past_their_drop_time() {
        let set = set();
        set.note(&[
            Revocation {
                at: at(0),
                kind: Kind::Token,
                subject: "old".into(),
                user_id: 1,
                expires_at: at(1_000),
            },
            Revocation {
                at: at(0),
                kind: Kind::Token,
                subject: "young".into(),
                user_id: 1,
                expires_at: at(3_000),
            },
            Revocation {
                at: at(0),
                kind: Kind::User,
                subject: "2".into(),
                user_id: 2,
                expires_at: at(1_000),
            },
        ]);
        set.learn_sessions(&[SessionRow {
            id: SID.into(),
            user_id: 7,
            expires_at: at(1_996),
            revoked_at: Some(at(10)),
        }]);
        assert_eq!(set.len(), 4);
        // The session expires at 1996, plus 5 s of leeway: still held at 2000.
        assert_eq!(set.prune(at(2_000)), 2);
        assert_eq!(set.lookup(&claims(7, Some(SID), "j")), Lookup::Revoked);
        assert_eq!(set.lookup(&claims(1, None, "young")), Lookup::Revoked);
        // Sid-less tokens of users the set has not read yet: the database decides.
        assert_eq!(set.lookup(&claims(1, None, "old")), Lookup::UnknownUser);
        assert_eq!(set.lookup(&claims(2, None, "x")), Lookup::UnknownUser);
        assert_eq!(set.prune(at(2_002)), 1);
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn a_deleted_user_s_tokens_are_revoked_with_or_without_a_session() {
        let set = set();
        set.note(&[Revocation {
            at: at(0),
            kind: Kind::User,
            subject: "9".into(),
            user_id: 9,
            expires_at: at(i64::from(u32::MAX)),
        }]);
        assert_eq!(set.lookup(&claims(9, None, "j")), Lookup::Revoked);
        assert_eq!(set.lookup(&claims(9, Some(SID), "j")), Lookup::Revoked);
        assert_eq!(set.lookup(&claims(10, None, "j")), Lookup::UnknownUser);
    }

    #[test]
    fn sidless_tokens_issued_before_a_security_change_or_the_account_are_refused() {
        let set = set();
        let issued = |iat: i64| Claims {
            iat: Some(iat),
            ..claims(4, None, "j")
        };
        set.learn_user(4, at(1_000), None);
        assert_eq!(
            set.lookup(&issued(999)),
            Lookup::Revoked,
            "before the account"
        );
        assert_eq!(set.lookup(&issued(1_000)), Lookup::Valid);
        // A change logged by any instance, in either order with the read.
        set.note(&[Revocation {
            at: at(2_000),
            kind: Kind::NotBefore,
            subject: "4".into(),
            user_id: 4,
            expires_at: at(9_000),
        }]);
        assert_eq!(set.lookup(&issued(1_999)), Lookup::Revoked);
        assert_eq!(set.lookup(&issued(2_000)), Lookup::Revoked, "same second");
        assert_eq!(set.lookup(&issued(2_001)), Lookup::Valid);
        set.learn_user(4, at(1_000), Some(at(1_500)));
        assert_eq!(
            set.lookup(&issued(1_999)),
            Lookup::Revoked,
            "the later change wins"
        );
        // Known only from the log: when the account was created is still to be read.
        set.note(&[Revocation {
            at: at(2_000),
            kind: Kind::NotBefore,
            subject: "5".into(),
            user_id: 5,
            expires_at: at(9_000),
        }]);
        let other = Claims {
            iat: Some(2_001),
            ..claims(5, None, "j")
        };
        assert_eq!(set.lookup(&other), Lookup::UnknownUser);
    }

    #[test]
    fn without_a_recent_sync_every_token_is_refused() {
        let set = set();
        let token = claims(1, Some(SID), "j");
        let now = Instant::now();
        assert!(!set.is_stale_at(now));
        assert!(!set.is_stale_at(now + set.stale_after() - Duration::from_millis(10)));
        assert!(set.is_stale_at(now + set.stale_after() + Duration::from_millis(10)));
        assert_eq!(set.stale_after(), MIN_STALE_AFTER);
        // A set that never synced is stale too.
        let fresh = Revocations::new(&jwt(0), Duration::from_millis(250));
        assert_eq!(fresh.lookup(&token), Lookup::Stale);
        fresh.mark_synced(Instant::now());
        assert_eq!(fresh.lookup(&token), Lookup::UnknownSession);
        // A long poll interval stretches the bound.
        assert_eq!(stale_after(Duration::from_secs(1)), Duration::from_secs(10));
    }
}
