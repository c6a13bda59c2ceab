//! Items: creating (fresh), reading, updating, deleting (admin), the optional-token list
//! that shows anonymous clients only ids and names, and exact prices.

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    assert_error, assert_gone, assert_invalid, assert_same, body_of, id_of, ids, item_summary,
    reference, run_guard_matrix, Bearer, Cast, Guard, GuardCase, TestApp, BEARERS, MISSING,
};

async fn post_item(app: &TestApp, token: &str, body: Value) -> Response {
    app.post("/item", Some(token), Some(body)).await
}

/// The item list as the admin sees it: (X-Total-Count, full items).
async fn all_items(app: &TestApp, token: &str) -> (i64, Value) {
    app.get_list("/item", Some(token)).await
}

// ---------------------------------------------------------------------------------------
// Guards

fn item_guard_cases() -> Vec<GuardCase> {
    vec![
        GuardCase::new(Method::GET, "/item?limit=0", Guard::Optional)
            .then_invalid("query", "limit"),
        GuardCase::new(Method::GET, format!("/item/{MISSING}"), Guard::Access)
            .then(404, "not_found"),
        GuardCase::new(Method::POST, "/item", Guard::Fresh)
            .json(json!({"name": "Chair", "price": -1, "store_id": MISSING}))
            .then_invalid("json", "price"),
        GuardCase::new(Method::PUT, format!("/item/{MISSING}"), Guard::Access)
            .json(json!({"price": -1}))
            .then_invalid("json", "price"),
        GuardCase::new(Method::DELETE, format!("/item/{MISSING}"), Guard::Admin)
            .then(404, "not_found"),
    ]
}

#[actix_web::test]
async fn item_routes_refuse_every_token_their_guard_does_not_accept() {
    let app = TestApp::spawn().await;
    let cast = Cast::new(&app).await;
    let (refused, passed) = run_guard_matrix(&app, &cast, &item_guard_cases(), &BEARERS).await;
    assert_eq!((refused, passed), (28, 17));
    let (total, list) = app.get_list("/item", Some(&cast.user_stale)).await;
    assert_eq!((total, list), (0, json!([])), "nothing was created");
}

#[actix_web::test]
async fn the_weakest_sufficient_token_opens_each_item_route() {
    let app = TestApp::spawn().await;
    let cast = Cast::new(&app).await;
    let store = app.new_store(&cast.user.tokens.access, "Shop").await;
    // POST /item: fresh; a stale token is told to get fresh first.
    let body = json!({"name": "Chair", "price": 45.5, "store_id": store["id"]});
    let resp = post_item(&app, &cast.user_stale, body.clone()).await;
    assert_error(resp, 401, "fresh_token_required").await;
    let resp = post_item(&app, &cast.user.tokens.access, body).await;
    let item = body_of(resp, StatusCode::CREATED).await;
    let path = format!("/item/{}", id_of(&item));
    // GET /item/{id}, PUT /item/{id}: any access token.
    assert_same(&app.fetch(&path, &cast.user_stale).await, &item);
    let resp = app
        .put(&path, Some(&cast.user_stale), json!({"price": 40}))
        .await;
    assert_eq!(body_of(resp, StatusCode::OK).await["price"], 40.0);
    // GET /item: no token.
    let (total, _) = app.get_list("/item", None).await;
    assert_eq!(total, 1);
    // DELETE /item/{id}: admin, fresh or not; not a fresh non-admin.
    let resp = app.delete(&path, Some(&cast.user.tokens.access)).await;
    let refused = assert_error(resp, 403, "admin_required").await;
    assert_eq!(refused["message"], "Admin privilege required.");
    app.fetch(&path, &cast.user_stale).await;
    let resp = app.delete(&path, Some(&cast.admin_stale)).await;
    assert_eq!(
        body_of(resp, StatusCode::OK).await,
        json!({"message": "Item deleted."})
    );
    assert_gone(&app, &path, &cast.user_stale).await;
}

// ---------------------------------------------------------------------------------------
// GET /item

