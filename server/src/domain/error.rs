//! Domain errors of the release flows and the writer. Messages are written
//! for the person who made the request; git-level causes stay in the
//! `#[source]` chain, which the server logs and never sends.

use std::sync::Arc;

use crate::repo::RepoError;

/// Declares [`Reason`] and the stable name of each.
macro_rules! reasons {
    ($($variant:ident => $name:literal,)*) => {
        /// The stable reasons errors carry (`google.rpc.ErrorInfo.reason`),
        /// as the public schema (errors.proto) lists them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $(
                #[doc = $name]
                $variant,
            )*
        }

        impl Reason {
            /// Every reason.
            #[cfg(test)]
            pub(crate) const ALL: &[Reason] = &[$(Reason::$variant,)*];

            /// Its name in the schema.
            pub(crate) fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$variant => $name,)*
                }
            }
        }
    };
}

reasons! {
    ServiceNotFound => "SERVICE_NOT_FOUND",
    BranchNotFound => "BRANCH_NOT_FOUND",
    ArtifactNotFound => "ARTIFACT_NOT_FOUND",
    NamespaceNotFound => "NAMESPACE_NOT_FOUND",
    ReleaseNotFound => "RELEASE_NOT_FOUND",
    CursorNotFound => "CURSOR_NOT_FOUND",
    RevisionNotFound => "REVISION_NOT_FOUND",
    BranchRestricted => "BRANCH_RESTRICTED",
    NothingToPromote => "NOTHING_TO_PROMOTE",
    NothingToRollBack => "NOTHING_TO_ROLL_BACK",
    ManifestsMissing => "MANIFESTS_MISSING",
    ArtifactUnreadable => "ARTIFACT_UNREADABLE",
    PolicyConflict => "POLICY_CONFLICT",
    PolicyFileInvalid => "POLICY_FILE_INVALID",
    ServerWidePolicy => "SERVER_WIDE_POLICY",
    RevisionNotOnBranch => "REVISION_NOT_ON_BRANCH",
    ArtifactExists => "ARTIFACT_EXISTS",
    TokenMissing => "TOKEN_MISSING",
    TokenWrong => "TOKEN_WRONG",
    RoleNotEnabled => "ROLE_NOT_ENABLED",
    TokenInvalid => "TOKEN_INVALID",
    TokenExpired => "TOKEN_EXPIRED",
    IssuerUnavailable => "ISSUER_UNAVAILABLE",
    AccessDenied => "ACCESS_DENIED",
    QueueFull => "QUEUE_FULL",
    UploadsBusy => "UPLOADS_BUSY",
    ChunkTooLarge => "CHUNK_TOO_LARGE",
    DiskFull => "DISK_FULL",
    UploadTooLarge => "UPLOAD_TOO_LARGE",
    TooManyFiles => "TOO_MANY_FILES",
    DeadlinePassed => "DEADLINE_PASSED",
    UploadStalled => "UPLOAD_STALLED",
    UploadTooSlow => "UPLOAD_TOO_SLOW",
    Starting => "STARTING",
    ShuttingDown => "SHUTTING_DOWN",
    RemoteUnavailable => "REMOTE_UNAVAILABLE",
    RemoteTimeout => "REMOTE_TIMEOUT",
    RemoteLocked => "REMOTE_LOCKED",
    WriteDenied => "WRITE_DENIED",
    BatchTimeout => "BATCH_TIMEOUT",
    PushConflict => "PUSH_CONFLICT",
    InternalError => "INTERNAL_ERROR",
}

