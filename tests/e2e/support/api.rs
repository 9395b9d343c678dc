//! Requests and clients of the public gRPC API as a client in any language
//! makes them: release requests, build uploads, a token per call, and the
//! structured details of an error.

use release_manager::pb;
use release_manager::pb::release_service_client::ReleaseServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The person the tests release as.
pub fn alice() -> Option<pb::Person> {
    Some(pb::Person {
        name: "Alice Operator".into(),
        email: "alice@example.com".into(),
    })
}

/// Release the latest build of `branch` of `service` to `env`.
pub fn release_branch(service: &str, env: &str, branch: &str) -> pb::ReleaseRequest {
    pb::ReleaseRequest {
        service: service.into(),
        environment: env.into(),
        source: Some(pb::release_request::Source::Branch(branch.into())),
        committer: alice(),
        ..Default::default()
    }
}

/// Release build `id` of `service` to `env`.
pub fn release_artifact(service: &str, env: &str, id: &str) -> pb::ReleaseRequest {
    pb::ReleaseRequest {
        service: service.into(),
        environment: env.into(),
        source: Some(pb::release_request::Source::ArtifactId(id.into())),
        committer: alice(),
        ..Default::default()
    }
}

/// An artifact.json for an upload of build `id` of `service` on `branch`.
pub fn spec(service: &str, branch: &str, id: &str) -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "id": id,
        "service": service,
        "application": {"sha": "abc", "branch": branch, "authorName": "Dana Dev", "authorEmail": "dana@example.com",
                        "committerName": "Dana Dev", "committerEmail": "dana@example.com", "message": "add login"},
        "ci": {"jobUrl": "https://ci.example.com/1", "start": "2026-02-01T10:00:00Z", "end": "2026-02-01T10:05:00Z"},
        "stages": []
    }))
    .expect("JSON")
}

/// One upload chunk per file.
pub fn chunks(files: &[(&str, &str)]) -> Vec<pb::PushArtifactRequest> {
    files
        .iter()
        .map(|(path, data)| pb::PushArtifactRequest {
            path: path.to_string(),
            data: data.as_bytes().to_vec(),
            ..Default::default()
        })
        .collect()
}

/// Sets `authorization: Bearer <token>` on every call (none when empty).
#[derive(Clone)]
pub struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A release client on `url` that sends `token` (none when `None`).
pub async fn client_with_token(
    url: &str,
    token: Option<&str>,
) -> ReleaseServiceClient<InterceptedService<Channel, Bearer>> {
    let channel = Channel::from_shared(url.to_string())
        .expect("a URL")
        .connect()
        .await
        .expect("connects");
    let bearer = Bearer(token.map(|t| format!("Bearer {t}").parse().expect("an ASCII token")));
    ReleaseServiceClient::with_interceptor(channel, bearer)
}

/// Uploads a build through `PushArtifact`, with the artifact token if given.
pub async fn push(
    url: &str,
    token: Option<&str>,
    requests: Vec<pb::PushArtifactRequest>,
) -> Result<pb::PushArtifactResponse, tonic::Status> {
    client_with_token(url, token)
        .await
        .push_artifact(tokio_stream::iter(requests))
        .await
        .map(|r| r.into_inner())
}

/// The `google.rpc.ErrorInfo` of an error status: (reason, domain).
pub fn error_info(status: &tonic::Status) -> Option<(String, String)> {
    use tonic_types::StatusExt;
    let info = status.get_error_details().error_info()?.clone();
    Some((info.reason, info.domain))
}
