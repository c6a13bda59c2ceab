//! Accounts: reading and deleting users, the admin's user list and actions, and
//! changing one's password.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    assert_error, assert_revoked, ids, ok_json, total_count, TestApp, TestUser, ADMIN_USERNAME,
    PASSWORD,
};

// GET /me and GET /user/{id}

#[actix_web::test]
async fn me_shows_the_account_without_any_password_material() {
    let app = TestApp::spawn().await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(5);
    let user = app.user().await;
    let me = ok_json(app.get("/me", Some(&user.tokens.access)).await).await;

    let object = me.as_object().expect("an object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["created_at", "id", "is_admin", "username"], "{me}");
    assert_eq!(me["id"], user.id);
    assert_eq!(me["username"], user.username.as_str());
    assert_eq!(me["is_admin"], false);

    let created = me["created_at"].as_str().expect("created_at is a string");
    let parsed = chrono::DateTime::parse_from_rfc3339(created)
        .unwrap_or_else(|e| panic!("created_at {created} is not RFC 3339: {e}"));
    assert_eq!(parsed.offset().local_minus_utc(), 0, "UTC: {created}");
    let after = chrono::Utc::now() + chrono::Duration::seconds(5);
    assert!(
        before <= parsed && parsed <= after,
        "created_at {created} is the registration time"
    );
    let text = me.to_string().to_lowercase();
    assert!(!text.contains("password") && !text.contains("hash"), "{me}");
    assert!(!text.contains("$2"), "no bcrypt hash: {me}");
}

#[actix_web::test]
async fn a_user_can_read_their_own_account_but_not_someone_elses() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;

    let own = ok_json(
        app.get(&format!("/user/{}", alice.id), Some(&alice.tokens.access))
            .await,
    )
    .await;
    assert_eq!(own["id"], alice.id);
    assert_eq!(own["username"], alice.username.as_str());
    assert_eq!(own["is_admin"], false);
    assert!(own.get("password_hash").is_none(), "{own}");

    let resp = app
        .get(&format!("/user/{}", bob.id), Some(&alice.tokens.access))
        .await;
    let body = assert_error(resp, 403, "forbidden").await;
    assert!(!body.to_string().contains(&bob.username), "{body}");
}

#[actix_web::test]
async fn an_admin_can_read_any_account_and_gets_404_for_a_missing_one() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let bob = app.user().await;

    let seen = ok_json(
        app.get(&format!("/user/{}", bob.id), Some(&admin.tokens.access))
            .await,
    )
    .await;
    assert_eq!(seen["id"], bob.id);
    assert_eq!(seen["username"], bob.username.as_str());
    assert_eq!(seen["is_admin"], false);

    let resp = app.get("/user/999999", Some(&admin.tokens.access)).await;
    assert_error(resp, 404, "not_found").await;
}

#[actix_web::test]
async fn the_bootstrap_admin_exists_and_is_an_admin() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let me = ok_json(app.get("/me", Some(&admin.tokens.access)).await).await;
    assert_eq!(me["username"], ADMIN_USERNAME);
    assert_eq!(me["is_admin"], true);

    let list = ok_json(app.get("/users", Some(&admin.tokens.access)).await).await;
    let admins: Vec<&Value> = list
        .as_array()
        .expect("a list")
        .iter()
        .filter(|u| u["username"] == ADMIN_USERNAME)
        .collect();
    assert_eq!(admins.len(), 1, "{list}");
    assert_eq!(admins[0]["is_admin"], true);
}

// DELETE /user/{id}

#[actix_web::test]
async fn deleting_ones_own_account_ends_its_tokens_and_its_login() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let resp = app
        .delete(&format!("/user/{}", user.id), Some(&user.tokens.access))
        .await;
    assert_eq!(ok_json(resp).await, json!({"message": "User deleted."}));

    assert_revoked(&app, &user.tokens).await;
    let resp = app.try_login(&user.username, &user.password).await;
    assert_error(resp, 401, "invalid_credentials").await;
    let admin = app.admin().await;
    let resp = app
        .get(&format!("/user/{}", user.id), Some(&admin.tokens.access))
        .await;
    assert_error(resp, 404, "not_found").await;
}

