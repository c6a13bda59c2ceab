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
    db::migrate(&settings.database).expect("migrations");
    db::pool(&settings.database).get().expect("connection")
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
fn items_by_id_are_read_in_one_query_and_match_the_list_view() {
    let dir = tempfile::tempdir().expect("dir");
    let mut conn = connection(&dir);
    let conn = &mut *conn;
    let store = Store::create(conn, "Corner").expect("store");
    let other = Store::create(conn, "Other").expect("store");
    let item = Item::create(conn, "Lamp", Price::from_cents(1999), store.id).expect("item");
    let bare = Item::create(conn, "Bare", Price::from_cents(5), other.id).expect("item");
    let third = Item::create(conn, "Mug", Price::from_cents(700), store.id).expect("item");
    // Linked out of id order: the view lists tags by id.
    let tags: Vec<Tag> = ["b", "a", "c"]
        .iter()
        .map(|name| Tag::create(conn, store.id, name).expect("tag"))
        .collect();
    for tag in tags.iter().rev() {
        Tag::link(conn, item.id, tag.id).expect("link");
    }
    Tag::link(conn, third.id, tags[1].id).expect("link");

    // Asked out of order, with an id that has no item: one query, found items by id.
    let ids = [third.id, bare.id + 100, item.id, bare.id];
    let mut views = None;
    let queries = count_queries(conn, |c| views = Some(Item::views_by_id(c, &ids)));
    assert_eq!(queries, 1, "a batch of GET /item/{{id}} is one query");
    let views = serde_json::to_value(views.expect("ran").expect("views")).expect("json");
    let listed = Item::views(conn, vec![item.clone(), bare.clone(), third.clone()]).expect("views");
    assert_eq!(views, serde_json::to_value(&listed).expect("json"));
    let tag_ids: Vec<i64> = views[0]["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(|t| t["id"].as_i64())
        .collect();
    assert_eq!(tag_ids, tags.iter().map(|t| t.id).collect::<Vec<_>>());
    assert_eq!(views[1]["tags"], serde_json::json!([]), "{views}");
    assert_eq!(views[1]["store"]["name"], "Other");
    assert_eq!(
        views[2]["tags"],
        serde_json::json!([{"id": tags[1].id, "name": "a"}])
    );

    let none = Item::views_by_id(conn, &[bare.id + 100]).expect("views");
    assert!(none.is_empty());
}
