//! The Application: migrations, the shared state, the admin bootstrap, the server and
//! its middleware. The binary and the tests start it the same way.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::http::header;
use actix_web::middleware::{from_fn, Condition};
use actix_web::{web, App, HttpResponse, HttpServer};
use actix_web_httpauth::middleware::HttpAuthentication;
use utoipa_actix_web::AppExt;

use crate::auth::keys::KeyError;
use crate::auth::middleware::validator;
use crate::auth::revocation::{Follower, Revocations};
use crate::auth::{audit, sessions};
use crate::config::{IpNetwork, Settings};
use crate::db::{self, SetupError};
use crate::error::ApiError;
use crate::http::SWAGGER_UI_PATH;
use crate::input::{NewPassword, Username};
use crate::metrics::{self, exposition};
use crate::state::AppState;
use crate::{http, input, routes};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Database preparation failed.
    #[error(transparent)]
    Database(#[from] SetupError),
    /// The admin bootstrap was refused.
    #[error("{0}")]
    Admin(String),
    /// Binding the address failed.
    #[error("cannot listen on {0}: {1}")]
    Bind(String, std::io::Error),
    /// The signing keys could not be read or made.
    #[error("signing keys: {0}")]
    Keys(#[from] KeyError),
    /// The database's signing keys could not be read.
    #[error("cannot read the signing keys: {0}")]
    KeysUnreadable(ApiError),
    /// The revoked set could not be read.
    #[error("cannot read the revoked sessions and tokens: {0}")]
    Revocations(ApiError),
    /// A start-up task panicked or was cancelled.
    #[error("start-up task failed: {0}")]
    Task(String),
}

/// A built, listening service.
pub struct Application {
    server: Server,
    port: u16,
    state: web::Data<AppState>,
    follower: Follower,
    /// The Prometheus listener and its port, unless METRICS_ADDR is empty.
    metrics: Option<(Server, u16)>,
}

impl Application {
    /// Migrates, bootstraps the admin, binds, and builds the server (not yet awaited).
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let database = settings.database.clone();
        let applied = web::block(move || db::migrate(&database))
            .await
            .map_err(|e| StartupError::Task(e.to_string()))??;
        if applied > 0 {
            log::info!("applied {applied} migration(s)");
        }
        let revocations = Arc::new(Revocations::new(
            &settings.tokens,
            settings.revocation.poll_interval,
        ));
        let pool = db::pool(&settings.database);
        let state = web::Data::new(AppState::new(
            settings.clone(),
            pool.clone(),
            revocations.clone(),
        )?);
        if state.accounts.tokens.keys().in_database() {
            let keys = Arc::clone(state.accounts.tokens.keys());
            db::run(&pool, move |conn| keys.load(conn))
                .await
                .map_err(StartupError::KeysUnreadable)?;
        }
        let admin_line = bootstrap_admin(&state).await?;
        // Filled before the socket is bound, so no request is checked against an empty set.
        let mut follower = Follower::new(revocations, settings.database.url.clone());
        follower.sync().await.map_err(StartupError::Revocations)?;

        let address = format!("{}:{}", settings.http.host, settings.http.port);
        let listener =
            TcpListener::bind(&address).map_err(|e| StartupError::Bind(address.clone(), e))?;
        let local = listener
            .local_addr()
            .map_err(|e| StartupError::Bind(address.clone(), e))?;
        let server_state = state.clone();
        let server = HttpServer::new(move || app(&server_state))
            .listen(listener)
            .map_err(|e| StartupError::Bind(address.clone(), e))?
            .run();
        let metrics = match &settings.http.metrics_addr {
            Some(address) => Some(metrics_server(address, &state)?),
            None => None,
        };
        log_start(&state, local, admin_line);
        Ok(Application {
            server,
            port: local.port(),
            state,
            follower,
            metrics,
        })
    }

    /// The port of the metrics listener (useful with METRICS_ADDR=HOST:0); `None` when
    /// METRICS_ADDR is empty.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(_, port)| *port)
    }

    /// The port actually bound (useful with PORT=0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The state every handler shares (benchmarks drive the token check with it).
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until SIGINT/SIGTERM; in-flight requests finish first. Meanwhile the
    /// revoked set follows the database, and expired entries are pruned.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let interval = self.state.settings.revocation.poll_interval;
        let follower = actix_web::rt::spawn(self.follower.run(interval));
        let pruner = actix_web::rt::spawn(prune_forever(self.state.clone()));
        let keys = actix_web::rt::spawn(follow_keys(self.state.clone()));
        let audit = actix_web::rt::spawn(write_audit_queue(self.state.clone()));
        let metrics = self.metrics.map(|(server, _)| {
            let handle = server.handle();
            actix_web::rt::spawn(server);
            handle
        });
        let result = self.server.await;
        if let Some(metrics) = metrics {
            metrics.stop(true).await;
        }
        keys.abort();
        pruner.abort();
        follower.abort();
        // What the last requests queued is written before the process ends, the batch
        // in flight included; bounded, for a database that no longer answers.
        self.state.accounts.audit.close();
        if actix_web::rt::time::timeout(AUDIT_DRAIN_WAIT, audit)
            .await
            .is_err()
        {
            log::warn!("audit events still queued after {AUDIT_DRAIN_WAIT:?}: not written");
        }
        result
    }
}

