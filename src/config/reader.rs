//! Reading raw configuration values, one error line per bad setting.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Reads raw values and records one error line per bad setting.
pub(super) struct Reader<'a> {
    pub(super) raw: &'a config::Config,
    pub(super) errors: &'a mut Vec<String>,
}

impl Reader<'_> {
    pub(super) fn string(&mut self, key: &str) -> String {
        self.raw.get_string(key).unwrap_or_default()
    }

    pub(super) fn optional_string(&mut self, key: &str) -> Option<String> {
        Some(self.string(key)).filter(|v| !v.trim().is_empty())
    }

    pub(super) fn checked<T: FromStr>(&mut self, key: &str) -> Option<T> {
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
    pub(super) fn parse<T: FromStr + Default>(&mut self, key: &str) -> T {
        self.checked(key).unwrap_or_default()
    }

    /// Like `parse`, within `min..=max`.
    pub(super) fn ranged<T: FromStr + PartialOrd + fmt::Display + Copy + Default>(
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
    pub(super) fn fractional_seconds(&mut self, key: &str, min: f64, max: f64) -> Duration {
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
    pub(super) fn seconds(&mut self, key: &str, min: u64) -> Duration {
        Duration::from_secs(self.ranged::<u64>(key, min, 10 * 365 * 24 * 3600))
    }
}
