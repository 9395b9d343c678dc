//! The server binary with single sign-on from its flags: a bad access file
//! refuses the start naming the line, and the rules are read again on
//! SIGHUP (a broken file then keeps the old rules). The commit flags
//! (`--committer-*`, `--signing-key`) take effect the same way.

use std::time::Duration;

use crate::support::oidc::Provider;
use crate::support::process::workspace_binary;
use crate::support::*;
use tonic::Code;

const DEVELOPERS_IN_DEV: &str = "rules:
  - name: developers
    groups: [dev-team]
    environments: [dev]
    actions: [release]
";

const DEVELOPERS_EVERYWHERE: &str = "rules:
  - name: developers
    groups: [dev-team]
    environments: [\"*\"]
    actions: [release]
";

/// `release-manager start` over `repo` with single sign-on at `issuer`, the
/// rules of `access`, and `extra` flags.
fn server(
    repo: &ConfigRepo,
    data: &std::path::Path,
    issuer: &str,
    access: &std::path::Path,
    extra: &[&str],
) -> RunningCli {
    let mut args = vec![
        "start",
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--poll-interval",
        "0",
        "--oidc-client-id",
        "hamctl",
        "--oidc-leeway",
        "5s",
    ];
    let repo_path = repo.remote.to_str().unwrap().to_string();
    let data = data.to_str().unwrap().to_string();
    let access = access.to_str().unwrap().to_string();
    args.extend(["--config-repo", &repo_path, "--data-dir", &data]);
    args.extend(["--oidc-issuer", issuer, "--access", &access]);
    args.extend(extra);
    Cli::new(workspace_binary("release-manager"))
        .env("NO_COLOR", "1")
        .spawn(&args)
}

/// The gRPC address a started server logged.
async fn address_of(server: &mut RunningCli) -> String {
    server.err_until(|line| line.contains("serving gRPC")).await;
    let line = server
        .err_read()
        .lines()
        .find(|l| l.contains("serving gRPC"))
        .unwrap()
        .to_string();
    let addr = line
        .split("addr=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    format!("http://{addr}")
}

#[tokio::test]
async fn a_bad_access_file_refuses_the_start_and_sighup_reloads_the_rules() {
    let mut repo = ConfigRepo::new();
    repo.add_build("shop", "master", 1);
    repo.push();
    let people = Provider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let access = dir.path().join("access.yaml");
    std::fs::write(
        &access,
        "rules:\n  - name: a\n    groups: [x]\n    actions: [deploy]\n",
    )
    .unwrap();
    let refused = server(
        &repo,
        &dir.path().join("data"),
        &people.issuer,
        &access,
        &[],
    )
    .finish(Duration::from_secs(60))
    .await;
    assert_eq!(refused.code, 1);
    assert!(
        refused.err.contains("deploy") && refused.err.contains("line 4"),
        "{}",
        refused.err
    );

    std::fs::write(&access, DEVELOPERS_IN_DEV).unwrap();
    let key = dir.path().join("key");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(made.status.success());
    let mut running = server(
        &repo,
        &dir.path().join("data"),
        &people.issuer,
        &access,
        &[
            "--signing-key",
            key.to_str().unwrap(),
            "--committer-name",
            "Release Bot",
            "--committer-email",
            "bot@example.com",
        ],
    );
    let url = address_of(&mut running).await;
    let dana = people.id_token("dev").await;
    let release = |env: &'static str| {
        let (url, token) = (url.clone(), dana.clone());
        async move {
            client_with_token(&url, Some(&token))
                .await
                .release(release_branch("shop", env, "master"))
                .await
        }
    };
    release("dev").await.expect("developers release to dev");
    let commit = commit_info(&repo, "master");
    assert_eq!(commit.committer, "Release Bot <bot@example.com>");
    assert_eq!(commit.author, "Dana Developer <dana@example.com>");
    let signed = repo.remote_git(&["cat-file", "commit", "master"]);
    assert!(
        signed.contains("gpgsig -----BEGIN SSH SIGNATURE-----"),
        "{signed}"
    );
    let denied = release("prod").await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(denied.message().contains("prod"), "{denied:?}");

    // A broken file on SIGHUP keeps the rules in force.
    std::fs::write(&access, "rules: [").unwrap();
    running.signal(libc::SIGHUP);
    running
        .err_until(|line| line.contains("access rules not reloaded"))
        .await;
    assert_eq!(
        release("prod").await.unwrap_err().code(),
        Code::PermissionDenied
    );

    std::fs::write(&access, DEVELOPERS_EVERYWHERE).unwrap();
    running.signal(libc::SIGHUP);
    running
        .err_until(|line| line.contains("access rules reloaded"))
        .await;
    release("prod").await.expect("the new rules allow prod");
    running.signal(libc::SIGTERM);
    let stopped = running.finish(Duration::from_secs(30)).await;
    assert_eq!(stopped.code, 0, "{}", stopped.err);
}
