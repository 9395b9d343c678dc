//! Golden-file test: a whole CI pipeline (init with every flag, each stage,
//! a stage re-added, end) must produce exactly `tests/golden/artifact.json`,
//! both in process with an injected clock and through the real binary with
//! `ARTIFACT_FIXED_TIME`. The golden file is written by hand from SPEC §2.
//!
//! Note on key order: `ArtifactSpec` fields are written in declaration
//! order, while the keys inside a stage's `data` (a `serde_json::Value`)
//! come out sorted, because the workspace builds serde_json without its
//! `preserve_order` feature.

mod support;

use std::path::Path;

use support::{clock, names_in, run_binary, run_in};

const START: &str = "2026-01-02T03:04:05Z";
const END: &str = "2026-01-02T03:09:30Z";
const GOLDEN: &str = include_str!("golden/artifact.json");
const TAG: &str = "master-1a2b3c4d5e-6f7a8b9c0d";

/// The pipeline's steps, and the time each records (if any).
fn pipeline() -> Vec<(Vec<&'static str>, &'static str)> {
    vec![
        (
            vec![
                "init",
                "--artifact-id",
                TAG,
                "--service",
                "product-api",
                "--namespace",
                "team-a",
                "--squad",
                "squad-a",
                "--git-branch",
                "master",
                "--git-sha",
                "1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d",
                "--git-author-name",
                "Jane Doe",
                "--git-author-email",
                "jane@example.com",
                "--git-committer-name",
                "Jøhn \"JR\" Roe",
                "--git-committer-email",
                "john@example.com",
                "--git-message",
                "Add the product search\n\nCloses #12",
                "--url",
                "https://github.com/example/product-api/commit/1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d",
                "--name",
                "product-api",
                "--provider",
                "GitHub",
                "--ci-job-url",
                "https://ci.example.com/job/product-api/42",
                "--shuttle-plan-sha",
                "6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e",
                "--shuttle-plan-branch",
                "main",
                "--shuttle-plan-message",
                "Bump the go plan",
                "--shuttle-plan-url",
                "https://github.com/example/shuttle-plan/commit/6f7a8b9c0d",
                "--shuttle-plan-author-name",
                "Plan Author",
                "--shuttle-plan-author-email",
                "plan@example.com",
                "--shuttle-plan-committer-name",
                "Plan Committer",
                "--shuttle-plan-committer-email",
                "plan-committer@example.com",
                "--shuttle-version",
                "v0.19.1",
            ],
            START,
        ),
        (
            vec![
                "add",
                "build",
                "--image",
                "quay.io/example/product-api",
                "--tag",
                TAG,
                "--docker-version",
                "24.0.7",
            ],
            START,
        ),
        (
            vec![
                "add",
                "push",
                "--image",
                "quay.io/example/product-api",
                "--tag",
                TAG,
                "--docker-version",
                "24.0.8",
            ],
            START,
        ),
        (
            vec![
                "add",
                "test",
                "--passed",
                "10",
                "--failed",
                "1",
                "--skipped",
                "2",
                "--url",
                "https://ci.example.com/job/product-api/42/tests",
            ],
            START,
        ),
        (
            vec![
                "add",
                "snyk-code",
                "--language",
                "go",
                "--snyk-version",
                "1.1260.0",
                "--url",
                "https://app.snyk.io/code/1",
                "--high",
                "1",
                "--medium",
                "2",
                "--low",
                "3",
            ],
            START,
        ),
        (
            vec![
                "add",
                "snyk-docker",
                "--base-image",
                "alpine:3.19",
                "--snyk-version",
                "1.1260.0",
                "--tag",
                TAG,
                "--url",
                "https://app.snyk.io/docker/1",
                "--high",
                "0",
                "--medium",
                "4",
                "--low",
                "5",
            ],
            START,
        ),
        // A re-run of the test step: replaces the first result in place.
        (
            vec![
                "add",
                "test",
                "--passed",
                "12",
                "--failed",
                "0",
                "--skipped",
                "1",
                "--url",
                "https://ci.example.com/job/product-api/43/tests",
            ],
            START,
        ),
        (vec!["end"], END),
    ]
}

fn read_result(root: &Path) -> String {
    // Every write was atomic: only the file itself is left.
    assert_eq!(names_in(root), ["artifact.json"]);
    std::fs::read_to_string(root.join("artifact.json")).expect("artifact.json written")
}

#[tokio::test]
async fn pipeline_in_process_matches_the_golden_file() {
    let root = tempfile::tempdir().expect("temp dir");
    for (args, time) in pipeline() {
        let outcome = run_in(root.path(), &args, &clock(time)).await;
        assert_eq!(outcome.code, 0, "{args:?}: {outcome:?}");
        assert!(outcome.err.is_empty(), "{args:?}: {outcome:?}");
        assert_eq!(outcome.out.lines().count(), 1, "{args:?}: {outcome:?}");
    }
    assert_eq!(read_result(root.path()), GOLDEN);
}

#[test]
fn pipeline_through_the_binary_matches_the_golden_file() {
    let root = tempfile::tempdir().expect("temp dir");
    for (args, time) in pipeline() {
        let outcome = run_binary(root.path(), &args, Some(time));
        assert_eq!(outcome.code, 0, "{args:?}: {outcome:?}");
        assert!(outcome.err.is_empty(), "{args:?}: {outcome:?}");
    }
    assert_eq!(read_result(root.path()), GOLDEN);
}

#[test]
fn golden_file_is_a_valid_spec_in_canonical_form() {
    let spec = release_manager::spec::ArtifactSpec::parse(GOLDEN.as_bytes()).expect("parses");
    assert_eq!(spec.to_pretty_json(), GOLDEN);
    let ids: Vec<&str> = spec.stages.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["build", "push", "test", "snyk-code", "snyk-docker"]);
    let sum = spec.vulnerabilities().expect("scans readable");
    assert_eq!((sum.high, sum.medium, sum.low), (1, 6, 8));
}
