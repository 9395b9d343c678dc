//! The naming rule end to end: builds of branches that git and every CI
//! allow (`renovate/@types-node-20.x`, `fix#42`, `feature/JIRA-123+fix`, and
//! `release/prod`, whose last segment is an environment's name) are made by
//! the artifact CLI, uploaded, released with hamctl by the branch as typed,
//! and stored in the folders the documented encoding gives; an upload with
//! keys this server does not know is stored untouched, with a warning.

use crate::support::*;

async fn artifact(root: &std::path::Path, args: &[&str]) -> CliOutput {
    let mut argv = vec!["--root", root.to_str().unwrap()];
    argv.extend_from_slice(args);
    Cli::artifact()
        .env("ARTIFACT_FIXED_TIME", "2026-03-04T05:06:07Z")
        .run(&argv)
        .await
}

#[tokio::test]
async fn builds_of_any_git_branch_upload_and_release() {
    let mut repo = ConfigRepo::new();
    repo.add_build("web", "master", 1);
    repo.push();
    let server = TestServer::start(&repo.remote).await;
    let branches = [
        ("renovate/@types-node-20.x", "renovate/@types-node-20.x"),
        ("fix#42", "fix#42"),
        ("feature/JIRA-123+fix", "feature/JIRA-123+fix"),
        ("release/prod", "release/%70rod"),
    ];
    for (n, (branch, folder)) in branches.into_iter().enumerate() {
        let id = format!("build-{n}-abc");
        let root = tempfile::tempdir().unwrap();
        for env in ["dev", "prod"] {
            std::fs::create_dir_all(root.path().join(env)).unwrap();
            std::fs::write(
                root.path().join(env).join("deployment.yaml"),
                format!("kind: Deployment # {branch}\n"),
            )
            .unwrap();
        }
        let init = artifact(
            root.path(),
            &[
                "init",
                "--artifact-id",
                &id,
                "--service",
                "web",
                "--git-branch",
                branch,
                "--git-sha",
                "abc123",
                "--git-author-name",
                "Ci Author",
                "--git-author-email",
                "author@example.com",
            ],
        )
        .await;
        assert_eq!(init.code, 0, "{branch}: {}", init.err);
        let pushed = artifact(root.path(), &["push", "--server", &server.url]).await;
        assert_eq!(pushed.code, 0, "{branch}: {}", pushed.err);
        assert!(
            repo.remote_file(&format!("builds/web/{folder}/artifact.json"))
                .is_some_and(|text| text.contains(&id)),
            "{branch} is stored in builds/web/{folder}"
        );

        let (code, out, err) = hamctl(&[
            "--server",
            &server.url,
            "release",
            "--service",
            "web",
            "--env",
            "dev",
            "--branch",
            branch,
        ])
        .await;
        assert_eq!(code, 0, "{branch}: {err}");
        assert!(out.contains(&id), "{out}");
        let (code, out, err) = hamctl(&[
            "--server",
            &server.url,
            "describe",
            "artifact",
            "--service",
            "web",
            "--branch",
            branch,
        ])
        .await;
        assert_eq!(code, 0, "{branch}: {err}");
        assert!(out.contains(branch), "the branch as git names it: {out}");
    }
    let status = server.status("web").await;
    let dev = &status.environments[0];
    assert_eq!(
        dev.artifact.as_ref().map(|a| a.branch.as_str()),
        Some("release/prod")
    );
    server.stop().await;
}

#[tokio::test]
async fn unknown_keys_are_stored_untouched_and_named_in_a_warning() {
    let repo = ConfigRepo::new();
    let server = TestServer::start(&repo.remote).await;
    let text = spec("web", "master", "master-1").replace(
        "\"stages\": []",
        "\"stages\": [],\n  \"provenance\": {\"builder\": \"ci-v9\"}",
    );
    let answer = push(
        &server.url,
        None,
        chunks(&[("artifact.json", &text), ("dev/x.yaml", "x")]),
    )
    .await
    .expect("taken");
    assert_eq!(answer.warnings.len(), 1, "{:?}", answer.warnings);
    assert!(
        answer.warnings[0].contains("provenance"),
        "{:?}",
        answer.warnings
    );
    assert_eq!(
        repo.remote_file("builds/web/master/artifact.json")
            .as_deref(),
        Some(text.as_str()),
        "stored byte for byte"
    );
    server.stop().await;
}
