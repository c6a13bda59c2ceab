//! What the tests check of an answer: the contract's error shape, JSON bodies, lists
//! and their totals, and resources compared by value.

use std::future::Future;

use reqwest::header::HeaderMap;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use super::app::TestApp;
use super::fixtures::{Tokens, TEST_KEY};

/// Secrets that must never appear in an error body.
pub const LEAKS: [&str; 3] = ["password_hash", "$2b$", TEST_KEY];

/// An answer read whole, for the checks that need its headers and its text at once, and
/// for answers kept to be judged later.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub async fn read(resp: Response) -> Reply {
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        Reply {
            status,
            headers,
            text,
        }
    }

    /// A header's value, when present and ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What the error assertions judge: a response, or one already read.
pub trait Answer {
    fn reply(self) -> impl Future<Output = Reply>;
}

impl Answer for Response {
    async fn reply(self) -> Reply {
        Reply::read(self).await
    }
}

impl Answer for Reply {
    async fn reply(self) -> Reply {
        self
    }
}

/// Asserts an error answer of `status` with the code `error`, in the contract's shape
/// (see `assert_error_shape`); returns the body for further checks.
pub async fn assert_error(answer: impl Answer, status: u16, error: &str) -> Value {
    let reply = answer.reply().await;
    assert_eq!(
        reply.status.as_u16(),
        status,
        "status (body: {})",
        reply.text
    );
    let body = assert_error_shape(reply).await;
    assert_eq!(body["error"], error, "{body}");
    body
}

/// Asserts the contract's error shape, whatever the status: a JSON body of exactly
/// `code` (the status), `status` (its reason phrase), `error` and `message` (non-empty),
/// plus `errors` on a 422 only, listing fields; the RFC 6750 challenge on a 401; and no
/// secret anywhere in it. Returns the body.
pub async fn assert_error_shape(answer: impl Answer) -> Value {
    let reply = answer.reply().await;
    let (status, text) = (reply.status, &reply.text);
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "content type of {status} {text}"
    );
    let body: Value = serde_json::from_str(text).expect("error body is JSON");
    assert_eq!(body["code"], status.as_u16(), "{text}");
    let reason = status.canonical_reason().expect("reason phrase");
    assert_eq!(body["status"], reason, "{text}");
    assert!(
        body["error"].as_str().is_some_and(|s| !s.is_empty()),
        "{text}"
    );
    assert!(
        body["message"].as_str().is_some_and(|s| !s.is_empty()),
        "{text}"
    );
    for key in body.as_object().expect("object").keys() {
        assert!(
            ["code", "status", "error", "message", "errors"].contains(&key.as_str()),
            "unexpected key {key}: {text}"
        );
    }
    if status == StatusCode::UNPROCESSABLE_ENTITY {
        let locations = body["errors"].as_object().expect("a 422 has errors");
        assert!(
            locations
                .keys()
                .all(|l| ["json", "query", "path"].contains(&l.as_str())),
            "{text}"
        );
        assert!(
            locations
                .values()
                .any(|fields| fields.as_object().is_some_and(|f| !f.is_empty())),
            "a 422 lists its fields: {text}"
        );
    } else {
        assert!(body.get("errors").is_none(), "{text}");
    }
    if status == StatusCode::UNAUTHORIZED {
        let challenge = reply
            .header("www-authenticate")
            .expect("401 carries WWW-Authenticate");
        assert!(challenge.starts_with("Bearer"), "{challenge}");
    }
    for leak in LEAKS {
        assert!(!text.contains(leak), "{leak} in {text}");
    }
    body
}

/// A 422 `validation_error` listing exactly `fields` under `errors.<location>`, each
/// with at least one problem sentence; returns the body.
pub async fn assert_invalid(answer: impl Answer, location: &str, fields: &[&str]) -> Value {
    let body = assert_error(answer, 422, "validation_error").await;
    assert_eq!(body["message"], "Invalid request.", "{body}");
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

/// A 200 with a JSON body; returns the body.
pub async fn ok_json(resp: Response) -> Value {
    body_of(resp, StatusCode::OK).await
}

/// GET `path`; asserts the contract's 404.
pub async fn assert_gone(app: &TestApp, path: &str, token: &str) {
    eprintln!("GET {path}: expecting 404");
    assert_error(app.get(path, Some(token)).await, 404, "not_found").await;
}

/// Both tokens of a session are refused as revoked.
pub async fn assert_revoked(app: &TestApp, tokens: &Tokens) {
    let resp = app.get("/me", Some(&tokens.access)).await;
    assert_error(resp, 401, "token_revoked").await;
    let resp = app.post("/refresh", Some(&tokens.refresh), None).await;
    assert_error(resp, 401, "token_revoked").await;
}

/// The access token of a session still works.
pub async fn assert_alive(app: &TestApp, tokens: &Tokens) {
    ok_json(app.get("/me", Some(&tokens.access)).await).await;
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
