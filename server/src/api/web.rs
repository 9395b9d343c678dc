//! What the gRPC port needs for clients beyond Rust's: CORS for browsers
//! on other origins (gRPC-Web), and `grpc-message` encoded the way the gRPC
//! spec asks.
//!
//! CORS is off unless `--cors-allowed-origins` names origins: then
//! preflights are answered, the request headers of gRPC-Web and Connect
//! clients are allowed and `grpc-status`, `grpc-message` and
//! `grpc-status-details-bin` are exposed to the page. `*` allows any
//! origin, and only without credentials (cookies), which the API never
//! needs: its token travels in the `authorization` header.
//!
//! tonic percent-encodes more of `grpc-message` than the spec's
//! "percent-encode what is not printable ASCII, and `%`" (a `?` becomes
//! `%3F`, a space `%20`), and grpc-js decodes it with `decodeURI`, which
//! leaves `%3F` as it is. The layer here re-encodes every `grpc-message`
//! (headers and trailers) as the spec says, so every client shows the
//! message as it was written.

use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use http_body::Frame;
use release_manager::names;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Who may call the API from a browser page on another origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsPolicy {
    /// Origins allowed (`https://app.example.com`); empty: none.
    pub origins: Vec<String>,
    /// Any origin (`*`).
    pub any: bool,
    /// Whether pages may send credentials (cookies, TLS client
    /// certificates); never with `*`.
    pub allow_credentials: bool,
}

impl CorsPolicy {
    /// The policy of `--cors-allowed-origins` (a comma-separated list, or
    /// `*`) and `--cors-allow-credentials`; the error says what is wrong.
    pub fn parse(list: &str, allow_credentials: bool) -> Result<CorsPolicy, String> {
        let mut policy = CorsPolicy {
            allow_credentials,
            ..CorsPolicy::default()
        };
        for origin in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            if origin == "*" {
                policy.any = true;
                continue;
            }
            let Some((scheme, rest)) = origin.split_once("://") else {
                return Err(format!(
                    "--cors-allowed-origins: {origin:?} is not an origin (scheme://host[:port], e.g. https://app.example.com)"
                ));
            };
            let host_ok =
                !rest.is_empty() && !rest.contains(['/', '?', '#', ' ']) && rest.is_ascii();
            if !matches!(scheme, "http" | "https") || !host_ok {
                return Err(format!(
                    "--cors-allowed-origins: {origin:?} is not an origin (scheme://host[:port], e.g. https://app.example.com; no path)"
                ));
            }
            policy.origins.push(origin.to_ascii_lowercase());
        }
        if policy.any && !policy.origins.is_empty() {
            return Err("--cors-allowed-origins: `*` allows every origin; give it alone".into());
        }
        if policy.any && allow_credentials {
            return Err(
                "--cors-allow-credentials cannot go with --cors-allowed-origins '*': name the origins that may send credentials".into(),
            );
        }
        if allow_credentials && policy.origins.is_empty() {
            return Err("--cors-allow-credentials needs --cors-allowed-origins".into());
        }
        Ok(policy)
    }

    /// The CORS layer of this policy; `None` when no origin is allowed (no
    /// CORS headers at all, so browsers refuse cross-origin calls).
    pub(crate) fn layer(&self) -> Option<CorsLayer> {
        let allow_origin = if self.any {
            AllowOrigin::any()
        } else if self.origins.is_empty() {
            return None;
        } else {
            AllowOrigin::list(
                self.origins
                    .iter()
                    .filter_map(|origin| HeaderValue::from_str(origin).ok()),
            )
        };
        let header = HeaderName::from_static;
        Some(
            CorsLayer::new()
                .allow_origin(allow_origin)
                .allow_methods([Method::POST])
                .allow_headers([
                    header("content-type"),
                    header("authorization"),
                    header("x-grpc-web"),
                    header("x-user-agent"),
                    header("grpc-timeout"),
                    header("connect-protocol-version"),
                    header("connect-timeout-ms"),
                ])
                .expose_headers([
                    header("grpc-status"),
                    header("grpc-message"),
                    header("grpc-status-details-bin"),
                ])
                .allow_credentials(self.allow_credentials)
                .max_age(std::time::Duration::from_secs(2 * 60 * 60)),
        )
    }
}

