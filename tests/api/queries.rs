//! No query per row: building the views of a list costs the same number of queries
//! for 3 rows as for 30, and a batched read by id the same for 1 id as for 4
//! (diesel's instrumentation counts them).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use diesel::connection::{Connection, InstrumentationEvent};
use stores_api::config::Settings;
use stores_api::db::{self, DbConnection};
use stores_api::input::{Price, Username};
use stores_api::models::item::Item;
use stores_api::models::store::Store;
use stores_api::models::tag::Tag;
use stores_api::models::user::{User, UserView};

use crate::helpers::{fresh_postgres_database, on_postgres, TEST_KEY};

/// `v` as JSON, as a response carries it.
fn json<T: serde::Serialize + ?Sized>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).expect("json")
}

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

    // One id (every round at rest) is read by another query: the same view.
    for (n, one) in [&item, &bare, &third].into_iter().enumerate() {
        let alone = Item::views_by_id(conn, &[one.id]).expect("views");
        assert_eq!(json(&alone), json(&listed[n..=n]), "item {}", one.id);
    }
    let none = Item::views_by_id(conn, &[bare.id + 100]).expect("views");
    assert!(none.is_empty());
}

#[test]
fn stores_tags_and_users_by_id_are_read_in_a_fixed_number_of_queries_and_match_their_views() {
    let dir = tempfile::tempdir().expect("dir");
    let mut conn = connection(&dir);
    let conn = &mut *conn;
    let corner = Store::create(conn, "Corner").expect("store");
    let empty = Store::create(conn, "Empty").expect("store");
    let kiosk = Store::create(conn, "Kiosk").expect("store");
    let lamp = Item::create(conn, "Lamp", Price::from_cents(1999), corner.id).expect("item");
    let mug = Item::create(conn, "Mug", Price::from_cents(700), kiosk.id).expect("item");
    let desk = Item::create(conn, "Desk", Price::from_cents(12050), corner.id).expect("item");
    // Created out of name order, linked out of id order: views list by id.
    let wood = Tag::create(conn, corner.id, "wood").expect("tag");
    let bare = Tag::create(conn, corner.id, "bare").expect("tag");
    let cheap = Tag::create(conn, kiosk.id, "cheap").expect("tag");
    Tag::link(conn, desk.id, wood.id).expect("link");
    Tag::link(conn, lamp.id, wood.id).expect("link");
    Tag::link(conn, mug.id, cheap.id).expect("link");
    let name = |n: &str| Username::parse(&serde_json::json!(n)).expect("username");
    let alice = User::create(conn, &name("alice"), "$2b$12$not-a-real-hash", false).expect("user");
    let root = User::create(conn, &name("root"), "$2b$12$not-a-real-hash", true).expect("user");
    let missing = 1000;

    // Asked out of order, with an id that names nothing: the found ones, by id.
    let ids = [kiosk.id, missing, corner.id, empty.id];
    let one = count_queries(conn, |c| {
        Store::views_by_id(c, &[corner.id]).expect("views")
    });
    let mut views = None;
    let many = count_queries(conn, |c| views = Some(Store::views_by_id(c, &ids)));
    assert_eq!(one, many, "store views by id must not query per store");
    assert_eq!(
        many, 2,
        "stores by id: the stores with their items, then their tags"
    );
    let listed =
        Store::views(conn, vec![corner.clone(), empty.clone(), kiosk.clone()]).expect("views");
    assert_eq!(
        json(&views.expect("ran").expect("views")),
        json(&listed),
        "stores by id as GET /store lists them"
    );

    let ids = [cheap.id, missing, wood.id, bare.id];
    let mut views = None;
    let queries = count_queries(conn, |c| views = Some(Tag::views_by_id(c, &ids)));
    assert_eq!(queries, 1, "tags by id are one query");
    let tags = Tag::views(conn, vec![wood.clone(), bare.clone(), cheap.clone()]).expect("views");
    let views = json(&views.expect("ran").expect("views"));
    assert_eq!(views, json(&tags), "tags by id as the tag views show them");
    assert_eq!(views[0]["items"][0]["id"], lamp.id, "{views}");
    assert_eq!(views[0]["items"][1]["id"], desk.id, "{views}");
    assert_eq!(views[1]["items"], serde_json::json!([]), "{views}");
    assert_eq!(views[2]["store"]["name"], "Kiosk", "{views}");

    let ids = [root.id, missing, alice.id];
    let mut views = None;
    let queries = count_queries(conn, |c| views = Some(User::views_by_id(c, &ids)));
    assert_eq!(queries, 1, "users by id are one query");
    let mut views = views.expect("ran").expect("views");
    views.sort_by_key(|v| v.id);
    let shown: Vec<UserView> = [alice, root].into_iter().map(UserView::from).collect();
    assert_eq!(json(&views), json(&shown));
    assert_eq!(
        json(&views)[0],
        serde_json::json!({
            "id": shown[0].id,
            "username": "alice",
            "is_admin": false,
            "created_at": json(&shown[0].created_at),
        })
    );

    // One id (every round at rest) is read by another query: the same views.
    for (n, store) in [&corner, &empty, &kiosk].into_iter().enumerate() {
        let one = Store::views_by_id(conn, &[store.id]).expect("views");
        assert_eq!(json(&one), json(&listed[n..=n]), "store {}", store.id);
    }
    for (n, tag) in [&wood, &bare, &cheap].into_iter().enumerate() {
        let one = Tag::views_by_id(conn, &[tag.id]).expect("views");
        assert_eq!(json(&one), json(&tags[n..=n]), "tag {}", tag.id);
    }
    for view in &shown {
        let one = User::views_by_id(conn, &[view.id]).expect("views");
        assert_eq!(json(&one), json(&[view]), "user {}", view.id);
    }
    assert!(Store::views_by_id(conn, &[missing])
        .expect("views")
        .is_empty());
    assert!(Tag::views_by_id(conn, &[missing])
        .expect("views")
        .is_empty());
    assert!(User::views_by_id(conn, &[missing])
        .expect("views")
        .is_empty());
}
