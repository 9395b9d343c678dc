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

/// What grpcurl does to print an error's details: it resolves
/// `google.rpc.ErrorInfo` by reflection, and an unknown symbol is answered
/// with an error on the same stream, which goes on answering.
#[tokio::test]
async fn error_details_resolve_and_unknown_symbols_get_an_error_response() {
    use prost::Message;
    use v1::server_reflection_request::MessageRequest;
    use v1::server_reflection_response::MessageResponse;
    let repo = ConfigRepo::new();
    let server = TestServer::start(&repo.remote).await;
    let channel = tonic::transport::Channel::from_shared(server.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel);
    let ask = |symbol: &str| v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(symbol.into())),
    };
    let (requests, asked) = tokio::sync::mpsc::channel(4);
    let mut stream = client
        .server_reflection_info(tokio_stream::wrappers::ReceiverStream::new(asked))
        .await
        .unwrap()
        .into_inner();

    requests.send(ask("no.such.Symbol")).await.unwrap();
    let answer = stream
        .message()
        .await
        .unwrap()
        .expect("an answer, not the end");
    let Some(MessageResponse::ErrorResponse(error)) = answer.message_response else {
        panic!("an ErrorResponse: {answer:?}");
    };
    assert_eq!(error.error_code, tonic::Code::NotFound as i32);
    assert!(error.error_message.contains("no.such.Symbol"), "{error:?}");

    // The same stream answers the next request.
    requests.send(ask("google.rpc.ErrorInfo")).await.unwrap();
    let answer = stream.message().await.unwrap().expect("an answer");
    let Some(MessageResponse::FileDescriptorResponse(files)) = answer.message_response else {
        panic!("the file: {answer:?}");
    };
    let files: Vec<prost_types::FileDescriptorProto> = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap())
        .collect();
    let details = &files[0];
    assert_eq!(details.name(), "google/rpc/error_details.proto");
    assert!(details.message_type.iter().any(|m| m.name() == "ErrorInfo"));
    // Its imports come along, so a client can build the descriptor whole.
    for import in &details.dependency {
        assert!(
            files.iter().any(|f| f.name() == import),
            "{import} is served with it"
        );
    }
    requests.send(ask("google.rpc.BadRequest")).await.unwrap();
    assert!(stream.message().await.unwrap().is_some());
    drop(requests);
    assert!(
        stream.message().await.unwrap().is_none(),
        "ends when the client does"
    );
    server.stop().await;
}
