//! The persisted index across restarts on the same data dir: the snapshot
//! is loaded and only the commits after it are read, and every answer
//! (status, history, builds, rollbacks, request-id replays) is what it was
//! before the restart. A snapshot that no
//! longer fits (the remote's history was rewritten, the file is damaged,
//! another repository) is refused and the index rebuilt from history.

use crate::support::*;
use release_manager::pb;

fn fixture() -> ConfigRepo {
    let mut repo = ConfigRepo::new();
    for n in 1..=3 {
        repo.add_build("svc-a", "master", n);
        repo.add_build("svc-b", "master", n);
    }
    repo.add_build("svc-a", "feature/x", 1);
    repo.push();
    repo
}

/// Everything a client can read about the fixture's services.
async fn answers(server: &TestServer) -> Vec<String> {
    let mut client = server.client().await;
    let mut seen = Vec::new();
    for service in ["svc-a", "svc-b"] {
        let status = client
            .status(pb::StatusRequest {
                service: service.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.push(format!("{status:?}"));
        for environment in ENVS {
            let history = client
                .describe_release(pb::DescribeReleaseRequest {
                    service: service.into(),
                    environment: environment.into(),
                    page_size: 20,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            seen.push(format!("{history:?}"));
        }
        let builds = client
            .describe_artifact(pb::DescribeArtifactRequest {
                service: service.into(),
                page_size: 20,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.push(format!("{builds:?}"));
    }
    seen
}

fn with_request_id(mut request: pb::ReleaseRequest, id: &str) -> pb::ReleaseRequest {
    request.request_id = id.into();
    request
}

/// Some history made through the server, with request ids.
async fn make_history(server: &TestServer) -> Vec<pb::ReleaseResult> {
    let mut client = server.client().await;
    let mut results = Vec::new();
    let requests = [
        with_request_id(release_branch("svc-a", "dev", "master"), "req-1"),
        with_request_id(release_branch("svc-a", "dev", "feature/x"), "req-2"),
        with_request_id(
            release_artifact("svc-b", "dev", &artifact_id("svc-b", "master", 2)),
            "req-3",
        ),
    ];
    for request in requests {
        results.push(
            client
                .release(request)
                .await
                .unwrap()
                .into_inner()
                .result
                .unwrap(),
        );
    }
    client
        .promote(pb::PromoteRequest {
            service: "svc-a".into(),
            environment: "staging".into(),
            committer: alice(),
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .rollback(pb::RollbackRequest {
            service: "svc-a".into(),
            environment: "dev".into(),
            committer: alice(),
            ..Default::default()
        })
        .await
        .unwrap();
    results
}

#[tokio::test]
async fn a_restart_loads_the_snapshot_and_answers_as_before() {
    let mut repo = fixture();
    let server = TestServer::start(&repo.remote).await;
    assert!(!server.started_from_snapshot().0);
    let results = make_history(&server).await;
    let before = answers(&server).await;
    let data = server.stop().await;
    assert!(
        data.path().join("index.snapshot").exists(),
        "saved at shutdown"
    );

    let server = TestServer::start_in(&repo.remote, data, |_| {}).await;
    let (from_snapshot, commits_read) = server.started_from_snapshot();
    assert!(from_snapshot);
    assert_eq!(commits_read, 0, "nothing new to read");
    assert_eq!(answers(&server).await, before);

    // A retried request is answered from its request id, with no commit.
    let head = repo.remote_head();
    let mut client = server.client().await;
    let replay = client
        .release(with_request_id(
            release_branch("svc-a", "dev", "master"),
            "req-1",
        ))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(replay.commit_sha, results[0].commit_sha);
    assert_eq!(replay.artifact_id, results[0].artifact_id);
    assert_eq!(repo.remote_head(), head, "no new commit");
    let data = server.stop().await;

    // Commits by others while it was stopped: only those are read.
    repo.add_build("svc-b", "master", 4);
    repo.add_build("svc-b", "master", 5);
    repo.push();
    let server = TestServer::start_in(&repo.remote, data, |_| {}).await;
    let (from_snapshot, commits_read) = server.started_from_snapshot();
    assert!(from_snapshot);
    assert_eq!(commits_read, 2);
    let mut client = server.client().await;
    let builds = client
        .describe_artifact(pb::DescribeArtifactRequest {
            service: "svc-b".into(),
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .artifacts;
    let ids: Vec<&str> = builds.iter().map(|b| b.artifact_id.as_str()).collect();
    assert_eq!(
        ids,
        vec![
            artifact_id("svc-b", "master", 5).as_str(),
            artifact_id("svc-b", "master", 4).as_str()
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn a_damaged_snapshot_is_refused_and_the_index_rebuilt() {
    let repo = fixture();
    let server = TestServer::start(&repo.remote).await;
    make_history(&server).await;
    let before = answers(&server).await;
    let mut data = server.stop().await;
    let snapshot = data.path().join("index.snapshot");
    let good = std::fs::read(&snapshot).unwrap();
    let mut flipped = good.clone();
    let last = flipped.len() - 5;
    flipped[last] ^= 1;
    for damaged in [
        good[..good.len() / 2].to_vec(),
        flipped,
        b"not a snapshot".to_vec(),
    ] {
        std::fs::write(&snapshot, &damaged).unwrap();
        let server = TestServer::start_in(&repo.remote, data, |_| {}).await;
        let (from_snapshot, commits_read) = server.started_from_snapshot();
        assert!(!from_snapshot, "a damaged snapshot is not used");
        assert!(commits_read > 0, "history was read instead");
        assert_eq!(answers(&server).await, before);
        data = server.stop().await;
        assert_ne!(
            std::fs::read(&snapshot).unwrap(),
            damaged,
            "a good snapshot replaced it"
        );
    }
}

#[tokio::test]
async fn a_snapshot_from_before_a_force_push_is_rebuilt() {
    let mut repo = fixture();
    let server = TestServer::start(&repo.remote).await;
    make_history(&server).await;
    let data = server.stop().await;

    // Someone rewrites the remote: back to the first build, then a new one.
    let first_build = repo
        .remote_git(&["rev-list", "--reverse", "master"])
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    git(&repo.work, &["fetch", "-q", "origin"]);
    git(&repo.work, &["reset", "-q", "--hard", &first_build]);
    repo.add_build("svc-c", "master", 1);
    git(&repo.work, &["push", "-q", "--force", "origin", "master"]);

    let server = TestServer::start_in(&repo.remote, data, |_| {}).await;
    assert!(!server.started_from_snapshot().0);
    let mut client = server.client().await;
    let history = client
        .describe_release(pb::DescribeReleaseRequest {
            service: "svc-a".into(),
            environment: "dev".into(),
            page_size: 20,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .releases;
    assert!(
        history.is_empty(),
        "the releases are gone with the rewrite: {history:?}"
    );
    let builds = client
        .describe_artifact(pb::DescribeArtifactRequest {
            service: "svc-c".into(),
            page_size: 5,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .artifacts;
    assert_eq!(builds.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_snapshot_of_another_repository_is_not_used() {
    let repo = fixture();
    let other = fixture();
    let server = TestServer::start(&repo.remote).await;
    make_history(&server).await;
    let data = server.stop().await;
    // Another repository, same data dir: nothing of the first one's index
    // may answer for it.
    let server = TestServer::start_in(&other.remote, data, |_| {}).await;
    assert!(!server.started_from_snapshot().0);
    let mut client = server.client().await;
    let history = client
        .describe_release(pb::DescribeReleaseRequest {
            service: "svc-a".into(),
            environment: "dev".into(),
            page_size: 20,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .releases;
    assert!(history.is_empty(), "{history:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_mirror_made_anew_beside_a_snapshot_catches_up_what_arrived() {
    let mut repo = fixture();
    let server = TestServer::start(&repo.remote).await;
    let mut policies = server.policy_client().await;
    policies
        .apply_auto_release(pb::ApplyAutoReleaseRequest {
            request_id: String::new(),
            service: "svc-b".into(),
            branch: "master".into(),
            environment: "dev".into(),
            committer: alice(),
        })
        .await
        .unwrap();
    let data = server.stop().await;
    // While it is stopped, CI pushes a build, and someone deletes the
    // mirror to repair it; the snapshot stays.
    let id = repo.add_build("svc-b", "master", 9);
    repo.push();
    std::fs::remove_dir_all(data.path().join("mirror.git")).unwrap();
    let server = TestServer::start_in(&repo.remote, data, |_| {}).await;
    assert!(server.started_from_snapshot().0);
    server.sync().await;
    let released = subjects(&repo)
        .iter()
        .any(|s| s.starts_with(&format!("[dev/svc-b] auto release {id} by ")));
    assert!(
        released,
        "the build that arrived was auto-released: {:?}",
        subjects(&repo)
    );
    server.stop().await;
}

#[tokio::test]
async fn a_rollback_after_a_restart_uses_the_release_history_of_the_loaded_snapshot() {
    let repo = fixture();
    let ids: Vec<String> = (1..=3).map(|n| artifact_id("svc-a", "master", n)).collect();
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
    let data = server.stop().await;
    let server = TestServer::start_in(&repo.remote, data, |_| {}).await;
    // The history the rollback needs came from the snapshot, not from
    // reading the repository again.
    assert_eq!(
        server.started_from_snapshot(),
        (true, 0),
        "the restart loaded the snapshot and read no history"
    );
    let mut client = server.client().await;
    let back = client
        .rollback(pb::RollbackRequest {
            service: "svc-a".into(),
            environment: "dev".into(),
            committer: alice(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(back.result.unwrap().artifact_id, ids[0]);
    server.stop().await;
}
