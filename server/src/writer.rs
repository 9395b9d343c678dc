//! The single writer: one thread owns the mirror and applies every write.
//! Requests arrive on a bounded queue; everything queued when the writer
//! wakes becomes one batch of consecutive commits and one compare-and-swap
//! push (group commit). When the push is rejected the writer fetches and
//! replays the batch's intents on the new tip, a bounded number of times.
//! Callers are answered only after the push that carries their commit, and
//! the published index and tip are updated before that answer.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use git2::{Mempack, Oid};
use rand::Rng;
use tokio::sync::{mpsc, oneshot};

use crate::error::FlowError;
use crate::flows::{self, FlowContext, ReleaseDone, Settings, WriteRequest};
use crate::repo::index::{Index, View};
use crate::repo::mirror::{Mirror, PushOutcome};
use crate::repo::pack;
use crate::repo::RepoError;
use crate::status::chain;

/// What readers see: the remote tip the writer last published, and the index
/// of everything up to it.
pub struct Published {
    /// Tip of the default branch on the remote, as of the last push or fetch.
    pub tip: Oid,
    /// Builds and releases up to `tip`.
    pub index: Index,
    /// Bumped when the mirror's packs were merged: read handles opened
    /// before should be reopened.
    pub generation: u64,
}

/// Shared, read-mostly state; only the writer takes the write lock.
pub type SharedState = Arc<RwLock<Published>>;

/// Tunables of the writer.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Requests that may wait in the queue before callers get
    /// RESOURCE_EXHAUSTED.
    pub queue_capacity: usize,
    /// Most requests applied in one batch.
    pub max_batch: usize,
    /// Push attempts per batch before giving up with ABORTED.
    pub max_push_attempts: u32,
    /// Batches (each writes a pack) between two merges of the mirror's packs.
    pub packs_between_merges: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            queue_capacity: 1024,
            max_batch: 256,
            max_push_attempts: 8,
            packs_between_merges: 32,
        }
    }
}

/// Counters the benchmark and logs read.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Batches pushed.
    pub batches: std::sync::atomic::AtomicU64,
    /// Commits pushed.
    pub commits: std::sync::atomic::AtomicU64,
    /// Largest batch pushed.
    pub largest_batch: std::sync::atomic::AtomicU64,
    /// Pushes rejected because the remote moved.
    pub conflicts: std::sync::atomic::AtomicU64,
}

/// The answer to one write.
type WriteResult = Result<ReleaseDone, FlowError>;

struct Command {
    request: WriteRequest,
    reply: oneshot::Sender<Result<ReleaseDone, FlowError>>,
}

/// The handlers' side of the queue. Cheap to clone.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Command>,
    stats: Arc<WriterStats>,
}

impl WriterHandle {
    /// Queues a write and waits until it is on the remote (or failed).
    pub async fn submit(&self, request: WriteRequest) -> Result<ReleaseDone, FlowError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .try_send(Command { request, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => FlowError::QueueFull,
                mpsc::error::TrySendError::Closed(_) => FlowError::WriterStopped,
            })?;
        answer.await.map_err(|_| FlowError::WriterStopped)?
    }

    /// The writer's counters, shared.
    pub fn stats_arc(&self) -> Arc<WriterStats> {
        self.stats.clone()
    }
}

