//! `hamctl promote`: release to an environment the artifact running in the
//! environment before it in the promotion order.
//!
//! It owns the command's flags and its output. It must not work out the
//! promotion order; the server knows it.

use clap::Args;
use release_manager::pb::PromoteRequest;

use crate::error::CliError;
use crate::global::GlobalArgs;
use crate::output::{OutputFormat, Printer};
use crate::{client, identity, present, retry};

/// Release to an environment what runs in the environment before it
///
/// Promotes the artifact that runs in the previous environment of the
/// server's promotion order (for the first environment: the latest build of
/// the default branch). The commit's committer is you, as git knows you.
#[derive(Debug, Clone, Args)]
pub(crate) struct PromoteArgs {
    /// Filled in from the global `--service` (or shuttle.yaml) by
    /// `Cli::parse_checked`.
    #[arg(skip)]
    pub(crate) service: String,

    /// Environment to promote to, e.g. staging.
    #[arg(long, short = 'e')]
    pub(crate) env: String,

    /// Promote what runs in this environment instead of the one before
    /// --env in the promotion order.
    #[arg(long, value_name = "ENV")]
    pub(crate) from_env: Option<String>,

    /// Namespace folder to read from and release into [default:
    /// `vars.k8s.namespace` of shuttle.yaml, else as for release].
    #[arg(long, short = 'n')]
    pub(crate) namespace: Option<String>,

    #[command(flatten)]
    pub(crate) wait: crate::wait::WaitArgs,

    #[command(flatten)]
    pub(crate) retry: retry::RetryArgs,

    #[command(flatten)]
    pub(crate) obsolete: crate::obsolete::ObsoleteArgs,
}

pub(crate) async fn run(
    args: PromoteArgs,
    global: &GlobalArgs,
    printer: &mut Printer<'_>,
) -> Result<(), CliError> {
    let wait = args.wait.clone();
    let request_id = args.retry.id();
    args.obsolete.warn(printer)?;
    let request = PromoteRequest {
        service: args.service,
        environment: args.env,
        namespace: args.namespace.unwrap_or_default(),
        from_environment: args.from_env.unwrap_or_default(),
        request_id: request_id.clone(),
        committer: Some(identity::resolve_committer(global.user_email.as_deref())?),
    };
    let mut client = client::release_client(global).await?;
    let response = client
        .promote(request)
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
        OutputFormat::Table => {
            let source = if response.from_environment.is_empty() {
                format!("branch {}", result.branch)
            } else {
                response.from_environment.clone()
            };
            printer.line(&format!(
                "Promoted {} of {} from {} to {}{}",
                result.artifact_id,
                result.service,
                source,
                result.environment,
                present::where_suffix(&result)
            ))?;
        }
    }
    crate::wait::if_asked(&wait, &result, global, printer).await?;
    Ok(())
}
