//! Stores: creating, reading, listing and deleting them, with their guards; and the
//! helpers the item and tag tests share (the resource guard matrix, shapes, lists).

use futures_util::future::join_all;
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::errors::expect_error;
use crate::helpers::{flask_payload, forge, TestApp, TestUser, TEST_KEY};

// ---------------------------------------------------------------------------------------
// Shared helpers (used by items.rs and tags.rs too)

/// An id that names nothing in a fresh database.
pub(crate) const MISSING: i64 = 999_999;

/// What a resource route demands of its token (API.md, Endpoints, Guards).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Guard {
    Optional,
    Access,
    Fresh,
    Admin,
    FreshAdmin,
}

/// The tokens a client may present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bearer {
    Nothing,
    Garbage,
    Expired,
    UserRefresh,
    AdminRefresh,
    UserFresh,
    UserStale,
    AdminFresh,
    AdminStale,
}

pub(crate) const BEARERS: [Bearer; 9] = [
    Bearer::Nothing,
    Bearer::Garbage,
    Bearer::Expired,
    Bearer::UserRefresh,
    Bearer::AdminRefresh,
    Bearer::UserFresh,
    Bearer::UserStale,
    Bearer::AdminFresh,
    Bearer::AdminStale,
];

/// What a guard answers to a token it refuses: (status, error, message when fixed).
pub(crate) fn refusal(
    guard: Guard,
    bearer: Bearer,
) -> Option<(u16, &'static str, Option<&'static str>)> {
    use Bearer::*;
    use Guard::*;
    const NO_TOKEN: (u16, &str, Option<&str>) = (
        401,
        "authorization_required",
        Some("Request does not contain an access token."),
    );
    const ONLY_ACCESS: (u16, &str, Option<&str>) = (
        401,
        "invalid_token",
        Some("Only access tokens are allowed."),
    );
    const NOT_FRESH: (u16, &str, Option<&str>) =
        (401, "fresh_token_required", Some("The token is not fresh."));
    const NOT_ADMIN: (u16, &str, Option<&str>) =
        (403, "admin_required", Some("Admin privilege required."));
    match (bearer, guard) {
        (Garbage, _) => Some((401, "invalid_token", None)),
        (Expired, _) => Some((401, "token_expired", Some("The token has expired."))),
        (Nothing, Optional) => None,
        (Nothing, _) => Some(NO_TOKEN),
        (UserRefresh | AdminRefresh, _) => Some(ONLY_ACCESS),
        (AdminFresh, _) => None,
        (UserFresh, Admin | FreshAdmin) => Some(NOT_ADMIN),
        (UserFresh, Optional | Access | Fresh) => None,
        // Freshness is checked before admin: a stale non-admin token on a fresh admin
        // route is told to get fresh first.
        (UserStale | AdminStale, Fresh | FreshAdmin) => Some(NOT_FRESH),
        (UserStale, Admin) => Some(NOT_ADMIN),
        (UserStale | AdminStale, Optional | Access | Admin) => None,
    }
}

/// A user and the admin, each with a fresh access token, a non-fresh one and a live
/// refresh token; plus a garbage token and an expired one.
pub(crate) struct Cast {
    pub user: TestUser,
    pub user_stale: String,
    pub admin: TestUser,
    pub admin_stale: String,
    pub expired: String,
}

impl Cast {
    pub(crate) async fn new(app: &TestApp) -> Cast {
        let mut user = app.user().await;
        let user_stale = app.non_fresh_access(&mut user).await;
        let mut admin = app.admin().await;
        let admin_stale = app.non_fresh_access(&mut admin).await;
        let now = chrono::Utc::now().timestamp();
        let expired = forge(
            flask_payload(
                user.id,
                json!({"iat": now - 1000, "nbf": now - 1000, "exp": now - 60}),
            ),
            TEST_KEY,
        );
        Cast {
            user,
            user_stale,
            admin,
            admin_stale,
            expired,
        }
    }

