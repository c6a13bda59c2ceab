//! Liveness and readiness.

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db;
use crate::error::responses::ServiceUnavailable;
use crate::error::ApiError;
use crate::state::AppState;

/// GET /health's answer.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(pattern = "^ok$", example = "ok")]
    status: &'static str,
}

/// GET /ready's answer.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// Always `ready`.
    #[schema(pattern = "^ready$", example = "ready")]
    status: &'static str,
    /// The database backend.
    #[schema(pattern = "^(sqlite|postgresql)$", example = "sqlite")]
    database: &'static str,
}

/// GET /health: the process answers.
#[utoipa::path(
    tag = "health",
    summary = "Liveness",
    description = "Public. The process answers; the database is not consulted.",
    responses(
        (status = 200, description = "Alive.", body = Health),
    )
)]
#[get("/health")]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// GET /ready: the database answers too.
#[utoipa::path(
    tag = "health",
    summary = "Readiness",
    description = "Public. The process answers, so does the database, and the in-memory \
                   revoked set has been refreshed from it recently (else token checks \
                   answer 503 too).",
    responses(
        (status = 200, description = "Ready to serve.", body = Readiness),
        (status = 503, response = ServiceUnavailable),
    )
)]
#[get("/ready")]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    // A stale revoked set makes every token check fail closed: not ready either.
    if !state.revocations().is_stale() && db::ping(&state.pool).await {
        Ok(HttpResponse::Ok().json(Readiness {
            status: "ready",
            database: state.settings.database.url.backend(),
        }))
    } else {
        Err(ApiError::ServiceUnavailable)
    }
}
