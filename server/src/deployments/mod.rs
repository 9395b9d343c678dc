//! Deployment status from the cluster: what GitOps controllers (Flux, Argo
//! CD, anything that posts JSON or calls `ReportDeployment`) say they
//! applied, and about whom. A report names an environment, the config
//! repository commit the controller applied (the *revision*) and what it is
//! about ([`About`]); it changes only the services it is about:
//!
//! - a success of the whole environment: every current release there that
//!   the revision holds;
//! - words that name objects or release folders (a Flux health check, a
//!   change set, a build error): the services whose manifests declare
//!   them; a failure that names none is the environment's reconciliation
//!   error, and marks no service failed;
//! - one service (a Kustomization or Application per service, or a plain
//!   report with `service`): that service.
//!
//! Reports of the whole environment (or naming objects) that say
//! progressing or failed leave alone a release that had its final word
//! already: an old release is never repainted by news about someone else.
//! A report older than the one applied to a service (by the controller's
//! own times, else by the revisions' places in history) changes nothing
//! (`state`).
//!
//! The states live on the remote (`shared`): every replica reads them, a
//! change is written compare-and-swap, and each change is an event for
//! watchers and notifications, in the record's order, with a place a
//! watcher can resume from.

mod decide;
pub(crate) mod manifests;
mod named;
mod record;
pub(crate) mod shared;
mod startup;
pub(crate) mod state;
mod whom;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use git2::Oid;

pub(crate) use crate::domain::deployment::State;
use crate::domain::deployment::{Deployment, ReconciliationError};
use crate::domain::{FlowError, Reason};
use crate::engine::events::{DeploymentReported, Event, EventBus, ReportsAt, Signal};
use crate::engine::reads::Reader;
use crate::engine::writer::WriterHandle;
use shared::{Recorded, Store};
use state::{Change, ServiceState};
use whom::Targets;

/// What a report is about.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum About {
    /// The whole environment: every current release the revision holds.
    Everything,
    /// One service (in `namespace`, when it is released to several).
    Service {
        /// The service.
        name: String,
        /// Its release's namespace folder.
        namespace: Option<String>,
    },
    /// Whatever the controller's words name (objects, release folders).
    Named,
}

/// One report, whichever route it came by.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    /// The environment the controller deploys.
    pub(crate) environment: String,
    /// The commit it applied, as it wrote it (a sha, `main@sha1:<sha>`, ...).
    pub(crate) revision: String,
    /// What it says.
    pub(crate) state: State,
    /// Its words (the reason of a failure).
    pub(crate) message: String,
    /// Who reported.
    pub(crate) source: String,
    /// About whom.
    pub(crate) about: About,
    /// When the controller observed it (nanoseconds since the epoch), if
    /// it said: orders the reports of a service.
    pub(crate) observed_at: Option<i64>,
}

/// What a report did.
#[derive(Debug, Default)]
pub(crate) struct Answer {
    /// The services whose state it set or confirmed, with that state.
    pub(crate) covered: Vec<DeploymentReported>,
    /// Services it was about but left as they were: a newer report was
    /// applied to them already.
    pub(crate) ignored_as_older: Vec<String>,
    /// It named no service and became (or confirmed) the environment's
    /// reconciliation error.
    pub(crate) environment_error: bool,
}

/// Most bytes of a report's message kept.
const MESSAGE_LIMIT: usize = 4096;
/// Most bytes of a report's source kept.
const SOURCE_LIMIT: usize = 200;
/// Most compare-and-swap attempts for one report.
const MOST_ATTEMPTS: u32 = 8;

/// The deployment states, shared by the routes, the RPCs and status.
pub(crate) struct Deployments {
    store: Store,
    /// Whether anyone can report at all (a webhook secret, or a token
    /// `ReportDeployment` accepts).
    takes_reports: bool,
    manifests: Arc<manifests::Manifests>,
    /// Reports received, by state, for metrics.
    counts: Mutex<BTreeMap<&'static str, u64>>,
    /// Serialises reports and reads of the record: two racing reports could
    /// otherwise be judged against the same state.
    reporting: tokio::sync::Mutex<()>,
    /// Where notifications of new states are journaled, when they are on.
    journal: Option<Arc<crate::notify::journal::Journal>>,
    reader: Arc<Reader>,
    writer: WriterHandle,
    events: EventBus,
}

