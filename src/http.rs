//! Cross-cutting HTTP concerns: CORS, request ids, the client's address, the headers
//! every response carries, and the contract's body for errors that actix produces
//! without us.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_cors::{Cors, CorsError};
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{HttpMessage, HttpRequest, ResponseError};

use crate::config::{BrowserSettings, HttpSettings, IpNetwork};
use crate::error::ApiError;

/// The header that carries a request's id, in and out.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A limit's current state (draft-ietf-httpapi-ratelimit-headers-10, 4).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// A limit's policy: its quota and window (draft-ietf-httpapi-ratelimit-headers-10, 3).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// Where a client stands in one limit, told in the `RateLimit-Policy` and `RateLimit`
/// fields of draft-ietf-httpapi-ratelimit-headers-10: Structured Field lists (RFC 9651)
/// whose items are the policy's name with parameters, e.g. `RateLimit-Policy:
/// "auth";q=60;w=60` and `RateLimit: "auth";r=0;t=12` (q: quota, w: window in seconds,
/// r: what is left of the quota, t: seconds until more is available).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitStatus {
    /// The policy's name (a token of ours, sent as a String item).
    pub policy: &'static str,
    /// The quota: requests per window, or requests at once when `window` is none.
    pub quota: u64,
    /// The window in seconds; none for a limit on concurrent requests.
    pub window: Option<u64>,
    /// What is left of the quota.
    pub remaining: u64,
    /// Seconds until more of the quota is available, when known.
    pub reset: Option<u64>,
}

impl RateLimitStatus {
    /// Seconds a refused client should wait: the reset, at least one second (the draft's
    /// section 6 asks that `Retry-After` never be earlier than the reset).
    pub fn retry_after(&self) -> u64 {
        self.reset.unwrap_or(1).max(1)
    }

    /// The `RateLimit-Policy` field value.
    pub fn policy_field(&self) -> String {
        match self.window {
            Some(window) => format!("\"{}\";q={};w={}", self.policy, self.quota, window),
            // The draft's quota unit for a cap on requests in flight (3.1.2).
            None => format!(
                "\"{}\";q={};qu=\"concurrent-requests\"",
                self.policy, self.quota
            ),
        }
    }

    /// The `RateLimit` field value.
    pub fn field(&self) -> String {
        match self.reset {
            Some(reset) => format!("\"{}\";r={};t={}", self.policy, self.remaining, reset),
            None => format!("\"{}\";r={}", self.policy, self.remaining),
        }
    }

    /// Sets both fields on `headers`, unless a limit already set them.
    pub fn set_on(&self, headers: &mut actix_web::http::header::HeaderMap) {
        if headers.contains_key(RATELIMIT) {
            return;
        }
        for (name, value) in [
            (RATELIMIT_POLICY, self.policy_field()),
            (RATELIMIT, self.field()),
        ] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
    }
}

/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/openapi.json";
/// Where Swagger UI is served (its index is `/swagger-ui/`).
pub const SWAGGER_UI_PATH: &str = "/swagger-ui";

/// Whether `path` is the OpenAPI document or Swagger UI: public, the same for everyone,
/// never reading a token.
pub fn is_docs_path(path: &str) -> bool {
    path == OPENAPI_PATH
        || path
            .strip_prefix(SWAGGER_UI_PATH)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The CORS policy: only the configured origins; preflights for requests with an
/// Authorization header and a JSON body succeed for them and fail for any other. In
/// browser mode those origins (and only they: `*` is refused at start-up) may also send
/// credentials, the cookies, and the CSRF headers.
pub fn cors(settings: &HttpSettings, browser: &BrowserSettings) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            REQUEST_ID,
        ])
        .expose_headers([
            HeaderName::from_static("x-total-count"),
            REQUEST_ID,
            header::RETRY_AFTER,
            header::WWW_AUTHENTICATE,
            // A browser client can pace itself only if it may read these.
            RATELIMIT,
            RATELIMIT_POLICY,
        ])
        .max_age(3600);
    if browser.location.cookies() {
        let mut csrf = vec![browser.access_csrf_header.as_str()];
        if browser.refresh_csrf_header != browser.access_csrf_header {
            csrf.push(browser.refresh_csrf_header.as_str());
        }
        for name in csrf {
            match HeaderName::try_from(name) {
                Ok(name) => cors = cors.allowed_header(name),
                Err(e) => log::warn!("CORS: cannot allow the header {name}: {e}"),
            }
        }
        cors = cors.supports_credentials();
    }
    for origin in &settings.cors_allowed_origins {
        cors = if origin == "*" {
            cors.allow_any_origin()
        } else {
            cors.allowed_origin(origin)
        };
    }
    cors
}

