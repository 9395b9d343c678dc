//! The requests' side of a guarded connection, as a tower layer in front
//! of both listeners' services: each request marks its connection busy
//! until its response is sent (so the idle timeout counts only time
//! without a request), carries the client's address, and has its body
//! read with a timeout on silence.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::conn::{ActiveRequest, ConnInfo};

/// An error a body may end with, as hyper, tonic and axum take it.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Guards the requests of a listener's connections; `rebox` turns the
/// timed request body into the body type the inner service reads.
pub(crate) struct GuardLayer<B, Out> {
    body_timeout: Duration,
    rebox: fn(TimedBody<B>) -> Out,
}

impl<B, Out> Clone for GuardLayer<B, Out> {
    fn clone(&self) -> Self {
        GuardLayer {
            body_timeout: self.body_timeout,
            rebox: self.rebox,
        }
    }
}

impl<B, Out> GuardLayer<B, Out> {
    /// Request bodies that stay silent for `body_timeout` fail.
    pub(crate) fn new(body_timeout: Duration, rebox: fn(TimedBody<B>) -> Out) -> Self {
        GuardLayer {
            body_timeout,
            rebox,
        }
    }
}

impl<S, B, Out> tower_layer::Layer<S> for GuardLayer<B, Out> {
    type Service = Guard<S, B, Out>;

    fn layer(&self, inner: S) -> Self::Service {
        Guard {
            inner,
            body_timeout: self.body_timeout,
            rebox: self.rebox,
        }
    }
}

/// The service [`GuardLayer`] makes.
pub(crate) struct Guard<S, B, Out> {
    inner: S,
    body_timeout: Duration,
    rebox: fn(TimedBody<B>) -> Out,
}

impl<S: Clone, B, Out> Clone for Guard<S, B, Out> {
    fn clone(&self) -> Self {
        Guard {
            inner: self.inner.clone(),
            body_timeout: self.body_timeout,
            rebox: self.rebox,
        }
    }
}

/// The connection a request came on, over plain TCP or TLS.
fn connection_of<B>(request: &Request<B>) -> Option<&ConnInfo> {
    let extensions = request.extensions();
    extensions.get::<ConnInfo>().or_else(|| {
        extensions
            .get::<tonic::transport::server::TlsConnectInfo<ConnInfo>>()
            .map(|tls| tls.get_ref())
    })
}

impl<S, B, Out, ResBody> tower_service::Service<Request<B>> for Guard<S, B, Out>
where
    S: tower_service::Service<Request<Out>, Response = Response<ResBody>>,
{
    type Response = Response<TrackedBody<ResBody>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let connection = connection_of(&request).cloned();
        let active = connection
            .as_ref()
            .map(|connection| connection.state.request_started());
        if let Some(connection) = connection {
            // The client's address, for whoever shares something between
            // clients fairly (uploads).
            request
                .extensions_mut()
                .insert::<SocketAddr>(connection.peer);
        }
        let timeout = self.body_timeout;
        let request = request.map(|body| (self.rebox)(TimedBody::new(body, timeout)));
        TrackedFuture {
            inner: self.inner.call(request),
            active,
        }
    }
}

pin_project! {
    /// The response of a guarded request, whose body keeps the connection
    /// busy until it is sent.
    pub(crate) struct TrackedFuture<F> {
        #[pin]
        inner: F,
        active: Option<ActiveRequest>,
    }
}

impl<F, ResBody, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<TrackedBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(cx))?;
        let active = this.active.take();
        Poll::Ready(Ok(response.map(|inner| TrackedBody {
            inner,
            _active: active,
        })))
    }
}

pin_project! {
    /// A response body; while it lives the connection counts as busy.
    pub(crate) struct TrackedBody<B> {
        #[pin]
        inner: B,
        _active: Option<ActiveRequest>,
    }
}

impl<B: Body> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that went silent for longer than `--body-timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body sent nothing for {0:?} (--body-timeout)")]
pub(crate) struct BodyTimedOut(Duration);

pin_project! {
    /// A request body whose reader gives up when no data comes for the
    /// body timeout (the clock runs only while the body is being read).
    pub(crate) struct TimedBody<B> {
        #[pin]
        inner: B,
        timeout: Duration,
        silence: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<B> TimedBody<B> {
    fn new(inner: B, timeout: Duration) -> Self {
        TimedBody {
            inner,
            timeout,
            silence: None,
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => {
                *this.silence = None;
                Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeout = *this.timeout;
                let silence = this
                    .silence
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match silence.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimedOut(timeout).into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body whose sender never sends.
    struct Silent;

    impl Body for Silent {
        type Data = bytes::Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_silent_body_fails_at_the_body_timeout() {
        let mut body = TimedBody::new(Silent, Duration::from_millis(100));
        let began = std::time::Instant::now();
        let frame = tokio::time::timeout(
            Duration::from_secs(10),
            std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)),
        )
        .await
        .expect("the read ends");
        let error = frame.expect("a frame").expect_err("an error");
        assert!(error.to_string().contains("--body-timeout"), "{error}");
        assert!(began.elapsed() >= Duration::from_millis(90));
    }
}
