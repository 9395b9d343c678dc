//! `hamctl services`: every service of the config repository, where it runs
//! and which branches have builds.
//!
//! It owns the command's table and JSON. It must not read the repository
//! itself; the server lists the services.

use clap::Args;
use release_manager::pb::{ListServicesRequest, ListServicesResponse};

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
    // Every page, as one answer: the services of all pages, no next token.
    let mut response = ListServicesResponse::default();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_services(ListServicesRequest {
                page_size: 1000,
                page_token,
            })
            .await?
            .into_inner();
        response.services.extend(page.services);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    match printer.format() {
        OutputFormat::Json => printer.json(&crate::present::api_json(&response))?,
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
            next_page_token: String::new(),
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
}