fn acceptable(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Middleware: gives every request an id, the client's `X-Request-Id` when it is a
/// short token, else a new UUID, and returns it in `X-Request-Id` (the access log
/// prints it from there). Lines logged while the request is handled carry it in the
/// JSON log format.
pub async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut res = crate::logging::with_request_id(id.clone(), next.call(req)).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(res)
}

/// Middleware, the outermost: the access log, one line per request once its body has
/// been sent (or dropped). The line says who asked (the address [`client_ip`] trusts),
/// what (method, path without the query string, route template), the answer (status,
/// bytes, milliseconds) and the request id; never a header, query string or body, so
/// nothing secret reaches the log. Its record carries each of these as a key-value
/// (target `access`): the text format prints the message, the JSON format the fields.
pub async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    trusted: Arc<[IpNetwork]>,
) -> Result<ServiceResponse<LoggedBody>, actix_web::Error> {
    let started = Instant::now();
    let client =
        client_ip(req.request(), &trusted).map_or_else(|| "-".to_owned(), |ip| ip.to_string());
    let method = req.method().to_string();
    let path = req.path().to_owned();
    let res = next.call(req).await?.map_into_boxed_body();
    let entry = AccessEntry {
        client,
        method,
        path,
        // Known once the router has matched; none for the fallback.
        route: res.request().match_pattern(),
        status: res.status().as_u16(),
        request_id: res
            .headers()
            .get(&REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned(),
        started,
    };
    Ok(res.map_body(|_, body| LoggedBody {
        body,
        sent: 0,
        entry: Some(entry),
    }))
}

/// What the access log knows of a request before its body is sent.
struct AccessEntry {
    client: String,
    method: String,
    path: String,
    route: Option<String>,
    status: u16,
    request_id: String,
    started: Instant,
}

impl AccessEntry {
    fn write(self, bytes: u64) {
        let elapsed_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        // Microseconds are plenty, and keep the JSON number short.
        let duration_ms = (elapsed_ms * 1000.0).round() / 1000.0;
        let AccessEntry {
            client,
            method,
            path,
            route,
            status,
            request_id,
            ..
        } = self;
        log::info!(
            target: "access",
            client_ip = client.as_str(),
            method = method.as_str(),
            route = route.as_deref(),
            path = path.as_str(),
            status = status,
            bytes = bytes,
            duration_ms = duration_ms,
            request_id = request_id.as_str();
            "{client} \"{method} {path}\" {status} {bytes} {elapsed_ms:.6}ms rid={request_id}"
        );
    }
}

/// A response body that writes the access log line when it is dropped, having counted
/// the bytes sent.
pub struct LoggedBody {
    body: BoxBody,
    sent: u64,
    entry: Option<AccessEntry>,
}

impl MessageBody for LoggedBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        let next = Pin::new(&mut this.body).poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &next {
            this.sent += chunk.len() as u64;
        }
        next
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            entry.write(self.sent);
        }
    }
}

/// Middleware, the outermost: counts every request by its route template (never its
/// path), method and status class, and times it.
pub async fn record_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(m) = crate::metrics::metrics() else {
        return next.call(req).await;
    };
    let started = std::time::Instant::now();
    let method = crate::metrics::method_label(req.method().as_str());
    let res = next.call(req).await?;
    let route = res.request().match_pattern();
    m.http_request(
        route.as_deref().unwrap_or(crate::metrics::UNMATCHED),
        method,
        res.status().as_u16(),
        started.elapsed(),
    );
    Ok(res)
}

/// The client's address: the TCP peer, unless the peer is one of `trusted` proxies;
/// then the right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
/// Each proxy appends the address it saw, so the entries left of the last one our
/// proxies wrote are whatever the client sent: believing the left-most one would let
/// any client pick its address and escape the per-address limits (OWASP Authentication
/// Cheat Sheet; MDN X-Forwarded-For, "Security and privacy concerns").
pub fn client_ip(req: &HttpRequest, trusted: &[IpNetwork]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    // Several X-Forwarded-For lines are one list, in order (RFC 9110 5.3).
    let entries: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut nearest = peer;
    for entry in entries.iter().rev() {
        // Something that is not an address was written by the client, not by a proxy
        // of ours: the last trusted hop is the best address there is.
        let Some(ip) = parse_forwarded_ip(entry) else {
            return Some(nearest);
        };
        if !is_trusted(ip) {
            return Some(ip);
        }
        nearest = ip;
    }
    Some(nearest)
}

