//! Settings: the compiled-in `config/default.toml`, then `config/default.toml` and
//! `config/<APP_ENV>.toml` from the working directory, then environment variables.
//!
//! Settings come in sections (database, tokens, passwords, limits, http, revocation),
//! each read by its own function and handed whole to the part of the service that uses
//! it. Every bad setting gets its own line, so one start-up shows all of them.

mod reader;
mod sections;
mod values;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use reader::Reader;
pub use sections::{
    is_hmac, key_bytes, AdminBootstrap, BrowserSettings, DatabaseSettings, HttpSettings,
    IntrospectionClient, KeySource, LimitSettings, PasswordSettings, RevocationSettings, SameSite,
    TokenLocation, TokenSettings,
};
pub use values::{DatabaseUrl, IpNetwork, Secret};

use crate::logging::LogFormat;

const DEFAULTS: &str = include_str!("../../config/default.toml");

/// The path of the refresh token's cookie: the only route that reads it.
pub const REFRESH_COOKIE_PATH: &str = "/refresh";

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

/// The service's whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `APP_ENV`.
    pub env: AppEnv,
    /// Where development files live (the default SQLite file, the development key).
    pub data_dir: PathBuf,
    /// The database and its pool.
    pub database: DatabaseSettings,
    /// Minting and checking tokens.
    pub tokens: TokenSettings,
    /// bcrypt and the hashing pool.
    pub passwords: PasswordSettings,
    /// Brute-force limits of the auth endpoints.
    pub limits: LimitSettings,
    /// The listener, request bodies, CORS and proxies.
    pub http: HttpSettings,
    /// Where tokens are read, and the browser-mode cookies.
    pub browser: BrowserSettings,
    /// The services that may call `POST /introspect` with HTTP Basic.
    pub introspection_clients: Vec<IntrospectionClient>,
    /// The revocation follower and the expired-entry sweep.
    pub revocation: RevocationSettings,
    /// Admin to create or promote at start-up.
    pub admin: Option<AdminBootstrap>,
    /// `LOG_FORMAT`: the format the binary's logger was installed with (see [`log_format`]).
    pub log_format: LogFormat,
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
        for line in misspelt(env.keys().map(String::as_str)) {
            log::warn!("{line}");
        }
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
        // Empty variables are ignored by the layers (an empty PORT is no port), but an
        // empty METRICS_ADDR is how metrics are turned off.
        let metrics_off = env.get("METRICS_ADDR").is_some_and(|v| v.trim().is_empty());
        let raw = layers(env, app_env)
            .map_err(|e| ConfigError(vec![format!("configuration files: {e}")]))?;
        let mut r = Reader {
            raw: &raw,
            errors: &mut errors,
        };
        let data_dir = PathBuf::from(r.string("data_dir"));
        let database = sections::database(&mut r, &data_dir);
        let tokens = sections::tokens(&mut r, app_env, &data_dir);
        let passwords = sections::passwords(&mut r, app_env);
        let limits = sections::limits(&mut r);
        let mut http = sections::http(&mut r);
        if metrics_off {
            http.metrics_addr = None;
        }
        let browser = sections::browser(&mut r, app_env);
        // A credentialed request from any origin at all would carry the user's cookies:
        // the CORS specification forbids `*` with credentials, and echoing every origin
        // instead would hand the session to any site (OWASP CSRF Prevention Cheat Sheet).
        if browser.location.cookies() && http.cors_allowed_origins.iter().any(|o| o == "*") {
            r.errors.push(
                "CORS_ALLOWED_ORIGINS: '*' cannot be used with cookies in JWT_TOKEN_LOCATION: \
                 list the origins of your browser apps"
                    .to_string(),
            );
        }
        let introspection_clients = sections::introspection_clients(&mut r);
        let revocation = sections::revocation(&mut r);
        let admin = sections::admin(&mut r);
        let log_format = r
            .string("log_format")
            .parse::<LogFormat>()
            .unwrap_or_else(|e| {
                r.errors.push(e.to_string());
                LogFormat::default()
            });

        // Every bad setting has its line by now; the placeholders below are never used.
        let (true, Some(database), Some(tokens)) = (errors.is_empty(), database, tokens) else {
            return Err(ConfigError(errors));
        };
        Ok(Settings {
            env: app_env,
            data_dir,
            database,
            tokens,
            passwords,
            limits,
            http,
            browser,
            introspection_clients,
            revocation,
            admin,
            log_format,
        })
    }
}

