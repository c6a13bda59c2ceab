//! Users and their queries.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::{self, DbConnection};
use crate::models::{is_unique_violation, Entity, ModelError};
use crate::schema::users;

/// A stored user.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users)]
pub struct User {
    /// Never reused.
    pub id: i64,
    /// Unique, trimmed.
    pub username: String,
    /// bcrypt hash; never leaves the service.
    pub password_hash: String,
    /// Admin flag.
    pub is_admin: bool,
    /// When the account was created (UTC).
    pub created_at: NaiveDateTime,
    /// Goes up with every change that must end what was issued before it.
    pub security_version: i64,
    /// The last such change, by the database's clock: sid-less tokens issued until
    /// then are refused.
    pub not_before: Option<NaiveDateTime>,
}

#[derive(Insertable)]
#[diesel(table_name = users)]
struct NewUser<'a> {
    username: &'a str,
    password_hash: &'a str,
    is_admin: bool,
    created_at: NaiveDateTime,
}

/// A user as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// Id.
    pub id: i64,
    /// Username.
    pub username: String,
    /// Admin flag.
    pub is_admin: bool,
    /// RFC 3339 UTC.
    pub created_at: DateTime<Utc>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        UserView {
            id: u.id,
            username: u.username,
            is_admin: u.is_admin,
            created_at: u.created_at.and_utc(),
        }
    }
}

impl User {
    /// Inserts a user; a taken username is [`ModelError::NameTaken`].
    pub fn create(
        conn: &mut DbConnection,
        username: &str,
        password_hash: &str,
        is_admin: bool,
    ) -> Result<User, ModelError> {
        let created_at = db::now();
        // RETURNING of a whole Selectable row does not compile on the MultiConnection.
        let id = diesel::insert_into(users::table)
            .values(NewUser {
                username,
                password_hash,
                is_admin,
                created_at,
            })
            .returning(users::id)
            .get_result(conn)
            .map_err(|e| {
                if is_unique_violation(&e) {
                    ModelError::NameTaken(Entity::User)
                } else {
                    e.into()
                }
            })?;
        Ok(User {
            id,
            username: username.to_owned(),
            password_hash: password_hash.to_owned(),
            is_admin,
            created_at,
            security_version: 0,
            not_before: None,
        })
    }

    /// The user with this id.
    pub fn find(conn: &mut DbConnection, id: i64) -> Result<Option<User>, ModelError> {
        Ok(users::table
            .find(id)
            .select(User::as_select())
            .first(conn)
            .optional()?)
    }

    /// The user with this id, or [`ModelError::NotFound`].
    pub fn get(conn: &mut DbConnection, id: i64) -> Result<User, ModelError> {
        User::find(conn, id)?.ok_or(ModelError::NotFound(Entity::User, id))
    }

    /// The user with this username.
    pub fn find_by_username(
        conn: &mut DbConnection,
        username: &str,
    ) -> Result<Option<User>, ModelError> {
        Ok(users::table
            .filter(users::username.eq(username))
            .select(User::as_select())
            .first(conn)
            .optional()?)
    }

    /// Whether a user with this id exists.
    pub fn exists(conn: &mut DbConnection, id: i64) -> Result<bool, ModelError> {
        Ok(diesel::select(diesel::dsl::exists(users::table.find(id))).get_result(conn)?)
    }

    /// A page of users ordered by id, and the total count.
    pub fn list(
        conn: &mut DbConnection,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<User>, i64), ModelError> {
        let total = users::table.count().get_result(conn)?;
        let page = users::table
            .order(users::id)
            .limit(limit)
            .offset(offset)
            .select(User::as_select())
            .load(conn)?;
        Ok((page, total))
    }

    /// Sets the admin flag; `None` if there is no such user.
    pub fn set_admin(
        conn: &mut DbConnection,
        id: i64,
        is_admin: bool,
    ) -> Result<Option<User>, ModelError> {
        let changed = diesel::update(users::table.find(id))
            .set(users::is_admin.eq(is_admin))
            .execute(conn)?;
        if changed == 0 {
            return Ok(None);
        }
        User::find(conn, id)
    }

    /// Replaces the password hash.
    pub fn set_password_hash(
        conn: &mut DbConnection,
        id: i64,
        password_hash: &str,
    ) -> Result<(), ModelError> {
        diesel::update(users::table.find(id))
            .set(users::password_hash.eq(password_hash))
            .execute(conn)?;
        Ok(())
    }

    /// Replaces the password hash only while it is still `old`, so that a password
    /// changed meanwhile is never overwritten; false when it was not.
    pub fn replace_password_hash(
        conn: &mut DbConnection,
        id: i64,
        old: &str,
        new: &str,
    ) -> Result<bool, ModelError> {
        let changed = diesel::update(users::table.find(id).filter(users::password_hash.eq(old)))
            .set(users::password_hash.eq(new))
            .execute(conn)?;
        Ok(changed == 1)
    }

    /// Holds the user's row until the transaction ends, if its security version is still
    /// `version`: no password change, admin flag change or revoke of every session can
    /// commit in between, and one that committed since the version was read makes this
    /// false. On PostgreSQL the no-op update takes the row lock that such a change needs
    /// too; on SQLite the transaction holds the file's write lock already.
    pub fn hold_if_current(
        conn: &mut DbConnection,
        id: i64,
        version: i64,
    ) -> Result<bool, ModelError> {
        let held = diesel::update(
            users::table
                .find(id)
                .filter(users::security_version.eq(version)),
        )
        .set(users::security_version.eq(users::security_version))
        .execute(conn)?;
        Ok(held == 1)
    }

    /// Holds the user's row until the transaction ends and reads it as it will stand
    /// at commit; `None` if there is no such user.
    pub fn hold(conn: &mut DbConnection, id: i64) -> Result<Option<User>, ModelError> {
        let held = diesel::update(users::table.find(id))
            .set(users::security_version.eq(users::security_version))
            .execute(conn)?;
        if held == 0 {
            return Ok(None);
        }
        User::find(conn, id)
    }

    /// Records a change that must end what was issued before it: the security version
    /// goes up and `not_before` becomes `at`.
    pub fn bump_security(
        conn: &mut DbConnection,
        id: i64,
        at: NaiveDateTime,
    ) -> Result<bool, ModelError> {
        let changed = diesel::update(users::table.find(id))
            .set((
                users::security_version.eq(users::security_version + 1),
                users::not_before.eq(at),
            ))
            .execute(conn)?;
        Ok(changed == 1)
    }

    /// Whether the user exists, when it was created, and its last security change:
    /// what the token check learns about a user it has not seen yet.
    pub fn token_state(
        conn: &mut DbConnection,
        id: i64,
    ) -> Result<Option<(NaiveDateTime, Option<NaiveDateTime>)>, ModelError> {
        Ok(users::table
            .find(id)
            .select((users::created_at, users::not_before))
            .first(conn)
            .optional()?)
    }

    /// Deletes the user (its sessions go with it); false if there was none.
    pub fn delete(conn: &mut DbConnection, id: i64) -> Result<bool, ModelError> {
        Ok(diesel::delete(users::table.find(id)).execute(conn)? > 0)
    }
}
