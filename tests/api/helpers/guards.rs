//! The guard matrix: routes, each with the guard it declares (API.md, Endpoints,
//! Guards), against the kinds of token a client may hold. A token the guard refuses
//! gets the guard's answer whatever the request says; a token it accepts reaches the
//! handler, which answers what the route's request deserves.

use reqwest::{Method, Response};
use serde_json::Value;

use super::app::TestApp;
use super::assertions::assert_error;
use super::fixtures::{Bearer, Cast};

/// What a route demands of its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// No token needed, but one that is presented must be a valid access token.
    Optional,
    Access,
    Fresh,
    Admin,
    /// Freshness is checked before admin: a stale non-admin token is told to get fresh
    /// first.
    FreshAdmin,
    Refresh,
}

/// A guard's answer to a token it refuses: the message is `None` where it depends on
/// what is wrong with the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub error: &'static str,
    pub message: Option<&'static str>,
}

const fn refused(status: u16, error: &'static str, message: &'static str) -> Refusal {
    Refusal {
        status,
        error,
        message: Some(message),
    }
}

const NO_TOKEN: Refusal = refused(
    401,
    "authorization_required",
    "Request does not contain an access token.",
);
const ONLY_ACCESS: Refusal = refused(401, "invalid_token", "Only access tokens are allowed.");
const ONLY_REFRESH: Refusal = refused(401, "invalid_token", "Only refresh tokens are allowed.");
const NOT_FRESH: Refusal = refused(401, "fresh_token_required", "The token is not fresh.");
const NOT_ADMIN: Refusal = refused(403, "admin_required", "Admin privilege required.");
const EXPIRED: Refusal = refused(401, "token_expired", "The token has expired.");
const NOT_A_TOKEN: Refusal = Refusal {
    status: 401,
    error: "invalid_token",
    message: None,
};

/// What `guard` answers to `bearer`; `None` when it lets the request through.
pub fn refusal(guard: Guard, bearer: Bearer) -> Option<Refusal> {
    use Bearer::*;
    use Guard::*;
    match (bearer, guard) {
        // A token that does not decode is refused by every guard, even an optional one.
        (Garbage, _) => Some(NOT_A_TOKEN),
        (Expired, _) => Some(EXPIRED),
        (Nothing, Optional) => None,
        (Nothing, _) => Some(NO_TOKEN),
        (UserRefresh | AdminRefresh, Refresh) => None,
        (UserRefresh | AdminRefresh, _) => Some(ONLY_ACCESS),
        (_, Refresh) => Some(ONLY_REFRESH),
        (AdminFresh, _) => None,
        (UserFresh, Admin | FreshAdmin) => Some(NOT_ADMIN),
        (UserFresh, Optional | Access | Fresh) => None,
        (UserStale | AdminStale, Fresh | FreshAdmin) => Some(NOT_FRESH),
        (UserStale, Admin) => Some(NOT_ADMIN),
        (UserStale | AdminStale, Optional | Access | Admin) => None,
    }
}

/// The body of a guarded request.
#[derive(Debug, Clone)]
pub enum Body {
    Empty,
    Json(Value),
    /// Sent as is with this content type: the guard must not care whether it parses.
    Raw(&'static str, String),
}

/// One row of the matrix: a guarded request, and what its handler answers once a token
/// gets past the guard.
#[derive(Debug, Clone)]
pub struct GuardCase {
    pub method: Method,
    pub path: String,
    pub guard: Guard,
    pub body: Body,
    /// `None` when a request past the guard would change something: accepted tokens
    /// are then not sent at all.
    pub past_guard: Option<PastGuard>,
}

/// What the handler answers a request that got past the guard.
#[derive(Debug, Clone, Copy)]
pub struct PastGuard {
    pub status: u16,
    pub error: &'static str,
    /// The field of a 422, as (location, name).
    pub field: Option<(&'static str, &'static str)>,
}

impl GuardCase {
    pub fn new(method: Method, path: impl Into<String>, guard: Guard) -> GuardCase {
        GuardCase {
            method,
            path: path.into(),
            guard,
            body: Body::Empty,
            past_guard: None,
        }
    }

    pub fn json(self, body: Value) -> GuardCase {
        GuardCase {
            body: Body::Json(body),
            ..self
        }
    }

    pub fn raw(self, content_type: &'static str, body: &str) -> GuardCase {
        GuardCase {
            body: Body::Raw(content_type, body.to_owned()),
            ..self
        }
    }

    /// Past the guard, the handler answers `status` with `error`.
    pub fn then(self, status: u16, error: &'static str) -> GuardCase {
        GuardCase {
            past_guard: Some(PastGuard {
                status,
                error,
                field: None,
            }),
            ..self
        }
    }

    /// Past the guard, the handler answers 422 on `location` `field`.
    pub fn then_invalid(self, location: &'static str, field: &'static str) -> GuardCase {
        GuardCase {
            past_guard: Some(PastGuard {
                status: 422,
                error: "validation_error",
                field: Some((location, field)),
            }),
            ..self
        }
    }

    async fn send(&self, app: &TestApp, token: Option<&str>) -> Response {
        let (method, path) = (self.method.clone(), self.path.as_str());
        match &self.body {
            Body::Empty => app.request(method, path, token, None).await,
            Body::Json(body) => app.request(method, path, token, Some(body.clone())).await,
            Body::Raw(content_type, body) => {
                app.send_raw(method, path, token, Some(content_type), body.clone())
                    .await
            }
        }
    }
}

/// Asserts `guard`'s refusal of `bearer`: the status, the code and, where the guard
/// always says the same, the message.
pub async fn assert_refused(resp: Response, guard: Guard, bearer: Bearer) -> Value {
    let expected =
        refusal(guard, bearer).unwrap_or_else(|| panic!("{guard:?} lets {bearer:?} through"));
    let body = assert_error(resp, expected.status, expected.error).await;
    if let Some(message) = expected.message {
        assert_eq!(body["message"], message, "{body}");
    }
    body
}

/// Sends every case with every one of `bearers`: a refused token gets its guard's
/// answer, an accepted one the case's own answer past the guard (or is not sent when the
/// case has none). Returns how many requests were (refused, let through).
pub async fn run_guard_matrix(
    app: &TestApp,
    cast: &Cast,
    cases: &[GuardCase],
    bearers: &[Bearer],
) -> (usize, usize) {
    let (mut refused, mut passed) = (0, 0);
    for case in cases {
        let (method, path, guard) = (&case.method, &case.path, case.guard);
        for &bearer in bearers {
            let what = format!("{method} {path} ({guard:?}) with {bearer:?}");
            if let Some(expected) = refusal(guard, bearer) {
                eprintln!("{what}: expecting {} {}", expected.status, expected.error);
                let resp = case.send(app, cast.token(bearer)).await;
                assert_refused(resp, guard, bearer).await;
                refused += 1;
            } else if let Some(PastGuard {
                status,
                error,
                field,
            }) = case.past_guard
            {
                eprintln!("{what}: past the guard, expecting {status} {error}");
                let resp = case.send(app, cast.token(bearer)).await;
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
