//! The sections of [`Settings`](super::Settings), each read by its own function.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::Algorithm;

use super::reader::Reader;
use super::values::{DatabaseUrl, IpNetwork, Secret};
use super::AppEnv;

pub(super) const DEV_KEY_FILE: &str = "jwt_secret.key";
/// The development key that encrypts the private keys kept in the database.
pub(super) const DEV_KEY_ENCRYPTION_FILE: &str = "jwt_key_encryption.key";
/// RFC 7518 3.2: an HMAC key must be at least as long as the hash output (32 bytes for HS256).
pub(super) const MIN_KEY_BYTES: usize = 32;
/// OWASP Password Storage Cheat Sheet: bcrypt work factor 10 or more.
const MIN_PRODUCTION_BCRYPT_COST: u32 = 10;

/// The database and its pool.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `DATABASE_URL`: PostgreSQL or a SQLite file.
    pub url: DatabaseUrl,
    /// Connections in the pool, one database thread each.
    pub pool_size: u32,
    /// How long a query may wait to start before the request answers 503.
    pub pool_timeout: Duration,
    /// How long start-up retries a database that refuses or does not answer.
    pub startup_timeout: Duration,
}

/// Where the keys of a public-key algorithm come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// `JWT_PRIVATE_KEY` (and optionally `JWT_PUBLIC_KEY`): PEM, fixed for the process.
    Pem {
        /// The private key, PEM.
        private: Secret,
        /// The public key that verifies tokens without `kid`, PEM.
        public: Option<String>,
    },
    /// Keys generated and kept in the database, encrypted under this 32-byte key
    /// (`JWT_KEY_ENCRYPTION_KEY`), rotated with `stores-api keys`.
    Database {
        /// The key-encryption key.
        encryption_key: Secret,
        /// Set when the encryption key was generated under `data_dir` (development).
        generated_file: Option<PathBuf>,
        /// The public key that verifies tokens without `kid` (`JWT_PUBLIC_KEY`), PEM.
        public: Option<String>,
    },
}

/// Minting and checking tokens.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// The HMAC key (`JWT_SECRET_KEY`); empty with a public-key algorithm.
    pub secret: Secret,
    /// The algorithm new keys are made for: HMAC, or the public-key one (each key then
    /// verifies its own algorithm only).
    pub algorithm: Algorithm,
    /// With a public-key algorithm, where its keys come from.
    pub keys: Option<KeySource>,
    /// `Cache-Control: max-age` of the JWKS, and how long a `next` key is published
    /// before `keys rotate` may make it sign.
    pub jwks_max_age: Duration,
    /// Verified public-key tokens remembered (a signature check costs tens of µs).
    pub verify_cache_size: usize,
    /// Lifetime of access tokens.
    pub access_ttl: Duration,
    /// Lifetime of refresh tokens (and so of an idle session).
    pub refresh_ttl: Duration,
    /// Clock skew allowed on exp and nbf.
    pub leeway: Duration,
    /// `iss` minted and required, when set.
    pub issuer: Option<String>,
    /// `aud` minted and required, when set.
    pub audience: Option<String>,
    /// How long a just-spent refresh token may be presented again without counting as reuse.
    pub refresh_reuse_grace: Duration,
    /// Live sessions one user may hold; a login beyond them ends the oldest.
    pub max_sessions_per_user: u32,
    /// Set when the key was generated or read from `data_dir` (development only).
    pub generated_key_file: Option<PathBuf>,
}

/// bcrypt and the pool of threads that runs it.
#[derive(Debug, Clone)]
pub struct PasswordSettings {
    /// bcrypt work factor.
    pub bcrypt_cost: u32,
    /// Threads that hash passwords (`PASSWORD_HASH_THREADS`; 0 in the files: one per core).
    pub hash_threads: usize,
    /// How many of them run at normal priority; the others run only on otherwise idle
    /// cores (`PASSWORD_HASH_RESERVED_THREADS`; at most `hash_threads`).
    pub hash_reserved_threads: usize,
    /// Hashing jobs that may wait for a thread before requests wait for a place.
    pub hash_queue: usize,
    /// How long a request beyond the queue waits for a place before it is shed.
    pub hash_wait: Duration,
}

