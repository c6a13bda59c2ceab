//! The routes table, readable top to bottom like API.md's, and the fallbacks.

pub mod auth;
pub mod health;
pub mod items;
pub mod stores;
pub mod tags;
pub mod users;

use actix_web::dev::HttpServiceFactory;
use actix_web::{web, HttpResponse, HttpResponseBuilder, Route};

use crate::error::ApiError;

/// Every route of the service.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/register", [web::post().to(auth::register)]))
        .service(resource("/login", [web::post().to(auth::login)]))
        .service(resource(
            "/fresh-login",
            [web::post().to(auth::fresh_login)],
        ))
        .service(resource("/refresh", [web::post().to(auth::refresh)]))
        .service(resource("/logout", [web::post().to(auth::logout)]))
        .service(resource("/me", [web::get().to(auth::me)]))
        .service(resource(
            "/me/password",
            [web::put().to(auth::change_password)],
        ))
        .service(resource("/sessions", [web::get().to(auth::list_sessions)]))
        .service(resource(
            "/sessions/{id}",
            [web::delete().to(auth::revoke_session)],
        ))
        .service(resource(
            "/user/{id}",
            [
                web::get().to(users::get_user),
                web::delete().to(users::delete_user),
                web::patch().to(users::set_admin),
            ],
        ))
        .service(resource("/users", [web::get().to(users::list_users)]))
        .service(resource(
            "/user/{id}/revoke",
            [web::post().to(users::revoke_user_sessions)],
        ))
        .service(resource(
            "/store",
            [
                web::get().to(stores::list_stores),
                web::post().to(stores::create_store),
            ],
        ))
        .service(resource(
            "/store/{id}",
            [
                web::get().to(stores::get_store),
                web::delete().to(stores::delete_store),
            ],
        ))
        .service(resource(
            "/item",
            [
                web::get().to(items::list_items),
                web::post().to(items::create_item),
            ],
        ))
        .service(resource(
            "/item/{id}",
            [
                web::get().to(items::get_item),
                web::put().to(items::update_item),
                web::delete().to(items::delete_item),
            ],
        ))
        .service(resource(
            "/store/{id}/tag",
            [
                web::get().to(tags::list_store_tags),
                web::post().to(tags::create_tag),
            ],
        ))
        .service(resource(
            "/tag/{id}",
            [
                web::get().to(tags::get_tag),
                web::delete().to(tags::delete_tag),
            ],
        ))
        .service(resource(
            "/item/{id}/tag/{tag_id}",
            [
                web::post().to(tags::link_item_tag),
                web::delete().to(tags::unlink_item_tag),
            ],
        ))
        .service(resource("/health", [web::get().to(health::health)]))
        .service(resource("/ready", [web::get().to(health::ready)]));
}

/// A resource whose unmatched methods get the contract's 405.
fn resource<const N: usize>(path: &str, routes: [Route; N]) -> impl HttpServiceFactory {
    routes
        .into_iter()
        .fold(web::resource(path), |r, route| r.route(route))
        .default_service(web::to(|| async {
            Err::<HttpResponse, _>(ApiError::MethodNotAllowed)
        }))
}

/// The fallback for paths no route matches.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(
        "The requested URL was not found.".into(),
    ))
}

/// A 200 carrying a list's total in `X-Total-Count`.
pub fn with_total(total: i64) -> HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    response.insert_header(("X-Total-Count", total.to_string()));
    response
}
