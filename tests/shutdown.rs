//! Graceful shutdown of the real binary: SIGTERM while a request is in flight lets that
//! request finish, then the process exits cleanly.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test]
async fn sigterm_lets_the_in_flight_login_finish_then_exits_cleanly() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_stores-api"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("APP_ENV", "test")
        .env("PORT", port.to_string())
        .env("DATA_DIR", dir.path())
        .env("DATABASE_URL", dir.path().join("shutdown.db"))
        .env("JWT_SECRET_KEY", "shutdown-test-key-shutdown-test-key-0123")
        // Slow enough hashing that the login is still running when SIGTERM arrives.
        .env("BCRYPT_COST", "13")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("server starts");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(format!("{base}/health")).send().await.is_err() {
        assert!(Instant::now() < deadline, "server did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());

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
