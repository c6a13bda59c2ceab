//! The account flows: register, log in, fresh login, refresh, log out, change a
//! password, promote or demote, revoke a user's sessions, delete a user, and the
//! start-up admin bootstrap. Each is one function, used by the HTTP handlers and by the
//! `stores-api admin` commands alike; the caller only extracts input and shapes output.

use std::sync::Arc;

use crate::auth::audit::{self, Action, AuditLog, Event, Origin, Outcome};
use crate::auth::password::PasswordHasher;
use crate::auth::rate_limit::{RateLimiter, Target};
use crate::auth::revocation::Revocations;
use crate::auth::sessions::{self, ClientInfo, LogoutScope, RevokedToken, Session, Spent};
use crate::auth::tokens::{Claims, Delivery, Minted, Subject, TokenService, TokenType};
use crate::db::{self, Pool};
use crate::error::{ApiError, ValidationErrors};
use crate::input::{NewPassword, Username};
use crate::models::user::User;
use crate::models::{Entity, ModelError};

/// The longest username any version of the service has stored.
const MAX_STORED_USERNAME_CHARS: usize = 80;

/// Attempts of a login that meets security changes while it checks the password.
const MAX_LOGIN_ATTEMPTS: usize = 3;

/// What the account flows work with, shared by every request.
#[derive(Clone)]
pub struct Accounts {
    /// The database.
    pub pool: Pool,
    /// bcrypt on its own threads.
    pub passwords: PasswordHasher,
    /// Minting tokens.
    pub tokens: Arc<TokenService>,
    /// The revoked set, told of every revocation made here.
    pub revocations: Arc<Revocations>,
    /// The failure counts and hashing shares per username and user.
    pub limiter: Arc<RateLimiter>,
    /// Live sessions one user may hold (`MAX_SESSIONS_PER_USER`).
    pub max_sessions: u32,
    /// The queue of audit events that change nothing (failed and limited logins).
    pub audit: Arc<AuditLog>,
}

/// The tokens a login or a refresh hands out.
pub struct Issued {
    /// The access token.
    pub access: Minted,
    /// The refresh token; none from a fresh login.
    pub refresh: Option<Minted>,
}

/// A username and password as a client sent them (any strings).
pub struct Credentials {
    /// The username, surrounding whitespace removed.
    pub username: String,
    /// The password.
    pub password: String,
}

/// Why the start-up admin was refused; each is one line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The named account exists and `ADMIN_PASSWORD` is not its password.
    #[error(
        "ADMIN_USERNAME names an existing account ('{0}') whose password is not \
         ADMIN_PASSWORD: set ADMIN_PASSWORD to that account's password, choose another \
         ADMIN_USERNAME, or unset both and run `stores-api admin promote {0}`"
    )]
    NotTheAccountsPassword(String),
    /// The database or the hashing pool failed.
    #[error("ADMIN_USERNAME/ADMIN_PASSWORD: {0}")]
    Failed(#[from] ApiError),
}

/// What a change of the admin flag did.
pub struct AdminChange {
    /// The user as it now is.
    pub user: User,
    /// Whether the flag changed (and so the user's sessions were ended).
    pub changed: bool,
}

impl Accounts {
    /// Creates an account; a username whose key is taken is a conflict.
    pub async fn register(
        &self,
        username: Username,
        password: NewPassword,
        is_admin: bool,
        origin: &Origin,
    ) -> Result<User, ApiError> {
        self.create_account(username, password, is_admin, Action::Register, origin)
            .await
    }

    async fn create_account(
        &self,
        username: Username,
        password: NewPassword,
        is_admin: bool,
        action: Action,
        origin: &Origin,
    ) -> Result<User, ApiError> {
        let hash = self.passwords.hash(password.into_inner()).await?;
        let origin = origin.clone();
        db::transaction(&self.pool, move |conn| {
            let user = User::create(conn, &username, &hash, is_admin)?;
            audit::record(
                conn,
                Event::new(action, Outcome::Ok, &origin)
                    .target(user.id, &origin)
                    .detail("admin", is_admin),
            )?;
            Ok(user)
        })
        .await
    }

