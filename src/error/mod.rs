//! `ApiError`: every failure becomes API.md's error body here, and only here.

pub mod responses;

use std::collections::BTreeMap;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::http::RateLimitStatus;

/// The realm named in every `WWW-Authenticate` challenge.
const REALM: &str = "stores-api";

/// Per-field problems, grouped by where the field came from (`json` for the body,
/// `query` for the query string, `path` for a path segment), each field with every
/// problem found.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(
    value_type = HashMap<String, HashMap<String, Vec<String>>>,
    example = json!({"json": {"name": ["Length must be between 1 and 80."]}})
)]
pub struct ValidationErrors(BTreeMap<&'static str, BTreeMap<String, Vec<String>>>);

impl ValidationErrors {
    /// Records a problem with a body field.
    pub fn json(&mut self, field: impl Into<String>, problem: impl Into<String>) {
        self.add("json", field, problem);
    }

    /// Records a problem with a query-string parameter.
    pub fn query(&mut self, field: impl Into<String>, problem: impl Into<String>) {
        self.add("query", field, problem);
    }

    /// Records a problem with a path segment.
    pub fn path(&mut self, field: impl Into<String>, problem: impl Into<String>) {
        self.add("path", field, problem);
    }

    fn add(
        &mut self,
        location: &'static str,
        field: impl Into<String>,
        problem: impl Into<String>,
    ) {
        self.0
            .entry(location)
            .or_default()
            .entry(field.into())
            .or_default()
            .push(problem.into());
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing was recorded, else the 422 error.
    pub fn into_result<T>(self, value: impl FnOnce() -> T) -> Result<T, ApiError> {
        if self.is_empty() {
            Ok(value())
        } else {
            Err(ApiError::Validation(self))
        }
    }
}

/// Every failure the API can answer with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// No bearer token where one is required.
    #[error("Request does not contain an access token.")]
    AuthorizationRequired,
    /// The token is malformed, badly signed, of the wrong type or not yet valid.
    #[error("{0}")]
    InvalidToken(&'static str),
    /// The token's `exp` has passed (beyond the leeway).
    #[error("The token has expired.")]
    TokenExpired,
    /// The route needs a fresh token.
    #[error("The token is not fresh.")]
    FreshTokenRequired,
    /// The token or its session was revoked.
    #[error("The token has been revoked.")]
    TokenRevoked,
    /// A cookie-authenticated state-changing request without the token's CSRF value in
    /// its header.
    #[error("{0}")]
    CsrfTokenInvalid(&'static str),
    /// The route needs an admin token.
    #[error("Admin privilege required.")]
    AdminRequired,
    /// The caller acts on another user's account.
    #[error("{0}")]
    Forbidden(&'static str),
    /// Wrong username or password.
    #[error("Invalid credentials.")]
    InvalidCredentials,
    /// The body is not JSON, or not sent as JSON.
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed input with bad fields.
    #[error("Invalid request.")]
    Validation(ValidationErrors),
    /// Unknown route or missing resource.
    #[error("{0}")]
    NotFound(String),
    /// The route exists, not with this method.
    #[error("The method is not allowed for the requested URL.")]
    MethodNotAllowed,
    /// A unique name is already taken.
    #[error("{0}")]
    Conflict(&'static str),
    /// The body is larger than MAX_BODY_BYTES.
    #[error("The request body is larger than the limit of {0} bytes.")]
    PayloadTooLarge(usize),
    /// Rate limited: the limit, and where the client stands in it.
    #[error("Too many attempts. Try again in {} s.", .0.retry_after())]
    TooManyRequests(RateLimitStatus),
    /// The database cannot be reached.
    #[error("The service is temporarily unavailable. Try again shortly.")]
    ServiceUnavailable,
    /// Shed under load (the password hashing queue is full); retry after this many seconds.
    #[error("The service is busy. Try again in {0} s.")]
    Overloaded(u64),
    /// Anything else. The text is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The body of every error response, whatever produced it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(
    as = ErrorBody,
    example = json!({
        "code": 401,
        "status": "Unauthorized",
        "error": "token_expired",
        "message": "The token has expired."
    })
)]
pub struct ErrorBody<'a> {
    /// The HTTP status code.
    #[schema(minimum = 400, maximum = 599)]
    code: u16,
    /// The status's reason phrase.
    status: &'a str,
    /// A stable machine code: authorization_required, invalid_token, token_expired,
    /// fresh_token_required, token_revoked, csrf_token_invalid, admin_required, forbidden,
    /// invalid_credentials, bad_request, validation_error, not_found,
    /// method_not_allowed, conflict, payload_too_large, too_many_requests,
    /// service_unavailable or internal_error.
    error: &'a str,
    /// A human sentence.
    message: String,
    /// Validation errors only (422): every problem, by field.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    errors: Option<&'a ValidationErrors>,
}

impl ApiError {
    /// The stable machine code of API.md's table.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::AuthorizationRequired => "authorization_required",
            ApiError::InvalidToken(_) => "invalid_token",
            ApiError::TokenExpired => "token_expired",
            ApiError::FreshTokenRequired => "fresh_token_required",
            ApiError::TokenRevoked => "token_revoked",
            ApiError::CsrfTokenInvalid(_) => "csrf_token_invalid",
            ApiError::AdminRequired => "admin_required",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Validation(_) => "validation_error",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::TooManyRequests(_) => "too_many_requests",
            ApiError::ServiceUnavailable | ApiError::Overloaded(_) => "service_unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }

    /// The body for a status that actix produced without us (unknown route, and so on).
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => ApiError::NotFound("The requested URL was not found.".into()),
            StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(0),
            StatusCode::UNAUTHORIZED => ApiError::AuthorizationRequired,
            StatusCode::SERVICE_UNAVAILABLE => ApiError::ServiceUnavailable,
            s if s.is_client_error() => ApiError::BadRequest("The request is not valid.".into()),
            s => ApiError::Internal(format!("unhandled status {s}")),
        }
    }

    /// The `WWW-Authenticate` challenge of RFC 6750 3 for 401s and the admin 403.
    fn challenge(&self) -> Option<String> {
        let status = self.status_code();
        let error = match self {
            ApiError::AuthorizationRequired | ApiError::InvalidCredentials => None,
            ApiError::AdminRequired => Some("insufficient_scope"),
            // The token may be fine; the request lacks a parameter (RFC 6750 3.1).
            ApiError::CsrfTokenInvalid(_) => Some("invalid_request"),
            _ if status == StatusCode::UNAUTHORIZED => Some("invalid_token"),
            _ => return None,
        };
        Some(match error {
            None => format!("Bearer realm=\"{REALM}\""),
            Some(error) => format!(
                "Bearer realm=\"{REALM}\", error=\"{error}\", error_description=\"{}\"",
                self.to_string().replace('"', "'")
            ),
        })
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::AuthorizationRequired
            | ApiError::InvalidToken(_)
            | ApiError::TokenExpired
            | ApiError::FreshTokenRequired
            | ApiError::TokenRevoked
            | ApiError::CsrfTokenInvalid(_)
            | ApiError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ApiError::AdminRequired | ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::ServiceUnavailable | ApiError::Overloaded(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let message = match self {
            ApiError::Internal(detail) => {
                log::error!("internal error: {detail}");
                "An internal error occurred.".to_string()
            }
            ApiError::PayloadTooLarge(0) => "The request body is too large.".to_string(),
            other => other.to_string(),
        };
        let body = ErrorBody {
            code: status.as_u16(),
            status: status.canonical_reason().unwrap_or("Error"),
            error: self.code(),
            message,
            errors: match self {
                ApiError::Validation(errors) => Some(errors),
                _ => None,
            },
        };
        let mut response = HttpResponse::build(status);
        if let Some(challenge) = self.challenge() {
            response.insert_header((header::WWW_AUTHENTICATE, challenge));
        }
        let retry_after = match self {
            ApiError::TooManyRequests(limit) => Some(limit.retry_after()),
            ApiError::Overloaded(seconds) => Some(*seconds),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from(seconds)));
        }
        let mut response = response.json(body);
        if let ApiError::TooManyRequests(limit) = self {
            limit.set_on(response.headers_mut());
        }
        response
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                ApiError::Conflict("The resource already exists.")
            }
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                info,
            ) => {
                log::warn!("database connection lost: {}", info.message());
                ApiError::ServiceUnavailable
            }
            // Transient: SQLite's writer lock outlasted the busy timeout, or PostgreSQL is
            // shutting down or restarting. The client may retry; it is not our bug.
            Error::DatabaseError(_, info)
                if [
                    "database is locked",
                    "terminating connection",
                    "server closed the connection",
                ]
                .iter()
                .any(|m| info.message().contains(m)) =>
            {
                log::warn!("database unavailable: {}", info.message());
                ApiError::ServiceUnavailable
            }
            Error::NotFound => ApiError::NotFound("The resource was not found.".into()),
            other => ApiError::Internal(format!("database: {other}")),
        }
    }
}

impl From<r2d2::Error> for ApiError {
    fn from(e: r2d2::Error) -> Self {
        log::warn!("database unavailable: {e}");
        ApiError::ServiceUnavailable
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        ApiError::Internal(format!("blocking task failed: {e}"))
    }
}
