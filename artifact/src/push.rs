//! `artifact push`: uploads a finished build (artifact.json and the files of
//! its environment folders) through the client-streaming `PushArtifact` RPC
//! and reports what the server stored and auto-released.
//!
//! It owns the walk of the build folder (hidden entries skipped, symbolic
//! links and special files refused, everything read before the server is
//! dialled so a bad folder never produces a partial upload), the chunking of
//! files and the wording of the result. Only the folders named by
//! `--environments` are sent, and every path is checked with the server's
//! own rules before the server is dialled. The bearer token is
//! `--auth-token`, or one got with the client's credentials
//! (`client_credentials`) once the build folder has been read.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use cli_support::{self, parse_server_url};
use release_manager::pb::{Outcome, PushArtifactRequest, PushArtifactResponse, ReleaseResult};
use release_manager::spec::ArtifactSpec;

use crate::client_credentials::{self, ClientCredentialsArgs};
use crate::error::{show_path, CliError};
use crate::global::GlobalArgs;
use crate::identity;
use crate::spec_file::SpecFile;

/// Largest `data` of one upload message.
pub(crate) const CHUNK_SIZE: usize = 1 << 20;

/// The name artifact.json is uploaded under, whatever `--file` says.
const SPEC_UPLOAD_PATH: &str = "artifact.json";

/// Upload the build to the release manager
///
/// Sends artifact.json and every file below the folders directly under the
/// build folder (one per environment, e.g. <root>/dev/deployment.yaml is sent
/// as dev/deployment.yaml). Entries whose names start with '.' are skipped;
/// symbolic links are refused. Files directly in the build folder other than
/// artifact.json are not sent. Everything is read before the server is
/// contacted.
#[derive(Debug, Clone, Args)]
pub(crate) struct PushArgs {
    /// Address of the release manager server: a URL (http://host:port) or a
    /// bare host:port.
    #[arg(
        long,
        env = "ARTIFACT_URL",
        hide_env_values = true,
        value_name = "URL",
        value_parser = parse_server_url,
        // The original artifact CLI's name for it (2020 on).
        alias = "http-base-url"
    )]
    pub(crate) server: String,

    /// The environment folders to upload (the server's `--environments`);
    /// other folders in the build folder are skipped.
    #[arg(
        long,
        env = "ARTIFACT_ENVIRONMENTS",
        value_delimiter = ',',
        default_value = "dev,staging,prod",
        value_name = "ENV,..."
    )]
    pub(crate) environments: Vec<String>,

    /// Bearer token of an artifact pusher, sent with the upload: the
    /// server's artifact token, or an identity token of an issuer it
    /// trusts (see also the client credentials below).
    #[arg(
        long,
        env = "ARTIFACT_AUTH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        // The original artifact CLI's name for it (2020 to 2023).
        alias = "http-auth-token"
    )]
    pub(crate) auth_token: Option<String>,

    /// The original CLI's sign-on: a token by the client-credentials
    /// grant, sent instead of --auth-token.
    #[command(flatten)]
    pub(crate) client: ClientCredentialsArgs,

    /// The original CLI's push flags that have no meaning here: refused,
    /// naming what replaces them (see `cli::refused_push_flags`).
    #[command(flatten)]
    pub(crate) original: OriginalPushArgs,

    /// The build's service, when `artifact init` was not told.
    #[arg(long)]
    pub(crate) service: Option<String>,

    /// The build's branch, when `artifact init` was not told [default: the
    /// CI system's branch variable, else the branch checked out at --root].
    #[arg(long, value_name = "BRANCH")]
    pub(crate) git_branch: Option<String>,

    /// How long to wait for the server to store the build (`30s`, `2m`;
    /// `0`: no limit). The server is told too, and does not store a build
    /// it could not store in time.
    #[arg(
        long,
        env = "ARTIFACT_REQUEST_TIMEOUT",
        default_value = cli_support::DEFAULT_REQUEST_TIMEOUT,
        value_name = "DURATION",
        value_parser = cli_support::parse_request_timeout
    )]
    pub(crate) request_timeout: std::time::Duration,

    /// The upload's request id: an upload whose id the server has seen
    /// answers as the first did, so a timed-out push can be run again
    /// safely with the id it printed [default: a new id].
    #[arg(long, value_name = "ID", value_parser = cli_support::parse_request_id)]
    pub(crate) request_id: Option<String>,
}

