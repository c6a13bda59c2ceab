//! Register, log in, refresh, log out, the caller's account and sessions.

use actix_web::cookie::Cookie;
use actix_web::http::{header, StatusCode};
use actix_web::middleware::from_fn;
use actix_web::{
    delete, get, post, put, web, HttpMessage, HttpRequest, HttpResponse, ResponseError,
};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::audit::Origin;
use crate::auth::cookies::TokenSource;
use crate::auth::flows::{self, Issued};
use crate::auth::guards::{Authenticated, Fresh, Refresh};
use crate::auth::rate_limit::limit_by_address;
use crate::auth::sessions::{LogoutScope, Session, SessionView};
use crate::auth::tokens::Delivery;
use crate::db;
use crate::error::responses::{
    BadRequestBody, FreshTokenRequired, InvalidCredentials, InvalidCredentialsBody, InvalidPage,
    PayloadTooLarge, ServiceUnavailable, TokenUserNotFound, TooManyLogins, TooManyPasswordChecks,
    TooManyRequests, Unauthorized,
};
use crate::error::{ApiError, ErrorBody, ValidationErrors};
use crate::input::{self, string, Fields, FromJsonBody, NewPassword, Page, Username, ValidJson};
use crate::metrics::{self, Flow};
use crate::models::user::UserView;
use crate::models::Entity;
use crate::routes::{client_info, not_found, with_total, Message};
use crate::state::AppState;

/// POST /register body.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    username: Username,
    password: NewPassword,
}

impl FromJsonBody for Registration {
    fn from_fields(f: &mut Fields) -> Option<Self> {
        let username = f.required("username", Username::parse);
        let password = f.required("password", NewPassword::parse);
        Some(Registration {
            username: username?,
            password: password?,
        })
    }
}

/// POST /login and /fresh-login body. Any string is accepted: a wrong password of
/// any length is a 401, never a 422 that would tell what the rules are.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// The username (surrounding whitespace is ignored).
    #[schema(example = "alice")]
    username: String,
    /// The password; any string (a wrong one of any length is a 401).
    #[schema(format = Password, example = "correct-horse-battery")]
    password: String,
}

impl From<Credentials> for flows::Credentials {
    fn from(body: Credentials) -> Self {
        flows::Credentials {
            username: body.username,
            password: body.password,
        }
    }
}

impl FromJsonBody for Credentials {
    fn from_fields(f: &mut Fields) -> Option<Self> {
        let username = f.required("username", string);
        let password = f.required("password", string);
        Some(Credentials {
            username: username?.trim().to_owned(),
            password: password?,
        })
    }
}

/// PUT /me/password body.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The caller's password now (a wrong one is a 422 on this field).
    #[schema(format = Password)]
    current_password: String,
    new_password: NewPassword,
}

impl FromJsonBody for PasswordChange {
    fn from_fields(f: &mut Fields) -> Option<Self> {
        let current_password = f.required("current_password", string);
        let new_password = f.required("new_password", NewPassword::parse);
        Some(PasswordChange {
            current_password: current_password?,
            new_password: new_password?,
        })
    }
}

/// A token response (RFC 6749 5.1).
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// The access token (a JWT): fresh from /login and /fresh-login, not from /refresh.
    access_token: String,
    /// The refresh token (a JWT), from /login and /refresh only; spent when used.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    refresh_token: Option<String>,
    /// Always `Bearer`.
    #[schema(pattern = "^Bearer$", example = "Bearer")]
    token_type: &'static str,
    /// The access token's lifetime in seconds.
    #[schema(minimum = 0, example = 900)]
    expires_in: u64,
}

/// A token response to a browser-mode client: the tokens are in HttpOnly cookies, so
/// a script (and so an XSS) never sees them; the body has the CSRF values to repeat.
#[derive(Serialize, ToSchema)]
pub struct CookieTokenResponse {
    /// The access token's CSRF value (also in the `csrf_access_token` cookie): send it in
    /// `X-CSRF-TOKEN` with every POST, PUT, PATCH and DELETE.
    #[schema(format = "uuid")]
    csrf_access_token: String,
    /// The refresh token's CSRF value (also in the `csrf_refresh_token` cookie): send it
    /// in `X-CSRF-TOKEN` with POST /refresh. Not from /fresh-login.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, format = "uuid")]
    csrf_refresh_token: Option<String>,
    /// Always `Bearer`.
    #[schema(pattern = "^Bearer$", example = "Bearer")]
    token_type: &'static str,
    /// The access token's lifetime in seconds (also its cookie's `Max-Age`).
    #[schema(minimum = 0, example = 900)]
    expires_in: u64,
}

