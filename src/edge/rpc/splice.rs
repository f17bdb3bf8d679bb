//! Splicing an admitted connection to its backend: the admitted first PDU replayed unchanged,
//! then both directions copied until each side has closed, with an idle timeout and
//! per-direction byte counts — and the client's later PDUs inspected on the way (`super::copy`).
//!
//! [`Splice::next`] runs both directions (client EOF shuts the backend's write side down and
//! vice versa) until the connection ends or the client sends a bind, alter_context or
//! rpc_auth_3: then it returns [`SpliceEvent::Held`] with that PDU whole and not forwarded, and
//! the caller either [`release`](Splice::release)s it and calls `next` again, or drops the
//! splice (closing the backend) to refuse it. Ordinary PDUs pass as they arrive.
//!
//! The copy goes through user space (16 KiB buffers each way). Linux `splice(2)` through a pipe
//! would avoid that copy, as HAProxy does, but needs raw file descriptors and `unsafe` FFI
//! (libc), which this crate forbids, and would not let kedge see the PDU headers;
//! `scripts/bench-rpc` measures what that costs against HAProxy in TCP mode.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::copy::{BlindCopy, CopyError, PduCopy, UpPoll};
use crate::observe::ByteMeter;
use crate::rpc::RpcError;

/// Buffer size of each copy direction (HAProxy's default `tune.bufsize` too); 64 KiB gained no
/// bulk throughput here and cost bind rate (two zeroed buffers per connection).
pub const SPLICE_BUFFER: usize = 16 * 1024;

/// The last time either direction moved a byte, in milliseconds since `base`.
#[derive(Debug)]
pub struct Activity {
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

    /// Something moved now.
    pub fn touch(&self) {
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

/// How a splice ended.
#[derive(Debug)]
pub enum SpliceEnd {
    /// Both directions reached EOF: bytes written client → backend (the first PDU included)
    /// and backend → client.
    Closed { up: u64, down: u64 },
    /// Nothing moved for the idle timeout.
    Idle,
    /// Writing the first PDU to the backend failed.
    PrefixFailed(io::Error),
    /// A read or write failed mid-way (a reset, usually the peer going away).
    Failed(io::Error),
    /// The client sent a PDU header that does not parse, or a held PDU over `max_bind_bytes`.
    BadPdu(RpcError),
}

impl From<CopyError> for SpliceEnd {
    fn from(e: CopyError) -> Self {
        match e {
            CopyError::Io(e) => SpliceEnd::Failed(e),
            CopyError::Pdu(e) => SpliceEnd::BadPdu(e),
        }
    }
}

/// What [`Splice::next`] stopped for.
#[derive(Debug)]
pub enum SpliceEvent {
    /// The client sent a bind, alter_context or rpc_auth_3; it is at [`Splice::held`].
    Held,
    /// The connection is over.
    End(SpliceEnd),
}

/// Byte meters of one connection.
#[derive(Debug)]
pub struct Meters {
    /// Client → backend.
    pub up: ByteMeter,
    /// Backend → client.
    pub down: ByteMeter,
}

/// Limits of a splice.
#[derive(Debug, Clone, Copy)]
pub struct SpliceLimits {
    /// Nothing moved for this long ends the splice.
    pub idle: Duration,
    /// Largest bind / alter_context / auth3 held (`max_bind_bytes`).
    pub max_held: usize,
}

/// A client connection spliced to its backend (module docs).
pub struct Splice<'m, C, B> {
    client: C,
    backend: B,
    up: PduCopy,
    down: BlindCopy,
    up_done: Option<u64>,
    down_done: Option<u64>,
    activity: Activity,
    idle: Duration,
    meters: &'m Meters,
    prefix: u64,
}

impl<'m, C, B> Splice<'m, C, B>
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    /// Writes `admitted` (the client's first PDU) to `backend` and sets up both directions;
    /// `already_read` (bytes the client sent after it, read with it) is inspected like
    /// everything later.
    pub async fn start(
        client: C,
        mut backend: B,
        admitted: &[u8],
        already_read: &[u8],
        limits: SpliceLimits,
        meters: &'m Meters,
    ) -> Result<Self, SpliceEnd> {
        let up = PduCopy::new(SPLICE_BUFFER, already_read, limits.max_held)?;
        if let Err(e) = backend.write_all(admitted).await {
            return Err(SpliceEnd::PrefixFailed(e));
        }
        meters.up.add(admitted.len() as u64);
        Ok(Splice {
            client,
            backend,
            up,
            down: BlindCopy::new(SPLICE_BUFFER),
            up_done: None,
            down_done: None,
            activity: Activity::new(),
            idle: limits.idle,
            meters,
            prefix: admitted.len() as u64,
        })
    }

