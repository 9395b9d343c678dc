//! The single writer: one thread owns the mirror and applies every write.
//! Requests arrive on a bounded queue; everything queued when the writer
//! wakes becomes one batch of consecutive commits and one compare-and-swap
//! push (group commit). When the push is rejected the writer fetches and
//! replays the batch's intents on the new tip, a bounded number of times.
//! Callers are answered only after the push that carries their commit, and
//! the published index and tip are updated before that answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use git2::{Mempack, Oid};
use rand::Rng;
use tokio::sync::{mpsc, oneshot};

use crate::domain::chain;
use crate::domain::FlowError;
use crate::domain::Settings;
use crate::engine::events::{EventBus, Signal};
use crate::engine::published::SharedState;
use crate::flows::{self, FlowContext, WriteDone, WriteRequest};
use crate::repo::index::{Index, View};
use crate::repo::mirror::{Mirror, PushOutcome};
use crate::repo::pack;
use crate::repo::RepoError;

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
    /// Longest one batch may take, replays after rejected pushes included;
    /// past it the batch's writes fail with UNAVAILABLE.
    pub batch_timeout: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            queue_capacity: 1024,
            max_batch: 256,
            max_push_attempts: 8,
            packs_between_merges: 32,
            batch_timeout: Duration::from_secs(60),
        }
    }
}

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
    fn count_releases(&self, results: &[WriteResult]) {
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

/// The answer to one write.
type WriteResult = Result<WriteDone, FlowError>;

enum Command {
    /// A write from a caller, answered after its push.
    Write {
        request: WriteRequest,
        reply: oneshot::Sender<WriteResult>,
        deadline: Option<Instant>,
    },
    /// Fetch the remote, publish what others pushed, and run the
    /// auto-releases due for new builds (and for `builds`, as
    /// `(service, branch)`).
    Sync {
        builds: Vec<NewBuild>,
        reply: Option<oneshot::Sender<Result<(), FlowError>>>,
    },
}

/// A build that arrived: `(service, branch)`.
pub type NewBuild = (String, String);

/// One write of a batch: a caller's, or one the writer derived itself (an
/// auto-release after a fetch), which nobody waits for but which is tried
/// again later if the remote could not take it.
struct Job {
    request: WriteRequest,
    reply: Option<oneshot::Sender<WriteResult>>,
    trigger: Option<NewBuild>,
    /// When the caller stops waiting.
    deadline: Option<Instant>,
}

impl Job {
    /// Whether nobody waits for this write any more: its caller went away
    /// or its deadline passed. Such a write must not be applied later, when
    /// its caller has long assumed it failed.
    fn abandoned(&self) -> bool {
        self.reply.as_ref().is_some_and(|reply| reply.is_closed())
            || self
                .deadline
                .is_some_and(|deadline| Instant::now() >= deadline)
    }
}

/// The handlers' side of the queue. Cheap to clone.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Command>,
    stats: Arc<WriterStats>,
}

