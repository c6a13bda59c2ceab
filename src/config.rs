//! Settings: the compiled-in `config/default.toml`, then `config/default.toml` and
//! `config/<APP_ENV>.toml` from the working directory, then environment variables.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use crate::auth::password::default_hashing_threads;

const DEFAULTS: &str = include_str!("../config/default.toml");
const DEV_KEY_FILE: &str = "jwt_secret.key";
/// RFC 7518 3.2: an HMAC key must be at least as long as the hash output (32 bytes for HS256).
const MIN_KEY_BYTES: usize = 32;
/// OWASP Password Storage Cheat Sheet: bcrypt work factor 10 or more.
const MIN_PRODUCTION_BCRYPT_COST: u32 = 10;

/// Which set of defaults and checks applies (`APP_ENV`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    /// A developer's machine: a missing key is generated and kept under `data_dir`.
    Development,
    /// The test suite and the interop check.
    Test,
    /// Real use: the key is mandatory and cheap hashing is refused.
    Production,
}

impl AppEnv {
    /// The name used for `config/<name>.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            AppEnv::Development => "development",
            AppEnv::Test => "test",
            AppEnv::Production => "production",
        }
    }
}

impl FromStr for AppEnv {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "development" | "dev" | "local" => Ok(AppEnv::Development),
            "test" => Ok(AppEnv::Test),
            "production" | "prod" => Ok(AppEnv::Production),
            other => Err(format!(
                "APP_ENV: unknown environment '{other}' (use development, test or production)"
            )),
        }
    }
}

/// A secret string that never shows up in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself; call sites are the only places it is read.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A `postgres://` URL, kept whole for the driver.
    Postgres(Secret),
    /// A SQLite file.
    Sqlite(PathBuf),
}

impl DatabaseUrl {
    /// Parses `DATABASE_URL`: postgres(ql):// is PostgreSQL, anything else a SQLite path.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            let url = url::Url::parse(raw)
                .map_err(|e| format!("DATABASE_URL: not a valid PostgreSQL URL ({e})"))?;
            if url.host_str().unwrap_or("").is_empty() {
                return Err("DATABASE_URL: the PostgreSQL URL names no host".into());
            }
            return Ok(DatabaseUrl::Postgres(Secret::new(raw)));
        }
        let path = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
            .or_else(|| raw.strip_prefix("file:"))
            .unwrap_or(raw);
        if let Some((scheme, _)) = path.split_once("://") {
            return Err(format!(
                "DATABASE_URL: unsupported scheme '{scheme}' (use postgres:// or a SQLite file path)"
            ));
        }
        if path.is_empty() {
            return Err("DATABASE_URL: the SQLite path is empty".into());
        }
        if path == ":memory:" || path.contains("mode=memory") {
            return Err(
                "DATABASE_URL: an in-memory SQLite database is not shared between pooled connections; use a file"
                    .into(),
            );
        }
        Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
    }

    /// The backend's name, for logs.
    pub fn backend(&self) -> &'static str {
        match self {
            DatabaseUrl::Postgres(_) => "postgresql",
            DatabaseUrl::Sqlite(_) => "sqlite",
        }
    }

    /// Where the database is, without any password: safe to log.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Postgres(secret) => match url::Url::parse(secret.expose()) {
                Ok(mut url) => {
                    if url.password().is_some() {
                        // Only fails for URLs that cannot have a password, checked above.
                        let _ = url.set_password(Some("***"));
                    }
                    url.to_string()
                }
                Err(_) => "postgres://(unparsable)".into(),
            },
            DatabaseUrl::Sqlite(path) => path.display().to_string(),
        }
    }
}

/// An IP address or a CIDR block (`10.0.0.0/8`, `fd00::/8`), as in `TRUSTED_PROXIES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork(ipnet::IpNet);

