//! `release-manager import-s3`: copies the builds the original release
//! manager kept in S3 (mid-2020 on: one object `<service>/<artifact-id>`
//! per build, a zip of its artifact.json and environment folders, see its
//! `internal/s3storage`) into the config repository, as build commits of
//! `builds/<service>/<branch>/`, oldest first.
//!
//! Why a one-off import rather than reading the bucket live: the
//! repository stays the one place that knows everything, so status,
//! describe, release by id, promote, rollback, the index, its snapshot
//! and the audit trail treat an imported build as any other, and the
//! running server needs no AWS credentials. It can be run again at any
//! time (during a switch, while CI still uploads to the original): builds
//! already in history are skipped, so each run brings only what is new.
//!
//! Each build commit carries `Imported-from: s3://<bucket>/<key>`: the
//! server reads such builds as history, never as news to auto-release.
//! The commits are pushed compare-and-swap, in batches, never forced; a
//! batch whose push lost a race is made again on the new tip.
//!
//! It is wiring: it drives the mirror, the index and the build flow, and
//! owns only the S3 side (`s3`, `zip`) and the mapping of an object to a
//! build.

mod args;
pub(crate) mod s3;
pub(crate) mod zip;

use std::collections::HashSet;
use std::path::PathBuf;

use git2::Repository;
use release_manager::names;

use crate::domain::Settings;
use crate::flows::{self, BuildUpload, FlowContext, Intent, WriteDone, WriteRequest};
use crate::repo::index::{Index, Signature, View};
use crate::repo::mirror::{Mirror, PushOutcome};
use crate::repo::remote::{GitCredentials, RemoteLocation};

pub use args::{resolve_import, ImportS3Args};
pub(crate) use s3::{Bucket, Credentials};

/// Builds committed between two pushes.
const BATCH: usize = 100;
/// Attempts at pushing one batch when others keep pushing first.
const PUSH_ATTEMPTS: usize = 8;

/// What the import needs.
#[derive(Debug, Clone)]
pub struct ImportConfig {
    /// The config repository.
    pub config_repo: RemoteLocation,
    /// Its branch; `None`: the remote's HEAD.
    pub config_branch: Option<String>,
    /// Where the import keeps its own mirror.
    pub mirror_dir: PathBuf,
    /// Remote credentials.
    pub credentials: GitCredentials,
    /// The environments: the folders of a build that are kept.
    pub environments: Vec<String>,
    /// The bucket.
    pub bucket: ImportBucket,
    /// Only objects whose key starts with this (`<service>/`).
    pub prefix: String,
    /// List what would be imported, commit nothing.
    pub dry_run: bool,
}

/// The bucket, as the import is given it.
#[derive(Clone)]
pub struct ImportBucket {
    /// Its name.
    pub name: String,
    /// Its region.
    pub region: String,
    /// An S3-compatible endpoint, addressed path-style.
    pub endpoint: Option<String>,
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for ImportBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportBucket")
            .field("name", &self.name)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Objects in the bucket (under the prefix).
    pub listed: usize,
    /// Builds committed (or, in a dry run, that would be).
    pub imported: Vec<String>,
    /// Objects already in the repository's history.
    pub already_there: usize,
    /// Objects that are no build, each with why.
    pub skipped: Vec<String>,
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The bucket could not be read.
    #[error("{0}")]
    S3(String),
    /// The config repository could not be read or written.
    #[error("{0}")]
    Repository(String),
}

/// The identity of import commits.
fn importer() -> Signature {
    Signature {
        name: "Release Manager (import)".into(),
        email: "release-manager@localhost".into(),
    }
}