impl WriterHandle {
    /// Queues a write and waits until it is on the remote (or failed).
    /// A write still queued at `deadline`, or whose caller stopped waiting,
    /// is not applied.
    pub async fn submit(
        &self,
        request: WriteRequest,
        deadline: Option<Instant>,
    ) -> Result<WriteDone, FlowError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Write {
            request,
            reply,
            deadline,
        })?;
        answer.await.map_err(|_| FlowError::WriterStopped)?
    }

    /// Asks for a fetch and the auto-releases it makes due, without
    /// waiting (poll, webhook). A full queue drops the request: the next
    /// one will do.
    pub fn request_sync(&self, builds: Vec<NewBuild>) -> Result<(), FlowError> {
        self.send(Command::Sync {
            builds,
            reply: None,
        })
    }

    /// Fetches and runs the auto-releases due, and waits until they are
    /// pushed.
    pub async fn sync(&self, builds: Vec<NewBuild>) -> Result<(), FlowError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Sync {
            builds,
            reply: Some(reply),
        })?;
        answer.await.map_err(|_| FlowError::WriterStopped)?
    }

    /// Writes waiting in the queue.
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    fn send(&self, command: Command) -> Result<(), FlowError> {
        self.tx.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => FlowError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => FlowError::WriterStopped,
        })
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
    events: EventBus,
) -> (WriterHandle, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(config.queue_capacity);
    let stats = Arc::new(WriterStats::default());
    let writer = Writer {
        mirror,
        shared,
        settings,
        config,
        stats: stats.clone(),
        events,
        owed: std::cell::RefCell::new(Vec::new()),
    };
    let thread = std::thread::Builder::new()
        .name("release-writer".into())
        .spawn(move || {
            let run = std::panic::AssertUnwindSafe(move || writer.run(rx));
            if std::panic::catch_unwind(run).is_err() {
                // Without its writer the server would answer every write
                // with an error while reads go on looking healthy: better to
                // stop, so that the orchestrator restarts it.
                tracing::error!("the writer panicked; stopping the server");
                std::process::exit(70);
            }
        })
        .expect("the OS can start a thread");
    (WriterHandle { tx, stats }, thread)
}