    /// Checks a username and password; the same 401 and the same bcrypt work whether
    /// the user is unknown, the username invalid, or the password wrong (OWASP
    /// Authentication Cheat Sheet, "Authentication and error messages"). A username
    /// with too many recent failures gets 429 whatever the password, and so does one
    /// with its share of the hashing pool in flight.
    async fn authenticate(
        &self,
        credentials: Credentials,
        action: Action,
        origin: &Origin,
    ) -> Result<User, ApiError> {
        let name = credentials.username.trim().to_owned();
        let (result, known) = self.check_credentials(credentials).await;
        let outcome = match &result {
            Ok(_) => return result,
            Err(ApiError::InvalidCredentials) => Outcome::Failed,
            Err(ApiError::TooManyRequests(_) | ApiError::Overloaded(_)) => Outcome::Limited,
            Err(_) => return result,
        };
        let event = Event::new(action, outcome, origin);
        self.audit.queue(match known {
            Some(id) => event.target(id, origin),
            // The name an unknown account was tried with, if it could be one: an
            // operator can see what is being guessed. Nothing else is stored for it.
            None if (3..=MAX_STORED_USERNAME_CHARS).contains(&name.chars().count())
                && !name.chars().any(char::is_control) =>
            {
                event.detail("username", name)
            }
            None => event,
        });
        result
    }

    /// [`Accounts::authenticate`] without the audit: the outcome, and the id of the
    /// account the name belongs to when that was read.
    async fn check_credentials(
        &self,
        credentials: Credentials,
    ) -> (Result<User, ApiError>, Option<i64>) {
        let mut known = None;
        let result = self.check_credentials_into(credentials, &mut known).await;
        (result, known)
    }

    async fn check_credentials_into(
        &self,
        credentials: Credentials,
        known: &mut Option<i64>,
    ) -> Result<User, ApiError> {
        // A name that could never have been registered (a NUL byte, 64 KB, ...) cannot
        // name an account: it gets no query (a string PostgreSQL would refuse, or a
        // 64 KB index probe) and leaves no trace in the limits, yet still costs the
        // dummy bcrypt check below. A name that is only refused today (an account
        // from before zero-width characters were) is still looked up.
        let username = Some(credentials.username.trim().to_owned()).filter(|name| {
            Username::parse(&serde_json::Value::String(name.clone())).is_ok()
                || ((3..=MAX_STORED_USERNAME_CHARS).contains(&name.chars().count())
                    && !name.chars().any(char::is_control))
        });
        let who = username.as_deref().map(Target::username_key);
        let _turn = who.map(|who| self.limiter.hashing_turn(who)).transpose()?;
        if let Some(who) = who {
            self.limiter.check_failures(who).await?;
        }
        // Shed before the user lookup: a login that cannot be hashed costs no query.
        let slot = self.passwords.reserve().await?;
        let user = match username {
            Some(name) => {
                db::run(&self.pool, move |conn| User::find_by_username(conn, &name)).await?
            }
            None => None,
        };
        *known = user.as_ref().map(|u| u.id);
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let verified = self
            .passwords
            .verify_and_rehash_in(slot, credentials.password, hash)
            .await?;
        match user {
            Some(user) if verified.matched => {
                if let Some(who) = who {
                    self.limiter.record_success(who).await?;
                }
                if let Some(rehashed) = verified.rehashed {
                    self.store_rehash(&user, rehashed).await;
                }
                Ok(user)
            }
            _ => {
                if let Some(who) = who {
                    self.limiter.record_failure(who).await?;
                }
                Err(ApiError::InvalidCredentials)
            }
        }
    }

    /// Stores `rehashed` in place of the hash `user` logged in with. A failure is
    /// logged, never the login's: the old hash still verifies, and the next login
    /// tries again.
    async fn store_rehash(&self, user: &User, rehashed: String) {
        let (id, old) = (user.id, user.password_hash.clone());
        let stored = db::run(&self.pool, move |conn| {
            User::replace_password_hash(conn, id, &old, &rehashed)
        })
        .await;
        match stored {
            Ok(true) => log::debug!("user {id}'s password was rehashed at the configured cost"),
            // The password changed since the check: the new hash is at the cost already.
            Ok(false) => {}
            Err(e) => log::warn!("storing user {id}'s rehashed password failed: {e}"),
        }
    }

