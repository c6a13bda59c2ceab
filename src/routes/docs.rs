//! The OpenAPI document (generated from the handlers' `#[utoipa::path]` annotations and
//! the body types' `ToSchema`) at GET /openapi.json, and Swagger UI over it at
//! GET /swagger-ui/, served from files compiled into the binary (no CDN).

use std::sync::OnceLock;

use actix_web::http::header::{self, ContentType};
use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use utoipa::openapi::header::Header;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi, PartialSchema, ToResponse};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::error::ErrorBody;
use crate::routes::{auth, health, items, stores, tags, users};

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/openapi.json";
/// Where Swagger UI is served (its index is `/swagger-ui/`).
pub const SWAGGER_UI_PATH: &str = "/swagger-ui";

/// The name of the bearer security scheme the guarded operations require.
pub const BEARER: &str = "bearer";

const DESCRIPTION: &str = "\
A JWT-secured REST API for stores, items and tags.

**Tokens.** Log in with `POST /login` and send the access token as \
`Authorization: Bearer <token>` (the *Authorize* button here). Tokens are JWTs whose \
payload is Flask-JWT-Extended 4.x's (`sub`, `type`, `fresh`, `jti`, `iat`, `nbf`, `exp`, \
`is_admin`, `sid`): tokens are Flask-JWT-Extended compatible, so a Flask service sharing \
the signing key accepts them, and this service accepts Flask-JWT-Extended's. Access \
tokens are short-lived; `POST /refresh` trades the refresh token for a new pair (the \
presented one is spent, and presenting it again revokes the session).

**Guards**, stated in every operation's description: *Public*; *Optional token* (used \
when sent, and then it must be valid); an **access** token; a **fresh** access token (one \
from `/login` or `/fresh-login`, not from `/refresh`); an **admin** access token; a \
**refresh** token (`POST /refresh` only).

**Errors** all have the `ErrorBody` shape, `{code, status, error, message}`, plus \
`errors` (every problem, by field) on a 422. The guard is checked first, then the body \
and query, then the ids in the path. 401 responses carry a `WWW-Authenticate` \
challenge (RFC 6750); 429 responses a `Retry-After`.

**Lists** take `?limit=` and `?offset=`, are ordered by id, and report the total in \
`X-Total-Count`.";

/// A header an error response carries.
enum ErrorHeader {
    /// `WWW-Authenticate`: the RFC 6750 challenge (every 401).
    WwwAuthenticate,
    /// `Retry-After`: seconds to wait (every 429).
    RetryAfter,
}

/// An error response: `description`, the `ErrorBody` schema, and `headers`.
fn error_response(description: &str, headers: &[ErrorHeader]) -> RefOr<Response> {
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        Content::new(Some(Ref::from_schema_name("ErrorBody"))),
    );
    for header in headers {
        response = match header {
            ErrorHeader::WwwAuthenticate => response.header(
                "WWW-Authenticate",
                Header::builder()
                    .schema(Some(String::schema()))
                    .description(Some("The RFC 6750 challenge."))
                    .build(),
            ),
            ErrorHeader::RetryAfter => response.header(
                "Retry-After",
                Header::builder()
                    .schema(Some(u64::schema()))
                    .description(Some("Seconds to wait."))
                    .build(),
            ),
        };
    }
    response.build().into()
}

