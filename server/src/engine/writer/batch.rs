//! The writer's loop: take what is queued as one batch, fetch first when
//! asked, run every write's flow on the published tip (a new build's
//! auto-releases in the same batch), and answer each caller once the batch
//! is published. Merging the mirror's packs runs beside it.

use std::sync::Arc;

use git2::{Mempack, Oid};
use tokio::sync::mpsc;

use crate::domain::{chain, FlowError, Settings};
use crate::engine::events::EventBus;
use crate::engine::published::SharedState;
use crate::flows::{self, FlowContext, WriteDone};
use crate::repo::index::{Index, View};
use crate::repo::mirror::Mirror;

use super::owed::Owed;
use super::{Command, Job, NewBuild, WriteResult, WriterConfig, WriterStats};

pub(super) struct Writer {
    pub(super) mirror: Mirror,
    pub(super) shared: SharedState,
    pub(super) settings: Settings,
    pub(super) config: WriterConfig,
    pub(super) stats: Arc<WriterStats>,
    pub(super) events: EventBus,
    /// The last batch's remote did not answer in time: its answer, and
    /// when that was known.
    pub(super) remote_hung: std::cell::RefCell<Option<(FlowError, std::time::Instant)>>,
    /// A command taken from the queue early, for the next batch.
    pub(super) carried: std::cell::RefCell<Option<Command>>,
}

impl Writer {
    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut merging = None;
        let mut owed = Owed::default();
        loop {
            if self
                .serve_until_merged(&mut rx, &mut merging, &mut owed)
                .is_break()
            {
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
        let mut packs_written = 0;
        loop {
            let carried = self.carried.borrow_mut().take();
            let Some(first) = carried.or_else(|| rx.blocking_recv()) else {
                return std::ops::ControlFlow::Break(());
            };
            let mut commands = vec![first];
            while commands.len() < self.config.max_batch {
                match rx.try_recv() {
                    Ok(command) => commands.push(command),
                    Err(_) => break,
                }
            }
            if self.run_commands(commands, mempack.as_ref(), owed) {
                packs_written += 1;
            }
            self.fail_fast_behind_a_hung_remote(rx, owed);
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
    fn run_commands(
        &self,
        commands: Vec<Command>,
        mempack: Option<&Mempack<'_>>,
        owed: &mut Owed,
    ) -> bool {
        let mut jobs = Vec::with_capacity(commands.len());
        let mut sync_replies = Vec::new();
        let mut sync_builds: Option<Vec<NewBuild>> = None;
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
                Command::Sync { builds, reply, .. } => {
                    sync_builds.get_or_insert_with(Vec::new).extend(builds);
                    sync_replies.extend(reply);
                }
            }
        }
        let mut sync_result = Ok(());
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
        // Derived writes go first: they are older news.
        let due = self.due_auto_releases(&owed.take());
        jobs.splice(0..0, due);
        let results = if jobs.is_empty() {
            Vec::new()
        } else {
            self.apply_batch(&jobs, mempack, owed)
        };
        let wrote = results
            .iter()
            .any(|r| r.as_ref().is_ok_and(|d| d.created()));
        self.note_hung_remote(
            results
                .iter()
                .filter_map(|r| r.as_ref().err())
                .chain(sync_result.as_ref().err()),
        );
        self.stats.count_releases(&results);
        for (job, result) in jobs.into_iter().zip(results) {
            match job.reply {
                // A caller that went away no longer needs the answer.
                Some(reply) => {
                    let _ = reply.send(result);
                }
                None => self.derived_done(&job, result, owed),
            }
        }
        // Builds that others pushed while this batch was being replayed.
        let due = self.due_auto_releases(&owed.take());
        if !due.is_empty() {
            let results = self.apply_batch(&due, mempack, owed);
            self.stats.count_releases(&results);
            for (job, result) in due.iter().zip(results) {
                self.derived_done(job, result, owed);
            }
        }
        if synced && sync_result.is_ok() && owed.is_empty() {
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

    /// After a batch that the remote did not answer in time, the writes that
    /// queued up behind it get the same answer at once: they would meet the
    /// same remote, and each would wait another `--remote-timeout`, so a
    /// write could wait twice that (racing its caller's own deadline).
    /// Writes that arrive afterwards try the remote again.
    fn fail_fast_behind_a_hung_remote(&self, rx: &mut mpsc::Receiver<Command>, owed: &mut Owed) {
        let Some((error, known)) = self.remote_hung.borrow_mut().take() else {
            return;
        };
        let mut answered = 0;
        while let Ok(command) = rx.try_recv() {
            if command.queued() >= known {
                // Sent once the failure was answered: it tries again.
                *self.carried.borrow_mut() = Some(command);
                break;
            }
            answered += 1;
            match command {
                Command::Write {
                    request,
                    reply,
                    deadline,
                    ..
                } => {
                    let job = Job {
                        request: *request,
                        reply: Some(reply),
                        trigger: None,
                        deadline,
                    };
                    if job.abandoned() {
                        self.stats
                            .abandoned
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    } else if let Some(reply) = job.reply {
                        let _ = reply.send(Err(error.clone()));
                    }
                }
                Command::Sync { builds, reply, .. } => {
                    owed.extend(builds);
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(error.clone()));
                    }
                }
            }
        }
        if answered > 0 {
            tracing::warn!(
                answered,
                "the remote did not answer in time: the writes queued behind it get that answer at once"
            );
        }
    }

    /// Notes, from a batch's answers, whether the remote did not answer in
    /// time.
    fn note_hung_remote<'r>(&self, errors: impl IntoIterator<Item = &'r FlowError>) {
        for error in errors {
            if let FlowError::RemoteUnavailable(cause) = error {
                if cause.timed_out() {
                    *self.remote_hung.borrow_mut() =
                        Some((error.clone(), std::time::Instant::now()));
                }
            }
        }
    }

    /// Logs what a derived write did; one the remote did not take stays owed.
    fn derived_done(&self, job: &Job, result: WriteResult, owed: &mut Owed) {
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
            commits: &self.config.commits,
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

    /// Runs every command on the published tip, chaining new commits.
    /// Returns the base tip, the per-command results, and the new tip with
    /// the index of the new commits (`None` when the batch made no commit).
    pub(super) fn apply_on_tip(
        &self,
        batch: &[Job],
    ) -> (Oid, Vec<WriteResult>, Option<(Oid, Index)>) {
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
                commits: &self.config.commits,
                tip,
            };
            let mut result = self.apply_one(&ctx, &command.request);
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
