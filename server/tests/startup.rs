//! Starting the real server binary: it answers from the first moment but
//! says it is not ready (health `NOT_SERVING`, calls `UNAVAILABLE`) until
//! its mirror and index are; and the persisted index survives a SIGKILL at
//! any point of its writing: the next start finds the old snapshot or the
//! new one, never a torn one.

mod support;

use std::path::Path;
use std::time::Duration;

use support::poll::wait_until_blocking;
use support::*;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

async fn health(url: &str, service: &str) -> ServingStatus {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    client
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status()
}

#[tokio::test]
async fn health_says_not_serving_until_the_index_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let remote = config_repo(dir.path());
    let hold = dir.path().join("go");
    let server = launch(
        &remote,
        &dir.path().join("data"),
        &[("RELEASE_MANAGER_HOLD_START", hold.to_str().unwrap())],
        "gRPC port open",
    );
    for service in [
        "",
        "releasemanager.v1.ReleaseService",
        "releasemanager.v1.PolicyService",
    ] {
        assert_eq!(
            health(&server.url, service).await,
            ServingStatus::NotServing,
            "{service:?} before ready"
        );
    }
    let early = release(&server.url, "master-shop-1").await.unwrap_err();
    assert_eq!(early.code(), tonic::Code::Unavailable);
    assert!(early.message().contains("starting"), "{}", early.message());

    std::fs::write(&hold, b"").unwrap();
    support::poll::wait_for(
        "the server to say SERVING",
        Duration::from_secs(30),
        || async { (health(&server.url, "").await == ServingStatus::Serving).then_some(()) },
    )
    .await;
    assert_eq!(
        health(&server.url, "releasemanager.v1.ReleaseService").await,
        ServingStatus::Serving
    );
    let released = release(&server.url, "master-shop-1").await.unwrap();
    assert_eq!(released.result.unwrap().artifact_id, "master-shop-1");
}

/// Adds one CI build commit to the remote.
fn push_build(dir: &Path, remote: &Path, n: usize) {
    let work = dir.join("work");
    git(
        &work,
        &["pull", "-q", "--rebase", remote.to_str().unwrap(), "master"],
    );
    let id = format!("master-shop-{n}");
    std::fs::write(
        work.join("builds/shop/master/dev/deployment.yaml"),
        format!("kind: Deployment\nimage: shop:{n}\n"),
    )
    .unwrap();
    std::fs::write(
        work.join("builds/shop/master/artifact.json"),
        format!("{{\"id\": \"{id}\", \"service\": \"shop\"}}\n"),
    )
    .unwrap();
    git(&work, &["commit", "-qam", &format!("CI: build tag {id}")]);
    git(&work, &["push", "-q", remote.to_str().unwrap(), "master"]);
}

#[tokio::test]
async fn a_kill_while_the_snapshot_is_written_leaves_the_old_one_or_the_new_one() {
    for (step, next_start_reads) in [
        ("snapshot-written", "commits_read=1"),
        ("snapshot-renamed", "commits_read=0"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let remote = config_repo(dir.path());
        let data = dir.path().join("data");
        let snapshot = data.join("index.snapshot");

        // A first run saves a snapshot once it is ready.
        let first = start(&remote, &data, None);
        wait_until_blocking("the first snapshot", Duration::from_secs(30), || {
            snapshot.exists()
        });
        drop(first);

        // Someone pushes; the next run reads that commit, is ready, saves
        // a new snapshot, and is killed in the middle of it.
        push_build(dir.path(), &remote, 3);
        let mut crashing = launch(
            &remote,
            &data,
            &[("RELEASE_MANAGER_CRASH_AT", step)],
            "gRPC port open",
        );
        let status = crashing.process.wait_timeout(Duration::from_secs(60));
        assert!(!status.success(), "{step}: it was meant to crash");
        wait_until_blocking(
            "the crashing run to have used the first snapshot",
            Duration::from_secs(30),
            || crashing.logged("commits_read=1 from_snapshot=true"),
        );

        // A plain restart uses whichever snapshot is whole, and answers.
        let again = start(&remote, &data, None);
        assert!(
            again.logged(&format!("{next_start_reads} from_snapshot=true")),
            "{step}: {:?}",
            again.log.lock().unwrap()
        );
        // What the crash left is gone (the new server may be writing a
        // snapshot of its own right now: wait for that to end).
        let temporary = data.join("index.snapshot.tmp");
        wait_until_blocking(
            "no temporary snapshot left",
            Duration::from_secs(30),
            || !temporary.exists(),
        );
        let released = release(&again.url, "master-shop-3").await.unwrap();
        assert_eq!(
            released.result.unwrap().artifact_id,
            "master-shop-3",
            "{step}"
        );
    }
}
