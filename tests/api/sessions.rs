//! Sessions: listing and ending them, logout scopes, fresh-login, refresh rotation
//! with reuse detection, and what concurrent clients see.

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    assert_alive, assert_error, assert_revoked, claims, credentials, flask_payload, forge, ok_json,
    sid, TestApp, PASSWORD, TEST_KEY,
};

/// GET /sessions with `token`; panics unless 200 and a list.
async fn sessions(app: &TestApp, token: &str) -> Vec<Value> {
    ok_json(app.get("/sessions", Some(token)).await)
        .await
        .as_array()
        .expect("a list")
        .clone()
}

fn rfc3339(value: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is a string"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text} is not RFC 3339: {e}"))
}

// GET /sessions

#[actix_web::test]
async fn the_session_list_shows_each_login_and_marks_the_current_one() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let second = app.another_login(&user).await;

    let list = sessions(&app, &second.access).await;
    assert_eq!(list.len(), 2, "{list:?}");
    for session in &list {
        let mut keys: Vec<&str> = session
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "created_at",
                "current",
                "id",
                "ip",
                "refreshed_at",
                "user_agent"
            ],
            "{session}"
        );
        rfc3339(&session["created_at"]);
        assert!(session["refreshed_at"].is_null(), "{session}");
        assert!(session["current"].is_boolean(), "{session}");
    }
    let current: Vec<&Value> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "{list:?}");
    assert_eq!(current[0]["id"], sid(&second.access));
    let mut ids: Vec<String> = list
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let mut expected = vec![sid(&user.tokens.access), sid(&second.access)];
    expected.sort();
    assert_eq!(ids, expected);

    // Asked from the first session, that one is current.
    let list = sessions(&app, &user.tokens.access).await;
    let current: Vec<&Value> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "{list:?}");
    assert_eq!(current[0]["id"], sid(&user.tokens.access));
}

#[actix_web::test]
async fn the_session_list_shows_the_login_user_agent_and_address() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let agent = "StoresApp/2.1 (iPhone; iOS 17.4)";
    let resp = app
        .call(Method::POST, "/login")
        .header("User-Agent", agent)
        .json(&credentials(&user.username, PASSWORD))
        .send()
        .await;
    let body = ok_json(resp).await;
    let access = body["access_token"].as_str().expect("access");

    let list = sessions(&app, access).await;
    let mine = list
        .iter()
        .find(|s| s["id"] == sid(access))
        .expect("the phone's session is listed");
    assert_eq!(mine["user_agent"], agent);
    assert_eq!(mine["ip"], "127.0.0.1");
    assert_eq!(mine["current"], true);
}

#[actix_web::test]
async fn refreshing_stamps_refreshed_at_on_that_session_only() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let other = app.another_login(&user).await;
    let next = app.refresh(&user.tokens.refresh).await;
    assert_eq!(sid(&next.access), sid(&user.tokens.access), "same session");

    let list = sessions(&app, &next.access).await;
    assert_eq!(list.len(), 2, "refresh opens no session: {list:?}");
    let refreshed = list
        .iter()
        .find(|s| s["id"] == sid(&next.access))
        .expect("listed");
    assert_eq!(refreshed["current"], true);
    let at = rfc3339(&refreshed["refreshed_at"]);
    assert!(at >= rfc3339(&refreshed["created_at"]), "{refreshed}");
    let untouched = list
        .iter()
        .find(|s| s["id"] == sid(&other.access))
        .expect("listed");
    assert!(untouched["refreshed_at"].is_null(), "{untouched}");
}

// DELETE /sessions/{id}

#[actix_web::test]
async fn ending_a_session_from_another_device_revokes_its_tokens() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let lost_phone = app.another_login(&user).await;

    let resp = app
        .delete(
            &format!("/sessions/{}", sid(&lost_phone.access)),
            Some(&user.tokens.access),
        )
        .await;
    ok_json(resp).await;
    assert_revoked(&app, &lost_phone).await;
    assert_alive(&app, &user.tokens).await;
    let list = sessions(&app, &user.tokens.access).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], sid(&user.tokens.access));

    // Ending it again: it is no longer there.
    let resp = app
        .delete(
            &format!("/sessions/{}", sid(&lost_phone.access)),
            Some(&user.tokens.access),
        )
        .await;
    assert_error(resp, 404, "not_found").await;
}

