//! The writer's loop: take what is queued as one batch, fetch first when
//! asked, run every write's flow on the newest tip (a new build's
//! auto-releases in the same batch), and hand the batch's push to the
//! pusher thread; while it is in flight the next batch is built on top of
//! it (`flight`). Callers are answered once their batch landed. Merging
//! the mirror's packs runs beside it.

use std::sync::Arc;
use std::time::Instant;

use git2::{Mempack, Oid};
use tokio::sync::mpsc;

use crate::domain::{chain, FlowError, Settings};
use crate::engine::events::EventBus;
use crate::engine::published::SharedState;
use crate::flows::{self, FlowContext, WriteDone};
use crate::repo::index::{Index, View};
use crate::repo::mirror::Mirror;

use super::flight::{Batch, Line};
use super::owed::Owed;
use super::{Command, Job, NewBuild, WriteResult, WriterConfig, WriterStats};

pub(super) struct Writer {
    pub(super) mirror: Mirror,
    pub(super) shared: SharedState,
    pub(super) settings: Settings,
    pub(super) config: WriterConfig,
    pub(super) stats: Arc<WriterStats>,
    pub(super) events: EventBus,
}

/// A caller waiting for a fetch and the auto-releases it made due.
pub(super) type SyncReply = tokio::sync::oneshot::Sender<Result<(), FlowError>>;

/// What the loop wakes up for.
enum Event {
    /// Commands taken from the queue.
    Commands(Vec<Command>),
    /// The answer to the push in flight.
    Landed(Result<crate::repo::mirror::Attempt, crate::repo::RepoError>),
    /// The queue closed and nothing is in the air.
    Stopped,
}

