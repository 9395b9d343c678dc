//! The server's record of its own ref update on a local remote, so that a
//! lock a crash left behind can be told from anyone else's.
//!
//! Moving the remote's branch takes git's lock, `refs/heads/<branch>.lock`,
//! for a few milliseconds. A process killed inside that window leaves the
//! lock, and every later update of the branch fails until someone removes
//! it. Before each update the server writes what it is about to do into its
//! mirror (`remote-ref-update`: the remote, the ref, the commit it moves
//! to), and clears it after. At start a lock that the record names, that
//! holds nothing but (a part of) the recorded commit, and that no live
//! process holds (it stays older than [`LOCK_PATIENCE`]) is the server's
//! own: it is removed and logged. Any other lock is left alone.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use git2::Oid;

/// The record's file name, in the mirror.
const RECORD: &str = "remote-ref-update";

/// How long a lock on the remote's branch may stay before it counts as left
/// behind rather than held: git holds it for milliseconds.
pub(super) const LOCK_PATIENCE: Duration = Duration::from_secs(2);

/// An update of `refname` in the remote at `remote`, to `new`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RefUpdate {
    /// The remote's git dir.
    pub(super) remote: PathBuf,
    /// The full ref name (`refs/heads/master`).
    pub(super) refname: String,
    /// The commit the ref moves to.
    pub(super) new: Oid,
}

impl RefUpdate {
    /// The lock git takes for this update.
    pub(super) fn lock_path(&self) -> PathBuf {
        self.remote.join(format!("{}.lock", self.refname))
    }

    fn to_text(&self) -> String {
        format!(
            "remote {}\nref {}\nnew {}\n",
            self.remote.display(),
            self.refname,
            self.new
        )
    }

    fn parse(text: &str) -> Option<RefUpdate> {
        let mut remote = None;
        let mut refname = None;
        let mut new = None;
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("remote", value)) => remote = Some(PathBuf::from(value)),
                Some(("ref", value)) => refname = Some(value.to_string()),
                Some(("new", value)) => new = Oid::from_str(value).ok(),
                _ => {}
            }
        }
        Some(RefUpdate {
            remote: remote?,
            refname: refname?,
            new: new?,
        })
    }

    /// Whether `lock` holds what git writes into the lock of this update:
    /// nothing yet, or (the start of) the new commit's id and a newline.
    fn owns_contents(&self, contents: &[u8]) -> bool {
        let expected = format!("{}\n", self.new);
        expected.as_bytes().starts_with(contents)
    }
}

/// Writes the record of `update` into the mirror at `mirror`, flushed to
/// disk when writes are durable, before the remote's lock is taken.
pub(super) fn write(mirror: &Path, update: &RefUpdate) -> std::io::Result<()> {
    let path = mirror.join(RECORD);
    let mut file = std::fs::File::create(&path)?;
    file.write_all(update.to_text().as_bytes())?;
    if crate::repo::pack::durable() {
        file.sync_all()?;
        std::fs::File::open(mirror)?.sync_all()?;
    }
    Ok(())
}

/// Clears the record once the update is done (or failed without a crash).
/// A record left behind is harmless: a later start finds no lock to match.
pub(super) fn clear(mirror: &Path) {
    let _ = std::fs::remove_file(mirror.join(RECORD));
}

/// At start (the data dir's lock held, so no other run of this server is
/// updating anything): removes the lock the record names if it is this
/// server's own, left by a crash; leaves every other lock alone. Returns
/// the lock removed, if any. The record is cleared either way.
pub(super) fn recover(mirror: &Path, remote: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(mirror.join(RECORD)).ok()?;
    let removed = RefUpdate::parse(&text)
        .filter(|update| same_place(&update.remote, remote))
        .and_then(|update| remove_own_lock(&update));
    clear(mirror);
    removed
}

