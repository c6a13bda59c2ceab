//! Brute-force limits (OWASP Authentication Cheat Sheet, "Protect against automated
//! attacks"): a window of requests per client address for each auth route, a window of
//! failed password checks per username (logins) and per user (password changes), and a
//! fair share of the hashing pool per user.
//!
//! On PostgreSQL the windows are rows of `auth_limits`, counted atomically, so every
//! instance counts against the same budget. On SQLite (one instance) they live in
//! memory, in maps that never hold more than `RATE_LIMIT_MAX_ENTRIES` keys each: every
//! key an attacker can vary (an address, a username) costs a fixed, small amount, and a
//! flood of new keys evicts the oldest instead of growing the process. Closed windows
//! are dropped by the periodic sweep as well as on use.

mod store;
mod turns;
mod windows;

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, ResponseError};
use sha2::{Digest, Sha256};

pub use turns::HashingTurn;

use crate::config::{IpNetwork, LimitSettings};
use crate::db::{self, Pool};
use crate::error::ApiError;
use crate::http::{client_ip, RateLimitStatus};
use crate::input::Username;
use crate::metrics::metrics;
use store::Counted;
use turns::{Refused, Turns};
use windows::Windows;

/// The window of the per-address limit: `AUTH_RATE_LIMIT_PER_MINUTE` requests in it.
pub const ADDRESS_WINDOW: Duration = Duration::from_secs(60);
/// How long a failed password check counts against its username or user.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The routes with a per-address limit, each with its own budget.
const ROUTES: [&str; 5] = [
    "/login",
    "/fresh-login",
    "/register",
    "/refresh",
    "/me/password",
];

/// Whose password is being checked: what failures and hashing turns are counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// A valid username, by its SHA-256: the same size whatever the name.
    Name([u8; 32]),
    /// A user, by id (the token's subject).
    User(i64),
}

impl Target {
    /// A username's subject. Only a valid username has one: an invalid one cannot
    /// belong to an account, so it has nothing to protect and stores nothing.
    pub fn username(name: &Username) -> Self {
        Target::Name(Sha256::digest(name.key().as_bytes()).into())
    }

    /// The subject of a name as typed at a login: every spelling of one account's
    /// name is one subject.
    pub fn username_key(name: &str) -> Self {
        Target::Name(Sha256::digest(Username::key_of(name).as_bytes()).into())
    }

    /// A user's subject.
    pub fn user(id: i64) -> Self {
        Target::User(id)
    }

    /// The policy a refusal names: failed logins per username, or failed password
    /// checks per user.
    fn policy(self) -> &'static str {
        match self {
            Target::Name(_) => "login",
            Target::User(_) => "password",
        }
    }

    /// The key of its row in `auth_limits`.
    fn row(self) -> String {
        match self {
            Target::Name(digest) => {
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                format!("login {hex}")
            }
            Target::User(id) => format!("password {id}"),
        }
    }
}

