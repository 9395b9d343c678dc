//! Dialling the server: the channel (plain or TLS, with the CA file the
//! environment names), the bounded connect, and the interceptor that sends
//! the bearer token and the caller's deadline with every call.

use std::time::Duration;

use release_manager::pb::access_service_client::AccessServiceClient;
use release_manager::pb::policy_service_client::PolicyServiceClient;
use release_manager::pb::release_service_client::ReleaseServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};

use crate::wording::error_chain;

/// How long to wait for the TCP (and HTTP/2) connection before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The release service client, with the token interceptor.
pub type ReleaseClient = ReleaseServiceClient<InterceptedService<Channel, AuthInterceptor>>;

/// The policy service client, with the token interceptor.
pub type PolicyClient = PolicyServiceClient<InterceptedService<Channel, AuthInterceptor>>;

/// The access service client (sign-in settings, who am I), with the token
/// interceptor.
pub type AccessClient = AccessServiceClient<InterceptedService<Channel, AuthInterceptor>>;

/// Why the server could not be dialled.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The channel to the server could not be opened.
    #[error("cannot reach server at {url}: {reason}")]
    Unreachable { url: String, reason: String },

    /// The auth token cannot be sent as a header value.
    #[error("invalid auth token: {0}")]
    InvalidToken(&'static str),
}

/// Adds `authorization: Bearer <token>` to every call; adds nothing when no
/// token was given.
#[derive(Debug, Clone)]
pub struct AuthInterceptor {
    header: Option<MetadataValue<Ascii>>,
    /// Sent as `grpc-timeout`, so the server drops a write it could not
    /// apply before the caller stopped waiting.
    timeout: Option<Duration>,
}

impl AuthInterceptor {
    /// Validates the token once, before any call, so a bad one fails early
    /// and without echoing the secret.
    pub fn new(token: &str) -> Result<Self, ConnectError> {
        // Tokens read from files often carry a trailing newline.
        let token = token.trim();
        if token.is_empty() {
            return Ok(AuthInterceptor {
                header: None,
                timeout: None,
            });
        }
        let mut value: MetadataValue<Ascii> = format!("Bearer {token}")
            .parse()
            .map_err(|_| ConnectError::InvalidToken("it must be printable ASCII"))?;
        value.set_sensitive(true);
        Ok(AuthInterceptor {
            header: Some(value),
            timeout: None,
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
        if let Some(timeout) = self.timeout {
            request.set_timeout(timeout);
        }
        Ok(request)
    }
}

/// Names a PEM file of extra certificate authorities to trust for `https://`
/// servers (a private CA or a self-signed server certificate), besides the
/// system's.
pub const CA_CERT_ENV: &str = "RELEASE_MANAGER_CA_CERT";

/// TLS settings for `https://` servers: the system's roots, plus the CA file
/// named by [`CA_CERT_ENV`].
fn client_tls() -> Result<tonic::transport::ClientTlsConfig, String> {
    let mut tls = tonic::transport::ClientTlsConfig::new().with_native_roots();
    if let Some(path) = std::env::var_os(CA_CERT_ENV) {
        let pem = std::fs::read(&path).map_err(|e| {
            format!(
                "cannot read {CA_CERT_ENV} file {}: {e}",
                std::path::Path::new(&path).display()
            )
        })?;
        tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
    }
    Ok(tls)
}

/// Dials `url` (as [`crate::parse_server_url`] returns it); the interceptor attaches
/// `token` (empty: none) to every call. With a `timeout`, every call gives
/// up after it (client side) and tells the server its deadline; without
/// one (streams that run until stopped) only the connect is bounded.
pub async fn connect(
    url: &str,
    token: &str,
    timeout: Option<Duration>,
) -> Result<(Channel, AuthInterceptor), ConnectError> {
    let mut interceptor = AuthInterceptor::new(token)?;
    interceptor.timeout = timeout;
    let unreachable = |reason: String| ConnectError::Unreachable {
        url: url.to_owned(),
        reason: match crate::wording::connect_hint(&reason) {
            Some(hint) => format!("{reason}{hint}"),
            None => reason,
        },
    };
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|error| unreachable(error_chain(&error)))?
        .connect_timeout(timeout.map_or(CONNECT_TIMEOUT, |t| t.min(CONNECT_TIMEOUT)));
    if let Some(timeout) = timeout {
        endpoint = endpoint.timeout(timeout);
    }
    if url.starts_with("https://") {
        endpoint = endpoint
            .tls_config(client_tls().map_err(unreachable)?)
            .map_err(|error| unreachable(error_chain(&error)))?;
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|error| unreachable(error_chain(&error)))?;
    Ok((channel, interceptor))
}

/// A connected [`ReleaseClient`]; see [`connect`].
pub async fn release_client(
    url: &str,
    token: &str,
    timeout: Option<Duration>,
) -> Result<ReleaseClient, ConnectError> {
    let (channel, interceptor) = connect(url, token, timeout).await?;
    Ok(ReleaseServiceClient::with_interceptor(channel, interceptor))
}

/// A connected [`PolicyClient`]; see [`connect`].
pub async fn policy_client(
    url: &str,
    token: &str,
    timeout: Option<Duration>,
) -> Result<PolicyClient, ConnectError> {
    let (channel, interceptor) = connect(url, token, timeout).await?;
    Ok(PolicyServiceClient::with_interceptor(channel, interceptor))
}

/// A connected [`AccessClient`]; see [`connect`].
pub async fn access_client(
    url: &str,
    token: &str,
    timeout: Option<Duration>,
) -> Result<AccessClient, ConnectError> {
    let (channel, interceptor) = connect(url, token, timeout).await?;
    Ok(AccessServiceClient::with_interceptor(channel, interceptor))
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
