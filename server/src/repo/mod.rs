//! Everything that touches git: the mirror and its remote, tree surgery,
//! commit messages, and the index of builds and releases read from history.

pub(crate) mod commits;
pub(crate) mod diff;
pub(crate) mod history;
pub(crate) mod index;
pub(crate) mod message;
pub(crate) mod mirror;
pub(crate) mod pack;
pub(crate) mod raw_tree;
pub(crate) mod remote;
pub(crate) mod shared_ref;
pub(crate) mod snapshot;
pub(crate) mod staging;
pub(crate) mod tree;

use std::path::PathBuf;
use std::sync::Once;

/// Turns libgit2's object cache on, for the few large trees every write and
/// read goes through again and again (`builds`, `<env>/releases/<ns>`):
/// parsed once instead of per request. By default trees over 4 KiB are
/// never cached, and those are exactly the ones worth it.
pub(crate) fn enable_object_cache() {
    // SAFETY: plain setters of process-wide limits.
    unsafe {
        let _ = git2::opts::set_cache_object_limit(git2::ObjectType::Tree, 1 << 20);
        let _ = git2::opts::set_cache_object_limit(git2::ObjectType::Blob, 64 << 10);
        // The cache's total (256 MiB by default) bounds how many old
        // versions of the large trees stay parsed after every write moved
        // on; a few dozen megabytes hold the current ones many times over.
        libgit2_sys::git_libgit2_opts(
            libgit2_sys::GIT_OPT_SET_CACHE_MAX_SIZE as libc::c_int,
            (32 << 20) as libc::ssize_t,
        );
    }
    git2::opts::enable_caching(true);
}

/// Process-wide libgit2 settings, applied once before the first repository
/// is opened.
pub(crate) fn configure_libgit2() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Objects are read from our own mirror, whose packs git verified when
        // they arrived; re-hashing every object read costs more than the
        // release itself.
        git2::opts::strict_hash_verification(false);
        // Every oid the flows insert into a tree was just read from the
        // object database; checking again that it exists is wasted work.
        git2::opts::strict_object_creation(false);
        // History is read once at start: caching what it reads only grows
        // the heap (by ~60 MiB on a 26k-commit repository).
        // `enable_object_cache` turns the cache on once that is done.
        git2::opts::enable_caching(false);
        // Bound the pack files mapped into memory: reading history touches
        // the whole pack once, and libgit2 would otherwise keep up to 8 GiB
        // of it mapped, all counted in the server's resident memory.
        // SAFETY: called once, before any repository is opened.
        unsafe {
            let _ = git2::opts::set_mwindow_size(8 << 20);
            let _ = git2::opts::set_mwindow_mapped_limit(32 << 20);
        }
    });
}

/// Parses an artifact.json read from the config repository (leniently, see
/// [`release_manager::spec::ArtifactSpec::parse_committed`]), logging what
/// was ignored with the file's path.
pub(crate) fn read_committed_spec(
    bytes: &[u8],
    path: &str,
) -> Result<release_manager::spec::ArtifactSpec, serde_json::Error> {
    let (spec, ignored) = release_manager::spec::ArtifactSpec::parse_committed(bytes)?;
    if let Some(ignored) = ignored {
        tracing::warn!(%path, "{ignored}: the file was rewritten without truncating it");
    }
    Ok(spec)
}

/// Test builds only (feature `failpoints`): aborts the process, as a power
/// cut or SIGKILL would, when `RELEASE_MANAGER_CRASH_AT` is `step#N` and
/// this is the N-th time `step` is reached. The crash tests walk every step
/// of a push this way. Compiled to nothing otherwise.
#[inline]
pub(crate) fn crash_point(step: &str) {
    #[cfg(feature = "failpoints")]
    {
        static HITS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let Ok(at) = std::env::var("RELEASE_MANAGER_CRASH_AT") else {
            return;
        };
        let (name, nth) = at.split_once('#').unwrap_or((at.as_str(), "1"));
        if name == step {
            let hit = HITS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            if nth.parse() == Ok(hit) {
                eprintln!("crash point {step} (hit {hit}): aborting");
                std::process::abort();
            }
        }
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = step;
}

/// Bounds every network step of fetch and push: connecting, and each read
/// or write of the connection (git://, SSH and HTTPS alike). A remote that
/// accepts the connection and then says nothing fails the step with a
/// timeout instead of holding the writer forever.
pub(crate) fn set_remote_timeout(timeout: std::time::Duration) {
    let millis = i32::try_from(timeout.as_millis())
        .unwrap_or(i32::MAX)
        .max(1);
    // SAFETY: libgit2 reads these globals when it opens a connection; they
    // are plain integers, set before the writer starts.
    unsafe {
        let _ = git2::opts::set_server_connect_timeout_in_milliseconds(millis);
        let _ = git2::opts::set_server_timeout_in_milliseconds(millis);
    }
}

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
    #[error("remote {remote}: cannot {action}")]
    Remote {
        /// The remote, as people name it (no credentials).
        remote: String,
        /// What was being done.
        action: &'static str,
        /// libgit2's error.
        #[source]
        source: git2::Error,
    },
    /// The remote's branch is locked, and stayed locked: a git process
    /// holds it, or one that crashed left the lock file.
    #[error("the remote's branch is locked by `{}`; if no git process is running, remove it", path.display())]
    RemoteLocked {
        /// The lock file.
        path: PathBuf,
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
    pub(crate) fn git(action: &'static str) -> impl Fn(git2::Error) -> RepoError {
        move |source| RepoError::Git { action, source }
    }

    /// Wraps an error of talking to `remote`, for `map_err`.
    pub(crate) fn remote(
        remote: &remote::RemoteLocation,
        action: &'static str,
    ) -> impl Fn(git2::Error) -> RepoError {
        let remote = remote.to_string();
        move |source| RepoError::Remote {
            remote: remote.clone(),
            action,
            source,
        }
    }

    /// Whether the remote did not answer in time. libgit2 says so with its
    /// timeout code, or (socket reads) as a network error "timed out".
    pub(crate) fn timed_out(&self) -> bool {
        matches!(self, RepoError::Remote { source, .. }
            if source.code() == git2::ErrorCode::Timeout
                || (source.class() == git2::ErrorClass::Net && source.message().ends_with("timed out")))
    }
}