/// The part of a client's address that is counted: an IPv4 address (also when written
/// as IPv4-mapped IPv6), or an IPv6 address's /64. A /64 is what one link, and so one
/// subscriber, gets (RFC 7421), and a host picks any address in it at will (RFC 8981):
/// counting single IPv6 addresses would give one client 2^64 budgets.
pub fn counted_address(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

/// The in-memory windows (SQLite).
#[derive(Debug)]
struct Memory {
    /// Per route (its index in [`ROUTES`]) and counted address.
    addresses: Windows<(u8, IpAddr)>,
    /// Failed password checks per subject.
    failures: Windows<Target>,
}

/// Where the windows are kept.
enum Store {
    /// In this process (SQLite: one instance); boxed, it is most of the limiter's size.
    Memory(Box<Mutex<Memory>>),
    /// In `auth_limits` (PostgreSQL: shared by every instance).
    Database(Pool),
}

/// The brute-force limits of the service.
pub struct RateLimiter {
    per_minute: u32,
    failure_limit: u32,
    /// Whose `X-Forwarded-For` names the client.
    trusted_proxies: Vec<IpNetwork>,
    store: Store,
    turns: Turns,
}

impl RateLimiter {
    /// `auth_per_minute` requests per address and route in [`ADDRESS_WINDOW`],
    /// `login_failures` failed password checks per username or user in
    /// [`FAILURE_WINDOW`] (0 turns either off), `hashing_per_user` password checks in
    /// flight per user. Addresses are read through `trusted_proxies`. With a `database`
    /// the windows are kept there, else in memory, at most `max_entries` keys per map.
    pub fn new(
        settings: &LimitSettings,
        trusted_proxies: Vec<IpNetwork>,
        database: Option<Pool>,
    ) -> Self {
        let now = Instant::now();
        let cap = settings.max_entries;
        RateLimiter {
            per_minute: settings.auth_per_minute,
            failure_limit: settings.login_failures,
            trusted_proxies,
            store: match database {
                Some(pool) => Store::Database(pool),
                None => Store::Memory(Box::new(Mutex::new(Memory {
                    addresses: Windows::new(ADDRESS_WINDOW, cap, now),
                    failures: Windows::new(FAILURE_WINDOW, cap, now),
                }))),
            },
            turns: Turns::new(settings.hashing_per_user, cap),
        }
    }

    fn memory(lock: &Mutex<Memory>) -> std::sync::MutexGuard<'_, Memory> {
        // The maps hold plain values: a panic elsewhere cannot leave them half-written.
        lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a request from `ip` to `route`: where the client stands in its window, or
    /// 429 past the limit. `None` when the limit is off.
    pub async fn check_address(
        &self,
        route: &str,
        ip: IpAddr,
    ) -> Result<Option<RateLimitStatus>, ApiError> {
        if self.per_minute == 0 {
            return Ok(None);
        }
        let ip = counted_address(ip);
        let index = ROUTES.iter().position(|r| *r == route);
        let counted = match &self.store {
            Store::Memory(memory) => {
                let now = Instant::now();
                let key = (index.map_or(u8::MAX, |i| i as u8), ip);
                let window = Self::memory(memory).addresses.hit(key, now);
                Counted {
                    hits: window.hits,
                    left: window.ends.saturating_duration_since(now),
                }
            }
            Store::Database(pool) => {
                let net = match ip {
                    IpAddr::V6(_) => format!("{ip}/64"),
                    IpAddr::V4(_) => ip.to_string(),
                };
                let row = format!("address {} {net}", index.map_or("other", |i| ROUTES[i]));
                db::run(pool, move |conn| {
                    store::hit(conn, &row, ADDRESS_WINDOW, store::now_ms())
                })
                .await?
            }
        };
        let quota = u64::from(self.per_minute);
        let status = RateLimitStatus {
            policy: "auth",
            quota,
            window: Some(ADDRESS_WINDOW.as_secs()),
            remaining: quota.saturating_sub(counted.hits),
            reset: Some(ceil_secs(counted.left)),
        };
        if counted.hits > quota {
            if let Some(m) = metrics() {
                m.rate_limited(status.policy);
            }
            Err(ApiError::TooManyRequests(status))
        } else {
            Ok(Some(status))
        }
    }

    /// Refuses a password check for `who` after too many recent failures, right
    /// password or not (OWASP Authentication Cheat Sheet, "Account lockout").
    pub async fn check_failures(&self, who: Target) -> Result<(), ApiError> {
        if self.failure_limit == 0 {
            return Ok(());
        }
        let counted = match &self.store {
            Store::Memory(memory) => {
                let now = Instant::now();
                Self::memory(memory)
                    .failures
                    .get(&who, now)
                    .map(|window| Counted {
                        hits: window.hits,
                        left: window.ends.saturating_duration_since(now),
                    })
            }
            Store::Database(pool) => {
                let row = who.row();
                db::run(pool, move |conn| store::get(conn, &row, store::now_ms())).await?
            }
        };
        match counted {
            Some(counted) if counted.hits >= u64::from(self.failure_limit) => {
                if let Some(m) = metrics() {
                    m.rate_limited(who.policy());
                }
                Err(ApiError::TooManyRequests(self.failure_status(who, counted)))
            }
            _ => Ok(()),
        }
    }

    fn failure_status(&self, who: Target, counted: Counted) -> RateLimitStatus {
        let quota = u64::from(self.failure_limit);
        RateLimitStatus {
            policy: who.policy(),
            quota,
            window: Some(FAILURE_WINDOW.as_secs()),
            remaining: quota.saturating_sub(counted.hits),
            reset: Some(ceil_secs(counted.left)),
        }
    }

    /// Counts a failed password check against `who`.
    pub async fn record_failure(&self, who: Target) -> Result<(), ApiError> {
        if self.failure_limit == 0 {
            return Ok(());
        }
        match &self.store {
            Store::Memory(memory) => {
                Self::memory(memory).failures.hit(who, Instant::now());
            }
            Store::Database(pool) => {
                let row = who.row();
                db::run(pool, move |conn| {
                    store::hit(conn, &row, FAILURE_WINDOW, store::now_ms())
                })
                .await?;
            }
        }
        Ok(())
    }

    /// A right password clears `who`'s failures.
    pub async fn record_success(&self, who: Target) -> Result<(), ApiError> {
        if self.failure_limit == 0 {
            return Ok(());
        }
        match &self.store {
            Store::Memory(memory) => Self::memory(memory).failures.remove(&who),
            Store::Database(pool) => {
                let row = who.row();
                db::run(pool, move |conn| store::remove(conn, &row)).await?;
            }
        }
        Ok(())
    }

    /// A turn at the hashing pool for `who`, held until the password work of this
    /// request is done: 429 when `who` has its share in flight already, so that one
    /// user cannot take the pool from the others.
    pub fn hashing_turn(&self, who: Target) -> Result<HashingTurn<'_>, ApiError> {
        self.turns.take(who).map_err(|refused| match refused {
            Refused::Busy => {
                if let Some(m) = metrics() {
                    m.rate_limited("hashing");
                }
                ApiError::TooManyRequests(RateLimitStatus {
                    policy: "hashing",
                    quota: u64::from(self.turns.per_subject()),
                    window: None,
                    remaining: 0,
                    reset: None,
                })
            }
            Refused::Full => {
                log::warn!("too many users with password checks in flight: request shed");
                if let Some(m) = metrics() {
                    m.hash_shed.inc();
                }
                ApiError::Overloaded(1)
            }
        })
    }

    /// Drops closed windows (the periodic sweep); returns how many rows went, in the
    /// database (in memory whole generations go, uncounted).
    pub async fn sweep(&self) -> Result<usize, ApiError> {
        match &self.store {
            Store::Memory(memory) => {
                let now = Instant::now();
                let mut memory = Self::memory(memory);
                memory.addresses.expire(now);
                memory.failures.expire(now);
                Ok(0)
            }
            Store::Database(pool) => {
                db::run(pool, |conn| store::prune(conn, store::now_ms())).await
            }
        }
    }
}

