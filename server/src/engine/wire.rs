//! The API's messages built from domain values: the read side answers in
//! them, and the gRPC edge converts write results and events with them.
//! The writer and the flows never see these types.

use prost_types::Timestamp;
use release_manager::pb;
use release_manager::spec::ArtifactSpec;

use crate::domain::deployment::{Deployment, ReconciliationError, State};
use crate::engine::events::{DeploymentReported, Event, What};
use crate::flows::{Outcome, ReleaseDone};
use crate::repo::index::{ReleaseDetails, ReleaseKind, ReleaseRecord, Signature};

/// A git identity as a `Person`.
pub(crate) fn person(signature: &Signature) -> pb::Person {
    pb::Person {
        name: signature.name.clone(),
        email: signature.email.clone(),
    }
}

/// Seconds since the epoch as a `Timestamp`.
pub(crate) fn timestamp(seconds: i64) -> Timestamp {
    Timestamp { seconds, nanos: 0 }
}

/// An RFC 3339 time as a `Timestamp`; `None` when unset (empty, or Go's
/// zero time) or malformed.
pub(crate) fn rfc3339(text: &str) -> Option<Timestamp> {
    if release_manager::spec::is_unset_time(text) {
        return None;
    }
    let time = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    Some(Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    })
}

/// The release intent enum.
pub(crate) fn intent(kind: ReleaseKind) -> pb::ReleaseIntent {
    match kind {
        ReleaseKind::Unknown => pb::ReleaseIntent::Unspecified,
        ReleaseKind::Branch => pb::ReleaseIntent::ReleaseBranch,
        ReleaseKind::Artifact => pb::ReleaseIntent::ReleaseArtifact,
        ReleaseKind::Promote => pb::ReleaseIntent::Promote,
        ReleaseKind::Rollback => pb::ReleaseIntent::Rollback,
        ReleaseKind::AutoRelease => pb::ReleaseIntent::AutoRelease,
        ReleaseKind::Edit => pb::ReleaseIntent::Edit,
    }
}

/// The outcome enum.
pub(crate) fn outcome(outcome: Outcome) -> pb::Outcome {
    match outcome {
        Outcome::Applied => pb::Outcome::Applied,
        Outcome::AlreadyUpToDate => pb::Outcome::AlreadyUpToDate,
    }
}

/// A finished release-like write.
pub(crate) fn release_result(done: &ReleaseDone) -> pb::ReleaseResult {
    pb::ReleaseResult {
        outcome: outcome(done.outcome) as i32,
        service: done.service.clone(),
        environment: done.environment.clone(),
        namespace: done.namespace.clone(),
        artifact_id: done.artifact_id.clone(),
        branch: done.branch.clone(),
        commit_sha: done.commit.to_string(),
        intent: intent(done.kind) as i32,
        replayed: done.replayed,
    }
}

/// A person as the API sends one: absent when neither name nor email is
/// known.
fn known_person(name: &str, email: &str) -> Option<pb::Person> {
    (!name.is_empty() || !email.is_empty()).then(|| pb::Person {
        name: name.to_string(),
        email: email.to_string(),
    })
}

/// A build's artifact.json as an `ArtifactSummary`.
pub(crate) fn artifact_summary(
    spec: &ArtifactSpec,
    service: &str,
    branch: &str,
    build_commit: Option<git2::Oid>,
) -> pb::ArtifactSummary {
    let app = &spec.application;
    pb::ArtifactSummary {
        artifact_id: spec.id.clone(),
        service: if spec.service.is_empty() {
            service.to_string()
        } else {
            spec.service.clone()
        },
        // `branch` is the folder the build was found in.
        branch: if app.branch.is_empty() {
            release_manager::names::branch_of_folder(branch)
        } else {
            app.branch.clone()
        },
        author: known_person(&app.author_name, &app.author_email),
        committer: known_person(&app.committer_name, &app.committer_email),
        message: app.message.clone(),
        source_sha: app.sha.clone(),
        source_url: app.url.clone(),
        build_url: spec.ci.job_url.clone(),
        build_date: rfc3339(spec.build_time()),
        vulnerabilities: spec.vulnerabilities().map(|v| pb::Vulnerabilities {
            high: v.high,
            medium: v.medium,
            low: v.low,
        }),
        squad: spec.squad.clone(),
        build_commit_sha: build_commit.map(|c| c.to_string()).unwrap_or_default(),
    }
}

