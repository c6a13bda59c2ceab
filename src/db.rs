//! The one place that knows there are two database backends: the connection enum,
//! the pool, migrations, and running blocking queries off the async workers.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::R2D2Connection;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, ConnectionError};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::config::{DatabaseUrl, Settings};
use crate::error::ApiError;

const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// A connection to either backend; queries are written once against it.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// PostgreSQL, for production and several instances.
    Pg(PgConnection),
    /// An embedded SQLite file, the default.
    Sqlite(SqliteConnection),
}

/// The shared connection pool and the threads that use it.
///
/// Queries run on `max_size` threads of their own ("db-N"), one per connection, fed by a
/// queue: a request puts its closure on the queue and awaits the answer, so the async
/// workers never block. Before this, each query went through `web::block` to tokio's
/// blocking pool and then waited there for r2d2's condvar: under 32 connections on
/// SQLite that was 48 to 65 threads and 2.3 context switches per GET /item/{id}, and
/// half the server's samples were the scheduler. A fixed set of threads that keep
/// taking queued work sleeps only when there is none.
#[derive(Clone)]
pub struct Pool {
    connections: r2d2::Pool<ConnectionManager>,
    jobs: crossbeam_channel::Sender<Job>,
    timeout: Duration,
    /// SQLite only: whose turn it is to write, among this process's threads.
    write_turn: Option<Arc<parking_lot::Mutex<()>>>,
}

/// Work for a database thread: runs with the pool's connections.
type Job = Box<dyn FnOnce(&r2d2::Pool<ConnectionManager>) + Send>;

/// Queued jobs per database thread before requests are turned away with 503. It bounds
/// memory, not time: a job that waited longer than the pool timeout answers 503 anyway.
const QUEUE_PER_THREAD: usize = 512;

/// A connection taken from the [`Pool`]; returned to it on drop.
pub type PooledConnection = r2d2::PooledConnection<ConnectionManager>;

impl Pool {
    /// A connection now, blocking the calling thread up to the pool timeout; for callers
    /// that are not async workers (the admin CLI, tests). Requests use [`run`].
    pub fn get(&self) -> Result<PooledConnection, r2d2::Error> {
        self.connections.get()
    }
}

fn database_thread(
    jobs: crossbeam_channel::Receiver<Job>,
    connections: r2d2::Pool<ConnectionManager>,
) {
    // Ends when the last `Pool` clone (the last sender) is dropped.
    while let Ok(job) = jobs.recv() {
        // A panicking query must not take the thread with it; its caller sees the
        // dropped answer channel and gets a 500.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&connections)));
    }
}

/// How long an SQLite writer waits for the file's write lock before it gives up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens connections for the pool, picking the backend from the URL so that the
/// driver's own error ("connection refused", "password authentication failed")
/// reaches the log instead of the derived `establish`'s generic one.
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: DatabaseUrl,
}

impl ConnectionManager {
    /// A manager for `url`.
    pub fn new(url: DatabaseUrl) -> Self {
        ConnectionManager { url }
    }
}

/// Opens a PostgreSQL connection; every PostgreSQL connection of the process goes
/// through here (or calls [`keep_openssl_at_exit`] first).
pub fn establish_postgres(url: &str) -> Result<PgConnection, ConnectionError> {
    keep_openssl_at_exit();
    PgConnection::establish(&connection_url(url))
}

/// `url` with libpq's defaults changed where they cost without protecting anything;
/// whatever the URL (or libpq's `PGGSSENCMODE` / `PGSSLMODE`) chooses is kept.
///
/// - `gssencmode=disable`: libpq's default (`prefer`) probes Kerberos on every connect,
///   and Kerberos tears its locks down at exit just as OpenSSL does: a pool thread
///   connecting then aborts the process (measured here: 1 exit in 100 with 8 threads
///   connecting). A deployment that uses GSSAPI encryption sets `gssencmode` itself.
/// - `sslmode=disable` for a server on a loopback address: libpq's default (`prefer`)
///   negotiates TLS there, which encrypts bytes that never leave the kernel and checks
///   no certificate (`prefer` never does), at about a fifth of the throughput of
///   GET /item/{id} on PostgreSQL (PERFORMANCE.md). Any other host keeps libpq's default.
fn connection_url(url: &str) -> String {
    connection_url_given(url, |name| std::env::var_os(name).is_some())
}