struct Writer {
    mirror: Mirror,
    shared: SharedState,
    settings: Settings,
    config: WriterConfig,
    stats: Arc<WriterStats>,
    events: EventBus,
    /// Builds whose auto-releases are still to be made (the remote moved or
    /// failed before they were pushed).
    owed: std::cell::RefCell<Vec<NewBuild>>,
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
            let mut commands = vec![first];
            while commands.len() < self.config.max_batch {
                match rx.try_recv() {
                    Ok(command) => commands.push(command),
                    Err(_) => break,
                }
            }
            if self.run_commands(commands, mempack.as_ref()) {
                packs_written += 1;
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

    /// Runs one batch of commands: a fetch first when any asked for one
    /// (adding the auto-releases it makes due, and those still owed from
    /// earlier), then every write, pushed together. Answers everyone;
    /// returns whether a pack was written.
    fn run_commands(&self, commands: Vec<Command>, mempack: Option<&Mempack<'_>>) -> bool {
        let mut jobs = Vec::with_capacity(commands.len());
        let mut sync_replies = Vec::new();
        let mut sync_builds: Option<Vec<NewBuild>> = None;
        for command in commands {
            match command {
                Command::Write {
                    request,
                    reply,
                    deadline,
                } => jobs.push(Job {
                    request,
                    reply: Some(reply),
                    trigger: None,
                    deadline,
                }),
                Command::Sync { builds, reply } => {
                    sync_builds.get_or_insert_with(Vec::new).extend(builds);
                    sync_replies.extend(reply);
                }
            }
        }
        let mut sync_result = Ok(());
        let mut owed = self.owed.take();
        let synced = sync_builds.is_some();
        if let Some(builds) = sync_builds {
            match self.sync() {
                Ok(new_builds) => {
                    owed.extend(builds);
                    owed.extend(new_builds);
                }
                Err(e) => {
                    tracing::warn!(error = %chain(&e), "fetch failed");
                    owed.extend(builds);
                    sync_result = Err(e);
                }
            }
        }
        owed.sort();
        owed.dedup();
        // Derived writes go first: they are older news.
        let due = self.due_auto_releases(&owed);
        jobs.splice(0..0, due);
        let results = if jobs.is_empty() {
            Vec::new()
        } else {
            self.apply_batch(&jobs, mempack)
        };
        let wrote = results
            .iter()
            .any(|r| r.as_ref().is_ok_and(|d| d.created()));
        self.stats.count_releases(&results);
        for (job, result) in jobs.into_iter().zip(results) {
            match job.reply {
                // A caller that went away no longer needs the answer.
                Some(reply) => {
                    let _ = reply.send(result);
                }
                None => self.derived_done(&job, result),
            }
        }
        // Builds that others pushed while this batch was being replayed.
        let owed = self.owed.take();
        let due = self.due_auto_releases(&owed);
        if !due.is_empty() {
            let results = self.apply_batch(&due, mempack);
            self.stats.count_releases(&results);
            for (job, result) in due.iter().zip(results) {
                self.derived_done(job, result);
            }
        }
        if synced && sync_result.is_ok() && self.owed.borrow().is_empty() {
            // Every build up to here had its auto-releases: a restart need
            // not look further back than this.
            let tip = self.shared.read().expect("writer lock not poisoned").tip;
            if let Err(e) = self.mirror.mark_caught_up(tip) {
                tracing::warn!(error = %chain(&e), "cannot record the caught-up tip");
            }
        }
        for reply in sync_replies {
            let _ = reply.send(sync_result.clone());
        }
        wrote
    }

    /// Logs what a derived write did; one the remote did not take stays owed.
    fn derived_done(&self, job: &Job, result: WriteResult) {
        match result {
            Ok(done) => {
                tracing::info!(intent = %job.request.intent.summary(), commit = %done.commit(), created = done.created(), "auto-release done")
            }
            Err(e) => {
                tracing::warn!(intent = %job.request.intent.summary(), error = %chain(&e), "auto-release failed");
                if matches!(
                    e,
                    FlowError::RemoteUnavailable(_)
                        | FlowError::Conflict { .. }
                        | FlowError::BatchTimedOut { .. }
                        | FlowError::DiskFull { .. }
                        | FlowError::NotPermitted { .. }
                ) {
                    self.owed.borrow_mut().extend(job.trigger.clone());
                }
            }
        }
    }

    /// The auto-releases due for new builds at the published tip.
    fn due_auto_releases(&self, builds: &[NewBuild]) -> Vec<Job> {
        if builds.is_empty() {
            return Vec::new();
        }
        let published = self.shared.read().expect("writer lock not poisoned");
        let ctx = FlowContext {
            repo: self.mirror.repo(),
            view: View::published(&published.index),
            settings: &self.settings,
            tip: published.tip,
        };
        let mut due = Vec::new();
        for (service, branch) in builds {
            match flows::auto_release::due_releases(&ctx, service, branch) {
                Ok(requests) => due.extend(requests.into_iter().map(|request| Job {
                    request,
                    reply: None,
                    trigger: Some((service.clone(), branch.clone())),
                    deadline: None,
                })),
                Err(e) => {
                    tracing::warn!(%service, error = %chain(&e), "cannot read auto-release policies")
                }
            }
        }
        due
    }

    /// Applies a batch until its push lands, the remote fails, or the
    /// attempts run out. Returns one result per job, in order.
    fn apply_batch(&self, batch: &[Job], mempack: Option<&Mempack<'_>>) -> Vec<WriteResult> {
        let mut attempt = 0;
        let batch_began = Instant::now();
        self.stats
            .batches_started
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
            let created = match chain_of(self.mirror.repo(), base, tip) {
                Ok(created) => created,
                Err(e) => {
                    tracing::error!(error = %chain(&e), "cannot list the batch's commits");
                    return fail_all(batch, e.into());
                }
            };
            let pack = match self.pack_new_objects(mempack, &created) {
                Ok(pack) => pack,
                Err(e) => {
                    tracing::error!(error = %chain(&e), "cannot store the batch's objects");
                    return fail_all(batch, e.into());
                }
            };
            let pushed = self.mirror.push(tip, base, pack.as_ref());
            match pushed {
                Ok(PushOutcome::Pushed) => {
                    let commits = created.len() as u64;
                    tracing::debug!(
                        commits,
                        apply_us = applied.as_micros() as u64,
                        push_us = (began.elapsed() - applied).as_micros() as u64,
                        "batch pushed"
                    );
                    self.note_batch(commits);
                    self.stats.push_micros.fetch_add(
                        (began.elapsed() - applied).as_micros() as u64,
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    let mut published = self.shared.write().expect("writer lock not poisoned");
                    published.index.absorb(pending);
                    published.tip = tip;
                    drop(published);
                    self.announce(&created);
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
                    if batch_began.elapsed() >= self.config.batch_timeout {
                        let seconds = self.config.batch_timeout.as_secs();
                        return fail_all(batch, FlowError::BatchTimedOut { seconds });
                    }
                    std::thread::sleep(backoff(attempt));
                    match self.sync() {
                        // Builds in what others pushed get their
                        // auto-releases with the next batch.
                        Ok(new_builds) => self.owed.borrow_mut().extend(new_builds),
                        Err(e) => return fail_all(batch, e),
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
    fn apply_on_tip(&self, batch: &[Job]) -> (Oid, Vec<WriteResult>, Option<(Oid, Index)>) {
        let published = self.shared.read().expect("writer lock not poisoned");
        let base = published.tip;
        let mut tip = base;
        let mut pending = Index::default();
        let mut results = Vec::with_capacity(batch.len());
        for command in batch {
            if command.abandoned() {
                self.stats
                    .abandoned
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                results.push(Err(FlowError::DeadlineExceeded));
                continue;
            }
            let ctx = FlowContext {
                repo: self.mirror.repo(),
                view: View {
                    base: &published.index,
                    pending: Some(&pending),
                },
                settings: &self.settings,
                tip,
            };
            let mut result = flows::apply(&ctx, &command.request);
            if let Ok(done) = &result {
                if done.created() {
                    tip = done.commit();
                    self.index_new(&mut pending, tip);
                }
            }
            // A new build triggers its auto-releases in the same batch.
            if let Ok(WriteDone::Build(build)) = &mut result {
                if build.created {
                    self.auto_release_build(&published.index, &mut pending, &mut tip, build);
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
    ) -> Result<Option<pack::Pack>, RepoError> {
        let Some(mempack) = mempack else {
            return Ok(None);
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
            bytes = pack.bytes.len(),
            build_us = built.as_micros() as u64,
            store_us = (began.elapsed() - built).as_micros() as u64,
            "batch packed"
        );
        mempack
            .reset()
            .map_err(RepoError::git("clear the in-memory objects"))?;
        Ok(Some(pack))
    }

    fn index_new(&self, pending: &mut Index, commit: Oid) {
        if let Err(e) = pending.ingest_commit(self.mirror.repo(), commit) {
            tracing::error!(error = %chain(&e), "cannot index a new commit");
        }
    }

    /// Applies the auto-releases a just-added build triggers, on top of it;
    /// a failing one is logged and does not stop the others.
    fn auto_release_build(
        &self,
        base: &Index,
        pending: &mut Index,
        tip: &mut Oid,
        build: &mut flows::BuildDone,
    ) {
        let ctx = FlowContext {
            repo: self.mirror.repo(),
            view: View {
                base,
                pending: Some(pending),
            },
            settings: &self.settings,
            tip: *tip,
        };
        let due = match flows::auto_release::due_releases(&ctx, &build.service, &build.branch) {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %chain(&e), "cannot read auto-release policies");
                return;
            }
        };
        for request in due {
            let ctx = FlowContext {
                repo: self.mirror.repo(),
                view: View {
                    base,
                    pending: Some(pending),
                },
                settings: &self.settings,
                tip: *tip,
            };
            match flows::apply(&ctx, &request) {
                Ok(WriteDone::Release(release)) => {
                    if release.created {
                        *tip = release.commit;
                        self.index_new(pending, *tip);
                    }
                    build.auto_releases.push(release);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(intent = %request.intent.summary(), error = %chain(&e), "auto-release failed")
                }
            }
        }
    }

    /// Fetches the remote and publishes what others pushed; returns the
    /// builds that arrived.
    fn sync(&self) -> Result<Vec<NewBuild>, FlowError> {
        let old = self.shared.read().expect("writer lock not poisoned").tip;
        let new = self.mirror.fetch()?;
        let mut services = Vec::new();
        if new != old && !self.descends(new, old) {
            // Someone rewrote the remote's history (a force-push): what the
            // index says about dropped commits is no longer true. Start
            // over from the new history; request ids of dropped commits go
            // with it.
            tracing::warn!(%old, %new, "the remote's history was rewritten; re-reading it");
            let mut fresh = Index::default();
            fresh.ingest_range(self.mirror.repo(), None, new)?;
            // What the new history has since it parted from the old one is
            // news: its builds get their auto-releases, its commits events.
            let since = self.mirror.repo().merge_base(old, new).ok();
            let mut arrived = Index::default();
            arrived.ingest_range(self.mirror.repo(), since, new)?;
            services = arrived.new_builds();
            let mut published = self.shared.write().expect("writer lock not poisoned");
            published.index = fresh;
            published.tip = new;
            drop(published);
            if let Some(since) = since {
                if let Ok(commits) = chain_of(self.mirror.repo(), since, new) {
                    self.announce(&commits);
                }
            }
            return Ok(services);
        }
        if new != old {
            // Index outside the lock, so readers keep going meanwhile.
            let mut fresh = Index::default();
            fresh.ingest_range(self.mirror.repo(), Some(old), new)?;
            services = fresh.new_builds();
            let mut published = self.shared.write().expect("writer lock not poisoned");
            published.index.absorb(fresh);
            published.tip = new;
            drop(published);
            match chain_of(self.mirror.repo(), old, new) {
                Ok(commits) => self.announce(&commits),
                Err(e) => tracing::warn!(error = %chain(&e), "no events for fetched commits"),
            }
        }
        Ok(services)
    }

    /// Whether `new` has `old` in its history.
    fn descends(&self, new: Oid, old: Oid) -> bool {
        self.mirror
            .repo()
            .graph_descendant_of(new, old)
            .unwrap_or(false)
    }

    /// Sends the events of newly published commits to watchers. Nobody
    /// listening is fine; a slow listener loses old events, never blocks.
    fn announce(&self, commits: &[Oid]) {
        if self.events.receiver_count() == 0 {
            return;
        }
        let skip = commits.len().saturating_sub(MAX_EVENTS_PER_PUBLISH);
        for &commit in &commits[skip..] {
            for event in crate::engine::events::events_of(self.mirror.repo(), commit) {
                let _ = self.events.send(Signal::Event(event));
            }
        }
    }

    fn note_batch(&self, commits: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.stats.batches.fetch_add(1, Relaxed);
        self.stats.commits.fetch_add(commits, Relaxed);
        self.stats.largest_batch.fetch_max(commits, Relaxed);
    }
}

fn fail_all(batch: &[Job], error: FlowError) -> Vec<WriteResult> {
    batch.iter().map(|_| Err(error.clone())).collect()
}

/// Events sent for one publish at most (a fetch may bring thousands of
/// commits; watchers want news, not history).
const MAX_EVENTS_PER_PUBLISH: usize = 1000;

/// The commits after `base` up to `tip`, oldest first; the last one is
/// `tip` (checked: a pack built from a short list would leave the remote
/// without objects its branch needs).
fn chain_of(repo: &git2::Repository, base: Oid, tip: Oid) -> Result<Vec<Oid>, RepoError> {
    let walk_error = RepoError::git("list the new commits");
    let mut walk = repo.revwalk().map_err(&walk_error)?;
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)
        .map_err(&walk_error)?;
    walk.push(tip).map_err(&walk_error)?;
    walk.hide(base).map_err(&walk_error)?;
    let commits = walk.collect::<Result<Vec<Oid>, _>>().map_err(&walk_error)?;
    if tip != base && commits.last() != Some(&tip) {
        return Err(RepoError::Git {
            action: "list the new commits",
            source: git2::Error::from_str("the walk did not end at the new tip"),
        });
    }
    Ok(commits)
}

/// Exponential backoff with full jitter, capped at about a second.
fn backoff(attempt: u32) -> Duration {
    let ceiling_ms = (10u64 << attempt.min(7)).min(1000);
    Duration::from_millis(rand::rng().random_range(1..=ceiling_ms))
}