#[actix_web::test]
async fn an_anonymous_client_sees_only_ids_and_names_of_items() {
    let app = TestApp::spawn().await;
    let cast = Cast::new(&app).await;
    let token = &cast.user.tokens.access;
    let store = app.new_store(token, "Shop").await;
    let chair = app.new_item(token, "Chair", 45.5, id_of(&store)).await;
    let desk = app.new_item(token, "Desk", 199.99, id_of(&store)).await;
    let tag = app.new_tag(token, id_of(&store), "Office").await;
    app.link(token, id_of(&desk), id_of(&tag)).await;

    let (total, anonymous) = app.get_list("/item", None).await;
    assert_eq!(total, 2);
    assert_eq!(
        anonymous,
        json!([
            {"id": chair["id"], "name": "Chair"},
            {"id": desk["id"], "name": "Desk"},
        ])
    );

    let desk = app.fetch(&format!("/item/{}", id_of(&desk)), token).await;
    for token in [&cast.user_stale, &cast.admin.tokens.access] {
        let (total, full) = app.get_list("/item", Some(token)).await;
        assert_eq!(total, 2);
        assert_same(&full, &json!([chair, desk]));
    }
    assert_same(&desk["tags"], &json!([reference(&tag)]));
}

#[actix_web::test]
async fn the_item_list_refuses_bad_tokens_even_though_it_is_open() {
    let app = TestApp::spawn().await;
    let cast = Cast::new(&app).await;
    let list = [GuardCase::new(Method::GET, "/item", Guard::Optional)];
    let bad = [Bearer::UserRefresh, Bearer::Garbage, Bearer::Expired];
    assert_eq!(run_guard_matrix(&app, &cast, &list, &bad).await, (3, 0));
}

#[actix_web::test]
async fn the_item_list_pages_with_limit_and_offset() {
    let app = TestApp::spawn().await;
    let (token, store) = app.shop("Shop").await;
    let mut created = Vec::new();
    for (name, price) in [("E", 5.0), ("D", 4.0), ("C", 3.0), ("B", 2.0), ("A", 1.0)] {
        created.push(app.new_item(&token, name, price, id_of(&store)).await);
    }
    let created_ids: Vec<i64> = created.iter().map(id_of).collect();

    let (total, all) = all_items(&app, &token).await;
    assert_eq!(total, 5);
    assert_eq!(ids(&all), created_ids, "ordered by id");

    let (total, page) = app.get_list("/item?limit=2&offset=1", Some(&token)).await;
    assert_eq!(total, 5, "the total, not the page size");
    assert_same(&page, &json!([created[1], created[2]]));

    let (total, page) = app.get_list("/item?limit=2&offset=1", None).await;
    assert_eq!(total, 5);
    assert_eq!(
        page,
        json!([
            {"id": created_ids[1], "name": "D"},
            {"id": created_ids[2], "name": "C"},
        ])
    );

    let (total, page) = app.get_list("/item?offset=4", None).await;
    assert_eq!(total, 5);
    assert_eq!(ids(&page), created_ids[4..]);

    let (total, page) = app.get_list("/item?offset=5", Some(&token)).await;
    assert_eq!((total, page), (5, json!([])));

    let (total, page) = app.get_list("/item?limit=5000", Some(&token)).await;
    assert_eq!(total, 5);
    assert_eq!(ids(&page), created_ids);
}

