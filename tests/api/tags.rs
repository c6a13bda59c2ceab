//! Tags: a store's tags, linking items to them and unlinking, and deleting a tag only
//! once no item uses it.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    assert_error, assert_gone, assert_invalid, assert_same, body_of, id_of, ids, item_summary,
    reference, run_guard_matrix, Bearer, Cast, Guard, GuardCase, TestApp, BEARERS, MISSING,
};

fn tag_path(tag: &Value) -> String {
    format!("/tag/{}", id_of(tag))
}

fn link_path(item: &Value, tag: &Value) -> String {
    format!("/item/{}/tag/{}", id_of(item), id_of(tag))
}

// ---------------------------------------------------------------------------------------
// Guards

fn tag_guard_cases() -> Vec<GuardCase> {
    let link = format!("/item/{MISSING}/tag/{MISSING}");
    vec![
        GuardCase::new(
            Method::GET,
            format!("/store/{MISSING}/tag?limit=0"),
            Guard::Access,
        )
        .then_invalid("query", "limit"),
        GuardCase::new(Method::POST, format!("/store/{MISSING}/tag"), Guard::Access)
            .json(json!({"name": ""}))
            .then_invalid("json", "name"),
        GuardCase::new(Method::GET, format!("/tag/{MISSING}"), Guard::Access)
            .then(404, "not_found"),
        GuardCase::new(Method::DELETE, format!("/tag/{MISSING}"), Guard::Admin)
            .then(404, "not_found"),
        GuardCase::new(Method::POST, &link, Guard::Access).then(404, "not_found"),
        GuardCase::new(Method::DELETE, &link, Guard::Access).then(404, "not_found"),
    ]
}

#[actix_web::test]
async fn tag_routes_refuse_every_token_their_guard_does_not_accept() {
    let app = TestApp::spawn().await;
    let cast = Cast::new(&app).await;
    let (refused, passed) = run_guard_matrix(&app, &cast, &tag_guard_cases(), &BEARERS).await;
    assert_eq!((refused, passed), (32, 22));
}

#[actix_web::test]
async fn the_guards_hold_on_tags_and_items_that_exist() {
    let app = TestApp::spawn().await;
    let cast = Cast::new(&app).await;
    let token = cast.user.tokens.access.clone();
    let store = app.new_store(&token, "Shop").await;
    let item = app.new_item(&token, "Chair", 10.0, id_of(&store)).await;
    let tag = app.new_tag(&token, id_of(&store), "Sale").await;
    let linked = app.new_tag(&token, id_of(&store), "Linked").await;
    app.link(&token, id_of(&item), id_of(&linked)).await;
    let tags_path = format!("/store/{}/tag", id_of(&store));
    // Requests that would change something were they let through: only refusals are sent.
    let cases = [
        GuardCase::new(Method::GET, &tags_path, Guard::Access),
        GuardCase::new(Method::POST, &tags_path, Guard::Access).json(json!({"name": "New"})),
        GuardCase::new(Method::GET, tag_path(&tag), Guard::Access),
        GuardCase::new(Method::POST, link_path(&item, &tag), Guard::Access),
        GuardCase::new(Method::DELETE, link_path(&item, &linked), Guard::Access),
        GuardCase::new(Method::DELETE, tag_path(&tag), Guard::Admin),
    ];
    let bearers = [
        Bearer::Nothing,
        Bearer::UserRefresh,
        Bearer::Expired,
        Bearer::UserFresh,
        Bearer::UserStale,
    ];
    let (refused, passed) = run_guard_matrix(&app, &cast, &cases, &bearers).await;
    assert_eq!((refused, passed), (20, 0));
    // Nothing changed.
    let (total, list) = app.get_list(&tags_path, Some(&token)).await;
    assert_eq!(total, 2);
    assert_eq!(ids(&list), [id_of(&tag), id_of(&linked)]);
    let item = app.fetch(&format!("/item/{}", id_of(&item)), &token).await;
    assert_same(&item["tags"], &json!([reference(&linked)]));
}

