//! Events for watchers (`WatchEvents`): what a published commit means, read
//! by the one reader of history (`repo::history`) from what it changed: a
//! build added, a release, a policy change; one event each, so a commit that
//! changed several services makes several events. Messages enrich (the
//! intent); commits that change nothing the release manager follows make
//! none.
//!
//! Every commit event has a cursor, `<commit>.<n>` (its place among its
//! commit's events), from which a subscription can resume: the events of
//! the commits after it are read again from history ([`since`]).
//! Deployment reports are events too, with a place of their own in the
//! deployment record (`<record-commit>.<k>`, see `deployments`); a
//! subscriber's [`Cursor`] holds its place in both.

use std::sync::Arc;

use git2::{Oid, Repository};
use release_manager::spec::ArtifactSpec;

use crate::domain::deployment::{Deployment, ReconciliationError};
use crate::repo::history::HistoryReader;
use crate::repo::index::ReleaseKind;
use crate::repo::message;

/// Something watchers hear of: what a published commit did, or what a
/// controller reported.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    /// Its place: `<commit>.<n>` among its commit's events, or, for a
    /// deployment report, `<record-commit>.<k>` in the deployment record.
    pub(crate) cursor: String,
    /// The commit it comes from (for a report: the revision reported).
    pub(crate) commit: String,
    /// When, in seconds since the epoch.
    pub(crate) time: i64,
    /// What happened.
    pub(crate) what: What,
}

/// What an event says.
#[derive(Debug, Clone)]
pub(crate) enum What {
    /// A build was added.
    BuildAdded(Arc<BuildAdded>),
    /// A build was released to an environment.
    Released(Released),
    /// A service's policies changed.
    PolicyChanged {
        /// The service.
        service: String,
        /// The commit's title.
        title: String,
    },
    /// A controller reported on a release.
    DeploymentReported(DeploymentReported),
    /// An environment's reconciliation error was reported or cleared.
    ReconciliationError(ReconciliationErrorChanged),
}

/// A build added to `builds/<service>/<branch>/`.
#[derive(Debug, Clone)]
pub(crate) struct BuildAdded {
    /// The service.
    pub(crate) service: String,
    /// Its branch folder.
    pub(crate) branch: String,
    /// The commit that added it.
    pub(crate) build_commit: Oid,
    /// Its artifact.json (only the id, when unreadable).
    pub(crate) spec: ArtifactSpec,
}

/// A release written to `<environment>/releases/<namespace>/<service>/`.
#[derive(Debug, Clone)]
pub(crate) struct Released {
    /// The service.
    pub(crate) service: String,
    /// The environment.
    pub(crate) environment: String,
    /// The namespace folder.
    pub(crate) namespace: String,
    /// The artifact now there.
    pub(crate) artifact_id: String,
    /// Its branch.
    pub(crate) branch: String,
    /// Why, as the commit says.
    pub(crate) kind: ReleaseKind,
}

/// A new deployment state of one service's release in one environment.
#[derive(Debug, Clone)]
pub(crate) struct DeploymentReported {
    /// The environment.
    pub(crate) environment: String,
    /// The service.
    pub(crate) service: String,
    /// The artifact of the release reported on.
    pub(crate) artifact_id: String,
    /// The release commit.
    pub(crate) release_commit: String,
    /// The namespace folder of the release.
    pub(crate) namespace: String,
    /// What the controller said.
    pub(crate) deployment: Deployment,
}

/// A reconciliation error of an environment that named no service, set or
/// cleared.
#[derive(Debug, Clone)]
pub(crate) struct ReconciliationErrorChanged {
    /// The environment.
    pub(crate) environment: String,
    /// The error (when cleared: the last one its source reported).
    pub(crate) error: ReconciliationError,
    /// Whether the source reconciled the environment again.
    pub(crate) cleared: bool,
}

/// What travels on the event bus: an event, or the end of the server.
#[derive(Debug, Clone)]
pub(crate) enum Signal {
    /// Something happened (shared: every subscriber gets the same one).
    Event(Arc<Event>),
    /// The server is stopping: every stream ends.
    Stop,
}

/// The event bus: the writer and the deployment reports send; watchers,
/// the dashboard and notifications subscribe. A slow subscriber loses the
/// oldest events (and is told), never blocks a sender.
pub(crate) type EventBus = tokio::sync::broadcast::Sender<Signal>;

