//! The audit log: what GET /audit and GET /me/audit show after what clients did (on two
//! instances over one database), the filters and cursor pages, that an event commits
//! with its change or not at all, that no secret is ever written, retention, and a flood
//! of failed logins.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use futures_util::future::join_all;
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use stores_api::db::PooledConnection;
use stores_api::schema::audit_events;

use crate::helpers::{
    assert_error, assert_error_shape, assert_invalid, credentials, ok_json, on_postgres, sid,
    TestApp, TestUser, Tokens, ADMIN_PASSWORD, ADMIN_USERNAME, PASSWORD,
};

/// The User-Agent every request of these tests sends, to find it in the events.
const AGENT: &str = "audit-test-agent/1.0 (marker)";
/// The address the test client connects from, as the service records it.
const LOOPBACK: &str = "127.0.0.1";
/// How long a queued event (a failed login) may take to reach the log.
const QUEUE_WAIT: Duration = Duration::from_secs(10);

/// A connection of the test's own to `app`'s database.
fn own_connection(app: &TestApp) -> PooledConnection {
    stores_api::db::pool(&app.settings.database)
        .get()
        .expect("a connection of the test's own")
}

/// Any request with the marker User-Agent.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Response {
    let call = app
        .call(method, path)
        .bearer(token)
        .header("User-Agent", AGENT);
    match body {
        Some(body) => call.json(&body),
        None => call,
    }
    .send()
    .await
}

/// POST /login with the marker User-Agent, whatever the answer.
async fn try_login(app: &TestApp, username: &str, password: &str) -> Response {
    let body = credentials(username, password);
    send(app, Method::POST, "/login", None, Some(body)).await
}

/// POST /login with the marker User-Agent; panics unless 200.
async fn login(app: &TestApp, username: &str, password: &str) -> Tokens {
    Tokens::of(&ok_json(try_login(app, username, password).await).await)
}

/// One page of GET `path` (`/audit` or `/me/audit`) with `query`: its events and
/// next_cursor.
async fn page(app: &TestApp, path: &str, token: &str, query: &str) -> (Vec<Value>, Option<String>) {
    let body = ok_json(app.get(&format!("{path}?{query}"), Some(token)).await).await;
    let events = body["events"].as_array().expect("events").clone();
    let cursor = match &body["next_cursor"] {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => panic!("next_cursor is a string or null: {other}"),
    };
    (events, cursor)
}

/// Every event of GET /audit matching `query`, newest first, following the cursor.
async fn all_events(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("{query}&limit=1000&cursor={c}"),
            None => format!("{query}&limit=1000"),
        };
        let (page, next) = page(app, "/audit", token, &q).await;
        events.extend(page);
        match next {
            Some(next) => cursor = Some(next),
            None => return events,
        }
    }
}

