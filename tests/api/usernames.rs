//! Usernames: the characters refused in them, one account for the names that look
//! alike (NFKC and case folding), and the keys of the accounts that existed before.

use diesel::connection::SimpleConnection;
use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    assert_error, flask_payload, forge, fresh_postgres_database, on_postgres, TestApp, PASSWORD,
    TEST_KEY,
};

/// The 422's problems with `username`.
async fn username_problems(app: &TestApp, username: &str) -> Vec<String> {
    let body = assert_error(
        app.register(username, PASSWORD).await,
        422,
        "validation_error",
    )
    .await;
    body["errors"]["json"]["username"]
        .as_array()
        .unwrap_or_else(|| panic!("a problem with username: {body}"))
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

#[actix_web::test]
async fn invisible_and_reordering_characters_are_refused_by_kind() {
    let app = TestApp::spawn().await;
    for (username, kind) in [
        ("mal\u{7}lory", "control"),
        ("mallory\u{202E}nimda", "bidirectional control"),
        ("\u{2067}mallory\u{2069}", "bidirectional control"),
        ("mal\u{200B}lory", "zero-width"),
        ("mal\u{200C}lory", "zero-width"),
        ("mal\u{200D}lory", "zero-width"),
        ("mal\u{2060}lory", "zero-width"),
        ("\u{FEFF}mallory", "zero-width"),
        ("mal\u{AD}lory", "format"),
        ("mallory\u{E0061}", "format"),
    ] {
        assert_eq!(
            username_problems(&app, username).await,
            [format!("Must not contain {kind} characters.")],
            "{username:?}"
        );
    }
    // None of them was created: the plain name is free.
    let resp = app.register("mallory", PASSWORD).await;
    assert_eq!(resp.status(), 201);
}

#[actix_web::test]
async fn the_length_is_counted_on_the_name_as_typed() {
    let app = TestApp::spawn().await;
    // Three characters typed, eighteen of them after NFKC: accepted.
    let resp = app.register("\u{FDFA}ab", PASSWORD).await;
    assert_eq!(resp.status(), 201);
    // Two typed (the ligature is one): too short, whatever NFKC makes of it.
    assert_eq!(
        username_problems(&app, "\u{FB01}x").await,
        ["Length must be between 3 and 80."]
    );
}

/// Logs in as `username` with `password` at `path`; the account's id and username from
/// /me, or the status when the login is refused.
async fn login_as(
    app: &TestApp,
    path: &str,
    username: &str,
    password: &str,
) -> Result<(i64, String), StatusCode> {
    let resp = app
        .post(
            path,
            None,
            Some(json!({"username": username, "password": password})),
        )
        .await;
    if resp.status() != StatusCode::OK {
        return Err(resp.status());
    }
    let body: Value = resp.json().await.expect("json");
    let access = body["access_token"].as_str().expect("access token");
    let me: Value = app
        .get("/me", Some(access))
        .await
        .json()
        .await
        .expect("json");
    let id = me["id"].as_i64().expect("id");
    Ok((id, me["username"].as_str().expect("username").to_owned()))
}

async fn assert_conflict(app: &TestApp, username: &str, password: &str) {
    let body = assert_error(app.register(username, password).await, 409, "conflict").await;
    assert_eq!(
        body["message"], "A user with that username already exists.",
        "{username:?}"
    );
}

#[actix_web::test]
async fn names_that_look_alike_are_one_account_shown_as_first_registered() {
    let app = TestApp::spawn().await;
    assert_eq!(app.register("Alice", PASSWORD).await.status(), 201);
    let alice = login_as(&app, "/login", "Alice", PASSWORD)
        .await
        .expect("login");
    assert_eq!(alice.1, "Alice");
    // Another spelling is the same name: taken, and nothing else is written.
    for variant in [
        "alice",
        "ALICE",
        "\u{FF41}lice",
        " aLiCe ",
        "\u{FF21}\u{FF2C}ICE",
    ] {
        assert_conflict(&app, variant, "another-password-1").await;
    }
    // Every spelling logs in, at /login and /fresh-login, to the one account, which
    // shows the name as it was registered.
    for variant in ["alice", "ALICE", "\u{FF41}lice", " aLiCe "] {
        for path in ["/login", "/fresh-login"] {
            assert_eq!(
                login_as(&app, path, variant, PASSWORD).await,
                Ok(alice.clone()),
                "{path} as {variant:?}"
            );
        }
    }
    let admin = app.admin().await;
    let seen: Value = app
        .get(&format!("/user/{}", alice.0), Some(&admin.tokens.access))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(seen["username"], "Alice");
    let list: Value = app
        .get("/users", Some(&admin.tokens.access))
        .await
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = list
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    assert_eq!(names, ["admin", "Alice"], "{list}");
}

#[actix_web::test]
async fn the_composed_and_decomposed_forms_of_a_name_are_one_account() {
    let app = TestApp::spawn().await;
    let decomposed = "Jose\u{301}";
    let composed = "Jos\u{E9}";
    assert_eq!(app.register(decomposed, PASSWORD).await.status(), 201);
    assert_conflict(&app, composed, PASSWORD).await;
    assert_conflict(&app, "JOS\u{C9}", PASSWORD).await;
    let (id, shown) = login_as(&app, "/login", composed, PASSWORD)
        .await
        .expect("login");
    assert_eq!(shown, decomposed, "shown as registered, byte for byte");
    assert_eq!(
        login_as(&app, "/login", "jos\u{E9}", PASSWORD).await,
        Ok((id, decomposed.to_owned()))
    );
}

#[actix_web::test]
async fn an_unknown_name_in_any_spelling_is_invalid_credentials() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.register("bob-the-builder", PASSWORD).await.status(),
        201
    );
    for path in ["/login", "/fresh-login"] {
        for (username, password) in [
            ("\u{FF42}ob-the-builder", "wrong-password-1"),
            ("nobody-at-all", PASSWORD),
            ("\u{FF4E}obody", PASSWORD),
            // Characters a new name may not hold are looked up all the same: a 401,
            // never a 422 that would tell the rules.
            ("bob\u{200B}-the-builder", PASSWORD),
            ("b\u{0}", PASSWORD),
        ] {
            let resp = app
                .post(
                    path,
                    None,
                    Some(json!({"username": username, "password": password})),
                )
                .await;
            let body = assert_error(resp, 401, "invalid_credentials").await;
            assert_eq!(body["message"], "Invalid credentials.");
        }
    }
}

