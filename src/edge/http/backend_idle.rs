//! A backend stream that fails with `TimedOut` once no byte has moved either way for the pool's
//! `idle_timeout_secs`, so a member that stalls mid-response (or an idle pooled connection
//! nobody uses) does not hold a connection and a client for ever.
//!
//! The timer is reset lazily: reads and writes only note the time; when the timer fires it is
//! moved to the last activity plus the timeout unless that has passed.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// `inner` with an idle timeout.
pub struct IdleTimeoutIo<T> {
    inner: T,
    timer: Pin<Box<Sleep>>,
    timeout: Duration,
    last: Instant,
}

impl<T> IdleTimeoutIo<T> {
    /// Wraps `inner`; the clock starts now.
    pub fn new(inner: T, timeout: Duration) -> Self {
        let now = Instant::now();
        Self {
            inner,
            timer: Box::pin(tokio::time::sleep_until(now + timeout)),
            timeout,
            last: now,
        }
    }
}

/// Whether the idle time is over; re-arms the timer when activity moved the deadline.
fn expired(timer: &mut Pin<Box<Sleep>>, last: Instant, timeout: Duration, cx: &mut Context<'_>) -> bool {
    loop {
        if timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        let due = last + timeout;
        if Instant::now() >= due {
            return true;
        }
        timer.as_mut().reset(due);
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "backend connection idle timeout")
}

impl<T> IdleTimeoutIo<T> {
    /// After an operation on the inner stream: note activity, or on `Pending` check the timer.
    fn after<R>(
        &mut self,
        r: Poll<io::Result<R>>,
        moved: impl Fn(&R) -> bool,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<R>> {
        match r {
            Poll::Ready(Ok(v)) => {
                if moved(&v) {
                    self.last = Instant::now();
                }
                Poll::Ready(Ok(v))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending if expired(&mut self.timer, self.last, self.timeout, cx) => {
                Poll::Ready(Err(timed_out()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeoutIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let moved = buf.filled().len() > before;
        self.after(r, |_| moved, cx)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeoutIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.after(r, |n| *n > 0, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.after(r, |n| *n > 0, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const IDLE: Duration = Duration::from_millis(200);

    #[tokio::test]
    async fn a_silent_peer_times_out() {
        let (a, _b) = tokio::io::duplex(64);
        let mut io = IdleTimeoutIo::new(a, IDLE);
        let mut buf = [0u8; 8];
        let started = Instant::now();
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= IDLE);
    }

    #[tokio::test]
    async fn a_write_keeps_the_read_side_open() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut io = IdleTimeoutIo::new(a, IDLE);
        let mut buf = [0u8; 8];
        // Reads pending across several timeouts' worth of time, kept alive by writes.
        let mut last_write = Instant::now();
        for _ in 0..4 {
            let read = tokio::time::timeout(Duration::from_millis(120), io.read(&mut buf)).await;
            assert!(read.is_err(), "no timeout while bytes move: {read:?}");
            io.write_all(b"x").await.unwrap();
            last_write = Instant::now();
            let mut one = [0u8; 1];
            b.read_exact(&mut one).await.unwrap();
        }
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(last_write.elapsed() >= IDLE, "measured from the last byte");
    }
}