/// The machine-readable parts of an error's message, as
/// `google.rpc.ErrorInfo.metadata` carries them (errors.proto lists the
/// keys: `suggestion`, `policy_id`, `environment`, `limit`).
pub type Details = Vec<(&'static str, String)>;

/// Why a request could not be carried out.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FlowError {
    /// A field is missing, malformed, or contradicts another.
    #[error("{message}")]
    InvalidArgument {
        /// The request field, as `google.rpc.BadRequest` names it.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// Unknown service, branch, artifact, namespace or cursor.
    #[error("{message}")]
    NotFound {
        /// Which of them.
        reason: Reason,
        /// What was looked for, and what there is.
        message: String,
        /// The machine-readable parts of the message (`suggestion`, ...).
        details: Details,
    },
    /// The request is well-formed but the repository's state forbids it.
    #[error("{message}")]
    FailedPrecondition {
        /// Why.
        reason: Reason,
        /// What stands in the way.
        message: String,
        /// The machine-readable parts of the message (`policy_id`,
        /// `environment`, ...).
        details: Details,
    },
    /// The call carries no credential, or one that is not valid.
    #[error("{message}")]
    Unauthenticated {
        /// Which check failed.
        reason: Reason,
        /// What the caller must send.
        message: String,
    },
    /// The caller is known but may not make this call.
    #[error("{message}")]
    PermissionDenied {
        /// Why.
        reason: Reason,
        /// What would allow it.
        message: String,
    },
    /// What the request would create exists already, differently (an
    /// artifact id pushed again with other manifests).
    #[error("{0}")]
    AlreadyExists(String),
    /// The write queue is full.
    #[error("the server's write queue is full; try again shortly")]
    QueueFull,
    /// The caller's deadline passed (or it went away) before its write was
    /// applied; nothing was changed.
    #[error("the request's deadline passed before the server could apply it; nothing was changed")]
    DeadlineExceeded,
    /// The writer has stopped (shutdown).
    #[error("the server is shutting down; try again shortly")]
    WriterStopped,
    /// Pushes kept being rejected because others pushed first.
    #[error("gave up after {attempts} attempts: the config repository kept changing under us; try again")]
    Conflict {
        /// Push attempts made.
        attempts: u32,
    },
    /// The remote could not be reached, did not answer in time, or is
    /// locked.
    #[error("{}", unavailable_message(.0))]
    RemoteUnavailable(#[source] Arc<RepoError>),
    /// One batch of writes took longer than the batch timeout (the remote
    /// is slow or keeps failing); nothing more was tried.
    #[error("gave up after {seconds} s (--batch-timeout): the config repository is too slow to answer; try again later")]
    BatchTimedOut {
        /// The bound, in seconds.
        seconds: u64,
    },
    /// A disk the server writes to is full.
    #[error("disk full writing {place}; free some space, the write was not made")]
    DiskFull {
        /// The repository (mirror or remote) being written.
        place: String,
    },
    /// The server may not write where it must (a read-only remote, wrong
    /// owner).
    #[error("permission denied writing {place}; the write was not made")]
    NotPermitted {
        /// The repository (mirror or remote) being written.
        place: String,
    },
    /// Anything else that went wrong in git: a bug or a broken repository.
    #[error("internal error; the server log has the details")]
    Internal(#[source] Arc<RepoError>),
}

/// What an operator needs to know of an unavailable remote: which one, what
/// step, and whether it timed out. Credentials never show.
fn unavailable_message(error: &RepoError) -> String {
    match error {
        RepoError::Remote { remote, action, .. } if error.timed_out() => format!(
            "the config repository {remote} did not answer in time (--remote-timeout) while trying to {action}; try again later"
        ),
        RepoError::Remote { remote, action, .. } => format!(
            "the config repository {remote} cannot be reached: cannot {action}; try again later"
        ),
        // The lock's place inside the repository, never the server's path
        // to it (logged instead).
        RepoError::RemoteLocked { path } => {
            let in_repository = path
                .to_string_lossy()
                .rsplit_once("/refs/")
                .map(|(_, tail)| format!("refs/{tail}"))
                .unwrap_or_else(|| "the branch's .lock file".to_string());
            format!(
                "the config repository's branch is locked ({in_repository}): a git process is updating it, or one that crashed left the lock; if none is running, remove that file from the repository"
            )
        }
        other => other.to_string(),
    }
}

impl FlowError {
    /// `INVALID_ARGUMENT` for request field `field`.
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        FlowError::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }

    /// `NOT_FOUND` for `reason`.
    pub(crate) fn not_found(reason: Reason, message: impl Into<String>) -> Self {
        FlowError::NotFound {
            reason,
            message: message.into(),
            details: Details::new(),
        }
    }

    /// `UNAUTHENTICATED` for `reason`.
    pub(crate) fn unauthenticated(reason: Reason, message: impl Into<String>) -> Self {
        FlowError::Unauthenticated {
            reason,
            message: message.into(),
        }
    }

    /// `PERMISSION_DENIED` for `reason`.
    pub(crate) fn denied(reason: Reason, message: impl Into<String>) -> Self {
        FlowError::PermissionDenied {
            reason,
            message: message.into(),
        }
    }

    /// `FAILED_PRECONDITION` for `reason`.
    pub(crate) fn precondition(reason: Reason, message: impl Into<String>) -> Self {
        FlowError::FailedPrecondition {
            reason,
            message: message.into(),
            details: Details::new(),
        }
    }

    /// Adds a machine-readable part (`environment`, `policy_id`, ...) to a
    /// NOT_FOUND or FAILED_PRECONDITION error; other errors carry none.
    pub(crate) fn with(mut self, key: &'static str, value: impl Into<String>) -> Self {
        if let FlowError::NotFound { details, .. } | FlowError::FailedPrecondition { details, .. } =
            &mut self
        {
            details.push((key, value.into()));
        }
        self
    }
}

impl From<release_manager::names::NameError> for FlowError {
    fn from(e: release_manager::names::NameError) -> Self {
        FlowError::invalid(e.field, e.to_string())
    }
}

/// Where a write that a full or read-only disk stopped was going, as a
/// person knows it: never a path on the server (the log has it).
const THE_DATA_DIR: &str = "the server's data dir";
/// See [`THE_DATA_DIR`].
const THE_REMOTE: &str = "the config repository";

/// What an OS error while writing means for the person who asked, when it
/// is one they can act on.
fn storage_failure(error: &RepoError) -> Option<FlowError> {
    let (place, kind, text) = match error {
        RepoError::Io { source, .. } => (THE_DATA_DIR, Some(source.kind()), source.to_string()),
        RepoError::Git { source, .. } => (THE_DATA_DIR, None, source.message().to_string()),
        RepoError::Remote { source, .. } => (THE_REMOTE, None, source.message().to_string()),
        _ => return None,
    };
    let place = place.to_string();
    let full =
        kind == Some(std::io::ErrorKind::StorageFull) || text.contains("No space left on device");
    let denied = matches!(
        kind,
        Some(std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem)
    ) || text.contains("Permission denied")
        || text.contains("Operation not permitted")
        || text.contains("Read-only file system");
    if full {
        Some(FlowError::DiskFull { place })
    } else if denied {
        Some(FlowError::NotPermitted { place })
    } else {
        None
    }
}

impl From<RepoError> for FlowError {
    fn from(e: RepoError) -> Self {
        if let Some(failure) = storage_failure(&e) {
            tracing::error!(error = %chain(&e), "cannot write");
            return failure;
        }
        match e {
            RepoError::Remote { .. }
            | RepoError::NoBranch { .. }
            | RepoError::RemoteLocked { .. } => FlowError::RemoteUnavailable(Arc::new(e)),
            RepoError::Git { .. } | RepoError::Io { .. } => FlowError::Internal(Arc::new(e)),
        }
    }
}

/// Wraps a libgit2 error met while reading or writing objects.
pub(crate) fn git(action: &'static str) -> impl Fn(git2::Error) -> FlowError {
    move |source| FlowError::Internal(Arc::new(RepoError::Git { action, source }))
}

/// An error and all its sources on one line, for logs; a source that
/// says what is already said (an error that shows its cause's words) is
/// left out, so that no line reads "X: X".
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(kind: std::io::ErrorKind) -> RepoError {
        RepoError::Io {
            path: "/srv/config.git".into(),
            source: std::io::Error::from(kind),
        }
    }

    #[test]
    fn a_logged_chain_never_repeats_itself() {
        let error = FlowError::RemoteUnavailable(Arc::new(RepoError::NoBranch {
            branch: "main".into(),
        }));
        assert_eq!(
            chain(&error),
            "the config repository has no branch \"main\""
        );
        let error = FlowError::Internal(Arc::new(RepoError::Git {
            action: "read a tree",
            source: git2::Error::from_str("object not found"),
        }));
        assert_eq!(
            chain(&error),
            "internal error; the server log has the details: git: cannot read a tree: object not found"
        );
    }

    #[test]
    fn a_full_disk_and_a_read_only_remote_say_so() {
        let full = FlowError::from(io(std::io::ErrorKind::StorageFull));
        assert!(matches!(full, FlowError::DiskFull { .. }), "{full:?}");
        assert_eq!(
            full.to_string(),
            "disk full writing the server's data dir; free some space, the write was not made"
        );
        let denied = FlowError::from(io(std::io::ErrorKind::PermissionDenied));
        assert_eq!(
            denied.to_string(),
            "permission denied writing the server's data dir; the write was not made"
        );
        // The words of the OS, whatever the kind says.
        let from_git = RepoError::Git {
            action: "store an uploaded file",
            source: git2::Error::from_str("failed to write: No space left on device"),
        };
        assert!(matches!(
            FlowError::from(from_git),
            FlowError::DiskFull { .. }
        ));
        let remote = RepoError::Remote {
            remote: "/srv/config.git".into(),
            action: "write an object",
            source: git2::Error::from_str("failed to make directory: Read-only file system"),
        };
        let refused = FlowError::from(remote);
        assert!(matches!(refused, FlowError::NotPermitted { .. }));
        assert_eq!(
            refused.to_string(),
            "permission denied writing the config repository; the write was not made"
        );
        let other = FlowError::from(io(std::io::ErrorKind::InvalidData));
        assert!(matches!(other, FlowError::Internal(_)));
    }
}
