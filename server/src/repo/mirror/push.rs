//! The compare-and-swap push that publishes the writer's commits: to a
//! local remote by moving its ref under git's own lock (copying the
//! batch's pack first), to a network remote with a lease on the old tip.
//! Never a force-push.

use std::path::Path;

use git2::{ErrorCode, Oid, PushOptions, Repository};

use super::*;
use crate::repo::pack::{self, Pack};
use crate::repo::remote::{callbacks, RemoteLocation};
use crate::repo::RepoError;

impl Mirror {
    /// Publishes `new` as the remote branch if, and only if, the remote
    /// branch is still `expected`. Never forces. `pack` holds the objects
    /// `new` adds (already stored in the mirror).
    pub(crate) fn push(
        &self,
        new: Oid,
        expected: Oid,
        pack: Option<&Pack>,
    ) -> Result<PushOutcome, RepoError> {
        let outcome = match &self.location {
            RemoteLocation::Local(path) => self.push_local(path, new, expected, pack)?,
            RemoteLocation::Network(url) => self.push_network(url, new, expected)?,
        };
        if outcome == PushOutcome::Pushed {
            crate::repo::crash_point("remote-branch-moved");
            self.repo
                .reference(&self.tracking_ref(), new, true, "push")
                .map_err(RepoError::git("record the pushed tip"))?;
            crate::repo::crash_point("tracking-ref-moved");
        }
        Ok(outcome)
    }

    /// A local remote is updated directly: store the pack of new objects,
    /// then move the branch with a compare-and-swap ref update (the update
    /// libgit2's own local transport makes is not conditional).
    fn push_local(
        &self,
        path: &Path,
        new: Oid,
        expected: Oid,
        pack: Option<&Pack>,
    ) -> Result<PushOutcome, RepoError> {
        let mut cached = self.remote_repo.borrow_mut();
        let remote = match cached.take() {
            Some(remote) => remote,
            None => Repository::open_bare(path)
                .or_else(|_| Repository::open(path))
                .map_err(RepoError::remote(&self.location, "open the remote"))?,
        };
        let outcome = self.push_to_local_remote(&remote, new, expected, pack);
        *cached = Some(remote);
        outcome
    }

    fn push_to_local_remote(
        &self,
        remote: &Repository,
        new: Oid,
        expected: Oid,
        pack: Option<&Pack>,
    ) -> Result<PushOutcome, RepoError> {
        let branch_ref = format!("refs/heads/{}", self.branch);
        match remote.refname_to_id(&branch_ref) {
            Ok(current) if current != expected => return Ok(PushOutcome::Rejected),
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
                super::local::copy_new_objects(&self.repo, &dst, new, &|_, object| {
                    dst.write(object.kind(), object.data())
                        .map(|_| ())
                        .map_err(RepoError::remote(location, "write an object"))
                })?
            }
            Some(pack) => pack::store(remote.path(), pack, "remote").map_err(|e| {
                // The remote's, not the server's own disk.
                RepoError::remote(&self.location, "store the pack in the remote")(
                    git2::Error::from_str(&e.to_string()),
                )
            })?,
        }
        // Recorded first, so that a crash inside git's lock is known at the
        // next start as this server's own (see `ref_record`).
        let mirror_dir = self.repo.path();
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
            Ok(()) => Ok(PushOutcome::Pushed),
            Err(e) if e.code() == ErrorCode::Locked => {
                // Someone took the lock just now: a race if it goes away.
                wait_for_lock(&lock)?;
                Ok(PushOutcome::Rejected)
            }
            Err(e) if e.code() == ErrorCode::Modified => Ok(PushOutcome::Rejected),
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
    fn push_network(&self, url: &str, new: Oid, expected: Oid) -> Result<PushOutcome, RepoError> {
        let mut remote = self
            .repo
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
            Err(_) if moved.get() => return Ok(PushOutcome::Rejected),
            Err(e) if e.code() == ErrorCode::NotFastForward => return Ok(PushOutcome::Rejected),
            Err(e) => return Err(RepoError::remote(&self.location, "push to the remote")(e)),
        }
        match refused.into_inner() {
            None => Ok(PushOutcome::Pushed),
            Some(status) => {
                // A race lost after the negotiation looks like this too; a
                // refusal for another reason (a hook, a protected branch)
                // must not be retried as if it were one.
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