/// The compiled-in defaults, then `config/default.toml` and `config/<APP_ENV>.toml`
/// from `CONFIG_DIR`, then `env`.
fn layers(
    env: HashMap<String, String>,
    app_env: AppEnv,
) -> Result<config::Config, config::ConfigError> {
    let config_dir = env
        .get("CONFIG_DIR")
        .cloned()
        .unwrap_or_else(|| "config".to_string());
    let dir = Path::new(&config_dir);
    config::Config::builder()
        .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
        .add_source(config::File::from(dir.join("default.toml")).required(false))
        .add_source(config::File::from(dir.join(app_env.as_str())).required(false))
        .add_source(
            config::Environment::default()
                .source(Some(env.into_iter().collect()))
                .ignore_empty(true),
        )
        .build()
}

/// `LOG_FORMAT` from the same files and environment as [`Settings::load`], read before
/// the settings so that the logger exists, in its format, when they warn or fail. A
/// value that names no format reads as text here; [`Settings::load`] refuses it.
pub fn log_format() -> LogFormat {
    log_format_from(std::env::vars().collect())
}

/// [`log_format`] with `env` standing in for the process environment.
pub fn log_format_from(env: HashMap<String, String>) -> LogFormat {
    let app_env = env
        .get("APP_ENV")
        .and_then(|v| v.parse::<AppEnv>().ok())
        .unwrap_or(AppEnv::Development);
    layers(env, app_env)
        .ok()
        .and_then(|raw| raw.get_string("log_format").ok())
        .and_then(|value| value.parse().ok())
        .unwrap_or_default()
}

/// Variables the service reads besides the settings in `config/default.toml`.
const OTHER_VARIABLES: [&str; 4] = ["APP_ENV", "CONFIG_DIR", "JWT_SECRET_KEY", "RUST_LOG"];