/// Runs the import.
pub async fn run(config: ImportConfig) -> Result<ImportReport, ImportError> {
    let repo_error = |e: crate::repo::RepoError| ImportError::Repository(e.to_string());
    let mirror = Mirror::open(
        &config.mirror_dir,
        config.config_repo.clone(),
        config.config_branch.as_deref(),
        config.credentials.clone(),
    )
    .map_err(repo_error)?;
    let bucket = Bucket {
        name: config.bucket.name.clone(),
        region: config.bucket.region.clone(),
        endpoint: config.bucket.endpoint.clone(),
        credentials: Credentials {
            access_key_id: config.bucket.access_key_id.clone(),
            secret_access_key: config.bucket.secret_access_key.clone(),
            session_token: config.bucket.session_token.clone(),
        },
    };
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .map_err(|e| ImportError::Repository(format!("cannot make an HTTP client: {e}")))?;
    let s3_error = |e: s3::S3Error| ImportError::S3(e.to_string());
    let mut objects = bucket
        .list(&client, &config.prefix)
        .await
        .map_err(s3_error)?;
    // Oldest first: the newest build of a branch ends up in its folder.
    objects.sort_by(|a, b| {
        a.last_modified
            .cmp(&b.last_modified)
            .then(a.key.cmp(&b.key))
    });
    let mut report = ImportReport {
        listed: objects.len(),
        ..ImportReport::default()
    };
    let settings = Settings {
        environments: config.environments.clone(),
        default_branch: "master".into(),
        global_restrictions: Vec::new(),
    };
    // Imported build commits are the importer's, unsigned.
    let commits = crate::repo::commits::CommitIdentity::default();
    let mut pending = objects.as_slice();
    while !pending.is_empty() {
        let mut attempt = 0;
        let batch_len = loop {
            attempt += 1;
            let tip = mirror.fetch().map_err(repo_error)?;
            let mut index = Index::default();
            index
                .ingest_range(mirror.repo(), None, tip)
                .map_err(repo_error)?;
            let known: HashSet<(String, String)> = index
                .services
                .iter()
                .flat_map(|(service, history)| {
                    history
                        .builds
                        .iter()
                        .map(move |b| (service.to_string(), b.artifact_id.to_string()))
                })
                .collect();
            let mut batch = BatchOutcome::default();
            let mut new_tip = tip;
            let mut taken = 0;
            for object in pending {
                if batch.imported.len() >= BATCH {
                    break;
                }
                taken += 1;
                let Some((service, artifact_id)) = object.key.split_once('/') else {
                    batch
                        .skipped
                        .push(format!("{}: not <service>/<artifact-id>", object.key));
                    continue;
                };
                if artifact_id.contains('/') || service.is_empty() || artifact_id.is_empty() {
                    batch
                        .skipped
                        .push(format!("{}: not <service>/<artifact-id>", object.key));
                    continue;
                }
                if known.contains(&(service.to_string(), artifact_id.to_string())) {
                    batch.already_there += 1;
                    continue;
                }
                let bytes = bucket
                    .object(&client, &object.key)
                    .await
                    .map_err(s3_error)?;
                let upload = match build_of(
                    mirror.repo(),
                    &config.bucket.name,
                    &object.key,
                    service,
                    artifact_id,
                    &bytes,
                    &settings.environments,
                ) {
                    Ok(upload) => upload,
                    Err(why) => {
                        batch.skipped.push(format!("{}: {why}", object.key));
                        continue;
                    }
                };
                if config.dry_run {
                    batch.imported.push(object.key.clone());
                    continue;
                }
                let ctx = FlowContext {
                    repo: mirror.repo(),
                    view: View::published(&index),
                    settings: &settings,
                    tip: new_tip,
                    commits: &commits,
                };
                let request = WriteRequest {
                    intent: Intent::AddBuild(upload),
                    committer: importer(),
                    request_id: None,
                };
                match flows::apply(&ctx, &request) {
                    Ok(WriteDone::Build(done)) if done.created => {
                        new_tip = done.commit;
                        index
                            .ingest_commit(mirror.repo(), done.commit)
                            .map_err(repo_error)?;
                        batch.imported.push(object.key.clone());
                    }
                    Ok(_) => batch.already_there += 1,
                    Err(e) => batch.skipped.push(format!("{}: {e}", object.key)),
                }
            }
            if new_tip == tip {
                report.merge(batch);
                break taken;
            }
            match mirror.push(new_tip, tip, None).map_err(repo_error)? {
                PushOutcome::Pushed => {
                    tracing::info!(
                        builds = batch.imported.len(),
                        "imported builds pushed to the config repository"
                    );
                    report.merge(batch);
                    break taken;
                }
                PushOutcome::Rejected if attempt < PUSH_ATTEMPTS => {
                    tracing::info!("the config repository moved while importing: again on its new tip");
                }
                PushOutcome::Rejected => {
                    return Err(ImportError::Repository(format!(
                        "gave up after {PUSH_ATTEMPTS} pushes: others kept pushing first; run the import again"
                    )))
                }
            }
        };
        pending = &pending[batch_len..];
    }
    Ok(report)
}

/// What one batch did.
#[derive(Default)]
struct BatchOutcome {
    imported: Vec<String>,
    already_there: usize,
    skipped: Vec<String>,
}

impl ImportReport {
    fn merge(&mut self, batch: BatchOutcome) {
        self.imported.extend(batch.imported);
        self.already_there += batch.already_there;
        self.skipped.extend(batch.skipped);
    }
}

/// The build a bucket object holds: its artifact.json and the files of
/// its environment folders (anything else the original zipped, such as
/// the Slack `message.json`, stays out), checked by the upload's rules.
fn build_of(
    repo: &Repository,
    bucket: &str,
    key: &str,
    service: &str,
    artifact_id: &str,
    zip_bytes: &[u8],
    environments: &[String],
) -> Result<BuildUpload, String> {
    let entries = zip::read(zip_bytes)?;
    let spec_bytes = entries
        .iter()
        .find(|e| e.name == "artifact.json")
        .map(|e| e.data.as_slice())
        .ok_or("the zip holds no artifact.json")?;
    let spec = crate::repo::read_committed_spec(spec_bytes, &format!("s3://{bucket}/{key}"))
        .map_err(|e| format!("artifact.json cannot be read: {e}"))?;
    if spec.id != artifact_id {
        return Err(format!(
            "artifact.json names id {:?}, the key {artifact_id:?}",
            spec.id
        ));
    }
    if !spec.service.is_empty() && spec.service != service {
        return Err(format!(
            "artifact.json names service {:?}, the key {service:?}",
            spec.service
        ));
    }
    names::check_service(service).map_err(|e| e.to_string())?;
    let branch = spec.application.branch.clone();
    if branch.is_empty() {
        return Err("artifact.json names no application.branch".to_string());
    }
    names::check_branch(&branch, environments).map_err(|e| e.to_string())?;
    let mut files = Vec::new();
    for entry in &entries {
        if entry.name != "artifact.json"
            && !environments
                .iter()
                .any(|env| entry.name.starts_with(&format!("{env}/")))
        {
            continue;
        }
        names::check_upload_path(&entry.name, environments)?;
        let blob = repo
            .blob(&entry.data)
            .map_err(|e| format!("cannot store {}: {e}", entry.name))?;
        files.push((entry.name.clone(), blob));
    }
    if files.len() < 2 {
        return Err("the zip holds no manifests of the environments".to_string());
    }
    files.sort();
    Ok(BuildUpload {
        service: service.to_string(),
        branch,
        artifact_id: artifact_id.to_string(),
        files,
        author_name: spec.application.author_name.clone(),
        author_email: spec.application.author_email.clone(),
        imported_from: Some(format!("s3://{bucket}/{key}")),
        staged: None,
    })
}
