//! Deployment status from the cluster, end to end: Flux, Argo CD and plain
//! reports posted over real HTTP to the real server (signed, unsigned,
//! wrongly signed), what status then says, that an older revision never
//! marks a newer release deployed, that the states survive a restart, the
//! gRPC `ReportDeployment` and its events, and `hamctl ... --wait` as a real
//! process exiting 0, 1 or 3 by what the cluster said.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::server_api::DeploymentSources;
use crate::support::signing::signature;
use crate::support::*;
use release_manager::pb;

const SECRET: &str = "hook-secret";

fn fixture() -> ConfigRepo {
    let mut repo = ConfigRepo::new();
    for service in ["cart", "shop"] {
        for n in 1..=2 {
            repo.add_build(service, "master", n);
        }
    }
    repo.push();
    repo
}

async fn start(repo: &ConfigRepo, data: Option<tempfile::TempDir>) -> TestServer {
    let data = data.unwrap_or_else(|| tempfile::tempdir().unwrap());
    TestServer::start_in(&repo.remote, data, |config| {
        config.http_listen = Some("127.0.0.1:0".parse().unwrap());
        config.deployment_webhook_secret = Some(SECRET.into());
        config.deployment_sources =
            DeploymentSources::parse("dev=flux-system/apps-dev,prod=argocd/prod-apps").unwrap();
    })
    .await
}

/// POSTs `body` to `path` with `headers`; the status code and the answer's
/// body.
async fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, String) {
    let answer = http::post_json(addr, path, headers, body).await;
    (answer.status, answer.text())
}

/// POSTs `body` signed as Flux's generic-hmac provider signs it.
async fn post_signed(addr: SocketAddr, path: &str, body: &str) -> (u16, String) {
    let signed = [("X-Signature", signature(SECRET, body.as_bytes()))];
    post(addr, path, &signed, body).await
}

/// An event as Flux's notification-controller posts it.
fn flux_event(name: &str, revision: &str, severity: &str, reason: &str, message: &str) -> String {
    serde_json::json!({
        "involvedObject": {"kind": "Kustomization", "namespace": "flux-system", "name": name,
                           "uid": "7d0cdc51-ddcf-4743-b223-83ca5c699632", "apiVersion": "kustomize.toolkit.fluxcd.io/v1"},
        "severity": severity,
        "timestamp": "2026-12-01T10:00:00Z",
        "message": message,
        "reason": reason,
        "metadata": {"revision": format!("main@sha1:{revision}")},
        "reportingController": "kustomize-controller",
        "reportingInstance": "kustomize-controller-7f5c7d6b8d-2qk4x"
    })
    .to_string()
}

async fn release(server: &TestServer, service: &str, env: &str) -> String {
    let mut client = server.client().await;
    let result = client
        .release(release_branch(service, env, "master"))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert!(!result.commit_sha.is_empty());
    result.commit_sha
}

/// The deployment status says for `service` in `env`: (state word, message,
/// revision).
async fn deployment(server: &TestServer, service: &str, env: &str) -> (String, String, String) {
    let status = server.status(service).await;
    let environment = status
        .environments
        .iter()
        .find(|e| e.environment == env)
        .unwrap();
    let d = environment
        .deployment
        .clone()
        .expect("a released service has a deployment state");
    let word = match pb::DeploymentState::try_from(d.state).unwrap() {
        pb::DeploymentState::Pending => "pending",
        pb::DeploymentState::Progressing => "progressing",
        pb::DeploymentState::Deployed => "deployed",
        pb::DeploymentState::Failed => "failed",
        pb::DeploymentState::Unspecified => "unspecified",
    };
    (word.to_string(), d.message, d.revision)
}

