//! bcrypt hashing and verification, on a dedicated bounded pool.
//!
//! bcrypt at cost 12 holds a core for a quarter of a second. On actix's blocking pool (up to 512
//! threads) a login storm would take every core from the async workers, and every
//! token-checked request would wait behind it. Here a fixed number of threads hash, at
//! most `queue` jobs wait, and a request beyond that waits up to `wait` for a place
//! (first come, first served) and is then shed with 503 and `Retry-After`, before it
//! does anything else (a login, before its user lookup): a storm costs its own logins
//! latency, never the rest of the API.
//!
//! The threads run at Linux's idle scheduling priority (`SCHED_IDLE`, sched(7)), but
//! for `reserved` of them: one per core then costs a token-checked request nothing, since
//! the scheduler runs a hash only on a core no other thread wants and preempts it the
//! moment a request's thread wakes up. At rest logins use every core; in a storm they use
//! what the rest of the API leaves.

use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use std::time::{Duration, Instant};

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use crate::config::PasswordSettings;
use crate::error::ApiError;
use crate::input::MAX_PASSWORD_BYTES;
use crate::metrics::metrics;

/// A well-formed bcrypt salt and digest that matches no password. Verifying against it
/// with the configured cost makes a login for an unknown user cost what a wrong password
/// costs (OWASP Authentication Cheat Sheet: authentication responses).
const DUMMY_SALT_AND_DIGEST: &str = "Kq8Zf1mB7yQwE3sV5nT9cO1mB7yQwE3sV5nT9cO1mB7yQwE3sV5nS";

/// Seconds a shed client is told to wait: a queued hash is done within a few seconds.
const SHED_RETRY_AFTER_SECS: u64 = 1;

/// Requests that may wait for a place at once; beyond them a request is shed at once, so
/// that waiting is bounded too.
const MAX_WAITING: usize = 1024;

/// One unit of hashing work.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed set of threads taking jobs from a queue, with at most `threads + queue` jobs
/// admitted (running or waiting) at any time.
#[derive(Debug)]
struct HashingPool {
    sender: Sender<Job>,
    slots: Arc<Semaphore>,
    /// Places for requests waiting for a slot.
    waiting: Semaphore,
    wait: Duration,
}

/// A place in the hashing pool, taken before any other work for the request (a login
/// takes it before looking the user up), so that a shed request costs nothing else.
#[derive(Debug)]
pub struct HashingSlot {
    /// Given back to the pool when dropped.
    _permit: OwnedSemaphorePermit,
}

impl HashingPool {
    /// Starts `threads` threads admitting at most `threads + queue` jobs, a request
    /// waiting up to `wait` for a place when all are taken; all but `reserved` of the
    /// threads run at idle priority.
    fn start(threads: usize, reserved: usize, queue: usize, wait: Duration) -> Self {
        let threads = threads.max(1);
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let (started_tx, started_rx) = mpsc::channel::<io::Result<Priority>>();
        let mut started = 0;
        for i in 0..threads {
            let receiver = Arc::clone(&receiver);
            let started_tx = started_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("bcrypt-{i}"))
                .spawn(move || {
                    let priority = if i < reserved {
                        Ok(Priority::Normal)
                    } else {
                        lower_priority()
                    };
                    // Nobody may be listening any more; the thread works all the same.
                    let _ = started_tx.send(priority);
                    drop(started_tx);
                    work(&receiver)
                });
            match spawned {
                Ok(_) => started += 1,
                // The pool runs with the threads it got; with none, jobs wait until
                // their clients give up and new ones are shed, which is visible and safe.
                Err(e) => log::error!("cannot start password hashing thread {i}: {e}"),
            }
        }
        drop(started_tx);
        report_priorities(started_rx.iter().take(started));
        HashingPool {
            sender,
            slots: Arc::new(Semaphore::new(threads.saturating_add(queue))),
            waiting: Semaphore::new(MAX_WAITING),
            wait,
        }
    }

    /// A slot, waiting up to the pool's `wait` when every slot is taken (the semaphore
    /// hands slots out in arrival order); `ApiError::Overloaded` after that, or at once
    /// when too many requests are waiting already.
    async fn reserve(&self) -> Result<HashingSlot, ApiError> {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(HashingSlot { _permit: permit });
        }
        if !self.wait.is_zero() {
            if let Ok(_waiting) = self.waiting.try_acquire() {
                let slot = Arc::clone(&self.slots).acquire_owned();
                if let Ok(Ok(permit)) = tokio::time::timeout(self.wait, slot).await {
                    return Ok(HashingSlot { _permit: permit });
                }
            }
        }
        log::warn!("password hashing pool full: request shed");
        if let Some(m) = metrics() {
            m.hash_shed.inc();
        }
        Err(ApiError::Overloaded(SHED_RETRY_AFTER_SECS))
    }

    /// Runs `f` on the pool in `slot`, which is given back when the job is done.
    async fn run<T, F>(&self, slot: HashingSlot, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let queued = Instant::now();
        // Taken once, so that the queue gauge goes down for every job it went up for.
        let recorder = metrics();
        let job: Job = Box::new(move || {
            if let Some(m) = recorder {
                m.hash_queue.dec();
                m.hash_wait.observe(queued.elapsed().as_secs_f64());
            }
            // A client that gave up while its job waited costs no hash.
            let result = (!tx.is_closed()).then(|| {
                let started = Instant::now();
                let result = f();
                if let Some(m) = recorder {
                    m.hash_time.observe(started.elapsed().as_secs_f64());
                }
                result
            });
            // The slot is free before the answer leaves: whoever sees the answer may
            // take it at once.
            drop(slot);
            if let Some(result) = result {
                let _ = tx.send(result);
            }
        });
        if let Some(m) = recorder {
            m.hash_queue.inc();
        }
        self.sender.send(job).map_err(|_| {
            if let Some(m) = recorder {
                m.hash_queue.dec();
            }
            ApiError::Internal("password hashing pool stopped".into())
        })?;
        rx.await
            .map_err(|_| ApiError::Internal("password hashing job failed".into()))
    }
}