/// [`connection_url`], with the question "is this libpq variable set" answered by
/// `set_by_env`.
fn connection_url_given(url: &str, set_by_env: impl Fn(&str) -> bool) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_owned();
    };
    let has = |key: &str| parsed.query_pairs().any(|(k, _)| k == key);
    let gss = !has("gssencmode") && !set_by_env("PGGSSENCMODE");
    // `postgres:` is not a scheme the url crate knows, so an IPv4 host comes as a name.
    let loopback = match parsed.host() {
        Some(url::Host::Domain(name)) => {
            name.eq_ignore_ascii_case("localhost")
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    let ssl = loopback && !has("sslmode") && !has("host") && !set_by_env("PGSSLMODE");
    {
        let mut query = parsed.query_pairs_mut();
        if gss {
            query.append_pair("gssencmode", "disable");
        }
        if ssl {
            query.append_pair("sslmode", "disable");
        }
    }
    if !gss && !ssl {
        return url.to_owned();
    }
    parsed.into()
}

/// Stops OpenSSL (loaded by libpq, for TLS and SCRAM) from tearing its global state down
/// in an `atexit` handler. The process exits while r2d2's worker threads may still be
/// opening connections (a pool retrying an unreachable server, say); when OpenSSL's
/// cleanup runs under them they crash on freed locks and the exit becomes a SIGSEGV
/// (diesel-rs/diesel#3441, seen here on a test run). The OS frees it all at exit anyway.
/// It must run before libpq first touches OpenSSL: the first caller wins.
pub fn keep_openssl_at_exit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // OPENSSL_INIT_NO_ATEXIT from <openssl/crypto.h> (OpenSSL 1.1.1b and later).
        const OPENSSL_INIT_NO_ATEXIT: u64 = 0x0008_0000;
        type InitCrypto = unsafe extern "C" fn(u64, *const libc::c_void) -> libc::c_int;
        // Looked up at run time rather than linked, so that the build needs no OpenSSL
        // development files; libcrypto is already mapped as a dependency of libpq.
        // SAFETY: dlsym with a NUL-terminated name; a null result is checked before use,
        // and the symbol has the C signature declared above in every OpenSSL >= 1.1.0.
        unsafe {
            let symbol = libc::dlsym(libc::RTLD_DEFAULT, c"OPENSSL_init_crypto".as_ptr());
            if !symbol.is_null() {
                let init: InitCrypto = std::mem::transmute::<*mut libc::c_void, InitCrypto>(symbol);
                init(OPENSSL_INIT_NO_ATEXIT, std::ptr::null());
            }
        }
    });
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = ConnectionError;

    fn connect(&self) -> Result<DbConnection, ConnectionError> {
        match &self.url {
            DatabaseUrl::Postgres(url) => establish_postgres(url.expose()).map(DbConnection::Pg),
            DatabaseUrl::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(&path.to_string_lossy())?;
                // Foreign keys are off by default in SQLite; WAL lets readers run beside the
                // writer; the busy timeout makes a second writer wait instead of failing.
                conn.batch_execute(&format!(
                    "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {}; \
                     PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;",
                    SQLITE_BUSY_TIMEOUT.as_millis()
                ))
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), ConnectionError> {
        conn.batch_execute("SELECT 1")
            .map_err(ConnectionError::CouldntSetupConfiguration)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        match conn {
            DbConnection::Pg(c) => c.is_broken(),
            DbConnection::Sqlite(c) => c.is_broken(),
        }
    }
}

/// Builds the pool without connecting, so that a database that is down at a
/// request gives 503 instead of stopping the service.
pub fn pool(settings: &Settings) -> Pool {
    let max_size = match settings.database_url {
        DatabaseUrl::Postgres(_) => settings.database_pool_size,
        // SQLite has one writer at a time; a few connections serve the readers.
        DatabaseUrl::Sqlite(_) => settings.database_pool_size.min(4),
    };
    let connections: r2d2::Pool<ConnectionManager> = r2d2::Pool::builder()
        .max_size(max_size)
        .min_idle(Some(0))
        // No `SELECT 1` before every checkout (r2d2's default): on PostgreSQL it is a
        // round trip per request. A connection that died is seen by `has_broken` when
        // its query fails and is dropped then; that request answers 503.
        .test_on_check_out(false)
        .connection_timeout(settings.database_pool_timeout)
        .build_unchecked(ConnectionManager::new(settings.database_url.clone()));
    let (jobs, queue) = crossbeam_channel::bounded(QUEUE_PER_THREAD * max_size as usize);
    for n in 0..max_size {
        let (queue, connections) = (queue.clone(), connections.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("db-{n}"))
            .spawn(move || database_thread(queue, connections));
        if let Err(e) = spawned {
            // Fewer threads serve the same queue; with none, requests time out with 503.
            log::error!("cannot start database thread {n}: {e}");
        }
    }
    Pool {
        connections,
        jobs,
        timeout: settings.database_pool_timeout,
        write_turn: match settings.database_url {
            DatabaseUrl::Postgres(_) => None,
            DatabaseUrl::Sqlite(_) => Some(Arc::default()),
        },
    }
}

