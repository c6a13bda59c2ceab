//! What other services need to verify this service's tokens without its secrets: the
//! JWKS (RFC 7517) and the authorization server metadata (RFC 8414).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{get, web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::public_base_url;
use crate::state::AppState;

/// Where the JWKS is served.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// GET /.well-known/jwks.json's answer.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // Describes the body in the document; the body is the key set's own.
pub struct Jwks {
    /// The public keys (`kty`, `crv`/`x`/`y` or `n`/`e`, `kid`, `alg`, `use: sig`);
    /// empty with an HMAC algorithm, whose secret is never published.
    #[schema(value_type = Vec<Object>)]
    keys: Vec<serde_json::Value>,
}

/// GET /.well-known/jwks.json
#[utoipa::path(
    tag = "keys",
    summary = "The public keys that verify tokens",
    description = "Public. The JWK set (RFC 7517) of every key whose tokens may still be \
                   live: the key that signs, the next one (published before it signs), and \
                   retired ones until their last token expires. Each key has its `kid` \
                   (the RFC 7638 thumbprint tokens carry in their header), `alg` and `use: \
                   sig`; never a private or HMAC member. Empty with HS256. Cacheable for \
                   `JWKS_MAX_AGE` seconds; `If-None-Match` with the `ETag` gives 304.",
    responses(
        (status = 200, description = "The key set.", body = Jwks,
            headers(
                ("Cache-Control" = String, description = "`public, max-age=JWKS_MAX_AGE`."),
                ("ETag" = String, description = "The set's version; send it back in \
                    `If-None-Match`."),
            ),
            example = json!({"keys": [{"kty": "OKP", "crv": "Ed25519",
                "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
                "kid": "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k",
                "alg": "EdDSA", "use": "sig"}]})),
        (status = 304, description = "The set has not changed since the `ETag` sent in \
            `If-None-Match`."),
    )
)]
#[get("/.well-known/jwks.json")]
pub async fn jwks(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let keys = state.accounts.tokens.keys().current();
    let (body, etag) = keys.jwks();
    let cache = format!(
        "public, max-age={}",
        state.settings.tokens.jwks_max_age.as_secs()
    );
    let matches = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == etag
        });
    let mut response = if matches {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::ETAG, etag.to_owned()));
    if matches {
        response.finish()
    } else {
        response
            .insert_header((
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ))
            .body(body.to_owned())
    }
}

/// GET /.well-known/oauth-authorization-server's answer (RFC 8414 2).
#[derive(Serialize, ToSchema)]
pub struct Metadata {
    /// `JWT_ISSUER` when set, else this service's base URL.
    issuer: String,
    /// Where the public keys are.
    jwks_uri: String,
    /// RFC 7662 introspection.
    introspection_endpoint: String,
    /// How introspection callers authenticate: HTTP Basic with a configured client.
    introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    /// RFC 7009 revocation.
    revocation_endpoint: String,
    /// Revocation needs no client authentication: holding the token is the proof.
    revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    /// No OAuth authorization endpoint: logins are `POST /login`. (Required by RFC 8414.)
    response_types_supported: Vec<&'static str>,
    /// The algorithms tokens are signed with.
    token_signing_alg_values_supported: Vec<String>,
}

/// GET /.well-known/oauth-authorization-server
#[utoipa::path(
    tag = "keys",
    summary = "Authorization server metadata",
    description = "Public. RFC 8414 metadata: the issuer, the JWKS URI, and the \
                   introspection and revocation endpoints with how to call them.",
    responses(
        (status = 200, description = "The metadata.", body = Metadata),
    )
)]
#[get("/.well-known/oauth-authorization-server")]
pub async fn metadata(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let base = public_base_url(&req, &state.settings.http.trusted_proxies);
    let tokens = &state.settings.tokens;
    HttpResponse::Ok().json(Metadata {
        issuer: tokens.issuer.clone().unwrap_or_else(|| base.clone()),
        jwks_uri: format!("{base}{JWKS_PATH}"),
        introspection_endpoint: format!("{base}/introspect"),
        introspection_endpoint_auth_methods_supported: vec!["client_secret_basic"],
        revocation_endpoint: format!("{base}/revoke"),
        revocation_endpoint_auth_methods_supported: vec!["none"],
        response_types_supported: Vec::new(),
        token_signing_alg_values_supported: vec![tokens.algorithm_name()],
    })
}
