//! Accepting connections within bounds: at most a fixed number open at once; one that does not
//! start talking within a few seconds is closed; and when every slot is taken, the connection
//! that has been idle longest — no request in flight, nothing sent or received for the longest
//! time — is closed to make room for the new one.
//!
//! Without a cap, clients that open TCP connections and send nothing hold a file descriptor each
//! until the process runs out. With a cap alone, one local client renewing idle connections just
//! within the start-up deadline kept every slot, and health checks and other clients waited
//! (issue 30: 300 renewed connections failed 11 of 61 health checks). Closing an idle connection
//! to admit a new one loses nothing — a client reconnects when it has something to ask, and a
//! connection with a request in flight (a `watch` streaming, a query being answered) is never
//! chosen — so a flood of idle connections can no longer keep anyone out. HTTP/2 keepalive (set
//! on the server) closes connections whose peer stops answering. The dashboard's connections are
//! held to the same rules ([`ConnectionSlots`] is shared).

use std::{
    collections::HashMap,
    future::Future,
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, Weak,
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{mpsc, OwnedSemaphorePermit, Semaphore},
    time::Sleep,
};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::{
    codegen::http,
    transport::server::{Connected, TcpConnectInfo},
};
use tower_layer::Layer;
use tower_service::Service;

/// Bytes a connection must send before its start-up deadline is lifted: the HTTP/2 client
/// preface is 24 bytes (a TLS ClientHello is longer).
const STARTED_AFTER_BYTES: usize = 24;
/// After a failed `accept` (e.g. out of file descriptors), wait this long before the next.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// The most connections to keep open: `wanted`, but no more than half the process's open-file
/// limit (the rest is for the store, checkpoints and datasets).
pub fn connection_limit(wanted: usize) -> usize {
    let soft_limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        })
        .and_then(|soft| soft.parse::<usize>().ok());
    match soft_limit {
        Some(limit) => wanted.min(limit / 2).max(1),
        None => wanted.max(1),
    }
}

/// The open connections of one listener, and the slots they hold.
pub struct ConnectionSlots {
    slots: Arc<Semaphore>,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
    next_id: AtomicU64,
    /// What `Activity::last_active` counts from.
    epoch: Instant,
}

/// One open connection: whether it is busy, since when it is quiet, and how to close it.
pub struct Activity {
    id: u64,
    /// Requests being answered (a streamed answer counts until it ends).
    in_flight: AtomicUsize,
    /// When bytes last went either way, in ms since the slots' epoch.
    last_active_ms: AtomicU64,
    /// Cancelled to close the connection (to make room for another).
    close: CancellationToken,
    slots: Weak<ConnectionSlots>,
}

impl Activity {
    fn touch(&self) {
        if let Some(slots) = self.slots.upgrade() {
            self.last_active_ms
                .store(slots.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
    }

    /// Counts a request in flight until the guard is dropped.
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.touch();
        InFlight(self.clone())
    }
}

/// A request in flight on a connection (see [`Activity::request`]).
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.touch();
    }
}

/// How long admitting a connection waits for a closed idle one to let go of its slot before it
/// closes another.
const EVICTION_WAIT: Duration = Duration::from_secs(1);

impl ConnectionSlots {
    pub fn new(max_connections: usize) -> Arc<Self> {
        Arc::new(ConnectionSlots {
            slots: Arc::new(Semaphore::new(max_connections.max(1))),
            open: Mutex::default(),
            next_id: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Activity>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for a new connection: at once when one is free; otherwise the connection idle the
    /// longest (no request in flight) is closed to make room; with none idle, it waits (and looks
    /// again for an idle one every [`EVICTION_WAIT`]).
    pub async fn admit(self: &Arc<Self>) -> Slot {
        let permit = loop {
            if let Ok(permit) = self.slots.clone().try_acquire_owned() {
                break permit;
            }
            self.close_longest_idle();
            if let Ok(Ok(permit)) =
                tokio::time::timeout(EVICTION_WAIT, self.slots.clone().acquire_owned()).await
            {
                break permit;
            }
        };
        let activity = Arc::new(Activity {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            in_flight: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(self.epoch.elapsed().as_millis() as u64),
            close: CancellationToken::new(),
            slots: Arc::downgrade(self),
        });
        self.open().insert(activity.id, activity.clone());
        Slot {
            _permit: permit,
            activity,
        }
    }

    /// Closes the open connection idle the longest, unless one is closing already; false when
    /// every one is busy.
    fn close_longest_idle(&self) -> bool {
        let open = self.open();
        if open.values().any(|a| a.close.is_cancelled()) {
            // One closes already: its slot comes free (closing more would not be fair to them).
            return true;
        }
        let idle = open
            .values()
            .filter(|a| a.in_flight.load(Ordering::Acquire) == 0 && !a.close.is_cancelled())
            .min_by_key(|a| a.last_active_ms.load(Ordering::Relaxed));
        match idle {
            Some(activity) => {
                tracing::debug!(
                    connection = activity.id,
                    "closing the connection idle the longest to admit a new one"
                );
                activity.close.cancel();
                true
            }
            None => false,
        }
    }

    /// Connections open now (for tests).
    pub fn open_now(&self) -> usize {
        self.open().len()
    }
}

/// A connection's slot: held until the connection is dropped.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    pub activity: Arc<Activity>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(slots) = self.activity.slots.upgrade() {
            slots.open().remove(&self.activity.id);
        }
    }
}