    /// Copies both ways until the connection ends or a held PDU waits (module docs).
    pub async fn next(&mut self) -> SpliceEvent {
        let idle = self.idle;
        let Splice {
            client,
            backend,
            up,
            down,
            up_done,
            down_done,
            activity,
            meters,
            prefix,
            ..
        } = self;
        let activity = &*activity;
        let mut dirs = Directions {
            client,
            backend,
            up,
            down,
            up_done,
            down_done,
            meters,
            activity,
            prefix: *prefix,
        };
        tokio::select! {
            event = poll_fn(|cx| dirs.poll(cx)) => event,
            () = activity.idle_for(idle) => SpliceEvent::End(SpliceEnd::Idle),
        }
    }

    /// The held PDU after [`SpliceEvent::Held`].
    pub fn held(&self) -> Option<&[u8]> {
        self.up.held()
    }

    /// Forwards the held PDU; the next [`Splice::next`] writes it first.
    pub fn release(&mut self) {
        self.up.release();
    }

    /// PDUs the client sent after its first one, as far as seen.
    pub fn later_pdus(&self) -> u64 {
        self.up.pdus()
    }

    /// Writes what the backend sent and kedge has read but not yet passed on, so a refusal
    /// written after it does not land in the middle of it.
    pub async fn flush_to_client(&mut self) -> io::Result<()> {
        let n = self.down.unwritten().len();
        self.client.write_all(self.down.unwritten()).await?;
        self.down.consume(n);
        self.meters.down.add(n as u64);
        Ok(())
    }
}

/// The borrowed parts [`Splice::next`] polls.
struct Directions<'a, C, B> {
    client: &'a mut C,
    backend: &'a mut B,
    up: &'a mut PduCopy,
    down: &'a mut BlindCopy,
    up_done: &'a mut Option<u64>,
    down_done: &'a mut Option<u64>,
    meters: &'a Meters,
    activity: &'a Activity,
    prefix: u64,
}

impl<C, B> Directions<'_, C, B>
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<SpliceEvent> {
        if self.up_done.is_none() {
            let (client, backend) = (Pin::new(&mut *self.client), Pin::new(&mut *self.backend));
            match self
                .up
                .poll_copy(cx, client, backend, &self.meters.up, self.activity)
            {
                Poll::Ready(Ok(UpPoll::Held)) => return Poll::Ready(SpliceEvent::Held),
                Poll::Ready(Ok(UpPoll::Done(n))) => *self.up_done = Some(n),
                Poll::Ready(Err(e)) => return Poll::Ready(SpliceEvent::End(e.into())),
                Poll::Pending => {}
            }
        }
        if self.down_done.is_none() {
            let (backend, client) = (Pin::new(&mut *self.backend), Pin::new(&mut *self.client));
            match self
                .down
                .poll_copy(cx, backend, client, &self.meters.down, self.activity)
            {
                Poll::Ready(Ok(n)) => *self.down_done = Some(n),
                Poll::Ready(Err(e)) => return Poll::Ready(SpliceEvent::End(SpliceEnd::Failed(e))),
                Poll::Pending => {}
            }
        }
        match (*self.up_done, *self.down_done) {
            (Some(up), Some(down)) => Poll::Ready(SpliceEvent::End(SpliceEnd::Closed {
                up: up + self.prefix,
                down,
            })),
            _ => Poll::Pending,
        }
    }
}
