//! The guard matrix: routes, each with the guard it declares, against every kind of
//! token a client may hold, and what each guard answers to the tokens it refuses.

use reqwest::Method;
use serde_json::{json, Value};

use super::app::TestApp;
use super::assertions::assert_error;
use super::fixtures::{flask_payload, forge, TestUser, TEST_KEY};

/// What a resource route demands of its token (API.md, Endpoints, Guards).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    Optional,
    Access,
    Fresh,
    Admin,
    FreshAdmin,
}

/// The tokens a client may present.
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

/// What a guard answers to a token it refuses: (status, error, message when fixed).
pub fn refusal(guard: Guard, bearer: Bearer) -> Option<(u16, &'static str, Option<&'static str>)> {
    use Bearer::*;
    use Guard::*;
    const NO_TOKEN: (u16, &str, Option<&str>) = (
        401,
        "authorization_required",
        Some("Request does not contain an access token."),
    );
    const ONLY_ACCESS: (u16, &str, Option<&str>) = (
        401,
        "invalid_token",
        Some("Only access tokens are allowed."),
    );
    const NOT_FRESH: (u16, &str, Option<&str>) =
        (401, "fresh_token_required", Some("The token is not fresh."));
    const NOT_ADMIN: (u16, &str, Option<&str>) =
        (403, "admin_required", Some("Admin privilege required."));
    match (bearer, guard) {
        (Garbage, _) => Some((401, "invalid_token", None)),
        (Expired, _) => Some((401, "token_expired", Some("The token has expired."))),
        (Nothing, Optional) => None,
        (Nothing, _) => Some(NO_TOKEN),
        (UserRefresh | AdminRefresh, _) => Some(ONLY_ACCESS),
        (AdminFresh, _) => None,
        (UserFresh, Admin | FreshAdmin) => Some(NOT_ADMIN),
        (UserFresh, Optional | Access | Fresh) => None,
        // Freshness is checked before admin: a stale non-admin token on a fresh admin
        // route is told to get fresh first.
        (UserStale | AdminStale, Fresh | FreshAdmin) => Some(NOT_FRESH),
        (UserStale, Admin) => Some(NOT_ADMIN),
        (UserStale | AdminStale, Optional | Access | Admin) => None,
    }
}

/// A user and the admin, each with a fresh access token, a non-fresh one and a live
/// refresh token; plus a garbage token and an expired one.
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

/// A guarded route with a request that the handler refuses once past the guard (a bad
/// body or query, or a missing id), and that refusal: (status, error, field location
/// and name for a 422).
pub struct GuardCase {
    pub method: Method,
    pub path: String,
    pub guard: Guard,
    pub body: Option<Value>,
    pub past_guard: (u16, &'static str, Option<(&'static str, &'static str)>),
}

/// Tries every case with every bearer: a refused token gets its guard's answer, an
/// accepted one reaches the handler and gets the case's own refusal. Returns how many
/// requests were (refused, let through).
pub async fn run_guard_matrix(app: &TestApp, cast: &Cast, cases: &[GuardCase]) -> (usize, usize) {
    let (mut refused, mut passed) = (0, 0);
    for case in cases {
        for bearer in BEARERS {
            let resp = app
                .request(
                    case.method.clone(),
                    &case.path,
                    cast.token(bearer),
                    case.body.clone(),
                )
                .await;
            let (method, path, guard) = (&case.method, &case.path, case.guard);
            if let Some((status, error, message)) = refusal(guard, bearer) {
                eprintln!(
                    "{method} {path} ({guard:?}) with {bearer:?}: expecting {status} {error}"
                );
                let body = assert_error(resp, status, error).await;
                if let Some(message) = message {
                    assert_eq!(body["message"], message, "{body}");
                }
                refused += 1;
            } else {
                let (status, error, field) = case.past_guard;
                eprintln!(
                    "{method} {path} ({guard:?}) with {bearer:?}: past the guard, expecting {status} {error}"
                );
                let body = assert_error(resp, status, error).await;
                if let Some((location, name)) = field {
                    assert!(body["errors"][location][name].is_array(), "{body}");
                }
                passed += 1;
            }
        }
    }
    (refused, passed)
}
