//! How a report changes the states: which of the releases it is about it
//! touches (a report of the whole environment, or one naming objects, that
//! is not a success leaves releases that had their final word alone), what
//! the ordering rules make of each (`state::judge`), and whether it is the
//! environment's reconciliation error. Pure but for what history says of
//! two commits, asked of the caller.

use std::cmp::Ordering;

use git2::{Oid, Repository};

use super::state::{self, Change, ServiceState, States, Verdict};
use super::whom::Targets;
use super::{About, Answer, Report, State};
use crate::domain::deployment::ReconciliationError;
use crate::engine::events::DeploymentReported;

/// What `report` (at `revision`, about `targets`, taken at `now`) changes
/// of `states`, and what to answer.
pub(super) fn decide(
    states: &States,
    report: &Report,
    revision: Oid,
    targets: &Targets,
    now: i64,
    history: state::History<'_>,
) -> (Answer, Vec<Change>) {
    let mut answer = Answer::default();
    let mut changes = Vec::new();
    let environment = &report.environment;
    // A report of the whole environment (or naming objects)
    // that is not a success leaves releases that had their
    // final word alone; if that leaves nobody, and it is a
    // failure, the failure is the environment's.
    let particular = match report.about {
        About::Service { .. } => true,
        // A failure that names a service is about it, whatever
        // it said before.
        About::Named => report.state == State::Failed,
        About::Everything => false,
    };
    let candidates: Vec<_> = targets
        .releases
        .iter()
        .map(|target| (target, states.service(environment, &target.service)))
        .filter(|(target, kept)| {
            report.state == State::Succeeded
                || particular
                || !state::settled_release(*kept, &target.release_commit.to_string())
        })
        .collect();
    let environment_failure = report.state == State::Failed
        && match report.about {
            About::Named => targets.named_nobody,
            About::Everything => candidates.is_empty(),
            About::Service { .. } => false,
        };
    for (target, kept) in candidates {
        let candidate = ServiceState {
            release_commit: target.release_commit.to_string(),
            artifact_id: target.artifact_id.clone(),
            namespace: target.namespace.clone(),
            state: report.state,
            message: report.message.clone(),
            revision: revision.to_string(),
            reported_at: now,
            observed_at: report.observed_at,
            source: report.source.clone(),
        };
        let shown = match state::judge(kept, &candidate, history) {
            Verdict::Older => {
                answer.ignored_as_older.push(target.service.clone());
                continue;
            }
            Verdict::Repeat => kept.cloned().unwrap_or(candidate),
            Verdict::Apply => {
                changes.push(Change::Service {
                    environment: environment.clone(),
                    service: target.service.clone(),
                    state: candidate.clone(),
                });
                candidate
            }
        };
        answer.covered.push(DeploymentReported {
            environment: environment.clone(),
            service: target.service.clone(),
            artifact_id: shown.artifact_id.clone(),
            release_commit: shown.release_commit.clone(),
            namespace: shown.namespace.clone(),
            deployment: shown.deployment(),
        });
    }
    // The source's own reconciliation error: set by a failure
    // that named nobody, cleared by any newer word from it.
    let kept_error = states
        .errors
        .get(&(environment.clone(), report.source.clone()));
    let newer_than_error = kept_error.is_none_or(|kept| {
        state::place(
            report.observed_at,
            &revision.to_string(),
            kept.observed_at,
            &kept.revision,
            &history,
        ) != state::Place::Older
    });
    if environment_failure {
        answer.environment_error = true;
        if kept_error.is_none() {
            changes.push(Change::ErrorSet {
                environment: environment.clone(),
                error: ReconciliationError {
                    source: report.source.clone(),
                    message: report.message.clone(),
                    revision: revision.to_string(),
                    reported_at: now,
                    observed_at: report.observed_at,
                },
            });
        }
    } else if let (Some(kept), true) = (kept_error, newer_than_error) {
        changes.push(Change::ErrorCleared {
            environment: environment.clone(),
            error: kept.clone(),
        });
    }
    (answer, changes)
}

/// What history says of two revisions (see [`state::History`]).
pub(super) fn place_in_history(repo: &Repository, a: &str, b: &str) -> Option<Ordering> {
    let (a, b) = (Oid::from_str(a).ok()?, Oid::from_str(b).ok()?);
    if a == b {
        return Some(Ordering::Equal);
    }
    if repo.graph_descendant_of(b, a).ok()? {
        Some(Ordering::Less)
    } else if repo.graph_descendant_of(a, b).ok()? {
        Some(Ordering::Greater)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployments::whom::Target;

    fn target(service: &str, release: &str) -> Target {
        Target {
            service: service.into(),
            release_commit: Oid::from_str(release).unwrap(),
            artifact_id: format!("{service}-1"),
            namespace: "dev".into(),
        }
    }

    const R1: &str = "1111111111111111111111111111111111111111";
    const R2: &str = "2222222222222222222222222222222222222222";

    fn report(state: State, about: About) -> Report {
        Report {
            environment: "dev".into(),
            revision: R2.into(),
            state,
            message: "words".into(),
            source: "flux:flux-system/apps".into(),
            about,
            observed_at: Some(10),
        }
    }

    fn deployed(service: &str, release: &str) -> Change {
        Change::Service {
            environment: "dev".into(),
            service: service.into(),
            state: ServiceState {
                release_commit: release.into(),
                artifact_id: format!("{service}-1"),
                namespace: "dev".into(),
                state: State::Succeeded,
                message: String::new(),
                revision: R1.into(),
                reported_at: 0,
                observed_at: Some(5),
                source: "flux:flux-system/apps".into(),
            },
        }
    }

    #[test]
    fn a_failure_of_the_whole_environment_leaves_settled_releases_alone() {
        let mut states = States::default();
        states.apply(&deployed("old", R1));
        let history = |_: &str, _: &str| None;
        let targets = Targets {
            releases: vec![target("old", R1), target("new", R2)],
            named_nobody: false,
        };
        let (answer, changes) = decide(
            &states,
            &report(State::Failed, About::Everything),
            Oid::from_str(R2).unwrap(),
            &targets,
            20,
            &history,
        );
        assert_eq!(answer.covered.len(), 1);
        assert_eq!(
            answer.covered[0].service, "new",
            "the old release is not repainted"
        );
        assert!(!answer.environment_error);
        assert_eq!(changes.len(), 1);

        // With nobody unsettled, the failure is the environment's.
        let targets = Targets {
            releases: vec![target("old", R1)],
            named_nobody: false,
        };
        let (answer, changes) = decide(
            &states,
            &report(State::Failed, About::Everything),
            Oid::from_str(R2).unwrap(),
            &targets,
            20,
            &history,
        );
        assert!(answer.covered.is_empty() && answer.environment_error);
        assert!(matches!(changes.as_slice(), [Change::ErrorSet { .. }]));
        states.apply(&changes[0]);

        // A failure naming the old service is about it; and it is a newer
        // word from the source, which clears its error.
        let (answer, changes) = decide(
            &states,
            &report(State::Failed, About::Named),
            Oid::from_str(R2).unwrap(),
            &targets,
            30,
            &history,
        );
        assert_eq!(answer.covered.len(), 1);
        assert!(matches!(
            changes.as_slice(),
            [Change::Service { .. }, Change::ErrorCleared { .. }]
        ));
    }
}
