//! The deployment states where every replica reads them: the ref
//! `refs/release-manager/deployments` of the config repository's remote,
//! outside every branch (no controller reconciles it). Each change of a
//! state is one commit on it, whose parent is the state it changed,
//! published compare-and-swap; a replica that lost the race reads the new
//! head and decides again. Its tree:
//!
//! ```text
//! format                          the layout's version: 1
//! services/<env>/<service>.json   the latest applied report on the service's release
//! errors/<env>/<source>.json      a reconciliation error that named no service
//! ```
//!
//! The commits are also the order in which reports were taken: what a
//! commit changed (its diff with its parent) are its events, each at
//! `<commit>.<k>`, so a watcher resumes from history and every replica
//! tells the same events in the same order. Nothing here is in the data
//! dir alone: a new data dir reads the states back from the remote.

use std::path::Path;
use std::sync::{Arc, Mutex};

use git2::{FileMode, Oid, Repository};

use super::state::{Change, ServiceState, States};
use crate::domain::deployment::ReconciliationError;
use crate::repo::mirror::PushOutcome;
use crate::repo::remote::{GitCredentials, RemoteLocation};
use crate::repo::shared_ref::{self, SharedRef};
use crate::repo::RepoError;

/// The ref's name under `refs/release-manager/`.
const REF: &str = "deployments";
/// The layout written.
const FORMAT: &str = "1";

/// What one commit of the record changed.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    /// The commit.
    pub(crate) commit: Oid,
    /// Its changes, in path order: change `k` is at `<commit>.<k>`.
    pub(crate) changes: Arc<Vec<Change>>,
}

/// What the replica knows: the record's head as last read or written, and
/// the states it holds.
struct Known {
    head: Option<Oid>,
    states: States,
}

/// The shared record of deployment states.
pub(crate) struct Store {
    shared: SharedRef,
    known: Mutex<Known>,
    /// What commits of the record changed, read once: watchers that
    /// resume, and replicas, read the same commits again and again.
    changes: Mutex<std::collections::HashMap<Oid, Arc<Vec<Change>>>>,
}

/// Most commits whose changes are kept read.
const MOST_KEPT: usize = 4096;

/// Most commits of the record read again for one replay.
pub(crate) const MAX_REPLAY: usize = 10_000;
/// The action of the error a replay past [`MAX_REPLAY`] meets.
pub(crate) const REPLAY_ACTION: &str = "replay the deployment record";

impl Store {
    /// The record of the remote `location`, through the mirror at
    /// `mirror`, as the mirror last saw it (nothing is asked of the remote
    /// yet: see [`Store::load`]).
    pub(crate) fn open(
        mirror: &Path,
        location: RemoteLocation,
        credentials: GitCredentials,
    ) -> Result<Store, RepoError> {
        let shared = SharedRef::open(mirror, location, credentials, REF)?;
        let head = shared.known();
        let states = match head {
            Some(head) => shared.with_mirror(|repo| read_states(repo, head))?,
            None => States::default(),
        };
        Ok(Store {
            shared,
            known: Mutex::new(Known { head, states }),
            changes: Mutex::new(Default::default()),
        })
    }

    /// Reads the remote's record and takes it as known, telling of no
    /// change (at start). A remote that cannot be reached leaves what the
    /// mirror had.
    pub(crate) fn load(&self) -> Result<Option<Oid>, RepoError> {
        let head = self.shared.fetch()?;
        let states = match head {
            Some(head) => self.shared.with_mirror(|repo| read_states(repo, head))?,
            None => States::default(),
        };
        *self.known.lock().expect("deployment states lock") = Known { head, states };
        Ok(head)
    }

    /// The record's head as known.
    pub(crate) fn head(&self) -> Option<Oid> {
        self.known.lock().expect("deployment states lock").head
    }

    /// Runs `f` on the states known.
    pub(crate) fn with_states<T>(&self, f: impl FnOnce(&States) -> T) -> T {
        f(&self.known.lock().expect("deployment states lock").states)
    }

