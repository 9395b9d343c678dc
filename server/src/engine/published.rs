//! What the writer publishes and readers share: the remote tip as of the
//! last push or fetch, and the index of everything up to it. Only the
//! writer takes the write lock.

use std::sync::{Arc, RwLock};

use git2::Oid;

use crate::repo::index::Index;

/// What readers see: the remote tip the writer last published, and the index
/// of everything up to it.
pub(crate) struct Published {
    /// Tip of the default branch on the remote, as of the last push or fetch.
    pub(crate) tip: Oid,
    /// Builds and releases up to `tip`.
    pub(crate) index: Index,
    /// Bumped when the mirror's packs were merged: read handles opened
    /// before should be reopened.
    pub(crate) generation: u64,
}

/// Shared, read-mostly state; only the writer takes the write lock.
pub(crate) type SharedState = Arc<RwLock<Published>>;
