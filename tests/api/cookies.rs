//! Browser mode: tokens in HttpOnly cookies with a double-submit CSRF check. Which
//! location a request is judged by, how logins deliver their tokens, the cookies'
//! attributes, the CSRF check on every state-changing route, the cookies cleared on
//! logout and on a refused refresh, a whole cookie session, and CORS with credentials.
//! Requests carry their cookies in an explicit `Cookie` header, as a browser would
//! send them to that path; `Set-Cookie` lines are read raw and parsed here.

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::header::HeaderMap;
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use stores_api::config::{SameSite, Settings, TokenLocation};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{
    assert_error, assert_invalid, assert_same, body_of, claims, credentials, flask_payload, forge,
    id_of, ok_json, sid, Answer, Call, Reply, TestApp, ADMIN_PASSWORD, ADMIN_USERNAME, PASSWORD,
    TEST_KEY,
};

const CSRF_HEADER: &str = "X-CSRF-TOKEN";
const MISSING_CSRF: &str = "Missing CSRF token.";
const CSRF_MISMATCH: &str = "CSRF double submit tokens do not match.";
const SPA: &str = "https://app.example.com";

/// A server reading tokens from `location`, over plain http (no `Secure` cookies), and
/// without the limits of the auth routes (these tests log in often, the admin several
/// times at once).
async fn spawn(location: TokenLocation) -> TestApp {
    TestApp::spawn_with(|s| browser_mode(s, location)).await
}

fn browser_mode(s: &mut Settings, location: TokenLocation) {
    s.browser.location = location;
    s.browser.secure = false;
    s.limits.auth_per_minute = 0;
    s.limits.hashing_per_user = 0;
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

// Set-Cookie, read raw

/// One `Set-Cookie` line: the cookie and its attributes (names in lower case; a flag
/// such as `HttpOnly` has an empty value).
#[derive(Debug, Clone)]
struct SetCookie {
    line: String,
    name: String,
    value: String,
    attributes: Vec<(String, String)>,
}

impl SetCookie {
    fn parse(line: &str) -> SetCookie {
        let mut parts = line.split(';');
        let first = parts.next().unwrap_or_default();
        let (name, value) = first
            .split_once('=')
            .unwrap_or_else(|| panic!("no name=value in Set-Cookie: {line}"));
        let attributes = parts
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| match part.split_once('=') {
                Some((key, value)) => (key.trim().to_ascii_lowercase(), value.trim().to_owned()),
                None => (part.to_ascii_lowercase(), String::new()),
            })
            .collect();
        SetCookie {
            line: line.to_owned(),
            name: name.trim().to_owned(),
            value: value.trim().to_owned(),
            attributes,
        }
    }

    /// The value of the attribute `name` (case-insensitive), when present.
    fn attribute(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.attributes
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }

    fn flag(&self, name: &str) -> bool {
        self.attribute(name).is_some()
    }

    fn path(&self) -> Option<&str> {
        self.attribute("path")
    }

    fn max_age(&self) -> Option<i64> {
        self.attribute("max-age").map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("Max-Age is a number: {}", self.line))
        })
    }

    fn same_site(&self) -> Option<String> {
        self.attribute("samesite").map(str::to_ascii_lowercase)
    }
}

fn set_cookies(headers: &HeaderMap) -> Vec<SetCookie> {
    headers
        .get_all("set-cookie")
        .iter()
        .map(|v| SetCookie::parse(v.to_str().expect("ASCII Set-Cookie")))
        .collect()
}

/// The one cookie named `name` among `cookies`.
fn the<'a>(cookies: &'a [SetCookie], name: &str) -> &'a SetCookie {
    let found: Vec<&SetCookie> = cookies.iter().filter(|c| c.name == name).collect();
    assert_eq!(found.len(), 1, "one {name} cookie in {cookies:?}");
    found[0]
}

fn names(cookies: &[SetCookie]) -> Vec<&str> {
    let mut names: Vec<&str> = cookies.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    names
}

/// The cookie names `app` uses: access, refresh, access CSRF, refresh CSRF.
fn cookie_names(app: &TestApp) -> [&str; 4] {
    let b = &app.settings.browser;
    [
        &b.access_cookie,
        &b.refresh_cookie,
        &b.access_csrf_cookie,
        &b.refresh_csrf_cookie,
    ]
}

/// The answer sets the four cookies of `app` emptied and expired, each at the path it
/// was set at (a browser keys a cookie by name and path).
fn assert_cleared(app: &TestApp, headers: &HeaderMap) {
    let cookies = set_cookies(headers);
    let [access, refresh, csrf_access, csrf_refresh] = cookie_names(app);
    let mut expected = vec![access, refresh, csrf_access, csrf_refresh];
    expected.sort_unstable();
    assert_eq!(names(&cookies), expected, "{cookies:?}");
    for cookie in &cookies {
        let path = if cookie.name == refresh {
            "/refresh"
        } else {
            "/"
        };
        assert_eq!(cookie.path(), Some(path), "{}", cookie.line);
        assert_eq!(cookie.max_age(), Some(0), "{}", cookie.line);
        assert_eq!(cookie.value, "", "{}", cookie.line);
    }
}

fn assert_no_cookies(headers: &HeaderMap, what: &str) {
    let cookies = set_cookies(headers);
    assert!(cookies.is_empty(), "{what}: no Set-Cookie, got {cookies:?}");
}

/// A 401 `csrf_token_invalid` with `message`, which sets no cookie.
async fn assert_csrf_refused(answer: impl Answer, message: &str, what: &str) {
    let reply = answer.reply().await;
    assert_no_cookies(&reply.headers, what);
    let body = assert_error(reply, 401, "csrf_token_invalid").await;
    assert_eq!(body["message"], message, "{what}");
}

// What a browser holds

/// The cookie values a browser holds after a cookie login or refresh (a fresh login
/// sets no refresh cookies).
#[derive(Debug, Clone)]
struct Jar {
    names: [String; 4],
    access: String,
    csrf_access: String,
    refresh: Option<String>,
    csrf_refresh: Option<String>,
}

impl Jar {
    fn of(app: &TestApp, cookies: &[SetCookie]) -> Jar {
        let names = cookie_names(app).map(str::to_owned);
        let value = |name: &str| {
            cookies
                .iter()
                .find(|c| c.name == name)
                .map(|c| c.value.clone())
        };
        Jar {
            access: value(&names[0]).expect("an access cookie"),
            refresh: value(&names[1]),
            csrf_access: value(&names[2]).expect("an access CSRF cookie"),
            csrf_refresh: value(&names[3]),
            names,
        }
    }

