//! The connection to the server, as the global flags name it: the gRPC
//! clients the commands use (release and policy service), dialled by
//! `release_manager::cli_support` with the bearer token attached.
//!
//! It must not build requests or interpret responses; the command modules
//! do.

use release_manager::cli_support::{self, PolicyClient, ReleaseClient};

use crate::cli::GlobalArgs;
use crate::error::CliError;

/// A connected [`ReleaseClient`].
pub(crate) async fn release_client(global: &GlobalArgs) -> Result<ReleaseClient, CliError> {
    Ok(cli_support::release_client(&global.server, token(global)).await?)
}

/// A connected [`PolicyClient`].
pub(crate) async fn policy_client(global: &GlobalArgs) -> Result<PolicyClient, CliError> {
    Ok(cli_support::policy_client(&global.server, token(global)).await?)
}

/// The token the global flags give; empty when none.
fn token(global: &GlobalArgs) -> &str {
    global.auth_token.as_deref().unwrap_or_default()
}
