//! Response headers every client and browser relies on: `X-Content-Type-Options:
//! nosniff` on every response, whatever produced it, and `Cache-Control: no-store` on
//! token responses (RFC 6749 5.1) and every other API response (OWASP REST Security
//! Cheat Sheet), while the public document and Swagger UI stay cacheable.

use reqwest::header::HeaderMap;
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use stores_api::config::{AdminBootstrap, Secret, Settings};
use stores_api::routes;
use stores_api::startup::Application;

use crate::helpers::{assert_error, Call, TestApp, ADMIN_PASSWORD, ADMIN_USERNAME, PASSWORD};

const SPA: &str = "https://app.example.com";

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().expect("ASCII header"))
}

/// Checks the headers of `resp`: nosniff always, no-store when `no_store`, and returns
/// the status for the caller's own checks.
fn check(what: &str, resp: &Response, no_store: bool) -> StatusCode {
    let headers = resp.headers();
    assert_eq!(
        header(headers, "x-content-type-options"),
        Some("nosniff"),
        "{what} ({})",
        resp.status()
    );
    if no_store {
        assert_eq!(
            header(headers, "cache-control"),
            Some("no-store"),
            "{what} ({})",
            resp.status()
        );
    } else {
        assert_ne!(
            header(headers, "cache-control"),
            Some("no-store"),
            "{what} ({})",
            resp.status()
        );
    }
    resp.status()
}

/// A concrete URL for a templated path, with ids that exist.
fn concrete(path: &str, user: i64, store: i64, item: i64, tag: i64, sid: &str) -> String {
    path.replace("/user/{id}", &format!("/user/{user}"))
        .replace("/store/{id}", &format!("/store/{store}"))
        .replace("/item/{id}", &format!("/item/{item}"))
        .replace("/tag/{id}", &format!("/tag/{tag}"))
        .replace("{tag_id}", &tag.to_string())
        .replace("/sessions/{id}", &format!("/sessions/{sid}"))
}

#[actix_web::test]
async fn every_registered_route_answers_with_nosniff_and_no_store() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let token = &admin.tokens.access;
    let store: Value = app
        .post("/store", Some(token), Some(json!({"name": "Corner"})))
        .await
        .json()
        .await
        .expect("json");
    let store_id = store["id"].as_i64().expect("store id");
    let item: Value = app
        .post(
            "/item",
            Some(token),
            Some(json!({"name": "Chair", "price": 1.5, "store_id": store_id})),
        )
        .await
        .json()
        .await
        .expect("json");
    let tag: Value = app
        .post(
            &format!("/store/{store_id}/tag"),
            Some(token),
            Some(json!({"name": "Sale"})),
        )
        .await
        .json()
        .await
        .expect("json");
    let sid = uuid::Uuid::new_v4().to_string();
    let mut seen = 0;
    for (method, path) in routes::registered() {
        let url = concrete(
            &path,
            admin.id,
            store_id,
            item["id"].as_i64().expect("item id"),
            tag["id"].as_i64().expect("tag id"),
            &sid,
        );
        // Successes, 4xx of the handlers and guards alike: the status does not matter.
        let method = Method::from_bytes(method.as_str().as_bytes()).expect("method");
        let resp = app.request(method.clone(), &url, Some(token), None).await;
        // The documents of the API and of its public keys are the same for everyone and
        // meant to be cached; the JWKS says for how long (its own tests check it).
        let private = !["/openapi.json", "/.well-known/jwks.json"].contains(&path.as_str());
        check(&format!("{method} {url}"), &resp, private);
        seen += 1;
    }
    assert!(seen > 25, "{seen} routes");
}

#[actix_web::test]
async fn token_responses_are_never_cached() {
    let app = TestApp::spawn().await;
    app.register("carol", PASSWORD).await;
    let credentials = json!({"username": "carol", "password": PASSWORD});
    let login = app.post("/login", None, Some(credentials.clone())).await;
    assert_eq!(check("/login", &login, true), StatusCode::OK);
    assert_eq!(header(login.headers(), "pragma"), Some("no-cache"));
    let tokens: Value = login.json().await.expect("json");
    let fresh = app.post("/fresh-login", None, Some(credentials)).await;
    assert_eq!(check("/fresh-login", &fresh, true), StatusCode::OK);
    assert_eq!(header(fresh.headers(), "pragma"), Some("no-cache"));
    let refresh = tokens["refresh_token"].as_str().expect("refresh token");
    let rotated = app.post("/refresh", Some(refresh), None).await;
    assert_eq!(check("/refresh", &rotated, true), StatusCode::OK);
    assert_eq!(header(rotated.headers(), "pragma"), Some("no-cache"));
}

