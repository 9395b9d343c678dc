//! Start-up of the engine: open (or clone) the mirror, fetch, and build the
//! index, from the persisted snapshot when one fits, else from the whole
//! history; and find the builds that arrived while the server was down.

use std::path::Path;

use crate::repo::index::Index;
use crate::repo::mirror::Mirror;
use crate::repo::remote::{GitCredentials, RemoteLocation};
use crate::repo::snapshot;
use crate::repo::RepoError;

use super::published::Published;
use super::writer::NewBuild;

/// What start-up prepares before the server is ready.
pub(crate) struct Prepared {
    pub(crate) mirror: Mirror,
    pub(crate) published: Published,
    /// Builds that arrived while the server was down.
    pub(crate) arrived: Vec<NewBuild>,
    pub(crate) origin: snapshot::Origin,
    /// Tip of the snapshot loaded, if one was used.
    pub(crate) snapshot_tip: Option<git2::Oid>,
    /// Commits read from history (the rest came from the snapshot).
    pub(crate) commits_read: u64,
}

/// Opens (or clones) the mirror, fetches, and builds the index: from the
/// snapshot in the data dir when there is a usable one, reading only the
/// commits after it, else from the whole history. Blocking.
pub(crate) fn prepare(
    data_dir: &Path,
    remote: RemoteLocation,
    branch: Option<&str>,
    credentials: GitCredentials,
) -> Result<Prepared, RepoError> {
    let origin_remote = remote.to_string();
    let mut mirror = Mirror::open(&data_dir.join("mirror.git"), remote, branch, credentials)?;
    let last_seen = mirror.last_seen();
    let tip = mirror.tip()?;
    let origin = snapshot::Origin {
        remote: origin_remote,
        branch: mirror.branch().to_string(),
    };
    let repo = mirror.repo();
    let (mut index, base) = match snapshot::load(data_dir, &origin) {
        Ok(snapshot) => {
            let in_history =
                snapshot.tip == tip || repo.graph_descendant_of(tip, snapshot.tip).unwrap_or(false);
            if in_history {
                (snapshot.index, Some(snapshot.tip))
            } else {
                tracing::warn!(
                    snapshot = %snapshot.tip,
                    %tip,
                    "the index snapshot describes a commit that is not in the remote's history (it was rewritten); reading the whole history"
                );
                (Index::default(), None)
            }
        }
        Err(snapshot::SnapshotError::Missing) => {
            tracing::info!("no index snapshot yet; reading the whole history");
            (Index::default(), None)
        }
        Err(e) => {
            tracing::warn!(error = %e, "not using the index snapshot; reading the whole history");
            (Index::default(), None)
        }
    };
    let mut fresh = Index::default();
    fresh.ingest_range(repo, base, tip)?;
    let commits_read = fresh.commit_count();
    // Builds that got in while the server was down have auto-releases to
    // catch up. A first start (no mirror yet) has no such window.
    // When the remote was rewritten meanwhile, what is new is what the new
    // history has since it parted from the one last seen (nothing, for an
    // unrelated history). A mirror made anew beside a snapshot has seen
    // nothing, but the snapshot says how far the server got.
    let since = last_seen.or(base).and_then(|seen| {
        if seen == tip || repo.graph_descendant_of(tip, seen).unwrap_or(false) {
            Some(seen)
        } else {
            repo.merge_base(seen, tip).ok()
        }
    });
    let arrived = match since {
        None => Vec::new(),
        Some(since) if Some(since) == base => fresh.new_builds(),
        Some(since) => {
            let mut news = Index::default();
            news.ingest_range(repo, Some(since), tip)?;
            news.new_builds()
        }
    };
    index.absorb(fresh);
    if commits_read > 0 {
        // Reading history mapped the pack's index and windows of the pack
        // into memory (all of it counted in the server's resident size);
        // a new handle starts without them.
        mirror.reopen()?;
        release_memory();
    }
    crate::repo::enable_object_cache();
    Ok(Prepared {
        published: Published {
            tip,
            index,
            generation: 0,
        },
        mirror,
        arrived,
        origin,
        snapshot_tip: base,
        commits_read,
    })
}

/// Gives the heap that reading history used back to the system (glibc keeps
/// freed memory for reuse otherwise, and reports it as resident).
fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}
