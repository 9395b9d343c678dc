//! A config repository written with the original release manager's own
//! conventions in its later eras, and the history rules that go with them:
//!
//! - April 2019 to June 2020: `artifact push` copied the whole build folder
//!   (artifact.json, one folder per environment, its Slack `message.json`)
//!   into `artifacts/<service>/<branch>/` and committed it as `[<svc>]
//!   artifact <id> by <email>` with `Artifact-created-by` right after the
//!   title (`internal/flow.PushArtifact`, `internal/git.SignedCommit`);
//!   releases from May 2020 carry `Artifact-created-by` and
//!   `Artifact-released-by` after a single newline (`internal/git.Commit`).
//! - June 2020 on: builds in S3, so the repository holds releases whose
//!   builds it does not have.
//! - 2021 on: a Flux Kustomization in a build goes to
//!   `clusters/<env>/<namespace>/<service>.yaml`.
//! - any era: people scale replicas by hand and revert that.
//!
//! And the reverse: every release commit this server writes reads, under
//! the original's own rules (ported in `support::original_commitinfo`),
//! with the right releaser, intent, service, environment and artifact.

use std::path::Path;

use crate::support::original_commitinfo::{parse_commit_info, Intent};
use crate::support::*;
use release_manager::pb;

const SERVICE: &str = "checkout";

/// artifact.json as the original's CLI wrote it in 2019–2020.
fn spec_2019(id: &str, branch: &str, author: &str) -> String {
    let (name, email) = author.split_once(" <").expect("Name <email>");
    let email = email.trim_end_matches('>');
    format!(
        r#"{{
  "id": "{id}",
  "service": "{SERVICE}",
  "namespace": "",
  "application": {{
    "branch": "{branch}",
    "sha": "1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a",
    "authorName": "{name}",
    "authorEmail": "{email}",
    "committerName": "{name}",
    "committerEmail": "{email}",
    "message": "change on {branch}",
    "name": "{SERVICE}",
    "url": "https://github.com/acme/{SERVICE}/commit/1a1a1a1",
    "provider": "GitHub"
  }},
  "ci": {{
    "jobUrl": "https://jenkins.example.com/job/{SERVICE}/7",
    "start": "2020-03-02T10:00:00Z",
    "end": "2020-03-02T10:06:00Z"
  }},
  "shuttle": {{
    "plan": {{ "sha": "2b2b2b2b2b", "message": "plan", "url": "https://github.com/acme/plan" }},
    "shuttleVersion": "v0.9.0"
  }},
  "stages": []
}}
"#
    )
}

