//! Response bodies: every body kedge sends is streamed (never collected) and carries the
//! guard that tells the connection's clock when the exchange is over.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};

use super::limits::ExchangeGuard;

/// Any body, boxed, with hyper's error type.
pub type AnyBody = BoxBody<Bytes, hyper::Error>;

/// A short body kedge writes itself.
pub fn text(s: &'static str) -> AnyBody {
    Full::new(Bytes::from_static(s.as_bytes()))
        .map_err(|never| match never {})
        .boxed()
}

/// The body sent to a client: a streamed inner body and the exchange guard.
#[derive(Debug)]
pub struct EdgeBody {
    inner: AnyBody,
    _guard: Option<ExchangeGuard>,
}

impl EdgeBody {
    /// Wraps `inner`; the guard ends the exchange when the body is done or dropped.
    pub fn new(inner: AnyBody, guard: ExchangeGuard) -> Self {
        Self {
            inner,
            _guard: Some(guard),
        }
    }
}

impl Body for EdgeBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
