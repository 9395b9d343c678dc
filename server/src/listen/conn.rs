//! One admitted connection: the TCP stream, and the state its deadlines
//! are read from. Reading fails with `TimedOut` (and the server closes the
//! connection) once its first request is overdue, once it has been idle
//! too long, or at once when a newer connection took its place.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::Registry;

/// Milliseconds since `epoch`: the clock of a registry's connections.
pub(super) fn millis_since(epoch: std::time::Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// What the deadlines of one connection are read from; shared with the
/// requests it carries (see [`super::GuardLayer`]).
#[derive(Debug)]
pub(crate) struct ConnState {
    pub(super) id: u64,
    /// When it was accepted, in the registry's milliseconds.
    accepted_ms: u64,
    /// Requests in progress (their responses not yet sent).
    active: AtomicUsize,
    /// Whether a request's headers ever arrived.
    seen_request: AtomicBool,
    /// Since when no request is in progress, in the registry's
    /// milliseconds.
    idle_since_ms: AtomicU64,
    /// A newer connection took its place.
    evicted: AtomicBool,
    /// The reader to wake when evicted.
    reader: Mutex<Option<Waker>>,
    /// The registry's clock: its milliseconds count from here.
    epoch: std::time::Instant,
}

impl ConnState {
    pub(super) fn new(id: u64, epoch: std::time::Instant) -> Self {
        let now_ms = millis_since(epoch);
        ConnState {
            id,
            accepted_ms: now_ms,
            active: AtomicUsize::new(0),
            seen_request: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(now_ms),
            evicted: AtomicBool::new(false),
            reader: Mutex::new(None),
            epoch,
        }
    }

    /// Whether no request is in progress.
    pub(super) fn is_idle(&self) -> bool {
        self.active.load(Ordering::SeqCst) == 0 && !self.is_evicted()
    }

    pub(super) fn has_seen_request(&self) -> bool {
        self.seen_request.load(Ordering::SeqCst)
    }

    pub(super) fn idle_since_ms(&self) -> u64 {
        self.idle_since_ms.load(Ordering::SeqCst)
    }

    pub(super) fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::SeqCst)
    }

    /// Makes the connection close at its next read, and wakes that read.
    pub(super) fn evict(&self) {
        self.evicted.store(true, Ordering::SeqCst);
        if let Some(waker) = self.reader.lock().expect("waker lock not poisoned").take() {
            waker.wake();
        }
    }

    /// A request arrived: the connection is busy until the guard drops
    /// (its response was sent).
    pub(crate) fn request_started(self: &Arc<Self>) -> ActiveRequest {
        self.seen_request.store(true, Ordering::SeqCst);
        self.active.fetch_add(1, Ordering::SeqCst);
        ActiveRequest {
            state: self.clone(),
        }
    }

    /// When reading must fail, in the registry's milliseconds: `None`
    /// while a request is in progress.
    fn deadline_ms(&self, header_timeout: Duration, idle_timeout: Duration) -> Option<u64> {
        if self.is_evicted() {
            return Some(0);
        }
        if self.active.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Some(if self.has_seen_request() {
            self.idle_since_ms().saturating_add(ms(idle_timeout))
        } else {
            self.accepted_ms.saturating_add(ms(header_timeout))
        })
    }
}

/// A request in progress on a connection; dropping it (the response was
/// sent, or abandoned) may leave the connection idle.
pub(crate) struct ActiveRequest {
    state: Arc<ConnState>,
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        let now = millis_since(self.state.epoch);
        self.state.idle_since_ms.store(now, Ordering::SeqCst);
        self.state.active.fetch_sub(1, Ordering::SeqCst);
        // The reader sleeps with no deadline while a request runs: wake it
        // so that it starts the idle one.
        if let Some(waker) = self
            .state
            .reader
            .lock()
            .expect("waker lock not poisoned")
            .as_ref()
        {
            waker.wake_by_ref();
        }
    }
}

/// What the requests of a connection carry in their extensions: its peer
/// and its state.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    /// The client's address.
    pub(crate) peer: SocketAddr,
    pub(crate) state: Arc<ConnState>,
}

/// An admitted connection.
pub(crate) struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<ConnState>,
    registry: Arc<Registry>,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// The deadline `timer` is set for.
    armed_ms: Option<u64>,
}

impl Conn {
    pub(super) fn new(
        stream: TcpStream,
        peer: SocketAddr,
        state: Arc<ConnState>,
        registry: Arc<Registry>,
    ) -> Self {
        Conn {
            stream,
            peer,
            state,
            registry,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed_ms: None,
        }
    }

    /// What its requests carry.
    pub(crate) fn info(&self) -> ConnInfo {
        ConnInfo {
            peer: self.peer,
            state: self.state.clone(),
        }
    }

    /// Fails once the connection's deadline passed; otherwise makes sure
    /// the reader is woken at it.
    fn check_deadline(&mut self, cx: &mut Context<'_>) -> std::io::Result<()> {
        {
            let mut reader = self.state.reader.lock().expect("waker lock not poisoned");
            if !reader.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *reader = Some(cx.waker().clone());
            }
        }
        let limits = self.registry.limits;
        let Some(deadline) = self
            .state
            .deadline_ms(limits.header_timeout, limits.idle_timeout)
        else {
            return Ok(());
        };
        let now = self.registry.now_ms();
        if now >= deadline {
            let why = if self.state.is_evicted() {
                "closed to make room for a new connection (--max-connections)"
            } else if self.state.has_seen_request() {
                "idle for longer than --idle-timeout"
            } else {
                "no request within --header-timeout"
            };
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, why));
        }
        if self.armed_ms != Some(deadline) {
            let at = self.registry.epoch + Duration::from_millis(deadline);
            self.timer.as_mut().reset(at.into());
            self.armed_ms = Some(deadline);
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            // Woken at the deadline: the next read fails.
            self.armed_ms = None;
            cx.waker().wake_by_ref();
        }
        Ok(())
    }
}

use std::future::Future as _;

impl Drop for Conn {
    fn drop(&mut self) {
        self.registry.forget(self.state.id);
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        this.check_deadline(cx)?;
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info()
    }
}
