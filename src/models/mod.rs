//! Diesel structs and their queries. Models answer in the domain's words
//! ([`ModelError`]); the HTTP edge decides statuses, codes and field names.
//!
//! Reads by id (`views_by_id`, which batched reads call with every id of a round)
//! compare a single id with `=` and several with `= ANY`: PostgreSQL plans a prepared
//! statement anew at each execution while its estimate for the parameters beats the
//! generic plan's, which it always does for an array of one id against one of unknown
//! length, and planning a join costs more than running it. With `=` it keeps the
//! generic plan after five executions. A round at rest holds one id.

pub mod item;
pub mod store;
pub mod tag;
pub mod user;

use std::collections::HashMap;
use std::fmt;

/// The kinds of rows the API exposes by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    /// An account.
    User,
    /// A store.
    Store,
    /// An item of a store.
    Item,
    /// A tag of a store.
    Tag,
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Entity::User => "User",
            Entity::Store => "Store",
            Entity::Item => "Item",
            Entity::Tag => "Tag",
        })
    }
}

/// What a model refuses, or why it failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// No row with this id.
    #[error("{0} {1} not found")]
    NotFound(Entity, i64),
    /// The unique name is taken (a username; a store name; a tag name in its store).
    #[error("{0} name taken")]
    NameTaken(Entity),
    /// A new item's `store_id` names no store.
    #[error("no store {0} for the item")]
    NoSuchStore(i64),
    /// An item and a tag of different stores cannot be linked.
    #[error("the item and the tag belong to different stores")]
    DifferentStores,
    /// The item does not carry the tag.
    #[error("item {item} is not tagged with tag {tag}")]
    NotTagged {
        /// The item.
        item: i64,
        /// The tag.
        tag: i64,
    },
    /// A tag that items still carry cannot be deleted.
    #[error("the tag is still used by items")]
    TagInUse,
    /// Rows that contradict each other (a foreign key the schema should have kept).
    #[error("inconsistent rows: {0}")]
    Inconsistent(String),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

/// Whether `e` is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

/// Groups rows (already in the wanted order) by a key, keeping their order: how the
/// views attach children loaded in one query to their parents.
pub fn group_by_key<T>(rows: Vec<T>, key: impl Fn(&T) -> i64) -> HashMap<i64, Vec<T>> {
    let mut groups: HashMap<i64, Vec<T>> = HashMap::new();
    for row in rows {
        groups.entry(key(&row)).or_default().push(row);
    }
    groups
}
