//! The deployment states as a value, and the rules that change them: the
//! latest applied report per environment and service, the environments'
//! reconciliation errors per controller object, and how a report is judged
//! against what is kept (its order, and whether it changes anything).
//! Pure: no git and no I/O; what history says about two commits is asked
//! of the caller.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::deployment::{Deployment, ReconciliationError, State};

/// The latest applied report on one service's release in one environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ServiceState {
    /// The release commit the report is about.
    pub(crate) release_commit: String,
    /// The artifact of that release.
    pub(crate) artifact_id: String,
    /// The namespace folder of that release.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) namespace: String,
    /// What the controller said.
    pub(crate) state: State,
    /// Its words.
    pub(crate) message: String,
    /// The config repository commit it applied.
    pub(crate) revision: String,
    /// When the report arrived (seconds since the epoch).
    pub(crate) reported_at: i64,
    /// When the controller observed it (nanoseconds), if it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) observed_at: Option<i64>,
    /// Who reported.
    pub(crate) source: String,
}

impl ServiceState {
    /// As status and watchers see it.
    pub(crate) fn deployment(&self) -> Deployment {
        Deployment {
            state: self.state,
            message: self.message.clone(),
            revision: self.revision.clone(),
            reported_at: self.reported_at,
            observed_at: self.observed_at,
            source: self.source.clone(),
        }
    }

    /// Whether the controller has said its last word on this release.
    fn settled(&self) -> bool {
        matches!(self.state, State::Succeeded | State::Failed)
    }
}

/// Every state known: what one commit of the shared record holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct States {
    /// (environment, service) → the latest applied report.
    pub(crate) services: BTreeMap<(String, String), ServiceState>,
    /// (environment, source) → a reconciliation error that names no
    /// service.
    pub(crate) errors: BTreeMap<(String, String), ReconciliationError>,
}

/// One change of the states (what a report did, or what a commit of the
/// shared record holds).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    /// A service's release got a new state.
    Service {
        environment: String,
        service: String,
        state: ServiceState,
    },
    /// A controller object's reconciliation error was reported.
    ErrorSet {
        environment: String,
        error: ReconciliationError,
    },
    /// It reconciled the environment again: its error is gone (the last
    /// one it reported).
    ErrorCleared {
        environment: String,
        error: ReconciliationError,
    },
}

impl States {
    /// Applies `change`.
    pub(crate) fn apply(&mut self, change: &Change) {
        match change {
            Change::Service {
                environment,
                service,
                state,
            } => {
                self.services
                    .insert((environment.clone(), service.clone()), state.clone());
            }
            Change::ErrorSet { environment, error } => {
                self.errors
                    .insert((environment.clone(), error.source.clone()), error.clone());
            }
            Change::ErrorCleared { environment, error } => {
                self.errors
                    .remove(&(environment.clone(), error.source.clone()));
            }
        }
    }

    /// The kept report on `service` in `environment`.
    pub(crate) fn service(&self, environment: &str, service: &str) -> Option<&ServiceState> {
        self.services
            .get(&(environment.to_string(), service.to_string()))
    }

    /// The reconciliation errors standing in `environment`.
    pub(crate) fn errors_of(&self, environment: &str) -> Vec<ReconciliationError> {
        self.errors
            .iter()
            .filter(|((e, _), _)| e == environment)
            .map(|(_, error)| error.clone())
            .collect()
    }
}

/// What history says of two commits: `Less` when the first is a strict
/// ancestor of the second, `Greater` the other way round, `Equal` when they
/// are one commit, `None` when it cannot tell (unrelated, or unknown to
/// the mirror).
pub(crate) type History<'a> = &'a dyn Fn(&str, &str) -> Option<Ordering>;

/// Where a report stands among the reports on one thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// Older than the one applied: it changes nothing.
    Older,
    /// As new (same time, or same revision without times).
    Tie,
    /// Newer.
    Newer,
}

/// Orders a report against the one kept: by the controller's own times
/// when both carry one, else by the revisions' places in history.
pub(crate) fn place(
    observed_at: Option<i64>,
    revision: &str,
    kept_observed_at: Option<i64>,
    kept_revision: &str,
    history: History<'_>,
) -> Place {
    let by = match (observed_at, kept_observed_at) {
        (Some(new), Some(kept)) => Some(new.cmp(&kept)),
        _ => history(revision, kept_revision),
    };
    match by {
        Some(Ordering::Less) => Place::Older,
        Some(Ordering::Greater) => Place::Newer,
        Some(Ordering::Equal) | None => Place::Tie,
    }
}

/// What a report would do to one service's kept state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    /// It changes the state: keep `candidate`.
    Apply,
    /// It says what is kept already (a controller repeating itself).
    Repeat,
    /// A newer report was applied already.
    Older,
}

