//! `GET /ping` on the gRPC port, answered `pong`: the original release
//! manager served its HTTP API (and the `/ping` its Deployment's probes
//! ask) on port 8080, where this server speaks gRPC. Answering there too
//! lets a Deployment switched to this image keep its probes; `/ping` on
//! the HTTP listener answers the same (see `http`).
//!
//! It owns only that one route, in front of every gRPC service; it must
//! not see or change any other request.

use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::http::{Method, Request, Response};
use tonic::codegen::{BoxFuture, Service};

/// Wraps the gRPC router with the `/ping` route.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PingLayer;

impl<S> tower_layer::Layer<S> for PingLayer {
    type Service = Ping<S>;

    fn layer(&self, inner: S) -> Ping<S> {
        Ping { inner }
    }
}

/// The gRPC router with `/ping` in front.
#[derive(Debug, Clone)]
pub(crate) struct Ping<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for Ping<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if request.uri().path() == "/ping"
            && (request.method() == Method::GET || request.method() == Method::HEAD)
        {
            return Box::pin(async { Ok(pong()) });
        }
        let call = self.inner.call(request);
        Box::pin(call)
    }
}

/// The original's answer: `pong`, as text.
fn pong() -> Response<Body> {
    let mut response = Response::new(Body::new(axum::body::Body::from("pong")));
    response.headers_mut().insert(
        tonic::codegen::http::header::CONTENT_TYPE,
        tonic::codegen::http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
