//! The data dir belongs to one server: an exclusive lock on
//! `<data dir>/lock`, held while the server runs.

use std::time::Instant;

/// Why the data dir cannot be this server's.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Another server holds the data dir.
    #[error("another release manager is using the data dir {dir} (it holds {lock}); stop it, or give this one its own --data-dir")]
    InUse {
        /// The data dir.
        dir: String,
        /// The lock file held.
        lock: String,
    },
    /// The data dir cannot be used at all.
    #[error("cannot use the data dir {dir}: {source}")]
    Unusable {
        /// The data dir.
        dir: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// How long a start waits for the data dir's lock before it counts as held
/// by another server. A lock let go a moment ago can linger: a child
/// process forked by any thread of the process that held it shares the
/// lock's open file until it runs its program (tests start servers one
/// after the other while git runs beside them).
const DATA_DIR_LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// Takes the data dir for this server alone: an exclusive lock on
/// `<data dir>/lock`, held while the returned file is open. Owning the dir
/// is what lets the server clear what a crashed run left in its mirror.
pub(crate) async fn lock(dir: &std::path::Path) -> Result<std::fs::File, DataDirError> {
    let began = Instant::now();
    loop {
        match try_lock_data_dir(dir) {
            Err(DataDirError::InUse { .. }) if began.elapsed() < DATA_DIR_LOCK_PATIENCE => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

fn try_lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File, DataDirError> {
    let data_dir_error = |source| DataDirError::Unusable {
        dir: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(data_dir_error)?;
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(data_dir_error)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(DataDirError::InUse {
            dir: dir.display().to_string(),
            lock: path.display().to_string(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(data_dir_error(source)),
    }
}
