//! One sender of notifications across replicas. Every replica journals
//! every event (they all read the same history and the same deployment
//! record), but only the holder of a lease sends. The lease is a ref on the
//! config repository's remote (`refs/release-manager/notifications-lease`,
//! outside every branch), replaced compare-and-swap: the holder renews it
//! every third of `--notifications-lease`, and writes with each renewal how
//! far each destination got, in places every replica's journal shares (the
//! cursor of the last commit event, the place of the last report).
//!
//! A replica takes the lease when there is none, when its holder released
//! it (a graceful stop), or when it has not changed for a whole lease
//! period on the taker's own clock (its holder died; no clocks are
//! compared). Until then it follows: its destinations move their cursors
//! over what the sender reported delivered, so that when it takes over it
//! sends what the sender had not, and nothing twice but what the sender
//! delivered after its last renewal. A holder that cannot renew for a
//! whole period stops sending.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use git2::Oid;
use serde::{Deserialize, Serialize};

use crate::repo::mirror::PushOutcome;
use crate::repo::shared_ref::{self, SharedRef};
use crate::repo::RepoError;

/// How far one destination got: the cursor of the last commit event and
/// the place of the last report it has (delivered, given up, or not
/// wanted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Places {
    /// `<commit>[.<n>]`.
    pub(crate) commit: String,
    /// `-`, `<record-commit>[.<k>]`, or empty (unknown).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) report: String,
}

/// What the lease holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Held {
    /// Who sends.
    holder: String,
    /// When it last renewed (for people reading it; never compared).
    renewed_at: String,
    /// The holder stopped and handed the lease over.
    #[serde(default)]
    released: bool,
    /// Destination → how far it got.
    #[serde(default)]
    delivered: BTreeMap<String, Places>,
}

/// What this replica does.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Gate {
    /// It holds the lease: it sends.
    pub(crate) sending: bool,
    /// How far each destination got as the lease last said (the sender's
    /// word): a follower moves its cursors over it, a new sender skips it.
    pub(crate) delivered: Arc<BTreeMap<String, Places>>,
}

/// The lease's ref name under `refs/release-manager/`.
const REF: &str = "notifications-lease";

/// The lease on the remote.
pub(crate) struct Lease {
    shared: SharedRef,
    /// This replica, as the lease names it.
    holder: String,
    /// How long a lease lasts without renewal.
    period: Duration,
}

impl Lease {
    /// The lease of the remote reached through the mirror at `mirror`.
    pub(crate) fn open(
        mirror: &std::path::Path,
        location: crate::repo::remote::RemoteLocation,
        credentials: crate::repo::remote::GitCredentials,
        period: Duration,
    ) -> Result<Lease, RepoError> {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "replica".to_string());
        Ok(Lease {
            shared: SharedRef::open(mirror, location, credentials, REF)?,
            holder: format!(
                "{host}/{}/{:08x}",
                std::process::id(),
                rand::random::<u32>()
            ),
            period,
        })
    }

    fn read(&self) -> Result<Option<(Oid, Held)>, RepoError> {
        let Some(at) = self.shared.fetch()? else {
            return Ok(None);
        };
        let held = self.shared.with_mirror(|repo| {
            let text = repo
                .find_commit(at)
                .and_then(|c| c.tree())
                .ok()
                .and_then(|tree| {
                    crate::repo::tree::blob_at(repo, &tree, "lease.json")
                        .ok()
                        .flatten()
                });
            text.and_then(|bytes| serde_json::from_slice::<Held>(&bytes).ok())
                .unwrap_or_default()
        });
        Ok(Some((at, held)))
    }

    /// Replaces the lease `expected` with `held`; whether it went through.
    fn write(&self, held: &Held, expected: Option<Oid>) -> Result<bool, RepoError> {
        let commit = self.shared.with_mirror(|repo| {
            let git = RepoError::git("write the notification lease");
            let mut bytes = serde_json::to_vec_pretty(held).expect("a lease serialises");
            bytes.push(b'\n');
            let blob = repo.blob(&bytes).map_err(&git)?;
            let mut builder = repo.treebuilder(None).map_err(&git)?;
            builder
                .insert("lease.json", blob, git2::FileMode::Blob.into())
                .map_err(&git)?;
            let tree = builder.write().map_err(&git)?;
            // No parent: a lease holds one current value, its renewals
            // leave no history behind.
            shared_ref::commit(
                repo,
                tree,
                None,
                &format!("notification lease: {}", held.holder),
            )
        })?;
        Ok(self.shared.publish(commit, expected, true)? == PushOutcome::Pushed)
    }
}

