//! bcrypt hashing and verification, on a dedicated bounded pool.
//!
//! bcrypt at cost 12 holds a core for about 275 ms. On actix's blocking pool (up to 512
//! threads) a login storm would take every core from the async workers, and every
//! token-checked request would wait behind it. Here a fixed number of threads hash, at
//! most `queue` jobs wait, and a request beyond that is shed at once with 503 and
//! `Retry-After`, before it does anything else (a login, before its user lookup): a
//! storm costs its own logins latency, never the rest of the API.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// bcrypt reads at most 72 bytes; longer passwords are refused, never truncated.
pub const MAX_PASSWORD_BYTES: usize = 72;

/// A well-formed bcrypt salt and digest that matches no password. Verifying against it
/// with the configured cost makes a login for an unknown user cost what a wrong password
/// costs (OWASP Authentication Cheat Sheet: authentication responses).
const DUMMY_SALT_AND_DIGEST: &str = "Kq8Zf1mB7yQwE3sV5nT9cO1mB7yQwE3sV5nT9cO1mB7yQwE3sV5nS";

/// Seconds a shed client is told to wait: a queued hash is done within a few seconds.
const SHED_RETRY_AFTER_SECS: u64 = 1;

/// Jobs that may wait for a hashing thread by default: with one thread at cost 12, the
/// last of them is answered within about 16 x 275 ms = 4.4 s, well inside client timeouts.
pub const DEFAULT_HASHING_QUEUE: usize = 16;

/// One unit of hashing work.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// The default number of hashing threads: half the cores, at least one. bcrypt keeps a
/// core fully busy, so hashing on every core would leave the async workers (the token
/// check, the database driver) fighting for CPU during a login storm; with half, the
/// rest of the API keeps at least half the machine whatever the login rate.
pub fn default_hashing_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / 2).max(1)
}

/// A fixed set of threads taking jobs from a queue, with at most `threads + queue` jobs
/// admitted (running or waiting) at any time.
#[derive(Debug)]
struct HashingPool {
    sender: Sender<Job>,
    slots: Arc<Semaphore>,
}

/// A place in the hashing pool, taken before any other work for the request (a login
/// takes it before looking the user up), so that a shed request costs nothing else.
#[derive(Debug)]
pub struct HashingSlot {
    /// Given back to the pool when dropped.
    _permit: OwnedSemaphorePermit,
}

impl HashingPool {
    /// Starts `threads` threads admitting at most `threads + queue` jobs.
    fn start(threads: usize, queue: usize) -> Self {
        let threads = threads.max(1);
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for i in 0..threads {
            let receiver = Arc::clone(&receiver);
            let spawned = std::thread::Builder::new()
                .name(format!("bcrypt-{i}"))
                .spawn(move || work(&receiver));
            if let Err(e) = spawned {
                // The pool runs with the threads it got; with none, jobs wait until
                // their clients give up and new ones are shed, which is visible and safe.
                log::error!("cannot start password hashing thread {i}: {e}");
            }
        }
        HashingPool {
            sender,
            slots: Arc::new(Semaphore::new(threads.saturating_add(queue))),
        }
    }

    /// A slot, or `ApiError::Overloaded` at once when every slot is taken.
    fn reserve(&self) -> Result<HashingSlot, ApiError> {
        match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(permit) => Ok(HashingSlot { _permit: permit }),
            Err(_) => {
                log::warn!("password hashing pool full: request shed");
                Err(ApiError::Overloaded(SHED_RETRY_AFTER_SECS))
            }
        }
    }

    /// Runs `f` on the pool in `slot`, which is given back when the job is done.
    async fn run<T, F>(&self, slot: HashingSlot, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            // A client that gave up while its job waited costs no hash.
            let result = (!tx.is_closed()).then(f);
            // The slot is free before the answer leaves: whoever sees the answer may
            // take it at once.
            drop(slot);
            if let Some(result) = result {
                let _ = tx.send(result);
            }
        });
        self.sender
            .send(job)
            .map_err(|_| ApiError::Internal("password hashing pool stopped".into()))?;
        rx.await
            .map_err(|_| ApiError::Internal("password hashing job failed".into()))
    }
}

/// A hashing thread: takes jobs until every sender is gone.
fn work(receiver: &Mutex<Receiver<Job>>) {
    loop {
        // Holding the lock only while waiting for the next job; a poisoned lock means
        // another thread panicked while waiting, which cannot leave the receiver broken.
        let next = match receiver.lock() {
            Ok(guard) => guard.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(job) = next else { return };
        // A panicking job drops its result sender (the caller gets a 500); the thread
        // lives on so the pool keeps its size.
        if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
            log::error!("a password hashing job panicked");
        }
    }
}

/// Hashes and verifies passwords with the configured work factor.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    cost: u32,
    dummy_hash: String,
    pool: Arc<HashingPool>,
}

