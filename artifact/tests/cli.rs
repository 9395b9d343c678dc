//! The CLI's failure contract, without a server: one `error: ...` line that
//! names the file or path and the problem, exit 1 for failures, exit 2 for
//! usage errors, no temporary files left behind, and `push` refusing a bad
//! build folder before it dials the server.

mod support;

use std::fs;
use std::path::Path;

use support::{clock, names_in, run_args, run_binary, run_in, INIT_MINIMAL};

const NOW: &str = "2026-01-02T03:04:05Z";
/// Nothing listens on port 1 of loopback: a connect fails at once.
const NO_SERVER: &str = "127.0.0.1:1";

fn spec_path(root: &Path) -> String {
    root.join("artifact.json").display().to_string()
}

/// A build folder with a valid artifact.json and one manifest.
async fn build_folder() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("temp dir");
    let outcome = run_in(root.path(), &INIT_MINIMAL, &clock(NOW)).await;
    assert_eq!(outcome.code, 0, "{outcome:?}");
    fs::create_dir(root.path().join("dev")).expect("mkdir");
    fs::write(
        root.path().join("dev/deployment.yaml"),
        "kind: Deployment\n",
    )
    .expect("write");
    root
}

#[tokio::test]
async fn missing_file_tells_to_run_init() {
    let root = tempfile::tempdir().expect("temp dir");
    let expected = format!(
        "error: {} not found: run `artifact init` first\n",
        spec_path(root.path())
    );
    for args in [
        vec!["end"],
        vec![
            "add",
            "test",
            "--passed",
            "1",
            "--failed",
            "0",
            "--skipped",
            "0",
        ],
        vec!["push", "--server", NO_SERVER],
    ] {
        let outcome = run_in(root.path(), &args, &clock(NOW)).await;
        assert_eq!(outcome.code, 1, "{args:?}");
        assert_eq!(outcome.err, expected, "{args:?}");
        assert!(outcome.out.is_empty());
    }
    assert!(names_in(root.path()).is_empty());
}

#[tokio::test]
async fn default_root_is_shown_as_given() {
    let outcome = run_args(&["end", "--file", "surely-missing-artifact.json"]).await;
    assert_eq!(outcome.code, 1);
    assert_eq!(
        outcome.err,
        "error: ./surely-missing-artifact.json not found: run `artifact init` first\n"
    );
}

#[tokio::test]
async fn malformed_json_names_the_file_and_the_place() {
    let root = tempfile::tempdir().expect("temp dir");
    let before = "{\n  \"id\": \"a\",\n";
    fs::write(root.path().join("artifact.json"), before).expect("write");
    for args in [vec!["end"], vec!["push", "--server", NO_SERVER]] {
        let outcome = run_in(root.path(), &args, &clock(NOW)).await;
        assert_eq!(outcome.code, 1, "{args:?}");
        assert_eq!(
            outcome.err,
            format!(
                "error: {}: EOF while parsing a value at line 3 column 0\n",
                spec_path(root.path())
            ),
            "{args:?}"
        );
    }
    // Left untouched.
    assert_eq!(
        fs::read_to_string(root.path().join("artifact.json")).expect("read"),
        before
    );
}

#[tokio::test]
async fn keys_of_other_versions_are_kept() {
    let root = tempfile::tempdir().expect("temp dir");
    fs::write(
        root.path().join("artifact.json"),
        "{\n  \"id\": \"a\",\n  \"sqad\": \"x\"\n}\n",
    )
    .expect("write");
    let outcome = run_in(
        root.path(),
        &[
            "add",
            "build",
            "--image",
            "i",
            "--tag",
            "t",
            "--docker-version",
            "1",
        ],
        &clock(NOW),
    )
    .await;
    assert_eq!(outcome.code, 0, "{}", outcome.err);
    let text = fs::read_to_string(root.path().join("artifact.json")).expect("read");
    assert!(text.contains("\"sqad\": \"x\""), "{text}");
    assert!(text.contains("\"dockerVersion\": \"1\""), "{text}");
}

#[tokio::test]
async fn push_refuses_a_symlinked_file_before_connecting() {
    let root = build_folder().await;
    let link = root.path().join("dev/service.yaml");
    std::os::unix::fs::symlink("/etc/passwd", &link).expect("symlink");
    let outcome = run_in(root.path(), &["push", "--server", NO_SERVER], &clock(NOW)).await;
    assert_eq!(outcome.code, 1, "{outcome:?}");
    assert_eq!(
        outcome.err,
        format!(
            "error: {}: is a symbolic link; refusing to upload it (copy the file into the build folder instead)\n",
            link.display()
        )
    );
}

