//! A stream that tells a [`Watcher`] about every byte it moves and every operation that has
//! to wait: the one place that forwards `AsyncRead`/`AsyncWrite` for the client connection's
//! clock (`limits.rs`) and the backend connection's idle timer (`backend_idle.rs`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What a [`Watched`] stream reports to.
pub trait Watcher {
    /// `n > 0` bytes were read.
    fn read(&mut self, n: usize);

    /// `n > 0` bytes were written.
    fn wrote(&mut self, n: usize);

    /// A read or write is pending. `Some` ends it with that error instead (a timeout); the
    /// watcher arranges its own wake-up through `cx` otherwise.
    fn pending(&mut self, _cx: &mut Context<'_>) -> Option<io::Error> {
        None
    }
}

/// `inner`, reporting to `watcher`. Flush and shutdown pass straight through (they move no
/// bytes of their own).
#[derive(Debug)]
pub struct Watched<T, W> {
    inner: T,
    watcher: W,
}

impl<T, W> Watched<T, W> {
    /// Wraps `inner`.
    pub fn new(inner: T, watcher: W) -> Self {
        Self { inner, watcher }
    }
}

impl<T, W: Watcher> Watched<T, W> {
    /// After a write on the inner stream: report what moved, or let the watcher judge a wait.
    fn after_write(&mut self, r: Poll<io::Result<usize>>, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        match r {
            Poll::Ready(Ok(n)) if n > 0 => self.watcher.wrote(n),
            Poll::Pending => {
                return self
                    .watcher
                    .pending(cx)
                    .map_or(Poll::Pending, |e| Poll::Ready(Err(e)))
            }
            _ => {}
        }
        r
    }
}

impl<T: AsyncRead + Unpin, W: Watcher + Unpin> AsyncRead for Watched<T, W> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        match r {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len() - before;
                if n > 0 {
                    this.watcher.read(n);
                }
            }
            Poll::Pending => {
                return this
                    .watcher
                    .pending(cx)
                    .map_or(Poll::Pending, |e| Poll::Ready(Err(e)))
            }
            Poll::Ready(Err(_)) => {}
        }
        r
    }
}

impl<T: AsyncWrite + Unpin, W: Watcher + Unpin> AsyncWrite for Watched<T, W> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.after_write(r, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.after_write(r, cx)
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

    /// Counts what it is told; times out the `fail_after`-th wait.
    #[derive(Default)]
    struct Tally {
        read: usize,
        wrote: usize,
        waits: usize,
        fail_after: Option<usize>,
    }

    impl Watcher for Tally {
        fn read(&mut self, n: usize) {
            self.read += n;
        }
        fn wrote(&mut self, n: usize) {
            self.wrote += n;
        }
        fn pending(&mut self, _cx: &mut Context<'_>) -> Option<io::Error> {
            self.waits += 1;
            (Some(self.waits) == self.fail_after)
                .then(|| io::Error::new(io::ErrorKind::TimedOut, "watcher said so"))
        }
    }

    #[tokio::test]
    async fn every_byte_moved_is_reported_once_per_direction() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut io = Watched::new(a, Tally::default());
        io.write_all(b"hello").await.unwrap();
        let n = io
            .write_vectored(&[io::IoSlice::new(b"ab"), io::IoSlice::new(b"c")])
            .await
            .unwrap();
        assert_eq!(n, 3, "the pipe has room for both slices");
        b.write_all(b"0123456789").await.unwrap();
        let mut buf = [0u8; 10];
        io.read_exact(&mut buf).await.unwrap();
        assert_eq!((io.watcher.wrote, io.watcher.read), (8, 10));
    }

    #[tokio::test]
    async fn the_end_of_the_stream_moves_nothing() {
        let (a, b) = tokio::io::duplex(64);
        drop(b);
        let mut io = Watched::new(a, Tally::default());
        let mut buf = [0u8; 4];
        assert_eq!(io.read(&mut buf).await.unwrap(), 0);
        assert_eq!(io.watcher.read, 0);
    }

    #[tokio::test]
    async fn a_watcher_can_end_a_pending_read_or_write() {
        let (a, _b) = tokio::io::duplex(4);
        let mut io = Watched::new(
            a,
            Tally {
                fail_after: Some(1),
                ..Tally::default()
            },
        );
        let err = io.read(&mut [0u8; 4]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);

        // The pipe holds four bytes; the fifth waits, and the watcher ends that wait.
        io.watcher = Tally {
            fail_after: Some(1),
            ..Tally::default()
        };
        let err = io.write_all(b"12345").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(io.watcher.wrote, 4);
    }
}
