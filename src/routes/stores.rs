//! Stores.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::auth::guards::{Authenticated, Fresh, FreshAdmin, MaybeAuthenticated};
use crate::db;
use crate::error::ApiError;
use crate::input::{path_id, Fields, FromJsonBody, Name, Page, ValidJson};
use crate::models::store::{self, Store};
use crate::routes::with_total;
use crate::startup::AppState;

/// A `{name}` body (stores and tags).
pub struct NameBody {
    /// The trimmed name.
    pub name: Name,
}

impl FromJsonBody for NameBody {
    fn from_fields(f: &mut Fields) -> Option<Self> {
        Some(NameBody {
            name: f.required("name", Name::parse)?,
        })
    }
}

/// GET /store: every store, token or not.
pub async fn list_stores(
    _caller: MaybeAuthenticated,
    page: Page,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (views, total) = db::run(&state.pool, move |conn| {
        let (page, total) = Store::list(conn, page.limit, page.offset)?;
        Ok((Store::views(conn, page)?, total))
    })
    .await?;
    Ok(with_total(total).json(views))
}

/// GET /store/{id}
pub async fn get_store(
    _caller: Authenticated,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&req, "id", store::not_found)?;
    let view = db::run(&state.pool, move |conn| {
        let found = Store::get(conn, id)?;
        one(Store::views(conn, vec![found])?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// POST /store (fresh)
pub async fn create_store(
    _caller: Fresh,
    state: web::Data<AppState>,
    body: ValidJson<NameBody>,
) -> Result<HttpResponse, ApiError> {
    let name = body.0.name;
    let view = db::run(&state.pool, move |conn| {
        let created = Store::create(conn, name.as_str())?;
        one(Store::views(conn, vec![created])?)
    })
    .await?;
    Ok(HttpResponse::Created().json(view))
}

/// DELETE /store/{id} (fresh admin): its items and tags go with it.
pub async fn delete_store(
    _admin: FreshAdmin,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&req, "id", store::not_found)?;
    db::run(&state.pool, move |conn| Store::delete(conn, id)).await?;
    Ok(HttpResponse::Ok().json(json!({"message": "Store deleted"})))
}

/// The single view of a one-element batch.
pub fn one<T>(views: Vec<T>) -> Result<T, ApiError> {
    views
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::Internal("a view of one row came back empty".into()))
}