/// Keeps the lease (or follows its holder) until told to stop, saying on
/// `gate` what this replica does; `progress` says how far this replica's
/// destinations got, for its renewals. At a stop, a holder hands the lease
/// over.
pub(crate) async fn keep(
    lease: Lease,
    gate: tokio::sync::watch::Sender<Gate>,
    progress: impl Fn() -> BTreeMap<String, Places> + Send + 'static,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let lease = Arc::new(lease);
    let every = (lease.period / 3).max(Duration::from_millis(50));
    // The lease's value as last read, and since when (this clock) it has
    // not changed.
    let mut seen: Option<(Option<Oid>, Instant)> = None;
    let mut last_renewal: Option<Instant> = None;
    loop {
        let sending = gate.borrow().sending;
        let delivered = progress();
        let step = {
            let lease = lease.clone();
            let seen_value = seen.map(|(value, since)| (value, since.elapsed()));
            tokio::task::spawn_blocking(move || step(&lease, sending, delivered, seen_value)).await
        };
        match step {
            Ok(Ok(outcome)) => {
                if seen.is_none_or(|(value, _)| value != outcome.value) {
                    seen = Some((outcome.value, Instant::now()));
                }
                if outcome.sending {
                    last_renewal = Some(Instant::now());
                }
                let next = Gate {
                    sending: outcome.sending,
                    delivered: Arc::new(outcome.delivered),
                };
                if outcome.sending != sending {
                    if outcome.sending {
                        tracing::info!(holder = %lease.holder, "this replica sends the notifications");
                    } else {
                        tracing::info!(holder = %outcome.holder, "another replica sends the notifications");
                    }
                }
                gate.send_if_modified(|current| {
                    let changed = *current != next;
                    *current = next;
                    changed
                });
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %crate::domain::chain(&e), "cannot read or renew the notification lease");
                // A sender that cannot prove it holds the lease stops
                // before another replica may take it.
                if sending && last_renewal.is_none_or(|at| at.elapsed() >= lease.period) {
                    tracing::warn!("stopped sending notifications: the lease could not be renewed");
                    gate.send_modify(|gate| gate.sending = false);
                }
            }
            Err(_) => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => {
                if gate.borrow().sending {
                    let (lease, delivered) = (lease.clone(), progress());
                    let released = tokio::task::spawn_blocking(move || release(&lease, delivered)).await;
                    if let Ok(Err(e)) = released {
                        tracing::warn!(error = %crate::domain::chain(&e), "cannot hand the notification lease over; another replica takes it when it expires");
                    }
                }
                return;
            }
        }
    }
}

/// What one look at the lease found.
struct Outcome {
    /// The lease's value now.
    value: Option<Oid>,
    /// Whether this replica holds it.
    sending: bool,
    /// Its holder.
    holder: String,
    /// How far the destinations got, as it says.
    delivered: BTreeMap<String, Places>,
}

/// One look at the lease: renew it, take it, or follow it. `seen` is the
/// value last read and how long it has not changed.
fn step(
    lease: &Lease,
    sending: bool,
    delivered: BTreeMap<String, Places>,
    seen: Option<(Option<Oid>, Duration)>,
) -> Result<Outcome, RepoError> {
    let current = lease.read()?;
    let (value, held) = match &current {
        Some((at, held)) => (Some(*at), held.clone()),
        None => (None, Held::default()),
    };
    let ours = held.holder == lease.holder && !held.released;
    let unchanged_for = match seen {
        Some((seen_value, elapsed)) if seen_value == value => elapsed,
        _ => Duration::ZERO,
    };
    let free = current.is_none() || held.released || unchanged_for >= lease.period;
    if ours || free {
        let next = Held {
            holder: lease.holder.clone(),
            renewed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            released: false,
            // A sender reports its own progress; a new one starts from what
            // the last sender reported.
            delivered: if ours && sending {
                delivered
            } else {
                held.delivered.clone()
            },
        };
        if lease.write(&next, value)? {
            let value = lease.shared.known();
            return Ok(Outcome {
                value,
                sending: true,
                holder: next.holder,
                delivered: next.delivered,
            });
        }
        // Someone else wrote first: follow whoever it is, at the next look.
        return Ok(Outcome {
            value,
            sending: false,
            holder: held.holder,
            delivered: held.delivered,
        });
    }
    Ok(Outcome {
        value,
        sending: false,
        holder: held.holder,
        delivered: held.delivered,
    })
}

/// Hands the lease over at a stop: released, with how far every
/// destination got.
fn release(lease: &Lease, delivered: BTreeMap<String, Places>) -> Result<(), RepoError> {
    let Some((at, held)) = lease.read()? else {
        return Ok(());
    };
    if held.holder != lease.holder {
        return Ok(());
    }
    let released = Held {
        holder: lease.holder.clone(),
        renewed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        released: true,
        delivered,
    };
    if lease.write(&released, Some(at))? {
        tracing::info!("notification lease handed over");
    }
    Ok(())
}