#[actix_web::test]
async fn the_weakest_sufficient_token_opens_each_tag_route() {
    let app = TestApp::spawn().await;
    let cast = Cast::new(&app).await;
    let stale = cast.user_stale.clone();
    let store = app.new_store(&cast.user.tokens.access, "Shop").await;
    let item = app
        .new_item(&cast.user.tokens.access, "Chair", 10.0, id_of(&store))
        .await;
    // Everything but deleting a tag takes any access token, fresh or not.
    let tag = app.new_tag(&stale, id_of(&store), "Sale").await;
    let (total, _) = app
        .get_list(&format!("/store/{}/tag", id_of(&store)), Some(&stale))
        .await;
    assert_eq!(total, 1);
    app.fetch(&tag_path(&tag), &stale).await;
    app.link(&stale, id_of(&item), id_of(&tag)).await;
    let resp = app.delete(&link_path(&item, &tag), Some(&stale)).await;
    body_of(resp, StatusCode::OK).await;
    // Deleting a tag takes an admin token, fresh or not.
    let resp = app.delete(&tag_path(&tag), Some(&cast.admin_stale)).await;
    assert_eq!(
        body_of(resp, StatusCode::ACCEPTED).await,
        json!({"message": "Tag deleted."})
    );
}

// ---------------------------------------------------------------------------------------
// POST /store/{id}/tag, GET /tag/{id}

#[actix_web::test]
async fn a_client_tags_a_store_and_reads_the_tag_back() {
    let app = TestApp::spawn().await;
    let (token, store) = app.shop("Shop").await;
    let resp = app
        .post(
            &format!("/store/{}/tag", id_of(&store)),
            Some(&token),
            Some(json!({"name": "  Sale  "})),
        )
        .await;
    let tag = body_of(resp, StatusCode::CREATED).await;
    assert_same(
        &tag,
        &json!({
            "id": tag["id"], "name": "Sale",
            "store": {"id": store["id"], "name": "Shop"}, "items": [],
        }),
    );
    assert!(tag["id"].is_i64(), "{tag}");
    assert_same(&app.fetch(&tag_path(&tag), &token).await, &tag);
    let store = app
        .fetch(&format!("/store/{}", id_of(&store)), &token)
        .await;
    assert_same(&store["tags"], &json!([{"id": tag["id"], "name": "Sale"}]));
}

#[actix_web::test]
async fn a_tag_name_is_taken_within_its_store_only() {
    let app = TestApp::spawn().await;
    let (token, store) = app.shop("Shop").await;
    let other = app.new_store(&token, "Other").await;
    let sale = app.new_tag(&token, id_of(&store), "Sale").await;
    let path = format!("/store/{}/tag", id_of(&store));
    for name in ["Sale", " Sale "] {
        eprintln!("POST {path} {name:?}: expecting 409");
        let resp = app
            .post(&path, Some(&token), Some(json!({"name": name})))
            .await;
        let refused = assert_error(resp, 409, "conflict").await;
        assert_eq!(
            refused["message"],
            "A tag with that name already exists in this store."
        );
    }
    let elsewhere = app.new_tag(&token, id_of(&other), "Sale").await;
    assert_eq!(elsewhere["name"], "Sale");
    assert_same(&elsewhere["store"], &reference(&other));
    assert_ne!(id_of(&elsewhere), id_of(&sale));

    let (total, list) = app.get_list(&path, Some(&token)).await;
    assert_eq!(total, 1);
    assert_eq!(ids(&list), [id_of(&sale)]);
}

