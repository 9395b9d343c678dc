//! Build uploads through `PushArtifact`: stored as
//! `builds/<service>/<branch>/` in one build commit; bad uploads refused
//! with a clear message and the remote unchanged; tokens per role; the
//! limits (chunk size, memory, stalled uploads) and that uploads never wait
//! on each other.

use std::time::{Duration, Instant};

use crate::support::*;
use release_manager::pb;
use tonic::Code;

async fn server(repo: &ConfigRepo) -> TestServer {
    TestServer::start_with(&repo.remote, |config| {
        config.auth.hamctl_token = Some("ops".into());
        config.auth.artifact_token = Some("ci".into());
        config.auth.unauthenticated = false;
        config.uploads.max_files = 5;
        config.uploads.max_bytes = 10_000;
    })
    .await
}

#[tokio::test]
async fn an_uploaded_build_is_stored_and_releasable() {
    let mut repo = ConfigRepo::new();
    repo.add_build("shop", "feature/login", 1);
    repo.push();
    let server = server(&repo).await;
    let spec = spec("shop", "feature/login", "feature-login-2");
    // A file split over two chunks.
    let mut requests = chunks(&[
        ("artifact.json", &spec),
        ("dev/deployment.yaml", "kind: Deployment\n"),
    ]);
    requests.push(pb::PushArtifactRequest {
        path: "dev/deployment.yaml".into(),
        data: b"metadata: {name: shop}\n".to_vec(),
    });
    requests.extend(chunks(&[(
        "prod/deployment.yaml",
        "kind: Deployment\nreplicas: 3\n",
    )]));
    let stored = push(&server.url, Some("ci"), requests.clone())
        .await
        .unwrap();
    assert_eq!(stored.outcome(), pb::Outcome::Applied);
    assert_eq!(stored.file_count, 3);
    assert_eq!(stored.branch, "feature/login");
    assert_eq!(stored.commit_sha, repo.remote_head());

    let info = commit_info(&repo, "master");
    assert_eq!(info.subject, "[shop] build tag feature-login-2");
    assert_eq!(info.author, "Dana Dev <dana@example.com>");
    assert!(info.body.contains("Branch: feature/login"));
    assert_eq!(
        info.changed,
        [
            "builds/shop/feature/login/artifact.json",
            "builds/shop/feature/login/dev/deployment.yaml",
            "builds/shop/feature/login/dev/service.yaml",
            "builds/shop/feature/login/prod/deployment.yaml",
            "builds/shop/feature/login/prod/service.yaml",
            "builds/shop/feature/login/staging/deployment.yaml",
            "builds/shop/feature/login/staging/service.yaml",
        ],
        "the branch folder is replaced: files of the old build are gone"
    );
    assert_eq!(
        repo.remote_file("builds/shop/feature/login/dev/deployment.yaml")
            .unwrap(),
        "kind: Deployment\nmetadata: {name: shop}\n"
    );
    assert_eq!(
        repo.remote_ls("builds/shop/feature/login"),
        ["artifact.json", "dev", "prod"]
    );

    // The same upload again changes nothing.
    let again = push(&server.url, Some("ci"), requests).await.unwrap();
    assert_eq!(again.outcome(), pb::Outcome::AlreadyUpToDate);
    assert_eq!(again.commit_sha, stored.commit_sha);

    // The new build is known at once: release it by id and by branch.
    let mut ops = client_with_token(&server.url, Some("ops")).await;
    let released = ops
        .release(release_artifact("shop", "prod", "feature-login-2"))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(released.branch, "feature/login");
    assert_eq!(
        repo.remote_file("prod/releases/prod/shop/deployment.yaml")
            .unwrap(),
        "kind: Deployment\nreplicas: 3\n"
    );
    let builds = ops
        .describe_artifact(pb::DescribeArtifactRequest {
            service: "shop".into(),
            branch: String::new(),
            page_size: 5,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(builds.artifacts[0].artifact_id, "feature-login-2");
    assert_eq!(
        builds.artifacts[0].author.as_ref().unwrap().name,
        "Dana Dev"
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_uploads_are_refused_and_change_nothing() {
    let repo = ConfigRepo::new();
    let server = server(&repo).await;
    let head = repo.remote_head();
    let good = spec("shop", "master", "master-1");
    let big = "x".repeat(10_001);
    let cases: Vec<(&str, Vec<pb::PushArtifactRequest>, &str)> = vec![
        (
            "dotdot path",
            chunks(&[("artifact.json", &good), ("dev/../../etc/passwd", "x")]),
            "'..'",
        ),
        (
            "absolute path",
            chunks(&[("artifact.json", &good), ("/etc/passwd", "x")]),
            "relative",
        ),
        (
            "outside env folders",
            chunks(&[("artifact.json", &good), ("README.md", "x")]),
            "outside",
        ),
        (
            "unknown env folder",
            chunks(&[("artifact.json", &good), ("qa/x.yaml", "x")]),
            "ARTIFACT_ENVIRONMENTS",
        ),
        (
            "no artifact.json",
            chunks(&[("dev/x.yaml", "x")]),
            "no artifact.json",
        ),
        (
            "malformed json",
            chunks(&[("artifact.json", "{\"id\": "), ("dev/x.yaml", "x")]),
            "artifact.json: EOF",
        ),
        (
            "a time that is not one",
            chunks(&[
                ("artifact.json", &good.replace("2026-02-01T10:00:00Z", "yesterday")),
                ("dev/x.yaml", "x"),
            ]),
            "artifact.json.ci.start: \"yesterday\" is not an RFC 3339 time",
        ),
        (
            "a stage with the wrong shape",
            chunks(&[
                (
                    "artifact.json",
                    &good.replace(
                        "\"stages\": []",
                        "\"stages\": [{\"id\": \"test\", \"data\": {\"results\": {\"passed\": \"all\"}}}]",
                    ),
                ),
                ("dev/x.yaml", "x"),
            ]),
            "artifact.json.stages[0].data.results.passed",
        ),
        (
            "bad service name",
            chunks(&[
                ("artifact.json", &spec("../shop", "master", "m-1")),
                ("dev/x.yaml", "x"),
            ]),
            "invalid service",
        ),
        (
            "bad branch",
            chunks(&[
                ("artifact.json", &spec("shop", "x..y", "m-1")),
                ("dev/x.yaml", "x"),
            ]),
            "invalid branch",
        ),
        (
            "no manifests",
            chunks(&[("artifact.json", &good)]),
            "no manifests",
        ),
        (
            "file twice",
            chunks(&[
                ("artifact.json", &good),
                ("dev/x", "1"),
                ("dev/y", "1"),
                ("dev/x", "2"),
            ]),
            "sent twice",
        ),
    ];
    for (name, requests, message) in cases {
        let status = push(&server.url, Some("ci"), requests)
            .await
            .expect_err(name);
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{name}: {}",
            status.message()
        );
        assert!(
            status.message().contains(message),
            "{name}: {:?} lacks {message:?}",
            status.message()
        );
    }
    // Limits are RESOURCE_EXHAUSTED, with the limit in the ErrorInfo.
    let limits = [
        (
            chunks(&[("artifact.json", &good), ("dev/x.yaml", &big)]),
            "larger than 10000 bytes (--max-upload-bytes)",
            "10000",
        ),
        (
            chunks(&[
                ("artifact.json", &good),
                ("dev/1", "x"),
                ("dev/2", "x"),
                ("dev/3", "x"),
                ("dev/4", "x"),
                ("dev/5", "x"),
            ]),
            "more than 5 files (--max-upload-files)",
            "5",
        ),
    ];
    for (requests, message, limit) in limits {
        let status = push(&server.url, Some("ci"), requests).await.unwrap_err();
        assert_eq!(
            status.code(),
            Code::ResourceExhausted,
            "{}",
            status.message()
        );
        assert!(status.message().contains(message), "{}", status.message());
        let details = tonic_types::StatusExt::get_error_details(&status);
        let info = details.error_info().expect("an ErrorInfo");
        assert_eq!(info.metadata.get("limit").map(String::as_str), Some(limit));
    }
    let ok = chunks(&[("artifact.json", &good), ("dev/x.yaml", "x")]);
    let wrong = push(&server.url, Some("ops"), ok.clone())
        .await
        .unwrap_err();
    assert_eq!(
        wrong.code(),
        Code::Unauthenticated,
        "the hamctl token does not upload builds"
    );
    let missing = push(&server.url, None, ok.clone()).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    assert_eq!(repo.remote_head(), head, "nothing was pushed");

    // And the artifact token does not release.
    let mut ci = client_with_token(&server.url, Some("ci")).await;
    let err = ci
        .release(release_branch("shop", "dev", "master"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    push(&server.url, Some("ci"), ok)
        .await
        .expect("a good upload still works");
    server.stop().await;
}

#[tokio::test]
async fn a_branch_folder_never_swallows_a_nested_branch() {
    let mut repo = ConfigRepo::new();
    let nested = repo.add_build("shop", "feature/x", 1);
    repo.push();
    let server = server(&repo).await;
    let spec = spec("shop", "feature", "feature-1");
    push(
        &server.url,
        Some("ci"),
        chunks(&[
            ("artifact.json", &spec),
            ("dev/deployment.yaml", "kind: Deployment\n"),
        ]),
    )
    .await
    .unwrap();
    assert_eq!(
        repo.remote_ls("builds/shop/feature"),
        ["artifact.json", "dev", "x"],
        "feature/x is kept"
    );
    assert!(repo
        .remote_file("builds/shop/feature/x/artifact.json")
        .unwrap()
        .contains(&nested));

    // CI commits a new build of feature/x without trailers: it is known
    // as a build of feature/x, not of feature.
    let nested2 = repo.add_build("shop", "feature/x", 2);
    repo.push();
    server.sync().await;
    let mut ops = client_with_token(&server.url, Some("ops")).await;
    let released = ops
        .release(release_artifact("shop", "dev", &nested2))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(released.branch, "feature/x");
    let released = ops
        .release(release_branch("shop", "dev", "feature"))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(released.artifact_id, "feature-1");
    server.stop().await;
}

#[tokio::test]
async fn a_chunk_may_carry_a_whole_large_file_and_a_larger_one_is_resource_exhausted() {
    let repo = ConfigRepo::new();
    let server = TestServer::start_with(&repo.remote, |config| {
        config.uploads.max_bytes = 8 << 20;
    })
    .await;
    let spec = spec("shop", "master", "master-big");
    let big = "x".repeat(5 << 20);
    let stored = push(
        &server.url,
        None,
        chunks(&[("artifact.json", &spec), ("dev/configmap.yaml", &big)]),
    )
    .await
    .unwrap();
    assert_eq!(
        stored.outcome(),
        pb::Outcome::Applied,
        "a 5 MiB chunk, over tonic's default 4 MiB"
    );
    let huge = "y".repeat(9 << 20);
    let refused = push(
        &server.url,
        None,
        chunks(&[
            ("artifact.json", &spec.replace("master-big", "master-huge")),
            ("dev/configmap.yaml", &huge),
        ]),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("--max-upload-bytes"),
        "{}",
        refused.message()
    );
    server.stop().await;
}

/// A small build of `service`: its artifact.json and one manifest.
fn build_upload(service: &str, id: &str) -> Vec<pb::PushArtifactRequest> {
    let manifest = format!("kind: ConfigMap\nmetadata:\n  name: {service}\n");
    chunks(&[
        ("artifact.json", &spec(service, "master", id)),
        ("dev/configmap.yaml", &manifest),
    ])
}

#[tokio::test]
async fn uploads_never_wait_on_each_other_and_stalled_ones_are_dropped() {
    let repo = ConfigRepo::new();
    let idle = Duration::from_secs(1);
    let server =
        TestServer::start_with(&repo.remote, |config| config.uploads.idle_timeout = idle).await;
    // Every upload below shares one HTTP/2 connection.
    let client = server.client().await;

    // Eight uploads that send their first chunk and then nothing.
    let mut stalled = Vec::new();
    let mut senders = Vec::new();
    for n in 0..8 {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let first = build_upload(&format!("stalled-{n}"), "master-1").remove(0);
        tx.send(first).await.unwrap();
        senders.push(tx);
        let mut client = client.clone();
        stalled.push(tokio::spawn(async move {
            let began = Instant::now();
            let result = client
                .push_artifact(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await;
            (result, began.elapsed())
        }));
    }
    // Twelve complete uploads meanwhile, all at once: each is stored.
    let mut complete = Vec::new();
    for n in 0..12 {
        let mut client = client.clone();
        complete.push(tokio::spawn(async move {
            client
                .push_artifact(tokio_stream::iter(build_upload(
                    &format!("svc-{n}"),
                    "master-1",
                )))
                .await
        }));
    }
    for upload in complete {
        let stored = tokio::time::timeout(Duration::from_secs(30), upload)
            .await
            .expect("a complete upload is not held up by stalled ones")
            .unwrap()
            .unwrap()
            .into_inner();
        assert_eq!(stored.outcome(), pb::Outcome::Applied);
    }
    for upload in stalled {
        let (result, waited) = tokio::time::timeout(Duration::from_secs(30), upload)
            .await
            .expect("a stalled upload is dropped")
            .unwrap();
        let refused = result.unwrap_err();
        assert_eq!(refused.code(), Code::DeadlineExceeded, "{refused:?}");
        assert!(
            refused.message().contains("--upload-idle-timeout"),
            "{}",
            refused.message()
        );
        assert!(waited < idle * 10, "{waited:?}");
    }
    drop(senders);
    for n in 0..12 {
        assert!(
            repo.remote_file(&format!("builds/svc-{n}/master/dev/configmap.yaml"))
                .is_some(),
            "svc-{n} stored"
        );
    }
    assert!(repo
        .remote_file("builds/stalled-0/master/artifact.json")
        .is_none());
    server.stop().await;
}

#[tokio::test]
async fn a_chunk_larger_than_the_upload_memory_is_refused_at_once() {
    let repo = ConfigRepo::new();
    let server =
        TestServer::start_with(&repo.remote, |config| config.uploads.memory_budget = 64).await;
    let mut client = server.client().await;
    let began = Instant::now();
    let refused = client
        .push_artifact(tokio_stream::iter(build_upload("shop", "master-1")))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("--upload-memory"),
        "{}",
        refused.message()
    );
    assert!(began.elapsed() < Duration::from_secs(5));
    server.stop().await;
}