impl Writer {
    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut merging = None;
        let mut owed = Owed::default();
        let mut line = Line::start(self.mirror.pusher());
        // Waits for the queue and the push in flight at once.
        let waiter = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime without I/O can be built");
        loop {
            let served =
                self.serve_until_merged(&mut rx, &mut line, &waiter, &mut merging, &mut owed);
            if served.is_break() {
                line.stop();
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
    /// once a merge finished and nothing is in the air (the mirror must
    /// then be reopened) and `Break` when the queue closed.
    fn serve_until_merged(
        &self,
        rx: &mut mpsc::Receiver<Command>,
        line: &mut Line,
        waiter: &tokio::runtime::Runtime,
        merging: &mut Option<std::thread::JoinHandle<()>>,
        owed: &mut Owed,
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
        let mempack = mempack.as_ref();
        let mut packs_written = 0;
        loop {
            // A finished merge waits until nothing is in the air: the
            // mirror is reopened then, and the batch in memory with it.
            let merged = merging.as_ref().is_some_and(|merge| merge.is_finished());
            if merged && line.idle() {
                if let Some(merge) = merging.take() {
                    let _ = merge.join();
                }
                return std::ops::ControlFlow::Continue(());
            }
            match self.next_event(rx, line, waiter, merged) {
                Event::Stopped => return std::ops::ControlFlow::Break(()),
                Event::Commands(commands) => self.take(commands, line, mempack, owed),
                Event::Landed(attempt) => {
                    if self.land(attempt, line, mempack, owed) {
                        packs_written += 1;
                    }
                }
            }
            if line.hang.is_some() {
                self.fail_fast_behind_a_hung_remote(rx, line, owed);
            }
            if merging.is_none() && packs_written >= self.config.packs_between_merges.max(1) {
                *merging = Some(self.mirror.spawn_merge());
                packs_written = 0;
            }
        }
    }

    /// Waits for commands, or for the push in flight to be answered,
    /// whichever comes first. With `draining`, only for the push.
    fn next_event(
        &self,
        rx: &mut mpsc::Receiver<Command>,
        line: &mut Line,
        waiter: &tokio::runtime::Runtime,
        draining: bool,
    ) -> Event {
        let room = self
            .config
            .max_batch
            .saturating_sub(line.staged.as_ref().map_or(0, |s| s.jobs.len()))
            .max(1);
        let take_more = |first: Command, rx: &mut mpsc::Receiver<Command>| {
            let mut commands = vec![first];
            while commands.len() < room {
                match rx.try_recv() {
                    Ok(command) => commands.push(command),
                    Err(_) => break,
                }
            }
            Event::Commands(commands)
        };
        if line.flight.is_none() {
            if let Some(first) = line.carried.take() {
                return take_more(first, rx);
            }
            if line.closed {
                return Event::Stopped;
            }
            return match rx.blocking_recv() {
                Some(first) => take_more(first, rx),
                None => {
                    line.closed = true;
                    Event::Stopped
                }
            };
        }
        if line.closed || draining {
            return Event::Landed(waiter.block_on(line.landing()));
        }
        let full = line
            .staged
            .as_ref()
            .is_some_and(|s| s.jobs.len() >= self.config.max_batch);
        if full {
            return Event::Landed(waiter.block_on(line.landing()));
        }
        if let Some(first) = line.carried.take() {
            return take_more(first, rx);
        }
        waiter.block_on(async {
            tokio::select! {
                biased;
                landed = line.landing() => Event::Landed(landed),
                command = rx.recv() => match command {
                    Some(first) => take_more(first, rx),
                    None => {
                        line.closed = true;
                        // Nothing taken: the next wait is for the landing.
                        Event::Commands(Vec::new())
                    }
                },
            }
        })
    }

    /// Takes commands: writes are built on the newest tip (on top of the
    /// push in flight, if any) and pushed, or staged until it lands;
    /// fetches run first, or once the push in flight landed.
    pub(super) fn take(
        &self,
        commands: Vec<Command>,
        line: &mut Line,
        mempack: Option<&Mempack<'_>>,
        owed: &mut Owed,
    ) {
        let mut jobs = Vec::with_capacity(commands.len());
        let mut syncs = Vec::new();
        for command in commands {
            match command {
                Command::Write {
                    request,
                    reply,
                    deadline,
                    ..
                } => jobs.push(Job {
                    request: *request,
                    reply: Some(reply),
                    trigger: None,
                    deadline,
                }),
                sync @ Command::Sync { .. } => syncs.push(sync),
            }
        }
        if let Some(flight) = &line.flight {
            line.held_syncs.extend(syncs);
            if jobs.is_empty() {
                return;
            }
            let staged = line.staged.get_or_insert_with(|| {
                self.count_batch();
                Batch::new(flight.batch.tip, 1, Instant::now())
            });
            self.extend(staged, jobs, Some(&flight.batch.pending));
            return;
        }
        let mut batch = Batch::new(self.published_tip(), 1, Instant::now());
        if !syncs.is_empty() {
            let (replies, result) = self.run_syncs(syncs, owed);
            batch.base = self.published_tip();
            batch.tip = batch.base;
            batch.sync_replies = replies;
            batch.sync_result = result;
            batch.after_sync = true;
        }
        // Derived writes go first: they are older news.
        let due = self.due_auto_releases(&owed.take(), None, batch.base);
        if !jobs.is_empty() || !due.is_empty() {
            self.count_batch();
        }
        self.extend(&mut batch, due.into_iter().chain(jobs), None);
        self.launch(batch, line, mempack, owed);
    }

    fn count_batch(&self) {
        self.stats
            .batches_started
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Runs fetches asked for: the builds they name, and those others
    /// pushed, become owed auto-releases. Returns the callers to answer
    /// once those are pushed, and the fetch's result.
    pub(super) fn run_syncs(
        &self,
        syncs: Vec<Command>,
        owed: &mut Owed,
    ) -> (Vec<SyncReply>, Result<(), FlowError>) {
        let mut replies = Vec::new();
        let mut builds = Vec::new();
        for sync in syncs {
            if let Command::Sync {
                builds: named,
                reply,
                ..
            } = sync
            {
                builds.extend(named);
                replies.extend(reply);
            }
        }
        owed.extend(builds);
        let result = match self.sync() {
            Ok(new_builds) => {
                owed.extend(new_builds);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %chain(&e), "fetch failed");
                Err(e)
            }
        };
        (replies, result)
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

    /// Logs what a derived write did; one the remote did not take stays owed.
    pub(super) fn derived_done(&self, job: &Job, result: WriteResult, owed: &mut Owed) {
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
                    owed.extend(job.trigger.clone());
                }
            }
        }
    }

