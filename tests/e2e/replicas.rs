//! Several servers on one config repository, each with its own data dir,
//! as replicas behind one Kubernetes Service run: a deployment report made
//! to one shows in the other's status within its poll interval (one
//! reaching the remote through git://, the other through the file system),
//! reports racing on both are both kept, and a release notifies once; the
//! notification lease hands over when its holder stops, and when it dies
//! (the real binary, killed).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use serde_json::Value;

use crate::support::controllers::{flux_health_check_failed, flux_succeeded};
use crate::support::git::git_output;
use crate::support::git_daemon::GitDaemon;
use crate::support::process::{workspace_binary, ChildGuard};
use crate::support::server_api::{DeploymentSources, Notifications, RemoteLocation};
use crate::support::signing::signature;
use crate::support::*;
use release_manager::pb;

const SECRET: &str = "hook-secret";
/// How often each replica reads the remote.
const POLL: Duration = Duration::from_millis(300);

fn fixture() -> ConfigRepo {
    let mut repo = ConfigRepo::new();
    for service in ["svc-0007", "svc-0008"] {
        repo.add_kube_build(service, "master", 1);
    }
    repo.push();
    repo
}

async fn replica(repo: &ConfigRepo, network: Option<&GitDaemon>) -> TestServer {
    let url = network.map(|daemon| daemon.url.clone());
    TestServer::start_with(&repo.remote, move |config| {
        if let Some(url) = url {
            config.config_repo = RemoteLocation::Network(url);
        }
        config.poll_interval = POLL;
        config.http_listen = Some("127.0.0.1:0".parse().unwrap());
        config.deployment_webhook_secret = Some(SECRET.into());
        config.deployment_sources = DeploymentSources::parse("dev=flux-system/apps-dev").unwrap();
    })
    .await
}

async fn flux(addr: SocketAddr, body: &str) {
    let signed = [("X-Signature", signature(SECRET, body.as_bytes()))];
    let answer = http::post_json(addr, "/webhook/flux", &signed, body).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
}

/// The state status gives `service` in dev (its enum's name).
async fn state(server: &TestServer, service: &str) -> String {
    let status = server.status(service).await;
    let dev = status
        .environments
        .iter()
        .find(|e| e.environment == "dev")
        .unwrap();
    pb::DeploymentState::try_from(dev.deployment.as_ref().map_or(0, |d| d.state))
        .unwrap()
        .as_str_name()
        .to_string()
}

/// Waits (bounded) until `server` says `service` is `wanted` in dev; how
/// long that took.
async fn until_state(server: &TestServer, service: &str, wanted: &str) -> Duration {
    let began = Instant::now();
    wait_for(
        &format!("{service} to be {wanted} on the other replica"),
        Duration::from_secs(20),
        || async { (state(server, service).await == wanted).then_some(()) },
    )
    .await;
    began.elapsed()
}

#[tokio::test]
async fn a_report_to_one_replica_shows_in_the_others_status_within_its_poll_interval() {
    let repo = fixture();
    let daemon = GitDaemon::serve(&repo.remote);
    let a = replica(&repo, None).await;
    let b = replica(&repo, Some(&daemon)).await;
    let mut a_client = a.client().await;
    let mut watch = a_client
        .watch_events(pb::WatchEventsRequest {
            environment: "dev".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    a_client
        .release(release_artifact(
            "svc-0007",
            "dev",
            &artifact_id("svc-0007", "master", 1),
        ))
        .await
        .unwrap();
    a_client
        .release(release_artifact(
            "svc-0008",
            "dev",
            &artifact_id("svc-0008", "master", 1),
        ))
        .await
        .unwrap();
    let revision = repo.remote_head();

    // B has not fetched A's releases yet; the report makes it.
    flux(
        b.http_addr(),
        &flux_succeeded("apps-dev", &revision, "2026-08-05T10:00:00Z"),
    )
    .await;
    assert_eq!(state(&b, "svc-0007").await, "DEPLOYMENT_STATE_DEPLOYED");
    let took = until_state(&a, "svc-0007", "DEPLOYMENT_STATE_DEPLOYED").await;
    println!("a report to one replica showed in the other's status after {took:?} (poll interval {POLL:?})");
    // A's watcher hears of it as of a report of its own, with a cursor.
    let heard = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let event = watch.message().await.unwrap().unwrap();
            if let Some(pb::watch_events_response::Event::DeploymentReported(report)) = &event.event
            {
                return (report.service.clone(), event.cursor.clone());
            }
        }
    })
    .await
    .expect("the report reaches A's watcher");
    assert_eq!(heard.0, "svc-0007");
    assert!(
        heard.1.contains('/'),
        "a cursor with the report's place: {}",
        heard.1
    );

    // Reports racing on both replicas: both are kept (one replica writes
    // first, the other reads that and writes on top).
    let failing = flux_health_check_failed(
        "apps-dev",
        &["Deployment/dev/svc-0007"],
        &revision,
        "2026-08-05T10:05:00Z",
    );
    let failing_other = flux_health_check_failed(
        "apps-dev",
        &["Deployment/dev/svc-0008"],
        &revision,
        "2026-08-05T10:05:01Z",
    );
    tokio::join!(
        flux(a.http_addr(), &failing),
        flux(b.http_addr(), &failing_other)
    );
    for server in [&a, &b] {
        until_state(server, "svc-0007", "DEPLOYMENT_STATE_FAILED").await;
        until_state(server, "svc-0008", "DEPLOYMENT_STATE_FAILED").await;
    }
    let record = repo.remote_git(&["rev-list", "--count", "refs/release-manager/deployments"]);
    assert_eq!(record.trim(), "3", "one commit per change of the record");
    // The branch holds only releases: reports are not config.
    let branch = repo.remote_git(&["log", "--format=%s", "master"]);
    assert!(!branch.contains("reported"), "{branch}");
    b.stop().await;
    a.stop().await;
}