/// Brute-force limits of the auth endpoints.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// Requests per minute per client address to each auth endpoint (0: off).
    pub auth_per_minute: u32,
    /// Failed password checks per username (logins) or user (password changes) in 15
    /// minutes before 429 (0: off).
    pub login_failures: u32,
    /// Password checks in flight per user before 429 (0: no limit).
    pub hashing_per_user: u32,
    /// Keys each in-memory limit map holds at most.
    pub max_entries: usize,
}

/// The listener and what every request meets before a handler.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Address to bind.
    pub host: String,
    /// Port to bind; 0 picks a free one (tests).
    pub port: u16,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Origins allowed by CORS; `["*"]` allows any.
    pub cors_allowed_origins: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` is believed (empty: none).
    pub trusted_proxies: Vec<IpNetwork>,
    /// `HOST:PORT` of the Prometheus metrics listener; `None` turns it off.
    pub metrics_addr: Option<String>,
}

/// Where a request's token is read from (`JWT_TOKEN_LOCATION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenLocation {
    /// The `Authorization: Bearer` header only.
    Headers,
    /// The browser-mode cookies only.
    Cookies,
    /// Both; a request with an `Authorization` header is judged by the header alone.
    Both,
}

impl TokenLocation {
    /// Whether the `Authorization` header is read.
    pub fn headers(self) -> bool {
        matches!(self, TokenLocation::Headers | TokenLocation::Both)
    }

    /// Whether the cookies are read (and may be set).
    pub fn cookies(self) -> bool {
        matches!(self, TokenLocation::Cookies | TokenLocation::Both)
    }
}

/// The `SameSite` attribute of the browser-mode cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Sent on same-site requests and top-level cross-site navigations with a safe method.
    Lax,
    /// Sent on same-site requests only.
    Strict,
    /// Sent on cross-site requests too (requires `Secure`).
    None,
}

/// Browser mode: the token location, the cookies' names and attributes, and the CSRF
/// headers (Flask-JWT-Extended's names and defaults, so either side reads the other's).
#[derive(Debug, Clone)]
pub struct BrowserSettings {
    /// Header, cookies, or both.
    pub location: TokenLocation,
    /// The access token's cookie (HttpOnly, `Path=/`).
    pub access_cookie: String,
    /// The refresh token's cookie (HttpOnly, `Path=/refresh`).
    pub refresh_cookie: String,
    /// The access token's CSRF value, readable by scripts (`Path=/`).
    pub access_csrf_cookie: String,
    /// The refresh token's CSRF value, readable by scripts (`Path=/`).
    pub refresh_csrf_cookie: String,
    /// The header a cookie-authenticated state-changing request repeats the access
    /// token's CSRF value in (lower case).
    pub access_csrf_header: String,
    /// The header a cookie-authenticated refresh repeats the refresh token's CSRF value in
    /// (lower case).
    pub refresh_csrf_header: String,
    /// The cookies' `Secure` attribute.
    pub secure: bool,
    /// The cookies' `SameSite` attribute.
    pub same_site: SameSite,
}

/// A service allowed to call `POST /introspect` with HTTP Basic (`INTROSPECTION_CLIENTS`).
#[derive(Debug, Clone)]
pub struct IntrospectionClient {
    /// Its client id.
    pub id: String,
    /// Its secret.
    pub secret: Secret,
}

/// The revocation follower and the sweep of expired entries.
#[derive(Debug, Clone)]
pub struct RevocationSettings {
    /// How often each instance reads the revocations of the others.
    pub poll_interval: Duration,
    /// Interval of the expired-entry sweep.
    pub prune_interval: Duration,
    /// How long audit events are kept (`AUDIT_RETENTION_DAYS`).
    pub audit_retention: Duration,
}

