//! The routes table, readable top to bottom like API.md's, and the fallbacks.
//!
//! The table is data: `configure` registers exactly what `table` lists and `registered`
//! reports it, so a route cannot be served without the docs test seeing it.

pub mod auth;
pub mod docs;
pub mod health;
pub mod items;
pub mod stores;
pub mod tags;
pub mod users;

use actix_web::dev::HttpServiceFactory;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::{web, HttpResponse, HttpResponseBuilder, ResponseError, Route};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;

/// A path and the handler of each of its methods.
pub type Resource = (&'static str, Vec<(Method, Route)>);

/// Every API route of the service.
pub fn table() -> Vec<Resource> {
    use Method as M;
    vec![
        ("/register", vec![(M::POST, web::to(auth::register))]),
        ("/login", vec![(M::POST, web::to(auth::login))]),
        ("/fresh-login", vec![(M::POST, web::to(auth::fresh_login))]),
        ("/refresh", vec![(M::POST, web::to(auth::refresh))]),
        ("/logout", vec![(M::POST, web::to(auth::logout))]),
        ("/me", vec![(M::GET, web::to(auth::me))]),
        (
            "/me/password",
            vec![(M::PUT, web::to(auth::change_password))],
        ),
        ("/sessions", vec![(M::GET, web::to(auth::list_sessions))]),
        (
            "/sessions/{id}",
            vec![(M::DELETE, web::to(auth::revoke_session))],
        ),
        (
            "/user/{id}",
            vec![
                (M::GET, web::to(users::get_user)),
                (M::DELETE, web::to(users::delete_user)),
                (M::PATCH, web::to(users::set_admin)),
            ],
        ),
        ("/users", vec![(M::GET, web::to(users::list_users))]),
        (
            "/user/{id}/revoke",
            vec![(M::POST, web::to(users::revoke_user_sessions))],
        ),
        (
            "/store",
            vec![
                (M::GET, web::to(stores::list_stores)),
                (M::POST, web::to(stores::create_store)),
            ],
        ),
        (
            "/store/{id}",
            vec![
                (M::GET, web::to(stores::get_store)),
                (M::DELETE, web::to(stores::delete_store)),
            ],
        ),
        (
            "/item",
            vec![
                (M::GET, web::to(items::list_items)),
                (M::POST, web::to(items::create_item)),
            ],
        ),
        (
            "/item/{id}",
            vec![
                (M::GET, web::to(items::get_item)),
                (M::PUT, web::to(items::update_item)),
                (M::DELETE, web::to(items::delete_item)),
            ],
        ),
        (
            "/store/{id}/tag",
            vec![
                (M::GET, web::to(tags::list_store_tags)),
                (M::POST, web::to(tags::create_tag)),
            ],
        ),
        (
            "/tag/{id}",
            vec![
                (M::GET, web::to(tags::get_tag)),
                (M::DELETE, web::to(tags::delete_tag)),
            ],
        ),
        (
            "/item/{id}/tag/{tag_id}",
            vec![
                (M::POST, web::to(tags::link_item_tag)),
                (M::DELETE, web::to(tags::unlink_item_tag)),
            ],
        ),
        ("/health", vec![(M::GET, web::to(health::health))]),
        ("/ready", vec![(M::GET, web::to(health::ready))]),
        ("/openapi.json", vec![(M::GET, web::to(docs::openapi_json))]),
    ]
}

/// Registers every route of `table`, and Swagger UI.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for (path, routes) in table() {
        cfg.service(resource(path, routes));
    }
    docs::configure_swagger_ui(cfg);
}

/// The (method, path) of every API route the server registers, paths in the
/// OpenAPI notation (`{id}`), which is also actix's.
pub fn registered() -> Vec<(Method, String)> {
    table()
        .into_iter()
        .flat_map(|(path, routes)| {
            routes
                .into_iter()
                .map(move |(method, _)| (method, path.to_string()))
        })
        .collect()
}

/// A resource serving each route for its method only; other methods get the
/// contract's 405.
fn resource(path: &str, routes: Vec<(Method, Route)>) -> impl HttpServiceFactory {
    let allowed = routes.iter().map(|(method, _)| method.clone()).collect();
    routes
        .into_iter()
        .fold(web::resource(path), |r, (method, route)| {
            r.route(route.method(method))
        })
        .default_service(method_not_allowed(allowed))
}

/// The contract's 405, with the `Allow` header RFC 9110 (15.5.6) requires.
fn method_not_allowed(allowed: Vec<Method>) -> Route {
    let allow = allowed
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    web::to(move || {
        let allow = allow.clone();
        async move {
            let mut response = ApiError::MethodNotAllowed.error_response();
            if let Ok(value) = HeaderValue::from_str(&allow) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            response
        }
    })
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

/// A `{"message": ...}` body.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"message": "Store deleted"}))]
pub struct Message {
    /// A human sentence.
    pub message: String,
}

impl Message {
    /// A message body.
    pub fn new(message: impl Into<String>) -> Self {
        Message {
            message: message.into(),
        }
    }
}