/// The events of GET /audit matching `query` once there are at least `n` of them
/// (queued events reach the log within moments); panics after QUEUE_WAIT.
async fn at_least(app: &TestApp, token: &str, query: &str, n: usize) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let events = all_events(app, token, query).await;
        if events.len() >= n {
            return events;
        }
        assert!(
            started.elapsed() < QUEUE_WAIT,
            "{} of {n} events for {query} after {QUEUE_WAIT:?}: {events:#?}",
            events.len()
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The id of the newest event, 0 when there is none.
async fn newest_id(app: &TestApp, token: &str) -> i64 {
    let (events, _) = page(app, "/audit", token, "limit=1").await;
    events.first().map_or(0, |e| e["id"].as_i64().expect("id"))
}

fn id(event: &Value) -> i64 {
    event["id"].as_i64().expect("an event has an id")
}

/// An event as a test expects it.
#[derive(Debug, Clone)]
struct Expected {
    action: &'static str,
    outcome: &'static str,
    actor: Option<i64>,
    target: Option<i64>,
    session: Option<String>,
    /// Entries `details` must have (others may be there too).
    details: Value,
}

impl Expected {
    fn new(action: &'static str, actor: Option<i64>, target: Option<i64>) -> Expected {
        Expected {
            action,
            outcome: "ok",
            actor,
            target,
            session: None,
            details: json!({}),
        }
    }

    fn failed(mut self) -> Expected {
        self.outcome = "failed";
        self
    }

    fn session(mut self, sid: &str) -> Expected {
        self.session = Some(sid.to_string());
        self
    }

    fn details(mut self, details: Value) -> Expected {
        self.details = details;
        self
    }

    /// Asserts `got` is this event, made by the test client.
    fn check(&self, got: &Value, n: usize) {
        let at = format!("event {n} ({}): {got:#}", self.action);
        assert_eq!(got["action"], self.action, "{at}");
        assert_eq!(got["outcome"], self.outcome, "{at}");
        assert_eq!(got["actor_id"].as_i64(), self.actor, "actor_id of {at}");
        assert_eq!(got["target_id"].as_i64(), self.target, "target_id of {at}");
        assert_eq!(
            got["session_id"].as_str(),
            self.session.as_deref(),
            "session_id of {at}"
        );
        assert_eq!(got["ip"], LOOPBACK, "ip of {at}");
        assert_eq!(got["user_agent"], AGENT, "user_agent of {at}");
        for (key, value) in self.details.as_object().expect("details object") {
            assert_eq!(&got["details"][key], value, "details.{key} of {at}");
        }
    }
}

/// What a scripted day of one user left: the events expected since `baseline` (oldest
/// first), every secret used, and the admin's token to read the log with.
struct Day {
    baseline: i64,
    expected: Vec<Expected>,
    secrets: Vec<String>,
    admin: String,
}

/// A day of one user and the admin, every request alternating between the instances
/// `a` and `b`: registration, logins (and failed ones), refresh and its reuse, logouts
/// of each scope, ended sessions, a password change, and the admin's actions.
async fn scripted_day(a: &TestApp, b: &TestApp) -> Day {
    let admin = login(a, ADMIN_USERNAME, ADMIN_PASSWORD).await;
    let admin_id = ok_json(a.get("/me", Some(&admin.access)).await).await["id"]
        .as_i64()
        .expect("id");
    let baseline = newest_id(a, &admin.access).await;
    let name = format!("day-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let (first, second) = ("first-password-1", "second-password-2");
    let mut secrets: Vec<String> = vec![
        first.into(),
        second.into(),
        ADMIN_PASSWORD.into(),
        "wrong-password-3".into(),
        admin.access.clone(),
        admin.refresh.clone(),
    ];
    let mut keep = |t: &Tokens| {
        secrets.push(t.access.clone());
        secrets.push(t.refresh.clone());
    };
    let mut expected = Vec::new();

    let resp = send(
        b,
        Method::POST,
        "/register",
        None,
        Some(credentials(&name, first)),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let t1 = login(a, &name, first).await;
    keep(&t1);
    let me = ok_json(b.get("/me", Some(&t1.access)).await).await;
    let user_id = me["id"].as_i64().expect("id");
    let u = Some(user_id);
    expected.push(Expected::new("register", u, u).details(json!({"admin": false})));
    expected.push(Expected::new("login", u, u).session(&sid(&t1.access)));

    // Failed logins are queued: each is waited for, so that the log's order is the day's.
    let failed_before = all_events(a, &admin.access, "action=login&outcome=failed").await;
    let resp = try_login(b, &name, "wrong-password-3").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    at_least(
        a,
        &admin.access,
        "action=login&outcome=failed",
        failed_before.len() + 1,
    )
    .await;
    expected.push(Expected::new("login", u, u).failed());
    let ghost = format!("ghost-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let resp = try_login(a, &ghost, "wrong-password-3").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    at_least(
        b,
        &admin.access,
        "action=login&outcome=failed",
        failed_before.len() + 2,
    )
    .await;
    expected.push(
        Expected::new("login", None, None)
            .failed()
            .details(json!({"username": ghost})),
    );

    let resp = send(b, Method::POST, "/refresh", Some(&t1.refresh), None).await;
    let t2 = Tokens::of(&ok_json(resp).await);
    keep(&t2);
    let sid1 = sid(&t1.access);
    expected.push(Expected::new("refresh", u, u).session(&sid1));
    let resp = send(a, Method::POST, "/refresh", Some(&t1.refresh), None).await;
    assert_error(resp, 401, "token_revoked").await;
    expected.push(Expected::new("refresh_reuse", u, u).failed().session(&sid1));
    // The reuse ended the session: its newest tokens are refused.
    assert_eq!(
        a.get("/me", Some(&t2.access)).await.status(),
        StatusCode::UNAUTHORIZED,
        "the session of a reused refresh token is ended"
    );

    let s2 = login(b, &name, first).await;
    let s3 = login(a, &name, first).await;
    let s4 = login(b, &name, first).await;
    for s in [&s2, &s3, &s4] {
        keep(s);
        expected.push(Expected::new("login", u, u).session(&sid(&s.access)));
    }
    for (app, scope) in [(a, "others"), (b, "local")] {
        let path = format!("/logout?scope={scope}");
        ok_json(send(app, Method::POST, &path, Some(&s2.access), None).await).await;
        expected.push(
            Expected::new("logout", u, u)
                .session(&sid(&s2.access))
                .details(json!({"scope": scope})),
        );
    }
    let s5 = login(a, &name, first).await;
    let s6 = login(b, &name, first).await;
    for s in [&s5, &s6] {
        keep(s);
        expected.push(Expected::new("login", u, u).session(&sid(&s.access)));
    }
    let path = "/logout?scope=global";
    ok_json(send(a, Method::POST, path, Some(&s5.access), None).await).await;
    expected.push(
        Expected::new("logout", u, u)
            .session(&sid(&s5.access))
            .details(json!({"scope": "global"})),
    );

    let s7 = login(b, &name, first).await;
    let s8 = login(a, &name, first).await;
    for s in [&s7, &s8] {
        keep(s);
        expected.push(Expected::new("login", u, u).session(&sid(&s.access)));
    }
    let path = format!("/sessions/{}", sid(&s8.access));
    ok_json(send(b, Method::DELETE, &path, Some(&s7.access), None).await).await;
    expected.push(Expected::new("session_revoked", u, u).session(&sid(&s8.access)));
    let resp = a
        .call(Method::POST, "/revoke")
        .header("User-Agent", AGENT)
        .raw(
            Some("application/x-www-form-urlencoded"),
            format!("token={}", s7.refresh),
        )
        .send()
        .await;
    ok_json(resp).await;
    expected.push(
        Expected::new("session_revoked", u, u)
            .session(&sid(&s7.access))
            .details(json!({"by": "token"})),
    );

    let s9 = login(b, &name, first).await;
    let s10 = login(a, &name, first).await;
    for s in [&s9, &s10] {
        keep(s);
        expected.push(Expected::new("login", u, u).session(&sid(&s.access)));
    }
    let body = json!({"current_password": first, "new_password": second});
    ok_json(send(b, Method::PUT, "/me/password", Some(&s9.access), Some(body)).await).await;
    // s10 was the only other live session.
    expected.push(
        Expected::new("password_changed", u, u)
            .session(&sid(&s9.access))
            .details(json!({"sessions_ended": 1})),
    );

    let admin_id = Some(admin_id);
    let user_path = format!("/user/{user_id}");
    for (app, is_admin, action, ended) in [(a, true, "promoted", 1), (b, false, "demoted", 0)] {
        let body = json!({"is_admin": is_admin});
        let resp = send(
            app,
            Method::PATCH,
            &user_path,
            Some(&admin.access),
            Some(body),
        )
        .await;
        ok_json(resp).await;
        expected.push(Expected::new(action, admin_id, u).details(json!({"sessions_ended": ended})));
    }
    let s11 = login(a, &name, second).await;
    keep(&s11);
    expected.push(Expected::new("login", u, u).session(&sid(&s11.access)));
    let path = format!("{user_path}/revoke");
    ok_json(send(b, Method::POST, &path, Some(&admin.access), None).await).await;
    expected.push(Expected::new("admin_revoke", admin_id, u).details(json!({"sessions_ended": 1})));
    ok_json(send(a, Method::DELETE, &user_path, Some(&admin.access), None).await).await;
    expected.push(Expected::new("user_deleted", admin_id, u));

    Day {
        baseline,
        expected,
        secrets,
        admin: admin.access,
    }
}

// What a day leaves in the log

#[actix_web::test]
async fn every_event_of_a_day_on_two_instances_is_in_the_log_newest_first() {
    let a = TestApp::spawn().await;
    let b = a.spawn_sibling().await;
    let day = scripted_day(&a, &b).await;

    for app in [&a, &b] {
        let events: Vec<Value> = all_events(app, &day.admin, "")
            .await
            .into_iter()
            .filter(|e| id(e) > day.baseline)
            .collect();
        let actions: Vec<&str> = events
            .iter()
            .rev()
            .map(|e| e["action"].as_str().unwrap_or("?"))
            .collect();
        let wanted: Vec<&str> = day.expected.iter().map(|e| e.action).collect();
        assert_eq!(actions, wanted, "the day's events, oldest first");
        for (n, (want, got)) in day.expected.iter().zip(events.iter().rev()).enumerate() {
            want.check(got, n);
        }
        for pair in events.windows(2) {
            assert!(id(&pair[0]) > id(&pair[1]), "newest first: {pair:#?}");
            let at = |e: &Value| {
                chrono::DateTime::parse_from_rfc3339(e["at"].as_str().expect("at"))
                    .expect("at is RFC 3339")
            };
            assert!(at(&pair[0]) >= at(&pair[1]), "newest first: {pair:#?}");
        }
    }
}

#[actix_web::test]
async fn no_event_carries_a_password_a_token_or_a_hash() {
    let a = TestApp::spawn().await;
    let b = a.spawn_sibling().await;
    let day = scripted_day(&a, &b).await;

    let events = all_events(&a, &day.admin, "").await;
    assert!(
        events.len() > day.expected.len(),
        "the day is in the log: {events:#?}"
    );
    for event in &events {
        let text = event.to_string();
        for secret in &day.secrets {
            assert!(!text.contains(secret.as_str()), "a secret in {text}");
        }
        for marker in ["eyJ", "$2"] {
            assert!(!text.contains(marker), "{marker} in {text}");
        }
    }
}

// GET /me/audit

#[actix_web::test]
async fn a_user_sees_only_their_own_events() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let alice = app.user().await;
    let bob = app.user().await;
    app.another_login(&bob).await;
    let resp = try_login(&app, &bob.username, "wrong-password-3").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = try_login(&app, &alice.username, "wrong-password-3").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let path = format!("/user/{}", alice.id);
    ok_json(
        app.patch(&path, Some(&admin.tokens.access), json!({"is_admin": true}))
            .await,
    )
    .await;
    let alice = app.logged_in(&alice.username, PASSWORD).await;
    // Alice's failed login is queued: wait for it in the admin's view first.
    let query = format!("user_id={}&outcome=failed", alice.id);
    at_least(&app, &admin.tokens.access, &query, 1).await;
    at_least(
        &app,
        &admin.tokens.access,
        &format!("user_id={}", bob.id),
        4,
    )
    .await;

    let (events, cursor) = page(&app, "/me/audit", &alice.tokens.access, "").await;
    assert_eq!(cursor, None);
    let mut actions: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            assert!(
                e["actor_id"] == alice.id || e["target_id"] == alice.id,
                "only alice's events: {e:#}"
            );
            (
                e["action"].as_str().expect("action").to_string(),
                e["outcome"].as_str().expect("outcome").to_string(),
            )
        })
        .collect();
    actions.sort();
    let mut wanted: Vec<(String, String)> = [
        ("register", "ok"),
        ("login", "ok"),
        ("login", "failed"),
        ("promoted", "ok"),
        ("login", "ok"),
    ]
    .iter()
    .map(|(a, o)| (a.to_string(), o.to_string()))
    .collect();
    wanted.sort();
    assert_eq!(actions, wanted, "{events:#?}");
    let promoted = events
        .iter()
        .find(|e| e["action"] == "promoted")
        .expect("promoted");
    assert_eq!(
        promoted["actor_id"], admin.id,
        "the admin acted: {promoted:#}"
    );

    // The same filters as GET /audit, on the caller's events only.
    let (events, _) = page(&app, "/me/audit", &bob.tokens.access, "action=login").await;
    assert_eq!(
        events.len(),
        3,
        "bob's two logins and one failure: {events:#?}"
    );
    assert!(
        events.iter().all(|e| e["target_id"] == bob.id),
        "{events:#?}"
    );

    let resp = app
        .get(
            &format!("/me/audit?user_id={}", bob.id),
            Some(&alice.tokens.access),
        )
        .await;
    assert_invalid(resp, "query", &["user_id"]).await;
}

