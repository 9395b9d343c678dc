//! Tree surgery in the object database: read a subtree or blob by path, and
//! replace or remove the entry at a path, rewriting only the trees on the way
//! to it. Nothing here touches a working tree or the index file; a release is
//! a graft of an existing tree, so its cost does not grow with the repository.

use git2::{FileMode, ObjectType, Oid, Repository, Tree};

/// The object at `path` (`/`-separated) below `root`, with its kind.
pub(crate) fn entry_at(
    repo: &Repository,
    root: &Tree<'_>,
    path: &str,
) -> Result<Option<(Oid, ObjectType)>, git2::Error> {
    if path.is_empty() {
        return Ok(Some((root.id(), ObjectType::Tree)));
    }
    match root.get_path(std::path::Path::new(path)) {
        Ok(entry) => Ok(entry.kind().map(|kind| (entry.id(), kind))),
        Err(e) if e.code() == git2::ErrorCode::NotFound => {
            let _ = repo;
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The tree at `path` below `root`, if there is one (a blob there is `None`).
pub(crate) fn tree_at<'r>(
    repo: &'r Repository,
    root: &Tree<'_>,
    path: &str,
) -> Result<Option<Tree<'r>>, git2::Error> {
    match entry_at(repo, root, path)? {
        Some((oid, ObjectType::Tree)) => Ok(Some(repo.find_tree(oid)?)),
        _ => Ok(None),
    }
}

/// The contents of the blob at `path` below `root`, if there is one.
pub(crate) fn blob_at(
    repo: &Repository,
    root: &Tree<'_>,
    path: &str,
) -> Result<Option<Vec<u8>>, git2::Error> {
    match entry_at(repo, root, path)? {
        Some((oid, ObjectType::Blob)) => Ok(Some(repo.find_blob(oid)?.content().to_vec())),
        _ => Ok(None),
    }
}

/// Returns the id of a tree equal to `root` except that the entry at
/// `path` is `new` (a tree, or a blob with its mode), or gone when `new` is
/// `None`. Folders left empty by a removal disappear, as git cannot store
/// them.
pub(crate) fn replace_at(
    repo: &Repository,
    root: Option<&Tree<'_>>,
    path: &[&str],
    new: Option<(Oid, FileMode)>,
) -> Result<Option<Oid>, git2::Error> {
    let (first, rest) = path
        .split_first()
        .expect("replace_at is called with a non-empty path");
    let mut builder = repo.treebuilder(root)?;
    let replacement = if rest.is_empty() {
        new
    } else {
        let child = match root.and_then(|t| t.get_name(first)) {
            Some(entry) if entry.kind() == Some(ObjectType::Tree) => {
                Some(repo.find_tree(entry.id())?)
            }
            _ => None,
        };
        replace_at(repo, child.as_ref(), rest, new)?.map(|oid| (oid, FileMode::Tree))
    };
    match replacement {
        Some((oid, mode)) => {
            builder.insert(first, oid, mode.into())?;
        }
        None => {
            if builder.get(first)?.is_some() {
                builder.remove(first)?;
            }
        }
    }
    if builder.is_empty() {
        return Ok(None);
    }
    builder.write().map(Some)
}

/// The root tree of `commit` (the tip, a build or a release commit).
pub(crate) fn tree_of(repo: &Repository, commit: Oid) -> Result<git2::Tree<'_>, git2::Error> {
    repo.find_commit(commit)?.tree()
}

/// The id of the empty tree, written if needed.
#[cfg(test)]
pub(crate) fn empty_tree(repo: &Repository) -> Result<Oid, git2::Error> {
    repo.treebuilder(None)?.write()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> (tempfile::TempDir, Repository) {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        (dir, repo)
    }

    fn tree_with(repo: &Repository, files: &[(&str, &str)]) -> Oid {
        let mut root: Option<Oid> = None;
        for (path, content) in files {
            let blob = repo.blob(content.as_bytes()).unwrap();
            let parts: Vec<&str> = path.split('/').collect();
            let current = root.map(|o| repo.find_tree(o).unwrap());
            root =
                replace_at(repo, current.as_ref(), &parts, Some((blob, FileMode::Blob))).unwrap();
        }
        root.unwrap()
    }

    #[test]
    fn replaces_nested_entry_and_keeps_siblings() {
        let (_d, repo) = repo();
        let root = tree_with(
            &repo,
            &[("a/b/c.txt", "1"), ("a/d.txt", "2"), ("e.txt", "3")],
        );
        let root = repo.find_tree(root).unwrap();
        let blob = repo.blob(b"new").unwrap();
        let new = replace_at(
            &repo,
            Some(&root),
            &["a", "b", "c.txt"],
            Some((blob, FileMode::Blob)),
        )
        .unwrap()
        .unwrap();
        let new = repo.find_tree(new).unwrap();
        assert_eq!(blob_at(&repo, &new, "a/b/c.txt").unwrap().unwrap(), b"new");
        assert_eq!(blob_at(&repo, &new, "a/d.txt").unwrap().unwrap(), b"2");
        assert_eq!(blob_at(&repo, &new, "e.txt").unwrap().unwrap(), b"3");
    }

    #[test]
    fn removal_prunes_empty_folders() {
        let (_d, repo) = repo();
        let root = tree_with(&repo, &[("a/b/c.txt", "1"), ("e.txt", "3")]);
        let root = repo.find_tree(root).unwrap();
        let new = replace_at(&repo, Some(&root), &["a", "b", "c.txt"], None)
            .unwrap()
            .unwrap();
        let new = repo.find_tree(new).unwrap();
        assert!(entry_at(&repo, &new, "a").unwrap().is_none());
        assert!(tree_at(&repo, &new, "e.txt").unwrap().is_none());
        assert_eq!(new.len(), 1);
    }

    #[test]
    fn same_content_gives_same_tree() {
        let (_d, repo) = repo();
        let root = tree_with(&repo, &[("a/b.txt", "1")]);
        let tree = repo.find_tree(root).unwrap();
        let blob = repo.blob(b"1").unwrap();
        let again = replace_at(
            &repo,
            Some(&tree),
            &["a", "b.txt"],
            Some((blob, FileMode::Blob)),
        )
        .unwrap()
        .unwrap();
        assert_eq!(again, root);
    }
}