    /// A login: a new session, a fresh access token and a refresh token.
    pub async fn login(
        &self,
        credentials: Credentials,
        client: ClientInfo,
        delivery: Delivery,
    ) -> Result<Issued, ApiError> {
        self.open_session(credentials, client, delivery, Action::Login)
            .await
    }

    /// A fresh login: a new session with only a fresh access token, for re-confirming
    /// the password before a sensitive action.
    pub async fn fresh_login(
        &self,
        credentials: Credentials,
        client: ClientInfo,
        delivery: Delivery,
    ) -> Result<Issued, ApiError> {
        self.open_session(credentials, client, delivery, Action::FreshLogin)
            .await
    }

    async fn open_session(
        &self,
        credentials: Credentials,
        client: ClientInfo,
        delivery: Delivery,
        action: Action,
    ) -> Result<Issued, ApiError> {
        let Credentials { username, password } = credentials;
        let origin = Origin::http(None, client);
        // A security change that commits while the password is being checked makes the
        // login start over, so that it answers as if it came after the change: the old
        // password no longer opens a session, a demoted user gets a non-admin token.
        for _ in 0..MAX_LOGIN_ATTEMPTS {
            let attempt = Credentials {
                username: username.clone(),
                password: password.clone(),
            };
            let user = self.authenticate(attempt, action, &origin).await?;
            if let Some(issued) = self
                .try_open_session(&user, &origin, delivery, action)
                .await?
            {
                return Ok(issued);
            }
            log::info!(
                "user {}: security state changed during a login; checking again",
                user.id
            );
        }
        Err(ApiError::ServiceUnavailable)
    }

    /// Opens a session for `user` as read before its password was checked, unless its
    /// security version has changed since (then `None`).
    async fn try_open_session(
        &self,
        user: &User,
        origin: &Origin,
        delivery: Delivery,
        action: Action,
    ) -> Result<Option<Issued>, ApiError> {
        let with_refresh = action == Action::Login;
        let sid = uuid::Uuid::new_v4().to_string();
        let subject = Subject {
            user_id: user.id,
            is_admin: user.is_admin,
            session_id: Some(&sid),
            delivery,
        };
        let access = self.tokens.access(subject, true)?;
        let refresh = if with_refresh {
            Some(
                self.tokens
                    .refresh(subject, &uuid::Uuid::new_v4().to_string())?,
            )
        } else {
            None
        };
        let (jti, expires_at) = match &refresh {
            Some(minted) => (Some(minted.jti.clone()), minted.expires_at),
            None => (None, access.expires_at),
        };
        let (user_id, version, origin) = (user.id, user.security_version, origin.clone());
        let keep = i64::from(self.max_sessions);
        let revoked = self.revocations.clone();
        let opened = db::transaction(&self.pool, move |conn| {
            // The tokens carry the admin flag read with this version: it still holds.
            if !User::hold_if_current(conn, user_id, version)? {
                return Ok(None);
            }
            Session::open(
                conn,
                &sid,
                user_id,
                jti.as_deref(),
                expires_at,
                origin.client(),
            )?;
            audit::record(
                conn,
                Event::new(action, Outcome::Ok, &origin)
                    .target(user_id, &origin)
                    .session(Some(&sid)),
            )?;
            // Each login would otherwise add a live session for as long as its refresh
            // token lives: the cap bounds them, and GET /sessions (OWASP Session
            // Management Cheat Sheet: simultaneous session logons).
            Session::revoke_oldest_beyond(conn, &revoked, user_id, keep, &sid).map(Some)
        })
        .await?;
        let Some(ended) = opened else {
            return Ok(None);
        };
        if ended > 0 {
            log::info!(
                "user {user_id} is at MAX_SESSIONS_PER_USER ({keep}): their {ended} oldest session(s) ended"
            );
        }
        Ok(Some(Issued { access, refresh }))
    }