/// Whole seconds, rounded up: a client told to wait must not come back too early.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Middleware of the auth routes (`wrap = "from_fn(limit_by_address)"`): counts the
/// request against its client address's window for the route before anything else
/// runs, so that a flood is refused before a body is read or a token decoded (an
/// extractor would not do: actix polls a handler's extractors together). Where the
/// client stands is left on the request for the `RateLimit` headers of the response.
pub async fn limit_by_address(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let limiter = req.app_data::<web::Data<RateLimiter>>().cloned();
    let ip = limiter
        .as_ref()
        .and_then(|l| client_ip(req.request(), &l.trusted_proxies));
    if let (Some(limiter), Some(ip)) = (limiter, ip) {
        // Each route has its own budget, named by the route's template.
        let route = req.match_pattern().unwrap_or_default();
        match limiter.check_address(&route, ip).await {
            Ok(Some(status)) => {
                req.extensions_mut().insert(status);
            }
            Ok(None) => {}
            Err(refused) => {
                let response = refused.error_response();
                return Ok(req.into_response(response).map_into_right_body());
            }
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn limiter(auth_per_minute: u32, login_failures: u32, max_entries: usize) -> RateLimiter {
        let settings = LimitSettings {
            auth_per_minute,
            login_failures,
            hashing_per_user: 2,
            max_entries,
        };
        RateLimiter::new(&settings, Vec::new(), None)
    }

    fn name(raw: &str) -> Target {
        Target::username(&Username::parse(&serde_json::Value::from(raw)).unwrap())
    }

    fn map_sizes(limiter: &RateLimiter) -> (usize, usize) {
        match &limiter.store {
            Store::Memory(memory) => {
                let memory = RateLimiter::memory(memory);
                (memory.addresses.len(), memory.failures.len())
            }
            Store::Database(_) => unreachable!("memory only here"),
        }
    }

    #[tokio::test]
    async fn the_window_fills_and_names_a_wait() {
        let limiter = limiter(3, 0, 100);
        for remaining in [2, 1, 0] {
            let status = limiter.check_address("/login", IP).await.unwrap().unwrap();
            assert_eq!(status.remaining, remaining);
        }
        match limiter.check_address("/login", IP).await {
            Err(ApiError::TooManyRequests(status)) => {
                assert_eq!(
                    (status.policy, status.quota, status.remaining),
                    ("auth", 3, 0)
                );
                assert!((1..=60).contains(&status.retry_after()), "{status:?}");
            }
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(
            limiter.check_address("/register", IP).await.is_ok(),
            "windows are per route"
        );
    }

    #[tokio::test]
    async fn failures_lock_one_subject_until_a_success_clears_them() {
        let limiter = limiter(0, 2, 100);
        let bob = name("bob");
        limiter.record_failure(bob).await.unwrap();
        assert!(limiter.check_failures(bob).await.is_ok());
        limiter.record_failure(bob).await.unwrap();
        match limiter.check_failures(bob).await {
            Err(ApiError::TooManyRequests(status)) => {
                assert_eq!((status.policy, status.window), ("login", Some(900)));
            }
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(limiter.check_failures(name("alice")).await.is_ok());
        assert!(limiter.check_failures(Target::user(1)).await.is_ok());
        limiter.record_success(bob).await.unwrap();
        assert!(limiter.check_failures(bob).await.is_ok());
    }

    #[tokio::test]
    async fn zero_turns_limits_off() {
        let limiter = limiter(0, 0, 100);
        for _ in 0..1000 {
            assert!(limiter.check_address("/login", IP).await.unwrap().is_none());
            limiter.record_failure(name("bob")).await.unwrap();
        }
        assert!(limiter.check_failures(name("bob")).await.is_ok());
        assert_eq!(map_sizes(&limiter), (0, 0));
    }

    #[tokio::test]
    async fn floods_of_addresses_and_usernames_never_exceed_the_cap() {
        let limiter = limiter(60, 10, 1000);
        for n in 0..20_000u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            let _ = limiter.check_address("/login", ip).await;
            limiter
                .record_failure(name(&format!("user-{n}")))
                .await
                .unwrap();
            let (addresses, failures) = map_sizes(&limiter);
            assert!(
                addresses <= 1000 && failures <= 1000,
                "{addresses}, {failures}"
            );
        }
        // A username that is a different string of the same 32-byte digest size: the
        // key's size does not depend on the name.
        assert_eq!(std::mem::size_of::<Target>(), 40);
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let parse = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            counted_address(parse("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            parse("2001:db8:1:2::")
        );
        assert_ne!(
            counted_address(parse("2001:db8:1:3::1")),
            counted_address(parse("2001:db8:1:2::1"))
        );
        assert_eq!(
            counted_address(parse("::ffff:203.0.113.9")),
            parse("203.0.113.9")
        );
        assert_eq!(counted_address(parse("203.0.113.9")), parse("203.0.113.9"));
    }

    #[test]
    fn a_busy_user_is_told_the_concurrency_policy() {
        let limiter = limiter(0, 0, 100);
        let _a = limiter.hashing_turn(Target::user(1)).unwrap();
        let _b = limiter.hashing_turn(Target::user(1)).unwrap();
        match limiter.hashing_turn(Target::user(1)) {
            Err(ApiError::TooManyRequests(status)) => {
                assert_eq!(
                    status.policy_field(),
                    "\"hashing\";q=2;qu=\"concurrent-requests\""
                );
                assert_eq!(status.field(), "\"hashing\";r=0");
                assert_eq!(status.retry_after(), 1);
            }
            other => panic!("expected 429, got {other:?}"),
        };
    }
}
