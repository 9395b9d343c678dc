//! Deployment status from the cluster, end to end: Flux, Argo CD and plain
//! reports posted over real HTTP to the real server (signed, unsigned,
//! wrongly signed), what status then says, that an older revision never
//! marks a newer release deployed, that the states survive a restart, the
//! gRPC `ReportDeployment` and its events, and `hamctl ... --wait` as a real
//! process exiting 0, 1 or 3 by what the cluster said.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use hmac::{Hmac, Mac};
use release_manager::pb;
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

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
        config.deployment_sources = release_manager_server::DeploymentSources::parse(
            "dev=flux-system/apps-dev,prod=argocd/prod-apps",
        )
        .unwrap();
    })
    .await
}

fn http_port(server: &TestServer) -> u16 {
    server.server.as_ref().unwrap().http_addr.unwrap().port()
}

fn signature(body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// POSTs `body` to `path` with `headers`; the status code and the answer.
async fn post(port: u16, path: &str, headers: &[(&str, String)], body: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_string(&mut answer))
        .await
        .expect("the server answers")
        .unwrap();
    let code = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let text = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (code, text)
}

/// POSTs `body` signed as Flux's generic-hmac provider signs it.
async fn post_signed(port: u16, path: &str, body: &str) -> (u16, String) {
    post(port, path, &[("X-Signature", signature(body))], body).await
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
        pb::DeploymentState::Succeeded => "deployed",
        pb::DeploymentState::Failed => "failed",
        pb::DeploymentState::Unspecified => "unspecified",
    };
    (word.to_string(), d.message, d.revision)
}

#[tokio::test]
async fn flux_and_argocd_reports_mark_releases_deployed_or_failed() {
    let repo = fixture();
    let server = start(&repo, None).await;
    let port = http_port(&server);
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
    let (code, text) = post_signed(port, "/webhook/flux", &body).await;
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
        let (code, text) = post(port, "/webhook/flux", &headers, &failing).await;
        assert_eq!(code, 401, "{headers:?}: {text}");
    }
    assert_eq!(deployment(&server, "cart", "dev").await.0, "pending");

    // Flux's generic provider with the secret as a bearer header.
    let (code, text) = post(
        port,
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
    let (code, text) = post_signed(port, "/webhook/flux", &body).await;
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
    let (code, text) = post_signed(port, "/webhook/flux", &body).await;
    assert_eq!(code, 200, "{text}");
    let late = flux_event(
        "apps-dev",
        &shop_release,
        "error",
        "HealthCheckFailed",
        "late news",
    );
    let (code, text) = post_signed(port, "/webhook/flux", &late).await;
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
    let (code, text) = post_signed(port, "/webhook/flux", &body).await;
    assert_eq!(code, 422, "{text}");
    assert!(text.contains("--deployment-sources"), "{text}");
    let body = flux_event(
        "apps-dev",
        "0123456789abcdef0123456789abcdef01234567",
        "info",
        "ReconciliationSucceeded",
        "",
    );
    let (code, text) = post_signed(port, "/webhook/flux", &body).await;
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
        port,
        "/webhook/argocd",
        &[("Authorization", format!("Bearer {SECRET}"))],
        &body,
    )
    .await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(deployment(&server, "shop", "prod").await.0, "progressing");
    let body = argo("Healthy", "Synced", "Succeeded", "successfully synced");
    let (code, text) = post_signed(port, "/webhook/argocd", &body).await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(deployment(&server, "shop", "prod").await.0, "deployed");

    let (code, metrics) = get(port, "/metrics").await;
    assert_eq!(code, 200);
    for line in [
        "release_manager_deployment_reports_total{state=\"succeeded\"} 3",
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

async fn get(port: u16, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let code = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, answer)
}

