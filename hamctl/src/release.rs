//! `hamctl release`: release the latest build of a branch, or one artifact,
//! to an environment.
//!
//! It owns the command's flags and its output. It must not decide anything
//! the server decides (which build is latest, the default namespace).

use clap::{ArgGroup, Args};
use release_manager::pb::release_request::Source;
use release_manager::pb::ReleaseRequest;

use crate::error::CliError;
use crate::global::GlobalArgs;
use crate::output::{OutputFormat, Printer};
use crate::{client, identity, present, request_id};

/// Release the latest build of a branch, or one artifact, to an environment
///
/// Give exactly one of --branch (its latest build) or --artifact (that
/// build, also one that is no longer the latest of its branch). The release
/// commit's committer is you, as git knows you: GIT_COMMITTER_NAME and
/// GIT_COMMITTER_EMAIL, else `git config user.name` and `user.email`.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["branch", "artifact"])))]
pub(crate) struct ReleaseArgs {
    /// Service to release, e.g. product-api.
    #[arg(long)]
    pub(crate) service: String,

    /// Environment to release to, e.g. dev.
    #[arg(long)]
    pub(crate) env: String,

    /// Release the latest build of this branch.
    #[arg(long)]
    pub(crate) branch: Option<String>,

    /// Release this artifact id, e.g. master-1a2b3c4d5e-6f7a8b9c0d.
    #[arg(long, value_name = "ID")]
    pub(crate) artifact: Option<String>,

    /// Namespace folder to release into [default: the build's namespace, else
    /// the environment name].
    #[arg(long)]
    pub(crate) namespace: Option<String>,

    #[command(flatten)]
    pub(crate) wait: crate::wait::WaitArgs,
}

pub(crate) async fn run(
    args: ReleaseArgs,
    global: &GlobalArgs,
    printer: &mut Printer<'_>,
) -> Result<(), CliError> {
    let wait = args.wait.clone();
    let request = ReleaseRequest {
        service: args.service,
        environment: args.env,
        // clap makes the two flags exclusive and one of them required.
        source: match (args.branch, args.artifact) {
            (Some(branch), _) => Some(Source::Branch(branch)),
            (None, artifact) => artifact.map(Source::ArtifactId),
        },
        namespace: args.namespace.unwrap_or_default(),
        request_id: request_id::new_request_id(),
        committer: Some(identity::resolve_committer()?),
    };
    let mut client = client::release_client(global).await?;
    let response = client.release(request).await?.into_inner();
    let api_json = present::api_json(&response);
    let result = present::require_result(response.result)?;
    match printer.format() {
        OutputFormat::Json => printer.json(&api_json)?,
        OutputFormat::Table if present::is_no_change(&result) => {
            printer.line(&present::no_change_line(&result))?;
        }
        OutputFormat::Table => printer.line(&format!(
            "Released {} of {} to {}{}",
            result.artifact_id,
            result.service,
            result.environment,
            present::where_suffix(&result)
        ))?,
    }
    crate::wait::if_asked(&wait, &result, global, printer).await?;
    Ok(())
}