#[actix_web::test]
async fn bad_paging_on_the_item_list_is_422_under_errors_query() {
    let app = TestApp::spawn().await;
    let (token, _) = app.shop("Shop").await;
    let cases = [
        ("limit=0", vec!["limit"]),
        ("limit=abc", vec!["limit"]),
        ("offset=-1", vec!["offset"]),
        ("limit=0&offset=-1", vec!["limit", "offset"]),
    ];
    for token in [None, Some(token.as_str())] {
        for (query, fields) in &cases {
            eprintln!("GET /item?{query}: expecting 422 on {fields:?}");
            let resp = app.get(&format!("/item?{query}"), token).await;
            assert_invalid(resp, "query", fields).await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// POST /item, GET /item/{id}

#[actix_web::test]
async fn a_client_creates_an_item_and_reads_it_back_in_full() {
    let app = TestApp::spawn().await;
    let (token, store) = app.shop("Shop").await;
    let resp = post_item(
        &app,
        &token,
        json!({"name": "Chair", "price": 45.5, "store_id": store["id"]}),
    )
    .await;
    let item = body_of(resp, StatusCode::CREATED).await;
    let id = id_of(&item);
    assert_same(
        &item,
        &json!({
            "id": id, "name": "Chair", "price": 45.5,
            "store": {"id": store["id"], "name": "Shop"}, "tags": [],
        }),
    );
    assert_same(&app.fetch(&format!("/item/{id}"), &token).await, &item);
    let store = app
        .fetch(&format!("/store/{}", id_of(&store)), &token)
        .await;
    assert_same(&store["items"], &json!([item_summary(&item)]));
}

#[actix_web::test]
async fn an_item_name_is_stored_trimmed_and_1_to_80_characters() {
    let app = TestApp::spawn().await;
    let (token, store) = app.shop("Shop").await;
    let sid = store["id"].clone();
    let item = app.new_item(&token, "  Chair  ", 1.0, id_of(&store)).await;
    assert_eq!(item["name"], "Chair");
    let stored = app.fetch(&format!("/item/{}", id_of(&item)), &token).await;
    assert_eq!(stored["name"], "Chair");

    let long = "x".repeat(81);
    for name in [json!(""), json!("   "), json!(long), json!(null), json!(7)] {
        eprintln!("POST /item with name {name}: expecting 422");
        let resp = post_item(
            &app,
            &token,
            json!({"name": name, "price": 1, "store_id": sid}),
        )
        .await;
        assert_invalid(resp, "json", &["name"]).await;
    }
    let eighty = "y".repeat(80);
    let item = app.new_item(&token, &eighty, 1.0, id_of(&store)).await;
    assert_eq!(item["name"], eighty);
    let (total, _) = all_items(&app, &token).await;
    assert_eq!(total, 2);
}

#[actix_web::test]
async fn prices_come_back_exactly_as_sent() {
    let app = TestApp::spawn().await;
    let (token, store) = app.shop("Shop").await;
    let prices = [
        0.0,
        0.01,
        0.1,
        0.2,
        0.3,
        10.1,
        10.3,
        19.99,
        1.1,
        2.67,
        1234567.89,
        999_999_999.99,
        1_000_000_000.0,
    ];
    for price in prices {
        let item = app.new_item(&token, "Thing", price, id_of(&store)).await;
        assert_eq!(item["price"].as_f64(), Some(price), "created: {item}");
        let stored = app.fetch(&format!("/item/{}", id_of(&item)), &token).await;
        assert_eq!(stored["price"].as_f64(), Some(price), "read back: {stored}");
    }
    // 10.1, then +0.2 by the client (rounded to cents, as a careful client does).
    let item = app.new_item(&token, "Sum", 10.1, id_of(&store)).await;
    let path = format!("/item/{}", id_of(&item));
    let resp = app.put(&path, Some(&token), json!({"price": 10.3})).await;
    assert_eq!(
        body_of(resp, StatusCode::OK).await["price"].as_f64(),
        Some(10.3)
    );
    assert_eq!(app.fetch(&path, &token).await["price"].as_f64(), Some(10.3));
    // The list and the store show the same exact prices.
    let (_, list) = all_items(&app, &token).await;
    let listed: Vec<f64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["price"].as_f64().expect("a number"))
        .collect();
    let mut expected = prices.to_vec();
    expected.push(10.3);
    assert_eq!(listed, expected);
    let store = app
        .fetch(&format!("/store/{}", id_of(&store)), &token)
        .await;
    assert_eq!(store["items"][5]["price"].as_f64(), Some(10.1));
}

#[actix_web::test]
async fn a_bad_price_is_422_on_the_price_field_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let (token, store) = app.shop("Shop").await;
    app.new_item(&token, "Existing", 1.0, id_of(&store)).await;
    let (total_before, before) = all_items(&app, &token).await;
    let bad = [
        ("negative", json!(-1)),
        ("a negative cent", json!(-0.01)),
        ("three decimals", json!(1.005)),
        ("three decimals, small", json!(0.001)),
        ("a string", json!("10")),
        ("a string with decimals", json!("10.50")),
        ("above 1e9", json!(1_000_000_000.01)),
        ("far above 1e9", json!(1e10)),
        ("huge", json!(1e300)),
        ("null", json!(null)),
        ("a boolean", json!(true)),
        ("an object", json!({"amount": 10})),
    ];
    for (what, price) in bad {
        eprintln!("POST /item with a price {what} ({price}): expecting 422");
        let body = json!({"name": "Chair", "price": price, "store_id": store["id"]});
        let resp = post_item(&app, &token, body).await;
        assert_invalid(resp, "json", &["price"]).await;
    }
    let resp = post_item(
        &app,
        &token,
        json!({"name": "Chair", "store_id": store["id"]}),
    )
    .await;
    assert_invalid(resp, "json", &["price"]).await;

    let (total, after) = all_items(&app, &token).await;
    assert_eq!(total, total_before, "X-Total-Count unchanged");
    assert_eq!(after, before, "nothing was written");
}

#[actix_web::test]
async fn a_store_id_that_names_no_store_is_422_on_store_id() {
    let app = TestApp::spawn().await;
    let (token, store) = app.shop("Shop").await;
    let sid = id_of(&store);
    let bad = [
        ("no such store", json!(MISSING)),
        ("zero", json!(0)),
        ("negative", json!(-1)),
        ("a string naming a store", json!(sid.to_string())),
        ("a fraction", json!(1.5)),
        ("a float naming a store", json!(sid as f64 + 0.5)),
        ("null", json!(null)),
        ("a list", json!([sid])),
    ];
    for (what, store_id) in bad {
        eprintln!("POST /item with a store_id {what} ({store_id}): expecting 422");
        let body = json!({"name": "Chair", "price": 1, "store_id": store_id});
        let resp = post_item(&app, &token, body).await;
        assert_invalid(resp, "json", &["store_id"]).await;
    }
    let resp = post_item(&app, &token, json!({"name": "Chair", "price": 1})).await;
    assert_invalid(resp, "json", &["store_id"]).await;
    let (total, list) = all_items(&app, &token).await;
    assert_eq!((total, list), (0, json!([])), "nothing was written");
}

#[actix_web::test]
async fn every_bad_field_of_a_new_item_is_listed_in_one_response() {
    let app = TestApp::spawn().await;
    let (token, store) = app.shop("Shop").await;
    let resp = post_item(
        &app,
        &token,
        json!({"name": "", "price": -1, "store_id": MISSING, "colour": "red"}),
    )
    .await;
    assert_invalid(resp, "json", &["name", "price", "store_id", "colour"]).await;
    let resp = post_item(&app, &token, json!({})).await;
    assert_invalid(resp, "json", &["name", "price", "store_id"]).await;
    // One unknown field alone, everything else fine.
    let resp = post_item(
        &app,
        &token,
        json!({"name": "Chair", "price": 1, "store_id": store["id"], "discount": 5}),
    )
    .await;
    assert_invalid(resp, "json", &["discount"]).await;
    let (total, list) = all_items(&app, &token).await;
    assert_eq!((total, list), (0, json!([])), "nothing was written");
}

#[actix_web::test]
async fn an_item_body_that_is_not_json_is_400() {
    let app = TestApp::spawn().await;
    let (token, store) = app.shop("Shop").await;
    let good = json!({"name": "Chair", "price": 1, "store_id": store["id"]}).to_string();
    for (content_type, body) in [
        ("application/json", "{\"name\": \"Chair\",".to_string()),
        ("application/json", "[1, 2]".to_string()),
        ("text/plain", good),
    ] {
        eprintln!("POST /item {content_type} {body:?}: expecting 400 or 422");
        let resp = app
            .send_raw(
                Method::POST,
                "/item",
                Some(&token),
                Some(content_type),
                body.clone(),
            )
            .await;
        if body.starts_with('[') {
            // Well-formed JSON that is not an object: either answer is the contract's.
            let status = resp.status().as_u16();
            assert!(status == 400 || status == 422, "{status}");
        } else {
            assert_error(resp, 400, "bad_request").await;
        }
    }
    let (total, _) = all_items(&app, &token).await;
    assert_eq!(total, 0);
}

#[actix_web::test]
async fn reading_an_item_that_does_not_exist_is_404() {
    let app = TestApp::spawn().await;
    let (token, _) = app.shop("Shop").await;
    for path in [
        format!("/item/{MISSING}"),
        "/item/0".into(),
        "/item/abc".into(),
    ] {
        assert_gone(&app, &path, &token).await;
    }
}

// ---------------------------------------------------------------------------------------
// PUT /item/{id}

#[actix_web::test]
async fn updating_an_item_changes_only_what_is_sent() {
    let app = TestApp::spawn().await;
    let (token, store) = app.shop("Shop").await;
    let item = app.new_item(&token, "Chair", 45.5, id_of(&store)).await;
    let path = format!("/item/{}", id_of(&item));

    let resp = app
        .put(&path, Some(&token), json!({"name": "  Armchair "}))
        .await;
    let renamed = body_of(resp, StatusCode::OK).await;
    let mut expected = item.clone();
    expected["name"] = json!("Armchair");
    assert_same(&renamed, &expected);
    assert_same(&app.fetch(&path, &token).await, &expected);

    let resp = app.put(&path, Some(&token), json!({"price": 50.25})).await;
    expected["price"] = json!(50.25);
    assert_same(&body_of(resp, StatusCode::OK).await, &expected);
    assert_same(&app.fetch(&path, &token).await, &expected);

    let resp = app
        .put(&path, Some(&token), json!({"name": "Sofa", "price": 0.99}))
        .await;
    expected["name"] = json!("Sofa");
    expected["price"] = json!(0.99);
    assert_same(&body_of(resp, StatusCode::OK).await, &expected);

    let resp = app.put(&path, Some(&token), json!({})).await;
    assert_same(&body_of(resp, StatusCode::OK).await, &expected);
    assert_same(&app.fetch(&path, &token).await, &expected);
    // The store's view follows.
    let store = app
        .fetch(&format!("/store/{}", id_of(&store)), &token)
        .await;
    assert_same(&store["items"], &json!([item_summary(&expected)]));
}

#[actix_web::test]
async fn an_item_keeps_its_tags_through_an_update() {
    let app = TestApp::spawn().await;
    let (token, store) = app.shop("Shop").await;
    let item = app.new_item(&token, "Chair", 45.5, id_of(&store)).await;
    let tag = app.new_tag(&token, id_of(&store), "Furniture").await;
    app.link(&token, id_of(&item), id_of(&tag)).await;
    let path = format!("/item/{}", id_of(&item));
    let resp = app.put(&path, Some(&token), json!({"price": 39})).await;
    let updated = body_of(resp, StatusCode::OK).await;
    assert_same(&updated["tags"], &json!([reference(&tag)]));
    let tag = app.fetch(&format!("/tag/{}", id_of(&tag)), &token).await;
    assert_same(&tag["items"], &json!([item_summary(&updated)]));
}

#[actix_web::test]
async fn an_item_cannot_be_moved_to_another_store_by_an_update() {
    let app = TestApp::spawn().await;
    let (token, store) = app.shop("Shop").await;
    let other = app.new_store(&token, "Other").await;
    let item = app.new_item(&token, "Chair", 45.5, id_of(&store)).await;
    let path = format!("/item/{}", id_of(&item));
    let resp = app
        .put(&path, Some(&token), json!({"store_id": other["id"]}))
        .await;
    assert_invalid(resp, "json", &["store_id"]).await;
    let resp = app
        .put(
            &path,
            Some(&token),
            json!({"name": "Moved", "store_id": other["id"]}),
        )
        .await;
    assert_invalid(resp, "json", &["store_id"]).await;
    assert_same(&app.fetch(&path, &token).await, &item);
}

#[actix_web::test]
async fn a_bad_update_is_422_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (token, store) = app.shop("Shop").await;
    let item = app.new_item(&token, "Chair", 45.5, id_of(&store)).await;
    let path = format!("/item/{}", id_of(&item));
    let long = "x".repeat(81);
    let cases = [
        (json!({"price": -1}), vec!["price"]),
        (json!({"price": 1.005}), vec!["price"]),
        (json!({"price": "10"}), vec!["price"]),
        (json!({"price": 1_000_000_000.01}), vec!["price"]),
        (json!({"name": ""}), vec!["name"]),
        (json!({"name": "   "}), vec!["name"]),
        (json!({"name": long}), vec!["name"]),
        (json!({"name": 3}), vec!["name"]),
        (json!({"id": 5}), vec!["id"]),
        (json!({"name": "Fine", "price": -1}), vec!["price"]),
        (
            json!({"name": "", "price": -1, "colour": "red"}),
            vec!["name", "price", "colour"],
        ),
    ];
    for (body, fields) in cases {
        eprintln!("PUT {path} {body}: expecting 422 on {fields:?}");
        let resp = app.put(&path, Some(&token), body).await;
        assert_invalid(resp, "json", &fields).await;
    }
    assert_same(&app.fetch(&path, &token).await, &item);
}

