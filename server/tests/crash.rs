//! A crash at every step of a push: the real server binary (built for tests
//! with its crash points) aborts at the named step, and a plain restart on
//! the same data dir recovers with no manual step: it starts, no write that
//! was acknowledged before is lost, the write that crashed can be made
//! again, history stays linear and `git fsck` clean, and neither the mirror
//! nor the remote keeps a lock, a temporary file or a pack without index.
//! A crash inside git's own lock on the remote's branch is recovered too,
//! and so are SIGKILLs at random moments of concurrent releases.

mod support;

use std::time::Duration;

use release_manager::pb;
use release_manager::pb::release_service_client::ReleaseServiceClient;

use support::*;

/// Every crash point of a push to a local remote, in order.
const STEPS: &[&str] = &[
    "mirror-pack-renamed",
    "mirror-index-renamed",
    "remote-pack-renamed",
    "remote-index-renamed",
    "remote-ref-update-recorded",
    "remote-branch-moved",
    "tracking-ref-moved",
];

#[tokio::test]
async fn a_crash_at_any_step_of_a_push_recovers_by_itself() {
    for step in STEPS {
        let dir = tempfile::tempdir().unwrap();
        let remote = config_repo(dir.path());
        let data = dir.path().join("data");

        // An acknowledged release, then a crash in the middle of the next
        // push (the step's second hit).
        let server = start(&remote, &data, Some(&format!("{step}#2")));
        let acknowledged = release(&server.url, "master-shop-1")
            .await
            .unwrap_or_else(|e| panic!("{step}: the first push crashed early: {e:?}"));
        let acknowledged = acknowledged.result.unwrap().commit_sha;
        let crashed = release(&server.url, "master-shop-2").await;
        assert!(crashed.is_err(), "{step}: the push did not crash");
        let mut crashing = server;
        let status = crashing.process.wait_timeout(Duration::from_secs(60));
        assert!(!status.success(), "{step}: {status:?}");

        // A plain restart: no manual step.
        let server = start(&remote, &data, None);
        let log = git(&remote, &["log", "--format=%H %s", "master"]);
        assert!(
            log.contains(&acknowledged),
            "{step}: the acknowledged release is gone: {log}"
        );
        let again = release(&server.url, "master-shop-2")
            .await
            .unwrap_or_else(|e| panic!("{step}: the write cannot be made again: {e:?}"));
        let result = again.result.unwrap();
        assert_eq!(result.artifact_id, "master-shop-2");
        let head = git(&remote, &["rev-parse", "master"]);
        assert_eq!(result.commit_sha, head.trim(), "{step}");
        let merges = git(&remote, &["rev-list", "--merges", "master"]);
        assert!(merges.is_empty(), "{step}: history is not linear");
        git(&remote, &["fsck", "--no-progress", "--strict"]);
        let mirror = data.join("mirror.git");
        git(&mirror, &["fsck", "--no-progress"]);
        for repo in [&remote, &mirror] {
            let left = debris(repo);
            assert!(left.is_empty(), "{step}: left behind: {left:?}");
        }
        drop(server);
    }
}

/// What a kill inside git's ref update leaves: the branch's lock, created
/// and not yet renamed into place (libgit2 writes the new id into it only
/// at the end, so it is empty until then).
#[tokio::test]
async fn a_crash_inside_the_ref_update_leaves_no_lock_a_person_must_remove() {
    let dir = tempfile::tempdir().unwrap();
    let remote = config_repo(dir.path());
    let data = dir.path().join("data");
    let server = start(&remote, &data, Some("remote-ref-update-recorded#2"));
    release(&server.url, "master-shop-1").await.unwrap();
    assert!(release(&server.url, "master-shop-2").await.is_err());
    let mut crashed = server;
    crashed.process.wait_timeout(Duration::from_secs(60));
    let lock = remote.join("refs/heads/master.lock");
    std::fs::write(&lock, b"").unwrap();
    let head_before = git(&remote, &["rev-parse", "master"]);

    let server = start(&remote, &data, None);
    assert!(!lock.exists(), "the server's own lock is still there");
    assert!(
        server.logged("removed the lock on the remote's branch"),
        "{:?}",
        server.log.lock().unwrap()
    );
    assert_eq!(git(&remote, &["rev-parse", "master"]), head_before);
    let again = release(&server.url, "master-shop-2").await.unwrap();
    assert_eq!(
        again.result.unwrap().commit_sha,
        git(&remote, &["rev-parse", "master"]).trim()
    );
    git(&remote, &["fsck", "--no-progress", "--strict"]);
}