/// Failure to prepare the database at start-up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The database never answered within the start-up timeout.
    #[error("cannot connect to the database at {url}: {cause}")]
    Unreachable {
        /// Where (password removed).
        url: String,
        /// The driver's last error.
        cause: String,
    },
    /// A migration failed.
    #[error("migrations failed: {0}")]
    Migration(String),
    /// The SQLite file's folder could not be created.
    #[error("cannot create {0}: {1}")]
    Directory(String, std::io::Error),
}

/// Waits for the database (up to the start-up timeout) and applies pending migrations,
/// logging each one.
pub fn migrate(settings: &Settings) -> Result<usize, SetupError> {
    if let DatabaseUrl::Sqlite(path) = &settings.database_url {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| SetupError::Directory(dir.display().to_string(), e))?;
        }
    }
    let manager = ConnectionManager::new(settings.database_url.clone());
    let deadline = Instant::now() + settings.database_startup_timeout;
    let mut conn = loop {
        match r2d2::ManageConnection::connect(&manager) {
            Ok(conn) => break conn,
            Err(e) if Instant::now() < deadline => {
                log::warn!(
                    "waiting for the database at {}: {e}",
                    settings.database_url.redacted()
                );
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => {
                return Err(SetupError::Unreachable {
                    url: settings.database_url.redacted(),
                    cause: e.to_string(),
                })
            }
        }
    };
    let applied = match &mut conn {
        DbConnection::Pg(c) => run_migrations(c, POSTGRES_MIGRATIONS),
        DbConnection::Sqlite(c) => run_migrations(c, SQLITE_MIGRATIONS),
    }?;
    Ok(applied)
}

fn run_migrations<C>(conn: &mut C, migrations: EmbeddedMigrations) -> Result<usize, SetupError>
where
    C: MigrationHarness<C::Backend> + Connection,
{
    let pending = conn
        .pending_migrations(migrations)
        .map_err(|e| SetupError::Migration(e.to_string()))?;
    let total = pending.len();
    for (n, migration) in pending.iter().enumerate() {
        log::info!(
            "applying migration {}/{}: {}",
            n + 1,
            total,
            migration.name()
        );
        conn.run_migration(migration.as_ref())
            .map_err(|e| SetupError::Migration(format!("{}: {e}", migration.name())))?;
    }
    Ok(total)
}

/// Runs `f` on a pooled connection on one of the pool's database threads. A query that
/// has not started within the pool timeout (queueing and checkout together) is a 503,
/// even when every database thread is stuck on a server that stopped answering; so is
/// a full queue. A query that has started is waited for.
pub async fn run<T, F>(pool: &Pool, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let deadline = Instant::now() + pool.timeout;
    let ticket = Ticket::default();
    let claim = ticket.clone();
    let (answer, answered) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move |connections| {
        if !claim.start() {
            return; // given up on by its request (timed out or gone)
        }
        let outcome = match deadline.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => connections
                .get_timeout(left)
                .map_err(ApiError::from)
                .and_then(|mut conn| f(&mut conn)),
            _ => Err(unavailable(
                "a query waited in the queue past the pool timeout",
            )),
        };
        let _ = answer.send(outcome);
    });
    pool.jobs
        .try_send(job)
        .map_err(|_| unavailable("the database queue is full"))?;
    wait(&ticket, answered, deadline).await
}

/// Awaits the answer to a queued query, or gives up on it with 503 if no database
/// thread has started it by `deadline`; a query that has started is waited for.
async fn wait<T>(
    ticket: &Ticket,
    mut answered: tokio::sync::oneshot::Receiver<Result<T, ApiError>>,
    deadline: Instant,
) -> Result<T, ApiError> {
    // Dropped with this future (the client went away, say): a job still queued is skipped.
    let _abandon = Abandon(ticket);
    let deadline = tokio::time::Instant::from_std(deadline);
    let outcome = tokio::select! {
        outcome = &mut answered => outcome,
        () = tokio::time::sleep_until(deadline) => {
            if ticket.abandon() {
                return Err(unavailable("no database thread took the query within the pool timeout"));
            }
            answered.await
        }
    };
    outcome.map_err(|_| ApiError::Internal("a database task panicked".into()))?
}

