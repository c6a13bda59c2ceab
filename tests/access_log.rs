//! The access log of the real binary: one line per request with the client's address
//! (from X-Forwarded-For only behind a trusted proxy), method, path, status and request
//! id, and never a token or a password.

mod common;

use std::process::Stdio;

use serde_json::json;

#[tokio::test]
async fn each_request_is_one_line_with_the_client_address_and_no_secret() {
    let dir = tempfile::tempdir().expect("dir");
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let env = [
        ("APP_ENV", "test".to_owned()),
        ("DATA_DIR", dir.path().display().to_string()),
        (
            "DATABASE_URL",
            dir.path().join("log.db").display().to_string(),
        ),
        (
            "JWT_SECRET_KEY",
            "access-log-test-key-access-log-test-key".to_owned(),
        ),
        ("BCRYPT_COST", "4".to_owned()),
        ("TRUSTED_PROXIES", "127.0.0.1".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ];
    let (mut server, base) = common::start(&env, common::free_port(), Stdio::from(log)).await;
    let client = reqwest::Client::new();

    let creds = json!({"username": "logged", "password": "a-password-nobody-logs"});
    let resp = client
        .post(format!("{base}/register"))
        .header("X-Forwarded-For", "198.51.100.23")
        .json(&creds)
        .send()
        .await
        .expect("register");
    assert_eq!(resp.status(), 201);
    let resp = client
        .get(format!("{base}/me?probe=1"))
        .header("X-Forwarded-For", "10.9.8.7, 203.0.113.9")
        .bearer_auth("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.not-a-real-signature")
        .send()
        .await
        .expect("me");
    assert_eq!(resp.status(), 401);
    let request_id = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("X-Request-Id")
        .to_owned();

    common::terminate(&server);
    let _ = server.wait();
    let text = std::fs::read_to_string(&log_path).expect("log");

    let register: Vec<&str> = text.lines().filter(|l| l.contains("/register")).collect();
    assert_eq!(register.len(), 1, "{text}");
    assert!(
        register[0].contains("198.51.100.23 \"POST /register\" 201"),
        "{text}"
    );
    // "GET /me", not "/me": the start-up line names the metrics' URL, .../metrics.
    let me: Vec<&str> = text.lines().filter(|l| l.contains("GET /me")).collect();
    assert_eq!(me.len(), 1, "{text}");
    // The right-most address a trusted proxy appended; no query string.
    assert!(me[0].contains("203.0.113.9 \"GET /me\" 401"), "{text}");
    assert!(me[0].contains(&format!("rid={request_id}")), "{text}");
    for secret in [
        "a-password-nobody-logs",
        "eyJhbGciOiJIUzI1NiJ9",
        "not-a-real-signature",
    ] {
        assert!(!text.contains(secret), "the log holds {secret}:\n{text}");
    }
}

/// The lines of a log file as JSON objects; each line must be one.
fn json_lines(text: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    text.lines()
        .map(|line| match serde_json::from_str(line) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => panic!("a line that is not a JSON object: {line}\n{text}"),
        })
        .collect()
}

#[tokio::test]
async fn with_log_format_json_every_line_is_a_json_object_with_the_request_fields() {
    let dir = tempfile::tempdir().expect("dir");
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let env = [
        ("APP_ENV", "test".to_owned()),
        ("LOG_FORMAT", "json".to_owned()),
        ("DATA_DIR", dir.path().display().to_string()),
        (
            "DATABASE_URL",
            dir.path().join("log.db").display().to_string(),
        ),
        (
            "JWT_SECRET_KEY",
            "access-log-test-key-access-log-test-key".to_owned(),
        ),
        ("BCRYPT_COST", "4".to_owned()),
        ("TRUSTED_PROXIES", "127.0.0.1".to_owned()),
        // The second login ends the first session, which the login flow logs.
        ("MAX_SESSIONS_PER_USER", "1".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ];
    let (mut server, base) = common::start(&env, common::free_port(), Stdio::from(log)).await;
    let client = reqwest::Client::new();

    let resp = client
        .get(format!("{base}/item/123?probe=1"))
        .header("X-Request-Id", "json-log-marker-1")
        .header("X-Forwarded-For", "198.51.100.77")
        .send()
        .await
        .expect("item");
    assert_eq!(resp.status(), 401, "an item needs a token");
    let creds = json!({"username": "jsonlogged", "password": "a-password-nobody-logs"});
    let resp = client
        .post(format!("{base}/register"))
        .json(&creds)
        .send()
        .await
        .expect("register");
    assert_eq!(resp.status(), 201);
    for marker in ["json-log-marker-2", "json-log-marker-3"] {
        let resp = client
            .post(format!("{base}/login"))
            .header("X-Request-Id", marker)
            .json(&creds)
            .send()
            .await
            .expect("login");
        assert_eq!(resp.status(), 200);
    }

    common::terminate(&server);
    let _ = server.wait();
    let text = std::fs::read_to_string(&log_path).expect("log");
    let lines = json_lines(&text);
    for line in &lines {
        for field in ["time", "level", "target", "message"] {
            assert!(line[field].is_string(), "{field} in {line:?}");
        }
    }
    assert!(
        lines.iter().any(|l| l["target"] == "stores_api::startup"
            && l["message"]
                .as_str()
                .is_some_and(|m| m.contains("listening on"))),
        "the start-up line: {text}"
    );

    let item: Vec<_> = lines
        .iter()
        .filter(|l| l["target"] == "access" && l["path"] == "/item/123")
        .collect();
    assert_eq!(item.len(), 1, "{text}");
    let item = item[0];
    assert_eq!(item["method"], "GET");
    assert_eq!(item["route"], "/item/{id}", "the route template");
    assert_eq!(item["status"], 401);
    assert_eq!(item["request_id"], "json-log-marker-1");
    assert_eq!(item["client_ip"], "198.51.100.77");
    assert!(
        item["duration_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{item:?}"
    );
    assert!(item["bytes"].as_u64().is_some_and(|b| b > 0), "{item:?}");

    // A line the login flow logs while serving the second login carries its request id.
    let ended: Vec<_> = lines
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("MAX_SESSIONS_PER_USER"))
        })
        .collect();
    assert_eq!(ended.len(), 1, "{text}");
    assert_eq!(ended[0]["request_id"], "json-log-marker-3", "{text}");
    assert!(
        !text.contains("a-password-nobody-logs"),
        "the log holds the password:\n{text}"
    );
}