/// The administrator created or promoted at start-up.
#[derive(Debug, Clone)]
pub struct AdminBootstrap {
    /// Username of the admin.
    pub username: String,
    /// Password used only when the user does not exist yet.
    pub password: Secret,
}

pub(super) fn database(r: &mut Reader, data_dir: &Path) -> Option<DatabaseSettings> {
    let value = r.string("database_url");
    let url = if value.trim().is_empty() {
        Some(DatabaseUrl::Sqlite(data_dir.join("stores.db")))
    } else {
        DatabaseUrl::parse(&value)
            .map_err(|e| r.errors.push(e))
            .ok()
    };
    let pool_size = r.ranged::<u32>("database_pool_size", 1, 1000);
    let pool_timeout = r.seconds("database_pool_timeout", 1);
    let startup_timeout = r.seconds("database_startup_timeout", 0);
    Some(DatabaseSettings {
        url: url?,
        pool_size,
        pool_timeout,
        startup_timeout,
    })
}

impl TokenSettings {
    /// `JWT_ALGORITHM` as written in the documentation (`HS256`, `EdDSA`, ...).
    pub fn algorithm_name(&self) -> String {
        format!("{:?}", self.algorithm)
    }
}

pub(super) fn tokens(r: &mut Reader, env: AppEnv, data_dir: &Path) -> Option<TokenSettings> {
    let algorithm = match r
        .string("jwt_algorithm")
        .trim()
        .to_ascii_uppercase()
        .as_str()
    {
        "HS256" => Some(Algorithm::HS256),
        "HS384" => Some(Algorithm::HS384),
        "HS512" => Some(Algorithm::HS512),
        "EDDSA" | "ED25519" => Some(Algorithm::EdDSA),
        "ES256" => Some(Algorithm::ES256),
        "RS256" => Some(Algorithm::RS256),
        other => {
            r.errors.push(format!(
                "JWT_ALGORITHM: '{other}' is not supported (use HS256, HS384, HS512, EdDSA, \
                 ES256 or RS256)"
            ));
            None
        }
    };
    let hmac = algorithm.is_none_or(is_hmac);
    let access_ttl = r.seconds("jwt_access_token_expires", 1);
    let refresh_ttl = r.seconds("jwt_refresh_token_expires", 1);
    let leeway = r.seconds("jwt_decode_leeway", 0);
    let refresh_reuse_grace = r.seconds("jwt_refresh_reuse_grace", 0);
    let max_sessions_per_user = r.ranged::<u32>("max_sessions_per_user", 1, 100_000);
    let issuer = r.optional_string("jwt_issuer");
    let audience = r.optional_string("jwt_audience");
    let jwks_max_age = r.seconds("jwks_max_age", 0);
    let verify_cache_size = r.ranged::<usize>("jwt_verify_cache_size", 0, 10_000_000);
    let mut generated_key_file = None;
    let secret = match r.optional_string("jwt_secret_key") {
        Some(key) => Some(Secret::new(key)),
        None if !hmac => Some(Secret::new(String::new())),
        None if env == AppEnv::Production => {
            r.errors
                .push("JWT_SECRET_KEY: required when APP_ENV=production".to_string());
            None
        }
        None => match development_key(data_dir, DEV_KEY_FILE, "JWT_SECRET_KEY") {
            Ok((key, path)) => {
                generated_key_file = Some(path);
                Some(key)
            }
            Err(e) => {
                r.errors.push(e);
                None
            }
        },
    };
    let keys = if hmac {
        None
    } else {
        key_source(r, env, data_dir)
    };
    if let Some(key) = secret.as_ref().filter(|_| hmac) {
        if key.expose().len() < MIN_KEY_BYTES {
            r.errors.push(format!(
                "JWT_SECRET_KEY: must be at least {MIN_KEY_BYTES} bytes long (RFC 7518 3.2)"
            ));
        }
    }
    Some(TokenSettings {
        secret: secret?,
        algorithm: algorithm?,
        keys,
        jwks_max_age,
        verify_cache_size,
        access_ttl,
        refresh_ttl,
        leeway,
        issuer,
        audience,
        refresh_reuse_grace,
        max_sessions_per_user,
        generated_key_file,
    })
}

