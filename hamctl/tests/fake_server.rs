//! hamctl against a scripted in-process gRPC server: checks what goes over
//! the wire (token, committer, request id, fields) and what hamctl prints
//! for the replies, through the public `run_with_output` entry point.
//!
//! It does not test release semantics; the end-to-end tests in the
//! workspace's `tests/` run hamctl against the real server for that.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use release_manager::pb::policy_service_server::{PolicyService, PolicyServiceServer};
use release_manager::pb::release_request::Source;
use release_manager::pb::release_service_server::{ReleaseService, ReleaseServiceServer};
use release_manager::pb::watch_events_response::Event;
use release_manager::pb::{
    ApplyAutoReleaseRequest, ApplyAutoReleaseResponse, ApplyBranchRestrictionRequest,
    ApplyBranchRestrictionResponse, ArtifactSummary, AutoReleasePolicy, BranchRestrictionPolicy,
    DeletePoliciesRequest, DeletePoliciesResponse, DescribeArtifactRequest,
    DescribeArtifactResponse, DescribeReleaseRequest, DescribeReleaseResponse, EnvironmentStatus,
    ListPoliciesRequest, ListPoliciesResponse, ListServicesRequest, ListServicesResponse, Outcome,
    Person, PolicyChanged, PromoteRequest, PromoteResponse, PushArtifactRequest,
    PushArtifactResponse, ReleaseIntent, ReleaseRecord, ReleaseRequest, ReleaseResponse,
    ReleaseResult, RollbackRequest, RollbackResponse, ServiceSummary, StatusRequest,
    StatusResponse, Vulnerabilities, WatchEventsRequest, WatchEventsResponse,
};
use tonic::codegen::tokio_stream::{self, Stream, StreamExt};
use tonic::{Request, Response, Status};

const TOKEN: &str = "s3cret";

/// What the fake saw, for assertions.
#[derive(Debug, Default)]
struct Seen {
    releases: Vec<ReleaseRequest>,
    promotes: Vec<PromoteRequest>,
    rollbacks: Vec<RollbackRequest>,
    watches: Vec<WatchEventsRequest>,
    auto_releases: Vec<ApplyAutoReleaseRequest>,
    restrictions: Vec<ApplyBranchRestrictionRequest>,
    deletes: Vec<DeletePoliciesRequest>,
}

#[derive(Clone, Default)]
struct FakeReleaseService {
    seen: Arc<Mutex<Seen>>,
}

/// Shares `Seen` with the release fake.
#[derive(Clone, Default)]
struct FakePolicyService {
    seen: Arc<Mutex<Seen>>,
}

fn check_token<T>(request: &Request<T>) -> Result<(), Status> {
    let expected = format!("Bearer {TOKEN}");
    match request.metadata().get("authorization") {
        Some(value) if value.to_str().ok() == Some(expected.as_str()) => Ok(()),
        Some(_) => Err(Status::unauthenticated("wrong token")),
        None => Err(Status::unauthenticated("missing token")),
    }
}

fn result(request_service: &str, env: &str, artifact: &str, outcome: Outcome) -> ReleaseResult {
    ReleaseResult {
        outcome: outcome.into(),
        service: request_service.into(),
        environment: env.into(),
        namespace: env.into(),
        artifact_id: artifact.into(),
        branch: "master".into(),
        commit_sha: "1a2b3c4d5e6f7a8b9c0d".into(),
        intent: ReleaseIntent::ReleaseBranch.into(),
        replayed: false,
    }
}

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

#[tonic::codegen::async_trait]
impl ReleaseService for FakeReleaseService {
    async fn release(
        &self,
        request: Request<ReleaseRequest>,
    ) -> Result<Response<ReleaseResponse>, Status> {
        check_token(&request)?;
        let request = request.into_inner();
        self.seen
            .lock()
            .expect("lock")
            .releases
            .push(request.clone());
        let (branch, artifact_id) = match &request.source {
            Some(Source::Branch(branch)) => (branch.clone(), String::new()),
            Some(Source::ArtifactId(id)) => (String::new(), id.clone()),
            None => (String::new(), String::new()),
        };
        if request.service == "missing" {
            return Err(Status::not_found(format!(
                "no build of branch \"{branch}\" for service \"missing\""
            )));
        }
        let (artifact, outcome) = if artifact_id.is_empty() {
            ("master-abc123".to_owned(), Outcome::Applied)
        } else {
            (artifact_id, Outcome::AlreadyUpToDate)
        };
        Ok(Response::new(ReleaseResponse {
            result: Some(result(
                &request.service,
                &request.environment,
                &artifact,
                outcome,
            )),
        }))
    }

