//! `hamctl services`: every service of the config repository, where it runs
//! and which branches have builds.
//!
//! It owns the command's table and JSON. It must not read the repository
//! itself; the server lists the services.

use clap::Args;
use release_manager::pb::{ListServicesRequest, ListServicesResponse};
use serde_json::{json, Value};

use crate::client;
use crate::error::CliError;
use crate::global::GlobalArgs;
use crate::output::{OutputFormat, Printer, Table};

/// List the services of the config repository
///
/// One row per service with builds or releases: the environments it runs
/// in and the branches that have builds.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServicesArgs {}

pub(crate) async fn run(
    _args: ServicesArgs,
    global: &GlobalArgs,
    printer: &mut Printer<'_>,
) -> Result<(), CliError> {
    let mut client = client::release_client(global).await?;
    let response = client
        .list_services(ListServicesRequest {})
        .await?
        .into_inner();
    match printer.format() {
        OutputFormat::Json => printer.json(&services_json(&response))?,
        OutputFormat::Table => printer.table(&services_table(&response))?,
    }
    Ok(())
}

fn services_table(response: &ListServicesResponse) -> Table {
    let mut table = Table::new(&["SERVICE", "RUNS IN", "BRANCHES"]);
    for service in &response.services {
        table.push(vec![
            service.name.clone(),
            service.environments.join(", "),
            service.branches.join(", "),
        ]);
    }
    table
}

fn services_json(response: &ListServicesResponse) -> Value {
    let services: Vec<Value> = response
        .services
        .iter()
        .map(|service| {
            json!({
                "name": service.name,
                "environments": service.environments,
                "branches": service.branches,
            })
        })
        .collect();
    json!({ "services": services })
}

#[cfg(test)]
mod tests {
    use release_manager::pb::ServiceSummary;

    use super::*;

    fn response() -> ListServicesResponse {
        ListServicesResponse {
            services: vec![
                ServiceSummary {
                    name: "checkout-web".into(),
                    environments: vec![],
                    branches: vec!["master".into()],
                },
                ServiceSummary {
                    name: "product-api".into(),
                    environments: vec!["dev".into(), "prod".into()],
                    branches: vec!["feature/x".into(), "master".into()],
                },
            ],
        }
    }

    #[test]
    fn one_row_per_service() {
        let text = services_table(&response()).render(false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("SERVICE"), "{text}");
        assert!(lines[2].contains("dev, prod"), "{text}");
        assert!(lines[2].contains("feature/x, master"), "{text}");
    }

    #[test]
    fn json_lists_names_environments_and_branches() {
        let value = services_json(&response());
        assert_eq!(value["services"][1]["name"], "product-api");
        assert_eq!(value["services"][1]["environments"][1], "prod");
        assert_eq!(value["services"][0]["environments"], json!([]));
    }
}
