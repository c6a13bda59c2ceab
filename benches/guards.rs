//! The guard chain on the hot path of every token-checked request, against a real
//! server state (SQLite file, migrations, the revocation follower running):
//! - `token_check`: what the bearer middleware does per request: decode, validate,
//!   the in-memory revocation lookup, the claims ready for the guards. Target:
//!   under 5 µs, with no database access.
//! - `guard_chain` vs `no_token`: one request through actix with the bearer middleware
//!   to an `Authenticated` handler, against a request without a token to an unguarded
//!   handler behind the same middleware; the difference is what the token check and
//!   the guard add to a request.
//! - `guard_chain_cookie`: `guard_chain` with the token in the browser-mode cookie
//!   (among the CSRF cookie and an unrelated one, as a browser sends them) instead of
//!   the header. Target: under 0.5 µs more than `guard_chain`.
//!
//! Run: `cargo bench --bench guards`; `BENCH_JWT_ALGORITHM=EdDSA cargo bench --bench
//! guards` runs the same with public-key tokens (keys made by the server, in its
//! database; a repeat token is answered from the verification cache).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::mpsc;

use actix_web::{test, web, App, HttpResponse};
use actix_web_httpauth::middleware::HttpAuthentication;
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};
use stores_api::auth::cookies::Csrf;
use stores_api::auth::guards::Authenticated;
use stores_api::auth::middleware::{validator, TokenState};
use stores_api::config::Settings;
use stores_api::startup::Application;
use stores_api::state::AppState;

const ADMIN: (&str, &str) = ("bench-admin", "bench-admin-password-1");

/// Starts the real application on a temp SQLite file in a thread of its own (so that
/// its revocation follower keeps the set fresh), logs the admin in, and returns the
/// shared state and a fresh access token with a real session.
fn running_server(dir: &std::path::Path) -> (web::Data<AppState>, String) {
    let env: HashMap<String, String> = [
        ("APP_ENV", "test"),
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        (
            "JWT_SECRET_KEY",
            "benchmark-key-benchmark-key-benchmark-key",
        ),
        ("BCRYPT_COST", "4"),
        ("ADMIN_USERNAME", ADMIN.0),
        ("ADMIN_PASSWORD", ADMIN.1),
        ("RUST_LOG", "off"),
        ("JWT_TOKEN_LOCATION", "headers,cookies"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .chain([
        (
            "DATABASE_URL".to_owned(),
            dir.join("bench.db").display().to_string(),
        ),
        ("DATA_DIR".to_owned(), dir.display().to_string()),
        (
            "JWT_ALGORITHM".to_owned(),
            std::env::var("BENCH_JWT_ALGORITHM").unwrap_or_else(|_| "HS256".to_owned()),
        ),
        ("JWT_KEY_ENCRYPTION_KEY".to_owned(), "ab".repeat(32)),
    ])
    .collect();
    let settings = Settings::load_from(env).expect("benchmark settings");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let app = Application::build(settings).await.expect("server starts");
            tx.send((app.state(), app.port())).expect("bench waits");
            let _ = app.run_until_stopped().await;
        })
    });
    let (state, port) = rx.recv().expect("server started");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let body: Value = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/login"))
            .json(&json!({"username": ADMIN.0, "password": ADMIN.1}))
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("login body")
    });
    let token = body["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned();
    (state, token)
}

async fn guarded(user: Authenticated) -> HttpResponse {
    HttpResponse::Ok().body(user.0.user_id.to_string())
}

async fn unguarded() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

fn guards(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (state, token) = running_server(dir.path());
    let system = actix_web::rt::System::new();

    match system.block_on(state.token_check.check(&token, Csrf::NotRequired)) {
        TokenState::Valid(_) => {}
        TokenState::Rejected(e) => panic!("the benchmark's token is refused: {e}"),
    }
    c.bench_function("token_check", |b| {
        b.iter(|| {
            system.block_on(
                state
                    .token_check
                    .check(black_box(&token), Csrf::NotRequired),
            )
        })
    });

    let service = system.block_on(test::init_service(
        App::new()
            .app_data(state.token_check.clone())
            .wrap(HttpAuthentication::with_fn(validator))
            .route("/guarded", web::get().to(guarded))
            .route("/unguarded", web::get().to(unguarded)),
    ));
    let bearer = format!("Bearer {token}");
    let cookies = format!(
        "_ga=GA1.1.1234567890.1700000000; access_token_cookie={token}; \
         csrf_access_token=6f1c2d0e-7a4b-4c59-9d7e-2b1f0a3c4d5e"
    );
    let call = |path: &'static str, header: Option<(&str, &str)>| {
        let mut request = test::TestRequest::get().uri(path);
        if let Some(header) = header {
            request = request.insert_header(header);
        }
        system.block_on(test::call_service(&service, request.to_request()))
    };
    let with_token = Some(("Authorization", bearer.as_str()));
    let with_cookie = Some(("Cookie", cookies.as_str()));
    assert_eq!(call("/guarded", with_token).status(), 200, "token accepted");
    assert_eq!(
        call("/guarded", with_cookie).status(),
        200,
        "cookie accepted"
    );
    assert_eq!(call("/guarded", None).status(), 401, "no token, no entry");
    c.bench_function("guard_chain", |b| {
        b.iter(|| call(black_box("/guarded"), with_token))
    });
    c.bench_function("guard_chain_cookie", |b| {
        b.iter(|| call(black_box("/guarded"), with_cookie))
    });
    c.bench_function("no_token", |b| {
        b.iter(|| call(black_box("/unguarded"), None))
    });
}

criterion_group!(benches, guards);
criterion_main!(benches);
