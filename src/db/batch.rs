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
/// keys are waiting; a lookup that finds every lane busy waits for the next round.
/// Every request still gets a row read after it arrived, so nothing is staler than with
/// a query of its own, and each keeps [`run`]'s rules: 503 if its lookup has not
/// started within the pool timeout, skipped if it went away.
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
    queued: Instant,
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
        let queued = Instant::now();
        let deadline = queued + pool.timeout;
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
                queued,
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
        let started: Vec<_> = round.into_iter().filter(|w| w.ticket.start()).collect();
        if let Some(m) = metrics() {
            // A lookup waits for its round as a query waits for a thread (`run`).
            for waiter in &started {
                let waited = now.saturating_duration_since(waiter.queued);
                m.db_queue_wait.observe(waited.as_secs_f64());
            }
        }
        let (round, late): (Vec<_>, Vec<_>) = started.into_iter().partition(|w| w.deadline > now);
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::Settings;
    use crate::metrics::{enable, exposition};

    #[actix_web::test]
    async fn every_batched_lookup_counts_its_wait_for_a_database_thread() {
        let dir = tempfile::tempdir().expect("dir");
        let url = dir.path().join("batch.db").display().to_string();
        let env: HashMap<String, String> = [
            ("APP_ENV", "test"),
            ("JWT_SECRET_KEY", "0123456789abcdef0123456789abcdef"),
            ("DATABASE_URL", url.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let settings = Settings::load_from(env).expect("settings");
        let pool = super::super::pool(&settings.database);
        // Every key is found as itself, without a query: only the waits are counted here.
        let reads: BatchedReads<i64, i64> =
            BatchedReads::new(&pool, |_, ids| Ok(ids.to_vec()), |v| *v);
        enable();
        let waits = || exposition().db_queue_wait.get_sample_count();
        let before = waits();
        let lookups = (0..20).map(|n| reads.get(&pool, n % 7));
        let found = futures_util::future::join_all(lookups).await;
        assert!(found.iter().all(|f| matches!(f, Ok(Some(_)))), "{found:?}");
        // No other test of this binary queues database work.
        assert_eq!(waits() - before, 20);
    }
}
