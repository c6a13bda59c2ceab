//! Operator actions shared by the start-up bootstrap and `stores-api admin ...`.

use crate::auth::password::PasswordHasher;
use crate::auth::revocation::Revocations;
use crate::auth::sessions::Session;
use crate::db::{self, DbConnection};
use crate::error::ApiError;
use crate::input::{NewPassword, Username};
use crate::models::user::User;

/// What an operator action did, worded for a log line or a terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new admin account.
    Created(String),
    /// An existing account gained or lost the admin flag; its sessions were ended.
    Changed(String, bool),
    /// Nothing to do.
    Unchanged(String, bool),
    /// Sessions ended.
    Revoked(String, usize),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Created(u) => write!(f, "admin user '{u}' created"),
            Outcome::Changed(u, true) => write!(
                f,
                "user '{u}' promoted to admin; their sessions were revoked"
            ),
            Outcome::Changed(u, false) => write!(
                f,
                "user '{u}' is no longer an admin; their sessions were revoked"
            ),
            Outcome::Unchanged(u, true) => write!(f, "user '{u}' is already an admin"),
            Outcome::Unchanged(u, false) => write!(f, "user '{u}' is already not an admin"),
            Outcome::Revoked(u, n) => write!(f, "revoked {n} session(s) of user '{u}'"),
        }
    }
}

/// Why an operator action was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The username or password breaks the account rules.
    #[error("{field}: {problem}")]
    Invalid {
        /// Which input.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// No such user.
    #[error("no user named '{0}'")]
    NoSuchUser(String),
    /// The user exists already.
    #[error("a user named '{0}' already exists (use `stores-api admin promote`)")]
    Exists(String),
    /// The database failed.
    #[error("{0}")]
    Api(#[from] ApiError),
}

fn username(raw: &str) -> Result<Username, AdminError> {
    Username::parse(&serde_json::Value::from(raw)).map_err(|problem| AdminError::Invalid {
        field: "username",
        problem,
    })
}

fn password(raw: &str) -> Result<NewPassword, AdminError> {
    NewPassword::parse(&serde_json::Value::from(raw)).map_err(|problem| AdminError::Invalid {
        field: "password",
        problem,
    })
}

/// Creates an admin account; refuses an existing username.
pub fn create_admin(
    conn: &mut DbConnection,
    hasher: &PasswordHasher,
    name: &str,
    raw_password: &str,
) -> Result<Outcome, AdminError> {
    let name = username(name)?;
    let secret = password(raw_password)?;
    if User::find_by_username(conn, name.as_str())?.is_some() {
        return Err(AdminError::Exists(name.as_str().to_owned()));
    }
    let hash = hasher.hash_blocking(&secret.into_inner())?;
    User::create(conn, name.as_str(), &hash, true)?;
    Ok(Outcome::Created(name.as_str().to_owned()))
}

/// The start-up bootstrap: creates the admin if missing, else makes sure it is one.
/// An existing account keeps its password.
pub fn ensure_admin(
    conn: &mut DbConnection,
    revoked: &Revocations,
    hasher: &PasswordHasher,
    name: &str,
    raw_password: &str,
) -> Result<Outcome, AdminError> {
    match create_admin(conn, hasher, name, raw_password) {
        Err(AdminError::Exists(_)) | Err(AdminError::Api(ApiError::Conflict(_))) => {
            set_admin(conn, revoked, name, true)
        }
        other => other,
    }
}

/// Promotes or demotes; a change ends the user's sessions so no token keeps the old claim.
pub fn set_admin(
    conn: &mut DbConnection,
    revoked: &Revocations,
    name: &str,
    is_admin: bool,
) -> Result<Outcome, AdminError> {
    let name = username(name)?;
    let user = User::find_by_username(conn, name.as_str())?
        .ok_or_else(|| AdminError::NoSuchUser(name.as_str().to_owned()))?;
    if user.is_admin == is_admin {
        return Ok(Outcome::Unchanged(user.username, is_admin));
    }
    // Together or not at all: a demotion must never leave admin tokens alive.
    db::in_transaction(conn, |conn| {
        User::set_admin(conn, user.id, is_admin)?;
        Session::revoke_all_for_user(conn, revoked, user.id, None)
    })?;
    Ok(Outcome::Changed(user.username, is_admin))
}

/// Ends every session of a user.
pub fn revoke_sessions(
    conn: &mut DbConnection,
    revoked: &Revocations,
    name: &str,
) -> Result<Outcome, AdminError> {
    let name = username(name)?;
    let user = User::find_by_username(conn, name.as_str())?
        .ok_or_else(|| AdminError::NoSuchUser(name.as_str().to_owned()))?;
    let count = Session::revoke_all_for_user(conn, revoked, user.id, None)?;
    Ok(Outcome::Revoked(user.username, count))
}
