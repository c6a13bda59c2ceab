//! Items.

use actix_web::{delete, get, post, put, web, HttpRequest, HttpResponse};
use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, Schema};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::auth::guards::{Admin, Authenticated, Fresh, MaybeAuthenticated};
use crate::db;
use crate::error::responses::{
    AdminRequired, BadRequestBody, FreshTokenRequired, InvalidPage, ItemNotFound,
    OptionalTokenInvalid, PayloadTooLarge, ServiceUnavailable, Unauthorized,
};
use crate::error::{ApiError, ErrorBody};
use crate::input::{
    self, parse_object, path_id, Fields, FromJsonBody, JsonObject, Name, Page, Price, ValidJson,
};
use crate::models::item::{Item, ItemName, ItemView};
use crate::models::store::Store;
use crate::models::Entity;
use crate::routes::stores::one;
use crate::routes::{not_found, with_total, Message};
use crate::state::AppState;

/// POST /item body.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    /// The name (stored trimmed).
    name: Name,
    /// The price.
    price: Price,
    /// The id of an existing store (another is a 422 on this field).
    #[schema(minimum = 1, example = 1)]
    store_id: i64,
}

impl NewItem {
    /// Reads the body; `store_exists` says whether its `store_id` (if an integer) names
    /// a store, so that one 422 lists that problem beside the others.
    pub fn read(f: &mut Fields, store_exists: bool) -> Option<Self> {
        let name = f.required("name", Name::parse);
        let price = f.required("price", Price::parse);
        let store_id = f.required("store_id", |v| {
            let id = input::id(v)?;
            if store_exists {
                Ok(id)
            } else {
                Err("No store with this id.".to_string())
            }
        });
        Some(NewItem {
            name: name?,
            price: price?,
            store_id: store_id?,
        })
    }
}

/// PUT /item/{id} body: the fields to change (none is allowed).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemChanges {
    /// A new name (stored trimmed).
    #[schema(nullable = false)]
    name: Option<Name>,
    /// A new price.
    #[schema(nullable = false)]
    price: Option<Price>,
}

impl FromJsonBody for ItemChanges {
    fn from_fields(f: &mut Fields) -> Option<Self> {
        let name = f.optional("name", Name::parse);
        let price = f.optional("price", Price::parse);
        Some(ItemChanges {
            name: name?,
            price: price?,
        })
    }
}

/// GET /item's body: full items with a token, `{id, name}` of each without one.
/// (`anyOf`, not `oneOf`: an empty page is both.)
pub struct ItemListing;

impl PartialSchema for ItemListing {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(ArrayBuilder::new().items(Ref::from_schema_name(ItemView::name())))
            .item(ArrayBuilder::new().items(Ref::from_schema_name(ItemName::name())))
            .description(Some(
                "Full items when a token is sent; only `{id, name}` of each without one.",
            ))
            .into()
    }
}

impl ToSchema for ItemListing {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((ItemView::name().into(), ItemView::schema()));
        ItemView::schemas(schemas);
        schemas.push((ItemName::name().into(), ItemName::schema()));
        ItemName::schemas(schemas);
    }
}

/// GET /item: full items with a token, only `{id, name}` without one.
#[utoipa::path(
    tag = "items",
    summary = "Every item",
    description = "Optional token: with a valid access token, full items; without one, only \
                   `{id, name}` of each. A token that is sent must be a valid access token. \
                   A page of items, ordered by id.",
    params(Page),
    responses(
        (status = 200, description = "A page of items.", body = ItemListing,
            headers(("X-Total-Count" = i64, description = "The number of rows in all pages."))),
        (status = 401, response = OptionalTokenInvalid),
        (status = 422, response = InvalidPage),
        (status = 503, response = ServiceUnavailable),
    ),
    security((), ("bearer" = []))
)]
#[get("/item")]
pub async fn list_items(
    caller: MaybeAuthenticated,
    page: Page,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let full = caller.0.is_some();
    let (body, total) = db::run(&state.pool, move |conn| {
        let (page, total) = Item::list(conn, page.limit, page.offset)?;
        let body = if full {
            serde_json::to_value(Item::views(conn, page)?)
        } else {
            serde_json::to_value(page.into_iter().map(Item::name_only).collect::<Vec<_>>())
        }
        .map_err(|e| ApiError::Internal(format!("serializing items: {e}")))?;
        Ok::<_, ApiError>((body, total))
    })
    .await?;
    Ok(with_total(total).json(body))
}

