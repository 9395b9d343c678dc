//! Deployment reports as events: every one has a cursor holding the
//! stream's place among commit events and reports, so a watcher that
//! resumes from any cursor misses and repeats nothing; and a watcher too
//! slow to keep up is told where to resume, its stream ends there, and
//! after resuming it has every event once (a gRPC client, `hamctl watch`
//! and `hamctl ... --wait`, all frozen while a burst of reports goes by).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use release_manager::pb;
use release_manager::pb::release_service_client::ReleaseServiceClient;
use release_manager::pb::watch_events_response::Event;

use crate::support::controllers::{flux_change_set, flux_event, flux_succeeded};
use crate::support::server_api::DeploymentSources;
use crate::support::signing::signature;
use crate::support::*;

const SECRET: &str = "hook-secret";

async fn start(repo: &ConfigRepo) -> TestServer {
    TestServer::start_with(&repo.remote, |config| {
        // Thousands of reports: what is tested is the events, not what
        // survives a power loss (each report syncs a dozen files).
        config.fsync = false;
        config.http_listen = Some("127.0.0.1:0".parse().unwrap());
        config.deployment_webhook_secret = Some(SECRET.into());
        config.deployment_sources = DeploymentSources::parse("dev=flux-system/apps-dev").unwrap();
        // Watchers frozen for the whole burst (SIGSTOP) answer no
        // keepalive ping: what is tested is falling behind the events,
        // not a dead peer's connection being closed.
        config.connections.keepalive_timeout = Duration::from_secs(3600);
        config.connections.idle_timeout = Duration::from_secs(3600);
    })
    .await
}

async fn post_signed(server: &TestServer, path: &str, body: &str) {
    let signed = [("X-Signature", signature(SECRET, body.as_bytes()))];
    let answer = http::post_json(server.http_addr(), path, &signed, body).await;
    assert!(
        answer.status == 200 || answer.status == 202,
        "{}: {}",
        answer.status,
        answer.text()
    );
}

/// A plain report on `service` in dev.
async fn report(server: &TestServer, service: &str, revision: &str, state: &str) {
    let body = serde_json::json!({"environment": "dev", "revision": revision, "state": state,
                                  "service": service, "source": "test"})
    .to_string();
    post_signed(server, "/webhook/deployment", &body).await;
}

/// What an event is, in a word and the thing it is about.
fn describe(event: &pb::WatchEventsResponse) -> Option<String> {
    Some(match event.event.as_ref()? {
        Event::Released(r) => format!("released {} {}", r.service, r.artifact_id),
        Event::DeploymentReported(r) => format!(
            "report {} {}",
            r.service,
            pb::DeploymentState::try_from(r.deployment.as_ref().unwrap().state)
                .unwrap()
                .as_str_name()
        ),
        Event::ReconciliationError(e) => format!(
            "environment {} {}",
            if e.cleared { "cleared" } else { "failed" },
            e.error.as_ref().unwrap().message
        ),
        Event::BuildAdded(b) => format!("build {} {}", b.service, b.artifact_id),
        Event::PolicyChanged(p) => format!("policy {}", p.service),
        Event::Live(_) | Event::Dropped(_) => return None,
    })
}