impl IpNetwork {
    /// Parses `192.0.2.7`, `192.0.2.0/24`, `2001:db8::1` or `2001:db8::/32`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if let Ok(address) = raw.parse::<IpAddr>() {
            return Ok(IpNetwork(ipnet::IpNet::from(address)));
        }
        match raw.split_once('/') {
            Some((address, _)) if address.parse::<IpAddr>().is_ok() => {
                raw.parse::<ipnet::IpNet>().map(IpNetwork).map_err(|_| {
                    let max = if address.contains(':') { 128 } else { 32 };
                    format!("'{raw}' has an invalid prefix length (0 to {max})")
                })
            }
            _ => Err(format!("'{raw}' is not an IP address or CIDR block")),
        }
    }

    /// Whether `ip` is in the block. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, as a
    /// dual-stack listener reports IPv4 peers) counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.contains(&ip)
    }
}

/// Everything about minting and checking tokens.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// The HMAC key (`JWT_SECRET_KEY`).
    pub secret: Secret,
    /// The one algorithm minted and accepted.
    pub algorithm: Algorithm,
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
}

/// The administrator created or promoted at start-up.
#[derive(Debug, Clone)]
pub struct AdminBootstrap {
    /// Username of the admin.
    pub username: String,
    /// Password used only when the user does not exist yet.
    pub password: Secret,
}