impl Deployments {
    /// The states of `store` (loaded). States a server of an earlier
    /// version kept in `data_dir` (`deployments.json`) are written to the
    /// remote when it has none yet. What the journal missed of the record
    /// while the server was down is journaled now.
    pub(crate) fn open(
        data_dir: &std::path::Path,
        store: Store,
        takes_reports: bool,
        reader: Arc<Reader>,
        writer: WriterHandle,
        events: EventBus,
        journal: Option<Arc<crate::notify::journal::Journal>>,
    ) -> Self {
        let deployments = Deployments {
            store,
            takes_reports,
            manifests: Arc::new(manifests::Manifests::default()),
            counts: Mutex::new(BTreeMap::new()),
            reporting: tokio::sync::Mutex::new(()),
            journal,
            reader,
            writer,
            events,
        };
        deployments.migrate(&data_dir.join(startup::LEGACY_FILE));
        deployments.catch_up_journal();
        deployments
    }

    /// Whether this server takes deployment reports at all.
    pub(crate) fn takes_reports(&self) -> bool {
        self.takes_reports
    }

    /// Reports received so far, by state.
    pub(crate) fn counts(&self) -> Vec<(&'static str, u64)> {
        let counts = self.counts.lock().expect("counts lock");
        ["progressing", "deployed", "failed"]
            .into_iter()
            .map(|state| (state, counts.get(state).copied().unwrap_or(0)))
            .collect()
    }

    /// What the cluster said about the release `release_commit` of
    /// `service` in `environment`; `None` (pending) when no report covers
    /// it.
    pub(crate) fn of(
        &self,
        environment: &str,
        service: &str,
        release_commit: &str,
    ) -> Option<Deployment> {
        self.store.with_states(|states| {
            states
                .service(environment, service)
                .filter(|kept| !release_commit.is_empty() && kept.release_commit == release_commit)
                .map(ServiceState::deployment)
        })
    }

    /// The reconciliation errors standing in `environment`.
    pub(crate) fn errors_of(&self, environment: &str) -> Vec<ReconciliationError> {
        self.store
            .with_states(|states| states.errors_of(environment))
    }

    /// Whether any controller has reported on `environment`.
    pub(crate) fn reporting(&self, environment: &str) -> bool {
        self.store.with_states(|states| {
            states.services.keys().any(|(e, _)| e == environment)
                || states.errors.keys().any(|(e, _)| e == environment)
        })
    }

    /// The record's place now: where a new watcher's reports begin.
    pub(crate) fn place(&self) -> ReportsAt {
        match self.store.head() {
            Some(commit) => ReportsAt::At {
                commit,
                after: None,
            },
            None => ReportsAt::Start,
        }
    }

    /// The report events after `at` (from the record's history), and the
    /// record's commits they came from. NOT_FOUND when `at` is not in the
    /// record's history.
    pub(crate) async fn since(
        self: &Arc<Self>,
        at: ReportsAt,
    ) -> Result<(Vec<Event>, Vec<Oid>), FlowError> {
        // The record's commits never change: no lock is needed to read
        // them, only the head known (a report taken meanwhile comes live).
        let this = self.clone();
        let recorded = tokio::task::spawn_blocking(move || this.recorded_since(at))
            .await
            .map_err(stopped)?;
        let recorded = recorded.map_err(|e| match e {
            crate::repo::RepoError::Git {
                action: shared::REPLAY_ACTION,
                source,
            } => FlowError::invalid(
                "since",
                format!(
                    "invalid since: {}; subscribe without `since`",
                    source.message()
                ),
            ),
            other => FlowError::from(other),
        })?;
        let Some(recorded) = recorded else {
            return Err(FlowError::not_found(
                Reason::CursorNotFound,
                format!(
                    "cursor: report {} is not in the deployment record; subscribe without `since`",
                    at.text()
                ),
            ));
        };
        let commits = recorded.iter().map(|(r, _)| r.commit).collect();
        let events = recorded
            .iter()
            .flat_map(|(r, from)| self.events_of(r, *from))
            .collect();
        Ok((events, commits))
    }

