//! Deployment status from the cluster: what GitOps controllers (Flux, Argo
//! CD, anything that posts JSON or calls `ReportDeployment`) say they
//! applied. A report names an environment and a config repository commit
//! (the *revision*); every service whose current release in that
//! environment the revision holds (the release commit or a later one) gets
//! the report's state. The latest state per environment and service is
//! kept here, saved in the data dir (`deployments.json`, replaced
//! atomically), and sent to event watchers; status answers join it to the
//! release they show.
//!
//! Reports are not commits: they are not in git, not in the index
//! snapshot, and not replayed to a watcher resuming from a cursor. A lost
//! file loses only the last states, which the controllers send again at
//! their next reconciliation.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use git2::{Oid, Repository};
use serde::{Deserialize, Serialize};

use crate::domain::deployment::Deployment;
pub(crate) use crate::domain::deployment::State;
use crate::domain::{FlowError, Reason};
use crate::engine::events::{DeploymentReported, Event, EventBus, Signal, What};
use crate::engine::reads::Reader;
use crate::engine::writer::WriterHandle;

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
}

/// Most bytes of a report's message kept.
const MESSAGE_LIMIT: usize = 4096;
/// Most bytes of a report's source kept.
const SOURCE_LIMIT: usize = 200;

/// The latest report on one service's release in one environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Latest {
    release_commit: String,
    artifact_id: String,
    state: State,
    message: String,
    revision: String,
    reported_at: i64,
    source: String,
}

/// What the file holds: environment → service → latest report.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    version: u32,
    environments: BTreeMap<String, BTreeMap<String, Latest>>,
}

const FILE: &str = "deployments.json";
const FORMAT: u32 = 1;

/// A current release a report's revision holds.
struct Covered {
    service: String,
    release_commit: Oid,
    artifact_id: String,
    /// A report on a later revision holding it is kept already.
    superseded: bool,
}

/// The deployment states, shared by the routes, the RPCs and status.
pub(crate) struct Deployments {
    path: PathBuf,
    latest: Mutex<HashMap<(String, String), Latest>>,
    /// Environments some controller reported on (asked per cell by the
    /// dashboard, so not a scan of `latest`).
    reporting_environments: Mutex<HashSet<String>>,
    /// Reports received, by state, for metrics.
    counts: Mutex<BTreeMap<&'static str, u64>>,
    /// Serialises saves, so an older state never replaces a newer file.
    saving: Mutex<()>,
    /// Serialises reports.
    reporting: tokio::sync::Mutex<()>,
    /// Where notifications of new states are journaled, when they are on.
    journal: Option<Arc<crate::notify::journal::Journal>>,
    reader: Arc<Reader>,
    writer: WriterHandle,
    events: EventBus,
}

