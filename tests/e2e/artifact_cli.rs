//! The artifact binary as a CI pipeline runs it, against the real server:
//! the build lands as a build commit with the right tree and is
//! auto-released in the same push.

use crate::support::*;
use release_manager::pb;

/// Runs the real artifact binary with `--root root` and `args`, its clock
/// fixed, in an environment without any CI variables.
async fn artifact(root: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let mut argv = vec!["--root", root.to_str().unwrap()];
    argv.extend_from_slice(args);
    let run = Cli::artifact()
        .env("ARTIFACT_FIXED_TIME", "2026-03-04T05:06:07Z")
        .run(&argv)
        .await;
    (run.code, run.out, run.err)
}

#[tokio::test]
async fn a_ci_pipeline_pushes_a_build_that_is_auto_released() {
    let mut repo = ConfigRepo::new();
    repo.add_build("checkout", "master", 1);
    repo.push();
    let server = TestServer::start_with(&repo.remote, |config| {
        config.auth.hamctl_token = Some("ops".into());
        config.auth.artifact_token = Some("ci-token".into());
        config.auth.unauthenticated = false;
    })
    .await;
    let url = server.url.clone();
    let (code, _, err) = hamctl(&[
        "--server",
        &url,
        "--auth-token",
        "ops",
        "policy",
        "--service",
        "checkout",
        "apply",
        "auto-release",
        "--branch",
        "master",
        "--env",
        "dev",
    ])
    .await;
    assert_eq!(code, 0, "{err}");

    // The CI job's build folder: manifests per environment.
    let root = tempfile::tempdir().unwrap();
    for env in ["dev", "prod"] {
        std::fs::create_dir_all(root.path().join(env)).unwrap();
        std::fs::write(
            root.path().join(env).join("deployment.yaml"),
            format!("kind: Deployment # {env}\n"),
        )
        .unwrap();
    }
    let steps: Vec<Vec<&str>> = vec![
        vec![
            "init",
            "--artifact-id",
            "master-abc-2",
            "--service",
            "checkout",
            "--git-branch",
            "master",
            "--git-sha",
            "abc123",
            "--git-author-name",
            "Ci Author",
            "--git-author-email",
            "author@example.com",
            "--git-message",
            "Speed up checkout",
            "--ci-job-url",
            "https://ci.example.com/checkout/2",
        ],
        vec![
            "add",
            "build",
            "--image",
            "registry/checkout",
            "--tag",
            "master-abc-2",
            "--docker-version",
            "27.0",
        ],
        vec![
            "add",
            "push",
            "--image",
            "registry/checkout",
            "--tag",
            "master-abc-2",
            "--docker-version",
            "27.0",
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
        vec![
            "add",
            "snyk-code",
            "--language",
            "go",
            "--snyk-version",
            "1.0",
            "--url",
            "https://snyk",
            "--high",
            "0",
            "--medium",
            "1",
            "--low",
            "2",
        ],
        vec!["end"],
    ];
    for step in steps {
        let (code, _, err) = artifact(root.path(), &step).await;
        assert_eq!(code, 0, "{step:?}: {err}");
    }
    let written = std::fs::read_to_string(root.path().join("artifact.json")).unwrap();
    assert!(
        written.contains("\"end\": \"2026-03-04T05:06:07Z\""),
        "{written}"
    );

    let (code, _, err) = artifact(
        root.path(),
        &["push", "--server", &url, "--auth-token", "ops"],
    )
    .await;
    assert_eq!(code, 1, "the hamctl token cannot upload");
    assert!(err.contains("error:"), "{err}");

    let (code, out, err) = artifact(
        root.path(),
        &["push", "--server", &url, "--auth-token", "ci-token"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("master-abc-2") && out.contains("checkout"),
        "{out}"
    );
    assert!(out.contains("dev"), "the auto-release is reported: {out}");

    // The build commit, then the auto-release on top of it.
    let build = commit_info(&repo, "master~1");
    assert_eq!(build.subject, "[checkout] build tag master-abc-2");
    assert_eq!(build.author, "Ci Author <author@example.com>");
    assert_eq!(
        build.changed,
        [
            "builds/checkout/master/artifact.json",
            "builds/checkout/master/dev/deployment.yaml",
            "builds/checkout/master/dev/service.yaml",
            "builds/checkout/master/prod/deployment.yaml",
            "builds/checkout/master/prod/service.yaml",
            "builds/checkout/master/staging/deployment.yaml",
            "builds/checkout/master/staging/service.yaml",
        ]
    );
    assert_eq!(
        repo.remote_file("builds/checkout/master/artifact.json")
            .unwrap(),
        written
    );
    let release = commit_info(&repo, "master");
    assert_eq!(
        release.subject,
        "[dev/checkout] auto release master-abc-2 by release-manager@localhost"
    );
    assert!(release.body.contains("Release-intent: AutoRelease"));
    assert_eq!(
        repo.remote_file("dev/releases/dev/checkout/deployment.yaml")
            .unwrap(),
        "kind: Deployment # dev\n"
    );

    // Status shows what the spec says.
    let mut client = client_with_token(&url, Some("ops")).await;
    let status = client
        .status(pb::StatusRequest {
            service: "checkout".into(),
            namespace: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let dev = status.environments[0].artifact.as_ref().unwrap();
    assert_eq!(dev.artifact_id, "master-abc-2");
    assert_eq!(dev.message, "Speed up checkout");
    let v = dev.vulnerabilities.unwrap();
    assert_eq!((v.high, v.medium, v.low), (0, 1, 2));

    // Pushing the same build again changes nothing.
    let head = repo.remote_head();
    let (code, out, _) = artifact(
        root.path(),
        &["push", "--server", &url, "--auth-token", "ci-token"],
    )
    .await;
    assert_eq!(code, 0);
    assert!(out.contains("already"), "{out}");
    assert_eq!(repo.remote_head(), head);
    server.stop().await;
}

#[tokio::test]
async fn push_resolves_the_service_and_branch_init_was_not_told() {
    // As the original release manager's pipelines run: `init` names neither
    // the service nor the branch; the build runs in a checkout of its branch
    // (and no CI branch variable is set: the child gets none).
    let repo = ConfigRepo::new();
    let server = TestServer::start(&repo.remote).await;
    let root = tempfile::tempdir().unwrap();
    git(root.path(), &["init", "-q", "-b", "feature/compat"]);
    git(
        root.path(),
        &["commit", "-q", "--allow-empty", "-m", "source"],
    );
    std::fs::create_dir_all(root.path().join("dev")).unwrap();
    std::fs::write(
        root.path().join("dev/deployment.yaml"),
        "kind: Deployment\n",
    )
    .unwrap();
    let (code, out, err) = artifact(
        root.path(),
        &[
            "init",
            "--artifact-id",
            "feature-compat-1",
            "--git-sha",
            "abc123",
            "--git-author-name",
            "Ada Lovelace",
            "--git-author-email",
            "ada@example.com",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(set at push)"), "{out}");

    // Without a service, push says what to give.
    let (code, _, err) = artifact(root.path(), &["push", "--server", &server.url]).await;
    assert_eq!(code, 1);
    assert!(err.contains("--service"), "{err}");

    let (code, out, err) = artifact(
        root.path(),
        &["push", "--server", &server.url, "--service", "checkout"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("feature/compat"), "{out}");
    let stored = repo
        .remote_file("builds/checkout/feature/compat/artifact.json")
        .expect("stored under the checkout's branch");
    let spec: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(spec["service"], "checkout");
    assert_eq!(spec["application"]["branch"], "feature/compat");
    server.stop().await;
}

#[tokio::test]
async fn push_refuses_a_path_no_checkout_can_hold_before_dialling() {
    let root = tempfile::tempdir().unwrap();
    let (code, _, err) = artifact(
        root.path(),
        &[
            "init",
            "--artifact-id",
            "master-1",
            "--service",
            "shop",
            "--git-branch",
            "master",
            "--git-sha",
            "abc123",
            "--git-author-name",
            "Ada Lovelace",
            "--git-author-email",
            "ada@example.com",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    // 33 levels: one more than any checkout is promised.
    let deep = root.path().join("dev").join("d/".repeat(31));
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("x.yaml"), "kind: Deployment\n").unwrap();
    // Nothing listens on port 1: an attempt to dial would say so instead.
    let (code, _, err) = artifact(root.path(), &["push", "--server", "127.0.0.1:1"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("33 levels deep") && err.contains("at most 32"),
        "{err}"
    );
}
