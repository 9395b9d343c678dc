//! Notifications out, end to end: a real HTTP receiver in the test gets a
//! Slack message and a signed CloudEvent per release; while it is down
//! releases go on, and when it is back every event arrives (at least once,
//! none missing), also across a server restart in between and a journal
//! that lost its last line.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::Value;

use crate::support::server_api::Notifications;
use crate::support::signing;
use crate::support::*;

const SECRET: &str = "ce-secret";

/// What the receiver got: (path, signature header, body).
type Received = Arc<Mutex<Vec<(String, Option<String>, Value)>>>;

struct Receiver {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn receive(
    State(received): State<Received>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    let signature = headers
        .get("x-signature")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body: Value = serde_json::from_slice(&body).expect("JSON bodies");
    received.lock().unwrap().push((path, signature, body));
    "ok"
}

/// A receiver on `port` until stopped (the port then refuses).
async fn start_receiver(port: u16, received: Received) -> Receiver {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let app = axum::Router::new()
        .route("/{path}", axum::routing::post(receive))
        .with_state(received);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Receiver { stop, task }
}

impl Receiver {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

fn notifications(port: u16) -> Notifications {
    let text = format!(
        r#"
slack:
  - webhook_url: http://127.0.0.1:{port}/slack
webhooks:
  - name: audit
    url: http://127.0.0.1:{port}/events
    secret: {SECRET}
    events: [release, rollback, auto_release]
delivery:
  first_retry: 50ms
  longest_retry: 200ms
"#
    );
    Notifications::parse(&text, |_| None).unwrap()
}

async fn start(repo: &ConfigRepo, data: tempfile::TempDir, port: u16) -> TestServer {
    TestServer::start_in(&repo.remote, data, move |config| {
        config.notifications = Some(notifications(port));
        config.http_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await
}

/// Release commits the receiver has a CloudEvent (and a Slack message)
/// for.
fn delivered(received: &Received) -> (BTreeSet<String>, usize) {
    let received = received.lock().unwrap();
    let events: BTreeSet<String> = received
        .iter()
        .filter(|(path, _, _)| path == "events")
        .map(|(_, _, body)| body["data"]["commit"].as_str().unwrap().to_string())
        .collect();
    let slack = received
        .iter()
        .filter(|(path, _, _)| path == "slack")
        .count();
    (events, slack)
}

/// Waits (bounded) until every commit of `commits` has its CloudEvent and
/// a Slack message.
async fn until_delivered(received: &Received, commits: &BTreeSet<String>) {
    wait_until(
        "every release to reach the receivers",
        Duration::from_secs(30),
        || {
            let (events, slack) = delivered(received);
            commits.is_subset(&events) && slack >= commits.len()
        },
    )
    .await;
}

async fn release(server: &TestServer, service: &str, env: &str) -> String {
    let mut client = server.client().await;
    client
        .release(release_branch(service, env, "master"))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap()
        .commit_sha
}

#[tokio::test]
async fn every_release_reaches_the_receivers_at_least_once() {
    let mut repo = ConfigRepo::new();
    for service in ["cart", "shop"] {
        repo.add_build(service, "master", 1);
    }
    repo.push();
    let port = free_port();
    let received: Received = Arc::default();
    let receiver = start_receiver(port, received.clone()).await;
    let server = start(&repo, tempfile::tempdir().unwrap(), port).await;

    let first = release(&server, "shop", "dev").await;
    let mut expected = BTreeSet::from([first.clone()]);
    until_delivered(&received, &expected).await;
    {
        let received = received.lock().unwrap();
        let (_, _, slack) = received.iter().find(|(p, _, _)| p == "slack").unwrap();
        let text = slack["text"].as_str().unwrap();
        assert!(
            text.contains("*shop* `master-shop-001` released to *dev* by Alice Operator"),
            "{text}"
        );
        let (_, signature, event) = received.iter().find(|(p, _, _)| p == "events").unwrap();
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["type"], "dev.releasemanager.release.v1");
        assert_eq!(event["subject"], "shop");
        assert!(
            event["id"]
                .as_str()
                .unwrap()
                .starts_with(&format!("rm-{first}-")),
            "{event}"
        );
        // The signature covers the bytes sent; serde_json writes them back
        // the same way (no spaces, same key order).
        let expected_signature = signing::signature(SECRET, event.to_string().as_bytes());
        assert_eq!(signature.as_deref(), Some(expected_signature.as_str()));
    }

    // The receiver goes away; releases go on as before.
    receiver.stop().await;
    let began = Instant::now();
    for (service, env) in [
        ("cart", "dev"),
        ("shop", "staging"),
        ("cart", "staging"),
        ("shop", "prod"),
    ] {
        expected.insert(release(&server, service, env).await);
    }
    println!(
        "4 releases with the receiver down took {:?}",
        began.elapsed()
    );

    // A restart in between, and a journal that lost its last line (a crash
    // before it reached the disk): those events come again from history.
    let data = server.stop().await;
    let journal = data.path().join("notifications/journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let lost: Value = serde_json::from_str(lines.pop().unwrap()).unwrap();
    assert_eq!(lost["kind"], "release", "the last line is the last release");
    std::fs::write(&journal, lines.join("\n") + "\n").unwrap();
    let server = start(&repo, data, port).await;
    expected.insert(release(&server, "cart", "prod").await);

    let receiver = start_receiver(port, received.clone()).await;
    until_delivered(&received, &expected).await;
    let ids: HashMap<String, usize> = received
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _, _)| p == "events")
        .fold(HashMap::new(), |mut ids, (_, _, body)| {
            *ids.entry(body["id"].as_str().unwrap().to_string())
                .or_default() += 1;
            ids
        });
    assert_eq!(ids.len(), expected.len(), "one id per release: {ids:?}");

    // A failed deployment is a Slack message too (the audit hook did not
    // ask for those).
    // shop already runs there: the answer names the release commit that
    // put it there; the controller reports the branch's tip.
    let again = release(&server, "shop", "dev").await;
    assert_eq!(again, first, "the commit that holds the release");
    let last = repo.remote_head();
    let mut client = server.client().await;
    client
        .report_deployment(release_manager::pb::ReportDeploymentRequest {
            environment: "dev".into(),
            revision: last.clone(),
            state: release_manager::pb::DeploymentState::Failed as i32,
            message: "CrashLoopBackOff".into(),
            source: "test".into(),
        })
        .await
        .unwrap();
    wait_until(
        "the Slack message of the failed deployment",
        Duration::from_secs(30),
        || {
            received.lock().unwrap().iter().any(|(p, _, body)| {
                p == "slack"
                    && body["text"]
                        .as_str()
                        .unwrap()
                        .contains("failed to deploy in *dev*\nCrashLoopBackOff")
            })
        },
    )
    .await;
    until_delivered(&received, &expected).await;

    // The controller says the same at its next reconciliation (in other
    // words): no second message.
    let failures = |received: &Received| {
        received
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _, body)| {
                p == "slack" && body["text"].as_str().unwrap().contains("failed to deploy")
            })
            .count()
    };
    // The revision holds shop's and cart's releases in dev: one message
    // each.
    wait_until(
        "a failure message for each release in the revision",
        Duration::from_secs(30),
        || failures(&received) >= 2,
    )
    .await;
    let failures_before = failures(&received);
    client
        .report_deployment(release_manager::pb::ReportDeploymentRequest {
            environment: "dev".into(),
            revision: last,
            state: release_manager::pb::DeploymentState::Failed as i32,
            message: "CrashLoopBackOff (again)".into(),
            source: "test".into(),
        })
        .await
        .unwrap();
    expected.insert(release(&server, "cart", "dev").await);
    until_delivered(&received, &expected).await;
    assert_eq!(
        failures(&received),
        failures_before,
        "one message per new state"
    );

    let metrics = http::get(server.http_addr(), "/metrics").await.whole();
    for line in [
        "release_manager_notifications_total{destination=\"audit\",outcome=\"delivered\"}",
        "release_manager_notifications_pending{destination=\"slack-1\"}",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    server.stop().await;
    receiver.stop().await;
}
