//! The compare-and-swap push that publishes the writer's commits: to a
//! local remote by moving its ref under git's own lock (copying the
//! batch's pack first), to a network remote with a lease on the old tip.
//! Never a force-push. The remote side runs in a [`Pusher`], which owns
//! its own handles so that it can work on a thread of its own while the
//! writer builds the next batch; the mirror records what landed.

use std::path::{Path, PathBuf};

use git2::{ErrorCode, Oid, PushOptions, Repository};

use super::*;
use crate::repo::pack::{self, Pack};
use crate::repo::remote::{callbacks, GitCredentials, RemoteLocation};
use crate::repo::RepoError;

/// What the remote said to one push attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// The remote branch now points at the pushed commit.
    Landed,
    /// The remote branch had moved: nothing was changed.
    Moved,
    /// The remote refused the update, saying this: a lost race looks like
    /// this too, so the mirror must look before calling it a refusal.
    Refused(String),
}

impl Mirror {
    /// The remote side of pushes, to run on another thread.
    pub(crate) fn pusher(&self) -> Pusher {
        Pusher {
            mirror: self.path(),
            location: self.location.clone(),
            branch: self.branch.clone(),
            credentials: self.credentials.clone(),
            remote_repo: None,
            mirror_repo: None,
        }
    }

    /// One push from the calling thread, settled at once (the S3 import's):
    /// `new` becomes the remote branch if, and only if, it is still
    /// `expected`. Never forces.
    pub(crate) fn push(
        &self,
        new: Oid,
        expected: Oid,
        pack: Option<&Pack>,
    ) -> Result<PushOutcome, RepoError> {
        let attempt = self.pusher().push(new, expected, pack, 0)?;
        self.settle(new, expected, attempt)
    }

    /// Turns what the remote said into the outcome, recording a landed
    /// push as the remote's tip; a refusal counts as a lost race only if
    /// the remote branch moved.
    pub(crate) fn settle(
        &self,
        new: Oid,
        expected: Oid,
        attempt: Attempt,
    ) -> Result<PushOutcome, RepoError> {
        match attempt {
            Attempt::Landed => {
                crate::repo::crash_point("remote-branch-moved");
                self.repo
                    .reference(&self.tracking_ref(), new, true, "push")
                    .map_err(RepoError::git("record the pushed tip"))?;
                crate::repo::crash_point("tracking-ref-moved");
                Ok(PushOutcome::Pushed)
            }
            Attempt::Moved => Ok(PushOutcome::Rejected),
            // A race lost after the negotiation looks like this too; a
            // refusal for another reason (a hook, a protected branch) must
            // not be retried as if it were one.
            Attempt::Refused(status) => {
                if self.fetch()? != expected {
                    Ok(PushOutcome::Rejected)
                } else {
                    Err(RepoError::Remote {
                        remote: self.location.to_string(),
                        action: "push to the remote",
                        source: git2::Error::from_str(&format!(
                            "the remote refused the update: {status}"
                        )),
                    })
                }
            }
        }
    }
}

/// The remote side of a push: its own handle on a local remote, and the
/// mirror's path (a network push reads the batch's objects there).
pub(crate) struct Pusher {
    mirror: PathBuf,
    location: RemoteLocation,
    branch: String,
    credentials: GitCredentials,
    /// Handle on a local remote, opened once.
    remote_repo: Option<Repository>,
    /// Handle on the mirror, with the generation of its packs it was opened
    /// for: kept across pushes, since its object cache holds the large
    /// trees every push walks (a fresh handle reads them again).
    mirror_repo: Option<(u64, Repository)>,
}

impl Pusher {
    /// Offers `new` to the remote in place of `expected`. Never forces.
    /// `generation` counts the merges of the mirror's packs: a handle
    /// opened before the last one is opened anew.
    pub(crate) fn push(
        &mut self,
        new: Oid,
        expected: Oid,
        pack: Option<&Pack>,
        generation: u64,
    ) -> Result<Attempt, RepoError> {
        if self
            .mirror_repo
            .as_ref()
            .is_some_and(|(opened_for, _)| *opened_for != generation)
        {
            self.mirror_repo = None;
            self.remote_repo = None;
        }
        if self.mirror_repo.is_none() {
            let mirror =
                Repository::open_bare(&self.mirror).map_err(RepoError::git("open the mirror"))?;
            self.mirror_repo = Some((generation, mirror));
        }
        match self.location.clone() {
            RemoteLocation::Local(path) => self.push_local(&path, new, expected, pack),
            RemoteLocation::Network(url) => self.push_network(&url, new, expected),
        }
    }

    fn mirror(&self) -> &Repository {
        &self.mirror_repo.as_ref().expect("opened by push").1
    }

