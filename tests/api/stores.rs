//! Stores: creating, reading, listing and deleting them, with their guards.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{
    assert_error, assert_gone, assert_invalid, assert_same, body_of, id_of, ids, item_summary,
    reference, run_guard_matrix, Bearer, Cast, Guard, GuardCase, TestApp, BEARERS, MISSING,
};

// ---------------------------------------------------------------------------------------
// Guards

fn store_guard_cases() -> Vec<GuardCase> {
    vec![
        GuardCase::new(Method::GET, "/store?limit=0", Guard::Optional)
            .then_invalid("query", "limit"),
        GuardCase::new(Method::GET, format!("/store/{MISSING}"), Guard::Access)
            .then(404, "not_found"),
        GuardCase::new(Method::POST, "/store", Guard::Fresh)
            .json(json!({"name": ""}))
            .then_invalid("json", "name"),
        GuardCase::new(
            Method::DELETE,
            format!("/store/{MISSING}"),
            Guard::FreshAdmin,
        )
        .then(404, "not_found"),
    ]
}

#[actix_web::test]
async fn store_routes_refuse_every_token_their_guard_does_not_accept() {
    let app = TestApp::spawn().await;
    let cast = Cast::new(&app).await;
    let (refused, passed) = run_guard_matrix(&app, &cast, &store_guard_cases(), &BEARERS).await;
    assert_eq!((refused, passed), (24, 12));
    let (total, list) = app.get_list("/store", None).await;
    assert_eq!((total, list), (0, json!([])), "nothing was created");
}

#[actix_web::test]
async fn the_weakest_sufficient_token_opens_each_store_route() {
    let app = TestApp::spawn().await;
    let cast = Cast::new(&app).await;
    // POST /store: a fresh non-admin token.
    let store = app.new_store(&cast.user.tokens.access, "Corner Shop").await;
    let path = format!("/store/{}", id_of(&store));
    // GET /store/{id}: a non-fresh access token.
    assert_same(&app.fetch(&path, &cast.user_stale).await, &store);
    // GET /store: no token at all.
    let (total, list) = app.get_list("/store", None).await;
    assert_eq!(total, 1);
    assert_same(&list, &json!([store]));
    // DELETE /store/{id}: a fresh admin token; a stale admin one is told to get fresh.
    let resp = app.delete(&path, Some(&cast.admin_stale)).await;
    assert_error(resp, 401, "fresh_token_required").await;
    let resp = app.delete(&path, Some(&cast.user.tokens.access)).await;
    assert_error(resp, 403, "admin_required").await;
    app.fetch(&path, &cast.user_stale).await;
    let resp = app.delete(&path, Some(&cast.admin.tokens.access)).await;
    assert_eq!(
        body_of(resp, StatusCode::OK).await,
        json!({"message": "Store deleted"})
    );
    assert_gone(&app, &path, &cast.user_stale).await;
}

#[actix_web::test]
async fn the_store_list_is_open_to_anonymous_clients_but_not_to_bad_tokens() {
    let app = TestApp::spawn().await;
    let cast = Cast::new(&app).await;
    let token = cast.user.tokens.access.clone();
    let store = app.new_store(&token, "Open Shop").await;
    let item = app.new_item(&token, "Lamp", 12.5, id_of(&store)).await;
    let tag = app.new_tag(&token, id_of(&store), "Lighting").await;
    let full = app
        .fetch(&format!("/store/{}", id_of(&store)), &token)
        .await;
    assert_same(
        &full,
        &json!({
            "id": store["id"], "name": "Open Shop",
            "items": [item_summary(&item)], "tags": [reference(&tag)],
        }),
    );

    for token in [None, Some(cast.user_stale.as_str())] {
        let (total, list) = app.get_list("/store", token).await;
        assert_eq!(total, 1);
        assert_same(&list, &json!([full]));
    }
    let list = [GuardCase::new(Method::GET, "/store", Guard::Optional)];
    let bad = [Bearer::UserRefresh, Bearer::Garbage, Bearer::Expired];
    assert_eq!(run_guard_matrix(&app, &cast, &list, &bad).await, (3, 0));
}