#[actix_web::test]
async fn the_whole_log_is_for_admins_only() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    assert_error(
        app.get("/audit", Some(&user.tokens.access)).await,
        403,
        "admin_required",
    )
    .await;
    let resp = app.get("/audit", None).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_error_shape(resp).await;
    let resp = app.get("/me/audit", None).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_error_shape(resp).await;
}

// Filters

/// A few users' registrations, logins and failed logins, and the admin's login; every
/// event once the queued ones are written. Returns the admin's token, the users, and
/// every event, newest first.
async fn some_history(app: &TestApp) -> (TestUser, Vec<TestUser>, Vec<Value>) {
    let admin = app.admin().await;
    let mut users = Vec::new();
    for _ in 0..3 {
        let user = app.user().await;
        app.another_login(&user).await;
        let resp = try_login(app, &user.username, "wrong-password-3").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        users.push(user);
    }
    let failed = at_least(app, &admin.tokens.access, "outcome=failed", 3).await;
    assert_eq!(failed.len(), 3, "{failed:#?}");
    let events = all_events(app, &admin.tokens.access, "").await;
    (admin, users, events)
}

fn ids_of(events: &[Value]) -> Vec<i64> {
    events.iter().map(id).collect()
}

#[actix_web::test]
async fn each_filter_narrows_the_log_and_they_combine() {
    let app = TestApp::spawn().await;
    let (admin, users, all) = some_history(&app).await;
    let token = &admin.tokens.access;
    let matching = |keep: &dyn Fn(&Value) -> bool| -> Vec<i64> {
        all.iter().filter(|e| keep(e)).map(id).collect()
    };
    let user = &users[1];

    let cases: Vec<(String, Vec<i64>)> = vec![
        (
            format!("user_id={}", user.id),
            matching(&|e| e["actor_id"] == user.id || e["target_id"] == user.id),
        ),
        ("action=login".into(), matching(&|e| e["action"] == "login")),
        (
            "action=register".into(),
            matching(&|e| e["action"] == "register"),
        ),
        (
            "outcome=failed".into(),
            matching(&|e| e["outcome"] == "failed"),
        ),
        ("ip=127.0.0.1".into(), matching(&|e| e["ip"] == LOOPBACK)),
        ("ip=203.0.113.9".into(), vec![]),
        (
            format!("user_id={}&action=login&outcome=ok", user.id),
            matching(&|e| {
                e["target_id"] == user.id && e["action"] == "login" && e["outcome"] == "ok"
            }),
        ),
    ];
    for (query, wanted) in cases {
        let got = ids_of(&all_events(&app, token, &query).await);
        assert_eq!(got, wanted, "GET /audit?{query}");
    }
    // Sizes that say each filter does narrow: a test of a filter that keeps everything
    // would prove nothing.
    let count = |q: &str| {
        let all = &all;
        let q = q.to_string();
        let token = token.clone();
        let app = app.clone();
        async move {
            let n = all_events(&app, &token, &q).await.len();
            assert!(n > 0 && n < all.len(), "{q}: {n} of {}", all.len());
        }
    };
    count(&format!("user_id={}", user.id)).await;
    count("action=login").await;
    count("outcome=failed").await;

    // Times: since is inclusive, until exclusive.
    let middle = &all[all.len() / 2];
    let at = middle["at"].as_str().expect("at");
    let at_of = |e: &Value| {
        chrono::DateTime::parse_from_rfc3339(e["at"].as_str().expect("at")).expect("RFC 3339")
    };
    let pivot = at_of(middle);
    let since = ids_of(&all_events(&app, token, &format!("since={at}")).await);
    assert_eq!(since, matching(&|e| at_of(e) >= pivot), "since={at}");
    assert!(since.contains(&id(middle)), "since is inclusive");
    let until = ids_of(&all_events(&app, token, &format!("until={at}")).await);
    assert_eq!(until, matching(&|e| at_of(e) < pivot), "until={at}");
    assert!(!until.contains(&id(middle)), "until is exclusive");
    // The same instant in another offset, with more digits.
    let shifted = pivot
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).expect("an offset"))
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, false)
        .replace('+', "%2B");
    let got = ids_of(&all_events(&app, token, &format!("since={shifted}")).await);
    assert_eq!(got, since, "since={shifted}");
    let both = format!("since={at}&until={at}&action=login");
    assert_eq!(
        ids_of(&all_events(&app, token, &both).await),
        Vec::<i64>::new()
    );

    // A page size.
    let (events, cursor) = page(&app, "/audit", token, "limit=2").await;
    assert_eq!(ids_of(&events), ids_of(&all[..2]));
    assert_eq!(cursor, Some(id(&all[1]).to_string()));
    let (events, cursor) = page(&app, "/audit", token, "limit=5000").await;
    assert_eq!(ids_of(&events), ids_of(&all), "limit=5000 is read as 1000");
    assert_eq!(cursor, None);
}

