//! The API as a contract, as a client in another language meets it: an
//! artifact id names one build forever, every answer names what it says it
//! names, unknown names are NOT_FOUND, and gRPC-Web answers over HTTP/1.1.
//! (Limits of uploads: `build_uploads`; every error reason: `error_reasons`.)

use crate::support::*;
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
async fn grpc_web_answers_over_http1() {
    use prost::Message;
    let mut repo = ConfigRepo::new();
    repo.add_build("shop", "master", 1);
    repo.push();
    let server = TestServer::start(&repo.remote).await;
    let address: std::net::SocketAddr = server.url.trim_start_matches("http://").parse().unwrap();
    let request = pb::StatusRequest {
        service: "shop".into(),
        ..Default::default()
    }
    .encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(request.len() as u32).to_be_bytes());
    frame.extend_from_slice(&request);
    let answer = http::request(
        address,
        "POST",
        "/releasemanager.v1.ReleaseService/Status",
        &[
            ("Content-Type", "application/grpc-web+proto".to_string()),
            ("X-Grpc-Web", "1".to_string()),
        ],
        &frame,
    )
    .await;
    let (head, body) = (answer.head, answer.body);
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

/// `ListServices` pages, `Status` lists every namespace of an environment,
/// and a policy write with a request id applies once.
#[tokio::test]
async fn services_page_status_shows_every_namespace_and_policies_apply_once() {
    let mut repo = ConfigRepo::new();
    for service in ["alpha", "beta", "gamma"] {
        repo.add_build(service, "master", 1);
    }
    repo.push();
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;

    let mut names = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_services(pb::ListServicesRequest {
                page_size: 2,
                page_token,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.services.len() <= 2);
        names.extend(page.services.into_iter().map(|s| s.name));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(names, ["alpha", "beta", "gamma"]);

    for namespace in ["dev", "team-b"] {
        let mut request = release_branch("alpha", "dev", "master");
        request.namespace = namespace.into();
        client.release(request).await.unwrap();
    }
    let status = server.status("alpha").await;
    let dev = &status.environments[0];
    let namespaces: Vec<&str> = dev
        .namespaces
        .iter()
        .map(|n| n.namespace.as_str())
        .collect();
    assert_eq!(namespaces, ["dev", "team-b"]);
    assert_eq!(
        dev.namespace, "team-b",
        "the top fields: the latest release"
    );
    assert!(dev.namespaces.iter().all(|n| n.artifact.is_some()));

    let mut policies = server.policy_client().await;
    let apply = || pb::ApplyAutoReleaseRequest {
        service: "beta".into(),
        branch: "master".into(),
        environment: "dev".into(),
        committer: alice(),
        request_id: "apply-once".into(),
    };
    let first = policies
        .apply_auto_release(apply())
        .await
        .unwrap()
        .into_inner();
    let head = repo.remote_head();
    let again = policies
        .apply_auto_release(apply())
        .await
        .unwrap()
        .into_inner();
    assert!(!first.replayed && again.replayed);
    assert_eq!(again.id, first.id);
    assert_eq!(repo.remote_head(), head, "no second commit");
    let mut other = apply();
    other.service = "gamma".into();
    let refused = policies.apply_auto_release(other).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    server.stop().await;
}
