//! Receiving a build upload (`PushArtifact`): each file is streamed into
//! the mirror's object database as its chunks arrive (a blocking task
//! writes them), within size and file-count limits; every path is checked
//! to stay inside the build folder, and artifact.json is checked as its
//! published schema says (keys it does not know are kept, and named in the
//! reply's warnings). Nothing reaches the writer unless the whole upload is
//! valid. Every limit is RESOURCE_EXHAUSTED with its reason and its number.
//!
//! An upload never waits for a turn: the bytes in flight (received, not yet
//! on disk) of all uploads share one memory budget, and a chunk that does
//! not fit is refused at once with RESOURCE_EXHAUSTED; the slots of uploads
//! at once are shared fairly between callers (`upload_slots`). A stream
//! that stops sending is dropped after the idle timeout, one that sends
//! too slowly after its warm-up, and every upload has a total deadline, so
//! no stream can hold anything for good. Files wait in a staging
//! repository of the upload's own (`repo::staging`) until the writer
//! takes them, so a refused or abandoned upload leaves nothing behind.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::Reason;
use git2::Oid;
use release_manager::names;
use release_manager::pb;
use release_manager::spec::ArtifactSpec;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::upload_slots::{UploadSlots, MAX_CONCURRENT_UPLOADS};
use crate::repo::staging::{self, StagedObjects};
use std::net::IpAddr;
use tonic::{Status, Streaming};

use crate::domain::Settings;
use crate::flows::BuildUpload;

/// Bounds on one upload, and on all uploads together.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    /// Total bytes of all files of one upload.
    pub max_bytes: usize,
    /// Number of files of one upload.
    pub max_files: usize,
    /// Bytes received but not yet written, of all uploads together.
    pub memory_budget: usize,
    /// Longest silence between two chunks of an upload.
    pub idle_timeout: Duration,
    /// Longest one upload may take.
    pub total_timeout: Duration,
    /// Least average rate, in bytes per second, once the warm-up is over
    /// (0: none).
    pub min_rate: u64,
    /// How long an upload may send less than `min_rate` at first.
    pub rate_warm_up: Duration,
}

/// The decoder refuses a message over the limit with OUT_OF_RANGE; for a
/// client that is a resource limit, and the message says which.
fn too_large_chunk(error: Status, limits: &UploadLimits) -> Status {
    if error.code() == tonic::Code::OutOfRange && error.message().contains("too large") {
        crate::api::errors::limit_reached(Reason::ChunkTooLarge, max_chunk_bytes(limits), format!(
            "a PushArtifact chunk is larger than {} bytes (one file of the largest upload, --max-upload-bytes {}); send smaller chunks",
            max_chunk_bytes(limits),
            limits.max_bytes
        ))
    } else {
        error
    }
}

/// Largest PushArtifact message accepted: one file of the largest upload,
/// its path and the framing.
pub(crate) fn max_chunk_bytes(limits: &UploadLimits) -> usize {
    limits.max_bytes.saturating_add(64 << 10)
}

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits {
            max_bytes: 32 << 20,
            max_files: 1000,
            memory_budget: 256 << 20,
            idle_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(300),
            min_rate: 32 << 10,
            rate_warm_up: Duration::from_secs(15),
        }
    }
}

/// The memory budget of all uploads, in bytes.
#[derive(Clone)]
pub(crate) struct UploadBudget(Arc<Semaphore>);

impl UploadBudget {
    /// A budget of `bytes`.
    pub(crate) fn new(bytes: usize) -> Self {
        UploadBudget(Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))))
    }

    /// Takes `bytes` of the budget, or refuses at once.
    fn take(&self, bytes: usize) -> Result<OwnedSemaphorePermit, Status> {
        let budget = self.0.available_permits();
        let refuse = || {
            crate::api::errors::limit_reached(
                Reason::UploadsBusy,
                budget,
                "the server is receiving more upload data than its memory budget \
                 (--upload-memory) allows; try again shortly",
            )
        };
        let bytes = u32::try_from(bytes).map_err(|_| refuse())?;
        self.0
            .clone()
            .try_acquire_many_owned(bytes)
            .map_err(|_| refuse())
    }
}

/// Where uploads go and what bounds them: the handler's part of uploads.
pub(crate) struct UploadIntake {
    limits: UploadLimits,
    budget: UploadBudget,
    /// Uploads being received: each holds a thread that writes its files.
    slots: Arc<UploadSlots>,
    /// Where each upload's staging repository goes.
    staging: PathBuf,
}

