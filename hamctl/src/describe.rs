//! `hamctl describe`: history. `describe release` lists the releases of a
//! service in one environment, `describe artifact` the builds of a service.
//!
//! It owns both subcommands' flags, tables and JSON. It must not page or
//! filter history itself; the server answers newest first, `count` long.

use clap::{Args, Subcommand};
use release_manager::pb::{
    DescribeArtifactRequest, DescribeArtifactResponse, DescribeReleaseRequest,
    DescribeReleaseResponse,
};

use crate::error::CliError;
use crate::global::GlobalArgs;
use crate::output::{OutputFormat, Printer, Table};
use crate::{client, present};

/// Show the release history of an environment, or the builds of a service
#[derive(Debug, Clone, Args)]
pub(crate) struct DescribeArgs {
    #[command(subcommand)]
    pub(crate) what: DescribeCommand,
}

// `describe release` and `describe artifact`; their help is the doc
// comment of their `Args` structs (a doc comment here would override it).
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum DescribeCommand {
    #[command(alias = "releases")]
    Release(DescribeReleaseArgs),
    #[command(alias = "artifacts")]
    Artifact(DescribeArtifactArgs),
}

/// List the releases of a service in an environment, newest first
///
/// Shows what was released, why (release-branch, release-artifact, promote,
/// rollback, auto-release), when, by whom, and the release commit. Changes
/// of the release folder that kept its artifact (hand edits, reverts of
/// them) are listed as `edit`, with who edited.
#[derive(Debug, Clone, Args)]
pub(crate) struct DescribeReleaseArgs {
    /// Filled in from the global `--service` (or shuttle.yaml) by
    /// `Cli::parse_checked`.
    #[arg(skip)]
    pub(crate) service: String,

    /// Environment whose history to show, e.g. prod.
    #[arg(long, short = 'e')]
    pub(crate) env: String,

    /// How many releases to show [default: 5].
    #[arg(long, short = 'c', value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) count: Option<u32>,

    /// The original hamctl's namespace flag: the history of an environment
    /// covers every namespace, so it is accepted and changes nothing.
    #[arg(long, short = 'n', hide = true)]
    pub(crate) namespace: Option<String>,

    /// The original hamctl's Go template: refused, naming `--output json`.
    #[command(flatten)]
    pub(crate) template: crate::shuttle::TemplateArgs,
}

/// List the builds of a service, newest first
///
/// All branches, or only --branch.
#[derive(Debug, Clone, Args)]
pub(crate) struct DescribeArtifactArgs {
    /// Filled in from the global `--service` (or shuttle.yaml) by
    /// `Cli::parse_checked`.
    #[arg(skip)]
    pub(crate) service: String,

    /// Only builds of this branch [default: all branches].
    #[arg(long, short = 'b')]
    pub(crate) branch: Option<String>,

    /// How many builds to show [default: 5].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) count: Option<u32>,

    /// The original hamctl's Go template: refused, naming `--output json`.
    #[command(flatten)]
    pub(crate) template: crate::shuttle::TemplateArgs,
}

/// Entries shown when `--count` is not given.
const DEFAULT_COUNT: u32 = 5;

/// Longest commit-message excerpt in the artifact table.
const MESSAGE_WIDTH: usize = 50;

pub(crate) async fn run(
    args: DescribeArgs,
    global: &GlobalArgs,
    printer: &mut Printer<'_>,
) -> Result<(), CliError> {
    match args.what {
        DescribeCommand::Release(args) => run_release(args, global, printer).await,
        DescribeCommand::Artifact(args) => run_artifact(args, global, printer).await,
    }
}

async fn run_release(
    args: DescribeReleaseArgs,
    global: &GlobalArgs,
    printer: &mut Printer<'_>,
) -> Result<(), CliError> {
    let request = DescribeReleaseRequest {
        service: args.service,
        environment: args.env,
        page_size: args.count.unwrap_or(DEFAULT_COUNT),
        ..Default::default()
    };
    let mut client = client::release_client(global).await?;
    let response = client.describe_release(request).await?.into_inner();
    match printer.format() {
        OutputFormat::Json => printer.json(&present::api_json(&response))?,
        OutputFormat::Table if response.releases.is_empty() => printer.line(&format!(
            "No releases of {} in {}",
            response.service, response.environment
        ))?,
        OutputFormat::Table => printer.table(&releases_table(&response))?,
    }
    Ok(())
}

async fn run_artifact(
    args: DescribeArtifactArgs,
    global: &GlobalArgs,
    printer: &mut Printer<'_>,
) -> Result<(), CliError> {
    let request = DescribeArtifactRequest {
        service: args.service,
        branch: args.branch.clone().unwrap_or_default(),
        page_size: args.count.unwrap_or(DEFAULT_COUNT),
        ..Default::default()
    };
    let mut client = client::release_client(global).await?;
    let response = client.describe_artifact(request).await?.into_inner();
    match printer.format() {
        OutputFormat::Json => printer.json(&present::api_json(&response))?,
        OutputFormat::Table if response.artifacts.is_empty() => {
            let scope = args
                .branch
                .map_or_else(String::new, |branch| format!(" on branch {branch}"));
            printer.line(&format!("No builds of {}{scope}", response.service))?;
        }
        OutputFormat::Table => printer.table(&artifacts_table(&response))?,
    }
    Ok(())
}

