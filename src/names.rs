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

/// Longest service, environment or namespace name (a Kubernetes DNS label).
pub const MAX_SIMPLE_NAME: usize = 63;
/// Longest artifact id.
pub const MAX_LONG_NAME: usize = 200;
/// Longest branch name, and longest folder segment a branch becomes.
pub const MAX_BRANCH: usize = 255;
/// Most `/`-separated segments of a branch (folders nested under
/// `builds/<service>/`).
pub const MAX_BRANCH_DEPTH: usize = 32;

fn err(field: &'static str, value: &str, reason: impl Into<String>) -> NameError {
    NameError {
        field,
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn too_long(field: &'static str, value: &str, max: usize) -> NameError {
    err(
        field,
        value,
        format!("is {} bytes long; at most {max} allowed", value.len()),
    )
}

/// The one rule for services, environments and namespaces: a Kubernetes
/// DNS label (RFC 1123), since each becomes a folder name and, for
/// namespaces, a Kubernetes namespace: 1 to 63 characters, lower-case
/// letters, digits and `-`, starting and ending with a letter or digit.
fn check_dns_label(field: &'static str, value: &str) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(err(field, value, "must not be empty"));
    }
    if value.len() > MAX_SIMPLE_NAME {
        return Err(too_long(field, value, MAX_SIMPLE_NAME));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        let what = if c.is_control() {
            "control characters".to_string()
        } else if c.is_ascii_uppercase() {
            format!("upper-case letters ({c:?})")
        } else {
            format!("{c:?}")
        };
        return Err(err(
            field,
            value,
            format!(
                "must not contain {what}: a Kubernetes DNS label has only lower-case letters, digits and '-'"
            ),
        ));
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Err(err(
            field,
            value,
            "must start and end with a letter or digit (a Kubernetes DNS label)",
        ));
    }
    Ok(())
}

/// A service name: a Kubernetes DNS label.
pub fn check_service(value: &str) -> Result<(), NameError> {
    check_dns_label("service", value)
}

/// An environment name: a Kubernetes DNS label.
pub fn check_environment(value: &str) -> Result<(), NameError> {
    check_dns_label("environment", value)
}

/// A namespace name: a Kubernetes DNS label.
pub fn check_namespace(value: &str) -> Result<(), NameError> {
    check_dns_label("namespace", value)
}

/// A branch name: whatever `git check-ref-format --branch` accepts, at most
/// [`MAX_BRANCH`] bytes and [`MAX_BRANCH_DEPTH`] segments. `/` nests
/// folders under `builds/<service>/`; [`branch_folder`] encodes what a
/// folder name cannot hold. `environments` is unused by the rule (any
/// segment is fine, an environment's name too: the folder encoding keeps
/// it apart from the environment folders) and kept for callers' sake.
pub fn check_branch(value: &str, _environments: &[String]) -> Result<(), NameError> {
    let field = "branch";
    if value.is_empty() {
        return Err(err(field, value, "must not be empty"));
    }
    if value.len() > MAX_BRANCH {
        return Err(too_long(field, value, MAX_BRANCH));
    }
    if let Some(reason) = git_branch_problem(value) {
        return Err(err(
            field,
            value,
            format!("{reason} (the rules of `git check-ref-format --branch`)"),
        ));
    }
    let depth = value.split('/').count();
    if depth > MAX_BRANCH_DEPTH {
        return Err(err(
            field,
            value,
            format!("has {depth} '/'-separated segments; at most {MAX_BRANCH_DEPTH} allowed"),
        ));
    }
    if let Some(segment) = branch_folder(value, &[])
        .split('/')
        .find(|s| s.len() > MAX_BRANCH)
    {
        let shown: String = segment.chars().take(40).collect();
        return Err(err(
            field,
            value,
            format!("segment {shown:?}... is longer than {MAX_BRANCH} bytes as a folder name"),
        ));
    }
    Ok(())
}

/// Why git would refuse `name` as a branch (`git check-ref-format
/// --branch`), or `None`.
fn git_branch_problem(name: &str) -> Option<String> {
    if name == "HEAD" {
        return Some("must not be \"HEAD\"".into());
    }
    if name.starts_with('-') {
        return Some("must not start with '-'".into());
    }
    if name.starts_with('/') || name.ends_with('/') {
        return Some("must not start or end with '/'".into());
    }
    if name.ends_with('.') {
        return Some("must not end with '.'".into());
    }
    if name.contains("..") {
        return Some("must not contain \"..\"".into());
    }
    if name.contains("@{") {
        return Some("must not contain \"@{\"".into());
    }
    // Git allows them, but they make a name read as another one.
    if name.chars().any(is_bidi_control) {
        return Some("must not contain bidirectional-control characters".into());
    }
    if let Some(c) = name.chars().find(|c| {
        c.is_ascii_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\')
    }) {
        let what = if c.is_ascii_control() {
            "control characters".to_string()
        } else {
            format!("{c:?}")
        };
        return Some(format!("must not contain {what}"));
    }
    for segment in name.split('/') {
        if segment.is_empty() {
            return Some("must not contain empty segments (\"//\")".into());
        }
        if segment.starts_with('.') {
            return Some(format!("segment {segment:?} must not start with '.'"));
        }
        if segment.ends_with(".lock") {
            return Some(format!("segment {segment:?} must not end with \".lock\""));
        }
    }
    None
}

/// Bytes percent-encoded in a branch's folder names: `%` itself (so the
/// encoding reverses), and what common file systems refuse in a name
/// although git allows it in a branch (`"`, `<`, `>`, `|`).
fn encoded_in_folder(byte: u8) -> bool {
    matches!(byte, b'%' | b'"' | b'<' | b'>' | b'|')
}

/// The folder path (under `builds/<service>/`) of a valid branch: its
/// `/`-separated segments, each percent-encoded where a folder name cannot
/// hold what the branch says. `%`, `"`, `<`, `>` and `|` become `%25`,
/// `%22`, `%3C`, `%3E` and `%7C`; a segment's last `.` becomes `%2E`; and
/// a segment after the first that is named like an environment or
/// `artifact.json` (which the folder above holds) has its first character
/// encoded (`release/prod` is `release/%70rod`). Most branches are their
/// own folder (`renovate/@types-node-20.x`, `fix#42`). [`branch_of_folder`]
/// reverses it.
pub fn branch_folder(branch: &str, environments: &[String]) -> String {
    let mut folder: Vec<u8> = Vec::with_capacity(branch.len());
    for (index, segment) in branch.split('/').enumerate() {
        if index > 0 {
            folder.push(b'/');
        }
        let collides =
            index > 0 && (segment == "artifact.json" || environments.iter().any(|e| e == segment));
        let last = segment.len().saturating_sub(1);
        for (at, byte) in segment.bytes().enumerate() {
            if encoded_in_folder(byte) || (collides && at == 0) || (at == last && byte == b'.') {
                folder.extend_from_slice(format!("%{byte:02X}").as_bytes());
            } else {
                // Bytes of multi-byte characters are never encoded.
                folder.push(byte);
            }
        }
    }
    String::from_utf8(folder).expect("only ASCII bytes were replaced")
}

/// The branch a folder path under `builds/<service>/` stands for: the
/// reverse of [`branch_folder`] (percent-decoding). A `%` not followed by
/// two hex digits stays as it is, so folders written by other tools read
/// as their names.
pub fn branch_of_folder(folder: &str) -> String {
    if !folder.contains('%') {
        return folder.to_string();
    }
    let out = percent_decode(folder.as_bytes());
    String::from_utf8(out).unwrap_or_else(|_| folder.to_string())
}

/// `text` percent-encoded but for RFC 3986's unreserved characters: safe
/// in a path, a query, a form and a Basic credential.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Percent-decodes bytes; a `%` not followed by two hex digits stays as it
/// is. Branch folders and gRPC's `grpc-message` are encoded this way.
pub fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' && at + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[at + 1..at + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(byte) = hex {
                out.push(byte);
                at += 3;
                continue;
            }
        }
        out.push(bytes[at]);
        at += 1;
    }
    out
}