/// Push flags of the original artifact CLI with no meaning here: its
/// direct commits to the config repository (2019: the server commits
/// builds now).
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct OriginalPushArgs {
    #[arg(long, hide = true, value_name = "PATH")]
    pub(crate) ssh_private_key: Option<String>,
    #[arg(long, hide = true, value_name = "URL")]
    pub(crate) config_repo: Option<String>,
}

/// One file of the upload, read into memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuildFile {
    /// Path relative to the build folder, with '/' separators.
    pub(crate) path: String,
    /// The file's contents.
    pub(crate) data: Vec<u8>,
}

impl BuildFile {
    /// The upload messages of this file: consecutive chunks of at most
    /// [`CHUNK_SIZE`] bytes; one empty message for an empty file so that it
    /// is still created.
    fn into_messages(self) -> Vec<PushArtifactRequest> {
        if self.data.len() <= CHUNK_SIZE {
            return vec![PushArtifactRequest {
                path: self.path,
                data: self.data,
                ..PushArtifactRequest::default()
            }];
        }
        self.data
            .chunks(CHUNK_SIZE)
            .map(|chunk| PushArtifactRequest {
                path: self.path.clone(),
                data: chunk.to_vec(),
                ..PushArtifactRequest::default()
            })
            .collect()
    }
}

