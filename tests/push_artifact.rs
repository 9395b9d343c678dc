//! Build uploads through `PushArtifact`: stored as
//! `builds/<service>/<branch>/` in one build commit; bad uploads refused
//! with a clear message and the remote unchanged; tokens per role.

mod common;

use common::*;
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
    let mut ops = cli_support::release_client(&server.url.clone(), "ops", None)
        .await
        .unwrap();
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
            "outside",
        ),
        (
            "too large",
            chunks(&[("artifact.json", &good), ("dev/x.yaml", &big)]),
            "too large",
        ),
        (
            "too many files",
            chunks(&[
                ("artifact.json", &good),
                ("dev/1", "x"),
                ("dev/2", "x"),
                ("dev/3", "x"),
                ("dev/4", "x"),
                ("dev/5", "x"),
            ]),
            "too many files",
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
            "unknown field",
            chunks(&[
                ("artifact.json", &good.replace("\"stages\"", "\"stagez\"")),
                ("dev/x.yaml", "x"),
            ]),
            "unknown field `stagez`",
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
                ("artifact.json", &spec("shop", "x/dev", "m-1")),
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
    let mut ci = cli_support::release_client(&server.url.clone(), "ci", None)
        .await
        .unwrap();
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
    server.server.as_ref().unwrap().sync().await.unwrap();
    let mut ops = cli_support::release_client(&server.url.clone(), "ops", None)
        .await
        .unwrap();
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
