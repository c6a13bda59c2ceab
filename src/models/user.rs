//! Users and their queries.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::{self, DbConnection};
use crate::input::Username;
use crate::models::{is_unique_violation, Entity, ModelError};
use crate::schema::users;

/// Starts the provisional key that the migration gives each existing row, U+0001 and
/// the row's id, until [`User::settle_keys`] computes the real one. No real key starts
/// with a control character: usernames have never been allowed any.
const PROVISIONAL: char = '\u{1}';

/// Joins a key and an exact name in the key of an account whose name has the key of
/// an older account's (see [`User::settle_keys`]). A control character, so no real
/// key contains it.
const SEPARATOR: char = '\u{1F}';

diesel::define_sql_function! {
    /// SQL's `substr`: `len` characters of `text` from `start` (1-based), counted in
    /// characters on both backends.
    fn substr(text: Text, start: Integer, len: Integer) -> Text;
}

/// The key of an account that existed before keys and whose name has the key of an
/// older one: the shared key and its exact name, which the former unique constraint on
/// names keeps apart.
fn legacy_key(key: &str, name: &str) -> String {
    format!("{key}{SEPARATOR}{name}")
}

/// The number of characters of `prefix`, as `substr` counts them.
fn char_count(prefix: &str) -> i32 {
    i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX)
}

/// A stored user.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users)]
pub struct User {
    /// Never reused.
    pub id: i64,
    /// Trimmed, as first registered (what is shown); unique through its key.
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
    username_key: &'a str,
    password_hash: &'a str,
    is_admin: bool,
    created_at: NaiveDateTime,
}

/// A user as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
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
    /// Inserts a user; a username whose key is taken is [`ModelError::NameTaken`].
    pub fn create(
        conn: &mut DbConnection,
        username: &Username,
        password_hash: &str,
        is_admin: bool,
    ) -> Result<User, ModelError> {
        let created_at = db::now();
        // RETURNING of a whole Selectable row does not compile on the MultiConnection.
        let id = diesel::insert_into(users::table)
            .values(NewUser {
                username: username.as_str(),
                username_key: username.key(),
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
            username: username.as_str().to_owned(),
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

    /// The users with these ids as the API shows them, in one query whatever the number
    /// of ids (GET /me, batched): the columns of the view only, so the password hash is
    /// never read. Ids with no user are left out. One id is compared with `=` (see
    /// [`crate::models`] on reads by id).
    pub fn views_by_id(conn: &mut DbConnection, ids: &[i64]) -> Result<Vec<UserView>, ModelError> {
        let query = users::table.select((
            users::id,
            users::username,
            users::is_admin,
            users::created_at,
        ));
        let rows: Vec<(i64, String, bool, NaiveDateTime)> = match ids {
            [id] => query.filter(users::id.eq(id)).load(conn)?,
            _ => query.filter(users::id.eq_any(ids)).load(conn)?,
        };
        Ok(rows
            .into_iter()
            .map(|(id, username, is_admin, created_at)| UserView {
                id,
                username,
                is_admin,
                created_at: created_at.and_utc(),
            })
            .collect())
    }

    /// The user with this id, or [`ModelError::NotFound`].
    pub fn get(conn: &mut DbConnection, id: i64) -> Result<User, ModelError> {
        User::find(conn, id)?.ok_or(ModelError::NotFound(Entity::User, id))
    }

    /// The user who logs in as `username` (any string): the account with the name's
    /// key, or, before it, an account that existed before keys under this exact name
    /// and whose name has an older account's key (see [`User::settle_keys`]).
    pub fn find_by_username(
        conn: &mut DbConnection,
        username: &str,
    ) -> Result<Option<User>, ModelError> {
        let name = username.trim();
        // No name ever held one, and PostgreSQL refuses NUL in a query: known to be
        // no one, as an unknown name is.
        if name.chars().any(char::is_control) {
            return Ok(None);
        }
        let key = Username::key_of(name);
        let legacy = legacy_key(&key, name);
        let mut found: Vec<(String, User)> = users::table
            .filter(
                users::username_key
                    .eq(&key)
                    .or(users::username_key.eq(&legacy)),
            )
            .select((users::username_key, User::as_select()))
            .load(conn)?;
        // The exact name first: it is how the newer of two such accounts logs in.
        found.sort_by_key(|(k, _)| *k != legacy);
        Ok(found.into_iter().next().map(|(_, user)| user))
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

    /// Deletes the user (its sessions go with it); false if there was none. The key it
    /// held passes to the oldest account that shares it under a legacy key (see
    /// [`User::settle_keys`]), so that the name cannot be registered anew beside one
    /// that looks the same. Call it in a transaction.
    pub fn delete(conn: &mut DbConnection, id: i64) -> Result<bool, ModelError> {
        let key: Option<String> = users::table
            .find(id)
            .select(users::username_key)
            .first(conn)
            .optional()?;
        let Some(key) = key else {
            return Ok(false);
        };
        if diesel::delete(users::table.find(id)).execute(conn)? == 0 {
            return Ok(false);
        }
        if key.starts_with(PROVISIONAL) || key.contains(SEPARATOR) {
            return Ok(true);
        }
        // A scan of the keys (no index serves a prefix on both backends), on a delete only.
        let prefix = format!("{key}{SEPARATOR}");
        let heir: Option<i64> = users::table
            .filter(substr(users::username_key, 1, char_count(&prefix)).eq(&prefix))
            .order(users::id)
            .select(users::id)
            .first(conn)
            .optional()?;
        if let Some(heir) = heir {
            diesel::update(users::table.find(heir))
                .set(users::username_key.eq(&key))
                .execute(conn)?;
            log::info!(
                "user {id} deleted; user {heir}, whose username has the same key, now holds it"
            );
        }
        Ok(true)
    }

    /// Replaces the provisional keys that the migration gave the existing rows with
    /// their real ones, oldest row first; returns how many. Run at start-up, before
    /// anything reads the users, in one transaction (the caller's); a second run finds
    /// nothing to do. Of two rows whose names have one key, the older keeps it (every
    /// spelling of the name logs in to it), and the newer gets the legacy key: the key,
    /// U+001F and its exact name, under which it still logs in with that exact name. A
    /// warning names both.
    pub fn settle_keys(conn: &mut DbConnection) -> Result<usize, ModelError> {
        fn provisional(conn: &mut DbConnection) -> Result<Vec<(i64, String)>, ModelError> {
            let marker = PROVISIONAL.to_string();
            Ok(users::table
                .filter(substr(users::username_key, 1, 1).eq(marker))
                .order(users::id)
                .select((users::id, users::username))
                .load(conn)?)
        }
        let mut rows = provisional(conn)?;
        if rows.is_empty() {
            return Ok(0);
        }
        if let DbConnection::Pg(pg) = conn {
            // Another instance starting now waits here, then finds nothing left to do.
            diesel::sql_query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE").execute(pg)?;
            rows = provisional(conn)?;
        }
        for (id, name) in &rows {
            let key = Username::key_of(name);
            let holder: Option<i64> = users::table
                .filter(users::username_key.eq(&key))
                .filter(users::id.ne(id))
                .select(users::id)
                .first(conn)
                .optional()?;
            let key = match holder {
                None => key,
                Some(holder) => {
                    log::warn!(
                        "users {holder} and {id} have usernames that are the same after \
                         normalisation: user {holder} keeps the name, user {id} logs in \
                         with its exact username only"
                    );
                    legacy_key(&key, name)
                }
            };
            diesel::update(users::table.find(id))
                .set(users::username_key.eq(key))
                .execute(conn)?;
        }
        Ok(rows.len())
    }
}
