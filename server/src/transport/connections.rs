//! Accepting connections within bounds: at most a fixed number open at once, and a connection
//! that does not start talking within a few seconds is closed.
//!
//! Without these, clients that open TCP connections and send nothing hold a file descriptor each
//! until the process runs out (health checks then time out). HTTP/2 keepalive (set on the server)
//! closes connections whose peer stops answering later on.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{mpsc, OwnedSemaphorePermit, Semaphore},
    time::Sleep,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

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

/// Accepts from `listener` while fewer than `max_connections` are open; each connection must
/// send its first bytes within `start_timeout`.
pub fn bounded_incoming(
    listener: TcpListener,
    max_connections: usize,
    start_timeout: Duration,
) -> ReceiverStream<io::Result<BoundedConnection>> {
    let slots = Arc::new(Semaphore::new(max_connections));
    let (sender, receiver) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let stream = tokio::select! {
                accepted = listener.accept() => accepted,
                // The server stopped taking connections (shutdown): stop accepting.
                _ = sender.closed() => return,
            };
            let connection = match stream {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    BoundedConnection::new(stream, permit, start_timeout)
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            };
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
    _slot: OwnedSemaphorePermit,
    /// Until the client has sent its first bytes: when it must have done so.
    start_deadline: Option<Pin<Box<Sleep>>>,
    read_so_far: usize,
    start_timeout: Duration,
}

impl BoundedConnection {
    fn new(stream: TcpStream, slot: OwnedSemaphorePermit, start_timeout: Duration) -> Self {
        BoundedConnection {
            stream,
            _slot: slot,
            start_deadline: Some(Box::pin(tokio::time::sleep(start_timeout))),
            read_so_far: 0,
            start_timeout,
        }
    }
}

impl Connected for BoundedConnection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for BoundedConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.read_so_far += buf.filled().len() - before;
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
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_stream::StreamExt;

    #[tokio::test]
    async fn a_silent_connection_is_closed_and_the_cap_holds() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = bounded_incoming(listener, 1, Duration::from_millis(200));

        // The first connection says nothing: reading from it on the server side times out.
        let _silent = TcpStream::connect(addr).await.unwrap();
        let mut first = incoming.next().await.unwrap().unwrap();
        let mut buf = [0u8; 8];
        let err = first.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);

        // While it is open, a second connection is not accepted (the cap is 1)...
        let mut talking = TcpStream::connect(addr).await.unwrap();
        talking.write_all(&[b'x'; 32]).await.unwrap();
        let waited = tokio::time::timeout(Duration::from_millis(300), incoming.next()).await;
        assert!(
            waited.is_err(),
            "a second connection was accepted beyond the cap"
        );
        // ...and once the first is closed, it is, and its bytes arrive.
        drop(first);
        let mut second = incoming.next().await.unwrap().unwrap();
        let mut got = [0u8; 32];
        second.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [b'x'; 32]);
    }

    #[test]
    fn the_limit_is_at_most_half_the_open_file_limit() {
        assert!(connection_limit(usize::MAX) < usize::MAX);
        assert_eq!(connection_limit(3), 3);
    }
}
