//! The database goes away and comes back: 503 in the contract's shape meanwhile, and
//! recovery without a restart. Also a database that stops answering (a lock held
//! elsewhere): queries that cannot start are 503 within the pool timeout (both
//! backends). The cut tests need PostgreSQL (TEST_DATABASE_URL): a TCP proxy
//! between the service and the server is cut and restored. Stopping the real server
//! would fail every other test running in parallel on it; the proxy takes the database
//! away from this test's service only, the same way (connections reset, new ones
//! refused).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use stores_api::config::{DatabaseUrl, Settings};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::helpers::{
    assert_error, fresh_postgres_database, on_postgres, Reply, TestApp, PASSWORD,
};

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

/// A fresh PostgreSQL database behind a proxy, and a service on it with the settings as
/// `edit` leaves them; None when the suite does not run on PostgreSQL.
async fn proxied_app(edit: impl FnOnce(&mut Settings)) -> Option<(Proxy, TestApp)> {
    if !on_postgres() {
        eprintln!("skipped: needs TEST_DATABASE_URL (PostgreSQL)");
        return None;
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
    let app = TestApp::spawn_with(|s| {
        s.database.url = DatabaseUrl::parse(url.as_str()).expect("a PostgreSQL URL");
        edit(s);
    })
    .await;
    Some((proxy, app))
}

/// Polls /ready until it answers 200; false if it never does within ten seconds.
async fn becomes_ready(app: &TestApp) -> bool {
    for _ in 0..40 {
        if app.get("/ready", None).await.status() == StatusCode::OK {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

#[actix_web::test]
async fn an_unreachable_database_is_a_503_and_the_service_recovers_by_itself() {
    let Some((proxy, app)) =
        proxied_app(|s| s.database.pool_timeout = Duration::from_secs(1)).await
    else {
        return;
    };
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
    assert!(
        becomes_ready(&app).await,
        "/ready recovers once the database is back"
    );
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

/// The pool timeout of the load test, and how late past it a 503 may still come
/// (scheduling on a loaded two-core machine, the proxy's own latency).
const POOL_TIMEOUT: Duration = Duration::from_secs(2);
const MARGIN: Duration = Duration::from_millis(1500);
/// Concurrent writers.
const WRITERS: usize = 4;

/// One POST /store a writer made, and what came of it.
struct Attempt {
    name: String,
    reply: Reply,
    started: Instant,
    finished: Instant,
}

/// Creates stores with distinct names until `stop`, one request at a time.
async fn writer(app: TestApp, token: String, id: usize, stop: Arc<AtomicBool>) -> Vec<Attempt> {
    let mut attempts = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let name = format!("writer-{id}-{n}");
        n += 1;
        let started = Instant::now();
        // The service answers, database or not.
        let resp = app
            .post("/store", Some(&token), Some(json!({ "name": name })))
            .await;
        attempts.push(Attempt {
            name,
            reply: Reply::read(resp).await,
            started,
            finished: Instant::now(),
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    attempts
}

/// Every store's name, page by page; checks X-Total-Count against what was listed.
async fn stored_names(app: &TestApp, token: &str) -> Vec<String> {
    let mut names = Vec::new();
    loop {
        let path = format!("/store?limit=1000&offset={}", names.len());
        let resp = app.get(&path, Some(token)).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let total: usize = resp
            .headers()
            .get("x-total-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("X-Total-Count");
        let page: Value = resp.json().await.expect("JSON body");
        let page = page.as_array().expect("a list");
        names.extend(
            page.iter()
                .map(|s| s["name"].as_str().expect("name").to_owned()),
        );
        if page.is_empty() || names.len() >= total {
            assert_eq!(names.len(), total, "X-Total-Count matches the rows listed");
            return names;
        }
    }
}

#[actix_web::test]
async fn writes_under_load_fail_fast_while_the_database_is_cut_and_none_is_lost_or_doubled() {
    let Some((proxy, app)) = proxied_app(|s| s.database.pool_timeout = POOL_TIMEOUT).await else {
        return;
    };
    let user = app.user().await;
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|id| {
            tokio::spawn(writer(
                app.clone(),
                user.tokens.access.clone(),
                id,
                stop.clone(),
            ))
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(500)).await;
    let cut_started = Instant::now();
    proxy.cut();
    let cut_done = Instant::now();
    let asked = Instant::now();
    assert_error(app.get("/ready", None).await, 503, "service_unavailable").await;
    assert!(
        asked.elapsed() < POOL_TIMEOUT + MARGIN,
        "/ready answers fast"
    );
    // Longer than the pool timeout: every writer sees at least one 503 in full.
    tokio::time::sleep(POOL_TIMEOUT + Duration::from_secs(1)).await;
    proxy.restore().await;
    let restored = Instant::now();
    assert!(becomes_ready(&app).await, "/ready recovers by itself");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);

    let mut attempts = Vec::new();
    for handle in writers {
        attempts.extend(handle.await.expect("writer task"));
    }
    let mut created = std::collections::HashSet::new();
    let mut in_flight_at_cut = std::collections::HashSet::new();
    let mut failed = 0;
    let mut succeeded_after_restore = false;
    for a in attempts {
        if a.reply.status == StatusCode::CREATED {
            assert!(created.insert(a.name.clone()), "{} created twice", a.name);
            succeeded_after_restore |= a.started > restored;
            continue;
        }
        failed += 1;
        let took = a.finished - a.started;
        let in_flight = a.started <= cut_done && a.finished >= cut_started;
        let body = assert_error(a.reply, 503, "service_unavailable").await;
        assert_eq!(body["status"], "Service Unavailable", "{body}");
        assert!(
            took < POOL_TIMEOUT + MARGIN,
            "a 503 took {took:?}, past the pool timeout"
        );
        if in_flight {
            in_flight_at_cut.insert(a.name);
        }
    }
    assert!(failed > 0, "the cut was felt");
    assert!(
        succeeded_after_restore,
        "writes succeed again after the restore"
    );

    let stored = stored_names(&app, &user.tokens.access).await;
    let stored_set: std::collections::HashSet<String> = stored.iter().cloned().collect();
    assert_eq!(stored_set.len(), stored.len(), "no store stored twice");
    for name in &created {
        assert!(
            stored_set.contains(name),
            "{name} got a 201 but is not stored"
        );
    }
    // A failed request stored nothing, with one exception no server can avoid: a
    // request whose commit reached PostgreSQL just as its connection was cut cannot
    // learn that it committed (the two generals). Only those in flight at the cut may.
    for name in stored_set.difference(&created) {
        assert!(
            in_flight_at_cut.contains(name),
            "{name} failed after the cut yet is stored"
        );
    }
}

/// A lock that stops every write to `items` until it is released; taken from a
/// connection of the test's own, as another program on the same database would.
fn lock_items_for(app: &TestApp, hold: Duration) -> std::thread::JoinHandle<()> {
    let lock = if on_postgres() {
        "BEGIN; LOCK TABLE items IN EXCLUSIVE MODE;"
    } else {
        "BEGIN IMMEDIATE;"
    };
    hold_lock(app, lock, hold)
}

/// Runs `lock` (a statement that opens a transaction and takes a lock) on a connection
/// of the test's own and commits `hold` later, on the returned thread.
fn hold_lock(app: &TestApp, lock: &str, hold: Duration) -> std::thread::JoinHandle<()> {
    use diesel::connection::SimpleConnection;
    let pool = stores_api::db::pool(&app.settings.database);
    let mut conn = pool.get().expect("a connection of the test's own");
    conn.batch_execute(lock).expect("lock");
    std::thread::spawn(move || {
        std::thread::sleep(hold);
        conn.batch_execute("COMMIT;").expect("unlock");
    })
}

/// A server with two database threads and a pool timeout of 1 s, its admin's access
/// token, and the path of an item.
async fn two_threads_and_an_item() -> (TestApp, String, String) {
    let app = TestApp::spawn_with(|s| {
        s.database.pool_size = 2;
        s.database.pool_timeout = Duration::from_secs(1);
    })
    .await;
    let token = app.admin().await.tokens.access;
    let (_, item) = app.store_with_item(&token, "Stuck", "Held").await;
    let path = format!("/item/{}", item["id"]);
    (app, token, path)
}

#[actix_web::test]
async fn queries_that_cannot_start_while_the_database_is_stuck_are_503_within_the_pool_timeout() {
    // Two database threads, both stuck behind the lock: the requests queued after them
    // must not wait for the lock too, but give up when the pool timeout has passed.
    let (app, token, path) = two_threads_and_an_item().await;
    let token = token.as_str();

    let hold = Duration::from_secs(4);
    let unlock = lock_items_for(&app, hold);
    let started = Instant::now();
    let writes = (1..=6).map(|cents| {
        let (app, path) = (&app, &path);
        async move {
            let resp = app
                .put(
                    path,
                    Some(token),
                    json!({"price": f64::from(cents) / 100.0}),
                )
                .await;
            (resp.status(), started.elapsed(), resp)
        }
    });
    let answers = futures_util::future::join_all(writes).await;
    unlock.join().expect("the lock holder");

    let mut shed = 0;
    for (status, after, resp) in answers {
        if status == StatusCode::SERVICE_UNAVAILABLE {
            shed += 1;
            assert!(
                after < hold - Duration::from_millis(1500),
                "a 503 came only after {after:?}, with the lock held for {hold:?}"
            );
            assert_error(resp, 503, "service_unavailable").await;
        } else {
            assert_eq!(status, StatusCode::OK, "{:?}", resp.text().await);
        }
    }
    // Two writes were running when the lock went (they finish after it); the other
    // four could not start.
    assert!(shed >= 4, "{shed} of 6 writes were turned away");
    assert_eq!(app.get(&path, Some(token)).await.status(), StatusCode::OK);
}

#[actix_web::test]
async fn reads_that_cannot_start_while_the_items_are_locked_are_503_and_reads_resume_after() {
    // Only PostgreSQL can hold readers back (SQLite's WAL never blocks a reader).
    if !on_postgres() {
        return;
    }
    // GET /item/{id} reads on at most a lane per core (db::BatchedReads): with every lane stuck
    // on the lock, the reads that arrive next must give up when the pool timeout has
    // passed, and the lanes must serve again once the lock is gone.
    // Two connections: at most two lanes, whatever the machine's cores.
    let (app, token, path) = two_threads_and_an_item().await;
    let token = token.as_str();

    let hold = Duration::from_secs(4);
    let unlock = hold_lock(
        &app,
        "BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE;",
        hold,
    );
    let started = Instant::now();
    let read = |delay: Duration| {
        let (app, path) = (&app, &path);
        async move {
            tokio::time::sleep(delay).await;
            let resp = app.get(path, Some(token)).await;
            (resp.status(), started.elapsed(), resp)
        }
    };
    // The first two reads each start a lane that then waits on the lock (one lane on a
    // machine of one core); the next ones, and the last six, find no lane free.
    let first = (0..4).map(|n| read(Duration::from_millis(150 * n)));
    let last = (0..6).map(|_| read(Duration::from_millis(900)));
    let (first, last) = futures_util::future::join(
        futures_util::future::join_all(first),
        futures_util::future::join_all(last),
    )
    .await;
    unlock.join().expect("the lock holder");

    let (status, after, resp) = first.into_iter().next().expect("a first read");
    assert_eq!(status, StatusCode::OK, "{:?}", resp.text().await);
    assert!(
        after >= hold,
        "the first read ended at {after:?}, before the lock went"
    );
    for (status, after, resp) in last {
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{:?}",
            resp.text().await
        );
        assert!(
            after < hold - Duration::from_millis(1000),
            "a 503 came only after {after:?}, with the lock held for {hold:?}"
        );
        assert_error(resp, 503, "service_unavailable").await;
    }
    assert_eq!(app.get(&path, Some(token)).await.status(), StatusCode::OK);
}
