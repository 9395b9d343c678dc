//! Notifications out (`--notifications FILE`): Slack messages and signed
//! CloudEvents webhooks for releases, rollbacks, auto-releases, builds and
//! what the cluster reported, delivered at least once.
//!
//! Events come from commits (the writer's event broadcast, or history read
//! again after a restart or when the broadcast ran ahead) and from
//! deployment reports; the *source* task writes each to the journal
//! (`journal`), and one task per destination (`deliver`) sends what it
//! wants from there and records what its receiver acknowledged. Of several
//! replicas, only the holder of the notification lease sends (`lease`).
//! Nothing here is on the write path: a release never waits for a
//! notification.

pub(crate) mod config;
pub(crate) mod deliver;
pub(crate) mod journal;
pub(crate) mod lease;
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

/// Starts the source, the lease's keeper and one delivery task per
/// destination. A new journal begins at `tip` in history and at `reports`
/// in the deployment record.
#[allow(clippy::too_many_arguments)]
pub(crate) fn start(
    notifications: Notifications,
    data_dir: &std::path::Path,
    reader: Arc<Reader>,
    events: &EventBus,
    tip: git2::Oid,
    reports: &str,
    lease: lease::Lease,
    stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<Started> {
    let dir = data_dir.join("notifications");
    let journal = Arc::new(Journal::open(&dir, &tip.to_string(), reports)?);
    let stats = Arc::new(deliver::Stats::new(journal.clone()));
    let mut tasks = Vec::new();
    // Nobody sends before the lease says who does.
    let (gate_tx, gate) = tokio::sync::watch::channel(lease::Gate {
        sending: false,
        delivered: Default::default(),
    });
    let progress = {
        let (journal, stats) = (journal.clone(), stats.clone());
        move || {
            stats
                .acked()
                .into_iter()
                .map(|(destination, seq)| {
                    let (commit, report) = journal.places_at(seq);
                    (destination, lease::Places { commit, report })
                })
                .collect()
        }
    };
    tasks.push(tokio::spawn(lease::keep(
        lease,
        gate_tx,
        progress,
        stop.clone(),
    )));
    {
        let (stats, mut gate) = (stats.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                stats.set_sending(gate.borrow_and_update().sending);
                if gate.changed().await.is_err() {
                    return;
                }
            }
        }));
    }
    let covered: deliver::Covered = {
        let reader = reader.clone();
        Arc::new(move |entry: &Entry, places: &lease::Places| {
            reader
                .with_published(|repo, _, _| Ok(covered(repo, entry, places)))
                .ok()
                .flatten()
        })
    };
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
            gate: gate.clone(),
            covered: covered.clone(),
        };
        tasks.push(tokio::spawn(deliverer.run(acked, stop.clone())));
    }
    Ok(Started {
        tasks,
        stats,
        journal,
    })
}

/// Whether `places` (how far a sender got) cover `entry`: its commit event
/// (or report) is the one they name, or an earlier one. `None` when the
/// mirror does not know the place named yet.
fn covered(repo: &git2::Repository, entry: &Entry, places: &lease::Places) -> Option<bool> {
    if !entry.cursor.is_empty() {
        return at_or_before(repo, &entry.cursor, &places.commit);
    }
    if !entry.report_cursor.is_empty() {
        if places.report.is_empty() || places.report == "-" {
            return Some(false);
        }
        return at_or_before(repo, &entry.report_cursor, &places.report);
    }
    Some(false)
}

