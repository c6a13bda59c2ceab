//! Items.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::auth::guards::{Admin, Authenticated, Fresh, MaybeAuthenticated};
use crate::db;
use crate::error::ApiError;
use crate::input::{
    self, parse_object, path_id, Fields, FromJsonBody, JsonObject, Name, Page, Price, ValidJson,
};
use crate::models::item::{self, Item};
use crate::models::store::Store;
use crate::routes::stores::one;
use crate::routes::with_total;
use crate::startup::AppState;

/// POST /item body.
pub struct NewItem {
    name: Name,
    price: Price,
    store_id: i64,
}

impl NewItem {
    /// Reads the body; `store_exists` says whether its `store_id` (if an integer) names
    /// a store, so that one 422 lists that problem beside the others.
    fn read(f: &mut Fields, store_exists: bool) -> Option<Self> {
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

/// PUT /item/{id} body: the fields to change.
pub struct ItemChanges {
    name: Option<Name>,
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

/// GET /item: full items with a token, only `{id, name}` without one.
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
        Ok((body, total))
    })
    .await?;
    Ok(with_total(total).json(body))
}

/// GET /item/{id}
pub async fn get_item(
    _caller: Authenticated,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&req, "id", item::not_found)?;
    let view = db::run(&state.pool, move |conn| {
        let found = Item::get(conn, id)?;
        one(Item::views(conn, vec![found])?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// POST /item (fresh)
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
    let view = db::run(&state.pool, move |conn| {
        let created = Item::create(conn, name.as_str(), price, store_id)?;
        one(Item::views(conn, vec![created])?)
    })
    .await?;
    Ok(HttpResponse::Created().json(view))
}

/// PUT /item/{id}: changes name and/or price (404 if absent).
pub async fn update_item(
    _caller: Authenticated,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: ValidJson<ItemChanges>,
) -> Result<HttpResponse, ApiError> {
    let ItemChanges { name, price } = body.0;
    let id = path_id(&req, "id", item::not_found)?;
    let view = db::run(&state.pool, move |conn| {
        let updated = Item::update(conn, id, name.as_ref().map(Name::as_str), price)?;
        one(Item::views(conn, vec![updated])?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// DELETE /item/{id} (admin)
pub async fn delete_item(
    _admin: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&req, "id", item::not_found)?;
    db::run(&state.pool, move |conn| Item::delete(conn, id)).await?;
    Ok(HttpResponse::Ok().json(json!({"message": "Item deleted."})))
}
