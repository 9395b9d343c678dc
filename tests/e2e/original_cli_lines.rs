//! The original release manager's command lines, typed as its README,
//! Makefiles and CI pipelines of both eras typed them, against the real
//! server with tokens: hamctl's (global `--service` before the command,
//! short flags, several environments, `--current-branch` and shuttle.yaml
//! in a service's repository, `--from-env`, `--length`, the plural
//! aliases, `completion`, `version`, `--user-email`, its
//! `--http-base-url` / `--http-auth-token`) and the artifact CLI's
//! (`successful`, `failure --error-message`, `push --http-base-url
//! --http-auth-token`; its OAuth push flags are `ci_client_credentials`').
//! Lines with no meaning here (`--template`, `login`, the direct-commit
//! push flags) are refused with exit 2 and the new spelling;
//! docs/migration.md lists every line and its fate.

use crate::support::*;
use release_manager::pb;

const HAMCTL_TOKEN: &str = "ops-1";
const CI_TOKEN: &str = "ci-1";

async fn server(repo: &ConfigRepo) -> TestServer {
    TestServer::start_with(&repo.remote, |config| {
        // Comma-separated, as the original took them.
        config.auth.hamctl_token = Some(format!("{HAMCTL_TOKEN},ops-2"));
        config.auth.artifact_token = Some(CI_TOKEN.into());
        config.auth.unauthenticated = false;
    })
    .await
}

/// hamctl as a 2020 script ran it: the server and token from the
/// original's flags, nothing from HAMCTL_URL.
async fn original_hamctl(url: &str, args: &[&str]) -> CliOutput {
    let mut argv = vec!["--http-base-url", url, "--http-auth-token", HAMCTL_TOKEN];
    argv.extend_from_slice(args);
    Cli::hamctl().run(&argv).await
}

