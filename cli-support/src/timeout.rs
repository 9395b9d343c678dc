//! `--request-timeout`: its default, its parsing and what zero means (no
//! limit).

use std::time::Duration;

/// Default of `--request-timeout`: how long a CLI waits for one call.
pub const DEFAULT_REQUEST_TIMEOUT: &str = "60s";

/// Parses `--request-timeout` (`30s`, `2m`, `500ms`); `0` (zero) means no
/// limit, see [`time_limit`].
pub fn parse_request_timeout(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (digits, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, ""), |at| text.split_at(at));
    let amount: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30s, 2m or 500ms (0: no limit)"))?;
    let duration = match unit {
        "ms" => Duration::from_millis(amount),
        "s" | "" => Duration::from_secs(amount),
        "m" => Duration::from_secs(amount.saturating_mul(60)),
        "h" => Duration::from_secs(amount.saturating_mul(3600)),
        _ => {
            return Err(format!(
                "{text:?} is not a duration like 30s, 2m or 500ms (0: no limit)"
            ))
        }
    };
    Ok(duration)
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
        assert!(parse_request_timeout("soon").is_err());
        assert!(parse_request_timeout("5 minutes").is_err());
    }
}
