//! The test harness: starts the real server on a random port, on a fresh SQLite file,
//! or on a fresh PostgreSQL database when TEST_DATABASE_URL is set, and talks HTTP to it.

use std::collections::HashMap;
use std::sync::Once;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use diesel::RunQueryDsl;
use jsonwebtoken::{Algorithm, EncodingKey};
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use stores_api::config::Settings;
use stores_api::startup::Application;

/// The key every test server signs with; tests use it to forge tokens.
pub const TEST_KEY: &str = "integration-test-key-integration-test-key";
/// The bootstrap admin of every test server.
pub const ADMIN_USERNAME: &str = "admin";
/// Its password.
pub const ADMIN_PASSWORD: &str = "admin-password-1";
/// The password test users get.
pub const PASSWORD: &str = "correct-horse-battery";

/// A running server and a client for it.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub settings: Settings,
    /// The DATABASE_URL it runs on, for a second instance on the same database.
    pub database_url: String,
    /// Keeps the SQLite file (and data dir) alive for the test's duration.
    _dir: tempfile::TempDir,
}

/// A pair of tokens from /login.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

/// A registered, logged-in user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: i64,
    pub username: String,
    pub password: String,
    pub tokens: Tokens,
}

/// Creates a fresh PostgreSQL database on the TEST_DATABASE_URL server, returns its URL.
pub fn fresh_postgres_database(server_url: &str) -> String {
    let mut admin = stores_api::db::establish_postgres(server_url)
        .unwrap_or_else(|e| panic!("TEST_DATABASE_URL: cannot connect: {e}"));
    let name = format!("stores_test_{}", uuid::Uuid::new_v4().simple());
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .expect("CREATE DATABASE");
    let mut url = url::Url::parse(server_url).expect("TEST_DATABASE_URL is a URL");
    url.set_path(&name);
    url.to_string()
}

/// Whether the suite runs on PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var("TEST_DATABASE_URL").is_ok_and(|v| !v.is_empty())
}

/// When TEST_LOG_FILE is set, sends every test server's log to that file (appended),
/// at RUST_LOG's level or debug, so that scripts/log-scan.sh can search a whole run for
/// secrets. Once per test binary: the logger is global.
fn capture_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let Some(path) = std::env::var_os("TEST_LOG_FILE").filter(|p| !p.is_empty()) else {
            return;
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("TEST_LOG_FILE {}: {e}", path.to_string_lossy()));
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("debug"))
            .target(env_logger::Target::Pipe(Box::new(file)))
            .write_style(env_logger::WriteStyle::Never)
            .init();
    });
}

