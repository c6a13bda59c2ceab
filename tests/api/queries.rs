//! No query per row: building the views of a list costs the same number of queries
//! for 3 rows as for 30 (diesel's instrumentation counts them).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use diesel::connection::{Connection, InstrumentationEvent};
use stores_api::config::Settings;
use stores_api::db::{self, DbConnection};
use stores_api::input::Price;
use stores_api::models::item::Item;
use stores_api::models::store::Store;
use stores_api::models::tag::Tag;

use crate::helpers::{fresh_postgres_database, on_postgres, TEST_KEY};

fn connection(dir: &tempfile::TempDir) -> r2d2::PooledConnection<db::ConnectionManager> {
    let url = match std::env::var("TEST_DATABASE_URL") {
        Ok(server) if on_postgres() => fresh_postgres_database(&server),
        _ => dir.path().join("queries.db").display().to_string(),
    };
    let env: HashMap<String, String> = [
        ("APP_ENV", "test"),
        ("JWT_SECRET_KEY", TEST_KEY),
        ("DATABASE_URL", url.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let settings = Settings::load_from(env).expect("settings");
    db::migrate(&settings).expect("migrations");
    db::pool(&settings).get().expect("connection")
}

/// Runs `f` and returns how many queries it sent.
fn count_queries<T>(conn: &mut DbConnection, f: impl FnOnce(&mut DbConnection) -> T) -> usize {
    let counter = Arc::new(AtomicUsize::new(0));
    let seen = counter.clone();
    conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::StartQuery { .. } = event {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    f(conn);
    conn.set_instrumentation(|_: InstrumentationEvent<'_>| {});
    counter.load(Ordering::SeqCst)
}

#[test]
fn views_cost_a_fixed_number_of_queries_whatever_the_list_length() {
    let dir = tempfile::tempdir().expect("dir");
    let mut conn = connection(&dir);
    let conn = &mut *conn;
    let mut stores = Vec::new();
    let mut all_items = Vec::new();
    let mut all_tags = Vec::new();
    for s in 0..3 {
        let store = Store::create(conn, &format!("store {s}")).expect("store");
        for t in 0..3 {
            all_tags.push(Tag::create(conn, store.id, &format!("tag {t}")).expect("tag"));
        }
        for i in 0..10 {
            let item = Item::create(
                conn,
                &format!("item {i}"),
                Price::from_cents(i * 100),
                store.id,
            )
            .expect("item");
            for tag in all_tags.iter().filter(|t| t.store_id == store.id) {
                Tag::link(conn, item.id, tag.id).expect("link");
            }
            all_items.push(item);
        }
        stores.push(store);
    }

    let few_items = count_queries(conn, |c| {
        Item::views(c, all_items[..3].to_vec()).expect("views")
    });
    let many_items = count_queries(conn, |c| Item::views(c, all_items.clone()).expect("views"));
    assert_eq!(few_items, many_items, "item views must not query per row");
    assert!(
        (1..=2).contains(&many_items),
        "{many_items} queries for item views"
    );

    let few_tags = count_queries(conn, |c| {
        Tag::views(c, all_tags[..1].to_vec()).expect("views")
    });
    let many_tags = count_queries(conn, |c| Tag::views(c, all_tags.clone()).expect("views"));
    assert_eq!(few_tags, many_tags, "tag views must not query per row");

    let views = Store::views(conn, stores.clone()).expect("views");
    let few_stores = count_queries(conn, |c| {
        Store::views(c, stores[..1].to_vec()).expect("views")
    });
    let many_stores = count_queries(conn, |c| Store::views(c, stores.clone()).expect("views"));
    assert_eq!(
        few_stores, many_stores,
        "store views must not query per row"
    );
    // And the batched views are complete.
    assert_eq!(views.len(), 3);
    assert!(views
        .iter()
        .all(|s| s.items.len() == 10 && s.tags.len() == 3));
    let items = Item::views(conn, all_items).expect("views");
    assert!(items.iter().all(|i| i.tags.len() == 3));
}

#[test]
fn one_item_is_read_in_one_query_and_matches_its_batched_view() {
    let dir = tempfile::tempdir().expect("dir");
    let mut conn = connection(&dir);
    let conn = &mut *conn;
    let store = Store::create(conn, "Corner").expect("store");
    let item = Item::create(conn, "Lamp", Price::from_cents(1999), store.id).expect("item");
    let bare = Item::create(conn, "Bare", Price::from_cents(5), store.id).expect("item");
    // Linked out of id order: the view lists tags by id.
    let tags: Vec<Tag> = ["b", "a", "c"]
        .iter()
        .map(|name| Tag::create(conn, store.id, name).expect("tag"))
        .collect();
    for tag in tags.iter().rev() {
        Tag::link(conn, item.id, tag.id).expect("link");
    }

    let mut view = None;
    let queries = count_queries(conn, |c| view = Some(Item::view(c, item.id)));
    assert_eq!(queries, 1, "GET /item/{{id}} is one query");
    let view = serde_json::to_value(view.expect("ran").expect("view")).expect("json");
    let batched = Item::views(conn, vec![item.clone()]).expect("views");
    assert_eq!(view, serde_json::to_value(&batched[0]).expect("json"));
    let ids: Vec<i64> = view["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(|t| t["id"].as_i64())
        .collect();
    assert_eq!(ids, tags.iter().map(|t| t.id).collect::<Vec<_>>());

    let bare_view = serde_json::to_value(Item::view(conn, bare.id).expect("view")).expect("json");
    assert_eq!(bare_view["tags"], serde_json::json!([]), "{bare_view}");
    assert_eq!(bare_view["store"]["name"], "Corner");
    assert!(matches!(
        Item::view(conn, bare.id + 100),
        Err(stores_api::error::ApiError::NotFound(_))
    ));
}