#[actix_web::test]
async fn an_invalid_filter_is_a_422_naming_it() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let token = &admin.tokens.access;
    for (query, field) in [
        ("action=nope", "action"),
        ("outcome=x", "outcome"),
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("limit=0", "limit"),
        ("limit=ten", "limit"),
        ("cursor=abc", "cursor"),
        ("user_id=0", "user_id"),
    ] {
        let resp = app.get(&format!("/audit?{query}"), Some(token)).await;
        assert_invalid(resp, "query", &[field]).await;
        let resp = app.get(&format!("/me/audit?{query}"), Some(token)).await;
        assert_invalid(resp, "query", &[field]).await;
    }
    let every = "action=nope&outcome=x&ip=999.1.1.1&since=yesterday&limit=0&cursor=abc";
    let resp = app.get(&format!("/audit?{every}"), Some(token)).await;
    assert_invalid(
        resp,
        "query",
        &["action", "outcome", "since", "limit", "cursor"],
    )
    .await;
    // Only addresses are stored: a value that is none (the empty one too) matches no
    // event.
    for path in ["/audit", "/me/audit"] {
        for ip in ["999.1.1.1", ""] {
            let resp = app.get(&format!("{path}?ip={ip}"), Some(token)).await;
            assert_eq!(resp.status(), StatusCode::OK);
            let body: Value = resp.json().await.expect("json");
            assert_eq!(body, json!({"events": [], "next_cursor": null}), "{path}");
        }
        let resp = app
            .get(&format!("{path}?action=&outcome=&cursor="), Some(token))
            .await;
        assert_invalid(resp, "query", &["action", "outcome", "cursor"]).await;
    }
}