impl UploadIntake {
    /// Uploads for the mirror at `mirror` (staged beside it), within
    /// `limits`. What an earlier run left staged is removed.
    pub(crate) fn new(limits: UploadLimits, mirror: PathBuf) -> Self {
        let staging = staging::staging_root(&mirror);
        staging::clear_leftovers(&staging);
        UploadIntake {
            budget: UploadBudget::new(limits.memory_budget),
            slots: UploadSlots::new(MAX_CONCURRENT_UPLOADS),
            limits,
            staging,
        }
    }

    /// Reads, stores and validates one upload from `caller` (its address,
    /// when known); returns it with the request id its first chunk
    /// carries, if any, and what the client should be warned of (keys of
    /// artifact.json this server does not know).
    pub(crate) async fn receive(
        &self,
        stream: Streaming<pb::PushArtifactRequest>,
        settings: &Settings,
        caller: Option<IpAddr>,
    ) -> Result<(BuildUpload, String, Vec<String>), Status> {
        let _slot = self.slots.take(caller)?;
        receive(
            stream,
            settings,
            &self.limits,
            &self.budget,
            self.staging.clone(),
        )
        .await
    }
}

/// Checks one path of an upload (see [`names::check_upload_path`]).
pub(crate) fn check_path(path: &str, settings: &Settings) -> Result<(), String> {
    names::check_upload_path(path, &settings.environments)
}

/// The largest artifact.json read (it is parsed in memory).
const MAX_SPEC_BYTES: usize = 1 << 20;

/// A chunk on its way to the object database, with its share of the budget.
struct Piece {
    /// Set on a file's first chunk.
    new_file: Option<String>,
    data: Vec<u8>,
    _budget: OwnedSemaphorePermit,
}

/// Reads, stores and validates a whole upload, within the limits' total
/// deadline.
async fn receive(
    stream: Streaming<pb::PushArtifactRequest>,
    settings: &Settings,
    limits: &UploadLimits,
    budget: &UploadBudget,
    staging: PathBuf,
) -> Result<(BuildUpload, String, Vec<String>), Status> {
    let total = limits.total_timeout;
    tokio::time::timeout(
        total,
        receive_all(stream, settings, limits, budget, staging),
    )
    .await
    .map_err(|_| {
        crate::api::errors::failure_with(
            tonic::Code::DeadlineExceeded,
            Reason::UploadTooSlow,
            format!(
                "the upload took longer than {} s (--upload-timeout)",
                total.as_secs()
            ),
            &[("limit", total.as_secs().to_string())],
        )
    })?
}