fn same_place(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Removes the lock of `update` when it holds only what this server's
/// update writes and no live process holds it (it outlives
/// [`LOCK_PATIENCE`] unchanged).
fn remove_own_lock(update: &RefUpdate) -> Option<PathBuf> {
    let lock = update.lock_path();
    loop {
        let metadata = std::fs::metadata(&lock).ok()?;
        let contents = std::fs::read(&lock).ok()?;
        if !update.owns_contents(&contents) {
            tracing::warn!(
                lock = %lock.display(),
                "the remote's branch is locked, but not by this server's interrupted update; leaving it"
            );
            return None;
        }
        let age = metadata
            .modified()
            .ok()
            .and_then(|modified| SystemTime::now().duration_since(modified).ok())
            .unwrap_or_default();
        if age >= LOCK_PATIENCE {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    match std::fs::remove_file(&lock) {
        Ok(()) => {
            tracing::warn!(
                lock = %lock.display(),
                commit = %update.new,
                "removed the lock on the remote's branch that this server's interrupted update left; the update was not made"
            );
            Some(lock)
        }
        Err(e) => {
            tracing::error!(lock = %lock.display(), error = %e, "cannot remove the lock this server's interrupted update left");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(remote: &Path) -> RefUpdate {
        RefUpdate {
            remote: remote.to_path_buf(),
            refname: "refs/heads/master".into(),
            new: Oid::from_str("0123456789abcdef0123456789abcdef01234567").unwrap(),
        }
    }

    /// A lock file, made to look `age` old.
    fn lock(update: &RefUpdate, contents: &str, age: Duration) {
        let path = update.lock_path();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
    }

    #[test]
    fn the_record_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let update = update(dir.path());
        assert_eq!(RefUpdate::parse(&update.to_text()), Some(update));
        assert_eq!(RefUpdate::parse("remote /x\n"), None);
    }

    #[test]
    fn its_own_stale_lock_is_removed() {
        for contents in ["", "0123", "0123456789abcdef0123456789abcdef01234567\n"] {
            let dir = tempfile::tempdir().unwrap();
            let (mirror, remote) = (dir.path().join("mirror"), dir.path().join("remote"));
            std::fs::create_dir_all(&mirror).unwrap();
            let update = update(&remote);
            write(&mirror, &update).unwrap();
            lock(&update, contents, LOCK_PATIENCE * 2);
            assert_eq!(
                recover(&mirror, &remote),
                Some(update.lock_path()),
                "{contents:?}"
            );
            assert!(!update.lock_path().exists());
            assert!(!mirror.join(RECORD).exists(), "the record is cleared");
        }
    }

    #[test]
    fn a_fresh_lock_is_waited_for_until_it_counts_as_left() {
        let dir = tempfile::tempdir().unwrap();
        let (mirror, remote) = (dir.path().join("mirror"), dir.path().join("remote"));
        std::fs::create_dir_all(&mirror).unwrap();
        let update = update(&remote);
        write(&mirror, &update).unwrap();
        lock(&update, "", Duration::ZERO);
        let began = std::time::Instant::now();
        assert_eq!(recover(&mirror, &remote), Some(update.lock_path()));
        assert!(
            began.elapsed() >= LOCK_PATIENCE / 2,
            "{:?}",
            began.elapsed()
        );
    }

    #[test]
    fn someone_elses_lock_stays() {
        let dir = tempfile::tempdir().unwrap();
        let (mirror, remote) = (dir.path().join("mirror"), dir.path().join("remote"));
        std::fs::create_dir_all(&mirror).unwrap();
        let update = update(&remote);
        // Another commit in the lock: another process's update.
        write(&mirror, &update).unwrap();
        lock(
            &update,
            "fedcba9876543210fedcba9876543210fedcba98\n",
            LOCK_PATIENCE * 2,
        );
        assert_eq!(recover(&mirror, &remote), None);
        assert!(update.lock_path().exists());
        // No record: nothing of this server's.
        assert_eq!(recover(&mirror, &remote), None);
        std::fs::write(update.lock_path(), "").unwrap();
        assert_eq!(recover(&mirror, &remote), None);
        assert!(update.lock_path().exists());
        // A record of another remote.
        write(
            &mirror,
            &RefUpdate {
                remote: dir.path().join("elsewhere"),
                ..update.clone()
            },
        )
        .unwrap();
        assert_eq!(recover(&mirror, &remote), None);
        assert!(update.lock_path().exists());
    }
}
