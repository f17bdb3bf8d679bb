//! Splicing an admitted connection to its backend: the first PDU replayed unchanged, then both
//! directions copied until each side has closed, with an idle timeout and per-direction byte
//! counts.
//!
//! The copy goes through user space (`tokio::io::copy_bidirectional_with_sizes`, 16 KiB buffers
//! each way). Linux `splice(2)` through a pipe would avoid that copy, as HAProxy does, but needs
//! raw file descriptors and `unsafe` FFI (libc), which this crate forbids; the bench
//! `benches/rpc_load.rs` measures what that costs against HAProxy in TCP mode.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;

use crate::observe::ByteMeter;

/// Buffer size of each copy direction (HAProxy's default `tune.bufsize` too); 64 KiB gained no
/// bulk throughput here and cost bind rate (two zeroed buffers per connection).
pub const SPLICE_BUFFER: usize = 16 * 1024;

/// The last time either direction moved a byte, in milliseconds since `base`.
#[derive(Debug)]
struct Activity {
    base: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once nothing moved for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = self.base + last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

pin_project! {
    /// A stream whose reads are counted on a [`ByteMeter`] and stamp the shared activity clock.
    struct Metered<'a, S> {
        #[pin]
        inner: S,
        meter: &'a ByteMeter,
        activity: &'a Activity,
    }
}

impl<S: AsyncRead> AsyncRead for Metered<'_, S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let res = this.inner.poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            this.meter.add(n as u64);
            this.activity.touch();
        }
        res
    }
}

impl<S: AsyncWrite> AsyncWrite for Metered<'_, S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// How a splice ended.
#[derive(Debug)]
pub enum SpliceEnd {
    /// Both directions reached EOF: byte counts client → backend (prefix included) and back.
    Closed { up: u64, down: u64 },
    /// Nothing moved for the idle timeout.
    Idle,
    /// Writing the prefix to the backend failed.
    PrefixFailed(io::Error),
    /// A read or write failed mid-way (a reset, usually the peer going away).
    Failed(io::Error),
}

/// Byte meters of one connection.
#[derive(Debug)]
pub struct Meters {
    /// Client → backend.
    pub up: ByteMeter,
    /// Backend → client.
    pub down: ByteMeter,
}

/// Writes `prefix` (the client's first PDU and anything after it) to `backend`, then copies
/// both ways until both sides have closed or nothing moved for `idle`.
pub async fn splice<C, B>(
    client: C,
    mut backend: B,
    prefix: &[u8],
    idle: Duration,
    meters: &Meters,
) -> SpliceEnd
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    if let Err(e) = backend.write_all(prefix).await {
        return SpliceEnd::PrefixFailed(e);
    }
    meters.up.add(prefix.len() as u64);
    let activity = Activity::new();
    let mut client = Metered {
        inner: client,
        meter: &meters.up,
        activity: &activity,
    };
    let mut backend = Metered {
        inner: backend,
        meter: &meters.down,
        activity: &activity,
    };
    let copy =
        tokio::io::copy_bidirectional_with_sizes(&mut client, &mut backend, SPLICE_BUFFER, SPLICE_BUFFER);
    tokio::select! {
        r = copy => match r {
            Ok((up, down)) => SpliceEnd::Closed { up: up + prefix.len() as u64, down },
            Err(e) => SpliceEnd::Failed(e),
        },
        () = activity.idle_for(idle) => SpliceEnd::Idle,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::{byte_meter, Direction};
    use tokio::io::AsyncReadExt;

    fn meters() -> Meters {
        Meters {
            up: byte_meter("splice-test", Direction::ClientToBackend),
            down: byte_meter("splice-test", Direction::BackendToClient),
        }
    }

    #[tokio::test]
    async fn prefix_goes_first_then_both_directions_flow_until_both_close() {
        let (client_far, client_near) = tokio::io::duplex(1024);
        let (backend_near, backend_far) = tokio::io::duplex(1024);
        let m = meters();
        let splice = splice(client_near, backend_near, b"BIND", Duration::from_secs(5), &m);
        let peers = async move {
            let (mut c, mut b) = (client_far, backend_far);
            c.write_all(b"hello").await.unwrap();
            c.shutdown().await.unwrap();
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"BINDhello");
            b.write_all(b"reply").await.unwrap();
            b.shutdown().await.unwrap();
            let mut back = Vec::new();
            c.read_to_end(&mut back).await.unwrap();
            assert_eq!(back, b"reply");
        };
        let (end, ()) = tokio::join!(splice, peers);
        assert!(matches!(end, SpliceEnd::Closed { up: 9, down: 5 }), "{end:?}");
    }

    #[tokio::test]
    async fn idle_connection_is_closed_after_the_timeout() {
        let (_client_far, client_near) = tokio::io::duplex(64);
        let (backend_near, _backend_far) = tokio::io::duplex(64);
        let m = meters();
        let end = splice(client_near, backend_near, b"", Duration::from_millis(50), &m).await;
        assert!(matches!(end, SpliceEnd::Idle));
    }
}