#[actix_web::test]
async fn errors_actix_or_the_middlewares_produce_carry_the_headers_too() {
    let app = TestApp::spawn_with(|s| {
        s.http.cors_allowed_origins = vec![SPA.into()];
        s.http.max_body_bytes = 1024;
        s.limits.auth_per_minute = 2;
    })
    .await;
    let send = |method: Method, path: &str| app.call(method, path);
    let cases: Vec<(&str, Call, StatusCode)> = vec![
        (
            "unknown route",
            send(Method::GET, "/nowhere"),
            StatusCode::NOT_FOUND,
        ),
        (
            "wrong method",
            send(Method::DELETE, "/register"),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "unparsable id",
            send(Method::GET, "/store/abc").bearer(Some("x")),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "body over the limit",
            send(Method::POST, "/register").raw(
                Some("application/json"),
                format!("{{\"username\": \"{}\"}}", "x".repeat(2048)),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "not JSON",
            send(Method::POST, "/register").raw(Some("text/plain"), "hello"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "allowed preflight",
            send(Method::OPTIONS, "/me")
                .header("Origin", SPA)
                .header("Access-Control-Request-Method", "GET")
                .header("Access-Control-Request-Headers", "authorization"),
            StatusCode::OK,
        ),
        (
            "refused preflight",
            send(Method::OPTIONS, "/me")
                .header("Origin", "https://evil.example.com")
                .header("Access-Control-Request-Method", "GET"),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (what, request, status) in cases {
        let resp = request.send().await;
        assert_eq!(check(what, &resp, true), status, "{what}");
    }
    // The third login in the minute is the rate limit's 429.
    let body = json!({"username": "nobody", "password": "wrong-password"});
    for _ in 0..2 {
        app.post("/login", None, Some(body.clone())).await;
    }
    let resp = app.post("/login", None, Some(body)).await;
    assert_eq!(check("429", &resp, true), StatusCode::TOO_MANY_REQUESTS);
}

#[actix_web::test]
async fn the_document_and_swagger_ui_are_nosniff_and_cacheable() {
    let app = TestApp::spawn().await;
    for path in [
        "/openapi.json",
        "/swagger-ui/",
        "/swagger-ui/swagger-ui.css",
        "/swagger-ui/swagger-initializer.js",
    ] {
        let resp = app.get(path, None).await;
        assert_eq!(check(path, &resp, false), StatusCode::OK, "{path}");
    }
    // An unknown file there is an error like any other: not to be stored.
    let resp = app.get("/swagger-ui/no-such-file.js", None).await;
    assert_eq!(check("missing file", &resp, true), StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn registering_with_a_common_password_is_refused_with_the_other_problems() {
    let app = TestApp::spawn().await;
    for common in ["password123", "  Qwertyuiop  ", "ILOVEYOU"] {
        let resp = app.register("erin", common).await;
        let body = assert_error(resp, 422, "validation_error").await;
        assert_eq!(
            body["errors"]["json"]["password"],
            json!(["This password is too common."]),
            "{body}"
        );
    }
    // Listed with the body's other problems, not instead of them.
    let resp = app
        .post(
            "/register",
            None,
            Some(json!({"username": "x", "password": "letmein1", "role": "admin"})),
        )
        .await;
    let body = assert_error(resp, 422, "validation_error").await;
    let fields = body["errors"]["json"].as_object().expect("errors.json");
    assert_eq!(fields["password"], json!(["This password is too common."]));
    assert!(
        fields.contains_key("username") && fields.contains_key("role"),
        "{body}"
    );
    // Nothing was stored: the name is still free for a good password.
    let resp = app.register("erin", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
}

#[actix_web::test]
async fn changing_to_a_common_password_is_refused_and_the_old_one_still_works() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let resp = app
        .change_password(&user.tokens.access, PASSWORD, "Baseball1")
        .await;
    let body = assert_error(resp, 422, "validation_error").await;
    assert_eq!(
        body["errors"]["json"]["new_password"],
        json!(["This password is too common."]),
        "{body}"
    );
    app.login(&user.username, PASSWORD).await;
    let resp = app.get("/me", Some(&user.tokens.access)).await;
    assert_eq!(resp.status(), StatusCode::OK, "the session was kept");
}

#[actix_web::test]
async fn a_common_admin_bootstrap_password_stops_start_up() {
    let started = TestApp::try_spawn_with(|s| {
        s.admin = Some(AdminBootstrap {
            username: "root".into(),
            password: Secret::new("administrator"),
        })
    })
    .await;
    let Err(err) = started else {
        panic!("started with a common admin password");
    };
    assert_eq!(
        err.to_string(),
        "ADMIN_USERNAME/ADMIN_PASSWORD: password: This password is too common."
    );
}

/// `app`'s settings with `username` / `password` as the bootstrap admin: the same
/// database, restarted (or a new instance started) by an operator.
fn with_bootstrap_admin(app: &TestApp, username: &str, password: &str) -> Settings {
    let mut settings = app.settings.clone();
    settings.admin = Some(AdminBootstrap {
        username: username.to_owned(),
        password: Secret::new(password),
    });
    settings
}

/// Starts an instance with `settings`; the line it stopped with, if it refused.
async fn start(settings: Settings) -> Result<(), String> {
    let app = Application::build(settings)
        .await
        .map_err(|e| e.to_string())?;
    actix_web::rt::spawn(app.run_until_stopped());
    Ok(())
}

/// Whether `username` is an admin, as a login of theirs says.
async fn is_admin(app: &TestApp, username: &str, password: &str) -> bool {
    let user = app.logged_in(username, password).await;
    let me: Value = app
        .get("/me", Some(&user.tokens.access))
        .await
        .json()
        .await
        .expect("json");
    me["is_admin"].as_bool().expect("is_admin")
}

fn refusal(username: &str) -> String {
    format!(
        "ADMIN_USERNAME names an existing account ('{username}') whose password is not \
         ADMIN_PASSWORD: set ADMIN_PASSWORD to that account's password, choose another \
         ADMIN_USERNAME, or unset both and run `stores-api admin promote {username}`"
    )
}

#[actix_web::test]
async fn an_existing_account_becomes_the_bootstrap_admin_only_with_its_own_password() {
    let app = TestApp::spawn().await;
    // Someone registered the name an operator is about to configure.
    assert_eq!(
        app.register("operator", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let err = start(with_bootstrap_admin(
        &app,
        "operator",
        "operator-password-1",
    ))
    .await
    .expect_err("a start-up that hands admin to the account's owner");
    assert_eq!(err, refusal("operator"));
    assert!(!is_admin(&app, "operator", PASSWORD).await, "not promoted");

    // The account's own password: the operator holds the account, which is promoted.
    start(with_bootstrap_admin(&app, "operator", PASSWORD))
        .await
        .expect("starts");
    assert!(is_admin(&app, "operator", PASSWORD).await);
}

#[actix_web::test]
async fn a_bootstrap_admin_whose_password_changed_is_never_promoted_again_with_the_old_one() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let changed = "a-new-admin-password-3";
    let resp = app
        .request(
            Method::PUT,
            "/me/password",
            Some(&admin.tokens.access),
            Some(json!({"current_password": ADMIN_PASSWORD, "new_password": changed})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    // Still an admin, but ADMIN_PASSWORD is no longer its password: start-up says so.
    let err = start(with_bootstrap_admin(&app, ADMIN_USERNAME, ADMIN_PASSWORD))
        .await
        .expect_err("a start-up with a stale ADMIN_PASSWORD");
    assert_eq!(err, refusal(ADMIN_USERNAME));

    // Another admin demotes it; a start-up with the old password does not undo that.
    let other = app.user().await;
    let resp = app
        .request(
            Method::PATCH,
            &format!("/user/{}", other.id),
            Some(&admin.tokens.access),
            Some(json!({"is_admin": true})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let other = app.logged_in(&other.username, PASSWORD).await;
    let resp = app
        .request(
            Method::PATCH,
            &format!("/user/{}", admin.id),
            Some(&other.tokens.access),
            Some(json!({"is_admin": false})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let err = start(with_bootstrap_admin(&app, ADMIN_USERNAME, ADMIN_PASSWORD))
        .await
        .expect_err("a start-up that re-promotes a demoted admin");
    assert_eq!(err, refusal(ADMIN_USERNAME));
    assert!(
        !is_admin(&app, ADMIN_USERNAME, changed).await,
        "still demoted"
    );

    // The account's password now: the operator holds it, so it is an admin again.
    start(with_bootstrap_admin(&app, ADMIN_USERNAME, changed))
        .await
        .expect("starts");
    assert!(is_admin(&app, ADMIN_USERNAME, changed).await);
}