/// Lookups by key that arrive together are answered by one query.
///
/// At most `lanes` database threads serve a batch's lookups at a time. Each takes every
/// waiting key (up to [`BATCH_MAX`]), runs `load` once for them, hands each request its
/// row, and goes on while keys are waiting; a lookup that finds every lane busy waits
/// for the next round. Every request still gets a row read after it arrived, so nothing
/// is staler than with a query of its own, and each keeps [`run`]'s rules: 503 if its
/// lookup has not started within the pool timeout, skipped if it went away.
///
/// At rest a round holds one key. Under load it pays one round trip, one plan start-up
/// and one thread wake-up for many requests, and only `lanes` database connections
/// compete for the cores instead of the whole pool: on PostgreSQL sharing 2 cores, the
/// load kit's GET /item/{id} went from 18k to 28k requests/s (22% to 33% of /health)
/// with a p99 of 4 ms (PERFORMANCE.md). The pattern is DataLoader's (graphql/dataloader).
pub struct Batch<K, V> {
    inner: Arc<BatchInner<K, V>>,
}

/// Keys per query at most, so that a query's bind list stays far below SQLite's limit
/// (32,766) and one slow round holds back a bounded number of requests.
pub const BATCH_MAX: usize = 64;

struct BatchInner<K, V> {
    state: std::sync::Mutex<BatchState<K, V>>,
    lanes: usize,
    load: fn(&mut DbConnection, &[K]) -> Result<Vec<V>, ApiError>,
    key: fn(&V) -> K,
}

struct BatchState<K, V> {
    waiting: Vec<Waiter<K, V>>,
    /// Lanes queued or running; each ends only when it finds nothing waiting.
    busy: usize,
}

struct Waiter<K, V> {
    key: K,
    ticket: Ticket,
    deadline: Instant,
    answer: tokio::sync::oneshot::Sender<Result<Option<V>, ApiError>>,
}

impl<K, V> Batch<K, V>
where
    K: Ord + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Lookups on `pool` answered by `load`, which returns the rows found for some keys
    /// (in any order, missing keys left out); `key` names a row's key. A lane per core,
    /// up to the pool's size: more lanes than cores only split the same requests into
    /// smaller rounds that contend for the same cores (measured on PostgreSQL with the
    /// pool's 8: 26k requests/s and a 9 ms p99, against 31k and 3 ms with 2).
    pub fn new(
        pool: &Pool,
        load: fn(&mut DbConnection, &[K]) -> Result<Vec<V>, ApiError>,
        key: fn(&V) -> K,
    ) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let lanes = cores.min(pool.connections.max_size() as usize);
        Batch {
            inner: Arc::new(BatchInner {
                state: std::sync::Mutex::new(BatchState {
                    waiting: Vec::new(),
                    busy: 0,
                }),
                lanes: lanes.max(1),
                load,
                key,
            }),
        }
    }

    /// The row for `key`, or `None` if there is none.
    pub async fn get(&self, pool: &Pool, key: K) -> Result<Option<V>, ApiError> {
        let deadline = Instant::now() + pool.timeout;
        let ticket = Ticket::default();
        let (answer, answered) = tokio::sync::oneshot::channel();
        {
            let mut state = self.inner.lock();
            // The same bound as the job queue's, for the same reason: memory.
            if state.waiting.len() >= pool.jobs.capacity().unwrap_or(usize::MAX) {
                return Err(unavailable("the database queue is full"));
            }
            state.waiting.push(Waiter {
                key,
                ticket: ticket.clone(),
                deadline,
                answer,
            });
            if state.busy < self.inner.lanes {
                let inner = self.inner.clone();
                let job: Job = Box::new(move |connections| inner.serve(connections));
                if pool.jobs.try_send(job).is_err() {
                    state.waiting.pop();
                    return Err(unavailable("the database queue is full"));
                }
                state.busy += 1;
            }
        }
        wait(&ticket, answered, deadline).await
    }
}

