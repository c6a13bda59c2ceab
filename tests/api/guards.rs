//! The guard matrix: every guarded route that exists, against every kind of token a
//! client may hold, and the order of checks (guard, then body and query, then path id).

use reqwest::{Method, Response, StatusCode};
use serde_json::json;

use crate::helpers::{
    assert_error, body_of, flask_payload, forge, run_guard_matrix, Bearer, Cast, Guard, GuardCase,
    TestApp, PASSWORD, TEST_KEY,
};

/// The guarded account routes, on the caller's own account (`me`), each with a body
/// that would be refused were the guard to let the request through.
fn account_routes(me: i64) -> Vec<GuardCase> {
    let wrong_password =
        json!({"current_password": "not-my-password", "new_password": "a-new-password"});
    let sid = uuid::Uuid::new_v4();
    vec![
        GuardCase::new(Method::GET, "/me", Guard::Access),
        GuardCase::new(Method::PUT, "/me/password", Guard::Fresh).json(wrong_password),
        GuardCase::new(Method::GET, "/sessions", Guard::Access),
        GuardCase::new(Method::DELETE, format!("/sessions/{sid}"), Guard::Access),
        GuardCase::new(Method::GET, format!("/user/{me}"), Guard::Access),
        GuardCase::new(Method::DELETE, format!("/user/{me}"), Guard::Fresh),
        GuardCase::new(Method::GET, "/users", Guard::Admin),
        GuardCase::new(Method::PATCH, format!("/user/{me}"), Guard::FreshAdmin)
            .json(json!({"is_admin": false})),
        GuardCase::new(Method::POST, format!("/user/{me}/revoke"), Guard::Admin),
        GuardCase::new(Method::POST, "/logout", Guard::Access),
        GuardCase::new(Method::POST, "/refresh", Guard::Refresh),
    ]
}

#[actix_web::test]
async fn every_guarded_route_refuses_every_token_it_does_not_accept() {
    let app = TestApp::spawn().await;
    let cast = Cast::new(&app).await;
    let bearers = [
        Bearer::Nothing,
        Bearer::UserRefresh,
        Bearer::AdminRefresh,
        Bearer::UserFresh,
        Bearer::UserStale,
        Bearer::AdminStale,
    ];
    let routes = account_routes(cast.user.id);
    let (checked, let_through) = run_guard_matrix(&app, &cast, &routes, &bearers).await;
    assert_eq!(let_through, 0, "no route was let through");
    assert_eq!(checked, 45, "refusals checked");
    // Nothing above got through: the user's and the admin's sessions are intact.
    let resp = app.get("/me", Some(&cast.user_stale)).await;
    assert_eq!(body_of(resp, StatusCode::OK).await["id"], cast.user.id);
    let resp = app.get("/users", Some(&cast.admin_stale)).await;
    body_of(resp, StatusCode::OK).await;
}

#[actix_web::test]
async fn a_refresh_token_on_an_access_route_is_invalid_token() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let resp = app.get("/me", Some(&user.tokens.refresh)).await;
    let refused = assert_error(resp, 401, "invalid_token").await;
    assert_eq!(refused["message"], "Only access tokens are allowed.");
}

#[actix_web::test]
async fn an_access_token_on_refresh_is_invalid_token() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let resp = app.post("/refresh", Some(&user.tokens.access), None).await;
    let refused = assert_error(resp, 401, "invalid_token").await;
    assert_eq!(refused["message"], "Only refresh tokens are allowed.");
    // The refused attempt spent nothing: the refresh token still rotates.
    let resp = app.post("/refresh", Some(&user.tokens.refresh), None).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[actix_web::test]
async fn a_stale_non_admin_token_on_a_fresh_admin_route_is_told_to_get_fresh_first() {
    let app = TestApp::spawn().await;
    let mut user = app.user().await;
    let stale = app.non_fresh_access(&mut user).await;
    let resp = app
        .patch(
            &format!("/user/{}", user.id),
            Some(&stale),
            json!({"is_admin": true}),
        )
        .await;
    let refused = assert_error(resp, 401, "fresh_token_required").await;
    assert_eq!(refused["message"], "The token is not fresh.");
    // With a fresh token the same user hits the admin check.
    let resp = app
        .patch(
            &format!("/user/{}", user.id),
            Some(&user.tokens.access),
            json!({"is_admin": true}),
        )
        .await;
    let refused = assert_error(resp, 403, "admin_required").await;
    assert_eq!(refused["message"], "Admin privilege required.");
    let me = body_of(app.get("/me", Some(&stale)).await, StatusCode::OK).await;
    assert_eq!(me["is_admin"], false);
}

