//! The flags every command accepts, before or after the subcommand: where
//! the server is (`--server`, `HAMCTL_URL`), the token, the output format
//! and how long one call may take. The original hamctl's names are kept as
//! aliases so old scripts keep working, and its `--service` is global as
//! it was there (`hamctl --service gateway status`), read from
//! `shuttle.yaml` when not given (see `shuttle`).
//!
//! It owns their defaults and the checks that need no server (the address
//! form, by `cli_support`); it must not connect or print.

use clap::Args;
use cli_support::parse_server_url;

use crate::output::OutputFormat;

/// Flags accepted before or after any subcommand.
#[derive(Debug, Clone, Args)]
pub(crate) struct GlobalArgs {
    /// Address of the release manager server: a URL (http://host:port) or a
    /// bare host:port.
    #[arg(
        long,
        global = true,
        env = "HAMCTL_URL",
        // Not secret, but clap prints `HAMCTL_URL=` even when it is unset.
        hide_env_values = true,
        default_value = DEFAULT_SERVER,
        value_name = "URL",
        value_parser = server_url,
        // The original release manager's hamctl called it this (and,
        // in its first weeks, `--grpc-address`).
        aliases = ["http-base-url", "grpc-address"],
        help_heading = GLOBAL_HEADING
    )]
    pub(crate) server: String,

    /// Bearer token sent to the server with every call.
    #[arg(
        long,
        global = true,
        env = "HAMCTL_AUTH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        alias = "http-auth-token",
        help_heading = GLOBAL_HEADING
    )]
    pub(crate) auth_token: Option<String>,

    /// Output format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = OutputFormat::Table,
        help_heading = GLOBAL_HEADING
    )]
    pub(crate) output: OutputFormat,

    /// How long to wait for the server's answer to one call (`30s`, `2m`;
    /// `0`: no limit). The server is told too, and does not apply a write
    /// it could not apply in time. `watch` waits as long as it runs.
    #[arg(
        long,
        global = true,
        env = "HAMCTL_REQUEST_TIMEOUT",
        default_value = cli_support::DEFAULT_REQUEST_TIMEOUT,
        value_name = "DURATION",
        value_parser = cli_support::parse_request_timeout,
        aliases = ["http-timeout", "grpc-timeout"],
        help_heading = GLOBAL_HEADING
    )]
    pub(crate) request_timeout: std::time::Duration,

    /// Service to act on, e.g. product-api [default: `vars.service` of
    /// shuttle.yaml in the working directory].
    #[arg(long, global = true, help_heading = GLOBAL_HEADING)]
    pub(crate) service: Option<String>,

    /// The committer's email for writes, instead of git's (the original
    /// hamctl's flag; GIT_COMMITTER_EMAIL does the same).
    #[arg(long, global = true, hide = true, value_name = "EMAIL")]
    pub(crate) user_email: Option<String>,
}

/// Where `--help` lists the flags every command accepts.
const GLOBAL_HEADING: &str = "Global options";

/// `--server` / `HAMCTL_URL`: an empty value (an exported but unset
/// variable) means the default, as if it were not given.
fn server_url(raw: &str) -> Result<String, String> {
    if raw.trim().is_empty() {
        return parse_server_url(DEFAULT_SERVER);
    }
    parse_server_url(raw)
}

/// The server hamctl talks to when neither `--server` nor `HAMCTL_URL` says.
pub(crate) const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_server_means_the_default() {
        assert_eq!(server_url("").unwrap(), DEFAULT_SERVER);
        assert_eq!(server_url("  ").unwrap(), DEFAULT_SERVER);
        assert_eq!(server_url("h:1").unwrap(), "http://h:1");
    }

    #[test]
    fn default_server_is_a_valid_server_url() {
        let ok = |raw: &str| parse_server_url(raw).expect(raw);
        assert_eq!(ok(DEFAULT_SERVER), DEFAULT_SERVER);
    }
}
