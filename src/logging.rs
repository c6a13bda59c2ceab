//! The log: its two formats (`LOG_FORMAT`), env_logger's human-readable lines or one
//! JSON object a line for log shippers, and the request id that the lines written while
//! serving a request carry.

use std::fmt;
use std::future::Future;
use std::io::Write;
use std::str::FromStr;
use std::sync::OnceLock;

use chrono::{SecondsFormat, Utc};
use log::kv::{self, ToValue, VisitSource, VisitValue};
use serde_json::Value;

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `[time LEVEL target] message`, for people.
    #[default]
    Text,
    /// One JSON object a line: `time`, `level`, `target`, `message`, `request_id` while
    /// serving a request, and the record's own fields (the access log's method, route, ...).
    Json,
}

impl LogFormat {
    /// The setting's value for this format.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// A `LOG_FORMAT` value that names no format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("LOG_FORMAT: '{0}' is not a log format (use text or json)")]
pub struct UnknownLogFormat(pub String);

impl FromStr for LogFormat {
    type Err = UnknownLogFormat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            // The value is the operator's, not a secret; bounded so a line stays a line.
            _ => Err(UnknownLogFormat(s.chars().take(40).collect())),
        }
    }
}

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `future` with `id` as the request id of the lines it logs. Only lines logged on
/// the future's own task carry it: work handed to the database or hashing threads logs
/// without it.
pub async fn with_request_id<F: Future>(id: String, future: F) -> F::Output {
    REQUEST_ID.scope(id, future).await
}

/// The id of the request being served on this task, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// The format the process logs in, once [`init`] has run.
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// A logger with `RUST_LOG`'s filter (else `default_filter`) writing `format`, to be
/// given a target and installed by the caller (the tests send it to a file).
pub fn builder(format: LogFormat, default_filter: &str) -> env_logger::Builder {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_filter));
    if format == LogFormat::Json {
        builder.format(|buf, record| {
            let line = json_line(record, current_request_id());
            writeln!(buf, "{line}")
        });
    }
    builder
}

/// Installs the process's logger on stderr: `format`, `RUST_LOG`'s filter or `info`.
pub fn init(format: LogFormat) {
    // A second call would mean a second logger, which `log` refuses anyway.
    if FORMAT.set(format).is_ok() {
        builder(format, "info").init();
        if format == LogFormat::Json {
            // The default hook writes two or more lines of text, which a shipper
            // reading JSON would drop or split.
            std::panic::set_hook(Box::new(|info| {
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|m| (*m).to_owned())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".to_owned());
                let location = info.location().map(ToString::to_string);
                // Only when RUST_BACKTRACE asks for one, as the default hook does.
                let backtrace = std::backtrace::Backtrace::capture();
                let backtrace = (backtrace.status() == std::backtrace::BacktraceStatus::Captured)
                    .then(|| backtrace.to_string());
                let thread = std::thread::current();
                eprintln!(
                    "{}",
                    panic_line(
                        &message,
                        thread.name().unwrap_or("<unnamed>"),
                        location.as_deref(),
                        backtrace.as_deref(),
                    )
                );
            }));
        }
    }
}

/// A panic as one JSON line: an `ERROR` record of target `panic` with the thread, the
/// location and, when captured, the backtrace (newlines escaped like any other).
fn panic_line(
    message: &str,
    thread: &str,
    location: Option<&str>,
    backtrace: Option<&str>,
) -> String {
    let pairs = [
        ("thread", kv::Value::from(thread)),
        ("location", location.to_value()),
        ("backtrace", backtrace.to_value()),
    ];
    json_line(
        &log::Record::builder()
            .level(log::Level::Error)
            .target("panic")
            .args(format_args!("{message}"))
            .key_values(&pairs)
            .build(),
        current_request_id(),
    )
}

