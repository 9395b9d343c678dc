//! The original release manager's S3 era (mid-2020 on): builds were zips
//! at `<service>/<artifact-id>` in a bucket, and the config repository
//! held only releases. `release-manager import-s3` copies them into the
//! repository from a real S3 API on loopback (moto), after which status,
//! describe, release by id, promote and rollback work on them; imported
//! builds are history, so no auto-release fires for them; running the
//! import again brings nothing twice; and with `start`'s `--signing-key`
//! and `--committer-*` the build commits are signed, as a repository
//! requiring signed commits needs.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::commit_signing::{signing_key, verify_commit};
use crate::support::process::{workspace_binary, ChildGuard};
use crate::support::s3::{go_zip, S3Server};
use crate::support::*;
use release_manager::pb;

const BUCKET: &str = "acme-release-manager-artifacts";
const OLDER: &str = "master-1a1a1a1a1a-9f9f9f9f9f";
const FEATURE: &str = "feature_x-2b2b2b2b2b-9f9f9f9f9f";
const NEWER: &str = "master-3c3c3c3c3c-9f9f9f9f9f";

/// artifact.json as the original's CLI persisted it (two-space indent).
fn spec(id: &str, branch: &str) -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "id": id,
        "service": "checkout",
        "application": {
            "branch": branch, "sha": "abcdef", "authorName": "Dana Dev",
            "authorEmail": "dana@example.com", "committerName": "Dana Dev",
            "committerEmail": "dana@example.com", "message": format!("change {id}"),
            "name": "checkout", "url": "https://github.com/acme/checkout", "provider": "GitHub"
        },
        "ci": {"jobUrl": "https://github.com/acme/checkout/actions/1", "start": "2021-05-01T10:00:00Z", "end": "2021-05-01T10:05:00Z"},
        "stages": [{"id": "build", "name": "Build", "data": {"image": "acme/checkout", "tag": id, "dockerVersion": "20.10"}}]
    }))
    .unwrap()
        + "\n"
}

fn manifest(id: &str, env: &str) -> String {
    format!("kind: Deployment\n# {env}\nimage: acme/checkout:{id}\n")
}

/// The object the original's `artifact push` uploaded for build `id`:
/// the whole build folder, walked in lexical order.
fn build_zip(id: &str, branch: &str) -> Vec<u8> {
    let spec = spec(id, branch);
    let manifests: Vec<(String, String)> = ENVS
        .iter()
        .map(|env| (format!("{env}/deployment.yaml"), manifest(id, env)))
        .collect();
    let mut files: Vec<(&str, &[u8])> = vec![("artifact.json", spec.as_bytes())];
    for (path, text) in &manifests {
        files.push((path.as_str(), text.as_bytes()));
    }
    files.push(("message.json", b"{\n  \"color\": \"#73BF69\"\n}\n"));
    files.sort_by(|a, b| a.0.cmp(b.0));
    go_zip(&files)
}

/// A release of the S3 era, as the original's server committed it.
fn original_release(repo: &ConfigRepo, env: &str, id: &str, branch: &str) {
    repo.commit_files(
        &format!(
            "[{env}/checkout] release {id} by rita@example.com\n\nService: checkout\nEnvironment: {env}\nArtifact-ID: {id}\nArtifact-released-by: Rita Releaser <rita@example.com>\nArtifact-created-by: Dana Dev <dana@example.com>\nRelease-intent: ReleaseArtifact"
        ),
        &[
            (&format!("{env}/releases/{env}/checkout/artifact.json"), &spec(id, branch)),
            (&format!("{env}/releases/{env}/checkout/deployment.yaml"), &manifest(id, env)),
        ],
    );
}

/// Runs `release-manager import-s3` (the binary) and returns its exit
/// code and output.
fn import(s3: &S3Server, repo: &ConfigRepo, data: &std::path::Path) -> (i32, String, String) {
    import_with(s3, repo, data, &[])
}

