//! The record's commits as people and watchers read them: the event of
//! each change (at `<commit>.<k>`), and the commit message that says what
//! a report changed.

use git2::Oid;

use super::state::Change;
use super::Report;
use crate::engine::events::{DeploymentReported, Event, ReconciliationErrorChanged, What};

/// The event of change `k` of the record's commit `commit`.
pub(super) fn event_of(commit: Oid, k: usize, change: &Change) -> Event {
    let cursor = format!("{commit}.{k}");
    match change {
        Change::Service {
            environment,
            service,
            state,
        } => Event {
            cursor,
            commit: state.revision.clone(),
            time: state.reported_at,
            what: What::DeploymentReported(DeploymentReported {
                environment: environment.clone(),
                service: service.clone(),
                artifact_id: state.artifact_id.clone(),
                release_commit: state.release_commit.clone(),
                namespace: state.namespace.clone(),
                deployment: state.deployment(),
            }),
        },
        Change::ErrorSet { environment, error } | Change::ErrorCleared { environment, error } => {
            Event {
                cursor,
                commit: error.revision.clone(),
                time: error.reported_at,
                what: What::ReconciliationError(ReconciliationErrorChanged {
                    environment: environment.clone(),
                    error: error.clone(),
                    cleared: matches!(change, Change::ErrorCleared { .. }),
                }),
            }
        }
    }
}

/// The record commit's message: what changed, for people reading it.
pub(super) fn record_message(report: &Report, changes: &[Change]) -> String {
    let mut message = format!(
        "[{}] {} reported by {}\n\n",
        report.environment,
        report.state.as_str(),
        if report.source.is_empty() {
            "-"
        } else {
            &report.source
        }
    );
    for change in changes {
        let line = match change {
            Change::Service { service, state, .. } => {
                format!(
                    "{service}: {} ({})\n",
                    state.state.as_str(),
                    state.artifact_id
                )
            }
            Change::ErrorSet { .. } => "reconciliation error set\n".to_string(),
            Change::ErrorCleared { .. } => "reconciliation error cleared\n".to_string(),
        };
        message.push_str(&line);
    }
    message
}
