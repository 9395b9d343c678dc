//! Everything that touches git: the mirror and its remote, tree surgery,
//! commit messages, and the index of builds and releases read from history.

pub mod index;
pub mod message;
pub mod mirror;
pub mod remote;
pub mod tree;

use std::path::PathBuf;

/// A failure of the git layer, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// A local git operation failed (object database, refs).
    #[error("git: cannot {action}")]
    Git {
        /// What was being done.
        action: &'static str,
        /// libgit2's error.
        #[source]
        source: git2::Error,
    },
    /// Talking to the remote failed (network, credentials, remote repo).
    #[error("remote: cannot {action}")]
    Remote {
        /// What was being done.
        action: &'static str,
        /// libgit2's error.
        #[source]
        source: git2::Error,
    },
    /// The remote has no default branch.
    #[error("the config repository has no branch {branch:?}")]
    NoBranch {
        /// The configured default branch.
        branch: String,
    },
    /// A file-system operation failed.
    #[error("cannot use {path}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl RepoError {
    /// Wraps a local git error, for `map_err`.
    pub fn git(action: &'static str) -> impl Fn(git2::Error) -> RepoError {
        move |source| RepoError::Git { action, source }
    }

    /// Wraps a remote git error, for `map_err`.
    pub fn remote(action: &'static str) -> impl Fn(git2::Error) -> RepoError {
        move |source| RepoError::Remote { action, source }
    }
}
