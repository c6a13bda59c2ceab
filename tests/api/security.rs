//! Security changes that no concurrent request can outrun: a login or a refresh that
//! read the user before a password change or a demotion committed answers as if it
//! came after it; tokens without a session obey the user's state; revocations are
//! followed by the database, whatever the instances' clocks or the commits' order.
//!
//! The races are forced, not hoped for: a transaction of the test's own holds the
//! user's row (PostgreSQL) or the database's write lock (SQLite), the change and the
//! login queue up behind it in a known order, and only then is it released.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{QueryableByName, RunQueryDsl};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    assert_error, claims, credentials, flask_payload, forge, on_postgres, sid, TestApp, TestUser,
    PASSWORD, TEST_KEY,
};

/// A connection of the test's own to the app's database.
fn own_connection(app: &TestApp) -> stores_api::db::PooledConnection {
    stores_api::db::pool(&app.settings.database)
        .get()
        .expect("a connection of the test's own")
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Holds what a security change needs (the user's row on PostgreSQL, the write lock on
/// SQLite) until `release` is called.
struct Hold {
    conn: stores_api::db::PooledConnection,
}

impl Hold {
    fn user_row(app: &TestApp, user_id: i64) -> Hold {
        let mut conn = own_connection(app);
        let lock = if on_postgres() {
            format!("BEGIN; SELECT id FROM users WHERE id = {user_id} FOR UPDATE;")
        } else {
            "BEGIN IMMEDIATE;".to_string()
        };
        conn.batch_execute(&lock).expect("hold");
        Hold { conn }
    }

    fn release(mut self) {
        self.conn.batch_execute("COMMIT;").expect("release");
    }
}

/// Waits until `n` statements of other sessions on this database wait for a lock
/// (PostgreSQL); on SQLite, whose lock waits cannot be seen, a pause that the requests
/// ahead need far less than.
async fn until_waiting(app: &TestApp, n: i64) {
    if !on_postgres() {
        actix_web::rt::time::sleep(Duration::from_millis(600)).await;
        return;
    }
    let mut conn = own_connection(app);
    let started = Instant::now();
    loop {
        let waiting: Count = diesel::sql_query(
            "SELECT count(*)::bigint AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .get_result(&mut conn)
        .expect("pg_stat_activity");
        if waiting.n >= n {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{} of {n} requests wait for the lock",
            waiting.n
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends a request in the background, so that the test can go on while it waits.
fn in_background(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> actix_web::rt::task::JoinHandle<reqwest::Response> {
    let request = app.call(method, path).bearer(Some(token));
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    actix_web::rt::spawn(request.send())
}

/// A server whose limits let the test's requests through.
async fn spawn() -> TestApp {
    TestApp::spawn_with(|s| s.limits.auth_per_minute = 0).await
}

/// POST /login in the background, so that the test can go on while it waits.
fn login_in_background(
    app: &TestApp,
    username: &str,
    password: &str,
) -> actix_web::rt::task::JoinHandle<reqwest::Response> {
    let request = app
        .call(Method::POST, "/login")
        .json(&credentials(username, password));
    actix_web::rt::spawn(request.send())
}

/// Asserts that `token` is refused with token_revoked on `app` within a second (a
/// revocation made on another instance arrives through the revocation log).
async fn refused_within_a_second(app: &TestApp, path: &str, token: &str) {
    let started = Instant::now();
    loop {
        let resp = app.get(path, Some(token)).await;
        if resp.status() == StatusCode::UNAUTHORIZED {
            assert_error(resp, 401, "token_revoked").await;
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{path} still accepts a token that should be revoked"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn a_login_with_the_old_password_that_straddles_a_password_change_is_refused() {
    let app = spawn().await;
    let other = app.spawn_sibling().await;
    let user = app.user().await;
    let hold = Hold::user_row(&app, user.id);

    // The change first (on another instance): it waits for the row.
    let change = in_background(
        &other,
        Method::PUT,
        "/me/password",
        &user.tokens.access,
        Some(json!({"current_password": PASSWORD, "new_password": "a-brand-new-secret-7"})),
    );
    until_waiting(&app, 1).await;
    // Then the login with the old password: it reads the user as it was, checks the
    // password against the old hash, and waits behind the change to open its session.
    let login = login_in_background(&app, &user.username, PASSWORD);
    until_waiting(&app, 2).await;
    hold.release();

    assert_eq!(change.await.expect("change").status(), StatusCode::OK);
    let login = login.await.expect("login");
    if login.status() == StatusCode::OK {
        // Only possible where the lock order is not first come, first served (SQLite):
        // the login opened its session before the change, which must have ended it.
        assert!(
            !on_postgres(),
            "the login overtook the change it queued behind"
        );
        let body: Value = login.json().await.expect("json");
        let access = body["access_token"].as_str().expect("access");
        refused_within_a_second(&app, "/me", access).await;
    } else {
        assert_error(login, 401, "invalid_credentials").await;
    }
    // Afterwards, only the new password works.
    let resp = app.try_login(&user.username, PASSWORD).await;
    assert_error(resp, 401, "invalid_credentials").await;
    app.login(&user.username, "a-brand-new-secret-7").await;
}

/// Two instances on one database, the bootstrap admin, and a user it has promoted.
async fn an_admin_to_demote() -> (TestApp, TestApp, TestUser, TestUser) {
    let app = spawn().await;
    let other = app.spawn_sibling().await;
    let admin = app.admin().await;
    let target = app.user().await;
    let promoted = app
        .patch(
            &format!("/user/{}", target.id),
            Some(&admin.tokens.access),
            json!({"is_admin": true}),
        )
        .await;
    assert_eq!(promoted.status(), StatusCode::OK);
    (app, other, admin, target)
}

#[actix_web::test]
async fn a_login_that_straddles_a_demotion_gets_a_non_admin_token() {
    let (app, other, admin, target) = an_admin_to_demote().await;

    let hold = Hold::user_row(&app, target.id);
    let demotion = in_background(
        &other,
        Method::PATCH,
        &format!("/user/{}", target.id),
        &admin.tokens.access,
        Some(json!({"is_admin": false})),
    );
    until_waiting(&app, 1).await;
    let login = login_in_background(&app, &target.username, PASSWORD);
    until_waiting(&app, 2).await;
    hold.release();

    let demotion = demotion.await.expect("demotion");
    assert_eq!(demotion.status(), StatusCode::OK);
    let login = login.await.expect("login");
    assert_eq!(login.status(), StatusCode::OK);
    let body: Value = login.json().await.expect("json");
    let access = body["access_token"].as_str().expect("access");
    let users = app.get("/users", Some(access)).await;
    if claims(access)["is_admin"] == true {
        // SQLite only (see above): a session opened before the demotion is ended by it.
        assert!(
            !on_postgres(),
            "the login overtook the demotion it queued behind"
        );
        drop(users);
        refused_within_a_second(&app, "/users", access).await;
    } else {
        assert_error(users, 403, "admin_required").await;
    }
    // It cannot promote itself back either way.
    let again = app
        .patch(
            &format!("/user/{}", target.id),
            Some(access),
            json!({"is_admin": true}),
        )
        .await;
    assert!(
        [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&again.status()),
        "{}",
        again.status()
    );
}

#[actix_web::test]
async fn a_sidless_refresh_that_straddles_a_demotion_never_mints_an_admin_token() {
    let (app, other, admin, target) = an_admin_to_demote().await;
    // A refresh token another service minted with the shared key, after the promotion.
    std::thread::sleep(Duration::from_millis(1100));
    let refresh = forge(
        flask_payload(
            target.id,
            json!({"type": "refresh", "is_admin": true, "exp": chrono::Utc::now().timestamp() + 3600}),
        ),
        TEST_KEY,
    );

    let hold = Hold::user_row(&app, target.id);
    let demotion = in_background(
        &other,
        Method::PATCH,
        &format!("/user/{}", target.id),
        &admin.tokens.access,
        Some(json!({"is_admin": false})),
    );
    until_waiting(&app, 1).await;
    let refreshed = in_background(&app, Method::POST, "/refresh", &refresh, None);
    until_waiting(&app, 2).await;
    hold.release();

    assert_eq!(demotion.await.expect("demotion").status(), StatusCode::OK);
    let refreshed = refreshed.await.expect("refresh");
    if refreshed.status() == StatusCode::OK {
        let body: Value = refreshed.json().await.expect("json");
        let access = body["access_token"].as_str().expect("access");
        if claims(access)["is_admin"] == true {
            // SQLite only: the refresh came first, and the demotion refuses what it
            // minted (issued at or before the demotion).
            assert!(
                !on_postgres(),
                "the refresh overtook the demotion it queued behind"
            );
            // Made on the other instance: this one learns it from the revocation log.
            refused_within_a_second(&app, "/users", access).await;
        } else {
            // Minted after the demotion without the claim. In the demotion's own second
            // it is refused as well (iat has no finer grain than the change's second).
            let users = app.get("/users", Some(access)).await;
            if users.status() == StatusCode::UNAUTHORIZED {
                assert_error(users, 401, "token_revoked").await;
            } else {
                assert_error(users, 403, "admin_required").await;
            }
        }
    } else {
        // Refused: the token was issued before the demotion.
        assert_error(refreshed, 401, "token_revoked").await;
    }
}

#[actix_web::test]
async fn tokens_without_a_session_obey_the_users_state_on_every_instance() {
    let app = spawn().await;
    let other = app.spawn_sibling().await;
    let user = app.user().await;
    let before = forge(flask_payload(user.id, json!({})), TEST_KEY);
    assert_eq!(
        other.get("/me", Some(&before)).await.status(),
        StatusCode::OK
    );

    // A user that never existed (ids are never reused, so a new account cannot inherit it).
    let nobody = forge(flask_payload(987_654, json!({})), TEST_KEY);
    assert_error(other.get("/me", Some(&nobody)).await, 401, "token_revoked").await;
    // Issued before the account existed.
    let early = forge(
        flask_payload(
            user.id,
            json!({"iat": chrono::Utc::now().timestamp() - 3600}),
        ),
        TEST_KEY,
    );
    assert_error(other.get("/me", Some(&early)).await, 401, "token_revoked").await;

    // A password change on one instance: the token issued before it is refused on the
    // other within a second, one issued after is accepted.
    let changed = app
        .change_password(&user.tokens.access, PASSWORD, "a-brand-new-secret-7")
        .await;
    assert_eq!(changed.status(), StatusCode::OK);
    refused_within_a_second(&other, "/me", &before).await;
    std::thread::sleep(Duration::from_millis(1100));
    let after = forge(flask_payload(user.id, json!({})), TEST_KEY);
    assert_eq!(
        other.get("/me", Some(&after)).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.get("/me", Some(&after)).await.status(), StatusCode::OK);
}

/// Ends `sid` the way an instance whose clock is `skew` behind would, in a transaction
/// that commits after `late`; meanwhile other revocations commit.
fn revoke_as_a_late_skewed_instance(app: &TestApp, sid: &str, user_id: i64, skew: i64) -> Hold {
    let mut conn = own_connection(app);
    let begin = if on_postgres() {
        "BEGIN;"
    } else {
        "BEGIN IMMEDIATE;"
    };
    let stamp = (chrono::Utc::now() - chrono::Duration::seconds(skew))
        .naive_utc()
        .format("%Y-%m-%d %H:%M:%S%.6f");
    let far = (chrono::Utc::now() + chrono::Duration::hours(1))
        .naive_utc()
        .format("%Y-%m-%d %H:%M:%S%.6f");
    conn.batch_execute(&format!(
        "{begin}
         UPDATE sessions SET revoked_at = '{stamp}' WHERE id = '{sid}';
         INSERT INTO revocations (kind, subject, user_id, revoked_at, expires_at)
         VALUES ('session', '{sid}', {user_id}, '{stamp}', '{far}');"
    ))
    .expect("late revocation");
    Hold { conn }
}

#[actix_web::test]
async fn a_revocation_from_a_skewed_instance_that_commits_late_is_still_enforced() {
    let app = spawn().await;
    let victim = app.user().await;
    let bystander = app.user().await;
    let sid = sid(&victim.tokens.access);
    let late = revoke_as_a_late_skewed_instance(&app, &sid, victim.id, 30);
    if on_postgres() {
        // Later revocations commit first, and the follower moves past them.
        let logout = app
            .post("/logout", Some(&bystander.tokens.access), None)
            .await;
        assert_eq!(logout.status(), StatusCode::OK);
        // Longer than any window of re-read rows would be.
        actix_web::rt::time::sleep(Duration::from_secs(12)).await;
    }
    assert_eq!(
        app.get("/me", Some(&victim.tokens.access)).await.status(),
        StatusCode::OK,
        "not revoked before its commit"
    );
    late.release();
    refused_within_a_second(&app, "/me", &victim.tokens.access).await;
}