/// Re-encodes `grpc-message` in the responses of the service it wraps.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GrpcMessageLayer;

impl<S> tower::Layer<S> for GrpcMessageLayer {
    type Service = GrpcMessage<S>;

    fn layer(&self, inner: S) -> GrpcMessage<S> {
        GrpcMessage { inner }
    }
}

/// The service of [`GrpcMessageLayer`].
#[derive(Debug, Clone)]
pub(crate) struct GrpcMessage<S> {
    inner: S,
}

type BoxFuture<T, E> = Pin<Box<dyn std::future::Future<Output = Result<T, E>> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for GrpcMessage<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let answer = self.inner.call(request);
        Box::pin(async move {
            let mut response = answer.await?;
            reencode(response.headers_mut());
            let (parts, body) = response.into_parts();
            Ok(http::Response::from_parts(
                parts,
                tonic::body::Body::new(Trailers { body }),
            ))
        })
    }
}

/// A response body whose trailers get [`reencode`]d.
struct Trailers {
    body: tonic::body::Body,
}

impl http_body::Body for Trailers {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        polled.map(|frame| {
            frame.map(|frame| {
                frame.map(|frame| match frame.into_trailers() {
                    Ok(mut trailers) => {
                        reencode(&mut trailers);
                        Frame::trailers(trailers)
                    }
                    Err(frame) => frame,
                })
            })
        })
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Rewrites a `grpc-message` in `headers` from tonic's encoding to the
/// spec's.
fn reencode(headers: &mut HeaderMap) {
    let Some(value) = headers.get("grpc-message") else {
        return;
    };
    let message = names::percent_decode(value.as_bytes());
    if let Ok(value) = HeaderValue::from_str(&spec_encode(&message)) {
        headers.insert("grpc-message", value);
    }
}

/// The gRPC spec's `grpc-message` encoding: every byte outside printable
/// ASCII (0x20 to 0x7E), and `%`, as `%XX`.
fn spec_encode(message: &[u8]) -> String {
    let mut out = String::with_capacity(message.len());
    for &byte in message {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use release_manager::names::percent_decode;

    #[test]
    fn messages_are_encoded_as_the_spec_says() {
        let mut headers = HeaderMap::new();
        // What tonic sends for `did you mean "web"? 100% — ok`.
        let tonic = tonic::Status::not_found("did you mean \"web\"? 100% — ok");
        let mut sent = HeaderMap::new();
        tonic.add_header(&mut sent).expect("a header");
        headers.insert("grpc-message", sent["grpc-message"].clone());
        reencode(&mut headers);
        assert_eq!(
            headers["grpc-message"],
            "did you mean \"web\"? 100%25 %E2%80%94 ok"
        );
        // Decoding the spec's way gives the message back.
        let decoded = percent_decode(headers["grpc-message"].as_bytes());
        assert_eq!(
            String::from_utf8(decoded).unwrap(),
            "did you mean \"web\"? 100% — ok"
        );
    }

    #[test]
    fn cors_origins_parse_and_refuse_what_would_be_unsafe() {
        assert!(CorsPolicy::parse("", false).unwrap().layer().is_none());
        let two =
            CorsPolicy::parse("https://app.example.com, http://127.0.0.1:3000", false).unwrap();
        assert_eq!(
            two.origins,
            ["https://app.example.com", "http://127.0.0.1:3000"]
        );
        assert!(two.layer().is_some());
        assert!(CorsPolicy::parse("*", false).unwrap().any);
        assert!(CorsPolicy::parse("*", true)
            .unwrap_err()
            .contains("cannot go with"));
        assert!(CorsPolicy::parse("app.example.com", false).is_err());
        assert!(CorsPolicy::parse("https://app.example.com/path", false).is_err());
        assert!(CorsPolicy::parse("*,https://a.example", false).is_err());
        assert!(CorsPolicy::parse("", true).is_err());
        CorsPolicy::parse("https://a.example", true).unwrap();
    }
}