    /// The auto-releases due for new builds at `tip`, whose commits past
    /// the published ones are indexed in `pending`.
    pub(super) fn due_auto_releases(
        &self,
        builds: &[NewBuild],
        pending: Option<&Index>,
        tip: Oid,
    ) -> Vec<Job> {
        if builds.is_empty() {
            return Vec::new();
        }
        let published = self.shared.read().expect("writer lock not poisoned");
        let ctx = FlowContext {
            repo: self.mirror.repo(),
            view: View {
                base: &published.index,
                pending,
                in_flight: None,
            },
            settings: &self.settings,
            commits: &self.config.commits,
            tip,
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

    /// Runs `jobs` on the batch's tip, chaining new commits onto it; a
    /// batch on top of a push in flight sees that push's commits through
    /// `in_flight`. A job whose caller stopped waiting is not applied.
    pub(super) fn extend(
        &self,
        batch: &mut Batch,
        jobs: impl IntoIterator<Item = Job>,
        in_flight: Option<&Index>,
    ) {
        let published = self.shared.read().expect("writer lock not poisoned");
        for job in jobs {
            if job.abandoned() {
                self.stats
                    .abandoned
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                batch.results.push(Err(FlowError::DeadlineExceeded));
                batch.jobs.push(job);
                continue;
            }
            let ctx = FlowContext {
                repo: self.mirror.repo(),
                view: View {
                    base: &published.index,
                    pending: Some(&batch.pending),
                    in_flight,
                },
                settings: &self.settings,
                commits: &self.config.commits,
                tip: batch.tip,
            };
            let mut result = self.apply_one(&ctx, &job.request);
            if let Ok(done) = &result {
                if done.created() {
                    batch.tip = done.commit();
                    self.index_new(&mut batch.pending, batch.tip);
                }
            }
            // A new build triggers its auto-releases in the same batch.
            if let Ok(WriteDone::Build(build)) = &mut result {
                if build.created {
                    let layers = (&published.index, in_flight);
                    self.auto_release_build(layers, &mut batch.pending, &mut batch.tip, build);
                }
            }
            batch.results.push(result);
            batch.jobs.push(job);
        }
    }

    /// Runs one request's flow. An uploaded build's objects join the mirror
    /// for it, and leave again when it makes no commit (refused, or the
    /// same build already there), so that nothing of it stays behind.
    fn apply_one(
        &self,
        ctx: &FlowContext<'_>,
        request: &flows::WriteRequest,
    ) -> Result<WriteDone, FlowError> {
        let Some(staged) = request.intent.staged() else {
            return flows::apply(ctx, request);
        };
        if let Err(e) = staged.link_into(&self.mirror.path()) {
            return Err(FlowError::from(crate::repo::RepoError::Io {
                path: self.mirror.path(),
                source: e,
            }));
        }
        let result = flows::apply(ctx, request);
        if !result.as_ref().is_ok_and(WriteDone::created) {
            staged.unlink_from_mirror();
        }
        result
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
        (base, in_flight): (&Index, Option<&Index>),
        pending: &mut Index,
        tip: &mut Oid,
        build: &mut flows::BuildDone,
    ) {
        let ctx = FlowContext {
            repo: self.mirror.repo(),
            view: View {
                base,
                pending: Some(pending),
                in_flight,
            },
            settings: &self.settings,
            commits: &self.config.commits,
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
                    in_flight,
                },
                settings: &self.settings,
                commits: &self.config.commits,
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
}
