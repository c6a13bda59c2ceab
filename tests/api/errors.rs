//! API.md's error table, row by row, as a client meets it: the status, the stable
//! `error` code, the full body shape, and the Bearer challenge on every 401.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    assert_error, assert_error_shape, b64, flask_payload, forge, sign_raw, Reply, TestApp,
    TestUser, ADMIN_PASSWORD, LEAKS, OTHER_KEY, PASSWORD, TEST_KEY,
};

/// GET `path` with this exact Authorization header.
async fn get_with_authorization(app: &TestApp, path: &str, authorization: &str) -> Response {
    app.call(Method::GET, path)
        .header("Authorization", authorization)
        .send()
        .await
}

async fn register_expecting(app: &TestApp, username: &str, password: &str, status: StatusCode) {
    let resp = app.register(username, password).await;
    let got = resp.status();
    let text = resp.text().await.expect("body");
    assert_eq!(got, status, "{text}");
}

async fn assert_me(app: &TestApp, token: &str, user: &TestUser) {
    let resp = app.get("/me", Some(token)).await;
    let status = resp.status();
    let text = resp.text().await.expect("body");
    assert_eq!(status, StatusCode::OK, "{text}");
    let me: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(me["id"], user.id);
}

#[actix_web::test]
async fn tokens_that_are_not_ours_or_not_valid_are_refused_with_the_right_code() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let id = alice.id;
    let now = chrono::Utc::now().timestamp();
    let good = flask_payload(id, json!({}));
    let hs256 = json!({"alg": "HS256", "typ": "JWT"});

    // The hand-built signer makes tokens the server accepts: the refusals below are
    // about the one thing each of them changes.
    let control = sign_raw(&hs256, &good, TEST_KEY, Algorithm::HS256);
    assert_me(&app, &control, &alice).await;

    let hs512 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &good,
        &EncodingKey::from_secret(TEST_KEY.as_bytes()),
    )
    .expect("encode");
    let cases: Vec<(&str, String, &str, Option<&str>)> = vec![
        ("garbage", "not-a-jwt".into(), "invalid_token", None),
        (
            "three garbage parts",
            "abc.def.ghi".into(),
            "invalid_token",
            None,
        ),
        (
            "a bad signature",
            forge(good.clone(), OTHER_KEY),
            "invalid_token",
            None,
        ),
        (
            "a truncated signature",
            control[..control.len() - 4].to_string(),
            "invalid_token",
            None,
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(&good)
            ),
            "invalid_token",
            None,
        ),
        (
            "alg None with a signature",
            format!(
                "{}.{}.{}",
                b64(&json!({"alg": "None"})),
                b64(&good),
                control.rsplit('.').next().expect("signature")
            ),
            "invalid_token",
            None,
        ),
        ("HS512 instead of HS256", hs512, "invalid_token", None),
        (
            "a kid header",
            sign_raw(
                &json!({"alg": "HS256", "typ": "JWT", "kid": "../../etc/passwd"}),
                &good,
                TEST_KEY,
                Algorithm::HS256,
            ),
            "invalid_token",
            None,
        ),
        (
            "a jku header",
            sign_raw(
                &json!({"alg": "HS256", "jku": "https://attacker.example/jwks.json"}),
                &good,
                TEST_KEY,
                Algorithm::HS256,
            ),
            "invalid_token",
            None,
        ),
        (
            "a crit header",
            sign_raw(
                &json!({"alg": "HS256", "crit": ["exp"]}),
                &good,
                TEST_KEY,
                Algorithm::HS256,
            ),
            "invalid_token",
            None,
        ),
        (
            "an expired token",
            forge(flask_payload(id, json!({"exp": now - 60})), TEST_KEY),
            "token_expired",
            Some("The token has expired."),
        ),
        (
            "an expired token with a bad signature",
            forge(flask_payload(id, json!({"exp": now - 60})), OTHER_KEY),
            "invalid_token",
            None,
        ),
        (
            "nbf in the future",
            forge(flask_payload(id, json!({"nbf": now + 120})), TEST_KEY),
            "invalid_token",
            None,
        ),
        (
            "no exp",
            forge(flask_payload(id, json!({"exp": null})), TEST_KEY),
            "invalid_token",
            None,
        ),
        (
            "a sub that is not a number",
            forge(flask_payload(id, json!({"sub": "alice"})), TEST_KEY),
            "invalid_token",
            None,
        ),
        (
            "a sid that names no session",
            forge(
                flask_payload(id, json!({"sid": uuid::Uuid::new_v4().to_string()})),
                TEST_KEY,
            ),
            "token_revoked",
            Some("The token has been revoked."),
        ),
        (
            "a 10 KB token",
            format!("{}.{}.{}", b64(&hs256), "A".repeat(10 * 1024), "c2ln"),
            "invalid_token",
            None,
        ),
    ];
    for (what, token, error, message) in cases {
        eprintln!("{what}: expecting 401 {error}");
        let resp = app.get("/me", Some(&token)).await;
        let refused = assert_error(resp, 401, error).await;
        if let Some(message) = message {
            assert_eq!(refused["message"], message);
        }
    }
}

