//! Input validation: bad names, paths, sources, regexes and uploaded
//! artifact.json get the status code of the spec and a message naming the
//! problem, and leave the remote unchanged.

use crate::support::*;
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
    let long_branch = "b".repeat(256);
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
            "invalid service \"../svc-a\": must not contain '.': a Kubernetes DNS label",
        ),
        (
            "absolute service",
            with(&|r| r.service = "/etc".into()),
            Code::InvalidArgument,
            "must not contain '/'",
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
            "must not start or end with '/'",
        ),
        (
            // A valid branch: its folder cannot collide with master's `dev`
            // folder (names::branch_folder), so it is just not built.
            "branch named like an env folder",
            with(&|r| r.source = Some(Source::Branch("master/dev".into()))),
            Code::NotFound,
            "no build of branch",
        ),
        (
            "long branch",
            with(&|r| r.source = Some(Source::Branch(long_branch.clone()))),
            Code::InvalidArgument,
            "at most 255",
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
async fn an_upload_whose_ci_time_is_not_a_time_is_refused() {
    let repo = ConfigRepo::new();
    let server = TestServer::start(&repo.remote).await;
    let spec = spec("shop", "master", "master-1").replace("2026-02-01T10:05:00Z", "yesterday");
    let build_files = |spec: &str| {
        chunks(&[
            ("artifact.json", spec),
            ("dev/deployment.yaml", "kind: Deployment\n"),
        ])
    };
    let refused = push(&server.url, None, build_files(&spec))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("ci.end"),
        "{}",
        refused.message()
    );
    // Go's zero time (a job that never called `end`) is fine: unset.
    let zero = spec.replace("yesterday", "0001-01-01T00:00:00Z");
    let stored = push(&server.url, None, build_files(&zero)).await.unwrap();
    assert_eq!(stored.outcome(), pb::Outcome::Applied);
    server.stop().await;
}

#[tokio::test]
async fn an_upload_with_a_file_that_is_also_a_folder_is_refused() {
    let repo = ConfigRepo::new();
    let server = TestServer::start(&repo.remote).await;
    let head = repo.remote_head();
    let mut client = server.client().await;
    let spec = spec("shop", "master", "master-1");
    let refused = client
        .push_artifact(tokio_stream::iter(chunks(&[
            ("artifact.json", &spec),
            ("dev/a", "one"),
            ("dev/a/b", "two"),
        ])))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("\"dev/a\"") && refused.message().contains("\"dev/a/b\""),
        "{}",
        refused.message()
    );
    assert_eq!(repo.remote_head(), head);
    server.stop().await;
}

#[tokio::test]
async fn a_branch_regex_with_a_control_character_is_refused() {
    let repo = fixture();
    let server = TestServer::start(&repo.remote).await;
    let head = repo.remote_head();
    let mut policies = server.policy_client().await;
    let refused = policies
        .apply_branch_restriction(pb::ApplyBranchRestrictionRequest {
            request_id: String::new(),
            service: "shop".into(),
            environment: "prod".into(),
            branch_regex: "^master$\n[shop] forged title".into(),
            committer: alice(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("control characters"),
        "{}",
        refused.message()
    );
    assert_eq!(repo.remote_head(), head);
    server.stop().await;
}

#[tokio::test]
async fn a_file_name_no_checkout_can_hold_is_refused_and_the_repository_still_checks_out() {
    let repo = ConfigRepo::new();
    let server = TestServer::start(&repo.remote).await;
    let head = repo.remote_head();
    let spec = spec("shop", "master", "master-1");
    let long_name = format!("dev/{}.yaml", "n".repeat(295));
    let deep = format!("dev/{}x.yaml", "d/".repeat(199));
    let bidi = "dev/invoice\u{202E}lmy.yaml".to_string();
    for (path, says) in [
        (&long_name, "a name of 300 bytes"),
        (&deep, "201 levels deep"),
        (&bidi, "bidirectional-control"),
    ] {
        let refused = push(
            &server.url,
            None,
            chunks(&[("artifact.json", &spec), (path, "kind: Deployment\n")]),
        )
        .await
        .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{path}");
        assert!(
            refused.message().contains(says),
            "{path}: {}",
            refused.message()
        );
    }
    assert_eq!(repo.remote_head(), head, "nothing was pushed");
    // Every checkout of the repository still works.
    let checkout = tempfile::tempdir().unwrap();
    git(
        checkout.path(),
        &["clone", "-q", repo.remote.to_str().unwrap(), "config"],
    );
    server.stop().await;
}

#[tokio::test]
async fn a_branch_regex_with_a_bidirectional_control_is_refused() {
    let repo = fixture();
    let server = TestServer::start(&repo.remote).await;
    let head = repo.remote_head();
    let mut policies = server.policy_client().await;
    let refused = policies
        .apply_branch_restriction(pb::ApplyBranchRestrictionRequest {
            request_id: String::new(),
            service: "svc-a".into(),
            environment: "prod".into(),
            // Reads as "^master$" with the override, matches otherwise.
            branch_regex: "^\u{202E}retsam$|.*".into(),
            committer: alice(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("bidirectional-control"),
        "{}",
        refused.message()
    );
    assert_eq!(repo.remote_head(), head);
    server.stop().await;
}
