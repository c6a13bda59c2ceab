//! Items and their queries.

use std::collections::HashMap;

use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::DbConnection;
use crate::input::Price;
use crate::models::group_by_key;
use crate::models::store::{Store, StoreRef};
use crate::models::tag::{Tag, TagRef};
use crate::models::{Entity, ModelError};
use crate::schema::{items, items_tags, stores, tags};

/// A stored item.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = items)]
pub struct Item {
    /// Never reused.
    pub id: i64,
    /// Trimmed.
    pub name: String,
    /// Exact price.
    pub price_cents: i64,
    /// Owning store.
    pub store_id: i64,
}

/// `{id, name, price}` of an item, nested in stores and tags.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ItemSummary {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Price, a JSON number with at most 2 decimals.
    #[schema(value_type = f64, minimum = 0, example = 10.99)]
    pub price: Price,
}

/// An item's id, name and price in cents: the columns of an [`ItemSummary`].
pub type SummaryColumns = (i64, String, i64);

impl ItemSummary {
    /// The summary of an item read as [`SummaryColumns`].
    pub fn from_columns((id, name, price_cents): SummaryColumns) -> Self {
        ItemSummary {
            id,
            name,
            price: Price::from_cents(price_cents),
        }
    }
}

/// `{id, name}`: what GET /item shows without a token.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ItemName {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
}

/// An item as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ItemView {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Price, a JSON number with at most 2 decimals.
    #[schema(value_type = f64, minimum = 0, example = 10.99)]
    pub price: Price,
    /// Its store.
    pub store: StoreRef,
    /// Its tags, by id.
    pub tags: Vec<TagRef>,
}

/// An item, its store's name, and one of its tags (none for an item without tags).
type ItemRow = (Item, String, Option<(i64, String)>);

