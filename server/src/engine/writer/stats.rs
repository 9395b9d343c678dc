//! The writer's counters: batches, commits, conflicts, push time, and
//! releases by environment and outcome; read by `/metrics` and the
//! benchmark.

use crate::flows::{self, WriteDone};

use super::WriteResult;

/// Counters the benchmark and logs read.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Batches started (applied, whether or not their push lands).
    pub batches_started: std::sync::atomic::AtomicU64,
    /// Writes not applied because their caller had stopped waiting.
    pub abandoned: std::sync::atomic::AtomicU64,
    /// Batches pushed.
    pub batches: std::sync::atomic::AtomicU64,
    /// Commits pushed.
    pub commits: std::sync::atomic::AtomicU64,
    /// Largest batch pushed.
    pub largest_batch: std::sync::atomic::AtomicU64,
    /// Pushes rejected because the remote moved.
    pub conflicts: std::sync::atomic::AtomicU64,
    /// Time spent in successful pushes, in microseconds.
    pub push_micros: std::sync::atomic::AtomicU64,
    /// Releases answered, by environment and outcome (`applied`,
    /// `already_up_to_date`).
    pub releases: std::sync::Mutex<std::collections::BTreeMap<(String, &'static str), u64>>,
    /// The lock on the remote's branch that stopped the last push, until
    /// it is gone (health says NOT_SERVING meanwhile).
    pub(crate) remote_lock: std::sync::Mutex<Option<std::path::PathBuf>>,
}

impl WriterStats {
    /// Notes that the remote's branch is locked by `lock`.
    pub(crate) fn note_remote_locked(&self, lock: &std::path::Path) {
        *self.remote_lock.lock().expect("stats lock not poisoned") = Some(lock.to_path_buf());
    }

    /// Whether the remote's branch is still locked; forgets a lock that is
    /// gone.
    pub(crate) fn remote_locked(&self) -> bool {
        let mut lock = self.remote_lock.lock().expect("stats lock not poisoned");
        if lock.as_ref().is_some_and(|path| !path.exists()) {
            *lock = None;
        }
        lock.is_some()
    }

    pub(super) fn count_releases(&self, results: &[WriteResult]) {
        let mut releases = self.releases.lock().expect("stats lock not poisoned");
        let mut count = |done: &flows::ReleaseDone| {
            let outcome = match done.outcome {
                flows::Outcome::Applied => "applied",
                flows::Outcome::AlreadyUpToDate => "already_up_to_date",
            };
            *releases
                .entry((done.environment.clone(), outcome))
                .or_default() += 1;
        };
        for result in results {
            match result {
                Ok(WriteDone::Release(done)) => count(done),
                Ok(WriteDone::Build(build)) => build.auto_releases.iter().for_each(&mut count),
                Ok(WriteDone::Policy(_)) | Err(_) => {}
            }
        }
    }
}