/// A NAMESPACE column appears only when some release went outside the
/// environment's default namespace.
fn releases_table(response: &DescribeReleaseResponse) -> Table {
    let show_namespace = response
        .releases
        .iter()
        .any(|release| !release.namespace.is_empty() && release.namespace != response.environment);
    let mut header = vec!["ARTIFACT"];
    if show_namespace {
        header.push("NAMESPACE");
    }
    header.extend(["INTENT", "RELEASED AT", "BY", "AUTHOR", "COMMIT"]);
    let mut table = Table::new(&header);
    for release in &response.releases {
        let mut row = vec![release.artifact_id.clone()];
        if show_namespace {
            row.push(release.namespace.clone());
        }
        row.extend([
            present::intent_word(release.intent()).to_owned(),
            present::time_cell(release.released_at.as_ref()),
            // An edit names who edited, in the same column.
            present::person_cell(release.released_by.as_ref().or(release.edited_by.as_ref())),
            present::person_cell(release.author.as_ref()),
            present::short_sha(&release.commit_sha).to_owned(),
        ]);
        table.push(row);
    }
    table
}

fn artifacts_table(response: &DescribeArtifactResponse) -> Table {
    let mut table = Table::new(&[
        "ARTIFACT",
        "BRANCH",
        "AUTHOR",
        "BUILT",
        "VULNS(h/m/l)",
        "MESSAGE",
    ]);
    for artifact in &response.artifacts {
        table.push(vec![
            artifact.artifact_id.clone(),
            artifact.branch.clone(),
            present::person_cell(artifact.author.as_ref()),
            present::time_cell(artifact.build_date.as_ref()),
            present::vulnerabilities_cell(artifact.vulnerabilities.as_ref()),
            present::message_cell(&artifact.message, MESSAGE_WIDTH),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use prost_types::Timestamp;
    use release_manager::pb::{ArtifactSummary, Person, ReleaseIntent, ReleaseRecord};

    use super::*;

    fn person(name: &str) -> Option<Person> {
        Some(Person {
            name: name.into(),
            email: format!("{}@example.com", name.to_lowercase().replace(' ', ".")),
        })
    }

    fn record(artifact: &str, namespace: &str, intent: ReleaseIntent) -> ReleaseRecord {
        ReleaseRecord {
            artifact_id: artifact.into(),
            namespace: namespace.into(),
            intent: intent.into(),
            released_at: Some(Timestamp {
                seconds: 1_714_566_896,
                nanos: 0,
            }),
            released_by: person("Ops Bot"),
            author: person("Jane Doe"),
            commit_sha: "0123456789abcdef".into(),
            title: format!("[prod/product-api] release {artifact}"),
            edited_by: None,
        }
    }

    fn history(releases: Vec<ReleaseRecord>) -> DescribeReleaseResponse {
        DescribeReleaseResponse {
            service: "product-api".into(),
            environment: "prod".into(),
            releases,
            next_page_token: String::new(),
        }
    }

    #[test]
    fn release_table_aligns() {
        let table = releases_table(&history(vec![
            record("master-2-2", "prod", ReleaseIntent::Rollback),
            record("master-33333-3", "prod", ReleaseIntent::Promote),
        ]));
        assert_eq!(
            table.render(false),
            "\
ARTIFACT         INTENT     RELEASED AT            BY        AUTHOR     COMMIT
master-2-2       rollback   2024-05-01 12:34 UTC   Ops Bot   Jane Doe   0123456
master-33333-3   promote    2024-05-01 12:34 UTC   Ops Bot   Jane Doe   0123456
"
        );
    }

    #[test]
    fn release_table_shows_foreign_namespaces() {
        let table = releases_table(&history(vec![
            record("a", "prod", ReleaseIntent::AutoRelease),
            record("b", "team-x", ReleaseIntent::ReleaseArtifact),
        ]));
        let text = table.render(false);
        assert!(text.starts_with("ARTIFACT   NAMESPACE   INTENT"), "{text}");
        assert!(
            text.contains("b          team-x      release-artifact"),
            "{text}"
        );
    }

    #[test]
    fn release_json_is_the_apis() {
        let value = present::api_json(&history(vec![record(
            "a",
            "prod",
            ReleaseIntent::ReleaseBranch,
        )]));
        assert_eq!(value["environment"], "prod");
        let first = &value["releases"][0];
        assert_eq!(first["intent"], "RELEASE_INTENT_RELEASE_BRANCH");
        assert_eq!(first["releasedAt"], "2024-05-01T12:34:56Z");
        assert_eq!(first["releasedBy"]["name"], "Ops Bot");
        assert_eq!(first["commitSha"], "0123456789abcdef");
    }

    #[test]
    fn artifact_table_cuts_messages_to_one_line() {
        let table = artifacts_table(&DescribeArtifactResponse {
            service: "product-api".into(),
            artifacts: vec![ArtifactSummary {
                artifact_id: "master-1-2".into(),
                branch: "master".into(),
                author: person("Jane Doe"),
                message: "Fix the thing\n\nLong body".into(),
                ..Default::default()
            }],
            next_page_token: String::new(),
        });
        assert_eq!(
            table.render(false),
            "\
ARTIFACT     BRANCH   AUTHOR     BUILT   VULNS(h/m/l)   MESSAGE
master-1-2   master   Jane Doe   -       -              Fix the thing
"
        );
    }
}