/// Whether `algorithm` is an HMAC one (a shared secret, no key ids, no JWKS).
pub fn is_hmac(algorithm: Algorithm) -> bool {
    matches!(
        algorithm,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    )
}

/// The keys of a public-key algorithm: PEM from the environment, or the database's,
/// encrypted under `JWT_KEY_ENCRYPTION_KEY` (generated into `data_dir` in development,
/// required in production).
fn key_source(r: &mut Reader, env: AppEnv, data_dir: &Path) -> Option<KeySource> {
    let public = match r.optional_string("jwt_public_key") {
        Some(value) => Some(
            pem_or_path("JWT_PUBLIC_KEY", &value)
                .map_err(|e| r.errors.push(e))
                .ok()?,
        ),
        None => None,
    };
    if let Some(value) = r.optional_string("jwt_private_key") {
        let private = pem_or_path("JWT_PRIVATE_KEY", &value)
            .map_err(|e| r.errors.push(e))
            .ok()?;
        return Some(KeySource::Pem {
            private: Secret::new(private),
            public,
        });
    }
    let (encryption_key, generated_file) = match r.optional_string("jwt_key_encryption_key") {
        Some(value) => (Secret::new(value), None),
        None if env == AppEnv::Production => {
            r.errors.push(
                "JWT_KEY_ENCRYPTION_KEY: required when APP_ENV=production and the signing keys \
                 are kept in the database (set it to 32 random bytes as 64 hex characters, or \
                 set JWT_PRIVATE_KEY)"
                    .to_string(),
            );
            return None;
        }
        None => {
            match development_key(data_dir, DEV_KEY_ENCRYPTION_FILE, "JWT_KEY_ENCRYPTION_KEY") {
                Ok((key, path)) => (key, Some(path)),
                Err(e) => {
                    r.errors.push(e);
                    return None;
                }
            }
        }
    };
    if key_bytes(encryption_key.expose()).is_none() {
        r.errors.push(
            "JWT_KEY_ENCRYPTION_KEY: must be 32 bytes, as 64 hex characters or in base64"
                .to_string(),
        );
        return None;
    }
    Some(KeySource::Database {
        encryption_key,
        generated_file,
        public,
    })
}

/// A 32-byte key written as 64 hex characters or in base64 (standard or URL-safe,
/// padded or not).
pub fn key_bytes(text: &str) -> Option<[u8; 32]> {
    use base64::Engine;
    let text = text.trim();
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?
    } else {
        let engines = [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::URL_SAFE,
        ];
        engines.iter().find_map(|engine| {
            engine
                .decode(text)
                .or_else(|_| {
                    engine.decode(format!("{text}{}", "=".repeat((4 - text.len() % 4) % 4)))
                })
                .ok()
        })?
    };
    bytes.try_into().ok()
}

/// A PEM given inline, or the path of a file that holds one (Flask-JWT-Extended's
/// settings take the PEM itself; a path keeps it out of the environment).
fn pem_or_path(setting: &str, value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.starts_with("-----BEGIN") {
        // An environment variable may carry the line breaks as "\n".
        return Ok(value.replace("\\n", "\n"));
    }
    let text = std::fs::read_to_string(value)
        .map_err(|e| format!("{setting}: neither a PEM nor a readable file ({value}: {e})"))?;
    if text.trim_start().starts_with("-----BEGIN") {
        Ok(text)
    } else {
        Err(format!("{setting}: {value} does not hold a PEM key"))
    }
}