#[tokio::test]
async fn flux_and_argocd_reports_mark_releases_deployed_or_failed() {
    let repo = fixture();
    let server = start(&repo, None).await;
    let addr = server.http_addr();
    let shop_release = release(&server, "shop", "dev").await;
    let cart_release = release(&server, "cart", "dev").await;
    assert_eq!(deployment(&server, "shop", "dev").await.0, "pending");

    // Signed as Flux's generic-hmac provider signs: the revision holds
    // shop's release but not cart's, which came after.
    let body = flux_event(
        "apps-dev",
        &shop_release,
        "info",
        "ReconciliationSucceeded",
        "Applied revision",
    );
    let (code, text) = post_signed(addr, "/webhook/flux", &body).await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(
        deployment(&server, "shop", "dev").await,
        (
            "deployed".into(),
            "Applied revision".into(),
            shop_release.clone()
        )
    );
    assert_eq!(
        deployment(&server, "cart", "dev").await.0,
        "pending",
        "an older revision does not mark a newer release deployed"
    );

    // Unsigned, or signed with another secret: refused, nothing changes.
    let failing = flux_event(
        "apps-dev",
        &cart_release,
        "error",
        "HealthCheckFailed",
        "Deployment/cart: not ready",
    );
    for headers in [
        vec![],
        vec![("X-Signature", "sha256=00".to_string())],
        vec![("Authorization", "Bearer nope".to_string())],
    ] {
        let (code, text) = post(addr, "/webhook/flux", &headers, &failing).await;
        assert_eq!(code, 401, "{headers:?}: {text}");
    }
    assert_eq!(deployment(&server, "cart", "dev").await.0, "pending");

    // Flux's generic provider with the secret as a bearer header.
    let (code, text) = post(
        addr,
        "/webhook/flux",
        &[("Authorization", format!("Bearer {SECRET}"))],
        &failing,
    )
    .await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(
        deployment(&server, "cart", "dev").await,
        (
            "failed".into(),
            "Deployment/cart: not ready".into(),
            cart_release.clone()
        )
    );
    // The newer revision holds shop's release too.
    assert_eq!(deployment(&server, "shop", "dev").await.0, "failed");

    // An info event that is no success says nothing final.
    let body = flux_event(
        "apps-dev",
        &cart_release,
        "info",
        "DependencyNotReady",
        "dependency 'infra' is not ready",
    );
    let (code, text) = post_signed(addr, "/webhook/flux", &body).await;
    assert_eq!(code, 202, "{text}");
    assert_eq!(deployment(&server, "cart", "dev").await.0, "failed");

    // A late report on an older revision of shop's release does not undo
    // what the newer revision said.
    let body = flux_event(
        "apps-dev",
        &cart_release,
        "info",
        "ReconciliationSucceeded",
        "Applied",
    );
    let (code, text) = post_signed(addr, "/webhook/flux", &body).await;
    assert_eq!(code, 200, "{text}");
    let late = flux_event(
        "apps-dev",
        &shop_release,
        "error",
        "HealthCheckFailed",
        "late news",
    );
    let (code, text) = post_signed(addr, "/webhook/flux", &late).await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(
        deployment(&server, "shop", "dev").await,
        ("deployed".into(), "Applied".into(), cart_release.clone())
    );

    // A Kustomization nobody mapped, and a commit nobody has.
    let body = flux_event(
        "other",
        &cart_release,
        "info",
        "ReconciliationSucceeded",
        "",
    );
    let (code, text) = post_signed(addr, "/webhook/flux", &body).await;
    assert_eq!(code, 422, "{text}");
    assert!(text.contains("--deployment-sources"), "{text}");
    let body = flux_event(
        "apps-dev",
        "0123456789abcdef0123456789abcdef01234567",
        "info",
        "ReconciliationSucceeded",
        "",
    );
    let (code, text) = post_signed(addr, "/webhook/flux", &body).await;
    assert_eq!(code, 422, "{text}");
    assert!(text.contains("not in the config repository"), "{text}");

    // Argo CD, with the body template the README gives.
    let prod_release = release(&server, "shop", "prod").await;
    let argo = |health: &str, sync: &str, phase: &str, message: &str| {
        serde_json::json!({"application": "prod-apps", "namespace": "argocd", "revision": prod_release,
                           "sync": sync, "health": health, "phase": phase, "message": message})
        .to_string()
    };
    let body = argo("Progressing", "Synced", "Running", "waiting for rollout");
    let (code, text) = post(
        addr,
        "/webhook/argocd",
        &[("Authorization", format!("Bearer {SECRET}"))],
        &body,
    )
    .await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(deployment(&server, "shop", "prod").await.0, "progressing");
    let body = argo("Healthy", "Synced", "Succeeded", "successfully synced");
    let (code, text) = post_signed(addr, "/webhook/argocd", &body).await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(deployment(&server, "shop", "prod").await.0, "deployed");

    let answer = http::get(addr, "/metrics").await;
    let (code, metrics) = (answer.status, answer.text());
    assert_eq!(code, 200);
    for line in [
        "release_manager_deployment_reports_total{state=\"deployed\"} 3",
        "release_manager_deployment_reports_total{state=\"failed\"} 2",
        "release_manager_deployment_reports_total{state=\"progressing\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }

    // The states outlive the process.
    let data = server.stop().await;
    let server = start(&repo, Some(data)).await;
    assert_eq!(deployment(&server, "cart", "dev").await.0, "deployed");
    assert_eq!(deployment(&server, "shop", "prod").await.0, "deployed");
    server.stop().await;
}

#[tokio::test]
async fn without_a_secret_the_routes_refuse_everything() {
    let repo = fixture();
    let server = TestServer::start_with(&repo.remote, |config| {
        config.http_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let addr = server.http_addr();
    let revision = release(&server, "shop", "dev").await;
    let body =
        serde_json::json!({"environment": "dev", "revision": revision, "state": "succeeded"})
            .to_string();
    for path in ["/webhook/flux", "/webhook/argocd", "/webhook/deployment"] {
        let (code, text) = post(
            addr,
            path,
            &[("Authorization", "Bearer anything".into())],
            &body,
        )
        .await;
        assert_eq!(code, 401, "{path}: {text}");
        assert!(text.contains("--deployment-webhook-secret"), "{text}");
    }
    assert_eq!(deployment(&server, "shop", "dev").await.0, "pending");
    server.stop().await;
}

#[tokio::test]
async fn report_deployment_over_grpc_reaches_watchers_of_the_environment() {
    let repo = fixture();
    let server = start(&repo, None).await;
    let revision = release(&server, "shop", "staging").await;
    let mut client = server.client().await;
    let mut events = client
        .watch_events(pb::WatchEventsRequest {
            environment: "staging".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let refused = client
        .report_deployment(pb::ReportDeploymentRequest {
            environment: "staging".into(),
            revision: revision.clone(),
            state: pb::DeploymentState::Pending as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    let answer = client
        .report_deployment(pb::ReportDeploymentRequest {
            environment: "staging".into(),
            revision: revision.clone(),
            state: pb::DeploymentState::Deployed as i32,
            message: "rolled out".into(),
            source: "deploy-bot".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.covered.len(), 1);
    assert_eq!(answer.covered[0].service, "shop");
    assert_eq!(answer.covered[0].release_commit_sha, revision);
    let event = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let event = events.message().await.unwrap().unwrap();
            if let Some(pb::watch_events_response::Event::DeploymentReported(report)) = event.event
            {
                return report;
            }
        }
    })
    .await
    .expect("the report reaches the watcher");
    assert_eq!(event.service, "shop");
    assert_eq!(event.deployment.unwrap().source, "deploy-bot");
    server.stop().await;
}

/// Starts `hamctl release ... --wait` (the real binary) for `service`;
/// returns once it says it is waiting.
async fn start_waiting(server: &TestServer, service: &str, timeout: &str) -> RunningCli {
    let mut waiter = Cli::hamctl().spawn(&[
        "--server",
        &server.url,
        "release",
        "--service",
        service,
        "--env",
        "dev",
        "--branch",
        "master",
        "--wait",
        "--timeout",
        timeout,
    ]);
    waiter
        .err_until(|line| line.starts_with("waiting for dev"))
        .await;
    waiter
}

/// Waits (bounded) for the waiting hamctl to end: its exit code and the
/// lines it said on stderr.
async fn exit(waiter: RunningCli) -> (i32, Vec<String>) {
    let run = waiter.finish(Duration::from_secs(60)).await;
    (run.code, run.err.lines().map(str::to_string).collect())
}

async fn report(addr: SocketAddr, revision: &str, state: &str, message: &str) {
    let body = serde_json::json!({"environment": "dev", "revision": revision, "state": state, "message": message, "source": "test"}).to_string();
    let (code, text) = post_signed(addr, "/webhook/deployment", &body).await;
    assert_eq!(code, 200, "{text}");
}

#[tokio::test]
async fn hamctl_release_wait_exits_by_what_the_cluster_reports() {
    let repo = fixture();
    let server = start(&repo, None).await;
    let addr = server.http_addr();

    // Progressing keeps it waiting; deployed ends it with exit 0.
    let mut waiter = start_waiting(&server, "shop", "2m").await;
    let tip = deployment_revision_to_report(&server, "shop").await;
    report(addr, &tip, "progressing", "rolling out").await;
    waiter
        .err_until(|line| line.contains("dev: progressing"))
        .await;
    assert!(waiter.running(), "progressing is not the end");
    report(addr, &tip, "succeeded", "").await;
    let (code, said) = exit(waiter).await;
    assert_eq!(code, 0, "{said:?}");
    assert!(
        said.iter()
            .any(|l| l.contains("dev deployed master-shop-002")),
        "{said:?}"
    );

    // Failed: exit 1 with the controller's words.
    let waiter = start_waiting(&server, "cart", "2m").await;
    let tip = deployment_revision_to_report(&server, "cart").await;
    report(addr, &tip, "failed", "ImagePullBackOff: cart:2").await;
    let (code, said) = exit(waiter).await;
    assert_eq!(code, 1, "{said:?}");
    assert!(
        said.iter().any(|l| l.starts_with("error: dev failed to deploy") && l.contains("ImagePullBackOff")),
        "{said:?}"
    );

    // Nothing reports: exit 3 at the timeout, saying what is known.
    let mut repo = repo;
    repo.add_build("shop", "master", 3);
    repo.push();
    server.sync().await;
    let waiter = start_waiting(&server, "shop", "1s").await;
    let (code, said) = exit(waiter).await;
    assert_eq!(code, 3, "{said:?}");
    assert!(
        said.iter()
            .any(|l| l
                .contains("did not report master-shop-003 of shop deployed within 1 s (pending)")),
        "{said:?}"
    );
    server.stop().await;
}

/// The release commit status names for `service` in dev: what a controller
/// that applied the tip reports.
async fn deployment_revision_to_report(server: &TestServer, service: &str) -> String {
    server
        .status(service)
        .await
        .environments
        .iter()
        .find(|e| e.environment == "dev")
        .unwrap()
        .release_commit_sha
        .clone()
}
