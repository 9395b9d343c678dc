//! The connection to the server: the accepted forms of the server address,
//! dialling the channel, and attaching the bearer token to every call.
//!
//! It must not build requests or interpret responses; `push` does.

use std::time::Duration;

use release_manager::pb::release_service_client::ReleaseServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};

use crate::error::{error_chain, CliError};

/// How long to wait for the TCP (and HTTP/2) connection before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The release service client, with the token interceptor.
pub(crate) type ReleaseClient = ReleaseServiceClient<InterceptedService<Channel, AuthInterceptor>>;

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

/// Dials `url` (as [`parse_server_url`] returns it) and attaches `token`.
pub(crate) async fn release_client(url: &str, token: &str) -> Result<ReleaseClient, CliError> {
    let interceptor = AuthInterceptor::new(token)?;
    let unreachable = |reason: String| CliError::Unreachable {
        url: url.to_owned(),
        reason,
    };
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|error| unreachable(error_chain(&error)))?
        .connect_timeout(CONNECT_TIMEOUT);
    let channel = endpoint
        .connect()
        .await
        .map_err(|error| unreachable(error_chain(&error)))?;
    Ok(ReleaseServiceClient::with_interceptor(channel, interceptor))
}

/// Normalises a server address into the URL the gRPC channel dials.
///
/// `host:port` gets `http://` in front; `http://` and `https://` URLs are
/// kept (minus trailing slashes); any other scheme, or a URL with a path,
/// is rejected so that a typo fails at once instead of at connect time.
pub(crate) fn parse_server_url(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("the server address is empty".to_owned());
    }
    let url = match trimmed.split_once("://") {
        Some((scheme, rest)) => {
            let scheme = scheme.to_ascii_lowercase();
            if scheme != "http" && scheme != "https" {
                return Err(format!(
                    "unsupported scheme `{scheme}://`: use http://host:port, https://host:port or host:port"
                ));
            }
            format!("{scheme}://{}", rest.trim_end_matches('/'))
        }
        None => format!("http://{}", trimmed.trim_end_matches('/')),
    };
    let uri: tonic::transport::Uri = url
        .parse()
        .map_err(|error| format!("`{raw}` is not a valid server address: {error}"))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{raw}` names no host"));
    }
    let authority = uri.authority().map_or("", |authority| authority.as_str());
    if authority.contains('@') {
        return Err(format!(
            "`{raw}` carries credentials; pass the token with --auth-token instead"
        ));
    }
    let after_host = authority
        .rsplit_once(']')
        .map_or(authority, |(_, rest)| rest);
    if let Some((_, port)) = after_host.rsplit_once(':') {
        if port.parse::<u16>().is_err() {
            return Err(format!("`{raw}` has an invalid port `{port}`"));
        }
    }
    if (uri.path() != "/" && !uri.path().is_empty()) || uri.query().is_some() {
        return Err(format!(
            "`{raw}` has a path; give only the scheme, host and port"
        ));
    }
    Ok(url)
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

    #[test]
    fn server_url_normalisation() {
        let ok = |raw: &str| parse_server_url(raw).expect(raw);
        assert_eq!(ok("127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(ok("localhost:9000"), "http://localhost:9000");
        assert_eq!(ok("http://127.0.0.1:8080/"), "http://127.0.0.1:8080");
        assert_eq!(ok("HTTP://rm.example.com:1"), "http://rm.example.com:1");
        assert_eq!(ok("[::1]:8080"), "http://[::1]:8080");
    }

    #[test]
    fn server_url_rejections() {
        for raw in [
            "",
            "grpc://host:1",
            "http://",
            "http://host:1/api",
            "host:notaport",
            "user@host:1",
        ] {
            assert!(parse_server_url(raw).is_err(), "accepted {raw:?}");
        }
    }
}
