//! What the tests check of an answer: the contract's error shape, JSON bodies, lists
//! and their totals, and resources compared by value.

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use super::app::TestApp;
use super::fixtures::TEST_KEY;

/// Asserts the contract's error shape, status and code (and the RFC 6750 challenge on
/// 401s); returns the body for further checks.
pub async fn assert_error(resp: Response, status: u16, error: &str) -> Value {
    let got = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap_or("").to_string());
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_string());
    let text = resp.text().await.expect("body");
    assert_eq!(got, status, "status (body: {text})");
    assert_eq!(
        content_type.as_deref(),
        Some("application/json"),
        "content type"
    );
    let body: Value = serde_json::from_str(&text).expect("error body is JSON");
    assert_eq!(body["code"], status, "{text}");
    assert_eq!(body["error"], error, "{text}");
    assert!(
        body["status"].as_str().is_some_and(|s| !s.is_empty()),
        "{text}"
    );
    assert!(
        body["message"].as_str().is_some_and(|s| !s.is_empty()),
        "{text}"
    );
    if status == 401 {
        let challenge = challenge.expect("401 carries WWW-Authenticate");
        assert!(challenge.starts_with("Bearer"), "{challenge}");
    }
    body
}

/// Secrets that must never appear in an error body.
pub const LEAKS: [&str; 3] = ["password_hash", "$2b$", TEST_KEY];

/// `assert_error`, plus: `status` is the reason phrase of `code`, the message is the
/// contract's when given, the body has no keys beyond the contract's (`errors` only on
/// a 422), and nothing secret is in it.
pub async fn expect_error(
    resp: Response,
    status: u16,
    error: &str,
    message: Option<&str>,
) -> Value {
    let body = assert_error(resp, status, error).await;
    let reason = StatusCode::from_u16(status)
        .expect("status")
        .canonical_reason()
        .expect("reason phrase");
    assert_eq!(body["status"], reason, "{body}");
    if let Some(message) = message {
        assert_eq!(body["message"], message, "{body}");
    }
    for key in body.as_object().expect("object").keys() {
        assert!(
            ["code", "status", "error", "message", "errors"].contains(&key.as_str()),
            "unexpected key {key}: {body}"
        );
    }
    if status == 422 {
        assert!(
            body["errors"]["json"]
                .as_object()
                .or(body["errors"]["query"].as_object())
                .is_some_and(|fields| !fields.is_empty()),
            "a 422 lists its fields: {body}"
        );
    } else {
        assert!(body.get("errors").is_none(), "{body}");
    }
    let text = body.to_string();
    for leak in LEAKS {
        assert!(!text.contains(leak), "{leak} in {text}");
    }
    body
}

/// A 422 `validation_error` listing exactly `fields` under `errors.<location>`, each
/// with at least one problem sentence; returns the body.
pub async fn expect_invalid(resp: Response, location: &str, fields: &[&str]) -> Value {
    let body = expect_error(resp, 422, "validation_error", Some("Invalid request.")).await;
    let listed = body["errors"][location]
        .as_object()
        .unwrap_or_else(|| panic!("errors.{location}: {body}"));
    let mut got: Vec<&str> = listed.keys().map(String::as_str).collect();
    got.sort_unstable();
    let mut expected = fields.to_vec();
    expected.sort_unstable();
    assert_eq!(got, expected, "fields under errors.{location}: {body}");
    for (field, problems) in listed {
        assert!(
            problems
                .as_array()
                .is_some_and(|p| !p.is_empty()
                    && p.iter().all(|s| s.as_str().is_some_and(|s| !s.is_empty()))),
            "{field}: {body}"
        );
    }
    body
}

/// Asserts the status and a JSON body; returns the body.
pub async fn body_of(resp: Response, status: StatusCode) -> Value {
    let got = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_string());
    let text = resp.text().await.expect("body");
    assert_eq!(got, status, "{text}");
    assert_eq!(
        content_type.as_deref(),
        Some("application/json"),
        "content type of {text}"
    );
    serde_json::from_str(&text).expect("JSON body")
}

/// The `X-Total-Count` header.
pub fn total_count(resp: &Response) -> i64 {
    resp.headers()
        .get("x-total-count")
        .expect("X-Total-Count header")
        .to_str()
        .expect("ASCII")
        .parse()
        .expect("a number")
}

/// A 200 list: its X-Total-Count and its body.
pub async fn list_of(resp: Response) -> (i64, Value) {
    let total = total_count(&resp);
    let body = body_of(resp, StatusCode::OK).await;
    assert!(body.is_array(), "a list: {body}");
    (total, body)
}

/// GET `path` as a list: (X-Total-Count, body).
pub async fn get_list(app: &TestApp, path: &str, token: Option<&str>) -> (i64, Value) {
    list_of(app.get(path, token).await).await
}

/// GET `path`; asserts 200.
pub async fn fetch(app: &TestApp, path: &str, token: &str) -> Value {
    body_of(app.get(path, Some(token)).await, StatusCode::OK).await
}

/// GET `path`; asserts the contract's 404.
pub async fn assert_gone(app: &TestApp, path: &str, token: &str) {
    eprintln!("GET {path}: expecting 404");
    expect_error(app.get(path, Some(token)).await, 404, "not_found", None).await;
}

pub fn id_of(value: &Value) -> i64 {
    value["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("an integer id: {value}"))
}

pub fn ids(list: &Value) -> Vec<i64> {
    list.as_array().expect("a list").iter().map(id_of).collect()
}

/// JSON equality where numbers compare by value (a price may come back as 5 or 5.0).
fn same(got: &Value, expected: &Value) -> bool {
    match (got, expected) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w)))
        }
        _ => got == expected,
    }
}

/// Asserts that `got` is exactly `expected` (same keys, nothing more), numbers by value.
pub fn assert_same(got: &Value, expected: &Value) {
    assert!(same(got, expected), "got {got}\nexpected {expected}");
}

/// `{"id", "name"}` of a store, item or tag: what nested references show.
pub fn reference(value: &Value) -> Value {
    json!({"id": value["id"], "name": value["name"]})
}

/// `{"id", "name", "price"}` of an item: what a store's or a tag's items show.
pub fn item_summary(item: &Value) -> Value {
    json!({"id": item["id"], "name": item["name"], "price": item["price"]})
}
