//! Domain errors of the release flows and the writer. Messages are written
//! for the person who made the request; git-level causes stay in the
//! `#[source]` chain, which the server logs and never sends.

use std::sync::Arc;

use crate::repo::RepoError;

/// Why a request could not be carried out.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FlowError {
    /// A field is missing, malformed, or contradicts another.
    #[error("{0}")]
    InvalidArgument(String),
    /// Unknown service, branch or artifact.
    #[error("{0}")]
    NotFound(String),
    /// The request is well-formed but the repository's state forbids it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The write queue is full.
    #[error("the server's write queue is full; try again shortly")]
    QueueFull,
    /// The writer has stopped (shutdown).
    #[error("the server is shutting down; try again shortly")]
    WriterStopped,
    /// Pushes kept being rejected because others pushed first.
    #[error("gave up after {attempts} attempts: the config repository kept changing under us; try again")]
    Conflict {
        /// Push attempts made.
        attempts: u32,
    },
    /// The remote could not be reached.
    #[error("the config repository cannot be reached; try again later")]
    RemoteUnavailable(#[source] Arc<RepoError>),
    /// Anything else that went wrong in git: a bug or a broken repository.
    #[error("internal error; the server log has the details")]
    Internal(#[source] Arc<RepoError>),
}

impl From<release_manager::names::NameError> for FlowError {
    fn from(e: release_manager::names::NameError) -> Self {
        FlowError::InvalidArgument(e.to_string())
    }
}

impl From<RepoError> for FlowError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::Remote { .. } | RepoError::NoBranch { .. } => {
                FlowError::RemoteUnavailable(Arc::new(e))
            }
            RepoError::Git { .. } | RepoError::Io { .. } => FlowError::Internal(Arc::new(e)),
        }
    }
}

/// Wraps a libgit2 error met while reading or writing objects.
pub fn git(action: &'static str) -> impl Fn(git2::Error) -> FlowError {
    move |source| FlowError::Internal(Arc::new(RepoError::Git { action, source }))
}