#[actix_web::test]
async fn updating_an_item_checks_the_guard_then_the_body_then_the_id() {
    let app = TestApp::spawn().await;
    let (token, store) = app.shop("Shop").await;
    let item = app.new_item(&token, "Chair", 45.5, id_of(&store)).await;
    let missing = format!("/item/{MISSING}");
    // No token: 401 whatever the body, on an item that exists or not.
    for path in [format!("/item/{}", id_of(&item)), missing.clone()] {
        let resp = app.put(&path, None, json!({"price": -1})).await;
        assert_error(resp, 401, "authorization_required").await;
    }
    // A token and a bad body on a missing item: the body's 422.
    let resp = app.put(&missing, Some(&token), json!({"price": -1})).await;
    assert_invalid(resp, "json", &["price"]).await;
    // A token and a good body on a missing item: 404, and nothing created.
    let resp = app
        .put(&missing, Some(&token), json!({"name": "Ghost"}))
        .await;
    assert_error(resp, 404, "not_found").await;
    let resp = app.put(&missing, Some(&token), json!({})).await;
    assert_error(resp, 404, "not_found").await;
    let (total, list) = all_items(&app, &token).await;
    assert_eq!(total, 1);
    assert_same(&list, &json!([item]));
}

// ---------------------------------------------------------------------------------------
// DELETE /item/{id}