/// Writes a fatal problem (a refused setting, a failed command) to stderr whatever the
/// filter: `error: <message>` in text, an `ERROR` record in JSON, so that a log shipper
/// reads it like every other line.
pub fn report_error(message: &str) {
    let line = match FORMAT.get().copied().unwrap_or_default() {
        LogFormat::Text => format!("error: {message}"),
        LogFormat::Json => json_line(
            &log::Record::builder()
                .level(log::Level::Error)
                .target("stores_api")
                .args(format_args!("{message}"))
                .build(),
            None,
        ),
    };
    eprintln!("{line}");
}

/// One record as one line of JSON: the time (RFC 3339, UTC, milliseconds), level,
/// target and message, then the record's key-values, then the request id unless the
/// record carries its own. serde_json escapes every quote, newline and control
/// character, so a message cannot break the line.
pub fn json_line(record: &log::Record, request_id: Option<String>) -> String {
    let mut fields = Fields(Vec::with_capacity(8));
    fields.push(
        "time",
        Value::from(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)),
    );
    fields.push("level", Value::from(record.level().as_str()));
    fields.push("target", Value::from(record.target()));
    fields.push("message", Value::from(record.args().to_string()));
    // The visitor never fails: a pair it cannot read is rendered as text.
    let _ = record.key_values().visit(&mut fields);
    if let Some(id) = request_id {
        fields.push("request_id", Value::from(id));
    }
    fields.to_string()
}

/// A line's fields in order; the first of two with one name wins, so a record's
/// key-values cannot overwrite `time`, `level`, `target` or `message`.
struct Fields(Vec<(String, Value)>);

impl Fields {
    fn push(&mut self, name: &str, value: Value) {
        if !self.0.iter().any(|(n, _)| n == name) {
            self.0.push((name.to_owned(), value));
        }
    }
}

impl fmt::Display for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (name, value)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}:{}", Value::from(name.as_str()), value)?;
        }
        f.write_str("}")
    }
}

impl<'kvs> VisitSource<'kvs> for Fields {
    fn visit_pair(&mut self, key: kv::Key<'kvs>, value: kv::Value<'kvs>) -> Result<(), kv::Error> {
        let mut json = ToJson(Value::Null);
        if value.visit(&mut json).is_err() {
            json.0 = Value::from(value.to_string());
        }
        self.push(key.as_str(), json.0);
        Ok(())
    }
}

/// A key-value's value as JSON: numbers, booleans and null as themselves, the rest as
/// text.
struct ToJson(Value);