#[actix_web::test]
async fn a_tag_body_is_checked_before_the_store_is_looked_up() {
    let app = TestApp::spawn().await;
    let (token, store) = app.shop("Shop").await;
    let missing = format!("/store/{MISSING}/tag");
    let resp = app
        .post(&missing, Some(&token), Some(json!({"name": ""})))
        .await;
    assert_invalid(resp, "json", &["name"]).await;
    let resp = app
        .post(&missing, Some(&token), Some(json!({"name": "Sale"})))
        .await;
    assert_error(resp, 404, "not_found").await;

    let path = format!("/store/{}/tag", id_of(&store));
    let long = "x".repeat(81);
    let bad = [
        (json!({"name": ""}), vec!["name"]),
        (json!({"name": "   "}), vec!["name"]),
        (json!({"name": long}), vec!["name"]),
        (json!({"name": 5}), vec!["name"]),
        (json!({}), vec!["name"]),
        (
            json!({"name": "Sale", "store_id": store["id"]}),
            vec!["store_id"],
        ),
        (json!({"name": "", "colour": "red"}), vec!["name", "colour"]),
    ];
    for (body, fields) in bad {
        eprintln!("POST {path} {body}: expecting 422 on {fields:?}");
        let resp = app.post(&path, Some(&token), Some(body)).await;
        assert_invalid(resp, "json", &fields).await;
    }
    let (total, list) = app.get_list(&path, Some(&token)).await;
    assert_eq!((total, list), (0, json!([])), "nothing was written");
    let eighty = "t".repeat(80);
    assert_eq!(
        app.new_tag(&token, id_of(&store), &eighty).await["name"],
        eighty
    );
}

#[actix_web::test]
async fn reading_a_tag_that_does_not_exist_is_404() {
    let app = TestApp::spawn().await;
    let (token, _) = app.shop("Shop").await;
    for path in [
        format!("/tag/{MISSING}"),
        "/tag/0".into(),
        "/tag/abc".into(),
    ] {
        assert_gone(&app, &path, &token).await;
    }
}

// ---------------------------------------------------------------------------------------
// GET /store/{id}/tag

#[actix_web::test]
async fn a_stores_tag_list_has_only_its_tags_in_full_ordered_by_id() {
    let app = TestApp::spawn().await;
    let (token, store) = app.shop("Shop").await;
    let other = app.new_store(&token, "Other").await;
    let zebra = app.new_tag(&token, id_of(&store), "Zebra").await;
    app.new_tag(&token, id_of(&other), "Elsewhere").await;
    let apple = app.new_tag(&token, id_of(&store), "Apple").await;
    let chair = app.new_item(&token, "Chair", 10.5, id_of(&store)).await;
    let desk = app.new_item(&token, "Desk", 99.99, id_of(&store)).await;
    // Linked in reverse id order: the tag still lists its items by id.
    app.link(&token, id_of(&desk), id_of(&zebra)).await;
    app.link(&token, id_of(&chair), id_of(&zebra)).await;

    let (total, list) = app
        .get_list(&format!("/store/{}/tag", id_of(&store)), Some(&token))
        .await;
    assert_eq!(total, 2);
    assert_same(
        &list,
        &json!([
            {
                "id": zebra["id"], "name": "Zebra", "store": reference(&store),
                "items": [item_summary(&chair), item_summary(&desk)],
            },
            {"id": apple["id"], "name": "Apple", "store": reference(&store), "items": []},
        ]),
    );
    assert_same(&app.fetch(&tag_path(&zebra), &token).await, &list[0]);

    let resp = app
        .get(&format!("/store/{MISSING}/tag"), Some(&token))
        .await;
    assert_error(resp, 404, "not_found").await;
}

