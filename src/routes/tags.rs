//! Tags of a store, and tagging items.

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::guards::{Admin, Authenticated};
use crate::db;
use crate::error::responses::{
    AdminRequired, BadRequestBody, InvalidNameBody, InvalidPage, PayloadTooLarge,
    ServiceUnavailable, StoreNotFound, TagNotFound, Unauthorized,
};
use crate::error::{ApiError, ErrorBody};
use crate::input::{path_id, Page, ValidJson};
use crate::models::item::{Item, ItemView};
use crate::models::tag::{Tag, TagView};
use crate::models::{Entity, ModelError};
use crate::routes::stores::{one, NameBody};
use crate::routes::{not_found, with_total, Message};
use crate::state::AppState;

/// GET /store/{id}/tag
#[utoipa::path(
    tag = "tags",
    summary = "A store's tags",
    description = "Requires an access token. A page of the store's tags, ordered by id, \
                   each with its store and items.",
    params(
        ("id" = i64, Path, minimum = 1, description = "The store id."),
        Page,
    ),
    responses(
        (status = 200, description = "A page of tags.", body = Vec<TagView>,
            headers(("X-Total-Count" = i64, description = "The number of rows in all pages."))),
        (status = 401, response = Unauthorized),
        (status = 404, response = StoreNotFound),
        (status = 422, response = InvalidPage),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[get("/store/{id}/tag")]
pub async fn list_store_tags(
    _caller: Authenticated,
    page: Page,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let store_id = path_id(&req, "id", not_found(Entity::Store))?;
    let (views, total) = db::run(&state.pool, move |conn| {
        let (page, total) = Tag::list_for_store(conn, store_id, page.limit, page.offset)?;
        Ok::<_, ModelError>((Tag::views(conn, page)?, total))
    })
    .await?;
    Ok(with_total(total).json(views))
}

/// POST /store/{id}/tag
#[utoipa::path(
    tag = "tags",
    summary = "Create a tag in a store",
    description = "Requires an access token. Tag names are unique within their store.",
    params(
        ("id" = i64, Path, minimum = 1, description = "The store id."),
    ),
    request_body = NameBody,
    responses(
        (status = 201, description = "The new tag.", body = TagView),
        (status = 400, response = BadRequestBody),
        (status = 401, response = Unauthorized),
        (status = 404, response = StoreNotFound),
        (status = 409, description = "`conflict`: a tag with that name already exists in \
            this store.", body = ErrorBody),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = InvalidNameBody),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[post("/store/{id}/tag")]
pub async fn create_tag(
    _caller: Authenticated,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: ValidJson<NameBody>,
) -> Result<HttpResponse, ApiError> {
    let name = body.0.name;
    let store_id = path_id(&req, "id", not_found(Entity::Store))?;
    let view = db::transaction(&state.pool, move |conn| {
        let created = Tag::create(conn, store_id, name.as_str())?;
        one(Tag::views(conn, vec![created])?)
    })
    .await?;
    Ok(HttpResponse::Created().json(view))
}

/// GET /tag/{id}
#[utoipa::path(
    tag = "tags",
    summary = "A tag",
    description = "Requires an access token. The tag with its store and items.",
    params(
        ("id" = i64, Path, minimum = 1, description = "The tag id."),
    ),
    responses(
        (status = 200, description = "The tag.", body = TagView),
        (status = 401, response = Unauthorized),
        (status = 404, response = TagNotFound),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[get("/tag/{id}")]
pub async fn get_tag(
    _caller: Authenticated,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&req, "id", not_found(Entity::Tag))?;
    let view = state.reads.tags.get(&state.pool, id).await?;
    Ok(HttpResponse::Ok().json(view.ok_or_else(|| not_found(Entity::Tag)(id))?))
}

/// DELETE /tag/{id} (admin): 202; a 400 while items still carry it.
#[utoipa::path(
    tag = "tags",
    summary = "Delete a tag",
    description = "Requires an **admin** access token. Only a tag no item carries can be \
                   deleted: remove it from its items first.",
    params(
        ("id" = i64, Path, minimum = 1, description = "The tag id."),
    ),
    responses(
        (status = 202, description = "Deleted.", body = Message,
            example = json!({"message": "Tag deleted."})),
        (status = 400, description = "`bad_request`: items still carry the tag.",
            body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = AdminRequired),
        (status = 404, response = TagNotFound),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[delete("/tag/{id}")]
pub async fn delete_tag(
    _admin: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&req, "id", not_found(Entity::Tag))?;
    db::run(&state.pool, move |conn| Tag::delete(conn, id)).await?;
    Ok(HttpResponse::Accepted().json(Message::new("Tag deleted.")))
}

/// POST /item/{id}/tag/{tag_id}: 201 with the tag.
#[utoipa::path(
    tag = "tags",
    summary = "Tag an item",
    description = "Requires an access token. The item and the tag must belong to the same \
                   store. Tagging twice is harmless. No body.",
    params(
        ("id" = i64, Path, minimum = 1, description = "The item id."),
        ("tag_id" = i64, Path, minimum = 1, description = "The tag id."),
    ),
    responses(
        (status = 201, description = "The tag, with the item now among its items.",
            body = TagView),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no item or no tag with this id.",
            body = ErrorBody),
        (status = 422, description = "`validation_error`: the item and the tag belong to \
            different stores (under `errors.path.tag_id`).", body = ErrorBody),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[post("/item/{id}/tag/{tag_id}")]
pub async fn link_item_tag(
    _caller: Authenticated,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let item_id = path_id(&req, "id", not_found(Entity::Item))?;
    let tag_id = path_id(&req, "tag_id", not_found(Entity::Tag))?;
    let view = db::transaction(&state.pool, move |conn| {
        let linked = Tag::link(conn, item_id, tag_id)?;
        one(Tag::views(conn, vec![linked])?)
    })
    .await?;
    Ok(HttpResponse::Created().json(view))
}

/// DELETE /item/{id}/tag/{tag_id}: 200 with the item and the tag as they now are.
#[utoipa::path(
    tag = "tags",
    summary = "Untag an item",
    description = "Requires an access token. Removes the tag from the item.",
    params(
        ("id" = i64, Path, minimum = 1, description = "The item id."),
        ("tag_id" = i64, Path, minimum = 1, description = "The tag id."),
    ),
    responses(
        (status = 200, description = "Removed; the item and the tag as they now are.",
            body = Unlinked),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no item or no tag with this id, or the \
            item does not carry the tag.", body = ErrorBody),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[delete("/item/{id}/tag/{tag_id}")]
pub async fn unlink_item_tag(
    _caller: Authenticated,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let item_id = path_id(&req, "id", not_found(Entity::Item))?;
    let tag_id = path_id(&req, "tag_id", not_found(Entity::Tag))?;
    let (item, tag) = db::transaction(&state.pool, move |conn| {
        let (item, tag) = Tag::unlink(conn, item_id, tag_id)?;
        Ok((
            one(Item::views(conn, vec![item])?)?,
            one(Tag::views(conn, vec![tag])?)?,
        ))
    })
    .await?;
    Ok(HttpResponse::Ok().json(Unlinked {
        message: "Item removed from tag".into(),
        item,
        tag,
    }))
}

/// DELETE /item/{id}/tag/{tag_id}'s answer.
#[derive(Serialize, ToSchema)]
pub struct Unlinked {
    /// `Item removed from tag`.
    #[schema(example = "Item removed from tag")]
    message: String,
    /// The item, without the tag.
    item: ItemView,
    /// The tag, without the item.
    tag: TagView,
}