    /// Spends a refresh token: a non-fresh access token and the next refresh token.
    /// The admin flag is read again from the database.
    pub async fn refresh(
        &self,
        claims: Arc<Claims>,
        delivery: Delivery,
        client: ClientInfo,
    ) -> Result<Issued, ApiError> {
        let origin = Origin::http(Some(claims.user_id), client);
        let new_jti = uuid::Uuid::new_v4().to_string();
        let expires_at = chrono::Utc::now() + self.tokens.refresh_ttl();
        let grace = self.tokens.refresh_reuse_grace();
        let revoked = self.revocations.clone();
        let presented = claims.clone();
        let (user, jti) = db::transaction(&self.pool, move |conn| {
            let claims = presented;
            // Held until commit: a demotion cannot commit between reading the admin
            // flag and spending the token, so the new tokens carry the flag as it
            // stands, never a withdrawn one.
            let Some(user) = User::hold(conn, claims.user_id)? else {
                return Ok(Err(ApiError::TokenRevoked));
            };
            // A refused rotation is an answer, not a failure: the revocation a reuse
            // causes must commit.
            let jti = match claims.sid.as_deref() {
                Some(sid) => match Session::rotate(
                    conn,
                    &revoked,
                    sid,
                    &claims.jti,
                    &new_jti,
                    expires_at,
                    grace,
                ) {
                    Ok(Spent::Rotated(jti)) => jti,
                    Ok(Spent::Reused) => {
                        audit::record(
                            conn,
                            Event::new(Action::RefreshReuse, Outcome::Failed, &origin)
                                .target(user.id, &origin)
                                .session(Some(sid)),
                        )?;
                        return Ok(Err(ApiError::TokenRevoked));
                    }
                    Err(ApiError::TokenRevoked) => return Ok(Err(ApiError::TokenRevoked)),
                    Err(e) => return Err(e),
                },
                None if RevokedToken::revoke(conn, &revoked, &claims)? => new_jti,
                None => return Ok(Err(ApiError::TokenRevoked)),
            };
            audit::record(
                conn,
                Event::new(Action::Refresh, Outcome::Ok, &origin)
                    .target(user.id, &origin)
                    .session(claims.sid.as_deref()),
            )?;
            Ok(Ok((user, jti)))
        })
        .await??;
        let subject = Subject {
            user_id: user.id,
            is_admin: user.is_admin,
            session_id: claims.sid.as_deref(),
            delivery,
        };
        Ok(Issued {
            refresh: Some(self.tokens.refresh(subject, &jti)?),
            access: self.tokens.access(subject, false)?,
        })
    }

    /// Whether `token` is active now (RFC 7662): well signed, unexpired, not revoked, its
    /// user's state allowing it, and a refresh token not spent yet. Its claims when it
    /// is. Nothing is changed: introspecting a spent refresh token is no reuse.
    pub async fn introspect(&self, token: &str) -> Result<Option<Arc<Claims>>, ApiError> {
        let claims = match self.tokens.decode_shared(token) {
            Ok(claims) => claims,
            Err(ApiError::ServiceUnavailable) => return Err(ApiError::ServiceUnavailable),
            Err(_) => return Ok(None),
        };
        match self.revocations.check(&self.pool, &claims).await {
            Ok(()) => {}
            Err(ApiError::ServiceUnavailable) => return Err(ApiError::ServiceUnavailable),
            Err(_) => return Ok(None),
        }
        if claims.token_type == TokenType::Refresh {
            let presented = Arc::clone(&claims);
            let unspent = db::run(&self.pool, move |conn| {
                sessions::is_unspent_refresh(conn, &presented)
            })
            .await?;
            if !unspent {
                return Ok(None);
            }
        }
        Ok(Some(claims))
    }