impl<'v> VisitValue<'v> for ToJson {
    fn visit_any(&mut self, value: kv::Value) -> Result<(), kv::Error> {
        self.0 = Value::from(value.to_string());
        Ok(())
    }
    fn visit_null(&mut self) -> Result<(), kv::Error> {
        self.0 = Value::Null;
        Ok(())
    }
    fn visit_u64(&mut self, value: u64) -> Result<(), kv::Error> {
        self.0 = Value::from(value);
        Ok(())
    }
    fn visit_i64(&mut self, value: i64) -> Result<(), kv::Error> {
        self.0 = Value::from(value);
        Ok(())
    }
    fn visit_f64(&mut self, value: f64) -> Result<(), kv::Error> {
        // NaN and infinities have no JSON number: null.
        self.0 = Value::from(value);
        Ok(())
    }
    fn visit_bool(&mut self, value: bool) -> Result<(), kv::Error> {
        self.0 = Value::from(value);
        Ok(())
    }
    fn visit_str(&mut self, value: &str) -> Result<(), kv::Error> {
        self.0 = Value::from(value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(record: &log::Record, request_id: Option<&str>) -> serde_json::Map<String, Value> {
        let text = json_line(record, request_id.map(str::to_owned));
        assert!(!text.contains('\n'), "one line: {text}");
        match serde_json::from_str(&text) {
            Ok(Value::Object(map)) => map,
            other => panic!("not a JSON object: {text}: {other:?}"),
        }
    }

    #[test]
    fn a_line_has_the_time_level_target_and_message() {
        let map = line(
            &log::Record::builder()
                .level(log::Level::Warn)
                .target("stores_api::startup")
                .args(format_args!("listening on {}", 5000))
                .build(),
            None,
        );
        let keys: Vec<&str> = map.keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 4, "{map:?}");
        assert_eq!(map["level"], "WARN");
        assert_eq!(map["target"], "stores_api::startup");
        assert_eq!(map["message"], "listening on 5000");
        let time = map["time"].as_str().expect("time is a string");
        let parsed = chrono::DateTime::parse_from_rfc3339(time).expect("RFC 3339");
        assert_eq!(parsed.offset().local_minus_utc(), 0, "UTC: {time}");
        assert!(time.ends_with('Z'), "{time}");
        assert_eq!(
            time.len(),
            "2026-01-01T00:00:00.000Z".len(),
            "milliseconds: {time}"
        );
    }

    #[test]
    fn quotes_newlines_and_control_characters_are_escaped() {
        let nasty = "a \"quoted\" word\nsecond line\r\t\u{1b}[31m\u{0}\\ end";
        let map = line(
            &log::Record::builder()
                .level(log::Level::Info)
                .target("t")
                .args(format_args!("{nasty}"))
                .key_values(&[("user_agent", nasty)])
                .build(),
            None,
        );
        assert_eq!(map["message"], nasty);
        assert_eq!(map["user_agent"], nasty);
    }

    #[test]
    fn key_values_keep_their_type_and_cannot_replace_the_fixed_fields() {
        let pairs: [(&str, kv::Value); 6] = [
            ("status", kv::Value::from(404u16)),
            ("duration_ms", kv::Value::from(1.5f64)),
            ("route", kv::Value::null()),
            ("method", kv::Value::from("GET")),
            ("message", kv::Value::from("forged")),
            ("request_id", kv::Value::from("from-the-record")),
        ];
        let map = line(
            &log::Record::builder()
                .level(log::Level::Info)
                .target("access")
                .args(format_args!("the real message"))
                .key_values(&pairs)
                .build(),
            Some("from-the-task"),
        );
        assert_eq!(map["status"], 404);
        assert_eq!(map["duration_ms"], 1.5);
        assert!(map["route"].is_null());
        assert_eq!(map["method"], "GET");
        assert_eq!(map["message"], "the real message");
        assert_eq!(map["request_id"], "from-the-record");
    }

    #[test]
    fn the_task_request_id_is_added_when_the_record_has_none() {
        let map = line(
            &log::Record::builder()
                .level(log::Level::Info)
                .target("stores_api::auth::flows")
                .args(format_args!("login"))
                .build(),
            Some("rid-1"),
        );
        assert_eq!(map["request_id"], "rid-1");
    }

    #[tokio::test]
    async fn the_request_id_is_known_inside_its_scope_only() {
        assert_eq!(current_request_id(), None);
        let inside = with_request_id("rid-2".into(), async { current_request_id() }).await;
        assert_eq!(inside.as_deref(), Some("rid-2"));
        assert_eq!(current_request_id(), None);
    }

    #[test]
    fn a_panic_is_one_line_with_its_thread_location_and_backtrace() {
        let text = panic_line(
            "index out of bounds",
            "db-0",
            Some("src/db/executor.rs:10:5"),
            Some("   0: frame\n   1: \"frame\"\n"),
        );
        assert!(!text.contains('\n'), "{text}");
        let map: serde_json::Map<String, Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(map["level"], "ERROR");
        assert_eq!(map["target"], "panic");
        assert_eq!(map["message"], "index out of bounds");
        assert_eq!(map["thread"], "db-0");
        assert_eq!(map["location"], "src/db/executor.rs:10:5");
        assert_eq!(map["backtrace"], "   0: frame\n   1: \"frame\"\n");
    }

    #[test]
    fn log_format_values() {
        assert_eq!("text".parse(), Ok(LogFormat::Text));
        assert_eq!(" JSON ".parse(), Ok(LogFormat::Json));
        assert_eq!("".parse(), Ok(LogFormat::Text));
        let err = "xml".parse::<LogFormat>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "LOG_FORMAT: 'xml' is not a log format (use text or json)"
        );
    }
}
