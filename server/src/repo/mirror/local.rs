//! Fetching from a remote on the same machine by copying the objects the
//! mirror lacks into one pack (faster than libgit2's local transport).

use std::path::Path;

use git2::{ObjectType, Oid, Repository};

use super::*;
use crate::repo::pack;
use crate::repo::RepoError;

impl Mirror {
    /// A local remote is fetched from directly: the objects of the commits
    /// the mirror lacks are copied as one pack, built the way the writer
    /// builds its own (libgit2's local transport would search for deltas:
    /// seconds for a thousand commits), then the tracking ref moves, as a
    /// forced fetch moves it.
    pub(super) fn fetch_local(&self, path: &Path) -> Result<Oid, RepoError> {
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
}

/// Hands `store` every object reachable from `tip` in `from` that `dst`
/// lacks, descending only where a tree differs from the same path in the
/// parent commit, so the cost follows the size of the change, not the
/// repository. An object may be handed over twice. Lookups in `dst` do
/// not rescan its pack folder on a miss (libgit2's default, a directory
/// read per missing object, and every new object misses).
pub(crate) fn copy_new_objects(
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
