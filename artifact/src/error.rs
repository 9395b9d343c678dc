//! The failures a command can end with, and how each reads as the one
//! `error: ...` line artifact prints.
//!
//! It owns the wording of file problems (naming the file) and the mapping
//! from `tonic::Status` to a message a person can act on. It must not print
//! or pick exit codes: `lib.rs` does that.

use std::path::Path;

use tonic::Code;

/// Why a command failed. Every variant means exit code 1, except an
/// [`CliError::Output`] broken pipe, which is a normal end.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// artifact.json does not exist.
    #[error("{path} not found: run `artifact init` first")]
    SpecMissing { path: String },

    /// artifact.json could not be read, is not JSON, or is not a valid spec.
    #[error("{path}: {reason}")]
    SpecInvalid { path: String, reason: String },

    /// artifact.json could not be written.
    #[error("cannot write {path}: {reason}")]
    SpecWrite { path: String, reason: String },

    /// The build folder holds something that cannot be uploaded.
    #[error("{path}: {reason}")]
    BuildFolder { path: String, reason: String },

    /// `ARTIFACT_FIXED_TIME` is set but unusable.
    #[error("{0}")]
    Clock(String),

    /// The channel to the server could not be opened.
    #[error("cannot reach server at {url}: {reason}")]
    Unreachable { url: String, reason: String },

    /// The server answered with an error status.
    #[error("{}", describe_status(.0))]
    Server(Box<tonic::Status>),

    /// The server's reply lacks something it always sends.
    #[error("unexpected reply from the server: {0}")]
    BadResponse(&'static str),

    /// The auth token cannot be sent as a header value.
    #[error("invalid auth token: {0}")]
    InvalidToken(&'static str),

    /// Writing the result failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

impl From<tonic::Status> for CliError {
    fn from(status: tonic::Status) -> Self {
        CliError::Server(Box::new(status))
    }
}

/// A path as it appears in a message: as given (so `./artifact.json` stays
/// `./artifact.json`), with control characters escaped so that a strange
/// file name cannot break the one-line contract.
pub(crate) fn show_path(path: &Path) -> String {
    path.display()
        .to_string()
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// `<code word>: <server message>`, on one line.
fn describe_status(status: &tonic::Status) -> String {
    let word = code_word(status.code());
    let message = one_line(status.message());
    let mut text = if message.is_empty() {
        word.to_owned()
    } else if message.to_lowercase().starts_with(word) {
        // The server already said it; don't stutter ("not found: not found: ...").
        message
    } else {
        format!("{word}: {message}")
    };
    if status.code() == Code::Unauthenticated {
        text.push_str(" (pass --auth-token or set ARTIFACT_AUTH_TOKEN)");
    }
    text
}

/// A short word for each status code; the server's message carries the detail.
fn code_word(code: Code) -> &'static str {
    match code {
        Code::Ok => "unexpected success status",
        Code::Cancelled => "cancelled",
        Code::Unknown => "server error",
        Code::InvalidArgument => "invalid argument",
        Code::DeadlineExceeded => "timed out",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::PermissionDenied => "permission denied",
        Code::ResourceExhausted => "server busy",
        Code::FailedPrecondition => "refused",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out of range",
        Code::Unimplemented => "not supported by the server",
        Code::Internal => "server error",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "server error",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// Replaces control characters (newlines, escape sequences) so that a
/// message stays one line and cannot drive the terminal.
pub(crate) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// The reason inside an error: its source chain, without the generic outer
/// layers ("transport error") and without repeats.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(current) = next {
        let text = one_line(&current.to_string());
        let generic = text == "transport error" || text.is_empty();
        if !generic && !parts.iter().any(|seen| seen.contains(&text)) {
            parts.push(text);
        }
        next = current.source();
    }
    if parts.is_empty() {
        one_line(&error.to_string())
    } else {
        parts.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_spec_says_what_to_do() {
        let error = CliError::SpecMissing {
            path: "./artifact.json".into(),
        };
        assert_eq!(
            format!("error: {error}"),
            "error: ./artifact.json not found: run `artifact init` first"
        );
    }

    #[test]
    fn status_gets_a_code_word() {
        let error = CliError::from(tonic::Status::invalid_argument(
            "artifact.json: service is missing",
        ));
        assert_eq!(
            error.to_string(),
            "invalid argument: artifact.json: service is missing"
        );
    }

    #[test]
    fn status_message_is_not_prefixed_twice() {
        let error = CliError::from(tonic::Status::not_found("not found: service y"));
        assert_eq!(error.to_string(), "not found: service y");
    }

    #[test]
    fn unauthenticated_says_how_to_fix_it() {
        let error = CliError::from(tonic::Status::unauthenticated("missing token"));
        assert_eq!(
            error.to_string(),
            "unauthenticated: missing token (pass --auth-token or set ARTIFACT_AUTH_TOKEN)"
        );
    }

    #[test]
    fn multi_line_messages_become_one_line() {
        let error = CliError::from(tonic::Status::invalid_argument(
            "path \"qa/x\" is outside\nthe build\x1b[31m",
        ));
        let text = error.to_string();
        assert!(!text.contains('\n') && !text.contains('\x1b'), "{text:?}");
    }

    #[test]
    fn paths_with_control_characters_stay_on_one_line() {
        let shown = show_path(Path::new("dev/a\nb.yaml"));
        assert_eq!(shown, "dev/a\\nb.yaml");
    }
}