    pub(crate) fn token(&self, bearer: Bearer) -> Option<&str> {
        match bearer {
            Bearer::Nothing => None,
            Bearer::Garbage => Some("not-a-jwt"),
            Bearer::Expired => Some(&self.expired),
            Bearer::UserRefresh => Some(&self.user.tokens.refresh),
            Bearer::AdminRefresh => Some(&self.admin.tokens.refresh),
            Bearer::UserFresh => Some(&self.user.tokens.access),
            Bearer::UserStale => Some(&self.user_stale),
            Bearer::AdminFresh => Some(&self.admin.tokens.access),
            Bearer::AdminStale => Some(&self.admin_stale),
        }
    }
}

/// A guarded route with a request that the handler refuses once past the guard (a bad
/// body or query, or a missing id), and that refusal: (status, error, field location
/// and name for a 422).
pub(crate) struct GuardCase {
    pub method: Method,
    pub path: String,
    pub guard: Guard,
    pub body: Option<Value>,
    pub past_guard: (u16, &'static str, Option<(&'static str, &'static str)>),
}

/// Tries every case with every bearer: a refused token gets its guard's answer, an
/// accepted one reaches the handler and gets the case's own refusal. Returns how many
/// requests were (refused, let through).
pub(crate) async fn run_guard_matrix(
    app: &TestApp,
    cast: &Cast,
    cases: &[GuardCase],
) -> (usize, usize) {
    let (mut refused, mut passed) = (0, 0);
    for case in cases {
        for bearer in BEARERS {
            let resp = app
                .request(
                    case.method.clone(),
                    &case.path,
                    cast.token(bearer),
                    case.body.clone(),
                )
                .await;
            let (method, path, guard) = (&case.method, &case.path, case.guard);
            if let Some((status, error, message)) = refusal(guard, bearer) {
                eprintln!(
                    "{method} {path} ({guard:?}) with {bearer:?}: expecting {status} {error}"
                );
                expect_error(resp, status, error, message).await;
                refused += 1;
            } else {
                let (status, error, field) = case.past_guard;
                eprintln!(
                    "{method} {path} ({guard:?}) with {bearer:?}: past the guard, expecting {status} {error}"
                );
                let body = expect_error(resp, status, error, None).await;
                if let Some((location, name)) = field {
                    assert!(body["errors"][location][name].is_array(), "{body}");
                }
                passed += 1;
            }
        }
    }
    (refused, passed)
}

/// Asserts the status and a JSON body; returns the body.
pub(crate) async fn body_of(resp: Response, status: StatusCode) -> Value {
    let got = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_string());
    let text = resp.text().await.expect("body");
    assert_eq!(got, status, "{text}");
    assert_eq!(
        content_type.as_deref(),
        Some("application/json"),
        "content type of {text}"
    );
    serde_json::from_str(&text).expect("JSON body")
}

/// The `X-Total-Count` header.
pub(crate) fn total_count(resp: &Response) -> i64 {
    resp.headers()
        .get("x-total-count")
        .expect("X-Total-Count header")
        .to_str()
        .expect("ASCII")
        .parse()
        .expect("a number")
}

/// A 200 list: its X-Total-Count and its body.
pub(crate) async fn list_of(resp: Response) -> (i64, Value) {
    let total = total_count(&resp);
    let body = body_of(resp, StatusCode::OK).await;
    assert!(body.is_array(), "a list: {body}");
    (total, body)
}

/// GET `path` as a list: (X-Total-Count, body).
pub(crate) async fn get_list(app: &TestApp, path: &str, token: Option<&str>) -> (i64, Value) {
    list_of(app.get(path, token).await).await
}

pub(crate) fn id_of(value: &Value) -> i64 {
    value["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("an integer id: {value}"))
}

pub(crate) fn ids(list: &Value) -> Vec<i64> {
    list.as_array().expect("a list").iter().map(id_of).collect()
}

/// JSON equality where numbers compare by value (a price may come back as 5 or 5.0).
fn same(got: &Value, expected: &Value) -> bool {
    match (got, expected) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w)))
        }
        _ => got == expected,
    }
}

