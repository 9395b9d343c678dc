//! Publishing: a batch's new objects packed for its push, the one point
//! where readers see a new tip and index (after a push landed, or a fetch
//! brought what others pushed), the events of new commits, and the
//! jittered backoff before a replay.

use std::time::Duration;

use git2::{Mempack, Oid};
use rand::Rng;

use crate::domain::{chain, FlowError};
use crate::engine::events::Signal;
use crate::repo::index::Index;
use crate::repo::pack;
use crate::repo::RepoError;

use super::batch::Writer;
use super::owed::Owed;
use super::NewBuild;

/// How a publish changes the index.
pub(super) enum Update {
    /// With the index of the commits after the published tip.
    Extend(Index),
    /// With the index of a rewritten history, read anew.
    Replace(Index),
}

impl Writer {
    /// Moves the batch's new objects from memory into one pack in the
    /// mirror, and returns that pack for the push. Empty when objects were
    /// written loose.
    pub(super) fn pack_new_objects(
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

    /// Fetches the remote and tells whether its history still holds `base`
    /// (the tip a batch was answered on), as it does unless someone
    /// rewrote it.
    pub(super) fn remote_still_has(&self, base: Oid, owed: &mut Owed) -> Result<bool, FlowError> {
        owed.extend(self.sync()?);
        let tip = self.shared.read().expect("writer lock not poisoned").tip;
        Ok(tip == base || self.descends(tip, base))
    }

    /// The one point where readers see a new tip: the index and the tip
    /// change together under the write lock, then watchers hear of `news`
    /// (the new commits, oldest first).
    pub(super) fn publish(&self, tip: Oid, update: Update, news: &[Oid]) {
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

    pub(super) fn note_batch(&self, commits: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.stats.batches.fetch_add(1, Relaxed);
        self.stats.commits.fetch_add(commits, Relaxed);
        self.stats.largest_batch.fetch_max(commits, Relaxed);
    }
}

/// Events sent for one publish at most (a fetch may bring thousands of
/// commits; watchers want news, not history).
const MAX_EVENTS_PER_PUBLISH: usize = 1000;

/// The commits after `base` up to `tip`, oldest first; the last one is
/// `tip` (checked: a pack built from a short list would leave the remote
/// without objects its branch needs).
pub(super) fn chain_of(
    repo: &git2::Repository,
    base: Oid,
    tip: Oid,
) -> Result<Vec<Oid>, RepoError> {
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
pub(super) fn backoff(attempt: u32) -> Duration {
    let ceiling_ms = (10u64 << attempt.min(7)).min(1000);
    Duration::from_millis(rand::rng().random_range(1..=ceiling_ms))
}
