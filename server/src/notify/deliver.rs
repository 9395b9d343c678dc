//! One destination's delivery: reads the journal after its cursor, sends
//! each entry it wants, and moves the cursor (a file in the data dir) only
//! once the receiver answered 2xx. A failed attempt is retried with
//! exponential backoff and jitter, never sooner than a `Retry-After` the
//! receiver asked for; an entry older than `give_up_after` is given up
//! (logged, counted), as is one the receiver refuses for good (a 4xx other
//! than 408 and 429). Every destination has its own task, so a slow or
//! dead receiver delays nobody else, and the writer never waits for any.
//!
//! Only the replica holding the notification lease sends (`lease`); the
//! others follow, moving their cursors over what the sender reported
//! delivered.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::config::{Delivery, Destination, Format};
use super::journal::{Entry, Journal};
use super::lease::{Gate, Places};

/// Delivery counters, for metrics.
pub(crate) struct Stats {
    /// (destination, outcome) → count; outcomes: `delivered`, `failed`
    /// (an attempt), `gave_up`.
    outcomes: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// destination → the last entry it is done with (delivered, given up
    /// or not wanted), for the pending gauge.
    done: Mutex<BTreeMap<String, u64>>,
    /// destination → acknowledged seq, as its cursor file has it.
    acked: Mutex<BTreeMap<String, u64>>,
    /// What the gauge counts against: the journal's last entry, read when
    /// the gauge is.
    journal: Arc<Journal>,
    /// Whether this replica sends (holds the notification lease).
    sending: std::sync::atomic::AtomicBool,
}