/// Subscribes from `since` and reads up to (and without) the `live`
/// marker: what was replayed, and the marker's cursor.
async fn replay(
    client: &mut ReleaseServiceClient<tonic::transport::Channel>,
    since: &str,
) -> (
    Vec<(String, String)>,
    String,
    tonic::Streaming<pb::WatchEventsResponse>,
) {
    let mut stream = client
        .watch_events(pb::WatchEventsRequest {
            since: since.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut replayed = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .expect("the replay arrives")
            .unwrap()
            .expect("the stream goes on");
        match &event.event {
            Some(Event::Live(live)) => {
                assert_eq!(live.replayed as usize, replayed.len());
                return (replayed, event.cursor, stream);
            }
            _ => {
                assert!(
                    !event.cursor.is_empty(),
                    "every event has a cursor: {event:?}"
                );
                replayed.push((describe(&event).unwrap(), event.cursor));
            }
        }
    }
}

/// Reads `count` events of `stream` (bounded): (description, cursor).
async fn next_events(
    stream: &mut tonic::Streaming<pb::WatchEventsResponse>,
    count: usize,
) -> Vec<(String, String)> {
    let mut events = Vec::new();
    while events.len() < count {
        let event = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .expect("the events arrive")
            .unwrap()
            .expect("the stream goes on");
        if let Some(text) = describe(&event) {
            assert!(
                !event.cursor.is_empty(),
                "every event has a cursor: {event:?}"
            );
            events.push((text, event.cursor));
        }
    }
    events
}

#[tokio::test]
async fn a_resume_from_a_deployment_events_cursor_loses_nothing() {
    let mut repo = ConfigRepo::new();
    for service in ["cart", "shop", "tax"] {
        repo.add_kube_build(service, "master", 1);
    }
    repo.push();
    let server = start(&repo).await;
    let mut client = server.client().await;
    let (_, _, mut live) = replay(&mut client, "").await;

    client
        .release(release_branch("shop", "dev", "master"))
        .await
        .unwrap();
    report(&server, "shop", &repo.remote_head(), "succeeded").await;
    let first = next_events(&mut live, 2).await;
    assert_eq!(first[0].0, "released shop master-shop-001");
    assert_eq!(first[1].0, "report shop DEPLOYMENT_STATE_DEPLOYED");
    let after_report = first[1].1.clone();

    // More of both kinds, interleaved.
    client
        .release(release_branch("cart", "dev", "master"))
        .await
        .unwrap();
    report(&server, "cart", &repo.remote_head(), "failed").await;
    client
        .release(release_branch("tax", "dev", "master"))
        .await
        .unwrap();
    let tip = repo.remote_head();
    post_signed(
        &server,
        "/webhook/flux",
        &flux_succeeded("apps-dev", &tip, "2026-08-02T10:00:00Z"),
    )
    .await;
    let later = next_events(&mut live, 5).await;
    let later_text: Vec<&str> = later.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        later_text,
        [
            "released cart master-cart-001",
            "report cart DEPLOYMENT_STATE_FAILED",
            "released tax master-tax-001",
            "report cart DEPLOYMENT_STATE_DEPLOYED",
            "report tax DEPLOYMENT_STATE_DEPLOYED",
        ],
        "live, in the order they happened (shop was deployed already)"
    );

    // From the report's cursor: the commit events after it (history
    // order), then the reports after it (recorded order), each once.
    let (replayed, end, _) = replay(&mut client, &after_report).await;
    let mut from_history: Vec<String> = replayed.iter().map(|(t, _)| t.clone()).collect();
    let commits: Vec<String> = from_history.drain(..2).collect();
    assert_eq!(
        commits,
        [
            "released cart master-cart-001",
            "released tax master-tax-001"
        ]
    );
    let expected_reports: Vec<String> = later
        .iter()
        .filter(|(t, _)| t.starts_with("report"))
        .map(|(t, _)| t.clone())
        .collect();
    assert_eq!(from_history, expected_reports, "{replayed:?}");
    // The cursor of the last event live equals where that replay ends:
    // resuming from either gives nothing more.
    let (nothing, _, _) = replay(&mut client, &later.last().unwrap().1).await;
    assert!(nothing.is_empty(), "{nothing:?}");
    let (nothing, _, _) = replay(&mut client, &end).await;
    assert!(nothing.is_empty(), "{nothing:?}");

    // From the cursor of a commit event in the middle (cart's release):
    // tax's release, then the reports after the one that came before it.
    let (replayed, _, _) = replay(&mut client, &later[0].1).await;
    let texts: Vec<String> = replayed.into_iter().map(|(t, _)| t).collect();
    assert_eq!(texts[0], "released tax master-tax-001");
    assert_eq!(texts[1..], expected_reports[..], "{texts:?}");

    // A bare commit (or an older server's cursor) says nothing of reports:
    // commit events only.
    let (replayed, _, _) = replay(&mut client, first[0].1.split('.').next().unwrap()).await;
    assert!(
        replayed.iter().all(|(t, _)| t.starts_with("released")),
        "{replayed:?}"
    );
    assert_eq!(replayed.len(), 2);
    server.stop().await;
}

