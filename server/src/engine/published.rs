//! What the writer publishes and readers share: the remote tip as of the
//! last push or fetch, and the index of everything up to it. Only the
//! writer takes the write lock.

use std::sync::{Arc, RwLock};

use git2::Oid;

use crate::repo::index::Index;

/// What readers see: the remote tip the writer last published, and the index
/// of everything up to it.
pub struct Published {
    /// Tip of the default branch on the remote, as of the last push or fetch.
    pub tip: Oid,
    /// Builds and releases up to `tip`.
    pub index: Index,
    /// Bumped when the mirror's packs were merged: read handles opened
    /// before should be reopened.
    pub generation: u64,
}

/// Shared, read-mostly state; only the writer takes the write lock.
pub type SharedState = Arc<RwLock<Published>>;