/// GET /item/{id}
#[utoipa::path(
    tag = "items",
    summary = "An item",
    description = "Requires an access token. The item with its store and tags.",
    params(
        ("id" = i64, Path, minimum = 1, description = "The item id."),
    ),
    responses(
        (status = 200, description = "The item.", body = ItemView),
        (status = 401, response = Unauthorized),
        (status = 404, response = ItemNotFound),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[get("/item/{id}")]
pub async fn get_item(
    _caller: Authenticated,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&req, "id", not_found(Entity::Item))?;
    let view = state.reads.items.get(&state.pool, id).await?;
    Ok(HttpResponse::Ok().json(view.ok_or_else(|| not_found(Entity::Item)(id))?))
}

/// POST /item (fresh)
#[utoipa::path(
    tag = "items",
    summary = "Create an item",
    description = "Requires a **fresh** access token. The item belongs to the store \
                   `store_id` names.",
    request_body = NewItem,
    responses(
        (status = 201, description = "The new item.", body = ItemView),
        (status = 400, response = BadRequestBody),
        (status = 401, response = FreshTokenRequired),
        (status = 413, response = PayloadTooLarge),
        (status = 422, description = "`validation_error`: a field is missing, invalid or \
            unknown, or `store_id` names no store; \
            `errors.json` lists every problem.", body = ErrorBody),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[post("/item")]
pub async fn create_item(
    _caller: Fresh,
    state: web::Data<AppState>,
    body: JsonObject,
) -> Result<HttpResponse, ApiError> {
    let candidate = body.0.get("store_id").and_then(|v| input::id(v).ok());
    let store_exists = match candidate {
        Some(id) => db::run(&state.pool, move |conn| Store::exists(conn, id)).await?,
        None => true,
    };
    let NewItem {
        name,
        price,
        store_id,
    } = parse_object(body.0, |f| NewItem::read(f, store_exists))?;
    let view = db::transaction(&state.pool, move |conn| {
        let created = Item::create(conn, name.as_str(), price, store_id)?;
        one(Item::views(conn, vec![created])?)
    })
    .await?;
    Ok(HttpResponse::Created().json(view))
}

/// PUT /item/{id}: changes name and/or price (404 if absent).
#[utoipa::path(
    tag = "items",
    summary = "Change an item",
    description = "Requires an access token. Changes the fields sent (`name`, `price`); an \
                   empty object changes nothing.",
    params(
        ("id" = i64, Path, minimum = 1, description = "The item id."),
    ),
    request_body = ItemChanges,
    responses(
        (status = 200, description = "The item as it now is.", body = ItemView),
        (status = 400, response = BadRequestBody),
        (status = 401, response = Unauthorized),
        (status = 404, response = ItemNotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 422, description = "`validation_error`: a field is invalid, null or unknown; \
            `errors.json` lists every problem.", body = ErrorBody),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[put("/item/{id}")]
pub async fn update_item(
    _caller: Authenticated,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: ValidJson<ItemChanges>,
) -> Result<HttpResponse, ApiError> {
    let ItemChanges { name, price } = body.0;
    let id = path_id(&req, "id", not_found(Entity::Item))?;
    let view = db::transaction(&state.pool, move |conn| {
        let updated = Item::update(conn, id, name.as_ref().map(Name::as_str), price)?;
        one(Item::views(conn, vec![updated])?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// DELETE /item/{id} (admin)
#[utoipa::path(
    tag = "items",
    summary = "Delete an item",
    description = "Requires an **admin** access token. Its tag links go with it.",
    params(
        ("id" = i64, Path, minimum = 1, description = "The item id."),
    ),
    responses(
        (status = 200, description = "Deleted.", body = Message,
            example = json!({"message": "Item deleted."})),
        (status = 401, response = Unauthorized),
        (status = 403, response = AdminRequired),
        (status = 404, response = ItemNotFound),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[delete("/item/{id}")]
pub async fn delete_item(
    _admin: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&req, "id", not_found(Entity::Item))?;
    db::run(&state.pool, move |conn| Item::delete(conn, id)).await?;
    Ok(HttpResponse::Ok().json(Message::new("Item deleted.")))
}