#[actix_web::test]
async fn an_admin_can_delete_another_users_account() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let bob = app.user().await;
    let resp = app
        .delete(&format!("/user/{}", bob.id), Some(&admin.tokens.access))
        .await;
    assert_eq!(ok_json(resp).await, json!({"message": "User deleted."}));

    assert_revoked(&app, &bob.tokens).await;
    let resp = app.try_login(&bob.username, &bob.password).await;
    assert_error(resp, 401, "invalid_credentials").await;
    // The admin's own session is untouched.
    ok_json(app.get("/me", Some(&admin.tokens.access)).await).await;
}

#[actix_web::test]
async fn a_user_cannot_delete_someone_elses_account() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let resp = app
        .delete(&format!("/user/{}", bob.id), Some(&alice.tokens.access))
        .await;
    assert_error(resp, 403, "forbidden").await;

    // Bob is still there, tokens and password alike.
    let me = ok_json(app.get("/me", Some(&bob.tokens.access)).await).await;
    assert_eq!(me["id"], bob.id);
    app.login(&bob.username, &bob.password).await;
}

#[actix_web::test]
async fn deleting_a_missing_user_is_a_404_for_an_admin() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let resp = app.delete("/user/999999", Some(&admin.tokens.access)).await;
    assert_error(resp, 404, "not_found").await;
}

#[actix_web::test]
async fn the_id_of_a_deleted_user_is_never_given_to_a_new_one() {
    let app = TestApp::spawn().await;
    let first = app.user().await;
    let resp = app
        .delete(&format!("/user/{}", first.id), Some(&first.tokens.access))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);

    let second = app.user().await;
    assert!(
        second.id > first.id,
        "a new user got id {} after user {} was deleted",
        second.id,
        first.id
    );
    // A token naming the deleted user must not name the new one.
    assert_revoked(&app, &first.tokens).await;
}

// GET /users

/// Registers `n` users and returns them.
async fn users(app: &TestApp, n: usize) -> Vec<TestUser> {
    let mut list = Vec::new();
    for _ in 0..n {
        list.push(app.user().await);
    }
    list
}

#[actix_web::test]
async fn only_an_admin_can_list_users() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let resp = app.get("/users", Some(&user.tokens.access)).await;
    assert_error(resp, 403, "admin_required").await;
    let resp = app.get("/users", None).await;
    assert_error(resp, 401, "authorization_required").await;
}

#[actix_web::test]
async fn the_user_list_is_ordered_by_id_and_counts_everyone() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let created = users(&app, 3).await;

    let resp = app.get("/users", Some(&admin.tokens.access)).await;
    assert_eq!(total_count(&resp), 4);
    let list = ok_json(resp).await;
    let got = ids(&list);
    let mut expected = vec![admin.id];
    expected.extend(created.iter().map(|u| u.id));
    expected.sort_unstable();
    assert_eq!(got, expected, "{list}");
    for user in list.as_array().unwrap() {
        let mut keys: Vec<&str> = user
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["created_at", "id", "is_admin", "username"], "{user}");
    }
}

#[actix_web::test]
async fn the_user_list_pages_with_limit_and_offset() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    users(&app, 3).await;
    let all = ids(&ok_json(app.get("/users", Some(&admin.tokens.access)).await).await);
    assert_eq!(all.len(), 4);

    let resp = app
        .get("/users?limit=2&offset=1", Some(&admin.tokens.access))
        .await;
    assert_eq!(total_count(&resp), 4, "the total, not the page size");
    assert_eq!(ids(&ok_json(resp).await), all[1..3]);

    let resp = app
        .get("/users?limit=2&offset=3", Some(&admin.tokens.access))
        .await;
    assert_eq!(total_count(&resp), 4);
    assert_eq!(ids(&ok_json(resp).await), all[3..]);

    let resp = app
        .get("/users?offset=10", Some(&admin.tokens.access))
        .await;
    assert_eq!(total_count(&resp), 4);
    assert_eq!(ok_json(resp).await, json!([]));
}

#[actix_web::test]
async fn a_limit_over_1000_is_capped_not_refused() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    users(&app, 2).await;
    let resp = app
        .get("/users?limit=5000", Some(&admin.tokens.access))
        .await;
    assert_eq!(total_count(&resp), 3);
    assert_eq!(ids(&ok_json(resp).await).len(), 3);
}

