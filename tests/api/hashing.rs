//! Password hashing runs on a bounded pool: a login storm beyond its queue waits for a
//! place up to PASSWORD_HASH_WAIT and is then shed with 503 and Retry-After, never a 500,
//! and the rest of the API keeps answering. One user (a username at /login, a token at
//! PUT /me/password) has at most PASSWORD_HASH_PER_USER checks in flight. A login rehashes a password stored at another cost than the
//! configured one.

use std::time::Duration;

use diesel::prelude::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use stores_api::db;
use stores_api::schema::users;
use stores_api::startup::Application;
use tokio::task::JoinSet;

use crate::helpers::{assert_error, credentials, TestApp, PASSWORD};

#[actix_web::test]
async fn a_login_storm_beyond_the_queue_is_shed_with_503_and_retry_after() {
    // One hashing thread, one waiting slot, slow hashes: most of a burst cannot fit.
    // No admin bootstrap, so no hash is running when the burst starts.
    let app = TestApp::spawn_with(|s| {
        s.passwords.bcrypt_cost = 10;
        s.passwords.hash_threads = 1;
        s.passwords.hash_queue = 1;
        s.passwords.hash_wait = Duration::ZERO;
        s.limits.auth_per_minute = 0;
        s.limits.login_failures = 0;
        s.admin = None;
    })
    .await;
    let mut storm = JoinSet::new();
    for i in 0..12 {
        let request = app
            .call(Method::POST, "/login")
            .json(&credentials(&format!("nobody-{i}"), "wrong-password"));
        storm.spawn(request.send());
    }
    // Answered while the pool is busy (status only: timings are the load kit's business).
    let health = app.get("/health", None).await;
    assert_eq!(health.status(), StatusCode::OK);

    let (mut shed, mut answered) = (0, 0);
    while let Some(joined) = storm.join_next().await {
        let resp = joined.expect("login task");
        match resp.status() {
            StatusCode::UNAUTHORIZED => answered += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                shed += 1;
                let retry_after: u64 = resp.headers()["retry-after"]
                    .to_str()
                    .expect("ascii")
                    .parse()
                    .expect("seconds");
                assert!(retry_after >= 1, "{retry_after}");
                assert_error(resp, 503, "service_unavailable").await;
            }
            other => panic!("a login in the storm got {other}"),
        }
    }
    assert!(shed >= 1, "nothing was shed ({answered} answered)");
    assert!(answered >= 1, "nothing was hashed ({shed} shed)");

    // Once the storm is over, logins are hashed again.
    let resp = app.try_login("nobody", "wrong-password").await;
    assert_error(resp, 401, "invalid_credentials").await;
}

#[actix_web::test]
async fn logins_beyond_the_queue_wait_for_a_place_instead_of_being_shed() {
    // One hashing thread and no queue: every login but the running one is beyond it.
    // With a wait longer than the burst takes, each gets a place in turn; with none
    // (the test above), most of them would be shed.
    let app = TestApp::spawn_with(|s| {
        s.passwords.bcrypt_cost = 8;
        s.passwords.hash_threads = 1;
        s.passwords.hash_queue = 0;
        s.passwords.hash_wait = Duration::from_secs(10);
        s.limits.auth_per_minute = 0;
        s.limits.login_failures = 0;
        s.admin = None;
    })
    .await;
    let mut burst = JoinSet::new();
    for i in 0..6 {
        let request = app
            .call(Method::POST, "/login")
            .json(&credentials(&format!("nobody-{i}"), "wrong-password"));
        burst.spawn(request.send());
    }
    while let Some(joined) = burst.join_next().await {
        assert_error(joined.expect("login task"), 401, "invalid_credentials").await;
    }
}

#[actix_web::test]
async fn an_invalid_username_waits_for_bcrypt_like_any_other_login() {
    // One hashing thread, no queue, no wait: logins that arrive together find the pool
    // busy and are shed. If an invalid username skipped the (dummy) check, none of
    // these would be, and its answer would come sooner than a real login's.
    let app = TestApp::spawn_with(|s| {
        s.passwords.bcrypt_cost = 10;
        s.passwords.hash_threads = 1;
        s.passwords.hash_queue = 0;
        s.passwords.hash_wait = Duration::ZERO;
        s.limits.auth_per_minute = 0;
        s.limits.login_failures = 0;
        s.admin = None;
    })
    .await;
    let mut burst = JoinSet::new();
    for i in 0..8 {
        let request = reqwest::Client::new()
            .post(app.url("/login"))
            .json(&json!({"username": format!("x\u{0}{i}"), "password": "wrong-password"}));
        burst.spawn(async move { request.send().await.expect("login sent") });
    }
    let (mut shed, mut answered) = (0, 0);
    while let Some(joined) = burst.join_next().await {
        let resp = joined.expect("login task");
        match resp.status() {
            StatusCode::UNAUTHORIZED => answered += 1,
            StatusCode::SERVICE_UNAVAILABLE => shed += 1,
            other => panic!("an invalid username got {other}"),
        }
    }
    assert!(answered >= 1, "nothing was hashed ({shed} shed)");
    assert!(
        shed >= 1,
        "the dummy check was skipped ({answered} answered)"
    );
}

