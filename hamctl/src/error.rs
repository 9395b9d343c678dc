//! The failures a command can end with, and how each reads as the one
//! `error: ...` line hamctl prints.
//!
//! It owns hamctl's own failures; a `tonic::Status` and a failed connect
//! read as `cli_support` words them (the token hint naming
//! [`TOKEN_ENV`]). It must not print or pick exit codes: `lib.rs` does that.

use cli_support::{describe_status, describe_unsure_write, ConnectError};

/// The variable that holds the auth token, named when the server refuses a
/// call as unauthenticated.
const TOKEN_ENV: &str = "HAMCTL_AUTH_TOKEN";

/// Why a command failed. Every variant means exit code 1, except an
/// [`CliError::Output`] broken pipe, which is a normal end,
/// [`CliError::WaitTimedOut`], exit code 3, and [`CliError::NoReports`],
/// exit code 4.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The server could not be dialled (unreachable, or an unusable token).
    #[error(transparent)]
    Connect(#[from] ConnectError),

    /// The server answered with an error status.
    // A server with single sign-on names `hamctl login` in its message.
    #[error("{}", describe_server_error(.0))]
    Server(Box<tonic::Status>),

    /// Signing in failed.
    #[error("sign-in failed: {0}")]
    SignIn(String),

    /// The kept sign-in expired and could not be renewed.
    #[error("your sign-in to {server} has expired and could not be renewed: run `hamctl login`")]
    SignInExpired { server: String },

    /// The kept sign-ins cannot be read or written.
    #[error("{0}")]
    Credentials(String),
    /// A write failed in a way that may still have applied it (no answer
    /// came, or the remote stopped answering mid-push).
    #[error("{}", describe_unsure_write(status, TOKEN_ENV, "write", request_id, retry.as_deref()))]
    MaybeApplied {
        status: Box<tonic::Status>,
        /// The id the write was sent with.
        request_id: String,
        /// The command that retries it safely, once known.
        retry: Option<String>,
    },

    /// The server's reply lacks something it always sends.
    #[error("unexpected reply from the server: {0}")]
    BadResponse(&'static str),

    /// Neither the environment nor git config names the committer.
    #[error("committer {field} unknown: set it with `git config --global {key} {example}`")]
    CommitterUnknown {
        field: &'static str,
        key: &'static str,
        example: &'static str,
    },

    /// `watch` lost its event stream and was not asked to reconnect.
    #[error("{0}; pass --reconnect to keep watching")]
    WatchEnded(String),

    /// `--wait`: the environment reported the release failed.
    #[error("{0}")]
    DeploymentFailed(String),

    /// `--wait`: no report settled the release in time (exit code 3).
    #[error("{0}")]
    WaitTimedOut(String),

    /// `--current-branch`: the working directory has no branch checked out.
    #[error("{0}")]
    CurrentBranch(String),
    /// `--wait`: the server takes no deployment reports (exit code 4).
    #[error("{0}")]
    NoReports(String),

    /// Writing the result failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// The server's words, and what hamctl adds: the server speaks to every
/// API client, hamctl knows where it took what the server refused.
fn describe_server_error(status: &tonic::Status) -> String {
    let mut text = describe_status(status, TOKEN_ENV);
    if status.code() == tonic::Code::InvalidArgument
        && status.message().starts_with("invalid committer")
    {
        text.push_str(" (hamctl takes it from `git config user.name` and `user.email`)");
    }
    text
}

impl CliError {
    /// Names, in a write that may have been applied, the command that
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthenticated_says_how_to_fix_it() {
        let error = CliError::from(tonic::Status::unauthenticated("missing token"));
        assert_eq!(
            error.to_string(),
            "unauthenticated: missing token (pass --auth-token or set HAMCTL_AUTH_TOKEN)"
        );
    }

    #[test]
    fn a_refused_committer_says_where_hamctl_took_it() {
        let error = CliError::from(tonic::Status::invalid_argument(
            "invalid committer: email is missing",
        ));
        assert_eq!(
            error.to_string(),
            "invalid argument: invalid committer: email is missing (hamctl takes it from `git config user.name` and `user.email`)"
        );
    }

    #[test]
    fn committer_unknown_reads_as_specified() {
        let error = CliError::CommitterUnknown {
            field: "email",
            key: "user.email",
            example: "you@example.com",
        };
        assert_eq!(
            format!("error: {error}"),
            "error: committer email unknown: set it with `git config --global user.email you@example.com`"
        );
    }
}