/// The Prometheus listener on `address`: `GET /metrics` and nothing else, on a port of
/// its own so that the API's port never exposes it. One worker: a scrape is rare and
/// cheap.
fn metrics_server(
    address: &str,
    state: &web::Data<AppState>,
) -> Result<(Server, u16), StartupError> {
    let settings = &state.settings;
    let backend = match settings.database.url {
        crate::config::DatabaseUrl::Postgres(_) => "postgres",
        crate::config::DatabaseUrl::Sqlite(_) => "sqlite",
    };
    let algorithm = format!("{:?}", settings.tokens.algorithm);
    metrics::enable();
    exposition()
        .build_info
        .with_label_values(&[env!("CARGO_PKG_VERSION"), backend, &algorithm])
        .set(1);
    let bind_error = |e| StartupError::Bind(address.to_owned(), e);
    let listener = TcpListener::bind(address).map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    let state = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/metrics", web::get().to(serve_metrics))
    })
    .workers(1)
    // The API server handles the signals and stops this one after it.
    .disable_signals()
    .listen(listener)
    .map_err(bind_error)?
    .run();
    log::info!("metrics on http://{local}/metrics");
    Ok((server, local.port()))
}

/// GET /metrics: the gauges read at scrape time, then the whole exposition.
async fn serve_metrics(state: web::Data<AppState>) -> HttpResponse {
    let m = exposition();
    let (in_use, idle) = state.pool.connection_counts();
    m.db_connections
        .with_label_values(&["in_use"])
        .set(i64::from(in_use));
    m.db_connections
        .with_label_values(&["idle"])
        .set(i64::from(idle));
    m.audit_queue
        .set(i64::try_from(state.accounts.audit.pending()).unwrap_or(i64::MAX));
    let revoked = state.revocations();
    m.revoked_entries
        .set(i64::try_from(revoked.len()).unwrap_or(i64::MAX));
    m.revocation_poll_age.set(
        revoked
            .since_sync()
            .map_or(f64::INFINITY, |age| age.as_secs_f64()),
    );
    HttpResponse::Ok()
        .content_type(metrics::CONTENT_TYPE)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(m.render())
}

/// The application each worker serves.
fn app(
    state: &web::Data<AppState>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let settings = &state.settings.http;
    let trusted: Arc<[IpNetwork]> = settings.trusted_proxies.clone().into();
    App::new()
        .app_data(state.clone())
        .app_data(state.token_check.clone())
        .app_data(state.limiter.clone())
        .app_data(
            web::JsonConfig::default()
                .limit(settings.max_body_bytes)
                .error_handler(input::json_error),
        )
        // Form bodies (POST /introspect, POST /revoke) have the JSON bodies' limit.
        .app_data(web::PayloadConfig::new(settings.max_body_bytes))
        .app_data(web::PathConfig::default().error_handler(input::path_error))
        .app_data(web::QueryConfig::default().error_handler(input::query_error))
        // Innermost first: the bearer check, CORS (so a preflight never meets the
        // guards), error bodies, request ids, the access log, and the metrics around all.
        .wrap(HttpAuthentication::with_fn(validator))
        .wrap(http::cors(settings, &state.settings.browser))
        .wrap(from_fn(http::render_bare_errors))
        .wrap(from_fn(http::request_id))
        .wrap(from_fn(move |req, next| {
            http::access_log(req, next, Arc::clone(&trusted))
        }))
        .wrap(Condition::new(
            settings.metrics_addr.is_some(),
            from_fn(http::record_metrics),
        ))
        .into_utoipa_app()
        .configure(routes::configure)
        .into_app()
        .default_service(web::to(routes::fallback))
}