fn deployment(id: &str, env: &str) -> String {
    format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {SERVICE}\n  namespace: {env}\nspec:\n  replicas: 1\n  template:\n    spec:\n      containers:\n        - image: acme/{SERVICE}:{id}\n")
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn commit(work: &Path, message: &str) {
    git(work, &["add", "-A"]);
    let file = work.join("../message.txt");
    std::fs::write(&file, message).unwrap();
    git(
        work,
        &[
            "commit",
            "-q",
            "--cleanup=verbatim",
            "-F",
            file.to_str().unwrap(),
        ],
    );
}

/// `artifact push` of 2019–2020: the build folder copied as it is into
/// `artifacts/<service>/<branch>/`, committed with its trailer right after
/// the title.
fn push_2019(work: &Path, branch: &str, id: &str, author: &str) {
    let base = work.join("artifacts").join(SERVICE).join(branch);
    if base.exists() {
        std::fs::remove_dir_all(&base).unwrap();
    }
    for env in ENVS {
        write(
            &base.join(env).join("deployment.yaml"),
            &deployment(id, env),
        );
    }
    write(&base.join("artifact.json"), &spec_2019(id, branch, author));
    write(
        &base.join("message.json"),
        "{\n  \"color\": \"#73BF69\",\n  \"text\": \"built\"\n}\n",
    );
    let email = author.split_once('<').unwrap().1.trim_end_matches('>');
    commit(
        work,
        &format!("[{SERVICE}] artifact {id} by {email}\nArtifact-created-by: {author}"),
    );
}

/// A release as the original's server made it in 2020: the build's
/// environment folder and artifact.json copied into the release folder,
/// `Artifact-created-by` and `Artifact-released-by` after one newline.
fn release_2020(work: &Path, env: &str, branch: &str, id: &str, author: &str, releaser: &str) {
    let folder = work.join(env).join("releases").join(env).join(SERVICE);
    if folder.exists() {
        std::fs::remove_dir_all(&folder).unwrap();
    }
    write(&folder.join("deployment.yaml"), &deployment(id, env));
    write(
        &folder.join("artifact.json"),
        &spec_2019(id, branch, author),
    );
    let email = releaser.split_once('<').unwrap().1.trim_end_matches('>');
    commit(
        work,
        &format!(
            "[{env}/{SERVICE}] release {id} by {email}\nArtifact-created-by: {author}\nArtifact-released-by: {releaser}"
        ),
    );
}

const DEV_A: &str = "Dana Dev <dana@example.com>";
const RITA: &str = "Rita Releaser <rita@example.com>";
const OLD: &str = "master-1a1a1a1a1a-2b2b2b2b2b";
const FEATURE: &str = "feature_login-3c3c3c3c3c-2b2b2b2b2b";
const NEW: &str = "master-4d4d4d4d4d-2b2b2b2b2b";

async fn history(
    client: &mut pb::release_service_client::ReleaseServiceClient<tonic::transport::Channel>,
    service: &str,
    env: &str,
) -> Vec<pb::ReleaseRecord> {
    client
        .describe_release(pb::DescribeReleaseRequest {
            service: service.into(),
            environment: env.into(),
            page_size: 20,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .releases
}

fn env_status<'a>(status: &'a pb::StatusResponse, env: &str) -> &'a pb::EnvironmentStatus {
    status
        .environments
        .iter()
        .find(|e| e.environment == env)
        .unwrap()
}

#[tokio::test]
async fn builds_in_the_originals_artifacts_folder_release_promote_and_roll_back() {
    let repo = ConfigRepo::new();
    let work = repo.work.clone();
    push_2019(&work, "master", OLD, DEV_A);
    push_2019(&work, "feature/login", FEATURE, DEV_A);
    release_2020(&work, "dev", "master", OLD, DEV_A, RITA);
    push_2019(&work, "master", NEW, DEV_A);
    release_2020(&work, "dev", "master", NEW, DEV_A, RITA);
    repo.push();
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;

    // Status and history name the releaser from trailers written right
    // after the title.
    let status = server.status(SERVICE).await;
    let dev = env_status(&status, "dev");
    assert_eq!(dev.artifact.as_ref().unwrap().artifact_id, NEW);
    assert_eq!(dev.released_by.as_ref().unwrap().name, "Rita Releaser");
    let releases = history(&mut client, SERVICE, "dev").await;
    let seen: Vec<(&str, &str)> = releases
        .iter()
        .map(|r| {
            (
                r.artifact_id.as_str(),
                r.released_by.as_ref().unwrap().email.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![(NEW, "rita@example.com"), (OLD, "rita@example.com")]
    );

    // Builds of every branch, found under artifacts/.
    let builds = client
        .describe_artifact(pb::DescribeArtifactRequest {
            service: SERVICE.into(),
            page_size: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .artifacts;
    let ids: Vec<(&str, &str)> = builds
        .iter()
        .map(|b| (b.artifact_id.as_str(), b.branch.as_str()))
        .collect();
    assert_eq!(
        ids,
        vec![(NEW, "master"), (FEATURE, "feature/login"), (OLD, "master")]
    );

    // Release by id, by branch, promote and rollback all take their files
    // from the artifacts/ folders.
    let released = client
        .release(release_artifact(SERVICE, "staging", FEATURE))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(released.branch, "feature/login");
    assert_eq!(
        repo.remote_file(&format!(
            "staging/releases/staging/{SERVICE}/deployment.yaml"
        )),
        Some(deployment(FEATURE, "staging"))
    );
    assert_eq!(
        repo.remote_ls(&format!("staging/releases/staging/{SERVICE}")),
        vec!["artifact.json", "deployment.yaml"],
        "the build's message.json is no manifest of an environment"
    );
    let by_branch = client
        .release(release_branch(SERVICE, "prod", "master"))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(by_branch.artifact_id, NEW);
    let promoted = client
        .promote(pb::PromoteRequest {
            service: SERVICE.into(),
            environment: "staging".into(),
            committer: alice(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(promoted.result.unwrap().artifact_id, NEW);
    assert_eq!(
        repo.remote_file(&format!(
            "staging/releases/staging/{SERVICE}/deployment.yaml"
        )),
        Some(deployment(NEW, "staging"))
    );
    let rolled = client
        .rollback(pb::RollbackRequest {
            service: SERVICE.into(),
            environment: "dev".into(),
            committer: alice(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rolled.result.unwrap().artifact_id, OLD);
    assert_eq!(
        repo.remote_file(&format!("dev/releases/dev/{SERVICE}/deployment.yaml")),
        Some(deployment(OLD, "dev"))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_hand_edit_and_its_revert_are_edits_never_releases() {
    let mut repo = ConfigRepo::new();
    let id = repo.add_build("shop", "master", 1);
    repo.push();
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;
    client
        .release(release_artifact("shop", "dev", &id))
        .await
        .unwrap();
    // Someone scales replicas by hand, then reverts it.
    git(&repo.work, &["pull", "-q", "--rebase", "origin", "master"]);
    let path = "dev/releases/dev/shop/deployment.yaml";
    repo.commit_files(
        "scale shop to 3",
        &[(path, "kind: Deployment\nreplicas: 3\n")],
    );
    git(&repo.work, &["revert", "--no-edit", "HEAD"]);
    repo.push();
    server.sync().await;

    let status = server.status("shop").await;
    let dev = env_status(&status, "dev");
    assert_eq!(
        dev.released_by.as_ref().unwrap().email,
        "alice@example.com",
        "who released, not who edited"
    );
    let releases = history(&mut client, "shop", "dev").await;
    let seen: Vec<(pb::ReleaseIntent, Option<&str>, Option<&str>)> = releases
        .iter()
        .map(|r| {
            (
                r.intent(),
                r.released_by.as_ref().map(|p| p.email.as_str()),
                r.edited_by.as_ref().map(|p| p.email.as_str()),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (pb::ReleaseIntent::Edit, None, Some("ci@example.com")),
            (pb::ReleaseIntent::Edit, None, Some("ci@example.com")),
            (
                pb::ReleaseIntent::ReleaseArtifact,
                Some("alice@example.com"),
                None
            ),
        ]
    );
    // describe names the releaser and author as status does.
    assert_eq!(
        releases[2].released_by, dev.released_by,
        "describe and status agree on who released"
    );
    assert_eq!(
        releases[2].author,
        dev.artifact.as_ref().unwrap().author,
        "and on the author: the build's"
    );
    // A rollback goes to the release before, not to the edit.
    let refused = client
        .rollback(pb::RollbackRequest {
            service: "shop".into(),
            environment: "dev".into(),
            committer: alice(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    // Re-releasing the artifact after an edit is a release again.
    git(&repo.work, &["pull", "-q", "--rebase", "origin", "master"]);
    repo.commit_files(
        "scale shop to 5",
        &[(path, "kind: Deployment\nreplicas: 5\n")],
    );
    repo.push();
    server.sync().await;
    let again = client
        .release(release_artifact("shop", "dev", &id))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(again.outcome(), pb::Outcome::Applied);
    let releases = history(&mut client, "shop", "dev").await;
    assert_eq!(releases[0].intent(), pb::ReleaseIntent::ReleaseArtifact);
    assert_eq!(releases[1].intent(), pb::ReleaseIntent::Edit);
    server.stop().await;
}

#[tokio::test]
async fn releases_whose_builds_are_elsewhere_say_so() {
    // June 2020 on, the original kept builds in S3: the repository has the
    // releases only (written with the full trailers of 2021 on).
    let repo = ConfigRepo::new();
    let work = repo.work.clone();
    let folder = work.join("dev/releases/dev/billing");
    write(&folder.join("deployment.yaml"), &deployment(NEW, "dev"));
    write(
        &folder.join("artifact.json"),
        &spec_2019(NEW, "master", DEV_A).replace(SERVICE, "billing"),
    );
    commit(
        &work,
        &format!("[dev/billing] release {NEW} by rita@example.com\n\nService: billing\nEnvironment: dev\nArtifact-ID: {NEW}\nArtifact-released-by: {RITA}\nArtifact-created-by: {DEV_A}\nRelease-intent: ReleaseArtifact\n"),
    );
    repo.push();
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;
    let status = server.status("billing").await;
    assert_eq!(
        env_status(&status, "dev")
            .artifact
            .as_ref()
            .unwrap()
            .artifact_id,
        NEW
    );
    for request in [
        release_artifact("billing", "staging", NEW),
        release_branch("billing", "staging", "master"),
    ] {
        let error = client.release(request).await.unwrap_err();
        assert_eq!(error.code(), tonic::Code::NotFound);
        let message = error.message();
        assert!(
            message.contains("has releases (in dev) but no readable build")
                && message.contains("import-s3")
                && !message.contains("did you mean")
                && !message.contains("unknown service"),
            "{message}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_flux_kustomization_goes_where_the_original_puts_it() {
    let mut repo = ConfigRepo::new();
    let flux = "apiVersion: kustomize.toolkit.fluxcd.io/v1beta1\nkind: Kustomization\nmetadata:\n  name: shop\nspec:\n  interval: 1m\n  path: ./dev/releases/dev/shop\n";
    let first = repo.add_build_files("shop", "master", 1, &["deployment.yaml"]);
    for env in ENVS {
        write(
            &repo
                .work
                .join(format!("builds/shop/master/{env}/kustomization.yaml")),
            flux,
        );
    }
    git(&repo.work, &["add", "-A"]);
    git(&repo.work, &["commit", "-q", "--amend", "--no-edit"]);
    let second = repo.add_build_files("shop", "master", 2, &["deployment.yaml"]);
    repo.push();
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;
    client
        .release(release_artifact("shop", "dev", &first))
        .await
        .unwrap();
    assert_eq!(
        repo.remote_file("clusters/dev/dev/shop.yaml").as_deref(),
        Some(flux)
    );
    assert_eq!(
        repo.remote_ls("dev/releases/dev/shop"),
        vec!["artifact.json", "deployment.yaml"],
        "moved out of the release folder"
    );
    // A build without one leaves the clusters file; a rollback restores
    // the release as it was, clusters file included.
    client
        .release(release_artifact("shop", "dev", &second))
        .await
        .unwrap();
    assert_eq!(
        repo.remote_file("clusters/dev/dev/shop.yaml").as_deref(),
        Some(flux)
    );
    client
        .rollback(pb::RollbackRequest {
            service: "shop".into(),
            environment: "dev".into(),
            committer: alice(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        repo.remote_file("clusters/dev/dev/shop.yaml").as_deref(),
        Some(flux)
    );
    let status = server.status("shop").await;
    assert_eq!(
        env_status(&status, "dev")
            .artifact
            .as_ref()
            .unwrap()
            .artifact_id,
        first
    );
    server.stop().await;
}

#[tokio::test]
async fn our_release_commits_read_right_under_the_originals_rules() {
    let mut repo = ConfigRepo::new();
    let first = repo.add_build("shop", "master", 1);
    let second = repo.add_build("shop", "master", 2);
    repo.push();
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;
    let mut policies = server.policy_client().await;
    client
        .release(release_branch("shop", "dev", "master"))
        .await
        .unwrap();
    client
        .promote(pb::PromoteRequest {
            service: "shop".into(),
            environment: "staging".into(),
            committer: alice(),
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .release(release_artifact("shop", "staging", &first))
        .await
        .unwrap();
    client
        .rollback(pb::RollbackRequest {
            service: "shop".into(),
            environment: "staging".into(),
            committer: alice(),
            ..Default::default()
        })
        .await
        .unwrap();
    policies
        .apply_auto_release(pb::ApplyAutoReleaseRequest {
            request_id: String::new(),
            service: "shop".into(),
            branch: "master".into(),
            environment: "prod".into(),
            committer: alice(),
        })
        .await
        .unwrap();
    let third = repo.add_build("shop", "master", 3);
    repo.push();
    server.sync().await;

    // Every release commit on the remote, oldest first, as the original's
    // reader sees it.
    let log = repo.remote_git(&["log", "--reverse", "--format=%H", "master"]);
    let mut read = Vec::new();
    for sha in log.lines() {
        let message = repo.remote_git(&["log", "-1", "--format=%B", sha]);
        let info = commit_info(&repo, sha);
        if !info.changed.iter().any(|p| p.contains("/releases/")) {
            assert!(
                parse_commit_info(&message).is_err() || message.contains("Release-intent"),
                "{message}"
            );
            continue;
        }
        let parsed = parse_commit_info(&message).unwrap_or_else(|e| panic!("{e}: {message}"));
        assert_eq!(parsed.service, "shop", "{message}");
        read.push((
            parsed.environment,
            parsed.artifact_id,
            parsed.intent,
            parsed.released_by.email,
            parsed.released_by.name,
        ));
    }
    let alice = (
        "alice@example.com".to_string(),
        "Alice Operator".to_string(),
    );
    let auto = (
        "release-manager@localhost".to_string(),
        "Release Manager (auto-release)".to_string(),
    );
    let row = |env: &str, id: &str, intent: Intent, by: &(String, String)| {
        (
            env.to_string(),
            id.to_string(),
            intent,
            by.0.clone(),
            by.1.clone(),
        )
    };
    assert_eq!(
        read,
        vec![
            row(
                "dev",
                &second,
                Intent::ReleaseBranch {
                    branch: "master".into()
                },
                &alice
            ),
            row(
                "staging",
                &second,
                Intent::Promote {
                    from_environment: "dev".into()
                },
                &alice
            ),
            row("staging", &first, Intent::ReleaseArtifact, &alice),
            row(
                "staging",
                &second,
                Intent::Rollback {
                    previous_artifact_id: first.clone()
                },
                &alice
            ),
            row("prod", &third, Intent::AutoRelease, &auto),
        ]
    );
    // And the title ends ` by <email>`, as the original writes it.
    let title = repo.remote_git(&["log", "-1", "--format=%s", "master"]);
    assert_eq!(
        title.trim(),
        format!("[prod/shop] auto release {third} by release-manager@localhost")
    );
    server.stop().await;
}
/// The original's own test cases (`commitinfo_test.go`), so the port is
/// known to read as the original does before it judges our commits.
#[test]
fn the_port_reads_the_originals_own_cases() {
    assert!(parse_commit_info(
        "[test-service] artifact master-1234ds13g3-12s46g356g by Foo Bar\nArtifact-created-by: Foo Bar <test@lunar.app>"
    )
    .is_err());
    assert!(parse_commit_info("[product] build something").is_err());
    let info = parse_commit_info(
        "[prod/test-service] release master-1234ds13g3-12s46g356g by hest@lunar.app\nArtifact-created-by: Foo Bar <test@lunar.app>",
    )
    .unwrap();
    assert_eq!(info.artifact_id, "master-1234ds13g3-12s46g356g");
    assert_eq!(info.service, "test-service");
    assert_eq!(info.environment, "prod");
    assert_eq!(info.released_by.email, "hest@lunar.app");
    assert_eq!(info.artifact_created_by.name, "Foo Bar");
    assert_eq!(info.intent, Intent::ReleaseArtifact);
    let info = parse_commit_info(
        "[prod/product] rollback test-s3-push-f4440b4ccb-1ba3085aa7 by bso@lunar.app\n\nService: product\nEnvironment: prod\nArtifact-ID: test-s3-push-f4440b4ccb-1ba3085aa7\nArtifact-released-by: Bjørn Hald Sørensen <bso@lunar.app>\nArtifact-created-by: Emil Ingerslev <eki@lunar.app>\nRelease-intent: Rollback\nRollback-of-artifact-id: test-s3-push-1337-1337",
    )
    .unwrap();
    assert_eq!(info.released_by.name, "Bjørn Hald Sørensen");
    assert_eq!(
        info.intent,
        Intent::Rollback {
            previous_artifact_id: "test-s3-push-1337-1337".into()
        }
    );
    let info = parse_commit_info(
        "[prod/houston-web] auto release master-937e50b532-c27bd51ad3 by chb@lunar.app\n\nService: houston-web\nEnvironment: prod\nArtifact-ID: master-937e50b532-c27bd51ad3\nArtifact-released-by: Casper Bornebusch <chb@lunar.app>\nArtifact-created-by: Casper Bornebusch <chb@lunar.app>\nRelease-intent: AutoRelease",
    )
    .unwrap();
    assert_eq!(info.intent, Intent::AutoRelease);
    assert_eq!(info.service, "houston-web");
}