/// A lock the server did not make is never removed, even beside its own
/// record of an interrupted update: it is reported, and health says
/// NOT_SERVING until someone removes it.
#[tokio::test]
async fn a_lock_of_someone_else_stays_and_health_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let remote = config_repo(dir.path());
    let data = dir.path().join("data");
    let server = start(&remote, &data, Some("remote-ref-update-recorded#1"));
    assert!(release(&server.url, "master-shop-1").await.is_err());
    let mut crashed = server;
    crashed.process.wait_timeout(Duration::from_secs(60));
    // Another process's update: another commit in the lock.
    let lock = remote.join("refs/heads/master.lock");
    std::fs::write(&lock, b"0123456789abcdef0123456789abcdef01234567\n").unwrap();

    let server = start(&remote, &data, None);
    assert!(lock.exists(), "someone else's lock was removed");
    let refused = release(&server.url, "master-shop-1").await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(
        refused.message().contains("refs/heads/master.lock")
            && !refused
                .message()
                .contains(&dir.path().display().to_string()),
        "{}",
        refused.message()
    );
    support::poll::wait_for("NOT_SERVING", Duration::from_secs(10), || async {
        (health(&server.url).await == 2).then_some(())
    })
    .await;
    std::fs::remove_file(&lock).unwrap();
    support::poll::wait_for("SERVING", Duration::from_secs(10), || async {
        (health(&server.url).await == 1).then_some(())
    })
    .await;
    release(&server.url, "master-shop-1").await.unwrap();
}

/// What health says of the release service, as readiness probes ask (1
/// SERVING, 2 NOT_SERVING).
async fn health(url: &str) -> i32 {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: "releasemanager.v1.ReleaseService".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

/// Kills in the test suite; `RELEASE_MANAGER_TEST_KILLS=24` runs the long
/// form by hand (docs/development.md).
const DEFAULT_KILLS: usize = 4;

/// Writers releasing at once while the server is killed.
const WRITERS: usize = 4;

/// SIGKILLs at moments spread over concurrent releases to a local remote:
/// after every one a plain restart releases at once (no person), every
/// release acknowledged before a kill is on the remote, history stays
/// linear and `git fsck` clean, and no lock is left.
#[tokio::test]
async fn sigkills_during_concurrent_releases_never_need_a_person() {
    let kills = std::env::var("RELEASE_MANAGER_TEST_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_KILLS);
    let dir = tempfile::tempdir().unwrap();
    let remote = config_repo(dir.path());
    let data = dir.path().join("data");
    let mut acknowledged = Vec::new();
    let began = std::time::Instant::now();
    let mut own_locks_removed = 0;
    for round in 0..kills {
        let mut server = start(&remote, &data, None);
        own_locks_removed += usize::from(server.logged("removed the lock on the remote's branch"));
        // The first write after a restart lands, with no one's help.
        let first = release_to(&server.url, "first", round)
            .await
            .unwrap_or_else(|e| {
                panic!("round {round}: the restarted server cannot release: {e:?}")
            });
        acknowledged.push(first);
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let url = server.url.clone();
                // A namespace of its own each round: a write the kill cut
                // off may have landed, unacknowledged.
                let namespace = format!("w{writer}-r{round}");
                tokio::spawn(async move {
                    let mut done = Vec::new();
                    for n in 0.. {
                        match release_to(&url, &namespace, n).await {
                            Ok(commit) => done.push(commit),
                            Err(_) => return done,
                        }
                    }
                    done
                })
            })
            .collect();
        // Spread over the push's steps: a different moment every round.
        let delay = Duration::from_millis(40 + (round as u64 * 173) % 460);
        tokio::time::sleep(delay).await;
        server.process.signal(libc::SIGKILL);
        server
            .process
            .wait_timeout_async(Duration::from_secs(30))
            .await;
        for writer in writers {
            acknowledged.extend(writer.await.unwrap());
        }
    }
    let server = start(&remote, &data, None);
    own_locks_removed += usize::from(server.logged("removed the lock on the remote's branch"));
    acknowledged.push(release_to(&server.url, "last", 0).await.unwrap());
    let history = git(&remote, &["rev-list", "master"]);
    for commit in &acknowledged {
        assert!(
            history.contains(commit.as_str()),
            "acknowledged {commit} is not on the remote"
        );
    }
    assert!(git(&remote, &["rev-list", "--merges", "master"]).is_empty());
    git(&remote, &["fsck", "--no-progress", "--strict"]);
    let left = debris(&remote);
    assert!(left.is_empty(), "left behind: {left:?}");
    eprintln!(
        "{kills} kills, {} acknowledged releases, {own_locks_removed} locks of a killed update removed at restart, {:?}",
        acknowledged.len(),
        began.elapsed()
    );
}

/// Releases build 1 or 2 (by `n`) of `shop` to dev in namespace `namespace`,
/// so that every call makes a commit; the commit acknowledged.
async fn release_to(url: &str, namespace: &str, n: usize) -> Result<String, tonic::Status> {
    let mut client = ReleaseServiceClient::connect(url.to_string())
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut request = tonic::Request::new(pb::ReleaseRequest {
        service: "shop".into(),
        environment: "dev".into(),
        namespace: namespace.into(),
        source: Some(pb::release_request::Source::ArtifactId(format!(
            "master-shop-{}",
            n % 2 + 1
        ))),
        committer: Some(pb::Person {
            name: "Olga Operator".into(),
            email: "olga@example.com".into(),
        }),
        ..Default::default()
    });
    request.set_timeout(Duration::from_secs(30));
    let result = client.release(request).await?.into_inner().result.unwrap();
    assert_eq!(result.outcome(), pb::Outcome::Applied, "{result:?}");
    Ok(result.commit_sha)
}