impl Stats {
    /// Counters of the destinations of `journal`.
    pub(crate) fn new(journal: Arc<Journal>) -> Self {
        Stats {
            outcomes: Mutex::default(),
            done: Mutex::default(),
            acked: Mutex::default(),
            journal,
            sending: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Notes that a destination is done with the entries up to `seq`.
    fn handled(&self, destination: &str, seq: u64) {
        self.done
            .lock()
            .expect("stats lock")
            .insert(destination.to_string(), seq);
    }

    fn count(&self, destination: &str, outcome: &'static str) {
        *self
            .outcomes
            .lock()
            .expect("stats lock")
            .entry((destination.to_string(), outcome))
            .or_default() += 1;
    }

    /// Counts by destination and outcome.
    pub(crate) fn outcomes(&self) -> Vec<(String, &'static str, u64)> {
        self.outcomes
            .lock()
            .expect("stats lock")
            .iter()
            .map(|((d, o), n)| (d.clone(), *o, *n))
            .collect()
    }

    /// Entries waiting, by destination: counted now, against the journal
    /// as it is now (entries that came while a destination was stuck on
    /// one count too).
    pub(crate) fn pending(&self) -> Vec<(String, u64)> {
        let last = self.journal.last_seq();
        self.done
            .lock()
            .expect("stats lock")
            .iter()
            .map(|(d, done)| (d.clone(), last.saturating_sub(*done)))
            .collect()
    }

    /// Records how far a destination got (before its task starts, too).
    pub(crate) fn register(&self, destination: &str, acked: u64) {
        self.acked
            .lock()
            .expect("stats lock")
            .insert(destination.to_string(), acked);
        let mut done = self.done.lock().expect("stats lock");
        let seen = done.entry(destination.to_string()).or_default();
        *seen = (*seen).max(acked);
    }

    /// How far each destination got (acknowledged seq).
    pub(crate) fn acked(&self) -> BTreeMap<String, u64> {
        self.acked.lock().expect("stats lock").clone()
    }

    /// Whether this replica sends the notifications.
    pub(crate) fn sending(&self) -> bool {
        self.sending.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Says whether this replica sends.
    pub(crate) fn set_sending(&self, sending: bool) {
        self.sending
            .store(sending, std::sync::atomic::Ordering::Relaxed);
    }

    /// What every destination has: the journal may drop up to here.
    fn everyone_has(&self) -> u64 {
        self.acked
            .lock()
            .expect("stats lock")
            .values()
            .copied()
            .min()
            .unwrap_or(0)
    }
}

/// The cursor file of a destination.
fn cursor_path(dir: &std::path::Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.acked"))
}

/// Reads a destination's cursor. A destination without one starts at the
/// journal's end (it gets what happens from now on); one whose cursor file
/// is unreadable gets everything the journal holds (again, maybe).
pub(crate) fn load_cursor(dir: &std::path::Path, name: &str, journal: &Journal) -> u64 {
    let path = cursor_path(dir, name);
    match std::fs::read_to_string(&path) {
        // A journal that lost its last lines (a crash before they reached
        // the disk) numbers new entries from where it ends.
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(seq) => seq.min(journal.last_seq()),
            Err(_) => {
                tracing::warn!(path = %path.display(), "unreadable notification cursor; sending what the journal holds");
                0
            }
        },
        Err(_) => {
            let seq = journal.last_seq();
            save_cursor(&path, seq);
            seq
        }
    }
}

fn save_cursor(path: &std::path::Path, seq: u64) {
    use std::io::Write;
    let temporary = path.with_extension("acked.tmp");
    let saved = std::fs::File::create(&temporary)
        .and_then(|mut file| {
            file.write_all(format!("{seq}\n").as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(e) = saved {
        tracing::warn!(path = %path.display(), error = %e, "cannot save a notification cursor");
    }
}

/// Everything one destination's task needs.
pub(crate) struct Deliverer {
    /// Where to.
    pub(crate) destination: Destination,
    /// Retry bounds.
    pub(crate) delivery: Delivery,
    /// What to send.
    pub(crate) journal: Arc<Journal>,
    /// Where cursors are kept.
    pub(crate) dir: PathBuf,
    /// The HTTP client (shared).
    pub(crate) client: reqwest::Client,
    /// Counters.
    pub(crate) stats: Arc<Stats>,
    /// Whether this replica sends, and how far the sender got.
    pub(crate) gate: tokio::sync::watch::Receiver<Gate>,
    /// Whether an entry is among what `Places` say was delivered (`None`:
    /// cannot tell yet).
    pub(crate) covered: Covered,
}

/// Whether an entry is among what places say was delivered (`None`: the
/// mirror cannot tell yet).
pub(crate) type Covered = Arc<dyn Fn(&Entry, &Places) -> Option<bool> + Send + Sync>;

enum Sent {
    Delivered,
    GaveUp,
    Stopping,
    /// This replica no longer holds the lease.
    Paused,
}

impl Deliverer {
    /// Delivers from `acked` on, until told to stop; follows while
    /// another replica sends.
    pub(crate) async fn run(
        mut self,
        mut acked: u64,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let name = self.destination.name.clone();
        let mut changes = self.journal.subscribe();
        loop {
            let gate = self.gate.borrow_and_update().clone();
            let before = acked;
            if !gate.sending {
                acked = self.follow(acked, &gate).await;
                if acked != before {
                    self.stats.handled(&name, acked);
                    self.save(acked).await;
                    continue;
                }
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return },
                    changed = self.gate.changed() => if changed.is_err() { return },
                    _ = stop.changed() => return,
                }
                continue;
            }
            let batch = self.journal.after(acked, 64);
            if batch.is_empty() {
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return },
                    changed = self.gate.changed() => if changed.is_err() { return },
                    _ = stop.changed() => return,
                }
                continue;
            }
            // What the last sender reported delivered is not sent again.
            let skipped = self.covered_in(&batch, gate.delivered.get(&name)).await;
            let mut stopping = false;
            for (entry, skip) in batch.into_iter().zip(skipped) {
                let environment =
                    (!entry.environment.is_empty()).then_some(entry.environment.as_str());
                if !skip
                    && self
                        .destination
                        .wants(entry.kind, &entry.service, environment)
                {
                    // What was given up is logged and counted; moving on
                    // is the point.
                    match self.send_until_done(&entry, &mut stop).await {
                        Sent::Stopping => {
                            stopping = true;
                            break;
                        }
                        Sent::Paused => break,
                        Sent::Delivered | Sent::GaveUp => {}
                    }
                }
                acked = entry.seq;
                self.stats.handled(&name, acked);
            }
            if acked != before {
                self.save(acked).await;
            }
            if stopping {
                return;
            }
        }
    }

    /// Moves the cursor over what the sender reported delivered (a prefix
    /// of this journal); the new cursor.
    async fn follow(&self, acked: u64, gate: &Gate) -> u64 {
        let Some(places) = gate.delivered.get(&self.destination.name) else {
            return acked;
        };
        let batch = self.journal.after(acked, 1024);
        let covered = self.covered_in(&batch, Some(places)).await;
        batch
            .iter()
            .zip(covered)
            .take_while(|(_, covered)| *covered)
            .last()
            .map_or(acked, |(entry, _)| entry.seq)
    }

    /// For each entry of `batch`, whether `places` cover it (`false` when
    /// they cannot tell yet, or there are none).
    async fn covered_in(&self, batch: &[Entry], places: Option<&Places>) -> Vec<bool> {
        let Some(places) = places.cloned() else {
            return vec![false; batch.len()];
        };
        let (covered, batch) = (self.covered.clone(), batch.to_vec());
        let count = batch.len();
        tokio::task::spawn_blocking(move || {
            batch
                .iter()
                .map(|entry| covered(entry, &places) == Some(true))
                .collect()
        })
        .await
        .unwrap_or_else(|_| vec![false; count])
    }

    /// Records the cursor (once a batch, off the async threads: the file is
    /// synced, and the journal rewritten at times).
    async fn save(&self, acked: u64) {
        let name = &self.destination.name;
        self.stats.register(name, acked);
        let (journal, stats, cursor) = (
            self.journal.clone(),
            self.stats.clone(),
            cursor_path(&self.dir, name),
        );
        let _ = tokio::task::spawn_blocking(move || {
            save_cursor(&cursor, acked);
            journal.compact(stats.everyone_has());
        })
        .await;
    }

    async fn send_until_done(
        &mut self,
        entry: &Entry,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Sent {
        let name = &self.destination.name;
        let mut wait = self.delivery.first_retry;
        let mut attempts = 0u32;
        loop {
            let age = chrono::Utc::now()
                .timestamp()
                .saturating_sub(entry.time)
                .max(0) as u64;
            if age > self.delivery.give_up_after.as_secs() {
                tracing::warn!(destination = %name, id = %entry.id, attempts, "notification given up: older than delivery.give_up_after");
                self.stats.count(name, "gave_up");
                return Sent::GaveUp;
            }
            if !self.gate.borrow().sending {
                return Sent::Paused;
            }
            attempts += 1;
            // A receiver that hangs must not hold up a shutdown.
            let sent = tokio::select! {
                sent = self.send(entry) => sent,
                _ = stop.changed() => return Sent::Stopping,
            };
            match sent {
                Ok(()) => {
                    self.stats.count(name, "delivered");
                    if attempts > 1 {
                        tracing::info!(destination = %name, id = %entry.id, attempts, "notification delivered after retries");
                    }
                    return Sent::Delivered;
                }
                Err(Failure::Refused(status)) => {
                    tracing::error!(destination = %name, id = %entry.id, %status, "notification refused by the receiver; not retried");
                    self.stats.count(name, "gave_up");
                    return Sent::GaveUp;
                }
                Err(Failure::Retry(why, retry_after)) => {
                    self.stats.count(name, "failed");
                    if attempts == 1 {
                        tracing::warn!(destination = %name, id = %entry.id, error = %why, "notification not delivered; retrying");
                    } else {
                        tracing::debug!(destination = %name, id = %entry.id, attempts, error = %why, "notification retry failed");
                    }
                    // Never sooner than the receiver asked.
                    let jittered = wait.mul_f64(0.5 + rand::random::<f64>());
                    let pause = retry_after.map_or(jittered, |asked| asked.max(jittered));
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = stop.changed() => return Sent::Stopping,
                    }
                    wait = wait.saturating_mul(2).min(self.delivery.longest_retry);
                }
            }
        }
    }

    async fn send(&self, entry: &Entry) -> Result<(), Failure> {
        let (body, content_type, signature) = match &self.destination.format {
            Format::Slack => (
                super::message::slack(entry).to_string(),
                "application/json",
                None,
            ),
            Format::CloudEvents { secret } => {
                let body = super::message::cloudevent(entry).to_string();
                let signature = secret.as_ref().map(|secret| {
                    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
                        .expect("HMAC takes keys of any length");
                    mac.update(body.as_bytes());
                    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
                });
                (
                    body,
                    "application/cloudevents+json; charset=utf-8",
                    signature,
                )
            }
        };
        let mut request = self
            .client
            .post(&self.destination.url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        if let Some(signature) = signature {
            request = request.header("X-Signature", signature);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Failure::Retry(e.to_string(), None))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_client_error()
            && status != reqwest::StatusCode::REQUEST_TIMEOUT
            && status != reqwest::StatusCode::TOO_MANY_REQUESTS
        {
            Err(Failure::Refused(status))
        } else {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(retry_after);
            Err(Failure::Retry(
                format!("the receiver answered {status}"),
                retry_after,
            ))
        }
    }
}

/// Longest `Retry-After` honoured: a receiver asking for more is tried
/// again after this (its entry is given up at `give_up_after` anyway).
const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A `Retry-After` value (seconds, or an HTTP date) as a wait from now.
fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(LONGEST_RETRY_AFTER))
}

