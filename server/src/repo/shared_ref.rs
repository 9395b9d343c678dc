//! The release manager's own refs on the remote, outside every branch
//! (`refs/release-manager/...`): where replicas share what is not config
//! (the deployment states, the notification lease). No GitOps controller
//! reads them: Flux and Argo CD fetch branches and tags only.
//!
//! A ref is read by asking the remote for it (its objects are brought into
//! the mirror, and the mirror keeps a ref of the same name at what it last
//! saw) and written by compare-and-swap only: the update goes ahead if the
//! remote's ref is still what the writer read, else nothing changes and
//! the caller reads again. A ref whose history matters moves forward only;
//! one that holds a single current value (a lease) may be replaced, still
//! only from the value read. Branches are never touched here.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use git2::{Direction, ErrorCode, FetchOptions, Oid, PushOptions, Repository};

use super::mirror::local::copy_new_objects;
use super::mirror::PushOutcome;
use super::remote::{callbacks, GitCredentials, RemoteLocation};
use super::RepoError;

/// One ref of the release manager's on the remote.
pub(crate) struct SharedRef {
    /// The full ref name, `refs/release-manager/<name>`.
    name: String,
    /// A handle of the mirror of its own (the writer's is the writer's).
    mirror: Mutex<Repository>,
    /// A local remote's handle, opened once.
    remote_repo: Mutex<Option<Repository>>,
    location: RemoteLocation,
    credentials: GitCredentials,
}

/// How long a lock on the remote's ref may stay before the update counts as
/// refused (and is tried again after a read).
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

impl SharedRef {
    /// The ref `refs/release-manager/<name>` of the remote `location`, read
    /// and written through the mirror at `mirror`.
    pub(crate) fn open(
        mirror: &Path,
        location: RemoteLocation,
        credentials: GitCredentials,
        name: &str,
    ) -> Result<SharedRef, RepoError> {
        let repo = Repository::open_bare(mirror).map_err(RepoError::git("open the mirror"))?;
        Ok(SharedRef {
            name: format!("refs/release-manager/{name}"),
            mirror: Mutex::new(repo),
            remote_repo: Mutex::new(None),
            location,
            credentials,
        })
    }

    /// Runs `f` on the mirror's handle (to read the ref's commits, or to
    /// write the objects of a new one).
    pub(crate) fn with_mirror<T>(&self, f: impl FnOnce(&Repository) -> T) -> T {
        let repo = self.mirror.lock().expect("mirror handle lock");
        f(&repo)
    }

    /// Where the mirror last saw the remote's ref (`None`: never, or the
    /// remote had none).
    pub(crate) fn known(&self) -> Option<Oid> {
        self.with_mirror(|repo| repo.refname_to_id(&self.name).ok())
    }

    /// Asks the remote where its ref is, brings that commit's objects into
    /// the mirror, and records it there; `None` when the remote has no
    /// such ref.
    pub(crate) fn fetch(&self) -> Result<Option<Oid>, RepoError> {
        let at = match &self.location {
            RemoteLocation::Local(path) => self.fetch_local(path)?,
            RemoteLocation::Network(url) => self.fetch_network(url)?,
        };
        self.record(at)?;
        Ok(at)
    }

    /// Makes the mirror's ref say `at`.
    fn record(&self, at: Option<Oid>) -> Result<(), RepoError> {
        self.with_mirror(|repo| match at {
            Some(oid) => repo
                .reference(&self.name, oid, true, "seen on the remote")
                .map(|_| ())
                .map_err(RepoError::git("record a shared ref")),
            None => match repo.find_reference(&self.name) {
                Ok(mut reference) => reference
                    .delete()
                    .map_err(RepoError::git("forget a shared ref")),
                Err(_) => Ok(()),
            },
        })
    }

    fn local_remote<T>(
        &self,
        path: &Path,
        f: impl FnOnce(&Repository) -> Result<T, RepoError>,
    ) -> Result<T, RepoError> {
        let mut cached = self.remote_repo.lock().expect("remote handle lock");
        let remote = match cached.take() {
            Some(remote) => remote,
            None => Repository::open_bare(path)
                .or_else(|_| Repository::open(path))
                .map_err(RepoError::remote(&self.location, "open the remote"))?,
        };
        let result = f(&remote);
        *cached = Some(remote);
        result
    }

    fn fetch_local(&self, path: &Path) -> Result<Option<Oid>, RepoError> {
        self.local_remote(path, |remote| {
            let Ok(at) = remote.refname_to_id(&self.name) else {
                return Ok(None);
            };
            self.with_mirror(|mirror| {
                let dst = mirror
                    .odb()
                    .map_err(RepoError::git("open the mirror odb"))?;
                copy_new_objects(remote, &dst, at, &|_, object| {
                    dst.write(object.kind(), object.data())
                        .map(|_| ())
                        .map_err(RepoError::git("store a fetched object"))
                })
            })?;
            Ok(Some(at))
        })
    }