#[actix_web::test]
async fn bad_paging_parameters_are_422_under_errors_query() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let resp = app
        .get("/users?limit=abc", Some(&admin.tokens.access))
        .await;
    let body = assert_error(resp, 422, "validation_error").await;
    assert!(body["errors"]["query"]["limit"].is_array(), "{body}");

    let resp = app
        .get("/users?offset=-1", Some(&admin.tokens.access))
        .await;
    let body = assert_error(resp, 422, "validation_error").await;
    assert!(body["errors"]["query"]["offset"].is_array(), "{body}");

    // Every bad parameter is listed, not only the first.
    let resp = app
        .get("/users?limit=abc&offset=-1", Some(&admin.tokens.access))
        .await;
    let body = assert_error(resp, 422, "validation_error").await;
    assert!(body["errors"]["query"]["limit"].is_array(), "{body}");
    assert!(body["errors"]["query"]["offset"].is_array(), "{body}");
}

// PATCH /user/{id}

#[actix_web::test]
async fn promoting_a_user_ends_their_sessions_and_their_next_login_is_admin() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let bob = app.user().await;
    let resp = app.get("/users", Some(&bob.tokens.access)).await;
    assert_error(resp, 403, "admin_required").await;

    let resp = app
        .patch(
            &format!("/user/{}", bob.id),
            Some(&admin.tokens.access),
            json!({"is_admin": true}),
        )
        .await;
    let body = ok_json(resp).await;
    assert_eq!(body["id"], bob.id);
    assert_eq!(body["username"], bob.username.as_str());
    assert_eq!(body["is_admin"], true);

    // Tokens carrying the old claim are gone.
    assert_revoked(&app, &bob.tokens).await;

    let tokens = app.login(&bob.username, &bob.password).await;
    let list = ok_json(app.get("/users", Some(&tokens.access)).await).await;
    assert!(ids(&list).contains(&bob.id));
    let me = ok_json(app.get("/me", Some(&tokens.access)).await).await;
    assert_eq!(me["is_admin"], true);
}

#[actix_web::test]
async fn demoting_an_admin_takes_the_admin_routes_away() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let bob = app.user().await;
    let path = format!("/user/{}", bob.id);
    let resp = app
        .patch(&path, Some(&admin.tokens.access), json!({"is_admin": true}))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let promoted = app.login(&bob.username, &bob.password).await;
    ok_json(app.get("/users", Some(&promoted.access)).await).await;

    let resp = app
        .patch(
            &path,
            Some(&admin.tokens.access),
            json!({"is_admin": false}),
        )
        .await;
    assert_eq!(ok_json(resp).await["is_admin"], false);
    assert_error(
        app.get("/users", Some(&promoted.access)).await,
        401,
        "token_revoked",
    )
    .await;
    let demoted = app.login(&bob.username, &bob.password).await;
    let resp = app.get("/users", Some(&demoted.access)).await;
    assert_error(resp, 403, "admin_required").await;
}

#[actix_web::test]
async fn a_malformed_admin_flag_is_422_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let bob = app.user().await;
    let path = format!("/user/{}", bob.id);

    let resp = app
        .patch(
            &path,
            Some(&admin.tokens.access),
            json!({"is_admin": "yes"}),
        )
        .await;
    let body = assert_error(resp, 422, "validation_error").await;
    assert!(body["errors"]["json"]["is_admin"].is_array(), "{body}");

    let resp = app
        .patch(&path, Some(&admin.tokens.access), json!({}))
        .await;
    let body = assert_error(resp, 422, "validation_error").await;
    assert!(body["errors"]["json"]["is_admin"].is_array(), "{body}");

    let resp = app
        .patch(
            &path,
            Some(&admin.tokens.access),
            json!({"is_admin": true, "role": "owner"}),
        )
        .await;
    let body = assert_error(resp, 422, "validation_error").await;
    assert!(body["errors"]["json"]["role"].is_array(), "{body}");

    // Nothing happened to Bob: still a non-admin, still logged in.
    let me = ok_json(app.get("/me", Some(&bob.tokens.access)).await).await;
    assert_eq!(me["is_admin"], false);
}

// POST /user/{id}/revoke