#[actix_web::test]
async fn the_authorization_header_is_read_as_rfc_6750_says() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let token = &alice.tokens.access;
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let resp = get_with_authorization(&app, "/me", &format!("{scheme} {token}")).await;
        assert_eq!(resp.status(), StatusCode::OK, "scheme {scheme}");
    }
    // Another scheme is no bearer token at all.
    for header in ["Basic YWxpY2U6c2VjcmV0", "Token abc", "xxx"] {
        let resp = get_with_authorization(&app, "/me", header).await;
        let refused = assert_error(resp, 401, "authorization_required").await;
        assert_eq!(
            refused["message"],
            "Request does not contain an access token."
        );
    }
    // The Bearer scheme with nothing after it is a malformed credential.
    for header in ["Bearer", "Bearer ", "bearer    "] {
        eprintln!("{header:?}");
        let resp = get_with_authorization(&app, "/me", header).await;
        assert_error(resp, 401, "invalid_token").await;
    }
}

#[actix_web::test]
async fn a_sidless_token_for_a_deleted_user_is_revoked() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let alice = app.user().await;
    let flask = forge(flask_payload(alice.id, json!({})), TEST_KEY);
    assert_me(&app, &flask, &alice).await;
    let resp = app
        .delete(&format!("/user/{}", alice.id), Some(&admin.tokens.access))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = app.get("/me", Some(&flask)).await;
    let refused = assert_error(resp, 401, "token_revoked").await;
    assert_eq!(refused["message"], "The token has been revoked.");
    // A new user does not inherit the deleted id, so the token stays dead.
    let bob = app.user().await;
    assert_ne!(bob.id, alice.id);
    let resp = app.get("/me", Some(&flask)).await;
    assert_error(resp, 401, "token_revoked").await;
}

#[actix_web::test]
async fn with_an_issuer_and_audience_configured_only_matching_tokens_pass() {
    let app = TestApp::spawn_with(|s| {
        s.tokens.issuer = Some("stores".into());
        s.tokens.audience = Some("apps".into());
    })
    .await;
    // Our own tokens carry both and work, refresh included.
    let mut alice = app.user().await;
    let stale = app.non_fresh_access(&mut alice).await;
    assert_me(&app, &stale, &alice).await;

    let id = alice.id;
    let matching = forge(
        flask_payload(id, json!({"iss": "stores", "aud": "apps"})),
        TEST_KEY,
    );
    assert_me(&app, &matching, &alice).await;
    let cases = [
        ("neither iss nor aud", json!({})),
        ("no iss", json!({"aud": "apps"})),
        ("no aud", json!({"iss": "stores"})),
        ("a wrong iss", json!({"iss": "elsewhere", "aud": "apps"})),
        ("a wrong aud", json!({"iss": "stores", "aud": "others"})),
        ("both wrong", json!({"iss": "elsewhere", "aud": "others"})),
    ];
    for (what, overrides) in cases {
        eprintln!("{what}");
        let token = forge(flask_payload(id, overrides), TEST_KEY);
        let resp = app.get("/me", Some(&token)).await;
        assert_error(resp, 401, "invalid_token").await;
    }
}