#[actix_web::test]
async fn a_stores_tag_list_pages_with_limit_and_offset() {
    let app = TestApp::spawn().await;
    let (token, store) = app.shop("Shop").await;
    let path = format!("/store/{}/tag", id_of(&store));
    let mut created = Vec::new();
    for name in ["E", "D", "C", "B", "A"] {
        created.push(id_of(&app.new_tag(&token, id_of(&store), name).await));
    }
    let (total, all) = app.get_list(&path, Some(&token)).await;
    assert_eq!(total, 5);
    assert_eq!(ids(&all), created);

    let (total, page) = app
        .get_list(&format!("{path}?limit=2&offset=1"), Some(&token))
        .await;
    assert_eq!(total, 5, "the total, not the page size");
    assert_same(&page, &json!([all[1], all[2]]));

    let (total, page) = app
        .get_list(&format!("{path}?offset=5"), Some(&token))
        .await;
    assert_eq!((total, page), (5, json!([])));

    let (total, page) = app
        .get_list(&format!("{path}?limit=5000"), Some(&token))
        .await;
    assert_eq!(total, 5);
    assert_eq!(ids(&page), created);

    for (query, fields) in [
        ("limit=0", vec!["limit"]),
        ("limit=abc", vec!["limit"]),
        ("offset=-1", vec!["offset"]),
        ("limit=0&offset=-1", vec!["limit", "offset"]),
    ] {
        eprintln!("GET {path}?{query}: expecting 422 on {fields:?}");
        let resp = app.get(&format!("{path}?{query}"), Some(&token)).await;
        assert_invalid(resp, "query", &fields).await;
    }
}

// ---------------------------------------------------------------------------------------
// POST /item/{id}/tag/{tag_id}

#[actix_web::test]
async fn linking_an_item_to_a_tag_shows_on_both_sides() {
    let app = TestApp::spawn().await;
    let (token, store) = app.shop("Shop").await;
    let chair = app.new_item(&token, "Chair", 45.5, id_of(&store)).await;
    let sale = app.new_tag(&token, id_of(&store), "Sale").await;
    let wood = app.new_tag(&token, id_of(&store), "Wood").await;

    let resp = app
        .post(&link_path(&chair, &wood), Some(&token), None)
        .await;
    let tag = body_of(resp, StatusCode::CREATED).await;
    assert_same(
        &tag,
        &json!({
            "id": wood["id"], "name": "Wood", "store": reference(&store),
            "items": [item_summary(&chair)],
        }),
    );
    app.link(&token, id_of(&chair), id_of(&sale)).await;

    let item = app.fetch(&format!("/item/{}", id_of(&chair)), &token).await;
    let mut expected = chair.clone();
    expected["tags"] = json!([reference(&sale), reference(&wood)]);
    assert_same(&item, &expected);
    assert_same(&app.fetch(&tag_path(&wood), &token).await, &tag);
    let (_, full) = app.get_list("/item", Some(&token)).await;
    assert_same(&full, &json!([expected]));
}

#[actix_web::test]
async fn linking_twice_is_still_one_link() {
    let app = TestApp::spawn().await;
    let (token, store) = app.shop("Shop").await;
    let chair = app.new_item(&token, "Chair", 45.5, id_of(&store)).await;
    let sale = app.new_tag(&token, id_of(&store), "Sale").await;
    let first = app.link(&token, id_of(&chair), id_of(&sale)).await;
    let second = app.link(&token, id_of(&chair), id_of(&sale)).await;
    assert_same(&second, &first);
    assert_same(&second["items"], &json!([item_summary(&chair)]));
    let item = app.fetch(&format!("/item/{}", id_of(&chair)), &token).await;
    assert_same(&item["tags"], &json!([reference(&sale)]));
    // One unlink removes it.
    let resp = app.delete(&link_path(&chair, &sale), Some(&token)).await;
    body_of(resp, StatusCode::OK).await;
    let item = app.fetch(&format!("/item/{}", id_of(&chair)), &token).await;
    assert_eq!(item["tags"], json!([]));
}

