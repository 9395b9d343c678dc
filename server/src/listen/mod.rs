//! The connections of both listeners (gRPC and HTTP), accepted by the
//! server itself so that nobody who reaches a port can hold it: a bound on
//! open connections per listener, a deadline for the first request, an
//! idle timeout once no request is in progress, a timeout on request bodies
//! that go silent, and (gRPC) HTTP/2 keepalive pings. It knows nothing of
//! what is served; the wiring hands it the listeners.
//!
//! At the bound, a new connection takes the place of the one that has been
//! idle longest (one that never sent a request first); when every
//! connection has a request in progress the new one is refused at once
//! (closed). Either way a log line says so, at most every few seconds. So
//! a flood of half-open connections, more than the open-file limit allows,
//! never stops a real client from getting in, and each of them is closed
//! within its deadline.

mod conn;
mod guard;
mod http1;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

pub(crate) use conn::Conn;
pub(crate) use guard::{GuardLayer, TimedBody};
pub(crate) use http1::serve_http1;

/// How connections are bounded, per listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Longest time from accepting a connection to its first request's
    /// headers (and, on HTTP/1.1, to each request's headers).
    pub header_timeout: Duration,
    /// Longest silence while a request's body is being read.
    pub body_timeout: Duration,
    /// How long a connection with no request in progress stays open.
    pub idle_timeout: Duration,
    /// How often an HTTP/2 connection is pinged.
    pub keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed.
    pub keepalive_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: max_connections_for(open_file_limit()),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(20),
        }
    }
}

/// File descriptors kept for everything but connections: the mirror's and
/// the remote's packs, the data dir, git and notification clients.
const FILES_KEPT: u64 = 256;

/// The default bound on each listener's connections: what the open-file
/// limit leaves after [`FILES_KEPT`], shared by the two listeners (at
/// least 16, at most 16,384).
pub fn max_connections_for(open_files: u64) -> usize {
    let per_listener = open_files.saturating_sub(FILES_KEPT) / 2;
    usize::try_from(per_listener.clamp(16, 16_384)).unwrap_or(16_384)
}

/// The process's open-file limit (its soft limit).
pub fn open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur
    } else {
        1024
    }
}

/// Raises the open-file limit to what the system allows the process (its
/// hard limit), as Go programs do at start; returns the limit in force.
pub fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
    }
    limit.rlim_cur
}

/// How often, at most, a listener logs that it is at its bound (or that
/// accepting fails).
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The open connections of one listener.
pub(crate) struct Registry {
    /// `grpc` or `http`, for logs.
    name: &'static str,
    limits: ConnectionLimits,
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<conn::ConnState>>>,
    pressure: Mutex<Pressure>,
}

/// What happened at the bound since it was last logged.
#[derive(Default)]
struct Pressure {
    logged: Option<Instant>,
    refused: u64,
    closed_idle: u64,
    accept_errors: u64,
}

impl Registry {
    fn new(name: &'static str, limits: ConnectionLimits) -> Arc<Self> {
        Arc::new(Registry {
            name,
            limits,
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            pressure: Mutex::new(Pressure::default()),
        })
    }

    /// Milliseconds since the registry began: the clock of its connections.
    fn now_ms(&self) -> u64 {
        conn::millis_since(self.epoch)
    }

