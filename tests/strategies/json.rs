//! proptest strategies for JSON bodies, shared by tests/props.rs and tests/api/props.rs.

use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// Any JSON value, a few levels deep; object keys are mostly the body fields the
/// parsers know, so that they see known fields with values of every type.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        (0i64..100_000_000_000, 0u32..4).prop_map(|(n, d)| json!(n as f64 / 10f64.powi(d as i32))),
        ".{0,90}".prop_map(Value::from),
        "[ a-z0-9-]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The fields of the request bodies.
pub const BODY_FIELDS: &[&str] = &[
    "username",
    "password",
    "current_password",
    "new_password",
    "name",
    "price",
    "store_id",
    "is_admin",
];

/// An object key: mostly one of `known`, sometimes anything.
pub fn key_from(known: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(known).prop_map(str::to_owned),
        1 => ".{0,12}",
    ]
}

/// An object key: a body field name or anything.
pub fn key() -> impl Strategy<Value = String> {
    key_from(BODY_FIELDS)
}

/// A JSON object whose fields are drawn from [`key`] and [`json_value`].
pub fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(key(), json_value(), 0..6).prop_map(|m| m.into_iter().collect())
}
