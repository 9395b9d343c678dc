//! When the persisted index is written: once the server is ready (when what
//! it loaded was older than the tip), then every minute while the published
//! tip moves, and at shutdown. Encoding happens under the read lock of the
//! published state (tens of milliseconds on a long history; the writer
//! waits only to publish), writing the file after it is released.
//!
//! It owns the schedule and the "last saved" bookkeeping; the file format
//! and its atomic replacement are `repo::snapshot`'s.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use git2::Oid;

use crate::engine::published::SharedState;
use crate::repo::snapshot::{self, Origin};

/// How often the index is saved while the tip moves.
pub(crate) const SAVE_EVERY: Duration = Duration::from_secs(60);

/// Saves snapshots of the published index.
pub(crate) struct SnapshotKeeper {
    data_dir: PathBuf,
    origin: Origin,
    shared: SharedState,
    durable: bool,
    /// The tip of the last snapshot written or loaded.
    saved: Mutex<Option<Oid>>,
}

impl SnapshotKeeper {
    /// A keeper for the data dir's snapshot; `saved` is the tip of the one
    /// loaded at start, if any.
    pub(crate) fn new(
        data_dir: PathBuf,
        origin: Origin,
        shared: SharedState,
        durable: bool,
        saved: Option<Oid>,
    ) -> Self {
        SnapshotKeeper {
            data_dir,
            origin,
            shared,
            durable,
            saved: Mutex::new(saved),
        }
    }

    /// Writes a snapshot if the published tip moved since the last one.
    /// Failures are logged: a missing snapshot only makes the next start
    /// slower.
    pub(crate) fn save_if_moved(&self) {
        let mut saved = self.saved.lock().expect("snapshot lock not poisoned");
        let began = Instant::now();
        let (tip, bytes) = {
            let published = self.shared.read().expect("state lock not poisoned");
            if *saved == Some(published.tip) {
                return;
            }
            let bytes = snapshot::encode_file(&self.origin, published.tip, &published.index);
            (published.tip, bytes)
        };
        let encoded = began.elapsed();
        match snapshot::write(&self.data_dir, &bytes, self.durable) {
            Ok(len) => {
                *saved = Some(tip);
                tracing::info!(
                    %tip,
                    bytes = len,
                    encode_ms = encoded.as_millis() as u64,
                    elapsed_ms = began.elapsed().as_millis() as u64,
                    "index snapshot saved"
                );
            }
            Err(e) => tracing::warn!(
                path = %snapshot::path_in(&self.data_dir).display(),
                error = %e,
                "cannot save the index snapshot; the next start reads more history"
            ),
        }
    }
}

/// Saves every [`SAVE_EVERY`] until told to stop.
pub(crate) async fn keep_saving(
    keeper: std::sync::Arc<SnapshotKeeper>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(SAVE_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let keeper = keeper.clone();
                let _ = tokio::task::spawn_blocking(move || keeper.save_if_moved()).await;
            }
            _ = stop.changed() => return,
        }
    }
}
