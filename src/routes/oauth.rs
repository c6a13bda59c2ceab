//! Token introspection (RFC 7662) and revocation (RFC 7009): how other services ask
//! whether a token is active, and how a token's holder revokes it.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::middleware::from_fn;
use actix_web::{post, web, FromRequest, HttpRequest, HttpResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Serialize;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use crate::auth::guards::Admin;
use crate::auth::rate_limit::limit_by_address;
use crate::config::IntrospectionClient;
use crate::error::responses::{
    AdminRequired, PayloadTooLarge, ServiceUnavailable, TooManyRequests,
};
use crate::error::{ApiError, ErrorBody};
use crate::routes::Message;
use crate::state::AppState;

/// The form body of POST /introspect and POST /revoke.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the form in the document; read by `form_token`.
pub struct TokenForm {
    /// The token (an access or refresh token).
    #[schema(min_length = 1, pattern = "\\S")]
    token: String,
    /// `access_token` or `refresh_token`; a hint only, ignored (the token says what it is).
    #[schema(nullable = false)]
    token_type_hint: Option<String>,
}

/// An active token's answer: `active` and the token's claims under their own names.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // Describes the body in the document; built from the claims.
pub struct Introspection {
    /// Whether the token is active now; the claims follow only when it is.
    active: bool,
    /// The user id, as in the token.
    #[schema(nullable = false)]
    sub: Option<String>,
    /// `access` or `refresh`.
    #[serde(rename = "type")]
    #[schema(nullable = false)]
    token_type: Option<String>,
    /// Whether the token is fresh (a bool, or Flask-JWT-Extended's timed freshness).
    #[schema(nullable = false, value_type = Value, required = false)]
    fresh: Option<serde_json::Value>,
    /// The admin claim.
    #[schema(nullable = false)]
    is_admin: Option<bool>,
    /// The token's id.
    #[schema(nullable = false)]
    jti: Option<String>,
    /// Its session.
    #[schema(nullable = false)]
    sid: Option<String>,
    /// Issued at, not before, expires (Unix seconds).
    #[schema(nullable = false)]
    iat: Option<i64>,
    /// Not before.
    #[schema(nullable = false)]
    nbf: Option<i64>,
    /// Expires.
    #[schema(nullable = false)]
    exp: Option<i64>,
}

/// The `token` of a form body (`application/x-www-form-urlencoded`, as RFC 7662 and
/// RFC 7009 require).
fn form_token(req: &HttpRequest, body: &[u8]) -> Result<String, ApiError> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(ApiError::BadRequest(
            "Send the token as a form: Content-Type application/x-www-form-urlencoded, body \
             token=..."
                .into(),
        ));
    }
    url::form_urlencoded::parse(body)
        .find(|(name, _)| name == "token")
        .map(|(_, token)| token.trim().to_owned())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| ApiError::BadRequest("The form has no `token` parameter.".into()))
}

/// The HTTP Basic credentials of the request, if it sends them.
fn basic_credentials(req: &HttpRequest) -> Option<(String, String)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// Whether `id` and `secret` are one of `clients`', every client compared in constant
/// time, so the answer's timing tells neither which ids exist nor how much matched.
fn known_client(clients: &[IntrospectionClient], id: &str, secret: &str) -> bool {
    let mut found = subtle::Choice::from(0);
    for client in clients {
        found |= client.id.as_bytes().ct_eq(id.as_bytes())
            & client.secret.expose().as_bytes().ct_eq(secret.as_bytes());
    }
    found.into()
}

/// POST /introspect
#[utoipa::path(
    tag = "keys",
    summary = "Is this token active?",
    description = "Requires a configured client's HTTP Basic credentials \
                   (`INTROSPECTION_CLIENTS`) or an **admin** access token. RFC 7662: \
                   `{\"active\": false}` for a token that is expired, revoked, spent (a \
                   refresh token already rotated), badly signed or garbage; else `{\"active\": \
                   true}` with its claims. Introspecting a spent refresh token is not a \
                   reuse: nothing changes.",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Whether the token is active, and its claims when it \
            is.", body = Introspection,
            example = json!({"active": true, "sub": "2", "type": "access", "fresh": true,
                "is_admin": false, "jti": "91734b04-13f7-4913-806c-cd3b197b3e2d",
                "sid": "d7076e06-b622-4082-b6ba-89a2a10228ba", "iat": 1796291372,
                "nbf": 1796291372, "exp": 1796292272})),
        (status = 400, description = "`bad_request`: not a form, or no `token` parameter.",
            body = ErrorBody),
        (status = 401, description = "`invalid_credentials` (unknown client or wrong secret), \
            or no valid access token: `authorization_required`, `invalid_token`, \
            `token_expired`, `token_revoked`.", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The RFC 6750 challenge."))),
        (status = 403, response = AdminRequired),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("client_basic" = []), ("bearer" = []))
)]
#[post("/introspect")]
pub async fn introspect(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    match basic_credentials(&req) {
        Some((id, secret)) => {
            if !known_client(&state.settings.introspection_clients, &id, &secret) {
                return Err(ApiError::InvalidCredentials);
            }
        }
        None => {
            Admin::from_request(&req, &mut Payload::None).await?;
        }
    }
    let token = form_token(&req, &body)?;
    let Some(claims) = state.accounts.introspect(&token).await? else {
        return Ok(HttpResponse::Ok().json(serde_json::json!({"active": false})));
    };
    let mut answer = match serde_json::to_value(&*claims) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => return Err(ApiError::Internal("claims are not an object".into())),
    };
    // The CSRF value is for the browser that holds the cookie, not for other services.
    answer.remove("csrf");
    answer.insert("active".into(), serde_json::Value::Bool(true));
    Ok(HttpResponse::Ok().json(answer))
}

/// POST /revoke
#[utoipa::path(
    tag = "keys",
    summary = "Revoke a token",
    description = "Public. Holding the token is the proof. RFC 7009: revokes the token's \
                   session (access or refresh token; for a token without a session, the \
                   token itself) and answers 200 whatever the token was (unknown, garbage, \
                   expired or already revoked), so the answer tells nothing. Rate limited per \
                   client address.",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Done (or nothing to do).", body = Message,
            example = json!({"message": "The token is no longer active."})),
        (status = 400, description = "`bad_request`: not a form, or no `token` parameter.",
            body = ErrorBody),
        (status = 413, response = PayloadTooLarge),
        (status = 429, response = TooManyRequests),
        (status = 503, response = ServiceUnavailable),
    )
)]
#[post("/revoke", wrap = "from_fn(limit_by_address)")]
pub async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let token = form_token(&req, &body)?;
    let client = crate::routes::client_info(&req, &state);
    state.accounts.revoke_token(&token, client).await?;
    Ok(HttpResponse::Ok().json(Message::new("The token is no longer active.")))
}