/// Judges `candidate` (a report on the service's current release) against
/// `kept`. A report on an earlier release than the kept one's, or older
/// than it, changes nothing; at a tie, progressing does not undo a final
/// state. Only a new release commit or a new state is a change.
pub(crate) fn judge(
    kept: Option<&ServiceState>,
    candidate: &ServiceState,
    history: History<'_>,
) -> Verdict {
    let Some(kept) = kept else {
        return Verdict::Apply;
    };
    if kept.release_commit != candidate.release_commit {
        // The candidate is about the release this server sees as current;
        // a kept report on a later one (seen by a replica further ahead)
        // must not be undone.
        return match history(&candidate.release_commit, &kept.release_commit) {
            Some(Ordering::Greater) => Verdict::Apply,
            _ => Verdict::Older,
        };
    }
    match place(
        candidate.observed_at,
        &candidate.revision,
        kept.observed_at,
        &kept.revision,
        history,
    ) {
        Place::Older => Verdict::Older,
        _ if candidate.state == kept.state => Verdict::Repeat,
        Place::Tie if candidate.state == State::Progressing && kept.settled() => Verdict::Older,
        Place::Tie | Place::Newer => Verdict::Apply,
    }
}

/// Whether a report of the whole environment (or one naming objects) that
/// says progressing or failed should leave this service alone: its current
/// release has had its final word already, and the report is not about it
/// in particular.
pub(crate) fn settled_release(kept: Option<&ServiceState>, release_commit: &str) -> bool {
    kept.is_some_and(|kept| kept.release_commit == release_commit && kept.settled())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(release: &str, state: State, revision: &str, observed: Option<i64>) -> ServiceState {
        ServiceState {
            release_commit: release.into(),
            artifact_id: "a".into(),
            namespace: "dev".into(),
            state,
            message: String::new(),
            revision: revision.into(),
            reported_at: 0,
            observed_at: observed,
            source: "s".into(),
        }
    }

    /// Commits named by their place on one line of history: "c1" < "c2".
    fn line(a: &str, b: &str) -> Option<Ordering> {
        Some(a.cmp(b))
    }

    #[test]
    fn newer_reports_apply_and_older_ones_change_nothing() {
        let kept = state("c1", State::Succeeded, "c3", Some(30));
        // Older by time, though at a later revision: time decides.
        let late = state("c1", State::Failed, "c4", Some(20));
        assert_eq!(judge(Some(&kept), &late, &line), Verdict::Older);
        let newer = state("c1", State::Failed, "c3", Some(31));
        assert_eq!(judge(Some(&kept), &newer, &line), Verdict::Apply);
        // Without times, the revision's place decides.
        let kept = state("c1", State::Succeeded, "c3", None);
        let earlier = state("c1", State::Failed, "c2", Some(99));
        assert_eq!(judge(Some(&kept), &earlier, &line), Verdict::Older);
        let later = state("c1", State::Failed, "c4", None);
        assert_eq!(judge(Some(&kept), &later, &line), Verdict::Apply);
    }

    #[test]
    fn repeats_and_ties() {
        let kept = state("c1", State::Succeeded, "c3", Some(30));
        let again = state("c1", State::Succeeded, "c5", Some(40));
        assert_eq!(judge(Some(&kept), &again, &line), Verdict::Repeat);
        // Same second: progressing does not undo a final word, a final
        // word replaces progressing.
        let progressing = state("c1", State::Progressing, "c3", Some(30));
        assert_eq!(judge(Some(&kept), &progressing, &line), Verdict::Older);
        assert_eq!(
            judge(Some(&progressing), &kept, &line),
            Verdict::Apply,
            "succeeded after progressing in the same second"
        );
    }

    #[test]
    fn a_later_release_is_not_undone_by_a_report_on_an_earlier_one() {
        let kept = state("c5", State::Succeeded, "c5", Some(50));
        let earlier_release = state("c2", State::Failed, "c6", Some(60));
        assert_eq!(judge(Some(&kept), &earlier_release, &line), Verdict::Older);
        let later_release = state("c6", State::Progressing, "c6", Some(10));
        assert_eq!(judge(Some(&kept), &later_release, &line), Verdict::Apply);
        let unknown = |_: &str, _: &str| None;
        assert_eq!(
            judge(Some(&kept), &later_release, &unknown),
            Verdict::Older,
            "when history cannot tell, what is kept stays"
        );
    }

    #[test]
    fn settled_means_a_final_word_on_this_release() {
        let kept = state("c1", State::Failed, "c1", None);
        assert!(settled_release(Some(&kept), "c1"));
        assert!(!settled_release(Some(&kept), "c2"));
        assert!(!settled_release(None, "c1"));
        let progressing = state("c1", State::Progressing, "c1", None);
        assert!(!settled_release(Some(&progressing), "c1"));
    }
}