    /// Reads the remote's record; what changed since the head known, commit
    /// by commit, oldest first. A record whose history does not hold the
    /// head known (replaced by hand) is taken as it is, its difference told
    /// as one change.
    pub(crate) fn refresh(&self) -> Result<Vec<Recorded>, RepoError> {
        let before = self.head();
        let after = self.shared.fetch()?;
        if after == before {
            return Ok(Vec::new());
        }
        let Some(after) = after else {
            // The record was deleted on the remote: keep what is known, and
            // write it again with the next change.
            tracing::warn!("the remote has no deployment record any more; it is written again with the next report");
            let mut known = self.known.lock().expect("deployment states lock");
            known.head = None;
            return Ok(Vec::new());
        };
        let recorded = self.shared.with_mirror(|repo| {
            let descends = match before {
                Some(before) => repo
                    .graph_descendant_of(after, before)
                    .map_err(RepoError::git("compare deployment records"))?,
                None => false,
            };
            if descends {
                self.commits_between(repo, before, after, usize::MAX)
            } else {
                let changes = Arc::new(diff(repo, before, after)?);
                Ok(vec![Recorded {
                    commit: after,
                    changes,
                }])
            }
        })?;
        let mut known = self.known.lock().expect("deployment states lock");
        for commit in &recorded {
            for change in commit.changes.iter() {
                known.states.apply(change);
            }
        }
        known.head = Some(after);
        Ok(recorded)
    }

    /// Publishes `changes` on the head known, compare-and-swap. `None`
    /// when the remote's record moved meanwhile (nothing was changed:
    /// refresh, decide again, and publish again).
    pub(crate) fn publish(
        &self,
        changes: &[Change],
        message: &str,
    ) -> Result<Option<Recorded>, RepoError> {
        let head = self.head();
        let commit = self.shared.with_mirror(|repo| {
            let tree = write_tree(repo, head, changes)?;
            shared_ref::commit(repo, tree, head, message)
        })?;
        match self.shared.publish(commit, head, false)? {
            PushOutcome::Rejected => Ok(None),
            PushOutcome::Pushed => {
                // Read back from the commit, so the changes (and their
                // places) are exactly what a replay tells.
                let changes = self
                    .shared
                    .with_mirror(|repo| self.changes_of(repo, commit))?;
                let mut known = self.known.lock().expect("deployment states lock");
                for change in changes.iter() {
                    known.states.apply(change);
                }
                known.head = Some(commit);
                Ok(Some(Recorded { commit, changes }))
            }
        }
    }

    /// One commit of the record, with its changes.
    pub(crate) fn commit(&self, commit: Oid) -> Result<Recorded, RepoError> {
        self.shared.with_mirror(|repo| {
            Ok(Recorded {
                commit,
                changes: self.changes_of(repo, commit)?,
            })
        })
    }

    /// What the record's `commit` changed (its diff with its parent), read
    /// once.
    fn changes_of(&self, repo: &Repository, commit: Oid) -> Result<Arc<Vec<Change>>, RepoError> {
        if let Some(known) = self.changes.lock().expect("changes lock").get(&commit) {
            return Ok(known.clone());
        }
        let parent = repo
            .find_commit(commit)
            .map_err(RepoError::git("read the deployment record"))?
            .parent_ids()
            .next();
        let changes = Arc::new(diff(repo, parent, commit)?);
        let mut kept = self.changes.lock().expect("changes lock");
        if kept.len() >= MOST_KEPT {
            kept.clear();
        }
        kept.insert(commit, changes.clone());
        Ok(changes)
    }

    /// The commits of `(from, to]`, each with its changes, oldest first; at
    /// most `most` (an error past it).
    fn commits_between(
        &self,
        repo: &Repository,
        from: Option<Oid>,
        to: Oid,
        most: usize,
    ) -> Result<Vec<Recorded>, RepoError> {
        let git = RepoError::git("walk the deployment record");
        let mut walk = repo.revwalk().map_err(&git)?;
        walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)
            .map_err(&git)?;
        walk.push(to).map_err(&git)?;
        if let Some(from) = from {
            walk.hide(from).map_err(&git)?;
        }
        let commits: Vec<Oid> = walk
            .take(most.saturating_add(1))
            .collect::<Result<_, _>>()
            .map_err(&git)?;
        if commits.len() > most {
            return Err(RepoError::Git {
                action: REPLAY_ACTION,
                source: git2::Error::from_str(&format!(
                    "more than {most} reports were recorded after the cursor"
                )),
            });
        }
        commits
            .into_iter()
            .map(|commit| {
                Ok(Recorded {
                    commit,
                    changes: self.changes_of(repo, commit)?,
                })
            })
            .collect()
    }

    /// The commits after `after` (`None`: from the first) up to the head
    /// known, oldest first; `Ok(None)` when `after` is not in the record's
    /// history; an error when more than [`MAX_REPLAY`] came after it.
    pub(crate) fn since(&self, after: Option<Oid>) -> Result<Option<Vec<Recorded>>, RepoError> {
        let Some(head) = self.head() else {
            return Ok(after.is_none().then(Vec::new));
        };
        self.shared.with_mirror(|repo| {
            if let Some(after) = after {
                let known = after == head
                    || (repo.find_commit(after).is_ok()
                        && repo
                            .graph_descendant_of(head, after)
                            .map_err(RepoError::git("read the deployment record"))?);
                if !known {
                    return Ok(None);
                }
            }
            self.commits_between(repo, after, head, MAX_REPLAY)
                .map(Some)
        })
    }
}

