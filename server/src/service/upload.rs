//! Receiving a build upload (`PushArtifact`): the chunk stream is read into
//! memory within size and file-count limits, every path is checked to stay
//! inside the build folder, and artifact.json is parsed strictly. Nothing
//! reaches the writer unless the whole upload is valid.

use release_manager::names;
use release_manager::pb;
use release_manager::spec::ArtifactSpec;
use tonic::{Status, Streaming};

use crate::flows::{BuildUpload, Settings};

/// Bounds on one upload.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    /// Total bytes of all files.
    pub max_bytes: usize,
    /// Number of files.
    pub max_files: usize,
}

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits {
            max_bytes: 32 << 20,
            max_files: 1000,
        }
    }
}

/// Checks one path of an upload (see [`names::check_upload_path`]).
pub fn check_path(path: &str, settings: &Settings) -> Result<(), String> {
    names::check_upload_path(path, &settings.environments)
}

/// Reads and validates a whole upload.
pub async fn receive(
    mut stream: Streaming<pb::PushArtifactRequest>,
    settings: &Settings,
    limits: &UploadLimits,
) -> Result<BuildUpload, Status> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.message().await? {
        total += chunk.data.len();
        if total > limits.max_bytes {
            return Err(Status::invalid_argument(format!(
                "upload too large: more than {} bytes",
                limits.max_bytes
            )));
        }
        match files.last_mut() {
            Some((path, data)) if *path == chunk.path => data.extend_from_slice(&chunk.data),
            _ => {
                check_path(&chunk.path, settings).map_err(Status::invalid_argument)?;
                if files.iter().any(|(p, _)| *p == chunk.path) {
                    return Err(Status::invalid_argument(format!(
                        "file {:?} is sent twice",
                        chunk.path
                    )));
                }
                if files.len() >= limits.max_files {
                    return Err(Status::invalid_argument(format!(
                        "upload has too many files: more than {}",
                        limits.max_files
                    )));
                }
                files.push((chunk.path, chunk.data));
            }
        }
    }
    check_no_file_is_a_folder(&files)?;
    let spec_bytes = files
        .iter()
        .find(|(p, _)| p == "artifact.json")
        .map(|(_, d)| d.as_slice())
        .ok_or_else(|| Status::invalid_argument("the upload has no artifact.json"))?;
    let spec = ArtifactSpec::parse(spec_bytes)
        .map_err(|e| Status::invalid_argument(format!("artifact.json: {e}")))?;
    let invalid = |e: names::NameError| Status::invalid_argument(format!("artifact.json: {e}"));
    if spec.service.is_empty() {
        return Err(Status::invalid_argument(
            "artifact.json: service is missing",
        ));
    }
    names::check_service(&spec.service).map_err(invalid)?;
    if spec.application.branch.is_empty() {
        return Err(Status::invalid_argument(
            "artifact.json: application.branch is missing",
        ));
    }
    names::check_branch(&spec.application.branch, &settings.environments).map_err(invalid)?;
    names::check_artifact_id(&spec.id).map_err(invalid)?;
    if !spec.namespace.is_empty() {
        names::check_namespace(&spec.namespace).map_err(invalid)?;
    }
    for (field, value) in [
        ("application.authorName", &spec.application.author_name),
        ("application.authorEmail", &spec.application.author_email),
    ] {
        if value
            .chars()
            .any(|c| c.is_control() || c == '<' || c == '>')
            || value.len() > 200
        {
            return Err(Status::invalid_argument(format!(
                "artifact.json: {field} must be at most 200 characters, without '<', '>' or control characters (it becomes a commit's author)"
            )));
        }
    }
    if files.len() < 2 {
        return Err(Status::invalid_argument(
            "the upload has no manifests: expected files under at least one environment folder",
        ));
    }
    Ok(BuildUpload {
        service: spec.service.clone(),
        branch: spec.application.branch.clone(),
        artifact_id: spec.id.clone(),
        author_name: spec.application.author_name.clone(),
        author_email: spec.application.author_email.clone(),
        files,
    })
}

/// Refuses an upload where one file's path is a folder of another's
/// (`dev/a` and `dev/a/b`): a tree cannot hold both, and storing one would
/// silently drop the other.
fn check_no_file_is_a_folder(files: &[(String, Vec<u8>)]) -> Result<(), Status> {
    let paths: std::collections::HashSet<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    for (path, _) in files {
        let mut folder = path.as_str();
        while let Some((parent, _)) = folder.rsplit_once('/') {
            if paths.contains(parent) {
                return Err(Status::invalid_argument(format!(
                    "file {parent:?} is also a folder of file {path:?}: a build cannot hold both"
                )));
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
    fn a_file_cannot_also_be_a_folder() {
        let files = |paths: &[&str]| -> Vec<(String, Vec<u8>)> {
            paths.iter().map(|p| (p.to_string(), Vec::new())).collect()
        };
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
        assert!(err.contains("(dev, prod)"), "{err}");
    }
}
