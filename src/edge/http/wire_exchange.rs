//! One request and its response on a checked-out member connection (`wire_link.rs`; a
//! passthrough pin or an assert route's pooled connection),
//! spoken byte by byte: the head hyper's server side parsed is written once, the request body
//! is copied frame by frame (re-chunked when the client's was chunked), the response head is
//! read with `httparse` and the response body is streamed back as it arrives, without a
//! second HTTP stack in between.
//!
//! Both directions move in one poll, full duplex: an Outlook Anywhere `RPC_IN_DATA` body keeps
//! flowing to the member while its reply streams back, and a member that answers before the
//! request body is through (a 401 or 413) is heard at once. The connection goes back to the park
//! only when both messages ended cleanly and the member did not ask to close.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use tokio::io::AsyncWrite;
use tokio_util::io::poll_read_buf;

use super::body::BoxError;
use super::error::{EdgeError, ErrorKind};
use super::forward_headers::AddedHeaders;
use super::h1_frame::{
    chunk_size_line, encode_request_head, parse_response_head, BodyFraming, ChunkedDecoder, Decoded,
    FrameError, Parsed, RequestFraming, ResponseHead, MAX_INTERIM_HEADS,
};
use super::wire_link::{BackendIo, Checkout, WireConn};

/// Read at least this much room before each read from the member.
const READ_ROOM: usize = 8 * 1024;

/// Why an exchange on a passthrough connection failed.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Reading from or writing to the member failed (its idle timeout included).
    #[error("member connection: {0}")]
    Io(#[from] io::Error),
    /// The member closed the connection before a response head.
    #[error("the member closed the connection before answering")]
    Closed,
    /// The member closed the connection inside a length-delimited or chunked body.
    #[error("the member closed the connection mid-body")]
    Truncated,
    /// The member's bytes are not HTTP/1.1.
    #[error("{0}")]
    Frame(#[from] FrameError),
    /// No response head this long after the request's last byte went.
    #[error("no response head within {} ms", .0.as_millis())]
    HeadTimeout(Duration),
    /// The client's request body failed (the client's side).
    #[error("request body: {0}")]
    ClientBody(BoxError),
}

impl WireError {
    /// The edge's error for a failed exchange with `member`: a request body that broke is
    /// the client's doing, anything else the member's.
    pub fn into_edge(self, member: &str) -> EdgeError {
        match self {
            WireError::ClientBody(_) => EdgeError::client(ErrorKind::Io, self.to_string()),
            WireError::HeadTimeout(_) => EdgeError::backend(ErrorKind::Timeout, format!("{member}: {self}")),
            // Counted apart from connections that broke (`backend_malformed`, not `backend_io`):
            // a member that speaks something other than HTTP/1.1 is a different problem.
            WireError::Frame(_) => {
                EdgeError::backend(ErrorKind::Malformed("member_reply"), format!("{member}: {self}"))
            }
            _ => EdgeError::backend(ErrorKind::Io, format!("{member}: {self}")),
        }
    }
}

/// How a request whose headers went through `prepare_request` frames its body; a
/// `Content-Length` hyper let through that is not a number is the client's malformed request.
pub fn request_framing(headers: &http::HeaderMap) -> Result<RequestFraming, EdgeError> {
    RequestFraming::of(headers)
        .map_err(|e| EdgeError::client(ErrorKind::Malformed("content_length"), e.to_string()))
}

/// The request body on its way to the member.
struct Upload<B> {
    /// Bytes to write, in order (the head first).
    out: VecDeque<Bytes>,
    body: Option<B>,
    chunked: bool,
    /// Written since the last flush.
    unflushed: bool,
    /// A write to the member that failed: nothing more goes, but the member may still have
    /// answered (a 413 before closing).
    broken: Option<WireError>,
}

impl<B> Upload<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    fn is_done(&self) -> bool {
        self.body.is_none() && self.out.is_empty() && !self.unflushed
    }

    /// Whether nothing more will be written: all of it went, or a write failed.
    fn is_settled(&self) -> bool {
        self.broken.is_some() || self.is_done()
    }

    /// Whether all of it went and no write failed.
    fn is_clean(&self) -> bool {
        self.broken.is_none() && self.is_done()
    }

    /// Moves the upload on as far as it goes now. Only the client's body failing is an error;
    /// a failed write to the member settles the upload and is kept in `broken`.
    fn pump(&mut self, io: &mut dyn BackendIo, cx: &mut Context<'_>) -> Result<(), WireError> {
        if self.is_settled() {
            return Ok(());
        }
        match self.poll(io, cx) {
            Poll::Ready(Err(e @ WireError::ClientBody(_))) => Err(e),
            Poll::Ready(Err(e)) => {
                self.broken = Some(e);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Writes what is queued and takes the client's next body frames, until the body has gone
    /// or either side has to wait.
    fn poll(&mut self, io: &mut dyn BackendIo, cx: &mut Context<'_>) -> Poll<Result<(), WireError>> {
        loop {
            while !self.out.is_empty() {
                let n = ready!(write_queued(io, &self.out, cx))?;
                if n == 0 {
                    return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero).into()));
                }
                advance(&mut self.out, n);
                self.unflushed = true;
            }
            if self.unflushed {
                ready!(Pin::new(&mut *io).poll_flush(cx))?;
                self.unflushed = false;
            }
            let Some(body) = self.body.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            match ready!(Pin::new(body).poll_frame(cx)) {
                None => {
                    self.body = None;
                    if self.chunked {
                        self.out.push_back(Bytes::from_static(b"0\r\n\r\n"));
                    }
                }
                Some(Err(e)) => return Poll::Ready(Err(WireError::ClientBody(e.into()))),
                Some(Ok(frame)) => {
                    // Trailers are dropped (hop-by-hop unless the member asked for them).
                    let Ok(data) = frame.into_data() else { continue };
                    if data.is_empty() {
                        continue;
                    }
                    if self.chunked {
                        self.out.push_back(chunk_size_line(data.len()));
                        self.out.push_back(data);
                        self.out.push_back(Bytes::from_static(b"\r\n"));
                    } else {
                        // hyper holds the client to its Content-Length.
                        self.out.push_back(data);
                    }
                }
            }
        }
    }
}

