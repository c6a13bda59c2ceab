//! Graceful shutdown of the real binary: SIGTERM while a request is in flight lets that
//! request finish, then the process exits cleanly.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[tokio::test]
async fn sigterm_lets_the_in_flight_login_finish_then_exits_cleanly() {
    let dir = tempfile::tempdir().expect("dir");
    let env = [
        ("APP_ENV", "test".to_owned()),
        ("DATA_DIR", dir.path().display().to_string()),
        (
            "DATABASE_URL",
            dir.path().join("shutdown.db").display().to_string(),
        ),
        (
            "JWT_SECRET_KEY",
            "shutdown-test-key-shutdown-test-key-0123".to_owned(),
        ),
        // Slow enough hashing that the login is still running when SIGTERM arrives.
        ("BCRYPT_COST", "13".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ];
    let (mut server, base) = common::start(&env, common::free_port(), Stdio::null()).await;
    let client = reqwest::Client::new();
    let creds = json!({"username": "slowpoke", "password": "slow-password-1"});
    let resp = client
        .post(format!("{base}/register"))
        .json(&creds)
        .send()
        .await
        .expect("register");
    assert_eq!(resp.status(), 201);

    let login = tokio::spawn({
        let (client, base, creds) = (client.clone(), base.clone(), creds.clone());
        async move {
            client
                .post(format!("{base}/login"))
                .json(&creds)
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    common::terminate(&server);

    let resp = login
        .await
        .expect("task")
        .expect("the in-flight login is answered");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    assert!(body["access_token"].is_string());

    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "server did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "exit status {status}");
    // New connections are refused once it is gone.
    assert!(client.get(format!("{base}/health")).send().await.is_err());
}
