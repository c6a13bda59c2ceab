//! Two instances on one database, as behind a load balancer: a revocation on one is
//! enforced by the other within the contract's one second, while everyone else's
//! tokens keep working there.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_error, flask_payload, forge, TestApp, TestUser, TEST_KEY};

/// API.md: a logout holds on every instance within one second.
const PROPAGATION_BOUND: Duration = Duration::from_secs(1);

/// Two instances sharing one database, and a bystander whose tokens must keep working.
async fn cluster() -> (TestApp, TestApp, TestUser) {
    let a = TestApp::spawn().await;
    let b = a.spawn_sibling().await;
    let bystander = a.user().await;
    (a, b, bystander)
}

/// GET /me on `app` answers 200 for `token`.
async fn assert_accepted(app: &TestApp, token: &str, what: &str) {
    let resp = app.get("/me", Some(token)).await;
    let status = resp.status();
    let text = resp.text().await.expect("body");
    assert_eq!(status, StatusCode::OK, "{what} (body: {text})");
}

/// Polls GET /me on `app` every 50 ms until `token` gets a 401, and asserts that it
/// is token_revoked and comes within the bound; `bystander` stays accepted meanwhile.
async fn refused_within_a_second(app: &TestApp, token: &str, bystander: &TestUser) {
    let started = Instant::now();
    loop {
        let resp = app.get("/me", Some(token)).await;
        // Until the revocation arrives the token passes the check, and what the route
        // then finds (a 404 for a deleted user) is not the answer under test.
        if resp.status() == StatusCode::UNAUTHORIZED {
            assert_error(resp, 401, "token_revoked").await;
            break;
        }
        assert!(
            started.elapsed() < PROPAGATION_BOUND,
            "still accepted on the other instance after {:?}",
            started.elapsed()
        );
        assert_accepted(app, &bystander.tokens.access, "the bystander").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_accepted(app, &bystander.tokens.access, "the bystander").await;
}

/// POST /refresh with a refresh token on `app` is refused as revoked.
async fn refresh_refused(app: &TestApp, refresh_token: &str) {
    let resp = app.post("/refresh", Some(refresh_token), None).await;
    assert_error(resp, 401, "token_revoked").await;
}

#[actix_web::test]
async fn a_logout_on_one_instance_holds_on_the_other_within_a_second() {
    let (a, b, bystander) = cluster().await;
    let alice = a.user().await;
    assert_accepted(&b, &alice.tokens.access, "alice on B before the logout").await;

    let resp = a.post("/logout", Some(&alice.tokens.access), None).await;
    assert_eq!(resp.status(), StatusCode::OK);

    refused_within_a_second(&b, &alice.tokens.access, &bystander).await;
    refresh_refused(&b, &alice.tokens.refresh).await;
    assert_accepted(&b, &bystander.tokens.access, "the bystander").await;
}

#[actix_web::test]
async fn a_session_opened_on_one_instance_is_accepted_at_once_by_the_other() {
    let (a, b, _) = cluster().await;
    // No wait between the login on A and the first use on B.
    let alice = a.user().await;
    assert_accepted(&b, &alice.tokens.access, "a brand-new session on B").await;
    let resp = b.post("/refresh", Some(&alice.tokens.refresh), None).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[actix_web::test]
async fn refresh_token_reuse_on_one_instance_revokes_the_session_on_the_other() {
    let (a, b, bystander) = cluster().await;
    let alice = a.user().await;
    let rotated: Value = a
        .post("/refresh", Some(&alice.tokens.refresh), None)
        .await
        .json()
        .await
        .expect("json");
    let new_access = rotated["access_token"].as_str().expect("access").to_owned();
    let new_refresh = rotated["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    assert_accepted(&b, &new_access, "the rotated access token on B").await;

    // The spent refresh token presented again: reuse.
    let resp = a.post("/refresh", Some(&alice.tokens.refresh), None).await;
    assert_error(resp, 401, "token_revoked").await;

    refused_within_a_second(&b, &new_access, &bystander).await;
    refused_within_a_second(&b, &alice.tokens.access, &bystander).await;
    refresh_refused(&b, &new_refresh).await;
}

#[actix_web::test]
async fn deleting_a_user_on_one_instance_refuses_their_tokens_on_the_other() {
    let (a, b, bystander) = cluster().await;
    let admin = a.admin().await;
    let alice = a.user().await;
    // A token minted by a Flask service sharing the key: no session to revoke.
    let flask = forge(flask_payload(alice.id, json!({})), TEST_KEY);
    assert_accepted(&b, &alice.tokens.access, "alice on B").await;
    assert_accepted(&b, &flask, "alice's sid-less token on B").await;

    let resp = a
        .delete(&format!("/user/{}", alice.id), Some(&admin.tokens.access))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);

    refused_within_a_second(&b, &alice.tokens.access, &bystander).await;
    refused_within_a_second(&b, &flask, &bystander).await;
    refresh_refused(&b, &alice.tokens.refresh).await;
}

#[actix_web::test]
async fn an_admin_revoke_on_one_instance_holds_on_the_other() {
    let (a, b, bystander) = cluster().await;
    let admin = a.admin().await;
    let alice = a.user().await;
    let second = a.login(&alice.username, &alice.password).await;
    assert_accepted(&b, &alice.tokens.access, "alice on B").await;

    let resp = a
        .post(
            &format!("/user/{}/revoke", alice.id),
            Some(&admin.tokens.access),
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);

    refused_within_a_second(&b, &alice.tokens.access, &bystander).await;
    refused_within_a_second(&b, &second.access, &bystander).await;
    refresh_refused(&b, &second.refresh).await;
    // The admin's own session was not touched.
    assert_accepted(&b, &admin.tokens.access, "the admin").await;
}

#[actix_web::test]
async fn a_session_ended_by_the_session_cap_is_refused_on_the_other_instance() {
    let a = TestApp::spawn_with(|s| s.tokens.max_sessions_per_user = 1).await;
    let b = a.spawn_sibling().await;
    let bystander = a.user().await;
    let user = a.user().await;
    assert_accepted(&b, &user.tokens.access, "the first session").await;
    // A second login on A ends the first session: B learns it from the revocation log.
    let second = a.login(&user.username, &user.password).await;
    refused_within_a_second(&b, &user.tokens.access, &bystander).await;
    refresh_refused(&b, &user.tokens.refresh).await;
    assert_accepted(&b, &second.access, "the second session").await;
}