// ---------------------------------------------------------------------------------------
// POST /store, GET /store/{id}

#[actix_web::test]
async fn a_client_creates_a_store_and_reads_it_back() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let token = &user.tokens.access;
    let resp = app
        .post("/store", Some(token), Some(json!({"name": "Hardware"})))
        .await;
    let created = body_of(resp, StatusCode::CREATED).await;
    let id = id_of(&created);
    assert_same(
        &created,
        &json!({"id": id, "name": "Hardware", "items": [], "tags": []}),
    );
    assert_same(&app.fetch(&format!("/store/{id}"), token).await, &created);
    let (total, list) = app.get_list("/store", Some(token)).await;
    assert_eq!(total, 1);
    assert_same(&list, &json!([created]));
}

#[actix_web::test]
async fn a_store_name_is_stored_trimmed_and_taken_whatever_the_spaces() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let token = &user.tokens.access;
    let store = app.new_store(token, "  Shop  ").await;
    assert_eq!(store["name"], "Shop");
    let stored = app.fetch(&format!("/store/{}", id_of(&store)), token).await;
    assert_eq!(stored["name"], "Shop");

    for name in ["Shop", " Shop ", "Shop\t"] {
        eprintln!("POST /store {name:?}: expecting 409");
        let resp = app
            .post("/store", Some(token), Some(json!({"name": name})))
            .await;
        let refused = assert_error(resp, 409, "conflict").await;
        assert_eq!(refused["message"], "A store with that name already exists.");
    }
    let (total, list) = app.get_list("/store", Some(token)).await;
    assert_eq!(total, 1);
    assert_eq!(ids(&list), [id_of(&store)]);
}

#[actix_web::test]
async fn store_names_are_1_to_80_characters_after_trimming() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let token = &user.tokens.access;
    let long = "x".repeat(81);
    let bad = [
        ("empty", json!({"name": ""})),
        ("only spaces", json!({"name": "   "})),
        ("81 characters", json!({"name": long})),
        ("missing", json!({})),
        ("null", json!({"name": null})),
        ("a number", json!({"name": 42})),
        ("a list", json!({"name": ["Shop"]})),
    ];
    for (what, body) in bad {
        eprintln!("POST /store with a name {what}: expecting 422");
        let resp = app.post("/store", Some(token), Some(body)).await;
        assert_invalid(resp, "json", &["name"]).await;
    }
    let (total, _) = app.get_list("/store", Some(token)).await;
    assert_eq!(total, 0, "nothing was written");

    let eighty = "y".repeat(80);
    assert_eq!(app.new_store(token, &eighty).await["name"], eighty);
    // 80 characters once trimmed, 82 before.
    let padded_name = "z".repeat(80);
    let padded = app.new_store(token, &format!(" {padded_name} ")).await;
    assert_eq!(padded["name"], padded_name);
    // Characters, not bytes: 80 two-byte characters fit.
    let accented = "é".repeat(80);
    assert_eq!(app.new_store(token, &accented).await["name"], accented);
    assert_eq!(app.new_store(token, "A").await["name"], "A");
    let (total, _) = app.get_list("/store", Some(token)).await;
    assert_eq!(total, 4);
}

#[actix_web::test]
async fn an_unknown_field_in_a_new_store_is_422_on_that_field() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let token = &user.tokens.access;
    let resp = app
        .post(
            "/store",
            Some(token),
            Some(json!({"name": "Shop", "owner": "me"})),
        )
        .await;
    assert_invalid(resp, "json", &["owner"]).await;
    // Every problem at once.
    let resp = app
        .post(
            "/store",
            Some(token),
            Some(json!({"name": "", "owner": "me"})),
        )
        .await;
    assert_invalid(resp, "json", &["name", "owner"]).await;
    let (total, _) = app.get_list("/store", Some(token)).await;
    assert_eq!(total, 0, "nothing was written");
}

