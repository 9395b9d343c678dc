//! The push pipeline: a batch's push runs on the pusher thread while the
//! writer builds the next batch on top of it; that one is pushed the moment
//! the first is acknowledged, or replayed with it if the first was refused.
//! Nothing is answered before the push that carries it landed, and a push
//! always names the tip it expects (never a force-push).

use std::time::Instant;

use git2::{Mempack, Oid};
use tokio::sync::oneshot;

use crate::domain::{chain, FlowError};
use crate::flows::WriteDone;
use crate::repo::index::Index;
use crate::repo::mirror::{Attempt, PushOutcome, Pusher};
use crate::repo::pack::Pack;
use crate::repo::RepoError;

use super::batch::Writer;
use super::hang::Hang;
use super::owed::Owed;
use super::publish::{backoff, chain_of, Update};
use super::{Command, Job, WriteResult};

/// A batch of jobs applied on a tip: what they made, and what the remote
/// must still hold for it to land.
pub(super) struct Batch {
    pub(super) jobs: Vec<Job>,
    pub(super) results: Vec<WriteResult>,
    /// The remote tip it builds on (the push's expected value).
    pub(super) base: Oid,
    /// Its newest commit (`base` while it made none).
    pub(super) tip: Oid,
    /// The index of its commits.
    pub(super) pending: Index,
    /// Push attempts so far, this one included.
    pub(super) attempt: u32,
    /// When its first attempt began (the batch timeout counts from it).
    pub(super) began: Instant,
    /// Callers of a fetch whose auto-releases this batch carries.
    pub(super) sync_replies: Vec<oneshot::Sender<Result<(), FlowError>>>,
    pub(super) sync_result: Result<(), FlowError>,
    /// Whether a fetch ran before it: once it lands with nothing owed,
    /// every build up to the tip had its auto-releases.
    pub(super) after_sync: bool,
}

impl Batch {
    pub(super) fn new(base: Oid, attempt: u32, began: Instant) -> Self {
        Batch {
            jobs: Vec::new(),
            results: Vec::new(),
            base,
            tip: base,
            pending: Index::default(),
            attempt,
            began,
            sync_replies: Vec::new(),
            sync_result: Ok(()),
            after_sync: false,
        }
    }

    /// The jobs, with what a replay must carry along.
    fn into_replay(self, base: Oid) -> Batch {
        Batch {
            jobs: self.jobs,
            sync_replies: self.sync_replies,
            sync_result: self.sync_result,
            after_sync: self.after_sync,
            ..Batch::new(base, self.attempt + 1, self.began)
        }
    }

    /// Every job fails with `error`.
    fn fail(&mut self, error: FlowError) {
        self.results = self.jobs.iter().map(|_| Err(error.clone())).collect();
    }

    /// Whether an answer claims a commit from history (a request id seen
    /// before) that no push of this batch proves is on the remote.
    fn answers_from_history(&self) -> bool {
        self.tip == self.base
            && self
                .results
                .iter()
                .any(|r| r.as_ref().is_ok_and(WriteDone::replayed))
    }

    /// Every answer from history fails with `error`: nothing may say a
    /// commit is on the remote that could not be checked.
    fn fail_replays(&mut self, error: FlowError) {
        for result in &mut self.results {
            if result.as_ref().is_ok_and(WriteDone::replayed) {
                *result = Err(error.clone());
            }
        }
    }

    /// Whether a caller of this batch stopped waiting.
    fn has_abandoned(&self) -> bool {
        self.jobs.iter().any(Job::abandoned)
    }
}

/// A batch whose push is on its way.
pub(super) struct Flight {
    pub(super) batch: Batch,
    created: Vec<Oid>,
    launched: Instant,
    done: oneshot::Receiver<Result<Attempt, RepoError>>,
}

/// One push for the pusher thread.
struct Order {
    new: Oid,
    expected: Oid,
    pack: Option<Pack>,
    /// The mirror's pack generation (see [`Pusher::push`]).
    generation: u64,
    reply: oneshot::Sender<Result<Attempt, RepoError>>,
}

