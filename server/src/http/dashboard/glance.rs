//! States at a glance on the matrix: what the cluster reported, joined to
//! the cells of the environments whose controller reports; per
//! environment, how many services are deployed, progressing, failed,
//! pending (released, no report covers the release yet) and promotable;
//! the environment's reconciliation error when its controller reports one;
//! and the filter by state that the URL keeps
//! (`?q=<name>&state=<state>&env=<environment>`), so a view can be shared.
//! The page script applies the same filter and recounts the same way from
//! the cells when rows change (`dashboard.js`).

use std::collections::HashMap;

use maud::{html, Markup};

use super::model::{Cell, Matrix, Row};
use crate::deployments::Deployments;
use crate::domain::deployment::State as Deployed;

/// The states counted and filtered by, in the order they are shown.
pub(crate) const STATES: [&str; 5] = ["deployed", "progressing", "failed", "pending", "promotable"];

/// One environment at a glance.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EnvironmentGlance {
    /// The environment.
    pub(crate) environment: String,
    /// A controller reports on it: only then are deployment states known
    /// (elsewhere a release is never "pending", only unreported).
    pub(crate) reporting: bool,
    /// Services in each of [`STATES`].
    pub(crate) counts: [usize; 5],
    /// What its controller said went wrong for the environment as a whole.
    pub(crate) reconciliation_error: Option<String>,
}

/// Whether `cell` is in `state` (one of [`STATES`]).
fn in_state(cell: &Cell, state: &str) -> bool {
    match state {
        "promotable" => cell.promotable,
        word => cell.deployment.as_ref().is_some_and(|(w, _)| *w == word),
    }
}

/// Counts every environment of `matrix`; `reporting` and
/// `reconciliation_error` say what the deployment store knows of an
/// environment.
pub(crate) fn glance(
    matrix: &Matrix,
    reporting: impl Fn(&str) -> bool,
    reconciliation_error: impl Fn(&str) -> Option<String>,
) -> Vec<EnvironmentGlance> {
    matrix
        .environments
        .iter()
        .enumerate()
        .map(|(i, environment)| {
            let mut counts = [0; 5];
            for row in &matrix.rows {
                if let Some(cell) = row.cells.get(i) {
                    for (count, state) in counts.iter_mut().zip(STATES) {
                        *count += usize::from(in_state(cell, state));
                    }
                }
            }
            EnvironmentGlance {
                environment: environment.clone(),
                reporting: reporting(environment),
                counts,
                reconciliation_error: reconciliation_error(environment),
            }
        })
        .collect()
}

/// Joins what the cluster reported to the cells of environments whose
/// controller reports.
pub(crate) fn with_deployments(mut matrix: Matrix, deployments: &Deployments) -> Matrix {
    for row in &mut matrix.rows {
        join_deployments(row, &matrix.environments, deployments);
    }
    matrix
}

pub(crate) fn join_deployments(row: &mut Row, environments: &[String], deployments: &Deployments) {
    for (cell, environment) in row.cells.iter_mut().zip(environments) {
        if !cell.artifact_id.is_empty() && deployments.reporting(environment) {
            cell.deployment = Some(
                match deployments.of(environment, &row.service, &cell.release_commit) {
                    Some(deployment) => {
                        let word = match deployment.state {
                            Deployed::Succeeded => "deployed",
                            Deployed::Failed => "failed",
                            Deployed::Progressing => "progressing",
                        };
                        (word, deployment.message)
                    }
                    None => ("pending", String::new()),
                },
            );
        }
    }
}

/// Every environment of `matrix` at a glance, as the deployment store
/// knows them.
pub(crate) fn of(matrix: &Matrix, deployments: &Deployments) -> Vec<EnvironmentGlance> {
    glance(
        matrix,
        |environment| deployments.reporting(environment),
        |environment| reconciliation_error(deployments, environment),
    )
}

