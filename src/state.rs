//! What the request handlers share, built once at start-up.

use std::sync::Arc;

use actix_web::web;

use crate::auth::cookies::BrowserMode;
use crate::auth::flows::Accounts;
use crate::auth::keys::KeyError;
use crate::auth::middleware::TokenCheck;
use crate::auth::password::PasswordHasher;
use crate::auth::rate_limit::RateLimiter;
use crate::auth::revocation::Revocations;
use crate::auth::tokens::TokenService;
use crate::config::{DatabaseUrl, Settings};
use crate::db::{BatchedReads, Pool};
use crate::models::item::{Item, ItemView};
use crate::models::store::{Store, StoreView};
use crate::models::tag::{Tag, TagView};
use crate::models::user::{User, UserView};

/// What every request handler shares.
pub struct AppState {
    /// The database pool, for the resources' queries.
    pub pool: Pool,
    /// The account flows (logins, sessions, admin actions).
    pub accounts: Accounts,
    /// The reads by id of single rows, batched.
    pub reads: Reads,
    /// The token check of every request (the authentication middleware's).
    pub token_check: web::Data<TokenCheck>,
    /// The brute-force limits (the per-address extractor's, the account flows', the sweep's).
    pub limiter: web::Data<RateLimiter>,
    /// The settings the service started with.
    pub settings: Settings,
}

/// The token-checked reads of one row by id, each batched: the lookups of one read that
/// arrive together share one round of queries.
pub struct Reads {
    /// GET /item/{id}.
    pub items: BatchedReads<i64, ItemView>,
    /// GET /store/{id}.
    pub stores: BatchedReads<i64, StoreView>,
    /// GET /tag/{id}.
    pub tags: BatchedReads<i64, TagView>,
    /// GET /me: never the password hash, which the view leaves unread.
    pub users: BatchedReads<i64, UserView>,
}

impl Reads {
    /// The four loaders, on `pool`.
    fn new(pool: &Pool) -> Self {
        Reads {
            items: BatchedReads::new(
                pool,
                |conn, ids| Ok(Item::views_by_id(conn, ids)?),
                |view| view.id,
            ),
            stores: BatchedReads::new(
                pool,
                |conn, ids| Ok(Store::views_by_id(conn, ids)?),
                |view| view.id,
            ),
            tags: BatchedReads::new(
                pool,
                |conn, ids| Ok(Tag::views_by_id(conn, ids)?),
                |view| view.id,
            ),
            users: BatchedReads::new(
                pool,
                |conn, ids| Ok(User::views_by_id(conn, ids)?),
                |view| view.id,
            ),
        }
    }
}

impl AppState {
    /// The state for `settings`, on `pool`, with `revocations` fed by the follower; fails
    /// when the configured keys cannot be read.
    pub fn new(
        settings: Settings,
        pool: Pool,
        revocations: Arc<Revocations>,
    ) -> Result<Self, KeyError> {
        let tokens = Arc::new(TokenService::new(&settings.tokens)?);
        // Several instances share a PostgreSQL database, so the limits live there too.
        let shared = matches!(settings.database.url, DatabaseUrl::Postgres(_));
        let limiter = Arc::new(RateLimiter::new(
            &settings.limits,
            settings.http.trusted_proxies.clone(),
            shared.then(|| pool.clone()),
        ));
        let token_check = web::Data::new(TokenCheck {
            tokens: tokens.clone(),
            revocations: revocations.clone(),
            pool: pool.clone(),
            browser: BrowserMode::new(&settings.browser, &settings.tokens),
        });
        Ok(AppState {
            reads: Reads::new(&pool),
            accounts: Accounts {
                pool: pool.clone(),
                passwords: PasswordHasher::new(&settings.passwords),
                tokens,
                revocations,
                limiter: limiter.clone(),
                max_sessions: settings.tokens.max_sessions_per_user,
                audit: Arc::default(),
            },
            limiter: web::Data::from(limiter),
            token_check,
            pool,
            settings,
        })
    }

    /// Where tokens are read, and the cookies of browser mode.
    pub fn browser(&self) -> &BrowserMode {
        &self.token_check.browser
    }

    /// The in-memory revoked set.
    pub fn revocations(&self) -> &Revocations {
        &self.accounts.revocations
    }
}
