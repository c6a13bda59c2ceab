//! The server under test: the real application on a random port, on a fresh SQLite
//! file, or on a fresh PostgreSQL database when TEST_DATABASE_URL is set, and an HTTP
//! client for it.

use std::collections::HashMap;
use std::sync::{Arc, Once};

use diesel::RunQueryDsl;
use reqwest::{Method, Response};
use serde_json::{json, Value};
use stores_api::config::Settings;
use stores_api::startup::{Application, StartupError};

use super::assertions::{list_of, ok_json};
use super::fixtures::{ADMIN_PASSWORD, ADMIN_USERNAME, TEST_KEY};

/// A running server and a client for it. A clone is another handle on the same server.
#[derive(Clone)]
pub struct TestApp {
    /// What the server runs with, for tests that reach past HTTP (its database).
    pub settings: Settings,
    address: String,
    /// `http://127.0.0.1:PORT` of the metrics listener, unless METRICS_ADDR is empty.
    metrics_address: Option<String>,
    /// Requests go through the methods below, so that a test reads as what a client
    /// does rather than how a request is built.
    client: reqwest::Client,
    /// Keeps the SQLite file (and data dir) alive for the test's duration.
    _dir: Arc<tempfile::TempDir>,
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
/// at RUST_LOG's level or debug and in LOG_FORMAT's format, so that scripts/log-scan.sh can search a whole run for
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
        // LOG_FORMAT as the binary reads it, so that the scan covers both formats.
        let format = std::env::var("LOG_FORMAT")
            .unwrap_or_default()
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        stores_api::logging::builder(format, "debug")
            .target(env_logger::Target::Pipe(Box::new(file)))
            .write_style(env_logger::WriteStyle::Never)
            .init();
    });
}

/// The settings every test server starts from, read by the settings loader as the
/// binary would read them: the test environment, a key tests can forge tokens with, the
/// cheapest hashing, the bootstrap admin, a random port, files under `dir`.
fn test_settings(dir: &tempfile::TempDir, database_url: String) -> Settings {
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
    Settings::load_from(env).expect("test settings")
}

impl TestApp {
    /// A server with the test settings.
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(|_| {}).await
    }

    /// A server with the test settings as `edit` leaves them.
    pub async fn spawn_with(edit: impl FnOnce(&mut Settings)) -> TestApp {
        TestApp::try_spawn_with(edit)
            .await
            .expect("the application starts")
    }

    /// `spawn_with`, for a test of what stops the application from starting.
    pub async fn try_spawn_with(edit: impl FnOnce(&mut Settings)) -> Result<TestApp, StartupError> {
        capture_logs();
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = match std::env::var("TEST_DATABASE_URL") {
            Ok(server) if !server.is_empty() => fresh_postgres_database(&server),
            _ => dir.path().join("test.db").display().to_string(),
        };
        let mut settings = test_settings(&dir, database_url);
        edit(&mut settings);
        TestApp::start(dir, settings).await
    }

    /// Another instance of the service on this one's database (the same PostgreSQL
    /// database, or the same SQLite file) and keys, as a second replica behind a load
    /// balancer.
    pub async fn spawn_sibling(&self) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = test_settings(&dir, dir.path().join("test.db").display().to_string());
        settings.database.url = self.settings.database.url.clone();
        // Replicas share the keys (the secret, or the key-encryption key) and where
        // tokens are read.
        settings.tokens = self.settings.tokens.clone();
        settings.browser = self.settings.browser.clone();
        TestApp::start(dir, settings)
            .await
            .expect("the sibling starts")
    }

    async fn start(dir: tempfile::TempDir, settings: Settings) -> Result<TestApp, StartupError> {
        let app = Application::build(settings.clone()).await?;
        let address = format!("http://127.0.0.1:{}", app.port());
        let metrics_address = app
            .metrics_port()
            .map(|port| format!("http://127.0.0.1:{port}"));
        actix_web::rt::spawn(app.run_until_stopped());
        Ok(TestApp {
            address,
            metrics_address,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            settings,
            _dir: Arc::new(dir),
        })
    }

    /// Absolute URL of `path` on the metrics listener; `None` when it is off.
    pub fn metrics_url(&self, path: &str) -> Option<String> {
        self.metrics_address
            .as_ref()
            .map(|address| format!("{address}{path}"))
    }

    /// Absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A request to put together, for what the shortcuts below do not say.
    pub fn call(&self, method: Method, path: &str) -> Call {
        Call(self.client.request(method, self.url(path)))
    }

    /// Any request, with a bearer `token` when given and `body` as JSON.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let call = self.call(method, path).bearer(token);
        match body {
            Some(body) => call.json(&body),
            None => call,
        }
        .send()
        .await
    }

    /// A request with this exact body and content type (none when `None`), whether or
    /// not it is JSON.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        self.call(method, path)
            .bearer(token)
            .raw(content_type, body)
            .send()
            .await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Option<Value>) -> Response {
        self.request(Method::POST, path, token, body).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.request(Method::PUT, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.request(Method::PATCH, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::DELETE, path, token, None).await
    }

    pub async fn register(&self, username: &str, password: &str) -> Response {
        self.post("/register", None, Some(credentials(username, password)))
            .await
    }

    /// POST /login, whatever the answer.
    pub async fn try_login(&self, username: &str, password: &str) -> Response {
        self.post("/login", None, Some(credentials(username, password)))
            .await
    }

    /// PUT /me/password, whatever the answer.
    pub async fn change_password(&self, token: &str, current: &str, new: &str) -> Response {
        let body = json!({"current_password": current, "new_password": new});
        self.put("/me/password", Some(token), body).await
    }

    /// GET `path`; asserts a 200 with a JSON body and returns it.
    pub async fn fetch(&self, path: &str, token: &str) -> Value {
        ok_json(self.get(path, Some(token)).await).await
    }

    /// GET `path` as a list: (X-Total-Count, body).
    pub async fn get_list(&self, path: &str, token: Option<&str>) -> (i64, Value) {
        list_of(self.get(path, token).await).await
    }
}

/// The body of /register, /login and /fresh-login.
pub fn credentials(username: &str, password: &str) -> Value {
    json!({"username": username, "password": password})
}

/// A request being put together: headers, a token, a JSON or a raw body. It owns its
/// parts, so a task of its own can send it.
pub struct Call(reqwest::RequestBuilder);

impl Call {
    /// `Authorization: Bearer <token>` when a token is given.
    pub fn bearer(self, token: Option<&str>) -> Call {
        match token {
            Some(token) => Call(self.0.bearer_auth(token)),
            None => self,
        }
    }

    pub fn header(self, name: &str, value: &str) -> Call {
        Call(self.0.header(name, value))
    }

    pub fn json(self, body: &Value) -> Call {
        Call(self.0.json(body))
    }

    /// This exact body, with this content type (none when `None`).
    pub fn raw(self, content_type: Option<&str>, body: impl Into<reqwest::Body>) -> Call {
        let call = Call(self.0.body(body));
        match content_type {
            Some(content_type) => call.header("Content-Type", content_type),
            None => call,
        }
    }

    pub async fn send(self) -> Response {
        self.0.send().await.expect("request sent")
    }
}