pub(crate) async fn run(
    args: PushArgs,
    global: &GlobalArgs,
    file: &SpecFile,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let (mut spec_bytes, mut spec) = file.load_with_bytes()?;
    let service = identity::service(&spec.service, args.service.as_deref())?;
    let branch = identity::branch(
        &spec.application.branch,
        args.git_branch.as_deref(),
        &global.root,
        |name| std::env::var(name).ok(),
    )?;
    if service != spec.service || branch != spec.application.branch {
        spec_bytes = identity::with_identity(&spec_bytes, &service, &branch).map_err(|reason| {
            CliError::SpecInvalid {
                path: file.shown(),
                reason,
            }
        })?;
        spec.service = service;
        spec.application.branch = branch;
    }
    let (manifests, skipped) = collect_build_folder(&global.root, file.path(), &args.environments)?;
    for name in skipped {
        writeln!(
            out,
            "Skipped {name}/: not an environment folder ({})",
            args.environments.join(", ")
        )?;
    }
    // The server's own rules, checked before anything is sent.
    for manifest in &manifests {
        release_manager::names::check_upload_path(&manifest.path, &args.environments).map_err(
            |reason| CliError::BuildFolder {
                path: show_path(&global.root.join(&manifest.path)),
                reason,
            },
        )?;
    }
    let mut files = Vec::with_capacity(manifests.len() + 1);
    files.push(BuildFile {
        path: SPEC_UPLOAD_PATH.to_owned(),
        data: spec_bytes,
    });
    files.extend(manifests);

    let credentials = args
        .client
        .resolve(args.auth_token.is_some())
        .map_err(CliError::Unresolved)?;
    let token = match &credentials {
        Some(credentials) => client_credentials::access_token(credentials)
            .await
            .map_err(CliError::ClientCredentials)?,
        None => args.auth_token.clone().unwrap_or_default(),
    };
    let mut client = cli_support::release_client(
        &args.server,
        &token,
        cli_support::time_limit(args.request_timeout),
    )
    .await?;
    let request_id = args
        .request_id
        .clone()
        .unwrap_or_else(cli_support::new_request_id);
    let first_id = request_id.clone();
    let messages = files
        .into_iter()
        .flat_map(BuildFile::into_messages)
        .enumerate()
        .map(move |(n, mut message)| {
            if n == 0 {
                message.request_id = first_id.clone();
            }
            message
        });
    let response = client
        .push_artifact(tokio_stream::iter(messages))
        .await
        .map_err(|status| match &credentials {
            Some(credentials) if status.code() == tonic::Code::Unauthenticated => {
                CliError::TokenRefused {
                    status: Box::new(status),
                    client_id: credentials.client_id.clone(),
                    idp_url: credentials.idp_url.clone(),
                }
            }
            _ => CliError::upload_failed(status, &request_id),
        })?
        .into_inner();
    for line in report(&response, &spec)? {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Reads every file below the folders directly under `root`, sorted by
/// path. `spec_path` (artifact.json) is left out wherever it is. Fails on
/// the first symbolic link, special file, non-UTF-8 name or unreadable
/// entry, naming it; fails when there is nothing to upload besides
/// artifact.json.
pub(crate) fn collect_build_folder(
    root: &Path,
    spec_path: &Path,
    environments: &[String],
) -> Result<(Vec<BuildFile>, Vec<String>), CliError> {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for (name, path) in sorted_entries(root)? {
        if !environments.contains(&name) {
            // Not an environment: a README, scripts, a checkout's other
            // folders. Only folders are worth a note.
            if path.is_dir() {
                skipped.push(name);
            }
            continue;
        }
        let kind = file_kind(&path)?;
        // Files directly in the build folder (artifact.json, a README) are
        // not part of any environment.
        if kind == Kind::Dir {
            walk(&path, &name, spec_path, &mut files)?;
        }
    }
    if files.is_empty() {
        return Err(CliError::BuildFolder {
            path: show_path(root),
            reason: "no files to upload: expected the manifests in one folder per environment, \
                     e.g. dev/deployment.yaml"
                .to_owned(),
        });
    }
    Ok((files, skipped))
}

/// Adds the files below `dir` (uploaded as `prefix/...`) to `files`.
fn walk(
    dir: &Path,
    prefix: &str,
    spec_path: &Path,
    files: &mut Vec<BuildFile>,
) -> Result<(), CliError> {
    for (name, path) in sorted_entries(dir)? {
        let relative = format!("{prefix}/{name}");
        match file_kind(&path)? {
            Kind::Dir => walk(&path, &relative, spec_path, files)?,
            Kind::File if path == spec_path => {}
            Kind::File => {
                let data = fs::read(&path).map_err(|error| CliError::BuildFolder {
                    path: show_path(&path),
                    reason: format!("cannot read: {error}"),
                })?;
                files.push(BuildFile {
                    path: relative,
                    data,
                });
            }
        }
    }
    Ok(())
}

/// What an entry of the build folder is; symbolic links and special files
/// are errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
}

fn file_kind(path: &Path) -> Result<Kind, CliError> {
    let refuse = |reason: &str| CliError::BuildFolder {
        path: show_path(path),
        reason: reason.to_owned(),
    };
    // Not `metadata`: a link must be seen as a link, never followed.
    let metadata = fs::symlink_metadata(path).map_err(|error| CliError::BuildFolder {
        path: show_path(path),
        reason: format!("cannot read: {error}"),
    })?;
    let kind = metadata.file_type();
    if kind.is_symlink() {
        Err(refuse(
            "is a symbolic link; refusing to upload it (copy the file into the build folder instead)",
        ))
    } else if kind.is_dir() {
        Ok(Kind::Dir)
    } else if kind.is_file() {
        Ok(Kind::File)
    } else {
        Err(refuse(
            "is not a regular file or folder; refusing to upload it",
        ))
    }
}

/// The entries of `dir` that are not hidden, as (UTF-8 name, path), sorted by
/// name so that uploads are reproducible.
fn sorted_entries(dir: &Path) -> Result<Vec<(String, PathBuf)>, CliError> {
    let unreadable = |error: std::io::Error| CliError::BuildFolder {
        path: show_path(dir),
        reason: format!("cannot read folder: {error}"),
    };
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let path = entry.path();
        let Ok(name) = entry.file_name().into_string() else {
            return Err(CliError::BuildFolder {
                path: show_path(&path),
                reason: "the name is not valid UTF-8".to_owned(),
            });
        };
        if !name.starts_with('.') {
            entries.push((name, path));
        }
    }
    entries.sort();
    Ok(entries)
}

