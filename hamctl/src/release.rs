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
use crate::{client, identity, present, retry};

/// Release the latest build of a branch, or one artifact, to an environment
///
/// Give exactly one of --branch (its latest build), --current-branch (the
/// latest build of the branch checked out here) or --artifact (that build,
/// also one that is no longer the latest of its branch). The release
/// commit's committer is you, as git knows you: GIT_COMMITTER_NAME and
/// GIT_COMMITTER_EMAIL, else `git config user.name` and `user.email`.
#[derive(Debug, Clone, Args)]
#[command(group(
    ArgGroup::new("source")
        .required(true)
        .args(["branch", "artifact", "current_branch"])
))]
pub(crate) struct ReleaseArgs {
    /// Filled in from the global `--service` (or shuttle.yaml) by
    /// `Cli::parse_checked`.
    #[arg(skip)]
    pub(crate) service: String,

    /// Environment to release to, e.g. dev; several comma-separated
    /// (`dev,staging`) release to each in turn.
    #[arg(
        long,
        short = 'e',
        required = true,
        value_delimiter = ',',
        value_name = "ENV"
    )]
    pub(crate) env: Vec<String>,

    /// Release the latest build of this branch.
    #[arg(long, short = 'b')]
    pub(crate) branch: Option<String>,

    /// Release this artifact id, e.g. master-1a2b3c4d5e-6f7a8b9c0d.
    #[arg(long, value_name = "ID")]
    pub(crate) artifact: Option<String>,

    /// Release the latest build of the branch checked out in the working
    /// directory's git repository.
    #[arg(long, short = 'c')]
    pub(crate) current_branch: bool,

    /// Namespace folder to release into [default: the build's namespace, else
    /// the environment name].
    #[arg(long, short = 'n')]
    pub(crate) namespace: Option<String>,

    #[command(flatten)]
    pub(crate) wait: crate::wait::WaitArgs,

    #[command(flatten)]
    pub(crate) retry: retry::RetryArgs,
}

pub(crate) async fn run(
    args: ReleaseArgs,
    global: &GlobalArgs,
    printer: &mut Printer<'_>,
) -> Result<(), CliError> {
    let wait = args.wait.clone();
    // clap makes the three flags exclusive and one of them required.
    let source = match (args.branch, args.artifact, args.current_branch) {
        (Some(branch), _, _) => Source::Branch(branch),
        (None, Some(artifact), _) => Source::ArtifactId(artifact),
        (None, None, _) => Source::Branch(crate::shuttle::current_branch()?),
    };
    let committer = identity::resolve_committer(global.user_email.as_deref())?;
    let request_id = args.retry.id();
    let mut client = client::release_client(global).await?;
    let several = args.env.len() > 1;
    for environment in args.env {
        // One write per environment, each with its own id: retried with
        // the same --request-id, each lands once.
        let request_id = if several {
            format!("{request_id}-{environment}")
        } else {
            request_id.clone()
        };
        let request = ReleaseRequest {
            service: args.service.clone(),
            environment,
            source: Some(source.clone()),
            namespace: args.namespace.clone().unwrap_or_default(),
            request_id: request_id.clone(),
            committer: Some(committer.clone()),
        };
        let response = client
            .release(request)
            .await
            .map_err(|status| retry::write_failed(status, &request_id))?
            .into_inner();
        let api_json = present::api_json(&response);
        let result = present::require_result(response.result)?;
        match printer.format() {
            // The API's JSON of each answer: one document, or with several
            // environments one ReleaseResponse per line, as `watch` prints.
            OutputFormat::Json if several => printer.json_line(&api_json)?,
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
    }
    Ok(())
}