async fn receive_all(
    mut stream: Streaming<pb::PushArtifactRequest>,
    settings: &Settings,
    limits: &UploadLimits,
    budget: &UploadBudget,
    staging: PathBuf,
) -> Result<(BuildUpload, String, Vec<String>), Status> {
    let (pieces, queue) = mpsc::channel::<Piece>(8);
    let storing = tokio::task::spawn_blocking(move || store_files(&staging, queue));
    let received = async {
        let mut paths: Vec<String> = Vec::new();
        let mut spec_bytes: Option<Vec<u8>> = None;
        let mut request_id: Option<String> = None;
        let mut total = 0usize;
        let began = tokio::time::Instant::now();
        loop {
            let next = next_chunk(&mut stream, limits, began, total)
                .await?
                .map_err(|e| too_large_chunk(e, limits))?;
            let Some(mut chunk) = next else { break };
            if request_id.is_none() {
                request_id = Some(std::mem::take(&mut chunk.request_id));
            }
            total += chunk.data.len();
            if total > limits.max_bytes {
                return Err(crate::api::errors::limit_reached(
                    Reason::UploadTooLarge,
                    limits.max_bytes,
                    format!(
                        "the upload is larger than {} bytes (--max-upload-bytes)",
                        limits.max_bytes
                    ),
                ));
            }
            let new_file = if paths.last() == Some(&chunk.path) {
                None
            } else {
                check_path(&chunk.path, settings)
                    .map_err(|e| crate::api::errors::invalid("path", e))?;
                if paths.contains(&chunk.path) {
                    return Err(crate::api::errors::invalid(
                        "path",
                        format!("file {:?} is sent twice", chunk.path),
                    ));
                }
                if paths.len() >= limits.max_files {
                    return Err(crate::api::errors::limit_reached(
                        Reason::TooManyFiles,
                        limits.max_files,
                        format!(
                            "the upload has more than {} files (--max-upload-files)",
                            limits.max_files
                        ),
                    ));
                }
                paths.push(chunk.path.clone());
                Some(chunk.path.clone())
            };
            if chunk.path == "artifact.json" {
                let spec = spec_bytes.get_or_insert_with(Vec::new);
                if spec.len() + chunk.data.len() > MAX_SPEC_BYTES {
                    return Err(crate::api::errors::limit_reached(
                        Reason::UploadTooLarge,
                        MAX_SPEC_BYTES,
                        format!("artifact.json is larger than {MAX_SPEC_BYTES} bytes"),
                    ));
                }
                spec.extend_from_slice(&chunk.data);
            }
            if chunk.data.len() > limits.memory_budget {
                return Err(crate::api::errors::limit_reached(
                    Reason::ChunkTooLarge,
                    limits.memory_budget,
                    format!(
                        "a chunk of {} bytes is larger than the server's whole upload memory \
                     (--upload-memory {}); send smaller chunks",
                        chunk.data.len(),
                        limits.memory_budget
                    ),
                ));
            }
            let piece = Piece {
                new_file,
                _budget: budget.take(chunk.data.len())?,
                data: chunk.data,
            };
            if pieces.send(piece).await.is_err() {
                // The storing task failed; its error says why.
                break;
            }
        }
        Ok((paths, spec_bytes, request_id.unwrap_or_default()))
    }
    .await;
    drop(pieces);
    let stored = storing.await.map_err(|_| {
        crate::api::errors::failure(
            tonic::Code::Internal,
            Reason::InternalError,
            "storing the upload failed",
        )
    })?;
    let (paths, spec_bytes, request_id) = received?;
    let (files, staged) = stored?;
    debug_assert_eq!(files.len(), paths.len());
    check_no_file_is_a_folder(&paths)?;
    let spec_bytes = spec_bytes
        .ok_or_else(|| crate::api::errors::invalid("path", "the upload has no artifact.json"))?;
    let spec = ArtifactSpec::check_upload(&spec_bytes).map_err(|error| {
        let field = if error.field.is_empty() {
            "artifact.json".to_string()
        } else {
            format!("artifact.json.{}", error.field)
        };
        crate::api::errors::invalid(&field, format!("{field}: {}", error.message))
    })?;
    let warnings: Vec<String> = match spec.unknown_keys().as_slice() {
        [] => Vec::new(),
        keys => vec![format!(
            "artifact.json has keys this server does not know, stored as they are: {}",
            keys.join(", ")
        )],
    };
    if files.len() < 2 {
        return Err(crate::api::errors::invalid(
            "path",
            "the upload has no manifests: expected files under at least one environment folder",
        ));
    }
    let upload = BuildUpload {
        service: spec.service.clone(),
        // The folder the branch is stored in (names::branch_folder).
        branch: names::branch_folder(&spec.application.branch, &settings.environments),
        artifact_id: spec.id.clone(),
        author_name: spec.application.author_name.clone(),
        author_email: spec.application.author_email.clone(),
        files,
        imported_from: None,
        staged: Some(staged),
    };
    Ok((upload, request_id, warnings))
}

/// The next chunk of `stream`, which must come within the idle timeout,
/// and, once the warm-up is over, soon enough that the upload keeps its
/// least average rate (`total` bytes since `began` so far).
async fn next_chunk(
    stream: &mut Streaming<pb::PushArtifactRequest>,
    limits: &UploadLimits,
    began: tokio::time::Instant,
    total: usize,
) -> Result<Result<Option<pb::PushArtifactRequest>, Status>, Status> {
    let idle = tokio::time::Instant::now() + limits.idle_timeout;
    // The latest moment by which `total` bytes still make the rate.
    let slow = (limits.min_rate > 0).then(|| {
        began + limits.rate_warm_up + Duration::from_secs_f64(total as f64 / limits.min_rate as f64)
    });
    let until = slow.map_or(idle, |slow| slow.min(idle));
    match tokio::time::timeout_at(until, stream.message()).await {
        Ok(next) => Ok(next),
        Err(_) if slow.is_some_and(|slow| slow < idle) => Err(crate::api::errors::failure_with(
            tonic::Code::DeadlineExceeded,
            Reason::UploadTooSlow,
            format!(
                "the upload sent less than {} bytes/s on average after its first {} s (--upload-min-rate)",
                limits.min_rate,
                limits.rate_warm_up.as_secs()
            ),
            &[("limit", limits.min_rate.to_string())],
        )),
        Err(_) => Err(crate::api::errors::failure_with(
            tonic::Code::DeadlineExceeded,
            Reason::UploadStalled,
            format!(
                "the upload sent nothing for {} s (--upload-idle-timeout)",
                limits.idle_timeout.as_secs()
            ),
            &[("limit", limits.idle_timeout.as_secs().to_string())],
        )),
    }
}

