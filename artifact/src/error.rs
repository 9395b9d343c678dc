//! The failures a command can end with, and how each reads as the one
//! `error: ...` line artifact prints.
//!
//! It owns the wording of file problems (naming the file); a
//! `tonic::Status` and a failed connect read as `cli_support`
//! words them (the token hint naming [`TOKEN_ENV`]). It must not print or pick
//! exit codes: `lib.rs` does that.

use std::path::Path;

use cli_support::{describe_status, describe_unsure_write, ConnectError};

/// The variable that holds the auth token, named when the server refuses a
/// call as unauthenticated.
const TOKEN_ENV: &str = "ARTIFACT_AUTH_TOKEN";

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

    /// `push` could not tell which service or branch the build is of.
    #[error("{0}")]
    Unresolved(String),

    /// The server could not be dialled (unreachable, or an unusable token).
    #[error(transparent)]
    Connect(#[from] ConnectError),

    /// The server answered with an error status.
    #[error("{}", describe_status(.0, TOKEN_ENV))]
    Server(Box<tonic::Status>),

    /// The upload failed in a way that may still have stored the build (no
    /// answer came, or the remote stopped answering mid-push).
    #[error("{}", describe_unsure_write(status, TOKEN_ENV, "build", request_id, retry.as_deref()))]
    MaybeApplied {
        status: Box<tonic::Status>,
        /// The id the upload was sent with.
        request_id: String,
        /// The command that retries it safely, once known.
        retry: Option<String>,
    },

    /// The server's reply lacks something it always sends.
    #[error("unexpected reply from the server: {0}")]
    BadResponse(&'static str),

    /// Writing the result failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

impl CliError {
    /// The failure of an upload sent with `request_id`: one that may have
    /// stored the build says so.
    pub(crate) fn upload_failed(status: tonic::Status, request_id: &str) -> Self {
        if cli_support::may_have_been_applied(&status) {
            CliError::MaybeApplied {
                status: Box::new(status),
                request_id: request_id.to_owned(),
                retry: None,
            }
        } else {
            CliError::Server(Box::new(status))
        }
    }

    /// Names, in an upload that may have been applied, the command that
    /// retries it: `argv` (the command line as given) with its request id.
    pub(crate) fn with_command_line(self, argv: &[String]) -> Self {
        match self {
            CliError::MaybeApplied {
                status,
                request_id,
                retry: None,
            } => {
                let retry = Some(cli_support::retry_command(argv, &request_id));
                CliError::MaybeApplied {
                    status,
                    request_id,
                    retry,
                }
            }
            other => other,
        }
    }
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
    fn unauthenticated_says_how_to_fix_it() {
        let error = CliError::from(tonic::Status::unauthenticated("missing token"));
        assert_eq!(
            error.to_string(),
            "unauthenticated: missing token (pass --auth-token or set ARTIFACT_AUTH_TOKEN)"
        );
    }

    #[test]
    fn paths_with_control_characters_stay_on_one_line() {
        let shown = show_path(Path::new("dev/a\nb.yaml"));
        assert_eq!(shown, "dev/a\\nb.yaml");
    }
}
