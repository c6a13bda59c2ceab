//! GET /: what this service is and where its documents are, for a person who opens the
//! base URL.

use actix_web::{get, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::{OPENAPI_PATH, SWAGGER_UI_PATH};

/// GET /'s answer.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "name": "stores-api",
    "version": "0.1.0",
    "links": {"swagger_ui": "/swagger-ui/", "openapi": "/openapi.json", "health": "/health"}
}))]
pub struct Index {
    /// Always `stores-api`.
    name: &'static str,
    /// The running version.
    version: &'static str,
    /// Where to go next.
    links: Links,
}

/// The links of GET /.
#[derive(Serialize, ToSchema)]
pub struct Links {
    /// Swagger UI over the OpenAPI document.
    swagger_ui: String,
    /// The OpenAPI 3 document.
    openapi: &'static str,
    /// Liveness.
    health: &'static str,
}

/// GET /
#[utoipa::path(
    tag = "docs",
    summary = "This service and its documents",
    description = "Public. The service's name and version, and links to Swagger UI, the \
                   OpenAPI document and the health check.",
    responses(
        (status = 200, description = "The index.", body = Index),
    )
)]
#[get("/")]
pub async fn index() -> HttpResponse {
    HttpResponse::Ok().json(Index {
        name: env!("CARGO_PKG_NAME"),
        version: env!("CARGO_PKG_VERSION"),
        links: Links {
            swagger_ui: format!("{SWAGGER_UI_PATH}/"),
            openapi: OPENAPI_PATH,
            health: "/health",
        },
    })
}
