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
}

impl WriterStats {
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