/// A release commit as a `ReleaseRecord`.
pub(crate) fn release_record(
    record: &ReleaseRecord,
    details: &ReleaseDetails,
) -> pb::ReleaseRecord {
    pb::ReleaseRecord {
        artifact_id: record.artifact_id.to_string(),
        namespace: record.namespace.to_string(),
        intent: intent(record.kind) as i32,
        released_at: Some(timestamp(record.time)),
        // An edit names who edited, never a releaser.
        released_by: (record.kind != ReleaseKind::Edit).then(|| person(&details.released_by)),
        edited_by: (record.kind == ReleaseKind::Edit).then(|| person(&details.released_by)),
        author: Some(person(&details.author)),
        commit_sha: record.commit.to_string(),
        title: details.title.clone(),
    }
}

/// A deployment state as the API names it.
pub(crate) fn deployment_state(state: State) -> pb::DeploymentState {
    match state {
        State::Progressing => pb::DeploymentState::Progressing,
        State::Succeeded => pb::DeploymentState::Deployed,
        State::Failed => pb::DeploymentState::Failed,
    }
}

/// Nanoseconds since the epoch as a `Timestamp`.
pub(crate) fn timestamp_nanos(nanos: i64) -> Timestamp {
    Timestamp {
        seconds: nanos.div_euclid(1_000_000_000),
        nanos: nanos.rem_euclid(1_000_000_000) as i32,
    }
}

/// What the cluster said of a release; PENDING when nothing.
pub(crate) fn deployment(deployment: Option<&Deployment>) -> pb::Deployment {
    match deployment {
        Some(d) => pb::Deployment {
            state: deployment_state(d.state) as i32,
            message: d.message.clone(),
            revision: d.revision.clone(),
            reported_at: Some(timestamp(d.reported_at)),
            source: d.source.clone(),
            observed_at: d.observed_at.map(timestamp_nanos),
        },
        None => pb::Deployment {
            state: pb::DeploymentState::Pending as i32,
            ..Default::default()
        },
    }
}

/// The state of a release on a server that takes no deployment reports.
pub(crate) fn not_reported() -> pb::Deployment {
    pb::Deployment {
        state: pb::DeploymentState::NotReported as i32,
        ..Default::default()
    }
}

/// A reconciliation error of `environment`.
pub(crate) fn reconciliation_error(
    environment: &str,
    error: &ReconciliationError,
) -> pb::ReconciliationError {
    pb::ReconciliationError {
        environment: environment.to_string(),
        source: error.source.clone(),
        message: error.message.clone(),
        revision: error.revision.clone(),
        reported_at: Some(timestamp(error.reported_at)),
        observed_at: error.observed_at.map(timestamp_nanos),
    }
}

/// A new deployment state of one release.
pub(crate) fn deployment_reported(report: &DeploymentReported) -> pb::DeploymentReported {
    pb::DeploymentReported {
        environment: report.environment.clone(),
        service: report.service.clone(),
        artifact_id: report.artifact_id.clone(),
        release_commit_sha: report.release_commit.clone(),
        deployment: Some(deployment(Some(&report.deployment))),
    }
}

