//! Brute-force limits: per-address floods and per-username failures get 429.

use reqwest::{Method, StatusCode};
use serde_json::json;
use stores_api::config::IpNetwork;

use crate::helpers::{assert_error, credentials, TestApp, PASSWORD};

#[actix_web::test]
async fn a_flood_of_logins_from_one_address_gets_429_with_retry_after() {
    let app = TestApp::spawn_with(|s| s.limits.auth_per_minute = 3).await;
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
    let app = TestApp::spawn_with(|s| {
        s.limits.login_failures = 3;
        s.limits.auth_per_minute = 0;
    })
    .await;
    let victim = app.user().await;
    let other = app.user().await;
    for _ in 0..3 {
        let resp = app.try_login(&victim.username, "wrong-password").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = app.try_login(&victim.username, PASSWORD).await;
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
    let app = TestApp::spawn_with(|s| {
        s.limits.auth_per_minute = 0;
        s.limits.login_failures = 0;
    })
    .await;
    let body = json!({"username": "nobody", "password": "wrong-password"});
    for _ in 0..70 {
        let resp = app.post("/login", None, Some(body.clone())).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
}

/// Sends `request` until the per-address bucket of `limit` is empty and checks the 429.
async fn exhaust(what: &str, limit: usize, mut send: impl AsyncFnMut() -> reqwest::Response) {
    for n in 0..limit {
        let resp = send().await;
        assert_ne!(
            resp.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "{what}: request {n} is within the limit"
        );
    }
    let resp = send().await;
    let retry_after: u64 = resp
        .headers()
        .get("retry-after")
        .unwrap_or_else(|| panic!("{what}: no Retry-After ({})", resp.status()))
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{what}: {retry_after}");
    assert_error(resp, 429, "too_many_requests").await;
}

#[actix_web::test]
async fn fresh_login_register_and_refresh_are_limited_per_address_too() {
    let app = TestApp::spawn_with(|s| s.limits.auth_per_minute = 3).await;
    let body = json!({"username": "nobody", "password": "wrong-password"});
    exhaust("/fresh-login", 3, async || {
        app.post("/fresh-login", None, Some(body.clone())).await
    })
    .await;
    let mut n = 0;
    exhaust("/register", 3, async || {
        n += 1;
        app.register(&format!("newcomer-{n}"), PASSWORD).await
    })
    .await;
    // /refresh is judged before the token: a flood of garbage is limited as well.
    exhaust("/refresh", 3, async || {
        app.post("/refresh", Some("not-a-token"), None).await
    })
    .await;
    // Logging in still has its own budget.
    let resp = app.post("/login", None, Some(body.clone())).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

/// POST /login from this test's address, claiming to be `forwarded_for`.
async fn login_forwarded(app: &TestApp, forwarded_for: &str) -> reqwest::Response {
    app.call(Method::POST, "/login")
        .header("X-Forwarded-For", forwarded_for)
        .json(&credentials("nobody", "wrong-password"))
        .send()
        .await
}

#[actix_web::test]
async fn without_trusted_proxies_a_spoofed_x_forwarded_for_does_not_escape_the_limit() {
    let app = TestApp::spawn_with(|s| s.limits.auth_per_minute = 3).await;
    for n in 0..3 {
        let resp = login_forwarded(&app, &format!("203.0.113.{n}")).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    for spoof in ["203.0.113.99", "198.51.100.7, 203.0.113.50", "::1"] {
        let resp = login_forwarded(&app, spoof).await;
        assert_error(resp, 429, "too_many_requests").await;
    }
}

#[actix_web::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket() {
    // The test client connects from 127.0.0.1: here, that is the proxy.
    let app = TestApp::spawn_with(|s| {
        s.limits.auth_per_minute = 2;
        s.http.trusted_proxies = vec![IpNetwork::parse("127.0.0.1").expect("a block")];
    })
    .await;
    for _ in 0..2 {
        let resp = login_forwarded(&app, "203.0.113.1").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = login_forwarded(&app, "203.0.113.1").await;
    assert_error(resp, 429, "too_many_requests").await;
    // Another client behind the same proxy is not affected.
    let resp = login_forwarded(&app, "203.0.113.2").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // The left-most entries are the client's to write: the limited client cannot
    // escape by prepending one, only the right-most untrusted entry counts.
    let resp = login_forwarded(&app, "10.9.9.9, 203.0.113.1").await;
    assert_error(resp, 429, "too_many_requests").await;
    // A proxy chain ending in trusted hops: the nearest untrusted one is the client.
    let resp = login_forwarded(&app, "203.0.113.1, 127.0.0.1").await;
    assert_error(resp, 429, "too_many_requests").await;
}

#[actix_web::test]
async fn behind_a_trusted_proxy_sessions_record_the_forwarded_address() {
    let app = TestApp::spawn_with(|s| {
        s.http.trusted_proxies = vec![IpNetwork::parse("127.0.0.0/8").expect("a block")]
    })
    .await;
    app.register("dora", PASSWORD).await;
    let resp = app
        .call(Method::POST, "/login")
        .header("X-Forwarded-For", "198.51.100.23, 127.0.0.5")
        .json(&credentials("dora", PASSWORD))
        .send()
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let tokens: serde_json::Value = resp.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let sessions: serde_json::Value = app
        .get("/sessions", Some(access))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions[0]["ip"], "198.51.100.23", "{sessions}");

    // Without the setting, the same header is ignored: the peer is recorded.
    let direct = TestApp::spawn().await;
    direct.register("dora", PASSWORD).await;
    let resp = direct
        .call(Method::POST, "/login")
        .header("X-Forwarded-For", "198.51.100.23")
        .json(&credentials("dora", PASSWORD))
        .send()
        .await;
    let tokens: serde_json::Value = resp.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let sessions: serde_json::Value = direct
        .get("/sessions", Some(access))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions[0]["ip"], "127.0.0.1", "{sessions}");
}
