//! The Application: pool, migrations, admin bootstrap, HttpServer and routes.
//! The binary and the tests start it the same way.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::{from_fn, Logger};
use actix_web::{web, App, HttpServer};
use actix_web_httpauth::middleware::HttpAuthentication;

use crate::admin::{self, AdminError};
use crate::auth::middleware::validator;
use crate::auth::password::PasswordHasher;
use crate::auth::rate_limit::RateLimiter;
use crate::auth::revocation::{Follower, Revocations};
use crate::auth::sessions;
use crate::auth::tokens::TokenService;
use crate::config::Settings;
use crate::db::{self, Batch, Pool, SetupError};
use crate::error::ApiError;
use crate::models::item::{Item, ItemView};
use crate::{http, input, routes};

/// What every request handler shares.
pub struct AppState {
    /// The database pool.
    pub pool: Pool,
    /// Token minting and decoding.
    pub tokens: TokenService,
    /// bcrypt with the configured cost.
    pub passwords: PasswordHasher,
    /// Brute-force limits of the auth endpoints.
    pub limiter: RateLimiter,
    /// GET /item/{id}'s reads, batched.
    pub item_views: Batch<i64, ItemView>,
    /// The revoked set the token check consults instead of the database.
    pub revocations: Arc<Revocations>,
    /// The settings the service started with.
    pub settings: Settings,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Database preparation failed.
    #[error(transparent)]
    Database(#[from] SetupError),
    /// The admin bootstrap was refused.
    #[error("ADMIN_USERNAME/ADMIN_PASSWORD: {0}")]
    Admin(#[from] AdminError),
    /// Binding the address failed.
    #[error("cannot listen on {0}: {1}")]
    Bind(String, std::io::Error),
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
}

impl Application {
    /// Migrates, bootstraps the admin, binds, and builds the server (not yet awaited).
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let migrate_settings = settings.clone();
        let applied = web::block(move || db::migrate(&migrate_settings))
            .await
            .map_err(|e| StartupError::Task(e.to_string()))??;
        if applied > 0 {
            log::info!("applied {applied} migration(s)");
        }
        let revocations = Arc::new(Revocations::new(
            &settings.jwt,
            settings.revocation_poll_interval,
        ));
        let pool = db::pool(&settings);
        let state = web::Data::new(AppState {
            item_views: Batch::new(&pool, Item::views_by_id, |view| view.id),
            pool,
            tokens: TokenService::new(&settings.jwt),
            passwords: PasswordHasher::with_pool(
                settings.bcrypt_cost,
                settings.password_hash_threads,
                settings.password_hash_queue,
                settings.password_hash_wait,
            ),
            limiter: RateLimiter::new(
                settings.auth_rate_limit_per_minute,
                settings.login_failure_limit,
            ),
            revocations: revocations.clone(),
            settings: settings.clone(),
        });
        let admin_line = bootstrap_admin(&state).await?;
        // Filled before the socket is bound, so no request is checked against an empty set.
        let mut follower = Follower::new(revocations, settings.database_url.clone());
        follower.sync().await.map_err(StartupError::Revocations)?;

        let address = format!("{}:{}", settings.host, settings.port);
        let listener =
            TcpListener::bind(&address).map_err(|e| StartupError::Bind(address.clone(), e))?;
        let local = listener
            .local_addr()
            .map_err(|e| StartupError::Bind(address.clone(), e))?;
        let server_state = state.clone();
        let max_body = settings.max_body_bytes;
        let server = HttpServer::new(move || {
            let trusted = server_state.settings.trusted_proxies.clone();
            App::new()
                .app_data(server_state.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(max_body)
                        .error_handler(input::json_error),
                )
                .app_data(web::PathConfig::default().error_handler(input::path_error))
                .app_data(web::QueryConfig::default().error_handler(input::query_error))
                // Innermost first: the bearer check, CORS (so a preflight never meets
                // the guards), error bodies, request ids, and the access log around all.
                .wrap(HttpAuthentication::with_fn(validator))
                .wrap(http::cors(&server_state.settings))
                .wrap(from_fn(http::render_bare_errors))
                .wrap(from_fn(http::request_id))
                // No request header, query string or body: nothing secret reaches the log.
                .wrap(
                    // The client's address as the rate limits see it (TRUSTED_PROXIES),
                    // not the proxy's.
                    Logger::new("%{client}xi \"%{method}xi %U\" %s %b %Dms rid=%{x-request-id}o")
                        .custom_request_replace("method", |req| req.method().to_string())
                        .custom_request_replace("client", move |req| {
                            http::client_ip(req.request(), &trusted)
                                .map_or_else(|| "-".to_owned(), |ip| ip.to_string())
                        }),
                )
                .configure(routes::configure)
                .default_service(web::to(routes::not_found))
        })
        .listen(listener)
        .map_err(|e| StartupError::Bind(address.clone(), e))?
        .run();

        log::info!(
            "stores-api {} listening on http://{} ({} env), database: {} at {}",
            env!("CARGO_PKG_VERSION"),
            local,
            settings.env.as_str(),
            settings.database_url.backend(),
            settings.database_url.redacted(),
        );
        log::info!(
            "tokens: {:?}, access {} s, refresh {} s, leeway {} s; bcrypt cost {}",
            settings.jwt.algorithm,
            settings.jwt.access_ttl.as_secs(),
            settings.jwt.refresh_ttl.as_secs(),
            settings.jwt.leeway.as_secs(),
            settings.bcrypt_cost,
        );
        if let Some(path) = &settings.generated_key_file {
            log::warn!(
                "JWT_SECRET_KEY is not set: using the development key in {} (set JWT_SECRET_KEY in production)",
                path.display()
            );
        }
        log::info!(
            "CORS: {}",
            match settings.cors_allowed_origins.as_slice() {
                [] => "no cross-origin browser access".to_string(),
                origins => format!("allowed origins {}", origins.join(", ")),
            }
        );
        if let Some(line) = admin_line {
            log::info!("admin bootstrap: {line}");
        }
        log::info!(
            "revocations: {} entries loaded; polled every {} ms, token checks fail closed after {} ms without a poll",
            state.revocations.len(),
            settings.revocation_poll_interval.as_millis(),
            state.revocations.stale_after().as_millis(),
        );
        Ok(Application {
            server,
            port: local.port(),
            state,
            follower,
        })
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
        let interval = self.state.settings.revocation_poll_interval;
        let follower = actix_web::rt::spawn(self.follower.run(interval));
        let pruner = actix_web::rt::spawn(prune_forever(self.state.clone()));
        let result = self.server.await;
        pruner.abort();
        follower.abort();
        result
    }
}

async fn bootstrap_admin(state: &web::Data<AppState>) -> Result<Option<String>, StartupError> {
    let Some(bootstrap) = state.settings.admin.clone() else {
        return Ok(None);
    };
    let (pool, hasher) = (state.pool.clone(), state.passwords.clone());
    let revocations = state.revocations.clone();
    let outcome = web::block(move || {
        let mut conn = pool.get().map_err(ApiError::from)?;
        admin::ensure_admin(
            &mut conn,
            &revocations,
            &hasher,
            &bootstrap.username,
            bootstrap.password.expose(),
        )
    })
    .await
    .map_err(|e| StartupError::Task(e.to_string()))??;
    Ok(Some(outcome.to_string()))
}

async fn prune_forever(state: web::Data<AppState>) {
    let mut interval = actix_web::rt::time::interval(state.settings.prune_interval);
    loop {
        interval.tick().await;
        match db::run(&state.pool, sessions::prune_expired).await {
            Ok(0) => {}
            Ok(n) => log::info!("pruned {n} expired session, revoked-token and revocation row(s)"),
            Err(e) => log::warn!("pruning expired sessions failed: {e}"),
        }
        let dropped = state.revocations.prune(db::now());
        if dropped > 0 {
            log::info!("dropped {dropped} expired entries from the in-memory revoked set");
        }
    }
}