/// The start-up lines: where the service listens and with what.
fn log_start(state: &AppState, local: SocketAddr, admin_line: Option<String>) {
    let settings = &state.settings;
    log::info!(
        "stores-api {} listening on http://{} ({} env), database: {} at {}",
        env!("CARGO_PKG_VERSION"),
        local,
        settings.env.as_str(),
        settings.database.url.backend(),
        settings.database.url.redacted(),
    );
    log::info!("API documentation: Swagger UI at http://{local}{SWAGGER_UI_PATH}/, OpenAPI at http://{local}/openapi.json");
    log::info!(
        "tokens: {:?}, access {} s, refresh {} s, leeway {} s; bcrypt cost {}",
        settings.tokens.algorithm,
        settings.tokens.access_ttl.as_secs(),
        settings.tokens.refresh_ttl.as_secs(),
        settings.tokens.leeway.as_secs(),
        settings.passwords.bcrypt_cost,
    );
    if let Some(crate::config::KeySource::Database {
        generated_file: Some(path),
        ..
    }) = &settings.tokens.keys
    {
        log::warn!(
            "JWT_KEY_ENCRYPTION_KEY is not set: the private keys in the database are encrypted with the development key in {} (set JWT_KEY_ENCRYPTION_KEY in production)",
            path.display()
        );
    }
    if let Some(path) = &settings.tokens.generated_key_file {
        log::warn!(
            "JWT_SECRET_KEY is not set: using the development key in {} (set JWT_SECRET_KEY in production)",
            path.display()
        );
    }
    log::info!(
        "CORS: {}",
        match settings.http.cors_allowed_origins.as_slice() {
            [] => "no cross-origin browser access (CORS_ALLOWED_ORIGINS is empty)".to_string(),
            origins => format!("allowed origins {}", origins.join(", ")),
        }
    );
    let browser = &settings.browser;
    if browser.location.cookies() {
        log::info!(
            "browser mode: tokens read from {}; cookies {} and {} (HttpOnly), CSRF in {}, Secure={}, SameSite={:?}",
            if browser.location.headers() { "the Authorization header, else cookies" } else { "cookies only" },
            browser.access_cookie,
            browser.refresh_cookie,
            browser.access_csrf_header,
            browser.secure,
            browser.same_site,
        );
    } else {
        log::info!("tokens read from the Authorization header (JWT_TOKEN_LOCATION=headers)");
    }
    if let Some(line) = admin_line {
        log::info!("admin bootstrap: {line}");
    }
    log::info!(
        "revocations: {} entries loaded; polled every {} ms, token checks fail closed after {} ms without a poll",
        state.revocations().len(),
        settings.revocation.poll_interval.as_millis(),
        state.revocations().stale_after().as_millis(),
    );
}

async fn bootstrap_admin(state: &AppState) -> Result<Option<String>, StartupError> {
    let Some(bootstrap) = &state.settings.admin else {
        return Ok(None);
    };
    let username = Username::parse(&serde_json::Value::from(bootstrap.username.as_str())).map_err(
        |problem| {
            StartupError::Admin(format!(
                "ADMIN_USERNAME/ADMIN_PASSWORD: username: {problem}"
            ))
        },
    )?;
    let password = NewPassword::parse(&serde_json::Value::from(bootstrap.password.expose()))
        .map_err(|problem| {
            StartupError::Admin(format!(
                "ADMIN_USERNAME/ADMIN_PASSWORD: password: {problem}"
            ))
        })?;
    let change = state
        .accounts
        .bootstrap_admin(username, password)
        .await
        .map_err(|e| StartupError::Admin(e.to_string()))?;
    let name = change.user.username;
    Ok(Some(if change.changed {
        format!("user '{name}' is an admin")
    } else {
        format!("user '{name}' is already an admin")
    }))
}

/// Follows the database's signing keys (public-key algorithms kept in the database).
async fn follow_keys(state: web::Data<AppState>) {
    let keys = Arc::clone(state.accounts.tokens.keys());
    if !keys.in_database() {
        return;
    }
    let mut interval = actix_web::rt::time::interval(crate::auth::keys::POLL_INTERVAL);
    loop {
        interval.tick().await;
        let keys = Arc::clone(&keys);
        let read = db::run(&state.pool, move |conn| {
            let rows = crate::auth::keys::store::list(conn)?;
            keys.follow(&rows)
        })
        .await;
        if let Err(e) = read {
            log::warn!("reading the signing keys failed: {e}");
        }
    }
}

/// How long a stopping server waits for the queued audit events to be written.
const AUDIT_DRAIN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Writes the queued audit events (failed and limited logins) as they come, in batches.
async fn write_audit_queue(state: web::Data<AppState>) {
    let queue = Arc::clone(&state.accounts.audit);
    queue.write_pending(&state.pool).await;
}

async fn prune_forever(state: web::Data<AppState>) {
    let mut interval = actix_web::rt::time::interval(state.settings.revocation.prune_interval);
    loop {
        interval.tick().await;
        match db::run(&state.pool, sessions::prune_expired).await {
            Ok(0) => {}
            Ok(n) => log::info!("pruned {n} expired session, revoked-token and revocation row(s)"),
            Err(e) => log::warn!("pruning expired sessions failed: {e}"),
        }
        match state.limiter.sweep().await {
            Ok(0) => {}
            Ok(n) => log::info!("pruned {n} closed rate-limit window(s)"),
            Err(e) => log::warn!("pruning closed rate-limit windows failed: {e}"),
        }
        let retention = chrono::Duration::from_std(state.settings.revocation.audit_retention)
            .unwrap_or(chrono::Duration::MAX);
        let cutoff = db::now()
            .checked_sub_signed(retention)
            .unwrap_or(chrono::NaiveDateTime::MIN);
        match db::run(&state.pool, move |conn| audit::prune(conn, cutoff)).await {
            Ok(0) => {}
            Ok(n) => log::info!("pruned {n} audit event(s) older than AUDIT_RETENTION_DAYS"),
            Err(e) => log::warn!("pruning old audit events failed: {e}"),
        }
        let dropped = state.revocations().prune(db::now());
        if dropped > 0 {
            log::info!("dropped {dropped} expired entries from the in-memory revoked set");
        }
    }
}
