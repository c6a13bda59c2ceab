//! Stores.

use actix_web::{web, HttpRequest, HttpResponse};
use utoipa::ToSchema;

use crate::auth::guards::{Authenticated, Fresh, FreshAdmin, MaybeAuthenticated};
use crate::db;
use crate::error::{ApiError, ErrorBody};
use crate::input::{path_id, Fields, FromJsonBody, Name, Page, ValidJson};
use crate::models::store::{self, Store, StoreView};
use crate::routes::{with_total, Message};
use crate::startup::AppState;

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
    get,
    path = "/store",
    tag = "stores",
    summary = "Every store",
    description = "Optional token: the same list with or without one, but a token that is \
                   sent must be a valid access token. A page of stores, ordered by id, each \
                   with its items and tags.",
    params(Page),
    responses(
        (status = 200, description = "A page of stores.", body = Vec<StoreView>,
            headers(("X-Total-Count" = i64, description = "The number of rows in all pages."))),
        (status = 401, description = "A token was sent and is not a valid access token: \
            `invalid_token` (malformed, badly signed, or a refresh token), `token_expired` or \
            `token_revoked`. (Without a token the request is served.)", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The RFC 6750 challenge."))),
        (status = 422, description = "`validation_error`: `limit` or `offset` is not a \
            whole number in range (under `errors.query`).", body = ErrorBody),
        (status = 503, description = "`service_unavailable`: the database cannot be reached.",
            body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
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
#[utoipa::path(
    get,
    path = "/store/{id}",
    tag = "stores",
    summary = "A store",
    description = "Requires an access token. The store with its items and tags.",
    params(
        ("id" = i64, Path, minimum = 1, description = "The store id."),
    ),
    responses(
        (status = 200, description = "The store.", body = StoreView),
        (status = 401, description = "No valid access token: `authorization_required`, \
            `invalid_token` (malformed, badly signed, or a refresh token), `token_expired` or \
            `token_revoked`.", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The RFC 6750 challenge."))),
        (status = 404, description = "`not_found`: no store with this id.", body = ErrorBody),
        (status = 503, description = "`service_unavailable`: the database cannot be reached.",
            body = ErrorBody),
    ),
    security(("bearer" = []))
)]
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
#[utoipa::path(
    post,
    path = "/store",
    tag = "stores",
    summary = "Create a store",
    description = "Requires a **fresh** access token. Store names are unique.",
    request_body = NameBody,
    responses(
        (status = 201, description = "The new store.", body = StoreView),
        (status = 400, description = "`bad_request`: the body is not JSON, or not sent as \
            `application/json`.", body = ErrorBody),
        (status = 401, description = "No valid fresh access token: `authorization_required`, \
            `invalid_token` (malformed, badly signed, or a refresh token), `token_expired`, \
            `token_revoked`, or `fresh_token_required`.", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The RFC 6750 challenge."))),
        (status = 409, description = "`conflict`: a store with that name already exists.",
            body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over the limit.",
            body = ErrorBody),
        (status = 422, description = "`validation_error`: `name` is missing or invalid, or \
            another field is sent; \
            `errors.json` lists every problem.", body = ErrorBody),
        (status = 503, description = "`service_unavailable`: the database cannot be reached.",
            body = ErrorBody),
    ),
    security(("bearer" = []))
)]
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
#[utoipa::path(
    delete,
    path = "/store/{id}",
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
        (status = 401, description = "No valid fresh access token: `authorization_required`, \
            `invalid_token` (malformed, badly signed, or a refresh token), `token_expired`, \
            `token_revoked`, or `fresh_token_required`.", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The RFC 6750 challenge."))),
        (status = 403, description = "`admin_required`: the token is not an admin's.",
            body = ErrorBody),
        (status = 404, description = "`not_found`: no store with this id.", body = ErrorBody),
        (status = 503, description = "`service_unavailable`: the database cannot be reached.",
            body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete_store(
    _admin: FreshAdmin,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&req, "id", store::not_found)?;
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
