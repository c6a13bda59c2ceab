//! Stores.

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use utoipa::ToSchema;

use crate::auth::guards::{Authenticated, Fresh, FreshAdmin, MaybeAuthenticated};
use crate::db;
use crate::error::responses::{
    AdminRequired, BadRequestBody, FreshTokenRequired, InvalidNameBody, InvalidPage,
    OptionalTokenInvalid, PayloadTooLarge, ServiceUnavailable, StoreNotFound, Unauthorized,
};
use crate::error::{ApiError, ErrorBody};
use crate::input::{path_id, Fields, FromJsonBody, Name, Page, ValidJson};
use crate::models::store::{Store, StoreView};
use crate::models::{Entity, ModelError};
use crate::routes::{not_found, with_total, Message};
use crate::state::AppState;

/// A `{name}` body (stores and tags).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NameBody {
    /// The name (stored trimmed).
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
#[utoipa::path(
    tag = "stores",
    summary = "Every store",
    description = "Optional token: the same list with or without one, but a token that is \
                   sent must be a valid access token. A page of stores, ordered by id, each \
                   with its items and tags.",
    params(Page),
    responses(
        (status = 200, description = "A page of stores.", body = Vec<StoreView>,
            headers(("X-Total-Count" = i64, description = "The number of rows in all pages."))),
        (status = 401, response = OptionalTokenInvalid),
        (status = 422, response = InvalidPage),
        (status = 503, response = ServiceUnavailable),
    ),
    security((), ("bearer" = []))
)]
#[get("/store")]
pub async fn list_stores(
    _caller: MaybeAuthenticated,
    page: Page,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (views, total) = db::run(&state.pool, move |conn| {
        let (page, total) = Store::list(conn, page.limit, page.offset)?;
        Ok::<_, ModelError>((Store::views(conn, page)?, total))
    })
    .await?;
    Ok(with_total(total).json(views))
}

/// GET /store/{id}
#[utoipa::path(
    tag = "stores",
    summary = "A store",
    description = "Requires an access token. The store with its items and tags.",
    params(
        ("id" = i64, Path, minimum = 1, description = "The store id."),
    ),
    responses(
        (status = 200, description = "The store.", body = StoreView),
        (status = 401, response = Unauthorized),
        (status = 404, response = StoreNotFound),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[get("/store/{id}")]
pub async fn get_store(
    _caller: Authenticated,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&req, "id", not_found(Entity::Store))?;
    let view = state.reads.stores.get(&state.pool, id).await?;
    Ok(HttpResponse::Ok().json(view.ok_or_else(|| not_found(Entity::Store)(id))?))
}

/// POST /store (fresh)
#[utoipa::path(
    tag = "stores",
    summary = "Create a store",
    description = "Requires a **fresh** access token. Store names are unique.",
    request_body = NameBody,
    responses(
        (status = 201, description = "The new store.", body = StoreView),
        (status = 400, response = BadRequestBody),
        (status = 401, response = FreshTokenRequired),
        (status = 409, description = "`conflict`: a store with that name already exists.",
            body = ErrorBody),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = InvalidNameBody),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[post("/store")]
pub async fn create_store(
    _caller: Fresh,
    state: web::Data<AppState>,
    body: ValidJson<NameBody>,
) -> Result<HttpResponse, ApiError> {
    let name = body.0.name;
    let view = db::transaction(&state.pool, move |conn| {
        let created = Store::create(conn, name.as_str())?;
        one(Store::views(conn, vec![created])?)
    })
    .await?;
    Ok(HttpResponse::Created().json(view))
}

/// DELETE /store/{id} (fresh admin): its items and tags go with it.
#[utoipa::path(
    tag = "stores",
    summary = "Delete a store",
    description = "Requires a **fresh** **admin** access token. The store's items and tags \
                   are deleted with it.",
    params(
        ("id" = i64, Path, minimum = 1, description = "The store id."),
    ),
    responses(
        (status = 200, description = "Deleted.", body = Message,
            example = json!({"message": "Store deleted"})),
        (status = 401, response = FreshTokenRequired),
        (status = 403, response = AdminRequired),
        (status = 404, response = StoreNotFound),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[delete("/store/{id}")]
pub async fn delete_store(
    _admin: FreshAdmin,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&req, "id", not_found(Entity::Store))?;
    db::run(&state.pool, move |conn| Store::delete(conn, id)).await?;
    Ok(HttpResponse::Ok().json(Message::new("Store deleted")))
}

/// The single view of a one-element batch.
pub fn one<T>(views: Vec<T>) -> Result<T, ApiError> {
    views
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::Internal("a view of one row came back empty".into()))
}
