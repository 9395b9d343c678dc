//! Where `init` and `end` get "now" from: the system clock, a fixed time for
//! reproducible output (`ARTIFACT_FIXED_TIME`), or any function a test
//! injects. It also owns the one timestamp format artifact.json uses.
//!
//! It must not read or write files; the commands store what it returns.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};

/// Environment variable that fixes the time `init` and `end` record, as an
/// RFC 3339 timestamp (e.g. `2026-01-02T03:04:05Z`). Meant for tests and
/// reproducible builds.
pub const FIXED_TIME_ENV: &str = "ARTIFACT_FIXED_TIME";

/// A source of the current time.
#[derive(Clone)]
pub struct Clock {
    now: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock::new(Utc::now)
    }

    /// A clock that always says `time`.
    pub fn fixed(time: DateTime<Utc>) -> Self {
        Clock::new(move || time)
    }

    /// A clock that asks `now` every time.
    pub fn new(now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        Clock { now: Arc::new(now) }
    }

    /// The fixed clock named by `ARTIFACT_FIXED_TIME` when it is set (and not
    /// empty), else the system clock. The error says what is wrong with the
    /// variable's value.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var(FIXED_TIME_ENV) {
            Ok(value) if !value.trim().is_empty() => parse_fixed(&value).map(Clock::fixed),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(Clock::system()),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(format!("{FIXED_TIME_ENV} is not valid UTF-8"))
            }
        }
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        (self.now)()
    }

    /// The current time as artifact.json records it (see [`timestamp`]).
    pub(crate) fn timestamp(&self) -> String {
        timestamp(self.now())
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Clock").finish_non_exhaustive()
    }
}

/// RFC 3339 in UTC with whole seconds and a `Z` suffix, e.g.
/// `2026-01-02T03:04:05Z`.
pub(crate) fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses the value of `ARTIFACT_FIXED_TIME`.
fn parse_fixed(value: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(value.trim())
        .map(|time| time.with_timezone(&Utc))
        .map_err(|error| {
            format!(
                "{FIXED_TIME_ENV}={value:?} is not an RFC 3339 time (e.g. 2026-01-02T03:04:05Z): {error}"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_seconds_with_z() {
        let time = parse_fixed("2026-01-02T04:04:05.987+01:00").expect("parses");
        assert_eq!(timestamp(time), "2026-01-02T03:04:05Z");
    }

    #[test]
    fn fixed_clock_returns_its_time() {
        let time = parse_fixed("2026-01-02T03:04:05Z").expect("parses");
        let clock = Clock::fixed(time);
        assert_eq!(clock.now(), time);
        assert_eq!(clock.timestamp(), "2026-01-02T03:04:05Z");
    }

    #[test]
    fn bad_fixed_time_names_the_variable() {
        let error = parse_fixed("yesterday").expect_err("rejected");
        assert!(
            error.starts_with("ARTIFACT_FIXED_TIME=\"yesterday\""),
            "{error}"
        );
    }

    #[test]
    fn injected_function_is_asked_each_time() {
        let calls = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let counter = Arc::clone(&calls);
        let clock = Clock::new(move || {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            DateTime::from_timestamp(n, 0).unwrap_or_default()
        });
        assert_eq!(clock.timestamp(), "1970-01-01T00:00:00Z");
        assert_eq!(clock.timestamp(), "1970-01-01T00:00:01Z");
    }
}