/// An artifact id: 1 to 200 bytes, no whitespace, control characters, `/`
/// or `\\`, not starting with `.` and without `..`. It names a build in
/// commit titles, trailers and (in the original's S3 era) object keys
/// `<service>/<artifact-id>`; the ids the original's tools made
/// (`master-1a2b3c4d5e-6f7a8b9c0d`, a Docker tag) all fit.
pub fn check_artifact_id(value: &str) -> Result<(), NameError> {
    let field = "artifact_id";
    if value.is_empty() {
        return Err(err(field, value, "must not be empty"));
    }
    if value.len() > MAX_LONG_NAME {
        return Err(too_long(field, value, MAX_LONG_NAME));
    }
    if let Some(c) = value
        .chars()
        .find(|c| c.is_whitespace() || is_forbidden_char(*c) || matches!(c, '/' | '\\'))
    {
        let what = if c.is_control() {
            "control characters".to_string()
        } else if c.is_whitespace() {
            "whitespace".to_string()
        } else {
            format!("{c:?}")
        };
        return Err(err(field, value, format!("must not contain {what}")));
    }
    if value.starts_with('.') {
        return Err(err(field, value, "must not start with '.'"));
    }
    if value.contains("..") {
        return Err(err(field, value, "must not contain \"..\""));
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

    /// What the proto and docs/config-repository.md promise is accepted.
    #[test]
    fn the_documented_names_are_accepted() {
        for ok in [
            "product-api",
            "a",
            "svc-1",
            "0",
            &"a".repeat(MAX_SIMPLE_NAME),
        ] {
            check_service(ok).unwrap();
            check_environment(ok).unwrap();
            check_namespace(ok).unwrap();
        }
        for branch in [
            "master",
            "renovate/@types-node-20.x",
            "fix#42",
            "feature/JIRA-123+fix",
            "feature/dev",
            "release/prod",
            "a./b",
            "x/artifact.json",
            "Ünïcode/ブランチ",
            "@",
            "100%",
            "a\"b<c>|d",
            "{x}",
            "dev",
        ] {
            check_branch(branch, &envs()).unwrap_or_else(|e| panic!("{branch:?}: {e}"));
        }
        for id in [
            "master-1a2b3c4d5e-6f7a8b9c0d",
            "valid",
            "master-1234-5678",
            "fix#42-abc-def",
            "v1.2.3+build.4",
            "JIRA-123_x",
        ] {
            check_artifact_id(id).unwrap_or_else(|e| panic!("{id:?}: {e}"));
        }
    }

    /// What they promise is refused.
    #[test]
    fn the_documented_refusals_are_refused() {
        for bad in [
            "",
            "svc_1",
            "svc.v2",
            "Product",
            "-a",
            "a-",
            "..",
            "a/b",
            "/etc",
            "a b",
            "a\0b",
            "é",
            &"a".repeat(MAX_SIMPLE_NAME + 1),
        ] {
            let e = check_service(bad).unwrap_err();
            assert_eq!(e.field, "service", "{bad:?}");
            assert!(check_environment(bad).is_err(), "{bad:?}");
            assert!(check_namespace(bad).is_err(), "{bad:?}");
        }
        assert!(check_service("Product")
            .unwrap_err()
            .reason
            .contains("upper-case"));
        assert!(check_service("a\u{7}b")
            .unwrap_err()
            .reason
            .contains("control"));
        for bad in [
            "",
            "HEAD",
            "-x",
            "/a",
            "a/",
            "a//b",
            "a..b",
            "a/.b",
            ".a",
            "a.lock",
            "a/b.lock/c",
            "a@{b",
            "a b",
            "a~b",
            "a^b",
            "a:b",
            "a?b",
            "a*b",
            "a[b",
            "a\\b",
            "a\u{7f}b",
            "a.",
            &"b".repeat(MAX_BRANCH + 1),
            &vec!["x"; MAX_BRANCH_DEPTH + 1].join("/"),
        ] {
            let e = check_branch(bad, &envs()).unwrap_err();
            assert_eq!(e.field, "branch", "{bad:?}");
        }
        for bad in [
            "",
            "a b",
            "a/b",
            "a\\b",
            ".hidden",
            "a..b",
            "a\nb",
            &"c".repeat(MAX_LONG_NAME + 1),
        ] {
            assert!(check_artifact_id(bad).is_err(), "{bad:?}");
        }
    }

    /// The branch rule is git's: every name of a corpus is judged as `git
    /// check-ref-format --branch` judges it (lengths aside).
    #[test]
    fn branches_follow_git_check_ref_format() {
        let corpus = [
            "master",
            "HEAD",
            "@",
            "-x",
            "a/.b",
            "a..b",
            "a/b.",
            "a./b",
            "a.lock/b",
            "a@{b",
            "a b",
            "a~b",
            "fix#42",
            "renovate/@types-node-20.x",
            "feature/JIRA-123+fix",
            "a//b",
            "/a",
            "a/",
            "a\"b",
            "a<b>|c",
            "é",
            "a%b",
            "@a",
            "a@",
            "{x}",
            ".a",
            "a/.lock",
            "a.lock",
            "x.locks",
            "a;b",
            "a'b",
            "a$b",
            "a`b",
            "a&b",
            "a!b",
            "a\tb",
            "a:b",
            "a?b",
            "a*b",
            "a[b",
            "a]b",
            "a\\b",
            "@{-1}",
            "a/@",
            "a.b.c",
            "a/-b",
            "a\u{7f}",
        ];
        for name in corpus {
            let git = std::process::Command::new("git")
                .args(["check-ref-format", "--branch", name])
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .current_dir(std::env::temp_dir())
                .output()
                .expect("git runs");
            let ours = check_branch(name, &envs());
            assert_eq!(
                ours.is_ok(),
                git.status.success(),
                "{name:?}: git says {}, we say {ours:?}",
                git.status
            );
        }
    }

    #[test]
    fn branch_folders_encode_what_a_folder_cannot_hold_and_reverse() {
        let cases = [
            ("master", "master"),
            ("renovate/@types-node-20.x", "renovate/@types-node-20.x"),
            ("fix#42", "fix#42"),
            ("feature/JIRA-123+fix", "feature/JIRA-123+fix"),
            ("dev", "dev"),
            ("feature/dev", "feature/%64ev"),
            ("release/prod/x", "release/%70rod/x"),
            ("x/artifact.json", "x/%61rtifact.json"),
            ("100%", "100%25"),
            ("a\"b<c>|d", "a%22b%3Cc%3E%7Cd"),
            ("a./b", "a%2E/b"),
            ("Ünï/ブ", "Ünï/ブ"),
        ];
        for (branch, folder) in cases {
            assert_eq!(branch_folder(branch, &envs()), folder, "{branch:?}");
            assert_eq!(branch_of_folder(folder), branch, "{folder:?}");
        }
        // Folders other tools wrote read as their names.
        assert_eq!(branch_of_folder("50%off"), "50%off");
        assert_eq!(branch_of_folder("a%"), "a%");
    }

    #[test]
    fn message_names_field_and_value() {
        let e = check_environment("../prod").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid environment \"../prod\": must not contain '.': a Kubernetes DNS label has only lower-case letters, digits and '-'"
        );
    }
}
