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

pub(crate) mod config;
pub(crate) mod deliver;
pub(crate) mod journal;
pub(crate) mod message;

use std::collections::HashSet;
use std::sync::Arc;

use crate::domain::deployment::State;
use crate::engine::events::{DeploymentReported, Event, EventBus, Signal, What};
use crate::engine::reads::Reader;
use crate::repo::index::ReleaseKind;
use config::{Kind, Notifications};
use journal::{Entry, Journal};

/// What `start` started.
pub(crate) struct Started {
    /// The source's and the destinations' tasks.
    pub(crate) tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Counters for metrics.
    pub(crate) stats: Arc<deliver::Stats>,
    /// The journal, where deployment reports are written too.
    pub(crate) journal: Arc<Journal>,
}

/// Starts the source and one delivery task per destination.
pub(crate) fn start(
    notifications: Notifications,
    data_dir: &std::path::Path,
    reader: Arc<Reader>,
    events: &EventBus,
    tip: git2::Oid,
    stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<Started> {
    let dir = data_dir.join("notifications");
    let journal = Arc::new(Journal::open(&dir, &tip.to_string())?);
    let stats = Arc::new(deliver::Stats::new(journal.clone()));
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
pub(crate) fn journal_report(journal: &Journal, event: &Event) {
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
    mut receiver: tokio::sync::broadcast::Receiver<Signal>,
) {
    let mut journaled = catch_up(&journal, &reader).await;
    loop {
        match receiver.recv().await {
            // The server is stopping.
            Ok(Signal::Stop) => return,
            // Journaled by `deployments` itself, before it answered.
            Ok(Signal::Event(event)) if event.is_report() => {}
            Ok(Signal::Event(event)) => {
                if journaled.contains(&event.cursor) {
                    continue;
                }
                // Events come in commit order: once one is past what was
                // read from history, no later one was.
                journaled.clear();
                record(&journal, &reader, Event::clone(&event)).await;
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
async fn record(journal: &Arc<Journal>, reader: &Arc<Reader>, event: Event) {
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
fn entry_of(reader: &Reader, event: Event) -> Option<Entry> {
    let blank = |kind: Kind| Entry {
        seq: 0,
        id: format!("rm-{}", event.cursor.replace('.', "-")),
        kind,
        time: event.time,
        cursor: event.cursor.clone(),
        service: String::new(),
        environment: String::new(),
        artifact_id: String::new(),
        branch: String::new(),
        author: String::new(),
        actor: String::new(),
        commit: event.commit.clone(),
        build_url: String::new(),
        source_url: String::new(),
        detail: String::new(),
    };
    match &event.what {
        What::Released(release) => {
            let kind = match release.kind {
                ReleaseKind::Rollback => Kind::Rollback,
                ReleaseKind::AutoRelease => Kind::AutoRelease,
                _ => Kind::Release,
            };
            let mut entry = blank(kind);
            entry.detail = intent_word(release.kind).to_string();
            entry.service = release.service.clone();
            entry.environment = release.environment.clone();
            entry.artifact_id = release.artifact_id.clone();
            entry.branch = release.branch.clone();
            let path = format!(
                "{}/releases/{}/{}/artifact.json",
                entry.environment, release.namespace, entry.service
            );
            enrich(reader, &mut entry, &path);
            Some(entry)
        }
        What::BuildAdded(build) => {
            let mut entry = blank(Kind::Build);
            let app = &build.spec.application;
            entry.actor = app.committer_name.clone();
            entry.author = app.author_name.clone();
            entry.build_url = build.spec.ci.job_url.clone();
            entry.source_url = app.url.clone();
            entry.commit = build.build_commit.to_string();
            entry.service = build.service.clone();
            entry.artifact_id = build.spec.id.clone();
            entry.branch = if app.branch.is_empty() {
                release_manager::names::branch_of_folder(&build.branch)
            } else {
                app.branch.clone()
            };
            Some(entry)
        }
        // Journaled from `deployments` (see `journal_report`).
        What::DeploymentReported(_) => None,
        What::PolicyChanged { .. } => None,
    }
}

/// The journal entry of a deployment report's event.
fn report_entry(event: &Event) -> Option<Entry> {
    let What::DeploymentReported(report) = &event.what else {
        return None;
    };
    let DeploymentReported {
        environment,
        service,
        artifact_id,
        release_commit,
        deployment,
    } = report;
    let kind = match deployment.state {
        State::Succeeded => Kind::Deployed,
        State::Failed => Kind::DeploymentFailed,
        State::Progressing => return None,
    };
    let short = |sha: &str| sha.chars().take(12).collect::<String>();
    Some(Entry {
        seq: 0,
        id: format!(
            "rm-{}-{}-{}-{}-{}",
            kind.as_str(),
            environment,
            service,
            short(release_commit),
            short(&deployment.revision)
        ),
        kind,
        time: deployment.reported_at,
        cursor: String::new(),
        service: service.clone(),
        environment: environment.clone(),
        artifact_id: artifact_id.clone(),
        branch: String::new(),
        author: String::new(),
        actor: deployment.source.clone(),
        commit: deployment.revision.clone(),
        build_url: String::new(),
        source_url: String::new(),
        detail: deployment.message.clone(),
    })
}

fn intent_word(kind: ReleaseKind) -> &'static str {
    match kind {
        ReleaseKind::Branch => "release of a branch",
        ReleaseKind::Artifact => "release of an artifact",
        ReleaseKind::Promote => "promotion",
        ReleaseKind::Rollback => "rollback",
        ReleaseKind::AutoRelease => "auto-release",
        ReleaseKind::Unknown | ReleaseKind::Edit => "",
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
        let spec = crate::repo::tree::tree_of(repo, commit)
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