/// The pipeline's state: the push in flight, the batch built on top of it,
/// fetches asked for meanwhile, and a remote that did not answer in time.
pub(super) struct Line {
    orders: Option<std::sync::mpsc::Sender<Order>>,
    pusher: Option<std::thread::JoinHandle<()>>,
    pub(super) flight: Option<Flight>,
    pub(super) staged: Option<Batch>,
    /// Fetches asked for while a push was in flight: `(builds, reply)`.
    pub(super) held_syncs: Vec<Command>,
    /// The queue closed: take nothing more, finish what is in the air.
    pub(super) closed: bool,
    /// A batch was just answered with a remote that did not answer in
    /// time: what was queued behind it gets that answer (see `hang`).
    pub(super) hang: Option<Hang>,
    /// A command taken from the queue early, for the next batch.
    pub(super) carried: Option<Command>,
}

impl Line {
    /// Starts the pusher thread.
    pub(super) fn start(mut pusher: Pusher) -> Self {
        let (orders, inbox) = std::sync::mpsc::channel::<Order>();
        let thread = std::thread::Builder::new()
            .name("release-pusher".into())
            .spawn(move || {
                for order in inbox {
                    let attempt = pusher.push(
                        order.new,
                        order.expected,
                        order.pack.as_ref(),
                        order.generation,
                    );
                    let _ = order.reply.send(attempt);
                }
            })
            .expect("the OS can start a thread");
        Line {
            orders: Some(orders),
            pusher: Some(thread),
            flight: None,
            staged: None,
            held_syncs: Vec::new(),
            closed: false,
            hang: None,
            carried: None,
        }
    }

    /// Whether nothing is in the air.
    pub(super) fn idle(&self) -> bool {
        self.flight.is_none() && self.staged.is_none()
    }

    /// Waits for the push in flight to be answered.
    pub(super) async fn landing(&mut self) -> Result<Attempt, RepoError> {
        let flight = self.flight.as_mut().expect("a push in flight");
        (&mut flight.done).await.unwrap_or_else(|_| {
            Err(RepoError::Io {
                path: std::path::PathBuf::from("release-pusher"),
                source: std::io::Error::other("the pusher thread stopped"),
            })
        })
    }

    /// Ends the pusher thread once it finished its push.
    pub(super) fn stop(&mut self) {
        drop(self.orders.take());
        if let Some(thread) = self.pusher.take() {
            let _ = thread.join();
        }
    }
}

impl Writer {
    /// Packs a built batch and hands its push to the pusher thread; a
    /// batch that made no commit is answered at once.
    pub(super) fn launch(
        &self,
        mut batch: Batch,
        line: &mut Line,
        mempack: Option<&Mempack<'_>>,
        owed: &mut Owed,
    ) {
        debug_assert!(line.flight.is_none());
        if batch.answers_from_history() {
            // A request id answered from history claims a commit that no
            // push just proved is on the remote: fetch first, and apply it
            // afresh on a rewritten history.
            match self.remote_still_has(batch.base, owed) {
                Ok(true) => {}
                Ok(false) if batch.attempt < self.config.max_push_attempts => {
                    let mut replay = batch.into_replay(self.published_tip());
                    let jobs = std::mem::take(&mut replay.jobs);
                    self.extend(&mut replay, jobs, None);
                    return self.launch(replay, line, mempack, owed);
                }
                Ok(false) => batch.fail(FlowError::Conflict {
                    attempts: batch.attempt,
                }),
                Err(e) => batch.fail_replays(e),
            }
        }
        if batch.tip == batch.base {
            self.answer(batch, line, owed);
            return;
        }
        let created = match chain_of(self.mirror.repo(), batch.base, batch.tip) {
            Ok(created) => created,
            Err(e) => {
                tracing::error!(error = %chain(&e), "cannot list the batch's commits");
                batch.fail(e.into());
                self.answer(batch, line, owed);
                return;
            }
        };
        let pack = match self.pack_new_objects(mempack, &created) {
            Ok(pack) => pack,
            Err(e) => {
                tracing::error!(error = %chain(&e), "cannot store the batch's objects");
                batch.fail(e.into());
                self.answer(batch, line, owed);
                return;
            }
        };
        let (reply, done) = oneshot::channel();
        let order = Order {
            new: batch.tip,
            expected: batch.base,
            pack,
            generation: self
                .shared
                .read()
                .expect("writer lock not poisoned")
                .generation,
            reply,
        };
        if let Some(orders) = &line.orders {
            // A pusher that is gone answers through `done` being dropped.
            let _ = orders.send(order);
        }
        line.flight = Some(Flight {
            batch,
            created,
            launched: Instant::now(),
            done,
        });
    }