/// An event as `WatchEvents` sends it.
pub(crate) fn event(event: &Event) -> pb::WatchEventsResponse {
    use pb::watch_events_response::Event as Sent;
    let sent = match &event.what {
        What::BuildAdded(build) => Sent::BuildAdded(artifact_summary(
            &build.spec,
            &build.service,
            &build.branch,
            Some(build.build_commit),
        )),
        What::Released(release) => Sent::Released(pb::ReleaseResult {
            outcome: pb::Outcome::Applied as i32,
            namespace: release.namespace.clone(),
            branch: release.branch.clone(),
            service: release.service.clone(),
            environment: release.environment.clone(),
            artifact_id: release.artifact_id.clone(),
            commit_sha: event.commit.clone(),
            intent: intent(release.kind) as i32,
            replayed: false,
        }),
        What::PolicyChanged { service, title } => Sent::PolicyChanged(pb::PolicyChanged {
            service: service.clone(),
            title: title.clone(),
        }),
        What::DeploymentReported(report) => Sent::DeploymentReported(deployment_reported(report)),
        What::ReconciliationError(changed) => {
            Sent::ReconciliationError(pb::ReconciliationErrorChanged {
                error: Some(reconciliation_error(&changed.environment, &changed.error)),
                cleared: changed.cleared,
            })
        }
    };
    pb::WatchEventsResponse {
        commit_sha: event.commit.clone(),
        time: Some(timestamp(event.time)),
        event: Some(sent),
        cursor: event.cursor.clone(),
    }
}

/// One side of a comparison as an `EnvironmentStatus` (without what the
/// cluster reported: the edge joins that, as for status).
fn compared_side(service: &str, side: &crate::engine::compare::Side) -> pb::EnvironmentStatus {
    let running = side.running.as_ref();
    pb::EnvironmentStatus {
        environment: side.environment.clone(),
        namespace: side.namespace.clone(),
        artifact: running.map(|r| artifact_summary(&r.spec, service, &r.branch, r.build_commit)),
        released_at: running
            .filter(|r| r.released_at != 0)
            .map(|r| timestamp(r.released_at)),
        released_by: running.and_then(|r| r.released_by.as_ref()).map(person),
        release_commit_sha: running
            .and_then(|r| r.release_commit)
            .map(|c| c.to_string())
            .unwrap_or_default(),
        deployment: None,
        // One namespace is compared: the one described above.
        namespaces: Vec::new(),
        reconciliation_errors: Vec::new(),
    }
}

/// A comparison of two environments as `CompareEnvironments` answers it.
pub(crate) fn comparison(
    comparison: &crate::engine::compare::Comparison,
) -> pb::CompareEnvironmentsResponse {
    use crate::engine::compare::Newer;
    use crate::repo::diff::{Change, LineKind};
    let service = &comparison.service;
    let manifest_diff = comparison
        .files
        .iter()
        .map(|file| pb::ManifestFileDiff {
            path: file.path.clone(),
            old_path: file.old_path.clone(),
            change: match file.change {
                Change::Added => pb::FileChange::Added,
                Change::Deleted => pb::FileChange::Deleted,
                Change::Modified => pb::FileChange::Modified,
                Change::Renamed => pb::FileChange::Renamed,
            } as i32,
            binary: file.binary,
            hunks: file
                .hunks
                .iter()
                .map(|hunk| pb::DiffHunk {
                    header: hunk.header.clone(),
                    lines: hunk
                        .lines
                        .iter()
                        .map(|line| pb::DiffLine {
                            kind: match line.kind {
                                LineKind::Context => pb::DiffLineKind::Context,
                                LineKind::Added => pb::DiffLineKind::Added,
                                LineKind::Removed => pb::DiffLineKind::Removed,
                            } as i32,
                            text: line.text.clone(),
                            old_line: line.old_line,
                            new_line: line.new_line,
                            beyond_artifact_id: line.notable,
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    pb::CompareEnvironmentsResponse {
        service: service.clone(),
        from_environment: Some(compared_side(service, &comparison.from)),
        to_environment: Some(compared_side(service, &comparison.to)),
        newer: match comparison.newer {
            Newer::Unknown => pb::NewerEnvironment::Unspecified,
            Newer::From => pb::NewerEnvironment::From,
            Newer::To => pb::NewerEnvironment::To,
            Newer::Same => pb::NewerEnvironment::Same,
        } as i32,
        builds: comparison
            .builds
            .iter()
            .map(|b| artifact_summary(&b.spec, service, &b.branch, Some(b.commit)))
            .collect(),
        builds_truncated: comparison.builds_truncated,
        source_compare_url: comparison.source_compare_url.clone().unwrap_or_default(),
        manifest_diff,
        manifest_diff_truncated: comparison.diff_truncated,
        lines_beyond_artifact_id: comparison.lines_beyond_artifact_id as u32,
    }
}