#[actix_web::test]
async fn failed_logins_in_every_spelling_count_against_one_name() {
    let app = TestApp::spawn_with(|s| {
        s.limits.login_failures = 3;
        s.limits.auth_per_minute = 0;
    })
    .await;
    assert_eq!(app.register("Victim", PASSWORD).await.status(), 201);
    for variant in ["victim", "VICTIM", "\u{FF56}ictim"] {
        assert_eq!(
            login_as(&app, "/login", variant, "wrong-password-1").await,
            Err(StatusCode::UNAUTHORIZED)
        );
    }
    let resp = app
        .post(
            "/login",
            None,
            Some(json!({"username": "Victim", "password": PASSWORD})),
        )
        .await;
    assert_error(resp, 429, "too_many_requests").await;
}

/// The migrations of each backend, to build a database as it was before usernames had
/// keys.
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Applies the migrations that come before the username keys.
fn migrate_to_before_keys<C>(conn: &mut C, migrations: EmbeddedMigrations)
where
    C: MigrationHarness<C::Backend> + Connection,
{
    let pending = conn.pending_migrations(migrations).expect("migrations");
    for migration in pending
        .iter()
        .take_while(|m| !m.name().to_string().ends_with("_username_keys"))
    {
        conn.run_migration(migration.as_ref()).expect("migration");
    }
}

/// A user row as the service stored it before keys.
fn legacy_user(username: &str, password: &str) -> String {
    let hash = bcrypt::hash(password, 4).expect("hash");
    format!(
        "INSERT INTO users (username, password_hash, is_admin, created_at) \
         VALUES ('{username}', '{hash}', FALSE, '2026-01-02 03:04:05');"
    )
}

