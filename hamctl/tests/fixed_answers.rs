//! hamctl's output for answers only a scripted server can give: tables and
//! event lines with fixed times, an artifact list that is empty, event
//! streams that end or never do. The scripted server answers the reads
//! with fixed data and records what hamctl asked; it has no release or
//! policy logic (the end-to-end tests run hamctl against the real server
//! for that). hamctl runs as the real binary, with its environment given.

#[path = "../../tests/e2e/support/cli.rs"]
mod cli;
#[path = "../../tests/e2e/support/process.rs"]
mod process;

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use release_manager::pb::release_service_server::{ReleaseService, ReleaseServiceServer};
use release_manager::pb::watch_events_response::Event;
use release_manager::pb::{
    ArtifactSummary, DescribeArtifactRequest, DescribeArtifactResponse, DescribeReleaseRequest,
    DescribeReleaseResponse, EnvironmentStatus, ListServicesRequest, ListServicesResponse, Outcome,
    Person, PolicyChanged, PromoteRequest, PromoteResponse, PushArtifactRequest,
    PushArtifactResponse, ReleaseIntent, ReleaseRecord, ReleaseRequest, ReleaseResponse,
    ReleaseResult, ReportDeploymentRequest, ReportDeploymentResponse, RollbackRequest,
    RollbackResponse, StatusRequest, StatusResponse, Vulnerabilities, WatchEventsRequest,
    WatchEventsResponse,
};
use tonic::codegen::tokio_stream::{self, Stream, StreamExt};
use tonic::{Request, Response, Status};

use cli::{Cli, CliOutput};

const TOKEN: &str = "s3cret";

/// The scripted server: fixed answers to the reads, and the watch requests
/// it got.
#[derive(Clone, Default)]
struct ScriptedServer {
    watches: Arc<Mutex<Vec<WatchEventsRequest>>>,
}

fn check_token<T>(request: &Request<T>) -> Result<(), Status> {
    let expected = format!("Bearer {TOKEN}");
    match request.metadata().get("authorization") {
        Some(value) if value.to_str().ok() == Some(expected.as_str()) => Ok(()),
        Some(_) => Err(Status::unauthenticated("wrong token")),
        None => Err(Status::unauthenticated("missing token")),
    }
}

/// 2024-05-01 12:34:56 UTC.
fn time() -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: 1_714_566_896,
        nanos: 0,
    })
}

fn person(name: &str, email: &str) -> Option<Person> {
    Some(Person {
        name: name.into(),
        email: email.into(),
    })
}

fn scripted_only() -> Status {
    Status::unimplemented("the scripted server answers reads only")
}

#[tonic::codegen::async_trait]
impl ReleaseService for ScriptedServer {
    async fn release(
        &self,
        _: Request<ReleaseRequest>,
    ) -> Result<Response<ReleaseResponse>, Status> {
        Err(scripted_only())
    }

    async fn promote(
        &self,
        _: Request<PromoteRequest>,
    ) -> Result<Response<PromoteResponse>, Status> {
        Err(scripted_only())
    }

    async fn rollback(
        &self,
        _: Request<RollbackRequest>,
    ) -> Result<Response<RollbackResponse>, Status> {
        Err(scripted_only())
    }

    async fn push_artifact(
        &self,
        _: Request<tonic::Streaming<PushArtifactRequest>>,
    ) -> Result<Response<PushArtifactResponse>, Status> {
        Err(scripted_only())
    }

    async fn report_deployment(
        &self,
        _: Request<ReportDeploymentRequest>,
    ) -> Result<Response<ReportDeploymentResponse>, Status> {
        Err(scripted_only())
    }

    async fn list_services(
        &self,
        _: Request<ListServicesRequest>,
    ) -> Result<Response<ListServicesResponse>, Status> {
        Err(scripted_only())
    }

    async fn compare_environments(
        &self,
        _: Request<release_manager::pb::CompareEnvironmentsRequest>,
    ) -> Result<Response<release_manager::pb::CompareEnvironmentsResponse>, Status> {
        Err(scripted_only())
    }