#[actix_web::test]
async fn the_configured_leeway_and_no_more_is_granted_to_expired_tokens() {
    let lenient = TestApp::spawn_with(|s| s.tokens.leeway = Duration::from_secs(30)).await;
    let alice = lenient.user().await;
    let now = chrono::Utc::now().timestamp();
    let just_expired = forge(flask_payload(alice.id, json!({"exp": now - 5})), TEST_KEY);
    assert_me(&lenient, &just_expired, &alice).await;
    let long_expired = forge(flask_payload(alice.id, json!({"exp": now - 60})), TEST_KEY);
    let resp = lenient.get("/me", Some(&long_expired)).await;
    let refused = assert_error(resp, 401, "token_expired").await;
    assert_eq!(refused["message"], "The token has expired.");

    let strict = TestApp::spawn().await;
    let bob = strict.user().await;
    let now = chrono::Utc::now().timestamp();
    let just_expired = forge(flask_payload(bob.id, json!({"exp": now - 5})), TEST_KEY);
    let resp = strict.get("/me", Some(&just_expired)).await;
    let refused = assert_error(resp, 401, "token_expired").await;
    assert_eq!(refused["message"], "The token has expired.");
}

#[actix_web::test]
async fn a_body_that_is_not_json_is_a_bad_request() {
    let app = TestApp::spawn().await;
    let credentials = json!({"username": "alice", "password": PASSWORD}).to_string();
    let cases: Vec<(&str, Option<&str>, String)> = vec![
        (
            "broken JSON",
            Some("application/json"),
            "{\"username\": ".into(),
        ),
        (
            "not JSON at all",
            Some("application/json"),
            "username=alice".into(),
        ),
        (
            "an empty JSON body",
            Some("application/json"),
            String::new(),
        ),
        ("JSON without a Content-Type", None, credentials.clone()),
        (
            "JSON sent as text/plain",
            Some("text/plain"),
            credentials.clone(),
        ),
        (
            "a form",
            Some("application/x-www-form-urlencoded"),
            "username=alice&password=correct-horse-battery".into(),
        ),
        ("no body, no Content-Type", None, String::new()),
    ];
    for (what, content_type, body) in cases {
        eprintln!("{what}");
        let resp = app
            .send_raw(Method::POST, "/register", None, content_type, body)
            .await;
        assert_error(resp, 400, "bad_request").await;
    }
    // Nothing was registered on the way.
    let resp = app.try_login("alice", PASSWORD).await;
    assert_error(resp, 401, "invalid_credentials").await;
    // The same JSON with the right type (and a charset) is fine.
    let resp = app
        .send_raw(
            Method::POST,
            "/register",
            None,
            Some("application/json; charset=utf-8"),
            credentials,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
}

#[actix_web::test]
async fn json_that_is_not_an_object_is_a_validation_error() {
    let app = TestApp::spawn().await;
    for body in [
        json!([]),
        json!([{"username": "alice", "password": PASSWORD}]),
        json!("alice"),
        json!(42),
        json!(null),
    ] {
        eprintln!("{body}");
        let resp = app.post("/register", None, Some(body)).await;
        let refused = assert_error(resp, 422, "validation_error").await;
        assert_eq!(refused["message"], "Invalid request.");
        assert!(
            refused["errors"]["json"]
                .as_object()
                .is_some_and(|fields| !fields.is_empty()),
            "{refused}"
        );
    }
}

#[actix_web::test]
async fn missing_mistyped_and_unknown_fields_are_all_reported_at_once() {
    let app = TestApp::spawn().await;
    let resp = app
        .post(
            "/register",
            None,
            Some(json!({"username": 12, "is_admin": true})),
        )
        .await;
    let body = assert_error(resp, 422, "validation_error").await;
    assert_eq!(body["message"], "Invalid request.");
    let fields = body["errors"]["json"].as_object().expect("errors.json");
    for field in ["username", "password", "is_admin"] {
        let problems = fields[field]
            .as_array()
            .unwrap_or_else(|| panic!("{field}: {body}"));
        assert!(
            !problems.is_empty()
                && problems
                    .iter()
                    .all(|p| p.as_str().is_some_and(|s| !s.is_empty())),
            "{field}: {body}"
        );
    }
    assert_eq!(fields.len(), 3, "{body}");
}

#[actix_web::test]
async fn a_body_over_the_configured_limit_is_payload_too_large() {
    let app = TestApp::spawn_with(|s| s.http.max_body_bytes = 1024).await;
    let big = json!({"username": "bigbody", "password": "x".repeat(1970)});
    assert!(big.to_string().len() >= 2000);
    let resp = app.post("/register", None, Some(big)).await;
    assert_error(resp, 413, "payload_too_large").await;
    // Under the limit, the same kind of body is read and judged on its merits.
    let small = json!({"username": "bigbody", "password": "x".repeat(900)});
    assert!(small.to_string().len() < 1024);
    let resp = app.post("/register", None, Some(small)).await;
    let body = assert_error(resp, 422, "validation_error").await;
    assert!(body["errors"]["json"]["password"].is_array(), "{body}");
}

#[actix_web::test]
async fn unknown_routes_wrong_methods_and_unparsable_ids_get_the_error_shape() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin().await;
    let admin_stale = app.non_fresh_access(&mut admin).await;
    let token = Some(admin_stale.as_str());

    for path in ["/nope", "/users/1/extra", "/me/nothing"] {
        assert_error(app.get(path, token).await, 404, "not_found").await;
        assert_error(app.get(path, None).await, 404, "not_found").await;
    }
    let wrong_methods = [
        (Method::GET, "/login"),
        (Method::GET, "/register"),
        (Method::DELETE, "/me"),
        (Method::POST, "/me"),
        (Method::GET, "/refresh"),
        (Method::PUT, "/health"),
        (Method::POST, "/users"),
    ];
    for (method, path) in wrong_methods {
        eprintln!("{method} {path}");
        let resp = app.request(method.clone(), path, None, None).await;
        assert_error(resp, 405, "method_not_allowed").await;
        let resp = app.request(method, path, token, None).await;
        assert_error(resp, 405, "method_not_allowed").await;
    }
    for path in [
        "/user/abc",
        "/user/1.5",
        "/user/0",
        "/user/-1",
        "/user/99999999999999999999999",
        "/user/987654",
        "/user/abc/revoke",
    ] {
        eprintln!("{path}");
        let method = if path.ends_with("/revoke") {
            Method::POST
        } else {
            Method::GET
        };
        let resp = app.request(method, path, token, None).await;
        assert_error(resp, 404, "not_found").await;
    }
    for sid in ["xyz", "123", "not-a-uuid-at-all"] {
        let resp = app.delete(&format!("/sessions/{sid}"), token).await;
        assert_error(resp, 404, "not_found").await;
    }
    // A well-formed session id that names nothing is a 404 too.
    let resp = app
        .delete(&format!("/sessions/{}", uuid::Uuid::new_v4()), token)
        .await;
    assert_error(resp, 404, "not_found").await;
}

