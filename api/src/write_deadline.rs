//! A connection that gives up on a peer which stops taking bytes.
//!
//! A live-stream client that stops reading without closing its connection (a suspended laptop,
//! a stuck proxy, a peer that vanished without a FIN) would otherwise hold its connection, its
//! task and the frame being written for as long as TCP keeps retrying: the stream's own
//! slow-consumer cut-off cannot act while a write is blocked, because the stream is only
//! polled between writes. [`WriteDeadline`] fails a write that has made no progress for the
//! configured time, which ends the connection.
//!
//! "No progress" is as the kernel reports it: a write is pending while the connection's send
//! buffer is full, and becomes possible again once the peer has taken about half of what is
//! queued. So a peer must take that much within the timeout, and a quiet stream (a keep-alive
//! comment now and then) whose peer vanished without a FIN is not caught here: its few bytes
//! fit in the send buffer, and the kernel's retransmission timeout ends it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Why a write failed: it stayed pending for the write timeout. Carried inside the
/// [`io::Error`] so that it can be told apart from the kernel's own `ETIMEDOUT`.
#[derive(Debug)]
pub struct WriteStalled {
    timeout: Duration,
}

impl std::fmt::Display for WriteStalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a write waited {:?} for the peer to take bytes",
            self.timeout
        )
    }
}

impl std::error::Error for WriteStalled {}

/// True when `e` is a write that [`WriteDeadline`] gave up on.
pub fn is_write_stalled(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<WriteStalled>())
}

/// Wraps a connection: a write (or flush) that stays pending for `timeout` fails with
/// [`io::ErrorKind::TimedOut`] carrying [`WriteStalled`]. Reads are untouched. A write left
/// pending and not polled again leaves the timer running: the next write continues it.
pub struct WriteDeadline<T> {
    inner: T,
    timeout: Duration,
    /// Armed while a write is pending; cleared by any progress.
    stalled_since: Option<Pin<Box<Sleep>>>,
}

impl<T> WriteDeadline<T> {
    pub fn new(inner: T, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            stalled_since: None,
        }
    }

    /// Called when the inner write is pending: arms the timer on the first pending poll, and
    /// fails once it has run out.
    fn pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let timeout = self.timeout;
        let sleep = self
            .stalled_since
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(sleep.as_mut().poll(cx));
        self.stalled_since = None;
        metrics::counter!("inferplane_http_write_timeouts_total").increment(1);
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            WriteStalled { timeout },
        ))
    }

    /// Turns the inner result into ours: progress disarms the timer, pending checks it.
    fn settle<R>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match r {
            Poll::Ready(r) => {
                self.stalled_since = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.pending(cx).map(Err),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.settle(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.settle(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.settle(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.settle(cx, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_write_the_peer_never_takes_fails_after_the_timeout() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut conn = WriteDeadline::new(ours, Duration::from_millis(300));
        let started = std::time::Instant::now();
        let err = conn.write_all(&[7u8; 1024]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(is_write_stalled(&err));
        assert!(!is_write_stalled(&io::Error::from(io::ErrorKind::TimedOut)));
        assert!(started.elapsed() >= Duration::from_millis(300));
        // What was taken before the stall is there for the peer.
        let mut got = [0u8; 64];
        theirs.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [7u8; 64]);
    }

    #[tokio::test]
    async fn a_slow_peer_that_keeps_taking_bytes_is_not_cut_off() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut conn = WriteDeadline::new(ours, Duration::from_secs(1));
        // The peer takes 64 bytes every 100 ms: each wait is far shorter than the timeout,
        // the whole write (1.6 s) longer.
        let reader = tokio::spawn(async move {
            let mut total = 0;
            let mut chunk = [0u8; 64];
            while total < 1024 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                total += theirs.read(&mut chunk).await.unwrap();
            }
            total
        });
        let started = std::time::Instant::now();
        conn.write_all(&[1u8; 1024]).await.unwrap();
        assert!(started.elapsed() > Duration::from_secs(1));
        assert_eq!(reader.await.unwrap(), 1024);
    }
}
