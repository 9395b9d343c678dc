//! `hamctl status`: what runs in every environment for one service.
//!
//! It owns the command's flags, the status table and its JSON. It must not
//! decide which environments exist; the server lists them in promotion
//! order.

use clap::Args;
use release_manager::pb::{StatusRequest, StatusResponse};

use crate::error::CliError;
use crate::global::GlobalArgs;
use crate::output::{OutputFormat, Printer, Table};
use crate::{client, present};

/// Show what runs in every environment for a service
///
/// One row per environment: the artifact released there, its branch and
/// author, when and by whom it was released, its vulnerability counts
/// (high/medium/low) and, when the cluster reports, whether it is deployed
/// ("not reported" on a server that takes no deployment reports). An
/// environment whose controller failed to reconcile it, naming no service,
/// gets a line of its own below the table.
#[derive(Debug, Clone, Args)]
pub(crate) struct StatusArgs {
    /// Filled in from the global `--service` (or shuttle.yaml) by
    /// `Cli::parse_checked`.
    #[arg(skip)]
    pub(crate) service: String,

    /// Namespace to look in [default: `vars.k8s.namespace` of
    /// shuttle.yaml, else each environment's own namespace, else wherever
    /// the service is released].
    #[arg(long, short = 'n')]
    pub(crate) namespace: Option<String>,

    #[command(flatten)]
    pub(crate) obsolete: crate::obsolete::ObsoleteArgs,
}

pub(crate) async fn run(
    args: StatusArgs,
    global: &GlobalArgs,
    printer: &mut Printer<'_>,
) -> Result<(), CliError> {
    args.obsolete.warn(printer)?;
    let request = StatusRequest {
        service: args.service,
        namespace: args.namespace.unwrap_or_default(),
    };
    let mut client = client::release_client(global).await?;
    let response = client.status(request).await?.into_inner();
    match printer.format() {
        OutputFormat::Json => printer.json(&present::api_json(&response))?,
        OutputFormat::Table => {
            printer.table(&status_table(&response))?;
            for environment in &response.environments {
                for error in &environment.reconciliation_errors {
                    printer.line(&cli_support::one_line(&present::reconciliation_error_line(
                        error,
                    )))?;
                }
            }
        }
    }
    Ok(())
}

/// One release as the table shows it: an environment's namespace.
struct Row<'a> {
    environment: &'a str,
    namespace: &'a str,
    artifact: Option<&'a release_manager::pb::ArtifactSummary>,
    released_at: Option<&'a prost_types::Timestamp>,
    released_by: Option<&'a release_manager::pb::Person>,
    deployment: Option<&'a release_manager::pb::Deployment>,
}

/// The rows of one environment: one per namespace the service is released
/// to (a server that lists none: the release it describes), or one row of
/// dashes where it was never released.
fn rows(env: &release_manager::pb::EnvironmentStatus) -> Vec<Row<'_>> {
    if env.namespaces.is_empty() {
        return vec![Row {
            environment: &env.environment,
            namespace: &env.namespace,
            artifact: env.artifact.as_ref(),
            released_at: env.released_at.as_ref(),
            released_by: env.released_by.as_ref(),
            deployment: env.deployment.as_ref(),
        }];
    }
    env.namespaces
        .iter()
        .map(|ns| Row {
            environment: &env.environment,
            namespace: &ns.namespace,
            artifact: ns.artifact.as_ref(),
            released_at: ns.released_at.as_ref(),
            released_by: ns.released_by.as_ref(),
            deployment: ns.deployment.as_ref(),
        })
        .collect()
}

/// One row per environment and namespace the service is released to. A
/// NAMESPACE column appears only when some release lives outside its
/// environment's default namespace, so the common case stays narrow.
fn status_table(response: &StatusResponse) -> Table {
    let rows: Vec<Row<'_>> = response.environments.iter().flat_map(rows).collect();
    let show_namespace = rows
        .iter()
        .any(|row| !row.namespace.is_empty() && row.namespace != row.environment);
    let mut header = vec!["ENV"];
    if show_namespace {
        header.push("NAMESPACE");
    }
    header.extend([
        "ARTIFACT",
        "BRANCH",
        "AUTHOR",
        "RELEASED",
        "BY",
        "VULNS(h/m/l)",
    ]);
    // Only when a controller reports: otherwise every row says "pending".
    let show_deployment = rows.iter().any(|row| {
        row.deployment
            .is_some_and(|d| d.state != release_manager::pb::DeploymentState::Pending as i32)
    });
    if show_deployment {
        header.push("DEPLOYED");
    }
    let mut table = Table::new(&header);
    for row in &rows {
        let mut cells = vec![row.environment.to_string()];
        if show_namespace {
            cells.push(row.namespace.to_string());
        }
        // Never released there: the table pads the row with dashes.
        if let Some(artifact) = row.artifact {
            cells.extend([
                artifact.artifact_id.clone(),
                artifact.branch.clone(),
                present::person_cell(artifact.author.as_ref()),
                present::time_cell(row.released_at),
                present::person_cell(row.released_by),
                present::vulnerabilities_cell(artifact.vulnerabilities.as_ref()),
            ]);
            if show_deployment {
                cells.push(present::deployment_cell(row.deployment));
            }
        }
        table.push(cells);
    }
    table
}

