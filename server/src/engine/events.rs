//! Events for watchers (`WatchEvents`): what a published commit means, read
//! by the one reader of history (`repo::history`) from what it changed: a
//! build added, a release, a policy change; one event each, so a commit that
//! changed several services makes several events. Messages enrich (the
//! intent); commits that change nothing the release manager follows make
//! none.
//!
//! Every event has a cursor, `<commit>.<n>` (its place among its commit's
//! events), from which a subscription can resume: the events of the
//! commits after it are read again from history ([`since`]).

use git2::{Oid, Repository};
use release_manager::pb;
use release_manager::spec::ArtifactSpec;

use crate::engine::wire as convert;
use crate::repo::history::HistoryReader;
use crate::repo::message;

/// The events a commit carries, in the order builds, releases, policies.
pub fn events_of(repo: &Repository, oid: Oid) -> Vec<pb::WatchEventsResponse> {
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
    let wrap = |event| pb::WatchEventsResponse {
        commit_sha: oid.to_string(),
        time: Some(convert::timestamp(commit.time().seconds())),
        event: Some(event),
        cursor: String::new(),
    };
    let mut events = Vec::new();
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
        events.push(wrap(pb::watch_events_response::Event::BuildAdded(
            convert::artifact_summary(&spec, &build.service, &build.branch, Some(oid)),
        )));
    }
    for release in &facts.releases {
        events.push(wrap(pb::watch_events_response::Event::Released(
            pb::ReleaseResult {
                outcome: pb::Outcome::Applied as i32,
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
                commit_sha: oid.to_string(),
                intent: convert::intent(kind) as i32,
                replayed: false,
            },
        )));
    }
    for service in &facts.policies {
        events.push(wrap(pb::watch_events_response::Event::PolicyChanged(
            pb::PolicyChanged {
                service: service.clone(),
                title: message::title(&text).to_string(),
            },
        )));
    }
    for (n, event) in events.iter_mut().enumerate() {
        event.cursor = format!("{oid}.{n}");
    }
    events
}

/// Where a subscription resumes: after event `after` of `commit` (`None`:
/// after all of that commit's events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The commit.
    pub commit: Oid,
    /// The last event of it already seen.
    pub after: Option<usize>,
}

impl Cursor {
    /// Parses `<commit>.<n>` or a bare commit id.
    pub fn parse(text: &str) -> Option<Cursor> {
        let (commit, after) = match text.split_once('.') {
            Some((commit, n)) => (commit, Some(n.parse().ok()?)),
            None => (text, None),
        };
        Some(Cursor {
            commit: Oid::from_str(commit).ok().filter(|_| commit.len() == 40)?,
            after,
        })
    }
}

/// What a resumed subscription missed.
#[derive(Debug, Default)]
pub struct Replay {
    /// The events, oldest first.
    pub events: Vec<pb::WatchEventsResponse>,
    /// The commits they were read from.
    pub commits: Vec<Oid>,
}

/// Most commits a resumed subscription reads again from history.
pub const MAX_REPLAY_COMMITS: usize = 10_000;

/// What a resumed subscription missed: the events after `cursor` up to
/// `tip`. `None` when the cursor's commit is not in the history of `tip`;
/// an error naming the bound when more than [`MAX_REPLAY_COMMITS`] commits
/// came after it.
pub fn since(repo: &Repository, cursor: Cursor, tip: Oid) -> Result<Option<Replay>, git2::Error> {
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
    let mut events: Vec<pb::WatchEventsResponse> = match cursor.after {
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

/// Whether an event passes a watcher's filters.
pub fn matches(event: &pb::WatchEventsResponse, service: &str, environment: &str) -> bool {
    use pb::watch_events_response::Event;
    let (event_service, event_environment) = match &event.event {
        Some(Event::BuildAdded(build)) => (build.service.as_str(), None),
        Some(Event::Released(release)) => {
            (release.service.as_str(), Some(release.environment.as_str()))
        }
        Some(Event::PolicyChanged(policy)) => (policy.service.as_str(), None),
        Some(Event::DeploymentReported(report)) => {
            (report.service.as_str(), Some(report.environment.as_str()))
        }
        // A subscriber's own markers always reach it.
        Some(Event::Live(_) | Event::Dropped(_)) => return true,
        None => return false,
    };
    // An environment filter keeps releases to that environment and its
    // deployment reports: builds and policies belong to a service, not an
    // environment.
    (service.is_empty() || service == event_service)
        && (environment.is_empty() || event_environment == Some(environment))
}
