//! Faults the server must survive without a human: a remote that hangs, a
//! remote rewritten under it, a second server on the same data dir, locks
//! left by a crash, debris. (The short remote timeout they need is the one
//! every server of the test binary shares: `support::server`.)

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::support::git_daemon::GitDaemon;
use crate::support::server::{local_config, start_on, REMOTE_TIMEOUT};
use crate::support::server_api::RemoteLocation;
use crate::support::*;
use release_manager::pb;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// A config repository with builds 1..=n of `shop` on master, pushed.
fn repo_with_builds(n: usize) -> (ConfigRepo, Vec<String>) {
    let mut repo = ConfigRepo::new();
    let ids = (1..=n)
        .map(|n| repo.add_build("shop", "master", n))
        .collect();
    repo.push();
    (repo, ids)
}

fn release(service: &str, env: &str, id: &str) -> tonic::Request<pb::ReleaseRequest> {
    tonic::Request::new(release_artifact(service, env, id))
}

#[tokio::test]
async fn a_hung_remote_fails_writes_in_time_and_nothing_late_is_applied() {
    let (repo, ids) = repo_with_builds(3);
    let daemon = GitDaemon::serve(&repo.remote);
    let url = daemon.url.clone();
    let server = TestServer::start_with(&repo.remote, |config| {
        config.config_repo = RemoteLocation::Network(url.clone());
        config.writer.batch_timeout = Duration::from_secs(4);
    })
    .await;
    let mut client = server.client().await;
    client
        .release(release("shop", "dev", &ids[0]))
        .await
        .unwrap();

    daemon.hang();
    let head_before = repo.remote_head();

    // A release against the hung remote answers within the bound, saying
    // which remote and which step.
    let began = Instant::now();
    let refused = tokio::time::timeout(
        Duration::from_secs(30),
        client.release(release("shop", "dev", &ids[1])),
    )
    .await
    .expect("answered, not hung")
    .unwrap_err();
    assert!(
        began.elapsed() < Duration::from_secs(15),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(
        refused.message().contains(&url) && refused.message().contains("did not answer in time"),
        "{}",
        refused.message()
    );

    // While the writer waits on the hung remote with a write, a caller that
    // gives up first (a 1 s deadline) gets DEADLINE_EXCEEDED, and its write
    // is never applied, even after the remote answers again.
    let stats = server.stats();
    let started = stats.batches_started.load(Ordering::SeqCst);
    let mut blocker = server.client().await;
    let blocked = tokio::spawn(async move {
        blocker
            .release(release("shop", "staging", "master-shop-001"))
            .await
    });
    wait_until(
        "the writer works on the blocking write",
        Duration::from_secs(10),
        || stats.batches_started.load(Ordering::SeqCst) > started,
    )
    .await;
    let mut impatient = release("shop", "prod", &ids[2]);
    impatient.set_timeout(Duration::from_secs(1));
    let gave_up = client.release(impatient).await.unwrap_err();
    assert!(
        matches!(gave_up.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{gave_up:?}"
    );
    let blocked = tokio::time::timeout(Duration::from_secs(30), blocked)
        .await
        .expect("the blocked write is answered in time")
        .unwrap();
    assert_eq!(blocked.unwrap_err().code(), Code::Unavailable);

    daemon.resume();
    // Writes work again without a restart.
    let done = client
        .release(release("shop", "dev", &ids[1]))
        .await
        .unwrap();
    assert_eq!(
        done.into_inner().result.unwrap().outcome(),
        pb::Outcome::Applied
    );
    let log = repo.remote_git(&["log", "--format=%s", &format!("{head_before}..master")]);
    assert!(log.contains(&ids[1]), "{log}");
    assert!(
        !log.contains(&ids[2]),
        "the write whose caller gave up was applied: {log}"
    );
    assert!(repo
        .remote_file("prod/releases/prod/shop/artifact.json")
        .is_none());
    assert_eq!(
        stats.abandoned.load(Ordering::SeqCst),
        1,
        "skipped, not applied"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_write_queued_behind_a_hung_push_is_answered_with_it() {
    let (repo, ids) = repo_with_builds(2);
    let daemon = GitDaemon::serve(&repo.remote);
    let url = daemon.url.clone();
    let server = TestServer::start_with(&repo.remote, |config| {
        config.config_repo = RemoteLocation::Network(url.clone());
    })
    .await;
    daemon.hang();
    let stats = server.stats();
    let started = stats.batches_started.load(Ordering::SeqCst);
    let mut first = server.client().await;
    let hung = tokio::spawn(async move {
        let answer = first
            .release(release("shop", "dev", &artifact_id("shop", "master", 1)))
            .await;
        (answer, Instant::now())
    });
    wait_until(
        "the writer pushes the first write",
        Duration::from_secs(10),
        || stats.batches_started.load(Ordering::SeqCst) > started,
    )
    .await;
    let mut second = server.client().await;
    let queued = second.release(release("shop", "staging", &ids[1])).await;
    let queued_at = Instant::now();
    let (hung, hung_at) = hung.await.unwrap();
    assert_eq!(hung.unwrap_err().code(), Code::Unavailable);
    let queued = queued.unwrap_err();
    assert_eq!(queued.code(), Code::Unavailable, "{queued:?}");
    assert_eq!(error_info(&queued).unwrap().0, "REMOTE_TIMEOUT");
    // At once after the write it queued behind, not one more
    // --remote-timeout later.
    assert!(
        queued_at < hung_at + REMOTE_TIMEOUT / 2,
        "{:?} after the hung write",
        queued_at.saturating_duration_since(hung_at)
    );
    // A write after that tries the remote again.
    daemon.resume();
    client_release_works(&server, &ids[1]).await;
    server.stop().await;
}

async fn client_release_works(server: &TestServer, id: &str) {
    server
        .client()
        .await
        .release(release("shop", "dev", id))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_is_refused() {
    let (repo, _) = repo_with_builds(1);
    let first = TestServer::start(&repo.remote).await;
    let config = local_config(&repo.remote, first.data.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let message = start_on(config, listener)
        .await
        .err()
        .expect("the second server does not start");
    assert!(
        message.contains("another release manager is using the data dir")
            && message.contains(&first.data.path().display().to_string())
            && message.contains("--data-dir"),
        "{message}"
    );
    // The first one is unharmed.
    let mut client = first.client().await;
    client
        .status(pb::StatusRequest {
            service: "shop".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // Once it stops, the data dir is free again.
    let data = first.stop().await;
    let again = TestServer::start_in(&repo.remote, data, |_| {}).await;
    again.stop().await;
}

#[tokio::test]
async fn locks_a_crash_left_in_the_mirror_are_cleared_at_start() {
    let (repo, ids) = repo_with_builds(2);
    let server = TestServer::start(&repo.remote).await;
    let data = server.stop().await;
    // What a SIGKILL in the middle of a write leaves behind.
    let mirror = data.path().join("mirror.git");
    let debris = [
        mirror.join("refs/remotes/origin/master.lock"),
        mirror.join("packed-refs.lock"),
        mirror.join("objects/pack/tmp_rm_4242_abc"),
        mirror.join("objects/pack/pack-0123456789abcdef0123456789abcdef01234567.pack"),
    ];
    for path in &debris {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"left by a crash").unwrap();
    }
    let server = TestServer::start_in(&repo.remote, data, |_| {}).await;
    for path in &debris {
        assert!(!path.exists(), "{} is still there", path.display());
    }
    let mut client = server.client().await;
    client
        .release(release("shop", "dev", &ids[1]))
        .await
        .unwrap();
    assert!(subjects(&repo)[0].starts_with(&format!("[dev/shop] release {} by ", ids[1])));
    let fsck = repo.remote_git(&["fsck", "--no-progress"]);
    assert!(!fsck.contains("error"), "{fsck}");
    server.stop().await;
}

#[tokio::test]
async fn a_lock_left_on_the_remote_is_reported_not_retried() {
    let (repo, ids) = repo_with_builds(2);
    let server = TestServer::start(&repo.remote).await;
    let lock = repo.remote.join("refs/heads/master.lock");
    std::fs::write(&lock, b"left by a crashed git").unwrap();
    let packs = |repo: &ConfigRepo| {
        std::fs::read_dir(repo.remote.join("objects/pack")).map_or(0, |d| d.count())
    };
    let packs_before = packs(&repo);
    let mut client = server.client().await;
    let refused = client
        .release(release("shop", "dev", &ids[0]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert_eq!(error_info(&refused).unwrap().0, "REMOTE_LOCKED");
    // The lock's place in the repository, never the server's path to it.
    assert!(
        refused.message().contains("(refs/heads/master.lock)")
            && refused.message().contains("if none is running, remove")
            && !refused
                .message()
                .contains(&repo.remote.display().to_string()),
        "{}",
        refused.message()
    );
    // A readiness probe says the server cannot write, until the lock is
    // gone; liveness (the overall health) stays SERVING: a restart would
    // not remove a lock the server did not make.
    wait_for("health to say NOT_SERVING", Duration::from_secs(10), || {
        let url = server.url.clone();
        async move { (health(&url, RELEASES).await == ServingStatus::NotServing).then_some(()) }
    })
    .await;
    assert_eq!(health(&server.url, "").await, ServingStatus::Serving);
    assert_eq!(
        server.stats().conflicts.load(Ordering::SeqCst),
        0,
        "not a conflict"
    );
    assert_eq!(
        packs(&repo),
        packs_before,
        "nothing written to the locked remote"
    );
    std::fs::remove_file(&lock).unwrap();
    wait_for(
        "health to say SERVING again",
        Duration::from_secs(10),
        || {
            let url = server.url.clone();
            async move { (health(&url, RELEASES).await == ServingStatus::Serving).then_some(()) }
        },
    )
    .await;
    client
        .release(release("shop", "dev", &ids[0]))
        .await
        .unwrap();
    server.stop().await;
}

/// The service readiness probes ask about.
const RELEASES: &str = "releasemanager.v1.ReleaseService";

/// What health says of `service` (`""`: the whole server).
async fn health(url: &str, service: &str) -> ServingStatus {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status()
}

#[tokio::test]
async fn a_force_push_on_the_remote_is_followed() {
    let (repo, ids) = repo_with_builds(3);
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;
    let with_id = |id: &str, request_id: &str| {
        let mut request = release_artifact("shop", "dev", id);
        request.request_id = request_id.into();
        tonic::Request::new(request)
    };
    client.release(with_id(&ids[0], "first")).await.unwrap();
    let good = repo.remote_head();
    let dropped = client
        .release(with_id(&ids[1], "dropped"))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap()
        .commit_sha;
    // An administrator removes the last release from the remote's history.
    repo.remote_git(&["update-ref", "refs/heads/master", &good]);
    server.sync().await;

    // History no longer lists the dropped release.
    let history = client
        .describe_release(pb::DescribeReleaseRequest {
            service: "shop".into(),
            environment: "dev".into(),
            page_size: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        history.releases.iter().all(|r| r.commit_sha != dropped),
        "{history:?}"
    );
    assert_eq!(history.releases[0].artifact_id, ids[0]);
    // A replay of the dropped request is applied anew, not answered with a
    // commit the remote no longer has.
    let replay = client
        .release(with_id(&ids[1], "dropped"))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    // (The same commit can come out again: same parent, tree and time.)
    assert_eq!(
        repo.remote_head(),
        replay.commit_sha,
        "the replay is on the remote"
    );
    assert_eq!(replay.outcome(), pb::Outcome::Applied);
    // Rollback goes back to what the new history ran before.
    let rolled = client
        .rollback(pb::RollbackRequest {
            service: "shop".into(),
            environment: "dev".into(),
            committer: alice(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rolled.result.unwrap().artifact_id, ids[0]);
    server.stop().await;
}

#[tokio::test]
async fn a_replay_is_never_answered_with_a_commit_a_force_push_removed() {
    let (repo, ids) = repo_with_builds(3);
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;
    let with_id = |id: &str, request_id: &str| {
        let mut request = release_artifact("shop", "dev", id);
        request.request_id = request_id.into();
        tonic::Request::new(request)
    };
    client.release(with_id(&ids[0], "kept")).await.unwrap();
    let good = repo.remote_head();
    let dropped = client
        .release(with_id(&ids[1], "dropped"))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap()
        .commit_sha;
    // The remote loses the release; the server has not fetched since.
    repo.remote_git(&["update-ref", "refs/heads/master", &good]);
    let retried = client
        .release(with_id(&ids[1], "dropped"))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    let history = repo.remote_git(&["rev-list", "master"]);
    assert!(
        history.contains(&retried.commit_sha),
        "answered with {} ({}), which the remote does not have",
        retried.commit_sha,
        if retried.commit_sha == dropped {
            "the dropped commit"
        } else {
            "another commit"
        }
    );
    assert_eq!(retried.outcome(), pb::Outcome::Applied);
    assert!(!retried.replayed, "applied afresh, not replayed");
    // An id whose commit is still there is answered from it, checked.
    let kept = client
        .release(with_id(&ids[0], "kept"))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert!(kept.replayed, "{kept:?}");
    assert!(repo
        .remote_git(&["rev-list", "master"])
        .contains(&kept.commit_sha));
    server.stop().await;
}

#[tokio::test]
async fn builds_in_a_rewritten_history_are_auto_released() {
    let (mut repo, ids) = repo_with_builds(1);
    let server = TestServer::start(&repo.remote).await;
    let mut policies = server.policy_client().await;
    policies
        .apply_auto_release(pb::ApplyAutoReleaseRequest {
            request_id: String::new(),
            service: "shop".into(),
            branch: "master".into(),
            environment: "staging".into(),
            committer: alice(),
        })
        .await
        .unwrap();
    let good = repo.remote_head();
    let mut client = server.client().await;
    client
        .release(release("shop", "dev", &ids[0]))
        .await
        .unwrap();
    // An administrator rewrites the remote: the release is dropped, and a
    // new build sits where it was.
    git(&repo.work, &["fetch", "-q", "origin"]);
    git(&repo.work, &["reset", "-q", "--hard", &good]);
    let rebuilt = repo.add_build("shop", "master", 2);
    git(&repo.work, &["push", "-q", "-f", "origin", "master"]);
    server.sync().await;
    let staged = repo
        .remote_file("staging/releases/staging/shop/artifact.json")
        .expect("the new build was auto-released");
    assert!(staged.contains(&rebuilt), "{staged}");
    server.stop().await;
}
