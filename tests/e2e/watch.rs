//! Watching events: a subscription starts by saying it is live and then
//! delivers what happens (only the environment asked for), hamctl's watch
//! prints it, a stopped server ends open streams, and `--reconnect` keeps a
//! watch going across a restart. (How hamctl formats events: the fixed
//! answers of `hamctl/tests`.)

use std::path::Path;
use std::time::Duration;

use crate::support::server::{local_config, start_on};
use crate::support::server_api::RunningServer;
use crate::support::*;
use release_manager::pb;

fn fixture() -> ConfigRepo {
    let mut repo = ConfigRepo::new();
    repo.add_build("shop", "master", 1);
    repo.add_build("shop", "feature/x", 1);
    repo.push();
    repo
}

/// Starts a server for `remote` on exactly `addr` with `data` as its data dir.
async fn server_at(remote: &Path, data: &Path, addr: std::net::SocketAddr) -> RunningServer {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    start_on(local_config(remote, data), listener)
        .await
        .unwrap()
}

/// Releases `ids` in turn (each one a new release event) until `watch`
/// prints something, and returns that.
async fn release_until_printed(url: &str, ids: &[String], watch: &mut RunningCli) -> String {
    let mut client =
        release_manager::pb::release_service_client::ReleaseServiceClient::connect(url.to_string())
            .await
            .unwrap();
    for n in 0..300 {
        // The watch subscribes asynchronously: a release before that is not
        // shown, so keep releasing (bounded) until one is.
        client
            .release(release_artifact("shop", "dev", &ids[n % ids.len()]))
            .await
            .unwrap();
        if let Some(text) = watch.next_out_line(Duration::from_millis(100)).await {
            return text;
        }
    }
    panic!("the watch printed nothing after 300 releases")
}

#[tokio::test]
async fn watching_one_environment_delivers_its_releases_only() {
    let mut repo = ConfigRepo::new();
    repo.add_build("shop", "master", 1);
    repo.push();
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;
    let mut stream = client
        .watch_events(pb::WatchEventsRequest {
            environment: "prod".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // A build, a release elsewhere, a policy change: none of them is
    // prod's. Then a release to prod.
    push(
        &server.url,
        None,
        chunks(&[
            ("artifact.json", &spec("shop", "master", "master-2")),
            ("dev/deployment.yaml", "kind: Deployment\n"),
            ("prod/deployment.yaml", "kind: Deployment\nreplicas: 3\n"),
        ]),
    )
    .await
    .unwrap();
    client
        .release(release_artifact("shop", "dev", "master-2"))
        .await
        .unwrap();
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
    client
        .release(release_artifact("shop", "prod", "master-2"))
        .await
        .unwrap();
    let live = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("the live marker")
        .unwrap()
        .unwrap();
    assert!(
        matches!(live.event, Some(pb::watch_events_response::Event::Live(_))),
        "a subscription starts by saying it is live: {live:?}"
    );
    let first = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an event")
        .unwrap()
        .unwrap();
    match first.event {
        Some(pb::watch_events_response::Event::Released(release)) => {
            assert_eq!(release.environment, "prod")
        }
        other => panic!("the first event is prod's release, not {other:?}"),
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hamctl_watch_sees_a_release_made_by_another_client() {
    let mut repo = fixture();
    let second = repo.add_build("shop", "master", 2);
    repo.push();
    let server = TestServer::start(&repo.remote).await;
    let url = server.url.clone();
    let watch = tokio::spawn({
        let url = url.clone();
        async move {
            hamctl(&[
                "--server",
                &url,
                "watch",
                "--service",
                "shop",
                "--env",
                "dev",
                "--max-events",
                "1",
            ])
            .await
        }
    });
    // The watcher subscribes at some point; release until it has seen one.
    let mut client = server.client().await;
    let ids = [artifact_id("shop", "master", 1), second.clone()];
    for round in 0..200 {
        if watch.is_finished() {
            break;
        }
        client
            .release(release_artifact("shop", "dev", &ids[round % 2]))
            .await
            .unwrap();
        // A release to another environment must not show up.
        client
            .release(release_artifact("shop", "prod", &ids[round % 2]))
            .await
            .unwrap();
    }
    let (code, out, err) = tokio::time::timeout(Duration::from_secs(20), watch)
        .await
        .expect("watch ends")
        .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("released") && out.contains(" to dev"), "{out}");
    assert!(!out.contains(" to prod"), "{out}");
    server.stop().await;
}

#[tokio::test]
async fn stopping_the_server_ends_open_event_streams() {
    let repo = fixture();
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;
    let mut stream = client
        .watch_events(pb::WatchEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let live = stream.message().await.unwrap().unwrap();
    assert!(matches!(
        live.event,
        Some(pb::watch_events_response::Event::Live(_))
    ));
    tokio::time::timeout(Duration::from_secs(20), server.stop())
        .await
        .expect("shutdown does not wait for watchers");
    let end = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("the stream ends");
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
}

#[tokio::test]
async fn watch_says_when_the_server_goes_away_and_can_reconnect() {
    let mut repo = fixture();
    let ids = vec![
        artifact_id("shop", "master", 1),
        repo.add_build("shop", "master", 2),
    ];
    repo.push();
    let data = tempfile::tempdir().unwrap();
    let server = server_at(&repo.remote, data.path(), "127.0.0.1:0".parse().unwrap()).await;
    let addr = server.addr;
    let url = format!("http://{addr}");

    // Without --reconnect the end of the server is an error; with it, the
    // watch waits for the server to come back and goes on.
    let mut plain = Cli::hamctl().spawn(&["--server", &url, "watch", "--service", "shop"]);
    let mut patient = Cli::hamctl().spawn(&[
        "--server",
        &url,
        "watch",
        "--service",
        "shop",
        "--reconnect",
    ]);
    let seen = release_until_printed(&url, &ids, &mut plain).await;
    assert!(seen.contains("released shop"), "{seen}");
    release_until_printed(&url, &ids, &mut patient).await;
    server.shutdown().await;

    let CliOutput { code, err, .. } = plain.finish(Duration::from_secs(30)).await;
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        err,
        "error: the server ended the event stream (it is stopping or restarting); \
         pass --reconnect to keep watching\n"
    );

    // The patient watch says it is reconnecting; what it printed before
    // the server went away (it may have seen several releases) is read
    // first, so that the next line is one from the new server.
    patient
        .err_until(|line| line.contains("reconnecting"))
        .await;
    while patient
        .next_out_line(Duration::from_millis(200))
        .await
        .is_some()
    {}

    let server = server_at(&repo.remote, data.path(), addr).await;
    let second = release_until_printed(&url, &ids, &mut patient).await;
    assert!(second.contains("released shop"), "{second:?}");
    // Ctrl-C ends a watch quietly.
    patient.signal(libc::SIGINT);
    let CliOutput { code, err, .. } = patient.finish(Duration::from_secs(30)).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("reconnecting"), "{err}");
    server.shutdown().await;
}
