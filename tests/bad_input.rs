//! Bad input gets the status code of the spec and a message naming the
//! problem, and leaves the remote unchanged; tokens are enforced.

mod common;

use common::*;
use release_manager::pb;
use release_manager::pb::release_request::Source;
use tonic::Code;

fn fixture() -> ConfigRepo {
    let mut repo = ConfigRepo::new();
    repo.add_build("svc-a", "master", 1);
    repo.push();
    repo
}

#[tokio::test]
async fn bad_release_requests_are_refused_with_a_clear_message() {
    let repo = fixture();
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;
    let head = repo.remote_head();
    let long = "s".repeat(64);
    let long_branch = "b".repeat(201);
    let with = |f: &dyn Fn(&mut pb::ReleaseRequest)| {
        let mut r = release_branch("svc-a", "dev", "master");
        f(&mut r);
        r
    };
    let cases: Vec<(&str, pb::ReleaseRequest, Code, &str)> = vec![
        (
            "dotdot service",
            with(&|r| r.service = "..".into()),
            Code::InvalidArgument,
            "invalid service \"..\"",
        ),
        (
            "escaping service",
            with(&|r| r.service = "../svc-a".into()),
            Code::InvalidArgument,
            "must not contain \"..\"",
        ),
        (
            "absolute service",
            with(&|r| r.service = "/etc".into()),
            Code::InvalidArgument,
            "absolute",
        ),
        (
            "slash in service",
            with(&|r| r.service = "a/b".into()),
            Code::InvalidArgument,
            "'/'",
        ),
        (
            "empty service",
            with(&|r| r.service = String::new()),
            Code::InvalidArgument,
            "service: must not be empty",
        ),
        (
            "long service",
            with(&|r| r.service = long.clone()),
            Code::InvalidArgument,
            "at most 63",
        ),
        (
            "control char",
            with(&|r| r.service = "svc\u{1}".into()),
            Code::InvalidArgument,
            "control characters",
        ),
        (
            "unknown env",
            with(&|r| r.environment = "qa".into()),
            Code::InvalidArgument,
            "unknown environment \"qa\"; known environments: dev, staging, prod",
        ),
        (
            "escaping env",
            with(&|r| r.environment = "../dev".into()),
            Code::InvalidArgument,
            "invalid environment",
        ),
        (
            "escaping branch",
            with(&|r| r.source = Some(Source::Branch("../../etc".into()))),
            Code::InvalidArgument,
            "invalid branch",
        ),
        (
            "absolute branch",
            with(&|r| r.source = Some(Source::Branch("/master".into()))),
            Code::InvalidArgument,
            "absolute",
        ),
        (
            "branch into env folder",
            with(&|r| r.source = Some(Source::Branch("master/dev".into()))),
            Code::InvalidArgument,
            "collide",
        ),
        (
            "long branch",
            with(&|r| r.source = Some(Source::Branch(long_branch.clone()))),
            Code::InvalidArgument,
            "at most 200",
        ),
        (
            "escaping artifact",
            with(&|r| r.source = Some(Source::ArtifactId("../x".into()))),
            Code::InvalidArgument,
            "invalid artifact_id",
        ),
        (
            "escaping namespace",
            with(&|r| r.namespace = "../prod".into()),
            Code::InvalidArgument,
            "invalid namespace",
        ),
        (
            "neither",
            with(&|r| r.source = None),
            Code::InvalidArgument,
            "give a branch or an artifact_id",
        ),
        (
            "no committer",
            with(&|r| r.committer = None),
            Code::InvalidArgument,
            "committer",
        ),
        (
            "unknown service",
            with(&|r| r.service = "nope".into()),
            Code::NotFound,
            "unknown service \"nope\"",
        ),
        (
            "unknown branch",
            with(&|r| r.source = Some(Source::Branch("feature/x".into()))),
            Code::NotFound,
            "no build of branch \"feature/x\" for service \"svc-a\"",
        ),
        (
            "unknown artifact",
            with(&|r| r.source = Some(Source::ArtifactId("master-zzz".into()))),
            Code::NotFound,
            "no artifact \"master-zzz\"",
        ),
    ];
    for (name, request, code, message) in cases {
        let status = client.release(request).await.expect_err(name);
        assert_eq!(status.code(), code, "{name}: {}", status.message());
        assert!(
            status.message().contains(message),
            "{name}: {:?} should contain {message:?}",
            status.message()
        );
        assert!(
            !status.message().contains("/tmp"),
            "{name}: no server paths leak"
        );
    }
    assert_eq!(repo.remote_head(), head, "nothing was pushed");
    server.stop().await;
}

#[tokio::test]
async fn other_calls_validate_names_too() {
    let repo = fixture();
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;
    let err = client
        .status(pb::StatusRequest {
            service: "../x".into(),
            namespace: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = client
        .status(pb::StatusRequest {
            service: "ghost".into(),
            namespace: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .promote(pb::PromoteRequest {
            service: "svc-a".into(),
            environment: "qa".into(),
            committer: alice(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = client
        .describe_release(pb::DescribeReleaseRequest {
            service: "svc-a".into(),
            environment: "/prod".into(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = client
        .rollback(pb::RollbackRequest {
            service: "svc-a".into(),
            environment: "dev".into(),
            artifact_id: "a/../b".into(),
            committer: alice(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    server.stop().await;
}

#[tokio::test]
async fn tokens_are_required_and_checked() {
    let repo = fixture();
    let server = TestServer::start_with(&repo.remote, |config| {
        config.auth.hamctl_token = Some("s3cret".into());
        config.auth.unauthenticated = false;
    })
    .await;
    let head = repo.remote_head();
    let channel = tonic::transport::Channel::from_shared(server.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let with_token = |token: Option<&'static str>| {
        release_manager::pb::release_service_client::ReleaseServiceClient::with_interceptor(
            channel.clone(),
            move |mut request: tonic::Request<()>| {
                if let Some(token) = token {
                    request
                        .metadata_mut()
                        .insert("authorization", format!("Bearer {token}").parse().unwrap());
                }
                Ok(request)
            },
        )
    };
    let missing = with_token(None)
        .release(release_branch("svc-a", "dev", "master"))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    assert!(missing.message().contains("missing token"));
    let wrong = with_token(Some("guess"))
        .release(release_branch("svc-a", "dev", "master"))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    assert!(wrong.message().contains("wrong token"));
    let status = with_token(Some("guess"))
        .status(pb::StatusRequest {
            service: "svc-a".into(),
            namespace: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(repo.remote_head(), head, "nothing was pushed");

    with_token(Some("s3cret"))
        .release(release_branch("svc-a", "dev", "master"))
        .await
        .expect("the right token works");
    assert_ne!(repo.remote_head(), head);

    // Health stays open for probes.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "releasemanager.v1.ReleaseService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        serving.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    server.stop().await;
}
