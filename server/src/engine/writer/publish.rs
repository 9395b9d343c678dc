//! Publishing a batch: pack its new objects, push compare-and-swap, and on
//! success publish the new tip and index at one point; when the remote
//! moved, fetch (publishing what others pushed) and let the batch be
//! replayed on the new tip, a bounded number of times with jittered
//! backoff. Never a force-push.

use std::time::{Duration, Instant};

use git2::{Mempack, Oid};
use rand::Rng;

use crate::domain::{chain, FlowError};
use crate::engine::events::Signal;
use crate::flows::WriteDone;
use crate::repo::index::Index;
use crate::repo::mirror::PushOutcome;
use crate::repo::pack;
use crate::repo::RepoError;

use super::batch::Writer;
use super::owed::Owed;
use super::{Job, NewBuild, WriteResult};

/// How a publish changes the index.
enum Update {
    /// With the index of the commits after the published tip.
    Extend(Index),
    /// With the index of a rewritten history, read anew.
    Replace(Index),
}

impl Writer {
    /// Applies a batch until its push lands, the remote fails, or the
    /// attempts run out. Returns one result per job, in order.
    pub(super) fn apply_batch(
        &self,
        batch: &[Job],
        mempack: Option<&Mempack<'_>>,
        owed: &mut Owed,
    ) -> Vec<WriteResult> {
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
                if !results
                    .iter()
                    .any(|r| r.as_ref().is_ok_and(WriteDone::replayed))
                {
                    return results;
                }
                // A request id answered from history claims a commit that
                // no push just proved is on the remote: fetch first, and
                // answer anew on a rewritten history.
                match self.remote_still_has(base, owed) {
                    Ok(true) => return results,
                    Ok(false) if attempt < self.config.max_push_attempts => continue,
                    Ok(false) => return fail_all(batch, FlowError::Conflict { attempts: attempt }),
                    Err(e) => return fail_replays(results, e),
                }
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
                    self.publish(tip, Update::Extend(pending), &created);
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
                        Ok(new_builds) => owed.extend(new_builds),
                        Err(e) => return fail_all(batch, e),
                    }
                }
                Err(e) => {
                    tracing::error!(error = %chain(&e), "push failed");
                    if let RepoError::RemoteLocked { path } = &e {
                        self.stats.note_remote_locked(path);
                    }
                    return fail_all(batch, e.into());
                }
            }
        }
    }

    /// Fetches the remote and tells whether its history still holds `base`
    /// (the tip a batch was answered on), as it does unless someone
    /// rewrote it.
    fn remote_still_has(&self, base: Oid, owed: &mut Owed) -> Result<bool, FlowError> {
        owed.extend(self.sync()?);
        let tip = self.shared.read().expect("writer lock not poisoned").tip;
        Ok(tip == base || self.descends(tip, base))
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

    /// Fetches the remote and publishes what others pushed; returns the
    /// builds that arrived.
    pub(super) fn sync(&self) -> Result<Vec<NewBuild>, FlowError> {
        let old = self.shared.read().expect("writer lock not poisoned").tip;
        let new = self.mirror.fetch()?;
        if new == old {
            return Ok(Vec::new());
        }
        let repo = self.mirror.repo();
        if !self.descends(new, old) {
            // Someone rewrote the remote's history (a force-push): what the
            // index says about dropped commits is no longer true. Start
            // over from the new history; request ids of dropped commits go
            // with it.
            tracing::warn!(%old, %new, "the remote's history was rewritten; re-reading it");
            let mut fresh = Index::default();
            fresh.ingest_range(repo, None, new)?;
            // What the new history has since it parted from the old one is
            // news: its builds get their auto-releases, its commits events.
            let since = repo.merge_base(old, new).ok();
            let mut arrived = Index::default();
            arrived.ingest_range(repo, since, new)?;
            let news = since
                .and_then(|since| chain_of(repo, since, new).ok())
                .unwrap_or_default();
            self.publish(new, Update::Replace(fresh), &news);
            return Ok(arrived.new_builds());
        }
        // Indexed outside the lock, so readers keep going meanwhile.
        let mut fresh = Index::default();
        fresh.ingest_range(repo, Some(old), new)?;
        let arrived = fresh.new_builds();
        let news = match chain_of(repo, old, new) {
            Ok(commits) => commits,
            Err(e) => {
                tracing::warn!(error = %chain(&e), "no events for fetched commits");
                Vec::new()
            }
        };
        self.publish(new, Update::Extend(fresh), &news);
        Ok(arrived)
    }

    /// The one point where readers see a new tip: the index and the tip
    /// change together under the write lock, then watchers hear of `news`
    /// (the new commits, oldest first).
    fn publish(&self, tip: Oid, update: Update, news: &[Oid]) {
        let mut published = self.shared.write().expect("writer lock not poisoned");
        match update {
            Update::Extend(index) => published.index.absorb(index),
            Update::Replace(index) => published.index = index,
        }
        published.tip = tip;
        drop(published);
        self.announce(news);
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
                let _ = self.events.send(Signal::Event(std::sync::Arc::new(event)));
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

/// `results` with every answer from history replaced by `error`: nothing
/// may say a commit is on the remote that could not be checked.
fn fail_replays(results: Vec<WriteResult>, error: FlowError) -> Vec<WriteResult> {
    results
        .into_iter()
        .map(|result| match result {
            Ok(done) if done.replayed() => Err(error.clone()),
            other => other,
        })
        .collect()
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