/// Starts the writer thread. It stops when every handle is dropped, after
/// finishing the batch in flight.
pub fn spawn(
    mirror: Mirror,
    shared: SharedState,
    settings: Settings,
    config: WriterConfig,
) -> (WriterHandle, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(config.queue_capacity);
    let stats = Arc::new(WriterStats::default());
    let writer = Writer {
        mirror,
        shared,
        settings,
        config,
        stats: stats.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("release-writer".into())
        .spawn(move || writer.run(rx))
        .expect("the OS can start a thread");
    (WriterHandle { tx, stats }, thread)
}

struct Writer {
    mirror: Mirror,
    shared: SharedState,
    settings: Settings,
    config: WriterConfig,
    stats: Arc<WriterStats>,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut merging = None;
        loop {
            if self.serve_until_merged(&mut rx, &mut merging).is_break() {
                if let Some(merge) = merging.take() {
                    let _ = merge.join();
                }
                tracing::info!("writer stopped");
                return;
            }
            self.reopen();
        }
    }

    /// Applies batches. Every `packs_between_merges` batches (each writes a
    /// pack) it starts merging packs in the background; returns `Continue`
    /// once a merge finished (the mirror must then be reopened) and `Break`
    /// when the queue closed.
    fn serve_until_merged(
        &self,
        rx: &mut mpsc::Receiver<Command>,
        merging: &mut Option<std::thread::JoinHandle<()>>,
    ) -> std::ops::ControlFlow<()> {
        // New objects of a batch live in memory until the batch is
        // packed: one pack file per batch instead of a loose file per
        // object.
        let odb = match self.mirror.repo().odb() {
            Ok(odb) => Some(odb),
            Err(e) => {
                tracing::error!(error = %e, "cannot open the object database; writing loose objects");
                None
            }
        };
        let mempack = odb
            .as_ref()
            .and_then(|odb| match odb.add_new_mempack_backend(1000) {
                Ok(mempack) => Some(mempack),
                Err(e) => {
                    tracing::error!(error = %e, "no in-memory object store; writing loose objects");
                    None
                }
            });
        let mut packs_written = 0;
        loop {
            let Some(first) = rx.blocking_recv() else {
                return std::ops::ControlFlow::Break(());
            };
            let mut batch = vec![first];
            while batch.len() < self.config.max_batch {
                match rx.try_recv() {
                    Ok(command) => batch.push(command),
                    Err(_) => break,
                }
            }
            let results = self.apply_batch(&batch, mempack.as_ref());
            if results.iter().any(|r| r.as_ref().is_ok_and(|d| d.created)) {
                packs_written += 1;
            }
            for (command, result) in batch.into_iter().zip(results) {
                // A caller that went away no longer needs the answer.
                let _ = command.reply.send(result);
            }
            if merging.is_none() && packs_written >= self.config.packs_between_merges.max(1) {
                *merging = Some(self.mirror.spawn_merge());
                packs_written = 0;
            }
            if merging.as_ref().is_some_and(|merge| merge.is_finished()) {
                if let Some(merge) = merging.take() {
                    let _ = merge.join();
                }
                return std::ops::ControlFlow::Continue(());
            }
        }
    }

    /// After packs were merged, reopen the mirror so libgit2 forgets the
    /// merged ones (it never drops a pack it has loaded, and checks every
    /// one on each lookup of an object it does not have yet), and tell
    /// readers to do the same.
    fn reopen(&mut self) {
        if let Err(e) = self.mirror.reopen() {
            tracing::error!(error = %chain(&e), "cannot reopen the mirror");
        }
        self.shared
            .write()
            .expect("writer lock not poisoned")
            .generation += 1;
    }

    /// Applies a batch until its push lands, the remote fails, or the
    /// attempts run out. Returns one result per command, in order.
    fn apply_batch(&self, batch: &[Command], mempack: Option<&Mempack<'_>>) -> Vec<WriteResult> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Some(mempack) = mempack {
                // Objects of an earlier, rejected attempt are garbage now.
                let _ = mempack.reset();
            }
            let began = std::time::Instant::now();
            let (base, results, new_commits) = self.apply_on_tip(batch);
            let Some((tip, pending)) = new_commits else {
                return results;
            };
            let applied = began.elapsed();
            let created: Vec<Oid> = results
                .iter()
                .filter_map(|r| r.as_ref().ok())
                .filter(|done| done.created)
                .map(|done| done.commit)
                .collect();
            let pack = match self.pack_new_objects(mempack, &created) {
                Ok(pack) => pack,
                Err(e) => {
                    tracing::error!(error = %chain(&e), "cannot store the batch's objects");
                    return fail_all(batch, e.into());
                }
            };
            let pushed = self.mirror.push(tip, base, &pack);
            match pushed {
                Ok(PushOutcome::Pushed) => {
                    let commits = results
                        .iter()
                        .filter(|r| r.as_ref().is_ok_and(|d| d.created))
                        .count() as u64;
                    tracing::debug!(
                        commits,
                        apply_us = applied.as_micros() as u64,
                        push_us = (began.elapsed() - applied).as_micros() as u64,
                        "batch pushed"
                    );
                    self.note_batch(commits);
                    let mut published = self.shared.write().expect("writer lock not poisoned");
                    published.index.absorb(pending);
                    published.tip = tip;
                    return results;
                }
                Ok(PushOutcome::Rejected) => {
                    self.stats
                        .conflicts
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::info!(
                        attempt,
                        "push rejected: the remote moved; fetching to replay"
                    );
                    if attempt >= self.config.max_push_attempts {
                        return batch
                            .iter()
                            .map(|_| Err(FlowError::Conflict { attempts: attempt }))
                            .collect();
                    }
                    std::thread::sleep(backoff(attempt));
                    if let Err(e) = self.sync() {
                        return fail_all(batch, e);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %chain(&e), "push failed");
                    return fail_all(batch, e.into());
                }
            }
        }
    }

    /// Runs every command on the published tip, chaining new commits.
    /// Returns the base tip, the per-command results, and the new tip with
    /// the index of the new commits (`None` when the batch made no commit).
    fn apply_on_tip(&self, batch: &[Command]) -> (Oid, Vec<WriteResult>, Option<(Oid, Index)>) {
        let published = self.shared.read().expect("writer lock not poisoned");
        let base = published.tip;
        let mut tip = base;
        let mut pending = Index::default();
        let mut results = Vec::with_capacity(batch.len());
        for command in batch {
            let ctx = FlowContext {
                repo: self.mirror.repo(),
                view: View {
                    base: &published.index,
                    pending: Some(&pending),
                },
                settings: &self.settings,
                tip,
            };
            let result = flows::apply(&ctx, &command.request);
            if let Ok(done) = &result {
                if done.created {
                    tip = done.commit;
                    if let Err(e) = pending.ingest_commit(self.mirror.repo(), done.commit) {
                        tracing::error!(error = %chain(&e), "cannot index a new commit");
                    }
                }
            }
            results.push(result);
        }
        let new_commits = (tip != base).then_some((tip, pending));
        (base, results, new_commits)
    }

    /// Moves the batch's new objects from memory into one pack in the
    /// mirror, and returns that pack for the push. Empty when objects were
    /// written loose.
    fn pack_new_objects(
        &self,
        mempack: Option<&Mempack<'_>>,
        commits: &[Oid],
    ) -> Result<Vec<u8>, RepoError> {
        let Some(mempack) = mempack else {
            return Ok(Vec::new());
        };
        let repo = self.mirror.repo();
        let began = std::time::Instant::now();
        let objects =
            pack::new_objects(repo, commits).map_err(RepoError::git("list the new objects"))?;
        let pack = pack::build(repo, &objects).map_err(RepoError::git("pack the new objects"))?;
        let built = began.elapsed();
        self.mirror.store_pack(&pack)?;
        tracing::debug!(
            objects = objects.len(),
            bytes = pack.len(),
            build_us = built.as_micros() as u64,
            store_us = (began.elapsed() - built).as_micros() as u64,
            "batch packed"
        );
        mempack
            .reset()
            .map_err(RepoError::git("clear the in-memory objects"))?;
        Ok(pack)
    }

    /// Fetches the remote and publishes what others pushed.
    fn sync(&self) -> Result<(), FlowError> {
        let old = self.shared.read().expect("writer lock not poisoned").tip;
        let new = self.mirror.fetch()?;
        if new != old {
            // Index outside the lock, so readers keep going meanwhile.
            let mut fresh = Index::default();
            fresh.ingest_range(self.mirror.repo(), Some(old), new)?;
            let mut published = self.shared.write().expect("writer lock not poisoned");
            published.index.absorb(fresh);
            published.tip = new;
        }
        Ok(())
    }

    fn note_batch(&self, commits: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.stats.batches.fetch_add(1, Relaxed);
        self.stats.commits.fetch_add(commits, Relaxed);
        self.stats.largest_batch.fetch_max(commits, Relaxed);
    }
}

fn fail_all(batch: &[Command], error: FlowError) -> Vec<WriteResult> {
    batch.iter().map(|_| Err(error.clone())).collect()
}

/// Exponential backoff with full jitter, capped at about a second.
fn backoff(attempt: u32) -> Duration {
    let ceiling_ms = (10u64 << attempt.min(7)).min(1000);
    Duration::from_millis(rand::rng().random_range(1..=ceiling_ms))
}