impl PasswordHasher {
    /// A hasher with bcrypt cost `cost` on a pool of the default size.
    pub fn new(cost: u32) -> Self {
        Self::with_pool(cost, default_hashing_threads(), DEFAULT_HASHING_QUEUE)
    }

    /// A hasher with bcrypt cost `cost`, `threads` hashing threads and at most `queue`
    /// jobs waiting for them.
    pub fn with_pool(cost: u32, threads: usize, queue: usize) -> Self {
        PasswordHasher {
            cost,
            dummy_hash: format!("$2b${cost:02}${DUMMY_SALT_AND_DIGEST}"),
            pool: Arc::new(HashingPool::start(threads, queue)),
        }
    }
    /// Hashes `password` (already validated to be at most 72 bytes).
    pub fn hash_blocking(&self, password: &str) -> Result<String, ApiError> {
        bcrypt::hash(password, self.cost)
            .map_err(|e| ApiError::Internal(format!("bcrypt hash failed: {e}")))
    }

    /// Verifies `password` against `hash`, or against the dummy hash when there is no
    /// user, so that both paths take the same time. Over-long passwords never match.
    pub fn verify_blocking(&self, password: &str, hash: Option<&str>) -> bool {
        let too_long = password.len() > MAX_PASSWORD_BYTES;
        let target = match hash {
            Some(hash) if !too_long => hash,
            _ => &self.dummy_hash,
        };
        let matched = bcrypt::verify(password.as_bytes(), target).unwrap_or(false);
        matched && hash.is_some() && !too_long
    }

    /// Takes a place in the hashing pool for a later `verify_in`; `ApiError::Overloaded`
    /// at once when the pool is full.
    pub fn reserve(&self) -> Result<HashingSlot, ApiError> {
        self.pool.reserve()
    }

    /// Hashes on the pool; `ApiError::Overloaded` when it is full.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        let slot = self.reserve()?;
        let hasher = self.clone();
        self.pool
            .run(slot, move || hasher.hash_blocking(&password))
            .await?
    }

    /// Verifies on the pool; `ApiError::Overloaded` when it is full.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, ApiError> {
        let slot = self.reserve()?;
        self.verify_in(slot, password, hash).await
    }

    /// Verifies on the pool in a slot taken earlier with `reserve`.
    pub async fn verify_in(
        &self,
        slot: HashingSlot,
        password: String,
        hash: Option<String>,
    ) -> Result<bool, ApiError> {
        let hasher = self.clone();
        self.pool
            .run(slot, move || {
                hasher.verify_blocking(&password, hash.as_deref())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let hasher = PasswordHasher::new(4);
        let hash = hasher.hash_blocking("correct horse").unwrap();
        assert!(hasher.verify_blocking("correct horse", Some(&hash)));
        assert!(!hasher.verify_blocking("wrong horse", Some(&hash)));
    }

    #[test]
    fn a_72_byte_password_works_and_a_longer_one_never_matches() {
        let hasher = PasswordHasher::new(4);
        let exact = "x".repeat(72);
        let hash = hasher.hash_blocking(&exact).unwrap();
        assert!(hasher.verify_blocking(&exact, Some(&hash)));
        // bcrypt would truncate this to the stored password; we must not.
        assert!(!hasher.verify_blocking(&"x".repeat(73), Some(&hash)));
    }

    #[tokio::test]
    async fn a_full_pool_sheds_at_once_and_recovers() {
        let pool = HashingPool::start(1, 1);
        let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
        let running = pool.reserve().unwrap();
        let waiting = pool.reserve().unwrap();
        assert!(matches!(pool.reserve(), Err(ApiError::Overloaded(1))));
        // The running job holds its slot until it is done, the waiting one until it runs.
        let busy = pool.run(running, move || gate_rx.recv().is_ok());
        drop(waiting);
        let third = pool.reserve().unwrap();
        assert!(matches!(pool.reserve(), Err(ApiError::Overloaded(1))));
        gate_tx.send(()).unwrap();
        assert!(busy.await.unwrap());
        assert_eq!(pool.run(third, || 4).await.unwrap(), 4, "the pool recovers");
        let slots: Vec<_> = (0..2).map(|_| pool.reserve().unwrap()).collect();
        assert_eq!(slots.len(), 2, "every slot came back");
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_internal_error_and_the_thread_survives() {
        let pool = HashingPool::start(1, 1);
        let result: Result<(), ApiError> =
            pool.run(pool.reserve().unwrap(), || panic!("boom")).await;
        assert!(matches!(result, Err(ApiError::Internal(_))));
        assert_eq!(pool.run(pool.reserve().unwrap(), || 5).await.unwrap(), 5);
    }

    #[test]
    fn dummy_hash_is_valid_bcrypt_and_matches_nothing() {
        let hasher = PasswordHasher::new(4);
        assert!(bcrypt::verify("anything", &hasher.dummy_hash).is_ok());
        assert!(!hasher.verify_blocking("anything", None));
    }
}