#[actix_web::test]
async fn another_users_session_cannot_be_ended_and_looks_missing() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let resp = app
        .delete(
            &format!("/sessions/{}", sid(&bob.tokens.access)),
            Some(&alice.tokens.access),
        )
        .await;
    assert_error(resp, 404, "not_found").await;
    assert_alive(&app, &bob.tokens).await;
    let resp = app.post("/refresh", Some(&bob.tokens.refresh), None).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[actix_web::test]
async fn ending_an_unknown_session_is_a_404() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let unknown = uuid::Uuid::new_v4();
    let resp = app
        .delete(&format!("/sessions/{unknown}"), Some(&user.tokens.access))
        .await;
    assert_error(resp, 404, "not_found").await;
    let resp = app
        .delete("/sessions/not-a-uuid", Some(&user.tokens.access))
        .await;
    assert_error(resp, 404, "not_found").await;
    assert_alive(&app, &user.tokens).await;
}

// POST /logout scopes

#[actix_web::test]
async fn logging_out_ends_only_this_session_by_default() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let laptop = app.another_login(&user).await;
    let phone = app.another_login(&user).await;

    let resp = app.post("/logout", Some(&user.tokens.access), None).await;
    assert_eq!(
        ok_json(resp).await,
        json!({"message": "Successfully logged out"})
    );
    assert_revoked(&app, &user.tokens).await;
    assert_alive(&app, &laptop).await;

    let resp = app
        .post("/logout?scope=local", Some(&laptop.access), None)
        .await;
    ok_json(resp).await;
    assert_revoked(&app, &laptop).await;
    assert_alive(&app, &phone).await;
    let list = sessions(&app, &phone.access).await;
    assert_eq!(list.len(), 1, "{list:?}");
}

#[actix_web::test]
async fn logging_out_everywhere_ends_every_session_of_the_caller() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let laptop = app.another_login(&user).await;
    let someone_else = app.user().await;

    let resp = app
        .post("/logout?scope=global", Some(&laptop.access), None)
        .await;
    ok_json(resp).await;
    assert_revoked(&app, &laptop).await;
    assert_revoked(&app, &user.tokens).await;
    assert_alive(&app, &someone_else.tokens).await;
    // Logging in again still works.
    let again = app.another_login(&user).await;
    assert_eq!(sessions(&app, &again.access).await.len(), 1);
}

#[actix_web::test]
async fn logging_out_the_others_keeps_this_session() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let laptop = app.another_login(&user).await;
    let phone = app.another_login(&user).await;

    let resp = app
        .post("/logout?scope=others", Some(&user.tokens.access), None)
        .await;
    ok_json(resp).await;
    assert_revoked(&app, &laptop).await;
    assert_revoked(&app, &phone).await;
    assert_alive(&app, &user.tokens).await;
    let next = app.refresh(&user.tokens.refresh).await;
    let list = sessions(&app, &next.access).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], sid(&user.tokens.access));
}

#[actix_web::test]
async fn an_unknown_logout_scope_is_a_422_and_logs_nobody_out() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let resp = app
        .post("/logout?scope=bogus", Some(&user.tokens.access), None)
        .await;
    let body = assert_error(resp, 422, "validation_error").await;
    assert!(body["errors"]["query"]["scope"].is_array(), "{body}");
    assert_alive(&app, &user.tokens).await;
}

#[actix_web::test]
async fn logging_out_a_token_without_a_session_revokes_that_token() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let foreign = forge(flask_payload(user.id, json!({})), TEST_KEY);
    ok_json(app.get("/me", Some(&foreign)).await).await;

    let resp = app.post("/logout", Some(&foreign), None).await;
    assert_eq!(
        ok_json(resp).await,
        json!({"message": "Successfully logged out"})
    );
    assert_error(app.get("/me", Some(&foreign)).await, 401, "token_revoked").await;
    // The user's own session is another matter.
    assert_alive(&app, &user.tokens).await;
}

// POST /fresh-login

#[actix_web::test]
async fn fresh_login_gives_only_a_fresh_access_token_with_its_own_session() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let resp = app
        .post(
            "/fresh-login",
            None,
            Some(json!({"username": user.username, "password": PASSWORD})),
        )
        .await;
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body = ok_json(resp).await;
    let mut keys: Vec<&str> = body
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["access_token", "expires_in", "token_type"], "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["expires_in"], app.settings.tokens.access_ttl.as_secs());
    let access = body["access_token"].as_str().expect("access").to_string();
    assert_eq!(claims(&access)["fresh"], true);

    let list = sessions(&app, &access).await;
    assert_eq!(list.len(), 2, "login and fresh-login: {list:?}");
    let current: Vec<&Value> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "{list:?}");
    assert_eq!(current[0]["id"], sid(&access));
    assert_ne!(sid(&access), sid(&user.tokens.access));

    // Fresh enough for the most sensitive action.
    let resp = app
        .delete(&format!("/user/{}", user.id), Some(&access))
        .await;
    assert_eq!(ok_json(resp).await, json!({"message": "User deleted."}));
}

