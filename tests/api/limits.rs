//! Brute-force limits: per-address floods and per-username failures get 429.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_error, TestApp, PASSWORD};

#[actix_web::test]
async fn a_flood_of_logins_from_one_address_gets_429_with_retry_after() {
    let app = TestApp::spawn_with(&[("AUTH_RATE_LIMIT_PER_MINUTE", "3")]).await;
    let body = json!({"username": "nobody", "password": "wrong-password"});
    for _ in 0..3 {
        let resp = app.post("/login", None, Some(body.clone())).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = app.post("/login", None, Some(body.clone())).await;
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_error(resp, 429, "too_many_requests").await;
    // Each endpoint has its own budget.
    let resp = app.register("someone", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
}

#[actix_web::test]
async fn repeated_failures_lock_the_username_even_for_the_right_password() {
    let app = TestApp::spawn_with(&[
        ("LOGIN_FAILURE_LIMIT", "3"),
        ("AUTH_RATE_LIMIT_PER_MINUTE", "0"),
    ])
    .await;
    let victim = app.user().await;
    let other = app.user().await;
    for _ in 0..3 {
        let resp = app
            .post(
                "/login",
                None,
                Some(json!({"username": victim.username, "password": "wrong-password"})),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = app
        .post(
            "/login",
            None,
            Some(json!({"username": victim.username, "password": PASSWORD})),
        )
        .await;
    assert!(
        resp.headers().contains_key("retry-after"),
        "{:?}",
        resp.status()
    );
    assert_error(resp, 429, "too_many_requests").await;
    // Another account is not affected.
    app.login(&other.username, PASSWORD).await;
}

#[actix_web::test]
async fn zero_turns_the_limits_off() {
    let app = TestApp::spawn_with(&[
        ("AUTH_RATE_LIMIT_PER_MINUTE", "0"),
        ("LOGIN_FAILURE_LIMIT", "0"),
    ])
    .await;
    let body = json!({"username": "nobody", "password": "wrong-password"});
    for _ in 0..70 {
        let resp = app.post("/login", None, Some(body.clone())).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
}
