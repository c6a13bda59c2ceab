//! Races: many clients at once on one username, one refresh token, or one session being
//! logged out while it refreshes. Each test runs on both backends; the rate limiter is
//! off so that every request reaches the code under test.

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    assert_error, assert_revoked, id_of, ok_json, sid, TestApp, TestUser, Tokens, PASSWORD,
};

/// A server whose limiter and hashing queue let a flood through (the race is the
/// point here, not load shedding), with refresh reuse grace `grace` seconds.
async fn spawn(grace: u64) -> TestApp {
    TestApp::spawn_with(|s| {
        s.limits.auth_per_minute = 0;
        s.passwords.hash_queue = 64;
        s.tokens.refresh_reuse_grace = Duration::from_secs(grace);
    })
    .await
}

/// Fires `n` refreshes of one token at once; the pairs of the 200s, every other
/// answer checked to be 401 token_revoked.
async fn concurrent_refreshes(app: &TestApp, refresh: &str, n: usize) -> Vec<Tokens> {
    let responses = join_all((0..n).map(|_| app.post("/refresh", Some(refresh), None))).await;
    let mut won = Vec::new();
    for resp in responses {
        if resp.status() == StatusCode::OK {
            won.push(Tokens::of(&ok_json(resp).await));
        } else {
            assert_error(resp, 401, "token_revoked").await;
        }
    }
    won
}

