//! Diesel structs and their queries.

pub mod item;
pub mod store;
pub mod tag;
pub mod user;

use std::collections::HashMap;

/// Groups rows (already in the wanted order) by a key, keeping their order: how the
/// views attach children loaded in one query to their parents.
pub fn group_by_key<T>(rows: Vec<T>, key: impl Fn(&T) -> i64) -> HashMap<i64, Vec<T>> {
    let mut groups: HashMap<i64, Vec<T>> = HashMap::new();
    for row in rows {
        groups.entry(key(&row)).or_default().push(row);
    }
    groups
}