impl<K: Ord + Clone, V: Clone> BatchInner<K, V> {
    fn lock(&self) -> std::sync::MutexGuard<'_, BatchState<K, V>> {
        // The lock only guards pushes, drains and the lane count, which no panic can
        // leave half-done.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A lane, on a database thread: answers rounds of waiting keys until none is left.
    fn serve(&self, connections: &r2d2::Pool<ConnectionManager>) {
        let mut lane = Lane {
            batch: self,
            open: true,
        };
        let mut conn = None;
        loop {
            let round: Vec<Waiter<K, V>> = {
                let mut state = self.lock();
                if state.waiting.is_empty() {
                    // Under the lock that pushes take: a key pushed after this sees
                    // the lane gone and starts one.
                    state.busy -= 1;
                    lane.open = false;
                    return;
                }
                let n = state.waiting.len().min(BATCH_MAX);
                state.waiting.drain(..n).collect()
            };
            self.answer(round, connections, &mut conn);
        }
    }

    /// Answers one round with one query on `conn`, checked out first if need be.
    fn answer(
        &self,
        round: Vec<Waiter<K, V>>,
        connections: &r2d2::Pool<ConnectionManager>,
        conn: &mut Option<PooledConnection>,
    ) {
        let now = Instant::now();
        let (round, late): (Vec<_>, Vec<_>) = round
            .into_iter()
            .filter(|w| w.ticket.start())
            .partition(|w| w.deadline > now);
        for waiter in late {
            let _ = waiter.answer.send(Err(unavailable(
                "a query waited in the queue past the pool timeout",
            )));
        }
        let Some(first) = round.iter().map(|w| w.deadline).min() else {
            return;
        };
        let mut keys: Vec<K> = round.iter().map(|w| w.key.clone()).collect();
        keys.sort_unstable();
        keys.dedup();
        let rows = match conn {
            Some(c) => (self.load)(c, &keys),
            None => match connections.get_timeout(first.saturating_duration_since(now)) {
                Ok(c) => (self.load)(conn.insert(c), &keys),
                Err(e) => Err(e.into()),
            },
        };
        match rows {
            Ok(rows) => {
                let rows: std::collections::BTreeMap<K, V> =
                    rows.into_iter().map(|v| ((self.key)(&v), v)).collect();
                for waiter in round {
                    let _ = waiter.answer.send(Ok(rows.get(&waiter.key).cloned()));
                }
            }
            Err(e) => {
                // Back to the pool, which drops it if it broke; the next round checks
                // out afresh.
                *conn = None;
                for waiter in round {
                    let _ = waiter.answer.send(Err(e.clone()));
                }
            }
        }
    }
}

/// A running lane; one that ends before finding nothing waiting (its `load` panicked)
/// is freed on drop, so that the next lookup starts another.
struct Lane<'a, K: Ord + Clone, V: Clone> {
    batch: &'a BatchInner<K, V>,
    open: bool,
}

impl<K: Ord + Clone, V: Clone> Drop for Lane<'_, K, V> {
    fn drop(&mut self) {
        if self.open {
            self.batch.lock().busy -= 1;
        }
    }
}

/// Whether a queued query is still wanted: the database thread and the request race to
/// take it, and only one of them wins.
#[derive(Clone, Default)]
struct Ticket(Arc<AtomicU8>);

const QUEUED: u8 = 0;
const STARTED: u8 = 1;
const ABANDONED: u8 = 2;

