//! Property test over HTTP: arbitrary JSON bodies sent to every route that reads one,
//! with a fresh admin token, never get a 500, and every answer that is not a success is
//! in the contract's error shape. The parsers' own properties are in tests/props.rs.

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_error_shape, Reply, TestApp};
use crate::json_strategies::{json_object, json_value};

/// Bodies per route: enough to hit every field with every type, few enough to keep the
/// test to seconds.
const CASES: usize = 64;

#[actix_web::test]
async fn arbitrary_json_bodies_never_get_a_500_and_every_error_has_the_contract_shape() {
    // Limiters off: hundreds of /login and /register requests are the point here.
    let app = TestApp::spawn_with(|s| {
        s.limits.auth_per_minute = 0;
        s.limits.login_failures = 0;
    })
    .await;
    let admin = app.admin().await;
    let token = admin.tokens.access.as_str();
    let target = app.user().await;
    let store: Value = app
        .post("/store", Some(token), Some(json!({"name": "props"})))
        .await
        .json()
        .await
        .expect("store");
    let store_id = store["id"].as_i64().expect("store id");
    let item: Value = app
        .post(
            "/item",
            Some(token),
            Some(json!({"name": "thing", "price": 1.5, "store_id": store_id})),
        )
        .await
        .json()
        .await
        .expect("item");
    let item_id = item["id"].as_i64().expect("item id");
    let routes = [
        (Method::POST, "/register".to_string()),
        (Method::POST, "/login".to_string()),
        (Method::POST, "/fresh-login".to_string()),
        (Method::PUT, "/me/password".to_string()),
        (Method::POST, "/store".to_string()),
        (Method::POST, "/item".to_string()),
        (Method::PUT, format!("/item/{item_id}")),
        (Method::POST, format!("/store/{store_id}/tag")),
        (Method::PATCH, format!("/user/{}", target.id)),
    ];

    // Objects most of the time (they reach the field parsers), any JSON value else.
    let strategy = proptest::prop_oneof![
        3 => json_object().prop_map(Value::Object),
        1 => json_value(),
    ];
    let mut runner = TestRunner::default();
    for _ in 0..CASES {
        let body = strategy
            .new_tree(&mut runner)
            .expect("a generated body")
            .current();
        for (method, path) in &routes {
            let resp = app
                .request(method.clone(), path, Some(token), Some(body.clone()))
                .await;
            let reply = Reply::read(resp).await;
            let context = format!(
                "{method} {path} with {body}: {} {}",
                reply.status, reply.text
            );
            assert!(reply.status.as_u16() < 500, "{context}");
            if reply.status.is_success() {
                continue;
            }
            eprintln!("{context}");
            assert_error_shape(reply).await;
        }
    }
}
