//! The value types of settings: secrets that never print, database URLs, proxy blocks.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

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