    /// The record's commits after `at`, each with the first of its changes
    /// that comes after `at` (the rest of `at`'s own commit first);
    /// `Ok(None)` when `at` is not in the record's history.
    fn recorded_since(
        &self,
        at: ReportsAt,
    ) -> Result<Option<Vec<(Recorded, usize)>>, crate::repo::RepoError> {
        let (after, skip) = match at {
            ReportsAt::Unknown => return Ok(Some(Vec::new())),
            ReportsAt::Start => (None, None),
            ReportsAt::At { commit, after } => (Some(commit), after),
        };
        let Some(later) = self.store.since(after)? else {
            return Ok(None);
        };
        let mut recorded = Vec::with_capacity(later.len() + 1);
        if let (Some(commit), Some(k)) = (after, skip) {
            recorded.push((self.store.commit(commit)?, k + 1));
        }
        recorded.extend(later.into_iter().map(|r| (r, 0)));
        Ok(Some(recorded))
    }

    /// Whom a report is about, at the published tip.
    async fn targets(&self, revision: Oid, report: Arc<Report>) -> Result<Targets, FlowError> {
        let reader = self.reader.clone();
        let named = match report.about {
            About::Named => Some(named::named_in(&report.message)),
            _ => None,
        };
        let manifests = self.manifests.clone();
        tokio::task::spawn_blocking(move || {
            reader.with_published(|repo, published, _| {
                whom::targets_at(
                    repo,
                    published,
                    &report,
                    revision,
                    named.as_ref(),
                    &manifests,
                )
            })
        })
        .await
        .map_err(stopped)?
    }

    /// What a report changes, judged against the states known (blocking:
    /// history decides the order of reports without times).
    fn decide(
        &self,
        report: &Report,
        revision: Oid,
        targets: &Targets,
        now: i64,
    ) -> Result<(Answer, Vec<Change>), FlowError> {
        self.reader.with_published(|repo, _, _| {
            let history = |a: &str, b: &str| decide::place_in_history(repo, a, b);
            Ok(self.store.with_states(|states| {
                decide::decide(states, report, revision, targets, now, &history)
            }))
        })
    }

    /// Reads the remote's record: what other replicas took since is told
    /// to watchers and journaled, as this server's own reports are.
    pub(crate) async fn refresh(self: &Arc<Self>) -> Result<(), FlowError> {
        let _one_at_a_time = self.reporting.lock().await;
        self.refresh_locked().await
    }

    async fn refresh_locked(self: &Arc<Self>) -> Result<(), FlowError> {
        let this = self.clone();
        let recorded = tokio::task::spawn_blocking(move || this.store.refresh())
            .await
            .map_err(stopped)??;
        for commit in &recorded {
            self.tell(commit, 0).await?;
        }
        Ok(())
    }

