//! Floods a built server with distinct usernames and distinct client addresses and
//! reports its resident memory before and after: the limit maps are capped
//! (RATE_LIMIT_MAX_ENTRIES), so the process must not grow with the number of keys.
//!
//! ```text
//! cargo build --bin stores-api
//! cargo run --example limits_flood -- [SERVER_BINARY] [KEYS]
//! ```
//!
//! SERVER_BINARY defaults to target/debug/stores-api and KEYS to 100000. The server runs
//! on a fresh SQLite file on a free loopback port, behind a pretend proxy
//! (TRUSTED_PROXIES=127.0.0.0/8), so that each request names its own client address in
//! X-Forwarded-For. Settings in this process's environment (RATE_LIMIT_MAX_ENTRIES, say)
//! reach the server. Every request goes to 127.0.0.1 and the run stops by itself.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use serde_json::json;

/// Requests in flight at once: a few more than the hashing pool's threads and queue.
const CONCURRENCY: usize = 12;

/// The server's resident set in KiB, from /proc.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts the server with the flood's settings; variables already set here win.
fn start(binary: &str, port: u16, dir: &std::path::Path) -> Child {
    let mut command = Command::new(binary);
    let defaults = [
        ("APP_ENV", "test".to_owned()),
        ("HOST", "127.0.0.1".to_owned()),
        ("PORT", port.to_string()),
        ("DATA_DIR", dir.display().to_string()),
        ("DATABASE_URL", dir.join("flood.db").display().to_string()),
        (
            "JWT_SECRET_KEY",
            "limits-flood-key-limits-flood-key-0123".to_owned(),
        ),
        ("BCRYPT_COST", "4".to_owned()),
        ("TRUSTED_PROXIES", "127.0.0.0/8".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    for (name, value) in defaults {
        if std::env::var_os(name).is_none() {
            command.env(name, value);
        }
    }
    command
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary}: {e} (cargo build --bin stores-api)"))
}

/// Sends `count` requests made by `request`, `CONCURRENCY` at a time; returns how many
/// answered with each status class (2xx/4xx other than 429, 429, 5xx).
async fn flood(count: u32, request: impl Fn(u32) -> reqwest::RequestBuilder) -> (u32, u32, u32) {
    let statuses: Vec<u16> = stream::iter(0..count)
        .map(|n| {
            let sent = request(n).send();
            async move { sent.await.map(|r| r.status().as_u16()).unwrap_or(0) }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let limited = statuses.iter().filter(|s| **s == 429).count() as u32;
    let failed = statuses.iter().filter(|s| **s >= 500 || **s == 0).count() as u32;
    (count - limited - failed, limited, failed)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let binary = args
        .next()
        .unwrap_or_else(|| "target/debug/stores-api".to_owned());
    let keys: u32 = args.next().map_or(100_000, |k| k.parse().expect("KEYS"));
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let mut server = start(&binary, port, dir.path());
    let pid = server.id();
    let base = format!("http://127.0.0.1:{port}");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while client.get(format!("{base}/health")).send().await.is_err() {
            assert!(Instant::now() < deadline, "the server did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let login = |prefix: &'static str, offset: u32| {
            let (client, base) = (client.clone(), base.clone());
            move |n: u32| {
                let n = n + offset;
                client
                    .post(format!("{base}/login"))
                    .header("X-Forwarded-For", format!("10.{}.{}.{}", n >> 16, (n >> 8) & 255, n & 255))
                    .json(&json!({"username": format!("{prefix}-{n}"), "password": "wrong-password"}))
            }
        };
        // Warm up (allocator arenas, connections, the first generations of the maps)
        // before the first reading.
        flood(2_000, login("warm", 1 << 23)).await;
        let before = rss_kib(pid);
        println!("RSS after start-up and 2000 warm-up logins: {before} KiB");

        let started = Instant::now();
        let (ok, limited, failed) = flood(keys, login("flood", 0)).await;
        let after_names = rss_kib(pid);
        println!(
            "{keys} logins, each a new username from a new IPv4 address ({:.0} s; {ok} answered, {limited} limited, {failed} failed): RSS {after_names} KiB ({:+} KiB)",
            started.elapsed().as_secs_f64(),
            i64::try_from(after_names).unwrap_or(0) - i64::try_from(before).unwrap_or(0),
        );

        let started = Instant::now();
        let (ok, limited, failed) = flood(keys, |n| {
            client
                .post(format!("{base}/refresh"))
                .header("X-Forwarded-For", format!("2001:db8:{:x}:{:x}::1", n >> 16, n & 0xffff))
        })
        .await;
        let after_addresses = rss_kib(pid);
        println!(
            "{keys} refreshes, each from a new IPv6 /64 ({:.0} s; {ok} answered, {limited} limited, {failed} failed): RSS {after_addresses} KiB ({:+} KiB since the first reading)",
            started.elapsed().as_secs_f64(),
            i64::try_from(after_addresses).unwrap_or(0) - i64::try_from(before).unwrap_or(0),
        );
    });
    let _ = server.kill();
    let _ = server.wait();
}
