//! Connections: the accept loop and each connection's life, on hyper directly (axum's `serve` has no
//! timeouts and no connection cap, so a few idle sockets could hold every file descriptor).
//!
//! - **Header timeout**: a connection that has sent no complete request head `header_timeout` after it
//!   opened, or after the first byte of its next head, is closed (nginx's `client_header_timeout`).
//! - **Keep-alive timeout**: a connection idle `keep_alive` after its last answer is closed (nginx's
//!   `keepalive_timeout`).
//! - **Cap**: at most `max_connections` are served. At the cap a new connection closes the one idle
//!   the longest (no request in flight), as nginx reuses its keep-alive connections; when none is idle,
//!   up to [`CONNECTION_RESERVE`] more are accepted for the health routes only (others get `503`), so a
//!   load balancer's probes still get through; beyond that a connection is closed at once.
//! - **Accept errors** (`EMFILE` and the like) back off (5 ms doubling to 1 s) and retry, closing an idle
//!   connection to free a descriptor; they never end the accept loop.
//! - **Early answers**: an answer sent before its request's body was read carries `Connection: close`,
//!   and the connection then reads and discards what the client still sends (for at most
//!   [`LINGER`]) before closing, so the client reads its answer rather than a reset (nginx's
//!   lingering close).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{header, HeaderValue, Request, Response};
use axum::response::IntoResponse;
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify};
use tower::ServiceExt;

use super::auth::OPEN_ROUTES;
use super::burst::Burst;
use super::error::ApiError;

/// Connections accepted over the cap when none can be closed, for the health routes only.
pub const CONNECTION_RESERVE: usize = 32;

/// Most bytes of a request head (request line and headers) hyper buffers: above it, `431`. nginx's
/// default is 8 KiB a line and 32 KiB in all; hyper's own ~400 KiB let 3,000 slow clients hold 1.36 GB.
/// The read buffer gets the same bound, so it also bounds what one connection holds.
const MAX_HEAD_BYTES: usize = 64 << 10;

/// How long a connection that answered early keeps reading (and discarding) what its client sends.
pub(crate) const LINGER: Duration = Duration::from_secs(5);

/// Where the server is in its life; connections watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    Serving,
    /// A shutdown signal came: no new requests on a connection, idle ones close.
    Draining,
    /// The grace period is over: work is cancelled, and bodies still arriving are answered `503`.
    Cut,
    /// The drain period is over too: every connection closes.
    Closed,
}

/// The connection limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub header: Duration,
    pub keep_alive: Duration,
    pub max: usize,
}

/// One open connection's state, shared by its task, its socket wrapper and its requests.
struct Conn {
    over_cap: bool,
    /// Requests whose answer is not all written yet.
    in_flight: AtomicUsize,
    /// When it last fell idle (opened, or its last answer written), in ms since the registry's epoch.
    idle_since: AtomicU64,
    /// When the first byte of its next request head came, in ms since the epoch plus 1 (0: none yet).
    head_started: AtomicU64,
    /// Whether it has had a request (a new connection gets the header timeout, not the keep-alive one).
    served: AtomicBool,
    /// Since when its socket has refused more of an answer (the client not reading), in ms since the
    /// epoch plus 1 (0: not blocked). hyper lets go of an answer's body before it is all sent.
    write_blocked: AtomicU64,
    /// Set when the server asked it to close.
    evicted: AtomicBool,
    close: Notify,
}

impl Conn {
    /// No request in flight and no answer still being written.
    fn idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && self.write_blocked.load(Ordering::Acquire) == 0
    }

    /// When it is to be closed if nothing happens meanwhile, in ms since the epoch; `None` while busy.
    fn expires(&self, limits: &Limits) -> Option<u64> {
        // A client that stops reading its answer holds it for the keep-alive time at most.
        match self.write_blocked.load(Ordering::Acquire) {
            0 => {}
            since => return Some(since - 1 + ms(limits.keep_alive)),
        }
        if !self.idle() {
            return None;
        }
        let head = self.head_started.load(Ordering::Acquire);
        let since = self.idle_since.load(Ordering::Acquire);
        Some(match (head, self.served.load(Ordering::Acquire)) {
            (0, false) => since + ms(limits.header),
            (0, true) => since + ms(limits.keep_alive),
            (h, _) => h - 1 + ms(limits.header),
        })
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 4)
}

/// The open connections.
pub(crate) struct Registry {
    epoch: Instant,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next: AtomicU64,
}

impl Registry {
    pub(crate) fn new() -> Self {
        Self { epoch: Instant::now(), conns: Mutex::default(), next: AtomicU64::new(0) }
    }

