//! Batched reads: lookups by key that arrive together are answered by one round of
//! queries.

use std::sync::Arc;
use std::time::Instant;

use super::connect::ConnectionManager;
use super::executor::{unavailable, wait, Job, Pool, PooledConnection, Ticket};
use super::DbConnection;
use crate::error::ApiError;
use crate::metrics::metrics;

/// Lookups by key that arrive together are answered by one round of queries.
///
/// At most `lanes` database threads serve a batch's lookups at a time. Each takes every
/// waiting key (up to [`BATCH_MAX`]), runs `load` once for them (a fixed number of
/// queries, whatever the number of keys), hands each request its row, and goes on while
/// keys are waiting; a lookup that finds every lane busy waits for the next round. Every request still gets a row read after it arrived, so nothing
/// is staler than with a query of its own, and each keeps [`run`]'s rules: 503 if its
/// lookup has not started within the pool timeout, skipped if it went away.
///
/// At rest a round holds one key. Under load it pays one round trip, one plan start-up
/// and one thread wake-up for many requests, and only `lanes` database connections
/// compete for the cores instead of the whole pool. The pattern is DataLoader's
/// (graphql/dataloader).
pub struct BatchedReads<K, V> {
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

impl<K, V> BatchedReads<K, V>
where
    K: Ord + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Lookups on `pool` answered by `load`, which returns the rows found for some keys
    /// (in any order, missing keys left out); `key` names a row's key. A lane per core,
    /// up to the pool's size: more lanes than cores only split the same requests into
    /// smaller rounds that contend for the same cores.
    pub fn new(
        pool: &Pool,
        load: fn(&mut DbConnection, &[K]) -> Result<Vec<V>, ApiError>,
        key: fn(&V) -> K,
    ) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let lanes = cores.min(pool.connections.max_size() as usize);
        BatchedReads {
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
        if let Some(m) = metrics() {
            m.db_batch_size.observe(round.len() as f64);
        }
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