#[tokio::test]
async fn the_originals_hamctl_lines_run_unchanged() {
    let mut repo = ConfigRepo::new();
    let first = repo.add_build("shop", "master", 1);
    let second = repo.add_build("shop", "master", 2);
    let feature = repo.add_build("shop", "feature/x", 1);
    repo.push();
    let server = server(&repo).await;
    let url = server.url.as_str();

    // Global --service before the command; -e with two environments, -b.
    let run = original_hamctl(
        url,
        &[
            "--service",
            "shop",
            "release",
            "-e",
            "dev,staging",
            "-b",
            "master",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.err);
    for env in ["dev", "staging"] {
        assert!(
            run.out
                .contains(&format!("Released {second} of shop to {env}")),
            "{}",
            run.out
        );
    }
    let run = original_hamctl(url, &["--service", "shop", "status"]).await;
    assert_eq!(run.code, 0, "{}", run.err);
    assert!(run.out.contains(&second), "{}", run.out);

    // promote --from-env, describe's plural aliases and -c.
    let run = original_hamctl(
        url,
        &[
            "--service",
            "shop",
            "promote",
            "--env",
            "prod",
            "--from-env",
            "dev",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.err);
    let body = repo.remote_git(&["log", "-1", "--format=%B", "master"]);
    assert!(body.contains("Promoted-from-environment: dev"), "{body}");
    let run = original_hamctl(
        url,
        &[
            "--service",
            "shop",
            "describe",
            "releases",
            "--env",
            "prod",
            "-c",
            "1",
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.err);
    let described: serde_json::Value = serde_json::from_str(&run.out).unwrap();
    assert_eq!(described["releases"][0]["artifactId"], second.as_str());
    assert_eq!(described["releases"][0]["intent"], "RELEASE_INTENT_PROMOTE");
    let run = original_hamctl(url, &["--service", "shop", "describe", "artifacts"]).await;
    assert_eq!(run.code, 0, "{}", run.err);
    assert!(
        run.out.contains(&feature) && run.out.contains(&first),
        "{}",
        run.out
    );

    // rollback --length: accepted, said to be ignored.
    original_hamctl(
        url,
        &[
            "--service",
            "shop",
            "release",
            "-e",
            "staging",
            "--artifact",
            &first,
        ],
    )
    .await;
    let run = original_hamctl(
        url,
        &[
            "--service",
            "shop",
            "rollback",
            "--env",
            "staging",
            "--length",
            "3",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.err);
    assert!(run.err.contains("--length is ignored"), "{}", run.err);
    assert!(run.out.contains(&second), "{}", run.out);

    // --user-email names the releaser, as in 2020–2023.
    let run = original_hamctl(
        url,
        &[
            "--service",
            "shop",
            "--user-email",
            "una@example.com",
            "release",
            "-e",
            "dev",
            "--artifact",
            &first,
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.err);
    let info = commit_info(&repo, "master");
    assert!(
        info.committer.ends_with("<una@example.com>"),
        "{}",
        info.committer
    );
    assert!(
        info.subject.ends_with("by una@example.com"),
        "{}",
        info.subject
    );

    // A policy with the original's short flags.
    let run = original_hamctl(
        url,
        &[
            "--service",
            "shop",
            "policy",
            "apply",
            "auto-release",
            "-b",
            "master",
            "-e",
            "dev",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.err);

    // completion and version need no server.
    let run = Cli::hamctl().run(&["completion", "bash"]).await;
    assert_eq!(run.code, 0, "{}", run.err);
    assert!(run.out.contains("hamctl"), "{}", run.out);
    let run = Cli::hamctl().run(&["version"]).await;
    assert_eq!(run.code, 0);
    assert!(run.out.starts_with("hamctl "), "{}", run.out);
    server.stop().await;
}

#[tokio::test]
async fn in_a_services_repository_hamctl_reads_shuttle_yaml_and_the_branch() {
    let mut repo = ConfigRepo::new();
    repo.add_build("shop", "master", 1);
    let feature = repo.add_build("shop", "feature/x", 2);
    repo.push();
    let server = server(&repo).await;
    // The service's own repository: shuttle.yaml and a branch checked out.
    let service_repo = tempfile::tempdir().unwrap();
    let dir = service_repo.path();
    git(dir, &["init", "-q", "-b", "feature/x"]);
    std::fs::write(
        dir.join("shuttle.yaml"),
        "plan: git://github.com/acme/plan.git\nvars:\n  service: shop\n  k8s:\n    namespace: dev\n",
    )
    .unwrap();
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "x"]);
    let hamctl = Cli::hamctl()
        .current_dir(dir)
        .env("HAMCTL_URL", &server.url)
        .env("HAMCTL_AUTH_TOKEN", HAMCTL_TOKEN);
    let run = hamctl
        .run(&["release", "--env", "dev", "--current-branch"])
        .await;
    assert_eq!(run.code, 0, "{}", run.err);
    assert!(
        run.out
            .contains(&format!("Released {feature} of shop to dev")),
        "{}",
        run.out
    );
    let run = hamctl.run(&["status"]).await;
    assert_eq!(run.code, 0, "{}", run.err);
    assert!(run.out.contains(&feature), "{}", run.out);
    // Outside a repository, --current-branch says what to give instead.
    let elsewhere = tempfile::tempdir().unwrap();
    let run = Cli::hamctl()
        .current_dir(elsewhere.path())
        .env("HAMCTL_URL", &server.url)
        .env("HAMCTL_AUTH_TOKEN", HAMCTL_TOKEN)
        .run(&["--service", "shop", "release", "-e", "dev", "-c"])
        .await;
    assert_eq!(run.code, 1, "{}", run.err);
    assert!(
        run.err.contains("give --branch or --artifact"),
        "{}",
        run.err
    );
    server.stop().await;
}

#[tokio::test]
async fn the_originals_hamctl_lines_with_no_meaning_here_name_the_new_spelling() {
    for (args, named) in [
        (
            &[
                "--service",
                "shop",
                "describe",
                "release",
                "--env",
                "dev",
                "--template",
                "{{ .Service }}",
            ][..],
            "--output json",
        ),
        (&["status"][..], "--service"),
    ] {
        let run = Cli::hamctl().run(args).await;
        assert_eq!(run.code, 2, "{args:?}: {}", run.err);
        assert!(run.err.contains(named), "{args:?}: {}", run.err);
    }
}

#[tokio::test]
async fn the_originals_ci_lines_run_unchanged() {
    let repo = ConfigRepo::new();
    let server = TestServer::start_with(&repo.remote, |config| {
        config.settings.environments = vec!["dev".into(), "prod".into()];
        config.auth.hamctl_token = Some(HAMCTL_TOKEN.into());
        config.auth.artifact_token = Some(format!("old-ci,{CI_TOKEN}"));
        config.auth.unauthenticated = false;
    })
    .await;
    let build = tempfile::tempdir().unwrap();
    let root = build.path().to_str().unwrap();
    // The build folder of a pipeline written for a dev, staging, prod
    // world: staging/ is still there.
    for env in ["dev", "staging", "prod"] {
        std::fs::create_dir_all(build.path().join(env)).unwrap();
        std::fs::write(
            build.path().join(env).join("deployment.yaml"),
            format!("kind: Deployment\n# {env}\n"),
        )
        .unwrap();
    }
    let artifact = Cli::artifact().env("ARTIFACT_FIXED_TIME", "2026-03-04T05:06:07Z");
    let run = artifact
        .run(&[
            "init",
            "--root",
            root,
            "--slack-token",
            "xoxb",
            "--email-suffix",
            "@acme.com",
            "--artifact-id",
            "master-1a2b3c4d5e-6f7a8b9c0d",
            "--service",
            "shop",
            "--git-branch",
            "master",
            "--git-sha",
            "1a2b3c4d5e",
            "--git-author-name",
            "Dana Dev",
            "--git-author-email",
            "dana@example.com",
        ])
        .await;
    assert_eq!(run.code, 0, "{}", run.err);
    // The original's last pipeline steps: the outcome in its message file.
    let run = artifact
        .run(&["failure", "--root", root, "--error-message", "tests failed"])
        .await;
    assert_eq!(run.code, 0, "{}", run.err);
    let message: serde_json::Value =
        serde_json::from_slice(&std::fs::read(build.path().join("message.json")).unwrap()).unwrap();
    assert_eq!(message["text"], ":no_entry: *tests failed*");
    assert_eq!(message["color"], "#F2495C");
    let run = artifact.run(&["successful", "--root", root]).await;
    assert_eq!(run.code, 0, "{}", run.err);
    let message: serde_json::Value =
        serde_json::from_slice(&std::fs::read(build.path().join("message.json")).unwrap()).unwrap();
    assert_eq!(message["color"], "#73BF69");

    // Its push line of 2020–2023. With the server on dev, prod and the
    // CLI's default environments, the refusal names ARTIFACT_ENVIRONMENTS.
    let push = [
        "push",
        "--root",
        root,
        "--http-base-url",
        &server.url,
        "--http-auth-token",
        CI_TOKEN,
    ];
    let run = artifact.run(&push).await;
    assert_eq!(run.code, 1, "{}", run.out);
    assert!(
        run.err.contains("ARTIFACT_ENVIRONMENTS") && run.err.contains("dev,prod"),
        "{}",
        run.err
    );
    let run = artifact
        .clone()
        .env("ARTIFACT_ENVIRONMENTS", "dev,prod")
        .run(&push)
        .await;
    assert_eq!(run.code, 0, "{}", run.err);
    assert_eq!(
        repo.remote_ls("builds/shop/master"),
        vec!["artifact.json", "dev", "prod"]
    );

    // Its sign-on (2023 on) without the secret, and its direct commits
    // (2019): refused, naming what is missing or the replacement.
    for (extra, named) in [
        (
            &["--idp-url", "https://idp.example.com", "--client-id", "ci"][..],
            "--client-secret (ARTIFACT_CLIENT_SECRET)",
        ),
        (
            &[
                "--ssh-private-key",
                "/etc/key",
                "--config-repo",
                "git@github.com:acme/k8s.git",
            ][..],
            "ARTIFACT_URL",
        ),
    ] {
        let mut args = vec!["push", "--root", root, "--http-base-url", &server.url];
        args.extend_from_slice(extra);
        let run = artifact.run(&args).await;
        assert_eq!(run.code, 2, "{extra:?}: {}", run.err);
        assert!(run.err.contains(named), "{extra:?}: {}", run.err);
    }
    let run = artifact.run(&["version"]).await;
    assert_eq!(run.code, 0);
    let mut client = client_with_token(&server.url, Some(HAMCTL_TOKEN)).await;
    let status = client
        .status(pb::StatusRequest {
            service: "shop".into(),
            ..Default::default()
        })
        .await;
    assert!(status.is_ok(), "{status:?}");
    server.stop().await;
}