#[actix_web::test]
async fn a_taken_username_is_a_conflict_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    register_expecting(&app, "dupont", PASSWORD, StatusCode::CREATED).await;
    let resp = app.register("dupont", "a-second-password").await;
    let refused = assert_error(resp, 409, "conflict").await;
    assert_eq!(
        refused["message"],
        "A user with that username already exists."
    );
    app.login("dupont", PASSWORD).await;
    let resp = app.try_login("dupont", "a-second-password").await;
    let refused = assert_error(resp, 401, "invalid_credentials").await;
    assert_eq!(refused["message"], "Invalid credentials.");
    // The bootstrap admin's name is taken too, and the admin keeps their password.
    let resp = app.register("admin", "a-takeover-password").await;
    assert_error(resp, 409, "conflict").await;
    app.login("admin", ADMIN_PASSWORD).await;
}

#[actix_web::test]
async fn passwords_are_bounded_in_bytes_never_truncated() {
    let app = TestApp::spawn().await;
    let exactly_72 = "p".repeat(72);
    register_expecting(&app, "seventytwo", &exactly_72, StatusCode::CREATED).await;
    app.login("seventytwo", &exactly_72).await;
    // bcrypt would ignore byte 73 onwards: the service must not log this one in.
    let resp = app.try_login("seventytwo", &format!("{exactly_72}X")).await;
    assert_error(resp, 401, "invalid_credentials").await;

    let too_long = ["q".repeat(73), "€".repeat(25)]; // 73 and 75 bytes
    for password in too_long {
        let resp = app.register("seventythree", &password).await;
        let body = assert_error(resp, 422, "validation_error").await;
        assert!(body["errors"]["json"]["password"].is_array(), "{body}");
        assert!(!body.to_string().contains(&password), "echoes the password");
        let resp = app.try_login("seventythree", &password).await;
        assert_error(resp, 401, "invalid_credentials").await;
        let prefix: String = password.chars().take(24).collect();
        let resp = app.try_login("seventythree", &prefix).await;
        assert_error(resp, 401, "invalid_credentials").await;
    }
    // 24 three-byte characters are 72 bytes: allowed.
    register_expecting(&app, "euros", &"€".repeat(24), StatusCode::CREATED).await;
    app.login("euros", &"€".repeat(24)).await;

    let resp = app.register("seven", "1234567").await;
    let body = assert_error(resp, 422, "validation_error").await;
    assert!(body["errors"]["json"]["password"].is_array(), "{body}");
    let resp = app.try_login("seven", "1234567").await;
    assert_error(resp, 401, "invalid_credentials").await;

    // /login never tells what the password rules are: a wrong one of any length is 401.
    for wrong in ["z".repeat(100), "short".into(), String::new()] {
        let resp = app.try_login("seventytwo", &wrong).await;
        let refused = assert_error(resp, 401, "invalid_credentials").await;
        assert_eq!(refused["message"], "Invalid credentials.");
    }
}

