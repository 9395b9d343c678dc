//! Serving before ready: the gRPC port is bound and answers from the first
//! moment of a start, while the mirror is cloned or fetched and its history
//! read (minutes, the first time, on a long history). Until then the health
//! service says `NOT_SERVING` and every call of the release and policy
//! services gets `UNAVAILABLE` saying that the server is starting; a
//! [`Gate`] stands in for each service and lets calls through once the
//! real one is put in it.
//!
//! It owns only that switch; what "ready" means is decided in `lib`.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;

/// What a call gets while the server starts.
pub(crate) const STARTING: &str = "the release manager is starting: it is preparing its mirror of the config repository and reading its history; try again in a moment";

/// A gRPC service that answers `UNAVAILABLE` until [`Gate::open`] gives it
/// the real one. Cheap to clone; every clone shares the switch.
pub(crate) struct Gate<S> {
    inner: Arc<OnceLock<S>>,
}

impl<S> Gate<S> {
    /// A closed gate.
    pub(crate) fn closed() -> Self {
        Gate {
            inner: Arc::new(OnceLock::new()),
        }
    }

    /// Lets calls through to `service` from now on.
    pub(crate) fn open(&self, service: S) {
        if self.inner.set(service).is_err() {
            tracing::error!("a service gate was opened twice; the first service stays");
        }
    }
}

impl<S> Clone for Gate<S> {
    fn clone(&self) -> Self {
        Gate {
            inner: self.inner.clone(),
        }
    }
}

impl<S: NamedService> NamedService for Gate<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<Request<B>> for Gate<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match self.inner.get() {
            Some(service) => {
                let mut service = service.clone();
                Box::pin(async move {
                    std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
                    service.call(request).await
                })
            }
            None => Box::pin(async {
                let status = crate::api::errors::failure(
                    tonic::Code::Unavailable,
                    crate::domain::Reason::Starting,
                    STARTING,
                );
                Ok(status.into_http())
            }),
        }
    }
}