    /// Acts on the answer to the push in flight: publish and answer, then
    /// push the batch built on top of it; or replay both on what the remote
    /// holds. Returns whether a batch landed.
    pub(super) fn land(
        &self,
        attempt: Result<Attempt, RepoError>,
        line: &mut Line,
        mempack: Option<&Mempack<'_>>,
        owed: &mut Owed,
    ) -> bool {
        let flight = line.flight.take().expect("a push in flight");
        let mut batch = flight.batch;
        let outcome =
            attempt.and_then(|attempt| self.mirror.settle(batch.tip, batch.base, attempt));
        match outcome {
            Ok(PushOutcome::Pushed) => {
                let push_time = flight.launched.elapsed();
                let commits = flight.created.len() as u64;
                tracing::debug!(
                    commits,
                    push_us = push_time.as_micros() as u64,
                    "batch pushed"
                );
                self.note_batch(commits);
                self.stats.push_micros.fetch_add(
                    push_time.as_micros() as u64,
                    std::sync::atomic::Ordering::Relaxed,
                );
                let tip = batch.tip;
                let pending = std::mem::take(&mut batch.pending);
                self.publish(tip, Update::Extend(pending), &flight.created);
                self.answer(batch, line, owed);
                self.after_landing(line, mempack, owed);
                true
            }
            Ok(PushOutcome::Rejected) => {
                self.stats
                    .conflicts
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(
                    attempt = batch.attempt,
                    "push rejected: the remote moved; fetching to replay"
                );
                // What was built on top of the refused push is void.
                let staged = self.drop_staged(line, mempack);
                let refused = if batch.attempt >= self.config.max_push_attempts {
                    Some(FlowError::Conflict {
                        attempts: batch.attempt,
                    })
                } else if batch.began.elapsed() >= self.config.batch_timeout {
                    let seconds = self.config.batch_timeout.as_secs();
                    Some(FlowError::BatchTimedOut { seconds })
                } else {
                    std::thread::sleep(backoff(batch.attempt));
                    match self.sync() {
                        // Builds in what others pushed get their
                        // auto-releases with a later batch.
                        Ok(new_builds) => {
                            owed.extend(new_builds);
                            None
                        }
                        Err(e) => Some(e),
                    }
                };
                match refused {
                    Some(error) => {
                        batch.fail(error);
                        self.answer(batch, line, owed);
                        self.restart(staged, line, mempack, owed);
                    }
                    None => {
                        let base = self.published_tip();
                        let mut replay = batch.into_replay(base);
                        let jobs = std::mem::take(&mut replay.jobs);
                        let later = staged.map(|s| s.jobs).unwrap_or_default();
                        self.extend(&mut replay, jobs.into_iter().chain(later), None);
                        self.launch(replay, line, mempack, owed);
                    }
                }
                false
            }
            Err(e) => {
                tracing::error!(error = %chain(&e), "push failed");
                if let RepoError::RemoteLocked { path } = &e {
                    self.stats.note_remote_locked(path);
                }
                let staged = self.drop_staged(line, mempack);
                batch.fail(e.into());
                self.answer(batch, line, owed);
                self.restart(staged, line, mempack, owed);
                false
            }
        }
    }