    /// One environment running a build released at a fixed time, one
    /// running nothing.
    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        check_token(&request)?;
        let request = request.into_inner();
        let artifact = ArtifactSummary {
            artifact_id: "master-abc123".into(),
            service: request.service.clone(),
            branch: "master".into(),
            author: person("Jane Doe", "jane@example.com"),
            vulnerabilities: Some(Vulnerabilities {
                high: 1,
                medium: 2,
                low: 3,
            }),
            build_date: time(),
            ..Default::default()
        };
        Ok(Response::new(StatusResponse {
            service: request.service,
            environments: vec![
                EnvironmentStatus {
                    environment: "dev".into(),
                    namespace: "dev".into(),
                    artifact: Some(artifact),
                    released_at: time(),
                    released_by: person("Ops Bot", "ops@example.com"),
                    release_commit_sha: "1a2b3c4d".into(),
                    deployment: None,
                    namespaces: Vec::new(),
                    reconciliation_errors: Vec::new(),
                },
                EnvironmentStatus {
                    environment: "prod".into(),
                    namespace: "prod".into(),
                    ..Default::default()
                },
            ],
        }))
    }

    /// As many releases as asked for, all at the fixed time.
    async fn describe_release(
        &self,
        request: Request<DescribeReleaseRequest>,
    ) -> Result<Response<DescribeReleaseResponse>, Status> {
        check_token(&request)?;
        let request = request.into_inner();
        let releases = (0..request.page_size.max(1))
            .map(|n| ReleaseRecord {
                artifact_id: format!("master-{n}"),
                namespace: request.environment.clone(),
                intent: ReleaseIntent::Promote.into(),
                released_at: time(),
                released_by: person("Ops Bot", "ops@example.com"),
                author: person("Jane Doe", "jane@example.com"),
                commit_sha: "abcdef0123456789".into(),
                title: "[prod/product-api] release".into(),
                edited_by: None,
            })
            .collect();
        Ok(Response::new(DescribeReleaseResponse {
            service: request.service,
            environment: request.environment,
            releases,
            next_page_token: String::new(),
        }))
    }

    /// No builds at all (a real server says NOT_FOUND for a branch without
    /// builds; hamctl still says something sensible for an empty list).
    async fn describe_artifact(
        &self,
        request: Request<DescribeArtifactRequest>,
    ) -> Result<Response<DescribeArtifactResponse>, Status> {
        check_token(&request)?;
        let request = request.into_inner();
        Ok(Response::new(DescribeArtifactResponse {
            service: request.service,
            artifacts: Vec::new(),
            next_page_token: String::new(),
        }))
    }

    type WatchEventsStream =
        Pin<Box<dyn Stream<Item = Result<WatchEventsResponse, Status>> + Send + 'static>>;

    /// Three events at the fixed time (build, release, policy change), then
    /// the end of the stream; for service "endless" the stream stays open
    /// after them.
    async fn watch_events(
        &self,
        request: Request<WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        check_token(&request)?;
        let request = request.into_inner();
        self.watches.lock().expect("lock").push(request.clone());
        let service = if request.service.is_empty() {
            "shop".to_owned()
        } else {
            request.service.clone()
        };
        let event = |event: Event| {
            Ok(WatchEventsResponse {
                commit_sha: "fedcba9876543210".into(),
                time: time(),
                event: Some(event),
                cursor: "fedcba9876543210.0".into(),
            })
        };
        let release = ReleaseResult {
            outcome: Outcome::Applied.into(),
            service: service.clone(),
            environment: "dev".into(),
            namespace: "dev".into(),
            artifact_id: "master-abc".into(),
            branch: "master".into(),
            commit_sha: "1a2b3c4d5e6f7a8b9c0d".into(),
            intent: ReleaseIntent::AutoRelease.into(),
            replayed: false,
        };
        let events = vec![
            event(Event::BuildAdded(ArtifactSummary {
                artifact_id: "master-abc".into(),
                service: service.clone(),
                branch: "master".into(),
                author: person("Dana Dev", "dana@example.com"),
                ..Default::default()
            })),
            event(Event::Released(release)),
            event(Event::PolicyChanged(PolicyChanged {
                service: service.clone(),
                title: format!("[{service}] policy update: auto-release master to dev"),
            })),
        ];
        let stream: Self::WatchEventsStream = if service == "endless" {
            Box::pin(tokio_stream::iter(events).chain(tokio_stream::pending()))
        } else {
            Box::pin(tokio_stream::iter(events))
        };
        Ok(Response::new(stream))
    }
}