#[actix_web::test]
async fn an_item_and_a_tag_of_different_stores_cannot_be_linked() {
    let app = TestApp::spawn().await;
    let (token, store) = app.shop("Shop").await;
    let other = app.new_store(&token, "Other").await;
    let chair = app.new_item(&token, "Chair", 45.5, id_of(&store)).await;
    let foreign = app.new_tag(&token, id_of(&other), "Sale").await;
    let resp = app
        .post(&link_path(&chair, &foreign), Some(&token), None)
        .await;
    let body = assert_error(resp, 422, "validation_error").await;
    assert!(
        body["errors"]["path"]["tag_id"]
            .as_array()
            .is_some_and(|p| !p.is_empty()),
        "{body}"
    );
    let item = app.fetch(&format!("/item/{}", id_of(&chair)), &token).await;
    assert_eq!(item["tags"], json!([]));
    let tag = app.fetch(&tag_path(&foreign), &token).await;
    assert_eq!(tag["items"], json!([]));
}

#[actix_web::test]
async fn linking_a_missing_item_or_tag_is_404() {
    let app = TestApp::spawn().await;
    let (token, store) = app.shop("Shop").await;
    let chair = app.new_item(&token, "Chair", 45.5, id_of(&store)).await;
    let sale = app.new_tag(&token, id_of(&store), "Sale").await;
    for path in [
        format!("/item/{}/tag/{MISSING}", id_of(&chair)),
        format!("/item/{MISSING}/tag/{}", id_of(&sale)),
        format!("/item/{MISSING}/tag/{MISSING}"),
        format!("/item/{}/tag/abc", id_of(&chair)),
    ] {
        eprintln!("POST {path}: expecting 404");
        let resp = app.post(&path, Some(&token), None).await;
        assert_error(resp, 404, "not_found").await;
    }
    let tag = app.fetch(&tag_path(&sale), &token).await;
    assert_eq!(tag["items"], json!([]));
}

// ---------------------------------------------------------------------------------------
// DELETE /item/{id}/tag/{tag_id}

#[actix_web::test]
async fn unlinking_returns_the_item_and_the_tag_without_each_other() {
    let app = TestApp::spawn().await;
    let (token, store) = app.shop("Shop").await;
    let chair = app.new_item(&token, "Chair", 45.5, id_of(&store)).await;
    let desk = app.new_item(&token, "Desk", 99.0, id_of(&store)).await;
    let sale = app.new_tag(&token, id_of(&store), "Sale").await;
    let wood = app.new_tag(&token, id_of(&store), "Wood").await;
    app.link(&token, id_of(&chair), id_of(&sale)).await;
    app.link(&token, id_of(&chair), id_of(&wood)).await;
    app.link(&token, id_of(&desk), id_of(&sale)).await;

    let resp = app.delete(&link_path(&chair, &sale), Some(&token)).await;
    let body = body_of(resp, StatusCode::OK).await;
    let mut item = chair.clone();
    item["tags"] = json!([reference(&wood)]);
    let tag = json!({
        "id": sale["id"], "name": "Sale", "store": reference(&store),
        "items": [item_summary(&desk)],
    });
    assert_same(
        &body,
        &json!({"message": "Item removed from tag", "item": item, "tag": tag}),
    );
    assert_same(
        &app.fetch(&format!("/item/{}", id_of(&chair)), &token).await,
        &item,
    );
    assert_same(&app.fetch(&tag_path(&sale), &token).await, &tag);

    // Not linked any more: 404, and nothing else moved.
    let resp = app.delete(&link_path(&chair, &sale), Some(&token)).await;
    assert_error(resp, 404, "not_found").await;
    assert_same(&app.fetch(&tag_path(&sale), &token).await, &tag);
}

#[actix_web::test]
async fn unlinking_what_was_never_linked_or_does_not_exist_is_404() {
    let app = TestApp::spawn().await;
    let (token, store) = app.shop("Shop").await;
    let chair = app.new_item(&token, "Chair", 45.5, id_of(&store)).await;
    let sale = app.new_tag(&token, id_of(&store), "Sale").await;
    for path in [
        link_path(&chair, &sale),
        format!("/item/{}/tag/{MISSING}", id_of(&chair)),
        format!("/item/{MISSING}/tag/{}", id_of(&sale)),
    ] {
        eprintln!("DELETE {path}: expecting 404");
        let resp = app.delete(&path, Some(&token)).await;
        assert_error(resp, 404, "not_found").await;
    }
}

