//! The OpenAPI document (generated from the handlers' `#[utoipa::path]` annotations and
//! the body types' `ToSchema`) at GET /openapi.json, and Swagger UI over it at
//! GET /swagger-ui/, served from files compiled into the binary (no CDN).

use std::sync::OnceLock;

use actix_web::http::header::{self, ContentType};
use actix_web::{get, web, App, HttpResponse};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::config::REFRESH_COOKIE_PATH;
use crate::error::responses::{
    AdminRequired, BadRequestBody, FreshTokenRequired, InvalidAuditQuery, InvalidCredentials,
    InvalidCredentialsBody, InvalidNameBody, InvalidPage, ItemNotFound, NotSelfOrAdmin,
    OptionalTokenInvalid, PayloadTooLarge, ServiceUnavailable, StoreNotFound, TagNotFound,
    TokenUserNotFound, TooManyLogins, TooManyPasswordChecks, TooManyRequests, Unauthorized,
    UserNotFound,
};
use crate::error::ErrorBody;
use crate::http::{OPENAPI_PATH, SWAGGER_UI_PATH};

/// The name of the bearer security scheme the guarded operations require.
pub const BEARER: &str = "bearer";
/// HTTP Basic with a client of `INTROSPECTION_CLIENTS` (POST /introspect).
const CLIENT_BASIC: &str = "client_basic";
/// The browser-mode alternative to [`BEARER`]: the access token's cookie.
const ACCESS_COOKIE: &str = "access_cookie";
/// The browser-mode alternative to [`BEARER`] on POST /refresh: the refresh token's cookie.
const REFRESH_COOKIE: &str = "refresh_cookie";

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

**Browser mode** (when the server reads cookies, `JWT_TOKEN_LOCATION`): \
`POST /login?delivery=cookie` puts the tokens in HttpOnly cookies and answers with \
their CSRF values instead; a request with the token in a cookie that is a POST, PUT, \
PATCH or DELETE must repeat the token's CSRF value in `X-CSRF-TOKEN` \
(`csrf_token_invalid` otherwise). A request with an `Authorization` header is judged \
by the header alone.

**Lists** take `?limit=` and `?offset=`, are ordered by id, and report the total in \
`X-Total-Count`.";

/// The document's frame: its description, shared components and tags. The paths come
/// from the routes themselves (see [`document`]).
#[derive(OpenApi)]
#[openapi(
    info(title = "stores-api", description = DESCRIPTION),
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
            InvalidAuditQuery,
            InvalidNameBody,
            InvalidCredentialsBody,
            TooManyRequests,
            TooManyLogins,
            TooManyPasswordChecks,
            ServiceUnavailable,
        )
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "auth", description = "Register, log in, refresh, log out; the caller's account."),
        (name = "sessions", description = "The caller's sessions (one per login)."),
        (name = "users", description = "Users: self-or-admin reads and deletes, admin actions."),
        (name = "audit", description = "The audit log of security events."),
        (name = "stores", description = "Stores, with their items and tags."),
        (name = "items", description = "Items of a store, with exact prices."),
        (name = "tags", description = "Tags of a store, and tagging items."),
        (name = "keys", description = "The public keys that verify tokens, and the metadata \
            other services discover them by."),
        (name = "health", description = "Liveness and readiness."),
        (name = "docs", description = "This document."),
    )
)]
pub struct ApiDoc;

/// Adds the security schemes the operations refer to: `bearer` (HTTP bearer, JWT) and
/// the browser-mode cookies.
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
        components.add_security_scheme(
            CLIENT_BASIC,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "A service's client id and secret from INTROSPECTION_CLIENTS \
                         (POST /introspect only).",
                    ))
                    .build(),
            ),
        );
        for (name, cookie, description) in [
            (
                ACCESS_COOKIE,
                "access_token_cookie",
                "Browser mode: the access token in its HttpOnly cookie (the name is \
                 JWT_ACCESS_COOKIE_NAME). A POST, PUT, PATCH or DELETE must also send the \
                 token's CSRF value in X-CSRF-TOKEN.",
            ),
            (
                REFRESH_COOKIE,
                "refresh_token_cookie",
                "Browser mode: the refresh token in its HttpOnly cookie, sent to POST \
                 /refresh only (the name is JWT_REFRESH_COOKIE_NAME), with the token's CSRF \
                 value in X-CSRF-TOKEN.",
            ),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                    cookie,
                    description,
                ))),
            );
        }
    }
}

/// Offers the cookie scheme beside `bearer` wherever `bearer` is accepted: the access
/// cookie, or on the refresh route the refresh cookie.
fn add_cookie_alternatives(openapi: &mut utoipa::openapi::OpenApi) {
    let bearer = SecurityRequirement::new(BEARER, Vec::<String>::new());
    for (path, item) in openapi.paths.paths.iter_mut() {
        let cookie = if path == REFRESH_COOKIE_PATH {
            REFRESH_COOKIE
        } else {
            ACCESS_COOKIE
        };
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            if let Some(security) = &mut operation.security {
                if security.contains(&bearer) {
                    security.push(SecurityRequirement::new(cookie, Vec::<String>::new()));
                }
            }
        }
    }
}

/// The document as JSON, generated once: [`ApiDoc`] with the operations of every route
/// that [`super::configure`] registers, so that no route is served undocumented.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let (_, mut openapi) = App::new()
            .into_utoipa_app()
            .openapi(ApiDoc::openapi())
            .configure(super::configure)
            .split_for_parts();
        add_cookie_alternatives(&mut openapi);
        // Only maps with string keys and plain values: serializing cannot fail.
        openapi.to_json().unwrap_or_default()
    })
}

/// GET /openapi.json
#[utoipa::path(
    tag = "docs",
    summary = "This OpenAPI document",
    description = "Public. The OpenAPI 3.1 document of every route; Swagger UI over it is \
                   at /swagger-ui/.",
    responses(
        (status = 200, description = "The OpenAPI document.", body = Object),
    )
)]
#[get("/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(document())
}

/// Swagger UI at /swagger-ui/ over /openapi.json; /swagger-ui redirects there, so that
/// the page's relative links to its scripts and styles resolve.
pub fn configure_swagger_ui(cfg: &mut web::ServiceConfig) {
    let files = format!("{SWAGGER_UI_PATH}/{{_:.*}}");
    cfg.service(SwaggerUi::new(files).config(Config::new([OPENAPI_PATH])))
        .route(SWAGGER_UI_PATH, web::get().to(redirect_to_index));
}

async fn redirect_to_index() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, format!("{SWAGGER_UI_PATH}/")))
        .finish()
}
