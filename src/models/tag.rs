//! Tags, the item-tag link, and their queries.

use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::DbConnection;
use crate::models::group_by_key;
use crate::models::item::{Item, ItemSummary, SummaryColumns};
use crate::models::store::{Store, StoreRef};
use crate::models::{Entity, ModelError};
use crate::schema::{items, items_tags, stores, tags};

/// A stored tag.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = tags)]
pub struct Tag {
    /// Never reused.
    pub id: i64,
    /// Unique within its store, trimmed.
    pub name: String,
    /// Owning store.
    pub store_id: i64,
}

/// `{id, name}` of a tag, nested in stores and items.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TagRef {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
}

/// A tag as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TagView {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Its store.
    pub store: StoreRef,
    /// Items carrying it, by id.
    pub items: Vec<ItemSummary>,
}

/// A tag, its store's name, and one of the items carrying it (none for an unused tag).
type TagRow = (Tag, String, Option<SummaryColumns>);

impl Tag {
    /// Inserts a tag in a store; [`ModelError::NotFound`] without the store,
    /// [`ModelError::NameTaken`] for a name taken in it.
    pub fn create(conn: &mut DbConnection, store_id: i64, name: &str) -> Result<Tag, ModelError> {
        if !Store::exists(conn, store_id)? {
            return Err(ModelError::NotFound(Entity::Store, store_id));
        }
        let id = diesel::insert_into(tags::table)
            .values((tags::name.eq(name), tags::store_id.eq(store_id)))
            .returning(tags::id)
            .get_result(conn)
            .map_err(|e| match e {
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                ) => ModelError::NameTaken(Entity::Tag),
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::ForeignKeyViolation,
                    _,
                ) => ModelError::NotFound(Entity::Store, store_id),
                other => other.into(),
            })?;
        Ok(Tag {
            id,
            name: name.to_owned(),
            store_id,
        })
    }

    /// The tag with this id, or [`ModelError::NotFound`].
    pub fn get(conn: &mut DbConnection, id: i64) -> Result<Tag, ModelError> {
        tags::table
            .find(id)
            .select(Tag::as_select())
            .first(conn)
            .optional()?
            .ok_or_else(|| ModelError::NotFound(Entity::Tag, id))
    }

    /// Tags as the API shows them, in one query whatever the number of ids (GET
    /// /tag/{id}, batched): the tags joined to their stores and, row by row, to the items
    /// that carry them. Ids with no tag are left out.
    /// One id is compared with `=` (see [`crate::models`] on reads by id).
    pub fn views_by_id(conn: &mut DbConnection, ids: &[i64]) -> Result<Vec<TagView>, ModelError> {
        let query = tags::table
            .inner_join(stores::table)
            .left_join(items_tags::table.inner_join(items::table))
            .order((tags::id, items::id.nullable()))
            .select((
                Tag::as_select(),
                stores::name,
                (items::id, items::name, items::price_cents).nullable(),
            ));
        let rows: Vec<TagRow> = match ids {
            [id] => query.filter(tags::id.eq(id)).load(conn)?,
            _ => query.filter(tags::id.eq_any(ids)).load(conn)?,
        };
        let mut views: Vec<TagView> = Vec::with_capacity(ids.len());
        for (tag, store_name, item) in rows {
            let item = item.map(ItemSummary::from_columns);
            // Rows come by tag id, so a tag's rows are consecutive.
            match views.last_mut() {
                Some(view) if view.id == tag.id => view.items.extend(item),
                _ => views.push(TagView {
                    store: StoreRef {
                        id: tag.store_id,
                        name: store_name,
                    },
                    items: item.into_iter().collect(),
                    id: tag.id,
                    name: tag.name,
                }),
            }
        }
        Ok(views)
    }

    /// A page of a store's tags by id, and the total; [`ModelError::NotFound`] without the store.
    pub fn list_for_store(
        conn: &mut DbConnection,
        store_id: i64,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Tag>, i64), ModelError> {
        if !Store::exists(conn, store_id)? {
            return Err(ModelError::NotFound(Entity::Store, store_id));
        }
        let total = tags::table
            .filter(tags::store_id.eq(store_id))
            .count()
            .get_result(conn)?;
        let page = tags::table
            .filter(tags::store_id.eq(store_id))
            .order(tags::id)
            .limit(limit)
            .offset(offset)
            .select(Tag::as_select())
            .load(conn)?;
        Ok((page, total))
    }

    /// Deletes an unused tag: [`ModelError::NotFound`] without it, [`ModelError::TagInUse`]
    /// while items still carry it.
    pub fn delete(conn: &mut DbConnection, id: i64) -> Result<(), ModelError> {
        let unused = diesel::dsl::not(diesel::dsl::exists(
            items_tags::table.filter(items_tags::tag_id.eq(id)),
        ));
        let deleted = diesel::delete(tags::table.find(id).filter(unused))
            .execute(conn)
            .map_err(|e| match e {
                // An item was linked between the check and the delete.
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::ForeignKeyViolation,
                    _,
                ) => ModelError::TagInUse,
                other => other.into(),
            })?;
        if deleted == 1 {
            return Ok(());
        }
        Tag::get(conn, id)?;
        Err(ModelError::TagInUse)
    }

    /// Links an item and a tag of the same store (linking twice is harmless).
    pub fn link(conn: &mut DbConnection, item_id: i64, tag_id: i64) -> Result<Tag, ModelError> {
        let item = Item::get(conn, item_id)?;
        let tag = Tag::get(conn, tag_id)?;
        if item.store_id != tag.store_id {
            return Err(ModelError::DifferentStores);
        }
        let linked: bool = diesel::select(diesel::dsl::exists(
            items_tags::table.find((item_id, tag_id)),
        ))
        .get_result(conn)?;
        if !linked {
            let inserted = diesel::insert_into(items_tags::table)
                .values((
                    items_tags::item_id.eq(item_id),
                    items_tags::tag_id.eq(tag_id),
                ))
                .execute(conn);
            match inserted {
                // A concurrent request linked them first: the outcome is the same.
                Err(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                ))
                | Ok(_) => {}
                Err(other) => return Err(other.into()),
            }
        }
        Ok(tag)
    }

    /// Removes a link; [`ModelError::NotFound`] or [`ModelError::NotTagged`] when the
    /// item, the tag or the link is missing.
    pub fn unlink(
        conn: &mut DbConnection,
        item_id: i64,
        tag_id: i64,
    ) -> Result<(Item, Tag), ModelError> {
        let item = Item::get(conn, item_id)?;
        let tag = Tag::get(conn, tag_id)?;
        let removed = diesel::delete(items_tags::table.find((item_id, tag_id))).execute(conn)?;
        if removed == 0 {
            return Err(ModelError::NotTagged {
                item: item_id,
                tag: tag_id,
            });
        }
        Ok((item, tag))
    }

    /// `{id, name}`.
    pub fn as_ref(&self) -> TagRef {
        TagRef {
            id: self.id,
            name: self.name.clone(),
        }
    }

    /// Full views of `tags` in two more queries, whatever their number.
    pub fn views(conn: &mut DbConnection, tags: Vec<Tag>) -> Result<Vec<TagView>, ModelError> {
        let ids: Vec<i64> = tags.iter().map(|t| t.id).collect();
        let mut store_ids: Vec<i64> = tags.iter().map(|t| t.store_id).collect();
        store_ids.sort_unstable();
        store_ids.dedup();
        let stores: std::collections::HashMap<i64, StoreRef> = Store::by_ids(conn, &store_ids)?
            .into_iter()
            .map(|s| (s.id, s.as_ref()))
            .collect();
        let links: Vec<(i64, Item)> = items_tags::table
            .inner_join(items::table)
            .filter(items_tags::tag_id.eq_any(&ids))
            .order(items::id)
            .select((items_tags::tag_id, Item::as_select()))
            .load(conn)?;
        let mut items_by_tag = group_by_key(links, |(tag_id, _)| *tag_id);
        tags.into_iter()
            .map(|tag| {
                let store = stores.get(&tag.store_id).cloned().ok_or_else(|| {
                    ModelError::Inconsistent(format!("tag {} names a missing store", tag.id))
                })?;
                Ok(TagView {
                    items: items_by_tag
                        .remove(&tag.id)
                        .unwrap_or_default()
                        .iter()
                        .map(|(_, item)| item.summary())
                        .collect(),
                    store,
                    id: tag.id,
                    name: tag.name,
                })
            })
            .collect()
    }
}