/// Asserts that `got` is exactly `expected` (same keys, nothing more), numbers by value.
pub(crate) fn assert_same(got: &Value, expected: &Value) {
    assert!(same(got, expected), "got {got}\nexpected {expected}");
}

/// A 422 `validation_error` listing exactly `fields` under `errors.<location>`, each
/// with at least one problem sentence; returns the body.
pub(crate) async fn expect_invalid(resp: Response, location: &str, fields: &[&str]) -> Value {
    let body = expect_error(resp, 422, "validation_error", Some("Invalid request.")).await;
    let listed = body["errors"][location]
        .as_object()
        .unwrap_or_else(|| panic!("errors.{location}: {body}"));
    let mut got: Vec<&str> = listed.keys().map(String::as_str).collect();
    got.sort_unstable();
    let mut expected = fields.to_vec();
    expected.sort_unstable();
    assert_eq!(got, expected, "fields under errors.{location}: {body}");
    for (field, problems) in listed {
        assert!(
            problems
                .as_array()
                .is_some_and(|p| !p.is_empty()
                    && p.iter().all(|s| s.as_str().is_some_and(|s| !s.is_empty()))),
            "{field}: {body}"
        );
    }
    body
}

/// POST /store; asserts 201.
pub(crate) async fn new_store(app: &TestApp, token: &str, name: &str) -> Value {
    let resp = app
        .post("/store", Some(token), Some(json!({"name": name})))
        .await;
    body_of(resp, StatusCode::CREATED).await
}

/// POST /item; asserts 201.
pub(crate) async fn new_item(
    app: &TestApp,
    token: &str,
    name: &str,
    price: f64,
    store_id: i64,
) -> Value {
    let body = json!({"name": name, "price": price, "store_id": store_id});
    let resp = app.post("/item", Some(token), Some(body)).await;
    body_of(resp, StatusCode::CREATED).await
}

/// POST /store/{id}/tag; asserts 201.
pub(crate) async fn new_tag(app: &TestApp, token: &str, store_id: i64, name: &str) -> Value {
    let resp = app
        .post(
            &format!("/store/{store_id}/tag"),
            Some(token),
            Some(json!({"name": name})),
        )
        .await;
    body_of(resp, StatusCode::CREATED).await
}

/// POST /item/{id}/tag/{tag_id}; asserts 201, returns the tag.
pub(crate) async fn link(app: &TestApp, token: &str, item_id: i64, tag_id: i64) -> Value {
    let resp = app
        .post(&format!("/item/{item_id}/tag/{tag_id}"), Some(token), None)
        .await;
    body_of(resp, StatusCode::CREATED).await
}

/// GET `path`; asserts 200.
pub(crate) async fn fetch(app: &TestApp, path: &str, token: &str) -> Value {
    body_of(app.get(path, Some(token)).await, StatusCode::OK).await
}

/// GET `path`; asserts the contract's 404.
pub(crate) async fn assert_gone(app: &TestApp, path: &str, token: &str) {
    eprintln!("GET {path}: expecting 404");
    expect_error(app.get(path, Some(token)).await, 404, "not_found", None).await;
}

/// `{"id", "name"}` of a store, item or tag: what nested references show.
pub(crate) fn reference(value: &Value) -> Value {
    json!({"id": value["id"], "name": value["name"]})
}

/// `{"id", "name", "price"}` of an item: what a store's or a tag's items show.
pub(crate) fn item_summary(item: &Value) -> Value {
    json!({"id": item["id"], "name": item["name"], "price": item["price"]})
}

// ---------------------------------------------------------------------------------------
// Guards