#[actix_web::test]
async fn no_error_body_carries_a_hash_a_key_or_a_password() {
    let app = TestApp::spawn().await;
    let mut alice = app.user().await;
    let stale = app.non_fresh_access(&mut alice).await;
    let secret_attempt = "my-very-secret-attempt";
    let now = chrono::Utc::now().timestamp();
    let responses = vec![
        app.try_login(&alice.username, secret_attempt).await,
        app.try_login("nobody-here", secret_attempt).await,
        app.register(&alice.username, secret_attempt).await,
        app.register("x", &format!("{secret_attempt}{}", "!".repeat(80)))
            .await,
        app.change_password(&alice.tokens.access, secret_attempt, "short")
            .await,
        app.change_password(&stale, PASSWORD, secret_attempt).await,
        app.send_raw(
            Method::POST,
            "/login",
            None,
            Some("application/json"),
            format!(
                "{{\"username\": \"{}\", \"password\": \"{secret_attempt}",
                alice.username
            ),
        )
        .await,
        app.get(
            "/me",
            Some(&forge(
                flask_payload(alice.id, json!({"exp": now - 1})),
                TEST_KEY,
            )),
        )
        .await,
        app.get(
            "/me",
            Some(&forge(flask_payload(alice.id, json!({})), OTHER_KEY)),
        )
        .await,
        app.get("/users", Some(&alice.tokens.access)).await,
    ];
    for resp in responses {
        let reply = Reply::read(resp).await;
        let (status, text) = (reply.status, reply.text.clone());
        assert!(status.is_client_error(), "{status}: {text}");
        for leak in LEAKS.iter().chain([&secret_attempt, &PASSWORD]) {
            assert!(!text.contains(leak), "{leak} in {text}");
        }
        let body = assert_error_shape(reply).await;
        assert!(body["error"].is_string(), "{text}");
    }
}

#[actix_web::test]
async fn health_and_readiness_answer_in_json() {
    let app = TestApp::spawn().await;
    let resp = app.get("/health", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body, json!({"status": "ok"}));
    let resp = app.get("/ready", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let _: Value = resp.json().await.expect("json");
    // A bad token on a public route is ignored, not refused.
    let resp = app.get("/health", Some("garbage")).await;
    assert_eq!(resp.status(), StatusCode::OK);
}