/// This service's base URL as its clients reach it (for the URLs of the metadata
/// document): `http://` and the `Host` header, or behind a trusted proxy the scheme and
/// host it forwarded (`X-Forwarded-Proto`, `X-Forwarded-Host`). A host that is not a
/// plain host name or address gives way to the address the request came in on.
pub fn public_base_url(req: &HttpRequest, trusted: &[IpNetwork]) -> String {
    let behind_proxy = req
        .peer_addr()
        .is_some_and(|peer| trusted.iter().any(|net| net.contains(peer.ip())));
    let first = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let plain_host = |host: &&str| {
        host.len() <= 255
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    };
    let scheme = match first("x-forwarded-proto").filter(|_| behind_proxy) {
        Some("https") => "https",
        _ => "http",
    };
    let host = first("x-forwarded-host")
        .filter(|_| behind_proxy)
        .or_else(|| first("host"))
        .filter(plain_host)
        .map(str::to_owned)
        .unwrap_or_else(|| req.app_config().host().to_owned());
    format!("{scheme}://{host}")
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`192.0.2.1:4711`,
/// `[2001:db8::1]:4711`).
fn parse_forwarded_ip(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
}

/// Middleware, the innermost of those that see every response: gives the contract's
/// body to error responses actix made without us (an unknown method on a resource, a
/// CORS refusal, and so on), and adds the headers every response carries (see
/// [`security_headers`]).
pub async fn render_bare_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // The inner services answer every failure as a response: the router, the handlers
    // and the extractors through `ApiError`, CORS and the bearer check by design.
    let mut res = next.call(req).await?.map_into_boxed_body();
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let error = match res
            .response()
            .error()
            .and_then(|e| e.as_error::<CorsError>())
        {
            Some(refusal) => cors_refusal(refusal, res.request()),
            None => ApiError::from_status(status),
        };
        let (req, _) = res.into_parts();
        res = ServiceResponse::new(req, error.error_response().map_into_boxed_body());
    }
    security_headers(&mut res);
    Ok(res)
}

/// A CORS refusal in words a front-end developer can act on: which origin, and which
/// setting would allow it.
fn cors_refusal(refusal: &CorsError, req: &HttpRequest) -> ApiError {
    let message = match refusal {
        CorsError::OriginNotAllowed => {
            let origin = req
                .headers()
                .get(header::ORIGIN)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("(none)");
            // The client chose it: a bounded echo, JSON-escaped by the body.
            let origin: String = origin.chars().take(200).collect();
            format!(
                "The origin {origin} is not allowed to call this API from a browser: \
                 add it to the server's CORS_ALLOWED_ORIGINS setting."
            )
        }
        other => format!("CORS request refused: {other}."),
    };
    ApiError::BadRequest(message)
}

/// The headers of every response the application answers.
///
/// - `RateLimit-Policy` and `RateLimit` on the responses of a rate-limited route, from
///   the state its limit left on the request (a refusal sets its own).
///
/// - `X-Content-Type-Options: nosniff`: a browser must not guess an HTML or script type
///   from a JSON body (OWASP HTTP Headers and REST Security Cheat Sheets).
/// - `Cache-Control: no-store` on every API response whose handler chose no caching of
///   its own: most carry data of one user (and `GET /item` differs with a token), and
///   a cache keyed on the URL alone would hand it to the next one (OWASP REST Security
///   Cheat Sheet, "Security headers"). Token responses set it themselves with
///   `Pragma: no-cache` (RFC 6749 5.1). The document and Swagger UI files are the same
///   for everyone and stay cacheable.
fn security_headers<B>(res: &mut ServiceResponse<B>) {
    let limited = res.request().extensions().get::<RateLimitStatus>().copied();
    if let Some(status) = limited {
        status.set_on(res.headers_mut());
    }
    let cacheable = is_docs_path(res.request().path()) && !res.status().is_client_error();
    let headers = res.headers_mut();
    // actix-cors adds the credentials flag to every response; it means something only
    // beside an allowed origin, and is sent only there.
    if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        headers.remove(header::ACCESS_CONTROL_ALLOW_CREDENTIALS);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !cacheable && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}