#[actix_web::test]
async fn a_store_body_that_is_not_json_is_400() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let token = &user.tokens.access;
    for (content_type, body) in [
        ("application/json", "{not json"),
        ("text/plain", r#"{"name": "Shop"}"#),
    ] {
        let resp = app
            .send_raw(
                Method::POST,
                "/store",
                Some(token),
                Some(content_type),
                body,
            )
            .await;
        assert_error(resp, 400, "bad_request").await;
    }
    let (total, _) = app.get_list("/store", Some(token)).await;
    assert_eq!(total, 0);
}

#[actix_web::test]
async fn a_store_shows_its_items_and_tags_ordered_by_id() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let token = &user.tokens.access;
    let store = app.new_store(token, "Deli").await;
    let other = app.new_store(token, "Bakery").await;
    let sid = id_of(&store);
    // Names in reverse alphabetical order, so a list sorted by name would differ.
    let zucchini = app.new_item(token, "Zucchini", 1.25, sid).await;
    let bread = app.new_item(token, "Bread", 3.1, id_of(&other)).await;
    let apple = app.new_item(token, "Apple", 0.5, sid).await;
    let veg = app.new_tag(token, sid, "Vegetables").await;
    let fruit = app.new_tag(token, sid, "Fruit").await;
    app.new_tag(token, id_of(&other), "Loaves").await;
    app.link(token, id_of(&zucchini), id_of(&veg)).await;

    let got = app.fetch(&format!("/store/{sid}"), token).await;
    assert_same(
        &got,
        &json!({
            "id": sid,
            "name": "Deli",
            "items": [
                {"id": zucchini["id"], "name": "Zucchini", "price": 1.25},
                {"id": apple["id"], "name": "Apple", "price": 0.5},
            ],
            "tags": [
                {"id": veg["id"], "name": "Vegetables"},
                {"id": fruit["id"], "name": "Fruit"},
            ],
        }),
    );
    let other = app.fetch(&format!("/store/{}", id_of(&other)), token).await;
    assert_same(&other["items"], &json!([item_summary(&bread)]));
}

#[actix_web::test]
async fn reading_a_store_that_does_not_exist_is_404() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let token = &user.tokens.access;
    for path in [
        format!("/store/{MISSING}"),
        "/store/0".into(),
        "/store/-1".into(),
        "/store/abc".into(),
    ] {
        assert_gone(&app, &path, token).await;
    }
}

// ---------------------------------------------------------------------------------------
// DELETE /store/{id}

#[actix_web::test]
async fn deleting_a_store_takes_its_items_and_tags_with_it() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let token = &admin.tokens.access;
    let doomed = app.new_store(token, "Closing Down").await;
    let kept = app.new_store(token, "Still Open").await;
    let chair = app.new_item(token, "Chair", 45.0, id_of(&doomed)).await;
    let table = app.new_item(token, "Table", 120.99, id_of(&doomed)).await;
    let sale = app.new_tag(token, id_of(&doomed), "Sale").await;
    app.link(token, id_of(&chair), id_of(&sale)).await;
    let lamp = app.new_item(token, "Lamp", 9.99, id_of(&kept)).await;
    let kept_tag = app.new_tag(token, id_of(&kept), "Sale").await;
    app.link(token, id_of(&lamp), id_of(&kept_tag)).await;

    let resp = app
        .delete(&format!("/store/{}", id_of(&doomed)), Some(token))
        .await;
    assert_eq!(
        body_of(resp, StatusCode::OK).await,
        json!({"message": "Store deleted"})
    );

    assert_gone(&app, &format!("/store/{}", id_of(&doomed)), token).await;
    assert_gone(&app, &format!("/item/{}", id_of(&chair)), token).await;
    assert_gone(&app, &format!("/item/{}", id_of(&table)), token).await;
    assert_gone(&app, &format!("/tag/{}", id_of(&sale)), token).await;
    let resp = app
        .get(&format!("/store/{}/tag", id_of(&doomed)), Some(token))
        .await;
    assert_error(resp, 404, "not_found").await;

    // The other store is untouched.
    let (total, stores) = app.get_list("/store", None).await;
    assert_eq!(total, 1);
    assert_eq!(ids(&stores), [id_of(&kept)]);
    let (total, items) = app.get_list("/item", Some(token)).await;
    assert_eq!(total, 1);
    assert_eq!(ids(&items), [id_of(&lamp)]);
    let tag = app
        .fetch(&format!("/tag/{}", id_of(&kept_tag)), token)
        .await;
    assert_same(&tag["items"], &json!([item_summary(&lamp)]));

    // Deleting it again: there is nothing to delete.
    let resp = app
        .delete(&format!("/store/{}", id_of(&doomed)), Some(token))
        .await;
    assert_error(resp, 404, "not_found").await;
}