/// The lines printed for the server's answer.
fn report(response: &PushArtifactResponse, spec: &ArtifactSpec) -> Result<Vec<String>, CliError> {
    let or = |given: &str, fallback: &str| {
        if given.is_empty() {
            fallback.to_owned()
        } else {
            given.to_owned()
        }
    };
    let id = or(&response.artifact_id, &spec.id);
    let service = or(&response.service, &spec.service);
    let branch = or(&response.branch, &spec.application.branch);
    let mut lines = vec![match Outcome::try_from(response.outcome) {
        Ok(Outcome::Applied) => format!(
            "Stored build {id} of {service} (branch {branch}): {}, commit {}",
            plural(response.file_count, "file"),
            short_sha(&response.commit_sha)
        ),
        Ok(Outcome::AlreadyUpToDate) => {
            format!("Build {id} of {service} is already stored (no change)")
        }
        Ok(Outcome::Unspecified) | Err(_) => {
            return Err(CliError::BadResponse("the upload's outcome is missing"))
        }
    }];
    lines.extend(response.auto_releases.iter().map(auto_release_line));
    // What the server took but wants known (keys it does not know).
    lines.extend(
        response
            .warnings
            .iter()
            .map(|warning| format!("warning: {}", cli_support::one_line(warning))),
    );
    Ok(lines)
}

fn auto_release_line(release: &ReleaseResult) -> String {
    let target = format!(
        "{} (namespace {})",
        release.environment,
        if release.namespace.is_empty() {
            &release.environment
        } else {
            &release.namespace
        }
    );
    match Outcome::try_from(release.outcome) {
        Ok(Outcome::AlreadyUpToDate) => {
            format!("Auto-release to {target}: already up to date (no change)")
        }
        _ => format!(
            "Auto-released to {target}, commit {}",
            short_sha(&release.commit_sha)
        ),
    }
}