/// The answer of /login, /fresh-login and /refresh: the tokens in the body, or, to a
/// browser-mode client, in cookies.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // Describes the two bodies in the document; never built.
pub enum TokenAnswer {
    /// The tokens, for the `Authorization` header.
    Tokens(TokenResponse),
    /// The CSRF values; the tokens are in the cookies.
    Cookies(CookieTokenResponse),
}

/// The query of /login and /fresh-login, as the document shows it.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Describes the parameter in the document; parsed by `asked_delivery`.
pub struct DeliveryQuery {
    /// Where the tokens go when the server reads both headers and cookies: `cookie`
    /// (HttpOnly cookies; the body has the CSRF values) or `body` (the default). A
    /// server that reads only cookies always answers with cookies; one that reads only
    /// headers, with the body.
    #[param(inline, nullable = false)]
    delivery: Option<DeliveryParam>,
}

/// `?delivery=` of /login and /fresh-login.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // Describes the parameter in the document; parsed by `asked_delivery`.
pub enum DeliveryParam {
    /// The tokens in HttpOnly cookies (when the server reads cookies).
    Cookie,
    /// The tokens in the body.
    Body,
}

fn token_response(state: &AppState, issued: Issued, delivery: Delivery) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    // Token responses must not be cached (RFC 6749 5.1).
    response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"));
    let expires_in = state.accounts.tokens.access_ttl_secs();
    match delivery {
        Delivery::Body => response.json(TokenResponse {
            access_token: issued.access.token,
            refresh_token: issued.refresh.map(|r| r.token),
            token_type: "Bearer",
            expires_in,
        }),
        Delivery::Cookies => {
            for cookie in state
                .browser()
                .token_cookies(&issued.access, issued.refresh.as_ref())
            {
                response.cookie(cookie);
            }
            response.json(CookieTokenResponse {
                csrf_access_token: issued.access.csrf.unwrap_or_default(),
                csrf_refresh_token: issued.refresh.and_then(|r| r.csrf),
                token_type: "Bearer",
                expires_in,
            })
        }
    }
}

/// `response` with the browser-mode cookies emptied and expired.
fn clearing_cookies(state: &AppState, mut response: HttpResponse) -> HttpResponse {
    for cookie in state.browser().cleared_cookies() {
        add_cookie(&mut response, &cookie);
    }
    response
}

fn add_cookie(response: &mut HttpResponse, cookie: &Cookie<'_>) {
    if let Err(e) = response.add_cookie(cookie) {
        log::warn!("cannot set the cookie {}: {e}", cookie.name());
    }
}

/// Where the request's token came from, if it had one.
fn token_source(req: &HttpRequest) -> Option<TokenSource> {
    req.extensions().get::<TokenSource>().copied()
}

/// `?delivery=cookie|body` of /login and /fresh-login: a preference, honoured when the
/// server reads both headers and cookies.
fn asked_delivery(req: &HttpRequest) -> Result<Option<Delivery>, ApiError> {
    match input::query_map(req).get("delivery").map(String::as_str) {
        None => Ok(None),
        Some("cookie") => Ok(Some(Delivery::Cookies)),
        Some("body") => Ok(Some(Delivery::Body)),
        Some(_) => {
            let mut errors = ValidationErrors::default();
            errors.query("delivery", "Must be one of: cookie, body.");
            Err(ApiError::Validation(errors))
        }
    }
}

/// POST /register
#[utoipa::path(
    tag = "auth",
    summary = "Create an account",
    description = "Public. Creates a non-admin user; log in with /login afterwards. Rate \
                   limited per client address.",
    // Inline, not a $ref: schemathesis (4.32) signs a user up from this operation's body
    // schema and fails with an internal error when that schema is a bare $ref.
    request_body(content = inline(Registration), content_type = "application/json"),
    responses(
        (status = 201, description = "The user was created.", body = Message,
            example = json!({"message": "User created successfully."})),
        (status = 400, response = BadRequestBody),
        (status = 409, description = "`conflict`: the username is taken.", body = ErrorBody),
        (status = 413, response = PayloadTooLarge),
        (status = 422, description = "`validation_error`: a field is missing, invalid or \
            unknown; `errors.json` lists every problem.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
        (status = 503, response = ServiceUnavailable),
    )
)]
#[post("/register", wrap = "from_fn(limit_by_address)")]
pub async fn register(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: ValidJson<Registration>,
) -> Result<HttpResponse, ApiError> {
    let Registration { username, password } = body.0;
    let origin = Origin::http(None, client_info(&req, &state));
    let result = state
        .accounts
        .register(username, password, false, &origin)
        .await;
    metrics::auth_flow(Flow::Register, &result);
    result?;
    Ok(HttpResponse::Created().json(Message::new("User created successfully.")))
}