#[actix_web::test]
async fn fresh_login_with_a_wrong_password_is_invalid_credentials() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let resp = app
        .post(
            "/fresh-login",
            None,
            Some(json!({"username": user.username, "password": "wrong-password"})),
        )
        .await;
    assert_error(resp, 401, "invalid_credentials").await;
    assert_eq!(sessions(&app, &user.tokens.access).await.len(), 1);
}

// POST /refresh rotation

#[actix_web::test]
async fn each_refresh_hands_out_a_new_refresh_token_and_the_chain_goes_on() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let mut chain = vec![user.tokens.clone()];
    for _ in 0..3 {
        let next = app.refresh(&chain.last().unwrap().refresh).await;
        assert_eq!(claims(&next.access)["fresh"], false);
        assert_eq!(sid(&next.refresh), sid(&user.tokens.access));
        for earlier in &chain {
            assert_ne!(next.refresh, earlier.refresh);
            assert_ne!(
                claims(&next.refresh)["jti"],
                claims(&earlier.refresh)["jti"]
            );
        }
        chain.push(next);
    }
    assert_alive(&app, chain.last().unwrap()).await;
    // Access tokens of the same session stay valid until they expire.
    assert_alive(&app, &chain[0]).await;
}

#[actix_web::test]
async fn reusing_any_spent_refresh_token_revokes_the_session() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    for spent in 0..3 {
        let mut chain = vec![app.another_login(&user).await];
        for _ in 0..3 {
            let next = app.refresh(&chain.last().unwrap().refresh).await;
            chain.push(next);
        }
        let resp = app
            .post("/refresh", Some(&chain[spent].refresh), None)
            .await;
        assert_error(resp, 401, "token_revoked").await;
        assert_revoked(&app, chain.last().unwrap()).await;
    }
    // Only the reused sessions ended.
    assert_alive(&app, &user.tokens).await;
}

#[actix_web::test]
async fn within_the_grace_period_a_double_submitted_refresh_is_not_reuse() {
    let app = TestApp::spawn_with(|s| s.tokens.refresh_reuse_grace = Duration::from_secs(30)).await;
    let user = app.user().await;
    // Two sessions: each continues with one of the two answers.
    for keep_second in [false, true] {
        let login = app.another_login(&user).await;
        let first = app.refresh(&login.refresh).await;
        let second = app.refresh(&login.refresh).await;
        assert_alive(&app, &first).await;
        assert_alive(&app, &second).await;

        let kept = if keep_second { &second } else { &first };
        let next = app.refresh(&kept.refresh).await;
        let after = app.refresh(&next.refresh).await;
        assert_alive(&app, &after).await;
        assert_eq!(sid(&after.access), sid(&login.access));
    }
    assert_alive(&app, &user.tokens).await;
}

#[actix_web::test]
async fn without_a_grace_period_a_double_submitted_refresh_revokes() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let first = app.refresh(&user.tokens.refresh).await;
    let resp = app.post("/refresh", Some(&user.tokens.refresh), None).await;
    assert_error(resp, 401, "token_revoked").await;
    assert_revoked(&app, &first).await;
}

#[actix_web::test]
async fn the_grace_period_does_not_excuse_older_refresh_tokens() {
    let app = TestApp::spawn_with(|s| s.tokens.refresh_reuse_grace = Duration::from_secs(30)).await;
    let user = app.user().await;
    let first = app.refresh(&user.tokens.refresh).await;
    let second = app.refresh(&first.refresh).await;
    // The login's refresh token was spent two rotations ago: that is reuse.
    let resp = app.post("/refresh", Some(&user.tokens.refresh), None).await;
    assert_error(resp, 401, "token_revoked").await;
    assert_revoked(&app, &second).await;
}

// Concurrency

#[actix_web::test]
async fn ten_concurrent_refreshes_of_one_token_succeed_at_most_once() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let token = user.tokens.refresh.clone();
    let responses = join_all((0..10).map(|_| app.post("/refresh", Some(&token), None))).await;

    let mut ok = 0;
    for resp in responses {
        if resp.status() == StatusCode::OK {
            ok += 1;
        } else {
            assert_error(resp, 401, "token_revoked").await;
        }
    }
    assert!(ok <= 1, "{ok} refreshes of one token succeeded");

    // Refresh never opens a session: a new login sees only itself.
    let again = app.another_login(&user).await;
    let list = sessions(&app, &again.access).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], sid(&again.access));
}