// Cursor pages

#[actix_web::test]
async fn pages_neither_repeat_nor_skip_while_events_are_added() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let user = app.user().await;
    for _ in 0..6 {
        app.another_login(&user).await;
    }
    let token = &admin.tokens.access;
    let before = ids_of(&all_events(&app, token, "").await);
    assert!(before.len() >= 10, "{before:?}");

    let (first, mut cursor) = page(&app, "/audit", token, "limit=3").await;
    let mut seen = ids_of(&first);
    for _ in 0..4 {
        app.another_login(&user).await;
    }
    let resp = try_login(&app, &user.username, "wrong-password-3").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    at_least(&app, token, "outcome=failed", 1).await;
    let mut pages = 1;
    while let Some(c) = cursor {
        let (events, next) = page(&app, "/audit", token, &format!("limit=3&cursor={c}")).await;
        assert!(!events.is_empty(), "a cursor leads to events");
        assert!(events.len() <= 3);
        seen.extend(ids_of(&events));
        cursor = next;
        pages += 1;
        assert!(pages < 100, "the pages end");
    }
    let unique: HashSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no event repeated: {seen:?}");
    assert_eq!(seen, before, "every earlier event once, in order");
}

// Atomicity

/// Makes the database refuse to write any event of `action`, as a failure inside the
/// transaction of its change.
fn refuse_events(conn: &mut PooledConnection, action: &str) {
    refuse_where(conn, action, &format!("NEW.action = '{action}'"));
}

/// Makes the database refuse to write an event while `condition` (SQL on `NEW`) holds,
/// through a trigger named after `name`.
fn refuse_where(conn: &mut PooledConnection, name: &str, condition: &str) {
    let statements: Vec<String> = if on_postgres() {
        vec![
            format!(
                "CREATE FUNCTION refuse_{name}() RETURNS trigger AS $$ \
                 BEGIN RAISE EXCEPTION 'refused'; END; $$ LANGUAGE plpgsql"
            ),
            format!(
                "CREATE TRIGGER refuse_{name} BEFORE INSERT ON audit_events \
                 FOR EACH ROW WHEN ({condition}) EXECUTE FUNCTION refuse_{name}()"
            ),
        ]
    } else {
        vec![format!(
            "CREATE TRIGGER refuse_{name} BEFORE INSERT ON audit_events \
             WHEN {condition} BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )]
    };
    for statement in statements {
        diesel::sql_query(statement)
            .execute(&mut **conn)
            .expect("create the trigger");
    }
}

/// Undoes [`refuse_events`] or [`refuse_where`].
fn allow_events(conn: &mut PooledConnection, action: &str) {
    let statements: Vec<String> = if on_postgres() {
        vec![
            format!("DROP TRIGGER refuse_{action} ON audit_events"),
            format!("DROP FUNCTION refuse_{action}()"),
        ]
    } else {
        vec![format!("DROP TRIGGER refuse_{action}")]
    };
    for statement in statements {
        diesel::sql_query(statement)
            .execute(&mut **conn)
            .expect("drop the trigger");
    }
}

#[actix_web::test]
async fn a_password_change_whose_event_fails_does_not_happen() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let user = app.user().await;
    let new = "brand-new-password-4";
    let query = format!("action=password_changed&user_id={}", user.id);

    let mut conn = own_connection(&app);
    refuse_events(&mut conn, "password_changed");
    let resp = app
        .change_password(&user.tokens.access, PASSWORD, new)
        .await;
    assert!(
        !resp.status().is_success(),
        "the change fails with its event: {}",
        resp.status()
    );
    assert_eq!(
        app.try_login(&user.username, new).await.status(),
        StatusCode::UNAUTHORIZED,
        "the new password does not log in"
    );
    let fresh = app.login(&user.username, PASSWORD).await;
    assert_eq!(
        all_events(&app, &admin.tokens.access, &query).await,
        Vec::<Value>::new()
    );

    allow_events(&mut conn, "password_changed");
    ok_json(app.change_password(&fresh.access, PASSWORD, new).await).await;
    app.login(&user.username, new).await;
    assert_eq!(
        app.try_login(&user.username, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let events = all_events(&app, &admin.tokens.access, &query).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["outcome"], "ok");
}

#[actix_web::test]
async fn a_password_change_that_fails_ends_no_session() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let other = app.another_login(&user).await;

    let mut conn = own_connection(&app);
    refuse_events(&mut conn, "password_changed");
    let resp = app
        .change_password(&user.tokens.access, PASSWORD, "brand-new-password-4")
        .await;
    assert!(!resp.status().is_success(), "{}", resp.status());
    allow_events(&mut conn, "password_changed");

    ok_json(app.get("/me", Some(&other.access)).await).await;
    ok_json(app.get("/me", Some(&user.tokens.access)).await).await;
}

/// GET /sessions with `token`: how many live sessions its user has.
async fn live_sessions(app: &TestApp, token: &str) -> usize {
    ok_json(app.get("/sessions", Some(token)).await)
        .await
        .as_array()
        .expect("a list")
        .len()
}

#[actix_web::test]
async fn a_registration_or_login_whose_event_fails_does_not_happen() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let mut conn = own_connection(&app);

    refuse_events(&mut conn, "register");
    let resp = app.register("never-made", PASSWORD).await;
    assert!(!resp.status().is_success(), "{}", resp.status());
    allow_events(&mut conn, "register");
    let resp = app.try_login("never-made", PASSWORD).await;
    assert_error(resp, 401, "invalid_credentials").await;
    assert_eq!(app.register("never-made", PASSWORD).await.status(), 201);

    refuse_events(&mut conn, "login");
    let resp = app.try_login(&user.username, PASSWORD).await;
    assert!(!resp.status().is_success(), "{}", resp.status());
    allow_events(&mut conn, "login");
    assert_eq!(
        live_sessions(&app, &user.tokens.access).await,
        1,
        "no session opened"
    );
    app.another_login(&user).await;
    assert_eq!(live_sessions(&app, &user.tokens.access).await, 2);
}