#[cfg(test)]
mod tests {
    use prost_types::Timestamp;
    use release_manager::pb::{ArtifactSummary, EnvironmentStatus, Person, Vulnerabilities};

    use super::*;

    fn released(env: &str, namespace: &str, artifact: &str, author: &str) -> EnvironmentStatus {
        EnvironmentStatus {
            environment: env.into(),
            namespace: namespace.into(),
            artifact: Some(ArtifactSummary {
                artifact_id: artifact.into(),
                service: "product-api".into(),
                branch: "master".into(),
                author: Some(Person {
                    name: author.into(),
                    email: "a@example.com".into(),
                }),
                vulnerabilities: Some(Vulnerabilities {
                    high: 0,
                    medium: 12,
                    low: 3,
                }),
                ..Default::default()
            }),
            released_at: Some(Timestamp {
                seconds: 1_714_566_896,
                nanos: 0,
            }),
            released_by: Some(Person {
                name: "Ops Bot".into(),
                email: "ops@example.com".into(),
            }),
            release_commit_sha: "abcdef0123".into(),
            deployment: Some(release_manager::pb::Deployment {
                state: release_manager::pb::DeploymentState::Pending as i32,
                ..Default::default()
            }),
            namespaces: Vec::new(),
            reconciliation_errors: Vec::new(),
        }
    }

    fn response(environments: Vec<EnvironmentStatus>) -> StatusResponse {
        StatusResponse {
            service: "product-api".into(),
            environments,
        }
    }

    #[test]
    fn table_aligns_environments() {
        let mut prod = released("prod", "prod", "master-1-2", "Jörg");
        prod.artifact = None;
        prod.released_at = None;
        prod.released_by = None;
        let table = status_table(&response(vec![
            released("dev", "dev", "master-abc123-def456", "Jane Doe"),
            released("staging", "staging", "master-1-2", "Jörg"),
            prod,
        ]));
        assert_eq!(
            table.render(false),
            "\
ENV       ARTIFACT               BRANCH   AUTHOR     RELEASED               BY        VULNS(h/m/l)
dev       master-abc123-def456   master   Jane Doe   2024-05-01 12:34 UTC   Ops Bot   0/12/3
staging   master-1-2             master   Jörg       2024-05-01 12:34 UTC   Ops Bot   0/12/3
prod      -                      -        -          -                      -         -
"
        );
    }

    #[test]
    fn deployed_column_once_a_controller_reports() {
        let mut dev = released("dev", "dev", "a", "x");
        dev.deployment = Some(release_manager::pb::Deployment {
            state: release_manager::pb::DeploymentState::Failed as i32,
            message: "ImagePullBackOff".into(),
            ..Default::default()
        });
        let text =
            status_table(&response(vec![dev, released("prod", "prod", "b", "y")])).render(false);
        let mut lines = text.lines();
        assert!(lines.next().unwrap().ends_with("DEPLOYED"), "{text}");
        assert!(
            lines.next().unwrap().ends_with("failed: ImagePullBackOff"),
            "{text}"
        );
        assert!(lines.next().unwrap().ends_with("pending"), "{text}");
        let quiet = status_table(&response(vec![released("dev", "dev", "a", "x")])).render(false);
        assert!(!quiet.contains("DEPLOYED"), "{quiet}");
    }

    #[test]
    fn namespace_column_only_when_it_says_something() {
        let table = status_table(&response(vec![
            released("dev", "dev", "a", "x"),
            released("prod", "team-a", "b", "y"),
        ]));
        let text = table.render(false);
        let header = text.lines().next().expect("header");
        assert!(
            header.starts_with("ENV    NAMESPACE   ARTIFACT"),
            "{header}"
        );
        assert!(text.contains("prod   team-a      b"), "{text}");
    }

    #[test]
    fn every_namespace_of_an_environment_is_a_row() {
        let mut dev = released("dev", "dev", "a", "x");
        let one = released("dev", "dev", "a", "x");
        let other = released("dev", "team-b", "b", "y");
        dev.namespaces = [one, other]
            .into_iter()
            .map(|e| release_manager::pb::NamespaceStatus {
                namespace: e.namespace,
                artifact: e.artifact,
                released_at: e.released_at,
                released_by: e.released_by,
                release_commit_sha: e.release_commit_sha,
                deployment: e.deployment,
            })
            .collect();
        let text = status_table(&response(vec![dev])).render(false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[1].starts_with("dev   dev         a"), "{text}");
        assert!(lines[2].starts_with("dev   team-b      b"), "{text}");
    }

    #[test]
    fn json_is_the_apis() {
        let mut prod = released("prod", "prod", "x", "y");
        prod.artifact = None;
        let value = present::api_json(&response(vec![released("dev", "dev", "a", "x"), prod]));
        assert_eq!(value["service"], "product-api");
        assert_eq!(value["environments"][0]["artifact"]["artifactId"], "a");
        assert_eq!(
            value["environments"][0]["artifact"]["vulnerabilities"]["medium"],
            12
        );
        assert_eq!(
            value["environments"][0]["releasedAt"],
            "2024-05-01T12:34:56Z"
        );
        assert_eq!(value["environments"][1].get("artifact"), None);
    }
}