/// The changes from the record at `from` (none: empty) to the one at `to`,
/// in path order.
fn diff(repo: &Repository, from: Option<Oid>, to: Oid) -> Result<Vec<Change>, RepoError> {
    let git = RepoError::git("read the deployment record");
    let old = match from {
        Some(from) => Some(
            repo.find_commit(from)
                .and_then(|c| c.tree())
                .map_err(&git)?,
        ),
        None => None,
    };
    let new = repo.find_commit(to).and_then(|c| c.tree()).map_err(&git)?;
    let diff = repo
        .diff_tree_to_tree(old.as_ref(), Some(&new), None)
        .map_err(&git)?;
    let mut changes = Vec::new();
    for delta in diff.deltas() {
        let Some(path) = delta
            .new_file()
            .path()
            .or_else(|| delta.old_file().path())
            .and_then(|p| p.to_str())
        else {
            continue;
        };
        let parts: Vec<&str> = path.split('/').collect();
        let removed = delta.status() == git2::Delta::Deleted;
        let blob = if removed {
            delta.old_file().id()
        } else {
            delta.new_file().id()
        };
        let read = || repo.find_blob(blob).map(|b| b.content().to_vec());
        match parts.as_slice() {
            ["services", environment, file] if !removed => {
                let Some(service) = file.strip_suffix(".json") else {
                    continue;
                };
                let bytes = read().map_err(&git)?;
                match serde_json::from_slice::<ServiceState>(&bytes) {
                    Ok(state) => changes.push(Change::Service {
                        environment: environment.to_string(),
                        service: service.to_string(),
                        state,
                    }),
                    Err(e) => {
                        tracing::warn!(%path, error = %e, "unreadable deployment state in the record; skipped")
                    }
                }
            }
            ["errors", environment, _] => {
                let bytes = read().map_err(&git)?;
                match serde_json::from_slice::<ReconciliationError>(&bytes) {
                    Ok(error) if removed => changes.push(Change::ErrorCleared {
                        environment: environment.to_string(),
                        error,
                    }),
                    Ok(error) => changes.push(Change::ErrorSet {
                        environment: environment.to_string(),
                        error,
                    }),
                    Err(e) => {
                        tracing::warn!(%path, error = %e, "unreadable reconciliation error in the record; skipped")
                    }
                }
            }
            _ => {}
        }
    }
    Ok(changes)
}

/// Everything the record at `commit` holds.
fn read_states(repo: &Repository, commit: Oid) -> Result<States, RepoError> {
    let mut states = States::default();
    for change in diff(repo, None, commit)? {
        states.apply(&change);
    }
    Ok(states)
}

/// The file of a change.
fn path_of(change: &Change) -> Vec<String> {
    match change {
        Change::Service {
            environment,
            service,
            ..
        } => vec![
            "services".into(),
            environment.clone(),
            format!("{service}.json"),
        ],
        Change::ErrorSet { environment, error } | Change::ErrorCleared { environment, error } => {
            vec![
                "errors".into(),
                environment.clone(),
                format!("{}.json", file_name(&error.source)),
            ]
        }
    }
}

/// A source (`flux:flux-system/apps`) as one file name: what a path
/// segment cannot hold, or could misread, is written `%XX`.
fn file_name(source: &str) -> String {
    let mut name = String::with_capacity(source.len());
    for byte in source.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            name.push(byte as char);
        } else {
            name.push_str(&format!("%{byte:02X}"));
        }
    }
    if name.is_empty() {
        name.push_str("%00");
    }
    name
}