#[actix_web::test]
async fn an_admin_change_whose_event_fails_does_not_happen() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let user = app.user().await;
    let token = &admin.tokens.access;
    let path = format!("/user/{}", user.id);
    let mut conn = own_connection(&app);

    refuse_events(&mut conn, "promoted");
    let resp = app
        .patch(&path, Some(token), json!({"is_admin": true}))
        .await;
    assert!(!resp.status().is_success(), "{}", resp.status());
    allow_events(&mut conn, "promoted");
    assert_eq!(app.fetch(&path, token).await["is_admin"], false);

    refuse_events(&mut conn, "user_deleted");
    let resp = app.delete(&path, Some(token)).await;
    assert!(!resp.status().is_success(), "{}", resp.status());
    allow_events(&mut conn, "user_deleted");
    assert_eq!(app.fetch(&path, token).await["id"], user.id);
    app.another_login(&user).await;
    let query = format!("user_id={}&action=promoted", user.id);
    assert_eq!(all_events(&app, token, &query).await, Vec::<Value>::new());
    let query = format!("user_id={}&action=user_deleted", user.id);
    assert_eq!(all_events(&app, token, &query).await, Vec::<Value>::new());
}

#[actix_web::test]
async fn a_deletion_whose_event_fails_does_not_lock_the_user_out() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let user = app.user().await;
    let mut conn = own_connection(&app);
    refuse_events(&mut conn, "user_deleted");
    let path = format!("/user/{}", user.id);
    let resp = app.delete(&path, Some(&admin.tokens.access)).await;
    assert!(!resp.status().is_success(), "{}", resp.status());
    allow_events(&mut conn, "user_deleted");

    let again = app.another_login(&user).await;
    // Another instance, which learns revocations from the database, accepts the token.
    let sibling = app.spawn_sibling().await;
    ok_json(sibling.get("/me", Some(&again.access)).await).await;
    ok_json(app.get("/me", Some(&again.access)).await).await;
}

#[actix_web::test]
async fn a_change_whose_event_fails_ends_no_session() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let user = app.user().await;
    let token = &admin.tokens.access;
    let path = format!("/user/{}", user.id);
    let mut conn = own_connection(&app);
    let mut refused = |action: &str| {
        refuse_events(&mut conn, action);
        action.to_owned()
    };
    let mut failures = Vec::new();

    let action = refused("logout");
    let resp = app.post("/logout", Some(&user.tokens.access), None).await;
    assert!(!resp.status().is_success(), "{}", resp.status());
    if !app
        .get("/me", Some(&user.tokens.access))
        .await
        .status()
        .is_success()
    {
        failures.push(action);
    }
    let kept = app.another_login(&user).await;
    let other = app.another_login(&user).await;
    let action = refused("session_revoked");
    let resp = app
        .delete(
            &format!("/sessions/{}", sid(&other.access)),
            Some(&kept.access),
        )
        .await;
    assert!(!resp.status().is_success(), "{}", resp.status());
    if !app
        .get("/me", Some(&other.access))
        .await
        .status()
        .is_success()
    {
        failures.push(action);
    }
    for (action, method, target, body) in [
        (
            "promoted",
            Method::PATCH,
            path.clone(),
            Some(json!({"is_admin": true})),
        ),
        ("admin_revoke", Method::POST, format!("{path}/revoke"), None),
        ("user_deleted", Method::DELETE, path.clone(), None),
    ] {
        let tokens = app.another_login(&user).await;
        let action = refused(action);
        let resp = app.request(method, &target, Some(token), body).await;
        assert!(!resp.status().is_success(), "{}", resp.status());
        if !app
            .get("/me", Some(&tokens.access))
            .await
            .status()
            .is_success()
        {
            failures.push(action);
        }
    }
    assert_eq!(
        failures,
        Vec::<String>::new(),
        "rolled back, yet the sessions ended"
    );
}

#[actix_web::test]
async fn a_failed_login_whose_batch_cannot_be_written_is_not_silently_lost() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let token = &admin.tokens.access;
    let mut conn = own_connection(&app);
    refuse_where(
        &mut conn,
        "lost",
        "NEW.action = 'login' AND NEW.details LIKE '%lost-ghost%'",
    );
    let resp = try_login(&app, "lost-ghost", "wrong-password-3").await;
    assert_error(resp, 401, "invalid_credentials").await;
    // Batches are written in order: once a later failed login is in the log, the write
    // of the refused one has been tried.
    let started = Instant::now();
    loop {
        let resp = try_login(&app, "seen-ghost", "wrong-password-3").await;
        assert_error(resp, 401, "invalid_credentials").await;
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        if !all_events(&app, token, "outcome=failed").await.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < QUEUE_WAIT,
            "no failed login reaches the log"
        );
    }
    allow_events(&mut conn, "lost");

    let resp = try_login(&app, "probe-ghost", "wrong-password-3").await;
    assert_error(resp, 401, "invalid_credentials").await;
    let started = Instant::now();
    let events = loop {
        let events = all_events(&app, token, "outcome=failed").await;
        if events
            .iter()
            .any(|e| e["details"]["username"] == "probe-ghost")
        {
            break events;
        }
        assert!(started.elapsed() < QUEUE_WAIT, "the probe reaches the log");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        events
            .iter()
            .any(|e| e["details"]["username"] == "lost-ghost"
                || e["details"]["unrecorded"].as_u64().is_some_and(|n| n >= 1)),
        "the refused failed login is written later, or at least counted: {events:#?}"
    );
}

