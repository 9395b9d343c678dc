//! Rules for the names that become paths in the config repository (service,
//! environment, namespace, branch) or land in commit messages (artifact id).
//! Every name is checked here before any path is built from it; the error
//! names the field and the problem so a person can fix the request.

use std::fmt;

/// A name that breaks the rules, with the field it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError {
    /// The request field, e.g. `service`.
    pub field: &'static str,
    /// The offending value (truncated for display).
    pub value: String,
    /// Why it is refused.
    pub reason: String,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "invalid {}: {}", self.field, self.reason)
        } else {
            let shown: String = self.value.chars().take(64).collect();
            let ellipsis = if shown.len() < self.value.len() {
                "..."
            } else {
                ""
            };
            write!(
                f,
                "invalid {} {:?}{}: {}",
                self.field, shown, ellipsis, self.reason
            )
        }
    }
}

impl std::error::Error for NameError {}

/// Longest service, environment or namespace name (a Kubernetes label).
pub const MAX_SIMPLE_NAME: usize = 63;
/// Longest branch name or artifact id.
pub const MAX_LONG_NAME: usize = 200;

fn err(field: &'static str, value: &str, reason: impl Into<String>) -> NameError {
    NameError {
        field,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Checks one path component: `[A-Za-z0-9._-]`, starting with a letter or
/// digit, so it can neither be `.`/`..` nor hidden nor absolute.
fn check_component(field: &'static str, whole: &str, part: &str) -> Result<(), NameError> {
    if part.is_empty() {
        return Err(err(
            field,
            whole,
            "must not be empty or contain empty path segments",
        ));
    }
    if part == "." || part == ".." || part.contains("..") {
        return Err(err(field, whole, "must not contain \"..\""));
    }
    if let Some(c) = part
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        let what = if c.is_control() {
            "control characters".to_string()
        } else {
            format!("{c:?}")
        };
        return Err(err(
            field,
            whole,
            format!("must not contain {what} (allowed: letters, digits, '.', '_', '-')"),
        ));
    }
    if !part.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(err(field, whole, "must start with a letter or digit"));
    }
    Ok(())
}

fn check_simple(field: &'static str, value: &str) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(err(field, value, "must not be empty"));
    }
    if value.len() > MAX_SIMPLE_NAME {
        return Err(err(
            field,
            value,
            format!(
                "is {} bytes long; at most {MAX_SIMPLE_NAME} allowed",
                value.len()
            ),
        ));
    }
    if value.contains("..") {
        return Err(err(field, value, "must not contain \"..\""));
    }
    if value.starts_with('/') {
        return Err(err(field, value, "must not be an absolute path"));
    }
    if value.contains('/') {
        return Err(err(field, value, "must not contain '/'"));
    }
    check_component(field, value, value)
}

/// A service name: one path component.
pub fn check_service(value: &str) -> Result<(), NameError> {
    check_simple("service", value)
}

/// An environment name: one path component.
pub fn check_environment(value: &str) -> Result<(), NameError> {
    check_simple("environment", value)
}

/// A namespace name: one path component.
pub fn check_namespace(value: &str) -> Result<(), NameError> {
    check_simple("namespace", value)
}

/// A branch name. It may contain `/` (`feature/x`), which becomes nested
/// folders under `builds/<service>/`; so no segment may equal an environment
/// folder name or `artifact.json`, and none may be `..`.
pub fn check_branch(value: &str, environments: &[String]) -> Result<(), NameError> {
    let field = "branch";
    if value.is_empty() {
        return Err(err(field, value, "must not be empty"));
    }
    if value.len() > MAX_LONG_NAME {
        return Err(err(
            field,
            value,
            format!(
                "is {} bytes long; at most {MAX_LONG_NAME} allowed",
                value.len()
            ),
        ));
    }
    if value.starts_with('/') {
        return Err(err(field, value, "must not be an absolute path"));
    }
    for part in value.split('/') {
        check_component(field, value, part)?;
        if part.ends_with(".lock") || part == "artifact.json" {
            return Err(err(
                field,
                value,
                format!("must not have a segment {part:?}"),
            ));
        }
        if value.contains('/') && environments.iter().any(|e| e == part) {
            return Err(err(
                field,
                value,
                format!("segment {part:?} would collide with the environment folder of that name"),
            ));
        }
    }
    Ok(())
}

