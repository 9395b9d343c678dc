//! grpcurl and `buf curl` find the services through server reflection
//! (v1 and v1alpha), without the proto files and without a token.

use crate::support::*;
use tonic_reflection::pb::{v1, v1alpha};

#[tokio::test]
async fn reflection_lists_the_public_services_and_health() {
    let repo = ConfigRepo::new();
    let server = TestServer::start_with(&repo.remote, |config| {
        config.auth.hamctl_token = Some("secret".into());
        config.auth.unauthenticated = false;
    })
    .await;

    let channel = tonic::transport::Channel::from_shared(server.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let response = stream.message().await.unwrap().expect("one answer");
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        response.message_response
    else {
        panic!("unexpected answer {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for wanted in [
        "releasemanager.v1.ReleaseService",
        "releasemanager.v1.PolicyService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == wanted),
            "{wanted} missing from {names:?}"
        );
    }

    // The descriptor of a service resolves, so clients can build requests.
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1::server_reflection_request::MessageRequest::FileContainingSymbol(
                "releasemanager.v1.ReleaseService".into(),
            ),
        ),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let response = stream.message().await.unwrap().expect("one answer");
    assert!(matches!(
        response.message_response,
        Some(v1::server_reflection_response::MessageResponse::FileDescriptorResponse(ref files))
            if !files.file_descriptor_proto.is_empty()
    ));

    // Older tools speak v1alpha.
    let mut alpha = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut stream = alpha
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());
    server.stop().await;
}