/// [`import`] with `extra` flags.
fn import_with(
    s3: &S3Server,
    repo: &ConfigRepo,
    data: &std::path::Path,
    extra: &[&std::ffi::OsStr],
) -> (i32, String, String) {
    let mut command = Command::new(workspace_binary("release-manager"));
    command
        .args([
            "import-s3",
            "--bucket",
            BUCKET,
            "--endpoint",
            &s3.endpoint(),
        ])
        .args(extra)
        .arg("--config-repo")
        .arg(&repo.remote)
        .arg("--data-dir")
        .arg(data)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut process = ChildGuard::spawn(&mut command, "release-manager import-s3");
    let mut stdout = process.child_mut().stdout.take().unwrap();
    let mut stderr = process.child_mut().stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).unwrap();
        text
    });
    let mut err = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut err).unwrap();
    let status = process.wait_timeout(Duration::from_secs(120));
    (status.code().unwrap_or(-1), out.join().unwrap(), err)
}

#[tokio::test]
async fn builds_kept_in_s3_are_imported_and_then_work_as_any_other() {
    let s3 = S3Server::start().await;
    s3.create_bucket(BUCKET).await;
    s3.put(
        BUCKET,
        &format!("checkout/{OLDER}"),
        &build_zip(OLDER, "master"),
    )
    .await;
    s3.put(
        BUCKET,
        &format!("checkout/{FEATURE}"),
        &build_zip(FEATURE, "feature/x"),
    )
    .await;
    s3.put(
        BUCKET,
        &format!("checkout/{NEWER}"),
        &build_zip(NEWER, "master"),
    )
    .await;
    s3.put(BUCKET, "README", b"not a build").await;

    let repo = ConfigRepo::new();
    original_release(&repo, "dev", NEWER, "master");
    original_release(&repo, "prod", OLDER, "master");
    repo.push();
    let server = TestServer::start(&repo.remote).await;
    // A policy that would release every new master build to dev: an
    // import brings old builds, not new ones, and must not trigger it.
    let mut policies = server.policy_client().await;
    policies
        .apply_auto_release(pb::ApplyAutoReleaseRequest {
            request_id: String::new(),
            service: "checkout".into(),
            branch: "master".into(),
            environment: "staging".into(),
            committer: alice(),
        })
        .await
        .unwrap();

    let data = tempfile::tempdir().unwrap();
    let (code, out, err) = import(&s3, &repo, data.path());
    assert_eq!(code, 0, "{out}{err}");
    for key in [OLDER, FEATURE, NEWER] {
        assert!(out.contains(&format!("imported checkout/{key}")), "{out}");
    }
    assert!(out.contains("skipped README"), "{out}");
    assert!(
        out.contains("4 objects listed: 3 imported, 0 already in the config repository, 1 skipped"),
        "{out}"
    );
    // One build commit each, as the original stored them: artifact.json
    // and the environment folders, not its Slack message file.
    let subjects = subjects(&repo);
    assert_eq!(
        subjects[0],
        format!("[checkout] build tag {NEWER}"),
        "the newest last: {subjects:?}"
    );
    assert_eq!(
        repo.remote_ls("builds/checkout/master"),
        vec!["artifact.json", "dev", "prod", "staging"]
    );
    let body = repo.remote_git(&["log", "-1", "--format=%b", "master"]);
    assert!(
        body.contains(&format!("Imported-from: s3://{BUCKET}/checkout/{NEWER}")),
        "{body}"
    );

    server.sync().await;
    let mut client = server.client().await;
    let status = server.status("checkout").await;
    let dev = status
        .environments
        .iter()
        .find(|e| e.environment == "dev")
        .unwrap();
    assert_eq!(dev.artifact.as_ref().unwrap().artifact_id, NEWER);
    assert_eq!(dev.artifact.as_ref().unwrap().branch, "master");
    assert_eq!(dev.released_by.as_ref().unwrap().email, "rita@example.com");
    let staging = status
        .environments
        .iter()
        .find(|e| e.environment == "staging")
        .unwrap();
    assert!(
        staging.artifact.is_none(),
        "no auto-release of imported builds"
    );
    let builds = client
        .describe_artifact(pb::DescribeArtifactRequest {
            service: "checkout".into(),
            page_size: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .artifacts;
    let ids: Vec<&str> = builds.iter().map(|b| b.artifact_id.as_str()).collect();
    // Oldest first by S3's LastModified (to the second; the key breaks a
    // tie): the newer master build after the older one.
    let at = |id: &str| ids.iter().position(|i| *i == id).unwrap();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(at(NEWER) < at(OLDER) && ids.contains(&FEATURE), "{ids:?}");

    // Release by id (an older build, no longer its branch's latest),
    // promote and rollback.
    client
        .release(release_artifact("checkout", "staging", OLDER))
        .await
        .unwrap();
    assert_eq!(
        repo.remote_file("staging/releases/staging/checkout/deployment.yaml"),
        Some(manifest(OLDER, "staging"))
    );
    let promoted = client
        .promote(pb::PromoteRequest {
            service: "checkout".into(),
            environment: "staging".into(),
            committer: alice(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(promoted.result.unwrap().artifact_id, NEWER);
    client
        .release(release_artifact("checkout", "dev", FEATURE))
        .await
        .unwrap();
    let rolled = client
        .rollback(pb::RollbackRequest {
            service: "checkout".into(),
            environment: "dev".into(),
            committer: alice(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rolled.result.unwrap().artifact_id, NEWER);

    // Again: nothing new, nothing committed.
    let before = repo.remote_head();
    let (code, out, err) = import(&s3, &repo, data.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("4 objects listed: 0 imported, 3 already in the config repository, 1 skipped"),
        "{out}"
    );
    assert_eq!(repo.remote_head(), before);
    server.stop().await;
}

#[tokio::test]
async fn imported_build_commits_are_signed_with_start_s_signing_flags() {
    let s3 = S3Server::start().await;
    s3.create_bucket(BUCKET).await;
    for (id, branch) in [(OLDER, "master"), (FEATURE, "feature/x")] {
        s3.put(BUCKET, &format!("checkout/{id}"), &build_zip(id, branch))
            .await;
    }
    let repo = ConfigRepo::new();
    original_release(&repo, "dev", OLDER, "master");
    repo.push();
    let before = repo.remote_head();
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = signing_key(dir.path());
    let allowed = dir.path().join("allowed_signers");
    std::fs::write(&allowed, format!("release-bot@example.com {public}\n")).unwrap();

    let data = tempfile::tempdir().unwrap();
    let (code, out, err) = import_with(
        &s3,
        &repo,
        data.path(),
        &[
            "--signing-key".as_ref(),
            key.as_os_str(),
            "--committer-name".as_ref(),
            "Release Bot".as_ref(),
            "--committer-email".as_ref(),
            "release-bot@example.com".as_ref(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let made = repo.remote_git(&["rev-list", &format!("{before}..master")]);
    let made: Vec<&str> = made.lines().collect();
    assert_eq!(made.len(), 2, "one build commit each: {made:?}");
    for commit in &made {
        let verified = verify_commit(&repo.remote, &allowed, commit);
        let said = String::from_utf8_lossy(&verified.stderr);
        assert!(verified.status.success(), "{commit}: {said}");
        assert!(said.contains("Good \"git\" signature"), "{said}");
        let info = commit_info(&repo, commit);
        assert!(
            info.subject.starts_with("[checkout] build tag "),
            "{}",
            info.subject
        );
        assert_eq!(info.committer, "Release Bot <release-bot@example.com>");
    }
    // The check can fail: the original's release commit is not signed.
    assert!(!verify_commit(&repo.remote, &allowed, &before)
        .status
        .success());

    // A key that does not read stops the import before anything is
    // committed, naming the file.
    let other = tempfile::tempdir().unwrap();
    let bad_key = other.path().join("not-a-key");
    std::fs::write(&bad_key, "not a key\n").unwrap();
    let head = repo.remote_head();
    let (code, out, err) = import_with(
        &s3,
        &repo,
        other.path(),
        &["--signing-key".as_ref(), bad_key.as_os_str()],
    );
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("not-a-key"), "{err}");
    assert_eq!(repo.remote_head(), head);
}
