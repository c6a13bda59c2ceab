//! Stores and their queries.

use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::DbConnection;
use crate::models::group_by_key;
use crate::models::item::{Item, ItemSummary, SummaryColumns};
use crate::models::tag::{Tag, TagRef};
use crate::models::{is_unique_violation, Entity, ModelError};
use crate::schema::{items, stores, tags};

/// A stored store.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = stores)]
pub struct Store {
    /// Never reused.
    pub id: i64,
    /// Unique, trimmed.
    pub name: String,
}

/// `{id, name}` of a store, nested in items and tags.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StoreRef {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
}

/// A store as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StoreView {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Its items, by id.
    pub items: Vec<ItemSummary>,
    /// Its tags, by id.
    pub tags: Vec<TagRef>,
}

/// A store and one of its items (none for a store without items).
type StoreRow = (Store, Option<SummaryColumns>);

impl Store {
    /// Inserts a store; a taken name is [`ModelError::NameTaken`].
    pub fn create(conn: &mut DbConnection, name: &str) -> Result<Store, ModelError> {
        let id = diesel::insert_into(stores::table)
            .values(stores::name.eq(name))
            .returning(stores::id)
            .get_result(conn)
            .map_err(|e| {
                if is_unique_violation(&e) {
                    ModelError::NameTaken(Entity::Store)
                } else {
                    e.into()
                }
            })?;
        Ok(Store {
            id,
            name: name.to_owned(),
        })
    }

    /// The store with this id, or [`ModelError::NotFound`].
    pub fn get(conn: &mut DbConnection, id: i64) -> Result<Store, ModelError> {
        stores::table
            .find(id)
            .select(Store::as_select())
            .first(conn)
            .optional()?
            .ok_or_else(|| ModelError::NotFound(Entity::Store, id))
    }

    /// Stores as the API shows them, in two queries whatever the number of ids (GET
    /// /store/{id}, batched): the stores joined to their items, then the tags of all of
    /// them. Ids with no store are left out. One id is compared with `=` (see
    /// [`crate::models`] on reads by id).
    pub fn views_by_id(conn: &mut DbConnection, ids: &[i64]) -> Result<Vec<StoreView>, ModelError> {
        let query = stores::table
            .left_join(items::table)
            .order((stores::id, items::id.nullable()))
            .select((
                Store::as_select(),
                (items::id, items::name, items::price_cents).nullable(),
            ));
        let rows: Vec<StoreRow> = match ids {
            [id] => query.filter(stores::id.eq(id)).load(conn)?,
            _ => query.filter(stores::id.eq_any(ids)).load(conn)?,
        };
        let mut views: Vec<StoreView> = Vec::with_capacity(ids.len());
        for (store, item) in rows {
            let item = item.map(ItemSummary::from_columns);
            // Rows come by store id, so a store's rows are consecutive.
            match views.last_mut() {
                Some(view) if view.id == store.id => view.items.extend(item),
                _ => views.push(StoreView {
                    items: item.into_iter().collect(),
                    tags: Vec::new(),
                    id: store.id,
                    name: store.name,
                }),
            }
        }
        let found: Vec<i64> = views.iter().map(|v| v.id).collect();
        let query = tags::table.order(tags::id).select(Tag::as_select());
        let store_tags: Vec<Tag> = match found.as_slice() {
            [] => Vec::new(),
            [id] => query.filter(tags::store_id.eq(id)).load(conn)?,
            found => query.filter(tags::store_id.eq_any(found)).load(conn)?,
        };
        let mut tags_by_store = group_by_key(store_tags, |t| t.store_id);
        for view in &mut views {
            view.tags = tags_by_store
                .remove(&view.id)
                .unwrap_or_default()
                .iter()
                .map(Tag::as_ref)
                .collect();
        }
        Ok(views)
    }

    /// Whether a store with this id exists.
    pub fn exists(conn: &mut DbConnection, id: i64) -> Result<bool, ModelError> {
        Ok(diesel::select(diesel::dsl::exists(stores::table.find(id))).get_result(conn)?)
    }

    /// The stores with these ids.
    pub fn by_ids(conn: &mut DbConnection, ids: &[i64]) -> Result<Vec<Store>, ModelError> {
        Ok(stores::table
            .filter(stores::id.eq_any(ids))
            .select(Store::as_select())
            .load(conn)?)
    }

    /// A page of stores by id, and the total.
    pub fn list(
        conn: &mut DbConnection,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Store>, i64), ModelError> {
        let total = stores::table.count().get_result(conn)?;
        let page = stores::table
            .order(stores::id)
            .limit(limit)
            .offset(offset)
            .select(Store::as_select())
            .load(conn)?;
        Ok((page, total))
    }

    /// Deletes the store, its items and its tags; [`ModelError::NotFound`] if there was none.
    pub fn delete(conn: &mut DbConnection, id: i64) -> Result<(), ModelError> {
        match diesel::delete(stores::table.find(id)).execute(conn)? {
            0 => Err(ModelError::NotFound(Entity::Store, id)),
            _ => Ok(()),
        }
    }

    /// `{id, name}`.
    pub fn as_ref(&self) -> StoreRef {
        StoreRef {
            id: self.id,
            name: self.name.clone(),
        }
    }

    /// Full views of `stores` in two more queries, whatever their number.
    pub fn views(
        conn: &mut DbConnection,
        stores: Vec<Store>,
    ) -> Result<Vec<StoreView>, ModelError> {
        let ids: Vec<i64> = stores.iter().map(|s| s.id).collect();
        let store_items: Vec<Item> = items::table
            .filter(items::store_id.eq_any(&ids))
            .order(items::id)
            .select(Item::as_select())
            .load(conn)?;
        let store_tags: Vec<Tag> = tags::table
            .filter(tags::store_id.eq_any(&ids))
            .order(tags::id)
            .select(Tag::as_select())
            .load(conn)?;
        let mut items_by_store = group_by_key(store_items, |i| i.store_id);
        let mut tags_by_store = group_by_key(store_tags, |t| t.store_id);
        Ok(stores
            .into_iter()
            .map(|store| StoreView {
                items: items_by_store
                    .remove(&store.id)
                    .unwrap_or_default()
                    .iter()
                    .map(Item::summary)
                    .collect(),
                tags: tags_by_store
                    .remove(&store.id)
                    .unwrap_or_default()
                    .iter()
                    .map(Tag::as_ref)
                    .collect(),
                id: store.id,
                name: store.name,
            })
            .collect())
    }
}