/// The scripted server on a loopback port, serving until the test ends;
/// its address as people type it (a bare host:port).
async fn serve() -> (ScriptedServer, String) {
    let scripted = ScriptedServer::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ReleaseServiceServer::new(scripted.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (scripted, address.to_string())
}

/// hamctl, the binary cargo built for these tests.
fn hamctl_cli() -> Cli {
    Cli::hamctl_at(env!("CARGO_BIN_EXE_hamctl").into())
}

/// Runs hamctl against `server` with the token.
async fn hamctl(server: &str, args: &[&str]) -> CliOutput {
    let mut argv = vec!["--server", server, "--auth-token", TOKEN];
    argv.extend_from_slice(args);
    hamctl_cli().run(&argv).await
}

#[tokio::test]
async fn status_prints_a_table_with_the_times_in_utc() {
    let (_, server) = serve().await;
    // Global flags after the command; no colour into a pipe.
    let run = hamctl(&server, &["status", "--service", "product-api"]).await;
    assert_eq!(run.code, 0, "{}", run.err);
    assert_eq!(
        run.out,
        "\
ENV    ARTIFACT        BRANCH   AUTHOR     RELEASED               BY        VULNS(h/m/l)
dev    master-abc123   master   Jane Doe   2024-05-01 12:34 UTC   Ops Bot   1/2/3
prod   -               -        -          -                      -         -
"
    );
}

#[tokio::test]
async fn status_as_json_has_rfc3339_times_and_null_for_nothing() {
    let (_, server) = serve().await;
    let run = hamctl(
        &server,
        &["status", "--service", "product-api", "--output", "json"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.err);
    let value: serde_json::Value = serde_json::from_str(&run.out).expect("json");
    assert_eq!(
        value["environments"][0]["releasedAt"],
        "2024-05-01T12:34:56Z"
    );
    assert_eq!(
        value["environments"][1]["artifact"],
        serde_json::Value::Null
    );
}

#[tokio::test]
async fn describe_release_lists_as_many_as_count_asks_for() {
    let (_, server) = serve().await;
    let run = hamctl(
        &server,
        &[
            "describe",
            "release",
            "--service",
            "product-api",
            "--env",
            "prod",
            "--count",
            "2",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.err);
    assert_eq!(run.out.lines().count(), 3, "{}", run.out);
    assert!(
        run.out.starts_with("ARTIFACT   INTENT    RELEASED AT"),
        "{}",
        run.out
    );
}

#[tokio::test]
async fn describe_artifact_without_builds_says_so() {
    let (_, server) = serve().await;
    let run = hamctl(
        &server,
        &[
            "describe",
            "artifact",
            "--service",
            "product-api",
            "--branch",
            "feature/x",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.err);
    assert_eq!(run.out, "No builds of product-api on branch feature/x\n");
}

#[tokio::test]
async fn watch_prints_one_line_per_event_and_fails_when_the_stream_ends() {
    let (_, server) = serve().await;
    // The server ends the stream after three events: the watch says so on
    // stderr and fails, so a script notices that it is no longer watching.
    let run = hamctl(&server, &["watch"]).await;
    assert_eq!(run.code, 1, "{}", run.err);
    assert_eq!(
        run.err,
        "error: the server ended the event stream (it is stopping or restarting); \
         pass --reconnect to keep watching\n"
    );
    assert_eq!(
        run.out,
        "\
2024-05-01 12:34:56 UTC  build    shop  master-abc (branch master) by Dana Dev
2024-05-01 12:34:56 UTC  released shop  master-abc to dev (namespace dev, auto-release) commit 1a2b3c4
2024-05-01 12:34:56 UTC  policy   shop  [shop] policy update: auto-release master to dev
"
    );
}

#[tokio::test]
async fn watch_with_max_events_stops_after_them_and_prints_json_lines() {
    let (scripted, server) = serve().await;
    // A stream that stays open: the hidden --max-events ends the watch.
    let run = hamctl(
        &server,
        &[
            "watch",
            "--service",
            "endless",
            "--env",
            "dev",
            "--output",
            "json",
            "--max-events",
            "2",
        ],
    )
    .await;
    assert_eq!((run.code, run.err.as_str()), (0, ""));
    let lines: Vec<serde_json::Value> = run
        .out
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2, "{}", run.out);
    // Each line is the API's JSON of one WatchEventsResponse.
    assert!(lines[0].get("buildAdded").is_some(), "{}", run.out);
    assert_eq!(lines[1]["released"]["environment"], "dev");
    let watches = scripted.watches.lock().expect("lock");
    let request = watches.last().expect("a watch request");
    assert_eq!(
        (request.service.as_str(), request.environment.as_str()),
        ("endless", "dev")
    );
}

#[tokio::test]
async fn a_closed_stdout_ends_an_open_ended_watch_quietly() {
    let (_, server) = serve().await;
    let (code, err) = tokio::time::timeout(
        Duration::from_secs(30),
        hamctl_cli().run_with_closed_stdout(&[
            "--server",
            &server,
            "--auth-token",
            TOKEN,
            "watch",
            "--service",
            "endless",
        ]),
    )
    .await
    .expect("a broken pipe stops the watch");
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "{err}");
}