impl Item {
    /// Inserts an item; a `store_id` naming no store is [`ModelError::NoSuchStore`].
    pub fn create(
        conn: &mut DbConnection,
        name: &str,
        price: Price,
        store_id: i64,
    ) -> Result<Item, ModelError> {
        if !Store::exists(conn, store_id)? {
            return Err(ModelError::NoSuchStore(store_id));
        }
        let id = diesel::insert_into(items::table)
            .values((
                items::name.eq(name),
                items::price_cents.eq(price.cents()),
                items::store_id.eq(store_id),
            ))
            .returning(items::id)
            .get_result(conn)
            .map_err(|e| match e {
                // The store went away between the check and the insert.
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::ForeignKeyViolation,
                    _,
                ) => ModelError::NoSuchStore(store_id),
                other => other.into(),
            })?;
        Ok(Item {
            id,
            name: name.to_owned(),
            price_cents: price.cents(),
            store_id,
        })
    }

    /// The item with this id, or [`ModelError::NotFound`].
    pub fn get(conn: &mut DbConnection, id: i64) -> Result<Item, ModelError> {
        items::table
            .find(id)
            .select(Item::as_select())
            .first(conn)
            .optional()?
            .ok_or_else(|| ModelError::NotFound(Entity::Item, id))
    }

    /// Items as the API shows them, in one query whatever the number of ids (the hot
    /// read, GET /item/{id}, through [`crate::db::BatchedReads`]): the items joined to their
    /// stores and, row by row, to their tags. Ids with no item are left out.
    /// One id is compared with `=` (see [`crate::models`] on reads by id).
    pub fn views_by_id(conn: &mut DbConnection, ids: &[i64]) -> Result<Vec<ItemView>, ModelError> {
        let query = items::table
            .inner_join(stores::table)
            .left_join(items_tags::table.inner_join(tags::table))
            .order((items::id, tags::id.nullable()))
            .select((
                Item::as_select(),
                stores::name,
                (tags::id, tags::name).nullable(),
            ));
        let rows: Vec<ItemRow> = match ids {
            [id] => query.filter(items::id.eq(id)).load(conn)?,
            _ => query.filter(items::id.eq_any(ids)).load(conn)?,
        };
        let mut views: Vec<ItemView> = Vec::with_capacity(ids.len());
        for (item, store_name, tag) in rows {
            let tag = tag.map(|(id, name)| TagRef { id, name });
            // Rows come by item id, so an item's rows are consecutive.
            match views.last_mut() {
                Some(view) if view.id == item.id => view.tags.extend(tag),
                _ => views.push(ItemView {
                    store: StoreRef {
                        id: item.store_id,
                        name: store_name,
                    },
                    tags: tag.into_iter().collect(),
                    price: Price::from_cents(item.price_cents),
                    id: item.id,
                    name: item.name,
                }),
            }
        }
        Ok(views)
    }

    /// A page of items by id, and the total.
    pub fn list(
        conn: &mut DbConnection,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Item>, i64), ModelError> {
        let total = items::table.count().get_result(conn)?;
        let page = items::table
            .order(items::id)
            .limit(limit)
            .offset(offset)
            .select(Item::as_select())
            .load(conn)?;
        Ok((page, total))
    }

    /// Changes the name and/or price; [`ModelError::NotFound`] if there is no such item.
    pub fn update(
        conn: &mut DbConnection,
        id: i64,
        name: Option<&str>,
        price: Option<Price>,
    ) -> Result<Item, ModelError> {
        let mut item = Item::get(conn, id)?;
        if let Some(name) = name {
            item.name = name.to_owned();
        }
        if let Some(price) = price {
            item.price_cents = price.cents();
        }
        let changed = diesel::update(items::table.find(id))
            .set((
                items::name.eq(&item.name),
                items::price_cents.eq(item.price_cents),
            ))
            .execute(conn)?;
        if changed == 0 {
            return Err(ModelError::NotFound(Entity::Item, id));
        }
        Ok(item)
    }

    /// Deletes the item (and its tag links); [`ModelError::NotFound`] if there was none.
    pub fn delete(conn: &mut DbConnection, id: i64) -> Result<(), ModelError> {
        match diesel::delete(items::table.find(id)).execute(conn)? {
            0 => Err(ModelError::NotFound(Entity::Item, id)),
            _ => Ok(()),
        }
    }

    /// `{id, name, price}`.
    pub fn summary(&self) -> ItemSummary {
        ItemSummary {
            id: self.id,
            name: self.name.clone(),
            price: Price::from_cents(self.price_cents),
        }
    }

    /// `{id, name}`.
    pub fn name_only(self) -> ItemName {
        ItemName {
            id: self.id,
            name: self.name,
        }
    }

    /// Full views of `items` in two more queries, whatever their number.
    pub fn views(conn: &mut DbConnection, items: Vec<Item>) -> Result<Vec<ItemView>, ModelError> {
        let ids: Vec<i64> = items.iter().map(|i| i.id).collect();
        let mut store_ids: Vec<i64> = items.iter().map(|i| i.store_id).collect();
        store_ids.sort_unstable();
        store_ids.dedup();
        let stores: HashMap<i64, StoreRef> = Store::by_ids(conn, &store_ids)?
            .into_iter()
            .map(|s| (s.id, s.as_ref()))
            .collect();
        let links: Vec<(i64, Tag)> = items_tags::table
            .inner_join(tags::table)
            .filter(items_tags::item_id.eq_any(&ids))
            .order(tags::id)
            .select((items_tags::item_id, Tag::as_select()))
            .load(conn)?;
        let mut tags_by_item = group_by_key(links, |(item_id, _)| *item_id);
        items
            .into_iter()
            .map(|item| {
                let store = stores.get(&item.store_id).cloned().ok_or_else(|| {
                    ModelError::Inconsistent(format!("item {} names a missing store", item.id))
                })?;
                Ok(ItemView {
                    tags: tags_by_item
                        .remove(&item.id)
                        .unwrap_or_default()
                        .iter()
                        .map(|(_, tag)| tag.as_ref())
                        .collect(),
                    store,
                    price: Price::from_cents(item.price_cents),
                    id: item.id,
                    name: item.name,
                })
            })
            .collect()
    }
}
