//! Who may call what: every role (hamctl, artifact) needs its own token,
//! wrong and missing tokens are refused before anything is read or written,
//! and health stays open for probes.

use crate::support::*;
use release_manager::pb;
use tonic::Code;

fn fixture() -> ConfigRepo {
    let mut repo = ConfigRepo::new();
    repo.add_build("svc-a", "master", 1);
    repo.push();
    repo
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
    let with_token = |token: Option<&'static str>| client_with_token(&server.url, token);
    let missing = with_token(None)
        .await
        .release(release_branch("svc-a", "dev", "master"))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    assert!(missing.message().contains("missing token"));
    let wrong = with_token(Some("guess"))
        .await
        .release(release_branch("svc-a", "dev", "master"))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    assert!(wrong.message().contains("wrong token"));
    let status = with_token(Some("guess"))
        .await
        .status(pb::StatusRequest {
            service: "svc-a".into(),
            namespace: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(repo.remote_head(), head, "nothing was pushed");

    with_token(Some("s3cret"))
        .await
        .release(release_branch("svc-a", "dev", "master"))
        .await
        .expect("the right token works");
    assert_ne!(repo.remote_head(), head);

    // Health stays open for probes.
    let channel = tonic::transport::Channel::from_shared(server.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
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