pub(super) fn passwords(r: &mut Reader, env: AppEnv) -> PasswordSettings {
    let errors_before_cost = r.errors.len();
    let bcrypt_cost = r.ranged::<u32>("bcrypt_cost", 4, 31);
    // Only a valid cost is judged again, so a bad one gets a single line.
    if env == AppEnv::Production
        && r.errors.len() == errors_before_cost
        && bcrypt_cost < MIN_PRODUCTION_BCRYPT_COST
    {
        r.errors.push(format!(
            "BCRYPT_COST: production requires at least {MIN_PRODUCTION_BCRYPT_COST}"
        ));
    }
    let hash_threads = match r.ranged::<usize>("password_hash_threads", 0, 1024) {
        0 => default_hashing_threads(),
        n => n,
    };
    let hash_reserved_threads = r
        .ranged::<usize>("password_hash_reserved_threads", 0, 1024)
        .min(hash_threads);
    PasswordSettings {
        bcrypt_cost,
        hash_threads,
        hash_reserved_threads,
        hash_queue: r.ranged::<usize>("password_hash_queue", 0, 100_000),
        hash_wait: r.fractional_seconds("password_hash_wait", 0.0, 10.0),
    }
}

/// One per core: at rest logins use the whole machine, and since these threads run at
/// idle priority, a login storm still leaves the cores to token-checked requests.
fn default_hashing_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub(super) fn limits(r: &mut Reader) -> LimitSettings {
    LimitSettings {
        auth_per_minute: r.parse::<u32>("auth_rate_limit_per_minute"),
        login_failures: r.parse::<u32>("login_failure_limit"),
        hashing_per_user: r.ranged::<u32>("password_hash_per_user", 0, 1000),
        // Fewer keys than one burst of legitimate clients would make the limits forget
        // too soon; more would let a flood of keys take hundreds of megabytes.
        max_entries: r.ranged::<usize>("rate_limit_max_entries", 100, 10_000_000),
    }
}

pub(super) fn http(r: &mut Reader) -> HttpSettings {
    let host = r.string("host");
    let port = r.parse::<u16>("port");
    let max_body_bytes = r.ranged::<usize>("max_body_bytes", 256, 64 * 1024 * 1024);
    let cors_allowed_origins = r
        .string("cors_allowed_origins")
        .split(',')
        .map(|o| o.trim().trim_end_matches('/').to_owned())
        .filter(|o| !o.is_empty())
        .collect::<Vec<_>>();
    for origin in &cors_allowed_origins {
        let valid = origin == "*"
            || url::Url::parse(origin)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !valid {
            r.errors.push(format!(
                "CORS_ALLOWED_ORIGINS: '{origin}' is not an origin like https://app.example.com"
            ));
        }
    }
    let trusted_proxies = r
        .string("trusted_proxies")
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .filter_map(|p| {
            IpNetwork::parse(p)
                .map_err(|e| r.errors.push(format!("TRUSTED_PROXIES: {e}")))
                .ok()
        })
        .collect::<Vec<_>>();
    let metrics_addr = r.string("metrics_addr").trim().to_owned();
    let metrics_addr = (!metrics_addr.is_empty()).then_some(metrics_addr);
    if let Some(addr) = &metrics_addr {
        let port = addr.rsplit_once(':').map(|(_, port)| port.parse::<u16>());
        if !matches!(port, Some(Ok(_))) {
            r.errors.push(format!(
                "METRICS_ADDR: '{addr}' is not HOST:PORT like 127.0.0.1:9464 (empty turns metrics off)"
            ));
        }
    }
    HttpSettings {
        host,
        port,
        max_body_bytes,
        cors_allowed_origins,
        trusted_proxies,
        metrics_addr,
    }
}