#[actix_web::test]
async fn ten_concurrent_registrations_of_one_name_create_one_user() {
    let app = TestApp::spawn().await;
    let responses = join_all((0..10).map(|_| app.register("popular-name", PASSWORD))).await;
    let mut created = 0;
    for resp in responses {
        if resp.status() == StatusCode::CREATED {
            created += 1;
        } else {
            let body = assert_error(resp, 409, "conflict").await;
            assert_eq!(body["message"], "A user with that username already exists.");
        }
    }
    assert_eq!(created, 1);

    let admin = app.admin().await;
    let list = ok_json(app.get("/users", Some(&admin.tokens.access)).await).await;
    let named: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["username"] == "popular-name")
        .collect();
    assert_eq!(named.len(), 1, "{list}");
    app.login("popular-name", PASSWORD).await;
}

/// GET /sessions with `query`: the page's session ids and X-Total-Count.
async fn session_page(app: &TestApp, token: &str, query: &str) -> (Vec<String>, i64) {
    let resp = app.get(&format!("/sessions{query}"), Some(token)).await;
    let total = resp
        .headers()
        .get("x-total-count")
        .expect("X-Total-Count")
        .to_str()
        .expect("ASCII")
        .parse()
        .expect("a number");
    let ids = ok_json(resp)
        .await
        .as_array()
        .expect("a list")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect();
    (ids, total)
}

#[actix_web::test]
async fn a_login_beyond_max_sessions_per_user_ends_the_oldest_session() {
    let app = TestApp::spawn_with(|s| s.tokens.max_sessions_per_user = 3).await;
    let user = app.user().await;
    let second = app.another_login(&user).await;
    let third = app.another_login(&user).await;
    let bystander = app.user().await;
    assert_eq!(session_page(&app, &third.access, "").await.1, 3);

    // The fourth login ends the first, as a logout would: both its tokens are refused.
    let fourth = app.another_login(&user).await;
    assert_revoked(&app, &user.tokens).await;
    for alive in [&second, &third, &fourth, &bystander.tokens] {
        assert_alive(&app, alive).await;
    }
    let (ids, total) = session_page(&app, &fourth.access, "").await;
    assert_eq!(total, 3);
    assert_eq!(
        ids,
        [sid(&second.access), sid(&third.access), sid(&fourth.access)]
    );

    // A fresh login opens a session too: it ends the oldest left.
    let resp = app
        .post(
            "/fresh-login",
            None,
            Some(json!({"username": user.username, "password": PASSWORD})),
        )
        .await;
    let fresh = ok_json(resp).await["access_token"]
        .as_str()
        .expect("access")
        .to_string();
    assert_revoked(&app, &second).await;
    let (ids, total) = session_page(&app, &fresh, "").await;
    assert_eq!(total, 3);
    assert_eq!(ids, [sid(&third.access), sid(&fourth.access), sid(&fresh)]);
    // Another user's sessions are not counted.
    assert_eq!(session_page(&app, &bystander.tokens.access, "").await.1, 1);
}

#[actix_web::test]
async fn sessions_are_listed_a_page_at_a_time_oldest_first_with_the_total() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let mut tokens = vec![user.tokens.clone()];
    for _ in 0..4 {
        tokens.push(app.another_login(&user).await);
    }
    let all: Vec<String> = tokens.iter().map(|t| sid(&t.access)).collect();
    let token = &tokens[0].access;
    assert_eq!(session_page(&app, token, "").await, (all.clone(), 5));
    assert_eq!(
        session_page(&app, token, "?limit=2").await,
        (all[..2].to_vec(), 5)
    );
    assert_eq!(
        session_page(&app, token, "?limit=2&offset=2").await,
        (all[2..4].to_vec(), 5)
    );
    assert_eq!(
        session_page(&app, token, "?offset=4").await,
        (all[4..].to_vec(), 5)
    );
    assert_eq!(session_page(&app, token, "?offset=9").await, (vec![], 5));

    let resp = app.get("/sessions?limit=0&offset=-1", Some(token)).await;
    let body = assert_error(resp, 422, "validation_error").await;
    assert!(body["errors"]["query"]["limit"].is_array(), "{body}");
    assert!(body["errors"]["query"]["offset"].is_array(), "{body}");
}
