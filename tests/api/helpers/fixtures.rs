//! Ready-made things a test starts from: users and the admin with their tokens, stores,
//! items and tags, and tokens forged the way another service sharing the key would.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use futures_util::future::join_all;
use jsonwebtoken::{Algorithm, EncodingKey};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::app::TestApp;
use super::assertions::{body_of, id_of, ok_json};

/// The key every test server signs with; tests use it to forge tokens.
pub const TEST_KEY: &str = "integration-test-key-integration-test-key";
/// Another service's key, or an attacker's: tokens signed with it are not ours.
pub const OTHER_KEY: &str = "an-attackers-own-key-an-attackers-own-key";
/// The bootstrap admin of every test server.
pub const ADMIN_USERNAME: &str = "admin";
/// Its password.
pub const ADMIN_PASSWORD: &str = "admin-password-1";
/// The password test users get.
pub const PASSWORD: &str = "correct-horse-battery";
/// An id that names nothing in a fresh database.
pub const MISSING: i64 = 999_999;

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

impl Tokens {
    /// The pair of a /login or /refresh answer.
    pub fn of(body: &Value) -> Tokens {
        Tokens {
            access: body["access_token"].as_str().expect("access").to_string(),
            refresh: body["refresh_token"].as_str().expect("refresh").to_string(),
        }
    }
}

impl TestApp {
    /// Logs in; panics unless 200.
    pub async fn login(&self, username: &str, password: &str) -> Tokens {
        let resp = self.try_login(username, password).await;
        assert_eq!(resp.status(), StatusCode::OK, "login of {username}");
        Tokens::of(&resp.json().await.expect("json"))
    }

    /// The same user logged in once more: another session.
    pub async fn another_login(&self, user: &TestUser) -> Tokens {
        self.login(&user.username, &user.password).await
    }

    /// POST /refresh; panics unless 200. Returns the new pair.
    pub async fn refresh(&self, refresh_token: &str) -> Tokens {
        let resp = self.post("/refresh", Some(refresh_token), None).await;
        Tokens::of(&ok_json(resp).await)
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

    /// A non-fresh access token for `user` (through /refresh, which rotates the user's
    /// refresh token).
    pub async fn non_fresh_access(&self, user: &mut TestUser) -> String {
        let next = self.refresh(&user.tokens.refresh).await;
        user.tokens.refresh = next.refresh;
        next.access
    }

    /// POST /store; asserts 201.
    pub async fn new_store(&self, token: &str, name: &str) -> Value {
        let resp = self
            .post("/store", Some(token), Some(json!({"name": name})))
            .await;
        body_of(resp, StatusCode::CREATED).await
    }

    /// POST /item; asserts 201.
    pub async fn new_item(&self, token: &str, name: &str, price: f64, store_id: i64) -> Value {
        let body = json!({"name": name, "price": price, "store_id": store_id});
        let resp = self.post("/item", Some(token), Some(body)).await;
        body_of(resp, StatusCode::CREATED).await
    }

    /// POST /store/{id}/tag; asserts 201.
    pub async fn new_tag(&self, token: &str, store_id: i64, name: &str) -> Value {
        let path = format!("/store/{store_id}/tag");
        let resp = self
            .post(&path, Some(token), Some(json!({"name": name})))
            .await;
        body_of(resp, StatusCode::CREATED).await
    }

    /// POST /item/{id}/tag/{tag_id}; asserts 201, returns the tag.
    pub async fn link(&self, token: &str, item_id: i64, tag_id: i64) -> Value {
        let path = format!("/item/{item_id}/tag/{tag_id}");
        body_of(
            self.post(&path, Some(token), None).await,
            StatusCode::CREATED,
        )
        .await
    }

    /// A new user with a fresh token, and a store of theirs named `name`.
    pub async fn shop(&self, name: &str) -> (String, Value) {
        let user = self.user().await;
        let store = self.new_store(&user.tokens.access, name).await;
        (user.tokens.access, store)
    }

    /// A new store named `store` with one item named `item` (price 1), made with a fresh
    /// `token`; returns both as the API answered them.
    pub async fn store_with_item(&self, token: &str, store: &str, item: &str) -> (Value, Value) {
        let store = self.new_store(token, store).await;
        let item = self.new_item(token, item, 1.0, id_of(&store)).await;
        (store, item)
    }

    /// Creates stores `prefix-0` .. `prefix-{n-1}`, a few at a time; returns their ids in
    /// ascending order.
    pub async fn many_stores(&self, token: &str, prefix: &str, n: usize) -> Vec<i64> {
        let mut ids = Vec::new();
        let names: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
        for chunk in names.chunks(25) {
            let created = join_all(chunk.iter().map(|name| self.new_store(token, name))).await;
            ids.extend(created.iter().map(id_of));
        }
        ids.sort_unstable();
        ids
    }
}

/// The kinds of token a client may present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bearer {
    Nothing,
    Garbage,
    Expired,
    UserRefresh,
    AdminRefresh,
    UserFresh,
    UserStale,
    AdminFresh,
    AdminStale,
}

/// Every kind of token.
pub const BEARERS: [Bearer; 9] = [
    Bearer::Nothing,
    Bearer::Garbage,
    Bearer::Expired,
    Bearer::UserRefresh,
    Bearer::AdminRefresh,
    Bearer::UserFresh,
    Bearer::UserStale,
    Bearer::AdminFresh,
    Bearer::AdminStale,
];

/// A user and the admin, each with a fresh access token, a non-fresh one and a live
/// refresh token; plus a garbage token and an expired one: a token of every kind.
pub struct Cast {
    pub user: TestUser,
    pub user_stale: String,
    pub admin: TestUser,
    pub admin_stale: String,
    pub expired: String,
}

impl Cast {
    pub async fn new(app: &TestApp) -> Cast {
        let mut user = app.user().await;
        let user_stale = app.non_fresh_access(&mut user).await;
        let mut admin = app.admin().await;
        let admin_stale = app.non_fresh_access(&mut admin).await;
        let now = chrono::Utc::now().timestamp();
        let expired = forge(
            flask_payload(
                user.id,
                json!({"iat": now - 1000, "nbf": now - 1000, "exp": now - 60}),
            ),
            TEST_KEY,
        );
        Cast {
            user,
            user_stale,
            admin,
            admin_stale,
            expired,
        }
    }

    /// The token of that kind; `None` for no token at all.
    pub fn token(&self, bearer: Bearer) -> Option<&str> {
        match bearer {
            Bearer::Nothing => None,
            Bearer::Garbage => Some("not-a-jwt"),
            Bearer::Expired => Some(&self.expired),
            Bearer::UserRefresh => Some(&self.user.tokens.refresh),
            Bearer::AdminRefresh => Some(&self.admin.tokens.refresh),
            Bearer::UserFresh => Some(&self.user.tokens.access),
            Bearer::UserStale => Some(&self.user_stale),
            Bearer::AdminFresh => Some(&self.admin.tokens.access),
            Bearer::AdminStale => Some(&self.admin_stale),
        }
    }
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

/// The payload of a JWT, unverified (the test only reads what the server put there).
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = URL_SAFE_NO_PAD.decode(payload).expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON payload")
}

/// The session id a token carries.
pub fn sid(token: &str) -> String {
    claims(token)["sid"]
        .as_str()
        .expect("the token has a sid")
        .to_string()
}