impl Ticket {
    /// The database thread's claim: false if the request gave up first.
    fn start(&self) -> bool {
        self.0
            .compare_exchange(QUEUED, STARTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The request's claim: false if the query has already started.
    fn abandon(&self) -> bool {
        self.0
            .compare_exchange(QUEUED, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

struct Abandon<'a>(&'a Ticket);

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

fn unavailable(why: &str) -> ApiError {
    log::warn!("database unavailable: {why}");
    ApiError::ServiceUnavailable
}

/// [`run`] inside one transaction: a write and its read-back commit together or not at
/// all, so a connection lost half-way never leaves a stored row behind an error answer.
pub async fn transaction<T, F>(pool: &Pool, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let write_turn = pool.write_turn.clone();
    run(pool, move |conn| {
        // SQLite lets one transaction write at a time, and a writer that finds the lock
        // taken sleeps in SQLite's busy handler, in steps growing to 100 ms, however soon
        // the lock is free again. Waiting here instead, on a lock that hands over to the
        // next writer when the last one commits, took PUT /item's p99 under 32
        // connections from 740-770 ms to 9-21 ms, and its rate from 16-19k to 17-24k
        // requests/s (PERFORMANCE.md). It is bounded like the busy handler; other
        // processes on the file (the admin CLI) still meet the busy handler.
        let _turn = match &write_turn {
            Some(turn) => Some(turn.try_lock_for(SQLITE_BUSY_TIMEOUT).ok_or_else(|| {
                unavailable("waited for SQLite's write lock past the busy timeout")
            })?),
            None => None,
        };
        in_transaction(conn, f)
    })
    .await
}

/// Runs `f` in a transaction on `conn`. On SQLite it is `BEGIN IMMEDIATE`: a deferred
/// transaction that reads before it writes must upgrade its lock, and SQLite refuses
/// that upgrade at once (SQLITE_BUSY, no busy timeout, to avoid deadlock) whenever
/// another writer is active; taking the write lock up front makes it wait its turn
/// instead. Measured: PUT /item under 32 connections answered 40% 503s without it.
pub fn in_transaction<T, F>(conn: &mut DbConnection, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    type Manager = <DbConnection as Connection>::TransactionManager;

    let DbConnection::Sqlite(sqlite) = conn else {
        return conn.transaction(f);
    };
    AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
    match f(conn) {
        Ok(value) => match Manager::commit_transaction(conn) {
            Ok(()) => Ok(value),
            Err(e) => {
                // Diesel leaves the transaction open when COMMIT fails; end it.
                let _ = Manager::rollback_transaction(conn);
                Err(e.into())
            }
        },
        Err(e) => {
            // The caller's error is the one to report; a failed rollback on top of it
            // marks the connection broken and the pool drops it.
            let _ = Manager::rollback_transaction(conn);
            Err(e)
        }
    }
}

/// The current UTC time as stored: microseconds, the precision PostgreSQL keeps, so
/// both backends store and compare the same value.
pub fn now() -> chrono::NaiveDateTime {
    use chrono::SubsecRound;
    chrono::Utc::now().naive_utc().trunc_subsecs(6)
}

/// Whether the database answers a trivial query now.
pub async fn ping(pool: &Pool) -> bool {
    run(pool, |conn| {
        conn.batch_execute("SELECT 1")
            .map_err(|_| ApiError::ServiceUnavailable)
    })
    .await
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::connection_url_given;

    fn connection_url(url: &str) -> String {
        connection_url_given(url, |_| false)
    }

    #[test]
    fn connections_skip_the_kerberos_probe_unless_the_url_chooses_a_gss_mode() {
        assert_eq!(
            connection_url("postgres://u:p@db.example:5432/db"),
            "postgres://u:p@db.example:5432/db?gssencmode=disable"
        );
        assert_eq!(
            connection_url("postgres://u:p@h/db?sslmode=require"),
            "postgres://u:p@h/db?sslmode=require&gssencmode=disable"
        );
        assert_eq!(
            connection_url("postgres://u:p@h/db?gssencmode=require"),
            "postgres://u:p@h/db?gssencmode=require"
        );
    }

    #[test]
    fn a_server_on_loopback_is_reached_without_tls_unless_the_url_asks_for_it() {
        for host in ["127.0.0.1", "127.0.0.2", "localhost", "LOCALHOST", "[::1]"] {
            assert_eq!(
                connection_url(&format!("postgres://u:p@{host}:5432/db")),
                format!("postgres://u:p@{host}:5432/db?gssencmode=disable&sslmode=disable"),
            );
        }
        assert_eq!(
            connection_url("postgres://u:p@127.0.0.1/db?sslmode=require"),
            "postgres://u:p@127.0.0.1/db?sslmode=require&gssencmode=disable"
        );
        assert_eq!(
            connection_url("postgres://u:p@localhost/db?sslmode=verify-full&gssencmode=prefer"),
            "postgres://u:p@localhost/db?sslmode=verify-full&gssencmode=prefer"
        );
        // A `host` parameter overrides the URL's host: nothing is assumed then.
        assert_eq!(
            connection_url("postgres://u:p@localhost/db?host=db.example"),
            "postgres://u:p@localhost/db?host=db.example&gssencmode=disable"
        );
        // libpq's own variables choose too.
        assert_eq!(
            connection_url_given("postgres://u:p@127.0.0.1/db", |name| name == "PGSSLMODE"),
            "postgres://u:p@127.0.0.1/db?gssencmode=disable"
        );
        for host in ["10.0.0.5", "db.internal", "[2001:db8::1]"] {
            assert_eq!(
                connection_url(&format!("postgres://u:p@{host}/db")),
                format!("postgres://u:p@{host}/db?gssencmode=disable"),
            );
        }
    }
}