/// The events a commit carries, in the order builds, releases, policies.
pub(crate) fn events_of(repo: &Repository, oid: Oid) -> Vec<Event> {
    let Ok(commit) = repo.find_commit(oid) else {
        return Vec::new();
    };
    let facts = match HistoryReader::new(repo).and_then(|mut reader| reader.read(&commit)) {
        Ok(facts) => facts,
        Err(e) => {
            tracing::warn!(commit = %oid, error = %e, "cannot read what a commit changed; no events for it");
            return Vec::new();
        }
    };
    if facts.is_empty() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(commit.message_bytes()).into_owned();
    let kind = message::release_kind(&text);
    let time = commit.time().seconds();
    let mut happened = Vec::new();
    for build in &facts.builds {
        let spec = repo
            .find_blob(build.spec)
            .ok()
            .and_then(|blob| ArtifactSpec::parse_committed(blob.content()).ok())
            .map(|(spec, _)| spec)
            .unwrap_or_else(|| ArtifactSpec {
                id: build.artifact_id.clone(),
                ..ArtifactSpec::default()
            });
        happened.push(What::BuildAdded(Arc::new(BuildAdded {
            service: build.service.clone(),
            branch: build.branch.clone(),
            build_commit: oid,
            spec,
        })));
    }
    for release in &facts.releases {
        happened.push(What::Released(Released {
            namespace: release.namespace.clone(),
            branch: match message::trailer(&text, "Branch") {
                Some(branch) => branch.to_string(),
                // Not ours: the build's own record of its branch.
                None => repo
                    .find_blob(release.spec)
                    .ok()
                    .and_then(|blob| ArtifactSpec::parse_committed(blob.content()).ok())
                    .map(|(spec, _)| spec.application.branch)
                    .unwrap_or_default(),
            },
            service: release.service.clone(),
            environment: release.environment.clone(),
            artifact_id: release.artifact_id.clone(),
            kind,
        }));
    }
    for service in &facts.policies {
        happened.push(What::PolicyChanged {
            service: service.clone(),
            title: message::title(&text).to_string(),
        });
    }
    happened
        .into_iter()
        .enumerate()
        .map(|(n, what)| Event {
            cursor: format!("{oid}.{n}"),
            commit: oid.to_string(),
            time,
            what,
        })
        .collect()
}

/// Where a subscription resumes: after event `after` of `commit` (`None`:
/// after all of that commit's events), and where among the deployment
/// reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// The commit.
    pub(crate) commit: Oid,
    /// The last event of it already seen.
    pub(crate) after: Option<usize>,
    /// The last deployment report seen.
    pub(crate) reports: ReportsAt,
}

/// A subscriber's place among the deployment reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReportsAt {
    /// The cursor says nothing of reports (a bare commit, or a cursor of a
    /// server before reports had places): reports from now on.
    Unknown,
    /// Before the first report ever recorded (`-`).
    Start,
    /// After report `after` of the record's commit `commit` (`None`: after
    /// all of its reports).
    At {
        /// The record's commit.
        commit: Oid,
        /// The last report of it seen.
        after: Option<usize>,
    },
}

impl ReportsAt {
    /// Parses what [`ReportsAt::text`] writes (not the empty text).
    pub(crate) fn parse(text: &str) -> Option<ReportsAt> {
        if text == "-" {
            return Some(ReportsAt::Start);
        }
        let (commit, after) = place(text)?;
        Some(ReportsAt::At { commit, after })
    }

    /// As a cursor writes it: `-`, `<commit>` or `<commit>.<k>`; empty for
    /// [`ReportsAt::Unknown`].
    pub(crate) fn text(&self) -> String {
        match self {
            ReportsAt::Unknown => String::new(),
            ReportsAt::Start => "-".to_string(),
            ReportsAt::At {
                commit,
                after: Some(k),
            } => format!("{commit}.{k}"),
            ReportsAt::At {
                commit,
                after: None,
            } => commit.to_string(),
        }
    }
}

/// `<commit>` or `<commit>.<n>`.
fn place(text: &str) -> Option<(Oid, Option<usize>)> {
    let (commit, after) = match text.split_once('.') {
        Some((commit, n)) => (commit, Some(n.parse().ok()?)),
        None => (text, None),
    };
    Some((
        Oid::from_str(commit).ok().filter(|_| commit.len() == 40)?,
        after,
    ))
}

impl Cursor {
    /// Parses `<commit>[.<n>][/<reports>]`, where `<reports>` is `-` or
    /// `<record-commit>[.<k>]`.
    pub(crate) fn parse(text: &str) -> Option<Cursor> {
        let (commits, reports) = match text.split_once('/') {
            Some((commits, reports)) => (commits, ReportsAt::parse(reports)?),
            None => (text, ReportsAt::Unknown),
        };
        let (commit, after) = place(commits)?;
        Some(Cursor {
            commit,
            after,
            reports,
        })
    }

