//! The database threads: queries run on a fixed set of threads of their own, fed by a
//! queue, so that the async workers never block and a query that cannot start in time
//! is a 503.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;

use super::connect::ConnectionManager;
use super::DbConnection;
use crate::config::{DatabaseSettings, DatabaseUrl};
use crate::error::ApiError;
use crate::metrics::metrics;

/// The shared connection pool and the threads that use it.
///
/// Queries run on `max_size` threads of their own ("db-N"), one per connection, fed by a
/// queue: a request puts its closure on the queue and awaits the answer, so the async
/// workers never block. Unlike `web::block`, which parks a blocking thread per query on
/// r2d2's condvar, a fixed set of threads that keep taking queued work sleeps only when
/// there is none, so a busy server spends its time on queries, not on the scheduler.
#[derive(Clone)]
pub struct Pool {
    pub(super) connections: r2d2::Pool<ConnectionManager>,
    pub(super) jobs: crossbeam_channel::Sender<Job>,
    pub(super) timeout: Duration,
    /// SQLite only: whose turn it is to write, among this process's threads.
    pub(super) write_turn: Option<Arc<parking_lot::Mutex<()>>>,
}

/// Work for a database thread: runs with the pool's connections.
pub(super) type Job = Box<dyn FnOnce(&r2d2::Pool<ConnectionManager>) + Send>;

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

    /// Connections open now: in use by a query, and idle in the pool.
    pub fn connection_counts(&self) -> (u32, u32) {
        let state = self.connections.state();
        (
            state.connections.saturating_sub(state.idle_connections),
            state.idle_connections,
        )
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

/// Builds the pool without connecting, so that a database that is down at a
/// request gives 503 instead of stopping the service.
pub fn pool(settings: &DatabaseSettings) -> Pool {
    let max_size = match settings.url {
        DatabaseUrl::Postgres(_) => settings.pool_size,
        // SQLite has one writer at a time; a few connections serve the readers.
        DatabaseUrl::Sqlite(_) => settings.pool_size.min(4),
    };
    let connections: r2d2::Pool<ConnectionManager> = r2d2::Pool::builder()
        .max_size(max_size)
        .min_idle(Some(0))
        // No `SELECT 1` before every checkout (r2d2's default): on PostgreSQL it is a
        // round trip per request. A connection that died is seen by `has_broken` when
        // its query fails and is dropped then; that request answers 503.
        .test_on_check_out(false)
        .connection_timeout(settings.pool_timeout)
        .build_unchecked(ConnectionManager::new(settings.url.clone()));
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
        timeout: settings.pool_timeout,
        write_turn: match settings.url {
            DatabaseUrl::Postgres(_) => None,
            DatabaseUrl::Sqlite(_) => Some(Arc::default()),
        },
    }
}

/// Runs `f` on a pooled connection on one of the pool's database threads. A query that
/// has not started within the pool timeout (queueing and checkout together) is a 503,
/// even when every database thread is stuck on a server that stopped answering; so is
/// a full queue. A query that has started is waited for.
pub async fn run<T, E, F>(pool: &Pool, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    E: Into<ApiError>,
    T: Send + 'static,
{
    let queued = Instant::now();
    let deadline = queued + pool.timeout;
    let ticket = Ticket::default();
    let claim = ticket.clone();
    let (answer, answered) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move |connections| {
        if !claim.start() {
            return; // given up on by its request (timed out or gone)
        }
        if let Some(m) = metrics() {
            m.db_queue_wait.observe(queued.elapsed().as_secs_f64());
        }
        let outcome = match deadline.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => connections
                .get_timeout(left)
                .map_err(ApiError::from)
                .and_then(|mut conn| f(&mut conn).map_err(Into::into)),
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
pub(super) async fn wait<T>(
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

/// Whether a queued query is still wanted: the database thread and the request race to
/// take it, and only one of them wins.
#[derive(Clone, Default)]
pub(super) struct Ticket(Arc<AtomicU8>);

const QUEUED: u8 = 0;
const STARTED: u8 = 1;
const ABANDONED: u8 = 2;

impl Ticket {
    /// The database thread's claim: false if the request gave up first.
    pub(super) fn start(&self) -> bool {
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

pub(super) fn unavailable(why: &str) -> ApiError {
    log::warn!("database unavailable: {why}");
    ApiError::ServiceUnavailable
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