#[actix_web::test]
async fn the_weakest_sufficient_token_opens_each_route() {
    let app = TestApp::spawn().await;
    let mut alice = app.user().await;
    let alice_stale = app.non_fresh_access(&mut alice).await;
    let second = app.login(&alice.username, PASSWORD).await;
    let bob = app.user().await;
    let carol = app.user().await;
    let mut admin = app.admin().await;
    let admin_stale = app.non_fresh_access(&mut admin).await;

    // access: a non-fresh access token is enough.
    let me = body_of(app.get("/me", Some(&alice_stale)).await, StatusCode::OK).await;
    assert_eq!(me["username"], alice.username.as_str());
    let sessions = body_of(
        app.get("/sessions", Some(&alice_stale)).await,
        StatusCode::OK,
    )
    .await;
    let sessions = sessions.as_array().expect("a list of sessions");
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    let other_sid = sessions
        .iter()
        .find(|s| s["current"] == false)
        .and_then(|s| s["id"].as_str())
        .expect("the second session")
        .to_owned();
    let path = format!("/user/{}", alice.id);
    let user = body_of(app.get(&path, Some(&alice_stale)).await, StatusCode::OK).await;
    assert_eq!(user["id"], alice.id);
    let resp = app
        .delete(&format!("/sessions/{other_sid}"), Some(&alice_stale))
        .await;
    body_of(resp, StatusCode::OK).await;
    let resp = app.get("/me", Some(&second.access)).await;
    assert_error(resp, 401, "token_revoked").await;

    // admin: a non-fresh admin token is enough.
    let users = body_of(app.get("/users", Some(&admin_stale)).await, StatusCode::OK).await;
    assert!(users.as_array().is_some_and(|u| u.len() >= 4), "{users}");
    let resp = app
        .post(
            &format!("/user/{}/revoke", bob.id),
            Some(&admin_stale),
            None,
        )
        .await;
    body_of(resp, StatusCode::OK).await;
    let resp = app.get("/me", Some(&bob.tokens.access)).await;
    assert_error(resp, 401, "token_revoked").await;

    // fresh admin.
    let resp = app
        .patch(
            &format!("/user/{}", bob.id),
            Some(&admin.tokens.access),
            json!({"is_admin": true}),
        )
        .await;
    assert_eq!(body_of(resp, StatusCode::OK).await["is_admin"], true);

    // fresh, on the caller's own account.
    let resp = app
        .change_password(&alice.tokens.access, PASSWORD, "a-brand-new-password")
        .await;
    body_of(resp, StatusCode::OK).await;
    app.login(&alice.username, "a-brand-new-password").await;
    let resp = app
        .delete(&format!("/user/{}", carol.id), Some(&carol.tokens.access))
        .await;
    let body = body_of(resp, StatusCode::OK).await;
    assert_eq!(body, json!({"message": "User deleted."}));

    // refresh, then access for logout.
    let resp = app
        .post("/refresh", Some(&alice.tokens.refresh), None)
        .await;
    let body = body_of(resp, StatusCode::OK).await;
    assert!(body["access_token"].is_string() && body["refresh_token"].is_string());
    let resp = app.post("/logout", Some(&alice_stale), None).await;
    body_of(resp, StatusCode::OK).await;
    let resp = app.get("/me", Some(&alice_stale)).await;
    assert_error(resp, 401, "token_revoked").await;
}