/// The ids of `user`'s live sessions, seen through a new login (which is one of them).
async fn live_sessions(app: &TestApp, user: &TestUser) -> (String, Vec<String>) {
    let again = app.another_login(user).await;
    let resp = app.get("/sessions", Some(&again.access)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let list: Value = resp.json().await.expect("JSON body");
    let ids = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect();
    (sid(&again.access), ids)
}

#[actix_web::test]
async fn fifty_concurrent_registrations_of_one_username_create_exactly_one_user() {
    let app = spawn(0).await;
    let responses = join_all((0..50).map(|_| app.register("contested-name", PASSWORD))).await;
    let mut created = 0;
    for resp in responses {
        if resp.status() == StatusCode::CREATED {
            created += 1;
        } else {
            // Never a 500, nor a 503 from SQLite's writer lock: a 409 for every loser.
            let body = assert_error(resp, 409, "conflict").await;
            assert_eq!(body["message"], "A user with that username already exists.");
        }
    }
    assert_eq!(created, 1, "exactly one registration wins");

    let admin = app.admin().await;
    let resp = app
        .get("/users?limit=1000", Some(&admin.tokens.access))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let users: Value = resp.json().await.expect("JSON body");
    let rows = users
        .as_array()
        .expect("a list")
        .iter()
        .filter(|u| u["username"] == "contested-name")
        .count();
    assert_eq!(rows, 1, "one stored user: {users}");
    app.login("contested-name", PASSWORD).await;
}

#[actix_web::test]
async fn twenty_concurrent_refreshes_without_grace_win_at_most_once_and_revoke_the_session() {
    let app = spawn(0).await;
    let user = app.user().await;
    let won = concurrent_refreshes(&app, &user.tokens.refresh, 20).await;
    assert!(
        won.len() <= 1,
        "{} refreshes of one token succeeded",
        won.len()
    );

    // Every loser presented a spent token: that is reuse, so the session is over, and
    // with it whatever the winner got.
    let resp = app.get("/me", Some(&user.tokens.access)).await;
    assert_error(resp, 401, "token_revoked").await;
    for pair in &won {
        assert_eq!(sid(&pair.access), sid(&user.tokens.access));
        assert_revoked(&app, pair).await;
    }
    let (current, live) = live_sessions(&app, &user).await;
    assert_eq!(live, vec![current], "only the new login's session is live");
}

#[actix_web::test]
async fn twenty_concurrent_refreshes_within_grace_all_continue_the_same_session() {
    let app = spawn(30).await;
    let user = app.user().await;
    let won = concurrent_refreshes(&app, &user.tokens.refresh, 20).await;
    // A double submit within the grace period is not reuse, however many copies.
    assert_eq!(won.len(), 20, "every copy of the double submit succeeds");
    let session = sid(&user.tokens.access);
    for pair in &won {
        assert_eq!(sid(&pair.access), session);
        assert_eq!(sid(&pair.refresh), session);
        let resp = app.get("/me", Some(&pair.access)).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let resp = app.get("/sessions", Some(&won[0].access)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let list: Value = resp.json().await.expect("JSON body");
    let ids: Vec<&str> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|s| s["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, vec![session.as_str()], "one session: {list}");
    // The chain goes on from any of the answers.
    let resp = app.post("/refresh", Some(&won[19].refresh), None).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[actix_web::test]
async fn logout_racing_refresh_always_leaves_the_session_revoked() {
    let app = spawn(0).await;
    let user = app.user().await;
    for round in 0..20 {
        let login = app.login(&user.username, PASSWORD).await;
        let (logout, refresh) = tokio::join!(
            app.post("/logout", Some(&login.access), None),
            app.post("/refresh", Some(&login.refresh), None),
        );
        assert_eq!(logout.status(), StatusCode::OK, "round {round}: logout");
        assert_revoked(&app, &login).await;
        if refresh.status() == StatusCode::OK {
            // The refresh won the race: what it handed out dies with the session.
            assert_revoked(&app, &Tokens::of(&ok_json(refresh).await)).await;
        } else {
            assert_error(refresh, 401, "token_revoked").await;
        }
    }
    let (current, live) = live_sessions(&app, &user).await;
    assert_eq!(
        live.len(),
        2,
        "the user's first login and the new one: {live:?}"
    );
    assert!(live.contains(&current));
    assert!(live.contains(&sid(&user.tokens.access)));
}

/// Concurrent writers on one SQLite file (or PostgreSQL) all get their turn: an update
/// reads before it writes, and a deferred SQLite transaction would be refused the lock
/// upgrade at once (SQLITE_BUSY) instead of waiting; 40% of them answered 503 so.
#[actix_web::test]
async fn concurrent_writes_all_succeed_and_the_last_one_stays() {
    let app = spawn(0).await;
    let admin = app.admin().await;
    let token = admin.tokens.access.as_str();
    let (store, item) = app.store_with_item(token, "Busy", "Hot").await;
    let path = format!("/item/{}", item["id"]);

    let updates = (1..=30).map(|cents| {
        app.put(
            &path,
            Some(token),
            json!({"price": f64::from(cents) / 100.0}),
        )
    });
    let creates = (0..10).map(|n| {
        app.post(
            "/item",
            Some(token),
            Some(json!({"name": format!("Also {n}"), "price": 2, "store_id": store["id"]})),
        )
    });
    let (updated, created) = tokio::join!(join_all(updates), join_all(creates));
    for resp in updated {
        assert_eq!(resp.status(), StatusCode::OK, "{:?}", resp.text().await);
    }
    for resp in created {
        assert_eq!(
            resp.status(),
            StatusCode::CREATED,
            "{:?}",
            resp.text().await
        );
    }
    let resp = app.get(&path, Some(token)).await;
    let body: Value = resp.json().await.expect("item");
    let price = body["price"].as_f64().expect("price");
    assert!((0.01..=0.30).contains(&price), "{body}");
    let resp = app
        .get(&format!("/store/{}", store["id"]), Some(token))
        .await;
    let body: Value = resp.json().await.expect("store");
    assert_eq!(body["items"].as_array().map(Vec::len), Some(11), "{body}");
}

#[actix_web::test]
async fn reads_of_different_items_that_arrive_together_each_get_their_own() {
    // GET /item/{id} answers the reads that arrive together with one query (db::BatchedReads):
    // each must still get exactly its own item, and a missing id its own 404.
    let app = spawn(0).await;
    let admin = app.admin().await;
    let token = admin.tokens.access.as_str();
    let (corner, lamp) = app.store_with_item(token, "Corner", "Lamp").await;
    let (_, mug) = app.store_with_item(token, "Kiosk", "Mug").await;
    let resp = app
        .post(
            "/item",
            Some(token),
            Some(json!({"name": "Desk", "price": 120.5, "store_id": corner["id"]})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let desk: Value = resp.json().await.expect("item");
    let resp = app
        .post(
            &format!("/store/{}/tag", corner["id"]),
            Some(token),
            Some(json!({"name": "wood"})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let tag: Value = resp.json().await.expect("tag");
    let path = format!("/item/{}/tag/{}", desk["id"], tag["id"]);
    assert!(app
        .post(&path, Some(token), None)
        .await
        .status()
        .is_success());

    let ids: Vec<i64> = [&lamp, &mug, &desk]
        .iter()
        .map(|item| item["id"].as_i64().expect("id"))
        .collect();
    let missing = ids.iter().max().expect("ids") + 1000;
    let mut expected = Vec::new();
    for id in ids.iter().chain([&missing]) {
        let resp = app.get(&format!("/item/{id}"), Some(token)).await;
        let status = resp.status();
        expected.push((*id, status, resp.json::<Value>().await.expect("body")));
    }
    assert_eq!(expected[2].2["tags"][0]["name"], "wood");
    assert_eq!(expected[3].1, StatusCode::NOT_FOUND);

    let reads = (0..120).map(|n| {
        let (app, (id, status, body)) = (&app, &expected[n % expected.len()]);
        async move {
            let resp = app.get(&format!("/item/{id}"), Some(token)).await;
            assert_eq!(resp.status(), *status, "GET /item/{id}");
            assert_eq!(
                &resp.json::<Value>().await.expect("body"),
                body,
                "GET /item/{id}"
            );
        }
    });
    join_all(reads).await;
}

#[actix_web::test]
async fn reads_of_different_stores_tags_and_users_that_arrive_together_each_get_their_own() {
    // GET /store/{id}, /tag/{id} and /me answer the reads that arrive together with one
    // round of queries each (db::BatchedReads): each must still get exactly its own row
    // with its own nested lists, and a missing id its own 404.
    let app = spawn(0).await;
    let admin = app.admin().await;
    let token = admin.tokens.access.as_str();
    let (corner, lamp) = app.store_with_item(token, "Corner", "Lamp").await;
    let (kiosk, mug) = app.store_with_item(token, "Kiosk", "Mug").await;
    let empty = app.new_store(token, "Empty").await;
    let desk = app.new_item(token, "Desk", 120.5, id_of(&corner)).await;
    let wood = app.new_tag(token, id_of(&corner), "wood").await;
    let cheap = app.new_tag(token, id_of(&kiosk), "cheap").await;
    let unused = app.new_tag(token, id_of(&corner), "unused").await;
    app.link(token, id_of(&desk), id_of(&wood)).await;
    app.link(token, id_of(&lamp), id_of(&wood)).await;
    app.link(token, id_of(&mug), id_of(&cheap)).await;
    let users = [app.user().await, app.user().await];

    let missing = 1000
        + [&empty, &unused]
            .iter()
            .map(|v| id_of(v))
            .max()
            .unwrap_or(0);
    let mut paths: Vec<(String, &str)> = Vec::new();
    for id in [&corner, &kiosk, &empty]
        .iter()
        .map(|v| id_of(v))
        .chain([missing])
    {
        paths.push((format!("/store/{id}"), token));
    }
    for id in [&wood, &cheap, &unused]
        .iter()
        .map(|v| id_of(v))
        .chain([missing])
    {
        paths.push((format!("/tag/{id}"), token));
    }
    for user in &users {
        paths.push(("/me".to_string(), user.tokens.access.as_str()));
    }
    paths.push(("/me".to_string(), token));
    let mut expected = Vec::new();
    for (path, token) in &paths {
        let resp = app.get(path, Some(token)).await;
        let status = resp.status();
        expected.push((
            path,
            *token,
            status,
            resp.json::<Value>().await.expect("body"),
        ));
    }
    assert_eq!(expected[0].3["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(expected[0].3["tags"].as_array().map(Vec::len), Some(2));
    assert_eq!(expected[3].2, StatusCode::NOT_FOUND);
    assert_eq!(expected[4].3["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(expected[7].2, StatusCode::NOT_FOUND);
    assert_eq!(expected[8].3["id"], users[0].id);
    assert_eq!(expected[9].3["id"], users[1].id);

    let reads = (0..150).map(|n| {
        let (app, (path, token, status, body)) = (&app, &expected[n % expected.len()]);
        async move {
            let resp = app.get(path, Some(token)).await;
            assert_eq!(resp.status(), *status, "GET {path}");
            assert_eq!(
                &resp.json::<Value>().await.expect("body"),
                body,
                "GET {path}"
            );
        }
    });
    join_all(reads).await;
}
