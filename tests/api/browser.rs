//! What SPAs and operators see: CORS preflights and request ids.

use reqwest::{Method, StatusCode};

use crate::helpers::{assert_error, TestApp};

const SPA: &str = "https://app.example.com";

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.call(Method::OPTIONS, "/me")
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "GET")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
        .send()
        .await
}

#[actix_web::test]
async fn an_allowed_origin_may_send_an_authorization_header() {
    let app = TestApp::spawn_with(|s| s.http.cors_allowed_origins = vec![SPA.into()]).await;
    let resp = preflight(&app, SPA).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["access-control-allow-origin"], SPA);
    let allowed = resp.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization"), "{allowed}");

    // The real request then carries the CORS headers and exposes the list total.
    let user = app.user().await;
    let resp = app
        .call(Method::GET, "/sessions")
        .header("Origin", SPA)
        .bearer(Some(&user.tokens.access))
        .send()
        .await;
    assert_eq!(resp.headers()["access-control-allow-origin"], SPA);
    let exposed = resp.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("x-total-count"), "{exposed}");
}

#[actix_web::test]
async fn another_origin_is_refused_in_the_contract_shape() {
    let app = TestApp::spawn_with(|s| s.http.cors_allowed_origins = vec![SPA.into()]).await;
    let resp = preflight(&app, "https://evil.example.com").await;
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
    assert_error(resp, 400, "bad_request").await;
}

#[actix_web::test]
async fn with_no_origin_configured_no_browser_origin_is_allowed() {
    let app = TestApp::spawn().await;
    let resp = preflight(&app, SPA).await;
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
}

#[actix_web::test]
async fn every_response_carries_a_request_id_and_a_sane_client_id_is_kept() {
    let app = TestApp::spawn().await;
    let a = app.get("/health", None).await;
    let b = app.get("/nowhere", None).await;
    let id_a = a.headers()["x-request-id"].to_str().unwrap().to_string();
    let id_b = b.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&id_a).is_ok(), "{id_a}");
    assert_ne!(id_a, id_b);

    let kept = app
        .call(Method::GET, "/health")
        .header("X-Request-Id", "trace-42.a_b")
        .send()
        .await;
    assert_eq!(kept.headers()["x-request-id"], "trace-42.a_b");
    let replaced = app
        .call(Method::GET, "/health")
        .header("X-Request-Id", "bad id\twith spaces")
        .send()
        .await;
    assert_ne!(replaced.headers()["x-request-id"], "bad id\twith spaces");
}
