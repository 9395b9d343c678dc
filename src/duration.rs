//! The one grammar of durations, shared by the server's flags and the CLIs'
//! (`--request-timeout`, `--timeout`): humantime's (`500ms`, `30s`, `5m`,
//! `1h 30m`, `2days`, ...), where `0` is zero and a bare whole number counts
//! seconds, as the CLIs have always read it.

use std::time::Duration;

/// Parses a duration such as `500ms`, `30s`, `5m` or `1h 30m`; `0` is zero
/// and a bare whole number (`90`) is that many seconds. Surrounding
/// whitespace is ignored.
///
/// The error names the text and says why, e.g. `"soon" is not a duration
/// like 500ms, 30s or 5m: expected number at 0`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
        // Too many digits for a u64 falls through to humantime, which says
        // the number is too large.
        if let Ok(seconds) = text.parse::<u64>() {
            return Ok(Duration::from_secs(seconds));
        }
    }
    humantime::parse_duration(text)
        .map_err(|error| format!("{text:?} is not a duration like 500ms, 30s or 5m: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_from_milliseconds_to_days() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("2days"), Ok(Duration::from_secs(2 * 86_400)));
    }

    #[test]
    fn parts_add_up() {
        assert_eq!(parse("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
    }

    #[test]
    fn zero_and_bare_numbers_are_seconds() {
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse(" 10m\n"), Ok(Duration::from_secs(600)));
    }

    #[test]
    fn errors_name_the_text_and_the_reason() {
        let error = parse("soon").expect_err("not a duration");
        assert!(
            error.starts_with(r#""soon" is not a duration like 500ms, 30s or 5m: "#),
            "{error}"
        );
        assert!(error.len() > r#""soon" is not a duration like 500ms, 30s or 5m: "#.len());
        for text in [
            "",
            "  ",
            "5x",
            "-1s",
            "s",
            "1.5.5s",
            "99999999999999999999999",
        ] {
            let error = parse(text).expect_err(text);
            assert!(
                error.contains("is not a duration like"),
                "{text:?}: {error}"
            );
        }
    }
}