impl Deployments {
    /// The states saved in `data_dir`, if any. An unreadable file is set
    /// aside with a warning: the next reports fill it again.
    pub(crate) fn open(
        data_dir: &std::path::Path,
        reader: Arc<Reader>,
        writer: WriterHandle,
        events: EventBus,
        journal: Option<Arc<crate::notify::journal::Journal>>,
    ) -> Self {
        let path = data_dir.join(FILE);
        let mut latest = HashMap::new();
        match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Saved>(&bytes) {
                Ok(saved) if saved.version == FORMAT => {
                    for (environment, services) in saved.environments {
                        for (service, state) in services {
                            latest.insert((environment.clone(), service), state);
                        }
                    }
                }
                Ok(saved) => {
                    tracing::warn!(path = %path.display(), version = saved.version, "deployment states of another format; starting without them")
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "unreadable deployment states; starting without them")
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the deployment states; starting without them")
            }
        }
        Deployments {
            path,
            reporting_environments: Mutex::new(latest.keys().map(|(e, _)| e.clone()).collect()),
            latest: Mutex::new(latest),
            counts: Mutex::new(BTreeMap::new()),
            saving: Mutex::new(()),
            reporting: tokio::sync::Mutex::new(()),
            journal,
            reader,
            writer,
            events,
        }
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
        let latest = self.latest.lock().expect("deployments lock");
        match latest.get(&(environment.to_string(), service.to_string())) {
            Some(l) if !release_commit.is_empty() && l.release_commit == release_commit => {
                Some(l.deployment())
            }
            _ => None,
        }
    }

    /// Whether any controller has reported on `environment`.
    pub(crate) fn reporting(&self, environment: &str) -> bool {
        self.reporting_environments
            .lock()
            .expect("deployments lock")
            .contains(environment)
    }

    /// Takes a report: finds what its revision holds (fetching once when
    /// the revision is newer than the mirror), keeps and saves the new
    /// states, and tells watchers of those that changed. Returns what it
    /// covered.
    pub(crate) async fn report(
        self: &Arc<Self>,
        report: Report,
    ) -> Result<Vec<DeploymentReported>, FlowError> {
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
        let revision = parse_revision(&report.revision)?;
        // One report at a time: two racing reports could otherwise be kept
        // in the wrong order.
        let _one_at_a_time = self.reporting.lock().await;
        let kept: HashMap<String, (String, String)> = self
            .latest
            .lock()
            .expect("deployments lock")
            .iter()
            .filter(|((environment, _), _)| *environment == report.environment)
            .map(|((_, service), l)| {
                (
                    service.clone(),
                    (l.release_commit.clone(), l.revision.clone()),
                )
            })
            .collect();
        let kept = Arc::new(kept);
        let covered = match self
            .covered(revision, &report.environment, kept.clone())
            .await
        {
            Err(FlowError::NotFound { .. }) => {
                // A controller may report a commit pushed by someone else
                // that the mirror has not fetched yet.
                self.writer.sync(Vec::new()).await?;
                self.covered(revision, &report.environment, kept).await?
            }
            other => other?,
        };
        let now = chrono::Utc::now().timestamp();
        let mut message = report.message.trim().to_string();
        truncate(&mut message, MESSAGE_LIMIT);
        let mut source = report.source.trim().to_string();
        truncate(&mut source, SOURCE_LIMIT);
        let mut answers = Vec::with_capacity(covered.len());
        // Controllers report the same state at every reconciliation (with
        // other words each time): watchers and notifications hear of a
        // new state of a release only.
        let mut changed = Vec::new();
        if !covered.is_empty() {
            self.reporting_environments
                .lock()
                .expect("deployments lock")
                .insert(report.environment.clone());
        }
        {
            let mut latest = self.latest.lock().expect("deployments lock");
            for covered in covered {
                if covered.superseded {
                    continue;
                }
                let state = Latest {
                    release_commit: covered.release_commit.to_string(),
                    artifact_id: covered.artifact_id.clone(),
                    state: report.state,
                    message: message.clone(),
                    revision: revision.to_string(),
                    reported_at: now,
                    source: source.clone(),
                };
                answers.push(DeploymentReported {
                    environment: report.environment.clone(),
                    service: covered.service.clone(),
                    artifact_id: covered.artifact_id,
                    release_commit: covered.release_commit.to_string(),
                    deployment: state.deployment(),
                });
                let previous =
                    latest.insert((report.environment.clone(), covered.service), state.clone());
                if previous.is_none_or(|old| {
                    (&old.release_commit, old.state) != (&state.release_commit, state.state)
                }) {
                    changed.push(answers.len() - 1);
                }
            }
        }
        *self
            .counts
            .lock()
            .expect("counts lock")
            .entry(report.state.as_str())
            .or_default() += 1;
        tracing::info!(
            environment = %report.environment,
            %revision,
            state = report.state.as_str(),
            source = %source,
            services = answers.len(),
            changed = changed.len(),
            "deployment reported"
        );
        let events: Vec<Event> = changed
            .iter()
            .map(|&i| Event {
                cursor: String::new(),
                commit: revision.to_string(),
                time: now,
                what: What::DeploymentReported(answers[i].clone()),
            })
            .collect();
        let this = self.clone();
        let journaled = events.clone();
        // Journaled for notifications before the state is saved and the
        // report answered: a crash in between loses nothing a controller
        // would not send again.
        tokio::task::spawn_blocking(move || {
            if let Some(journal) = &this.journal {
                for event in journaled {
                    crate::notify::journal_report(journal, &event);
                }
            }
            this.save()
        })
        .await
        .map_err(|e| stopped(&self.path, e))?;
        for event in events {
            let _ = self.events.send(Signal::Event(Arc::new(event)));
        }
        Ok(answers)
    }

    /// Services whose current release in `environment` the revision holds.
    /// NOT_FOUND when the mirror does not have the revision (or has an
    /// older tip).
    async fn covered(
        &self,
        revision: Oid,
        environment: &str,
        kept: Arc<HashMap<String, (String, String)>>,
    ) -> Result<Vec<Covered>, FlowError> {
        let reader = self.reader.clone();
        let environment = environment.to_string();
        tokio::task::spawn_blocking(move || {
            reader.with_published(|repo, published, _| {
                let pending = not_in(repo, published.tip, revision)?;
                let mut covered = Vec::new();
                for (service, history) in &published.index.services {
                    let Some(latest) = history
                        .releases
                        .get(environment.as_str())
                        .and_then(|r| r.last())
                    else {
                        continue;
                    };
                    if pending.contains(&latest.commit) {
                        continue;
                    }
                    // A late report on an older revision of the same
                    // release does not undo a newer one's.
                    let superseded =
                        kept.get(&**service)
                            .is_some_and(|(release_commit, kept_revision)| {
                                *release_commit == latest.commit.to_string()
                                    && Oid::from_str(kept_revision).is_ok_and(|kept_revision| {
                                        kept_revision != revision
                                            && repo
                                                .graph_descendant_of(kept_revision, revision)
                                                .unwrap_or(false)
                                    })
                            });
                    covered.push(Covered {
                        service: service.to_string(),
                        release_commit: latest.commit,
                        artifact_id: latest.artifact_id.to_string(),
                        superseded,
                    });
                }
                covered.sort_by(|a, b| a.service.cmp(&b.service));
                Ok(covered)
            })
        })
        .await
        .map_err(|e| stopped(std::path::Path::new("the mirror"), e))?
    }

    fn save(&self) {
        let _one_at_a_time = self.saving.lock().expect("save lock");
        let mut saved = Saved {
            version: FORMAT,
            ..Default::default()
        };
        for ((environment, service), state) in self.latest.lock().expect("deployments lock").iter()
        {
            saved
                .environments
                .entry(environment.clone())
                .or_default()
                .insert(service.clone(), state.clone());
        }
        let bytes = serde_json::to_vec_pretty(&saved).expect("deployment states serialise");
        let temporary = self.path.with_extension("json.tmp");
        let written = std::fs::write(&temporary, &bytes)
            .and_then(|()| std::fs::rename(&temporary, &self.path));
        if let Err(e) = written {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot save the deployment states");
        }
    }
}

