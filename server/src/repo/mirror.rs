//! The persistent local mirror of the config repository: a bare repository
//! in the data dir, cloned once and fetched afterwards, and the
//! compare-and-swap push that publishes the writer's commits. Owned by the
//! writer thread alone (a `Repository` is `Send`, not `Sync`).

use std::path::{Path, PathBuf};

use git2::{ErrorCode, FetchOptions, ObjectType, Oid, PushOptions, Repository};

use super::pack::{self, Pack};
use super::remote::{callbacks, GitCredentials, RemoteLocation};
use super::RepoError;

/// The mirror's record of the last tip whose builds all had their
/// auto-releases.
const CAUGHT_UP_REF: &str = "refs/release-manager/caught-up";

/// What a push attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The remote branch now points at the pushed commit.
    Pushed,
    /// The remote branch had moved: nothing was changed.
    Rejected,
}

/// The mirror and how to reach its remote.
pub struct Mirror {
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
    pub fn open(
        dir: &Path,
        location: RemoteLocation,
        branch: Option<&str>,
        credentials: GitCredentials,
    ) -> Result<Self, RepoError> {
        super::configure_libgit2();
        clear_debris(dir);
        if let RemoteLocation::Local(remote) = &location {
            clear_own_debris_in_remote(dir, remote);
        }
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

    /// The config repository's branch this mirror follows.
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The tip a restart looks back to for owed auto-releases; `None` for a
    /// new mirror.
    pub fn last_seen(&self) -> Option<Oid> {
        self.last_seen
    }

    /// Records that every build up to `tip` had its auto-releases.
    pub fn mark_caught_up(&self, tip: Oid) -> Result<(), RepoError> {
        if self.repo.refname_to_id(CAUGHT_UP_REF).ok() == Some(tip) {
            return Ok(());
        }
        self.repo
            .reference(CAUGHT_UP_REF, tip, true, "caught up")
            .map(|_| ())
            .map_err(RepoError::git("record the caught-up tip"))
    }

    /// The mirror's repository handle.
    pub fn repo(&self) -> &Repository {
        &self.repo
    }

    /// Path of the mirror (for read-only handles).
    pub fn path(&self) -> PathBuf {
        self.repo.path().to_path_buf()
    }

    fn tracking_ref(&self) -> String {
        format!("refs/remotes/origin/{}", self.branch)
    }

    /// The remote branch's tip as last seen.
    pub fn tip(&self) -> Result<Oid, RepoError> {
        let name = self.tracking_ref();
        self.repo
            .refname_to_id(&name)
            .map_err(|_| RepoError::NoBranch {
                branch: self.branch.clone(),
            })
    }

    /// Fetches the default branch from the remote; returns the new tip.
    pub fn fetch(&self) -> Result<Oid, RepoError> {
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

    /// A local remote is fetched from directly: the objects of the commits
    /// the mirror lacks are copied as one pack, built the way the writer
    /// builds its own (libgit2's local transport would search for deltas:
    /// seconds for a thousand commits), then the tracking ref moves, as a
    /// forced fetch moves it.
    fn fetch_local(&self, path: &Path) -> Result<Oid, RepoError> {
        let mut cached = self.remote_repo.borrow_mut();
        let remote = match cached.take() {
            Some(remote) => remote,
            None => Repository::open_bare(path)
                .or_else(|_| Repository::open(path))
                .map_err(RepoError::remote(&self.location, "open the remote"))?,
        };
        let fetched = self.copy_from_local(&remote);
        *cached = Some(remote);
        let tip = fetched?;
        self.repo
            .reference(&self.tracking_ref(), tip, true, "fetch")
            .map_err(RepoError::git("record the fetched tip"))?;
        Ok(tip)
    }

    fn copy_from_local(&self, remote: &Repository) -> Result<Oid, RepoError> {
        let branch_ref = format!("refs/heads/{}", self.branch);
        let tip = remote
            .refname_to_id(&branch_ref)
            .map_err(|_| RepoError::NoBranch {
                branch: self.branch.clone(),
            })?;
        let odb = self
            .repo
            .odb()
            .map_err(RepoError::git("open the mirror odb"))?;
        if odb.exists(tip) {
            return Ok(tip);
        }
        // The new commits are those the mirror lacks; the ones it has where
        // the search stops bound the walk that puts them in order.
        let have = |oid: Oid| odb.exists_ext(oid, git2::OdbLookupFlags::NO_REFRESH);
        let read = RepoError::remote(&self.location, "read the remote's history");
        let mut walk = remote.revwalk().map_err(&read)?;
        walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)
            .map_err(&read)?;
        walk.push(tip).map_err(&read)?;
        let mut pending = vec![tip];
        let mut seen = std::collections::HashSet::new();
        while let Some(oid) = pending.pop() {
            if !seen.insert(oid) {
                continue;
            }
            if have(oid) {
                walk.hide(oid).map_err(&read)?;
                continue;
            }
            let commit = remote.find_commit(oid).map_err(&read)?;
            pending.extend(commit.parent_ids());
        }
        let commits: Vec<Oid> = walk.collect::<Result<_, _>>().map_err(&read)?;
        // Packed the way the writer packs its batches: each tree that
        // changed a delta of its version in the commit before.
        let objects = pack::new_objects(remote, &commits).map_err(&read)?;
        let pack = pack::build(remote, &objects).map_err(RepoError::git("pack fetched objects"))?;
        self.store_pack(&pack)?;
        Ok(tip)
    }

    /// Starts merging small packs (`git repack --geometric=2`) in the
    /// background, in the mirror and, for a local remote, in the remote too
    /// (what a git server's auto-gc does for the pushes it receives). Safe
    /// while the writer goes on adding packs. Needs the git command line;
    /// without it the packs stay as they are.
    pub fn spawn_merge(&self) -> std::thread::JoinHandle<()> {
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
    pub fn reopen(&mut self) -> Result<(), RepoError> {
        self.repo =
            Repository::open_bare(self.path()).map_err(RepoError::git("reopen the mirror"))?;
        self.remote_repo.replace(None);
        Ok(())
    }

    /// Stores a pack of new objects (the writer's batch) in the mirror.
    pub fn store_pack(&self, pack: &Pack) -> Result<(), RepoError> {
        pack::store(self.repo.path(), pack, "mirror").map_err(|source| RepoError::Io {
            path: self.repo.path().to_path_buf(),
            source,
        })
    }

    /// Publishes `new` as the remote branch if, and only if, the remote
    /// branch is still `expected`. Never forces. `pack` holds the objects
    /// `new` adds (already stored in the mirror).
    pub fn push(
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
            super::crash_point("remote-branch-moved");
            self.repo
                .reference(&self.tracking_ref(), new, true, "push")
                .map_err(RepoError::git("record the pushed tip"))?;
            super::crash_point("tracking-ref-moved");
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
                copy_new_objects(&self.repo, &dst, new, &|_, object| {
                    dst.write(object.kind(), object.data())
                        .map(|_| ())
                        .map_err(RepoError::remote(location, "write an object"))
                })?
            }
            Some(pack) => {
                pack::store(remote.path(), pack, "remote").map_err(|source| RepoError::Io {
                    path: remote.path().to_path_buf(),
                    source,
                })?
            }
        }
        let updated = remote
            .reference_matching(&branch_ref, new, true, expected, "release-manager push")
            .map(|_| ());
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

/// Hands `store` every object reachable from `tip` in `from` that `dst`
/// lacks, descending only where a tree differs from the same path in the
/// parent commit, so the cost follows the size of the change, not the
/// repository. An object may be handed over twice. Lookups in `dst` do
/// not rescan its pack folder on a miss (libgit2's default, a directory
/// read per missing object, and every new object misses).
fn copy_new_objects(
    from: &Repository,
    dst: &git2::Odb<'_>,
    tip: Oid,
    store: &dyn Fn(Oid, &git2::OdbObject<'_>) -> Result<(), RepoError>,
) -> Result<(), RepoError> {
    let src = from
        .odb()
        .map_err(RepoError::git("open an object database"))?;
    let copy = |oid: Oid| -> Result<(), RepoError> {
        if !dst.exists_ext(oid, git2::OdbLookupFlags::NO_REFRESH) {
            let object = src.read(oid).map_err(RepoError::git("read an object"))?;
            store(oid, &object)?;
        }
        Ok(())
    };
    let mut pending = vec![tip];
    let mut commits = Vec::new();
    while let Some(oid) = pending.pop() {
        if dst.exists_ext(oid, git2::OdbLookupFlags::NO_REFRESH) {
            continue;
        }
        let commit = from
            .find_commit(oid)
            .map_err(RepoError::git("read a commit"))?;
        pending.extend(commit.parent_ids());
        commits.push(commit);
    }
    for commit in commits.iter().rev() {
        let parent_tree = match commit.parent(0) {
            Ok(parent) => Some(parent.tree().map_err(RepoError::git("read a tree"))?),
            Err(_) => None,
        };
        let tree = commit.tree().map_err(RepoError::git("read a tree"))?;
        copy_tree(from, dst, &tree, parent_tree.as_ref(), &copy)?;
        copy(commit.id())?;
    }
    Ok(())
}

fn copy_tree(
    from: &Repository,
    dst: &git2::Odb<'_>,
    tree: &git2::Tree<'_>,
    before: Option<&git2::Tree<'_>>,
    copy: &dyn Fn(Oid) -> Result<(), RepoError>,
) -> Result<(), RepoError> {
    if dst.exists_ext(tree.id(), git2::OdbLookupFlags::NO_REFRESH) {
        return Ok(());
    }
    for entry in tree.iter() {
        let previous = before.and_then(|b| b.get_name_bytes(entry.name_bytes()));
        if previous.as_ref().is_some_and(|p| p.id() == entry.id()) {
            continue;
        }
        match entry.kind() {
            Some(ObjectType::Tree) => {
                let sub = from
                    .find_tree(entry.id())
                    .map_err(RepoError::git("read a tree"))?;
                let before_sub = match previous {
                    Some(p) if p.kind() == Some(ObjectType::Tree) => Some(
                        from.find_tree(p.id())
                            .map_err(RepoError::git("read a tree"))?,
                    ),
                    _ => None,
                };
                copy_tree(from, dst, &sub, before_sub.as_ref(), copy)?;
            }
            // Submodule links point outside the repository: nothing to copy.
            Some(ObjectType::Commit) => {}
            _ => copy(entry.id())?,
        }
    }
    copy(tree.id())
}

/// Removes from a local remote what this server's own interrupted push left
/// there, and nothing else: stale temporary files (`tmp_rm_*`), and a pack
/// without an index whose twin is in the mirror (every pack pushed to a
/// local remote is stored in the mirror first, under the same name).
fn clear_own_debris_in_remote(mirror: &Path, remote: &Path) {
    let git_dir = if remote.join("objects").is_dir() {
        remote.to_path_buf()
    } else {
        remote.join(".git")
    };
    let Ok(entries) = std::fs::read_dir(git_dir.join("objects/pack")) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        // Another server sharing the remote may be writing its own temporary
        // file right now; one older than a minute is nobody's.
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(60));
        let ours = (name.starts_with("tmp_rm_") && stale)
            || (name.ends_with(".pack")
                && !path.with_extension("idx").exists()
                && mirror.join("objects/pack").join(&name).exists());
        if ours && std::fs::remove_file(&path).is_ok() {
            tracing::warn!(path = %path.display(), "removed what an interrupted push left in the remote");
        }
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

/// How long a lock on the remote's branch may stay before it counts as left
/// behind rather than held.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// Waits (briefly) for `lock` to go away; fails if it stays.
fn wait_for_lock(lock: &Path) -> Result<(), RepoError> {
    let began = std::time::Instant::now();
    while lock.exists() {
        if began.elapsed() >= LOCK_PATIENCE {
            return Err(RepoError::RemoteLocked {
                path: lock.to_path_buf(),
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(())
}

/// Removes what a run that crashed mid-write can leave in the mirror: lock
/// files (which would make every later ref update fail), temporary files of
/// a pack being written, and a pack whose index was never written (which
/// git warns about on every command). Only safe because the server holds
/// the data dir's lock: no other process writes this mirror. Each removal
/// is logged.
pub(crate) fn clear_debris(dir: &Path) {
    let mut removed = Vec::new();
    let mut visit = vec![dir.to_path_buf()];
    while let Some(folder) = visit.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                // Loose objects hold no locks; the rest is small.
                if !(folder == dir.join("objects") && name.len() == 2) {
                    visit.push(path);
                }
                continue;
            }
            let in_pack_dir = folder.ends_with("objects/pack");
            let in_objects = folder == dir.join("objects");
            let debris = name.ends_with(".lock")
                || (in_pack_dir && (name.starts_with("tmp_") || name.starts_with(".tmp-")))
                || (in_objects && name.starts_with("streamed_"))
                || (in_pack_dir && name.ends_with(".pack") && !path.with_extension("idx").exists());
            if debris && std::fs::remove_file(&path).is_ok() {
                removed.push(path);
            }
        }
    }
    for path in removed {
        tracing::warn!(path = %path.display(), "removed what an interrupted write left in the mirror");
    }
}