fn store_guard_cases() -> Vec<GuardCase> {
    vec![
        GuardCase {
            method: Method::GET,
            path: "/store?limit=0".into(),
            guard: Guard::Optional,
            body: None,
            past_guard: (422, "validation_error", Some(("query", "limit"))),
        },
        GuardCase {
            method: Method::GET,
            path: format!("/store/{MISSING}"),
            guard: Guard::Access,
            body: None,
            past_guard: (404, "not_found", None),
        },
        GuardCase {
            method: Method::POST,
            path: "/store".into(),
            guard: Guard::Fresh,
            body: Some(json!({"name": ""})),
            past_guard: (422, "validation_error", Some(("json", "name"))),
        },
        GuardCase {
            method: Method::DELETE,
            path: format!("/store/{MISSING}"),
            guard: Guard::FreshAdmin,
            body: None,
            past_guard: (404, "not_found", None),
        },
    ]
}

#[actix_web::test]
async fn store_routes_refuse_every_token_their_guard_does_not_accept() {
    let app = TestApp::spawn().await;
    let cast = Cast::new(&app).await;
    let (refused, passed) = run_guard_matrix(&app, &cast, &store_guard_cases()).await;
    assert_eq!((refused, passed), (24, 12));
    let (total, list) = get_list(&app, "/store", None).await;
    assert_eq!((total, list), (0, json!([])), "nothing was created");
}

#[actix_web::test]
async fn the_weakest_sufficient_token_opens_each_store_route() {
    let app = TestApp::spawn().await;
    let cast = Cast::new(&app).await;
    // POST /store: a fresh non-admin token.
    let store = new_store(&app, &cast.user.tokens.access, "Corner Shop").await;
    let path = format!("/store/{}", id_of(&store));
    // GET /store/{id}: a non-fresh access token.
    assert_same(&fetch(&app, &path, &cast.user_stale).await, &store);
    // GET /store: no token at all.
    let (total, list) = get_list(&app, "/store", None).await;
    assert_eq!(total, 1);
    assert_same(&list, &json!([store]));
    // DELETE /store/{id}: a fresh admin token; a stale admin one is told to get fresh.
    let resp = app.delete(&path, Some(&cast.admin_stale)).await;
    expect_error(resp, 401, "fresh_token_required", None).await;
    let resp = app.delete(&path, Some(&cast.user.tokens.access)).await;
    expect_error(resp, 403, "admin_required", None).await;
    fetch(&app, &path, &cast.user_stale).await;
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
    let store = new_store(&app, &token, "Open Shop").await;
    let item = new_item(&app, &token, "Lamp", 12.5, id_of(&store)).await;
    let tag = new_tag(&app, &token, id_of(&store), "Lighting").await;
    let full = fetch(&app, &format!("/store/{}", id_of(&store)), &token).await;
    assert_same(
        &full,
        &json!({
            "id": store["id"], "name": "Open Shop",
            "items": [item_summary(&item)], "tags": [reference(&tag)],
        }),
    );

    for token in [None, Some(cast.user_stale.as_str())] {
        let (total, list) = get_list(&app, "/store", token).await;
        assert_eq!(total, 1);
        assert_same(&list, &json!([full]));
    }
    let resp = app.get("/store", Some(&cast.user.tokens.refresh)).await;
    expect_error(
        resp,
        401,
        "invalid_token",
        Some("Only access tokens are allowed."),
    )
    .await;
    let resp = app.get("/store", Some("not-a-jwt")).await;
    expect_error(resp, 401, "invalid_token", None).await;
    let resp = app.get("/store", Some(&cast.expired)).await;
    expect_error(resp, 401, "token_expired", None).await;
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
    assert_same(&fetch(&app, &format!("/store/{id}"), token).await, &created);
    let (total, list) = get_list(&app, "/store", Some(token)).await;
    assert_eq!(total, 1);
    assert_same(&list, &json!([created]));
}