/// Each file of an upload, with its blob, in the order sent.
type StoredFiles = Vec<(String, Oid)>;

/// Writes the pieces of an upload into a staging repository of its own
/// under `staging`, one blob per file, streamed (a file is never held in
/// memory whole). Returns each file's path and blob, in order, and the
/// staging repository.
fn store_files(
    staging: &std::path::Path,
    mut queue: mpsc::Receiver<Piece>,
) -> Result<(StoredFiles, Arc<StagedObjects>), Status> {
    // A full or read-only disk is said so (DISK_FULL, WRITE_DENIED), like
    // the writer's; anything else is internal. The log has the path.
    let failed = |action: &'static str, e: git2::Error| {
        crate::api::errors::to_status(crate::domain::FlowError::from(
            crate::repo::RepoError::Git { action, source: e },
        ))
    };
    let written = |e: std::io::Error| {
        failed(
            "store an uploaded file",
            git2::Error::from_str(&e.to_string()),
        )
    };
    let staged = StagedObjects::create(staging)
        .map_err(|e| failed("make a staging repository for an upload", e))?;
    let repo = git2::Repository::open_bare(staged.path())
        .map_err(|e| failed("open the staging repository of an upload", e))?;
    let mut files = Vec::new();
    let mut current: Option<(String, git2::BlobWriter<'_>)> = None;
    while let Some(piece) = queue.blocking_recv() {
        if let Some(path) = piece.new_file {
            if let Some((done, writer)) = current.take() {
                let oid = writer
                    .commit()
                    .map_err(|e| failed("store an uploaded file", e))?;
                files.push((done, oid));
            }
            let writer = repo
                .blob_writer(None)
                .map_err(|e| failed("store an uploaded file", e))?;
            current = Some((path, writer));
        }
        if let Some((_, writer)) = current.as_mut() {
            writer.write_all(&piece.data).map_err(written)?;
        }
    }
    if let Some((done, writer)) = current.take() {
        let oid = writer
            .commit()
            .map_err(|e| failed("store an uploaded file", e))?;
        files.push((done, oid));
    }
    Ok((files, Arc::new(staged)))
}

/// Refuses an upload where one file's path is a folder of another's
/// (`dev/a` and `dev/a/b`): a tree cannot hold both, and storing one would
/// silently drop the other.
fn check_no_file_is_a_folder(files: &[String]) -> Result<(), Status> {
    let paths: std::collections::HashSet<&str> = files.iter().map(String::as_str).collect();
    for path in files {
        let mut folder = path.as_str();
        while let Some((parent, _)) = folder.rsplit_once('/') {
            if paths.contains(parent) {
                return Err(crate::api::errors::invalid(
                    "path",
                    format!(
                    "file {parent:?} is also a folder of file {path:?}: a build cannot hold both"
                ),
                ));
            }
            folder = parent;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            environments: vec!["dev".into(), "prod".into()],
            default_branch: "master".into(),
            global_restrictions: Vec::new(),
        }
    }

    #[test]
    fn a_full_budget_refuses_at_once() {
        let budget = UploadBudget::new(100);
        let held = budget.take(80).unwrap();
        let refused = budget.take(30).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("--upload-memory"), "{refused:?}");
        drop(held);
        let _all = budget.take(100).unwrap();
    }

    #[test]
    fn a_file_cannot_also_be_a_folder() {
        let files =
            |paths: &[&str]| -> Vec<String> { paths.iter().map(|p| p.to_string()).collect() };
        let error =
            check_no_file_is_a_folder(&files(&["dev/a-x", "dev/a", "dev/a/b/c"])).unwrap_err();
        assert!(error.message().contains("\"dev/a\""), "{error:?}");
        assert!(error.message().contains("\"dev/a/b/c\""), "{error:?}");
        check_no_file_is_a_folder(&files(&["dev/a-x", "dev/a/b", "dev/ab"])).unwrap();
    }

    #[test]
    fn paths_are_checked_against_the_configured_environments() {
        // The rules themselves are tested in `release_manager::names`.
        let s = settings();
        check_path("prod/x.yaml", &s).unwrap();
        let err = check_path("staging/x.yaml", &s).unwrap_err();
        assert!(
            err.contains("(dev, prod)") && err.contains("ARTIFACT_ENVIRONMENTS"),
            "{err}"
        );
    }
}
