//! Notifications out (`--notifications FILE`): Slack messages and signed
//! CloudEvents webhooks for releases, rollbacks, auto-releases, builds and
//! what the cluster reported, delivered at least once.
//!
//! Events come from commits (the writer's event broadcast, or history read
//! again after a restart or when the broadcast ran ahead) and from
//! deployment reports; the *source* task writes each to the journal
//! (`journal`), and one task per destination (`deliver`) sends what it
//! wants from there and records what its receiver acknowledged. Nothing
//! here is on the write path: a release never waits for a notification.

pub mod config;
pub mod deliver;
pub mod journal;
pub mod message;

use std::collections::HashSet;
use std::sync::Arc;

use release_manager::pb;
use release_manager::pb::watch_events_response::Event;

use crate::engine::reads::Reader;
use config::{Kind, Notifications};
use journal::{Entry, Journal};

/// What `start` started.
pub struct Started {
    /// The source's and the destinations' tasks.
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Counters for metrics.
    pub stats: Arc<deliver::Stats>,
    /// The journal, where deployment reports are written too.
    pub journal: Arc<Journal>,
}

/// Starts the source and one delivery task per destination.
pub fn start(
    notifications: Notifications,
    data_dir: &std::path::Path,
    reader: Arc<Reader>,
    events: &tokio::sync::broadcast::Sender<pb::WatchEventsResponse>,
    tip: git2::Oid,
    stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<Started> {
    let dir = data_dir.join("notifications");
    let journal = Arc::new(Journal::open(&dir, &tip.to_string())?);
    let stats = Arc::new(deliver::Stats::default());
    let mut tasks = Vec::new();
    // Subscribed before history is read again, so nothing falls between.
    let receiver = events.subscribe();
    tasks.push(tokio::spawn(source(journal.clone(), reader, receiver)));
    let client = deliver::client();
    // Every destination's cursor is known before any task runs, so none
    // can let the journal drop what another has not sent.
    let cursors: Vec<u64> = notifications
        .destinations
        .iter()
        .map(|d| deliver::load_cursor(&dir, &d.name, &journal))
        .collect();
    for (destination, acked) in notifications.destinations.iter().zip(&cursors) {
        stats.register(&destination.name, *acked);
    }
    for (destination, acked) in notifications.destinations.into_iter().zip(cursors) {
        tracing::info!(destination = %destination.name, kinds = ?destination.kinds, "notifications on");
        let deliverer = deliver::Deliverer {
            destination,
            delivery: notifications.delivery,
            journal: journal.clone(),
            dir: dir.clone(),
            client: client.clone(),
            stats: stats.clone(),
        };
        tasks.push(tokio::spawn(deliverer.run(acked, stop.clone())));
    }
    Ok(Started {
        tasks,
        stats,
        journal,
    })
}

/// Journals a deployment report's event (called by `deployments` before
/// it answers the report).
pub fn journal_report(journal: &Journal, event: pb::WatchEventsResponse) {
    if let Some(entry) = report_entry(event) {
        if let Err(e) = journal.append(entry) {
            tracing::error!(error = %e, "cannot write the notification journal; this report will not be notified");
        }
    }
}

/// Writes every event to the journal, until the server stops.
async fn source(
    journal: Arc<Journal>,
    reader: Arc<Reader>,
    mut receiver: tokio::sync::broadcast::Receiver<pb::WatchEventsResponse>,
) {
    let mut journaled = catch_up(&journal, &reader).await;
    loop {
        match receiver.recv().await {
            // The server is stopping.
            Ok(event) if event.event.is_none() => return,
            // Journaled by `deployments` itself, before it answered.
            Ok(event) if matches!(event.event, Some(Event::DeploymentReported(_))) => {}
            Ok(event) => {
                if journaled.contains(&event.cursor) {
                    continue;
                }
                // Events come in commit order: once one is past what was
                // read from history, no later one was.
                journaled.clear();
                record(&journal, &reader, event).await;
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "notifications fell behind the events; reading them from history"
                );
                journaled.extend(catch_up(&journal, &reader).await);
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Journals the commit events after the journal's last one (read from
/// history); returns their cursors.
async fn catch_up(journal: &Arc<Journal>, reader: &Arc<Reader>) -> HashSet<String> {
    let cursor_text = journal.last_cursor();
    let Some(cursor) = crate::engine::events::Cursor::parse(&cursor_text) else {
        tracing::warn!(cursor = %cursor_text, "the notification journal's cursor is unreadable; notifying from now on");
        return HashSet::new();
    };
    let replay = {
        let reader = reader.clone();
        tokio::task::spawn_blocking(move || reader.events_since(Some(cursor))).await
    };
    let events = match replay {
        Ok(Ok((replay, _))) => replay.events,
        Ok(Err(e)) => {
            tracing::warn!(cursor = %cursor_text, error = %e, "cannot read the events the notifications missed; notifying from now on");
            return HashSet::new();
        }
        Err(_) => return HashSet::new(),
    };
    if !events.is_empty() {
        tracing::info!(
            events = events.len(),
            "notifications catching up with history"
        );
    }
    let mut cursors = HashSet::new();
    for event in events {
        cursors.insert(event.cursor.clone());
        record(journal, reader, event).await;
    }
    cursors
}

/// Journals one event (those no destination can want are skipped).
async fn record(journal: &Arc<Journal>, reader: &Arc<Reader>, event: pb::WatchEventsResponse) {
    let (reader, journal) = (reader.clone(), journal.clone());
    let _ = tokio::task::spawn_blocking(move || {
        let Some(entry) = entry_of(&reader, event) else { return };
        if let Err(e) = journal.append(entry) {
            tracing::error!(error = %e, "cannot write the notification journal; this event will not be notified");
        }
    })
    .await;
}

/// The journal entry of an event, with what its commit and artifact.json
/// say about it.
fn entry_of(reader: &Reader, event: pb::WatchEventsResponse) -> Option<Entry> {
    let time = event.time.as_ref().map_or(0, |t| t.seconds);
    let blank = |kind: Kind, id: String| Entry {
        seq: 0,
        id,
        kind,
        time,
        cursor: event.cursor.clone(),
        service: String::new(),
        environment: String::new(),
        artifact_id: String::new(),
        branch: String::new(),
        author: String::new(),
        actor: String::new(),
        commit: event.commit_sha.clone(),
        build_url: String::new(),
        source_url: String::new(),
        detail: String::new(),
    };
    let commit_id = format!("rm-{}", event.cursor.replace('.', "-"));
    match event.event? {
        Event::Released(result) => {
            let kind = match result.intent() {
                pb::ReleaseIntent::Rollback => Kind::Rollback,
                pb::ReleaseIntent::AutoRelease => Kind::AutoRelease,
                _ => Kind::Release,
            };
            let mut entry = blank(kind, commit_id);
            entry.detail = intent_word(result.intent()).to_string();
            entry.service = result.service;
            entry.environment = result.environment;
            entry.artifact_id = result.artifact_id;
            entry.branch = result.branch;
            let path = format!(
                "{}/releases/{}/{}/artifact.json",
                entry.environment, result.namespace, entry.service
            );
            enrich(reader, &mut entry, &path);
            Some(entry)
        }
        Event::BuildAdded(build) => {
            let mut entry = blank(Kind::Build, commit_id);
            entry.actor = build
                .committer
                .as_ref()
                .map(|p| p.name.clone())
                .unwrap_or_default();
            entry.author = build
                .author
                .as_ref()
                .map(|p| p.name.clone())
                .unwrap_or_default();
            entry.build_url = build.build_url.clone();
            entry.source_url = build.source_url.clone();
            entry.commit = build.build_commit_sha.clone();
            entry.service = build.service;
            entry.artifact_id = build.artifact_id;
            entry.branch = build.branch;
            Some(entry)
        }
        // Journaled from `deployments` (see `journal_report`).
        Event::DeploymentReported(_) => None,
        Event::PolicyChanged(_) | Event::Live(_) | Event::Dropped(_) => None,
    }
}

/// The journal entry of a deployment report's event.
fn report_entry(event: pb::WatchEventsResponse) -> Option<Entry> {
    let Some(Event::DeploymentReported(report)) = event.event else {
        return None;
    };
    let deployment = report.deployment.unwrap_or_default();
    let kind = match pb::DeploymentState::try_from(deployment.state) {
        Ok(pb::DeploymentState::Succeeded) => Kind::Deployed,
        Ok(pb::DeploymentState::Failed) => Kind::DeploymentFailed,
        _ => return None,
    };
    let short = |sha: &str| sha.chars().take(12).collect::<String>();
    Some(Entry {
        seq: 0,
        id: format!(
            "rm-{}-{}-{}-{}-{}",
            kind.as_str(),
            report.environment,
            report.service,
            short(&report.release_commit_sha),
            short(&deployment.revision)
        ),
        kind,
        time: deployment
            .reported_at
            .or(event.time)
            .map_or(0, |t| t.seconds),
        cursor: String::new(),
        service: report.service,
        environment: report.environment,
        artifact_id: report.artifact_id,
        branch: String::new(),
        author: String::new(),
        actor: deployment.source,
        commit: deployment.revision,
        build_url: String::new(),
        source_url: String::new(),
        detail: deployment.message,
    })
}

fn intent_word(intent: pb::ReleaseIntent) -> &'static str {
    match intent {
        pb::ReleaseIntent::ReleaseBranch => "release of a branch",
        pb::ReleaseIntent::ReleaseArtifact => "release of an artifact",
        pb::ReleaseIntent::Promote => "promotion",
        pb::ReleaseIntent::Rollback => "rollback",
        pb::ReleaseIntent::AutoRelease => "auto-release",
        _ => "",
    }
}

/// Adds who released, the author and the links, from the release commit
/// and the artifact.json it holds at `path`.
fn enrich(reader: &Reader, entry: &mut Entry, path: &str) {
    let Ok(commit) = git2::Oid::from_str(&entry.commit) else {
        return;
    };
    let read = reader.with_published(|repo, _, _| {
        let details = crate::repo::index::ReleaseDetails::read(repo, commit).ok();
        let spec = repo
            .find_commit(commit)
            .and_then(|c| c.tree())
            .ok()
            .and_then(|tree| crate::repo::tree::blob_at(repo, &tree, path).ok().flatten())
            .and_then(|bytes| release_manager::spec::ArtifactSpec::parse_committed(&bytes).ok())
            .map(|(spec, _)| spec);
        Ok((details, spec))
    });
    let Ok((details, spec)) = read else { return };
    if let Some(details) = details {
        entry.actor = if details.released_by.name.is_empty() {
            details.released_by.email
        } else {
            details.released_by.name
        };
    }
    if let Some(spec) = spec {
        entry.author = spec.application.author_name;
        entry.build_url = spec.ci.job_url;
        entry.source_url = spec.application.url;
    }
}
