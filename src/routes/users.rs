//! Users: self-or-admin reads and deletes, and the admin actions.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::auth::guards::{Admin, Authenticated, Fresh, FreshAdmin};
use crate::auth::sessions::Session;
use crate::db;
use crate::error::ApiError;
use crate::input::{boolean, path_id, Fields, FromJsonBody, Page, ValidJson};
use crate::models::user::{self, User, UserView};
use crate::routes::with_total;
use crate::startup::AppState;

/// PATCH /user/{id} body.
pub struct AdminFlag {
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
pub async fn get_user(
    token: Authenticated,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&req, "id", user::not_found)?;
    token.ensure_self_or_admin(id)?;
    let found = db::run(&state.pool, move |conn| User::get(conn, id)).await?;
    Ok(HttpResponse::Ok().json(UserView::from(found)))
}

/// DELETE /user/{id}: with a fresh token, the caller or an admin. The user's sessions
/// end with it.
pub async fn delete_user(
    token: Fresh,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&req, "id", user::not_found)?;
    token.ensure_self_or_admin(id)?;
    let deleted = db::run(&state.pool, move |conn| {
        Session::revoke_all_for_user(conn, id, None)?;
        User::delete(conn, id)
    })
    .await?;
    if !deleted {
        return Err(user::not_found(id));
    }
    Ok(HttpResponse::Ok().json(json!({"message": "User deleted."})))
}

/// GET /users (admin)
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
pub async fn set_admin(
    _admin: FreshAdmin,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: ValidJson<AdminFlag>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&req, "id", user::not_found)?;
    let is_admin = body.0.is_admin;
    let updated = db::run(&state.pool, move |conn| {
        let before = User::get(conn, id)?;
        if before.is_admin == is_admin {
            return Ok(before);
        }
        let after = User::set_admin(conn, id, is_admin)?.ok_or_else(|| user::not_found(id))?;
        Session::revoke_all_for_user(conn, id, None)?;
        Ok(after)
    })
    .await?;
    Ok(HttpResponse::Ok().json(UserView::from(updated)))
}

/// POST /user/{id}/revoke (admin): ends every session of that user.
pub async fn revoke_user_sessions(
    _admin: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&req, "id", user::not_found)?;
    let count = db::run(&state.pool, move |conn| {
        User::get(conn, id)?;
        Session::revoke_all_for_user(conn, id, None)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({
        "message": format!("Revoked {count} session(s) of user {id}."),
        "revoked": count,
    })))
}
