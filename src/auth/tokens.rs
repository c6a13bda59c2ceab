//! Claims, minting and the one token decoder. The payload layout is
//! Flask-JWT-Extended 4.x's, so tokens cross between the two services both ways.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::auth::keys::{KeyError, KeySet, Keys};
use crate::config::{is_hmac, TokenSettings};
use crate::error::ApiError;

/// Header parameters a token may carry: `kid` only where keys have ids (public-key
/// algorithms). Anything else (jku, jwk, x5u, x5c, crit...) asks the verifier to trust
/// something we do not offer, so it is refused (RFC 8725 3.1 and 3.10; RFC 7515
/// 4.1.11 for crit).
const ALLOWED_HEADER_PARAMS: [&str; 3] = ["alg", "typ", "kid"];
/// Tokens longer than this are refused before any parsing.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// `type` claim: which endpoint family a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    /// Presented to resource routes.
    Access,
    /// Presented to POST /refresh only.
    Refresh,
}

/// `fresh` claim: a flag, or Flask-JWT-Extended's timed freshness (fresh until a Unix time).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Freshness {
    /// Fresh or not.
    Flag(bool),
    /// Fresh until this Unix time.
    Until(f64),
}

impl Default for Freshness {
    fn default() -> Self {
        Freshness::Flag(false)
    }
}

/// `aud` may be one string or a list (RFC 7519 4.1.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

/// A token's payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id, as a string (Flask-JWT-Extended requires a string identity).
    pub sub: String,
    /// Access or refresh.
    #[serde(rename = "type")]
    pub token_type: TokenType,
    /// Whether the token came straight from a password check.
    #[serde(default)]
    pub fresh: Freshness,
    /// Unique token id.
    pub jti: String,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Not before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Expires at.
    pub exp: i64,
    /// Admin claim; absent means not an admin.
    #[serde(default)]
    pub is_admin: bool,
    /// Session id; absent on tokens minted elsewhere with the same key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Issuer, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    /// The double-submit CSRF value of a token delivered in a cookie (Flask-JWT-Extended's
    /// claim); a cookie-authenticated state-changing request must repeat it in a header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csrf: Option<String>,
    /// `sub` parsed; filled by the decoder.
    #[serde(skip)]
    pub user_id: i64,
}

impl Claims {
    /// Whether the token counts as fresh at `now`.
    pub fn is_fresh_at(&self, now: DateTime<Utc>) -> bool {
        match self.fresh {
            Freshness::Flag(fresh) => fresh,
            Freshness::Until(until) => (now.timestamp() as f64) < until,
        }
    }

    /// Whether the token counts as fresh now.
    pub fn is_fresh(&self) -> bool {
        self.is_fresh_at(Utc::now())
    }

    /// When the token expires.
    pub fn expires_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.exp, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

/// A freshly minted token.
#[derive(Debug, Clone)]
pub struct Minted {
    /// The encoded JWT.
    pub token: String,
    /// Its `jti`.
    pub jti: String,
    /// Its `exp`.
    pub expires_at: DateTime<Utc>,
    /// Its `csrf` claim, when it is delivered in a cookie.
    pub csrf: Option<String>,
}

/// How new tokens reach the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// In the response body, for the `Authorization` header.
    Body,
    /// In HttpOnly cookies; each token then carries a `csrf` claim.
    Cookies,
}

/// What a new token is for.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The user id.
    pub user_id: i64,
    /// The user's admin flag at minting time.
    pub is_admin: bool,
    /// The session, when there is one.
    pub session_id: Option<&'a str>,
    /// Where the tokens go.
    pub delivery: Delivery,
}

/// Public-key tokens verified before: by the SHA-256 of the whole token, the key set's
/// generation they were verified under and their claims.
type Verified = quick_cache::sync::Cache<[u8; 32], (u64, Arc<Claims>)>;

/// Mints and decodes tokens with the keys in use.
pub struct TokenService {
    keys: Arc<Keys>,
    verified: Option<Verified>,
    settings: TokenSettings,
}

impl TokenService {
    /// The service over `settings`' keys. Each key signs and verifies one algorithm
    /// (RFC 8725 2.1, 3.1); the claim rules (exact leeway, nbf checked, iss/aud required
    /// when configured) are in `check_registered_claims`, not jsonwebtoken's defaults
    /// (60 s leeway, no nbf).
    pub fn new(settings: &TokenSettings) -> Result<Self, KeyError> {
        Ok(TokenService {
            keys: Arc::new(Keys::new(settings)?),
            verified: (!is_hmac(settings.algorithm) && settings.verify_cache_size > 0)
                .then(|| Verified::new(settings.verify_cache_size)),
            settings: settings.clone(),
        })
    }