/// Accepts from `listener` within `slots` (see [`ConnectionSlots::admit`]); each connection must
/// send its first bytes within `start_timeout`.
pub fn bounded_incoming(
    listener: TcpListener,
    slots: Arc<ConnectionSlots>,
    start_timeout: Duration,
) -> ReceiverStream<io::Result<BoundedConnection>> {
    let (sender, receiver) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => accepted,
                // The server stopped taking connections (shutdown): stop accepting.
                _ = sender.closed() => return,
            };
            let stream = match stream {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let slot = slots.admit().await;
            let connection = BoundedConnection::new(stream, slot, start_timeout);
            if sender.send(Ok(connection)).await.is_err() {
                return;
            }
        }
    });
    ReceiverStream::new(receiver)
}

/// A TCP connection holding one of the open-connection slots until it is dropped.
pub struct BoundedConnection {
    stream: TcpStream,
    slot: Slot,
    /// Resolves when the connection is to be closed (to make room).
    closed: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Until the client has sent its first bytes: when it must have done so.
    start_deadline: Option<Pin<Box<Sleep>>>,
    read_so_far: usize,
    start_timeout: Duration,
}

impl BoundedConnection {
    pub fn new(stream: TcpStream, slot: Slot, start_timeout: Duration) -> Self {
        BoundedConnection {
            stream,
            closed: Box::pin(slot.activity.close.clone().cancelled_owned()),
            slot,
            start_deadline: Some(Box::pin(tokio::time::sleep(start_timeout))),
            read_so_far: 0,
            start_timeout,
        }
    }

    pub fn activity(&self) -> &Arc<Activity> {
        &self.slot.activity
    }
}

/// What a request learns of its connection: its addresses, and its activity (which the
/// [`InFlightLayer`] counts requests on).
#[derive(Clone)]
pub struct ConnectionInfo {
    pub tcp: TcpConnectInfo,
    pub activity: Arc<Activity>,
}

impl Connected for BoundedConnection {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        ConnectionInfo {
            tcp: self.stream.connect_info(),
            activity: self.slot.activity.clone(),
        }
    }
}

impl AsyncRead for BoundedConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.closed.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed to admit another connection: this one was idle the longest",
            )));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = buf.filled().len() - before;
                if read > 0 {
                    this.slot.activity.touch();
                }
                this.read_so_far += read;
                if this.read_so_far >= STARTED_AFTER_BYTES {
                    this.start_deadline = None;
                }
                return Poll::Ready(Ok(()));
            }
            Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
            Poll::Pending => {}
        }
        if let Some(deadline) = this.start_deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the client sent no request within {} s",
                        this.start_timeout.as_secs()
                    ),
                )));
            }
        }
        Poll::Pending
    }
}

impl AsyncWrite for BoundedConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.slot.activity.touch();
        }
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.slot.activity.touch();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Counts each request on its connection's [`Activity`] while it is answered (its answer's body
/// included: a stream counts until it ends), so that a busy connection is never closed to make
/// room. The activity comes from the connection's info in the request's extensions (TLS or not),
/// which tonic puts there; the dashboard's server does not, and gives each connection's activity
/// to [`CountInFlight::on`] instead.
#[derive(Clone, Copy, Default)]
pub struct InFlightLayer;

impl<S> Layer<S> for InFlightLayer {
    type Service = CountInFlight<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountInFlight {
            inner,
            connection: None,
        }
    }
}

/// See [`InFlightLayer`]; also serves the dashboard's connections, given their activity.
#[derive(Clone)]
pub struct CountInFlight<S> {
    inner: S,
    /// The connection every request of this service comes on (one service per connection), or
    /// `None` to find it in each request's extensions.
    connection: Option<Arc<Activity>>,
}

impl<S> CountInFlight<S> {
    /// Counts `inner`'s requests on `connection`, the one connection it serves. (Not on an
    /// activity found in the requests: a wrapper inside this one that put it there would come
    /// too late, and no request would be counted.)
    pub fn on(connection: Arc<Activity>, inner: S) -> Self {
        CountInFlight {
            inner,
            connection: Some(connection),
        }
    }
}

