//! The OpenAPI description of the error responses that many operations share
//! (`components/responses`): each is a unit struct that an operation names with
//! `(status = ..., response = Name)`, and each body is [`ErrorBody`](super::ErrorBody).

use utoipa::openapi::header::Header;
use utoipa::openapi::{Content, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{PartialSchema, ToResponse};

/// A header an error response carries.
enum ErrorHeader {
    /// `WWW-Authenticate`: the RFC 6750 challenge (every 401).
    WwwAuthenticate,
    /// `Retry-After`: seconds to wait, with the `RateLimit` fields (every 429).
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
            ErrorHeader::RetryAfter => response
                .header(
                    "Retry-After",
                    Header::builder()
                        .schema(Some(u64::schema()))
                        .description(Some("Seconds to wait."))
                        .build(),
                )
                .header(
                    "RateLimit-Policy",
                    Header::builder()
                        .schema(Some(String::schema()))
                        .description(Some(
                            "The limit that was hit (draft-ietf-httpapi-ratelimit-headers): \
                             `\"auth\";q=60;w=60` (requests a minute from one address), \
                             `\"login\";q=10;w=900` or `\"password\";q=10;w=900` (failed \
                             password checks in 15 minutes), `\"hashing\";q=2;\
                             qu=\"concurrent-requests\"` (password checks in flight).",
                        ))
                        .build(),
                )
                .header(
                    "RateLimit",
                    Header::builder()
                        .schema(Some(String::schema()))
                        .description(Some(
                            "Where the client stands in it: `r` left of the quota, `t` \
                             seconds until more, e.g. `\"auth\";r=0;t=12`.",
                        ))
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
        (malformed, badly signed, or a refresh token), `token_expired` or `token_revoked`; \
        in browser mode also `csrf_token_invalid` (a POST, PUT, PATCH or DELETE with the \
        token in a cookie, without its CSRF value in `X-CSRF-TOKEN`).",
        WwwAuthenticate;
    /// 401 of a fresh-token guard.
    FreshTokenRequired = "No valid fresh access token: `authorization_required`, \
        `invalid_token` (malformed, badly signed, or a refresh token), `token_expired`, \
        `token_revoked`, or `fresh_token_required`; in browser mode also \
        `csrf_token_invalid` (the token in a cookie, without its CSRF value in \
        `X-CSRF-TOKEN`).",
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
    /// 422 of the audit log's filters.
    InvalidAuditQuery = "`validation_error`: a filter, `limit` or `cursor` is not valid \
        (under `errors.query`, one entry per parameter).";
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
    TooManyLogins = "`too_many_requests`: too many attempts from this address, too many \
        failed logins for this username, or too many logins for it in flight.",
        RetryAfter;
    /// 429 of the password-change limits.
    TooManyPasswordChecks = "`too_many_requests`: too many attempts from this address, \
        too many wrong current passwords for this user, or a password change of this \
        user in flight already.",
        RetryAfter;
    /// 503 of a database that cannot be reached.
    ServiceUnavailable = "`service_unavailable`: the database cannot be reached.";
}