/// An artifact id: never a path, but part of commit titles and trailers.
pub fn check_artifact_id(value: &str) -> Result<(), NameError> {
    let field = "artifact_id";
    if value.is_empty() {
        return Err(err(field, value, "must not be empty"));
    }
    if value.len() > MAX_LONG_NAME {
        return Err(err(
            field,
            value,
            format!(
                "is {} bytes long; at most {MAX_LONG_NAME} allowed",
                value.len()
            ),
        ));
    }
    if value.starts_with('/') {
        return Err(err(field, value, "must not be an absolute path"));
    }
    for part in value.split('/') {
        check_component(field, value, part)?;
    }
    Ok(())
}

/// Longest path of a file inside a build folder.
pub const MAX_UPLOAD_PATH: usize = 512;
/// Longest file or folder name in an upload path: what every file system
/// a checkout lands on holds (ext4, XFS, APFS, NTFS: 255).
pub const MAX_PATH_SEGMENT: usize = 255;
/// Most segments (folders and the file) of an upload path.
pub const MAX_PATH_DEPTH: usize = 32;

/// The characters that reorder how text is shown (Unicode bidirectional
/// controls: U+061C, U+200E, U+200F, U+202A to U+202E, U+2066 to U+2069):
/// a name holding one can read as another (the "Trojan Source" trick).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// What names, paths, regexes and people's names must not hold: control
/// characters, and bidirectional controls (see [`is_bidi_control`]).
pub fn is_forbidden_char(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// Checks one path of a build upload, relative to the build folder:
/// `artifact.json`, or a file under one of the `environments` folders, with
/// plain segments only (no `..`, `.`, empty or `.git` segments, no control
/// or bidirectional-control characters, no backslashes), each at most
/// [`MAX_PATH_SEGMENT`] bytes, at most [`MAX_PATH_DEPTH`] deep, so that
/// every checkout can hold it. The error says what is wrong.
pub fn check_upload_path(path: &str, environments: &[String]) -> Result<(), String> {
    if path == "artifact.json" {
        return Ok(());
    }
    if path.is_empty() {
        return Err("a file has an empty path".into());
    }
    if path.len() > MAX_UPLOAD_PATH {
        let start: String = path.chars().take(40).collect();
        return Err(format!(
            "path {start:?}... is longer than {MAX_UPLOAD_PATH} bytes"
        ));
    }
    if path.starts_with('/') || path.contains('\\') {
        return Err(format!(
            "path {path:?} must be relative, with '/' separators"
        ));
    }
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() > MAX_PATH_DEPTH {
        let start: String = path.chars().take(40).collect();
        return Err(format!(
            "path {start:?}... is {} levels deep; at most {MAX_PATH_DEPTH} allowed",
            parts.len()
        ));
    }
    for part in &parts {
        if part.len() > MAX_PATH_SEGMENT {
            let start: String = part.chars().take(40).collect();
            return Err(format!(
                "path {:?} has a name of {} bytes ({start:?}...); at most {MAX_PATH_SEGMENT} allowed, as file systems hold",
                path.chars().take(40).collect::<String>(),
                part.len()
            ));
        }
        if part.is_empty() || *part == "." || *part == ".." {
            return Err(format!(
                "path {path:?} must not contain empty, '.' or '..' segments"
            ));
        }
        if part.chars().any(is_forbidden_char) {
            return Err(format!(
                "path {path:?} must not contain control or bidirectional-control characters"
            ));
        }
        if part.to_ascii_lowercase().starts_with(".git") {
            return Err(format!("path {path:?} must not contain a {part:?} segment"));
        }
    }
    if parts.len() < 2 {
        return Err(format!(
            "path {path:?} is outside the build's environment folders ({}) and is not artifact.json",
            environments.join(", ")
        ));
    }
    if !environments.iter().any(|e| e == parts[0]) {
        // The usual cause: `artifact push` uploads the folders its
        // ARTIFACT_ENVIRONMENTS names (dev,staging,prod unless set), and
        // the server promotes through fewer.
        return Err(format!(
            "path {path:?}: {:?} is not one of the server's environments ({}); `artifact push` \
             uploads the folders named by ARTIFACT_ENVIRONMENTS (or --environments): set it to \
             {}",
            parts[0],
            environments.join(", "),
            environments.join(",")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_paths_stay_inside_the_build_folder() {
        let envs = vec!["dev".to_string(), "prod".to_string()];
        check_upload_path("artifact.json", &envs).unwrap();
        check_upload_path("dev/deployment.yaml", &envs).unwrap();
        check_upload_path("prod/sub/x.yaml", &envs).unwrap();
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "dev/../../x",
            "dev/./x",
            "dev//x",
            "dev",
            "qa/x.yaml",
            "README.md",
            "dev\\x",
            "dev/x\u{0}",
            "dev/.git/config",
            "dev/.gitmodules",
        ] {
            assert!(
                check_upload_path(bad, &envs).is_err(),
                "{bad:?} must be refused"
            );
        }
        // Cut for the message on a character boundary, whatever the bytes.
        let long = format!("dev/{}", "€".repeat(300));
        let err = check_upload_path(&long, &envs).unwrap_err();
        assert!(err.contains("longer than"), "{err}");
        // A folder of an environment the server does not promote through
        // names the CLI setting that sent it.
        let err = check_upload_path("staging/x.yaml", &envs).unwrap_err();
        assert!(
            err.contains("ARTIFACT_ENVIRONMENTS") && err.contains("set it to dev,prod"),
            "{err}"
        );
    }

    #[test]
    fn upload_paths_fit_every_checkout() {
        let envs = vec!["dev".to_string()];
        let name = |bytes: usize| format!("dev/{}.yaml", "a".repeat(bytes - 5));
        check_upload_path(&name(MAX_PATH_SEGMENT), &envs).unwrap();
        let err = check_upload_path(&name(MAX_PATH_SEGMENT + 1), &envs).unwrap_err();
        assert!(
            err.contains("256 bytes") && err.contains("at most 255"),
            "{err}"
        );
        let err = check_upload_path(&name(300), &envs).unwrap_err();
        assert!(err.contains("300 bytes"), "{err}");
        // Multi-byte names count in bytes: 100 × 3 bytes.
        assert!(check_upload_path(&format!("dev/{}", "€".repeat(100)), &envs).is_err());
        let deep = |levels: usize| format!("dev/{}x.yaml", "d/".repeat(levels - 2));
        check_upload_path(&deep(MAX_PATH_DEPTH), &envs).unwrap();
        let err = check_upload_path(&deep(MAX_PATH_DEPTH + 1), &envs).unwrap_err();
        assert!(
            err.contains("33 levels deep") && err.contains("at most 32"),
            "{err}"
        );
        assert!(check_upload_path(&deep(200), &envs).is_err());
    }

    #[test]
    fn bidirectional_controls_are_refused_like_control_characters() {
        let envs = vec!["dev".to_string()];
        for c in ['\u{202E}', '\u{2066}', '\u{200F}', '\u{061C}'] {
            let err = check_upload_path(&format!("dev/a{c}lmy.yaml"), &envs).unwrap_err();
            assert!(err.contains("bidirectional"), "{err}");
            assert!(is_forbidden_char(c));
        }
        assert!(!is_forbidden_char('é') && !is_forbidden_char('€'));
    }

    fn envs() -> Vec<String> {
        vec!["dev".into(), "staging".into(), "prod".into()]
    }

    #[test]
    fn accepts_ordinary_names() {
        check_service("product-api").unwrap();
        check_service("svc_1.v2").unwrap();
        check_environment("prod").unwrap();
        check_branch("master", &envs()).unwrap();
        check_branch("feature/login-page", &envs()).unwrap();
        check_branch("dev", &envs()).unwrap();
        check_artifact_id("master-1a2b3c-4d5e6f").unwrap();
    }

    #[test]
    fn refuses_escapes_and_odd_characters() {
        for bad in [
            "..", "../x", "a/../b", "/etc", "a/b", "", ".hidden", "a b", "a\0b", "a\nb",
        ] {
            let e = check_service(bad).unwrap_err();
            assert_eq!(e.field, "service", "{bad:?}");
        }
        assert!(check_service("a\u{7}b")
            .unwrap_err()
            .reason
            .contains("control"));
        assert!(check_service("../x").unwrap_err().reason.contains(".."));
        assert!(check_service("/x").unwrap_err().reason.contains("absolute"));
    }

    #[test]
    fn refuses_over_long_names() {
        let long = "a".repeat(MAX_SIMPLE_NAME + 1);
        assert!(check_service(&long)
            .unwrap_err()
            .reason
            .contains("at most 63"));
        check_service(&"a".repeat(MAX_SIMPLE_NAME)).unwrap();
        let long = "b".repeat(MAX_LONG_NAME + 1);
        assert!(check_branch(&long, &envs()).is_err());
        assert!(check_artifact_id(&long).is_err());
    }

    #[test]
    fn branches_cannot_collide_with_environment_folders() {
        assert!(check_branch("feature/dev", &envs()).is_err());
        assert!(check_branch("prod/x", &envs()).is_err());
        assert!(check_branch("feature//x", &envs()).is_err());
        assert!(check_branch("feature/x/", &envs()).is_err());
        assert!(check_branch("x/artifact.json", &envs()).is_err());
        assert!(check_branch("x.lock", &envs()).is_err());
    }

    #[test]
    fn message_names_field_and_value() {
        let e = check_environment("../prod").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid environment \"../prod\": must not contain \"..\""
        );
    }
}
