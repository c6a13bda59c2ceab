//! Liveness and readiness.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::db;
use crate::error::ApiError;
use crate::startup::AppState;

/// GET /health: the process answers.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// GET /ready: the database answers too.
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if db::ping(&state.pool).await {
        Ok(HttpResponse::Ok().json(json!({
            "status": "ready",
            "database": state.settings.database_url.backend(),
        })))
    } else {
        Err(ApiError::ServiceUnavailable)
    }
}