// Retention

/// Writes an event straight into the database, `age` ago, marked by its User-Agent.
fn insert_aged(app: &TestApp, age: chrono::Duration, marker: &str) {
    let at = chrono::Utc::now().naive_utc() - age;
    let inserted = diesel::insert_into(audit_events::table)
        .values((
            audit_events::at.eq(at),
            audit_events::action.eq("login"),
            audit_events::outcome.eq("ok"),
            audit_events::user_agent.eq(marker),
            audit_events::details.eq("{}"),
        ))
        .execute(&mut *own_connection(app))
        .expect("insert an event");
    assert_eq!(inserted, 1);
}

#[actix_web::test]
async fn events_older_than_the_retention_are_pruned() {
    let app = TestApp::spawn_with(|s| {
        s.revocation.prune_interval = Duration::from_secs(1);
        s.revocation.audit_retention = Duration::from_secs(24 * 3600);
    })
    .await;
    let admin = app.admin().await;
    insert_aged(&app, chrono::Duration::days(2), "two-days-old");
    insert_aged(&app, chrono::Duration::hours(12), "half-a-day-old");

    let agents = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .filter_map(|e| e["user_agent"].as_str().map(str::to_owned))
            .collect()
    };
    let started = Instant::now();
    let events = loop {
        let events = all_events(&app, &admin.tokens.access, "").await;
        if !agents(&events).contains(&"two-days-old".to_string()) {
            break events;
        }
        assert!(
            started.elapsed() < QUEUE_WAIT,
            "the old event is still there after {QUEUE_WAIT:?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        agents(&events).contains(&"half-a-day-old".to_string()),
        "a recent event stays: {events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "login" && e["target_id"] == admin.id),
        "the admin's login stays: {events:#?}"
    );
}

// A flood

#[actix_web::test]
async fn a_flood_of_failed_logins_is_all_in_the_log() {
    let app = TestApp::spawn_with(|s| {
        s.limits.auth_per_minute = 0;
        s.limits.login_failures = 0;
        s.limits.hashing_per_user = 0;
        s.passwords.hash_queue = 1000;
        s.passwords.hash_wait = Duration::from_secs(60);
    })
    .await;
    let admin = app.admin().await;
    let victim = app.user().await;
    let n = 50;
    let ghosts: Vec<String> = (0..n).map(|i| format!("ghost-{i:03}")).collect();
    let known = (0..n).map(|_| try_login(&app, &victim.username, "wrong-password-3"));
    let unknown = ghosts
        .iter()
        .map(|g| try_login(&app, g, "wrong-password-3"));
    let (known, unknown) = futures_util::future::join(join_all(known), join_all(unknown)).await;
    for resp in known.into_iter().chain(unknown) {
        assert_error(resp, 401, "invalid_credentials").await;
    }

    let events = at_least(
        &app,
        &admin.tokens.access,
        "action=login&outcome=failed",
        2 * n,
    )
    .await;
    assert_eq!(events.len(), 2 * n, "one event per attempt");
    let against_victim = events
        .iter()
        .filter(|e| e["actor_id"] == victim.id && e["target_id"] == victim.id)
        .count();
    assert_eq!(against_victim, n);
    let mut named: Vec<String> = events
        .iter()
        .filter(|e| e["actor_id"].is_null())
        .map(|e| {
            e["details"]["username"]
                .as_str()
                .expect("username")
                .to_owned()
        })
        .collect();
    named.sort();
    assert_eq!(named, ghosts);
}

// The start-up admin

#[actix_web::test]
async fn the_start_up_admin_is_recorded_once() {
    let app = TestApp::spawn().await;
    let sibling = app.spawn_sibling().await;
    let admin = sibling.admin().await;
    let events = all_events(&app, &admin.tokens.access, "action=bootstrap_admin").await;
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    assert_eq!(event["outcome"], "ok", "{event:#}");
    assert!(event["actor_id"].is_null(), "{event:#}");
    assert_eq!(event["target_id"], admin.id, "{event:#}");
    assert_eq!(event["details"]["via"], "startup", "{event:#}");
}

// What failed and limited attempts leave

#[actix_web::test]
async fn failed_and_limited_password_checks_are_recorded() {
    let app = TestApp::spawn_with(|s| {
        s.limits.auth_per_minute = 0;
        s.limits.login_failures = 2;
    })
    .await;
    let admin = app.admin().await;
    let user = app.user().await;
    let token = &admin.tokens.access;

    let body = credentials(&user.username, "wrong-password-3");
    let resp = send(&app, Method::POST, "/fresh-login", None, Some(body)).await;
    assert_error(resp, 401, "invalid_credentials").await;
    at_least(&app, token, "action=fresh_login&outcome=failed", 1).await;
    let resp = try_login(&app, &user.username, "wrong-password-3").await;
    assert_error(resp, 401, "invalid_credentials").await;
    at_least(&app, token, "action=login&outcome=failed", 1).await;
    // Two failures: the right password is refused too, and that is recorded as limited.
    let resp = try_login(&app, &user.username, PASSWORD).await;
    assert_error(resp, 429, "too_many_requests").await;
    let limited = at_least(&app, token, "outcome=limited", 1).await;

    let body = json!({"current_password": "wrong-password-3", "new_password": "next-password-5"});
    let resp = send(
        &app,
        Method::PUT,
        "/me/password",
        Some(&user.tokens.access),
        Some(body),
    )
    .await;
    assert_invalid(resp, "json", &["current_password"]).await;
    let changed = at_least(&app, token, "action=password_changed", 1).await;

    let u = Some(user.id);
    let fresh = all_events(&app, token, "action=fresh_login").await;
    assert_eq!(fresh.len(), 1, "{fresh:#?}");
    Expected::new("fresh_login", u, u)
        .failed()
        .check(&fresh[0], 0);
    let failed = all_events(&app, token, "action=login&outcome=failed").await;
    assert_eq!(failed.len(), 1, "{failed:#?}");
    Expected::new("login", u, u).failed().check(&failed[0], 1);
    // Limited before the account was read: the name says who was tried.
    assert_eq!(limited.len(), 1, "{limited:#?}");
    let mut expected =
        Expected::new("login", None, None).details(json!({"username": user.username}));
    expected.outcome = "limited";
    expected.check(&limited[0], 2);
    assert_eq!(changed.len(), 1, "{changed:#?}");
    Expected::new("password_changed", u, u)
        .failed()
        .session(&sid(&user.tokens.access))
        .check(&changed[0], 3);

    // The password did not change.
    let resp = send(&app, Method::GET, "/me", Some(&user.tokens.access), None).await;
    ok_json(resp).await;
}

