//! Events for watchers (`WatchEvents`): what a published commit means, read
//! back from its title, trailers and tree: a build added, a release, or a
//! policy change. Commits the release manager does not know make no event.

use git2::{Oid, Repository};
use release_manager::pb;
use release_manager::spec::ArtifactSpec;

use crate::repo::index::changed_build_branch;
use crate::repo::message::{parse_title, trailer, Title};
use crate::repo::tree::blob_at;
use crate::service::convert;

/// The event a commit carries, if any.
pub fn event_of(repo: &Repository, oid: Oid) -> Option<pb::WatchEventsResponse> {
    let commit = repo.find_commit(oid).ok()?;
    let message = String::from_utf8_lossy(commit.message_bytes()).into_owned();
    let event = match parse_title(&message)? {
        Title::Build {
            service,
            artifact_id,
        } => {
            let branch = match trailer(&message, "Branch") {
                Some(branch) => branch.to_string(),
                None => changed_build_branch(repo, &commit, &service).ok()??,
            };
            let root = commit.tree().ok()?;
            let spec = blob_at(
                repo,
                &root,
                &format!("builds/{service}/{branch}/artifact.json"),
            )
            .ok()?
            .and_then(|bytes| {
                ArtifactSpec::parse_committed(&bytes)
                    .ok()
                    .map(|(spec, _)| spec)
            })
            .unwrap_or_else(|| ArtifactSpec {
                id: artifact_id,
                ..ArtifactSpec::default()
            });
            pb::watch_events_response::Event::BuildAdded(convert::artifact_summary(
                &spec,
                &service,
                &branch,
                Some(oid),
            ))
        }
        Title::Release {
            environment,
            service,
            artifact_id,
            rollback,
        } => {
            let kind = crate::repo::index::ReleaseKind::parse_trailer(
                trailer(&message, "Release-intent"),
                rollback,
            );
            pb::watch_events_response::Event::Released(pb::ReleaseResult {
                outcome: pb::Outcome::Applied as i32,
                namespace: trailer(&message, "Namespace")
                    .unwrap_or(&environment)
                    .to_string(),
                branch: trailer(&message, "Branch").unwrap_or_default().to_string(),
                service,
                environment,
                artifact_id,
                commit_sha: oid.to_string(),
                intent: convert::intent(kind) as i32,
            })
        }
        Title::Policy { service } => {
            pb::watch_events_response::Event::PolicyChanged(pb::PolicyChanged {
                service,
                title: message.lines().next().unwrap_or_default().to_string(),
            })
        }
    };
    Some(pb::WatchEventsResponse {
        commit_sha: oid.to_string(),
        time: Some(convert::timestamp(commit.time().seconds())),
        event: Some(event),
    })
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
        None => return false,
    };
    (service.is_empty() || service == event_service)
        && (environment.is_empty() || event_environment.is_none_or(|e| e == environment))
}
