//! The real binary as a process of its own, for the tests that need one (signals, the
//! log it writes).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts `stores-api` with only `env` (and PATH) on `port`, its stderr to `stderr`,
/// and waits until it answers /health; returns the process and its base URL.
pub async fn start(env: &[(&str, String)], port: u16, stderr: Stdio) -> (Child, String) {
    let server = Command::new(env!("CARGO_BIN_EXE_stores-api"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", port.to_string())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("server starts");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(format!("{base}/health")).send().await.is_err() {
        assert!(Instant::now() < deadline, "server did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (server, base)
}

/// Sends SIGTERM, as a service manager does.
pub fn terminate(server: &Child) {
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
}