/// POST /login: a new session, a fresh access token and a refresh token.
#[utoipa::path(
    tag = "auth",
    summary = "Log in",
    description = "Public. Opens a session and returns a **fresh** access token and a \
                   refresh token. Rate limited per client address and per username.",
    request_body = Credentials,
    params(DeliveryQuery),
    responses(
        (status = 200, description = "Logged in.", body = TokenAnswer,
            headers(
                ("Cache-Control" = String, description = "`no-store`: not to be cached."),
                ("Set-Cookie" = String, description = "Browser mode only: the token \
                    cookies (HttpOnly) and their CSRF cookies."),
            )),
        (status = 400, response = BadRequestBody),
        (status = 401, response = InvalidCredentials),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = InvalidCredentialsBody),
        (status = 429, response = TooManyLogins),
        (status = 503, response = ServiceUnavailable),
    )
)]
#[post("/login", wrap = "from_fn(limit_by_address)")]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: ValidJson<Credentials>,
) -> Result<HttpResponse, ApiError> {
    let delivery = state.browser().login_delivery(asked_delivery(&req)?);
    let client = client_info(&req, &state);
    let issued = state.accounts.login(body.0.into(), client, delivery).await;
    metrics::auth_flow(Flow::Login, &issued);
    let issued = issued?;
    Ok(token_response(&state, issued, delivery))
}

/// POST /fresh-login: a new session with only a fresh access token (for re-confirming
/// the password before a sensitive action).
#[utoipa::path(
    tag = "auth",
    summary = "Get a fresh access token",
    description = "Public. Re-confirms the password before a sensitive action: opens a \
                   session and returns a **fresh** access token only (no refresh token). \
                   Rate limited per client address and per username.",
    request_body = Credentials,
    params(DeliveryQuery),
    responses(
        (status = 200, description = "A fresh access token.", body = TokenAnswer,
            headers(
                ("Cache-Control" = String, description = "`no-store`: not to be cached."),
                ("Set-Cookie" = String, description = "Browser mode only: the token \
                    cookies (HttpOnly) and their CSRF cookies."),
            )),
        (status = 400, response = BadRequestBody),
        (status = 401, response = InvalidCredentials),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = InvalidCredentialsBody),
        (status = 429, response = TooManyLogins),
        (status = 503, response = ServiceUnavailable),
    )
)]
#[post("/fresh-login", wrap = "from_fn(limit_by_address)")]
pub async fn fresh_login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: ValidJson<Credentials>,
) -> Result<HttpResponse, ApiError> {
    let delivery = state.browser().login_delivery(asked_delivery(&req)?);
    let client = client_info(&req, &state);
    let issued = state
        .accounts
        .fresh_login(body.0.into(), client, delivery)
        .await;
    metrics::auth_flow(Flow::FreshLogin, &issued);
    let issued = issued?;
    Ok(token_response(&state, issued, delivery))
}

