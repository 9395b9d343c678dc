//! The artifact.json file on disk: reading it strictly, with errors that name
//! the file and the problem, and replacing it atomically (temporary file in
//! the same folder, fsync, rename) so that a crash or a full disk never
//! leaves a half-written file behind.
//!
//! It must not decide what goes into the spec; the commands do.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use release_manager::spec::ArtifactSpec;

use crate::error::{show_path, CliError};

/// `<root>/<file>`, the artifact.json of one build.
#[derive(Debug, Clone)]
pub(crate) struct SpecFile {
    path: PathBuf,
}

impl SpecFile {
    /// The file `file` inside the build folder `root`.
    pub(crate) fn new(root: &Path, file: &Path) -> Self {
        SpecFile {
            path: root.join(file),
        }
    }

    /// Where the file is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The path as error messages and reports show it.
    pub(crate) fn shown(&self) -> String {
        show_path(&self.path)
    }

    /// Reads and strictly parses the file.
    pub(crate) fn load(&self) -> Result<ArtifactSpec, CliError> {
        self.load_with_bytes().map(|(_, spec)| spec)
    }

    /// Reads and strictly parses the file; also returns its bytes as read.
    pub(crate) fn load_with_bytes(&self) -> Result<(Vec<u8>, ArtifactSpec), CliError> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(CliError::SpecMissing { path: self.shown() })
            }
            Err(error) => {
                return Err(CliError::SpecInvalid {
                    path: self.shown(),
                    reason: format!("cannot read: {error}"),
                })
            }
        };
        match ArtifactSpec::parse(&bytes) {
            Ok(spec) => Ok((bytes, spec)),
            Err(error) => Err(CliError::SpecInvalid {
                path: self.shown(),
                reason: describe_parse_error(&error),
            }),
        }
    }

    /// Creates the folder the file goes into, if it is missing.
    pub(crate) fn create_folder(&self) -> Result<(), CliError> {
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => {
                fs::create_dir_all(dir).map_err(|error| CliError::SpecWrite {
                    path: self.shown(),
                    reason: format!("cannot create folder {}: {error}", show_path(dir)),
                })
            }
            _ => Ok(()),
        }
    }

    /// Replaces the file with `spec` as pretty JSON, atomically.
    pub(crate) fn save(&self, spec: &ArtifactSpec) -> Result<(), CliError> {
        write_atomic(&self.path, spec.to_pretty_json().as_bytes()).map_err(|error| {
            CliError::SpecWrite {
                path: self.shown(),
                reason: error.to_string(),
            }
        })
    }
}

/// serde_json's message, minus the list of expected field names after an
/// unknown one (too long for one line; the spec is in the docs).
fn describe_parse_error(error: &serde_json::Error) -> String {
    // Field names come from the file: keep them to one printable line.
    let full = cli_support::one_line(&error.to_string());
    let location = format!(" at line {} column {}", error.line(), error.column());
    match full.strip_suffix(&location) {
        Some(message) => format!("{message}{location}"),
        None => full,
    }
}

/// Writes `bytes` to `<path>.tmp-<pid>` in the same folder, flushes it to
/// disk and renames it over `path`. The temporary file is removed when any
/// step fails.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    let mut temp_name = OsString::from(name);
    temp_name.push(format!(".tmp-{}", std::process::id()));
    let temp = path.with_file_name(temp_name);

    // A leftover of a crashed run with the same pid: never write through it
    // (it might be a link), start afresh.
    match fs::remove_file(&temp) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&temp, path));
    if let Err(error) = written {
        // The temporary file may not exist (open failed); nothing else to do.
        let _ = fs::remove_file(&temp);
        return Err(error);
    }
    sync_folder(path);
    Ok(())
}

/// Makes the rename durable. Best effort: not every platform or file system
/// can sync a folder, and the new contents are already complete.
fn sync_folder(path: &Path) {
    let folder = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if let Ok(dir) = fs::File::open(folder) {
        let _ = dir.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("readable")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn unknown_keys_are_kept_as_the_server_keeps_them() {
        let spec = ArtifactSpec::parse(b"{\n  \"id\": \"a\",\n  \"sqad\": \"x\"\n}")
            .expect("a newer tool's key is no error");
        assert_eq!(spec.unknown_keys(), ["sqad"]);
        assert!(spec.to_pretty_json().contains("\"sqad\": \"x\""));
    }

    #[test]
    fn other_parse_errors_keep_their_message() {
        let error = ArtifactSpec::parse(b"{\"id\": 1}").expect_err("wrong type");
        let text = describe_parse_error(&error);
        assert!(
            text.starts_with("invalid type: integer `1`, expected a string"),
            "{text}"
        );
        assert!(text.ends_with("at line 1 column 8"), "{text}");
    }

    #[test]
    fn save_replaces_a_longer_file_completely() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = SpecFile::new(dir.path(), Path::new("artifact.json"));
        fs::write(file.path(), "x".repeat(10_000)).expect("write");
        let spec = ArtifactSpec {
            id: "a".into(),
            ..ArtifactSpec::default()
        };
        file.save(&spec).expect("saved");
        assert_eq!(
            fs::read_to_string(file.path()).expect("read"),
            spec.to_pretty_json()
        );
        assert_eq!(names_in(dir.path()), ["artifact.json"]);
    }

    #[test]
    fn failed_save_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        // A non-empty folder where the file should be: the rename fails.
        let file = SpecFile::new(dir.path(), Path::new("artifact.json"));
        fs::create_dir(file.path()).expect("mkdir");
        fs::write(file.path().join("keep"), "x").expect("write");
        let error = file
            .save(&ArtifactSpec::default())
            .expect_err("cannot replace a folder");
        assert!(error.to_string().starts_with("cannot write "), "{error}");
        assert_eq!(names_in(dir.path()), ["artifact.json"]);
    }

    #[test]
    fn create_folder_makes_missing_parents() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = SpecFile::new(&dir.path().join("a/b"), Path::new("artifact.json"));
        file.create_folder().expect("created");
        file.save(&ArtifactSpec::default()).expect("saved");
        assert!(file.path().is_file());
    }
}