#[actix_web::test]
async fn existing_accounts_get_keys_and_the_older_of_two_look_alikes_keeps_the_name() {
    let dir = tempfile::tempdir().expect("dir");
    let url = match std::env::var("TEST_DATABASE_URL") {
        Ok(server) if on_postgres() => fresh_postgres_database(&server),
        _ => dir.path().join("legacy.db").display().to_string(),
    };
    let sid = uuid::Uuid::new_v4().to_string();
    let mut sql: Vec<String> = [
        ("Alice", "alice-password-1"),
        ("alice", "alice-password-2"),
        ("Jos\u{E9}", "jose-password-3"),
        ("Jose\u{301}", "jose-password-4"),
        ("Bob", "bob-password-5"),
        // A name allowed then, refused now: it still logs in.
        ("eve\u{200B}", "eve-password-6"),
        ("zed", "zed-password-7"),
    ]
    .iter()
    .map(|(name, password)| legacy_user(name, password))
    .collect();
    // The last user is deleted: its id is never given again.
    sql.push("DELETE FROM users WHERE username = 'zed';".into());
    sql.push(format!(
        "INSERT INTO sessions (id, user_id, created_at, expires_at) \
         VALUES ('{sid}', 5, '2026-01-02 03:04:05', '2999-01-01 00:00:00');"
    ));
    let sql = sql.concat();
    if on_postgres() {
        let mut conn = stores_api::db::establish_postgres(&url).expect("connect");
        migrate_to_before_keys(&mut conn, POSTGRES_MIGRATIONS);
        conn.batch_execute(&sql).expect("legacy rows");
    } else {
        let mut conn = diesel::SqliteConnection::establish(&url).expect("open");
        migrate_to_before_keys(&mut conn, SQLITE_MIGRATIONS);
        conn.batch_execute(&sql).expect("legacy rows");
    }

    let app = TestApp::spawn_with(|s| {
        s.database.url = stores_api::config::DatabaseUrl::parse(&url).expect("a database URL")
    })
    .await;
    let admin = app.admin().await;
    assert_eq!(
        admin.id, 8,
        "the bootstrap admin comes after the deleted user 7"
    );

    // The older of two look-alikes keeps the name: every other spelling is its.
    let expect = |id: i64, name: &str| Ok((id, name.to_owned()));
    for (username, password, id, shown) in [
        ("Alice", "alice-password-1", 1, "Alice"),
        ("ALICE", "alice-password-1", 1, "Alice"),
        ("\u{FF41}lice", "alice-password-1", 1, "Alice"),
        // The newer logs in with its exact name.
        ("alice", "alice-password-2", 2, "alice"),
        (" alice ", "alice-password-2", 2, "alice"),
        ("Jos\u{E9}", "jose-password-3", 3, "Jos\u{E9}"),
        ("JOS\u{C9}", "jose-password-3", 3, "Jos\u{E9}"),
        ("Jose\u{301}", "jose-password-4", 4, "Jose\u{301}"),
        ("bob", "bob-password-5", 5, "Bob"),
        ("EVE\u{200B}", "eve-password-6", 6, "eve\u{200B}"),
    ] {
        assert_eq!(
            login_as(&app, "/login", username, password).await,
            expect(id, shown),
            "{username:?}"
        );
    }
    assert_eq!(
        login_as(&app, "/login", "ALICE", "alice-password-2").await,
        Err(StatusCode::UNAUTHORIZED)
    );
    assert_conflict(&app, "ALICE", PASSWORD).await;
    assert_conflict(&app, "alice", PASSWORD).await;
    assert_conflict(&app, "bob", PASSWORD).await;
    assert_eq!(app.register("carol", PASSWORD).await.status(), 201);
    let (carol, _) = login_as(&app, "/login", "carol", PASSWORD)
        .await
        .expect("login");
    assert!(carol > admin.id, "{carol}");

    // The rebuilt table kept Bob's session.
    let token = forge(flask_payload(5, json!({"sid": sid})), TEST_KEY);
    let sessions: Value = app
        .get("/sessions", Some(&token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(sessions[0]["id"], sid.as_str(), "{sessions}");

    // A restart settles nothing again.
    let again = app.spawn_sibling().await;
    assert_eq!(
        login_as(&again, "/login", "alice", "alice-password-2").await,
        expect(2, "alice")
    );
    assert_eq!(
        login_as(&again, "/login", "ALICE", "alice-password-1").await,
        expect(1, "Alice")
    );

    // When the holder goes, the newer look-alike takes the name over: it is not free
    // for someone else.
    let resp = app.delete("/user/1", Some(&admin.tokens.access)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_conflict(&app, "Alice", PASSWORD).await;
    for username in ["alice", "ALICE", "Alice"] {
        assert_eq!(
            login_as(&app, "/login", username, "alice-password-2").await,
            expect(2, "alice"),
            "{username:?}"
        );
    }
}
