//! A remote that did not answer in time. The writes queued behind the
//! push (or fetch) it left hanging get the same answer at once (those
//! built on top of that push, fetches held meanwhile, and what still
//! waits in the queue): they would
//! meet the same remote, and each would wait another `--remote-timeout`,
//! so a write could wait twice that (racing its caller's own deadline).
//! Writes that arrive once that answer was given try the remote again.

use std::time::Instant;

use tokio::sync::mpsc;

use crate::domain::FlowError;

use super::batch::Writer;
use super::flight::{Batch, Line};
use super::owed::Owed;
use super::{Command, Job, WriteResult};

/// The answer a remote that did not answer in time gave a batch, and when
/// it was given.
pub(super) struct Hang {
    pub(super) error: FlowError,
    known: Instant,
}

impl Hang {
    /// The hang a finished batch's answers show, if any.
    pub(super) fn shown_by(
        results: &[WriteResult],
        sync_result: &Result<(), FlowError>,
    ) -> Option<Hang> {
        let errors = results.iter().filter_map(|r| r.as_ref().err());
        errors
            .chain(sync_result.as_ref().err())
            .find(|error| matches!(error, FlowError::RemoteUnavailable(cause) if cause.timed_out()))
            .map(|error| Hang {
                error: error.clone(),
                known: Instant::now(),
            })
    }
}

impl Writer {
    /// Answers what was queued before the hang noted in `line` was known:
    /// the fetches held meanwhile, and the commands waiting in the queue.
    /// The first command queued after it is kept for the next batch.
    pub(super) fn fail_fast_behind_a_hung_remote(
        &self,
        rx: &mut mpsc::Receiver<Command>,
        line: &mut Line,
        owed: &mut Owed,
    ) {
        let Some(Hang { error, known }) = line.hang.take() else {
            return;
        };
        let mut behind = std::mem::take(&mut line.held_syncs);
        let mut earlier = line.carried.take();
        while let Some(command) = earlier.take().or_else(|| rx.try_recv().ok()) {
            if command.queued() >= known {
                // Sent once the failure was answered: it tries again.
                line.carried = Some(command);
                break;
            }
            behind.push(command);
        }
        let answered = behind.len();
        for command in behind {
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
                    self.answer_behind(job, &error, owed);
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

    /// Answers the batch built on top of a push the remote did not answer
    /// in time with that answer, instead of building it anew.
    pub(super) fn fail_staged_behind(&self, staged: Batch, error: &FlowError, owed: &mut Owed) {
        for (job, result) in staged.jobs.into_iter().zip(staged.results) {
            match (result, job.reply) {
                // Skipped (and counted) while the batch was built.
                (skipped @ Err(FlowError::DeadlineExceeded), Some(reply)) => {
                    let _ = reply.send(skipped);
                }
                (_, reply) => self.answer_behind(Job { reply, ..job }, error, owed),
            }
        }
        for reply in staged.sync_replies {
            let _ = reply.send(Err(error.clone()));
        }
    }

    /// One write queued behind a hang: answered with it, or skipped if its
    /// caller stopped waiting; a derived one stays owed.
    fn answer_behind(&self, mut job: Job, error: &FlowError, owed: &mut Owed) {
        if job.abandoned() {
            self.stats
                .abandoned
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        } else if let Some(reply) = job.reply.take() {
            let _ = reply.send(Err(error.clone()));
        } else {
            self.derived_done(&job, Err(error.clone()), owed);
        }
    }
}
