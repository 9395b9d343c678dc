//! The release flows over real gRPC against bare repositories built with
//! git: release by branch and by artifact id, promote, rollback, status and
//! history, no-op releases, request-id replays; every commit checked with
//! git itself.

use crate::support::*;
use release_manager::pb;

/// Two services, several master builds, a feature branch.
fn fixture() -> (ConfigRepo, Vec<String>) {
    let mut repo = ConfigRepo::new();
    let mut ids = Vec::new();
    for n in 1..=3 {
        ids.push(repo.add_build("svc-a", "master", n));
        repo.add_build("svc-b", "master", n);
    }
    repo.add_build("svc-a", "feature/login", 1);
    repo.push();
    (repo, ids)
}

#[tokio::test]
async fn release_by_branch_writes_one_checked_commit() {
    let (repo, ids) = fixture();
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;
    let before = repo.remote_head();

    let result = client
        .release(release_branch("svc-a", "dev", "master"))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(result.outcome(), pb::Outcome::Applied);
    assert_eq!(result.artifact_id, ids[2]);
    assert_eq!(result.namespace, "dev");
    assert_eq!(result.branch, "master");
    assert_eq!(
        result.commit_sha,
        repo.remote_head(),
        "the reply names the pushed commit"
    );

    let info = commit_info(&repo, "master");
    assert_eq!(
        info.subject,
        format!("[dev/svc-a] release {} by alice@example.com", ids[2])
    );
    assert_eq!(
        info.author, "Dev 0 <dev0@example.com>",
        "author is the build's source author"
    );
    assert_eq!(info.committer, "Alice Operator <alice@example.com>");
    assert_eq!(info.parents, vec![before]);
    for trailer in [
        format!("Artifact-ID: {}", ids[2]),
        "Service: svc-a".into(),
        "Environment: dev".into(),
        "Namespace: dev".into(),
        "Release-intent: ReleaseBranch".into(),
        "Release-of-branch: master".into(),
        "Released-by: Alice Operator <alice@example.com>".into(),
        "Artifact-released-by: Alice Operator <alice@example.com>".into(),
        "Artifact-created-by: Dev 0 <dev0@example.com>".into(),
    ] {
        assert!(
            info.body.contains(&trailer),
            "missing {trailer:?} in {:?}",
            info.body
        );
    }
    assert_eq!(
        info.changed,
        vec![
            "dev/releases/dev/svc-a/artifact.json",
            "dev/releases/dev/svc-a/deployment.yaml",
            "dev/releases/dev/svc-a/service.yaml",
        ]
    );
    assert_eq!(
        repo.remote_file("dev/releases/dev/svc-a/deployment.yaml"),
        repo.remote_file("builds/svc-a/master/dev/deployment.yaml")
    );
    assert_eq!(
        repo.remote_file("dev/releases/dev/svc-a/artifact.json"),
        repo.remote_file("builds/svc-a/master/artifact.json")
    );
    server.stop().await;
}

#[tokio::test]
async fn release_of_a_feature_branch_and_an_old_artifact_by_id() {
    let (repo, ids) = fixture();
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;

    let feature = client
        .release(release_branch("svc-a", "dev", "feature/login"))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(
        feature.artifact_id,
        artifact_id("svc-a", "feature/login", 1)
    );

    // The first master build exists only in history now.
    let old = client
        .release(release_artifact("svc-a", "staging", &ids[0]))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(old.artifact_id, ids[0]);
    assert_eq!(old.branch, "master");
    let deployed = repo
        .remote_file("staging/releases/staging/svc-a/deployment.yaml")
        .unwrap();
    assert!(deployed.contains(&ids[0]), "{deployed}");
    assert!(deployed.contains("in staging"));
    let info = commit_info(&repo, "master");
    assert_eq!(
        info.subject,
        format!("[staging/svc-a] release {} by alice@example.com", ids[0])
    );
    assert!(info.body.contains("Release-intent: ReleaseArtifact"));
    server.stop().await;
}