impl TestApp {
    /// A server with the test defaults.
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(&[]).await
    }

    /// A server with some settings overridden (names as environment variables).
    pub async fn spawn_with(overrides: &[(&str, &str)]) -> TestApp {
        capture_logs();
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = match std::env::var("TEST_DATABASE_URL") {
            Ok(server) if !server.is_empty() => fresh_postgres_database(&server),
            _ => dir.path().join("test.db").display().to_string(),
        };
        TestApp::spawn_on(dir, database_url, overrides).await
    }

    /// Another instance of the service on this one's database (the same PostgreSQL
    /// database, or the same SQLite file), as a second replica behind a load balancer.
    pub async fn spawn_sibling(&self) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        TestApp::spawn_on(dir, self.database_url.clone(), &[]).await
    }

    async fn spawn_on(
        dir: tempfile::TempDir,
        database_url: String,
        overrides: &[(&str, &str)],
    ) -> TestApp {
        let mut env: HashMap<String, String> = [
            ("APP_ENV", "test"),
            ("HOST", "127.0.0.1"),
            ("PORT", "0"),
            ("JWT_SECRET_KEY", TEST_KEY),
            ("BCRYPT_COST", "4"),
            ("ADMIN_USERNAME", ADMIN_USERNAME),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.insert("DATABASE_URL".into(), database_url);
        env.insert("DATA_DIR".into(), dir.path().display().to_string());
        for (k, v) in overrides {
            env.insert(k.to_string(), v.to_string());
        }
        let database_url = env["DATABASE_URL"].clone();
        let settings = Settings::load_from(env).expect("test settings");
        let app = Application::build(settings.clone())
            .await
            .expect("the application starts");
        let address = format!("http://127.0.0.1:{}", app.port());
        actix_web::rt::spawn(app.run_until_stopped());
        TestApp {
            address,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            settings,
            database_url,
            _dir: dir,
        }
    }

    /// Absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Any request; `body` is sent as JSON.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.expect("request sent")
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Option<Value>) -> Response {
        self.request(Method::POST, path, token, body).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::DELETE, path, token, None).await
    }

    pub async fn register(&self, username: &str, password: &str) -> Response {
        self.post(
            "/register",
            None,
            Some(json!({"username": username, "password": password})),
        )
        .await
    }

    /// Logs in; panics unless 200.
    pub async fn login(&self, username: &str, password: &str) -> Tokens {
        let resp = self
            .post(
                "/login",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK, "login of {username}");
        let body: Value = resp.json().await.expect("json");
        Tokens {
            access: body["access_token"].as_str().expect("access").to_string(),
            refresh: body["refresh_token"].as_str().expect("refresh").to_string(),
        }
    }

    /// Logs `username` in and reads its id from /me.
    pub async fn logged_in(&self, username: &str, password: &str) -> TestUser {
        let tokens = self.login(username, password).await;
        let me: Value = self
            .get("/me", Some(&tokens.access))
            .await
            .json()
            .await
            .expect("json");
        TestUser {
            id: me["id"].as_i64().expect("id"),
            username: username.to_string(),
            password: password.to_string(),
            tokens,
        }
    }

    /// Registers a new user with a unique name and logs in.
    pub async fn user(&self) -> TestUser {
        let username = format!("user-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let resp = self.register(&username, PASSWORD).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        self.logged_in(&username, PASSWORD).await
    }

    /// The bootstrap admin, logged in.
    pub async fn admin(&self) -> TestUser {
        self.logged_in(ADMIN_USERNAME, ADMIN_PASSWORD).await
    }

    /// A non-fresh access token for `user` (through /refresh).
    pub async fn non_fresh_access(&self, user: &mut TestUser) -> String {
        let resp = self
            .post("/refresh", Some(&user.tokens.refresh), None)
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.expect("json");
        user.tokens.refresh = body["refresh_token"].as_str().expect("refresh").to_string();
        body["access_token"].as_str().expect("access").to_string()
    }

    /// A new store named `store` with one item named `item` (price 1), made with a fresh
    /// `token`; returns both as the API answered them.
    pub async fn store_with_item(&self, token: &str, store: &str, item: &str) -> (Value, Value) {
        let resp = self
            .post("/store", Some(token), Some(json!({"name": store})))
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let store: Value = resp.json().await.expect("store");
        let resp = self
            .post(
                "/item",
                Some(token),
                Some(json!({"name": item, "price": 1, "store_id": store["id"]})),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let item: Value = resp.json().await.expect("item");
        (store, item)
    }
}

/// Asserts the contract's error shape, status and code (and the RFC 6750 challenge on
/// 401s); returns the body for further checks.
pub async fn assert_error(resp: Response, status: u16, error: &str) -> Value {
    let got = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap_or("").to_string());
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_string());
    let text = resp.text().await.expect("body");
    assert_eq!(got, status, "status (body: {text})");
    assert_eq!(
        content_type.as_deref(),
        Some("application/json"),
        "content type"
    );
    let body: Value = serde_json::from_str(&text).expect("error body is JSON");
    assert_eq!(body["code"], status, "{text}");
    assert_eq!(body["error"], error, "{text}");
    assert!(
        body["status"].as_str().is_some_and(|s| !s.is_empty()),
        "{text}"
    );
    assert!(
        body["message"].as_str().is_some_and(|s| !s.is_empty()),
        "{text}"
    );
    if status == 401 {
        let challenge = challenge.expect("401 carries WWW-Authenticate");
        assert!(challenge.starts_with("Bearer"), "{challenge}");
    }
    body
}

/// Signs an arbitrary payload with `key` (HS256), as another service sharing it would.
pub fn forge(payload: Value, key: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &payload,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .expect("encode")
}

/// A Flask-JWT-Extended style access payload for `user_id`, overridable.
pub fn flask_payload(user_id: i64, overrides: Value) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut payload = json!({
        "fresh": false, "iat": now, "jti": uuid::Uuid::new_v4().to_string(),
        "type": "access", "sub": user_id.to_string(), "nbf": now, "exp": now + 900,
    });
    for (k, v) in overrides.as_object().expect("object") {
        if v.is_null() {
            payload.as_object_mut().expect("object").remove(k);
        } else {
            payload[k] = v.clone();
        }
    }
    payload
}

/// base64url without padding of a JSON value, as a JWT segment.
pub fn b64(json: &Value) -> String {
    URL_SAFE_NO_PAD.encode(json.to_string())
}

/// `header.payload` signed with HMAC by `algorithm` under `key`, whatever the header says.
pub fn sign_raw(header: &Value, payload: &Value, key: &str, algorithm: Algorithm) -> String {
    let message = format!("{}.{}", b64(header), b64(payload));
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(key.as_bytes()),
        algorithm,
    )
    .expect("sign");
    format!("{message}.{signature}")
}
