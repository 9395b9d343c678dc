//! Deployment status from the cluster, end to end, with the controllers'
//! own event shapes posted over real HTTP to the real server: a report
//! changes the services it is about and no other. A Flux health check
//! naming one Deployment fails that service only, a success covers the
//! rest, a failure naming nobody is the environment's; Flux's own
//! `flux-system` and unmapped objects are answered 2xx; an Alert's
//! `eventMetadata` picks the environment; Argo CD Applications per service
//! do not overwrite each other, and `Missing` during a running sync is
//! progress; a plain report with `service` touches one service; a replayed
//! older signed body changes nothing; `--wait` on a server without reports
//! says so at once; and the states outlive the process and its data dir.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support::controllers::{
    self, flux_change_set, flux_event, flux_health_check_failed, flux_succeeded, Application,
};
use crate::support::server_api::DeploymentSources;
use crate::support::signing::signature;
use crate::support::*;
use release_manager::pb;

const SECRET: &str = "hook-secret";

/// The services of the fixture: Kubernetes manifests named after each.
const SERVICES: [&str; 5] = ["svc-0007", "svc-0008", "svc-0009", "svc-0010", "svc-0011"];

fn fixture() -> ConfigRepo {
    let mut repo = ConfigRepo::new();
    for service in SERVICES {
        for n in 1..=2 {
            repo.add_kube_build(service, "master", n);
        }
    }
    repo.push();
    repo
}

async fn start_with(repo: &ConfigRepo, data: tempfile::TempDir, sources: &str) -> TestServer {
    let sources = DeploymentSources::parse(sources).unwrap();
    TestServer::start_in(&repo.remote, data, move |config| {
        config.http_listen = Some("127.0.0.1:0".parse().unwrap());
        config.deployment_webhook_secret = Some(SECRET.into());
        config.deployment_sources = sources;
    })
    .await
}

async fn start(repo: &ConfigRepo) -> TestServer {
    start_with(
        repo,
        tempfile::tempdir().unwrap(),
        "dev=flux-system/apps-dev,prod=argocd/{service}-prod",
    )
    .await
}

/// POSTs `body` to `path` with `headers`: the status code and the answer.
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

/// POSTs a Flux event and expects `code`.
async fn flux(addr: SocketAddr, body: &str, code: u16) -> String {
    let (status, text) = post_signed(addr, "/webhook/flux", body).await;
    assert_eq!(status, code, "{text} for {body}");
    text
}

/// POSTs the Argo CD body the docs' template renders for `app`, with the
/// bearer header the docs' webhook service sends.
async fn argocd(addr: SocketAddr, app: &Application<'_>) -> (u16, String) {
    let body = controllers::argocd_body(app);
    post(
        addr,
        "/webhook/argocd",
        &[("Authorization", format!("Bearer {SECRET}"))],
        &body,
    )
    .await
}

/// Releases the latest master build of `service` to `env`; the commit.
async fn release(server: &TestServer, service: &str, env: &str) -> String {
    let mut client = server.client().await;
    let result = client
        .release(release_branch(service, env, "master"))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    result.commit_sha
}

/// Releases build `n` of `service` to `env`; the commit.
async fn release_build(server: &TestServer, service: &str, env: &str, n: usize) -> String {
    let mut client = server.client().await;
    client
        .release(release_artifact(
            service,
            env,
            &artifact_id(service, "master", n),
        ))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap()
        .commit_sha
}

/// What status says of `service` in `env`: (state word, message, revision).
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
        pb::DeploymentState::NotReported => "not reported",
        pb::DeploymentState::Unspecified => "unspecified",
    };
    (word.to_string(), d.message, d.revision)
}

/// The state word of every fixture service in `env`.
async fn words(server: &TestServer, env: &str) -> BTreeMap<String, String> {
    let mut words = BTreeMap::new();
    for service in SERVICES {
        words.insert(
            service.to_string(),
            deployment(server, service, env).await.0,
        );
    }
    words
}

fn expect(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(s, w)| (s.to_string(), w.to_string()))
        .collect()
}