    /// Takes a report: finds whom it is about (fetching once when the
    /// revision is newer than the mirror), judges it against what is kept,
    /// publishes what it changes, and tells watchers and notifications.
    pub(crate) async fn report(self: &Arc<Self>, report: Report) -> Result<Answer, FlowError> {
        if !self
            .reader
            .settings()
            .environments
            .contains(&report.environment)
        {
            return Err(FlowError::invalid(
                "environment",
                format!(
                    "unknown environment {:?}; this server's environments are {}",
                    report.environment,
                    self.reader.settings().environments.join(", ")
                ),
            ));
        }
        let revision = whom::parse_revision(&report.revision)?;
        let mut report = report;
        report.message = report.message.trim().to_string();
        truncate(&mut report.message, MESSAGE_LIMIT);
        report.source = report.source.trim().to_string();
        truncate(&mut report.source, SOURCE_LIMIT);
        let report = Arc::new(report);
        let _one_at_a_time = self.reporting.lock().await;
        let targets = match self.targets(revision, report.clone()).await {
            Err(FlowError::NotFound {
                reason: Reason::RevisionNotFound,
                ..
            }) => {
                // A controller may report a commit pushed by someone else
                // that the mirror has not fetched yet.
                self.writer.sync(Vec::new()).await?;
                self.targets(revision, report.clone()).await?
            }
            other => other?,
        };
        *self
            .counts
            .lock()
            .expect("counts lock")
            .entry(report.state.as_str())
            .or_default() += 1;
        let targets = Arc::new(targets);
        let now = chrono::Utc::now().timestamp();
        let mut attempts = 0;
        let (answer, told) = loop {
            attempts += 1;
            let this = self.clone();
            let (report, targets) = (report.clone(), targets.clone());
            let attempt = tokio::task::spawn_blocking(move || {
                let (answer, changes) = this.decide(&report, revision, &targets, now)?;
                if changes.is_empty() {
                    return Ok::<_, FlowError>(Some((answer, None)));
                }
                let message = record::record_message(&report, &changes);
                match this.store.publish(&changes, &message)? {
                    Some(recorded) => Ok(Some((answer, Some(recorded)))),
                    None => Ok(None),
                }
            })
            .await
            .map_err(stopped)??;
            match attempt {
                Some(done) => break done,
                // Another replica wrote first: what it wrote is told, and
                // the report judged again against it.
                None if attempts < MOST_ATTEMPTS => {
                    self.refresh_locked().await?;
                    let jitter = rand::random::<u64>() % (20 * u64::from(attempts));
                    tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
                }
                None => return Err(FlowError::Conflict { attempts }),
            }
        };
        tracing::info!(
            environment = %report.environment,
            %revision,
            state = report.state.as_str(),
            source = %report.source,
            covered = answer.covered.len(),
            ignored_as_older = answer.ignored_as_older.len(),
            environment_error = answer.environment_error,
            changed = told.as_ref().map_or(0, |r| r.changes.len()),
            "deployment reported"
        );
        if let Some(recorded) = told {
            self.tell(&recorded, 0).await?;
        }
        Ok(answer)
    }

    /// Journals (for notifications) and sends on the bus the events of a
    /// commit of the record, from its change `from` on.
    async fn tell(self: &Arc<Self>, recorded: &Recorded, from: usize) -> Result<(), FlowError> {
        let events = self.events_of(recorded, from);
        if events.is_empty() {
            return Ok(());
        }
        if let Some(journal) = self.journal.clone() {
            let (journal, reader, journaled) = (journal, self.reader.clone(), events.clone());
            // Journaled before anyone is answered: a crash in between loses
            // nothing the record does not hold.
            tokio::task::spawn_blocking(move || {
                for event in &journaled {
                    crate::notify::journal_report(&journal, &reader, event);
                }
            })
            .await
            .map_err(stopped)?;
        }
        for event in events {
            let _ = self.events.send(Signal::Event(Arc::new(event)));
        }
        Ok(())
    }

    /// The events of a commit of the record, from its change `from` on.
    fn events_of(&self, recorded: &Recorded, from: usize) -> Vec<Event> {
        recorded
            .changes
            .iter()
            .enumerate()
            .skip(from)
            .map(|(k, change)| record::event_of(recorded.commit, k, change))
            .collect()
    }
}

/// A blocking task that did not finish (it panicked, or the runtime is
/// stopping).
fn stopped(e: tokio::task::JoinError) -> FlowError {
    FlowError::Internal(Arc::new(crate::repo::RepoError::Io {
        path: PathBuf::from("the deployment record"),
        source: std::io::Error::other(e.to_string()),
    }))
}

fn truncate(text: &mut String, limit: usize) {
    if text.len() > limit {
        let mut at = limit;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_by_name() {
        assert_eq!(State::parse("Succeeded"), Some(State::Succeeded));
        assert_eq!(State::parse("DEPLOYMENT_STATE_FAILED"), Some(State::Failed));
        assert_eq!(State::parse("progressing"), Some(State::Progressing));
        assert_eq!(State::parse("done"), None);
    }

    #[test]
    fn messages_are_cut_at_a_character() {
        let mut text = "é".repeat(3000);
        truncate(&mut text, MESSAGE_LIMIT);
        assert!(text.len() <= MESSAGE_LIMIT && text.chars().all(|c| c == 'é'));
    }
}