    /// Revokes what `token` may revoke (RFC 7009): its session, or its jti when it has
    /// none. A token that is not ours, or is expired or already revoked, changes nothing;
    /// the caller answers the same either way.
    pub async fn revoke_token(&self, token: &str, client: ClientInfo) -> Result<(), ApiError> {
        let Ok(claims) = self.tokens.decode_shared(token) else {
            return Ok(());
        };
        let revoked = self.revocations.clone();
        let origin = Origin::http(Some(claims.user_id), client);
        let ended = db::transaction(&self.pool, move |conn| {
            if sessions::revoke_by_token(conn, &revoked, &claims)? {
                audit::record(
                    conn,
                    Event::new(Action::SessionRevoked, Outcome::Ok, &origin)
                        .target(claims.user_id, &origin)
                        .session(claims.sid.as_deref())
                        .detail("by", "token"),
                )?;
            }
            Ok(())
        })
        .await;
        match ended {
            Ok(_) | Err(ApiError::NotFound(_) | ApiError::TokenRevoked) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Logs out: ends what `scope` names.
    pub async fn logout(
        &self,
        claims: Arc<Claims>,
        scope: LogoutScope,
        client: ClientInfo,
    ) -> Result<(), ApiError> {
        let revoked = self.revocations.clone();
        let origin = Origin::http(Some(claims.user_id), client);
        db::transaction(&self.pool, move |conn| {
            sessions::logout(conn, &revoked, &claims, scope)?;
            audit::record(
                conn,
                Event::new(Action::Logout, Outcome::Ok, &origin)
                    .target(claims.user_id, &origin)
                    .session(claims.sid.as_deref())
                    .detail("scope", scope.as_str()),
            )?;
            Ok(())
        })
        .await
    }

    /// Ends one of the caller's sessions; false when they have no such live session.
    pub async fn end_session(
        &self,
        claims: Arc<Claims>,
        sid: String,
        client: ClientInfo,
    ) -> Result<bool, ApiError> {
        let revoked = self.revocations.clone();
        let origin = Origin::http(Some(claims.user_id), client);
        db::transaction(&self.pool, move |conn| {
            let ended = Session::revoke_owned(conn, &revoked, &sid, claims.user_id)?;
            if ended {
                audit::record(
                    conn,
                    Event::new(Action::SessionRevoked, Outcome::Ok, &origin)
                        .target(claims.user_id, &origin)
                        .session(Some(&sid)),
                )?;
            }
            Ok(ended)
        })
        .await
    }

    /// Changes the caller's password after checking the current one, and ends every
    /// other session of the caller. A wrong current password is a problem with that
    /// field, not a failed login: a 401 would make SPA interceptors log the user out.
    /// The check is a password guess like a login's (a stolen fresh token is enough to
    /// try): failures count per user, too many get 429, and one user has one share of
    /// the hashing pool.
    pub async fn change_password(
        &self,
        claims: Arc<Claims>,
        current_password: String,
        new_password: NewPassword,
        client: ClientInfo,
    ) -> Result<(), ApiError> {
        let id = claims.user_id;
        let origin = Origin::http(Some(id), client);
        let event = |outcome| {
            Event::new(Action::PasswordChanged, outcome, &origin)
                .target(id, &origin)
                .session(claims.sid.as_deref())
        };
        let limited = |e: ApiError| {
            if matches!(e, ApiError::TooManyRequests(_)) {
                self.audit.queue(event(Outcome::Limited));
            }
            e
        };
        let who = Target::user(id);
        let _turn = self.limiter.hashing_turn(who).map_err(limited)?;
        self.limiter.check_failures(who).await.map_err(limited)?;
        let user = db::run(&self.pool, move |conn| User::get(conn, id)).await?;
        if !self
            .passwords
            .verify(current_password, Some(user.password_hash))
            .await?
        {
            self.audit.queue(event(Outcome::Failed));
            self.limiter.record_failure(who).await?;
            let mut errors = ValidationErrors::default();
            errors.json("current_password", "Incorrect password.");
            return Err(ApiError::Validation(errors));
        }
        self.limiter.record_success(who).await?;
        let hash = self.passwords.hash(new_password.into_inner()).await?;
        let revoked = self.revocations.clone();
        let event = event(Outcome::Ok);
        db::transaction(&self.pool, move |conn| {
            User::set_password_hash(conn, id, &hash)?;
            let ended = sessions::security_change(conn, &revoked, id, claims.sid.as_deref())?;
            audit::record(conn, event.detail("sessions_ended", ended))?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Grants or withdraws admin; a change ends the user's sessions, in the same
    /// transaction, so that no token keeps the old claim.
    pub async fn set_admin(
        &self,
        id: i64,
        is_admin: bool,
        origin: &Origin,
    ) -> Result<AdminChange, ApiError> {
        let action = if is_admin {
            Action::Promoted
        } else {
            Action::Demoted
        };
        self.change_admin(id, is_admin, None, action, origin)
            .await?
            .ok_or_else(|| ApiError::Internal("an unconditional admin change was refused".into()))
    }

    /// [`Accounts::set_admin`], only while the user's password hash is `if_hash` when
    /// given; `None` when it is not.
    async fn change_admin(
        &self,
        id: i64,
        is_admin: bool,
        if_hash: Option<String>,
        action: Action,
        origin: &Origin,
    ) -> Result<Option<AdminChange>, ApiError> {
        let revoked = self.revocations.clone();
        let origin = origin.clone();
        db::transaction(&self.pool, move |conn| {
            let before = User::get(conn, id)?;
            if if_hash.is_some_and(|hash| hash != before.password_hash) {
                return Ok(None);
            }
            if before.is_admin == is_admin {
                return Ok(Some(AdminChange {
                    user: before,
                    changed: false,
                }));
            }
            let after = User::set_admin(conn, id, is_admin)?
                .ok_or(ModelError::NotFound(Entity::User, id))?;
            let ended = sessions::security_change(conn, &revoked, id, None)?;
            audit::record(
                conn,
                Event::new(action, Outcome::Ok, &origin)
                    .target(id, &origin)
                    .detail("sessions_ended", ended),
            )?;
            Ok(Some(AdminChange {
                user: after,
                changed: true,
            }))
        })
        .await
    }

    /// Ends every session of a user; returns how many were live.
    pub async fn revoke_sessions(&self, id: i64, origin: &Origin) -> Result<usize, ApiError> {
        let revoked = self.revocations.clone();
        let origin = origin.clone();
        db::transaction(&self.pool, move |conn| {
            User::get(conn, id)?;
            let ended = sessions::security_change(conn, &revoked, id, None)?;
            audit::record(
                conn,
                Event::new(Action::AdminRevoke, Outcome::Ok, &origin)
                    .target(id, &origin)
                    .detail("sessions_ended", ended),
            )?;
            Ok(ended)
        })
        .await
    }

    /// Deletes a user; their sessions end with them, and their id is never reused.
    pub async fn delete_user(&self, id: i64, origin: &Origin) -> Result<(), ApiError> {
        let revoked = self.revocations.clone();
        let origin = origin.clone();
        let deleted = db::transaction(&self.pool, move |conn| {
            if !User::exists(conn, id)? {
                return Ok(false);
            }
            sessions::revoke_user(conn, &revoked, id)?;
            if !User::delete(conn, id)? {
                return Ok(false);
            }
            audit::record(
                conn,
                Event::new(Action::UserDeleted, Outcome::Ok, &origin).target(id, &origin),
            )?;
            Ok(true)
        })
        .await?;
        if deleted {
            Ok(())
        } else {
            Err(ModelError::NotFound(Entity::User, id).into())
        }
    }

    /// The user named `username`, if any.
    pub async fn find_by_username(&self, username: &Username) -> Result<Option<User>, ApiError> {
        let name = username.as_str().to_owned();
        db::run(&self.pool, move |conn| User::find_by_username(conn, &name)).await
    }

    /// The start-up admin: created if missing; an existing account is made an admin
    /// only if `password` is its password. Otherwise whoever registered the name first
    /// (or, after a demotion, the demoted holder of a changed password) would be handed
    /// admin by the next start-up.
    pub async fn bootstrap_admin(
        &self,
        username: Username,
        password: NewPassword,
    ) -> Result<AdminChange, BootstrapError> {
        let origin = Origin::startup();
        let existing = match self.find_by_username(&username).await? {
            Some(existing) => existing,
            None => match self
                .create_account(
                    username.clone(),
                    password.clone(),
                    true,
                    Action::BootstrapAdmin,
                    &origin,
                )
                .await
            {
                Ok(user) => {
                    return Ok(AdminChange {
                        user,
                        changed: true,
                    })
                }
                // Another instance created it meanwhile: its password is checked too.
                Err(ApiError::Conflict(_)) => self
                    .find_by_username(&username)
                    .await?
                    .ok_or(ApiError::ServiceUnavailable)?,
                Err(e) => return Err(e.into()),
            },
        };
        let stored = existing.password_hash.clone();
        let matches = self
            .passwords
            .verify(password.into_inner(), Some(stored.clone()))
            .await?;
        if !matches {
            return Err(BootstrapError::NotTheAccountsPassword(existing.username));
        }
        // Only the hash just verified: a password changed meanwhile is checked again
        // at the next start-up.
        match self
            .change_admin(
                existing.id,
                true,
                Some(stored),
                Action::BootstrapAdmin,
                &origin,
            )
            .await?
        {
            Some(change) => Ok(change),
            None => Err(BootstrapError::NotTheAccountsPassword(existing.username)),
        }
    }
}