/// Reads `stream` (bounded) until `wanted` reports arrived (or the stream
/// stays quiet for a second once they are there): the deployment reports
/// it sent, as (service, state word).
async fn reports_on(
    stream: &mut tonic::Streaming<pb::WatchEventsResponse>,
    wanted: usize,
) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let wait = if seen.len() >= wanted {
            Duration::from_secs(1)
        } else {
            deadline.saturating_duration_since(Instant::now())
        };
        let Ok(message) = tokio::time::timeout(wait, stream.message()).await else {
            assert!(
                seen.len() >= wanted,
                "only {seen:?} of {wanted} reports arrived"
            );
            return seen;
        };
        let event = message.unwrap().expect("the stream goes on");
        if let Some(pb::watch_events_response::Event::DeploymentReported(report)) = event.event {
            let word = present_word(report.deployment.unwrap().state);
            seen.push((report.service, word));
        }
    }
}

fn present_word(state: i32) -> String {
    match pb::DeploymentState::try_from(state).unwrap() {
        pb::DeploymentState::Progressing => "progressing",
        pb::DeploymentState::Deployed => "deployed",
        pb::DeploymentState::Failed => "failed",
        _ => "other",
    }
    .to_string()
}

#[tokio::test]
async fn a_flux_health_check_naming_one_deployment_fails_that_service_only() {
    let repo = fixture();
    let server = start(&repo).await;
    let addr = server.http_addr();
    for service in SERVICES {
        release_build(&server, service, "dev", 1).await;
    }
    let first = repo.remote_head();
    // Flux applies everything and reports a success of apps-dev.
    flux(
        addr,
        &flux_succeeded("apps-dev", &first, "2026-08-01T10:00:00Z"),
        200,
    )
    .await;
    assert_eq!(
        words(&server, "dev").await,
        expect(&SERVICES.map(|s| (s, "deployed")))
    );

    // Two new releases, watched from now on.
    let mut client = server.client().await;
    let mut watch = client
        .watch_events(pb::WatchEventsRequest {
            environment: "dev".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut waiter = Cli::hamctl().spawn(&[
        "--server",
        &server.url,
        "release",
        "--service",
        "svc-0008",
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
    release(&server, "svc-0009", "dev").await;
    let second = repo.remote_head();

    // The apply's change set names both Deployments; then the health check
    // fails on svc-0009's alone.
    flux(
        addr,
        &flux_change_set(
            "apps-dev",
            &[
                "Deployment/dev/svc-0008 configured",
                "Deployment/dev/svc-0009 configured",
            ],
            &second,
            "2026-08-01T10:05:00Z",
        ),
        200,
    )
    .await;
    let text = flux(
        addr,
        &flux_health_check_failed(
            "apps-dev",
            &["Deployment/dev/svc-0009"],
            &second,
            "2026-08-01T10:10:00Z",
        ),
        200,
    )
    .await;
    assert!(text.starts_with("1 release(s) covered"), "{text}");
    assert_eq!(
        words(&server, "dev").await,
        expect(&[
            ("svc-0007", "deployed"),
            ("svc-0008", "progressing"),
            ("svc-0009", "failed"),
            ("svc-0010", "deployed"),
            ("svc-0011", "deployed"),
        ]),
        "the failure is svc-0009's; nobody else is repainted"
    );
    let (_, message, _) = deployment(&server, "svc-0009", "dev").await;
    assert!(
        message.contains("Deployment/dev/svc-0009 status: 'InProgress'"),
        "{message}"
    );
    let (_, _, revision) = deployment(&server, "svc-0010", "dev").await;
    assert_eq!(revision, first, "an old release keeps the report on it");
    assert!(
        waiter.running(),
        "svc-0008's wait is not ended by svc-0009's failure"
    );

    // svc-0009 is fixed at a later commit; the success covers the rest.
    let repo = repo;
    repo.commit_files(
        "fix svc-0009's probe",
        &[("dev/provisioning/probe.yaml", "fixed: true\n")],
    );
    repo.push();
    server.sync().await;
    let third = repo.remote_head();
    flux(
        addr,
        &flux_succeeded("apps-dev", &third, "2026-08-01T10:20:00Z"),
        200,
    )
    .await;
    let run = waiter.finish(Duration::from_secs(60)).await;
    assert_eq!(run.code, 0, "{}", run.err);
    assert!(
        run.err.contains("dev deployed master-svc-0008-002"),
        "{}",
        run.err
    );
    assert_eq!(
        words(&server, "dev").await,
        expect(&SERVICES.map(|s| (s, "deployed")))
    );

    // What a watcher of dev heard: the two services, each state once.
    let reports = reports_on(&mut watch, 5).await;
    let expected: Vec<(String, String)> = [
        ("svc-0008", "progressing"),
        ("svc-0009", "progressing"),
        ("svc-0009", "failed"),
        ("svc-0008", "deployed"),
        ("svc-0009", "deployed"),
    ]
    .iter()
    .map(|(s, w)| (s.to_string(), w.to_string()))
    .collect();
    assert_eq!(reports, expected);
    server.stop().await;
}

#[tokio::test]
async fn a_flux_failure_naming_nobody_is_the_environments_and_a_build_error_names_its_folder() {
    let repo = fixture();
    let server = start(&repo).await;
    let addr = server.http_addr();
    for service in SERVICES {
        release_build(&server, service, "dev", 1).await;
    }
    let revision = repo.remote_head();
    // Forbidden to patch a namespace: kustomize-controller's apply error,
    // which names no object of any release.
    let forbidden = flux_event(
        "apps-dev",
        "error",
        "ReconciliationFailed",
        "namespaces \"dev\" is forbidden: User \"system:serviceaccount:flux-system:kustomize-controller\" cannot patch resource \"namespaces\" in API group \"\" at the cluster scope",
        &revision,
        "2026-08-01T11:00:00Z",
        &BTreeMap::new(),
    );
    let text = flux(addr, &forbidden, 200).await;
    assert!(text.contains("reconciliation error"), "{text}");
    assert_eq!(
        words(&server, "dev").await,
        expect(&SERVICES.map(|s| (s, "pending"))),
        "no service is marked failed"
    );
    let status = server.status("svc-0007").await;
    let dev = status
        .environments
        .iter()
        .find(|e| e.environment == "dev")
        .unwrap();
    assert_eq!(dev.reconciliation_errors.len(), 1, "{dev:?}");
    assert_eq!(
        dev.reconciliation_errors[0].source,
        "flux:flux-system/apps-dev"
    );
    assert!(dev.reconciliation_errors[0]
        .message
        .contains("is forbidden"));
    let (code, out, _) =
        hamctl(&["--server", &server.url, "status", "--service", "svc-0007"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("dev: reconciliation failed (flux:flux-system/apps-dev): namespaces \"dev\" is forbidden"),
        "{out}"
    );

    // A build error's path names svc-0010's release folder.
    let build_failed = flux_event(
        "apps-dev",
        "error",
        "BuildFailed",
        "kustomize build failed: accumulating resources: accumulation err='accumulating resources from './releases/dev/svc-0010': read /tmp/kustomization-3716/dev/releases/dev/svc-0010/deployment.yaml: yaml: line 3: mapping values are not allowed in this context'",
        &revision,
        "2026-08-01T11:05:00Z",
        &BTreeMap::new(),
    );
    flux(addr, &build_failed, 200).await;
    let mut expected = expect(&SERVICES.map(|s| (s, "pending")));
    expected.insert("svc-0010".into(), "failed".into());
    assert_eq!(words(&server, "dev").await, expected);
    let status = server.status("svc-0007").await;
    assert!(
        status.environments[0].reconciliation_errors.is_empty(),
        "the build got past the forbidden namespace: that error is gone"
    );

    // Events that say nothing of a rollout, Flux's own Kustomization and
    // one nobody maps: 202, nothing changes.
    let flux_own = flux_succeeded(
        "flux-system",
        "0123456789abcdef0123456789abcdef01234567",
        "2026-08-01T11:06:00Z",
    );
    let with_env = flux_event(
        "flux-system",
        "info",
        "ReconciliationSucceeded",
        "Reconciliation finished in 2.1s, next run in 10m0s",
        "0123456789abcdef0123456789abcdef01234567",
        "2026-08-01T11:06:00Z",
        &BTreeMap::from([("env".to_string(), "dev".to_string())]),
    );
    let unmapped = flux_succeeded("infra-controllers", &revision, "2026-08-01T11:06:00Z");
    let dependency = flux_event(
        "apps-dev",
        "info",
        "DependencyNotReady",
        "dependency 'flux-system/infra-controllers' is not ready",
        &revision,
        "2026-08-01T11:06:00Z",
        &BTreeMap::new(),
    );
    for body in [&flux_own, &with_env, &unmapped, &dependency] {
        let text = flux(addr, body, 202).await;
        assert!(text.starts_with("ignored: "), "{text}");
    }
    assert_eq!(words(&server, "dev").await, expected);
    server.stop().await;
}

#[tokio::test]
async fn an_alerts_event_metadata_selects_the_environment() {
    let repo = fixture();
    // One cluster per environment, each with `flux-system/apps`: no
    // sources at all; each cluster's Alert says its environment.
    let server = start_with(&repo, tempfile::tempdir().unwrap(), "").await;
    let addr = server.http_addr();
    release_build(&server, "svc-0007", "staging", 1).await;
    release_build(&server, "svc-0007", "prod", 1).await;
    let revision = repo.remote_head();
    let metadata = controllers::alert_event_metadata();
    assert_eq!(
        metadata.get("env").map(String::as_str),
        Some("staging"),
        "the docs' Alert is the staging cluster's"
    );
    let staging = flux_event(
        "apps",
        "info",
        "ReconciliationSucceeded",
        "Reconciliation finished in 1.63s, next run in 10m0s",
        &revision,
        "2026-08-01T12:00:00Z",
        &metadata,
    );
    flux(addr, &staging, 200).await;
    assert_eq!(
        deployment(&server, "svc-0007", "staging").await.0,
        "deployed"
    );
    assert_eq!(deployment(&server, "svc-0007", "prod").await.0, "pending");
    let prod_metadata = BTreeMap::from([("env".to_string(), "prod".to_string())]);
    let prod = flux_event(
        "apps",
        "error",
        "HealthCheckFailed",
        "health check failed after 30.0058s: timeout waiting for: [Deployment/prod/svc-0007 status: 'InProgress']",
        &revision,
        "2026-08-01T12:00:00Z",
        &prod_metadata,
    );
    flux(addr, &prod, 200).await;
    assert_eq!(deployment(&server, "svc-0007", "prod").await.0, "failed");
    assert_eq!(
        deployment(&server, "svc-0007", "staging").await.0,
        "deployed"
    );
    // `environment` says the same; an environment this server lacks is
    // refused, naming the ones it has.
    let qa = flux_event(
        "apps",
        "info",
        "ReconciliationSucceeded",
        "Reconciliation finished in 1.63s, next run in 10m0s",
        &revision,
        "2026-08-01T12:01:00Z",
        &BTreeMap::from([("environment".to_string(), "qa".to_string())]),
    );
    let text = flux(addr, &qa, 422).await;
    assert!(text.contains("dev, staging, prod"), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn argo_cd_applications_per_service_do_not_overwrite_each_other() {
    let repo = fixture();
    let server = start(&repo).await;
    let addr = server.http_addr();
    for service in ["svc-0010", "svc-0011", "svc-0007"] {
        release_build(&server, service, "prod", 1).await;
    }
    let revision = repo.remote_head();
    let app = |name, health, sync, phase, message, now| Application {
        name,
        namespace: "argocd",
        revision: &revision,
        sync,
        health,
        phase,
        message,
        now,
    };
    // svc-0010's Application is Degraded; svc-0011's reports Healthy
    // after it (an ApplicationSet's names, one --deployment-sources entry).
    let degraded = app(
        "svc-0010-prod",
        "Degraded",
        "Synced",
        Some("Succeeded"),
        "successfully synced (all tasks run)",
        "2026-08-01T13:00:00.000000001Z",
    );
    let (code, text) = argocd(addr, &degraded).await;
    assert_eq!(code, 200, "{text}");
    let healthy = app(
        "svc-0011-prod",
        "Healthy",
        "Synced",
        Some("Succeeded"),
        "successfully synced (all tasks run)",
        "2026-08-01T13:00:00.000000002Z",
    );
    let (code, text) = argocd(addr, &healthy).await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(deployment(&server, "svc-0010", "prod").await.0, "failed");
    assert_eq!(deployment(&server, "svc-0011", "prod").await.0, "deployed");
    assert_eq!(deployment(&server, "svc-0007", "prod").await.0, "pending");

    // A first sync: health Missing while the operation runs its hooks is
    // progress, not a failure; Missing once the sync finished is one.
    let first_sync = app(
        "svc-0007-prod",
        "Missing",
        "OutOfSync",
        Some("Running"),
        "waiting for completion of hook batch/Job/svc-0007-migrate",
        "2026-08-01T13:01:00.000000000Z",
    );
    let (code, text) = argocd(addr, &first_sync).await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(
        deployment(&server, "svc-0007", "prod").await,
        (
            "progressing".into(),
            "waiting for completion of hook batch/Job/svc-0007-migrate".into(),
            revision.clone()
        )
    );
    let gone = app(
        "svc-0007-prod",
        "Missing",
        "OutOfSync",
        Some("Succeeded"),
        "successfully synced (all tasks run)",
        "2026-08-01T13:02:00.000000000Z",
    );
    let (code, text) = argocd(addr, &gone).await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(deployment(&server, "svc-0007", "prod").await.0, "failed");

    // A multi-source Application has no single revision: 2xx, saying so,
    // and nothing changes.
    let mut multi = app(
        "svc-0011-prod",
        "Degraded",
        "Synced",
        Some("Failed"),
        "one or more objects failed to apply",
        "2026-08-01T13:03:00.000000000Z",
    );
    multi.revision = "";
    let (code, text) = argocd(addr, &multi).await;
    assert_eq!(code, 202, "{text}");
    assert!(text.contains("multi-source"), "{text}");
    assert_eq!(deployment(&server, "svc-0011", "prod").await.0, "deployed");
    // An Application nothing maps: 2xx, nothing changes.
    let unmapped = app(
        "monitoring",
        "Degraded",
        "Synced",
        None,
        "",
        "2026-08-01T13:04:00.000000000Z",
    );
    let (code, text) = argocd(addr, &unmapped).await;
    assert_eq!(code, 202, "{text}");
    server.stop().await;
}

#[tokio::test]
async fn a_plain_report_with_a_service_touches_that_service_only() {
    let repo = fixture();
    let server = start(&repo).await;
    let addr = server.http_addr();
    for service in ["svc-0007", "svc-0008", "svc-0009"] {
        release_build(&server, service, "staging", 1).await;
    }
    let revision = repo.remote_head();
    let body = serde_json::json!({"environment": "staging", "revision": revision, "state": "failed",
                                  "message": "smoke test failed", "source": "smoke", "service": "svc-0008"})
    .to_string();
    let (code, text) = post_signed(addr, "/webhook/deployment", &body).await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(deployment(&server, "svc-0008", "staging").await.0, "failed");
    assert_eq!(
        deployment(&server, "svc-0007", "staging").await.0,
        "pending"
    );
    assert_eq!(
        deployment(&server, "svc-0009", "staging").await.0,
        "pending"
    );

    // The same over gRPC, with the namespace.
    let mut client = server.client().await;
    let answer = client
        .report_deployment(pb::ReportDeploymentRequest {
            environment: "staging".into(),
            revision: revision.clone(),
            state: pb::DeploymentState::Deployed as i32,
            source: "deploy-bot".into(),
            service: "svc-0009".into(),
            namespace: "staging".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.covered.len(), 1);
    assert_eq!(answer.covered[0].service, "svc-0009");
    assert_eq!(
        deployment(&server, "svc-0009", "staging").await.0,
        "deployed"
    );
    assert_eq!(
        deployment(&server, "svc-0007", "staging").await.0,
        "pending"
    );
    // A service without a release there, or another namespace: NOT_FOUND.
    for (service, namespace) in [("svc-0010", ""), ("svc-0009", "edge")] {
        let refused = client
            .report_deployment(pb::ReportDeploymentRequest {
                environment: "staging".into(),
                revision: revision.clone(),
                state: pb::DeploymentState::Failed as i32,
                service: service.into(),
                namespace: namespace.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::NotFound, "{refused:?}");
        assert_eq!(error_info(&refused).unwrap().0, "RELEASE_NOT_FOUND");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_replayed_older_signed_report_changes_nothing() {
    let repo = fixture();
    let server = start(&repo).await;
    let addr = server.http_addr();
    release_build(&server, "svc-0009", "dev", 1).await;
    let revision = repo.remote_head();
    // A failure, captured on the way, then the success that followed.
    let captured = flux_health_check_failed(
        "apps-dev",
        &["Deployment/dev/svc-0009"],
        &revision,
        "2026-08-01T14:00:00Z",
    );
    let captured_signature = signature(SECRET, captured.as_bytes());
    flux(addr, &captured, 200).await;
    assert_eq!(deployment(&server, "svc-0009", "dev").await.0, "failed");
    flux(
        addr,
        &flux_succeeded("apps-dev", &revision, "2026-08-01T14:05:00Z"),
        200,
    )
    .await;
    assert_eq!(deployment(&server, "svc-0009", "dev").await.0, "deployed");

    // The captured body again, correctly signed: older, so nothing.
    let (code, text) = post(
        addr,
        "/webhook/flux",
        &[("X-Signature", captured_signature)],
        &captured,
    )
    .await;
    assert_eq!(code, 200, "{text}");
    assert!(
        text.contains("older than what is known, not taken for svc-0009"),
        "{text}"
    );
    assert_eq!(deployment(&server, "svc-0009", "dev").await.0, "deployed");

    // Without times, the revision's place orders plain reports: a report on
    // an earlier commit that holds the same release is older.
    release_build(&server, "svc-0008", "dev", 1).await;
    let later = repo.remote_head();
    let plain = |revision: &str, state: &str| {
        serde_json::json!({"environment": "dev", "revision": revision, "state": state, "service": "svc-0009"})
            .to_string()
    };
    let (code, _) = post_signed(addr, "/webhook/deployment", &plain(&later, "failed")).await;
    assert_eq!(code, 200);
    let (code, text) =
        post_signed(addr, "/webhook/deployment", &plain(&revision, "succeeded")).await;
    assert_eq!(code, 200);
    assert!(text.contains("older"), "{text}");
    assert_eq!(deployment(&server, "svc-0009", "dev").await.0, "failed");
    server.stop().await;
}

#[tokio::test]
async fn wait_on_a_server_that_takes_no_reports_ends_at_once_with_exit_4() {
    let repo = fixture();
    // A hamctl token, no artifact token, no webhook secret: nobody can
    // report.
    let server = TestServer::start_with(&repo.remote, |config| {
        config.auth.unauthenticated = false;
        config.auth.hamctl_token = Some("ops".into());
    })
    .await;
    let began = Instant::now();
    let run = Cli::hamctl()
        .env("HAMCTL_AUTH_TOKEN", "ops")
        .run(&[
            "--server",
            &server.url,
            "release",
            "--service",
            "svc-0007",
            "--env",
            "dev",
            "--branch",
            "master",
            "--wait",
        ])
        .await;
    let took = began.elapsed();
    assert_eq!(run.code, 4, "{}", run.err);
    assert!(
        run.err.contains("this server takes no deployment reports"),
        "{}",
        run.err
    );
    println!("--wait on a server without reports ended after {took:?} (its timeout is 10 min)");
    assert!(
        took < Duration::from_secs(60),
        "it did not wait out its timeout"
    );
    let out = Cli::hamctl()
        .env("HAMCTL_AUTH_TOKEN", "ops")
        .run(&["--server", &server.url, "status", "--service", "svc-0007"])
        .await;
    assert_eq!(out.code, 0, "{}", out.err);
    assert!(out.out.contains("not reported"), "{}", out.out);
    server.stop().await;
}

#[tokio::test]
async fn the_routes_need_the_secret_and_count_what_they_take() {
    let repo = fixture();
    let server = start(&repo).await;
    let addr = server.http_addr();
    let revision = release_build(&server, "svc-0007", "dev", 1).await;
    let failing = flux_health_check_failed(
        "apps-dev",
        &["Deployment/dev/svc-0007"],
        &revision,
        "2026-08-01T15:00:00Z",
    );
    for headers in [
        vec![],
        vec![("X-Signature", "sha256=00".to_string())],
        vec![("Authorization", "Bearer nope".to_string())],
    ] {
        let (code, text) = post(addr, "/webhook/flux", &headers, &failing).await;
        assert_eq!(code, 401, "{headers:?}: {text}");
    }
    assert_eq!(deployment(&server, "svc-0007", "dev").await.0, "pending");
    // Flux's generic provider with the secret as a bearer header.
    let (code, text) = post(
        addr,
        "/webhook/flux",
        &[("Authorization", format!("Bearer {SECRET}"))],
        &failing,
    )
    .await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(deployment(&server, "svc-0007", "dev").await.0, "failed");
    // A commit nobody has: 422.
    let unknown = flux_succeeded(
        "apps-dev",
        "0123456789abcdef0123456789abcdef01234567",
        "2026-08-01T15:01:00Z",
    );
    let text = flux(addr, &unknown, 422).await;
    assert!(text.contains("not in the config repository"), "{text}");
    let metrics = http::get(addr, "/metrics").await.text();
    for line in [
        "release_manager_deployment_reports_total{state=\"failed\"} 1",
        "release_manager_deployment_reports_total{state=\"deployed\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }

    // Without the secret configured, every route refuses.
    let closed = TestServer::start_with(&repo.remote, |config| {
        config.http_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let body =
        serde_json::json!({"environment": "dev", "revision": revision, "state": "succeeded"})
            .to_string();
    for path in ["/webhook/flux", "/webhook/argocd", "/webhook/deployment"] {
        let (code, text) = post(
            closed.http_addr(),
            path,
            &[("Authorization", "Bearer anything".into())],
            &body,
        )
        .await;
        assert_eq!(code, 401, "{path}: {text}");
        assert!(text.contains("--deployment-webhook-secret"), "{text}");
    }
    closed.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn the_states_outlive_the_process_and_its_data_dir() {
    let repo = fixture();
    let server = start(&repo).await;
    let addr = server.http_addr();
    release_build(&server, "svc-0007", "dev", 1).await;
    release_build(&server, "svc-0008", "dev", 1).await;
    let revision = repo.remote_head();
    flux(
        addr,
        &flux_succeeded("apps-dev", &revision, "2026-08-01T16:00:00Z"),
        200,
    )
    .await;
    flux(
        addr,
        &flux_health_check_failed(
            "apps-dev",
            &["Deployment/dev/svc-0008"],
            &revision,
            "2026-08-01T16:01:00Z",
        ),
        200,
    )
    .await;
    let data = server.stop().await;
    // A restart on the same data dir.
    let server = start_with(&repo, data, "dev=flux-system/apps-dev").await;
    assert_eq!(deployment(&server, "svc-0007", "dev").await.0, "deployed");
    assert_eq!(deployment(&server, "svc-0008", "dev").await.0, "failed");
    server.stop().await;
    // A new data dir: the states are read back from the remote, which
    // holds them on a ref outside the branch.
    let server = start_with(
        &repo,
        tempfile::tempdir().unwrap(),
        "dev=flux-system/apps-dev",
    )
    .await;
    assert_eq!(deployment(&server, "svc-0007", "dev").await.0, "deployed");
    assert_eq!(deployment(&server, "svc-0008", "dev").await.0, "failed");
    let refs = repo.remote_git(&["for-each-ref", "--format=%(refname)"]);
    assert!(refs.contains("refs/release-manager/deployments"), "{refs}");
    let record = repo.remote_git(&[
        "ls-tree",
        "-r",
        "--name-only",
        "refs/release-manager/deployments",
    ]);
    assert!(record.contains("services/dev/svc-0008.json"), "{record}");
    server.stop().await;
}

#[tokio::test]
async fn the_controllers_page_configures_what_the_tests_send() {
    // The Flux Provider signs the body (generic-hmac): what `post_signed`
    // sends; its Alert names the Kustomization the tests post for, and
    // carries the environment the metadata test reads.
    let alert = controllers::flux_alert();
    assert_eq!(alert["spec"]["eventSources"][0]["kind"], "Kustomization");
    assert_eq!(alert["spec"]["eventSources"][0]["name"], "apps");
    let page = controllers::controllers_page();
    assert!(page.contains("type: generic-hmac"), "the Provider signs");
    // Every --deployment-sources the page shows is one the server takes.
    let examples: Vec<&str> = page
        .split("--deployment-sources ")
        .skip(1)
        .filter_map(|rest| rest.split(['`', ' ', '\n']).next())
        .map(|value| value.trim_matches('\''))
        .filter(|value| value.contains('='))
        .collect();
    assert!(examples.len() >= 3, "{examples:?}");
    for example in examples {
        assert!(DeploymentSources::parse(example).is_ok(), "{example}");
    }
    // The Argo CD template renders to the body the route reads (the other
    // tests post it).
    let body = controllers::argocd_body(&Application {
        name: "svc-0007-prod",
        namespace: "argocd",
        revision: "0123456789abcdef0123456789abcdef01234567",
        sync: "Synced",
        health: "Healthy",
        phase: Some("Succeeded"),
        message: "successfully synced (all tasks run)",
        now: "2026-08-01T13:00:00.000000000Z",
    });
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    for key in [
        "application",
        "namespace",
        "revision",
        "sync",
        "health",
        "phase",
        "message",
        "time",
    ] {
        assert!(body.get(key).is_some(), "{key} in {body}");
    }
}