    fn fetch_network(&self, url: &str) -> Result<Option<Oid>, RepoError> {
        self.with_mirror(|mirror| {
            let mut remote = mirror
                .remote_anonymous(url)
                .map_err(RepoError::remote(&self.location, "open the remote"))?;
            remote
                .connect_auth(Direction::Fetch, Some(callbacks(&self.credentials)), None)
                .map_err(RepoError::remote(&self.location, "connect to the remote"))?;
            let at = remote
                .list()
                .map_err(RepoError::remote(&self.location, "list the remote's refs"))?
                .iter()
                .find(|head| head.name() == self.name)
                .map(|head| head.oid());
            let _ = remote.disconnect();
            let Some(at) = at else { return Ok(None) };
            if mirror.find_commit(at).is_err() {
                let mut options = FetchOptions::new();
                options.remote_callbacks(callbacks(&self.credentials));
                options.download_tags(git2::AutotagOption::None);
                let refspec = format!("+{0}:{0}", self.name);
                remote
                    .fetch(&[&refspec], Some(&mut options), None)
                    .map_err(RepoError::remote(&self.location, "fetch a shared ref"))?;
            }
            Ok(Some(at))
        })
    }

    /// Sets the remote's ref to `new` (a commit in the mirror) if, and only
    /// if, it is still `expected` (`None`: it must not exist). `replace`
    /// allows `new` not to descend from `expected` (a lease's new value);
    /// otherwise the ref only moves forward. On success the mirror records
    /// `new` as seen.
    pub(crate) fn publish(
        &self,
        new: Oid,
        expected: Option<Oid>,
        replace: bool,
    ) -> Result<PushOutcome, RepoError> {
        let outcome = match &self.location {
            RemoteLocation::Local(path) => self.publish_local(path, new, expected)?,
            RemoteLocation::Network(url) => self.publish_network(url, new, expected, replace)?,
        };
        if outcome == PushOutcome::Pushed {
            self.record(Some(new))?;
        }
        Ok(outcome)
    }

    fn publish_local(
        &self,
        path: &Path,
        new: Oid,
        expected: Option<Oid>,
    ) -> Result<PushOutcome, RepoError> {
        self.local_remote(path, |remote| {
            if remote.refname_to_id(&self.name).ok() != expected {
                return Ok(PushOutcome::Rejected);
            }
            self.with_mirror(|mirror| {
                let dst = remote
                    .odb()
                    .map_err(RepoError::remote(&self.location, "open the remote odb"))?;
                let location = &self.location;
                copy_new_objects(mirror, &dst, new, &|_, object| {
                    dst.write(object.kind(), object.data())
                        .map(|_| ())
                        .map_err(RepoError::remote(location, "write an object"))
                })
            })?;
            let lock = lock_path(remote.path(), &self.name);
            if !lock_went_away(&lock) {
                return Ok(PushOutcome::Rejected);
            }
            let updated = match expected {
                Some(expected) => remote
                    .reference_matching(&self.name, new, true, expected, "release-manager")
                    .map(|_| ()),
                None => remote
                    .reference(&self.name, new, false, "release-manager")
                    .map(|_| ()),
            };
            match updated {
                Ok(()) => Ok(PushOutcome::Pushed),
                Err(e)
                    if matches!(
                        e.code(),
                        ErrorCode::Locked | ErrorCode::Modified | ErrorCode::Exists
                    ) =>
                {
                    Ok(PushOutcome::Rejected)
                }
                Err(e) => Err(RepoError::remote(&self.location, "update a shared ref")(e)),
            }
        })
    }