pub(super) fn browser(r: &mut Reader, env: AppEnv) -> BrowserSettings {
    let location = r.string("jwt_token_location");
    let mut parts: Vec<String> = location
        .split(',')
        .map(|p| p.trim().to_ascii_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    parts.sort();
    parts.dedup();
    let location = match parts.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["headers"] => TokenLocation::Headers,
        ["cookies"] => TokenLocation::Cookies,
        ["cookies", "headers"] => TokenLocation::Both,
        _ => {
            r.errors.push(format!(
                "JWT_TOKEN_LOCATION: '{location}' is not one of headers, cookies, headers,cookies"
            ));
            TokenLocation::Headers
        }
    };
    let secure = match r.optional_string("jwt_cookie_secure") {
        // Development serves plain http on localhost, where a Secure cookie would not
        // come back from every browser.
        None => env != AppEnv::Development,
        Some(value) => match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => {
                r.errors
                    .push(format!("JWT_COOKIE_SECURE: '{value}' is not true or false"));
                true
            }
        },
    };
    let same_site = match r
        .string("jwt_cookie_samesite")
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "lax" => SameSite::Lax,
        "strict" => SameSite::Strict,
        "none" => SameSite::None,
        other => {
            r.errors.push(format!(
                "JWT_COOKIE_SAMESITE: '{other}' is not one of Lax, Strict, None"
            ));
            SameSite::Lax
        }
    };
    // Browsers drop a SameSite=None cookie that is not Secure (RFC 6265bis 5.6.19).
    if same_site == SameSite::None && !secure && location.cookies() {
        r.errors.push(
            "JWT_COOKIE_SAMESITE: None requires JWT_COOKIE_SECURE=true (browsers refuse such \
             cookies otherwise)"
                .to_string(),
        );
    }
    let cookies_on = location.cookies();
    let mut cookie = |key: &str, path: &str| -> String {
        let name = r.string(key).trim().to_owned();
        let upper = key.to_ascii_uppercase();
        if name.is_empty() || !name.bytes().all(is_cookie_name_byte) {
            r.errors.push(format!(
                "{upper}: '{name}' is not a cookie name (letters, digits and !#$%&'*+-.^_`|~)"
            ));
        } else if !cookies_on {
            // Names that are never used are only checked for being names.
        } else if name.starts_with("__Host-") && path != "/" {
            // RFC 6265bis 4.1.3.2: a __Host- cookie must have Path=/.
            r.errors.push(format!(
                "{upper}: a __Host- cookie must have Path=/, and this one's path is {path}: \
                 use the __Secure- prefix"
            ));
        } else if (name.starts_with("__Host-") || name.starts_with("__Secure-")) && !secure {
            r.errors.push(format!(
                "{upper}: the __Host- and __Secure- prefixes require JWT_COOKIE_SECURE=true"
            ));
        }
        name
    };
    let access_cookie = cookie("jwt_access_cookie_name", "/");
    let refresh_cookie = cookie(
        "jwt_refresh_cookie_name",
        crate::config::REFRESH_COOKIE_PATH,
    );
    let access_csrf_cookie = cookie("jwt_access_csrf_cookie_name", "/");
    let refresh_csrf_cookie = cookie("jwt_refresh_csrf_cookie_name", "/");
    let mut header = |key: &str| -> String {
        let name = r.string(key).trim().to_ascii_lowercase();
        if name.is_empty() || !name.bytes().all(is_cookie_name_byte) {
            r.errors.push(format!(
                "{}: '{name}' is not a header name",
                key.to_ascii_uppercase()
            ));
        }
        name
    };
    let access_csrf_header = header("jwt_access_csrf_header_name");
    let refresh_csrf_header = header("jwt_refresh_csrf_header_name");
    BrowserSettings {
        location,
        access_cookie,
        refresh_cookie,
        access_csrf_cookie,
        refresh_csrf_cookie,
        access_csrf_header,
        refresh_csrf_header,
        secure,
        same_site,
    }
}

/// A `tchar` of RFC 9110 5.6.2: what cookie names (RFC 6265 4.1.1) and header names are
/// made of.
fn is_cookie_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// OWASP ASVS 2.9 / 6.2: shared secrets long enough that guessing them is hopeless.
const MIN_CLIENT_SECRET_BYTES: usize = 16;