    /// The `Cookie` header a browser sends to `path`: the refresh cookie goes to
    /// /refresh only (its Path), the others everywhere.
    fn header_for(&self, path: &str) -> String {
        let [access, refresh, csrf_access, csrf_refresh] = &self.names;
        let mut pairs = vec![format!("{access}={}", self.access)];
        pairs.push(format!("{csrf_access}={}", self.csrf_access));
        if let Some(value) = &self.csrf_refresh {
            pairs.push(format!("{csrf_refresh}={value}"));
        }
        let to_refresh = path == "/refresh" || path.starts_with("/refresh?");
        if let (true, Some(value)) = (to_refresh, &self.refresh) {
            pairs.push(format!("{refresh}={value}"));
        }
        pairs.join("; ")
    }

    /// The refresh CSRF value; panics for a jar without one.
    fn csrf_refresh(&self) -> &str {
        self.csrf_refresh.as_deref().expect("a refresh CSRF value")
    }
}

/// A request as a browser sends it to `path`: the jar's cookies, and `csrf` in
/// `X-CSRF-TOKEN` when given.
fn browser_call(app: &TestApp, method: Method, path: &str, jar: &Jar, csrf: Option<&str>) -> Call {
    let call = app
        .call(method, path)
        .header("Cookie", &jar.header_for(path));
    match csrf {
        Some(value) => call.header(CSRF_HEADER, value),
        None => call,
    }
}

/// A request with only this `Cookie` header.
async fn with_cookie(app: &TestApp, method: Method, path: &str, cookie: &str) -> Response {
    app.call(method, path).header("Cookie", cookie).send().await
}

/// An answer of /login, /fresh-login or /refresh that set cookies.
struct Delivered {
    body: Value,
    cookies: Vec<SetCookie>,
    jar: Jar,
}

impl Delivered {
    async fn read(app: &TestApp, resp: Response) -> Delivered {
        let cookies = set_cookies(resp.headers());
        let body = ok_json(resp).await;
        let jar = Jar::of(app, &cookies);
        Delivered { body, cookies, jar }
    }
}

/// POST `path` (/login or /fresh-login, with its query) with these credentials;
/// asserts a 200 that sets cookies.
async fn cookie_login(app: &TestApp, path: &str, username: &str, password: &str) -> Delivered {
    let resp = app
        .post(path, None, Some(credentials(username, password)))
        .await;
    Delivered::read(app, resp).await
}

