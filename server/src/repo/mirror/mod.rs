//! The persistent local mirror of the config repository: a bare repository
//! in the data dir, cloned once and fetched afterwards, and the
//! compare-and-swap push that publishes the writer's commits. Owned by the
//! writer thread alone (a `Repository` is `Send`, not `Sync`).

use std::path::{Path, PathBuf};

use git2::{FetchOptions, Oid, Repository};

use super::pack::{self, Pack};
use super::remote::{callbacks, GitCredentials, RemoteLocation};
use super::RepoError;

mod debris;
pub(crate) mod local;
mod push;
mod ref_record;

/// The mirror's record of the last tip whose builds all had their
/// auto-releases.
const CAUGHT_UP_REF: &str = "refs/release-manager/caught-up";

/// What a push attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushOutcome {
    /// The remote branch now points at the pushed commit.
    Pushed,
    /// The remote branch had moved: nothing was changed.
    Rejected,
}

/// The mirror and how to reach its remote.
pub(crate) struct Mirror {
    repo: Repository,
    /// Handle on a local remote, opened once.
    remote_repo: std::cell::RefCell<Option<Repository>>,
    location: RemoteLocation,
    branch: String,
    credentials: GitCredentials,
    last_seen: Option<Oid>,
}

impl Mirror {
    /// Opens the mirror under `dir`, cloning it (bare) on first use, and
    /// fetches `branch` of the config repository; without a `branch`, the
    /// one the remote's HEAD names.
    pub(crate) fn open(
        dir: &Path,
        location: RemoteLocation,
        branch: Option<&str>,
        credentials: GitCredentials,
    ) -> Result<Self, RepoError> {
        super::configure_libgit2();
        // The remote first: what is ours there is told by its twin in the
        // mirror, which the mirror's own clean-up may remove.
        if let RemoteLocation::Local(remote) = &location {
            debris::clear_own_debris_in_remote(dir, remote);
            ref_record::recover(dir, &git_dir_of(remote));
        }
        debris::clear_debris(dir);
        let existed = Repository::open_bare(dir).is_ok();
        let repo = match Repository::open_bare(dir) {
            Ok(repo) => repo,
            Err(_) if matches!(location, RemoteLocation::Local(_)) => {
                // A local remote is cloned by copying its object files, not
                // by packing the whole history through a transport.
                git2::build::RepoBuilder::new()
                    .bare(true)
                    .clone_local(git2::build::CloneLocal::Local)
                    .clone(&location.url(), dir)
                    .map_err(RepoError::remote(&location, "clone the config repository"))?
            }
            Err(_) => {
                std::fs::create_dir_all(dir).map_err(|e| RepoError::Io {
                    path: dir.to_path_buf(),
                    source: e,
                })?;
                Repository::init_bare(dir).map_err(RepoError::git("create the mirror"))?
            }
        };
        let branch = match branch {
            Some(branch) => branch.to_string(),
            None => remote_head_branch(&repo, &location, &credentials)?,
        };
        // Where a restart must look back to for builds whose auto-releases
        // may be owed: the last tip every build up to which was handled,
        // else the remote tip this mirror last saw (read before fetching).
        // A mirror made just now has seen nothing (a local clone has the
        // tracking ref already).
        let last_seen = existed
            .then(|| {
                repo.refname_to_id(CAUGHT_UP_REF)
                    .or_else(|_| repo.refname_to_id(&format!("refs/remotes/origin/{branch}")))
                    .ok()
            })
            .flatten();
        let mirror = Mirror {
            repo,
            remote_repo: std::cell::RefCell::new(None),
            location,
            branch,
            credentials,
            last_seen,
        };
        mirror.fetch()?;
        Ok(mirror)
    }

    /// The lock git takes on the remote's branch, for a local remote (a
    /// network remote's locks are its server's business).
    pub(crate) fn remote_branch_lock(&self) -> Option<PathBuf> {
        match &self.location {
            RemoteLocation::Local(remote) => {
                Some(git_dir_of(remote).join(format!("refs/heads/{}.lock", self.branch)))
            }
            RemoteLocation::Network(_) => None,
        }
    }

    /// The config repository's branch this mirror follows.
    pub(crate) fn branch(&self) -> &str {
        &self.branch
    }

    /// The tip a restart looks back to for owed auto-releases; `None` for a
    /// new mirror.
    pub(crate) fn last_seen(&self) -> Option<Oid> {
        self.last_seen
    }

    /// Records that every build up to `tip` had its auto-releases.
    pub(crate) fn mark_caught_up(&self, tip: Oid) -> Result<(), RepoError> {
        if self.repo.refname_to_id(CAUGHT_UP_REF).ok() == Some(tip) {
            return Ok(());
        }
        self.repo
            .reference(CAUGHT_UP_REF, tip, true, "caught up")
            .map(|_| ())
            .map_err(RepoError::git("record the caught-up tip"))
    }

    /// The mirror's repository handle.
    pub(crate) fn repo(&self) -> &Repository {
        &self.repo
    }

    /// Path of the mirror (for read-only handles).
    pub(crate) fn path(&self) -> PathBuf {
        self.repo.path().to_path_buf()
    }

    fn tracking_ref(&self) -> String {
        format!("refs/remotes/origin/{}", self.branch)
    }

