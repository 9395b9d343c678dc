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
        .map(|(_, _, body)| body["data"]["commitSha"].as_str().unwrap().to_string())
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
            ..Default::default()
        })
        .await
        .unwrap();
    wait_until(
        "the Slack message of the failed deployment",
        Duration::from_secs(30),
        || {
            received.lock().unwrap().iter().any(|(p, _, body)| {
                let text = body["text"].as_str().unwrap_or_default();
                p == "slack"
                    && text.contains("*shop* `master-shop-001` failed to deploy in *dev*\n")
                    && text.contains("CrashLoopBackOff")
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
            ..Default::default()
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

/// A receiver whose answers the test scripts: each request to a path gets
/// the next (status, Retry-After) of that path's script, then 200 for
/// good; what it was sent and when is kept.
/// What a path answers next: (status, Retry-After), in order.
type Script = std::collections::VecDeque<(u16, Option<&'static str>)>;

#[derive(Clone, Default)]
struct Scripted {
    script: Arc<Mutex<HashMap<String, Script>>>,
    got: Arc<Mutex<Vec<(String, Instant, Value)>>>,
}

async fn scripted_answer(
    State(receiver): State<Scripted>,
    Path(path): Path<String>,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let body: Value = serde_json::from_slice(&body).expect("JSON bodies");
    receiver
        .got
        .lock()
        .unwrap()
        .push((path.clone(), Instant::now(), body));
    let next = receiver
        .script
        .lock()
        .unwrap()
        .get_mut(&path)
        .and_then(|script| script.pop_front());
    match next {
        Some((status, retry_after)) => {
            let status = axum::http::StatusCode::from_u16(status).unwrap();
            match retry_after {
                Some(wait) => (status, [("retry-after", wait)], "not now").into_response(),
                None => (status, "no").into_response(),
            }
        }
        None => "ok".into_response(),
    }
}

async fn start_scripted(port: u16, receiver: Scripted) -> Receiver {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let app = axum::Router::new()
        .route("/{path}", axum::routing::post(scripted_answer))
        .with_state(receiver);
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

/// The value of `line` (a metric with its labels) in the server's metrics.
async fn metric(server: &TestServer, line: &str) -> Option<f64> {
    let metrics = http::get(server.http_addr(), "/metrics").await.text();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
}

const HOOK_SECRET: &str = "hook-secret";

#[tokio::test]
async fn one_failing_service_is_one_notification_to_each_destination() {
    use crate::support::controllers::{flux_change_set, flux_health_check_failed, flux_succeeded};
    let services = ["svc-0007", "svc-0008", "svc-0009", "svc-0010", "svc-0011"];
    let mut repo = ConfigRepo::new();
    for service in services {
        for n in 1..=2 {
            repo.add_kube_build(service, "master", n);
        }
    }
    repo.push();
    let port = free_port();
    let received: Received = Arc::default();
    let receiver = start_receiver(port, received.clone()).await;
    let text = format!(
        r#"
slack:
  - webhook_url: http://127.0.0.1:{port}/slack
webhooks:
  - name: deployments
    url: http://127.0.0.1:{port}/events
    events: [deployed, deployment_failed, release]
delivery:
  first_retry: 50ms
  longest_retry: 200ms
"#
    );
    let server = TestServer::start_with(&repo.remote, |config| {
        config.notifications = Some(Notifications::parse(&text, |_| None).unwrap());
        config.http_listen = Some("127.0.0.1:0".parse().unwrap());
        config.deployment_webhook_secret = Some(HOOK_SECRET.into());
        config.deployment_sources =
            crate::support::server_api::DeploymentSources::parse("dev=flux-system/apps-dev")
                .unwrap();
    })
    .await;
    let flux = |body: String| {
        let addr = server.http_addr();
        async move {
            let signed = [(
                "X-Signature",
                signing::signature(HOOK_SECRET, body.as_bytes()),
            )];
            let answer = http::post_json(addr, "/webhook/flux", &signed, &body).await;
            assert_eq!(answer.status, 200, "{}", answer.text());
        }
    };
    let mut client = server.client().await;
    for service in services {
        client
            .release(release_artifact(
                service,
                "dev",
                &artifact_id(service, "master", 1),
            ))
            .await
            .unwrap();
    }
    let first = repo.remote_head();
    flux(flux_succeeded("apps-dev", &first, "2026-08-04T10:00:00Z")).await;
    // Five releases, one success of the environment: five deployed events.
    let of_kind = |kind: &str| -> Vec<Value> {
        received
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _, body)| {
                p == "events" && body["type"] == format!("dev.releasemanager.{kind}.v1")
            })
            .map(|(_, _, body)| body.clone())
            .collect()
    };
    wait_until("five deployed events", Duration::from_secs(30), || {
        of_kind("deployed").len() >= 5
    })
    .await;

    // svc-0009's next release fails its health check; the controller says
    // so again at its next reconciliation, and an old body is replayed.
    client
        .release(release_artifact(
            "svc-0009",
            "dev",
            &artifact_id("svc-0009", "master", 2),
        ))
        .await
        .unwrap();
    let second = repo.remote_head();
    flux(flux_change_set(
        "apps-dev",
        &["Deployment/dev/svc-0009 configured"],
        &second,
        "2026-08-04T10:05:00Z",
    ))
    .await;
    let failed = flux_health_check_failed(
        "apps-dev",
        &["Deployment/dev/svc-0009"],
        &second,
        "2026-08-04T10:10:00Z",
    );
    flux(failed.clone()).await;
    flux(flux_health_check_failed(
        "apps-dev",
        &["Deployment/dev/svc-0009"],
        &second,
        "2026-08-04T10:20:00Z",
    ))
    .await;
    flux(failed).await;
    // A marker behind them: once it arrived, everything before has.
    client
        .release(release_artifact(
            "svc-0011",
            "dev",
            &artifact_id("svc-0011", "master", 2),
        ))
        .await
        .unwrap();
    let marker = |received: &Received, path: &str| {
        received.lock().unwrap().iter().any(|(p, _, body)| {
            p == path
                && (body["data"]["artifactId"] == "master-svc-0011-002"
                    || body["text"]
                        .as_str()
                        .is_some_and(|t| t.contains("master-svc-0011-002")))
        })
    };
    wait_until(
        "the marker at both destinations",
        Duration::from_secs(30),
        || marker(&received, "events") && marker(&received, "slack"),
    )
    .await;

    assert_eq!(
        of_kind("deployed").len(),
        5,
        "nothing deployed but the five"
    );
    let failures = of_kind("deployment_failed");
    assert_eq!(
        failures.len(),
        1,
        "one failing service, one event: {failures:?}"
    );
    let data = &failures[0]["data"];
    assert_eq!(data["service"], "svc-0009");
    assert_eq!(data["environment"], "dev");
    assert_eq!(data["namespace"], "dev");
    assert_eq!(data["artifactId"], "master-svc-0009-002");
    assert_eq!(data["branch"], "master");
    assert_eq!(data["buildUrl"], "https://ci.example.com/svc-0009/2");
    assert_eq!(data["sourceUrl"], "https://git.example.com/svc-0009");
    assert!(
        chrono_like(data["time"].as_str().unwrap()),
        "an RFC 3339 time: {data}"
    );
    let slack_failures: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _, body)| {
            p == "slack" && body["text"].as_str().unwrap().contains("failed to deploy")
        })
        .map(|(_, _, body)| body["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(slack_failures.len(), 1, "{slack_failures:?}");
    assert!(
        slack_failures[0].contains("*svc-0009* `master-svc-0009-002` failed to deploy in *dev*")
    );
    assert!(
        slack_failures[0].contains("branch master"),
        "{}",
        slack_failures[0]
    );
    assert!(
        slack_failures[0].contains("|CI job>"),
        "{}",
        slack_failures[0]
    );
    server.stop().await;
    receiver.stop().await;
}

/// Whether `text` reads as an RFC 3339 time in UTC (`2026-08-04T10:10:00Z`).
fn chrono_like(text: &str) -> bool {
    let bytes = text.as_bytes();
    text.len() == 20
        && text.ends_with('Z')
        && bytes[4] == b'-'
        && bytes[10] == b'T'
        && text[..4].parse::<u32>().is_ok()
}

#[tokio::test]
async fn receivers_that_refuse_stay_down_or_ask_to_wait_are_handled_and_counted() {
    let mut repo = ConfigRepo::new();
    repo.add_build("shop", "master", 1);
    repo.push();
    let port = free_port();
    let down = free_port();
    let scripted = Scripted::default();
    {
        let mut script = scripted.script.lock().unwrap();
        // 400: refused for good. 429 asking for 2 s (Slack's rate limit),
        // then taken.
        script.insert("refused".into(), [(400, None), (400, None)].into());
        script.insert("busy".into(), [(429, Some("2"))].into());
    }
    let receiver = start_scripted(port, scripted.clone()).await;
    let text = format!(
        r#"
slack:
  - name: busy
    webhook_url: http://127.0.0.1:{port}/busy
webhooks:
  - name: refused
    url: http://127.0.0.1:{port}/refused
  - name: down
    url: http://127.0.0.1:{down}/down
delivery:
  give_up_after: 3s
  first_retry: 50ms
  longest_retry: 200ms
"#
    );
    let server = TestServer::start_with(&repo.remote, |config| {
        config.notifications = Some(Notifications::parse(&text, |_| None).unwrap());
        config.http_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    // The lease is taken before anything is sent.
    wait_for("this server to send", Duration::from_secs(30), || async {
        (metric(&server, "release_manager_notifications_sender").await == Some(1.0)).then_some(())
    })
    .await;
    release(&server, "shop", "dev").await;
    let counted = |destination: &'static str, outcome: &'static str| {
        let server = &server;
        async move {
            metric(
                server,
                &format!("release_manager_notifications_total{{destination=\"{destination}\",outcome=\"{outcome}\"}}"),
            )
            .await
        }
    };
    wait_for(
        "the give-ups and the delivery counted",
        Duration::from_secs(30),
        || async {
            let refused = counted("refused", "gave_up").await;
            let down = counted("down", "gave_up").await;
            let busy = counted("busy", "delivered").await;
            (refused == Some(1.0) && down == Some(1.0) && busy == Some(1.0)).then_some(())
        },
    )
    .await;
    let got = scripted.got.lock().unwrap().clone();
    let at = |path: &str| -> Vec<Instant> {
        got.iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, when, _)| *when)
            .collect()
    };
    assert_eq!(
        at("refused").len(),
        1,
        "a 4xx is given up at once, not retried"
    );
    let busy = at("busy");
    assert_eq!(busy.len(), 2, "asked once, taken the second time");
    let waited = busy[1] - busy[0];
    println!("the receiver asked for 2 s; the next attempt came after {waited:?}");
    assert!(
        waited >= Duration::from_millis(1900),
        "Retry-After is honoured (first_retry is 50 ms): {waited:?}"
    );
    let failed_down = counted("down", "failed").await.unwrap_or_default();
    assert!(
        failed_down >= 2.0,
        "a receiver that stays down is tried again until give_up_after ({failed_down} attempts)"
    );
    server.stop().await;
    receiver.stop().await;
}