#[actix_web::test]
async fn an_admin_can_end_every_session_of_a_user() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let bob = app.user().await;
    let bob_phone = app.another_login(&bob).await;
    let carol = app.user().await;

    let resp = app
        .post(
            &format!("/user/{}/revoke", bob.id),
            Some(&admin.tokens.access),
            None,
        )
        .await;
    let body = ok_json(resp).await;
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );

    assert_revoked(&app, &bob.tokens).await;
    assert_revoked(&app, &bob_phone).await;
    // Others are untouched, and Bob can log in again.
    ok_json(app.get("/me", Some(&carol.tokens.access)).await).await;
    ok_json(app.get("/me", Some(&admin.tokens.access)).await).await;
    let tokens = app.login(&bob.username, &bob.password).await;
    ok_json(app.get("/me", Some(&tokens.access)).await).await;
}

#[actix_web::test]
async fn revoking_the_sessions_of_a_missing_user_is_a_404() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let resp = app
        .post("/user/999999/revoke", Some(&admin.tokens.access), None)
        .await;
    assert_error(resp, 404, "not_found").await;
}

#[actix_web::test]
async fn only_an_admin_can_revoke_a_users_sessions() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let resp = app
        .post(
            &format!("/user/{}/revoke", bob.id),
            Some(&alice.tokens.access),
            None,
        )
        .await;
    assert_error(resp, 403, "admin_required").await;
    ok_json(app.get("/me", Some(&bob.tokens.access)).await).await;
}

// PUT /me/password

#[actix_web::test]
async fn changing_the_password_ends_every_other_session() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let laptop = app.another_login(&user).await;
    let new_password = "a-brand-new-password";

    let resp = app
        .change_password(&user.tokens.access, PASSWORD, new_password)
        .await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "{}",
        resp.text().await.unwrap()
    );

    let resp = app.try_login(&user.username, PASSWORD).await;
    assert_error(resp, 401, "invalid_credentials").await;
    app.login(&user.username, new_password).await;

    // This session goes on, refresh included; the other one is over.
    ok_json(app.get("/me", Some(&user.tokens.access)).await).await;
    let resp = app.post("/refresh", Some(&user.tokens.refresh), None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_revoked(&app, &laptop).await;
}

#[actix_web::test]
async fn a_wrong_current_password_is_a_422_on_that_field_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let laptop = app.another_login(&user).await;

    let resp = app
        .change_password(
            &user.tokens.access,
            "not-my-password",
            "a-brand-new-password",
        )
        .await;
    let body = assert_error(resp, 422, "validation_error").await;
    assert!(
        body["errors"]["json"]["current_password"].is_array(),
        "{body}"
    );

    // The caller is not logged out, the other session lives, the password is the old one.
    ok_json(app.get("/me", Some(&user.tokens.access)).await).await;
    ok_json(app.get("/me", Some(&laptop.access)).await).await;
    app.login(&user.username, PASSWORD).await;
    let resp = app.try_login(&user.username, "a-brand-new-password").await;
    assert_error(resp, 401, "invalid_credentials").await;
}

#[actix_web::test]
async fn a_new_password_over_72_bytes_is_refused_and_72_bytes_is_accepted() {
    let app = TestApp::spawn().await;
    let user = app.user().await;

    let too_long = "x".repeat(73);
    let resp = app
        .change_password(&user.tokens.access, PASSWORD, &too_long)
        .await;
    let body = assert_error(resp, 422, "validation_error").await;
    assert!(body["errors"]["json"]["new_password"].is_array(), "{body}");
    // 25 characters but 75 bytes: bytes are what count.
    let multibyte = "€".repeat(25);
    let resp = app
        .change_password(&user.tokens.access, PASSWORD, &multibyte)
        .await;
    let body = assert_error(resp, 422, "validation_error").await;
    assert!(body["errors"]["json"]["new_password"].is_array(), "{body}");
    app.login(&user.username, PASSWORD).await;

    let longest = format!("{}{}", "€".repeat(23), "y".repeat(3));
    assert_eq!(longest.len(), 72);
    let resp = app
        .change_password(&user.tokens.access, PASSWORD, &longest)
        .await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "{}",
        resp.text().await.unwrap()
    );
    app.login(&user.username, &longest).await;
    // Not truncated: a different last byte is a different password.
    let other = format!("{}{}", "€".repeat(23), "yyz");
    let resp = app.try_login(&user.username, &other).await;
    assert_error(resp, 401, "invalid_credentials").await;
}