    /// The keys: the set in use, and where they come from.
    pub fn keys(&self) -> &Arc<Keys> {
        &self.keys
    }

    /// Lifetime of access tokens in seconds (`expires_in` of token responses).
    pub fn access_ttl_secs(&self) -> u64 {
        self.settings.access_ttl.as_secs()
    }

    /// Lifetime of refresh tokens.
    pub fn refresh_ttl(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.settings.refresh_ttl.as_secs() as i64)
    }

    /// Grace period for a refresh token's double submit.
    pub fn refresh_reuse_grace(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.settings.refresh_reuse_grace.as_secs() as i64)
    }

    /// Mints an access token.
    pub fn access(&self, subject: Subject<'_>, fresh: bool) -> Result<Minted, ApiError> {
        let jti = uuid::Uuid::new_v4().to_string();
        self.mint(subject, TokenType::Access, fresh, jti)
    }

    /// Mints a refresh token (never fresh) with the jti its session recorded.
    pub fn refresh(&self, subject: Subject<'_>, jti: &str) -> Result<Minted, ApiError> {
        self.mint(subject, TokenType::Refresh, false, jti.to_owned())
    }

    fn mint(
        &self,
        subject: Subject<'_>,
        token_type: TokenType,
        fresh: bool,
        jti: String,
    ) -> Result<Minted, ApiError> {
        let now = Utc::now();
        let ttl = match token_type {
            TokenType::Access => self.settings.access_ttl,
            TokenType::Refresh => self.settings.refresh_ttl,
        };
        let expires_at = now + chrono::Duration::seconds(ttl.as_secs() as i64);
        // A random value per token, as Flask-JWT-Extended mints it (OWASP CSRF Prevention
        // Cheat Sheet: double submit with a cryptographically random value).
        let csrf =
            (subject.delivery == Delivery::Cookies).then(|| uuid::Uuid::new_v4().to_string());
        let claims = Claims {
            sub: subject.user_id.to_string(),
            token_type,
            fresh: Freshness::Flag(fresh),
            jti: jti.clone(),
            iat: Some(now.timestamp()),
            nbf: Some(now.timestamp()),
            exp: expires_at.timestamp(),
            is_admin: subject.is_admin,
            sid: subject.session_id.map(str::to_owned),
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone().map(Audience::One),
            csrf,
            user_id: subject.user_id,
        };
        let keys = self.keys.current();
        let Some(signing) = keys.signing.as_ref() else {
            log::error!(
                "no signing key: the database holds no current key (stores-api keys generate)"
            );
            return Err(ApiError::ServiceUnavailable);
        };
        let token = jsonwebtoken::encode(&signing.header, &claims, &signing.encoding)
            .map_err(|e| ApiError::Internal(format!("token encoding failed: {e}")))?;
        Ok(Minted {
            token,
            jti,
            expires_at,
            csrf: claims.csrf,
        })
    }

    /// Checks a token's header, signature and registered claims, in that order
    /// (a badly signed expired token is invalid, not expired), and parses `sub`.
    /// Type, freshness and revocation are the caller's business.
    pub fn decode(&self, token: &str) -> Result<Claims, ApiError> {
        self.decode_shared(token).map(|claims| (*claims).clone())
    }

    /// [`TokenService::decode`], shared: a public-key token verified before (the same
    /// bytes, under the same keys) is not verified again, but its times and claims are
    /// checked again at every call.
    ///
    /// This runs on every request, so each part is parsed once: `jsonwebtoken::decode`
    /// parses the header twice and the claims twice (once for the caller, once for its
    /// own checks). The signature is still jsonwebtoken's (constant-time HMAC compare);
    /// the claim checks below are its rules with the contract's settings.
    pub fn decode_shared(&self, token: &str) -> Result<Arc<Claims>, ApiError> {
        const MALFORMED: ApiError = ApiError::InvalidToken("The token is malformed.");
        if token.len() > MAX_TOKEN_BYTES {
            return Err(ApiError::InvalidToken("The token is too large."));
        }
        let (message, signature) = token.rsplit_once('.').ok_or(MALFORMED)?;
        let (header, payload) = message.split_once('.').ok_or(MALFORMED)?;
        let keys = self.keys.current();
        let key = Self::key_for(&keys, header)?;
        let now = Utc::now().timestamp();
        let cache = self.verified.as_ref().filter(|_| !is_hmac(key.algorithm));
        let digest: Option<[u8; 32]> = cache.map(|_| sha2::Sha256::digest(token.as_bytes()).into());
        if let (Some(cache), Some(digest)) = (cache, &digest) {
            if let Some((generation, claims)) = cache.get(digest) {
                if generation == keys.generation {
                    self.check_registered_claims(&claims, now)?;
                    return Ok(claims);
                }
            }
        }
        let signed = jsonwebtoken::crypto::verify(
            signature,
            message.as_bytes(),
            &key.decoding,
            key.algorithm,
        )
        .map_err(|e| decode_error(e.kind()))?;
        if !signed {
            return Err(ApiError::InvalidToken("Signature verification failed."));
        }
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| MALFORMED)?;
        let mut claims: Claims = serde_json::from_slice(&payload).map_err(|e| {
            // serde names a missing field this way; exp (and iss/aud below) are required.
            if e.to_string().starts_with("missing field") {
                ApiError::InvalidToken("The token is missing a required claim.")
            } else {
                ApiError::InvalidToken("The token's claims are malformed.")
            }
        })?;
        self.check_registered_claims(&claims, now)?;
        claims.user_id =
            claims
                .sub
                .parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or(ApiError::InvalidToken(
                    "The token's subject is not a user id.",
                ))?;
        if claims
            .sid
            .as_deref()
            .is_some_and(|sid| uuid::Uuid::parse_str(sid).is_err())
        {
            return Err(ApiError::InvalidToken(
                "The token's session id is malformed.",
            ));
        }
        let claims = Arc::new(claims);
        if let (Some(cache), Some(digest)) = (cache, digest) {
            cache.insert(digest, (keys.generation, Arc::clone(&claims)));
        }
        Ok(claims)
    }

    /// The key that verifies a token with this header: the one its `kid` names (public
    /// keys), else the key for tokens without `kid`. The header's algorithm must be that
    /// key's own: a token cannot choose how it is verified (RFC 8725 2.1, 3.1), so an
    /// HS256 token "signed" with a public key's bytes, or one naming another key's
    /// algorithm, is refused. Unsupported parameters and a `typ` other than JWT are
    /// refused too (RFC 8725 3.10).
    fn key_for<'k>(
        keys: &'k KeySet,
        encoded: &str,
    ) -> Result<&'k crate::auth::keys::VerifyingKey, ApiError> {
        const MALFORMED: ApiError = ApiError::InvalidToken("The token is malformed.");
        let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| MALFORMED)?;
        let header: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&bytes).map_err(|_| MALFORMED)?;
        let unsupported = |k: &String| {
            !ALLOWED_HEADER_PARAMS.contains(&k.as_str()) || (k == "kid" && !keys.uses_kid())
        };
        if header.keys().any(unsupported) {
            return Err(ApiError::InvalidToken(
                "The token header carries unsupported parameters.",
            ));
        }
        match header.get("typ") {
            None => {}
            Some(serde_json::Value::String(t)) if t.eq_ignore_ascii_case("JWT") => {}
            Some(_) => return Err(ApiError::InvalidToken("The token type header is not JWT.")),
        }
        let kid = match header.get("kid") {
            None => None,
            Some(serde_json::Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(MALFORMED),
        };
        let alg = match header.get("alg") {
            Some(serde_json::Value::String(alg)) => alg.parse::<Algorithm>().ok(),
            Some(_) => None,
            None => return Err(MALFORMED),
        };
        let key = keys.verifying(kid).ok_or(match kid {
            Some(_) => ApiError::InvalidToken("The token's key is not known."),
            None => ApiError::InvalidToken("The token names no key."),
        })?;
        if alg != Some(key.algorithm) {
            return Err(ApiError::InvalidToken(
                "The token's algorithm is not allowed.",
            ));
        }
        Ok(key)
    }

    /// exp, nbf, iss and aud at `now`, with jsonwebtoken's rules and order: required
    /// claims first, then times (with the exact leeway), then issuer and audience.
    fn check_registered_claims(&self, claims: &Claims, now: i64) -> Result<(), ApiError> {
        const MISSING: ApiError = ApiError::InvalidToken("The token is missing a required claim.");
        let issuer = self.settings.issuer.as_deref();
        let audience = self.settings.audience.as_deref();
        if (issuer.is_some() && claims.iss.is_none())
            || (audience.is_some() && claims.aud.is_none())
        {
            return Err(MISSING);
        }
        // Times before 1970 are not NumericDates we issue or accept.
        if claims.exp < 0 || claims.nbf.is_some_and(|nbf| nbf < 0) {
            return Err(ApiError::InvalidToken("The token's claims are malformed."));
        }
        let leeway = i64::try_from(self.settings.leeway.as_secs()).unwrap_or(i64::MAX);
        if claims.exp < now.saturating_sub(leeway) {
            return Err(ApiError::TokenExpired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(leeway))
        {
            return Err(ApiError::InvalidToken("The token is not yet valid."));
        }
        if let (Some(expected), Some(iss)) = (issuer, claims.iss.as_deref()) {
            if iss != expected {
                return Err(ApiError::InvalidToken(
                    "The token's issuer is not accepted.",
                ));
            }
        }
        let audience_ok = match (audience, &claims.aud) {
            (Some(expected), Some(Audience::One(aud))) => aud == expected,
            (Some(expected), Some(Audience::Many(auds))) => auds.iter().any(|a| a == expected),
            _ => true,
        };
        if !audience_ok {
            return Err(ApiError::InvalidToken(
                "The token's audience is not accepted.",
            ));
        }
        Ok(())
    }
}

