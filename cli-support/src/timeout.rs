//! `--request-timeout`: its default, its parsing (the API crate's one
//! duration grammar) and what zero means (no limit).

use std::time::Duration;

/// Default of `--request-timeout`: how long a CLI waits for one call.
pub const DEFAULT_REQUEST_TIMEOUT: &str = "60s";

/// Parses `--request-timeout` in the API crate's duration grammar (`30s`,
/// `2m`, `500ms`, a bare number of seconds); `0` (zero) means no limit, see
/// [`time_limit`].
pub fn parse_request_timeout(text: &str) -> Result<Duration, String> {
    release_manager::duration::parse(text).map_err(|error| format!("{error}; 0 means no limit"))
}

/// A `--request-timeout` as a limit: zero means none.
pub fn time_limit(timeout: Duration) -> Option<Duration> {
    (!timeout.is_zero()).then_some(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_timeouts_parse() {
        assert_eq!(parse_request_timeout("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_request_timeout("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(
            parse_request_timeout("500ms"),
            Ok(Duration::from_millis(500))
        );
        assert_eq!(parse_request_timeout("0").map(time_limit), Ok(None));
        assert_eq!(parse_request_timeout("90"), Ok(Duration::from_secs(90)));
        let error = parse_request_timeout("soon").expect_err("not a duration");
        assert!(error.starts_with(r#""soon" is not a duration"#), "{error}");
        assert!(error.ends_with("; 0 means no limit"), "{error}");
    }
}
