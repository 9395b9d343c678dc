//! Serving the HTTP port (dashboard, webhooks, metrics) over HTTP/1.1 on
//! guarded connections: hyper's own header-read timeout on every request,
//! the guard's deadlines on the connection, and a graceful stop that lets
//! requests in progress finish.

use std::future::Future;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tower_service::Service;

use super::guard::TimedBody;
use super::{GuardLayer, Listener};

/// Serves `app` on `listener` until `stop` resolves; then stops accepting
/// and waits for the open connections to finish what they are doing.
pub(crate) async fn serve_http1(
    mut listener: Listener,
    app: axum::Router,
    stop: impl Future<Output = ()>,
) {
    let limits = listener.limits();
    let rebox: fn(TimedBody<Incoming>) -> axum::body::Body = axum::body::Body::new;
    let service = tower_layer::Layer::layer(&GuardLayer::new(limits.body_timeout, rebox), app);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let (closing, closing_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            conn = listener.accept() => {
                let info = conn.info();
                let service = service.clone();
                let builder = builder.clone();
                let mut closing = closing_rx.clone();
                connections.spawn(async move {
                    let per_request = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
                        request.extensions_mut().insert(info.clone());
                        request
                            .extensions_mut()
                            .insert(axum::extract::ConnectInfo(info.peer));
                        // A router is always ready.
                        service.clone().call(request)
                    });
                    let connection = builder.serve_connection(TokioIo::new(conn), per_request);
                    tokio::pin!(connection);
                    tokio::select! {
                        served = connection.as_mut() => {
                            if let Err(e) = served {
                                tracing::debug!(error = %e, "HTTP connection ended");
                            }
                        }
                        _ = closing.changed() => {
                            connection.as_mut().graceful_shutdown();
                            let _ = connection.await;
                        }
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut stop => break,
        }
    }
    drop(listener);
    let _ = closing.send(true);
    while connections.join_next().await.is_some() {}
}
