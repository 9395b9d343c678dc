//! The connection to the server, as the global flags name it: the gRPC
//! clients the commands use (release, policy and access service), dialled
//! by `cli_support` with the bearer token attached (the given token, or the
//! sign-in `credentials` keeps).
//!
//! It must not build requests or interpret responses; the command modules
//! do.

use cli_support::{self, AccessClient, PolicyClient, ReleaseClient};

use crate::credentials;

use crate::error::CliError;
use crate::global::GlobalArgs;

/// A connected [`ReleaseClient`] whose calls give up after
/// `--request-timeout`.
pub(crate) async fn release_client(global: &GlobalArgs) -> Result<ReleaseClient, CliError> {
    let timeout = cli_support::time_limit(global.request_timeout);
    let token = credentials::token(global).await?;
    Ok(cli_support::release_client(&global.server, &token, timeout).await?)
}

/// A connected [`ReleaseClient`] for a stream that runs until stopped: only
/// the connect is bounded.
pub(crate) async fn streaming_release_client(
    global: &GlobalArgs,
) -> Result<ReleaseClient, CliError> {
    let token = credentials::token(global).await?;
    Ok(cli_support::release_client(&global.server, &token, None).await?)
}

/// A connected [`PolicyClient`] whose calls give up after
/// `--request-timeout`.
pub(crate) async fn policy_client(global: &GlobalArgs) -> Result<PolicyClient, CliError> {
    let timeout = cli_support::time_limit(global.request_timeout);
    let token = credentials::token(global).await?;
    Ok(cli_support::policy_client(&global.server, &token, timeout).await?)
}

/// A connected [`AccessClient`] whose calls give up after
/// `--request-timeout`.
pub(crate) async fn access_client(global: &GlobalArgs) -> Result<AccessClient, CliError> {
    let timeout = cli_support::time_limit(global.request_timeout);
    let token = credentials::token(global).await?;
    Ok(cli_support::access_client(&global.server, &token, timeout).await?)
}
