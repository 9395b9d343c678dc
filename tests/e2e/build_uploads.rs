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
        ..Default::default()
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

#[tokio::test]
async fn an_upload_retried_with_its_request_id_answers_as_the_first_did() {
    let repo = ConfigRepo::new();
    let server = TestServer::start(&repo.remote).await;
    let with_id = |service: &str, request_id: &str| {
        let mut upload = build_upload(service, "master-1");
        upload[0].request_id = request_id.into();
        upload
    };
    let first = push(&server.url, None, with_id("shop", "ci-run-7"))
        .await
        .unwrap();
    assert_eq!(first.outcome(), pb::Outcome::Applied);
    let head = repo.remote_head();
    assert!(commit_info(&repo, &head)
        .body
        .contains("Request-ID: ci-run-7"));
    // The retry of a push whose answer was lost: the same commit, applied.
    let retried = push(&server.url, None, with_id("shop", "ci-run-7"))
        .await
        .unwrap();
    assert_eq!(retried.outcome(), pb::Outcome::Applied);
    assert_eq!(retried.commit_sha, first.commit_sha);
    assert_eq!(repo.remote_head(), head, "nothing new");
    // The same id for another build is refused.
    let reused = push(&server.url, None, with_id("cart", "ci-run-7"))
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::InvalidArgument, "{reused:?}");
    assert!(
        reused.message().contains("request_id"),
        "{}",
        reused.message()
    );
    server.stop().await;
}

#[tokio::test]
async fn an_upload_on_a_read_only_disk_says_so_without_a_server_path() {
    let repo = ConfigRepo::new();
    let server = TestServer::start(&repo.remote).await;
    // Where uploads are staged is sysfs, where no one may create a file
    // (EACCES, or EROFS where /sys is mounted read-only).
    let staging = server.data.path().join("upload-staging");
    let _ = std::fs::remove_dir_all(&staging);
    std::os::unix::fs::symlink("/sys", &staging).unwrap();
    let refused = push(&server.url, None, build_upload("shop", "master-1"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert_eq!(error_info(&refused).unwrap().0, "WRITE_DENIED");
    assert!(
        refused
            .message()
            .contains("permission denied writing the server's data dir")
            && !refused
                .message()
                .contains(&server.data.path().display().to_string()),
        "{}",
        refused.message()
    );
    std::fs::remove_file(&staging).unwrap();
    let stored = push(&server.url, None, build_upload("shop", "master-1"))
        .await
        .unwrap();
    assert_eq!(stored.outcome(), pb::Outcome::Applied);
    server.stop().await;
}

/// `len` bytes that no compression shrinks (xorshift).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// An upload of `files`, each file in chunks of 1 MiB as artifact sends.
fn upload_of(files: Vec<(&str, Vec<u8>)>) -> Vec<pb::PushArtifactRequest> {
    let mut requests = Vec::new();
    for (path, data) in files {
        for chunk in data.chunks(1 << 20) {
            requests.push(pb::PushArtifactRequest {
                path: path.into(),
                data: chunk.to_vec(),
                ..Default::default()
            });
        }
    }
    requests
}

/// Bytes of every file under `dir`.
fn disk_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut visit = vec![dir.to_path_buf()];
    while let Some(folder) = visit.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let metadata = entry.metadata().unwrap();
            if metadata.is_dir() {
                visit.push(entry.path());
            } else {
                total += metadata.len();
            }
        }
    }
    total
}