/// The tree of the record at `head` with `changes` made.
fn write_tree(repo: &Repository, head: Option<Oid>, changes: &[Change]) -> Result<Oid, RepoError> {
    let git = RepoError::git("write the deployment record");
    let mut root = match head {
        Some(head) => repo
            .find_commit(head)
            .and_then(|c| c.tree())
            .map(|t| t.id())
            .map_err(&git)?,
        None => repo
            .treebuilder(None)
            .and_then(|b| b.write())
            .map_err(&git)?,
    };
    let format = repo.blob(format!("{FORMAT}\n").as_bytes()).map_err(&git)?;
    let mut writes: Vec<(Vec<String>, Option<Oid>)> = vec![(vec!["format".into()], Some(format))];
    for change in changes {
        let content = match change {
            Change::Service { state, .. } => Some(serde_json::to_vec_pretty(state)),
            Change::ErrorSet { error, .. } => Some(serde_json::to_vec_pretty(error)),
            Change::ErrorCleared { .. } => None,
        };
        let blob = match content {
            Some(bytes) => {
                let mut bytes = bytes.expect("deployment states serialise");
                bytes.push(b'\n');
                Some(repo.blob(&bytes).map_err(&git)?)
            }
            None => None,
        };
        writes.push((path_of(change), blob));
    }
    for (path, blob) in writes {
        let tree = repo.find_tree(root).map_err(&git)?;
        let parts: Vec<&str> = path.iter().map(String::as_str).collect();
        root = crate::repo::tree::replace_at(
            repo,
            Some(&tree),
            &parts,
            blob.map(|b| (b, FileMode::Blob)),
        )
        .map_err(&git)?
        .map_or_else(|| repo.treebuilder(None).and_then(|b| b.write()), Ok)
        .map_err(&git)?;
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::deployment::State;

    fn service(environment: &str, service: &str, state: State) -> Change {
        Change::Service {
            environment: environment.into(),
            service: service.into(),
            state: ServiceState {
                release_commit: "r".into(),
                artifact_id: "a".into(),
                namespace: environment.into(),
                state,
                message: "m".into(),
                revision: "v".into(),
                reported_at: 1,
                observed_at: Some(2),
                source: "flux:flux-system/apps".into(),
            },
        }
    }

    fn error(environment: &str, set: bool) -> Change {
        let error = ReconciliationError {
            source: "flux:flux-system/apps".into(),
            message: "kustomize build failed".into(),
            revision: "v".into(),
            reported_at: 1,
            observed_at: None,
        };
        let environment = environment.into();
        if set {
            Change::ErrorSet { environment, error }
        } else {
            Change::ErrorCleared { environment, error }
        }
    }

    #[test]
    fn replicas_share_states_and_events_through_the_remote() {
        let remote = tempfile::tempdir().unwrap();
        Repository::init_bare(remote.path()).unwrap();
        let location = RemoteLocation::Local(remote.path().to_path_buf());
        let replica = || {
            let dir = tempfile::tempdir().unwrap();
            Repository::init_bare(dir.path()).unwrap();
            let store =
                Store::open(dir.path(), location.clone(), GitCredentials::default()).unwrap();
            (dir, store)
        };
        let (_a_dir, a) = replica();
        let (_b_dir, b) = replica();
        assert_eq!(a.load().unwrap(), None);
        assert_eq!(b.load().unwrap(), None);

        let first = a
            .publish(
                &[service("dev", "shop", State::Failed), error("dev", true)],
                "first",
            )
            .unwrap()
            .expect("nobody else wrote");
        assert_eq!(first.changes.len(), 2);
        // `b` believes the record is empty: its write is refused until it
        // reads what `a` wrote, which it then tells as `a` did.
        assert!(b
            .publish(&[service("dev", "cart", State::Progressing)], "stale")
            .unwrap()
            .is_none());
        let seen = b.refresh().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].commit, first.commit);
        assert_eq!(seen[0].changes, first.changes);
        let second = b
            .publish(
                &[
                    service("dev", "shop", State::Succeeded),
                    error("dev", false),
                ],
                "second",
            )
            .unwrap()
            .unwrap();
        assert!(
            second
                .changes
                .iter()
                .any(|c| matches!(c, Change::ErrorCleared { .. })),
            "{:?}",
            second.changes
        );

        let told = a.refresh().unwrap();
        assert_eq!(told.len(), 1);
        a.with_states(|states| {
            assert_eq!(
                states.service("dev", "shop").unwrap().state,
                State::Succeeded
            );
            assert!(states.errors_of("dev").is_empty());
        });
        // A replay from the first commit tells the second; from the start,
        // both; from an unknown commit, nothing.
        assert_eq!(a.since(Some(first.commit)).unwrap().unwrap().len(), 1);
        assert_eq!(a.since(None).unwrap().unwrap().len(), 2);
        assert!(a
            .since(Some(Oid::from_str(&"1".repeat(40)).unwrap()))
            .unwrap()
            .is_none());

        // A new data dir reads everything back from the remote.
        let (_c_dir, c) = replica();
        assert_eq!(c.load().unwrap(), Some(second.commit));
        c.with_states(|states| {
            assert_eq!(states.services.len(), 1);
            assert_eq!(
                states.service("dev", "shop").unwrap().state,
                State::Succeeded
            );
        });
    }

    #[test]
    fn sources_become_file_names() {
        assert_eq!(
            file_name("flux:flux-system/apps"),
            "flux%3Aflux-system%2Fapps"
        );
        assert_eq!(file_name(""), "%00");
        assert_eq!(file_name("../x"), "%2E%2E%2Fx");
    }
}
