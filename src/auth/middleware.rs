//! The bearer middleware: decodes any token the request carries, checks that it is
//! not revoked, and leaves the outcome in the request for the guards to judge.

use std::sync::Arc;

use actix_web::dev::ServiceRequest;
use actix_web::http::header;
use actix_web::{web, HttpMessage};
use actix_web_httpauth::extractors::bearer::BearerAuth;

use crate::auth::cookies::{check_csrf, BrowserMode, Csrf, TokenSource};
use crate::auth::revocation::Revocations;
use crate::auth::tokens::{Claims, TokenService};
use crate::db::Pool;
use crate::error::ApiError;
use crate::http::is_docs_path;
use crate::metrics::metrics;

/// What the middleware found; absent from the request when there was no token.
#[derive(Debug, Clone)]
pub enum TokenState {
    /// A valid, unrevoked token; guards hand out clones of the `Arc`, not of the claims.
    Valid(Arc<Claims>),
    /// A token that was presented and refused; guards answer with this error.
    Rejected(ApiError),
}

/// The validator for `HttpAuthentication::with_fn`. It never fails the request itself:
/// public routes ignore a bad token, guarded routes turn it into their 401.
pub async fn validator(
    req: ServiceRequest,
    credentials: Option<BearerAuth>,
) -> Result<ServiceRequest, (actix_web::Error, ServiceRequest)> {
    // The document and Swagger UI are public and never read a token: no decoding and
    // no revocation lookup for them.
    if is_docs_path(req.path()) {
        return Ok(req);
    }
    let Some(check) = req.app_data::<web::Data<TokenCheck>>().cloned() else {
        let missing = ApiError::Internal("application state missing".into());
        req.extensions_mut().insert(TokenState::Rejected(missing));
        return Ok(req);
    };
    let (state, source) = {
        // With both locations, a request with an Authorization header is judged by the
        // header alone: a stale cookie never overrides what a script chose to send.
        let header = if check.browser.location().headers() {
            match &credentials {
                Some(bearer) => Some(bearer.token().trim()),
                None => lenient_bearer(&req),
            }
        } else {
            None
        };
        let (token, csrf, source) = match header {
            Some(token) => (token, Csrf::NotRequired, TokenSource::Header),
            None => match check
                .browser
                .cookie_token(req.method(), req.path(), req.headers())
            {
                Some(found) => (found.token, found.csrf, TokenSource::Cookie),
                None => return Ok(req),
            },
        };
        (check.check(token, csrf).await, source)
    };
    let mut extensions = req.extensions_mut();
    extensions.insert(state);
    extensions.insert(source);
    drop(extensions);
    Ok(req)
}

/// A header that actix-web-httpauth's strict parser refused but that still says
/// Bearer (the scheme is case-insensitive, RFC 7235 2.1): its token, possibly empty.
fn lenient_bearer(req: &ServiceRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?;
    let text = value.to_str().unwrap_or("bearer ");
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// What the token check of every request needs, shared by the workers.
pub struct TokenCheck {
    /// The decoder.
    pub tokens: Arc<TokenService>,
    /// The in-memory revoked set.
    pub revocations: Arc<Revocations>,
    /// For a session opened on another instance since the last poll.
    pub pool: Pool,
    /// Where tokens are read, and the cookies of browser mode.
    pub browser: BrowserMode,
}

impl TokenCheck {
    /// The token check of every request: decodes once and consults the in-memory revoked
    /// set; no database round trip, except for a session opened on another instance
    /// since the last poll. A token from a cookie must pass `csrf` after its signature
    /// and times, as in Flask-JWT-Extended (an expired cookie is told it is expired).
    pub async fn check(&self, token: &str, csrf: Csrf<'_>) -> TokenState {
        let state = self.judge(token, csrf).await;
        if let Some(m) = metrics() {
            m.token_check(match &state {
                TokenState::Valid(_) => None,
                TokenState::Rejected(e) => Some(e),
            });
        }
        state
    }

    async fn judge(&self, token: &str, csrf: Csrf<'_>) -> TokenState {
        if token.is_empty() {
            return TokenState::Rejected(ApiError::InvalidToken(
                "The request holds an empty token.",
            ));
        }
        let claims = match self.tokens.decode(token) {
            Ok(claims) => claims,
            Err(e) => return TokenState::Rejected(e),
        };
        if let Csrf::Required(sent) = csrf {
            if let Err(e) = check_csrf(claims.csrf.as_deref(), sent) {
                return TokenState::Rejected(e);
            }
        }
        match self.revocations.check(&self.pool, &claims).await {
            Ok(()) => TokenState::Valid(Arc::new(claims)),
            Err(e) => TokenState::Rejected(e),
        }
    }
}