/// The environment's reconciliation error, from the deployment store:
/// what its controllers said failed for the environment as a whole (a
/// failure that names no service), each as `source: message`.
pub(crate) fn reconciliation_error(deployments: &Deployments, environment: &str) -> Option<String> {
    let errors = deployments.errors_of(environment);
    (!errors.is_empty()).then(|| {
        errors
            .into_iter()
            .map(|error| format!("{}: {}", error.source, error.message))
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// The matrix's filter, as the URL gives it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Filter {
    /// Part of the service's name (any case); empty keeps every name.
    pub(crate) name: String,
    /// One of [`STATES`]; none keeps every state.
    pub(crate) state: Option<&'static str>,
    /// The environment the state is looked for in; none means any.
    pub(crate) environment: Option<String>,
}

impl Filter {
    /// The filter of a query (`q`, `state`, `env`); what it does not know
    /// (an unknown state or environment) is left out.
    pub(crate) fn from_query(query: &HashMap<String, String>, environments: &[String]) -> Filter {
        Filter {
            name: query
                .get("q")
                .map(|q| q.trim().to_string())
                .unwrap_or_default(),
            state: query
                .get("state")
                .and_then(|s| STATES.iter().find(|known| **known == s.as_str()).copied()),
            environment: query
                .get("env")
                .filter(|e| environments.contains(e))
                .cloned(),
        }
    }

    /// Whether `row` is shown.
    pub(crate) fn matches(&self, row: &Row, environments: &[String]) -> bool {
        if !self.name.is_empty()
            && !row
                .service
                .to_lowercase()
                .contains(&self.name.to_lowercase())
        {
            return false;
        }
        let Some(state) = self.state else {
            return true;
        };
        row.cells
            .iter()
            .zip(environments)
            .filter(|(_, e)| self.environment.as_ref().is_none_or(|wanted| wanted == *e))
            .any(|(cell, _)| in_state(cell, state))
    }
}

/// The filter's controls: the name, and the state in an environment.
pub(crate) fn controls(filter: &Filter, environments: &[String]) -> Markup {
    html! {
        form.toolbar #filters method="get" action="/" role="search" {
            span.field {
                label for="filter" { "Filter services" }
                input #filter name="q" type="search" placeholder="name…" autocomplete="off" accesskey="f" value=(filter.name);
            }
            span.field {
                label for="state" { "in state" }
                select #state name="state" {
                    option value="" selected[filter.state.is_none()] { "any state" }
                    @for state in STATES {
                        option value=(state) selected[filter.state == Some(state)] { (state) }
                    }
                }
            }
            span.field {
                label for="state-env" { "in" }
                select #state-env name="env" {
                    option value="" selected[filter.environment.is_none()] { "any environment" }
                    @for environment in environments {
                        option value=(environment) selected[filter.environment.as_ref() == Some(environment)] { (environment) }
                    }
                }
            }
            noscript { button type="submit" { "Filter" } }
            span #shown role="status" aria-live="polite" {}
        }
    }
}

/// An environment's column header: its name, its reconciliation error,
/// and its counts (each a link to the matrix filtered by that state there).
pub(crate) fn header(glance: &EnvironmentGlance) -> Markup {
    let environment = &glance.environment;
    html! {
        th scope="col" data-environment=(environment) data-reporting=(glance.reporting) {
            span.env-name { (environment) }
            @if let Some(error) = &glance.reconciliation_error {
                span.env-error role="note" title=(error) { "reconciliation failed: " (error) }
            }
            span.counts {
                @for (state, count) in STATES.iter().zip(glance.counts) {
                    @let unreported = *state != "promotable" && !glance.reporting;
                    a class={ "count " (state) } href={ "/?state=" (state) "&env=" (environment) }
                        data-state=(state) data-count=(count) hidden[count == 0 || unreported] {
                        span.n { (count) } " " (state)
                    }
                }
                span.unreported hidden[glance.reporting] { "no deployment reports" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(artifact: &str, state: Option<&'static str>, promotable: bool) -> Cell {
        Cell {
            artifact_id: artifact.into(),
            promotable,
            deployment: state.map(|s| (s, String::new())),
            ..Default::default()
        }
    }

    fn matrix() -> Matrix {
        let row = |service: &str, cells: Vec<Cell>| Row {
            service: service.into(),
            cells,
        };
        Matrix {
            environments: vec!["dev".into(), "prod".into()],
            default_branch: "master".into(),
            rows: vec![
                row(
                    "cart",
                    vec![
                        cell("a", Some("deployed"), false),
                        cell("b", Some("failed"), true),
                    ],
                ),
                row(
                    "shop",
                    vec![
                        cell("c", Some("failed"), false),
                        cell("c", Some("pending"), false),
                    ],
                ),
                row(
                    "search",
                    vec![cell("d", Some("pending"), false), cell("", None, false)],
                ),
            ],
            tip: git2::Oid::zero(),
        }
    }

    #[test]
    fn counts_per_environment() {
        let matrix = matrix();
        let glance = glance(
            &matrix,
            |e| e != "nowhere",
            |e| (e == "prod").then(|| "boom".into()),
        );
        assert_eq!(glance[0].counts, [1, 0, 1, 1, 0]);
        assert_eq!(glance[1].counts, [0, 0, 1, 1, 1]);
        assert_eq!(glance[1].reconciliation_error.as_deref(), Some("boom"));
        let html = header(&glance[1]).into_string();
        assert!(html.contains("reconciliation failed: boom"), "{html}");
        assert!(
            html.contains(r#"href="/?state=failed&amp;env=prod""#),
            "{html}"
        );
    }

    #[test]
    fn the_filter_keeps_what_the_url_asks_for() {
        let matrix = matrix();
        let environments = &matrix.environments;
        let query = |pairs: &[(&str, &str)]| {
            let query: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Filter::from_query(&query, environments)
        };
        let shown = |filter: &Filter| -> Vec<String> {
            matrix
                .rows
                .iter()
                .filter(|r| filter.matches(r, environments))
                .map(|r| r.service.clone())
                .collect()
        };
        assert_eq!(shown(&query(&[])).len(), 3);
        assert_eq!(shown(&query(&[("state", "failed")])), ["cart", "shop"]);
        assert_eq!(
            shown(&query(&[("state", "failed"), ("env", "prod")])),
            ["cart"]
        );
        assert_eq!(
            shown(&query(&[("state", "pending"), ("q", "SE")])),
            ["search"]
        );
        assert_eq!(shown(&query(&[("state", "promotable")])), ["cart"]);
        // What it does not know is no filter.
        assert_eq!(
            query(&[("state", "bogus"), ("env", "mars")]),
            Filter::default()
        );
    }
}