/// Whether the place `<commit>.<n>` is at or before `mark` (`<commit>` or
/// `<commit>.<n>`) in history.
fn at_or_before(repo: &git2::Repository, place: &str, mark: &str) -> Option<bool> {
    let split = |text: &str| -> Option<(git2::Oid, Option<usize>)> {
        let (commit, n) = match text.split_once('.') {
            Some((commit, n)) => (commit, Some(n.parse().ok()?)),
            None => (text, None),
        };
        Some((git2::Oid::from_str(commit).ok()?, n))
    };
    let ((commit, n), (mark, mark_n)) = (split(place)?, split(mark)?);
    if commit == mark {
        return Some(match (n, mark_n) {
            (_, None) => true,
            (Some(n), Some(mark_n)) => n <= mark_n,
            (None, Some(_)) => false,
        });
    }
    repo.find_commit(mark).ok()?;
    repo.graph_descendant_of(mark, commit).ok()
}

/// Journals a deployment report's event (called by `deployments` before
/// it answers the report, and for the reports other replicas took), with
/// what the release commit and its artifact.json say of the release.
pub(crate) fn journal_report(journal: &Journal, reader: &Reader, event: &Event) {
    if let Some(mut entry) = report_entry(event) {
        let path = format!(
            "{}/releases/{}/{}/artifact.json",
            entry.environment, entry.namespace, entry.service
        );
        let release_commit = match &event.what {
            What::DeploymentReported(report) => report.release_commit.clone(),
            _ => String::new(),
        };
        let (actor, commit) = (
            entry.actor.clone(),
            std::mem::replace(&mut entry.commit, release_commit),
        );
        enrich(reader, &mut entry, &path);
        // The reporter, and the revision reported, are what a report's
        // message names; the release's own details only enrich it.
        entry.actor = actor;
        entry.commit = commit;
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
        report_cursor: String::new(),
        service: String::new(),
        environment: String::new(),
        namespace: String::new(),
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
            entry.namespace = release.namespace.clone();
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
        What::DeploymentReported(_) | What::ReconciliationError(_) => None,
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
        release_commit: _,
        namespace,
        deployment,
    } = report;
    let kind = match deployment.state {
        State::Succeeded => Kind::Deployed,
        State::Failed => Kind::DeploymentFailed,
        State::Progressing => return None,
    };
    Some(Entry {
        seq: 0,
        // Its place in the deployment record: the same on every replica.
        id: format!("rm-report-{}", event.cursor.replace('.', "-")),
        kind,
        time: deployment.reported_at,
        cursor: String::new(),
        report_cursor: event.cursor.clone(),
        service: service.clone(),
        environment: environment.clone(),
        namespace: namespace.clone(),
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

/// Adds who released, the author, the branch and the links, from the
/// release commit and the artifact.json it holds at `path`.
fn enrich(reader: &Reader, entry: &mut Entry, path: &str) {
    let Ok(commit) = git2::Oid::from_str(&entry.commit) else {
        return;
    };
    let read = reader.with_published(|repo, published, _| {
        let details = crate::repo::index::ReleaseDetails::read(repo, commit).ok();
        let spec = crate::repo::tree::tree_of(repo, commit)
            .ok()
            .and_then(|tree| crate::repo::tree::blob_at(repo, &tree, path).ok().flatten())
            .and_then(|bytes| release_manager::spec::ArtifactSpec::parse_committed(&bytes).ok())
            .map(|(spec, _)| spec);
        // The build's branch folder, for an artifact.json that names none.
        let branch = crate::repo::index::View::published(&published.index)
            .build(&entry.service, &entry.artifact_id)
            .map(|build| build.branch.to_string());
        Ok((details, spec, branch))
    });
    let Ok((details, spec, branch)) = read else {
        return;
    };
    if let Some(details) = details {
        entry.actor = if details.released_by.name.is_empty() {
            details.released_by.email
        } else {
            details.released_by.name
        };
    }
    if let Some(spec) = spec {
        if entry.branch.is_empty() {
            entry.branch = spec.application.branch.clone();
        }
        if entry.branch.is_empty() {
            entry.branch = branch.unwrap_or_default();
        }
        entry.author = spec.application.author_name;
        entry.build_url = spec.ci.job_url;
        entry.source_url = spec.application.url;
    }
}