#[actix_web::test]
async fn deleting_a_store_that_does_not_exist_is_404() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let resp = app
        .delete(&format!("/store/{MISSING}"), Some(&admin.tokens.access))
        .await;
    assert_error(resp, 404, "not_found").await;
}

#[actix_web::test]
async fn a_deleted_stores_id_and_name_are_not_given_to_the_next_store() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let token = &admin.tokens.access;
    let first = app.new_store(token, "Pop-up").await;
    let resp = app
        .delete(&format!("/store/{}", id_of(&first)), Some(token))
        .await;
    body_of(resp, StatusCode::OK).await;
    // The name is free again, the id is not.
    let second = app.new_store(token, "Pop-up").await;
    assert!(
        id_of(&second) > id_of(&first),
        "{second} reuses or precedes {first}"
    );
    assert_gone(&app, &format!("/store/{}", id_of(&first)), token).await;
}

// ---------------------------------------------------------------------------------------
// GET /store: paging

#[actix_web::test]
async fn the_store_list_pages_with_limit_and_offset() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let token = &user.tokens.access;
    let mut created = Vec::new();
    for name in ["E", "D", "C", "B", "A"] {
        created.push(id_of(&app.new_store(token, name).await));
    }
    let (total, all) = app.get_list("/store", None).await;
    assert_eq!(total, 5);
    assert_eq!(ids(&all), created, "ordered by id");

    let (total, page) = app.get_list("/store?limit=2&offset=1", None).await;
    assert_eq!(total, 5, "the total, not the page size");
    assert_eq!(ids(&page), created[1..3]);
    assert_same(&page, &json!([all[1], all[2]]));

    let (total, page) = app.get_list("/store?offset=3", Some(token)).await;
    assert_eq!(total, 5);
    assert_eq!(ids(&page), created[3..]);

    let (total, page) = app.get_list("/store?limit=1", Some(token)).await;
    assert_eq!(total, 5);
    assert_eq!(ids(&page), created[..1]);

    let (total, page) = app.get_list("/store?offset=10", None).await;
    assert_eq!((total, page), (5, json!([])));
}

#[actix_web::test]
async fn the_store_list_shows_100_by_default_and_at_most_1000() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let token = &user.tokens.access;
    let created = app.many_stores(token, "store", 1001).await;

    let (total, page) = app.get_list("/store", None).await;
    assert_eq!(total, 1001);
    assert_eq!(ids(&page), created[..100]);

    let (total, page) = app.get_list("/store?limit=5000", None).await;
    assert_eq!(total, 1001);
    assert_eq!(ids(&page), created[..1000]);

    let (_, page) = app.get_list("/store?limit=1000&offset=1000", None).await;
    assert_eq!(ids(&page), created[1000..]);
}

#[actix_web::test]
async fn bad_paging_on_the_store_list_is_422_under_errors_query() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    app.new_store(&user.tokens.access, "Shop").await;
    let cases = [
        ("limit=0", vec!["limit"]),
        ("limit=abc", vec!["limit"]),
        ("limit=-5", vec!["limit"]),
        ("offset=-1", vec!["offset"]),
        ("offset=abc", vec!["offset"]),
        ("limit=abc&offset=-1", vec!["limit", "offset"]),
    ];
    for token in [None, Some(user.tokens.access.as_str())] {
        for (query, fields) in &cases {
            eprintln!("GET /store?{query}: expecting 422 on {fields:?}");
            let resp = app.get(&format!("/store?{query}"), token).await;
            assert_invalid(resp, "query", fields).await;
        }
    }
    let (total, page) = app.get_list("/store?limit=5000", None).await;
    assert_eq!(total, 1);
    assert_eq!(page.as_array().map(Vec::len), Some(1));
}