/// A warning for each environment variable that looks like one of the settings but is
/// not one (`DATABSE_URL`), naming the closest: a misspelt setting is otherwise silently
/// ignored and its default used.
pub fn misspelt<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let known: Vec<String> = DEFAULTS
        .lines()
        .filter_map(|line| line.split_once('=').map(|(key, _)| key.trim()))
        .filter(|key| !key.is_empty() && !key.starts_with('#'))
        .map(str::to_ascii_uppercase)
        .chain(OTHER_VARIABLES.iter().map(|v| (*v).to_owned()))
        .collect();
    let mut warnings: Vec<String> = names
        .filter(|name| name.len() >= 5 && !known.iter().any(|k| k == name))
        .filter_map(|name| {
            let upper = name.to_ascii_uppercase();
            let (closest, distance) = known
                .iter()
                .map(|k| (k, strsim::levenshtein(&upper, k)))
                .min_by_key(|(_, d)| *d)?;
            (distance <= 2).then(|| {
                format!("{name} is not a setting of this service and is ignored; did you mean {closest}?")
            })
        })
        .collect();
    warnings.sort();
    warnings
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::time::Duration;

    use super::sections::{DEV_KEY_FILE, MIN_KEY_BYTES};
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
        assert_eq!(s.http.port, 8088);
        assert_eq!(s.passwords.bcrypt_cost, 4, "config/test.toml applies");
        assert_eq!(s.tokens.access_ttl, Duration::from_secs(60));
        assert_eq!(s.tokens.leeway, Duration::ZERO);
        assert_eq!(s.revocation.poll_interval, Duration::from_millis(250));
        assert!(s.passwords.hash_threads >= 1, "0 means one per core");
    }

    #[test]
    fn the_revocation_poll_interval_keeps_the_one_second_bound() {
        let ok = Settings::load_from(env(&[
            ("APP_ENV", "test"),
            ("JWT_SECRET_KEY", KEY),
            ("REVOCATION_POLL_INTERVAL", "0.1"),
        ]))
        .unwrap();
        assert_eq!(ok.revocation.poll_interval, Duration::from_millis(100));
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
    fn the_session_cap_is_checked() {
        let default =
            Settings::load_from(env(&[("APP_ENV", "test"), ("JWT_SECRET_KEY", KEY)])).unwrap();
        assert_eq!(default.tokens.max_sessions_per_user, 100);
        let one = Settings::load_from(env(&[
            ("JWT_SECRET_KEY", KEY),
            ("MAX_SESSIONS_PER_USER", "1"),
        ]))
        .unwrap();
        assert_eq!(one.tokens.max_sessions_per_user, 1);
        for bad in ["0", "-1", "100001", "many"] {
            let err = Settings::load_from(env(&[
                ("JWT_SECRET_KEY", KEY),
                ("MAX_SESSIONS_PER_USER", bad),
            ]))
            .unwrap_err();
            assert_eq!(err.0.len(), 1, "{bad}: {err}");
            assert!(err.0[0].starts_with("MAX_SESSIONS_PER_USER"), "{err}");
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
        assert_eq!((s.passwords.hash_threads, s.passwords.hash_queue), (3, 0));
        assert_eq!(s.passwords.hash_wait, Duration::from_millis(500));
        assert_eq!(
            s.passwords.hash_reserved_threads, 0,
            "idle priority by default"
        );
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let defaults = Settings::load_from(env(&[("JWT_SECRET_KEY", KEY)])).unwrap();
        assert_eq!(defaults.passwords.hash_threads, cores, "a thread per core");
        let reserved = |n: &'static str| {
            let s = Settings::load_from(env(&[
                ("JWT_SECRET_KEY", KEY),
                ("PASSWORD_HASH_THREADS", "3"),
                ("PASSWORD_HASH_RESERVED_THREADS", n),
            ]))
            .unwrap();
            s.passwords.hash_reserved_threads
        };
        assert_eq!(reserved("2"), 2);
        assert_eq!(reserved("7"), 3, "at most every thread");
        let err = Settings::load_from(env(&[
            ("JWT_SECRET_KEY", KEY),
            ("PASSWORD_HASH_THREADS", "-1"),
            ("PASSWORD_HASH_RESERVED_THREADS", "some"),
            ("PASSWORD_HASH_QUEUE", "many"),
            ("PASSWORD_HASH_WAIT", "-1"),
        ]))
        .unwrap_err();
        assert_eq!(err.0.len(), 4, "{err}");
        assert!(err.0[0].starts_with("PASSWORD_HASH_THREADS"), "{err}");
        assert!(
            err.0[1].starts_with("PASSWORD_HASH_RESERVED_THREADS"),
            "{err}"
        );
        assert!(err.0[2].starts_with("PASSWORD_HASH_QUEUE"), "{err}");
        assert!(err.0[3].starts_with("PASSWORD_HASH_WAIT"), "{err}");
    }

    #[test]
    fn limit_settings_are_checked() {
        let s = Settings::load_from(env(&[("JWT_SECRET_KEY", KEY)])).unwrap();
        assert_eq!(
            (s.limits.hashing_per_user, s.limits.max_entries),
            (2, 10_000)
        );
        let s = Settings::load_from(env(&[
            ("JWT_SECRET_KEY", KEY),
            ("PASSWORD_HASH_PER_USER", "0"),
            ("RATE_LIMIT_MAX_ENTRIES", "250000"),
        ]))
        .unwrap();
        assert_eq!(
            (s.limits.hashing_per_user, s.limits.max_entries),
            (0, 250_000)
        );
        let err = Settings::load_from(env(&[
            ("JWT_SECRET_KEY", KEY),
            ("PASSWORD_HASH_PER_USER", "-1"),
            ("RATE_LIMIT_MAX_ENTRIES", "10"),
        ]))
        .unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
        assert!(err.0[0].starts_with("PASSWORD_HASH_PER_USER"), "{err}");
        assert!(err.0[1].starts_with("RATE_LIMIT_MAX_ENTRIES"), "{err}");
    }

    #[test]
    fn development_key_is_generated_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_str().unwrap();
        let first = Settings::load_from(env(&[("DATA_DIR", data)])).unwrap();
        let second = Settings::load_from(env(&[("DATA_DIR", data)])).unwrap();
        assert_eq!(first.tokens.secret, second.tokens.secret);
        assert!(first.tokens.secret.expose().len() >= MIN_KEY_BYTES);
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

    #[cfg(unix)]
    #[test]
    fn a_development_key_file_open_to_group_or_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_str().unwrap();
        let path = dir.path().join(DEV_KEY_FILE);
        std::fs::write(&path, "ab".repeat(32)).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = Settings::load_from(env(&[("DATA_DIR", data)])).unwrap_err();
            assert_eq!(
                err.0,
                vec![format!(
                    "JWT_SECRET_KEY: the development key file {p} has mode {mode:04o}, open to \
                     group or others: run `chmod 600 {p}` (or set JWT_SECRET_KEY)",
                    p = path.display()
                )]
            );
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = Settings::load_from(env(&[("DATA_DIR", data)])).unwrap();
        assert_eq!(s.tokens.secret.expose(), "ab".repeat(32));
    }

    #[cfg(unix)]
    #[test]
    fn an_empty_development_key_file_is_replaced_with_a_private_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DEV_KEY_FILE);
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let s = Settings::load_from(env(&[("DATA_DIR", dir.path().to_str().unwrap())])).unwrap();
        assert!(s.tokens.secret.expose().len() >= MIN_KEY_BYTES);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
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
        let [private, single, v6] = s.http.trusted_proxies.as_slice() else {
            panic!("three entries expected: {:?}", s.http.trusted_proxies);
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
            default.http.trusted_proxies.is_empty(),
            "nothing trusted by default"
        );
    }

    #[test]
    fn metrics_listen_on_loopback_by_default_and_empty_turns_them_off() {
        let load = |extra: &[(&str, &str)]| {
            let mut vars = vec![("APP_ENV", "development"), ("JWT_SECRET_KEY", KEY)];
            vars.extend_from_slice(extra);
            Settings::load_from(env(&vars))
        };
        let default = load(&[]).unwrap();
        assert_eq!(default.http.metrics_addr.as_deref(), Some("127.0.0.1:9464"));
        let off = load(&[("METRICS_ADDR", "")]).unwrap();
        assert_eq!(off.http.metrics_addr, None);
        let err = load(&[("METRICS_ADDR", "9464")]).unwrap_err();
        assert!(err.0[0].starts_with("METRICS_ADDR: '9464'"), "{err}");
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
    fn misspelt_settings_are_named_with_the_closest_real_one() {
        let warnings = misspelt(
            [
                "DATABSE_URL",
                "JWT_SECRT_KEY",
                "DATABASE_URL",
                "HOME",
                "HOSTNAME",
                "PWD",
            ]
            .into_iter(),
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("DATABSE_URL ") && warnings[0].ends_with("DATABASE_URL?"));
        assert!(
            warnings[1].starts_with("JWT_SECRT_KEY ") && warnings[1].ends_with("JWT_SECRET_KEY?")
        );
    }

    #[test]
    fn the_log_format_is_text_or_json() {
        let format = |pairs: &[(&str, &str)]| {
            let mut all = vec![("APP_ENV", "test"), ("JWT_SECRET_KEY", KEY)];
            all.extend_from_slice(pairs);
            Settings::load_from(env(&all)).map(|s| s.log_format)
        };
        assert_eq!(format(&[]).unwrap(), LogFormat::Text);
        assert_eq!(format(&[("LOG_FORMAT", "json")]).unwrap(), LogFormat::Json);
        assert_eq!(format(&[("LOG_FORMAT", "Text")]).unwrap(), LogFormat::Text);
        let err = format(&[("LOG_FORMAT", "logfmt")]).unwrap_err();
        assert_eq!(
            err.0,
            ["LOG_FORMAT: 'logfmt' is not a log format (use text or json)"]
        );
        // Read before the settings, a bad value falls back to text (and is refused later).
        assert_eq!(
            log_format_from(env(&[("LOG_FORMAT", "json")])),
            LogFormat::Json
        );
        assert_eq!(
            log_format_from(env(&[("LOG_FORMAT", "logfmt")])),
            LogFormat::Text
        );
        assert_eq!(log_format_from(env(&[])), LogFormat::Text);
        assert_eq!(
            misspelt(["LOG_FROMAT"].into_iter()),
            ["LOG_FROMAT is not a setting of this service and is ignored; did you mean LOG_FORMAT?"]
        );
    }

    #[test]
    fn secrets_do_not_debug_print() {
        assert!(!format!("{:?}", Secret::new("hunter2")).contains("hunter2"));
    }

    fn browser(pairs: &[(&str, &str)]) -> Result<BrowserSettings, ConfigError> {
        let mut all = vec![("APP_ENV", "test"), ("JWT_SECRET_KEY", KEY)];
        all.extend_from_slice(pairs);
        Settings::load_from(env(&all)).map(|s| s.browser)
    }

    #[test]
    fn the_token_location_is_headers_cookies_or_both() {
        assert_eq!(browser(&[]).unwrap().location, TokenLocation::Headers);
        for (value, expected) in [
            ("headers", TokenLocation::Headers),
            ("cookies", TokenLocation::Cookies),
            ("headers,cookies", TokenLocation::Both),
            (" Cookies , headers ", TokenLocation::Both),
        ] {
            let got = browser(&[("JWT_TOKEN_LOCATION", value)]).unwrap().location;
            assert_eq!(got, expected, "{value}");
        }
        for value in ["header", "query_string", "cookies,json"] {
            let err = browser(&[("JWT_TOKEN_LOCATION", value)]).unwrap_err();
            assert_eq!(err.0.len(), 1, "{err}");
            assert!(err.0[0].starts_with("JWT_TOKEN_LOCATION: "), "{err}");
        }
    }

    #[test]
    fn cookies_are_secure_except_in_development_unless_told() {
        let secure = |app_env: &str, value: Option<&str>| {
            let mut pairs = vec![("APP_ENV", app_env), ("JWT_SECRET_KEY", KEY)];
            pairs.extend(value.map(|v| ("JWT_COOKIE_SECURE", v)));
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().display().to_string();
            pairs.push(("DATA_DIR", &data));
            Settings::load_from(env(&pairs)).unwrap().browser.secure
        };
        assert!(!secure("development", None));
        assert!(secure("test", None));
        assert!(secure("production", Some("true")));
        assert!(secure("development", Some("true")));
        assert!(!secure("test", Some("false")));
        let err = browser(&[("JWT_COOKIE_SECURE", "maybe")]).unwrap_err();
        assert!(err.0[0].starts_with("JWT_COOKIE_SECURE: "), "{err}");
    }

    #[test]
    fn any_origin_with_cookies_is_refused() {
        let err = browser(&[
            ("JWT_TOKEN_LOCATION", "headers,cookies"),
            ("CORS_ALLOWED_ORIGINS", "*"),
        ])
        .unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert!(err.0[0].starts_with("CORS_ALLOWED_ORIGINS: '*'"), "{err}");
        // Without cookies, any origin stays allowed (no credentials are sent).
        assert!(browser(&[("CORS_ALLOWED_ORIGINS", "*")]).is_ok());
        assert!(browser(&[
            ("JWT_TOKEN_LOCATION", "cookies"),
            ("CORS_ALLOWED_ORIGINS", "https://app.example.com"),
        ])
        .is_ok());
    }

    #[test]
    fn cookie_attributes_that_browsers_would_refuse_are_refused() {
        let cookies = ("JWT_TOKEN_LOCATION", "cookies");
        let insecure = ("JWT_COOKIE_SECURE", "false");
        let refusal = |pairs: &[(&str, &str)], setting: &str| {
            let err = browser(pairs).unwrap_err();
            assert_eq!(err.0.len(), 1, "{err}");
            assert!(err.0[0].starts_with(setting), "{err}");
        };
        refusal(
            &[cookies, insecure, ("JWT_COOKIE_SAMESITE", "None")],
            "JWT_COOKIE_SAMESITE: None requires",
        );
        refusal(
            &[cookies, ("JWT_COOKIE_SAMESITE", "lenient")],
            "JWT_COOKIE_SAMESITE: ",
        );
        refusal(
            &[cookies, ("JWT_REFRESH_COOKIE_NAME", "__Host-refresh")],
            "JWT_REFRESH_COOKIE_NAME: a __Host- cookie",
        );
        refusal(
            &[
                cookies,
                insecure,
                ("JWT_ACCESS_COOKIE_NAME", "__Host-access"),
            ],
            "JWT_ACCESS_COOKIE_NAME: the __Host- and __Secure- prefixes",
        );
        refusal(
            &[cookies, ("JWT_ACCESS_COOKIE_NAME", "my token")],
            "JWT_ACCESS_COOKIE_NAME: ",
        );
        refusal(
            &[cookies, ("JWT_ACCESS_CSRF_HEADER_NAME", "X CSRF")],
            "JWT_ACCESS_CSRF_HEADER_NAME: ",
        );
        let s = browser(&[
            cookies,
            ("JWT_COOKIE_SAMESITE", "none"),
            ("JWT_ACCESS_COOKIE_NAME", "__Host-access_token"),
            ("JWT_REFRESH_COOKIE_NAME", "__Secure-refresh_token"),
            ("JWT_ACCESS_CSRF_HEADER_NAME", "X-Xsrf-Token"),
        ])
        .unwrap();
        assert_eq!(s.same_site, SameSite::None);
        assert_eq!(s.access_cookie, "__Host-access_token");
        assert_eq!(s.refresh_cookie, "__Secure-refresh_token");
        assert_eq!(
            s.access_csrf_header, "x-xsrf-token",
            "header names are kept in lower case"
        );
    }

    #[test]
    fn public_key_algorithms_keep_their_keys_in_the_database_or_take_a_pem() {
        let kek = "ab".repeat(32);
        let s = browserless(&[("JWT_ALGORITHM", "EdDSA"), ("JWT_KEY_ENCRYPTION_KEY", &kek)]);
        assert_eq!(s.tokens.algorithm, jsonwebtoken::Algorithm::EdDSA);
        assert!(matches!(s.tokens.keys, Some(KeySource::Database { .. })));
        let pem = "-----BEGIN PRIVATE KEY-----\\nabc\\n-----END PRIVATE KEY-----";
        let s = browserless(&[("JWT_ALGORITHM", "RS256"), ("JWT_PRIVATE_KEY", pem)]);
        match s.tokens.keys {
            Some(KeySource::Pem { private, public }) => {
                assert!(
                    private.expose().contains("\nabc\n"),
                    "escaped newlines are read"
                );
                assert!(public.is_none());
            }
            other => panic!("{other:?}"),
        }
        let err = Settings::load_from(env(&[
            ("APP_ENV", "production"),
            ("BCRYPT_COST", "12"),
            ("JWT_ALGORITHM", "ES256"),
        ]))
        .unwrap_err();
        assert_eq!(err.0.len(), 1, "no JWT_SECRET_KEY is needed: {err}");
        assert!(
            err.0[0].starts_with("JWT_KEY_ENCRYPTION_KEY: required"),
            "{err}"
        );
        for bad in ["short", &"zz".repeat(32)] {
            let err = Settings::load_from(env(&[
                ("APP_ENV", "test"),
                ("JWT_ALGORITHM", "EdDSA"),
                ("JWT_KEY_ENCRYPTION_KEY", bad),
            ]))
            .unwrap_err();
            assert!(
                err.0[0].starts_with("JWT_KEY_ENCRYPTION_KEY: must be 32 bytes"),
                "{err}"
            );
            assert!(
                !err.to_string().contains(bad),
                "the value is not printed: {err}"
            );
        }
        let err = Settings::load_from(env(&[("APP_ENV", "test"), ("JWT_ALGORITHM", "PS256")]))
            .unwrap_err();
        assert!(err.0[0].starts_with("JWT_ALGORITHM: 'PS256'"), "{err}");
        let err = Settings::load_from(env(&[
            ("APP_ENV", "test"),
            ("JWT_ALGORITHM", "EdDSA"),
            ("JWT_PRIVATE_KEY", "/no/such/file.pem"),
        ]))
        .unwrap_err();
        assert!(
            err.0[0].starts_with("JWT_PRIVATE_KEY: neither a PEM"),
            "{err}"
        );
    }

    fn browserless(pairs: &[(&str, &str)]) -> Settings {
        let mut all = vec![("APP_ENV", "test"), ("JWT_SECRET_KEY", KEY)];
        all.extend_from_slice(pairs);
        Settings::load_from(env(&all)).unwrap()
    }

    #[test]
    fn introspection_clients_are_id_secret_pairs_with_long_secrets() {
        let s = browserless(&[(
            "INTROSPECTION_CLIENTS",
            "gateway:gateway-secret-0123456789, worker:worker-secret-0123456789",
        )]);
        let ids: Vec<&str> = s
            .introspection_clients
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(ids, ["gateway", "worker"]);
        assert_eq!(
            s.introspection_clients[1].secret.expose(),
            "worker-secret-0123456789"
        );
        for (value, problem) in [
            ("gateway-secret-0123456789", "is not id:secret"),
            ("gateway:short", "shorter than 16 bytes"),
            (
                ":gateway-secret-0123456789",
                "empty or unprintable client id",
            ),
            (
                "a:gateway-secret-0123456789,a:gateway-secret-9876543210",
                "listed twice",
            ),
        ] {
            let err = Settings::load_from(env(&[
                ("APP_ENV", "test"),
                ("JWT_SECRET_KEY", KEY),
                ("INTROSPECTION_CLIENTS", value),
            ]))
            .unwrap_err();
            assert!(err.0[0].contains(problem), "{value}: {err}");
            assert!(
                !err.to_string().contains("0123456789"),
                "no secret printed: {err}"
            );
        }
    }
}
