//! What the audit log adds to a login: the login's transaction (open the session, cap
//! the user's sessions) with and without its audit row, on a real database (a SQLite
//! file, or PostgreSQL when `BENCH_DATABASE_URL` names one). Target: the row adds
//! under 1 ms. `queue_failed_login` is what a failed login pays on its request (the
//! row itself is written later, in a batch).
//!
//! Run: `cargo bench --bench audit`; `BENCH_DATABASE_URL=postgres://... cargo bench
//! --bench audit` for PostgreSQL.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use stores_api::auth::audit::{self, Action, AuditLog, Event, Origin, Outcome};
use stores_api::auth::revocation::Revocations;
use stores_api::auth::sessions::{ClientInfo, Session};
use stores_api::config::Settings;
use stores_api::db::{self, Pool};
use stores_api::input::Username;
use stores_api::models::user::User;

fn settings(dir: &std::path::Path) -> Settings {
    let url = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| dir.join("bench.db").display().to_string());
    let env: HashMap<String, String> = [
        ("APP_ENV", "test"),
        (
            "JWT_SECRET_KEY",
            "benchmark-key-benchmark-key-benchmark-key",
        ),
        ("RUST_LOG", "off"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .chain([
        ("DATABASE_URL".to_owned(), url),
        ("DATA_DIR".to_owned(), dir.display().to_string()),
    ])
    .collect();
    Settings::load_from(env).expect("benchmark settings")
}

/// A login's transaction for `user_id`: a session opened, the user's sessions capped,
/// and the audit row when `with_audit`.
async fn login_transaction(
    pool: &Pool,
    revocations: &Arc<Revocations>,
    user_id: i64,
    with_audit: bool,
) {
    let revoked = Arc::clone(revocations);
    db::transaction(pool, move |conn| {
        let sid = uuid::Uuid::new_v4().to_string();
        let expires = chrono::Utc::now() + chrono::Duration::hours(1);
        let client = ClientInfo {
            user_agent: Some("bench/1.0".into()),
            ip: Some("203.0.113.9".into()),
        };
        Session::open(conn, &sid, user_id, Some(&sid), expires, &client)?;
        Session::revoke_oldest_beyond(conn, &revoked, user_id, 100, &sid)?;
        if with_audit {
            let origin = Origin::http(None, client);
            audit::record(
                conn,
                Event::new(Action::Login, Outcome::Ok, &origin)
                    .target(user_id, &origin)
                    .session(Some(&sid)),
            )?;
        }
        Ok(())
    })
    .await
    .expect("login transaction");
}

fn audit_row(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = settings(dir.path());
    db::migrate(&settings.database).expect("migrations");
    let pool = db::pool(&settings.database);
    let revocations = Arc::new(Revocations::new(
        &settings.tokens,
        settings.revocation.poll_interval,
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Each variant logs in a user of its own, made fresh for each benchmark, so that
    // both meet the same number of earlier sessions.
    let user = || {
        let name = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let username = Username::parse(&serde_json::Value::from(name)).expect("a username");
        runtime
            .block_on(db::run(&pool, move |conn| {
                User::create(
                    conn,
                    &username,
                    "$2b$04$benchmarkbenchmarkbenchmarkbenchmarkbenchmarkbenchma",
                    false,
                )
            }))
            .expect("a user")
            .id
    };

    // Both variants run in every iteration, in turn, and only one is timed: their users'
    // sessions grow alike, so the difference is the audit row's alone.
    let mut group = c.benchmark_group("login_transaction");
    for (name, timed) in [("without_audit", false), ("with_audit", true)] {
        let users = [user(), user()];
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for i in 0..iters {
                    for with_audit in [i % 2 == 0, i % 2 != 0] {
                        let user_id = users[usize::from(with_audit)];
                        let started = Instant::now();
                        runtime.block_on(login_transaction(
                            &pool,
                            &revocations,
                            user_id,
                            with_audit,
                        ));
                        if with_audit == timed {
                            spent += started.elapsed();
                        }
                    }
                }
                spent
            })
        });
    }
    group.finish();

    let mut queue = AuditLog::default();
    let origin = Origin::http(None, ClientInfo::default());
    c.bench_function("queue_failed_login", |b| {
        b.iter(|| {
            queue.queue(black_box(
                Event::new(Action::Login, Outcome::Failed, &origin).detail("username", "someone"),
            ));
            // Emptied now and then, as the writer task would, without the database.
            if queue.pending() >= 5_000 {
                queue = AuditLog::default();
            }
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = audit_row
}
criterion_main!(benches);
