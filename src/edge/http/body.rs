//! Response bodies: every body kedge sends is streamed (never collected) and carries the
//! guard that tells the connection's clock when the exchange is over.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};

use super::limits::{ConnClock, ExchangeGuard};
use crate::observe::access_log::{AccessLog, Entry};
use std::sync::Arc;

/// Any body, boxed, with any error.
pub type AnyBody = UnsyncBoxBody<Bytes, BoxError>;

/// A body's error: a member exchange's (`WireError`), or a client request body's that it
/// carried.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A short body kedge writes itself.
pub fn text(s: &'static str) -> AnyBody {
    Full::new(Bytes::from_static(s.as_bytes()))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// The body sent to a client: a streamed inner body, the exchange guard, and the request's
/// access-log line, if it is logged.
#[derive(Debug)]
pub struct EdgeBody {
    inner: AnyBody,
    _guard: Option<ExchangeGuard>,
    _line: Option<Box<PendingLine>>,
}

impl EdgeBody {
    /// Wraps `inner`; the guard ends the exchange and the line is written when the body is done
    /// or dropped.
    pub fn new(inner: AnyBody, guard: ExchangeGuard, line: Option<Box<PendingLine>>) -> Self {
        Self {
            inner,
            _guard: Some(guard),
            _line: line,
        }
    }
}

/// A request's access-log line, completed (bytes, duration) and queued when its response body
/// is through — or dropped, when the client went away mid-body.
#[derive(Debug)]
pub struct PendingLine {
    log: Arc<AccessLog>,
    entry: Entry,
    clock: Arc<ConnClock>,
    started: std::time::Instant,
    mark_in: u64,
    body_out: u64,
}

impl PendingLine {
    /// `entry` of a request that began at `started`; `mark_in` is what the connection had read
    /// before its head (`ConnClock::request_mark`).
    pub fn new(
        log: Arc<AccessLog>,
        entry: Entry,
        clock: Arc<ConnClock>,
        started: std::time::Instant,
        mark_in: u64,
    ) -> Box<Self> {
        Box::new(Self {
            log,
            entry,
            clock,
            started,
            mark_in,
            body_out: 0,
        })
    }
}

impl Drop for PendingLine {
    fn drop(&mut self) {
        let e = &self.entry;
        let blank = Entry::new(e.kind, e.listener.clone(), e.peer, e.time);
        let mut entry = std::mem::replace(&mut self.entry, blank);
        entry.bytes_in = self.clock.total_in().saturating_sub(self.mark_in);
        entry.bytes_out = self.body_out;
        entry.duration = self.started.elapsed();
        self.log.log(entry);
    }
}

impl Body for EdgeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let res = Pin::new(&mut self.inner).poll_frame(cx);
        if let (Some(line), Poll::Ready(Some(Ok(frame)))) = (self._line.as_mut(), &res) {
            if let Some(data) = frame.data_ref() {
                line.body_out += data.len() as u64;
            }
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