#[tokio::test]
async fn refused_and_abandoned_large_uploads_leave_nothing_behind() {
    let mut repo = ConfigRepo::new();
    repo.add_build("shop", "master", 1);
    repo.push();
    let existing = spec("shop", "master", &artifact_id("shop", "master", 1));
    let server = TestServer::start(&repo.remote).await;
    let mirror = server.data.path().join("mirror.git");
    let before = disk_bytes(server.data.path()) + disk_bytes(&repo.remote);
    const LARGE: usize = 30 << 20;

    // Refused once received: no artifact.json.
    let refused = push(
        &server.url,
        None,
        upload_of(vec![("dev/big.bin", noise(LARGE, 1))]),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    // Refused by the writer: an artifact id already stored, with other
    // manifests.
    let refused = push(
        &server.url,
        None,
        upload_of(vec![
            ("artifact.json", existing.clone().into_bytes()),
            ("dev/big.bin", noise(LARGE, 2)),
        ]),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::AlreadyExists, "{refused:?}");
    // Abandoned half way: the client goes away.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut client = server.client().await;
    let abandoned = tokio::spawn(async move {
        client
            .push_artifact(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    let half = upload_of(vec![
        (
            "artifact.json",
            spec("shop", "master", "master-big").into_bytes(),
        ),
        ("dev/big.bin", noise(LARGE, 3)),
    ]);
    for request in half.into_iter().take(16) {
        tx.send(request).await.unwrap();
    }
    abandoned.abort();
    let staging = server.data.path().join("upload-staging");
    wait_until(
        "the abandoned upload's files to go",
        Duration::from_secs(30),
        || disk_bytes(&staging) == 0,
    )
    .await;

    let grown = |now: u64| now.saturating_sub(before);
    let after = disk_bytes(server.data.path()) + disk_bytes(&repo.remote);
    assert!(
        grown(after) < 5 << 20,
        "{} bytes left behind (mirror {} bytes)",
        grown(after),
        disk_bytes(&mirror)
    );
    eprintln!(
        "three refused or abandoned uploads of 30 MiB left {} bytes",
        grown(after)
    );
    // Nor after a restart.
    let data = server.stop().await;
    let server = TestServer::start_in(&repo.remote, data, |_| {}).await;
    let after = disk_bytes(server.data.path()) + disk_bytes(&repo.remote);
    assert!(
        grown(after) < 5 << 20,
        "{} bytes after a restart",
        grown(after)
    );
    server.stop().await;
}

#[tokio::test]
async fn an_upload_that_trickles_is_dropped_after_its_warm_up() {
    let repo = ConfigRepo::new();
    let server = TestServer::start_with(&repo.remote, |config| {
        config.uploads.idle_timeout = Duration::from_secs(5);
        config.uploads.min_rate = 1 << 20;
        config.uploads.rate_warm_up = Duration::from_secs(1);
    })
    .await;
    let mut client = server.client().await;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    // A few bytes every 200 ms: never idle, never anywhere near the rate.
    let trickle = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_millis(200));
        loop {
            ticks.tick().await;
            let chunk = pb::PushArtifactRequest {
                path: "dev/slow.yaml".into(),
                data: b"# x\n".to_vec(),
                ..Default::default()
            };
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
    });
    let began = Instant::now();
    let refused = tokio::time::timeout(
        Duration::from_secs(30),
        client.push_artifact(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
    .await
    .expect("dropped by the server")
    .unwrap_err();
    trickle.abort();
    assert_eq!(refused.code(), Code::DeadlineExceeded, "{refused:?}");
    assert_eq!(error_info(&refused).unwrap().0, "UPLOAD_TOO_SLOW");
    assert!(
        refused.message().contains("--upload-min-rate"),
        "{}",
        refused.message()
    );
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
    server.stop().await;
}

#[tokio::test]
async fn one_client_cannot_take_every_upload_slot() {
    let repo = ConfigRepo::new();
    let server = TestServer::start_with(&repo.remote, |config| {
        config.uploads.idle_timeout = Duration::from_secs(60);
        config.uploads.min_rate = 0;
    })
    .await;
    let from = |ip: [u8; 4]| {
        let url = server.url.clone();
        async move {
            let channel = tonic::transport::Endpoint::from_shared(url)
                .unwrap()
                .local_address(Some(std::net::IpAddr::from(ip)))
                .connect()
                .await
                .unwrap();
            release_manager::pb::release_service_client::ReleaseServiceClient::new(channel)
        }
    };
    // One client opens 40 uploads and sends nothing after their first
    // chunk: 32 (half the 64 slots, as the only client) stay open, the
    // rest are refused at once.
    let hog = from([127, 0, 0, 1]).await;
    let mut uploads = Vec::new();
    for n in 0..40 {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(build_upload(&format!("hog-{n}"), "master-1").remove(0))
            .await
            .unwrap();
        let mut client = hog.clone();
        let upload = tokio::spawn(async move {
            client
                .push_artifact(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
        });
        uploads.push((tx, upload));
    }
    wait_until("8 uploads refused", Duration::from_secs(30), || {
        uploads.iter().filter(|(_, u)| u.is_finished()).count() >= 8
    })
    .await;
    let mut open = Vec::new();
    for (tx, upload) in uploads {
        if upload.is_finished() {
            let refused = upload.await.unwrap().unwrap_err();
            assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
            assert!(
                refused.message().contains("its share"),
                "{}",
                refused.message()
            );
        } else {
            open.push((tx, upload));
        }
    }
    assert_eq!(open.len(), 32, "half the slots for the only client");
    // Another client is not held up.
    let mut other = from([127, 0, 0, 2]).await;
    let stored = other
        .push_artifact(tokio_stream::iter(build_upload("other", "master-1")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.outcome(), pb::Outcome::Applied);
    for (_, upload) in open {
        upload.abort();
    }
    server.stop().await;
}
