//! One destination's delivery: reads the journal after its cursor, sends
//! each entry it wants, and moves the cursor (a file in the data dir) only
//! once the receiver answered 2xx. A failed attempt is retried with
//! exponential backoff and jitter; an entry older than `give_up_after` is
//! given up (logged, counted), as is one the receiver refuses for good (a
//! 4xx other than 408 and 429). Every destination has its own task, so a
//! slow or dead receiver delays nobody else, and the writer never waits
//! for any.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::config::{Delivery, Destination, Format};
use super::journal::{Entry, Journal};

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
}

impl Stats {
    /// Counters of the destinations of `journal`.
    pub(crate) fn new(journal: Arc<Journal>) -> Self {
        Stats {
            outcomes: Mutex::default(),
            done: Mutex::default(),
            acked: Mutex::default(),
            journal,
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
}

enum Sent {
    Delivered,
    GaveUp,
    Stopping,
}

impl Deliverer {
    /// Delivers from `acked` on, until told to stop.
    pub(crate) async fn run(self, mut acked: u64, mut stop: tokio::sync::watch::Receiver<bool>) {
        let name = self.destination.name.clone();
        let cursor = cursor_path(&self.dir, &name);
        let mut changes = self.journal.subscribe();
        loop {
            let batch = self.journal.after(acked, 64);
            if batch.is_empty() {
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return },
                    _ = stop.changed() => return,
                }
                continue;
            }
            let before = acked;
            let mut stopping = false;
            for entry in batch {
                let environment =
                    (!entry.environment.is_empty()).then_some(entry.environment.as_str());
                if self
                    .destination
                    .wants(entry.kind, &entry.service, environment)
                {
                    // What was given up is logged and counted; moving on
                    // is the point.
                    if let Sent::Stopping = self.send_until_done(&entry, &mut stop).await {
                        stopping = true;
                        break;
                    }
                }
                acked = entry.seq;
                self.stats.handled(&name, acked);
            }
            if acked != before {
                // Once a batch, off the async threads: the cursor file is
                // synced, and the journal rewritten at times.
                self.stats.register(&name, acked);
                let (journal, stats, cursor) =
                    (self.journal.clone(), self.stats.clone(), cursor.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    save_cursor(&cursor, acked);
                    journal.compact(stats.everyone_has());
                })
                .await;
            }
            if stopping {
                return;
            }
        }
    }

    async fn send_until_done(
        &self,
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
                Err(Failure::Retry(why)) => {
                    self.stats.count(name, "failed");
                    if attempts == 1 {
                        tracing::warn!(destination = %name, id = %entry.id, error = %why, "notification not delivered; retrying");
                    } else {
                        tracing::debug!(destination = %name, id = %entry.id, attempts, error = %why, "notification retry failed");
                    }
                }
            }
            let jittered = wait.mul_f64(0.5 + rand::random::<f64>());
            tokio::select! {
                _ = tokio::time::sleep(jittered) => {}
                _ = stop.changed() => return Sent::Stopping,
            }
            wait = wait.saturating_mul(2).min(self.delivery.longest_retry);
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
            .map_err(|e| Failure::Retry(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_client_error()
            && status != reqwest::StatusCode::REQUEST_TIMEOUT
            && status != reqwest::StatusCode::TOO_MANY_REQUESTS
        {
            Err(Failure::Refused(status))
        } else {
            Err(Failure::Retry(format!("the receiver answered {status}")))
        }
    }
}

enum Failure {
    /// Worth trying again.
    Retry(String),
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
            service: "shop".into(),
            environment: "dev".into(),
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
        let journal = Arc::new(Journal::open(dir.path(), "start").unwrap());
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
}
