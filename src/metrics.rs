//! The service's Prometheus metrics: one process-wide set of handles that any module
//! records into, and its rendering in Prometheus's text exposition format (0.0.4).
//!
//! Every label value comes from a fixed set (route templates, methods, status classes,
//! the contract's error codes, names written in this crate), never from a request's
//! path, a username, a token or an address, so that no client can grow the series.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::error::ApiError;

/// The `Content-Type` of the exposition served at `/metrics`.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The route label of a request that no route took (an unknown path).
pub const UNMATCHED: &str = "unmatched";

/// Request latencies, in seconds: from half a millisecond to the pool timeouts.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Time spent queued for a thread, in seconds: usually microseconds, seconds when shed.
const WAIT_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0,
];
/// One bcrypt hash or verification, in seconds (cost 4 in tests to cost 14 or so).
const HASH_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Keys in one batched read; [`crate::db::BATCH_MAX`] is 64.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
/// One poll of the revocation follower, in seconds.
const POLL_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The flows counted by [`Metrics::auth_flows`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// `POST /login`.
    Login,
    /// `POST /fresh-login`.
    FreshLogin,
    /// `POST /refresh`.
    Refresh,
    /// `POST /register`.
    Register,
}

impl Flow {
    fn as_str(self) -> &'static str {
        match self {
            Flow::Login => "login",
            Flow::FreshLogin => "fresh_login",
            Flow::Refresh => "refresh",
            Flow::Register => "register",
        }
    }
}

/// Every metric the service exposes, registered in one registry.
pub struct Metrics {
    registry: Registry,
    /// HTTP requests by route template, method and status class.
    pub http_requests: IntCounterVec,
    /// HTTP request latency by route template.
    pub http_duration: HistogramVec,
    /// Token checks of the bearer middleware by outcome (`ok` or an error code).
    pub token_checks: IntCounterVec,
    /// Requests a guard refused although the token itself was valid, or without one.
    pub guard_refusals: IntCounterVec,
    /// Logins, fresh logins, refreshes and registrations by flow and outcome.
    pub auth_flows: IntCounterVec,
    /// Spent refresh tokens presented again (the session is revoked).
    pub refresh_reuse: IntCounter,
    /// Requests refused by a rate limit, by bucket.
    pub rate_limited: IntCounterVec,
    /// Sessions opened (logins and fresh logins).
    pub sessions_opened: IntCounter,
    /// Revocations this instance wrote, by kind (`session` is a revoked session).
    pub revocations: IntCounterVec,
    /// Hashing jobs queued and not yet started.
    pub hash_queue: IntGauge,
    /// Time a hashing job waited for a thread.
    pub hash_wait: Histogram,
    /// Time one hash or verification took.
    pub hash_time: Histogram,
    /// Requests shed because the hashing pool was full.
    pub hash_shed: IntCounter,
    /// Database connections by state (`in_use`, `idle`), read at scrape time.
    pub db_connections: IntGaugeVec,
    /// Time a query waited for a database thread.
    pub db_queue_wait: Histogram,
    /// Keys per batched read.
    pub db_batch_size: Histogram,
    /// Entries in the in-memory revoked set, read at scrape time.
    pub revoked_entries: IntGauge,
    /// Seconds since the follower's last successful poll, read at scrape time.
    pub revocation_poll_age: Gauge,
    /// Time one successful poll of the follower took.
    pub revocation_poll: Histogram,
    /// Audit events queued (failed and limited logins) and not yet written, read at
    /// scrape time.
    pub audit_queue: IntGauge,
    /// Audit events that could not be written one by one (a full queue, a batch the
    /// database refused); their count is written as one event instead.
    pub audit_unrecorded: IntCounter,
    /// Always 1, labelled with the version, the backend and the token algorithm.
    pub build_info: IntGaugeVec,
}

/// The process's metrics, recorded into once [`enable`] has been called.
static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Whether anything records: set when a metrics listener starts, so that a server
/// without one (METRICS_ADDR empty) pays one relaxed load per would-be update.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Starts recording (a server with a metrics listener calls it at start-up).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// The metrics to record into; `None` while recording is off.
pub fn metrics() -> Option<&'static Metrics> {
    ENABLED.load(Ordering::Relaxed).then(|| &*METRICS)
}

/// The metrics, whether or not recording is on: for the exposition.
pub fn exposition() -> &'static Metrics {
    &METRICS
}

/// Counts one `flow`'s outcome, when recording is on.
pub fn auth_flow<T>(flow: Flow, result: &Result<T, ApiError>) {
    if let Some(m) = metrics() {
        m.auth_flow(flow, result);
    }
}