    async fn promote(
        &self,
        request: Request<PromoteRequest>,
    ) -> Result<Response<PromoteResponse>, Status> {
        check_token(&request)?;
        let request = request.into_inner();
        self.seen
            .lock()
            .expect("lock")
            .promotes
            .push(request.clone());
        Ok(Response::new(PromoteResponse {
            result: Some(result(
                &request.service,
                &request.environment,
                "master-abc123",
                Outcome::Applied,
            )),
            from_environment: "dev".into(),
        }))
    }

    async fn rollback(
        &self,
        request: Request<RollbackRequest>,
    ) -> Result<Response<RollbackResponse>, Status> {
        check_token(&request)?;
        let request = request.into_inner();
        self.seen
            .lock()
            .expect("lock")
            .rollbacks
            .push(request.clone());
        Ok(Response::new(RollbackResponse {
            result: Some(result(
                &request.service,
                &request.environment,
                "master-old",
                Outcome::Applied,
            )),
            previous_artifact_id: "master-new".into(),
        }))
    }

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
                },
                EnvironmentStatus {
                    environment: "prod".into(),
                    namespace: "prod".into(),
                    ..Default::default()
                },
            ],
        }))
    }

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
            })
            .collect();
        Ok(Response::new(DescribeReleaseResponse {
            service: request.service,
            environment: request.environment,
            releases,
            next_page_token: String::new(),
        }))
    }

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

    async fn push_artifact(
        &self,
        _request: Request<tonic::Streaming<PushArtifactRequest>>,
    ) -> Result<Response<PushArtifactResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn report_deployment(
        &self,
        _: Request<release_manager::pb::ReportDeploymentRequest>,
    ) -> Result<Response<release_manager::pb::ReportDeploymentResponse>, Status> {
        Err(Status::unimplemented("hamctl never reports deployments"))
    }

    async fn list_services(
        &self,
        request: Request<ListServicesRequest>,
    ) -> Result<Response<ListServicesResponse>, Status> {
        check_token(&request)?;
        Ok(Response::new(ListServicesResponse {
            services: vec![ServiceSummary {
                name: "shop".into(),
                environments: vec!["dev".into()],
                branches: vec!["master".into()],
            }],
        }))
    }

    type WatchEventsStream =
        Pin<Box<dyn Stream<Item = Result<WatchEventsResponse, Status>> + Send + 'static>>;

    /// Three events (build, release, policy change), then the end of the
    /// stream; for service "endless" the stream stays open after them.
    async fn watch_events(
        &self,
        request: Request<WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        check_token(&request)?;
        let request = request.into_inner();
        self.seen
            .lock()
            .expect("lock")
            .watches
            .push(request.clone());
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
        let mut release = result(&service, "dev", "master-abc", Outcome::Applied);
        release.intent = ReleaseIntent::AutoRelease.into();
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

#[tonic::codegen::async_trait]
impl PolicyService for FakePolicyService {
    /// "shop" has one auto-release and a server-wide restriction; any other
    /// service has none.
    async fn list_policies(
        &self,
        request: Request<ListPoliciesRequest>,
    ) -> Result<Response<ListPoliciesResponse>, Status> {
        check_token(&request)?;
        let request = request.into_inner();
        let mut response = ListPoliciesResponse {
            service: request.service.clone(),
            ..Default::default()
        };
        if request.service == "shop" {
            response.auto_releases.push(AutoReleasePolicy {
                id: "auto-release-master-dev".into(),
                branch: "master".into(),
                environment: "dev".into(),
            });
            response.branch_restrictions.push(BranchRestrictionPolicy {
                id: "branch-restriction-prod".into(),
                environment: "prod".into(),
                branch_regex: "^master$".into(),
                server_wide: true,
            });
        }
        Ok(Response::new(response))
    }

    /// Applied the first time, already up to date when repeated.
    async fn apply_auto_release(
        &self,
        request: Request<ApplyAutoReleaseRequest>,
    ) -> Result<Response<ApplyAutoReleaseResponse>, Status> {
        check_token(&request)?;
        let request = request.into_inner();
        let mut seen = self.seen.lock().expect("lock");
        let outcome = if seen.auto_releases.contains(&request) {
            Outcome::AlreadyUpToDate
        } else {
            Outcome::Applied
        };
        seen.auto_releases.push(request.clone());
        Ok(Response::new(ApplyAutoReleaseResponse {
            id: format!("auto-release-{}-{}", request.branch, request.environment),
            outcome: outcome.into(),
        }))
    }

    /// Applied the first time, already up to date when repeated.
    async fn apply_branch_restriction(
        &self,
        request: Request<ApplyBranchRestrictionRequest>,
    ) -> Result<Response<ApplyBranchRestrictionResponse>, Status> {
        check_token(&request)?;
        let request = request.into_inner();
        let mut seen = self.seen.lock().expect("lock");
        let outcome = if seen.restrictions.contains(&request) {
            Outcome::AlreadyUpToDate
        } else {
            Outcome::Applied
        };
        seen.restrictions.push(request.clone());
        Ok(Response::new(ApplyBranchRestrictionResponse {
            id: format!("branch-restriction-{}", request.environment),
            outcome: outcome.into(),
        }))
    }

    /// Deletes every id that starts with `auto-release-`.
    async fn delete_policies(
        &self,
        request: Request<DeletePoliciesRequest>,
    ) -> Result<Response<DeletePoliciesResponse>, Status> {
        check_token(&request)?;
        let request = request.into_inner();
        let deleted = request
            .ids
            .iter()
            .filter(|id| id.starts_with("auto-release-"))
            .count();
        self.seen
            .lock()
            .expect("lock")
            .deletes
            .push(request.clone());
        Ok(Response::new(DeletePoliciesResponse {
            deleted: u32::try_from(deleted).expect("few ids"),
        }))
    }
}

struct Captured {
    code: i32,
    out: String,
    err: String,
}

async fn hamctl(server: &str, args: &[&str]) -> Captured {
    let mut argv = vec!["hamctl", "--server", server, "--auth-token", TOKEN];
    argv.extend_from_slice(args);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = hamctl::run_with_output(argv, &mut out, &mut err).await;
    Captured {
        code,
        out: String::from_utf8(out).expect("utf-8 stdout"),
        err: String::from_utf8(err).expect("utf-8 stderr"),
    }
}

/// One test, so that the process environment (the committer identity) is
/// set once, before any thread could read it.
#[test]
fn hamctl_against_a_fake_server() {
    std::env::set_var("GIT_COMMITTER_NAME", "Jane Doe");
    std::env::set_var("GIT_COMMITTER_EMAIL", "jane@example.com");
    std::env::remove_var("HAMCTL_URL");
    std::env::remove_var("HAMCTL_AUTH_TOKEN");
    std::env::remove_var("NO_COLOR");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(scenarios());
}

async fn scenarios() {
    let fake = FakeReleaseService::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let service = ReleaseServiceServer::new(fake.clone());
    let policies = PolicyServiceServer::new(FakePolicyService {
        seen: fake.seen.clone(),
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .add_service(policies)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    // A bare host:port, as people type it.
    let server = address.to_string();

    // release --branch: the request carries committer, request id, fields.
    let run = hamctl(
        &server,
        &[
            "release",
            "--service",
            "product-api",
            "--env",
            "dev",
            "--branch",
            "master",
        ],
    )
    .await;
    assert_eq!((run.code, run.err.as_str()), (0, ""));
    assert_eq!(
        run.out,
        "Released master-abc123 of product-api to dev (namespace dev), commit 1a2b3c4\n"
    );
    {
        let seen = fake.seen.lock().expect("lock");
        let request = seen.releases.last().expect("a release request");
        assert_eq!(request.service, "product-api");
        assert_eq!(request.environment, "dev");
        assert_eq!(request.source, Some(Source::Branch("master".into())));
        assert_eq!(request.request_id.len(), 36, "{}", request.request_id);
        assert_eq!(
            request.committer,
            Some(Person {
                name: "Jane Doe".into(),
                email: "jane@example.com".into()
            })
        );
    }

    // release --artifact that already runs: no change.
    let run = hamctl(
        &server,
        &[
            "release",
            "--service",
            "product-api",
            "--env",
            "dev",
            "--artifact",
            "master-abc123",
            "--namespace",
            "dev",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.err);
    assert_eq!(
        run.out,
        "product-api in dev is already at master-abc123 (no change)\n"
    );

    // Every write gets its own request id.
    {
        let seen = fake.seen.lock().expect("lock");
        assert_ne!(seen.releases[0].request_id, seen.releases[1].request_id);
        assert_eq!(seen.releases[1].namespace, "dev");
    }

    // JSON output of a write.
    let run = hamctl(
        &server,
        &[
            "--output",
            "json",
            "release",
            "--service",
            "product-api",
            "--env",
            "dev",
            "--branch",
            "master",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.err);
    let value: serde_json::Value = serde_json::from_str(&run.out).expect("json");
    assert_eq!(value["result"]["outcome"], "applied");
    assert_eq!(value["result"]["artifactId"], "master-abc123");

    // Server errors: one line, code word, exit 1.
    let run = hamctl(
        &server,
        &[
            "release",
            "--service",
            "missing",
            "--env",
            "dev",
            "--branch",
            "x",
        ],
    )
    .await;
    assert_eq!(run.code, 1);
    assert_eq!(run.out, "");
    assert_eq!(
        run.err,
        "error: not found: no build of branch \"x\" for service \"missing\"\n"
    );

    // promote and rollback lines.
    let run = hamctl(
        &server,
        &["promote", "--service", "product-api", "--env", "staging"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.err);
    assert_eq!(
        run.out,
        "Promoted master-abc123 of product-api from dev to staging (namespace staging), commit 1a2b3c4\n"
    );
    assert_eq!(
        fake.seen.lock().expect("lock").promotes[0].environment,
        "staging"
    );

    let run = hamctl(
        &server,
        &[
            "rollback",
            "--service",
            "product-api",
            "--env",
            "prod",
            "--artifact",
            "master-old",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.err);
    assert_eq!(
        run.out,
        "Rolled back product-api in prod from master-new to master-old (namespace prod), commit 1a2b3c4\n"
    );
    assert_eq!(
        fake.seen.lock().expect("lock").rollbacks[0].artifact_id,
        "master-old"
    );

    // status table (no colour into a buffer), global flags after the command.
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
    let run = hamctl(
        &server,
        &["status", "--service", "product-api", "--output", "json"],
    )
    .await;
    let value: serde_json::Value = serde_json::from_str(&run.out).expect("json");
    assert_eq!(
        value["environments"][0]["releasedAt"],
        "2024-05-01T12:34:56Z"
    );
    assert_eq!(
        value["environments"][1]["artifact"],
        serde_json::Value::Null
    );

    // describe release honours --count; describe artifact with no builds.
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

    // A wrong token: the server's refusal, with a hint.
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = hamctl::run_with_output(
        [
            "hamctl",
            "status",
            "--service",
            "product-api",
            "--server",
            &format!("http://{server}"),
        ],
        &mut out,
        &mut err,
    )
    .await;
    assert_eq!(code, 1);
    assert_eq!(
        String::from_utf8(err).expect("utf-8"),
        "error: unauthenticated: missing token (pass --auth-token or set HAMCTL_AUTH_TOKEN)\n"
    );

    // A closed stdout is not an error.
    let mut closed = ClosedPipe;
    let mut err = Vec::new();
    let code = hamctl::run_with_output(
        [
            "hamctl",
            "--server",
            server.as_str(),
            "--auth-token",
            TOKEN,
            "status",
            "--service",
            "product-api",
        ],
        &mut closed,
        &mut err,
    )
    .await;
    assert_eq!(code, 0);
    assert!(err.is_empty());

    policy_scenarios(&server, &fake).await;
    watch_scenarios(&server, &fake).await;
}

async fn policy_scenarios(server: &str, fake: &FakeReleaseService) {
    // list: the table, with the server-wide restriction marked.
    let run = hamctl(server, &["policy", "--service", "shop", "list"]).await;
    assert_eq!((run.code, run.err.as_str()), (0, ""));
    assert_eq!(
        run.out,
        "\
ID                        TYPE                 BRANCH / REGEX   ENV    SCOPE
auto-release-master-dev   auto-release         master           dev    service
branch-restriction-prod   branch-restriction   ^master$         prod   server-wide
"
    );
    // --service after the subcommand, JSON output.
    let run = hamctl(
        server,
        &["policy", "list", "--service", "shop", "--output", "json"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.err);
    let value: serde_json::Value = serde_json::from_str(&run.out).expect("json");
    assert_eq!(value["branchRestrictions"][0]["serverWide"], true);
    assert_eq!(value["autoReleases"][0]["id"], "auto-release-master-dev");
    let run = hamctl(server, &["policy", "--service", "quiet", "list"]).await;
    assert_eq!(run.out, "No policies for quiet\n");
    // No --service: a usage error, before any call.
    let run = hamctl(server, &["policy", "list"]).await;
    assert_eq!(run.code, 2);
    assert!(run.err.contains("--service <SERVICE>"), "{}", run.err);

    // apply auto-release, then the same again: no change.
    let apply = [
        "policy",
        "--service",
        "shop",
        "apply",
        "auto-release",
        "--branch",
        "master",
        "--env",
        "dev",
    ];
    let run = hamctl(server, &apply).await;
    assert_eq!((run.code, run.err.as_str()), (0, ""));
    assert_eq!(
        run.out,
        "Applied auto-release-master-dev: every new build of master of shop is released to dev\n"
    );
    let run = hamctl(server, &apply).await;
    assert_eq!(
        run.out,
        "auto-release-master-dev is already in place (no change)\n"
    );
    {
        let seen = fake.seen.lock().expect("lock");
        let request = seen.auto_releases.last().expect("an apply request");
        assert_eq!(request.service, "shop");
        assert_eq!(
            request.committer,
            Some(Person {
                name: "Jane Doe".into(),
                email: "jane@example.com".into()
            })
        );
    }

    // apply branch-restriction.
    let run = hamctl(
        server,
        &[
            "policy",
            "--service",
            "shop",
            "apply",
            "branch-restriction",
            "--env",
            "prod",
            "--branch-regex",
            "^master$",
        ],
    )
    .await;
    assert_eq!((run.code, run.err.as_str()), (0, ""));
    assert_eq!(
        run.out,
        "Applied branch-restriction-prod: only branches matching ^master$ may be released to prod\n"
    );
    let run = hamctl(
        server,
        &[
            "--output",
            "json",
            "policy",
            "--service",
            "shop",
            "apply",
            "branch-restriction",
            "--env",
            "prod",
            "--branch-regex",
            "^master$",
        ],
    )
    .await;
    let value: serde_json::Value = serde_json::from_str(&run.out).expect("json");
    assert_eq!(value["outcome"], "already_up_to_date");
    assert_eq!(value["id"], "branch-restriction-prod");

    // delete: plural, singular, none.
    let delete = |ids: &'static [&'static str]| {
        let mut args = vec!["policy", "--service", "shop", "delete"];
        args.extend_from_slice(ids);
        args
    };
    let run = hamctl(
        server,
        &delete(&["auto-release-master-dev", "auto-release-x-staging"]),
    )
    .await;
    assert_eq!(
        (run.code, run.out.as_str()),
        (0, "Deleted 2 policies of shop\n")
    );
    let run = hamctl(server, &delete(&["auto-release-master-dev"])).await;
    assert_eq!(run.out, "Deleted 1 policy of shop\n");
    let run = hamctl(server, &delete(&["branch-restriction-prod"])).await;
    assert_eq!(run.out, "No policies deleted\n");
    {
        let seen = fake.seen.lock().expect("lock");
        let request = seen.deletes.first().expect("a delete request");
        assert_eq!(
            request.ids,
            ["auto-release-master-dev", "auto-release-x-staging"]
        );
        assert!(request.committer.is_some());
    }
}

async fn watch_scenarios(server: &str, fake: &FakeReleaseService) {
    // The server ends the stream after three events: the watch says so on
    // stderr and fails, so a script notices that it is no longer watching.
    let run = hamctl(server, &["watch"]).await;
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

    // A stream that stays open: the hidden --max-events ends the watch.
    let run = tokio::time::timeout(
        Duration::from_secs(30),
        hamctl(
            server,
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
        ),
    )
    .await
    .expect("--max-events stops the watch");
    assert_eq!((run.code, run.err.as_str()), (0, ""));
    let lines: Vec<serde_json::Value> = run
        .out
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2, "{}", run.out);
    assert_eq!(lines[0]["type"], "buildAdded");
    assert_eq!(lines[1]["type"], "released");
    assert_eq!(lines[1]["released"]["environment"], "dev");
    {
        let seen = fake.seen.lock().expect("lock");
        let request = seen.watches.last().expect("a watch request");
        assert_eq!(
            (request.service.as_str(), request.environment.as_str()),
            ("endless", "dev")
        );
    }

    // A closed stdout ends an open-ended watch quietly.
    let mut closed = ClosedPipe;
    let mut err = Vec::new();
    let code = tokio::time::timeout(
        Duration::from_secs(30),
        hamctl::run_with_output(
            [
                "hamctl",
                "--server",
                server,
                "--auth-token",
                TOKEN,
                "watch",
                "--service",
                "endless",
            ],
            &mut closed,
            &mut err,
        ),
    )
    .await
    .expect("a broken pipe stops the watch");
    assert_eq!(code, 0);
    assert!(err.is_empty());
}

/// A stdout whose reader went away, as with `hamctl status | head -0`.
struct ClosedPipe;

impl std::io::Write for ClosedPipe {
    fn write(&mut self, _buf: &[u8]) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::BrokenPipe.into())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Err(std::io::ErrorKind::BrokenPipe.into())
    }
}
