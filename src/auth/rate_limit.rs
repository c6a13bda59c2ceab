//! Brute-force limits (OWASP Authentication Cheat Sheet, "Protect against automated
//! attacks"): a token bucket per client address for each auth endpoint, and a window of
//! failed logins per username. In memory, per instance.

use std::collections::{HashMap, VecDeque};
use std::future::{ready, Ready};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};

use crate::config::{IpNetwork, LimitSettings};
use crate::error::ApiError;
use crate::http::client_ip;

/// How long a failed login counts against its username.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Above this many tracked keys, stale ones are swept on the next write.
const SWEEP_ABOVE: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The limits of one instance.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    failure_limit: u32,
    /// Whose `X-Forwarded-For` names the client.
    trusted_proxies: Vec<IpNetwork>,
    /// Keyed by the route's template (`/login`) and the client's address.
    buckets: Mutex<HashMap<(String, IpAddr), Bucket>>,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    /// `auth_per_minute` requests per address and endpoint, `login_failures` failed
    /// logins per username in [`FAILURE_WINDOW`]; 0 turns either off. Addresses are
    /// read through `trusted_proxies`.
    pub fn new(settings: &LimitSettings, trusted_proxies: Vec<IpNetwork>) -> Self {
        RateLimiter {
            per_minute: settings.auth_per_minute,
            failure_limit: settings.login_failures,
            trusted_proxies,
            buckets: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    /// Takes one request from `ip`'s bucket for `route`, or says how long to wait.
    pub fn check_address(&self, route: &str, ip: IpAddr) -> Result<(), ApiError> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > SWEEP_ABOVE {
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * per_second < capacity
            });
        }
        let bucket = buckets.entry((route.to_owned(), ip)).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let refilled =
            bucket.tokens + now.duration_since(bucket.updated).as_secs_f64() * per_second;
        bucket.tokens = refilled.min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - bucket.tokens) / per_second).ceil().max(1.0);
            Err(ApiError::TooManyRequests(wait as u64))
        }
    }

    /// Refuses a login for a username that failed too often lately, right password or not.
    pub fn check_username(&self, username: &str) -> Result<(), ApiError> {
        if self.failure_limit == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let Some(times) = failures.get_mut(username) else {
            return Ok(());
        };
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= FAILURE_WINDOW)
        {
            times.pop_front();
        }
        if times.len() < self.failure_limit as usize {
            return Ok(());
        }
        let oldest = times.front().copied().unwrap_or(now);
        let wait = FAILURE_WINDOW.saturating_sub(now.duration_since(oldest));
        Err(ApiError::TooManyRequests(wait.as_secs().max(1)))
    }

    /// Counts a failed login against `username`.
    pub fn record_failure(&self, username: &str) {
        if self.failure_limit == 0 {
            return;
        }
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() > SWEEP_ABOVE {
            failures.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < FAILURE_WINDOW)
            });
        }
        let times = failures.entry(username.to_owned()).or_default();
        times.push_back(now);
        // Only the newest `failure_limit` matter for the decision.
        while times.len() > self.failure_limit as usize {
            times.pop_front();
        }
    }

    /// A successful login clears the username's failures.
    pub fn record_success(&self, username: &str) {
        if self.failure_limit == 0 {
            return;
        }
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(username);
    }
}

/// The per-address limit of the auth endpoints, as an extractor placed first in their
/// signatures so that a flood is refused before any other work.
pub struct AuthRateLimit;

impl FromRequest for AuthRateLimit {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(limiter) = req.app_data::<web::Data<RateLimiter>>() else {
            return ready(Ok(AuthRateLimit));
        };
        let Some(ip) = client_ip(req, &limiter.trusted_proxies) else {
            return ready(Ok(AuthRateLimit));
        };
        // Each route has its own bucket, named by the route's template.
        let route = req.match_pattern().unwrap_or_default();
        ready(limiter.check_address(&route, ip).map(|()| AuthRateLimit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn limiter(auth_per_minute: u32, login_failures: u32) -> RateLimiter {
        let settings = LimitSettings {
            auth_per_minute,
            login_failures,
        };
        RateLimiter::new(&settings, Vec::new())
    }

    #[test]
    fn the_bucket_empties_and_names_a_wait() {
        let limiter = limiter(3, 0);
        for _ in 0..3 {
            assert!(limiter.check_address("login", IP).is_ok());
        }
        match limiter.check_address("login", IP) {
            Err(ApiError::TooManyRequests(wait)) => assert!((1..=20).contains(&wait)),
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(
            limiter.check_address("register", IP).is_ok(),
            "buckets are per route"
        );
    }

    #[test]
    fn failures_lock_one_username_until_a_success_clears_them() {
        let limiter = limiter(0, 2);
        limiter.record_failure("bob");
        assert!(limiter.check_username("bob").is_ok());
        limiter.record_failure("bob");
        assert!(matches!(
            limiter.check_username("bob"),
            Err(ApiError::TooManyRequests(_))
        ));
        assert!(limiter.check_username("alice").is_ok());
        limiter.record_success("bob");
        assert!(limiter.check_username("bob").is_ok());
    }

    #[test]
    fn zero_turns_limits_off() {
        let limiter = limiter(0, 0);
        for _ in 0..1000 {
            assert!(limiter.check_address("login", IP).is_ok());
            limiter.record_failure("bob");
        }
        assert!(limiter.check_username("bob").is_ok());
    }
}