    /// The remote branch's tip as last seen.
    pub(crate) fn tip(&self) -> Result<Oid, RepoError> {
        let name = self.tracking_ref();
        self.repo
            .refname_to_id(&name)
            .map_err(|_| RepoError::NoBranch {
                branch: self.branch.clone(),
            })
    }

    /// Fetches the default branch from the remote; returns the new tip.
    pub(crate) fn fetch(&self) -> Result<Oid, RepoError> {
        if let RemoteLocation::Local(path) = &self.location {
            return self.fetch_local(path);
        }
        let refspec = format!("+refs/heads/{}:{}", self.branch, self.tracking_ref());
        let mut remote = self
            .repo
            .remote_anonymous(&self.location.url())
            .map_err(RepoError::remote(&self.location, "open the remote"))?;
        let mut options = FetchOptions::new();
        options.remote_callbacks(callbacks(&self.credentials));
        options.download_tags(git2::AutotagOption::None);
        remote
            .fetch(&[&refspec], Some(&mut options), None)
            .map_err(RepoError::remote(&self.location, "fetch from the remote"))?;
        self.tip()
    }

    /// Starts merging small packs (`git repack --geometric=2`) in the
    /// background, in the mirror and, for a local remote, in the remote too
    /// (what a git server's auto-gc does for the pushes it receives). Safe
    /// while the writer goes on adding packs. Needs the git command line;
    /// without it the packs stay as they are.
    pub(crate) fn spawn_merge(&self) -> std::thread::JoinHandle<()> {
        let mut dirs = vec![self.path()];
        if let RemoteLocation::Local(remote) = &self.location {
            dirs.push(remote.clone());
        }
        std::thread::spawn(move || {
            for dir in dirs {
                let began = std::time::Instant::now();
                let mut command = std::process::Command::new("git");
                // The repack must not outlive the server: a restarted server
                // clears debris in the mirror it owns, and must not meet a
                // repack still writing there.
                #[cfg(target_os = "linux")]
                {
                    use std::os::unix::process::CommandExt;
                    // SAFETY: prctl is async-signal-safe; nothing else runs
                    // between fork and exec.
                    unsafe {
                        command.pre_exec(|| {
                            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                            Ok(())
                        });
                    }
                }
                let result = command
                    .args([
                        "-c",
                        "repack.writeBitmaps=false",
                        "repack",
                        "-d",
                        "-q",
                        "--geometric=2",
                    ])
                    .current_dir(&dir)
                    .env("GIT_CONFIG_GLOBAL", "/dev/null")
                    .stdin(std::process::Stdio::null())
                    .output();
                match result {
                    Ok(out) if out.status.success() => tracing::debug!(
                        dir = %dir.display(),
                        elapsed_ms = began.elapsed().as_millis() as u64,
                        "packs merged"
                    ),
                    Ok(out) => tracing::warn!(
                        dir = %dir.display(),
                        error = %String::from_utf8_lossy(&out.stderr).trim(),
                        "merging packs failed"
                    ),
                    Err(e) => tracing::warn!(error = %e, "cannot run git to merge packs"),
                }
            }
        })
    }

    /// Reopens the mirror (and forgets the remote's handle), dropping
    /// libgit2's list of packs.
    pub(crate) fn reopen(&mut self) -> Result<(), RepoError> {
        self.repo =
            Repository::open_bare(self.path()).map_err(RepoError::git("reopen the mirror"))?;
        self.remote_repo.replace(None);
        Ok(())
    }

    /// Stores a pack of new objects (the writer's batch) in the mirror.
    pub(crate) fn store_pack(&self, pack: &Pack) -> Result<(), RepoError> {
        pack::store(self.repo.path(), pack, "mirror").map_err(|source| RepoError::Io {
            path: self.repo.path().to_path_buf(),
            source,
        })
    }
}

/// The git dir of a local repository: the folder itself when bare, else
/// its `.git`.
fn git_dir_of(repository: &Path) -> PathBuf {
    if repository.join("objects").is_dir() {
        repository.to_path_buf()
    } else {
        repository.join(".git")
    }
}

/// The branch the remote's HEAD names (`main`, `master`, ...): read from a
/// local repository, asked of a network one.
fn remote_head_branch(
    mirror: &Repository,
    location: &RemoteLocation,
    credentials: &GitCredentials,
) -> Result<String, RepoError> {
    let head = match location {
        RemoteLocation::Local(path) => {
            let remote =
                Repository::open(path).map_err(RepoError::remote(location, "open the remote"))?;
            let head = remote
                .find_reference("HEAD")
                .map_err(RepoError::remote(location, "read the remote's HEAD"))?;
            head.symbolic_target().map(str::to_string)
        }
        RemoteLocation::Network(url) => {
            let mut remote = mirror
                .remote_anonymous(url)
                .map_err(RepoError::remote(location, "open the remote"))?;
            remote
                .connect_auth(git2::Direction::Fetch, Some(callbacks(credentials)), None)
                .map_err(RepoError::remote(location, "connect to the remote"))?;
            let head = remote
                .default_branch()
                .map_err(RepoError::remote(location, "read the remote's HEAD"))?;
            let head = head.as_str().map(str::to_string);
            let _ = remote.disconnect();
            head
        }
    };
    head.as_deref()
        .and_then(|target| target.strip_prefix("refs/heads/"))
        .map(str::to_string)
        .ok_or_else(|| RepoError::NoBranch {
            branch: "named by the remote's HEAD (give --config-branch)".to_string(),
        })
}