#[tokio::test]
async fn promote_carries_the_same_artifact_and_its_own_manifests() {
    let (mut repo, ids) = fixture();
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;
    let promote = |env: &str| pb::PromoteRequest {
        service: "svc-a".into(),
        environment: env.into(),
        committer: alice(),
        ..Default::default()
    };

    let dev = client.promote(promote("dev")).await.unwrap().into_inner();
    assert_eq!(dev.result.as_ref().unwrap().artifact_id, ids[2]);
    assert_eq!(dev.from_environment, "");

    // The branch moves on after dev got its build.
    let newer = repo.add_build("svc-a", "master", 4);
    repo.push();

    let staging = client
        .promote(promote("staging"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(staging.from_environment, "dev");
    assert_eq!(staging.result.as_ref().unwrap().artifact_id, ids[2]);
    let prod = client.promote(promote("prod")).await.unwrap().into_inner();
    assert_eq!(prod.result.as_ref().unwrap().artifact_id, ids[2]);
    assert_eq!(prod.from_environment, "staging");

    let manifest = repo
        .remote_file("prod/releases/prod/svc-a/deployment.yaml")
        .unwrap();
    assert!(
        manifest.contains(&ids[2]) && manifest.contains("in prod"),
        "{manifest}"
    );
    assert!(!manifest.contains(&newer));
    let info = commit_info(&repo, "master");
    assert_eq!(
        info.subject,
        format!("[prod/svc-a] release {} by alice@example.com", ids[2])
    );
    assert!(info.body.contains("Release-intent: Promote"));
    assert!(info.body.contains("Promoted-from-environment: staging"));
    assert!(repo
        .remote_file("builds/svc-a/master/artifact.json")
        .unwrap()
        .contains(&newer));

    // Promoting what already runs there changes nothing.
    let again = client.promote(promote("prod")).await.unwrap().into_inner();
    assert_eq!(
        again.result.unwrap().outcome(),
        pb::Outcome::AlreadyUpToDate
    );

    // Nothing in staging for svc-b: a clear precondition failure.
    let err = client
        .promote(pb::PromoteRequest {
            service: "svc-b".into(),
            environment: "prod".into(),
            committer: alice(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(
        err.message().contains("not released to staging"),
        "{}",
        err.message()
    );
    server.stop().await;
}

#[tokio::test]
async fn rollback_puts_back_the_previous_release() {
    let (repo, ids) = fixture();
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;
    for id in &ids {
        client
            .release(release_artifact("svc-a", "prod", id))
            .await
            .unwrap();
    }
    let rollback = |artifact: &str| pb::RollbackRequest {
        service: "svc-a".into(),
        environment: "prod".into(),
        artifact_id: artifact.into(),
        committer: alice(),
        ..Default::default()
    };
    let back = client.rollback(rollback("")).await.unwrap().into_inner();
    assert_eq!(back.previous_artifact_id, ids[2]);
    let result = back.result.unwrap();
    assert_eq!(result.artifact_id, ids[1]);
    assert_eq!(result.intent(), pb::ReleaseIntent::Rollback);
    let info = commit_info(&repo, "master");
    assert_eq!(
        info.subject,
        format!("[prod/svc-a] rollback {} by alice@example.com", ids[1])
    );
    assert!(info.body.contains("Release-intent: Rollback"));
    assert!(info.body.contains("Rollback-of-artifact-id: "));
    assert!(repo
        .remote_file("prod/releases/prod/svc-a/deployment.yaml")
        .unwrap()
        .contains(&ids[1]));

    // Named rollback to the first release.
    let named = client
        .rollback(rollback(&ids[0]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(named.result.unwrap().artifact_id, ids[0]);
    assert_eq!(named.previous_artifact_id, ids[1]);

    // An artifact never released there is NOT_FOUND.
    let err = client
        .rollback(rollback(&artifact_id("svc-a", "feature/login", 1)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);

    // Nothing to roll back to in an environment never released.
    let err = client
        .rollback(pb::RollbackRequest {
            service: "svc-b".into(),
            environment: "dev".into(),
            committer: alice(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    server.stop().await;
}

#[tokio::test]
async fn status_and_describe_show_what_runs_and_history() {
    let (repo, ids) = fixture();
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;
    client
        .release(release_artifact("svc-a", "dev", &ids[0]))
        .await
        .unwrap();
    client
        .release(release_artifact("svc-a", "dev", &ids[1]))
        .await
        .unwrap();
    client
        .release(release_branch("svc-a", "staging", "master"))
        .await
        .unwrap();

    let status = client
        .status(pb::StatusRequest {
            service: "svc-a".into(),
            namespace: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let envs: Vec<&str> = status
        .environments
        .iter()
        .map(|e| e.environment.as_str())
        .collect();
    assert_eq!(envs, ["dev", "staging", "prod"]);
    let dev = &status.environments[0];
    let artifact = dev.artifact.as_ref().unwrap();
    assert_eq!(artifact.artifact_id, ids[1]);
    assert_eq!(artifact.branch, "master");
    assert_eq!(artifact.author.as_ref().unwrap().email, "dev2@example.com");
    assert_eq!(artifact.message, "change 2 of svc-a");
    assert_eq!(artifact.build_url, "https://ci.example.com/svc-a/2");
    assert_eq!(artifact.build_date.as_ref().unwrap().seconds, 1_767_225_900);
    let vulns = artifact.vulnerabilities.as_ref().unwrap();
    assert_eq!((vulns.high, vulns.medium, vulns.low), (1, 2, 3));
    assert_eq!(dev.released_by.as_ref().unwrap().name, "Alice Operator");
    assert!(dev.released_at.as_ref().unwrap().seconds > 1_767_225_600);
    assert_eq!(
        dev.release_commit_sha,
        repo.remote_git(&["rev-parse", "master~1"]).trim()
    );
    assert_eq!(
        status.environments[1]
            .artifact
            .as_ref()
            .unwrap()
            .artifact_id,
        ids[2]
    );
    assert!(status.environments[2].artifact.is_none());

    let history = client
        .describe_release(pb::DescribeReleaseRequest {
            service: "svc-a".into(),
            environment: "dev".into(),
            page_size: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let released: Vec<&str> = history
        .releases
        .iter()
        .map(|r| r.artifact_id.as_str())
        .collect();
    assert_eq!(released, [ids[1].as_str(), ids[0].as_str()], "newest first");
    assert_eq!(
        history.releases[0].released_by.as_ref().unwrap().email,
        "alice@example.com"
    );
    assert_eq!(
        history.releases[0].author.as_ref().unwrap().email,
        "dev2@example.com"
    );

    let builds = client
        .describe_artifact(pb::DescribeArtifactRequest {
            service: "svc-a".into(),
            branch: "master".into(),
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let built: Vec<&str> = builds
        .artifacts
        .iter()
        .map(|a| a.artifact_id.as_str())
        .collect();
    assert_eq!(built, [ids[2].as_str(), ids[1].as_str()]);
    server.stop().await;
}

#[tokio::test]
async fn a_release_removes_files_the_new_build_lacks() {
    let mut repo = ConfigRepo::new();
    let first = repo.add_build_files("svc-a", "master", 1, &["deployment.yaml", "cronjob.yaml"]);
    let second = repo.add_build_files("svc-a", "master", 2, &["deployment.yaml"]);
    repo.push();
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;
    client
        .release(release_artifact("svc-a", "dev", &first))
        .await
        .unwrap();
    assert_eq!(
        repo.remote_ls("dev/releases/dev/svc-a"),
        ["artifact.json", "cronjob.yaml", "deployment.yaml"]
    );
    client
        .release(release_artifact("svc-a", "dev", &second))
        .await
        .unwrap();
    assert_eq!(
        repo.remote_ls("dev/releases/dev/svc-a"),
        ["artifact.json", "deployment.yaml"]
    );
    let info = commit_info(&repo, "master");
    assert!(info
        .changed
        .contains(&"dev/releases/dev/svc-a/cronjob.yaml".to_string()));
    server.stop().await;
}

#[tokio::test]
async fn an_already_released_build_makes_no_commit() {
    let (repo, ids) = fixture();
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;
    client
        .release(release_branch("svc-a", "dev", "master"))
        .await
        .unwrap();
    let head = repo.remote_head();
    let again = client
        .release(release_artifact("svc-a", "dev", &ids[2]))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(again.outcome(), pb::Outcome::AlreadyUpToDate);
    assert_eq!(again.commit_sha, head);
    assert_eq!(repo.remote_head(), head, "no commit was pushed");
    server.stop().await;
}

#[tokio::test]
async fn a_retried_request_id_applies_once() {
    let (repo, ids) = fixture();
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;
    let mut request = release_artifact("svc-a", "dev", &ids[0]);
    request.request_id = "req-42".into();
    let first = client
        .release(request.clone())
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    client
        .release(release_artifact("svc-a", "dev", &ids[1]))
        .await
        .unwrap();
    let head = repo.remote_head();
    let retried = client
        .release(request)
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(
        retried.commit_sha, first.commit_sha,
        "the retry answers with the first commit"
    );
    assert_eq!(repo.remote_head(), head, "the retry made no commit");
    assert!(commit_info(&repo, &first.commit_sha)
        .body
        .contains("Request-ID: req-42"));
    server.stop().await;
}

#[tokio::test]
async fn the_config_branch_is_the_remotes_head_and_apart_from_the_application_branch() {
    // A config repository on `main` (its HEAD), builds of the application
    // branch `master`.
    let mut repo = ConfigRepo::new();
    let id = repo.add_build("shop", "master", 1);
    repo.push();
    git(&repo.work, &["push", "-q", "origin", "master:main"]);
    repo.remote_git(&["symbolic-ref", "HEAD", "refs/heads/main"]);
    let master_before = repo.remote_git(&["rev-parse", "master"]);
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;
    let promoted = client
        .promote(pb::PromoteRequest {
            service: "shop".into(),
            environment: "dev".into(),
            committer: alice(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(promoted.artifact_id, id);
    let main = repo.remote_git(&["rev-parse", "main"]);
    assert_eq!(promoted.commit_sha, main.trim(), "written to main");
    assert_eq!(
        repo.remote_git(&["rev-parse", "master"]),
        master_before,
        "the other branch is untouched"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_committed_artifact_json_with_an_old_tail_does_not_block_releases() {
    // The original release manager rewrote artifact.json without
    // truncating it: a shorter file keeps the end of the longer one.
    let mut repo = ConfigRepo::new();
    let id = repo.add_build("shop", "master", 1);
    let file = repo.work.join("builds/shop/master/artifact.json");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("      }\n    }\n  ]\n}\n");
    std::fs::write(&file, text).unwrap();
    git(&repo.work, &["commit", "-q", "-a", "--amend", "--no-edit"]);
    repo.push();
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;
    let released = client
        .release(release_artifact("shop", "dev", &id))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(released.outcome(), pb::Outcome::Applied);
    let status = client
        .status(pb::StatusRequest {
            service: "shop".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.environments[0]
            .artifact
            .as_ref()
            .unwrap()
            .artifact_id,
        id
    );
    server.stop().await;
}
