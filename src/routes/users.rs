//! Users: self-or-admin reads and deletes, and the admin actions.

use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::audit::Origin;
use crate::auth::guards::{Admin, Authenticated, Fresh, FreshAdmin};
use crate::db;
use crate::error::responses::{
    AdminRequired, BadRequestBody, FreshTokenRequired, InvalidPage, NotSelfOrAdmin,
    PayloadTooLarge, ServiceUnavailable, Unauthorized, UserNotFound,
};
use crate::error::{ApiError, ErrorBody};
use crate::input::{boolean, path_id, Fields, FromJsonBody, Page, ValidJson};
use crate::models::user::{User, UserView};
use crate::models::Entity;
use crate::routes::{client_info, not_found, with_total, Message};
use crate::state::AppState;

/// PATCH /user/{id} body.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminFlag {
    /// Whether the user is an admin.
    is_admin: bool,
}

impl FromJsonBody for AdminFlag {
    fn from_fields(f: &mut Fields) -> Option<Self> {
        Some(AdminFlag {
            is_admin: f.required("is_admin", boolean)?,
        })
    }
}

/// GET /user/{id}: the caller, or anyone for an admin.
#[utoipa::path(
    tag = "users",
    summary = "A user",
    description = "Requires an access token of that user, or an **admin** access token.",
    params(
        ("id" = i64, Path, minimum = 1, description = "The user id."),
    ),
    responses(
        (status = 200, description = "The user.", body = UserView),
        (status = 401, response = Unauthorized),
        (status = 403, response = NotSelfOrAdmin),
        (status = 404, response = UserNotFound),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[get("/user/{id}")]
pub async fn get_user(
    token: Authenticated,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&req, "id", not_found(Entity::User))?;
    token.ensure_self_or_admin(id)?;
    let found = db::run(&state.pool, move |conn| User::get(conn, id)).await?;
    Ok(HttpResponse::Ok().json(UserView::from(found)))
}

/// DELETE /user/{id}: with a fresh token, the caller or an admin. The user's sessions
/// end with it.
#[utoipa::path(
    tag = "users",
    summary = "Delete a user",
    description = "Requires a **fresh** access token of that user, or a **fresh** **admin** \
                   access token. The user's sessions end with it; its id is never reused.",
    params(
        ("id" = i64, Path, minimum = 1, description = "The user id."),
    ),
    responses(
        (status = 200, description = "Deleted.", body = Message,
            example = json!({"message": "User deleted."})),
        (status = 401, response = FreshTokenRequired),
        (status = 403, response = NotSelfOrAdmin),
        (status = 404, response = UserNotFound),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[delete("/user/{id}")]
pub async fn delete_user(
    token: Fresh,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&req, "id", not_found(Entity::User))?;
    token.ensure_self_or_admin(id)?;
    let origin = Origin::http(Some(token.0.user_id), client_info(&req, &state));
    state.accounts.delete_user(id, &origin).await?;
    Ok(HttpResponse::Ok().json(Message::new("User deleted.")))
}

/// GET /users (admin)
#[utoipa::path(
    tag = "users",
    summary = "Every user",
    description = "Requires an **admin** access token. A page of users, ordered by id.",
    params(Page),
    responses(
        (status = 200, description = "A page of users.", body = Vec<UserView>,
            headers(("X-Total-Count" = i64, description = "The number of rows in all pages."))),
        (status = 401, response = Unauthorized),
        (status = 403, response = AdminRequired),
        (status = 422, response = InvalidPage),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[get("/users")]
pub async fn list_users(
    _admin: Admin,
    page: Page,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (list, total) = db::run(&state.pool, move |conn| {
        User::list(conn, page.limit, page.offset)
    })
    .await?;
    let views: Vec<UserView> = list.into_iter().map(UserView::from).collect();
    Ok(with_total(total).json(views))
}

/// PATCH /user/{id} (fresh admin): sets is_admin; a change ends the target's sessions
/// so that no token carries the old claim.
#[utoipa::path(
    tag = "users",
    summary = "Grant or withdraw admin",
    description = "Requires a **fresh** **admin** access token. Sets `is_admin`; a change \
                   revokes the user's sessions, so that no token carries the old claim.",
    params(
        ("id" = i64, Path, minimum = 1, description = "The user id."),
    ),
    request_body = AdminFlag,
    responses(
        (status = 200, description = "The user as it now is.", body = UserView),
        (status = 400, response = BadRequestBody),
        (status = 401, response = FreshTokenRequired),
        (status = 403, response = AdminRequired),
        (status = 404, response = UserNotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 422, description = "`validation_error`: `is_admin` is missing or not a \
            boolean, or another field is sent; \
            `errors.json` lists every problem.", body = ErrorBody),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[patch("/user/{id}")]
pub async fn set_admin(
    admin: FreshAdmin,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: ValidJson<AdminFlag>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&req, "id", not_found(Entity::User))?;
    let origin = Origin::http(Some(admin.0.user_id), client_info(&req, &state));
    let change = state
        .accounts
        .set_admin(id, body.0.is_admin, &origin)
        .await?;
    Ok(HttpResponse::Ok().json(UserView::from(change.user)))
}

/// POST /user/{id}/revoke (admin): ends every session of that user.
#[utoipa::path(
    tag = "users",
    summary = "End every session of a user",
    description = "Requires an **admin** access token. Revokes all of the user's sessions: \
                   their tokens stop working at once. No body.",
    params(
        ("id" = i64, Path, minimum = 1, description = "The user id."),
    ),
    responses(
        (status = 200, description = "Revoked.", body = SessionsRevoked),
        (status = 401, response = Unauthorized),
        (status = 403, response = AdminRequired),
        (status = 404, response = UserNotFound),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[post("/user/{id}/revoke")]
pub async fn revoke_user_sessions(
    admin: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&req, "id", not_found(Entity::User))?;
    let origin = Origin::http(Some(admin.0.user_id), client_info(&req, &state));
    let count = state.accounts.revoke_sessions(id, &origin).await?;
    Ok(HttpResponse::Ok().json(SessionsRevoked {
        message: format!("Revoked {count} session(s) of user {id}."),
        revoked: count,
    }))
}

/// POST /user/{id}/revoke's answer.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"message": "Revoked 2 session(s) of user 7.", "revoked": 2}))]
pub struct SessionsRevoked {
    /// A human sentence.
    message: String,
    /// How many sessions were live and are now revoked.
    #[schema(minimum = 0)]
    revoked: usize,
}
