//! The guard matrix: every guarded route that exists, against every kind of token a
//! client may hold, and the order of checks (guard, then body and query, then path id).

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    assert_error, body_of, flask_payload, forge, TestApp, TestUser, PASSWORD, TEST_KEY,
};

/// What a route demands of its token (API.md, Endpoints, Guards).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    Access,
    Fresh,
    Admin,
    FreshAdmin,
    Refresh,
}

/// The tokens a client may present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bearer {
    Nothing,
    UserRefresh,
    AdminRefresh,
    UserFresh,
    UserStale,
    AdminStale,
}

/// What a guard answers to a token, when it refuses it: (status, error, message).
fn refusal(guard: Guard, bearer: Bearer) -> Option<(u16, &'static str, &'static str)> {
    use Bearer::*;
    use Guard::*;
    const NO_TOKEN: (u16, &str, &str) = (
        401,
        "authorization_required",
        "Request does not contain an access token.",
    );
    const ONLY_ACCESS: (u16, &str, &str) =
        (401, "invalid_token", "Only access tokens are allowed.");
    const ONLY_REFRESH: (u16, &str, &str) =
        (401, "invalid_token", "Only refresh tokens are allowed.");
    const NOT_FRESH: (u16, &str, &str) = (401, "fresh_token_required", "The token is not fresh.");
    const NOT_ADMIN: (u16, &str, &str) = (403, "admin_required", "Admin privilege required.");
    match (bearer, guard) {
        (Nothing, _) => Some(NO_TOKEN),
        (UserRefresh | AdminRefresh, Refresh) => None,
        (UserRefresh | AdminRefresh, _) => Some(ONLY_ACCESS),
        (_, Refresh) => Some(ONLY_REFRESH),
        (UserFresh, Admin | FreshAdmin) => Some(NOT_ADMIN),
        (UserFresh, Access | Fresh) => None,
        (UserStale | AdminStale, Fresh | FreshAdmin) => Some(NOT_FRESH),
        (UserStale, Admin) => Some(NOT_ADMIN),
        (UserStale | AdminStale, _) => None,
    }
}

/// Every guarded route that exists so far, on the caller's own account (`me`), with a
/// body that would be refused were the guard to let the request through.
fn guarded_routes(me: i64) -> Vec<(Method, String, Guard, Option<Value>)> {
    let wrong_password =
        json!({"current_password": "not-my-password", "new_password": "a-new-password"});
    let sid = uuid::Uuid::new_v4();
    vec![
        (Method::GET, "/me".into(), Guard::Access, None),
        (
            Method::PUT,
            "/me/password".into(),
            Guard::Fresh,
            Some(wrong_password),
        ),
        (Method::GET, "/sessions".into(), Guard::Access, None),
        (
            Method::DELETE,
            format!("/sessions/{sid}"),
            Guard::Access,
            None,
        ),
        (Method::GET, format!("/user/{me}"), Guard::Access, None),
        (Method::DELETE, format!("/user/{me}"), Guard::Fresh, None),
        (Method::GET, "/users".into(), Guard::Admin, None),
        (
            Method::PATCH,
            format!("/user/{me}"),
            Guard::FreshAdmin,
            Some(json!({"is_admin": false})),
        ),
        (
            Method::POST,
            format!("/user/{me}/revoke"),
            Guard::Admin,
            None,
        ),
        (Method::POST, "/logout".into(), Guard::Access, None),
        (Method::POST, "/refresh".into(), Guard::Refresh, None),
    ]
}

/// A user and the admin, each holding a fresh access token, a non-fresh one (from
/// /refresh) and a live refresh token.
struct Cast {
    user: TestUser,
    user_stale: String,
    admin: TestUser,
    admin_stale: String,
}

impl Cast {
    async fn new(app: &TestApp) -> Cast {
        let mut user = app.user().await;
        let user_stale = app.non_fresh_access(&mut user).await;
        let mut admin = app.admin().await;
        let admin_stale = app.non_fresh_access(&mut admin).await;
        Cast {
            user,
            user_stale,
            admin,
            admin_stale,
        }
    }

    fn token(&self, bearer: Bearer) -> Option<&str> {
        match bearer {
            Bearer::Nothing => None,
            Bearer::UserRefresh => Some(&self.user.tokens.refresh),
            Bearer::AdminRefresh => Some(&self.admin.tokens.refresh),
            Bearer::UserFresh => Some(&self.user.tokens.access),
            Bearer::UserStale => Some(&self.user_stale),
            Bearer::AdminStale => Some(&self.admin_stale),
        }
    }
}