#[tokio::test]
async fn without_a_secret_the_routes_refuse_everything() {
    let repo = fixture();
    let server = TestServer::start_with(&repo.remote, |config| {
        config.http_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let port = http_port(&server);
    let revision = release(&server, "shop", "dev").await;
    let body =
        serde_json::json!({"environment": "dev", "revision": revision, "state": "succeeded"})
            .to_string();
    for path in ["/webhook/flux", "/webhook/argocd", "/webhook/deployment"] {
        let (code, text) = post(
            port,
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
            state: pb::DeploymentState::Succeeded as i32,
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

/// The hamctl binary of this build (built if this test run did not).
fn hamctl_binary() -> PathBuf {
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "hamctl", "--bin", "hamctl"])
        .status()
        .expect("cargo runs");
    assert!(status.success());
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("hamctl")
}

/// A `hamctl release ... --wait` process, and what it said on stderr.
struct Waiter {
    child: tokio::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    said: Vec<String>,
}

impl Waiter {
    /// Starts it; returns once it says it is waiting.
    async fn start(server: &TestServer, binary: &PathBuf, service: &str, timeout: &str) -> Waiter {
        let mut child = tokio::process::Command::new(binary)
            .args([
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
            ])
            .env("GIT_COMMITTER_NAME", "Olga Operator")
            .env("GIT_COMMITTER_EMAIL", "olga@example.com")
            .env_remove("HAMCTL_AUTH_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("hamctl starts");
        let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let (send, lines) = tokio::sync::mpsc::unbounded_channel();
        // Read all along, so the process never blocks on a full pipe.
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        let mut waiter = Waiter {
            child,
            lines,
            said: Vec::new(),
        };
        waiter
            .until(|line| line.starts_with("waiting for dev"))
            .await;
        waiter
    }

    /// Waits for a line `wanted` accepts.
    async fn until(&mut self, wanted: impl Fn(&str) -> bool) {
        let found = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = self.lines.recv().await {
                let found = wanted(&line);
                self.said.push(line);
                if found {
                    return true;
                }
            }
            false
        })
        .await
        .expect("hamctl says it in time");
        assert!(found, "hamctl ended without saying it: {:?}", self.said);
    }

    /// Still running?
    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Its exit code and everything it said.
    async fn exit(mut self) -> (i32, Vec<String>) {
        let code = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("hamctl ends")
            .unwrap()
            .code()
            .unwrap();
        while let Some(line) = self.lines.recv().await {
            self.said.push(line);
        }
        (code, self.said)
    }
}

async fn report(port: u16, revision: &str, state: &str, message: &str) {
    let body = serde_json::json!({"environment": "dev", "revision": revision, "state": state, "message": message, "source": "test"}).to_string();
    let (code, text) = post_signed(port, "/webhook/deployment", &body).await;
    assert_eq!(code, 200, "{text}");
}

#[tokio::test]
async fn hamctl_release_wait_exits_by_what_the_cluster_reports() {
    let repo = fixture();
    let server = start(&repo, None).await;
    let port = http_port(&server);
    let binary = hamctl_binary();

    // Progressing keeps it waiting; deployed ends it with exit 0.
    let mut waiter = Waiter::start(&server, &binary, "shop", "2m").await;
    let tip = deployment_revision_to_report(&server, "shop").await;
    report(port, &tip, "progressing", "rolling out").await;
    waiter.until(|line| line.contains("dev: progressing")).await;
    assert!(waiter.running(), "progressing is not the end");
    report(port, &tip, "succeeded", "").await;
    let (code, said) = waiter.exit().await;
    assert_eq!(code, 0, "{said:?}");
    assert!(
        said.iter()
            .any(|l| l.contains("dev deployed master-shop-002")),
        "{said:?}"
    );

    // Failed: exit 1 with the controller's words.
    let waiter = Waiter::start(&server, &binary, "cart", "2m").await;
    let tip = deployment_revision_to_report(&server, "cart").await;
    report(port, &tip, "failed", "ImagePullBackOff: cart:2").await;
    let (code, said) = waiter.exit().await;
    assert_eq!(code, 1, "{said:?}");
    assert!(
        said.iter().any(|l| l.starts_with("error: dev failed to deploy") && l.contains("ImagePullBackOff")),
        "{said:?}"
    );

    // Nothing reports: exit 3 at the timeout, saying what is known.
    let mut repo = repo;
    repo.add_build("shop", "master", 3);
    repo.push();
    server.server.as_ref().unwrap().sync().await.unwrap();
    let waiter = Waiter::start(&server, &binary, "shop", "1s").await;
    let (code, said) = waiter.exit().await;
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
