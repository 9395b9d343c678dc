//! The single writer: one thread owns the mirror and applies every write.
//! Requests arrive on a bounded queue; everything queued when the writer
//! wakes becomes one batch of consecutive commits and one compare-and-swap
//! push (group commit). When the push is rejected the writer fetches and
//! replays the batch's intents on the new tip, a bounded number of times.
//! Callers are answered only after the push that carries their commit, and
//! the published index and tip are updated before that answer.
//!
//! Here: the queue's API (`WriterHandle`) and the thread's start. The loop
//! is `batch`, publishing (push, replay, the one publish point) `publish`,
//! the counters `stats`, and the auto-releases still owed `owed`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::domain::{FlowError, Settings};
use crate::engine::events::EventBus;
use crate::engine::published::SharedState;
use crate::flows::{WriteDone, WriteRequest};
use crate::repo::mirror::Mirror;

mod batch;
mod owed;
mod publish;
pub(crate) mod stats;

use batch::Writer;
pub(crate) use stats::WriterStats;

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
    /// Who commits, and the key that signs every commit.
    pub commits: crate::repo::commits::CommitIdentity,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            queue_capacity: 1024,
            max_batch: 256,
            max_push_attempts: 8,
            packs_between_merges: 32,
            batch_timeout: Duration::from_secs(60),
            commits: Default::default(),
        }
    }
}

/// The answer to one write.
type WriteResult = Result<WriteDone, FlowError>;

enum Command {
    /// A write from a caller, answered after its push.
    Write {
        // Boxed: a build upload's request is large beside a sync.
        request: Box<WriteRequest>,
        reply: oneshot::Sender<WriteResult>,
        deadline: Option<Instant>,
        queued: Instant,
    },
    /// Fetch the remote, publish what others pushed, and run the
    /// auto-releases due for new builds (and for `builds`, as
    /// `(service, branch)`).
    Sync {
        builds: Vec<NewBuild>,
        reply: Option<oneshot::Sender<Result<(), FlowError>>>,
        queued: Instant,
    },
}

impl Command {
    /// When it was queued.
    fn queued(&self) -> Instant {
        match self {
            Command::Write { queued, .. } | Command::Sync { queued, .. } => *queued,
        }
    }
}

/// A build that arrived: `(service, branch)`.
pub(crate) type NewBuild = (String, String);

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
pub(crate) struct WriterHandle {
    tx: mpsc::Sender<Command>,
    stats: Arc<WriterStats>,
}

impl WriterHandle {
    /// Queues a write and waits until it is on the remote (or failed).
    /// A write still queued at `deadline`, or whose caller stopped waiting,
    /// is not applied.
    pub(crate) async fn submit(
        &self,
        request: WriteRequest,
        deadline: Option<Instant>,
    ) -> Result<WriteDone, FlowError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Write {
            request: Box::new(request),
            reply,
            deadline,
            queued: Instant::now(),
        })?;
        answer.await.map_err(|_| FlowError::WriterStopped)?
    }

    /// Asks for a fetch and the auto-releases it makes due, without
    /// waiting (poll, webhook). A full queue drops the request: the next
    /// one will do.
    pub(crate) fn request_sync(&self, builds: Vec<NewBuild>) -> Result<(), FlowError> {
        self.send(Command::Sync {
            builds,
            reply: None,
            queued: Instant::now(),
        })
    }

    /// Fetches and runs the auto-releases due, and waits until they are
    /// pushed.
    pub(crate) async fn sync(&self, builds: Vec<NewBuild>) -> Result<(), FlowError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Sync {
            builds,
            reply: Some(reply),
            queued: Instant::now(),
        })?;
        answer.await.map_err(|_| FlowError::WriterStopped)?
    }

    /// Writes waiting in the queue.
    pub(crate) fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    fn send(&self, command: Command) -> Result<(), FlowError> {
        self.tx.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => FlowError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => FlowError::WriterStopped,
        })
    }

    /// The writer's counters, shared.
    pub(crate) fn stats_arc(&self) -> Arc<WriterStats> {
        self.stats.clone()
    }
}

/// Starts the writer thread. It stops when every handle is dropped, after
/// finishing the batch in flight.
pub(crate) fn spawn(
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
        remote_hung: std::cell::RefCell::new(None),
        carried: std::cell::RefCell::new(None),
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