/// A connection's activity, when the request carries it.
fn activity_of<B>(request: &http::Request<B>) -> Option<Arc<Activity>> {
    let extensions = request.extensions();
    extensions
        .get::<ConnectionInfo>()
        .or_else(|| {
            extensions
                .get::<tonic::transport::server::TlsConnectInfo<ConnectionInfo>>()
                .map(|tls| tls.get_ref())
        })
        .map(|info| info.activity.clone())
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for CountInFlight<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: http_body::Body + Unpin,
{
    type Response = http::Response<CountedBody<ResBody>>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let guard = self
            .connection
            .clone()
            .or_else(|| activity_of(&request))
            .map(|activity| activity.request());
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|inner| CountedBody {
                inner,
                _guard: guard,
            }))
        })
    }
}

/// The peer's address of the connection a request came on.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// Puts a connection's peer address into each of its requests (for a server that does not pass
/// connection info itself: the dashboard's, one service per connection).
#[derive(Clone)]
pub struct WithPeer<S> {
    inner: S,
    peer: PeerAddr,
}

impl<S> WithPeer<S> {
    pub fn new(inner: S, peer: std::net::SocketAddr) -> Self {
        WithPeer {
            inner,
            peer: PeerAddr(peer),
        }
    }
}

impl<S, B> Service<http::Request<B>> for WithPeer<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        request.extensions_mut().insert(self.peer);
        self.inner.call(request)
    }
}

/// An answer's body, counted in flight on its connection until it is dropped.
pub struct CountedBody<B> {
    inner: B,
    _guard: Option<InFlight>,
}

impl<B: http_body::Body + Unpin> http_body::Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_stream::StreamExt;

    #[tokio::test]
    async fn a_silent_connection_is_closed_and_an_idle_one_makes_room_but_not_a_busy_one() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let slots = ConnectionSlots::new(1);
        let mut incoming = bounded_incoming(listener, slots.clone(), Duration::from_millis(200));

        // A connection that says nothing: reading from it on the server side times out.
        let _silent = TcpStream::connect(addr).await.unwrap();
        let mut silent = incoming.next().await.unwrap().unwrap();
        let mut buf = [0u8; 8];
        let err = silent.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(silent);

        // One that talks...
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(&[b'y'; 32]).await.unwrap();
        let mut first = incoming.next().await.unwrap().unwrap();
        let mut got = [0u8; 32];
        first.read_exact(&mut got).await.unwrap();

        // ...while it is busy (a request in flight), a second connection is not accepted (the cap
        // is 1)...
        let busy = first.activity().request();
        let mut talking = TcpStream::connect(addr).await.unwrap();
        talking.write_all(&[b'x'; 32]).await.unwrap();
        let waited = tokio::time::timeout(Duration::from_millis(300), incoming.next()).await;
        assert!(
            waited.is_err(),
            "a second connection was accepted beyond the cap"
        );
        // ...once it is idle, it is closed to make room, and the second's bytes arrive.
        drop(busy);
        let err = first.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
        drop(first);
        let mut second = incoming.next().await.unwrap().unwrap();
        let mut got = [0u8; 32];
        second.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [b'x'; 32]);
        assert_eq!(slots.open_now(), 1);
    }

    /// A route answering with a body (a stand-in for an event stream), given the peer address.
    #[derive(Clone)]
    struct Route;

    impl Service<http::Request<()>> for Route {
        type Response = http::Response<axum::body::Body>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: http::Request<()>) -> Self::Future {
            assert!(request.extensions().get::<PeerAddr>().is_some());
            std::future::ready(Ok(http::Response::new(axum::body::Body::from("events"))))
        }
    }

    #[tokio::test]
    async fn a_dashboard_answer_is_in_flight_until_its_body_ends_and_its_connection_is_kept() {
        let slots = ConnectionSlots::new(2);
        let streaming = slots.admit().await;
        let idle = slots.admit().await;
        // Stacked as the dashboard stacks them, one service per connection.
        let peer = "127.0.0.1:9".parse().unwrap();
        let mut service = CountInFlight::on(streaming.activity.clone(), WithPeer::new(Route, peer));
        let answer = service.call(http::Request::new(())).await.unwrap();
        // Its headers are sent, its body is not over: in flight.
        assert_eq!(streaming.activity.in_flight.load(Ordering::Acquire), 1);
        // At the cap, the idle connection is closed, not the one answering (though older).
        assert!(slots.close_longest_idle());
        assert!(idle.activity.close.is_cancelled());
        assert!(!streaming.activity.close.is_cancelled());
        drop(idle);
        drop(answer);
        assert_eq!(streaming.activity.in_flight.load(Ordering::Acquire), 0);
    }

    #[test]
    fn the_limit_is_at_most_half_the_open_file_limit() {
        assert!(connection_limit(usize::MAX) < usize::MAX);
        assert_eq!(connection_limit(3), 3);
    }
}
