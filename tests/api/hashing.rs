//! Password hashing runs on a bounded pool: a login storm beyond its queue waits for a
//! place up to PASSWORD_HASH_WAIT and is then shed with 503 and Retry-After, never a 500,
//! and the rest of the API keeps answering.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use tokio::task::JoinSet;

use crate::helpers::{assert_error, credentials, TestApp};

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
