//! Tags of a store, and tagging items.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::auth::guards::{Admin, Authenticated};
use crate::db;
use crate::error::ApiError;
use crate::input::{path_id, Page, ValidJson};
use crate::models::item::{self, Item};
use crate::models::store;
use crate::models::tag::{self, Tag};
use crate::routes::stores::{one, NameBody};
use crate::routes::with_total;
use crate::startup::AppState;

/// GET /store/{id}/tag
pub async fn list_store_tags(
    _caller: Authenticated,
    page: Page,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let store_id = path_id(&req, "id", store::not_found)?;
    let (views, total) = db::run(&state.pool, move |conn| {
        let (page, total) = Tag::list_for_store(conn, store_id, page.limit, page.offset)?;
        Ok((Tag::views(conn, page)?, total))
    })
    .await?;
    Ok(with_total(total).json(views))
}

/// POST /store/{id}/tag
pub async fn create_tag(
    _caller: Authenticated,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: ValidJson<NameBody>,
) -> Result<HttpResponse, ApiError> {
    let name = body.0.name;
    let store_id = path_id(&req, "id", store::not_found)?;
    let view = db::run(&state.pool, move |conn| {
        let created = Tag::create(conn, store_id, name.as_str())?;
        one(Tag::views(conn, vec![created])?)
    })
    .await?;
    Ok(HttpResponse::Created().json(view))
}

/// GET /tag/{id}
pub async fn get_tag(
    _caller: Authenticated,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&req, "id", tag::not_found)?;
    let view = db::run(&state.pool, move |conn| {
        let found = Tag::get(conn, id)?;
        one(Tag::views(conn, vec![found])?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// DELETE /tag/{id} (admin): 202; a 400 while items still carry it.
pub async fn delete_tag(
    _admin: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&req, "id", tag::not_found)?;
    db::run(&state.pool, move |conn| Tag::delete(conn, id)).await?;
    Ok(HttpResponse::Accepted().json(json!({"message": "Tag deleted."})))
}

/// POST /item/{id}/tag/{tag_id}: 201 with the tag.
pub async fn link_item_tag(
    _caller: Authenticated,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let item_id = path_id(&req, "id", item::not_found)?;
    let tag_id = path_id(&req, "tag_id", tag::not_found)?;
    let view = db::run(&state.pool, move |conn| {
        let linked = Tag::link(conn, item_id, tag_id)?;
        one(Tag::views(conn, vec![linked])?)
    })
    .await?;
    Ok(HttpResponse::Created().json(view))
}

/// DELETE /item/{id}/tag/{tag_id}: 200 with the item and the tag as they now are.
pub async fn unlink_item_tag(
    _caller: Authenticated,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let item_id = path_id(&req, "id", item::not_found)?;
    let tag_id = path_id(&req, "tag_id", tag::not_found)?;
    let (item, tag) = db::run(&state.pool, move |conn| {
        let (item, tag) = Tag::unlink(conn, item_id, tag_id)?;
        Ok((
            one(Item::views(conn, vec![item])?)?,
            one(Tag::views(conn, vec![tag])?)?,
        ))
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({
        "message": "Item removed from tag",
        "item": item,
        "tag": tag,
    })))
}