#[actix_web::test]
async fn acting_on_another_users_account_is_forbidden_unless_admin() {
    let app = TestApp::spawn().await;
    let mut alice = app.user().await;
    let alice_stale = app.non_fresh_access(&mut alice).await;
    let bob = app.user().await;
    let mut admin = app.admin().await;
    let admin_stale = app.non_fresh_access(&mut admin).await;
    let bob_path = format!("/user/{}", bob.id);

    let resp = app.get(&bob_path, Some(&alice_stale)).await;
    assert_error(resp, 403, "forbidden").await;
    let resp = app.delete(&bob_path, Some(&alice.tokens.access)).await;
    assert_error(resp, 403, "forbidden").await;
    // Freshness is part of the guard, so it is judged before whose account it is.
    let resp = app.delete(&bob_path, Some(&alice_stale)).await;
    assert_error(resp, 401, "fresh_token_required").await;
    // An id that names nobody gets the same 403: no probing for who exists.
    let resp = app.get("/user/987654", Some(&alice_stale)).await;
    assert_error(resp, 403, "forbidden").await;
    // Another user's session is not the caller's: 404, and it lives on.
    let bob_sessions = body_of(
        app.get("/sessions", Some(&bob.tokens.access)).await,
        StatusCode::OK,
    )
    .await;
    let bob_sid = bob_sessions[0]["id"].as_str().expect("sid").to_owned();
    let resp = app
        .delete(&format!("/sessions/{bob_sid}"), Some(&alice_stale))
        .await;
    assert_error(resp, 404, "not_found").await;
    let me = body_of(
        app.get("/me", Some(&bob.tokens.access)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(me["id"], bob.id);

    // An admin may read (non-fresh) and delete (fresh) anyone.
    let user = body_of(app.get(&bob_path, Some(&admin_stale)).await, StatusCode::OK).await;
    assert_eq!(user["username"], bob.username.as_str());
    let resp = app.delete(&bob_path, Some(&admin_stale)).await;
    assert_error(resp, 401, "fresh_token_required").await;
    let resp = app.delete(&bob_path, Some(&admin.tokens.access)).await;
    let body = body_of(resp, StatusCode::OK).await;
    assert_eq!(body, json!({"message": "User deleted."}));
    let resp = app.get("/me", Some(&bob.tokens.access)).await;
    assert_error(resp, 401, "token_revoked").await;
}

/// `method path` once with each (content type, body): none may matter to the guard.
fn whatever_the_body(
    method: Method,
    path: &str,
    guard: Guard,
    bodies: &[(&'static str, &str)],
) -> Vec<GuardCase> {
    bodies
        .iter()
        .map(|(content_type, body)| {
            GuardCase::new(method.clone(), path, guard).raw(content_type, body)
        })
        .collect()
}

const JSON: &str = "application/json";
const TEXT: &str = "text/plain";

#[actix_web::test]
async fn the_guard_is_judged_before_the_body() {
    use Bearer::{AdminStale, Nothing, UserFresh, UserRefresh, UserStale};
    let app = TestApp::spawn().await;
    let cast = Cast::new(&app).await;
    let bob = app.user().await;
    let bob_path = format!("/user/{}", bob.id);

    // PUT /me/password (fresh): no token, a refresh token, a stale token.
    let bad_bodies = [
        (JSON, "{}"),
        (JSON, "{not json"),
        (JSON, r#"{"new_password": "short"}"#),
        (TEXT, "hello"),
    ];
    let put = whatever_the_body(Method::PUT, "/me/password", Guard::Fresh, &bad_bodies);
    let bearers = [Nothing, UserRefresh, UserStale];
    assert_eq!(run_guard_matrix(&app, &cast, &put, &bearers).await, (12, 0));

    // PATCH /user/{id} (fresh admin): a fresh non-admin, stale tokens, no token.
    let bad_bodies = [
        (JSON, r#"{"is_admin": "yes"}"#),
        (JSON, "{}"),
        (JSON, "[true"),
        (TEXT, "admin please"),
    ];
    let patch = whatever_the_body(Method::PATCH, &bob_path, Guard::FreshAdmin, &bad_bodies);
    let bearers = [UserFresh, UserStale, AdminStale, Nothing];
    assert_eq!(
        run_guard_matrix(&app, &cast, &patch, &bearers).await,
        (16, 0)
    );

    // Query strings come after the guard too.
    let no_body = [(JSON, "")];
    let logout = whatever_the_body(Method::POST, "/logout?scope=bogus", Guard::Access, &no_body);
    let refused = run_guard_matrix(&app, &cast, &logout, &[Nothing, UserRefresh]).await;
    assert_eq!(refused, (2, 0));
    let users = whatever_the_body(Method::GET, "/users?limit=abc", Guard::Admin, &no_body);
    assert_eq!(
        run_guard_matrix(&app, &cast, &users, &[UserStale]).await,
        (1, 0)
    );

    // Nothing changed: bob is no admin, the user's password is the old one.
    let admin_stale = Some(cast.admin_stale.as_str());
    let user = body_of(app.get(&bob_path, admin_stale).await, StatusCode::OK).await;
    assert_eq!(user["is_admin"], false);
    app.login(&cast.user.username, PASSWORD).await;
}

#[actix_web::test]
async fn the_body_and_query_are_judged_before_the_path_id() {
    let app = TestApp::spawn().await;
    let mut alice = app.user().await;
    let alice_stale = app.non_fresh_access(&mut alice).await;
    let mut admin = app.admin().await;
    let admin_stale = app.non_fresh_access(&mut admin).await;
    let fresh = Some(admin.tokens.access.as_str());

    let bad = json!({"is_admin": "yes"});
    for path in ["/user/abc", "/user/987654"] {
        let resp = app.patch(path, fresh, bad.clone()).await;
        let body = assert_error(resp, 422, "validation_error").await;
        assert!(body["errors"]["json"]["is_admin"].is_array(), "{body}");
        let resp = app.patch(path, fresh, json!({"is_admin": true})).await;
        assert_error(resp, 404, "not_found").await;
    }
    // The guard still comes before the path id.
    let resp = app.delete("/user/abc", Some(&alice_stale)).await;
    assert_error(resp, 401, "fresh_token_required").await;
    let resp = app.get("/user/abc", None).await;
    assert_error(resp, 401, "authorization_required").await;
    // A bad query with the right token is the 422 under errors.query.
    let resp = app.get("/users?limit=abc", Some(&admin_stale)).await;
    let body = assert_error(resp, 422, "validation_error").await;
    assert!(body["errors"]["query"]["limit"].is_array(), "{body}");
}

/// PUT /me/password with a wrong current password: 422 once past the fresh guard,
/// without changing anything. The probe for whether a token counts as fresh.
async fn fresh_probe(app: &TestApp, token: &str) -> Response {
    app.change_password(token, "not-my-password", "a-new-password")
        .await
}

#[actix_web::test]
async fn a_flask_token_claiming_is_admin_without_a_session_passes_admin_routes() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let alice = app.user().await;
    let flask = forge(flask_payload(admin.id, json!({"is_admin": true})), TEST_KEY);
    let users = body_of(app.get("/users", Some(&flask)).await, StatusCode::OK).await;
    assert!(users.as_array().is_some_and(|u| u.len() >= 2), "{users}");
    let resp = app
        .post(&format!("/user/{}/revoke", alice.id), Some(&flask), None)
        .await;
    body_of(resp, StatusCode::OK).await;
    // Not fresh: the fresh-admin route refuses it; a fresh one passes.
    let path = format!("/user/{}", alice.id);
    let body = json!({"is_admin": true});
    let resp = app.patch(&path, Some(&flask), body.clone()).await;
    assert_error(resp, 401, "fresh_token_required").await;
    let fresh_flask = forge(
        flask_payload(admin.id, json!({"is_admin": true, "fresh": true})),
        TEST_KEY,
    );
    let resp = app.patch(&path, Some(&fresh_flask), body).await;
    assert_eq!(body_of(resp, StatusCode::OK).await["is_admin"], true);
}

#[actix_web::test]
async fn a_flask_token_without_is_admin_is_a_non_admin_token() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    // Even for the admin's own id: the claim decides, and no claim means no admin.
    for overrides in [json!({}), json!({"is_admin": false})] {
        let token = forge(flask_payload(admin.id, overrides.clone()), TEST_KEY);
        let me = body_of(app.get("/me", Some(&token)).await, StatusCode::OK).await;
        assert_eq!(me["id"], admin.id, "{overrides}");
        let resp = app.get("/users", Some(&token)).await;
        let refused = assert_error(resp, 403, "admin_required").await;
        assert_eq!(refused["message"], "Admin privilege required.");
    }
}

#[actix_web::test]
async fn timed_freshness_counts_until_its_unix_time() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let now = chrono::Utc::now().timestamp();
    let cases = [
        ("a boolean true", json!(true), true),
        ("a boolean false", json!(false), false),
        ("an integer time in the future", json!(now + 300), true),
        (
            "a float time in the future",
            json!(now as f64 + 300.5),
            true,
        ),
        ("an integer time in the past", json!(now - 300), false),
        (
            "a float time in the past",
            json!(now as f64 - 0.5 - 60.0),
            false,
        ),
        ("a time long past", json!(1000.0), false),
    ];
    for (what, fresh, is_fresh) in cases {
        eprintln!("fresh as {what}: {fresh}");
        let token = forge(flask_payload(alice.id, json!({"fresh": fresh})), TEST_KEY);
        let resp = fresh_probe(&app, &token).await;
        if is_fresh {
            let body = assert_error(resp, 422, "validation_error").await;
            assert!(
                body["errors"]["json"]["current_password"].is_array(),
                "{what}: {body}"
            );
        } else {
            assert_error(resp, 401, "fresh_token_required").await;
        }
    }
    // A token without the claim at all is not fresh.
    let token = forge(flask_payload(alice.id, json!({"fresh": null})), TEST_KEY);
    assert_error(fresh_probe(&app, &token).await, 401, "fresh_token_required").await;
    app.login(&alice.username, PASSWORD).await;
}