/// Declares reusable error responses (`components/responses`), each a unit struct that
/// the operations name with `(status = ..., response = Name)`.
macro_rules! error_responses {
    ($($(#[doc = $doc:literal])* $name:ident = $description:literal $(, $header:ident)*;)*) => {
        $(
            $(#[doc = $doc])*
            pub struct $name;

            impl<'r> ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<Response>) {
                    (
                        stringify!($name),
                        error_response($description, &[$(ErrorHeader::$header),*]),
                    )
                }
            }
        )*
    };
}

error_responses! {
    /// 400 of a JSON body that is not JSON.
    BadRequestBody = "`bad_request`: the body is not JSON, or not sent as `application/json`.";
    /// 401 of an access-token guard.
    Unauthorized = "No valid access token: `authorization_required`, `invalid_token` \
        (malformed, badly signed, or a refresh token), `token_expired` or `token_revoked`.",
        WwwAuthenticate;
    /// 401 of a fresh-token guard.
    FreshTokenRequired = "No valid fresh access token: `authorization_required`, \
        `invalid_token` (malformed, badly signed, or a refresh token), `token_expired`, \
        `token_revoked`, or `fresh_token_required`.",
        WwwAuthenticate;
    /// 401 of an optional-token guard.
    OptionalTokenInvalid = "A token was sent and is not a valid access token: \
        `invalid_token` (malformed, badly signed, or a refresh token), `token_expired` or \
        `token_revoked`. (Without a token the request is served.)",
        WwwAuthenticate;
    /// 401 of a login.
    InvalidCredentials = "`invalid_credentials`: no such user, or a wrong password (one \
        answer for both).",
        WwwAuthenticate;
    /// 403 of an admin guard.
    AdminRequired = "`admin_required`: the token is not an admin's.";
    /// 403 of a self-or-admin check.
    NotSelfOrAdmin = "`forbidden`: another user's account, and the caller is not an admin.";
    /// 404 of a store id.
    StoreNotFound = "`not_found`: no store with this id.";
    /// 404 of an item id.
    ItemNotFound = "`not_found`: no item with this id.";
    /// 404 of a tag id.
    TagNotFound = "`not_found`: no tag with this id.";
    /// 404 of a user id.
    UserNotFound = "`not_found`: no user with this id.";
    /// 404 of a token whose user is gone.
    TokenUserNotFound = "`not_found`: the token names no user (possible for a token \
        minted elsewhere without a session).";
    /// 413 of a body over the limit.
    PayloadTooLarge = "`payload_too_large`: the body is over the limit.";
    /// 422 of `?limit=` / `?offset=`.
    InvalidPage = "`validation_error`: `limit` or `offset` is not a whole number in range \
        (under `errors.query`).";
    /// 422 of a `{name}` body.
    InvalidNameBody = "`validation_error`: `name` is missing or invalid, or another field \
        is sent; `errors.json` lists every problem.";
    /// 422 of a `{username, password}` body.
    InvalidCredentialsBody = "`validation_error`: `username` or `password` is missing or \
        not a string, or another field is sent; `errors.json` lists every problem.";
    /// 429 of a per-address limit.
    TooManyRequests = "`too_many_requests`: too many attempts from this address.",
        RetryAfter;
    /// 429 of the login limits.
    TooManyLogins = "`too_many_requests`: too many attempts from this address, or too \
        many failed logins for this username.",
        RetryAfter;
    /// 503 of a database that cannot be reached.
    ServiceUnavailable = "`service_unavailable`: the database cannot be reached.";
}

/// The OpenAPI document of every route in [`crate::routes::table`].
#[derive(OpenApi)]
#[openapi(
    info(title = "stores-api", description = DESCRIPTION),
    paths(
        auth::register,
        auth::login,
        auth::fresh_login,
        auth::refresh,
        auth::logout,
        auth::me,
        auth::change_password,
        auth::list_sessions,
        auth::revoke_session,
        users::get_user,
        users::delete_user,
        users::set_admin,
        users::list_users,
        users::revoke_user_sessions,
        stores::list_stores,
        stores::get_store,
        stores::create_store,
        stores::delete_store,
        items::list_items,
        items::get_item,
        items::create_item,
        items::update_item,
        items::delete_item,
        tags::list_store_tags,
        tags::create_tag,
        tags::get_tag,
        tags::delete_tag,
        tags::link_item_tag,
        tags::unlink_item_tag,
        health::health,
        health::ready,
        openapi_json,
    ),
    components(
        schemas(ErrorBody),
        responses(
            BadRequestBody,
            Unauthorized,
            FreshTokenRequired,
            OptionalTokenInvalid,
            InvalidCredentials,
            AdminRequired,
            NotSelfOrAdmin,
            StoreNotFound,
            ItemNotFound,
            TagNotFound,
            UserNotFound,
            TokenUserNotFound,
            PayloadTooLarge,
            InvalidPage,
            InvalidNameBody,
            InvalidCredentialsBody,
            TooManyRequests,
            TooManyLogins,
            ServiceUnavailable,
        )
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "auth", description = "Register, log in, refresh, log out; the caller's account."),
        (name = "sessions", description = "The caller's sessions (one per login)."),
        (name = "users", description = "Users: self-or-admin reads and deletes, admin actions."),
        (name = "stores", description = "Stores, with their items and tags."),
        (name = "items", description = "Items of a store, with exact prices."),
        (name = "tags", description = "Tags of a store, and tagging items."),
        (name = "health", description = "Liveness and readiness."),
        (name = "docs", description = "This document."),
    )
)]
pub struct ApiDoc;

/// Adds the `bearer` security scheme (HTTP bearer, JWT) the operations refer to.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from POST /login, /fresh-login or /refresh (a \
                         refresh token on POST /refresh only).",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as JSON, generated once.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .expect("the OpenAPI document serializes")
    })
}

/// GET /openapi.json
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "docs",
    summary = "This OpenAPI document",
    description = "Public. The OpenAPI 3.1 document of every route; Swagger UI over it is \
                   at /swagger-ui/.",
    responses(
        (status = 200, description = "The OpenAPI document.", body = Object),
    )
)]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(document())
}

/// Swagger UI at /swagger-ui/ over /openapi.json; /swagger-ui redirects there, so that
/// the page's relative links to its scripts and styles resolve.
pub fn configure_swagger_ui(cfg: &mut web::ServiceConfig) {
    let files = format!("{SWAGGER_UI_PATH}/{{_:.*}}");
    cfg.service(SwaggerUi::new(files.clone()).config(Config::new([OPENAPI_PATH])))
        // Other methods on its files: the contract's 405.
        .service(
            web::resource(&files).default_service(super::method_not_allowed(vec![Method::GET])),
        )
        .service(super::resource(
            SWAGGER_UI_PATH,
            vec![(Method::GET, web::to(redirect_to_index))],
        ));
}

async fn redirect_to_index() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, format!("{SWAGGER_UI_PATH}/")))
        .finish()
}

/// Whether `path` is served by this module (public, never reads a token).
pub fn is_docs_path(path: &str) -> bool {
    path == OPENAPI_PATH
        || path
            .strip_prefix(SWAGGER_UI_PATH)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}