/// The service's whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `APP_ENV`.
    pub env: AppEnv,
    /// Address to bind.
    pub host: String,
    /// Port to bind; 0 picks a free one (tests).
    pub port: u16,
    /// The database.
    pub database_url: DatabaseUrl,
    /// Connections in the pool.
    pub database_pool_size: u32,
    /// How long a request waits for a connection.
    pub database_pool_timeout: Duration,
    /// How long start-up waits for the database.
    pub database_startup_timeout: Duration,
    /// Where development files live.
    pub data_dir: PathBuf,
    /// Token settings.
    pub jwt: JwtSettings,
    /// bcrypt work factor.
    pub bcrypt_cost: u32,
    /// Threads that hash passwords (`PASSWORD_HASH_THREADS`; 0 in the files: half the cores).
    pub password_hash_threads: usize,
    /// Password hashing jobs that may wait before logins are shed with 503.
    pub password_hash_queue: usize,
    /// How long a request beyond the queue waits for a place before it is shed.
    pub password_hash_wait: Duration,
    /// Requests per minute per client to the auth endpoints (0: off).
    pub auth_rate_limit_per_minute: u32,
    /// Failed logins per username in 15 minutes before 429 (0: off).
    pub login_failure_limit: u32,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Interval of the expired-entry sweep.
    pub prune_interval: Duration,
    /// How often each instance reads the revocations of the others.
    pub revocation_poll_interval: Duration,
    /// Origins allowed by CORS; `["*"]` allows any.
    pub cors_allowed_origins: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` is believed (empty: none).
    pub trusted_proxies: Vec<IpNetwork>,
    /// Admin to create or promote at start-up.
    pub admin: Option<AdminBootstrap>,
    /// Set when the key was generated or read from `data_dir` (development only).
    pub generated_key_file: Option<PathBuf>,
}

/// Every setting that could not be accepted, one line each.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  {}", .0.join("\n  "))]
pub struct ConfigError(pub Vec<String>);

impl Settings {
    /// Loads the settings from the files and this process's environment.
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_from(std::env::vars().collect())
    }

    /// Loads the settings with `env` standing in for the process environment (tests use it).
    pub fn load_from(env: HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut errors = Vec::new();
        let app_env = env
            .get("APP_ENV")
            .map(|v| v.parse::<AppEnv>())
            .transpose()
            .unwrap_or_else(|e| {
                errors.push(e);
                None
            })
            .unwrap_or(AppEnv::Development);
        let config_dir = env
            .get("CONFIG_DIR")
            .cloned()
            .unwrap_or_else(|| "config".to_string());
        let dir = Path::new(&config_dir);
        let raw = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .add_source(config::File::from(dir.join("default.toml")).required(false))
            .add_source(config::File::from(dir.join(app_env.as_str())).required(false))
            .add_source(
                config::Environment::default()
                    .source(Some(env.into_iter().collect()))
                    .ignore_empty(true),
            )
            .build()
            .map_err(|e| ConfigError(vec![format!("configuration files: {e}")]))?;
        let mut r = Reader {
            raw: &raw,
            errors: &mut errors,
        };

        let host = r.string("host");
        let port = r.parse::<u16>("port");
        let data_dir = PathBuf::from(r.string("data_dir"));
        let database_url = {
            let value = r.string("database_url");
            if value.trim().is_empty() {
                Some(DatabaseUrl::Sqlite(data_dir.join("stores.db")))
            } else {
                DatabaseUrl::parse(&value)
                    .map_err(|e| r.errors.push(e))
                    .ok()
            }
        };
        let database_pool_size = r.ranged::<u32>("database_pool_size", 1, 1000);
        let database_pool_timeout = r.seconds("database_pool_timeout", 1);
        let database_startup_timeout = r.seconds("database_startup_timeout", 0);
        let algorithm = match r.string("jwt_algorithm").to_ascii_uppercase().as_str() {
            "HS256" => Some(Algorithm::HS256),
            "HS384" => Some(Algorithm::HS384),
            "HS512" => Some(Algorithm::HS512),
            other => {
                r.errors.push(format!(
                    "JWT_ALGORITHM: '{other}' is not supported (use HS256, HS384 or HS512)"
                ));
                None
            }
        };
        let access_ttl = r.seconds("jwt_access_token_expires", 1);
        let refresh_ttl = r.seconds("jwt_refresh_token_expires", 1);
        let leeway = r.seconds("jwt_decode_leeway", 0);
        let refresh_reuse_grace = r.seconds("jwt_refresh_reuse_grace", 0);
        let issuer = r.optional_string("jwt_issuer");
        let audience = r.optional_string("jwt_audience");
        let errors_before_cost = r.errors.len();
        let bcrypt_cost = r.ranged::<u32>("bcrypt_cost", 4, 31);
        // Only a valid cost is judged again, so a bad one gets a single line.
        if app_env == AppEnv::Production
            && r.errors.len() == errors_before_cost
            && bcrypt_cost < MIN_PRODUCTION_BCRYPT_COST
        {
            r.errors.push(format!(
                "BCRYPT_COST: production requires at least {MIN_PRODUCTION_BCRYPT_COST}"
            ));
        }
        let password_hash_threads = match r.ranged::<usize>("password_hash_threads", 0, 1024) {
            0 => default_hashing_threads(),
            n => n,
        };
        let password_hash_queue = r.ranged::<usize>("password_hash_queue", 0, 100_000);
        let password_hash_wait = r.fractional_seconds("password_hash_wait", 0.0, 10.0);
        let auth_rate_limit_per_minute = r.parse::<u32>("auth_rate_limit_per_minute");
        let login_failure_limit = r.parse::<u32>("login_failure_limit");
        let max_body_bytes = r.ranged::<usize>("max_body_bytes", 256, 64 * 1024 * 1024);
        let prune_interval = r.seconds("prune_interval", 1);
        // API.md: a logout holds on every instance within one second.
        let revocation_poll_interval = r.fractional_seconds("revocation_poll_interval", 0.01, 1.0);
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
        let admin = match (
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
        };

        let mut generated_key_file = None;
        let secret = match r.optional_string("jwt_secret_key") {
            Some(key) => Some(Secret::new(key)),
            None if app_env == AppEnv::Production => {
                r.errors
                    .push("JWT_SECRET_KEY: required when APP_ENV=production".to_string());
                None
            }
            None => match development_key(&data_dir) {
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
        if let Some(key) = &secret {
            if key.expose().len() < MIN_KEY_BYTES {
                errors.push(format!(
                    "JWT_SECRET_KEY: must be at least {MIN_KEY_BYTES} bytes long (RFC 7518 3.2)"
                ));
            }
        }

        // Every bad setting has its line by now; the placeholders below are never used.
        let (true, Some(database_url), Some(algorithm), Some(secret)) =
            (errors.is_empty(), database_url, algorithm, secret)
        else {
            return Err(ConfigError(errors));
        };
        Ok(Settings {
            env: app_env,
            host,
            port,
            database_url,
            database_pool_size,
            database_pool_timeout,
            database_startup_timeout,
            data_dir,
            jwt: JwtSettings {
                secret,
                algorithm,
                access_ttl,
                refresh_ttl,
                leeway,
                issuer,
                audience,
                refresh_reuse_grace,
            },
            bcrypt_cost,
            password_hash_threads,
            password_hash_queue,
            password_hash_wait,
            auth_rate_limit_per_minute,
            login_failure_limit,
            max_body_bytes,
            prune_interval,
            revocation_poll_interval,
            cors_allowed_origins,
            trusted_proxies,
            admin,
            generated_key_file,
        })
    }
}

/// Reads raw values and records one error line per bad setting.
struct Reader<'a> {
    raw: &'a config::Config,
    errors: &'a mut Vec<String>,
}

impl Reader<'_> {
    fn string(&mut self, key: &str) -> String {
        self.raw.get_string(key).unwrap_or_default()
    }

    fn optional_string(&mut self, key: &str) -> Option<String> {
        Some(self.string(key)).filter(|v| !v.trim().is_empty())
    }

    fn checked<T: FromStr>(&mut self, key: &str) -> Option<T> {
        let value = self.string(key);
        let parsed = value.trim().parse::<T>().ok();
        if parsed.is_none() {
            self.errors.push(format!(
                "{}: '{}' is not a valid non-negative whole number",
                key.to_ascii_uppercase(),
                value
            ));
        }
        parsed
    }

    /// The parsed value, or a placeholder once the error line is recorded.
    fn parse<T: FromStr + Default>(&mut self, key: &str) -> T {
        self.checked(key).unwrap_or_default()
    }

    /// Like `parse`, within `min..=max`.
    fn ranged<T: FromStr + PartialOrd + fmt::Display + Copy + Default>(
        &mut self,
        key: &str,
        min: T,
        max: T,
    ) -> T {
        let Some(value) = self.checked::<T>(key) else {
            return T::default();
        };
        if value < min || value > max {
            self.errors.push(format!(
                "{}: {} is out of range ({} to {})",
                key.to_ascii_uppercase(),
                value,
                min,
                max
            ));
            return T::default();
        }
        value
    }

    /// Seconds with a fraction (`0.25`), within `min..=max`.
    fn fractional_seconds(&mut self, key: &str, min: f64, max: f64) -> Duration {
        let value = self.string(key);
        match value.trim().parse::<f64>() {
            Ok(secs) if (min..=max).contains(&secs) => Duration::from_secs_f64(secs),
            Ok(_) => {
                self.errors.push(format!(
                    "{}: {} is out of range ({} to {} seconds)",
                    key.to_ascii_uppercase(),
                    value.trim(),
                    min,
                    max
                ));
                Duration::from_secs_f64(max)
            }
            Err(_) => {
                self.errors.push(format!(
                    "{}: '{}' is not a number of seconds (like 0.25)",
                    key.to_ascii_uppercase(),
                    value
                ));
                Duration::from_secs_f64(max)
            }
        }
    }

    /// A whole number of seconds, at least `min`.
    fn seconds(&mut self, key: &str, min: u64) -> Duration {
        Duration::from_secs(self.ranged::<u64>(key, min, 10 * 365 * 24 * 3600))
    }
}

/// Reads the development key from `data_dir`, generating it (0600) the first time.
fn development_key(data_dir: &Path) -> Result<(Secret, PathBuf), String> {
    let path = data_dir.join(DEV_KEY_FILE);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let key = existing.trim().to_string();
        if !key.is_empty() {
            return Ok((Secret::new(key), path));
        }
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| format!("JWT_SECRET_KEY: cannot generate a development key ({e})"))?;
    let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("DATA_DIR: cannot create {} ({e})", data_dir.display()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&path)
        .map_err(|e| format!("JWT_SECRET_KEY: cannot write {} ({e})", path.display()))?;
    file.write_all(key.as_bytes())
        .map_err(|e| format!("JWT_SECRET_KEY: cannot write {} ({e})", path.display()))?;
    Ok((Secret::new(key), path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn production_without_a_key_is_refused() {
        let err = Settings::load_from(env(&[("APP_ENV", "production")])).unwrap_err();
        assert!(err.0.iter().any(|l| l.starts_with("JWT_SECRET_KEY")));
    }

    #[test]
    fn every_bad_setting_gets_its_own_line() {
        let err = Settings::load_from(env(&[
            ("APP_ENV", "production"),
            ("JWT_SECRET_KEY", "short"),
            ("DATABASE_URL", "postgres://[bad"),
            ("BCRYPT_COST", "40"),
            ("PORT", "http"),
        ]))
        .unwrap_err();
        let text = err.to_string();
        for name in ["JWT_SECRET_KEY", "DATABASE_URL", "BCRYPT_COST", "PORT"] {
            assert!(text.contains(name), "{name} missing from {text}");
        }
        assert_eq!(err.0.len(), 4, "{text}");
    }

    #[test]
    fn production_refuses_cheap_bcrypt() {
        let err = Settings::load_from(env(&[
            ("APP_ENV", "production"),
            ("JWT_SECRET_KEY", KEY),
            ("BCRYPT_COST", "4"),
        ]))
        .unwrap_err();
        assert!(err.0[0].starts_with("BCRYPT_COST"));
    }

    #[test]
    fn environment_overrides_files() {
        let s = Settings::load_from(env(&[
            ("APP_ENV", "test"),
            ("JWT_SECRET_KEY", KEY),
            ("PORT", "8088"),
            ("JWT_ACCESS_TOKEN_EXPIRES", "60"),
        ]))
        .unwrap();
        assert_eq!(s.port, 8088);
        assert_eq!(s.bcrypt_cost, 4, "config/test.toml applies");
        assert_eq!(s.jwt.access_ttl, Duration::from_secs(60));
        assert_eq!(s.jwt.leeway, Duration::ZERO);
        assert_eq!(s.revocation_poll_interval, Duration::from_millis(250));
        assert!(
            s.password_hash_threads >= 1,
            "0 means half the cores, at least one"
        );
    }

    #[test]
    fn the_revocation_poll_interval_keeps_the_one_second_bound() {
        let ok = Settings::load_from(env(&[
            ("APP_ENV", "test"),
            ("JWT_SECRET_KEY", KEY),
            ("REVOCATION_POLL_INTERVAL", "0.1"),
        ]))
        .unwrap();
        assert_eq!(ok.revocation_poll_interval, Duration::from_millis(100));
        for bad in ["2", "0", "-1", "fast"] {
            let err = Settings::load_from(env(&[
                ("APP_ENV", "test"),
                ("JWT_SECRET_KEY", KEY),
                ("REVOCATION_POLL_INTERVAL", bad),
            ]))
            .unwrap_err();
            assert_eq!(err.0.len(), 1, "{bad}: {err}");
            assert!(err.0[0].starts_with("REVOCATION_POLL_INTERVAL"), "{err}");
        }
    }

    #[test]
    fn hashing_pool_settings_are_checked() {
        let s = Settings::load_from(env(&[
            ("JWT_SECRET_KEY", KEY),
            ("PASSWORD_HASH_THREADS", "3"),
            ("PASSWORD_HASH_QUEUE", "0"),
            ("PASSWORD_HASH_WAIT", "0.5"),
        ]))
        .unwrap();
        assert_eq!((s.password_hash_threads, s.password_hash_queue), (3, 0));
        assert_eq!(s.password_hash_wait, Duration::from_millis(500));
        let err = Settings::load_from(env(&[
            ("JWT_SECRET_KEY", KEY),
            ("PASSWORD_HASH_THREADS", "-1"),
            ("PASSWORD_HASH_QUEUE", "many"),
            ("PASSWORD_HASH_WAIT", "-1"),
        ]))
        .unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
        assert!(err.0[0].starts_with("PASSWORD_HASH_THREADS"), "{err}");
        assert!(err.0[1].starts_with("PASSWORD_HASH_QUEUE"), "{err}");
        assert!(err.0[2].starts_with("PASSWORD_HASH_WAIT"), "{err}");
    }

    #[test]
    fn development_key_is_generated_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_str().unwrap();
        let first = Settings::load_from(env(&[("DATA_DIR", data)])).unwrap();
        let second = Settings::load_from(env(&[("DATA_DIR", data)])).unwrap();
        assert_eq!(first.jwt.secret, second.jwt.secret);
        assert!(first.jwt.secret.expose().len() >= MIN_KEY_BYTES);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(DEV_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn database_urls() {
        assert!(matches!(
            DatabaseUrl::parse("postgres://u:p@localhost/db"),
            Ok(DatabaseUrl::Postgres(_))
        ));
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/x.db"),
            Ok(DatabaseUrl::Sqlite(PathBuf::from("data/x.db")))
        );
        assert!(DatabaseUrl::parse("mysql://x").is_err());
        assert!(DatabaseUrl::parse(":memory:").is_err());
        let url = DatabaseUrl::parse("postgres://u:hunter2@localhost/db").unwrap();
        assert!(!url.redacted().contains("hunter2"));
    }

    #[test]
    fn trusted_proxies_are_addresses_or_cidr_blocks() {
        let s = Settings::load_from(env(&[
            ("APP_ENV", "test"),
            ("JWT_SECRET_KEY", KEY),
            ("TRUSTED_PROXIES", " 10.0.0.0/8, 192.0.2.7 ,fd00::/8"),
        ]))
        .unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let [private, single, v6] = s.trusted_proxies.as_slice() else {
            panic!("three entries expected: {:?}", s.trusted_proxies);
        };
        assert!(private.contains(ip("10.200.3.4")));
        assert!(private.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped");
        assert!(!private.contains(ip("11.0.0.1")));
        assert!(single.contains(ip("192.0.2.7")));
        assert!(!single.contains(ip("192.0.2.8")));
        assert!(v6.contains(ip("fd12::1")));
        assert!(!v6.contains(ip("fe80::1")));
        assert!(IpNetwork::parse("192.0.2.0/23")
            .unwrap()
            .contains(ip("192.0.3.255")));
        let default =
            Settings::load_from(env(&[("APP_ENV", "test"), ("JWT_SECRET_KEY", KEY)])).unwrap();
        assert!(
            default.trusted_proxies.is_empty(),
            "nothing trusted by default"
        );
    }

    #[test]
    fn an_invalid_trusted_proxy_is_a_start_up_error_line() {
        let err = Settings::load_from(env(&[
            ("APP_ENV", "test"),
            ("JWT_SECRET_KEY", KEY),
            ("TRUSTED_PROXIES", "10.0.0.1,nginx,10.0.0.0/33"),
        ]))
        .unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
        assert!(err.0[0].starts_with("TRUSTED_PROXIES: 'nginx'"), "{err}");
        assert!(err.0[1].contains("prefix"), "{err}");
    }

    #[test]
    fn secrets_do_not_debug_print() {
        assert!(!format!("{:?}", Secret::new("hunter2")).contains("hunter2"));
    }
}
