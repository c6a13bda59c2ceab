//! POST /introspect (RFC 7662) and POST /revoke (RFC 7009): what another service asks
//! about a token, and how a token's holder revokes it.

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use stores_api::config::{IntrospectionClient, Secret};

use crate::helpers::{assert_error, claims, flask_payload, forge, ok_json, TestApp, TEST_KEY};

const CLIENT: &str = "gateway";
const SECRET: &str = "gateway-secret-0123456789";

async fn spawn() -> TestApp {
    TestApp::spawn_with(|s| {
        s.introspection_clients = vec![IntrospectionClient {
            id: CLIENT.into(),
            secret: Secret::new(SECRET),
        }];
    })
    .await
}

/// POST `path` with the form `body`, as a client with `basic` credentials or a `bearer`.
async fn form(
    app: &TestApp,
    path: &str,
    basic: Option<(&str, &str)>,
    bearer: Option<&str>,
    body: &str,
) -> Response {
    let mut request = reqwest::Client::new()
        .request(Method::POST, app.url(path))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body.to_owned());
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request")
}

async fn introspect(app: &TestApp, token: &str) -> Value {
    ok_json(
        form(
            app,
            "/introspect",
            Some((CLIENT, SECRET)),
            None,
            &format!("token={token}"),
        )
        .await,
    )
    .await
}

async fn revoke(app: &TestApp, token: &str) -> Value {
    ok_json(form(app, "/revoke", None, None, &format!("token={token}")).await).await
}

#[actix_web::test]
async fn an_active_token_is_told_with_its_claims_and_no_csrf_value() {
    let app = spawn().await;
    let user = app.user().await;
    let answer = introspect(&app, &user.tokens.access).await;
    let issued = claims(&user.tokens.access);
    assert_eq!(answer["active"], true, "{answer}");
    for claim in [
        "sub", "type", "fresh", "jti", "sid", "iat", "nbf", "exp", "is_admin",
    ] {
        assert_eq!(answer[claim], issued[claim], "{claim}: {answer}");
    }
    assert_eq!(answer["type"], "access");
    let refresh = introspect(&app, &user.tokens.refresh).await;
    assert_eq!(refresh["active"], true, "{refresh}");
    assert_eq!(refresh["type"], "refresh");
    assert!(answer.get("csrf").is_none());
}

#[actix_web::test]
async fn only_a_known_client_or_an_admin_may_introspect() {
    let app = spawn().await;
    let user = app.user().await;
    let admin = app.admin().await;
    let body = format!("token={}", user.tokens.access);
    for (basic, error) in [
        (
            Some((CLIENT, "wrong-secret-0123456789")),
            "invalid_credentials",
        ),
        (Some(("other", SECRET)), "invalid_credentials"),
        (Some((CLIENT, "")), "invalid_credentials"),
        (None, "authorization_required"),
    ] {
        let resp = form(&app, "/introspect", basic, None, &body).await;
        assert_error(resp, 401, error).await;
    }
    let resp = form(&app, "/introspect", None, Some(&user.tokens.access), &body).await;
    assert_error(resp, 403, "admin_required").await;
    let resp = form(&app, "/introspect", None, Some("garbage"), &body).await;
    assert_error(resp, 401, "invalid_token").await;
    let resp = form(&app, "/introspect", None, Some(&admin.tokens.access), &body).await;
    assert_eq!(ok_json(resp).await["active"], true);
}