// ---------------------------------------------------------------------------------------
// DELETE /tag/{id}

#[actix_web::test]
async fn a_tag_still_in_use_cannot_be_deleted_until_it_is_unlinked() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let admin_token = &admin.tokens.access;
    let (token, store) = app.shop("Shop").await;
    let chair = app.new_item(&token, "Chair", 45.5, id_of(&store)).await;
    let sale = app.new_tag(&token, id_of(&store), "Sale").await;
    let linked = app.link(&token, id_of(&chair), id_of(&sale)).await;

    let resp = app.delete(&tag_path(&sale), Some(admin_token)).await;
    assert_error(resp, 400, "bad_request").await;
    assert_same(&app.fetch(&tag_path(&sale), &token).await, &linked);
    let item = app.fetch(&format!("/item/{}", id_of(&chair)), &token).await;
    assert_same(&item["tags"], &json!([reference(&sale)]));

    let resp = app.delete(&link_path(&chair, &sale), Some(&token)).await;
    body_of(resp, StatusCode::OK).await;
    let resp = app.delete(&tag_path(&sale), Some(admin_token)).await;
    assert_eq!(
        body_of(resp, StatusCode::ACCEPTED).await,
        json!({"message": "Tag deleted."})
    );
    assert_gone(&app, &tag_path(&sale), &token).await;
    let (total, _) = app
        .get_list(&format!("/store/{}/tag", id_of(&store)), Some(&token))
        .await;
    assert_eq!(total, 0);
    let store = app
        .fetch(&format!("/store/{}", id_of(&store)), &token)
        .await;
    assert_eq!(store["tags"], json!([]));
    // The item is still there.
    app.fetch(&format!("/item/{}", id_of(&chair)), &token).await;

    let resp = app.delete(&tag_path(&sale), Some(admin_token)).await;
    assert_error(resp, 404, "not_found").await;
}

#[actix_web::test]
async fn deleting_an_item_frees_its_tags_for_deletion() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let admin_token = &admin.tokens.access;
    let (token, store) = app.shop("Shop").await;
    let chair = app.new_item(&token, "Chair", 45.5, id_of(&store)).await;
    let sale = app.new_tag(&token, id_of(&store), "Sale").await;
    app.link(&token, id_of(&chair), id_of(&sale)).await;

    let resp = app
        .delete(&format!("/item/{}", id_of(&chair)), Some(admin_token))
        .await;
    body_of(resp, StatusCode::OK).await;
    let tag = app.fetch(&tag_path(&sale), &token).await;
    assert_eq!(tag["items"], json!([]));
    let resp = app.delete(&tag_path(&sale), Some(admin_token)).await;
    assert_eq!(
        body_of(resp, StatusCode::ACCEPTED).await,
        json!({"message": "Tag deleted."})
    );
}

#[actix_web::test]
async fn deleting_a_tag_that_does_not_exist_is_404() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let resp = app
        .delete(&format!("/tag/{MISSING}"), Some(&admin.tokens.access))
        .await;
    assert_error(resp, 404, "not_found").await;
}

#[actix_web::test]
async fn a_deleted_tags_id_is_not_given_to_the_next_tag() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let token = &admin.tokens.access;
    let store = app.new_store(token, "Shop").await;
    let first = app.new_tag(token, id_of(&store), "Sale").await;
    let resp = app.delete(&tag_path(&first), Some(token)).await;
    body_of(resp, StatusCode::ACCEPTED).await;
    let second = app.new_tag(token, id_of(&store), "Sale").await;
    assert!(id_of(&second) > id_of(&first), "{second} after {first}");
}