#[tokio::test]
async fn push_refuses_a_symlinked_environment_folder_before_connecting() {
    let root = build_folder().await;
    let link = root.path().join("prod");
    std::os::unix::fs::symlink(root.path().join("dev"), &link).expect("symlink");
    let outcome = run_in(root.path(), &["push", "--server", NO_SERVER], &clock(NOW)).await;
    assert_eq!(outcome.code, 1, "{outcome:?}");
    assert!(
        outcome
            .err
            .starts_with(&format!("error: {}: is a symbolic link", link.display())),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn push_of_a_valid_folder_gets_as_far_as_connecting() {
    let root = build_folder().await;
    // Hidden entries are skipped, so this link is never looked at.
    std::os::unix::fs::symlink("/etc/passwd", root.path().join("dev/.cache")).expect("symlink");
    let outcome = run_in(root.path(), &["push", "--server", NO_SERVER], &clock(NOW)).await;
    assert_eq!(outcome.code, 1, "{outcome:?}");
    assert!(
        outcome
            .err
            .starts_with("error: cannot reach server at http://127.0.0.1:1: "),
        "{outcome:?}"
    );
    assert_eq!(outcome.err.lines().count(), 1, "{outcome:?}");
}

#[tokio::test]
async fn push_without_manifests_fails_before_connecting() {
    let root = tempfile::tempdir().expect("temp dir");
    let outcome = run_in(root.path(), &INIT_MINIMAL, &clock(NOW)).await;
    assert_eq!(outcome.code, 0, "{outcome:?}");
    let outcome = run_in(root.path(), &["push", "--server", NO_SERVER], &clock(NOW)).await;
    assert_eq!(outcome.code, 1, "{outcome:?}");
    assert!(outcome.err.contains("no files to upload"), "{outcome:?}");
}

#[test]
fn missing_required_flags_are_usage_errors() {
    let root = tempfile::tempdir().expect("temp dir");
    // (`init` needs neither --service nor --git-branch: `push` resolves
    // them, as the original release manager's pipelines expect.)
    let init_without_id: Vec<&str> = INIT_MINIMAL
        .iter()
        .copied()
        .filter(|arg| !arg.starts_with("--artifact-id") && !arg.starts_with("master-"))
        .collect();
    for (args, flag) in [
        (init_without_id, "--artifact-id"),
        (
            vec!["add", "test", "--passed", "1", "--failed", "0"],
            "--skipped",
        ),
        (vec!["push"], "--server"),
        (vec!["add", "lint"], "lint"),
    ] {
        // Through the binary, so that ARTIFACT_URL is surely unset.
        let outcome = run_binary(root.path(), &args, None);
        assert_eq!(outcome.code, 2, "{args:?}: {outcome:?}");
        assert!(outcome.err.contains(flag), "{args:?}: {outcome:?}");
        assert!(outcome.err.contains("Usage:"), "{args:?}: {outcome:?}");
        assert!(outcome.out.is_empty(), "{args:?}: {outcome:?}");
    }
    assert!(names_in(root.path()).is_empty());
}

#[tokio::test]
async fn failed_write_leaves_no_temporary_file() {
    let root = tempfile::tempdir().expect("temp dir");
    // A non-empty folder in the file's place: the final rename fails.
    fs::create_dir(root.path().join("artifact.json")).expect("mkdir");
    fs::write(root.path().join("artifact.json/keep"), "x").expect("write");
    let outcome = run_in(root.path(), &INIT_MINIMAL, &clock(NOW)).await;
    assert_eq!(outcome.code, 1, "{outcome:?}");
    assert!(
        outcome
            .err
            .starts_with(&format!("error: cannot write {}: ", spec_path(root.path()))),
        "{outcome:?}"
    );
    assert_eq!(outcome.err.lines().count(), 1);
    assert_eq!(names_in(root.path()), ["artifact.json"]);
}

#[tokio::test]
async fn init_overwrites_and_drops_old_stages() {
    let root = tempfile::tempdir().expect("temp dir");
    let long = format!(
        "{{\"id\": \"old\", \"squad\": \"{}\", \"stages\": [{{\"id\": \"build\"}}]}}",
        "x".repeat(5000)
    );
    fs::write(root.path().join("artifact.json"), long).expect("write");
    let outcome = run_in(root.path(), &INIT_MINIMAL, &clock(NOW)).await;
    assert_eq!(outcome.code, 0, "{outcome:?}");
    let text = fs::read_to_string(root.path().join("artifact.json")).expect("read");
    let spec = release_manager::spec::ArtifactSpec::parse(text.as_bytes()).expect("parses");
    assert_eq!(spec.id, "master-abc-def");
    assert!(spec.stages.is_empty() && spec.squad.is_empty());
    assert_eq!(spec.ci.start, NOW);
    assert_eq!(names_in(root.path()), ["artifact.json"]);
}

#[tokio::test]
async fn init_creates_a_missing_build_folder() {
    let base = tempfile::tempdir().expect("temp dir");
    let root = base.path().join("out/build");
    let outcome = run_in(&root, &INIT_MINIMAL, &clock(NOW)).await;
    assert_eq!(outcome.code, 0, "{outcome:?}");
    assert_eq!(names_in(&root), ["artifact.json"]);
}

#[test]
fn bad_fixed_time_is_one_error_line() {
    let root = tempfile::tempdir().expect("temp dir");
    let outcome = run_binary(root.path(), &INIT_MINIMAL, Some("yesterday"));
    assert_eq!(outcome.code, 1, "{outcome:?}");
    assert!(
        outcome
            .err
            .starts_with("error: ARTIFACT_FIXED_TIME=\"yesterday\" is not an RFC 3339 time"),
        "{outcome:?}"
    );
    assert_eq!(outcome.err.lines().count(), 1);
    assert!(names_in(root.path()).is_empty());
}

#[test]
fn binary_records_the_system_time_without_the_override() {
    let root = tempfile::tempdir().expect("temp dir");
    let before = chrono::Utc::now().timestamp();
    let outcome = run_binary(root.path(), &INIT_MINIMAL, None);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    let text = fs::read_to_string(root.path().join("artifact.json")).expect("read");
    let spec = release_manager::spec::ArtifactSpec::parse(text.as_bytes()).expect("parses");
    assert!(
        spec.ci.start.ends_with('Z') && spec.ci.start.len() == 20,
        "{}",
        spec.ci.start
    );
    let start = chrono::DateTime::parse_from_rfc3339(&spec.ci.start)
        .expect("rfc 3339")
        .timestamp();
    assert!(start >= before - 1 && start <= chrono::Utc::now().timestamp());
}

#[tokio::test]
async fn the_original_release_managers_pipeline_runs_unchanged() {
    // `artifact init` and `add` as the original release manager's README and
    // pipelines call them: its Slack flags and user mappings included, and
    // `add snyk-*` with only some flags.
    let root = tempfile::tempdir().expect("temp dir");
    let init = [
        "--slack-token",
        "xoxb-not-used",
        "--email-suffix",
        "@example.com",
        "init",
        "--artifact-id",
        "master-1a2b3c4d5e-6f7a8b9c0d",
        "--service",
        "product-api",
        "--squad",
        "nasa",
        "--git-author-name",
        "Ada Lovelace",
        "--git-author-email",
        "ada@example.com",
        "--git-message",
        "Add search",
        "--git-committer-name",
        "Ada Lovelace",
        "--git-committer-email",
        "ada@example.com",
        "--git-sha",
        "1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d",
        "--git-branch",
        "master",
        "--provider",
        "GitHub",
        "--url",
        "https://github.com/acme/product-api/commit/1a2b3c4d5e",
        "--name",
        "product-api",
        "--shuttle-plan-sha",
        "abc",
        "--shuttle-plan-url",
        "https://github.com/acme/plan/commit/abc",
        "--shuttle-plan-message",
        "plan",
        "--shuttle-plan-branch",
        "master",
        "--user-mappings",
        "ada@gmail.com=ada@example.com",
        "--ci-job-url",
        "https://jenkins.example.com/job/1",
    ];
    let outcome = run_in(root.path(), &init, &clock(NOW)).await;
    assert_eq!(outcome.code, 0, "{outcome:?}");
    for add in [
        vec!["add", "snyk-code", "--language", "go"],
        vec!["add", "snyk-docker", "--base-image", "alpine:3"],
        vec![
            "--message-file",
            "message.json",
            "add",
            "build",
            "--image",
            "i",
            "--tag",
            "t",
            "--docker-version",
            "27",
        ],
    ] {
        let outcome = run_in(root.path(), &add, &clock(NOW)).await;
        assert_eq!(outcome.code, 0, "{add:?}: {outcome:?}");
    }
    let written = fs::read_to_string(root.path().join("artifact.json")).expect("written");
    let spec: serde_json::Value = serde_json::from_str(&written).expect("JSON");
    let code = &spec["stages"][0];
    assert_eq!(code["id"], "snyk-code");
    assert_eq!(code["data"]["url"], "https://app.snyk.io");
    assert_eq!(code["data"]["vulnerabilities"]["high"], 0);
}

/// The artifact.json reader of the original release manager's first
/// versions, as strict as it was: unknown fields refused (it knew no
/// `service`, `namespace` or `application.branch`), times parsed as RFC 3339
/// whenever present (an empty string fails, as Go's `time.Time` does).
mod original_reader {
    // Fields that are only there to be accepted: the schema is the test.
    #![allow(dead_code)]
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Spec {
        pub id: String,
        #[serde(default)]
        pub application: Repository,
        #[serde(default)]
        pub ci: Ci,
        #[serde(default)]
        pub squad: String,
        #[serde(default)]
        pub shuttle: Shuttle,
        #[serde(default)]
        pub stages: Vec<Stage>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Repository {
        #[serde(default)]
        pub sha: String,
        #[serde(default)]
        pub author_name: String,
        #[serde(default)]
        pub author_email: String,
        #[serde(default)]
        pub committer_name: String,
        #[serde(default)]
        pub committer_email: String,
        #[serde(default)]
        pub message: String,
        #[serde(default)]
        pub name: String,
        #[serde(default)]
        pub url: String,
        #[serde(default)]
        pub provider: String,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Ci {
        #[serde(default)]
        pub job_url: String,
        #[serde(default, deserialize_with = "time")]
        pub start: Option<chrono::DateTime<chrono::FixedOffset>>,
        #[serde(default, deserialize_with = "time")]
        pub end: Option<chrono::DateTime<chrono::FixedOffset>>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Shuttle {
        #[serde(default)]
        pub plan: Repository,
        #[serde(default)]
        pub shuttle_version: String,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Stage {
        pub id: String,
        #[serde(default)]
        pub name: String,
        #[serde(default)]
        pub data: serde_json::Value,
    }

    fn time<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<chrono::DateTime<chrono::FixedOffset>>, D::Error> {
        let text = String::deserialize(deserializer)?;
        chrono::DateTime::parse_from_rfc3339(&text)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("parsing time {text:?}: {e}")))
    }
}

#[tokio::test]
async fn what_the_cli_writes_is_read_by_the_originals_strict_reader() {
    // The original's pipeline: no --service, --git-branch or --namespace
    // (our additions), so the file must be one its first reader accepts at
    // every step: after init (no end time yet), after each add, after end.
    let root = tempfile::tempdir().expect("temp dir");
    let init = [
        "init",
        "--artifact-id",
        "master-1a2b3c4d5e-6f7a8b9c0d",
        "--squad",
        "nasa",
        "--git-author-name",
        "Ada Lovelace",
        "--git-author-email",
        "ada@example.com",
        "--git-message",
        "Add search",
        "--git-sha",
        "1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d",
        "--provider",
        "GitHub",
        "--url",
        "https://github.com/acme/product-api/commit/1a2b3c4d5e",
        "--ci-job-url",
        "https://jenkins.example.com/job/1",
    ];
    let steps: Vec<Vec<&str>> = vec![
        init.to_vec(),
        vec![
            "add",
            "build",
            "--image",
            "acme/api",
            "--tag",
            "t",
            "--docker-version",
            "27",
        ],
        vec![
            "add",
            "test",
            "--passed",
            "10",
            "--failed",
            "0",
            "--skipped",
            "1",
        ],
        vec!["add", "snyk-code", "--language", "go"],
        vec!["add", "snyk-docker", "--base-image", "alpine:3"],
        vec!["end"],
    ];
    for step in &steps {
        let outcome = run_in(root.path(), step, &clock(NOW)).await;
        assert_eq!(outcome.code, 0, "{step:?}: {outcome:?}");
        let written = fs::read(root.path().join("artifact.json")).expect("written");
        let parsed: Result<original_reader::Spec, _> = serde_json::from_slice(&written);
        if let Err(e) = &parsed {
            panic!(
                "after {step:?} the original's reader refuses the file: {e}\n{}",
                String::from_utf8_lossy(&written)
            );
        }
    }
    let spec: original_reader::Spec =
        serde_json::from_slice(&fs::read(root.path().join("artifact.json")).unwrap()).unwrap();
    assert_eq!(spec.id, "master-1a2b3c4d5e-6f7a8b9c0d");
    assert_eq!(spec.stages.len(), 4);
    assert!(spec.ci.start.is_some() && spec.ci.end.is_some());
    assert_eq!(spec.application.author_email, "ada@example.com");

    // Asked for, our additions are written (and this reader would refuse
    // them, as it refused every field it did not know).
    let with_service = tempfile::tempdir().expect("temp dir");
    let mut init_with = init.to_vec();
    init_with.extend(["--service", "product-api", "--git-branch", "master"]);
    let outcome = run_in(with_service.path(), &init_with, &clock(NOW)).await;
    assert_eq!(outcome.code, 0, "{outcome:?}");
    let written = fs::read(with_service.path().join("artifact.json")).unwrap();
    let value: serde_json::Value = serde_json::from_slice(&written).unwrap();
    assert_eq!(value["service"], "product-api");
    assert_eq!(value["application"]["branch"], "master");
    assert!(serde_json::from_slice::<original_reader::Spec>(&written).is_err());
}
