//! The API as a contract, as a client in another language meets it: an
//! artifact id names one build forever, every answer names what it says it
//! names, limits are the documented ones, and unknown names are NOT_FOUND
//! everywhere.

mod common;

use std::time::Duration;

use common::*;
use release_manager::pb;
use tonic::Code;

fn build_files<'a>(spec: &'a str, deployment: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("artifact.json", spec),
        ("dev/deployment.yaml", deployment),
        ("prod/deployment.yaml", "kind: Deployment\nreplicas: 3\n"),
    ]
}

#[tokio::test]
async fn an_artifact_id_names_one_build_forever() {
    let repo = ConfigRepo::new();
    let server = TestServer::start(&repo.remote).await;
    let first_spec = spec("shop", "master", "master-1");
    let first = push(
        &server.url,
        None,
        chunks(&build_files(&first_spec, "kind: Deployment\n")),
    )
    .await
    .unwrap();
    assert_eq!(first.outcome(), pb::Outcome::Applied);
    let build_commit = first.commit_sha.clone();
    // Other commits move the tip on.
    let mut client = server.client().await;
    client
        .release(release_artifact("shop", "dev", "master-1"))
        .await
        .unwrap();
    assert_ne!(repo.remote_head(), build_commit);

    // The same build again: nothing to do, and the answer names the build
    // commit, not the tip.
    let again = push(
        &server.url,
        None,
        chunks(&build_files(&first_spec, "kind: Deployment\n")),
    )
    .await
    .unwrap();
    assert_eq!(again.outcome(), pb::Outcome::AlreadyUpToDate);
    assert_eq!(again.commit_sha, build_commit);

    // A re-run pipeline: same manifests, other CI times and formatting.
    let rerun_spec = first_spec
        .replace("2026-02-01T10:05:00Z", "2026-02-02T11:00:00Z")
        .replace("  ", "    ");
    let head = repo.remote_head();
    let rerun = push(
        &server.url,
        None,
        chunks(&build_files(&rerun_spec, "kind: Deployment\n")),
    )
    .await
    .unwrap();
    assert_eq!(rerun.outcome(), pb::Outcome::AlreadyUpToDate);
    assert_eq!(rerun.commit_sha, build_commit);
    assert_eq!(repo.remote_head(), head, "no commit");
    assert_eq!(
        repo.remote_file("builds/shop/master/artifact.json")
            .unwrap(),
        first_spec,
        "the stored build is kept"
    );

    // Other manifests under the same id: refused, naming the id and build.
    let other = push(
        &server.url,
        None,
        chunks(&build_files(&first_spec, "kind: Deployment\n\n")),
    )
    .await
    .unwrap_err();
    assert_eq!(other.code(), Code::AlreadyExists, "{other:?}");
    assert!(
        other.message().contains("\"master-1\""),
        "{}",
        other.message()
    );
    assert!(
        other.message().contains(&build_commit),
        "{}",
        other.message()
    );
    assert_eq!(repo.remote_head(), head, "nothing written");

    let builds = client
        .describe_artifact(pb::DescribeArtifactRequest {
            service: "shop".into(),
            page_size: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .artifacts;
    assert_eq!(builds.len(), 1, "one build, listed once: {builds:?}");
    assert_eq!(builds[0].build_commit_sha, build_commit);
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

#[tokio::test]
async fn an_upload_whose_ci_time_is_not_a_time_is_refused() {
    let repo = ConfigRepo::new();
    let server = TestServer::start(&repo.remote).await;
    let spec = spec("shop", "master", "master-1").replace("2026-02-01T10:05:00Z", "yesterday");
    let refused = push(
        &server.url,
        None,
        chunks(&build_files(&spec, "kind: Deployment\n")),
    )
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
    let stored = push(
        &server.url,
        None,
        chunks(&build_files(&zero, "kind: Deployment\n")),
    )
    .await
    .unwrap();
    assert_eq!(stored.outcome(), pb::Outcome::Applied);
    server.stop().await;
}

#[tokio::test]
async fn unknown_branches_and_namespaces_are_not_found() {
    let mut repo = ConfigRepo::new();
    repo.add_build("shop", "master", 1);
    repo.push();
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;
    client
        .release(release_branch("shop", "dev", "master"))
        .await
        .unwrap();
    let unknown_branch = client
        .describe_artifact(pb::DescribeArtifactRequest {
            service: "shop".into(),
            branch: "nope".into(),
            page_size: 5,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown_branch.code(), Code::NotFound);
    assert!(
        unknown_branch.message().contains("master"),
        "names the branches there are"
    );
    let unknown_namespace = client
        .status(pb::StatusRequest {
            service: "shop".into(),
            namespace: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown_namespace.code(), Code::NotFound);
    assert!(
        unknown_namespace.message().contains("dev"),
        "names where it runs: {}",
        unknown_namespace.message()
    );
    let known_namespace = client
        .status(pb::StatusRequest {
            service: "shop".into(),
            namespace: "dev".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(known_namespace.environments[0].artifact.is_some());
    server.stop().await;
}

#[tokio::test]
async fn watching_one_environment_delivers_its_releases_only() {
    let mut repo = ConfigRepo::new();
    repo.add_build("shop", "master", 1);
    repo.push();
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;
    let mut stream = client
        .watch_events(pb::WatchEventsRequest {
            environment: "prod".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // A build, a release elsewhere, a policy change: none of them is
    // prod's. Then a release to prod.
    push(
        &server.url,
        None,
        chunks(&build_files(
            &spec("shop", "master", "master-2"),
            "kind: Deployment\n",
        )),
    )
    .await
    .unwrap();
    client
        .release(release_artifact("shop", "dev", "master-2"))
        .await
        .unwrap();
    let mut policies = release_manager::pb::policy_service_client::PolicyServiceClient::connect(
        server.url.clone(),
    )
    .await
    .unwrap();
    policies
        .apply_auto_release(pb::ApplyAutoReleaseRequest {
            service: "shop".into(),
            branch: "master".into(),
            environment: "staging".into(),
            committer: alice(),
        })
        .await
        .unwrap();
    client
        .release(release_artifact("shop", "prod", "master-2"))
        .await
        .unwrap();
    let live = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("the live marker")
        .unwrap()
        .unwrap();
    assert!(
        matches!(live.event, Some(pb::watch_events_response::Event::Live(_))),
        "a subscription starts by saying it is live: {live:?}"
    );
    let first = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an event")
        .unwrap()
        .unwrap();
    match first.event {
        Some(pb::watch_events_response::Event::Released(release)) => {
            assert_eq!(release.environment, "prod")
        }
        other => panic!("the first event is prod's release, not {other:?}"),
    }
    server.stop().await;
}

/// The body of an HTTP/1.1 response, its chunked encoding undone.
fn http_body(response: &[u8]) -> (String, Vec<u8>) {
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header");
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let mut body = &response[split + 4..];
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return (head, body.to_vec());
    }
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk size");
        let size =
            usize::from_str_radix(std::str::from_utf8(&body[..line_end]).unwrap().trim(), 16)
                .unwrap();
        body = &body[line_end + 2..];
        if size == 0 {
            return (head, out);
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

#[tokio::test]
async fn grpc_web_answers_over_http1() {
    use prost::Message;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut repo = ConfigRepo::new();
    repo.add_build("shop", "master", 1);
    repo.push();
    let server = TestServer::start(&repo.remote).await;
    let address = server.url.trim_start_matches("http://").to_string();
    let request = pb::StatusRequest {
        service: "shop".into(),
        ..Default::default()
    }
    .encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(request.len() as u32).to_be_bytes());
    frame.extend_from_slice(&request);
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /releasemanager.v1.ReleaseService/Status HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        frame.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&frame).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("an answer")
        .unwrap();
    let (head, body) = http_body(&response);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("application/grpc-web"),
        "{head}"
    );
    // A data frame with the answer, then a trailer frame saying OK.
    assert_eq!(body[0], 0, "a data frame first");
    let length = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
    let status = pb::StatusResponse::decode(&body[5..5 + length]).unwrap();
    assert_eq!(status.service, "shop");
    assert_eq!(status.environments.len(), 3);
    let trailer = &body[5 + length..];
    assert_eq!(trailer[0], 0x80, "then the trailers");
    assert!(String::from_utf8_lossy(&trailer[5..]).contains("grpc-status:0"));
    server.stop().await;
}