// Metric names, help texts and label names are constants of this file, so building
// and registering them fails only on a programming error, which the unit test below
// catches; nothing a request or a setting does can make these calls fail.
fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let metric = IntCounter::new(name, help).expect("valid counter");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric name");
    metric
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric name");
    metric
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let metric = IntGauge::new(name, help).expect("valid gauge");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric name");
    metric
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid gauge");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric name");
    metric
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    let metric = Histogram::with_opts(opts).expect("valid histogram");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric name");
    metric
}

impl Metrics {
    fn new() -> Self {
        let r = Registry::new();
        let http_duration = {
            let opts = HistogramOpts::new(
                "stores_api_http_request_duration_seconds",
                "HTTP request latency in seconds, by route template.",
            )
            .buckets(LATENCY_BUCKETS.to_vec());
            let metric = HistogramVec::new(opts, &["route"]).expect("valid histogram");
            r.register(Box::new(metric.clone()))
                .expect("unique metric name");
            metric
        };
        let revocation_poll_age = {
            let metric = Gauge::new(
                "stores_api_revocation_poll_age_seconds",
                "Seconds since the revocation follower's last successful poll (+Inf before the first).",
            )
            .expect("valid gauge");
            r.register(Box::new(metric.clone()))
                .expect("unique metric name");
            metric
        };
        let m = Metrics {
            http_requests: counter_vec(
                &r,
                "stores_api_http_requests_total",
                "HTTP requests by route template, method and status class.",
                &["route", "method", "status"],
            ),
            http_duration,
            token_checks: counter_vec(
                &r,
                "stores_api_token_checks_total",
                "Tokens checked by the bearer middleware, by outcome (ok or the error code).",
                &["outcome"],
            ),
            guard_refusals: counter_vec(
                &r,
                "stores_api_guard_refusals_total",
                "Requests a route's guard refused, by error code (no token, wrong token type, not fresh, not admin).",
                &["reason"],
            ),
            auth_flows: counter_vec(
                &r,
                "stores_api_auth_flows_total",
                "Logins, fresh logins, refreshes and registrations, by flow and outcome (ok or the error code).",
                &["flow", "outcome"],
            ),
            refresh_reuse: counter(
                &r,
                "stores_api_refresh_reuse_detected_total",
                "Spent refresh tokens presented again; each revokes its session.",
            ),
            rate_limited: counter_vec(
                &r,
                "stores_api_rate_limited_total",
                "Requests refused by a rate limit, by bucket (auth, login, password, hashing).",
                &["bucket"],
            ),
            sessions_opened: counter(
                &r,
                "stores_api_sessions_opened_total",
                "Sessions opened by logins and fresh logins.",
            ),
            revocations: counter_vec(
                &r,
                "stores_api_revocations_total",
                "Revocations written by this instance, by kind (session, token, user, not_before).",
                &["kind"],
            ),
            hash_queue: gauge(
                &r,
                "stores_api_password_hash_queue_depth",
                "Password hashing jobs queued and not yet started.",
            ),
            hash_wait: histogram(
                &r,
                "stores_api_password_hash_wait_seconds",
                "Seconds a password hashing job waited for a hashing thread.",
                WAIT_BUCKETS,
            ),
            hash_time: histogram(
                &r,
                "stores_api_password_hash_duration_seconds",
                "Seconds one bcrypt hash or verification took.",
                HASH_BUCKETS,
            ),
            hash_shed: counter(
                &r,
                "stores_api_password_hash_shed_total",
                "Requests shed with 503 because the password hashing pool was full.",
            ),
            db_connections: gauge_vec(
                &r,
                "stores_api_db_connections",
                "Pooled database connections, by state (in_use, idle).",
                &["state"],
            ),
            db_queue_wait: histogram(
                &r,
                "stores_api_db_queue_wait_seconds",
                "Seconds a query, or a batched read's lookup, waited for a database thread.",
                WAIT_BUCKETS,
            ),
            db_batch_size: histogram(
                &r,
                "stores_api_db_batch_size",
                "Keys read by one round of a batched read (GET /item/{id}, /store/{id}, /tag/{id}, /me).",
                BATCH_BUCKETS,
            ),
            revoked_entries: gauge(
                &r,
                "stores_api_revoked_set_entries",
                "Entries in the in-memory revoked set (sessions, sid-less tokens, users).",
            ),
            revocation_poll_age,
            revocation_poll: histogram(
                &r,
                "stores_api_revocation_poll_duration_seconds",
                "Seconds one successful poll of the revocation follower took.",
                POLL_BUCKETS,
            ),
            audit_queue: gauge(
                &r,
                "stores_api_audit_queue_depth",
                "Audit events (failed and limited logins) queued and not yet written.",
            ),
            audit_unrecorded: counter(
                &r,
                "stores_api_audit_unrecorded_total",
                "Audit events not written one by one (a full queue, a refused batch).",
            ),
            build_info: gauge_vec(
                &r,
                "stores_api_build_info",
                "Always 1: the version, the database backend and the token algorithm.",
                &["version", "backend", "algorithm"],
            ),
            registry: r,
        };
        m.preset();
        m
    }