/// Writes the front of `out`, gathered into one vectored write where the stream takes those.
fn write_queued(
    io: &mut dyn BackendIo,
    out: &VecDeque<Bytes>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    if out.len() > 1 && io.is_write_vectored() {
        let mut slices = [io::IoSlice::new(&[]); 8];
        let mut k = 0;
        for b in out.iter().take(slices.len()) {
            slices[k] = io::IoSlice::new(b);
            k += 1;
        }
        return Pin::new(io).poll_write_vectored(cx, &slices[..k]);
    }
    Pin::new(io).poll_write(cx, &out[0])
}

fn advance(out: &mut VecDeque<Bytes>, mut n: usize) {
    while n > 0 {
        let Some(front) = out.front_mut() else { return };
        if n >= front.len() {
            n -= front.len();
            out.pop_front();
        } else {
            front.advance(n);
            return;
        }
    }
}

/// Reads more of the member's bytes into `conn.rbuf`: `Ok(false)` at its EOF.
fn poll_fill(conn: &mut WireConn, cx: &mut Context<'_>) -> Poll<Result<bool, WireError>> {
    conn.rbuf.reserve(READ_ROOM);
    let n = ready!(poll_read_buf(Pin::new(&mut *conn.io), cx, &mut conn.rbuf))?;
    Poll::Ready(Ok(n > 0))
}

/// Sends a request on `checkout` and waits for the member's final response head (interim 1xx
/// heads are skipped), at most `head_timeout` from the request's last byte (an upload that
/// streams for an hour, an Outlook Anywhere `RPC_IN_DATA`, is not timed by it; the stream's
/// idle timeout guards it). `added`: kedge's headers, written after the client's. The
/// response body then streams from the returned [`WireBody`].
pub async fn exchange<B>(
    mut checkout: Checkout,
    (parts, added): (&http::request::Parts, &AddedHeaders<'_>),
    body: B,
    framing: RequestFraming,
    head_timeout: Duration,
) -> Result<(ResponseHead, WireBody<B>), WireError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let head_request = parts.method == http::Method::HEAD;
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let mut upload = {
        let conn = checkout.conn().ok_or(WireError::Closed)?;
        encode_request_head(&mut conn.wbuf, &parts.method, target, &parts.headers, added);
        let head = conn.wbuf.split().freeze();
        let body = (framing != RequestFraming::Empty && !body.is_end_stream()).then_some(body);
        Upload {
            out: VecDeque::from([head]),
            body,
            chunked: framing == RequestFraming::Chunked,
            unflushed: false,
            broken: None,
        }
    };
    let mut due: Option<tokio::time::Instant> = None;
    let mut interims = 0u32;
    let head = std::future::poll_fn(|cx| {
        let conn = checkout.conn().ok_or(WireError::Closed)?;
        upload.pump(&mut *conn.io, cx)?;
        match poll_head(conn, head_request, &mut interims, cx) {
            // The failed write says more than the close that followed it.
            Poll::Ready(Err(WireError::Closed)) => {
                Poll::Ready(Err(upload.broken.take().unwrap_or(WireError::Closed)))
            }
            Poll::Pending if upload.is_settled() => {
                let at = *due.get_or_insert_with(|| tokio::time::Instant::now() + head_timeout);
                if conn.head_timer_expired(at, cx) {
                    Poll::Ready(Err(WireError::HeadTimeout(head_timeout)))
                } else {
                    Poll::Pending
                }
            }
            other => other,
        }
    })
    .await?;
    let mut body = WireBody {
        checkout,
        upload,
        framing: head.framing,
        chunks: ChunkedDecoder::default(),
        reusable: head.reusable,
    };
    if matches!(head.framing, BodyFraming::Empty | BodyFraming::Length(0)) {
        body.end();
    }
    Ok((head, body))
}