fn decode_error(kind: &ErrorKind) -> ApiError {
    match kind {
        ErrorKind::InvalidSignature => ApiError::InvalidToken("Signature verification failed."),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            ApiError::InvalidToken("The token's algorithm is not allowed.")
        }
        _ => ApiError::InvalidToken("The token is malformed."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use jsonwebtoken::{EncodingKey, Header};
    use std::time::Duration;

    const KEY: &str = "unit-test-key-unit-test-key-unit-test-key";

    fn settings() -> TokenSettings {
        TokenSettings {
            secret: Secret::new(KEY),
            algorithm: Algorithm::HS256,
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(3600),
            leeway: Duration::ZERO,
            issuer: None,
            audience: None,
            refresh_reuse_grace: Duration::ZERO,
            max_sessions_per_user: 100,
            generated_key_file: None,
            keys: None,
            jwks_max_age: Duration::from_secs(300),
            verify_cache_size: 0,
        }
    }

    fn subject() -> Subject<'static> {
        Subject {
            user_id: 7,
            is_admin: true,
            session_id: Some("6f1c2d0e-7a4b-4c59-9d7e-2b1f0a3c4d5e"),
            delivery: Delivery::Body,
        }
    }

    /// Signs an arbitrary payload with the test key.
    fn sign(payload: serde_json::Value, alg: Algorithm, key: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(alg),
            &payload,
            &EncodingKey::from_secret(key.as_bytes()),
        )
        .unwrap()
    }

    fn payload(overrides: serde_json::Value) -> serde_json::Value {
        let now = Utc::now().timestamp();
        let mut base = serde_json::json!({
            "sub": "7", "type": "access", "fresh": false, "jti": "j",
            "iat": now, "nbf": now, "exp": now + 60,
        });
        for (k, v) in overrides.as_object().unwrap() {
            if v.is_null() {
                base.as_object_mut().unwrap().remove(k);
            } else {
                base[k] = v.clone();
            }
        }
        base
    }

    #[test]
    fn minted_access_token_round_trips_with_the_flask_layout() {
        let service = TokenService::new(&settings()).unwrap();
        let minted = service.access(subject(), true).unwrap();
        let claims = service.decode(&minted.token).unwrap();
        assert_eq!(claims.sub, "7");
        assert_eq!(claims.user_id, 7);
        assert_eq!(claims.token_type, TokenType::Access);
        assert!(claims.is_fresh());
        assert!(claims.is_admin);
        assert_eq!(claims.jti, minted.jti);
        assert_eq!(claims.sid.as_deref(), subject().session_id);
        assert_eq!(claims.exp - claims.iat.unwrap(), 900);
        assert_eq!(claims.nbf, claims.iat);
    }

    #[test]
    fn refresh_tokens_are_never_fresh() {
        let service = TokenService::new(&settings()).unwrap();
        let claims = service
            .decode(&service.refresh(subject(), "r-1").unwrap().token)
            .unwrap();
        assert_eq!(claims.token_type, TokenType::Refresh);
        assert!(!claims.is_fresh());
    }

    #[test]
    fn expired_token_is_token_expired_and_leeway_is_exact() {
        let service = TokenService::new(&settings()).unwrap();
        let now = Utc::now().timestamp();
        let token = sign(
            payload(serde_json::json!({"exp": now - 5})),
            Algorithm::HS256,
            KEY,
        );
        assert!(matches!(
            service.decode(&token),
            Err(ApiError::TokenExpired)
        ));
        let mut lenient = settings();
        lenient.leeway = Duration::from_secs(30);
        assert!(TokenService::new(&lenient).unwrap().decode(&token).is_ok());
    }

    #[test]
    fn badly_signed_expired_token_is_invalid_not_expired() {
        let service = TokenService::new(&settings()).unwrap();
        let now = Utc::now().timestamp();
        let token = sign(
            payload(serde_json::json!({"exp": now - 5})),
            Algorithm::HS256,
            "another-key-another-key-another-key!",
        );
        assert!(matches!(
            service.decode(&token),
            Err(ApiError::InvalidToken("Signature verification failed."))
        ));
    }

    #[test]
    fn other_algorithms_and_none_are_refused() {
        let service = TokenService::new(&settings()).unwrap();
        let hs512 = sign(payload(serde_json::json!({})), Algorithm::HS512, KEY);
        assert!(matches!(
            service.decode(&hs512),
            Err(ApiError::InvalidToken(_))
        ));
        let body = URL_SAFE_NO_PAD.encode(payload(serde_json::json!({})).to_string());
        let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), body);
        assert!(matches!(
            service.decode(&none),
            Err(ApiError::InvalidToken(_))
        ));
    }

    #[test]
    fn future_nbf_is_refused() {
        let service = TokenService::new(&settings()).unwrap();
        let now = Utc::now().timestamp();
        let token = sign(
            payload(serde_json::json!({"nbf": now + 120})),
            Algorithm::HS256,
            KEY,
        );
        assert!(matches!(
            service.decode(&token),
            Err(ApiError::InvalidToken("The token is not yet valid."))
        ));
    }

    #[test]
    fn missing_exp_is_refused() {
        let service = TokenService::new(&settings()).unwrap();
        let token = sign(
            payload(serde_json::json!({"exp": null})),
            Algorithm::HS256,
            KEY,
        );
        assert!(matches!(
            service.decode(&token),
            Err(ApiError::InvalidToken(_))
        ));
    }

    #[test]
    fn injected_header_parameters_are_refused() {
        let service = TokenService::new(&settings()).unwrap();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("../../etc/passwd".into());
        let token = jsonwebtoken::encode(
            &header,
            &payload(serde_json::json!({})),
            &EncodingKey::from_secret(KEY.as_bytes()),
        )
        .unwrap();
        assert!(matches!(
            service.decode(&token),
            Err(ApiError::InvalidToken(_))
        ));
    }

    #[test]
    fn flask_style_tokens_are_accepted() {
        let service = TokenService::new(&settings()).unwrap();
        let until = (Utc::now().timestamp() + 300) as f64 + 0.5;
        let token = sign(
            payload(serde_json::json!({"fresh": until, "csrf": "x"})),
            Algorithm::HS256,
            KEY,
        );
        let claims = service.decode(&token).unwrap();
        assert!(claims.is_fresh());
        assert!(!claims.is_admin, "no is_admin claim means not an admin");
        assert!(claims.sid.is_none());
        let stale = sign(
            payload(serde_json::json!({"fresh": 1000.0})),
            Algorithm::HS256,
            KEY,
        );
        assert!(!service.decode(&stale).unwrap().is_fresh());
    }

    #[test]
    fn subject_must_be_a_user_id() {
        let service = TokenService::new(&settings()).unwrap();
        for sub in [serde_json::json!("alice"), serde_json::json!("-1")] {
            let token = sign(
                payload(serde_json::json!({"sub": sub})),
                Algorithm::HS256,
                KEY,
            );
            assert!(matches!(
                service.decode(&token),
                Err(ApiError::InvalidToken(_))
            ));
        }
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        let mut configured = settings();
        configured.issuer = Some("stores".into());
        configured.audience = Some("apps".into());
        let service = TokenService::new(&configured).unwrap();
        let good = service.access(subject(), false).unwrap();
        assert!(service.decode(&good.token).is_ok());
        let foreign = sign(
            payload(serde_json::json!({"iss": "other", "aud": "apps"})),
            Algorithm::HS256,
            KEY,
        );
        assert!(matches!(
            service.decode(&foreign),
            Err(ApiError::InvalidToken(_))
        ));
        let no_aud = sign(
            payload(serde_json::json!({"iss": "stores"})),
            Algorithm::HS256,
            KEY,
        );
        assert!(matches!(
            service.decode(&no_aud),
            Err(ApiError::InvalidToken(_))
        ));
    }

    fn claims_at(exp: i64, nbf: Option<i64>) -> Claims {
        Claims {
            sub: "7".into(),
            token_type: TokenType::Access,
            fresh: Freshness::Flag(false),
            jti: "j".into(),
            iat: None,
            nbf,
            exp,
            is_admin: false,
            sid: None,
            iss: None,
            aud: None,
            csrf: None,
            user_id: 0,
        }
    }

    #[test]
    fn time_checks_are_exact_to_the_second() {
        let service = TokenService::new(&settings()).unwrap();
        let now = 1_700_000_000;
        let check = |claims: Claims| service.check_registered_claims(&claims, now);
        assert!(
            check(claims_at(now, Some(now))).is_ok(),
            "valid through its exp second"
        );
        assert!(matches!(
            check(claims_at(now - 1, None)),
            Err(ApiError::TokenExpired)
        ));
        assert!(matches!(
            check(claims_at(now + 60, Some(now + 1))),
            Err(ApiError::InvalidToken("The token is not yet valid."))
        ));
        assert!(matches!(
            check(claims_at(-1, None)),
            Err(ApiError::InvalidToken("The token's claims are malformed."))
        ));
        let mut lenient = settings();
        lenient.leeway = Duration::from_secs(5);
        let service = TokenService::new(&lenient).unwrap();
        let check = |claims: Claims| service.check_registered_claims(&claims, now);
        assert!(check(claims_at(now - 5, Some(now + 5))).is_ok());
        assert!(matches!(
            check(claims_at(now - 6, None)),
            Err(ApiError::TokenExpired)
        ));
    }

    #[test]
    fn an_audience_list_must_name_ours() {
        let mut configured = settings();
        configured.audience = Some("apps".into());
        let service = TokenService::new(&configured).unwrap();
        let listed = sign(
            payload(serde_json::json!({"aud": ["web", "apps"]})),
            Algorithm::HS256,
            KEY,
        );
        assert!(service.decode(&listed).is_ok());
        let others = sign(
            payload(serde_json::json!({"aud": ["web"]})),
            Algorithm::HS256,
            KEY,
        );
        assert!(matches!(
            service.decode(&others),
            Err(ApiError::InvalidToken(
                "The token's audience is not accepted."
            ))
        ));
    }

    #[test]
    fn a_missing_exp_is_named_and_a_tampered_payload_is_badly_signed() {
        let service = TokenService::new(&settings()).unwrap();
        let no_exp = sign(
            payload(serde_json::json!({"exp": null})),
            Algorithm::HS256,
            KEY,
        );
        assert!(matches!(
            service.decode(&no_exp),
            Err(ApiError::InvalidToken(
                "The token is missing a required claim."
            ))
        ));
        let minted = service.access(subject(), false).unwrap().token;
        let mut parts: Vec<&str> = minted.split('.').collect();
        let forged =
            URL_SAFE_NO_PAD.encode(payload(serde_json::json!({"is_admin": true})).to_string());
        parts[1] = &forged;
        assert!(matches!(
            service.decode(&parts.join(".")),
            Err(ApiError::InvalidToken("Signature verification failed."))
        ));
    }

    #[test]
    fn garbage_is_malformed() {
        let service = TokenService::new(&settings()).unwrap();
        for token in ["", "abc", "a.b.c", "!!!.???.###", "eyJhbGciOiJIUzI1NiJ9..."] {
            assert!(
                matches!(service.decode(token), Err(ApiError::InvalidToken(_))),
                "{token}"
            );
        }
        assert!(matches!(
            service.decode(&"a".repeat(100_000)),
            Err(ApiError::InvalidToken(_))
        ));
    }
}