pub(super) fn introspection_clients(r: &mut Reader) -> Vec<IntrospectionClient> {
    let mut clients = Vec::new();
    for pair in r
        .string("introspection_clients")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let Some((id, secret)) = pair.split_once(':') else {
            // The pair is not printed: it may hold a secret with a mistyped separator.
            r.errors.push(format!(
                "INTROSPECTION_CLIENTS: entry {} is not id:secret",
                clients.len() + 1
            ));
            continue;
        };
        let id = id.trim();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_graphic()) {
            r.errors.push(format!(
                "INTROSPECTION_CLIENTS: entry {} has an empty or unprintable client id",
                clients.len() + 1
            ));
        } else if secret.len() < MIN_CLIENT_SECRET_BYTES {
            r.errors.push(format!(
                "INTROSPECTION_CLIENTS: the secret of client '{id}' is shorter than \
                 {MIN_CLIENT_SECRET_BYTES} bytes"
            ));
        } else if clients.iter().any(|c: &IntrospectionClient| c.id == id) {
            r.errors.push(format!(
                "INTROSPECTION_CLIENTS: client '{id}' is listed twice"
            ));
        }
        clients.push(IntrospectionClient {
            id: id.to_owned(),
            secret: Secret::new(secret),
        });
    }
    clients
}

pub(super) fn revocation(r: &mut Reader) -> RevocationSettings {
    RevocationSettings {
        // A logout must hold on every instance within one second.
        poll_interval: r.fractional_seconds("revocation_poll_interval", 0.01, 1.0),
        prune_interval: r.seconds("prune_interval", 1),
        audit_retention: Duration::from_secs(
            u64::from(r.ranged::<u32>("audit_retention_days", 1, 36_500)) * 24 * 3600,
        ),
    }
}

pub(super) fn admin(r: &mut Reader) -> Option<AdminBootstrap> {
    match (
        r.optional_string("admin_username"),
        r.optional_string("admin_password"),
    ) {
        (Some(username), Some(password)) => Some(AdminBootstrap {
            username,
            password: Secret::new(password),
        }),
        (None, None) => None,
        _ => {
            r.errors
                .push("ADMIN_USERNAME and ADMIN_PASSWORD: set both or neither".to_string());
            None
        }
    }
}

/// Reads the development key from `data_dir`, generating it (0600) the first time. A
/// key file that group or others may open is refused: whoever reads it can mint any
/// token (OWASP Secrets Management Cheat Sheet: restrict access to secrets).
fn development_key(
    data_dir: &Path,
    file: &str,
    setting: &str,
) -> Result<(Secret, PathBuf), String> {
    let path = data_dir.join(file);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let key = existing.trim().to_string();
        if !key.is_empty() {
            refuse_if_shared(&path, setting)?;
            return Ok((Secret::new(key), path));
        }
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| format!("{setting}: cannot generate a development key ({e})"))?;
    let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("DATA_DIR: cannot create {} ({e})", data_dir.display()))?;
    let cannot_write =
        |e: std::io::Error| format!("{setting}: cannot write {} ({e})", path.display());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path).map_err(cannot_write)?;
    // The mode given to open is only used for a new file, and the umask may take bits
    // from it: set it outright (an empty file left by an earlier run keeps its own).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(cannot_write)?;
    }
    file.write_all(key.as_bytes()).map_err(cannot_write)?;
    Ok((Secret::new(key), path))
}

/// Refuses the key file at `path` when group or others have any access to it.
#[cfg(unix)]
fn refuse_if_shared(path: &Path, setting: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("{setting}: cannot read {} ({e})", path.display()))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    let path = path.display();
    Err(format!(
        "{setting}: the development key file {path} has mode {mode:04o}, open to group \
         or others: run `chmod 600 {path}` (or set {setting})"
    ))
}

/// Elsewhere the file's access is the operating system's ACLs' business.
#[cfg(not(unix))]
fn refuse_if_shared(_path: &Path, _setting: &str) -> Result<(), String> {
    Ok(())
}
