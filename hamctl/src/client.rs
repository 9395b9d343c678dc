//! The connection to the server, as the global flags name it: the gRPC
//! clients the commands use (release and policy service), dialled by
//! `cli_support` with the bearer token attached.
//!
//! It must not build requests or interpret responses; the command modules
//! do.

use cli_support::{self, PolicyClient, ReleaseClient};

use crate::error::CliError;
use crate::global::GlobalArgs;

/// A connected [`ReleaseClient`] whose calls give up after
/// `--request-timeout`.
pub(crate) async fn release_client(global: &GlobalArgs) -> Result<ReleaseClient, CliError> {
    let timeout = cli_support::time_limit(global.request_timeout);
    Ok(cli_support::release_client(&global.server, token(global), timeout).await?)
}

/// A connected [`ReleaseClient`] for a stream that runs until stopped: only
/// the connect is bounded.
pub(crate) async fn streaming_release_client(
    global: &GlobalArgs,
) -> Result<ReleaseClient, CliError> {
    Ok(cli_support::release_client(&global.server, token(global), None).await?)
}

/// A connected [`PolicyClient`] whose calls give up after
/// `--request-timeout`.
pub(crate) async fn policy_client(global: &GlobalArgs) -> Result<PolicyClient, CliError> {
    let timeout = cli_support::time_limit(global.request_timeout);
    Ok(cli_support::policy_client(&global.server, token(global), timeout).await?)
}

/// The token the global flags give; empty when none.
fn token(global: &GlobalArgs) -> &str {
    global.auth_token.as_deref().unwrap_or_default()
}