/// The commit a controller names: a full sha, alone or after `@sha1:` (Flux
/// 2), `/` (Flux before 2.0) or `:`.
fn parse_revision(text: &str) -> Result<Oid, FlowError> {
    let text = text.trim();
    let sha = text.rsplit(['@', '/', ':']).next().unwrap_or(text);
    let sha = sha.strip_prefix("sha1:").unwrap_or(sha);
    if sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        if let Ok(oid) = Oid::from_str(sha) {
            return Ok(oid);
        }
    }
    Err(FlowError::invalid(
        "revision",
        format!("{text:?} is not a config repository commit (a full 40-hex sha, or <branch>@sha1:<sha>)"),
    ))
}

/// Commits of the tip's history that `revision` does not hold; NOT_FOUND
/// when the mirror lacks `revision`, FAILED_PRECONDITION when it is not in
/// the tip's history.
fn not_in(repo: &Repository, tip: Oid, revision: Oid) -> Result<HashSet<Oid>, FlowError> {
    if repo.find_commit(revision).is_err() {
        return Err(FlowError::not_found(
            Reason::RevisionNotFound,
            format!("revision {revision} is not in the config repository"),
        ));
    }
    if revision == tip {
        return Ok(HashSet::new());
    }
    let git = crate::domain::git("walk the history a revision lacks");
    if !repo.graph_descendant_of(tip, revision).map_err(&git)? {
        if repo.graph_descendant_of(revision, tip).map_err(&git)? {
            return Err(FlowError::not_found(
                Reason::RevisionNotFound,
                format!("revision {revision} is newer than the config branch the server has"),
            ));
        }
        return Err(FlowError::precondition(
            Reason::RevisionNotOnBranch,
            format!("revision {revision} is not in the history of the config branch (a rewritten or other branch?)"),
        ));
    }
    let mut walk = repo.revwalk().map_err(&git)?;
    walk.push(tip).map_err(&git)?;
    walk.hide(revision).map_err(&git)?;
    walk.map(|oid| oid.map_err(&git)).collect()
}

/// A blocking task that did not finish (it panicked, or the runtime is
/// stopping).
fn stopped(path: &std::path::Path, e: tokio::task::JoinError) -> FlowError {
    FlowError::Internal(Arc::new(crate::repo::RepoError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    }))
}

impl Latest {
    fn deployment(&self) -> Deployment {
        Deployment {
            state: self.state,
            message: self.message.clone(),
            revision: self.revision.clone(),
            reported_at: self.reported_at,
            source: self.source.clone(),
        }
    }
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
    fn revisions_as_controllers_write_them() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        for text in [
            sha.to_string(),
            format!("main@sha1:{sha}"),
            format!("main/{sha}"),
            format!(" {sha}\n"),
        ] {
            assert_eq!(parse_revision(&text).unwrap().to_string(), sha, "{text}");
        }
        for bad in [
            "",
            "main",
            "main@sha1:0123",
            "sha256:abc",
            "zz23456789abcdef0123456789abcdef01234567",
        ] {
            assert!(parse_revision(bad).is_err(), "{bad}");
        }
    }

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