    fn now(&self) -> u64 {
        ms(self.epoch.elapsed())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Open connections (those closing included).
    pub(crate) fn open(&self) -> usize {
        self.lock().len()
    }

    /// Connections accepted so far.
    pub(crate) fn opened(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }

    /// Whether no connection has a request in flight.
    pub(crate) fn idle(&self) -> bool {
        self.lock().values().all(|c| c.idle())
    }

    /// (served normally and not closing, over the cap).
    fn counts(&self) -> (usize, usize) {
        let conns = self.lock();
        let over = conns.values().filter(|c| c.over_cap).count();
        let closing = conns.values().filter(|c| !c.over_cap && c.evicted.load(Ordering::Relaxed)).count();
        (conns.len() - over - closing, over)
    }

    fn add(&self, over_cap: bool) -> (u64, Arc<Conn>) {
        let conn = Arc::new(Conn {
            over_cap,
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(self.now()),
            head_started: AtomicU64::new(0),
            served: AtomicBool::new(false),
            write_blocked: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            close: Notify::new(),
        });
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, conn.clone());
        (id, conn)
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Asks the connection idle the longest, with no head begun, to close; whether there was one.
    fn evict_idle(&self) -> bool {
        let conns = self.lock();
        let oldest = conns
            .values()
            .filter(|c| c.idle() && !c.evicted.load(Ordering::Relaxed))
            .filter(|c| c.head_started.load(Ordering::Acquire) == 0)
            .min_by_key(|c| c.idle_since.load(Ordering::Acquire));
        match oldest {
            Some(c) => {
                c.evicted.store(true, Ordering::Relaxed);
                c.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// The accept loop, until `shutdown` completes; then the listener is closed. Each connection runs on
/// its own task holding a clone of `alive` (so the caller knows when all have ended) and watching
/// `phase`.
pub(crate) async fn accept(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    registry: Arc<Registry>,
    phase: watch::Receiver<Phase>,
    alive: mpsc::Sender<()>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let full = Burst::connections("the connection cap and its reserve are full");
    let errors = Burst::connections("cannot accept connections (out of file descriptors?)");
    let mut backoff = Duration::ZERO;
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            // The client gave up before the accept: nothing to do.
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of descriptors or memory: close an idle connection, wait, retry.
                errors.refused();
                tracing::debug!("accept failed: {e}");
                registry.evict_idle();
                backoff = (backoff * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(backoff) => continue,
                }
            }
        };
        backoff = Duration::ZERO;
        errors.ended();
        let (normal, over) = registry.counts();
        let over_cap = match normal < limits.max || registry.evict_idle() {
            true => false,
            false if over < CONNECTION_RESERVE => true,
            false => {
                // Closed at once: the client sees the connection end, not a hang.
                full.refused();
                drop(stream);
                continue;
            }
        };
        if !over_cap {
            full.ended();
        }
        // Answers are written whole at once; Nagle's delay would only add latency.
        let _ = stream.set_nodelay(true);
        let (id, conn) = registry.add(over_cap);
        let (router, registry, phase, alive) =
            (router.clone(), registry.clone(), phase.clone(), alive.clone());
        tokio::spawn(async move {
            serve(stream, &conn, router, limits, &registry, phase).await;
            registry.remove(id);
            drop(alive);
        });
    }
    full.ended();
    errors.ended();
}

/// Errors of one connection that the next accept does not share (axum's list).
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}

/// Serves one connection until it ends, times out, is evicted, or the server closes it.
async fn serve(
    stream: TcpStream,
    conn: &Arc<Conn>,
    router: Router,
    limits: Limits,
    registry: &Arc<Registry>,
    mut phase: watch::Receiver<Phase>,
) {
    let linger = Arc::new(AtomicBool::new(false));
    let io = TokioIo::new(Watched { stream, conn: conn.clone(), registry: registry.clone() });
    let service = {
        let (conn, registry, linger) = (conn.clone(), registry.clone(), linger.clone());
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let busy = Busy::begin(conn.clone(), registry.clone());
            let (router, over_cap, linger) = (router.clone(), conn.over_cap, linger.clone());
            // Boxed: hyper's `poll_without_shutdown` (for the lingering close) needs an `Unpin` future.
            let answered: Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>> =
                Box::pin(async move { Ok(answer(router, request, over_cap, busy, &linger).await) });
            answered
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The head's own bound (`431`), and the read buffer's, which hyper checks between reads, so a
    // connection holds at most one read past it.
    builder.max_header_size(MAX_HEAD_BYTES).max_buf_size(MAX_HEAD_BYTES);
    // Boxed, so that it can be taken apart after an early answer (below).
    let mut connection = Box::pin(builder.serve_connection(io, service));
    let mut draining = false;
    let ended = loop {
        let now = registry.now();
        // A busy connection is looked at again each second (its request has its own deadline).
        let wake = conn.expires(&limits).unwrap_or(now + 1000).max(now);
        let wake = tokio::time::Instant::from_std(registry.epoch + Duration::from_millis(wake));
        let current = *phase.borrow_and_update();
        if current >= Phase::Draining && !draining {
            draining = true;
            match conn.idle() && conn.head_started.load(Ordering::Acquire) == 0 {
                true => break false,
                false => connection.as_mut().graceful_shutdown(),
            }
        }
        if current == Phase::Closed || (current == Phase::Cut && conn.idle()) {
            break false;
        }
        tokio::select! {
            done = std::future::poll_fn(|cx| connection.as_mut().poll_without_shutdown(cx)) => {
                if let Err(e) = done {
                    tracing::debug!("connection ended: {e}");
                    break false;
                }
                break true;
            }
            () = conn.close.notified() => match conn.idle() {
                true => break false,
                false => connection.as_mut().graceful_shutdown(),
            },
            changed = phase.changed() => {
                if changed.is_err() {
                    break false;
                }
            }
            () = tokio::time::sleep_until(wake) => {
                if conn.expires(&limits).is_some_and(|at| at <= registry.now()) {
                    break false;
                }
            }
        }
    };
    if !ended || !linger.load(Ordering::Relaxed) {
        return;
    }
    // An early answer was written with `Connection: close`: tell the client we are done writing, then
    // read what it is still sending, so that it is not met with a reset before it reads the answer.
    let mut stream = Pin::into_inner(connection).into_parts().io.into_inner().stream;
    let _ = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_shutdown(cx)).await;
    let mut sink = [0u8; 8192];
    let until = tokio::time::Instant::now() + LINGER;
    loop {
        // A server past its grace period does not wait for slow clients.
        let readable = tokio::select! {
            readable = tokio::time::timeout_at(until, stream.readable()) => readable,
            _ = phase.wait_for(|p| *p >= Phase::Cut) => break,
        };
        if !matches!(readable, Ok(Ok(()))) {
            break;
        }
        match stream.try_read(&mut sink) {
            Ok(0) => break,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => break,
            Ok(_) => {}
        }
    }
}

/// One request through the router, with what the connection adds: the over-cap refusal, and
/// `Connection: close` on an answer given before the body was read.
async fn answer(
    router: Router,
    request: Request<Incoming>,
    over_cap: bool,
    busy: Busy,
    linger: &AtomicBool,
) -> Response<Body> {
    let has_body = !request.body().is_end_stream();
    let read = Arc::new(AtomicBool::new(!has_body));
    let mut response = match over_cap && !OPEN_ROUTES.contains(&request.uri().path()) {
        true => ApiError::busy("too many open connections; retry shortly", 1).into_response(),
        false => {
            let request = request.map(|b| Body::new(ReadToEnd { body: b, read: read.clone() }));
            match router.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    };
    // Over the cap the connection is only for a probe: it closes after its answer.
    if over_cap || !read.load(Ordering::Acquire) {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        linger.store(!read.load(Ordering::Acquire), Ordering::Relaxed);
    }
    response.map(|body| Body::new(Answering { body, _busy: busy }))
}

/// A request in flight on its connection, until its answer is written or dropped.
struct Busy {
    conn: Arc<Conn>,
    registry: Arc<Registry>,
}

impl Busy {
    fn begin(conn: Arc<Conn>, registry: Arc<Registry>) -> Self {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        conn.served.store(true, Ordering::Release);
        conn.head_started.store(0, Ordering::Release);
        Self { conn, registry }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.conn.idle_since.store(self.registry.now(), Ordering::Release);
        self.conn.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A request body that says when it has been read to its end.
struct ReadToEnd {
    body: Incoming,
    read: Arc<AtomicBool>,
}

impl HttpBody for ReadToEnd {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.body.is_end_stream() {
            self.read.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// An answer's body, holding its request's [`Busy`] until it is written.
struct Answering {
    body: Body,
    _busy: Busy,
}

impl HttpBody for Answering {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket, noting when the first byte of a request head arrives on an idle connection (the
/// header timeout counts from it).
struct Watched {
    stream: TcpStream,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before
            && self.conn.idle()
            && self.conn.head_started.load(Ordering::Acquire) == 0
        {
            self.conn.head_started.store(self.registry.now() + 1, Ordering::Release);
        }
        polled
    }
}

impl Watched {
    /// Notes whether the socket took the write.
    fn wrote<T>(&self, polled: Poll<T>) -> Poll<T> {
        let blocked = &self.conn.write_blocked;
        match polled.is_pending() {
            true if blocked.load(Ordering::Acquire) == 0 => {
                blocked.store(self.registry.now() + 1, Ordering::Release)
            }
            true => {}
            false => blocked.store(0, Ordering::Release),
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.wrote(polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.wrote(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
