//! The route table, readable top to bottom like docs/API.md's, and the fallbacks.
//!
//! Each handler names its method and path once, in its actix-web attribute; the router
//! and the OpenAPI document are both built from [`configure`] (through
//! utoipa-actix-web), so a route cannot be served undocumented or documented unserved.

pub mod audit;
pub mod auth;
pub mod docs;
pub mod health;
pub mod index;
pub mod items;
pub mod keys;
pub mod oauth;
pub mod stores;
pub mod tags;
pub mod users;

use std::sync::OnceLock;

use actix_web::dev::ResourceDef;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::sessions::ClientInfo;
use crate::error::{ApiError, ValidationErrors};
use crate::http::{client_ip, is_docs_path};
use crate::models::{Entity, ModelError};
use crate::state::AppState;

/// Registers every API route, and Swagger UI.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(index::index)
        .service(auth::register)
        .service(auth::login)
        .service(auth::fresh_login)
        .service(auth::refresh)
        .service(auth::logout)
        .service(auth::me)
        .service(auth::change_password)
        .service(auth::list_sessions)
        .service(auth::revoke_session)
        .service(audit::own_events)
        .service(users::get_user)
        .service(users::delete_user)
        .service(users::set_admin)
        .service(users::list_users)
        .service(users::revoke_user_sessions)
        .service(audit::list_events)
        .service(stores::list_stores)
        .service(stores::create_store)
        .service(stores::get_store)
        .service(stores::delete_store)
        .service(items::list_items)
        .service(items::create_item)
        .service(items::get_item)
        .service(items::update_item)
        .service(items::delete_item)
        .service(tags::list_store_tags)
        .service(tags::create_tag)
        .service(tags::get_tag)
        .service(tags::delete_tag)
        .service(tags::link_item_tag)
        .service(tags::unlink_item_tag)
        .service(health::health)
        .service(health::ready)
        .service(keys::jwks)
        .service(keys::metadata)
        .service(oauth::introspect)
        .service(oauth::revoke)
        .service(docs::openapi_json)
        .map(|cfg| {
            docs::configure_swagger_ui(cfg);
            cfg
        });
}

/// Each documented path, as the router matches it, with its methods.
fn documented_paths() -> &'static [(ResourceDef, Vec<Method>)] {
    static PATHS: OnceLock<Vec<(ResourceDef, Vec<Method>)>> = OnceLock::new();
    PATHS.get_or_init(|| {
        let document: serde_json::Value =
            serde_json::from_str(docs::document()).unwrap_or_default();
        let Some(paths) = document["paths"].as_object() else {
            return Vec::new();
        };
        paths
            .iter()
            .map(|(path, item)| {
                let methods = item
                    .as_object()
                    .into_iter()
                    .flat_map(|ops| ops.keys())
                    .filter_map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
                    .collect();
                (ResourceDef::new(path.as_str()), methods)
            })
            .collect()
    })
}

/// The (method, path) of every API route the server registers, paths in the OpenAPI
/// notation (`{id}`), which is also actix's.
pub fn registered() -> Vec<(Method, String)> {
    documented_paths()
        .iter()
        .flat_map(|(def, methods)| {
            methods
                .iter()
                .map(move |m| (m.clone(), def.pattern().unwrap_or_default().to_owned()))
        })
        .collect()
}

/// The fallback for requests no route took: the contract's 405 with the `Allow` header
/// RFC 9110 (15.5.6) requires when the path exists with other methods, else 404.
pub async fn fallback(req: HttpRequest) -> HttpResponse {
    let path = req.path();
    let mut allowed: Vec<&str> = documented_paths()
        .iter()
        .filter(|(def, _)| def.is_match(path))
        .flat_map(|(_, methods)| methods.iter().map(Method::as_str))
        .collect();
    // Swagger UI's files are served for GET only.
    if allowed.is_empty() && is_docs_path(path) && req.method() != Method::GET {
        allowed.push(Method::GET.as_str());
    }
    if allowed.is_empty() {
        return ApiError::NotFound("The requested URL was not found.".into()).error_response();
    }
    allowed.sort_by_key(|m| method_order(m));
    allowed.dedup();
    let mut response = ApiError::MethodNotAllowed.error_response();
    if let Ok(value) = HeaderValue::from_str(&allowed.join(", ")) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// The order methods are listed in `Allow`: reads first, as the route table lists them.
fn method_order(method: &str) -> usize {
    ["GET", "POST", "PUT", "PATCH", "DELETE"]
        .iter()
        .position(|m| *m == method)
        .unwrap_or(usize::MAX)
}

/// How a model's refusal reaches the client: its status, code, message and field.
impl From<ModelError> for ApiError {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::NotFound(entity, id) => not_found(entity)(id),
            ModelError::NameTaken(Entity::User) => {
                ApiError::Conflict("A user with that username already exists.")
            }
            ModelError::NameTaken(Entity::Tag) => {
                ApiError::Conflict("A tag with that name already exists in this store.")
            }
            ModelError::NameTaken(_) => {
                ApiError::Conflict("A store with that name already exists.")
            }
            ModelError::NoSuchStore(_) => {
                let mut errors = ValidationErrors::default();
                errors.json("store_id", "No store with this id.");
                ApiError::Validation(errors)
            }
            ModelError::DifferentStores => {
                let mut errors = ValidationErrors::default();
                errors.path("tag_id", "The item and the tag belong to different stores.");
                ApiError::Validation(errors)
            }
            ModelError::NotTagged { item, tag } => {
                ApiError::NotFound(format!("Item {item} is not tagged with tag {tag}."))
            }
            ModelError::TagInUse => ApiError::BadRequest(
                "The tag is still used by items; remove it from them first.".into(),
            ),
            ModelError::Inconsistent(why) => ApiError::Internal(why),
            ModelError::Database(e) => e.into(),
        }
    }
}

/// The 404 for an id of `entity` in a path or a body.
pub fn not_found(entity: Entity) -> impl Fn(i64) -> ApiError {
    move |id| ApiError::NotFound(format!("{entity} {id} not found."))
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

/// Where a request comes from, as sessions and the audit log record it: the address the
/// service trusts (see `TRUSTED_PROXIES`) and the User-Agent, truncated.
pub fn client_info(req: &HttpRequest, state: &AppState) -> ClientInfo {
    ClientInfo {
        user_agent: req.headers().get(header::USER_AGENT).map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .chars()
                .take(256)
                .collect()
        }),
        // One spelling per address: an IPv4 client of a dual-stack socket is shown as
        // IPv4, as the filters of GET /audit expect.
        ip: client_ip(req, &state.settings.http.trusted_proxies)
            .map(|ip| ip.to_canonical().to_string()),
    }
}
