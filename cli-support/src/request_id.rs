//! Request ids: the client-chosen id that lets the server apply a retried
//! write once, and what a CLI says when a write failed in a way that may
//! still have applied it: the id it used, and the command that retries it
//! safely (the same command with `--request-id <id>`).
//!
//! One id is made per invocation (unless `--request-id` gives one) and sent
//! with the write; the value only has to be unique, not secret, so it mixes
//! the clock, the process id, a counter and std's randomly seeded hasher
//! rather than pulling in a uuid or rand crate.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A fresh id formatted like a version-4 UUID, e.g.
/// `3f2b8c1e-9d4a-4b7e-8c21-5e6f7a8b9c0d`.
pub fn new_request_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let pid = std::process::id();
    let half = |salt: u8| {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u8(salt);
        hasher.write_u128(nanos);
        hasher.write_u32(pid);
        hasher.write_u64(count);
        hasher.finish()
    };
    let bits = (u128::from(half(0)) << 64) | u128::from(half(1));
    // Version 4, variant RFC 4122, as a UUID would carry.
    let bits = (bits & !(0xf << 76)) | (0x4 << 76);
    let bits = (bits & !(0x3 << 62)) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `--request-id`: what the server accepts (at most 128 bytes, no spaces
/// or control characters), checked before anything is sent.
pub fn parse_request_id(raw: &str) -> Result<String, String> {
    if raw.is_empty()
        || raw.len() > 128
        || raw
            .chars()
            .any(|c| release_manager::names::is_forbidden_char(c) || c.is_whitespace())
    {
        return Err(
            "a request id is 1 to 128 characters, without spaces or control characters".into(),
        );
    }
    Ok(raw.to_owned())
}

/// Whether a write that failed with `status` may still have been applied:
/// the answer did not come from the server (a transport error, the
/// client's own timeout), or the server says the remote stopped answering
/// while it pushed. The server's refusals (bad input, not found, queue
/// full, conflicts, a deadline it says passed before it wrote anything)
/// are not.
pub fn may_have_been_applied(status: &tonic::Status) -> bool {
    use tonic::Code;
    use tonic_types::StatusExt;
    let details = status.get_error_details();
    let reason = details.error_info().map(|info| info.reason.as_str());
    match status.code() {
        Code::InvalidArgument
        | Code::NotFound
        | Code::FailedPrecondition
        | Code::AlreadyExists
        | Code::Unauthenticated
        | Code::PermissionDenied
        | Code::ResourceExhausted
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unimplemented => false,
        // The server says nothing was changed.
        Code::DeadlineExceeded => reason != Some("DEADLINE_PASSED"),
        // Starting, stopping, a locked or read-only remote: nothing written.
        Code::Unavailable => !matches!(
            reason,
            Some("STARTING" | "SHUTTING_DOWN" | "REMOTE_LOCKED" | "WRITE_DENIED")
        ),
        Code::Ok | Code::Cancelled | Code::Unknown | Code::Internal | Code::DataLoss => true,
    }
}

/// The command line `argv` (program name first) with `--request-id id`,
/// quoted for a POSIX shell: the command that retries a write safely.
pub fn retry_command(argv: &[String], id: &str) -> String {
    let mut words: Vec<String> = Vec::with_capacity(argv.len() + 2);
    let mut given = false;
    let mut args = argv.iter();
    if let Some(program) = args.next() {
        // As the person typed it, without the folder.
        let name = std::path::Path::new(program)
            .file_name()
            .map_or_else(|| program.clone(), |n| n.to_string_lossy().into_owned());
        words.push(name);
    }
    let mut replace_next = false;
    for arg in args {
        if replace_next {
            words.push(id.to_owned());
            replace_next = false;
            continue;
        }
        if arg == "--request-id" {
            given = true;
            replace_next = true;
            words.push(arg.clone());
        } else if arg.starts_with("--request-id=") {
            given = true;
            words.push(format!("--request-id={id}"));
        } else {
            words.push(arg.clone());
        }
    }
    if !given {
        words.push("--request-id".into());
        words.push(id.to_owned());
    }
    words
        .iter()
        .map(|word| shell_quote(word))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `word` as a POSIX shell reads it back.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn the_retry_command_carries_the_id() {
        let argv = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert_eq!(
            retry_command(
                &argv(&[
                    "/usr/bin/hamctl",
                    "release",
                    "--service",
                    "shop",
                    "--branch",
                    "feat x"
                ]),
                "abc"
            ),
            "hamctl release --service shop --branch 'feat x' --request-id abc"
        );
        assert_eq!(
            retry_command(&argv(&["hamctl", "rollback", "--request-id", "old"]), "old"),
            "hamctl rollback --request-id old"
        );
        assert_eq!(
            retry_command(&argv(&["artifact", "push", "--request-id=it's"]), "it's"),
            "artifact push '--request-id=it'\\''s'"
        );
    }

    #[test]
    fn what_may_have_been_applied() {
        use tonic::Code;
        use tonic_types::{ErrorDetails, StatusExt};
        let with_reason = |code, reason: &str| {
            tonic::Status::with_error_details(
                code,
                "x",
                ErrorDetails::with_error_info(
                    reason,
                    "releasemanager.v1",
                    std::collections::HashMap::<String, String>::new(),
                ),
            )
        };
        // The transport lost the answer, or the client stopped waiting.
        assert!(may_have_been_applied(&tonic::Status::unknown(
            "transport error"
        )));
        assert!(may_have_been_applied(&tonic::Status::cancelled(
            "Timeout expired"
        )));
        assert!(may_have_been_applied(&tonic::Status::unavailable(
            "connection reset"
        )));
        assert!(may_have_been_applied(&with_reason(
            Code::Unavailable,
            "REMOTE_TIMEOUT"
        )));
        // The server said no.
        assert!(!may_have_been_applied(&with_reason(
            Code::DeadlineExceeded,
            "DEADLINE_PASSED"
        )));
        assert!(!may_have_been_applied(&with_reason(
            Code::Unavailable,
            "REMOTE_LOCKED"
        )));
        assert!(!may_have_been_applied(&tonic::Status::not_found("no")));
        assert!(!may_have_been_applied(&with_reason(
            Code::Aborted,
            "PUSH_CONFLICT"
        )));
    }

    #[test]
    fn request_ids_are_checked() {
        assert_eq!(parse_request_id("retry-1").unwrap(), "retry-1");
        assert!(parse_request_id("").is_err());
        assert!(parse_request_id("a b").is_err());
        assert!(parse_request_id(&"x".repeat(129)).is_err());
        assert!(parse_request_id("a\u{202E}b").is_err());
    }

    #[test]
    fn ids_look_like_uuids() {
        let id = new_request_id();
        assert_eq!(id.len(), 36, "{id}");
        let groups: Vec<&str> = id.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(groups[2].starts_with('4'), "{id}");
        assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }

    #[test]
    fn ids_are_unique() {
        let ids: HashSet<String> = (0..1000).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), 1000);
    }
}
