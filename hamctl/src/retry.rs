//! `--request-id` of `release`, `promote` and `rollback`: the id that makes
//! a retried write land once, and the failure that says so when a write
//! may have landed although no answer said it did.
//!
//! It owns the flag and that failure; the id's form and the retry command
//! are `cli_support`'s, shared with `artifact`.

use clap::Args;

use crate::error::CliError;

/// The flag every write shares.
#[derive(Debug, Clone, Args)]
pub(crate) struct RetryArgs {
    /// The write's request id: a write whose id the server has seen lands
    /// once and answers as the first did, so a timed-out command can be
    /// run again safely with the id it printed [default: a new id].
    #[arg(long, value_name = "ID", value_parser = cli_support::parse_request_id)]
    pub(crate) request_id: Option<String>,
}

impl RetryArgs {
    /// The id to send: the one given, else a new one.
    pub(crate) fn id(&self) -> String {
        self.request_id
            .clone()
            .unwrap_or_else(cli_support::new_request_id)
    }
}

/// The failure of a write sent with `request_id`: one that may have landed
/// says so, with the id (lib.rs adds the command that retries it).
pub(crate) fn write_failed(status: tonic::Status, request_id: &str) -> CliError {
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