#[actix_web::test]
async fn a_failed_login_names_only_a_name_that_could_be_an_account() {
    let app = TestApp::spawn_with(|s| {
        s.limits.auth_per_minute = 0;
        s.limits.login_failures = 0;
    })
    .await;
    let admin = app.admin().await;
    let long = "n".repeat(81);
    let tried = [
        ("  spaced-ghost  ", Some("spaced-ghost")),
        ("ab", None),
        (long.as_str(), None),
        ("bell\u{7}ghost", None),
        ("nul\u{0}ghost", None),
    ];
    for (name, _) in &tried {
        let resp = try_login(&app, name, "wrong-password-3").await;
        assert_error(resp, 401, "invalid_credentials").await;
    }
    let events = at_least(
        &app,
        &admin.tokens.access,
        "action=login&outcome=failed",
        tried.len(),
    )
    .await;
    assert_eq!(
        events.len(),
        tried.len(),
        "one event per attempt: {events:#?}"
    );
    let mut named: Vec<Option<&str>> = events
        .iter()
        .map(|e| {
            assert!(e["actor_id"].is_null() && e["target_id"].is_null(), "{e:#}");
            e["details"]["username"].as_str()
        })
        .collect();
    named.sort();
    let mut wanted: Vec<Option<&str>> = tried.iter().map(|(_, w)| *w).collect();
    wanted.sort();
    assert_eq!(named, wanted);
    for event in &events {
        let text = event.to_string();
        assert!(!text.contains(&long) && !text.contains("bell"), "{text}");
    }
}

#[actix_web::test]
async fn the_address_is_the_trusted_client_address_and_the_agent_is_cut_at_256_characters() {
    let app = TestApp::spawn_with(|s| {
        s.http.trusted_proxies =
            vec![stores_api::config::IpNetwork::parse("127.0.0.1").expect("a block")];
    })
    .await;
    let admin = app.admin().await;
    let user = app.user().await;
    let agent: String = "0123456789".repeat(30);
    let resp = app
        .call(Method::POST, "/login")
        .header("X-Forwarded-For", "198.51.100.7, 203.0.113.9")
        .header("User-Agent", &agent)
        .json(&credentials(&user.username, PASSWORD))
        .send()
        .await;
    let tokens = Tokens::of(&ok_json(resp).await);

    let (events, _) = page(&app, "/audit", &admin.tokens.access, "ip=203.0.113.9").await;
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    assert_eq!(
        event["session_id"].as_str(),
        Some(sid(&tokens.access).as_str())
    );
    let stored = event["user_agent"].as_str().expect("user_agent");
    assert_eq!(stored, &agent[..256], "the first 256 characters");
    let (others, _) = page(&app, "/audit", &admin.tokens.access, "ip=198.51.100.7").await;
    assert_eq!(others, Vec::<Value>::new(), "the address the proxy saw");
}

#[actix_web::test]
async fn logins_shed_by_the_hashing_pool_are_recorded_as_limited() {
    // As in the hashing tests: one thread, one waiting slot, slow hashes, no wait.
    let app = TestApp::spawn_with(|s| {
        s.passwords.bcrypt_cost = 10;
        s.passwords.hash_threads = 1;
        s.passwords.hash_queue = 1;
        s.passwords.hash_wait = Duration::ZERO;
        s.limits.auth_per_minute = 0;
        s.limits.login_failures = 0;
    })
    .await;
    let admin = app.admin().await;
    let names: Vec<String> = (0..12).map(|i| format!("storm-{i:02}")).collect();
    let storm = names
        .iter()
        .map(|name| try_login(&app, name, "wrong-password-3"));
    let mut shed = Vec::new();
    let mut refused = 0;
    for (i, resp) in join_all(storm).await.into_iter().enumerate() {
        match resp.status() {
            StatusCode::UNAUTHORIZED => refused += 1,
            StatusCode::SERVICE_UNAVAILABLE => shed.push(names[i].clone()),
            other => panic!("a login of the storm got {other}"),
        }
    }
    assert!(!shed.is_empty(), "nothing was shed");
    let token = &admin.tokens.access;
    let limited = at_least(&app, token, "action=login&outcome=limited", shed.len()).await;
    let mut named: Vec<String> = limited
        .iter()
        .map(|e| {
            e["details"]["username"]
                .as_str()
                .expect("username")
                .to_owned()
        })
        .collect();
    named.sort();
    assert_eq!(named, shed, "each shed login, by name");
    let failed = at_least(&app, token, "action=login&outcome=failed", refused).await;
    assert_eq!(failed.len(), refused);
}