/// POST /refresh: spends the refresh token, returns a non-fresh access token and the
/// next refresh token. The admin flag is read again from the database.
#[utoipa::path(
    tag = "auth",
    summary = "Rotate the tokens",
    description = "Requires a **refresh** token (not an access token). Spends it and \
                   returns a new non-fresh access token and the next refresh token. A spent \
                   refresh token presented again revokes its whole session. No body. Rate \
                   limited per client address. In browser mode the refresh token may \
                   come in its cookie (sent to this path only), with its CSRF value in \
                   `X-CSRF-TOKEN`; the new tokens then go out in cookies too.",
    responses(
        (status = 200, description = "The new tokens.", body = TokenAnswer,
            headers(
                ("Cache-Control" = String, description = "`no-store`: not to be cached."),
                ("Set-Cookie" = String, description = "Browser mode only: the token \
                    cookies (HttpOnly) and their CSRF cookies."),
            )),
        (status = 401, description = "No valid refresh token: `authorization_required`, \
            `invalid_token` (malformed, badly signed, or an access token), `token_expired`, \
            or `token_revoked` (logged out, or a spent refresh token presented again); in \
            browser mode also `csrf_token_invalid` (the refresh cookie without its CSRF \
            value in `X-CSRF-TOKEN`). A refused refresh cookie is cleared (`Set-Cookie` \
            with `Max-Age=0`), except after `csrf_token_invalid`.",
            body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The RFC 6750 challenge."))),
        (status = 429, response = TooManyRequests),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[post("/refresh", wrap = "from_fn(limit_by_address)")]
pub async fn refresh(
    token: Result<Refresh, ApiError>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let from_cookie = token_source(&req) == Some(TokenSource::Cookie);
    let delivery = if from_cookie {
        Delivery::Cookies
    } else {
        Delivery::Body
    };
    let result = match token {
        Ok(token) => {
            let client = client_info(&req, &state);
            state.accounts.refresh(token.0, delivery, client).await
        }
        Err(e) => Err(e),
    };
    metrics::auth_flow(Flow::Refresh, &result);
    match result {
        Ok(issued) => Ok(token_response(&state, issued, delivery)),
        // A refresh cookie that was refused will be refused again: clear it, so the
        // browser stops sending it. A request refused for its CSRF value may be forged
        // and changes nothing.
        Err(e)
            if from_cookie
                && e.status_code() == StatusCode::UNAUTHORIZED
                && !matches!(e, ApiError::CsrfTokenInvalid(_)) =>
        {
            Ok(clearing_cookies(&state, e.error_response()))
        }
        Err(e) => Err(e),
    }
}

/// POST /logout?scope=local|global|others
#[utoipa::path(
    tag = "auth",
    summary = "Log out",
    description = "Requires an access token. Revokes this session (`scope=local`, the \
                   default), every session of the caller (`global`), or every other one \
                   (`others`): their access and refresh tokens stop working at once. No body. \
                   In browser mode the answer clears the four cookies when this session \
                   is over: ended now (`local`, `global`) or already (a 401 \
                   `token_revoked` or `invalid_token`). A 401 `token_expired` or \
                   `authorization_required` clears nothing: refresh, then log out again.",
    params(
        ("scope" = inline(Option<LogoutScope>), Query, description = "Which sessions to end \
            (default `local`).",
            nullable = false),
    ),
    responses(
        (status = 200, description = "Logged out.", body = Message,
            example = json!({"message": "Successfully logged out"})),
        (status = 401, response = Unauthorized),
        (status = 422, description = "`validation_error`: an unknown `scope` (under \
            `errors.query.scope`).", body = ErrorBody),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[post("/logout")]
pub async fn logout(
    token: Result<Authenticated, ApiError>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let result = end_sessions(token, &req, &state).await;
    // The cookies go when this browser's session is over: ended now (`local`, `global`),
    // or gone already (revoked, or a token that can never work). Not for `others`,
    // which keeps this session; not for an expired or missing access token, whose
    // session may still be live (the client refreshes and logs out again, and clearing
    // the refresh cookie now would leave that session open and unreachable); and not
    // for a request refused for its CSRF value, which may be forged.
    let clear = state.browser().location().cookies()
        && match &result {
            Ok(scope) => *scope != LogoutScope::Others,
            Err(ApiError::TokenRevoked | ApiError::InvalidToken(_)) => true,
            Err(_) => false,
        };
    let response = match result {
        Ok(_) => HttpResponse::Ok().json(Message::new("Successfully logged out")),
        Err(e) if clear => e.error_response(),
        Err(e) => return Err(e),
    };
    Ok(if clear {
        clearing_cookies(&state, response)
    } else {
        response
    })
}

/// Ends the sessions the request's scope names; the scope, when it succeeded.
async fn end_sessions(
    token: Result<Authenticated, ApiError>,
    req: &HttpRequest,
    state: &AppState,
) -> Result<LogoutScope, ApiError> {
    let token = token?;
    let scope = match input::query_map(req).get("scope").map(String::as_str) {
        None | Some("local") => LogoutScope::Local,
        Some("global") => LogoutScope::Global,
        Some("others") => LogoutScope::Others,
        Some(_) => {
            let mut errors = ValidationErrors::default();
            errors.query("scope", "Must be one of: local, global, others.");
            return Err(ApiError::Validation(errors));
        }
    };
    let client = client_info(req, state);
    state.accounts.logout(token.0, scope, client).await?;
    Ok(scope)
}

/// GET /me
#[utoipa::path(
    tag = "auth",
    summary = "The caller's user",
    description = "Requires an access token.",
    responses(
        (status = 200, description = "The caller.", body = UserView),
        (status = 401, response = Unauthorized),
        (status = 404, response = TokenUserNotFound),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[get("/me")]
pub async fn me(
    token: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = token.0.user_id;
    let user = state.reads.users.get(&state.pool, id).await?;
    Ok(HttpResponse::Ok().json(user.ok_or_else(|| not_found(Entity::User)(id))?))
}

/// PUT /me/password: needs the current password and a fresh token; ends every other
/// session of the caller. A wrong current password is a 422 on that field, not a 401,
/// so SPA interceptors do not log the user out.
#[utoipa::path(
    tag = "auth",
    summary = "Change the caller's password",
    description = "Requires a **fresh** access token. Checks the current password, sets the \
                   new one, and revokes every other session of the caller (this one stays). \
                   A wrong current password is a 422 on `current_password`, not a 401. \
                   Rate limited per client address and per user (failed checks, and \
                   checks in flight).",
    request_body = PasswordChange,
    responses(
        (status = 200, description = "Changed.", body = Message,
            example = json!({"message": "Password changed."})),
        (status = 400, response = BadRequestBody),
        (status = 401, response = FreshTokenRequired),
        (status = 404, response = TokenUserNotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 422, description = "`validation_error`: a field is missing, invalid or \
            unknown, or `current_password` is wrong; `errors.json` lists every problem.",
            body = ErrorBody),
        (status = 429, response = TooManyPasswordChecks),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[put("/me/password", wrap = "from_fn(limit_by_address)")]
pub async fn change_password(
    token: Fresh,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: ValidJson<PasswordChange>,
) -> Result<HttpResponse, ApiError> {
    let PasswordChange {
        current_password,
        new_password,
    } = body.0;
    state
        .accounts
        .change_password(
            token.0,
            current_password,
            new_password,
            client_info(&req, &state),
        )
        .await?;
    Ok(HttpResponse::Ok().json(Message::new("Password changed.")))
}

/// GET /sessions
#[utoipa::path(
    tag = "sessions",
    summary = "The caller's live sessions",
    description = "Requires an access token. A page of the caller's sessions that are \
                   neither revoked nor expired, oldest login first; `current` marks the one \
                   of this token. A user holds at most MAX_SESSIONS_PER_USER (default 100): \
                   a login beyond that ends the oldest.",
    params(Page),
    responses(
        (status = 200, description = "A page of sessions.", body = Vec<SessionView>,
            headers(("X-Total-Count" = i64, description = "The number of rows in all pages."))),
        (status = 401, response = Unauthorized),
        (status = 422, response = InvalidPage),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[get("/sessions")]
pub async fn list_sessions(
    token: Authenticated,
    page: Page,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let claims = token.0;
    let id = claims.user_id;
    let (list, total) = db::run(&state.pool, move |conn| {
        Session::list_live(conn, id, page.limit, page.offset)
    })
    .await?;
    let views: Vec<_> = list
        .into_iter()
        .map(|s| s.view(claims.sid.as_deref()))
        .collect();
    Ok(with_total(total).json(views))
}

/// DELETE /sessions/{id}
#[utoipa::path(
    tag = "sessions",
    summary = "End one of the caller's sessions",
    description = "Requires an access token. Revokes that session of the caller: its tokens \
                   stop working at once.",
    params(
        ("id" = String, Path, format = "uuid", description = "The session id (the tokens' `sid`)."),
    ),
    responses(
        (status = 200, description = "Revoked.", body = Message,
            example = json!({"message": "Session revoked."})),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: the caller has no session with this id \
            (or it is not a UUID).", body = ErrorBody),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[delete("/sessions/{id}")]
pub async fn revoke_session(
    token: Authenticated,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let raw = req.match_info().get("id").unwrap_or_default().to_owned();
    let not_found = || ApiError::NotFound(format!("Session {raw} not found."));
    let sid = uuid::Uuid::parse_str(&raw)
        .map_err(|_| not_found())?
        .hyphenated()
        .to_string();
    let revoked = state
        .accounts
        .end_session(token.0, sid, client_info(&req, &state))
        .await?;
    if !revoked {
        return Err(not_found());
    }
    Ok(HttpResponse::Ok().json(Message::new("Session revoked.")))
}