/// A client that reads nothing: its HTTP/2 windows are small, so the
/// server stops sending to it (and stops taking its events off the bus)
/// early.
async fn slow_client(url: &str) -> ReleaseServiceClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .initial_stream_window_size(16 * 1024)
        .initial_connection_window_size(32 * 1024)
        .connect()
        .await
        .unwrap();
    ReleaseServiceClient::new(channel)
}

/// The number of the burst's failure a text tells of.
fn attempt_of(text: &str) -> usize {
    let at = text.find("attempt ").expect("a failure of the burst") + "attempt ".len();
    text[at..at + 5].parse().expect("five digits")
}

/// The words of the `n`th reconciliation error of the burst: 4 KB that
/// name no service.
fn burst_message(n: usize) -> String {
    format!(
        "quota exceeded for requests.cpu in the cluster, attempt {n:05}: {}",
        "the limit is shared by every workload of the cluster ".repeat(70)
    )
}

#[tokio::test]
async fn watchers_too_slow_to_keep_up_resume_and_see_every_event_once() {
    const ROUNDS: usize = 1200;
    let mut repo = ConfigRepo::new();
    repo.add_kube_build("shop", "master", 1);
    repo.push();
    let server = start(&repo).await;

    // A gRPC client that will not read.
    let mut slow = slow_client(&server.url).await;
    let (_, _, mut frozen) = replay(&mut slow, "").await;

    // `hamctl --wait` for a release of shop, frozen once it waits.
    let mut waiter = Cli::hamctl().spawn(&[
        "--server",
        &server.url,
        "release",
        "--service",
        "shop",
        "--env",
        "dev",
        "--branch",
        "master",
        "--wait",
        "--timeout",
        "5m",
    ]);
    waiter
        .err_until(|line| line.starts_with("waiting for dev"))
        .await;
    let revision = repo.remote_head();
    // `hamctl watch`, frozen once it has printed an event.
    let mut watch = Cli::hamctl().spawn(&["--server", &server.url, "watch", "--output", "json"]);
    let mut round = 0;
    // One event a second from 08:00, in the controller's clock.
    let at = |k: usize| {
        let t = 8 * 3600 + k;
        format!(
            "2026-08-03T{:02}:{:02}:{:02}Z",
            t / 3600,
            t % 3600 / 60,
            t % 60
        )
    };
    // A failure that names no service, then an apply that names none
    // (which clears it).
    let set = |n: usize| {
        flux_event(
            "apps-dev",
            "error",
            "ReconciliationFailed",
            &burst_message(n),
            &revision,
            &at(2 * n),
            &BTreeMap::new(),
        )
    };
    let clear = |n: usize| {
        flux_change_set(
            "apps-dev",
            &["Namespace/dev configured"],
            &revision,
            &at(2 * n + 1),
        )
    };
    let subscribed = loop {
        round += 1;
        post_signed(&server, "/webhook/flux", &set(round)).await;
        post_signed(&server, "/webhook/flux", &clear(round)).await;
        if let Some(line) = watch.next_out_line(Duration::from_millis(200)).await {
            break line;
        }
        assert!(round < 100, "hamctl watch printed nothing");
    };
    assert!(
        subscribed.contains("\"reconciliationError\""),
        "{subscribed}"
    );
    watch.signal(libc::SIGSTOP);
    waiter.signal(libc::SIGSTOP);

    // The burst: an environment failing and recovering, 4 KB of words
    // each time, far more than the frozen watchers' windows hold.
    let began = Instant::now();
    let first_of_burst = round + 1;
    for _ in 0..ROUNDS {
        round += 1;
        post_signed(&server, "/webhook/flux", &set(round)).await;
        post_signed(&server, "/webhook/flux", &clear(round)).await;
    }
    println!("{} reports in {:?}", 2 * ROUNDS, began.elapsed());
    let phase = Instant::now();
    watch.signal(libc::SIGCONT);
    waiter.signal(libc::SIGCONT);
    // `--wait` reads what its stream held, is told it fell behind,
    // subscribes again from there and is told the rest; then shop's
    // release is deployed.
    waiter
        .err_until(|line| line.contains("fell behind the server's events"))
        .await;
    let last = format!("attempt {round:05}:");
    waiter.err_until(|line| line.contains(&last)).await;
    println!(
        "hamctl --wait caught up {:?} after the burst",
        phase.elapsed()
    );
    report(&server, "shop", &repo.remote_head(), "succeeded").await;

    // The gRPC client: what its stream holds, then `dropped`, then the end.
    let mut seen: Vec<(String, String)> = Vec::new();
    let resume_from = loop {
        let event = tokio::time::timeout(Duration::from_secs(60), frozen.message())
            .await
            .expect("the stream goes on")
            .unwrap()
            .expect("a dropped message comes before the end");
        match &event.event {
            Some(Event::Dropped(dropped)) => {
                assert!(dropped.missed > 0);
                assert_eq!(dropped.resume_from, event.cursor);
                break dropped.resume_from.clone();
            }
            _ => {
                if let Some(text) = describe(&event) {
                    seen.push((text, event.cursor.clone()));
                }
            }
        }
    };
    let ended = tokio::time::timeout(Duration::from_secs(30), frozen.message())
        .await
        .expect("the stream ends")
        .unwrap();
    assert!(ended.is_none(), "nothing after dropped: {ended:?}");
    let (replayed, _, mut rest) = replay(&mut slow, &resume_from).await;
    seen.extend(replayed);
    // Anything after the replay comes live.
    let done = "report shop DEPLOYMENT_STATE_DEPLOYED";
    while !seen.iter().any(|(t, _)| t == done) {
        seen.extend(next_events(&mut rest, 1).await);
    }
    let failures: Vec<&String> = seen
        .iter()
        .map(|(t, _)| t)
        .filter(|t| t.starts_with("environment failed"))
        .collect();
    let distinct: BTreeSet<&&String> = failures.iter().collect();
    assert_eq!(distinct.len(), failures.len(), "no event twice");
    assert_eq!(failures.len(), round, "every failure once");
    let cursors: BTreeSet<&String> = seen.iter().map(|(_, c)| c).collect();
    assert_eq!(cursors.len(), seen.len(), "every cursor once");

    println!(
        "the gRPC client caught up {:?} after the burst",
        phase.elapsed()
    );
    // hamctl watch: every event once (it said it fell behind and caught
    // up from the cursor it was given).
    let mut printed: Vec<serde_json::Value> = Vec::new();
    while !printed
        .iter()
        .any(|e| e.get("deploymentReported").is_some())
    {
        let line = watch
            .next_out_line(Duration::from_secs(60))
            .await
            .expect("hamctl watch goes on printing");
        printed.push(serde_json::from_str(&line).unwrap());
    }
    printed.push(serde_json::from_str(&subscribed).unwrap());
    let messages: Vec<String> = printed
        .iter()
        .filter(|e| {
            // The event's kind is its field, as in the API's JSON.
            e.get("reconciliationError").is_some() && e["reconciliationError"]["cleared"] != true
        })
        .map(|e| {
            e["reconciliationError"]["error"]["message"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let attempts: Vec<usize> = messages.iter().map(|m| attempt_of(m)).collect();
    let distinct: BTreeSet<usize> = attempts.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        attempts.len(),
        "hamctl watch printed no event twice"
    );
    assert!(
        (first_of_burst..=round).all(|n| distinct.contains(&n)),
        "hamctl watch printed every failure"
    );
    let mut told = false;
    while let Some(line) = watch.next_err_line(Duration::from_millis(200)).await {
        told |= line.contains("fell behind");
    }
    assert!(told, "hamctl watch said it fell behind");

    println!(
        "hamctl watch caught up {:?} after the burst",
        phase.elapsed()
    );
    // hamctl --wait: it fell behind too, caught up, and ends with the
    // deployment; each failure it was told of, once.
    let run = waiter.finish(Duration::from_secs(120)).await;
    assert_eq!(run.code, 0, "{}", run.err);
    assert!(
        run.err.contains("dev deployed master-shop-001"),
        "{}",
        run.err
    );
    let mut told: BTreeMap<usize, usize> = BTreeMap::new();
    for line in run
        .err
        .lines()
        .filter(|l| l.contains("reconciliation failed"))
    {
        *told.entry(attempt_of(line)).or_default() += 1;
    }
    for n in first_of_burst..=round {
        assert_eq!(told.get(&n), Some(&1), "failure {n} told once by --wait");
    }
    server.stop().await;
}

/// The server of `repo` on `addr` with the data dir `data`, configured as
/// [`start`]'s, for a restart in place.
async fn start_at(
    repo: &ConfigRepo,
    data: &std::path::Path,
    addr: std::net::SocketAddr,
) -> crate::support::server_api::RunningServer {
    let mut config = crate::support::server::local_config(&repo.remote, data);
    config.http_listen = Some("127.0.0.1:0".parse().unwrap());
    config.deployment_webhook_secret = Some(SECRET.into());
    config.deployment_sources = DeploymentSources::parse("dev=flux-system/apps-dev").unwrap();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    crate::support::server::start_on(config, listener)
        .await
        .unwrap()
}

/// `--wait` outlives a restart of the server: it says it lost the stream,
/// follows the environment again once the server is back, and ends with
/// the deployment the new server is told of.
#[tokio::test]
async fn wait_follows_the_environment_across_a_server_restart() {
    let mut repo = ConfigRepo::new();
    repo.add_kube_build("shop", "master", 1);
    repo.push();
    let data = tempfile::tempdir().unwrap();
    let first = start_at(&repo, data.path(), "127.0.0.1:0".parse().unwrap()).await;
    let addr = first.addr;
    let url = format!("http://{addr}");
    let mut waiter = Cli::hamctl().spawn(&[
        "--server",
        &url,
        "release",
        "--service",
        "shop",
        "--env",
        "dev",
        "--branch",
        "master",
        "--wait",
        "--timeout",
        "2m",
    ]);
    waiter
        .err_until(|line| line.starts_with("waiting for dev"))
        .await;
    let revision = repo.remote_head();

    first.shutdown().await;
    waiter.err_until(|line| line.contains("reconnecting")).await;
    let second = start_at(&repo, data.path(), addr).await;
    let signed_report = serde_json::json!({"environment": "dev", "revision": revision,
        "state": "succeeded", "service": "shop", "source": "test"})
    .to_string();
    let signed = [("X-Signature", signature(SECRET, signed_report.as_bytes()))];
    let answer = http::post_json(
        second.http_addr.unwrap(),
        "/webhook/deployment",
        &signed,
        &signed_report,
    )
    .await;
    assert!(
        answer.status == 200 || answer.status == 202,
        "{}: {}",
        answer.status,
        answer.text()
    );

    let run = waiter.finish(Duration::from_secs(120)).await;
    assert_eq!(run.code, 0, "{}", run.err);
    assert!(
        run.err.contains("dev deployed master-shop-001"),
        "{}",
        run.err
    );
    assert!(run.err.contains("reconnecting"), "{}", run.err);
    second.shutdown().await;
}
