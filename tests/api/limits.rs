//! Brute-force limits: per-address floods, per-username failed logins and per-user
//! failed password changes get 429 with Retry-After and the RateLimit headers, on one
//! instance or several.

use reqwest::{Method, StatusCode};
use serde_json::json;
use stores_api::config::IpNetwork;

use crate::helpers::{assert_error, credentials, on_postgres, TestApp, PASSWORD};

#[actix_web::test]
async fn a_flood_of_logins_from_one_address_gets_429_with_retry_after() {
    let app = TestApp::spawn_with(|s| s.limits.auth_per_minute = 3).await;
    let body = json!({"username": "nobody", "password": "wrong-password"});
    for _ in 0..3 {
        let resp = app.post("/login", None, Some(body.clone())).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = app.post("/login", None, Some(body.clone())).await;
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_error(resp, 429, "too_many_requests").await;
    // Each endpoint has its own budget.
    let resp = app.register("someone", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
}

#[actix_web::test]
async fn repeated_failures_lock_the_username_even_for_the_right_password() {
    let app = TestApp::spawn_with(|s| {
        s.limits.login_failures = 3;
        s.limits.auth_per_minute = 0;
    })
    .await;
    let victim = app.user().await;
    let other = app.user().await;
    for _ in 0..3 {
        let resp = app.try_login(&victim.username, "wrong-password").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = app.try_login(&victim.username, PASSWORD).await;
    assert!(
        resp.headers().contains_key("retry-after"),
        "{:?}",
        resp.status()
    );
    assert_error(resp, 429, "too_many_requests").await;
    // Another account is not affected.
    app.login(&other.username, PASSWORD).await;
}

#[actix_web::test]
async fn zero_turns_the_limits_off() {
    let app = TestApp::spawn_with(|s| {
        s.limits.auth_per_minute = 0;
        s.limits.login_failures = 0;
    })
    .await;
    let body = json!({"username": "nobody", "password": "wrong-password"});
    for _ in 0..70 {
        let resp = app.post("/login", None, Some(body.clone())).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
}

/// Sends `request` until the per-address bucket of `limit` is empty and checks the 429.
async fn exhaust(what: &str, limit: usize, mut send: impl AsyncFnMut() -> reqwest::Response) {
    for n in 0..limit {
        let resp = send().await;
        assert_ne!(
            resp.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "{what}: request {n} is within the limit"
        );
    }
    let resp = send().await;
    let retry_after: u64 = resp
        .headers()
        .get("retry-after")
        .unwrap_or_else(|| panic!("{what}: no Retry-After ({})", resp.status()))
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{what}: {retry_after}");
    assert_error(resp, 429, "too_many_requests").await;
}

#[actix_web::test]
async fn fresh_login_register_and_refresh_are_limited_per_address_too() {
    let app = TestApp::spawn_with(|s| s.limits.auth_per_minute = 3).await;
    let body = json!({"username": "nobody", "password": "wrong-password"});
    exhaust("/fresh-login", 3, async || {
        app.post("/fresh-login", None, Some(body.clone())).await
    })
    .await;
    let mut n = 0;
    exhaust("/register", 3, async || {
        n += 1;
        app.register(&format!("newcomer-{n}"), PASSWORD).await
    })
    .await;
    // /refresh is judged before the token: a flood of garbage is limited as well.
    exhaust("/refresh", 3, async || {
        app.post("/refresh", Some("not-a-token"), None).await
    })
    .await;
    // Logging in still has its own budget.
    let resp = app.post("/login", None, Some(body.clone())).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

/// POST /login from this test's address, claiming to be `forwarded_for`.
async fn login_forwarded(app: &TestApp, forwarded_for: &str) -> reqwest::Response {
    app.call(Method::POST, "/login")
        .header("X-Forwarded-For", forwarded_for)
        .json(&credentials("nobody", "wrong-password"))
        .send()
        .await
}

#[actix_web::test]
async fn without_trusted_proxies_a_spoofed_x_forwarded_for_does_not_escape_the_limit() {
    let app = TestApp::spawn_with(|s| s.limits.auth_per_minute = 3).await;
    for n in 0..3 {
        let resp = login_forwarded(&app, &format!("203.0.113.{n}")).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    for spoof in ["203.0.113.99", "198.51.100.7, 203.0.113.50", "::1"] {
        let resp = login_forwarded(&app, spoof).await;
        assert_error(resp, 429, "too_many_requests").await;
    }
}

#[actix_web::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket() {
    // The test client connects from 127.0.0.1: here, that is the proxy.
    let app = TestApp::spawn_with(|s| {
        s.limits.auth_per_minute = 2;
        s.http.trusted_proxies = vec![IpNetwork::parse("127.0.0.1").expect("a block")];
    })
    .await;
    for _ in 0..2 {
        let resp = login_forwarded(&app, "203.0.113.1").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = login_forwarded(&app, "203.0.113.1").await;
    assert_error(resp, 429, "too_many_requests").await;
    // Another client behind the same proxy is not affected.
    let resp = login_forwarded(&app, "203.0.113.2").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // The left-most entries are the client's to write: the limited client cannot
    // escape by prepending one, only the right-most untrusted entry counts.
    let resp = login_forwarded(&app, "10.9.9.9, 203.0.113.1").await;
    assert_error(resp, 429, "too_many_requests").await;
    // A proxy chain ending in trusted hops: the nearest untrusted one is the client.
    let resp = login_forwarded(&app, "203.0.113.1, 127.0.0.1").await;
    assert_error(resp, 429, "too_many_requests").await;
}

#[actix_web::test]
async fn behind_a_trusted_proxy_sessions_record_the_forwarded_address() {
    let app = TestApp::spawn_with(|s| {
        s.http.trusted_proxies = vec![IpNetwork::parse("127.0.0.0/8").expect("a block")]
    })
    .await;
    app.register("dora", PASSWORD).await;
    let resp = app
        .call(Method::POST, "/login")
        .header("X-Forwarded-For", "198.51.100.23, 127.0.0.5")
        .json(&credentials("dora", PASSWORD))
        .send()
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let tokens: serde_json::Value = resp.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let sessions: serde_json::Value = app
        .get("/sessions", Some(access))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions[0]["ip"], "198.51.100.23", "{sessions}");

    // Without the setting, the same header is ignored: the peer is recorded.
    let direct = TestApp::spawn().await;
    direct.register("dora", PASSWORD).await;
    let resp = direct
        .call(Method::POST, "/login")
        .header("X-Forwarded-For", "198.51.100.23")
        .json(&credentials("dora", PASSWORD))
        .send()
        .await;
    let tokens: serde_json::Value = resp.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let sessions: serde_json::Value = direct
        .get("/sessions", Some(access))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions[0]["ip"], "127.0.0.1", "{sessions}");
}

/// The value of `name` in `resp`, as text.
fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} ({})", resp.status()))
        .to_str()
        .expect("ascii")
        .to_owned()
}

/// The `t` of a `RateLimit` field value.
fn reset_of(field: &str) -> u64 {
    field
        .split(';')
        .find_map(|p| p.strip_prefix("t="))
        .unwrap_or_else(|| panic!("no t in {field}"))
        .parse()
        .expect("seconds")
}

#[actix_web::test]
async fn limited_routes_tell_the_client_its_budget_in_ratelimit_headers_readable_by_browsers() {
    const SPA: &str = "https://app.example.com";
    let app = TestApp::spawn_with(|s| {
        s.limits.auth_per_minute = 2;
    })
    .await;
    let login = || {
        reqwest::Client::new()
            .post(app.url("/login"))
            .header("Origin", SPA)
            .json(&json!({"username": "nobody", "password": "wrong-password"}))
            .send()
    };
    let resp = login().await.expect("sent");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&resp, "ratelimit-policy"), r#""auth";q=2;w=60"#);
    let field = header(&resp, "ratelimit");
    assert!(field.starts_with(r#""auth";r=1;t="#), "{field}");
    assert!((1..=60).contains(&reset_of(&field)), "{field}");
    let exposed = header(&resp, "access-control-expose-headers").to_ascii_lowercase();
    for name in ["retry-after", "ratelimit-policy", "ratelimit"] {
        assert!(
            exposed.split(", ").any(|h| h == name),
            "{name} in {exposed}"
        );
    }

    login().await.expect("sent");
    let resp = login().await.expect("sent");
    let field = header(&resp, "ratelimit");
    assert!(field.starts_with(r#""auth";r=0;t="#), "{field}");
    let retry_after: u64 = header(&resp, "retry-after").parse().expect("seconds");
    assert_eq!(retry_after, reset_of(&field), "Retry-After is the reset");
    assert_error(resp, 429, "too_many_requests").await;

    // Routes without a limit say nothing of one.
    let resp = app.get("/health", None).await;
    assert!(!resp.headers().contains_key("ratelimit"));
}

#[actix_web::test]
async fn ipv6_clients_count_by_their_64_and_mapped_ipv4_as_ipv4() {
    let app = TestApp::spawn_with(|s| {
        s.limits.auth_per_minute = 2;
        s.http.trusted_proxies =
            vec![stores_api::config::IpNetwork::parse("127.0.0.0/8").expect("a network")];
    })
    .await;
    // Two addresses of one /64: one budget.
    for address in ["2001:db8:1:2::1", "2001:db8:1:2:ffff:eeee:dddd:cccc"] {
        let resp = login_forwarded(&app, address).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{address}");
    }
    let resp = login_forwarded(&app, "[2001:db8:1:2::99]:4711").await;
    assert_error(resp, 429, "too_many_requests").await;
    // The next /64 is another client.
    let resp = login_forwarded(&app, "2001:db8:1:3::1").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // An IPv4 client is the same client when a proxy writes it IPv4-mapped.
    for address in ["203.0.113.9", "::ffff:203.0.113.9"] {
        let resp = login_forwarded(&app, address).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{address}");
    }
    let resp = login_forwarded(&app, "::ffff:cb00:7109").await;
    assert_error(resp, 429, "too_many_requests").await;
}

/// PUT /me/password with `current` as the current password.
async fn change_password(app: &TestApp, token: &str, current: &str) -> reqwest::Response {
    reqwest::Client::new()
        .put(app.url("/me/password"))
        .bearer_auth(token)
        .json(&json!({"current_password": current, "new_password": "another-long-passphrase"}))
        .send()
        .await
        .expect("request sent")
}

#[actix_web::test]
async fn password_changes_are_limited_per_address() {
    let app = TestApp::spawn_with(|s| {
        s.limits.auth_per_minute = 3;
    })
    .await;
    let user = app.user().await;
    exhaust("PUT /me/password", 3, async || {
        change_password(&app, &user.tokens.access, "wrong-password").await
    })
    .await;
}

#[actix_web::test]
async fn wrong_current_passwords_lock_that_users_password_changes_only() {
    let app = TestApp::spawn_with(|s| {
        s.limits.login_failures = 3;
        s.limits.auth_per_minute = 0;
    })
    .await;
    let victim = app.user().await;
    let other = app.user().await;
    for _ in 0..3 {
        let resp = change_password(&app, &victim.tokens.access, "wrong-password").await;
        let body = assert_error(resp, 422, "validation_error").await;
        assert!(
            body["errors"]["json"]["current_password"].is_array(),
            "{body}"
        );
    }
    // The right password no longer helps: guessing is over for this window.
    let resp = change_password(&app, &victim.tokens.access, PASSWORD).await;
    assert_eq!(header(&resp, "ratelimit-policy"), r#""password";q=3;w=900"#);
    let retry_after: u64 = header(&resp, "retry-after").parse().expect("seconds");
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    assert_error(resp, 429, "too_many_requests").await;
    // Another user changes theirs, and the victim can still log in.
    let resp = change_password(&app, &other.tokens.access, PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::OK);
    app.login(&victim.username, PASSWORD).await;
}

#[actix_web::test]
async fn any_username_is_a_401_that_leaves_no_trace_never_a_500() {
    // One failure locks a valid username: an invalid one must stay a plain 401.
    let app = TestApp::spawn_with(|s| {
        s.limits.login_failures = 1;
        s.limits.auth_per_minute = 0;
    })
    .await;
    let hostile = [
        "a\u{0}b".to_owned(),
        "\u{0}".repeat(3),
        "x".repeat(60_000),
        "\u{0}".repeat(10_000),
        "ab".to_owned(),
        "ä".repeat(81),
        "bad\u{1}name".to_owned(),
        "\u{202e}\u{0}\u{fffd}".to_owned(),
    ];
    for route in ["/login", "/fresh-login"] {
        for username in &hostile {
            for _ in 0..2 {
                let resp = app
                    .post(
                        route,
                        None,
                        Some(json!({"username": username, "password": "wrong-password"})),
                    )
                    .await;
                let what = format!("{route} {:?}", username.chars().take(8).collect::<String>());
                assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
                assert_error(resp, 401, "invalid_credentials").await;
            }
        }
    }
    // A valid username that fails is counted: the limit is on.
    for expected in [401, 429] {
        let resp = app
            .post(
                "/login",
                None,
                Some(json!({"username": "nobody-here", "password": "wrong-password"})),
            )
            .await;
        assert_eq!(resp.status().as_u16(), expected);
    }
    // A body whose username is no string is malformed: 422, not 500 either.
    let resp = app
        .post(
            "/login",
            None,
            Some(json!({"username": ["\u{0}"], "password": "wrong-password"})),
        )
        .await;
    assert_error(resp, 422, "validation_error").await;
}

#[actix_web::test]
async fn several_instances_share_the_limits_on_postgresql() {
    // Defaults: 60 requests a minute per address and route, 10 failures per username.
    let a = TestApp::spawn().await;
    let b = a.spawn_sibling().await;
    let victim = a.user().await;
    for app in [&a, &b, &a, &b, &a, &b, &a, &b, &a, &b] {
        let resp = app
            .post(
                "/login",
                None,
                Some(json!({"username": victim.username, "password": "wrong-password"})),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = b
        .post(
            "/login",
            None,
            Some(json!({"username": victim.username, "password": PASSWORD})),
        )
        .await;
    if on_postgres() {
        // Ten failures, five on each instance: the username is locked on both.
        assert_error(resp, 429, "too_many_requests").await;
    } else {
        // SQLite is one instance's database: each counts its own.
        assert_eq!(resp.status(), StatusCode::OK);
    }

    // Sixty requests from one address, half on each instance.
    for n in 0..60 {
        let app = if n % 2 == 0 { &a } else { &b };
        let resp = app
            .post(
                "/fresh-login",
                None,
                Some(json!({"username": format!("nobody-{n}"), "password": "wrong-password"})),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "request {n}");
    }
    let resp = a
        .post(
            "/fresh-login",
            None,
            Some(json!({"username": "nobody", "password": "wrong-password"})),
        )
        .await;
    if on_postgres() {
        assert!(header(&resp, "ratelimit").starts_with(r#""auth";r=0;"#));
        assert_error(resp, 429, "too_many_requests").await;
    } else {
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
}