#[actix_web::test]
async fn one_user_hammering_password_changes_leaves_the_pool_to_the_others() {
    // One hashing thread and two queue places, no wait. Without a share per user, the
    // burst takes all three places and everyone else's login is shed with 503.
    let app = TestApp::spawn_with(|s| {
        s.passwords.bcrypt_cost = 10;
        s.passwords.hash_threads = 1;
        s.passwords.hash_queue = 2;
        s.passwords.hash_wait = Duration::ZERO;
        s.limits.hashing_per_user = 2;
        s.limits.auth_per_minute = 0;
        s.limits.login_failures = 0;
        s.admin = None;
    })
    .await;
    let hammer = app.user().await;
    let bystander = app.user().await;
    let mut burst = JoinSet::new();
    for _ in 0..12 {
        let request = reqwest::Client::new()
            .put(app.url("/me/password"))
            .bearer_auth(&hammer.tokens.access)
            .json(&json!({"current_password": "wrong-password",
                          "new_password": "another-long-passphrase"}));
        burst.spawn(async move { request.send().await.expect("change sent") });
    }
    // Sent while the burst is being hashed: the third place is the bystander's.
    let resp = app
        .post(
            "/login",
            None,
            Some(json!({"username": bystander.username, "password": PASSWORD})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK, "the bystander's login");

    let (mut checked, mut refused) = (0, 0);
    while let Some(joined) = burst.join_next().await {
        let resp = joined.expect("change task");
        match resp.status() {
            StatusCode::UNPROCESSABLE_ENTITY => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                refused += 1;
                assert_eq!(
                    resp.headers()["ratelimit-policy"],
                    r#""hashing";q=2;qu="concurrent-requests""#
                );
                assert_eq!(resp.headers()["retry-after"], "1");
                assert_error(resp, 429, "too_many_requests").await;
            }
            other => panic!("a password change in the burst got {other}"),
        }
    }
    assert!(checked >= 1, "nothing was checked ({refused} refused)");
    assert!(refused >= 1, "nothing was refused ({checked} checked)");
}

/// The bcrypt cost of `username`'s stored hash, read from the database.
fn stored_cost(app: &TestApp, username: &str) -> u32 {
    let mut conn = db::pool(&app.settings.database).get().expect("connection");
    let hash: String = users::table
        .filter(users::username.eq(username))
        .select(users::password_hash)
        .first(&mut *conn)
        .expect("the user's hash");
    // `$2b$NN$...`: the cost is the second field.
    hash.split('$')
        .nth(2)
        .and_then(|cost| cost.parse().ok())
        .unwrap_or_else(|| panic!("not a bcrypt hash: {}", &hash[..7]))
}

#[actix_web::test]
async fn a_login_rehashes_a_password_stored_at_another_cost() {
    let a = TestApp::spawn().await;
    assert_eq!(a.settings.passwords.bcrypt_cost, 4);
    for name in ["by-login", "by-fresh-login", "by-wrong-password"] {
        assert_eq!(
            a.register(name, PASSWORD).await.status(),
            StatusCode::CREATED
        );
        assert_eq!(stored_cost(&a, name), 4);
    }
    // The operator raises BCRYPT_COST: an instance with cost 5 on the same database.
    let mut settings = a.settings.clone();
    settings.passwords.bcrypt_cost = 5;
    let b = Application::build(settings).await.expect("starts");
    let b_url = format!("http://127.0.0.1:{}", b.port());
    actix_web::rt::spawn(b.run_until_stopped());
    let client = reqwest::Client::new();
    let login = |path: &'static str, name: &'static str, password: &'static str| {
        client
            .post(format!("{b_url}{path}"))
            .json(&json!({"username": name, "password": password}))
            .send()
    };

    let resp = login("/login", "by-login", PASSWORD).await.expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(stored_cost(&a, "by-login"), 5);
    let resp = login("/fresh-login", "by-fresh-login", PASSWORD)
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(stored_cost(&a, "by-fresh-login"), 5);
    let resp = login("/login", "by-wrong-password", "not-the-password")
        .await
        .expect("sent");
    assert_error(resp, 401, "invalid_credentials").await;
    assert_eq!(
        stored_cost(&a, "by-wrong-password"),
        4,
        "no rehash without a match"
    );

    // The new hash holds the same password, on either instance; one at cost 4 (a
    // lowered cost) brings it back down.
    let resp = login("/login", "by-login", PASSWORD).await.expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    a.login("by-login", PASSWORD).await;
    assert_eq!(stored_cost(&a, "by-login"), 4);
}
