//! The one grammar of durations in flags and files (`500ms`, `30s`, `5m`;
//! `0` is zero).

/// Parses a human duration (`500ms`, `1s`, `5m`); `0` means zero.
pub fn parse(text: &str) -> Result<std::time::Duration, String> {
    if text.trim() == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration like 500ms, 30s or 5m: {e}"))
}
