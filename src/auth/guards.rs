//! Guards as extractors: a handler states what it needs in its signature.
//! Each reads what the bearer middleware left; none parses a header.

use std::future::{ready, Ready};
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};

use crate::auth::middleware::TokenState;
use crate::auth::tokens::{Claims, TokenType};
use crate::error::ApiError;
use crate::metrics::metrics;

/// The token of the request, if one was presented; a refused one is its error. The
/// middleware decoded it once; this only reads what it left.
fn presented(req: &HttpRequest) -> Result<Option<Arc<Claims>>, ApiError> {
    match req.extensions().get::<TokenState>() {
        None => Ok(None),
        Some(TokenState::Valid(claims)) => Ok(Some(Arc::clone(claims))),
        Some(TokenState::Rejected(e)) => Err(e.clone()),
    }
}

fn of_type(claims: Arc<Claims>, wanted: TokenType) -> Result<Arc<Claims>, ApiError> {
    if claims.token_type == wanted {
        Ok(claims)
    } else if wanted == TokenType::Access {
        Err(ApiError::InvalidToken("Only access tokens are allowed."))
    } else {
        Err(ApiError::InvalidToken("Only refresh tokens are allowed."))
    }
}

fn required(req: &HttpRequest, wanted: TokenType) -> Result<Arc<Claims>, ApiError> {
    let claims = presented(req)?
        .ok_or(ApiError::AuthorizationRequired)
        .inspect_err(refused)?;
    of_type(claims, wanted).inspect_err(refused)
}

fn fresh(claims: Arc<Claims>) -> Result<Arc<Claims>, ApiError> {
    if claims.is_fresh() {
        Ok(claims)
    } else {
        Err(ApiError::FreshTokenRequired).inspect_err(refused)
    }
}

fn admin(claims: Arc<Claims>) -> Result<Arc<Claims>, ApiError> {
    if claims.is_admin {
        Ok(claims)
    } else {
        Err(ApiError::AdminRequired).inspect_err(refused)
    }
}

/// Counts a refusal the guard made itself (a refused token was counted by the token
/// check already).
fn refused(error: &ApiError) {
    if let Some(m) = metrics() {
        m.guard_refusal(error);
    }
}

macro_rules! guard {
    ($(#[$doc:meta])* $name:ident, |$req:ident| $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub Arc<Claims>);

        impl FromRequest for $name {
            type Error = ApiError;
            type Future = Ready<Result<Self, ApiError>>;

            fn from_request($req: &HttpRequest, _: &mut Payload) -> Self::Future {
                ready($check.map($name))
            }
        }
    };
}

guard!(
    /// Any valid access token.
    Authenticated,
    |req| required(req, TokenType::Access)
);
guard!(
    /// A fresh access token.
    Fresh,
    |req| required(req, TokenType::Access).and_then(fresh)
);
guard!(
    /// An access token with the admin claim.
    Admin,
    |req| required(req, TokenType::Access).and_then(admin)
);
guard!(
    /// A fresh access token with the admin claim (freshness is checked first).
    FreshAdmin,
    |req| required(req, TokenType::Access)
        .and_then(fresh)
        .and_then(admin)
);
guard!(
    /// A refresh token.
    Refresh,
    |req| required(req, TokenType::Refresh)
);

/// An access token when one is presented; an invalid one is still a 401.
#[derive(Debug, Clone)]
pub struct MaybeAuthenticated(pub Option<Arc<Claims>>);

impl FromRequest for MaybeAuthenticated {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            presented(req)
                .and_then(|c| c.map(|c| of_type(c, TokenType::Access)).transpose())
                .map(MaybeAuthenticated),
        )
    }
}

impl Authenticated {
    /// Self-or-admin: the 403 for acting on someone else's account.
    pub fn ensure_self_or_admin(&self, user_id: i64) -> Result<(), ApiError> {
        ensure_self_or_admin(&self.0, user_id)
    }
}

impl Fresh {
    /// Self-or-admin: the 403 for acting on someone else's account.
    pub fn ensure_self_or_admin(&self, user_id: i64) -> Result<(), ApiError> {
        ensure_self_or_admin(&self.0, user_id)
    }
}

fn ensure_self_or_admin(claims: &Claims, user_id: i64) -> Result<(), ApiError> {
    if claims.user_id == user_id || claims.is_admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden("You can only act on your own account."))
    }
}