/// A request with a raw body and content type.
async fn send_raw(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: &str,
) -> Response {
    let mut req = app
        .client
        .request(method, app.url(path))
        .header("Content-Type", content_type)
        .body(body.to_owned());
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.expect("request sent")
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
    let mut checked = 0;
    for (method, path, guard, body) in guarded_routes(cast.user.id) {
        for bearer in bearers {
            let Some((status, error, message)) = refusal(guard, bearer) else {
                continue;
            };
            eprintln!("{method} {path} ({guard:?}) with {bearer:?}: expecting {status} {error}");
            let resp = app
                .request(method.clone(), &path, cast.token(bearer), body.clone())
                .await;
            let refused = assert_error(resp, status, error).await;
            assert_eq!(refused["message"], message);
            checked += 1;
        }
    }
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
        .request(
            Method::PATCH,
            &format!("/user/{}", user.id),
            Some(&stale),
            Some(json!({"is_admin": true})),
        )
        .await;
    let refused = assert_error(resp, 401, "fresh_token_required").await;
    assert_eq!(refused["message"], "The token is not fresh.");
    // With a fresh token the same user hits the admin check.
    let resp = app
        .request(
            Method::PATCH,
            &format!("/user/{}", user.id),
            Some(&user.tokens.access),
            Some(json!({"is_admin": true})),
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
        .request(
            Method::PATCH,
            &format!("/user/{}", bob.id),
            Some(&admin.tokens.access),
            Some(json!({"is_admin": true})),
        )
        .await;
    assert_eq!(body_of(resp, StatusCode::OK).await["is_admin"], true);

    // fresh, on the caller's own account.
    let resp = app
        .request(
            Method::PUT,
            "/me/password",
            Some(&alice.tokens.access),
            Some(json!({"current_password": PASSWORD, "new_password": "a-brand-new-password"})),
        )
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

/// Sends each (content type, body) to `method path` with `token`; each must get the
/// same refusal.
async fn refused_whatever_the_body(
    app: &TestApp,
    (method, path, token): (Method, &str, Option<&str>),
    bodies: &[(&str, &str)],
    (status, error): (u16, &str),
) {
    for (content_type, body) in bodies {
        eprintln!("{method} {path} {content_type} {body:?}: expecting {status} {error}");
        let resp = send_raw(app, method.clone(), path, token, content_type, body).await;
        assert_error(resp, status, error).await;
    }
}

const JSON: &str = "application/json";
const TEXT: &str = "text/plain";

#[actix_web::test]
async fn the_guard_is_judged_before_the_body() {
    let app = TestApp::spawn().await;
    let mut alice = app.user().await;
    let alice_stale = app.non_fresh_access(&mut alice).await;
    let bob = app.user().await;
    let mut admin = app.admin().await;
    let admin_stale = app.non_fresh_access(&mut admin).await;
    let bob_path = format!("/user/{}", bob.id);
    let (fresh, stale) = (
        Some(alice.tokens.access.as_str()),
        Some(alice_stale.as_str()),
    );
    let refresh = Some(alice.tokens.refresh.as_str());

    // PUT /me/password (fresh): no token, a refresh token, a stale token.
    let bad_bodies = [
        (JSON, "{}"),
        (JSON, "{not json"),
        (JSON, r#"{"new_password": "short"}"#),
        (TEXT, "hello"),
    ];
    let put = |token| (Method::PUT, "/me/password", token);
    let no_token = (401, "authorization_required");
    refused_whatever_the_body(&app, put(None), &bad_bodies, no_token).await;
    let only_access = (401, "invalid_token");
    refused_whatever_the_body(&app, put(refresh), &bad_bodies, only_access).await;
    let not_fresh = (401, "fresh_token_required");
    refused_whatever_the_body(&app, put(stale), &bad_bodies, not_fresh).await;

    // PATCH /user/{id} (fresh admin): a fresh non-admin, stale tokens, no token.
    let bad_bodies = [
        (JSON, r#"{"is_admin": "yes"}"#),
        (JSON, "{}"),
        (JSON, "[true"),
        (TEXT, "admin please"),
    ];
    let patch = |token| (Method::PATCH, bob_path.as_str(), token);
    let not_admin = (403, "admin_required");
    refused_whatever_the_body(&app, patch(fresh), &bad_bodies, not_admin).await;
    refused_whatever_the_body(&app, patch(stale), &bad_bodies, not_fresh).await;
    let admin_stale = Some(admin_stale.as_str());
    refused_whatever_the_body(&app, patch(admin_stale), &bad_bodies, not_fresh).await;
    refused_whatever_the_body(&app, patch(None), &bad_bodies, no_token).await;

    // Query strings come after the guard too.
    let logout = |token| (Method::POST, "/logout?scope=bogus", token);
    refused_whatever_the_body(&app, logout(None), &[(JSON, "")], no_token).await;
    refused_whatever_the_body(&app, logout(refresh), &[(JSON, "")], only_access).await;
    let users = (Method::GET, "/users?limit=abc", stale);
    refused_whatever_the_body(&app, users, &[(JSON, "")], not_admin).await;

    // Nothing changed: bob is no admin, alice's password is the old one.
    let user = body_of(app.get(&bob_path, admin_stale).await, StatusCode::OK).await;
    assert_eq!(user["is_admin"], false);
    app.login(&alice.username, PASSWORD).await;
}

#[actix_web::test]
async fn the_body_and_query_are_judged_before_the_path_id() {
    let app = TestApp::spawn().await;
    let mut alice = app.user().await;
    let alice_stale = app.non_fresh_access(&mut alice).await;
    let mut admin = app.admin().await;
    let admin_stale = app.non_fresh_access(&mut admin).await;
    let fresh = Some(admin.tokens.access.as_str());

    let bad = Some(json!({"is_admin": "yes"}));
    for path in ["/user/abc", "/user/987654"] {
        let resp = app.request(Method::PATCH, path, fresh, bad.clone()).await;
        let body = assert_error(resp, 422, "validation_error").await;
        assert!(body["errors"]["json"]["is_admin"].is_array(), "{body}");
        let resp = app
            .request(Method::PATCH, path, fresh, Some(json!({"is_admin": true})))
            .await;
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
    app.request(
        Method::PUT,
        "/me/password",
        Some(token),
        Some(json!({"current_password": "not-my-password", "new_password": "a-new-password"})),
    )
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
    let body = Some(json!({"is_admin": true}));
    let resp = app
        .request(Method::PATCH, &path, Some(&flask), body.clone())
        .await;
    assert_error(resp, 401, "fresh_token_required").await;
    let fresh_flask = forge(
        flask_payload(admin.id, json!({"is_admin": true, "fresh": true})),
        TEST_KEY,
    );
    let resp = app
        .request(Method::PATCH, &path, Some(&fresh_flask), body)
        .await;
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