#[actix_web::test]
async fn only_an_admin_deletes_an_item_and_it_leaves_its_store_and_tags() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (token, store) = app.shop("Shop").await;
    let chair = app.new_item(&token, "Chair", 45.5, id_of(&store)).await;
    let desk = app.new_item(&token, "Desk", 99.0, id_of(&store)).await;
    let tag = app.new_tag(&token, id_of(&store), "Furniture").await;
    app.link(&token, id_of(&chair), id_of(&tag)).await;
    app.link(&token, id_of(&desk), id_of(&tag)).await;
    let path = format!("/item/{}", id_of(&chair));

    let resp = app.delete(&path, Some(&token)).await;
    assert_error(resp, 403, "admin_required").await;
    assert_same(
        &app.fetch(&path, &token).await["tags"],
        &json!([reference(&tag)]),
    );

    let resp = app.delete(&path, Some(&admin.tokens.access)).await;
    assert_eq!(
        body_of(resp, StatusCode::OK).await,
        json!({"message": "Item deleted."})
    );
    assert_gone(&app, &path, &token).await;
    let resp = app.delete(&path, Some(&admin.tokens.access)).await;
    assert_error(resp, 404, "not_found").await;

    let (total, list) = all_items(&app, &token).await;
    assert_eq!(total, 1);
    assert_eq!(ids(&list), [id_of(&desk)]);
    let store = app
        .fetch(&format!("/store/{}", id_of(&store)), &token)
        .await;
    assert_same(&store["items"], &json!([item_summary(&desk)]));
    let tag = app.fetch(&format!("/tag/{}", id_of(&tag)), &token).await;
    assert_same(&tag["items"], &json!([item_summary(&desk)]));
}

#[actix_web::test]
async fn deleting_an_item_that_does_not_exist_is_404() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let resp = app
        .delete(&format!("/item/{MISSING}"), Some(&admin.tokens.access))
        .await;
    assert_error(resp, 404, "not_found").await;
}

#[actix_web::test]
async fn a_deleted_items_id_is_not_given_to_the_next_item() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let token = &admin.tokens.access;
    let store = app.new_store(token, "Shop").await;
    let first = app.new_item(token, "Chair", 1.0, id_of(&store)).await;
    let resp = app
        .delete(&format!("/item/{}", id_of(&first)), Some(token))
        .await;
    body_of(resp, StatusCode::OK).await;
    let second = app.new_item(token, "Chair", 1.0, id_of(&store)).await;
    assert!(id_of(&second) > id_of(&first), "{second} after {first}");
}