    /// A network update is made conditional in the negotiation, as the
    /// branch push is: it goes ahead only if the remote's ref is `expected`.
    fn publish_network(
        &self,
        url: &str,
        new: Oid,
        expected: Option<Oid>,
        replace: bool,
    ) -> Result<PushOutcome, RepoError> {
        self.with_mirror(|mirror| {
            let mut remote = mirror
                .remote_anonymous(url)
                .map_err(RepoError::remote(&self.location, "open the remote"))?;
            let moved = std::cell::Cell::new(false);
            let refused = std::cell::RefCell::new(None::<String>);
            let mut cbs = callbacks(&self.credentials);
            let expected_src = expected.unwrap_or_else(Oid::zero);
            cbs.push_negotiation(|updates| {
                if updates.iter().any(|u| u.src() != expected_src) {
                    moved.set(true);
                    return Err(git2::Error::from_str("the shared ref moved"));
                }
                Ok(())
            });
            cbs.push_update_reference(|_name, status| {
                if let Some(status) = status {
                    *refused.borrow_mut() = Some(status.to_string());
                }
                Ok(())
            });
            let mut options = PushOptions::new();
            options.remote_callbacks(cbs);
            // `+` only lifts the client's fast-forward check; the
            // negotiation above still refuses any value but `expected`.
            let spec = format!("{}{new}:{}", if replace { "+" } else { "" }, self.name);
            let pushed = remote.push(&[&spec], Some(&mut options));
            drop(options);
            match pushed {
                Ok(()) => {}
                Err(_) if moved.get() => return Ok(PushOutcome::Rejected),
                Err(e) if e.code() == ErrorCode::NotFastForward => {
                    return Ok(PushOutcome::Rejected)
                }
                Err(e) => {
                    return Err(RepoError::remote(&self.location, "push a shared ref")(e))
                }
            }
            match refused.into_inner() {
                None => Ok(PushOutcome::Pushed),
                Some(status) => {
                    tracing::debug!(reference = %self.name, %status, "the remote refused a shared ref update");
                    Ok(PushOutcome::Rejected)
                }
            }
        })
    }
}

fn lock_path(git_dir: &Path, name: &str) -> PathBuf {
    git_dir.join(format!("{name}.lock"))
}

/// Waits (briefly) for a lock on the remote's ref to go away; `false` if
/// it stays (the update is then refused, and tried again after a read).
fn lock_went_away(lock: &Path) -> bool {
    let began = std::time::Instant::now();
    while lock.exists() {
        if began.elapsed() >= LOCK_PATIENCE {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    true
}

/// Writes a commit of `tree` on `parent` (none for a first or a replacing
/// value) in `repo`, by the release manager, now.
pub(crate) fn commit(
    repo: &Repository,
    tree: Oid,
    parent: Option<Oid>,
    message: &str,
) -> Result<Oid, RepoError> {
    let git = RepoError::git("write a shared ref's commit");
    let signature =
        git2::Signature::now("release-manager", "release-manager@localhost").map_err(&git)?;
    let tree = repo.find_tree(tree).map_err(&git)?;
    let parent = match parent {
        Some(parent) => Some(repo.find_commit(parent).map_err(&git)?),
        None => None,
    };
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    repo.commit(None, &signature, &signature, message, &tree, &parents)
        .map_err(&git)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bare() -> (tempfile::TempDir, Repository) {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        (dir, repo)
    }

    fn tree_with(repo: &Repository, name: &str, text: &str) -> Oid {
        let blob = repo.blob(text.as_bytes()).unwrap();
        let mut builder = repo.treebuilder(None).unwrap();
        builder.insert(name, blob, 0o100644).unwrap();
        builder.write().unwrap()
    }

    #[test]
    fn compare_and_swap_on_a_local_remote() {
        let (remote_dir, _remote) = bare();
        let (a_dir, _) = bare();
        let (b_dir, _) = bare();
        let location = RemoteLocation::Local(remote_dir.path().to_path_buf());
        let open = |dir: &Path| {
            SharedRef::open(dir, location.clone(), GitCredentials::default(), "test").unwrap()
        };
        let (a, b) = (open(a_dir.path()), open(b_dir.path()));
        assert_eq!(a.fetch().unwrap(), None);

        let first = a.with_mirror(|repo| {
            let tree = tree_with(repo, "state", "1");
            commit(repo, tree, None, "first").unwrap()
        });
        assert_eq!(a.publish(first, None, false).unwrap(), PushOutcome::Pushed);
        assert_eq!(a.known(), Some(first));
        // A second creation is refused: the ref exists now.
        assert_eq!(
            a.publish(first, None, false).unwrap(),
            PushOutcome::Rejected
        );

        // The other mirror reads it, objects included, and builds on it.
        assert_eq!(b.fetch().unwrap(), Some(first));
        let second = b.with_mirror(|repo| {
            assert!(repo.find_commit(first).is_ok());
            let tree = tree_with(repo, "state", "2");
            commit(repo, tree, Some(first), "second").unwrap()
        });
        assert_eq!(
            b.publish(second, Some(first), false).unwrap(),
            PushOutcome::Pushed
        );

        // `a` still believes `first`: its update is refused, and changes
        // nothing, until it reads again.
        let stale = a.with_mirror(|repo| {
            let tree = tree_with(repo, "state", "stale");
            commit(repo, tree, Some(first), "stale").unwrap()
        });
        assert_eq!(
            a.publish(stale, Some(first), false).unwrap(),
            PushOutcome::Rejected
        );
        assert_eq!(a.fetch().unwrap(), Some(second));
        assert_eq!(a.known(), Some(second));
    }
}