    /// After a landing: fetches asked for meanwhile run first (what others
    /// pushed voids the batch built on top); then that batch is pushed, or
    /// auto-releases still owed are.
    fn after_landing(&self, line: &mut Line, mempack: Option<&Mempack<'_>>, owed: &mut Owed) {
        let held = std::mem::take(&mut line.held_syncs);
        let mut synced = None;
        if !held.is_empty() {
            let before = self.published_tip();
            let (replies, result) = self.run_syncs(held, owed);
            if self.published_tip() != before {
                // Others pushed: the batch built on top of the landed push
                // is built again on what they pushed (and pushed below).
                if let Some(staged) = self.drop_staged(line, mempack) {
                    line.staged = Some(self.rebuilt(staged));
                }
            }
            synced = Some((replies, result));
        }
        let due_on = line
            .staged
            .as_ref()
            .map(|s| s.tip)
            .unwrap_or_else(|| self.published_tip());
        let due = self.due_auto_releases(
            &owed.take(),
            line.staged.as_ref().map(|s| &s.pending),
            due_on,
        );
        let mut batch = match line.staged.take() {
            Some(staged) => staged,
            None => {
                if due.is_empty() && synced.is_none() {
                    return;
                }
                Batch::new(self.published_tip(), 1, Instant::now())
            }
        };
        if let Some((replies, result)) = synced {
            batch.sync_replies.extend(replies);
            if let Err(e) = result {
                batch.sync_result = Err(e);
            }
            batch.after_sync = true;
        }
        self.extend(&mut batch, due, None);
        if batch.has_abandoned() {
            // A caller gave up while its write waited on top of the push:
            // build the batch again without it.
            let jobs = std::mem::take(&mut batch.jobs);
            batch.results.clear();
            batch.tip = batch.base;
            batch.pending = Index::default();
            if let Some(mempack) = mempack {
                let _ = mempack.reset();
            }
            self.extend(&mut batch, jobs, None);
        }
        self.launch(batch, line, mempack, owed);
    }

    /// After the push under it failed: builds `staged`'s jobs anew on the
    /// published tip and pushes them, and runs the fetches held meanwhile.
    /// Behind a remote that did not answer in time they get that answer
    /// instead, at once (see `hang`).
    fn restart(
        &self,
        staged: Option<Batch>,
        line: &mut Line,
        mempack: Option<&Mempack<'_>>,
        owed: &mut Owed,
    ) {
        if let Some(hang) = &line.hang {
            if let Some(staged) = staged {
                self.fail_staged_behind(staged, &hang.error, owed);
            }
            return;
        }
        if let Some(staged) = staged {
            let batch = self.rebuilt(staged);
            self.launch(batch, line, mempack, owed);
        }
        // Fetches held for the landing that failed: they run now, or wait
        // again for the push just launched.
        let held = std::mem::take(&mut line.held_syncs);
        if !held.is_empty() {
            self.take(held, line, mempack, owed);
        }
    }

    /// `staged`'s jobs built anew on the published tip, as a first attempt.
    fn rebuilt(&self, staged: Batch) -> Batch {
        let mut batch = Batch::new(self.published_tip(), 1, Instant::now());
        batch.sync_replies = staged.sync_replies;
        batch.sync_result = staged.sync_result;
        batch.after_sync = staged.after_sync;
        self.extend(&mut batch, staged.jobs, None);
        batch
    }

    /// Takes the batch built on top of the push in flight, dropping its
    /// objects (its results are void).
    fn drop_staged(&self, line: &mut Line, mempack: Option<&Mempack<'_>>) -> Option<Batch> {
        let staged = line.staged.take();
        if staged.is_some() {
            if let Some(mempack) = mempack {
                let _ = mempack.reset();
            }
        }
        staged
    }

    /// Answers every job of a finished batch, and the fetches it carried;
    /// notes in `line` a remote that did not answer in time.
    pub(super) fn answer(&self, batch: Batch, line: &mut Line, owed: &mut Owed) {
        if line.hang.is_none() {
            line.hang = Hang::shown_by(&batch.results, &batch.sync_result);
        }
        self.stats.count_releases(&batch.results);
        for (job, result) in batch.jobs.into_iter().zip(batch.results) {
            match job.reply {
                // A caller that went away no longer needs the answer.
                Some(reply) => {
                    let _ = reply.send(result);
                }
                None => self.derived_done(&job, result, owed),
            }
        }
        if batch.after_sync && batch.sync_result.is_ok() && owed.is_empty() {
            // Every build up to here had its auto-releases: a restart need
            // not look further back than this.
            if let Err(e) = self.mirror.mark_caught_up(self.published_tip()) {
                tracing::warn!(error = %chain(&e), "cannot record the caught-up tip");
            }
        }
        for reply in batch.sync_replies {
            let _ = reply.send(batch.sync_result.clone());
        }
    }

    pub(super) fn published_tip(&self) -> Oid {
        self.shared.read().expect("writer lock not poisoned").tip
    }
}
