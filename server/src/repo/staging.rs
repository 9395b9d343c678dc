//! Where an upload's files wait until the writer takes them: a small bare
//! repository of their own per upload (`<data dir>/upload-staging/<n>`),
//! so that an upload refused, abandoned or cut off by a crash leaves
//! nothing in the mirror. The writer links the objects into the mirror
//! just before it commits the build, and takes them out again if the build
//! makes no commit; the staging folder goes when the upload is done with.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The folder, beside the mirror, that holds the staging repositories.
pub(crate) fn staging_root(mirror: &Path) -> PathBuf {
    mirror.parent().unwrap_or(mirror).join("upload-staging")
}

/// Removes every staging repository a run left (the data dir's lock is
/// held: no upload of another run can be in them).
pub(crate) fn clear_leftovers(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        if std::fs::remove_dir_all(entry.path()).is_ok() {
            tracing::warn!(path = %entry.path().display(), "removed the files of an upload an earlier run did not finish");
        }
    }
}

/// The objects of one upload, in a repository of their own; removed when
/// dropped.
#[derive(Debug)]
pub(crate) struct StagedObjects {
    dir: PathBuf,
    /// Object files this upload added to the mirror (and may take back).
    linked: Mutex<Vec<PathBuf>>,
}

impl StagedObjects {
    /// A new, empty staging repository under `root`.
    pub(crate) fn create(root: &Path) -> Result<Self, git2::Error> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = root.join(format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        git2::Repository::init_bare(&dir)?;
        Ok(StagedObjects {
            dir,
            linked: Mutex::new(Vec::new()),
        })
    }

    /// The staging repository, to write the upload's objects into.
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    /// Bytes the staged objects take on disk.
    #[cfg(test)]
    pub(crate) fn disk_bytes(&self) -> u64 {
        loose_objects(&self.dir.join("objects"))
            .iter()
            .filter_map(|(path, _)| std::fs::metadata(path).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Makes the staged objects part of the mirror at `mirror` (hard
    /// links, so nothing is copied), remembering those the mirror lacked.
    pub(crate) fn link_into(&self, mirror: &Path) -> std::io::Result<()> {
        let mut linked = self.linked.lock().expect("staging lock not poisoned");
        for (source, relative) in loose_objects(&self.dir.join("objects")) {
            let target = mirror.join("objects").join(&relative);
            if target.exists() {
                continue;
            }
            if let Some(folder) = target.parent() {
                std::fs::create_dir_all(folder)?;
            }
            match std::fs::hard_link(&source, &target) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                // Another file system: a copy does it too.
                Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
                    std::fs::copy(&source, &target)?;
                }
                Err(e) => return Err(e),
            }
            linked.push(target);
        }
        Ok(())
    }

    /// Takes out of the mirror what [`StagedObjects::link_into`] put there:
    /// the upload made no commit.
    pub(crate) fn unlink_from_mirror(&self) {
        let mut linked = self.linked.lock().expect("staging lock not poisoned");
        for path in linked.drain(..) {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for StagedObjects {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.dir.display(), error = %e, "cannot remove an upload's staging folder");
            }
        }
    }
}

/// The loose object files under `objects`: each with its path relative to
/// `objects` (`ab/cdef...`).
fn loose_objects(objects: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut found = Vec::new();
    let Ok(folders) = std::fs::read_dir(objects) else {
        return found;
    };
    for folder in folders.flatten() {
        let name = folder.file_name();
        let name = name.to_string_lossy();
        if name.len() != 2 || !name.chars().all(|c| c.is_ascii_hexdigit()) {
            continue;
        }
        let Ok(files) = std::fs::read_dir(folder.path()) else {
            continue;
        };
        for file in files.flatten() {
            let file_name = file.file_name();
            // Not a temporary file of a write that failed.
            if file_name
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_hexdigit())
            {
                found.push((file.path(), Path::new(name.as_ref()).join(&file_name)));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_objects_join_the_mirror_and_leave_it_again() {
        let dir = tempfile::tempdir().unwrap();
        let mirror = git2::Repository::init_bare(dir.path().join("mirror.git")).unwrap();
        let root = staging_root(mirror.path());
        let staged = StagedObjects::create(&root).unwrap();
        let repo = git2::Repository::open_bare(staged.path()).unwrap();
        let blob = repo.blob(b"kind: Deployment\n").unwrap();
        assert!(staged.disk_bytes() > 0);
        assert!(mirror.find_blob(blob).is_err(), "not in the mirror yet");

        staged.link_into(mirror.path()).unwrap();
        let reopened = git2::Repository::open_bare(mirror.path()).unwrap();
        assert_eq!(
            reopened.find_blob(blob).unwrap().content(),
            b"kind: Deployment\n"
        );
        staged.unlink_from_mirror();
        let reopened = git2::Repository::open_bare(mirror.path()).unwrap();
        assert!(reopened.find_blob(blob).is_err(), "taken out again");

        // What the mirror had already stays when the upload goes.
        let own = mirror.blob(b"kind: Deployment\n").unwrap();
        staged.link_into(mirror.path()).unwrap();
        staged.unlink_from_mirror();
        assert!(mirror.find_blob(own).is_ok());

        let path = staged.path().to_path_buf();
        drop(staged);
        assert!(!path.exists(), "the staging folder goes with the upload");
    }

    #[test]
    fn leftovers_of_a_crash_are_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("upload-staging");
        let staged = StagedObjects::create(&root).unwrap();
        let path = staged.path().to_path_buf();
        std::mem::forget(staged);
        clear_leftovers(&root);
        assert!(!path.exists());
    }
}