/// The first 7 characters of a commit sha, as git shows it.
fn short_sha(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

fn plural(count: u32, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ArtifactSpec {
        let mut spec = ArtifactSpec {
            id: "master-abc".into(),
            service: "product-api".into(),
            ..ArtifactSpec::default()
        };
        spec.application.branch = "master".into();
        spec
    }

    #[test]
    fn big_files_are_split_into_chunks() {
        let file = BuildFile {
            path: "dev/big.yaml".into(),
            data: vec![7; 2 * CHUNK_SIZE + 5],
        };
        let messages = file.into_messages();
        let sizes: Vec<usize> = messages.iter().map(|m| m.data.len()).collect();
        assert_eq!(sizes, [CHUNK_SIZE, CHUNK_SIZE, 5]);
        assert!(messages.iter().all(|m| m.path == "dev/big.yaml"));
    }

    #[test]
    fn empty_files_are_sent_as_one_empty_message() {
        let file = BuildFile {
            path: "dev/empty.yaml".into(),
            data: Vec::new(),
        };
        let messages = file.into_messages();
        assert_eq!(messages.len(), 1);
        assert!(messages[0].data.is_empty());
    }

    #[test]
    fn stored_build_report() {
        let response = PushArtifactResponse {
            outcome: Outcome::Applied as i32,
            artifact_id: "master-abc".into(),
            service: "product-api".into(),
            branch: "master".into(),
            commit_sha: "1a2b3c4d5e6f".into(),
            file_count: 7,
            auto_releases: vec![
                ReleaseResult {
                    outcome: Outcome::Applied as i32,
                    environment: "dev".into(),
                    namespace: "dev".into(),
                    commit_sha: "9f8e7d6c5b".into(),
                    ..ReleaseResult::default()
                },
                ReleaseResult {
                    outcome: Outcome::AlreadyUpToDate as i32,
                    environment: "staging".into(),
                    namespace: String::new(),
                    ..ReleaseResult::default()
                },
            ],
            warnings: vec!["artifact.json has keys this server does not know: x".into()],
        };
        assert_eq!(
            report(&response, &spec()).expect("reported"),
            [
                "Stored build master-abc of product-api (branch master): 7 files, commit 1a2b3c4",
                "Auto-released to dev (namespace dev), commit 9f8e7d6",
                "Auto-release to staging (namespace staging): already up to date (no change)",
                "warning: artifact.json has keys this server does not know: x",
            ]
        );
    }

    #[test]
    fn already_stored_report() {
        let response = PushArtifactResponse {
            outcome: Outcome::AlreadyUpToDate as i32,
            ..PushArtifactResponse::default()
        };
        assert_eq!(
            report(&response, &spec()).expect("reported"),
            ["Build master-abc of product-api is already stored (no change)"]
        );
    }

    #[test]
    fn missing_outcome_is_an_error() {
        let error = report(&PushArtifactResponse::default(), &spec()).expect_err("no outcome");
        assert!(error.to_string().contains("outcome"), "{error}");
    }

    fn envs() -> Vec<String> {
        vec!["dev".into(), "staging".into(), "prod".into()]
    }

    #[test]
    fn build_folder_walk() {
        let root = tempfile::tempdir().expect("temp dir");
        let r = root.path();
        fs::create_dir_all(r.join("dev/sub")).expect("mkdir");
        fs::create_dir_all(r.join("prod")).expect("mkdir");
        fs::create_dir_all(r.join(".git")).expect("mkdir");
        fs::write(r.join("artifact.json"), "{}").expect("write");
        fs::write(r.join("README.md"), "not sent").expect("write");
        fs::write(r.join("dev/deployment.yaml"), "d").expect("write");
        fs::write(r.join("dev/.hidden"), "h").expect("write");
        fs::write(r.join("dev/sub/x.yaml"), "x").expect("write");
        fs::write(r.join("prod/deployment.yaml"), "p").expect("write");
        fs::write(r.join(".git/config"), "g").expect("write");
        fs::create_dir_all(r.join("scripts")).expect("mkdir");
        fs::write(r.join("scripts/run.sh"), "s").expect("write");
        let (files, skipped) =
            collect_build_folder(r, &r.join("artifact.json"), &envs()).expect("walked");
        assert_eq!(
            skipped,
            ["scripts"],
            "other folders are skipped, and said so"
        );
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "dev/deployment.yaml",
                "dev/sub/x.yaml",
                "prod/deployment.yaml"
            ]
        );
        assert_eq!(files[0].data, b"d");
    }

    #[test]
    fn spec_file_inside_an_environment_folder_is_not_sent_twice() {
        let root = tempfile::tempdir().expect("temp dir");
        let r = root.path();
        fs::create_dir_all(r.join("dev")).expect("mkdir");
        fs::write(r.join("dev/artifact.json"), "{}").expect("write");
        fs::write(r.join("dev/deployment.yaml"), "d").expect("write");
        let (files, _) =
            collect_build_folder(r, &r.join("dev/artifact.json"), &envs()).expect("walked");
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["dev/deployment.yaml"]);
    }

    #[test]
    fn build_folder_without_manifests_is_refused() {
        let root = tempfile::tempdir().expect("temp dir");
        fs::create_dir(root.path().join("dev")).expect("mkdir");
        let error = collect_build_folder(root.path(), &root.path().join("artifact.json"), &envs())
            .expect_err("nothing to upload");
        assert!(error.to_string().contains("no files to upload"), "{error}");
    }
}