/// What the notification receiver got: Slack texts.
type Got = Arc<Mutex<Vec<String>>>;

async fn slack(State(got): State<Got>, body: Bytes) -> &'static str {
    let body: Value = serde_json::from_slice(&body).unwrap();
    got.lock()
        .unwrap()
        .push(body["text"].as_str().unwrap_or_default().to_string());
    "ok"
}

/// A Slack receiver on a port of its own, until the test ends.
async fn receiver(got: Got) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new()
        .route("/slack", axum::routing::post(slack))
        .with_state(got);
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (port, task)
}

fn notifications_text(port: u16) -> String {
    format!(
        "slack:\n  - name: releases\n    webhook_url: http://127.0.0.1:{port}/slack\ndelivery:\n  first_retry: 50ms\n  longest_retry: 200ms\n"
    )
}

/// A metric's value, if the server has it.
async fn metric(addr: SocketAddr, name: &str) -> Option<f64> {
    let metrics = http::get(addr, "/metrics").await.text();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

/// How many Slack messages name `artifact` released.
fn told(got: &Got, artifact: &str) -> usize {
    got.lock()
        .unwrap()
        .iter()
        .filter(|text| text.contains(&format!("`{artifact}` released")))
        .count()
}

#[tokio::test]
async fn a_release_notifies_once_across_replicas_and_the_lease_hands_over() {
    let mut repo = ConfigRepo::new();
    for n in 1..=3 {
        repo.add_build("shop", "master", n);
    }
    repo.push();
    let got: Got = Arc::default();
    let (port, receiver) = receiver(got.clone()).await;
    let start = || {
        let text = notifications_text(port);
        TestServer::start_with(&repo.remote, move |config| {
            config.poll_interval = POLL;
            config.http_listen = Some("127.0.0.1:0".parse().unwrap());
            config.notifications = Some(Notifications::parse(&text, |_| None).unwrap());
            config.notifications_lease = Duration::from_secs(1);
        })
    };
    let a = start().await;
    let b = start().await;
    let senders = || async {
        let a_sends = metric(a.http_addr(), "release_manager_notifications_sender").await;
        let b_sends = metric(b.http_addr(), "release_manager_notifications_sender").await;
        (a_sends, b_sends)
    };
    let (a_sends, _) = wait_for("one replica to send", Duration::from_secs(20), || async {
        match senders().await {
            (Some(a), Some(b)) if a + b == 1.0 => Some((a == 1.0, b == 1.0)),
            _ => None,
        }
    })
    .await;
    let (sender, follower) = if a_sends { (&a, &b) } else { (&b, &a) };

    // A release through the follower, then one through the sender.
    for (server, n) in [(follower, 1), (sender, 2)] {
        let mut client = server.client().await;
        client
            .release(release_artifact(
                "shop",
                "dev",
                &artifact_id("shop", "master", n),
            ))
            .await
            .unwrap();
    }
    wait_until("both releases told", Duration::from_secs(20), || {
        told(&got, "master-shop-001") >= 1 && told(&got, "master-shop-002") >= 1
    })
    .await;
    // The follower has journaled both and moved over what the sender
    // delivered: nothing is waiting there, and it sent nothing.
    wait_for(
        "the follower to follow",
        Duration::from_secs(20),
        || async {
            let pending = metric(
                follower.http_addr(),
                "release_manager_notifications_pending{destination=\"releases\"}",
            )
            .await;
            (pending == Some(0.0)).then_some(())
        },
    )
    .await;
    assert_eq!(
        told(&got, "master-shop-001"),
        1,
        "{:?}",
        got.lock().unwrap()
    );
    assert_eq!(
        told(&got, "master-shop-002"),
        1,
        "{:?}",
        got.lock().unwrap()
    );
    assert_eq!(
        metric(
            follower.http_addr(),
            "release_manager_notifications_total{destination=\"releases\",outcome=\"delivered\"}"
        )
        .await,
        None,
        "the follower delivered nothing"
    );

    // The sender stops: it hands the lease over, and the other sends.
    let (sender, follower) = if a_sends { (a, b) } else { (b, a) };
    sender.stop().await;
    wait_for(
        "the other replica to send",
        Duration::from_secs(20),
        || async {
            (metric(follower.http_addr(), "release_manager_notifications_sender").await
                == Some(1.0))
            .then_some(())
        },
    )
    .await;
    let mut client = follower.client().await;
    client
        .release(release_artifact(
            "shop",
            "staging",
            &artifact_id("shop", "master", 3),
        ))
        .await
        .unwrap();
    wait_until(
        "the release after the hand-over told",
        Duration::from_secs(20),
        || told(&got, "master-shop-003") >= 1,
    )
    .await;
    // Nothing the first sender delivered came again.
    assert_eq!(told(&got, "master-shop-001"), 1);
    assert_eq!(told(&got, "master-shop-002"), 1);
    assert_eq!(told(&got, "master-shop-003"), 1);
    follower.stop().await;
    receiver.abort();
}

/// The server binary on `remote`, with the notifications file `file` and a
/// one-second lease: its gRPC URL and HTTP address once it serves.
struct Replica {
    process: ChildGuard,
    url: String,
    http: SocketAddr,
    _data: tempfile::TempDir,
}

async fn replica_process(remote: &Path, file: &Path) -> Replica {
    let data = tempfile::tempdir().unwrap();
    let (grpc, http) = (free_port(), free_port());
    let mut command = Command::new(workspace_binary("release-manager"));
    command
        .args([
            "start",
            "--unauthenticated",
            "--notifications-lease",
            "1s",
            "--poll-interval",
            "300ms",
        ])
        .arg("--config-repo")
        .arg(remote)
        .arg("--data-dir")
        .arg(data.path())
        .arg("--notifications")
        .arg(file)
        .args(["--listen", &format!("127.0.0.1:{grpc}")])
        .args(["--http-listen", &format!("127.0.0.1:{http}")])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let process = ChildGuard::spawn(&mut command, "a replica");
    let http: SocketAddr = format!("127.0.0.1:{http}").parse().unwrap();
    let url = format!("http://127.0.0.1:{grpc}");
    wait_for("the replica to serve", Duration::from_secs(60), || async {
        let health = tonic::transport::Endpoint::from_shared(url.clone())
            .unwrap()
            .connect()
            .await
            .ok()?;
        let mut health = tonic_health::pb::health_client::HealthClient::new(health);
        let serving = health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .ok()?
            .into_inner()
            .status;
        (serving == tonic_health::pb::health_check_response::ServingStatus::Serving as i32)
            .then_some(())
    })
    .await;
    Replica {
        process,
        url,
        http,
        _data: data,
    }
}

#[tokio::test]
async fn when_the_sender_dies_another_replica_sends_after_the_lease_period() {
    let mut repo = ConfigRepo::new();
    for n in 1..=2 {
        repo.add_build("shop", "master", n);
    }
    repo.push();
    let got: Got = Arc::default();
    let (port, receiver) = receiver(got.clone()).await;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), notifications_text(port)).unwrap();
    let a = replica_process(&repo.remote, file.path()).await;
    let b = replica_process(&repo.remote, file.path()).await;
    let a_sends = wait_for("one replica to send", Duration::from_secs(20), || async {
        let a_sends = metric(a.http, "release_manager_notifications_sender").await?;
        let b_sends = metric(b.http, "release_manager_notifications_sender").await?;
        (a_sends + b_sends == 1.0).then_some(a_sends == 1.0)
    })
    .await;
    let (mut sender, survivor) = if a_sends { (a, b) } else { (b, a) };
    let mut client =
        pb::release_service_client::ReleaseServiceClient::connect(survivor.url.clone())
            .await
            .unwrap();
    let first = client
        .release(release_artifact(
            "shop",
            "dev",
            &artifact_id("shop", "master", 1),
        ))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap()
        .commit_sha;
    wait_until("the first release told", Duration::from_secs(20), || {
        told(&got, "master-shop-001") == 1
    })
    .await;
    // The sender writes how far it got with its next renewal: what it
    // delivered after its last one is what a successor sends again.
    wait_until(
        "the lease to record the delivery",
        Duration::from_secs(20),
        || {
            let lease = git_output(
                &repo.remote,
                &[
                    "show",
                    "refs/release-manager/notifications-lease:lease.json",
                ],
            );
            let lease: Value = serde_json::from_slice(&lease.stdout).unwrap_or_default();
            lease["delivered"]["releases"]["commit"]
                .as_str()
                .is_some_and(|cursor| cursor.starts_with(&first))
        },
    )
    .await;

    // The sender is killed: no hand-over. The survivor takes the lease once
    // it has not changed for a lease period, and sends what came after.
    sender.process.kill();
    let killed = Instant::now();
    client
        .release(release_artifact(
            "shop",
            "prod",
            &artifact_id("shop", "master", 2),
        ))
        .await
        .unwrap();
    wait_until(
        "the release after the sender died told",
        Duration::from_secs(30),
        || told(&got, "master-shop-002") == 1,
    )
    .await;
    println!(
        "the survivor told the release {:?} after the sender was killed (lease 1 s)",
        killed.elapsed()
    );
    assert_eq!(
        metric(survivor.http, "release_manager_notifications_sender").await,
        Some(1.0)
    );
    assert_eq!(told(&got, "master-shop-001"), 1, "nothing told twice");
    drop(survivor);
    receiver.abort();
}