#[actix_web::test]
async fn expired_revoked_foreign_and_garbage_tokens_are_inactive() {
    let app = spawn().await;
    let user = app.user().await;
    let now = chrono::Utc::now().timestamp();
    let expired = forge(
        flask_payload(
            user.id,
            json!({"iat": now - 100, "nbf": now - 100, "exp": now - 10}),
        ),
        TEST_KEY,
    );
    let foreign = forge(
        flask_payload(user.id, json!({})),
        "another-service-key-another-service-key",
    );
    let sidless = forge(flask_payload(user.id, json!({})), TEST_KEY);
    assert_eq!(introspect(&app, &sidless).await["active"], true);
    for token in [expired.as_str(), foreign.as_str(), "garbage", "a.b.c"] {
        assert_eq!(
            introspect(&app, token).await,
            json!({"active": false}),
            "{token}"
        );
    }
    let resp = app.post("/logout", Some(&user.tokens.access), None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    for token in [&user.tokens.access, &user.tokens.refresh] {
        assert_eq!(introspect(&app, token).await, json!({"active": false}));
    }
    // A deleted user's tokens, sid-less ones included.
    let other = app.user().await;
    let sidless = forge(flask_payload(other.id, json!({})), TEST_KEY);
    let resp = app
        .delete(&format!("/user/{}", other.id), Some(&other.tokens.access))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(introspect(&app, &sidless).await, json!({"active": false}));
}

#[actix_web::test]
async fn a_spent_refresh_token_is_inactive_and_reading_it_is_no_reuse() {
    let app = spawn().await;
    let user = app.user().await;
    let next = app.refresh(&user.tokens.refresh).await;
    assert_eq!(
        introspect(&app, &user.tokens.refresh).await,
        json!({"active": false})
    );
    // Presenting the spent token to /refresh would revoke the session; introspecting it
    // did not: the rotated pair still works.
    assert_eq!(introspect(&app, &next.refresh).await["active"], true);
    let again = app.refresh(&next.refresh).await;
    assert_eq!(
        app.get("/me", Some(&again.access)).await.status(),
        StatusCode::OK
    );
}

#[actix_web::test]
async fn introspection_and_revocation_want_a_form_with_a_token() {
    let app = spawn().await;
    let basic = Some((CLIENT, SECRET));
    for path in ["/introspect", "/revoke"] {
        let resp = form(&app, path, basic, None, "token_type_hint=access_token").await;
        assert_error(resp, 400, "bad_request").await;
        let resp = form(&app, path, basic, None, "token=").await;
        assert_error(resp, 400, "bad_request").await;
        let resp = reqwest::Client::new()
            .post(app.url(path))
            .basic_auth(CLIENT, Some(SECRET))
            .json(&json!({"token": "x"}))
            .send()
            .await
            .expect("request");
        assert_error(resp, 400, "bad_request").await;
    }
}

#[actix_web::test]
async fn revoking_a_refresh_or_access_token_ends_its_session() {
    let app = spawn().await;
    for kind in ["refresh", "access"] {
        let user = app.user().await;
        let token = match kind {
            "refresh" => &user.tokens.refresh,
            _ => &user.tokens.access,
        };
        let answer = revoke(&app, token).await;
        assert_eq!(answer, json!({"message": "The token is no longer active."}));
        let resp = app.get("/me", Some(&user.tokens.access)).await;
        assert_error(resp, 401, "token_revoked").await;
        let resp = app.post("/refresh", Some(&user.tokens.refresh), None).await;
        assert_error(resp, 401, "token_revoked").await;
    }
}

#[actix_web::test]
async fn revoking_a_token_without_a_session_revokes_that_token_only() {
    let app = spawn().await;
    let user = app.user().await;
    let sidless = forge(flask_payload(user.id, json!({})), TEST_KEY);
    assert_eq!(
        app.get("/me", Some(&sidless)).await.status(),
        StatusCode::OK
    );
    revoke(&app, &sidless).await;
    assert_error(app.get("/me", Some(&sidless)).await, 401, "token_revoked").await;
    assert_eq!(
        app.get("/me", Some(&user.tokens.access)).await.status(),
        StatusCode::OK,
        "the user's session is not the token's"
    );
}

#[actix_web::test]
async fn revocation_answers_the_same_whatever_the_token() {
    let app = spawn().await;
    let user = app.user().await;
    let now = chrono::Utc::now().timestamp();
    let expired = forge(
        flask_payload(
            user.id,
            json!({"iat": now - 100, "nbf": now - 100, "exp": now - 10}),
        ),
        TEST_KEY,
    );
    let foreign = forge(
        flask_payload(user.id, json!({})),
        "another-service-key-another-service-key",
    );
    let first = revoke(&app, &user.tokens.refresh).await;
    for token in [
        "garbage",
        expired.as_str(),
        foreign.as_str(),
        user.tokens.refresh.as_str(),
    ] {
        assert_eq!(revoke(&app, token).await, first, "{token}");
    }
    // A foreign token (another key) revoked nothing of this user's.
    let other = app.another_login(&user).await;
    assert_eq!(
        app.get("/me", Some(&other.access)).await.status(),
        StatusCode::OK
    );
}
