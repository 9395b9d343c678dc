//! `hamctl rollback`: put back an earlier release of a service in an
//! environment.
//!
//! It owns the command's flags and its output. It must not pick the release
//! to go back to; the server reads that from history.

use clap::Args;
use release_manager::pb::RollbackRequest;

use crate::error::CliError;
use crate::global::GlobalArgs;
use crate::output::{OutputFormat, Printer};
use crate::{client, identity, present, retry};

/// Put back the release before the current one, or a named earlier one
///
/// Without --artifact, the release before the current one comes back;
/// with it, that earlier artifact. The commit's committer is you, as git
/// knows you.
#[derive(Debug, Clone, Args)]
pub(crate) struct RollbackArgs {
    /// Filled in from the global `--service` (or shuttle.yaml) by
    /// `Cli::parse_checked`.
    #[arg(skip)]
    pub(crate) service: String,

    /// Environment to roll back, e.g. prod.
    #[arg(long, short = 'e')]
    pub(crate) env: String,

    /// The earlier artifact id to put back [default: the release before the
    /// current one].
    #[arg(long, value_name = "ID")]
    pub(crate) artifact: Option<String>,

    /// Namespace folder [default: `vars.k8s.namespace` of shuttle.yaml,
    /// else the namespace of the current release].
    #[arg(long, short = 'n')]
    pub(crate) namespace: Option<String>,

    /// The original hamctl's length of its interactive list: accepted and
    /// ignored (without --artifact the release before the current one
    /// comes back; --artifact names any earlier one).
    #[arg(long, hide = true, value_name = "N")]
    pub(crate) length: Option<u32>,

    #[command(flatten)]
    pub(crate) wait: crate::wait::WaitArgs,

    #[command(flatten)]
    pub(crate) retry: retry::RetryArgs,
}

pub(crate) async fn run(
    args: RollbackArgs,
    global: &GlobalArgs,
    printer: &mut Printer<'_>,
) -> Result<(), CliError> {
    let wait = args.wait.clone();
    if args.length.is_some() {
        printer.note(
            "warning: --length is ignored: rollback puts back the release before the current \
             one, or the one --artifact names (see `hamctl describe release --count N`)",
        )?;
    }
    let request_id = args.retry.id();
    let request = RollbackRequest {
        service: args.service,
        environment: args.env,
        artifact_id: args.artifact.unwrap_or_default(),
        namespace: args.namespace.unwrap_or_default(),
        request_id: request_id.clone(),
        committer: Some(identity::resolve_committer(global.user_email.as_deref())?),
    };
    let mut client = client::release_client(global).await?;
    let response = client
        .rollback(request)
        .await
        .map_err(|status| retry::write_failed(status, &request_id))?
        .into_inner();
    let api_json = present::api_json(&response);
    let result = present::require_result(response.result)?;
    match printer.format() {
        OutputFormat::Json => printer.json(&api_json)?,
        OutputFormat::Table if present::is_no_change(&result) => {
            printer.line(&present::no_change_line(&result))?;
        }
        OutputFormat::Table => printer.line(&format!(
            "Rolled back {} in {} from {} to {}{}",
            result.service,
            result.environment,
            response.previous_artifact_id,
            result.artifact_id,
            present::where_suffix(&result)
        ))?,
    }
    crate::wait::if_asked(&wait, &result, global, printer).await?;
    Ok(())
}