    /// The cursor of a place in both: `<commits>/<reports>` (`<commits>`
    /// alone when the reports' place is unknown).
    pub(crate) fn join(commits: &str, reports: &str) -> String {
        if reports.is_empty() {
            commits.to_string()
        } else {
            format!("{commits}/{reports}")
        }
    }
}

/// What a resumed subscription missed.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    /// The events, oldest first.
    pub(crate) events: Vec<Event>,
    /// The commits they were read from.
    pub(crate) commits: Vec<Oid>,
}

/// Most commits a resumed subscription reads again from history.
pub(crate) const MAX_REPLAY_COMMITS: usize = 10_000;

/// What a resumed subscription missed: the events after `cursor` up to
/// `tip`. `None` when the cursor's commit is not in the history of `tip`;
/// an error naming the bound when more than [`MAX_REPLAY_COMMITS`] commits
/// came after it.
pub(crate) fn since(
    repo: &Repository,
    cursor: Cursor,
    tip: Oid,
) -> Result<Option<Replay>, git2::Error> {
    let known = repo.find_commit(cursor.commit).is_ok()
        && (cursor.commit == tip || repo.graph_descendant_of(tip, cursor.commit)?);
    if !known {
        return Ok(None);
    }
    let mut walk = repo.revwalk()?;
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)?;
    walk.push(tip)?;
    walk.hide(cursor.commit)?;
    let commits: Vec<Oid> = walk
        .take(MAX_REPLAY_COMMITS + 1)
        .collect::<Result<_, _>>()?;
    if commits.len() > MAX_REPLAY_COMMITS {
        return Err(git2::Error::from_str("too many commits to replay"));
    }
    let mut events: Vec<Event> = match cursor.after {
        Some(after) => events_of(repo, cursor.commit)
            .into_iter()
            .skip(after + 1)
            .collect(),
        None => Vec::new(),
    };
    for &commit in &commits {
        events.extend(events_of(repo, commit));
    }
    Ok(Some(Replay { events, commits }))
}

impl Event {
    /// The service (none for what concerns a whole environment) and (for
    /// releases and reports) the environment the event is about.
    fn about(&self) -> (Option<&str>, Option<&str>) {
        match &self.what {
            What::BuildAdded(build) => (Some(&build.service), None),
            What::Released(release) => (Some(&release.service), Some(&release.environment)),
            What::PolicyChanged { service, .. } => (Some(service), None),
            What::DeploymentReported(report) => (Some(&report.service), Some(&report.environment)),
            What::ReconciliationError(changed) => (None, Some(&changed.environment)),
        }
    }

    /// Whether the event passes a watcher's filters (empty: any). An
    /// environment filter keeps releases to that environment and its
    /// deployment reports: builds and policies belong to a service, not an
    /// environment. A reconciliation error of an environment concerns every
    /// service there.
    pub(crate) fn matches(&self, service: &str, environment: &str) -> bool {
        let (event_service, event_environment) = self.about();
        (service.is_empty() || event_service.is_none_or(|s| s == service))
            && (environment.is_empty() || event_environment == Some(environment))
    }

    /// Whether it is a deployment report (a place in the deployment
    /// record, not in the config repository's history).
    pub(crate) fn is_report(&self) -> bool {
        matches!(
            self.what,
            What::DeploymentReported(_) | What::ReconciliationError(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_hold_both_places() {
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let record = "89abcdef0123456789abcdef0123456789abcdef";
        let cursor = Cursor::parse(&format!("{commit}.2/{record}.0")).unwrap();
        assert_eq!(cursor.commit.to_string(), commit);
        assert_eq!(cursor.after, Some(2));
        assert_eq!(cursor.reports.text(), format!("{record}.0"));
        assert_eq!(
            Cursor::parse(&format!("{commit}/-")).unwrap().reports,
            ReportsAt::Start
        );
        assert_eq!(
            Cursor::parse(commit).unwrap().reports,
            ReportsAt::Unknown,
            "a bare commit (or an older server's cursor) says nothing of reports"
        );
        for bad in [
            "",
            "abc",
            &format!("{commit}.x"),
            &format!("{commit}/abc"),
            &format!("{commit}/{record}.y"),
        ] {
            assert!(Cursor::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(Cursor::join(commit, ""), commit);
        assert_eq!(Cursor::join(commit, "-"), format!("{commit}/-"));
    }
}