enum Failure {
    /// Worth trying again (no sooner than the wait the receiver asked for).
    Retry(String, Option<Duration>),
    /// The receiver will never take it.
    Refused(reqwest::StatusCode),
}

/// The client every destination shares: bounded per request, so a receiver
/// that hangs only costs its own destination time.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("release-manager/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("an HTTP client with system TLS")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u64) -> Entry {
        Entry {
            seq: 0,
            id: format!("id-{n}"),
            kind: super::super::config::Kind::Release,
            time: 1,
            cursor: String::new(),
            report_cursor: String::new(),
            service: "shop".into(),
            environment: "dev".into(),
            namespace: String::new(),
            artifact_id: "a".into(),
            branch: String::new(),
            author: String::new(),
            actor: String::new(),
            commit: String::new(),
            build_url: String::new(),
            source_url: String::new(),
            detail: String::new(),
        }
    }

    #[test]
    fn the_pending_gauge_counts_what_arrived_while_a_destination_was_stuck() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(Journal::open(dir.path(), "start", "").unwrap());
        let stats = Stats::new(journal.clone());
        stats.register("hook", 0);
        journal.append(entry(1)).unwrap();
        assert_eq!(stats.pending(), [("hook".to_string(), 1)]);
        // The destination is stuck on the first while nine more come.
        for n in 2..=10 {
            journal.append(entry(n)).unwrap();
        }
        assert_eq!(stats.pending(), [("hook".to_string(), 10)]);
        stats.handled("hook", 4);
        assert_eq!(stats.pending(), [("hook".to_string(), 6)]);
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO),
            "a date past"
        );
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(90)).to_rfc2822();
        let wait = retry_after(&soon).unwrap();
        assert!(
            wait > Duration::from_secs(80) && wait <= Duration::from_secs(90),
            "{wait:?}"
        );
        assert_eq!(retry_after("999999"), Some(LONGEST_RETRY_AFTER));
        assert_eq!(retry_after("soon"), None);
    }
}