    /// Creates the series of the fixed label sets at zero, so that each family is in the
    /// exposition from the first scrape (a rate over a series that appears with its
    /// first event misses that event), and the common series are resolved once.
    fn preset(&self) {
        for outcome in [
            "ok",
            "invalid_token",
            "token_expired",
            "token_revoked",
            "csrf_token_invalid",
            "service_unavailable",
        ] {
            self.token_checks.with_label_values(&[outcome]);
        }
        for reason in [
            "authorization_required",
            "invalid_token",
            "fresh_token_required",
            "admin_required",
        ] {
            self.guard_refusals.with_label_values(&[reason]);
        }
        for flow in [Flow::Login, Flow::FreshLogin, Flow::Refresh, Flow::Register] {
            for outcome in [
                "ok",
                "invalid_credentials",
                "too_many_requests",
                "service_unavailable",
            ] {
                self.auth_flows.with_label_values(&[flow.as_str(), outcome]);
            }
        }
        for bucket in ["auth", "login", "password", "hashing"] {
            self.rate_limited.with_label_values(&[bucket]);
        }
        for kind in ["session", "token", "user", "not_before"] {
            self.revocations.with_label_values(&[kind]);
        }
        for state in ["in_use", "idle"] {
            self.db_connections.with_label_values(&[state]);
        }
    }

    /// Counts one HTTP request to `route` (a template or [`UNMATCHED`]) that took
    /// `elapsed`.
    pub fn http_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.http_requests
            .with_label_values(&[route, method, status_class(status)])
            .inc();
        self.http_duration
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a token check that accepted the token (`None`) or refused it.
    pub fn token_check(&self, refusal: Option<&ApiError>) {
        let outcome = refusal.map_or("ok", ApiError::code);
        self.token_checks.with_label_values(&[outcome]).inc();
    }

    /// Counts a guard's refusal.
    pub fn guard_refusal(&self, error: &ApiError) {
        self.guard_refusals.with_label_values(&[error.code()]).inc();
    }

    /// Counts one `flow`'s outcome.
    pub fn auth_flow<T>(&self, flow: Flow, result: &Result<T, ApiError>) {
        let outcome = result.as_ref().map_or_else(ApiError::code, |_| "ok");
        self.auth_flows
            .with_label_values(&[flow.as_str(), outcome])
            .inc();
        if result.is_ok() && matches!(flow, Flow::Login | Flow::FreshLogin) {
            self.sessions_opened.inc();
        }
    }

    /// Counts a request refused by the rate limit `bucket`.
    pub fn rate_limited(&self, bucket: &'static str) {
        self.rate_limited.with_label_values(&[bucket]).inc();
    }

    /// The exposition: every metric in the text format [`CONTENT_TYPE`] names.
    pub fn render(&self) -> String {
        let mut out = Vec::with_capacity(16 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            log::error!("cannot render the metrics: {e}");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The method as a label: the standard ones by name, anything else as `other`, so that
/// a client cannot add series with made-up methods.
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_registers_and_renders_in_the_text_format() {
        let m = exposition();
        m.http_request("/item/{id}", "GET", 200, Duration::from_millis(3));
        m.token_check(Some(&ApiError::TokenExpired));
        let text = m.render();
        assert!(text.contains("# TYPE stores_api_http_requests_total counter"));
        assert!(text.contains(
            "stores_api_http_requests_total{method=\"GET\",route=\"/item/{id}\",status=\"2xx\"}"
        ));
        assert!(text.contains("stores_api_token_checks_total{outcome=\"token_expired\"}"));
        assert!(
            !text.contains("# EOF"),
            "the classic format, not OpenMetrics"
        );
    }

    #[test]
    fn labels_come_from_fixed_sets() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("BREW"), "other");
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(404), "4xx");
        assert_eq!(status_class(503), "5xx");
    }
}
