//! The database goes away and comes back: 503 in the contract's shape meanwhile, and
//! recovery without a restart. Needs PostgreSQL (TEST_DATABASE_URL): a TCP proxy
//! between the service and the server is cut and restored.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::helpers::{assert_error, fresh_postgres_database, on_postgres, TestApp, PASSWORD};

/// Forwards one local port to the PostgreSQL server until cut.
struct Proxy {
    addr: SocketAddr,
    upstream: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let proxy = Proxy {
            addr,
            upstream,
            tasks: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let (upstream, tasks) = (self.upstream.clone(), self.tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let pipe = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().expect("lock").push(pipe);
            }
        });
        self.tasks.lock().expect("lock").push(accept);
    }

    /// Drops the listener and every open connection: the database is unreachable.
    fn cut(&self) {
        for task in self.tasks.lock().expect("lock").drain(..) {
            task.abort();
        }
    }

    /// Listens again on the same port.
    async fn restore(&self) {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(_) if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("rebind {}: {e}", self.addr),
            }
        };
        self.serve(listener);
    }
}

#[actix_web::test]
async fn an_unreachable_database_is_a_503_and_the_service_recovers_by_itself() {
    if !on_postgres() {
        eprintln!("skipped: needs TEST_DATABASE_URL (PostgreSQL)");
        return;
    }
    let server = std::env::var("TEST_DATABASE_URL").expect("set");
    let mut url = url::Url::parse(&fresh_postgres_database(&server)).expect("url");
    let upstream = format!(
        "{}:{}",
        url.host_str().expect("host"),
        url.port().unwrap_or(5432)
    );
    let proxy = Proxy::start(upstream).await;
    url.set_port(Some(proxy.addr.port())).expect("port");
    let app = TestApp::spawn_with(&[
        ("DATABASE_URL", url.as_str()),
        ("DATABASE_POOL_TIMEOUT", "1"),
    ])
    .await;
    let user = app.user().await;

    proxy.cut();
    assert_error(app.get("/ready", None).await, 503, "service_unavailable").await;
    let resp = app.get("/me", Some(&user.tokens.access)).await;
    assert_error(resp, 503, "service_unavailable").await;
    let resp = app.register("while-down", PASSWORD).await;
    assert_error(resp, 503, "service_unavailable").await;
    // The process is still alive and answers what needs no database.
    assert_eq!(app.get("/health", None).await.status(), StatusCode::OK);

    proxy.restore().await;
    let mut ready = false;
    for _ in 0..40 {
        if app.get("/ready", None).await.status() == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(ready, "/ready recovers once the database is back");
    let me: Value = app
        .get("/me", Some(&user.tokens.access))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(me["username"], json!(user.username));
    // Nothing was half-written while it was down: the name is still free.
    let resp = app.register("while-down", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
}