/// Reads the member's final response head, skipping at most [`MAX_INTERIM_HEADS`] interim
/// ones (`interims` counts them across polls).
fn poll_head(
    conn: &mut WireConn,
    head_request: bool,
    interims: &mut u32,
    cx: &mut Context<'_>,
) -> Poll<Result<ResponseHead, WireError>> {
    loop {
        if !conn.rbuf.is_empty() {
            match parse_response_head(&conn.rbuf, head_request)? {
                Parsed::Partial => {}
                Parsed::Interim(n) => {
                    *interims += 1;
                    if *interims > MAX_INTERIM_HEADS {
                        return Poll::Ready(Err(FrameError::TooManyInterim.into()));
                    }
                    conn.rbuf.advance(n);
                    continue;
                }
                Parsed::Final(head, n) => {
                    conn.rbuf.advance(n);
                    return Poll::Ready(Ok(head));
                }
            }
        }
        if !ready!(poll_fill(conn, cx))? {
            return Poll::Ready(Err(WireError::Closed));
        }
    }
}

/// A member's response body, streamed as it arrives, while the request body (if it is still
/// going) keeps going to the member.
pub struct WireBody<B> {
    checkout: Checkout,
    upload: Upload<B>,
    framing: BodyFraming,
    chunks: ChunkedDecoder,
    reusable: bool,
}

impl<B> WireBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    /// The response is through: the connection goes back if it is clean.
    fn end(&mut self) {
        let clean = self.reusable
            && self.upload.is_clean()
            && self.checkout.conn().is_some_and(|c| c.rbuf.is_empty());
        self.checkout.finish(clean);
    }

    fn fail(&mut self, e: WireError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.checkout.finish(false);
        Poll::Ready(Some(Err(Box::new(e))))
    }
}

/// The next body bytes from what was read (`Data`), the body's end (`Done`), or `NeedMore` when
/// more must be read first.
fn take(
    framing: &mut BodyFraming,
    chunks: &mut ChunkedDecoder,
    rbuf: &mut bytes::BytesMut,
) -> Result<Decoded, WireError> {
    Ok(match framing {
        BodyFraming::Empty | BodyFraming::Length(0) => Decoded::Done,
        BodyFraming::Length(left) => {
            if rbuf.is_empty() {
                return Ok(Decoded::NeedMore);
            }
            let n = usize::try_from(*left).unwrap_or(usize::MAX).min(rbuf.len());
            *left -= n as u64;
            Decoded::Data(rbuf.split_to(n).freeze())
        }
        BodyFraming::Chunked => chunks.decode(rbuf)?,
        BodyFraming::UntilClose if rbuf.is_empty() => Decoded::NeedMore,
        BodyFraming::UntilClose => Decoded::Data(rbuf.split().freeze()),
    })
}

impl<B> Body for WireBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            let Some(conn) = this.checkout.conn() else {
                return Poll::Ready(None);
            };
            if let Err(e) = this.upload.pump(&mut *conn.io, cx) {
                return this.fail(e);
            }
            match take(&mut this.framing, &mut this.chunks, &mut conn.rbuf) {
                Err(e) => return this.fail(e),
                Ok(Decoded::Done) => {
                    this.end();
                    return Poll::Ready(None);
                }
                Ok(Decoded::Data(data)) => {
                    if this.framing == BodyFraming::Length(0) {
                        // The last bytes: the connection goes back before hyper asks again.
                        this.end();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(Decoded::NeedMore) => {}
            }
            match ready!(poll_fill(conn, cx)) {
                Ok(true) => {}
                Ok(false) if this.framing == BodyFraming::UntilClose => {
                    this.reusable = false;
                    this.end();
                    return Poll::Ready(None);
                }
                Ok(false) => return this.fail(WireError::Truncated),
                Err(e) => return this.fail(e),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.checkout.is_finished()
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            BodyFraming::Length(left) => SizeHint::with_exact(left),
            BodyFraming::Empty => SizeHint::with_exact(0),
            _ if self.checkout.is_finished() => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
#[path = "wire_exchange_tests.rs"]
mod tests;