    /// Admits a new connection: within the bound, or in the place of the
    /// connection idle longest; `None` when every one is busy.
    fn admit(self: &Arc<Self>) -> Option<Arc<conn::ConnState>> {
        let mut open = self.open.lock().expect("registry lock not poisoned");
        if open.len() >= self.limits.max_connections.max(1) {
            // Never sent a request first (oldest first), then idle longest.
            let shed = open
                .values()
                .filter(|state| state.is_idle())
                .min_by_key(|state| (state.has_seen_request(), state.idle_since_ms(), state.id))
                .map(|state| state.id);
            match shed {
                Some(id) => {
                    if let Some(state) = open.remove(&id) {
                        state.evict();
                    }
                    self.note(|p| p.closed_idle += 1, open.len() + 1);
                }
                None => {
                    self.note(|p| p.refused += 1, open.len());
                    return None;
                }
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(conn::ConnState::new(id, self.epoch));
        open.insert(id, state.clone());
        Some(state)
    }

    /// Forgets a connection that closed.
    fn forget(&self, id: u64) {
        self.open
            .lock()
            .expect("registry lock not poisoned")
            .remove(&id);
    }

    /// Counts what happened at the bound, and logs it at most every
    /// [`LOG_EVERY`].
    fn note(&self, what: impl FnOnce(&mut Pressure), open: usize) {
        let mut pressure = self.pressure.lock().expect("pressure lock not poisoned");
        what(&mut pressure);
        if pressure.logged.is_some_and(|at| at.elapsed() < LOG_EVERY) {
            return;
        }
        tracing::warn!(
            listener = self.name,
            open,
            max_connections = self.limits.max_connections,
            refused = pressure.refused,
            closed_idle = pressure.closed_idle,
            accept_errors = pressure.accept_errors,
            "connection limit reached: new connections take the place of idle ones, or are refused when none is idle (--max-connections)"
        );
        let logged = Some(Instant::now());
        *pressure = Pressure {
            logged,
            ..Pressure::default()
        };
    }

    fn note_accept_error(&self, error: &std::io::Error) {
        let mut pressure = self.pressure.lock().expect("pressure lock not poisoned");
        pressure.accept_errors += 1;
        if pressure.logged.is_some_and(|at| at.elapsed() < LOG_EVERY) {
            return;
        }
        tracing::warn!(listener = self.name, error = %error, accept_errors = pressure.accept_errors, "cannot accept connections (out of file descriptors?); retrying");
        *pressure = Pressure {
            logged: Some(Instant::now()),
            ..Pressure::default()
        };
    }

    /// Connections open now.
    #[cfg(test)]
    fn open_count(&self) -> usize {
        self.open.lock().expect("registry lock not poisoned").len()
    }
}

/// A listener whose connections are bounded and timed: a stream of
/// admitted connections, for tonic's server or [`serve_http1`].
pub(crate) struct Listener {
    listener: TcpListener,
    registry: Arc<Registry>,
    /// After a failed accept (out of file descriptors), a pause before the
    /// next, so that a full table does not spin the accept loop.
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// Pause after an accept failed.
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);

impl Listener {
    /// Guards `listener`'s connections with `limits`; `name` (`grpc`,
    /// `http`) is for logs.
    pub(crate) fn new(listener: TcpListener, name: &'static str, limits: ConnectionLimits) -> Self {
        Listener {
            listener,
            registry: Registry::new(name, limits),
            pause: None,
        }
    }

    /// The limits in force.
    pub(crate) fn limits(&self) -> ConnectionLimits {
        self.registry.limits
    }

    /// The next admitted connection.
    pub(crate) async fn accept(&mut self) -> Conn {
        loop {
            if let Some(Ok(conn)) = std::future::poll_fn(|cx| self.poll_accept(cx)).await {
                return conn;
            }
        }
    }

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<Option<std::io::Result<Conn>>> {
        loop {
            if let Some(pause) = self.pause.as_mut() {
                std::task::ready!(pause.as_mut().poll(cx));
                self.pause = None;
            }
            match self.listener.poll_accept(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    self.registry.note_accept_error(&e);
                    self.pause = Some(Box::pin(tokio::time::sleep(ACCEPT_PAUSE)));
                }
                Poll::Ready(Ok((stream, peer))) => {
                    // Refused: closed at once, so it costs nothing further.
                    let Some(state) = self.registry.admit() else {
                        drop(stream);
                        continue;
                    };
                    // Small request/response exchanges must not wait for
                    // Nagle's algorithm.
                    let _ = stream.set_nodelay(true);
                    return Poll::Ready(Some(Ok(Conn::new(
                        stream,
                        peer,
                        state,
                        self.registry.clone(),
                    ))));
                }
            }
        }
    }
}

impl tokio_stream::Stream for Listener {
    type Item = std::io::Result<Conn>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_accept(cx)
    }
}

use std::future::Future as _;

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: max,
            ..ConnectionLimits::default()
        }
    }

    /// A listener on loopback with short deadlines, and a client of it.
    async fn connected(limits: ConnectionLimits) -> (Conn, tokio::net::TcpStream) {
        let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let mut listener = Listener::new(socket, "test", limits);
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        (listener.accept().await, client)
    }

    /// How long a read on `conn` takes to fail with a timeout.
    async fn read_fails_after(conn: &mut Conn) -> Duration {
        use tokio::io::AsyncReadExt;
        let began = Instant::now();
        let mut buf = [0u8; 16];
        let failed = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .expect("the read ends");
        let error = failed.expect_err("the read fails");
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut, "{error}");
        began.elapsed()
    }

    fn short() -> ConnectionLimits {
        ConnectionLimits {
            max_connections: 8,
            header_timeout: Duration::from_millis(200),
            idle_timeout: Duration::from_millis(400),
            ..ConnectionLimits::default()
        }
    }

    #[tokio::test]
    async fn a_connection_without_a_request_is_closed_at_the_header_timeout() {
        let (mut conn, _client) = connected(short()).await;
        let took = read_fails_after(&mut conn).await;
        assert!(took >= Duration::from_millis(150), "{took:?}");
    }

    #[tokio::test]
    async fn a_busy_connection_stays_and_an_idle_one_goes_at_the_idle_timeout() {
        use tokio::io::AsyncReadExt;
        let (mut conn, _client) = connected(short()).await;
        let busy = conn.info().state.request_started();
        // Past both timeouts while a request runs, the read still waits.
        let mut buf = [0u8; 1];
        let waited = tokio::time::timeout(Duration::from_millis(600), conn.read(&mut buf)).await;
        assert!(waited.is_err(), "a busy connection was closed: {waited:?}");
        drop(busy);
        let took = read_fails_after(&mut conn).await;
        assert!(took >= Duration::from_millis(300), "{took:?}");
    }

    #[test]
    fn the_default_bound_follows_the_file_limit() {
        assert_eq!(max_connections_for(1024), 384);
        assert_eq!(max_connections_for(100), 16);
        assert_eq!(max_connections_for(1 << 20), 16_384);
    }

    #[test]
    fn at_the_bound_the_oldest_silent_connection_gives_way() {
        let registry = Registry::new("test", limits(3));
        let first = registry.admit().unwrap();
        let second = registry.admit().unwrap();
        let third = registry.admit().unwrap();
        // The second has sent a request and is busy; the first and third
        // never sent one.
        let busy = second.request_started();
        let fourth = registry.admit().expect("admitted in place of an idle one");
        assert!(first.is_evicted(), "the oldest silent one goes first");
        assert!(!third.is_evicted() && !second.is_evicted());
        assert_eq!(registry.open_count(), 3);
        let _busy_too = (third.request_started(), fourth.request_started());
        assert!(registry.admit().is_none(), "every one busy: refused");
        drop(busy);
        assert!(registry.admit().is_some(), "the idle one gives way");
        assert!(second.is_evicted());
    }
}