#[actix_web::test]
async fn a_store_name_is_stored_trimmed_and_taken_whatever_the_spaces() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let token = &user.tokens.access;
    let store = new_store(&app, token, "  Shop  ").await;
    assert_eq!(store["name"], "Shop");
    let stored = fetch(&app, &format!("/store/{}", id_of(&store)), token).await;
    assert_eq!(stored["name"], "Shop");

    for name in ["Shop", " Shop ", "Shop\t"] {
        eprintln!("POST /store {name:?}: expecting 409");
        let resp = app
            .post("/store", Some(token), Some(json!({"name": name})))
            .await;
        expect_error(
            resp,
            409,
            "conflict",
            Some("A store with that name already exists."),
        )
        .await;
    }
    let (total, list) = get_list(&app, "/store", Some(token)).await;
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
        expect_invalid(resp, "json", &["name"]).await;
    }
    let (total, _) = get_list(&app, "/store", Some(token)).await;
    assert_eq!(total, 0, "nothing was written");

    let eighty = "y".repeat(80);
    assert_eq!(new_store(&app, token, &eighty).await["name"], eighty);
    // 80 characters once trimmed, 82 before.
    let padded_name = "z".repeat(80);
    let padded = new_store(&app, token, &format!(" {padded_name} ")).await;
    assert_eq!(padded["name"], padded_name);
    // Characters, not bytes: 80 two-byte characters fit.
    let accented = "é".repeat(80);
    assert_eq!(new_store(&app, token, &accented).await["name"], accented);
    assert_eq!(new_store(&app, token, "A").await["name"], "A");
    let (total, _) = get_list(&app, "/store", Some(token)).await;
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
    expect_invalid(resp, "json", &["owner"]).await;
    // Every problem at once.
    let resp = app
        .post(
            "/store",
            Some(token),
            Some(json!({"name": "", "owner": "me"})),
        )
        .await;
    expect_invalid(resp, "json", &["name", "owner"]).await;
    let (total, _) = get_list(&app, "/store", Some(token)).await;
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
            .client
            .post(app.url("/store"))
            .bearer_auth(token)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .expect("request sent");
        expect_error(resp, 400, "bad_request", None).await;
    }
    let (total, _) = get_list(&app, "/store", Some(token)).await;
    assert_eq!(total, 0);
}

#[actix_web::test]
async fn a_store_shows_its_items_and_tags_ordered_by_id() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let token = &user.tokens.access;
    let store = new_store(&app, token, "Deli").await;
    let other = new_store(&app, token, "Bakery").await;
    let sid = id_of(&store);
    // Names in reverse alphabetical order, so a list sorted by name would differ.
    let zucchini = new_item(&app, token, "Zucchini", 1.25, sid).await;
    let bread = new_item(&app, token, "Bread", 3.1, id_of(&other)).await;
    let apple = new_item(&app, token, "Apple", 0.5, sid).await;
    let veg = new_tag(&app, token, sid, "Vegetables").await;
    let fruit = new_tag(&app, token, sid, "Fruit").await;
    new_tag(&app, token, id_of(&other), "Loaves").await;
    link(&app, token, id_of(&zucchini), id_of(&veg)).await;

    let got = fetch(&app, &format!("/store/{sid}"), token).await;
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
    let other = fetch(&app, &format!("/store/{}", id_of(&other)), token).await;
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
    let doomed = new_store(&app, token, "Closing Down").await;
    let kept = new_store(&app, token, "Still Open").await;
    let chair = new_item(&app, token, "Chair", 45.0, id_of(&doomed)).await;
    let table = new_item(&app, token, "Table", 120.99, id_of(&doomed)).await;
    let sale = new_tag(&app, token, id_of(&doomed), "Sale").await;
    link(&app, token, id_of(&chair), id_of(&sale)).await;
    let lamp = new_item(&app, token, "Lamp", 9.99, id_of(&kept)).await;
    let kept_tag = new_tag(&app, token, id_of(&kept), "Sale").await;
    link(&app, token, id_of(&lamp), id_of(&kept_tag)).await;

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
    expect_error(resp, 404, "not_found", None).await;

    // The other store is untouched.
    let (total, stores) = get_list(&app, "/store", None).await;
    assert_eq!(total, 1);
    assert_eq!(ids(&stores), [id_of(&kept)]);
    let (total, items) = get_list(&app, "/item", Some(token)).await;
    assert_eq!(total, 1);
    assert_eq!(ids(&items), [id_of(&lamp)]);
    let tag = fetch(&app, &format!("/tag/{}", id_of(&kept_tag)), token).await;
    assert_same(&tag["items"], &json!([item_summary(&lamp)]));

    // Deleting it again: there is nothing to delete.
    let resp = app
        .delete(&format!("/store/{}", id_of(&doomed)), Some(token))
        .await;
    expect_error(resp, 404, "not_found", None).await;
}

