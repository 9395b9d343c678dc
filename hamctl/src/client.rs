//! The connection to the server: dialling the channel and attaching the
//! bearer token to every call.
//!
//! It owns the gRPC clients the commands use (release and policy service). It must not build requests or
//! interpret responses; the command modules do.

use std::time::Duration;

use release_manager::pb::policy_service_client::PolicyServiceClient;
use release_manager::pb::release_service_client::ReleaseServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};

use crate::cli::GlobalArgs;
use crate::error::{error_chain, CliError};

/// How long to wait for the TCP (and HTTP/2) connection before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The release service client, with the token interceptor.
pub(crate) type ReleaseClient = ReleaseServiceClient<InterceptedService<Channel, AuthInterceptor>>;

/// The policy service client, with the token interceptor.
pub(crate) type PolicyClient = PolicyServiceClient<InterceptedService<Channel, AuthInterceptor>>;

/// Adds `authorization: Bearer <token>` to every call; adds nothing when no
/// token was given.
#[derive(Debug, Clone)]
pub(crate) struct AuthInterceptor {
    header: Option<MetadataValue<Ascii>>,
}

impl AuthInterceptor {
    /// Validates the token once, before any call, so a bad one fails early
    /// and without echoing the secret.
    pub(crate) fn new(token: &str) -> Result<Self, CliError> {
        // Tokens read from files often carry a trailing newline.
        let token = token.trim();
        if token.is_empty() {
            return Ok(AuthInterceptor { header: None });
        }
        let mut value: MetadataValue<Ascii> = format!("Bearer {token}")
            .parse()
            .map_err(|_| CliError::InvalidToken("it must be printable ASCII"))?;
        value.set_sensitive(true);
        Ok(AuthInterceptor {
            header: Some(value),
        })
    }
}

impl Interceptor for AuthInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.header {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// Dials the server named by the global flags.
pub(crate) async fn connect(global: &GlobalArgs) -> Result<(Channel, AuthInterceptor), CliError> {
    let interceptor = AuthInterceptor::new(global.auth_token.as_deref().unwrap_or_default())?;
    let unreachable = |reason: String| CliError::Unreachable {
        url: global.server.clone(),
        reason,
    };
    let endpoint = Endpoint::from_shared(global.server.clone())
        .map_err(|error| unreachable(error_chain(&error)))?
        .connect_timeout(CONNECT_TIMEOUT);
    let channel = endpoint
        .connect()
        .await
        .map_err(|error| unreachable(error_chain(&error)))?;
    Ok((channel, interceptor))
}

/// A connected [`ReleaseClient`].
pub(crate) async fn release_client(global: &GlobalArgs) -> Result<ReleaseClient, CliError> {
    let (channel, interceptor) = connect(global).await?;
    Ok(ReleaseServiceClient::with_interceptor(channel, interceptor))
}

/// A connected [`PolicyClient`].
pub(crate) async fn policy_client(global: &GlobalArgs) -> Result<PolicyClient, CliError> {
    let (channel, interceptor) = connect(global).await?;
    Ok(PolicyServiceClient::with_interceptor(channel, interceptor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authorization(interceptor: &mut AuthInterceptor) -> Option<String> {
        let request = interceptor
            .call(tonic::Request::new(()))
            .expect("interceptor never fails");
        request
            .metadata()
            .get("authorization")
            .map(|value| value.to_str().expect("ascii").to_owned())
    }

    #[test]
    fn token_is_sent_as_bearer() {
        let mut interceptor = AuthInterceptor::new("s3cret\n").expect("valid");
        assert_eq!(
            authorization(&mut interceptor).as_deref(),
            Some("Bearer s3cret")
        );
    }

    #[test]
    fn empty_token_sends_no_header() {
        let mut interceptor = AuthInterceptor::new("  ").expect("valid");
        assert_eq!(authorization(&mut interceptor), None);
    }

    #[test]
    fn unprintable_token_is_rejected_without_echoing_it() {
        let error = AuthInterceptor::new("abc\u{7}def").expect_err("rejected");
        assert!(!error.to_string().contains("abc"), "{error}");
    }
}
