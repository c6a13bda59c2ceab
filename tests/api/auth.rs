//! Register, login, refresh, logout: the client stories of the auth flow.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_error, TestApp, PASSWORD};

#[actix_web::test]
async fn register_then_login_gives_a_fresh_bearer_token_pair() {
    let app = TestApp::spawn().await;
    let resp = app.register("alice", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"message": "User created successfully."}));

    let resp = app.try_login("alice", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let access = body["access_token"].as_str().unwrap();
    let me: Value = app.get("/me", Some(access)).await.json().await.unwrap();
    assert_eq!(me["username"], "alice");
    assert_eq!(me["is_admin"], false);
    assert!(me.get("password_hash").is_none());
}

#[actix_web::test]
async fn login_then_refresh_gives_a_non_fresh_token_and_spends_the_old_one() {
    let app = TestApp::spawn().await;
    let mut user = app.user().await;
    let old_refresh = user.tokens.refresh.clone();
    let non_fresh = app.non_fresh_access(&mut user).await;
    let resp = app
        .delete(&format!("/user/{}", user.id), Some(&non_fresh))
        .await;
    assert_error(resp, 401, "fresh_token_required").await;

    // Reuse of the spent refresh token revokes the whole session.
    let resp = app.post("/refresh", Some(&old_refresh), None).await;
    assert_error(resp, 401, "token_revoked").await;
    assert_error(app.get("/me", Some(&non_fresh)).await, 401, "token_revoked").await;
    let resp = app.post("/refresh", Some(&user.tokens.refresh), None).await;
    assert_error(resp, 401, "token_revoked").await;
}

#[actix_web::test]
async fn logout_revokes_access_and_refresh_tokens_of_the_session() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let resp = app.post("/logout", Some(&user.tokens.access), None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"message": "Successfully logged out"}));
    assert_error(
        app.get("/me", Some(&user.tokens.access)).await,
        401,
        "token_revoked",
    )
    .await;
    let resp = app.post("/refresh", Some(&user.tokens.refresh), None).await;
    assert_error(resp, 401, "token_revoked").await;
}

#[actix_web::test]
async fn wrong_password_and_unknown_user_get_the_same_answer() {
    let app = TestApp::spawn().await;
    app.user().await;
    let wrong = app.try_login("admin", "nope-nope").await;
    let a = assert_error(wrong, 401, "invalid_credentials").await;
    let unknown = app.try_login("ghost", "nope-nope").await;
    let b = assert_error(unknown, 401, "invalid_credentials").await;
    assert_eq!(a, b);
}