#[actix_web::test]
async fn deleting_a_store_that_does_not_exist_is_404() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let resp = app
        .delete(&format!("/store/{MISSING}"), Some(&admin.tokens.access))
        .await;
    expect_error(resp, 404, "not_found", None).await;
}

#[actix_web::test]
async fn a_deleted_stores_id_and_name_are_not_given_to_the_next_store() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let token = &admin.tokens.access;
    let first = new_store(&app, token, "Pop-up").await;
    let resp = app
        .delete(&format!("/store/{}", id_of(&first)), Some(token))
        .await;
    body_of(resp, StatusCode::OK).await;
    // The name is free again, the id is not.
    let second = new_store(&app, token, "Pop-up").await;
    assert!(
        id_of(&second) > id_of(&first),
        "{second} reuses or precedes {first}"
    );
    assert_gone(&app, &format!("/store/{}", id_of(&first)), token).await;
}

// ---------------------------------------------------------------------------------------
// GET /store: paging

/// Creates stores `prefix-0` .. `prefix-{n-1}`, a few at a time; returns their ids in
/// ascending order.
pub(crate) async fn many_stores(app: &TestApp, token: &str, prefix: &str, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    let names: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    for chunk in names.chunks(25) {
        let created = join_all(chunk.iter().map(|name| new_store(app, token, name))).await;
        ids.extend(created.iter().map(id_of));
    }
    ids.sort_unstable();
    ids
}

#[actix_web::test]
async fn the_store_list_pages_with_limit_and_offset() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let token = &user.tokens.access;
    let mut created = Vec::new();
    for name in ["E", "D", "C", "B", "A"] {
        created.push(id_of(&new_store(&app, token, name).await));
    }
    let (total, all) = get_list(&app, "/store", None).await;
    assert_eq!(total, 5);
    assert_eq!(ids(&all), created, "ordered by id");

    let (total, page) = get_list(&app, "/store?limit=2&offset=1", None).await;
    assert_eq!(total, 5, "the total, not the page size");
    assert_eq!(ids(&page), created[1..3]);
    assert_same(&page, &json!([all[1], all[2]]));

    let (total, page) = get_list(&app, "/store?offset=3", Some(token)).await;
    assert_eq!(total, 5);
    assert_eq!(ids(&page), created[3..]);

    let (total, page) = get_list(&app, "/store?limit=1", Some(token)).await;
    assert_eq!(total, 5);
    assert_eq!(ids(&page), created[..1]);

    let (total, page) = get_list(&app, "/store?offset=10", None).await;
    assert_eq!((total, page), (5, json!([])));
}

#[actix_web::test]
async fn the_store_list_shows_100_by_default_and_at_most_1000() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let token = &user.tokens.access;
    let created = many_stores(&app, token, "store", 1001).await;

    let (total, page) = get_list(&app, "/store", None).await;
    assert_eq!(total, 1001);
    assert_eq!(ids(&page), created[..100]);

    let (total, page) = get_list(&app, "/store?limit=5000", None).await;
    assert_eq!(total, 1001);
    assert_eq!(ids(&page), created[..1000]);

    let (_, page) = get_list(&app, "/store?limit=1000&offset=1000", None).await;
    assert_eq!(ids(&page), created[1000..]);
}

#[actix_web::test]
async fn bad_paging_on_the_store_list_is_422_under_errors_query() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    new_store(&app, &user.tokens.access, "Shop").await;
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
            expect_invalid(resp, "query", fields).await;
        }
    }
    let (total, page) = get_list(&app, "/store?limit=5000", None).await;
    assert_eq!(total, 1);
    assert_eq!(page.as_array().map(Vec::len), Some(1));
}