/// The scheduling class a hashing thread runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Priority {
    /// The default class, competing with every other thread.
    Normal,
    /// `SCHED_IDLE`: runs only when no other thread of the machine wants the core.
    Idle,
    /// Nice 19, where `SCHED_IDLE` is refused: the smallest share of the default class.
    Lowest,
}

/// Moves the calling thread to `SCHED_IDLE`, or failing that to nice 19. Lowering one's
/// own priority needs no privilege (sched(7)); a seccomp profile may still refuse it.
#[cfg(target_os = "linux")]
fn lower_priority() -> io::Result<Priority> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 names the calling thread, and `param` outlives the call.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } == 0 {
        return Ok(Priority::Idle);
    }
    let refused = io::Error::last_os_error();
    // On Linux a nice value is a thread's own, so this leaves the workers as they are
    // (setpriority(2), NOTES).
    // SAFETY: no pointers; the call only reads its arguments.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) } == 0 {
        return Ok(Priority::Lowest);
    }
    Err(refused)
}

/// Elsewhere the threads keep the default priority.
#[cfg(not(target_os = "linux"))]
fn lower_priority() -> io::Result<Priority> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "idle scheduling priority is Linux only",
    ))
}

/// Logs once how the hashing threads run: the start-up line operators check, and a
/// warning when the idle priority was refused, since a storm then competes with reads.
fn report_priorities(priorities: impl Iterator<Item = io::Result<Priority>>) {
    let (mut normal, mut idle, mut lowest) = (0, 0, 0);
    let mut refused = None;
    for priority in priorities {
        match priority {
            Ok(Priority::Normal) => normal += 1,
            Ok(Priority::Idle) => idle += 1,
            Ok(Priority::Lowest) => lowest += 1,
            Err(e) => {
                normal += 1;
                refused = Some(e);
            }
        }
    }
    log::info!(
        "password hashing: {} threads: {normal} at normal priority, {idle} at idle priority, {lowest} at nice 19",
        normal + idle + lowest
    );
    if let Some(e) = refused {
        log::warn!(
            "password hashing threads could not lower their priority ({e}): a login storm competes with the other requests for the cores"
        );
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

/// What checking a password against a stored hash found.
#[derive(Debug)]
pub struct Verified {
    /// Whether the password matched.
    pub matched: bool,
    /// A new hash of the password at the configured cost, when it matched a hash of
    /// another cost; `None` when the hash was at that cost already or rehashing failed.
    pub rehashed: Option<String>,
}

/// The work factor in a bcrypt hash's `$2b$NN$` prefix (or `$2a$`, `$2x$`, `$2y$`);
/// `None` when `hash` is not a bcrypt hash.
pub fn bcrypt_cost(hash: &str) -> Option<u32> {
    let mut fields = hash.split('$');
    let (Some(""), Some(version), Some(cost), Some(_)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return None;
    };
    let known = matches!(version, "2a" | "2b" | "2x" | "2y");
    let digits = cost.len() == 2 && cost.bytes().all(|b| b.is_ascii_digit());
    (known && digits).then(|| cost.parse().ok()).flatten()
}

/// Hashes and verifies passwords with the configured work factor.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    cost: u32,
    dummy_hash: String,
    pool: Arc<HashingPool>,
}

impl PasswordHasher {
    /// A hasher with the configured cost on a pool of `hash_threads` threads (all but
    /// `hash_reserved_threads` at idle priority), at most `hash_queue` jobs waiting for
    /// them, and requests beyond those waiting up to `hash_wait` for a place.
    pub fn new(settings: &PasswordSettings) -> Self {
        let cost = settings.bcrypt_cost;
        PasswordHasher {
            cost,
            dummy_hash: format!("$2b${cost:02}${DUMMY_SALT_AND_DIGEST}"),
            pool: Arc::new(HashingPool::start(
                settings.hash_threads,
                settings.hash_reserved_threads,
                settings.hash_queue,
                settings.hash_wait,
            )),
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

    /// Whether `hash` should be replaced by one at the configured cost: a raised cost
    /// then reaches every account as it logs in, and a known user's login costs what an
    /// unknown one's does (OWASP Password Storage Cheat Sheet: upgrading the work factor).
    pub fn needs_rehash(&self, hash: &str) -> bool {
        bcrypt_cost(hash).is_some_and(|cost| cost != self.cost)
    }

    /// [`PasswordHasher::verify_blocking`], then, when the password matched a hash of
    /// another cost, a new hash at the configured cost. A failed rehash is logged and
    /// leaves the check's answer as it was.
    pub fn verify_and_rehash_blocking(&self, password: &str, hash: Option<&str>) -> Verified {
        let matched = self.verify_blocking(password, hash);
        let rehashed = match hash {
            Some(hash) if matched && self.needs_rehash(hash) => {
                match self.hash_blocking(password) {
                    Ok(new) => Some(new),
                    Err(e) => {
                        log::warn!("rehashing a password at cost {} failed: {e}", self.cost);
                        None
                    }
                }
            }
            _ => None,
        };
        Verified { matched, rehashed }
    }

    /// Takes a place in the hashing pool for a later `verify_in` or
    /// `verify_and_rehash_in`; `ApiError::Overloaded` when none came free within the
    /// pool's wait.
    pub async fn reserve(&self) -> Result<HashingSlot, ApiError> {
        self.pool.reserve().await
    }

    /// Hashes on the pool; `ApiError::Overloaded` when it stays full.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        let slot = self.reserve().await?;
        let hasher = self.clone();
        self.pool
            .run(slot, move || hasher.hash_blocking(&password))
            .await?
    }

    /// Verifies on the pool; `ApiError::Overloaded` when it stays full.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, ApiError> {
        let slot = self.reserve().await?;
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

    /// [`PasswordHasher::verify_and_rehash_blocking`] on the pool, in a slot taken
    /// earlier with `reserve`: the rehash is part of the same job, so it never runs on
    /// an async worker and a login storm cannot shed it half-way.
    pub async fn verify_and_rehash_in(
        &self,
        slot: HashingSlot,
        password: String,
        hash: Option<String>,
    ) -> Result<Verified, ApiError> {
        let hasher = self.clone();
        self.pool
            .run(slot, move || {
                hasher.verify_and_rehash_blocking(&password, hash.as_deref())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap_hasher() -> PasswordHasher {
        PasswordHasher::new(&PasswordSettings {
            bcrypt_cost: 4,
            hash_threads: 1,
            hash_reserved_threads: 0,
            hash_queue: 16,
            hash_wait: Duration::from_secs(1),
        })
    }

    #[test]
    fn hash_then_verify() {
        let hasher = cheap_hasher();
        let hash = hasher.hash_blocking("correct horse").unwrap();
        assert!(hasher.verify_blocking("correct horse", Some(&hash)));
        assert!(!hasher.verify_blocking("wrong horse", Some(&hash)));
    }

    #[test]
    fn a_72_byte_password_works_and_a_longer_one_never_matches() {
        let hasher = cheap_hasher();
        let exact = "x".repeat(72);
        let hash = hasher.hash_blocking(&exact).unwrap();
        assert!(hasher.verify_blocking(&exact, Some(&hash)));
        // bcrypt would truncate this to the stored password; we must not.
        assert!(!hasher.verify_blocking(&"x".repeat(73), Some(&hash)));
    }

    #[tokio::test]
    async fn a_full_pool_without_a_wait_sheds_at_once_and_recovers() {
        let pool = HashingPool::start(1, 0, 1, Duration::ZERO);
        let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
        let running = pool.reserve().await.unwrap();
        let waiting = pool.reserve().await.unwrap();
        assert!(matches!(pool.reserve().await, Err(ApiError::Overloaded(1))));
        // The running job holds its slot until it is done, the waiting one until it runs.
        let busy = pool.run(running, move || gate_rx.recv().is_ok());
        drop(waiting);
        let third = pool.reserve().await.unwrap();
        assert!(matches!(pool.reserve().await, Err(ApiError::Overloaded(1))));
        gate_tx.send(()).unwrap();
        assert!(busy.await.unwrap());
        assert_eq!(pool.run(third, || 4).await.unwrap(), 4, "the pool recovers");
        let mut slots = Vec::new();
        for _ in 0..2 {
            slots.push(pool.reserve().await.unwrap());
        }
        assert_eq!(slots.len(), 2, "every slot came back");
    }

    #[tokio::test]
    async fn a_request_on_a_full_pool_gets_a_place_freed_within_the_wait_else_is_shed() {
        let wait = Duration::from_millis(300);
        let pool = HashingPool::start(1, 0, 0, wait);
        let held = pool.reserve().await.unwrap();

        // Nothing comes free: shed, but only after the wait.
        let started = tokio::time::Instant::now();
        assert!(matches!(pool.reserve().await, Err(ApiError::Overloaded(1))));
        assert!(
            started.elapsed() >= wait,
            "shed after {:?}",
            started.elapsed()
        );

        // The place comes free during the wait: the waiting request takes it.
        let release = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(held);
        };
        let (slot, ()) = tokio::join!(pool.reserve(), release);
        let slot = slot.expect("the freed place");
        assert_eq!(pool.run(slot, || 7).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_internal_error_and_the_thread_survives() {
        let pool = HashingPool::start(1, 0, 1, Duration::ZERO);
        let result: Result<(), ApiError> = pool
            .run(pool.reserve().await.unwrap(), || panic!("boom"))
            .await;
        assert!(matches!(result, Err(ApiError::Internal(_))));
        let slot = pool.reserve().await.unwrap();
        assert_eq!(pool.run(slot, || 5).await.unwrap(), 5);
    }

    /// The scheduling policy of the thread a job runs on.
    #[cfg(target_os = "linux")]
    fn policy() -> libc::c_int {
        // SAFETY: pid 0 names the calling thread.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn threads_beyond_the_reserved_ones_run_at_idle_priority() {
        let pool = HashingPool::start(3, 1, 0, Duration::ZERO);
        // Each job waits for the other two, so the three run on three different threads.
        let together = Arc::new(std::sync::Barrier::new(3));
        let job = || {
            let together = Arc::clone(&together);
            async {
                let slot = pool.reserve().await.expect("a slot");
                pool.run(slot, move || {
                    together.wait();
                    policy()
                })
                .await
                .expect("the job's answer")
            }
        };
        let (a, b, c) = tokio::join!(job(), job(), job());
        let mut policies = vec![a, b, c];
        policies.sort_unstable();
        let mut expected = vec![libc::SCHED_OTHER, libc::SCHED_IDLE, libc::SCHED_IDLE];
        expected.sort_unstable();
        assert_eq!(policies, expected);
    }

    #[test]
    fn the_cost_is_read_from_the_hash_prefix() {
        let hasher = cheap_hasher();
        let hash = hasher.hash_blocking("correct horse").unwrap();
        assert_eq!(bcrypt_cost(&hash), Some(4));
        assert_eq!(bcrypt_cost("$2y$12$abc"), Some(12));
        for not_bcrypt in ["", "$2b$", "$2b$4$abc", "$2b$x1$abc", "$1$12$abc", "plain"] {
            assert_eq!(bcrypt_cost(not_bcrypt), None, "{not_bcrypt}");
        }
        assert!(!hasher.needs_rehash(&hash));
        assert!(hasher.needs_rehash("$2b$05$abc"));
        assert!(!hasher.needs_rehash("not a hash"));
    }

    #[test]
    fn a_match_at_another_cost_is_rehashed_at_the_configured_one() {
        let hasher = cheap_hasher();
        let old = bcrypt::hash("correct horse", 5).unwrap();
        let verified = hasher.verify_and_rehash_blocking("correct horse", Some(&old));
        assert!(verified.matched);
        let new = verified.rehashed.expect("a new hash");
        assert_eq!(bcrypt_cost(&new), Some(4));
        assert!(hasher.verify_blocking("correct horse", Some(&new)));
        // No rehash for a wrong password, an unknown user, or a hash at the cost already.
        let wrong = hasher.verify_and_rehash_blocking("wrong horse", Some(&old));
        assert!(!wrong.matched && wrong.rehashed.is_none());
        assert!(hasher
            .verify_and_rehash_blocking("correct horse", None)
            .rehashed
            .is_none());
        let same = hasher.verify_and_rehash_blocking("correct horse", Some(&new));
        assert!(same.matched && same.rehashed.is_none());
    }

    #[test]
    fn dummy_hash_is_valid_bcrypt_and_matches_nothing() {
        let hasher = cheap_hasher();
        assert!(bcrypt::verify("anything", &hasher.dummy_hash).is_ok());
        assert!(!hasher.verify_blocking("anything", None));
    }
}
