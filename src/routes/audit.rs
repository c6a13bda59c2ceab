//! The audit log: every event for admins, a user's own security events for that user.

use std::net::IpAddr;

use actix_web::{get, web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::audit::{self, Action, AuditEvent, Filter, Outcome};
use crate::auth::guards::{Admin, Authenticated};
use crate::db;
use crate::error::responses::{AdminRequired, InvalidAuditQuery, ServiceUnavailable, Unauthorized};
use crate::error::{ApiError, ValidationErrors};
use crate::input::{self, Page};
use crate::state::AppState;

/// A page of audit events.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub events: Vec<AuditEvent>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// The filters of `GET /audit`; every one given must hold.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Describes the parameters in the document; parsed by `filters`.
pub struct AuditQuery {
    /// Events whose actor or target is this user.
    #[param(minimum = 1)]
    user_id: Option<i64>,
    /// One action.
    #[param(inline, nullable = false)]
    action: Option<Action>,
    /// One outcome.
    #[param(inline, nullable = false)]
    outcome: Option<Outcome>,
    /// The client's address (IPv4 or IPv6); a value that is no address matches nothing.
    ip: Option<String>,
    /// Written at or after this time (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Written before this time (RFC 3339).
    #[param(format = DateTime)]
    until: Option<String>,
    /// Page size: a whole number of at least 1; larger than 1000 is read as 1000.
    #[param(minimum = 1, default = 100)]
    limit: Option<i64>,
    /// The previous page's `next_cursor`.
    #[param(pattern = r"^[1-9][0-9]{0,17}$")]
    cursor: Option<String>,
}

/// The same filters, for the caller's own events.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Describes the parameters in the document; parsed by `filters`.
pub struct OwnAuditQuery {
    /// One action.
    #[param(inline, nullable = false)]
    action: Option<Action>,
    /// One outcome.
    #[param(inline, nullable = false)]
    outcome: Option<Outcome>,
    /// The client's address (IPv4 or IPv6); a value that is no address matches nothing.
    ip: Option<String>,
    /// Written at or after this time (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Written before this time (RFC 3339).
    #[param(format = DateTime)]
    until: Option<String>,
    /// Page size: a whole number of at least 1; larger than 1000 is read as 1000.
    #[param(minimum = 1, default = 100)]
    limit: Option<i64>,
    /// The previous page's `next_cursor`.
    #[param(pattern = r"^[1-9][0-9]{0,17}$")]
    cursor: Option<String>,
}

/// What the filters ask for: events, or none at all (an address that is no address).
enum Wanted {
    Events(Filter, usize),
    Nothing,
}

/// Reads the filters from the query string; `user_id` only where `allow_user` (an
/// admin's query). Every problem is reported, each under its parameter.
fn filters(req: &HttpRequest, allow_user: bool) -> Result<Wanted, ApiError> {
    let query = input::query_map(req);
    let mut nothing = false;
    let mut errors = ValidationErrors::default();
    let mut filter = Filter::default();
    if let Some(raw) = query.get("user_id") {
        match raw.trim().parse::<i64>() {
            _ if !allow_user => errors.query(
                "user_id",
                "Not a filter of this route: it lists the caller's own events.",
            ),
            Ok(id) if id >= 1 => filter.user_id = Some(id),
            _ => errors.query("user_id", "Must be a whole number of at least 1."),
        }
    }
    if let Some(raw) = query.get("action") {
        match raw.parse::<Action>() {
            Ok(action) => filter.action = Some(action),
            Err(()) => errors.query(
                "action",
                format!(
                    "Must be one of: {}.",
                    Action::ALL.map(Action::as_str).join(", ")
                ),
            ),
        }
    }
    if let Some(raw) = query.get("outcome") {
        match raw.parse::<Outcome>() {
            Ok(outcome) => filter.outcome = Some(outcome),
            Err(()) => errors.query("outcome", "Must be one of: ok, failed, limited."),
        }
    }
    if let Some(raw) = query.get("ip") {
        match raw.trim().parse::<IpAddr>() {
            Ok(ip) => filter.ip = Some(ip.to_canonical().to_string()),
            // Only addresses are stored: nothing to look up.
            Err(_) => nothing = true,
        }
    }
    let mut time = |name: &str| {
        query.get(name).and_then(
            |raw| match chrono::DateTime::parse_from_rfc3339(raw.trim()) {
                Ok(t) => Some(t.naive_utc()),
                Err(_) => {
                    errors.query(
                        name,
                        "Must be an RFC 3339 time, such as 2026-12-03T10:00:00Z.",
                    );
                    None
                }
            },
        )
    };
    filter.since = time("since");
    filter.until = time("until");
    let limit = match query.get("limit") {
        None => Page::DEFAULT_LIMIT,
        Some(raw) => match raw.trim().parse::<i64>() {
            Ok(n) if n >= 1 => n.min(Page::MAX_LIMIT),
            _ => {
                errors.query("limit", "Must be a whole number of at least 1.");
                Page::DEFAULT_LIMIT
            }
        },
    };
    if let Some(raw) = query.get("cursor") {
        match raw.trim().parse::<i64>() {
            Ok(id) if id >= 1 => filter.before_id = Some(id),
            _ => errors.query("cursor", "Must be the next_cursor of a previous page."),
        }
    }
    errors.into_result(|| {
        if nothing {
            Wanted::Nothing
        } else {
            Wanted::Events(filter, limit as usize)
        }
    })
}

/// Runs `filter` and shapes the page.
async fn page(state: &AppState, wanted: Wanted) -> Result<HttpResponse, ApiError> {
    let Wanted::Events(filter, limit) = wanted else {
        return Ok(HttpResponse::Ok().json(AuditPage {
            events: Vec::new(),
            next_cursor: None,
        }));
    };
    let (events, more) =
        db::run(&state.pool, move |conn| audit::query(conn, &filter, limit)).await?;
    let next_cursor = more
        .then(|| events.last().map(|e| e.id.to_string()))
        .flatten();
    Ok(HttpResponse::Ok().json(AuditPage {
        events,
        next_cursor,
    }))
}

/// GET /audit (admin): the audit log, newest first.
#[utoipa::path(
    tag = "audit",
    summary = "The audit log",
    description = "Requires an **admin** access token. Security events (registrations, \
                   logins and failed logins, refreshes, reuse detections, logouts, password \
                   changes, admin actions, operator commands), newest first, filtered by \
                   every parameter given. Pages are stable while events are added: follow \
                   `next_cursor` until it is null.",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of events.", body = AuditPage),
        (status = 401, response = Unauthorized),
        (status = 403, response = AdminRequired),
        (status = 422, response = InvalidAuditQuery),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[get("/audit")]
pub async fn list_events(
    _admin: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    page(&state, filters(&req, true)?).await
}

/// GET /me/audit: the caller's own security events.
#[utoipa::path(
    tag = "audit",
    summary = "The caller's security log",
    description = "Requires an access token. The events whose actor or target is the \
                   caller: their logins (and failed logins) and from where, sessions ended, \
                   password changes, admin actions on their account. Newest first, with \
                   the filters of `GET /audit` but `user_id`.",
    params(OwnAuditQuery),
    responses(
        (status = 200, description = "A page of events.", body = AuditPage),
        (status = 401, response = Unauthorized),
        (status = 422, response = InvalidAuditQuery),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[get("/me/audit")]
pub async fn own_events(
    token: Authenticated,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let wanted = match filters(&req, false)? {
        Wanted::Events(mut filter, limit) => {
            filter.user_id = Some(token.0.user_id);
            Wanted::Events(filter, limit)
        }
        Wanted::Nothing => Wanted::Nothing,
    };
    page(&state, wanted).await
}