/// A new user logged in with cookies: (username, what the login delivered).
async fn cookie_user(app: &TestApp) -> (String, Delivered) {
    let username = unique("user");
    assert_eq!(
        app.register(&username, PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let login = cookie_login(app, "/login?delivery=cookie", &username, PASSWORD).await;
    (username, login)
}

/// POST /refresh as a browser with `jar` and the refresh CSRF value `csrf`.
async fn cookie_refresh(app: &TestApp, jar: &Jar, csrf: Option<&str>) -> Response {
    browser_call(app, Method::POST, "/refresh", jar, csrf)
        .send()
        .await
}

/// GET /me as a browser.
async fn me_with_response(app: &TestApp, jar: &Jar) -> Response {
    browser_call(app, Method::GET, "/me", jar, None)
        .send()
        .await
}

/// GET /me as a browser, read whole.
async fn me_with(app: &TestApp, jar: &Jar) -> Reply {
    Reply::read(me_with_response(app, jar).await).await
}

/// POST /store as a browser; asserts a 201 and returns the store.
async fn browser_store(app: &TestApp, jar: &Jar, name: &str) -> Value {
    let resp = browser_call(app, Method::POST, "/store", jar, Some(&jar.csrf_access))
        .json(&json!({"name": name}))
        .send()
        .await;
    body_of(resp, StatusCode::CREATED).await
}

/// The names of all stores, through GET /store.
async fn store_names(app: &TestApp) -> Vec<String> {
    let (_, list) = app.get_list("/store?limit=1000", None).await;
    list.as_array()
        .expect("a list")
        .iter()
        .map(|s| s["name"].as_str().expect("a name").to_owned())
        .collect()
}

fn keys(body: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap_or_else(|| panic!("an object: {body}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

// Which location a request is judged by

#[actix_web::test]
async fn with_headers_only_a_token_in_a_cookie_is_not_read() {
    let app = TestApp::spawn_with(|s| s.limits.auth_per_minute = 0).await;
    let user = app.user().await;
    let cookie = format!("access_token_cookie={}", user.tokens.access);
    let resp = with_cookie(&app, Method::GET, "/me", &cookie).await;
    let refused = assert_error(resp, 401, "authorization_required").await;
    assert_eq!(
        refused["message"],
        "Request does not contain an access token."
    );
    let cookie = format!("refresh_token_cookie={}", user.tokens.refresh);
    let resp = with_cookie(&app, Method::POST, "/refresh", &cookie).await;
    assert_error(resp, 401, "authorization_required").await;
    // The same token in the header is good, and the refresh token was not spent.
    ok_json(app.get("/me", Some(&user.tokens.access)).await).await;
    app.refresh(&user.tokens.refresh).await;
}

#[actix_web::test]
async fn with_cookies_only_the_header_is_not_read_and_logins_always_set_cookies() {
    let app = spawn(TokenLocation::Cookies).await;
    let (username, login) = cookie_user(&app).await;
    // Whatever the client asks for, the tokens go out in cookies.
    for path in ["/login", "/login?delivery=body"] {
        let again = cookie_login(&app, path, &username, PASSWORD).await;
        assert_eq!(again.cookies.len(), 4, "{path}: {:?}", again.cookies);
        assert!(again.body.get("access_token").is_none(), "{}", again.body);
    }
    let resp = app.get("/me", Some(&login.jar.access)).await;
    assert_error(resp, 401, "authorization_required").await;
    let resp = app
        .post(
            "/refresh",
            Some(login.jar.refresh.as_deref().unwrap()),
            None,
        )
        .await;
    assert_error(resp, 401, "authorization_required").await;
    let me = me_with(&app, &login.jar).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    let me: Value = serde_json::from_str(&me.text).unwrap();
    assert_eq!(me["username"], username.as_str());
}

#[actix_web::test]
async fn with_both_a_request_with_an_authorization_header_is_judged_by_the_header_alone() {
    let app = spawn(TokenLocation::Both).await;
    let (alice, browser) = cookie_user(&app).await;
    let bob = app.user().await;
    let now = chrono::Utc::now().timestamp();
    let expired = forge(
        flask_payload(
            bob.id,
            json!({"nbf": now - 1000, "iat": now - 1000, "exp": now - 60}),
        ),
        TEST_KEY,
    );
    let cookie = browser.jar.header_for("/me");
    for (header, error) in [
        ("not-a-jwt", "invalid_token"),
        (bob.tokens.refresh.as_str(), "invalid_token"),
        (expired.as_str(), "token_expired"),
    ] {
        let resp = app
            .call(Method::GET, "/me")
            .header("Cookie", &cookie)
            .bearer(Some(header))
            .send()
            .await;
        assert_error(resp, 401, error).await;
    }
    // A good header with a garbage cookie: the header's user.
    let resp = app
        .call(Method::GET, "/me")
        .header("Cookie", "access_token_cookie=garbage")
        .bearer(Some(&bob.tokens.access))
        .send()
        .await;
    assert_eq!(ok_json(resp).await["username"], bob.username.as_str());
    // A good header with a good cookie of another user: still the header's user.
    let resp = app
        .call(Method::GET, "/me")
        .header("Cookie", &cookie)
        .bearer(Some(&bob.tokens.access))
        .send()
        .await;
    assert_eq!(ok_json(resp).await["username"], bob.username.as_str());
    // Without a header, the cookie.
    let me = me_with(&app, &browser.jar).await;
    let me: Value = serde_json::from_str(&me.text).expect("JSON");
    assert_eq!(me["username"], alice.as_str());
}

// How logins deliver

#[actix_web::test]
async fn a_cookie_login_sets_four_cookies_and_puts_no_token_in_the_body() {
    let app = spawn(TokenLocation::Both).await;
    let (_, login) = cookie_user(&app).await;
    let (body, jar) = (&login.body, &login.jar);
    assert_eq!(
        names(&login.cookies),
        [
            "access_token_cookie",
            "csrf_access_token",
            "csrf_refresh_token",
            "refresh_token_cookie"
        ]
    );
    assert_eq!(
        keys(body),
        [
            "csrf_access_token",
            "csrf_refresh_token",
            "expires_in",
            "token_type"
        ]
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let text = body.to_string();
    let refresh = jar.refresh.as_deref().expect("a refresh cookie");
    assert!(
        !text.contains(&jar.access) && !text.contains(refresh),
        "{text}"
    );
    // The CSRF values: the body's, the cookies', and the claims in the signed tokens.
    assert_eq!(body["csrf_access_token"], jar.csrf_access.as_str());
    assert_eq!(body["csrf_refresh_token"], jar.csrf_refresh());
    let access = claims(&jar.access);
    let refresh = claims(refresh);
    assert_eq!(access["type"], "access");
    assert_eq!(access["fresh"], true);
    assert_eq!(refresh["type"], "refresh");
    assert_eq!(access["csrf"], jar.csrf_access.as_str());
    assert_eq!(refresh["csrf"], jar.csrf_refresh());
    for value in [&jar.csrf_access, jar.csrf_refresh()] {
        assert!(uuid::Uuid::parse_str(value).is_ok(), "a UUID: {value}");
    }
    assert_ne!(jar.csrf_access, jar.csrf_refresh());
}

#[actix_web::test]
async fn a_login_without_delivery_cookie_answers_in_the_body() {
    let app = spawn(TokenLocation::Both).await;
    let headers_only = TestApp::spawn().await;
    let user = app.user().await;
    let other = headers_only.user().await;
    for (app, username, path) in [
        (&app, &user.username, "/login"),
        (&app, &user.username, "/login?delivery=body"),
        (&headers_only, &other.username, "/login?delivery=cookie"),
        (
            &headers_only,
            &other.username,
            "/fresh-login?delivery=cookie",
        ),
    ] {
        let resp = app
            .post(path, None, Some(credentials(username, PASSWORD)))
            .await;
        assert_no_cookies(resp.headers(), path);
        let body = ok_json(resp).await;
        let expected: &[&str] = if path.starts_with("/login") {
            &["access_token", "expires_in", "refresh_token", "token_type"]
        } else {
            &["access_token", "expires_in", "token_type"]
        };
        assert_eq!(keys(&body), expected, "{path}");
        let access = body["access_token"].as_str().unwrap();
        assert!(claims(access).get("csrf").is_none(), "{path}: {access}");
        // The body's token is a header token.
        ok_json(app.get("/me", Some(access)).await).await;
    }
}

#[actix_web::test]
async fn an_unknown_delivery_is_a_validation_error_and_opens_no_session() {
    let app = spawn(TokenLocation::Both).await;
    let user = app.user().await;
    for path in ["/login?delivery=bogus", "/fresh-login?delivery=Cookie"] {
        let resp = app
            .post(path, None, Some(credentials(&user.username, PASSWORD)))
            .await;
        assert_no_cookies(resp.headers(), path);
        assert_invalid(resp, "query", &["delivery"]).await;
    }
    let (total, _) = app.get_list("/sessions", Some(&user.tokens.access)).await;
    assert_eq!(total, 1, "only the first login's session");
}

#[actix_web::test]
async fn a_cookie_fresh_login_sets_only_the_access_cookies_and_its_token_is_fresh() {
    let app = spawn(TokenLocation::Both).await;
    let user = app.user().await;
    let login = cookie_login(
        &app,
        "/fresh-login?delivery=cookie",
        &user.username,
        PASSWORD,
    )
    .await;
    assert_eq!(
        names(&login.cookies),
        ["access_token_cookie", "csrf_access_token"]
    );
    assert_eq!(
        keys(&login.body),
        ["csrf_access_token", "expires_in", "token_type"]
    );
    assert_eq!(
        login.body["csrf_access_token"],
        login.jar.csrf_access.as_str()
    );
    let access = claims(&login.jar.access);
    assert_eq!(access["csrf"], login.jar.csrf_access.as_str());
    assert_eq!(access["fresh"], true);
    let name = unique("fresh");
    browser_store(&app, &login.jar, &name).await;
    assert!(store_names(&app).await.contains(&name));
}

// The cookies' attributes

#[actix_web::test]
async fn the_cookies_have_their_paths_flags_and_lifetimes() {
    let app = TestApp::spawn_with(|s| {
        browser_mode(s, TokenLocation::Both);
        s.tokens.access_ttl = Duration::from_secs(600);
        s.tokens.refresh_ttl = Duration::from_secs(7200);
    })
    .await;
    let (_, login) = cookie_user(&app).await;
    assert_eq!(login.body["expires_in"], 600);
    for (name, path, http_only, max_age) in [
        ("access_token_cookie", "/", true, 600),
        ("refresh_token_cookie", "/refresh", true, 7200),
        ("csrf_access_token", "/", false, 600),
        ("csrf_refresh_token", "/", false, 7200),
    ] {
        let cookie = the(&login.cookies, name);
        assert_eq!(cookie.path(), Some(path), "{}", cookie.line);
        assert_eq!(cookie.flag("HttpOnly"), http_only, "{}", cookie.line);
        assert_eq!(cookie.max_age(), Some(max_age), "{}", cookie.line);
        assert_eq!(
            cookie.same_site().as_deref(),
            Some("lax"),
            "{}",
            cookie.line
        );
        assert!(!cookie.flag("Secure"), "{}", cookie.line);
        assert!(cookie.attribute("domain").is_none(), "{}", cookie.line);
    }
}

#[actix_web::test]
async fn same_site_and_secure_follow_the_settings() {
    for (same_site, secure, expected) in [
        (SameSite::Strict, false, "strict"),
        (SameSite::None, true, "none"),
        (SameSite::Lax, true, "lax"),
    ] {
        let app = TestApp::spawn_with(|s| {
            browser_mode(s, TokenLocation::Both);
            s.browser.same_site = same_site;
            s.browser.secure = secure;
        })
        .await;
        let (_, login) = cookie_user(&app).await;
        assert_eq!(login.cookies.len(), 4);
        for cookie in &login.cookies {
            assert_eq!(
                cookie.same_site().as_deref(),
                Some(expected),
                "{}",
                cookie.line
            );
            assert_eq!(cookie.flag("Secure"), secure, "{}", cookie.line);
        }
    }
}

#[actix_web::test]
async fn configured_cookie_names_are_the_ones_set_and_read() {
    let app = TestApp::spawn_with(|s| {
        browser_mode(s, TokenLocation::Both);
        s.browser.secure = true;
        s.browser.access_cookie = "__Host-access_token".into();
        s.browser.refresh_cookie = "__Secure-refresh_token".into();
        s.browser.access_csrf_cookie = "__Host-csrf_access".into();
        s.browser.refresh_csrf_cookie = "__Host-csrf_refresh".into();
    })
    .await;
    let (_, login) = cookie_user(&app).await;
    assert_eq!(
        names(&login.cookies),
        [
            "__Host-access_token",
            "__Host-csrf_access",
            "__Host-csrf_refresh",
            "__Secure-refresh_token"
        ]
    );
    for cookie in &login.cookies {
        assert!(cookie.flag("secure"), "{}", cookie.line);
    }
    assert_eq!(
        the(&login.cookies, "__Secure-refresh_token").path(),
        Some("/refresh")
    );
    assert_eq!(me_with(&app, &login.jar).await.status, StatusCode::OK);
    // The default name is not read any more.
    let cookie = format!("access_token_cookie={}", login.jar.access);
    let resp = with_cookie(&app, Method::GET, "/me", &cookie).await;
    assert_error(resp, 401, "authorization_required").await;
    // The refresh cookie is read under its name, and the new cookies keep the names.
    let resp = cookie_refresh(&app, &login.jar, Some(login.jar.csrf_refresh())).await;
    let refreshed = Delivered::read(&app, resp).await;
    assert_eq!(names(&refreshed.cookies), names(&login.cookies));
    let resp = browser_call(
        &app,
        Method::POST,
        "/logout",
        &refreshed.jar,
        Some(&refreshed.jar.csrf_access),
    )
    .send()
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_cleared(&app, resp.headers());
}

// The CSRF check on every state-changing route

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    CreateStore,
    CreateItem,
    UpdateItem,
    DeleteItem,
    CreateTag,
    DeleteTag,
    LinkTag,
    UnlinkTag,
    ChangePassword,
    EndSession,
    PatchUser,
    RevokeUser,
    DeleteUser,
    DeleteStore,
    Logout,
}

impl Route {
    fn by_admin(self) -> bool {
        matches!(
            self,
            Route::DeleteItem
                | Route::DeleteTag
                | Route::PatchUser
                | Route::RevokeUser
                | Route::DeleteStore
        )
    }
}

/// How the request is authenticated: by the cookie alone, or by the Authorization
/// header (the browser sends its cookies along).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Cookie,
    Header,
}

/// What the request sends in `X-CSRF-TOKEN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Missing,
    Wrong,
    Right,
}

/// Someone logged in twice: in a browser (cookies), and for the Authorization header.
struct Actor {
    id: i64,
    username: String,
    password: String,
    jar: Jar,
    header: String,
}

impl Actor {
    async fn new(app: &TestApp, admin: bool) -> Actor {
        let (username, password) = if admin {
            (ADMIN_USERNAME.to_owned(), ADMIN_PASSWORD.to_owned())
        } else {
            let username = unique("user");
            let resp = app.register(&username, PASSWORD).await;
            assert_eq!(resp.status(), StatusCode::CREATED);
            (username, PASSWORD.to_owned())
        };
        let login = cookie_login(app, "/login?delivery=cookie", &username, &password).await;
        let header = app.login(&username, &password).await.access;
        let id = id_of(&app.fetch("/me", &header).await);
        Actor {
            id,
            username,
            password,
            jar: login.jar,
            header,
        }
    }
}

/// What to read after a refused request to tell that it changed nothing.
enum Probe {
    /// GET /store lists no store of this name.
    NoStore(String),
    /// GET `path` with the actor's header token shows `expected` at `pointer`.
    Reads {
        path: String,
        pointer: &'static str,
        expected: Value,
    },
    /// This access token still works.
    Alive(String),
    /// The actor's browser session still works.
    BrowserAlive,
}

/// A request of one route, staged on things made for it, with the answer it deserves.
struct Staged {
    method: Method,
    path: String,
    body: Option<Value>,
    status: StatusCode,
    probe: Probe,
}

fn staged(method: Method, path: String, body: Option<Value>, status: u16, probe: Probe) -> Staged {
    Staged {
        method,
        path,
        body,
        status: StatusCode::from_u16(status).expect("a status"),
        probe,
    }
}

fn reads(path: String, pointer: &'static str, expected: Value) -> Probe {
    Probe::Reads {
        path,
        pointer,
        expected,
    }
}

/// Makes what `route` acts on (with the actor's header token) and stages its request.
async fn stage(app: &TestApp, route: Route, actor: &Actor) -> Staged {
    let token = actor.header.as_str();
    let store_name = unique("store");
    let new_store = || app.new_store(token, &store_name);
    let store_with_item = || app.store_with_item(token, &store_name, "hammer");
    match route {
        Route::CreateStore => {
            let name = unique("store");
            let body = json!({"name": name});
            staged(
                Method::POST,
                "/store".into(),
                Some(body),
                201,
                Probe::NoStore(name),
            )
        }
        Route::CreateItem => {
            let store = id_of(&new_store().await);
            let body = json!({"name": "hammer", "price": 1.0, "store_id": store});
            let probe = reads(format!("/store/{store}"), "/items", json!([]));
            staged(Method::POST, "/item".into(), Some(body), 201, probe)
        }
        Route::UpdateItem => {
            let item = id_of(&store_with_item().await.1);
            let probe = reads(format!("/item/{item}"), "/price", json!(1.0));
            let body = json!({"price": 7.5});
            staged(Method::PUT, format!("/item/{item}"), Some(body), 200, probe)
        }
        Route::DeleteItem => {
            let item = id_of(&store_with_item().await.1);
            let probe = reads(format!("/item/{item}"), "/id", json!(item));
            staged(Method::DELETE, format!("/item/{item}"), None, 200, probe)
        }
        Route::CreateTag => {
            let store = id_of(&new_store().await);
            let probe = reads(format!("/store/{store}/tag"), "", json!([]));
            let body = json!({"name": "tools"});
            let path = format!("/store/{store}/tag");
            staged(Method::POST, path, Some(body), 201, probe)
        }
        Route::DeleteTag => {
            let store = id_of(&new_store().await);
            let tag = id_of(&app.new_tag(token, store, "tools").await);
            let probe = reads(format!("/tag/{tag}"), "/id", json!(tag));
            staged(Method::DELETE, format!("/tag/{tag}"), None, 202, probe)
        }
        Route::LinkTag | Route::UnlinkTag => {
            let (store, item) = store_with_item().await;
            let (store, item) = (id_of(&store), id_of(&item));
            let tag = id_of(&app.new_tag(token, store, "tools").await);
            let path = format!("/item/{item}/tag/{tag}");
            if route == Route::LinkTag {
                let probe = reads(format!("/tag/{tag}"), "/items", json!([]));
                staged(Method::POST, path, None, 201, probe)
            } else {
                app.link(token, item, tag).await;
                let probe = reads(format!("/tag/{tag}"), "/items/0/id", json!(item));
                staged(Method::DELETE, path, None, 200, probe)
            }
        }
        Route::ChangePassword => {
            let body = json!({
                "current_password": actor.password,
                "new_password": "another-password-9",
            });
            // A change ends the caller's other sessions: the header's must survive a
            // refusal.
            let probe = Probe::Alive(actor.header.clone());
            staged(Method::PUT, "/me/password".into(), Some(body), 200, probe)
        }
        Route::EndSession => {
            let other = app.login(&actor.username, &actor.password).await.access;
            let path = format!("/sessions/{}", sid(&other));
            staged(Method::DELETE, path, None, 200, Probe::Alive(other))
        }
        Route::PatchUser => {
            let target = app.user().await;
            let probe = reads(format!("/user/{}", target.id), "/is_admin", json!(false));
            let body = json!({"is_admin": true});
            let path = format!("/user/{}", target.id);
            staged(Method::PATCH, path, Some(body), 200, probe)
        }
        Route::RevokeUser => {
            let target = app.user().await;
            let path = format!("/user/{}/revoke", target.id);
            staged(
                Method::POST,
                path,
                None,
                200,
                Probe::Alive(target.tokens.access),
            )
        }
        Route::DeleteUser => {
            let path = format!("/user/{}", actor.id);
            let probe = Probe::Alive(actor.header.clone());
            staged(Method::DELETE, path, None, 200, probe)
        }
        Route::DeleteStore => {
            let store = id_of(&new_store().await);
            let probe = reads(format!("/store/{store}"), "/id", json!(store));
            staged(Method::DELETE, format!("/store/{store}"), None, 200, probe)
        }
        Route::Logout => staged(
            Method::POST,
            "/logout".into(),
            None,
            200,
            Probe::BrowserAlive,
        ),
    }
}

async fn assert_unchanged(app: &TestApp, actor: &Actor, probe: &Probe, what: &str) {
    match probe {
        Probe::NoStore(name) => {
            assert!(
                !store_names(app).await.contains(name),
                "{what}: the store {name} was created"
            );
        }
        Probe::Reads {
            path,
            pointer,
            expected,
        } => {
            let body = app.fetch(path, &actor.header).await;
            let got = body.pointer(pointer).cloned().unwrap_or(Value::Null);
            eprintln!("{what}: GET {path} {pointer}");
            assert_same(&got, expected);
        }
        Probe::Alive(token) => {
            let resp = app.get("/me", Some(token)).await;
            assert_eq!(resp.status(), StatusCode::OK, "{what}: a session ended");
        }
        Probe::BrowserAlive => {
            let me = me_with(app, &actor.jar).await;
            assert_eq!(me.status, StatusCode::OK, "{what}: {}", me.text);
        }
    }
}

/// One cell of the matrix: a new actor, the route's request authenticated `via` with
/// `sent` in X-CSRF-TOKEN, its answer, and after a refusal, that nothing changed.
async fn csrf_case(app: &TestApp, route: Route, via: Via, sent: Sent) {
    let what = format!("{route:?} by {via:?} with the CSRF value {sent:?}");
    let actor = Actor::new(app, route.by_admin()).await;
    let request = stage(app, route, &actor).await;
    let csrf = match sent {
        Sent::Missing => None,
        Sent::Wrong => Some(uuid::Uuid::new_v4().to_string()),
        Sent::Right => Some(actor.jar.csrf_access.clone()),
    };
    let mut call = browser_call(
        app,
        request.method.clone(),
        &request.path,
        &actor.jar,
        csrf.as_deref(),
    );
    if via == Via::Header {
        call = call.bearer(Some(&actor.header));
    }
    if let Some(body) = &request.body {
        call = call.json(body);
    }
    let reply = Reply::read(call.send().await).await;
    match (via, sent) {
        (Via::Cookie, Sent::Missing | Sent::Wrong) => {
            let message = if sent == Sent::Missing {
                MISSING_CSRF
            } else {
                CSRF_MISMATCH
            };
            assert_csrf_refused(reply, message, &what).await;
            assert_unchanged(app, &actor, &request.probe, &what).await;
        }
        _ => assert_eq!(reply.status, request.status, "{what}: {}", reply.text),
    }
}

/// Every route of `routes` by cookie and by header, with no, a wrong and the right CSRF
/// value; returns the number of cells checked.
async fn csrf_matrix(app: &TestApp, routes: &[Route]) -> usize {
    let mut checked = 0;
    for &route in routes {
        let cells = [Via::Cookie, Via::Header]
            .into_iter()
            .flat_map(|via| [Sent::Missing, Sent::Wrong, Sent::Right].map(|sent| (via, sent)));
        let done = join_all(cells.map(|(via, sent)| csrf_case(app, route, via, sent))).await;
        checked += done.len();
    }
    checked
}

#[actix_web::test]
async fn csrf_on_the_store_item_and_tag_routes() {
    let app = spawn(TokenLocation::Both).await;
    let routes = [
        Route::CreateStore,
        Route::CreateItem,
        Route::UpdateItem,
        Route::DeleteItem,
        Route::CreateTag,
        Route::DeleteTag,
        Route::LinkTag,
        Route::UnlinkTag,
        Route::DeleteStore,
    ];
    assert_eq!(csrf_matrix(&app, &routes).await, 54);
}

#[actix_web::test]
async fn csrf_on_the_account_session_and_user_routes() {
    let app = spawn(TokenLocation::Both).await;
    let routes = [
        Route::ChangePassword,
        Route::EndSession,
        Route::PatchUser,
        Route::RevokeUser,
        Route::DeleteUser,
        Route::Logout,
    ];
    assert_eq!(csrf_matrix(&app, &routes).await, 36);
}

#[actix_web::test]
async fn reads_by_cookie_need_no_csrf_value() {
    let app = spawn(TokenLocation::Both).await;
    let (username, login) = cookie_user(&app).await;
    let store = browser_store(&app, &login.jar, &unique("store")).await;
    let me = me_with(&app, &login.jar).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert!(me.text.contains(&username), "{}", me.text);
    let path = format!("/store/{}", id_of(&store));
    let resp = browser_call(&app, Method::GET, &path, &login.jar, None)
        .send()
        .await;
    assert_same(&ok_json(resp).await, &store);
    let resp = browser_call(&app, Method::GET, "/sessions", &login.jar, None)
        .send()
        .await;
    let sessions = ok_json(resp).await;
    let current: Vec<&Value> = sessions
        .as_array()
        .expect("a list")
        .iter()
        .filter(|s| s["current"] == true)
        .collect();
    assert_eq!(current.len(), 1, "{sessions}");
    assert_eq!(current[0]["id"], sid(&login.jar.access));
}

#[actix_web::test]
async fn a_cookie_refresh_needs_the_refresh_csrf_value() {
    let app = spawn(TokenLocation::Both).await;
    let (_, login) = cookie_user(&app).await;
    let jar = &login.jar;
    let resp = cookie_refresh(&app, jar, Some(&jar.csrf_access)).await;
    assert_csrf_refused(resp, CSRF_MISMATCH, "the access CSRF value").await;
    let resp = cookie_refresh(&app, jar, None).await;
    assert_csrf_refused(resp, MISSING_CSRF, "no CSRF value").await;
    // The refusals spent nothing: the same refresh cookie rotates, once.
    let resp = cookie_refresh(&app, jar, Some(jar.csrf_refresh())).await;
    let refreshed = Delivered::read(&app, resp).await;
    assert_eq!(refreshed.cookies.len(), 4, "{:?}", refreshed.cookies);
    assert_eq!(
        keys(&refreshed.body),
        [
            "csrf_access_token",
            "csrf_refresh_token",
            "expires_in",
            "token_type"
        ]
    );
    let next = &refreshed.jar;
    assert_eq!(
        refreshed.body["csrf_access_token"],
        next.csrf_access.as_str()
    );
    assert_eq!(refreshed.body["csrf_refresh_token"], next.csrf_refresh());
    assert_eq!(claims(&next.access)["csrf"], next.csrf_access.as_str());
    assert_eq!(
        claims(next.refresh.as_deref().unwrap())["csrf"],
        next.csrf_refresh()
    );
    assert_ne!(next.csrf_access, jar.csrf_access);
    assert_ne!(next.csrf_refresh(), jar.csrf_refresh());
    assert_eq!(sid(&next.access), sid(&jar.access), "the same session");
    assert_eq!(me_with(&app, next).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn a_header_token_in_the_access_cookie_may_read_but_not_write() {
    let app = spawn(TokenLocation::Both).await;
    let user = app.user().await;
    let cookie = format!("access_token_cookie={}", user.tokens.access);
    let resp = with_cookie(&app, Method::GET, "/me", &cookie).await;
    assert_eq!(ok_json(resp).await["id"], user.id);
    let name = unique("store");
    for (csrf, message) in [(None, MISSING_CSRF), (Some("anything"), CSRF_MISMATCH)] {
        let mut call = app
            .call(Method::POST, "/store")
            .header("Cookie", &cookie)
            .json(&json!({"name": name}));
        if let Some(csrf) = csrf {
            call = call.header(CSRF_HEADER, csrf);
        }
        assert_csrf_refused(call.send().await, message, "a token with no csrf claim").await;
    }
    assert!(!store_names(&app).await.contains(&name));
}

/// POST /store over a raw connection, so that the header name goes out as written
/// (the HTTP client would send it in lower case); returns the status.
async fn raw_post_store(app: &TestApp, jar: &Jar, header: &str, name: &str) -> u16 {
    let url = app.url("");
    let address = url.strip_prefix("http://").expect("an http URL");
    let body = json!({"name": name}).to_string();
    let request = format!(
        "POST /store HTTP/1.1\r\nHost: {address}\r\nCookie: {}\r\n{header}: {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        jar.header_for("/store"),
        jar.csrf_access,
        body.len(),
    );
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request written");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("answer read");
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.split(' ').nth(1).expect("a status line");
    status.parse().unwrap_or_else(|_| panic!("{answer}"))
}

#[actix_web::test]
async fn the_csrf_header_name_is_case_insensitive() {
    let app = spawn(TokenLocation::Both).await;
    let (_, login) = cookie_user(&app).await;
    let mut created = Vec::new();
    for header in ["X-CSRF-TOKEN", "x-csrf-token", "X-Csrf-Token"] {
        let name = unique("store");
        let status = raw_post_store(&app, &login.jar, header, &name).await;
        assert_eq!(status, 201, "{header}");
        created.push(name);
    }
    // Another name is not the header.
    let name = unique("store");
    let status = raw_post_store(&app, &login.jar, "X-CSRF-TOKENS", &name).await;
    assert_eq!(status, 401);
    let names = store_names(&app).await;
    assert!(created.iter().all(|n| names.contains(n)), "{names:?}");
    assert!(!names.contains(&name), "{names:?}");
}

#[actix_web::test]
async fn a_configured_csrf_header_is_the_one_read() {
    let app = TestApp::spawn_with(|s| {
        browser_mode(s, TokenLocation::Both);
        s.browser.access_csrf_header = "x-xsrf-token".into();
    })
    .await;
    let (_, login) = cookie_user(&app).await;
    let jar = &login.jar;
    let name = unique("store");
    let resp = browser_call(&app, Method::POST, "/store", jar, Some(&jar.csrf_access))
        .json(&json!({"name": name}))
        .send()
        .await;
    assert_csrf_refused(resp, MISSING_CSRF, "X-CSRF-TOKEN instead of X-XSRF-TOKEN").await;
    assert!(!store_names(&app).await.contains(&name));
    let resp = browser_call(&app, Method::POST, "/store", jar, None)
        .header("X-XSRF-TOKEN", &jar.csrf_access)
        .json(&json!({"name": name}))
        .send()
        .await;
    body_of(resp, StatusCode::CREATED).await;
    assert!(store_names(&app).await.contains(&name));
}

// Cookies cleared

#[actix_web::test]
async fn logout_clears_the_cookies_also_when_the_session_has_already_ended() {
    let app = spawn(TokenLocation::Both).await;
    let (_, login) = cookie_user(&app).await;
    let jar = &login.jar;
    let logout = || browser_call(&app, Method::POST, "/logout", jar, Some(&jar.csrf_access));
    let resp = logout().send().await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_cleared(&app, resp.headers());
    assert_eq!(ok_json(resp).await["message"], "Successfully logged out");
    let reply = Reply::read(logout().send().await).await;
    assert_cleared(&app, &reply.headers);
    assert_error(reply, 401, "token_revoked").await;
}

#[actix_web::test]
async fn a_logout_that_may_be_forged_clears_no_cookie() {
    let app = spawn(TokenLocation::Both).await;
    let (_, login) = cookie_user(&app).await;
    let jar = &login.jar;
    let resp = browser_call(&app, Method::POST, "/logout", jar, None)
        .send()
        .await;
    assert_csrf_refused(resp, MISSING_CSRF, "logout without a CSRF value").await;
    assert_eq!(me_with(&app, jar).await.status, StatusCode::OK);
    // No token at all, from a script (it set the header) or a plain form: the session
    // it might belong to is unknown and may be live, so nothing is cleared.
    let reply = Reply::read(
        app.call(Method::POST, "/logout")
            .header(CSRF_HEADER, &jar.csrf_access)
            .send()
            .await,
    )
    .await;
    assert_no_cookies(&reply.headers, "a logout without a token");
    assert_error(reply, 401, "authorization_required").await;
    let resp = app.post("/logout", None, None).await;
    assert_no_cookies(resp.headers(), "a logout with nothing");
    assert_error(resp, 401, "authorization_required").await;
    assert_eq!(me_with(&app, jar).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn a_logout_with_an_expired_access_cookie_keeps_the_cookies_until_it_ends_the_session() {
    let app = spawn(TokenLocation::Both).await;
    let (_, login) = cookie_user(&app).await;
    let jar = &login.jar;
    let now = chrono::Utc::now().timestamp();
    let mut payload = claims(&jar.access);
    payload["iat"] = json!(now - 1000);
    payload["nbf"] = json!(now - 1000);
    payload["exp"] = json!(now - 60);
    let expired = Jar {
        access: forge(payload, TEST_KEY),
        ..jar.clone()
    };
    // The session is live: clearing its refresh cookie now would leave it open and out
    // of the browser's reach.
    let resp = browser_call(
        &app,
        Method::POST,
        "/logout",
        &expired,
        Some(&jar.csrf_access),
    )
    .send()
    .await;
    assert_no_cookies(resp.headers(), "a logout with an expired access cookie");
    assert_error(resp, 401, "token_expired").await;
    // What the app does next: refresh, and log out again, which ends the session.
    let resp = cookie_refresh(&app, jar, Some(jar.csrf_refresh())).await;
    let next = Delivered::read(&app, resp).await.jar;
    let resp = browser_call(
        &app,
        Method::POST,
        "/logout",
        &next,
        Some(&next.csrf_access),
    )
    .send()
    .await;
    assert_cleared(&app, resp.headers());
    assert_eq!(resp.status(), StatusCode::OK);
    assert_error(me_with_response(&app, &next).await, 401, "token_revoked").await;
    let reply = Reply::read(cookie_refresh(&app, &next, Some(next.csrf_refresh())).await).await;
    assert_error(reply, 401, "token_revoked").await;
}

#[actix_web::test]
async fn a_logout_of_the_other_sessions_keeps_this_ones_cookies() {
    let app = spawn(TokenLocation::Both).await;
    let (username, login) = cookie_user(&app).await;
    let other = app.login(&username, PASSWORD).await;
    let jar = &login.jar;
    let resp = browser_call(
        &app,
        Method::POST,
        "/logout?scope=others",
        jar,
        Some(&jar.csrf_access),
    )
    .send()
    .await;
    assert_no_cookies(resp.headers(), "a logout of the other sessions");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(me_with(&app, jar).await.status, StatusCode::OK);
    assert_error(
        app.get("/me", Some(&other.access)).await,
        401,
        "token_revoked",
    )
    .await;
}

#[actix_web::test]
async fn a_refused_refresh_cookie_is_cleared() {
    let app = spawn(TokenLocation::Both).await;
    let (_, login) = cookie_user(&app).await;
    let me = ok_json(me_with_response(&app, &login.jar).await).await;
    let csrf = login.jar.csrf_refresh().to_owned();
    let now = chrono::Utc::now().timestamp();
    let expired = forge(
        flask_payload(
            id_of(&me),
            json!({"type": "refresh", "csrf": csrf, "iat": now - 1000, "nbf": now - 1000,
                   "exp": now - 60}),
        ),
        TEST_KEY,
    );
    for (token, error) in [("garbage", "invalid_token"), (&*expired, "token_expired")] {
        let jar = Jar {
            refresh: Some(token.to_owned()),
            ..login.jar.clone()
        };
        let reply = Reply::read(cookie_refresh(&app, &jar, Some(&csrf)).await).await;
        assert_cleared(&app, &reply.headers);
        assert_error(reply, 401, error).await;
    }
    // The session itself was not touched.
    let resp = cookie_refresh(&app, &login.jar, Some(&csrf)).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[actix_web::test]
async fn a_reused_refresh_cookie_is_cleared_and_ends_the_session() {
    let app = spawn(TokenLocation::Both).await;
    let (_, login) = cookie_user(&app).await;
    let old = &login.jar;
    let resp = cookie_refresh(&app, old, Some(old.csrf_refresh())).await;
    let next = Delivered::read(&app, resp).await.jar;
    let reply = Reply::read(cookie_refresh(&app, old, Some(old.csrf_refresh())).await).await;
    assert_cleared(&app, &reply.headers);
    assert_error(reply, 401, "token_revoked").await;
    // The reuse ended the session: the newer cookies are revoked too.
    let reply = Reply::read(cookie_refresh(&app, &next, Some(next.csrf_refresh())).await).await;
    assert_cleared(&app, &reply.headers);
    assert_error(reply, 401, "token_revoked").await;
    assert_error(me_with_response(&app, &next).await, 401, "token_revoked").await;
}

// A whole cookie session

#[actix_web::test]
async fn a_whole_cookie_session() {
    let app = spawn(TokenLocation::Both).await;
    let (username, login) = cookie_user(&app).await;
    let first = &login.jar;
    let me = me_with(&app, first).await;
    assert!(me.text.contains(&username), "{}", me.text);
    let name = unique("store");
    browser_store(&app, first, &name).await;

    let resp = cookie_refresh(&app, first, Some(first.csrf_refresh())).await;
    let second = Delivered::read(&app, resp).await.jar;
    assert_eq!(me_with(&app, &second).await.status, StatusCode::OK);
    // The refreshed token is not fresh, and the old CSRF value does not go with it.
    let write = |jar: &Jar, csrf: &str| {
        browser_call(&app, Method::POST, "/store", jar, Some(csrf))
            .json(&json!({"name": unique("store")}))
            .send()
    };
    let resp = write(&second, &second.csrf_access).await;
    assert_error(resp, 401, "fresh_token_required").await;
    let resp = write(&second, &first.csrf_access).await;
    assert_csrf_refused(resp, CSRF_MISMATCH, "the previous CSRF value").await;
    // Refresh rotates the refresh token only: the first access cookie lives on.
    assert_eq!(me_with(&app, first).await.status, StatusCode::OK);

    let resp = browser_call(
        &app,
        Method::POST,
        "/logout",
        &second,
        Some(&second.csrf_access),
    )
    .send()
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_cleared(&app, resp.headers());
    for jar in [first, &second] {
        assert_error(me_with_response(&app, jar).await, 401, "token_revoked").await;
    }
    let names = store_names(&app).await;
    assert_eq!(names.iter().filter(|n| **n == name).count(), 1, "{names:?}");
    assert_eq!(names.len(), 1, "{names:?}");
}

// CORS with cookies

async fn preflight(app: &TestApp, origin: &str) -> Response {
    app.call(Method::OPTIONS, "/store")
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "content-type, x-csrf-token",
        )
        .send()
        .await
}

fn allows_credentials(resp: &Response) -> Option<&str> {
    resp.headers()
        .get("access-control-allow-credentials")
        .map(|v| v.to_str().expect("ASCII"))
}

#[actix_web::test]
async fn with_cookies_only_the_allowed_origin_may_send_credentials_and_the_csrf_header() {
    let app = TestApp::spawn_with(|s| {
        browser_mode(s, TokenLocation::Both);
        s.http.cors_allowed_origins = vec![SPA.into()];
    })
    .await;
    let resp = preflight(&app, SPA).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["access-control-allow-origin"], SPA);
    assert_eq!(allows_credentials(&resp), Some("true"));
    let allowed = resp.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("x-csrf-token"), "{allowed}");

    let (_, login) = cookie_user(&app).await;
    let resp = browser_call(&app, Method::GET, "/me", &login.jar, None)
        .header("Origin", SPA)
        .send()
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(allows_credentials(&resp), Some("true"));

    let evil = "https://evil.example.com";
    let resp = preflight(&app, evil).await;
    assert_eq!(allows_credentials(&resp), None);
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
    let resp = browser_call(&app, Method::GET, "/me", &login.jar, None)
        .header("Origin", evil)
        .send()
        .await;
    assert_eq!(allows_credentials(&resp), None);
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
}

#[actix_web::test]
async fn with_headers_only_no_origin_may_send_credentials() {
    let app = TestApp::spawn_with(|s| s.http.cors_allowed_origins = vec![SPA.into()]).await;
    let user = app.user().await;
    let resp = app
        .call(Method::OPTIONS, "/me")
        .header("Origin", SPA)
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["access-control-allow-origin"], SPA);
    assert_eq!(allows_credentials(&resp), None);
    let resp = app
        .call(Method::GET, "/me")
        .header("Origin", SPA)
        .bearer(Some(&user.tokens.access))
        .send()
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["access-control-allow-origin"], SPA);
    assert_eq!(allows_credentials(&resp), None);
}
