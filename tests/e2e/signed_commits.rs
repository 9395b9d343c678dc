//! Commits signed by the server: with an SSH key, every commit it makes
//! (build, release, policy, auto-release) carries a signature in git's SSH
//! format that `git verify-commit` accepts given an allowed-signers file,
//! and names the committer the server was told to use, while the person
//! releasing stays the author and in `Released-by`.

use std::sync::Arc;

use crate::support::git::git_output;
use crate::support::*;

/// A fresh ed25519 key pair made by ssh-keygen; the private key's path and
/// the public key's line.
fn signing_key(dir: &std::path::Path) -> (std::path::PathBuf, String) {
    let key = dir.join("signing-key");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "release-bot", "-f"])
        .arg(&key)
        .env_clear()
        .output()
        .expect("ssh-keygen runs (openssh-client)");
    assert!(made.status.success(), "{made:?}");
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    (key, public.trim().to_string())
}

/// `git verify-commit` of `commit` in `repo`, trusting `allowed_signers`.
fn verify_commit(
    repo: &std::path::Path,
    allowed_signers: &std::path::Path,
    commit: &str,
) -> std::process::Output {
    git_output(
        repo,
        &[
            "-c",
            "gpg.format=ssh",
            "-c",
            &format!("gpg.ssh.allowedSignersFile={}", allowed_signers.display()),
            "verify-commit",
            "--verbose",
            commit,
        ],
    )
}

#[tokio::test]
async fn git_verify_commit_accepts_every_commit_the_server_makes() {
    let mut repo = ConfigRepo::new();
    repo.add_build("shop", "master", 1);
    repo.push();
    let fixture_head = repo.remote_head();
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = signing_key(dir.path());
    let allowed = dir.path().join("allowed_signers");
    std::fs::write(&allowed, format!("release-bot@example.com {public}\n")).unwrap();
    let signer = Arc::new(server_api::CommitSigner::from_file(&key).expect("the key reads"));
    assert_eq!(
        signer.public_key().split(' ').nth(1),
        public.split(' ').nth(1)
    );
    let server = TestServer::start_with(&repo.remote, |config| {
        config.writer.commits = server_api::CommitIdentity {
            committer: Some(("Release Bot".into(), "release-bot@example.com".into())),
            signer: Some(signer),
        };
    })
    .await;

    // A policy, a build that it auto-releases, and a release by a person.
    let hamctl = Cli::hamctl().env("HAMCTL_URL", &server.url);
    let run = hamctl
        .run(&[
            "policy",
            "--service",
            "shop",
            "apply",
            "auto-release",
            "--branch",
            "master",
            "--env",
            "dev",
        ])
        .await;
    assert_eq!(run.code, 0, "{}", run.err);
    push(
        &server.url,
        None,
        chunks(&[
            ("artifact.json", &spec("shop", "master", "master-shop-002")),
            ("dev/deployment.yaml", "kind: Deployment\n"),
            ("staging/deployment.yaml", "kind: Deployment\n"),
        ]),
    )
    .await
    .expect("the build is stored");
    let run = hamctl
        .run(&[
            "release",
            "--service",
            "shop",
            "--env",
            "staging",
            "--branch",
            "master",
        ])
        .await;
    assert_eq!(run.code, 0, "{}", run.err);

    let made = repo.remote_git(&["rev-list", &format!("{fixture_head}..master")]);
    let made: Vec<&str> = made.lines().collect();
    assert_eq!(
        made.len(),
        4,
        "policy, build, auto-release, release: {made:?}"
    );
    for commit in &made {
        let verified = verify_commit(&repo.remote, &allowed, commit);
        assert!(
            verified.status.success(),
            "{commit}: {}",
            String::from_utf8_lossy(&verified.stderr)
        );
        let said = String::from_utf8_lossy(&verified.stderr);
        assert!(said.contains("Good \"git\" signature"), "{said}");
        assert_eq!(
            commit_info(&repo, commit).committer,
            "Release Bot <release-bot@example.com>"
        );
    }
    // The person releasing is the author, and in the trailer.
    let release = commit_info(&repo, made[0]);
    assert_eq!(
        release.subject,
        "[staging/shop] release master-shop-002 by olga@example.com"
    );
    assert_eq!(release.author, "Olga Operator <olga@example.com>");
    assert!(
        release
            .body
            .contains("Released-by: Olga Operator <olga@example.com>"),
        "{}",
        release.body
    );
    // The fixture's own commits are not signed: the check can fail.
    assert!(!verify_commit(&repo.remote, &allowed, &fixture_head)
        .status
        .success());
    // Nor does a signers file that trusts another key only.
    let other_dir = dir.path().join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let (_, stranger) = signing_key(&other_dir);
    let strangers = dir.path().join("other_signers");
    std::fs::write(&strangers, format!("release-bot@example.com {stranger}\n")).unwrap();
    assert!(!verify_commit(&repo.remote, &strangers, made[0])
        .status
        .success());
    server.stop().await;
}