    /// A local remote is updated directly: store the pack of new objects,
    /// then move the branch with a compare-and-swap ref update (the update
    /// libgit2's own local transport makes is not conditional).
    fn push_local(
        &mut self,
        path: &Path,
        new: Oid,
        expected: Oid,
        pack: Option<&Pack>,
    ) -> Result<Attempt, RepoError> {
        let remote = match self.remote_repo.take() {
            Some(remote) => remote,
            None => Repository::open_bare(path)
                .or_else(|_| Repository::open(path))
                .map_err(RepoError::remote(&self.location, "open the remote"))?,
        };
        let outcome = self.push_to_local_remote(&remote, new, expected, pack);
        self.remote_repo = Some(remote);
        outcome
    }

    fn push_to_local_remote(
        &self,
        remote: &Repository,
        new: Oid,
        expected: Oid,
        pack: Option<&Pack>,
    ) -> Result<Attempt, RepoError> {
        let branch_ref = format!("refs/heads/{}", self.branch);
        match remote.refname_to_id(&branch_ref) {
            Ok(current) if current != expected => return Ok(Attempt::Moved),
            Ok(_) => {}
            Err(e) => {
                return Err(RepoError::remote(&self.location, "read the remote branch")(
                    e,
                ))
            }
        }
        // A lock a live git process holds goes away in milliseconds; one a
        // crashed process left stays until someone removes it. Find out
        // before writing anything there.
        let lock = remote.path().join(format!("{branch_ref}.lock"));
        wait_for_lock(&lock)?;
        match pack {
            None => {
                let dst = remote
                    .odb()
                    .map_err(RepoError::remote(&self.location, "open the remote odb"))?;
                let location = &self.location;
                super::local::copy_new_objects(self.mirror(), &dst, new, &|_, object| {
                    dst.write(object.kind(), object.data())
                        .map(|_| ())
                        .map_err(RepoError::remote(location, "write an object"))
                })?
            }
            // The mirror holds the same pack, flushed: linked, not copied.
            // A failure is the remote's, not the server's own disk.
            Some(pack) => {
                pack::store_linked(&self.mirror, remote.path(), pack, "remote").map_err(|e| {
                    RepoError::remote(&self.location, "store the pack in the remote")(
                        git2::Error::from_str(&e.to_string()),
                    )
                })?
            }
        }
        // Recorded first, so that a crash inside git's lock is known at the
        // next start as this server's own (see `ref_record`).
        let mirror_dir = self.mirror.as_path();
        let update = super::ref_record::RefUpdate {
            remote: remote.path().to_path_buf(),
            refname: branch_ref.clone(),
            new,
        };
        super::ref_record::write(mirror_dir, &update).map_err(|source| RepoError::Io {
            path: mirror_dir.to_path_buf(),
            source,
        })?;
        crate::repo::crash_point("remote-ref-update-recorded");
        let updated = remote
            .reference_matching(&branch_ref, new, true, expected, "release-manager push")
            .map(|_| ());
        super::ref_record::clear(mirror_dir);
        match updated {
            Ok(()) => Ok(Attempt::Landed),
            Err(e) if e.code() == ErrorCode::Locked => {
                // Someone took the lock just now: a race if it goes away.
                wait_for_lock(&lock)?;
                Ok(Attempt::Moved)
            }
            Err(e) if e.code() == ErrorCode::Modified => Ok(Attempt::Moved),
            Err(e) => Err(RepoError::remote(
                &self.location,
                "update the remote branch",
            )(e)),
        }
    }

    /// A network push is made conditional in the negotiation: it goes ahead
    /// only if the remote branch is where the writer built on (a plain push
    /// would also accept a remote that was reset to an ancestor, bringing
    /// back what someone removed).
    fn push_network(&self, url: &str, new: Oid, expected: Oid) -> Result<Attempt, RepoError> {
        let mut remote = self
            .mirror()
            .remote_anonymous(url)
            .map_err(RepoError::remote(&self.location, "open the remote"))?;
        let moved = std::cell::Cell::new(false);
        let refused = std::cell::RefCell::new(None::<String>);
        let mut cbs = callbacks(&self.credentials);
        cbs.push_negotiation(|updates| {
            if updates.iter().any(|u| u.src() != expected) {
                moved.set(true);
                return Err(git2::Error::from_str("the remote branch moved"));
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
        let spec = format!("{new}:refs/heads/{}", self.branch);
        let pushed = remote.push(&[&spec], Some(&mut options));
        drop(options);
        match pushed {
            Ok(()) => {}
            Err(_) if moved.get() => return Ok(Attempt::Moved),
            Err(e) if e.code() == ErrorCode::NotFastForward => return Ok(Attempt::Moved),
            Err(e) => return Err(RepoError::remote(&self.location, "push to the remote")(e)),
        }
        Ok(match refused.into_inner() {
            None => Attempt::Landed,
            Some(status) => Attempt::Refused(status),
        })
    }
}

/// Waits (briefly) for `lock` to go away; fails if it stays.
fn wait_for_lock(lock: &Path) -> Result<(), RepoError> {
    let began = std::time::Instant::now();
    while lock.exists() {
        if began.elapsed() >= super::ref_record::LOCK_PATIENCE {
            return Err(RepoError::RemoteLocked {
                path: lock.to_path_buf(),
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(())
}
