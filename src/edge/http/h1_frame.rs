//! HTTP/1.1 framing for the passthrough forwarder (RFC 9112), pure and I/O-free: the request
//! head written from the head hyper's server side parsed, a member's response head read with
//! `httparse`, how its body is framed (§6.3), and a strict chunked decoder (§7.1).
//!
//! The member is a server kedge was configured to trust, but its bytes are still input: a head
//! over the limit, a malformed or conflicting `Content-Length`, a chunk size that overflows or
//! a chunk line without its CRLF is an error (the client gets a 502), never a guess.

use super::forward_headers::AddedHeaders;
use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{Method, StatusCode, Version};
use std::mem::MaybeUninit;

/// The most header lines a member's response head may have.
pub const MAX_RESPONSE_HEADERS: usize = 128;
/// The most bytes a member's response head may have (interim 1xx heads count separately).
pub const MAX_RESPONSE_HEAD: usize = 256 * 1024;
/// The longest chunk-size line (size and extensions).
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// The most trailer bytes after the last chunk (read and dropped).
const MAX_TRAILERS: usize = 16 * 1024;

/// Why a member's bytes could not be read as HTTP/1.1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The response head is larger than [`MAX_RESPONSE_HEAD`].
    #[error("response head over {MAX_RESPONSE_HEAD} bytes")]
    HeadTooLarge,
    /// httparse refused the head.
    #[error("malformed response head: {0}")]
    Head(httparse::Error),
    /// A header httparse took but `http` does not (a name or value with bytes it refuses).
    #[error("malformed response header")]
    Header,
    /// `Content-Length` is not one non-negative decimal number.
    #[error("bad Content-Length in the response")]
    ContentLength,
    /// `101 Switching Protocols`: kedge strips `Upgrade`, so a member must not switch.
    #[error("the member switched protocols without being asked")]
    Upgrade,
    /// A chunked body broke its framing.
    #[error("malformed chunked body: {0}")]
    Chunk(&'static str),
    /// A request's `Content-Length` that hyper let through but is not a number (a bug).
    #[error("bad Content-Length in the request")]
    RequestLength,
    /// More interim (1xx) responses before the final one than any server sends.
    #[error("more than {MAX_INTERIM_HEADS} interim (1xx) responses")]
    TooManyInterim,
}

/// The most interim (1xx) response heads skipped before a final one (RFC 9110 §15.2 allows
/// several; a member that keeps sending them is not answering).
pub const MAX_INTERIM_HEADS: u32 = 16;

/// How a request's body goes to the member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFraming {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked (the client's body was chunked; hyper has decoded it, kedge re-encodes it).
    Chunked,
}

impl RequestFraming {
    /// The framing of a request whose headers went through `prepare_request` (which keeps a
    /// chunked request chunked and nothing else of `Transfer-Encoding`).
    pub fn of(headers: &HeaderMap) -> Result<Self, FrameError> {
        if headers.contains_key(TRANSFER_ENCODING) {
            return Ok(Self::Chunked);
        }
        match content_length(headers) {
            Ok(None) | Ok(Some(0)) => Ok(Self::Empty),
            Ok(Some(n)) => Ok(Self::Length(n)),
            Err(_) => Err(FrameError::RequestLength),
        }
    }
}

/// Writes a request head: `method target HTTP/1.1`, then every header as hyper holds it
/// (names lower-case, values byte for byte), then those kedge `added`, then the blank line.
pub fn encode_request_head(
    dst: &mut BytesMut,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    added: &AddedHeaders<'_>,
) {
    let all = || headers.iter().map(|(n, v)| (n, v.as_bytes())).chain(added.iter());
    let size = all().map(|(n, v)| n.as_str().len() + v.len() + 4).sum::<usize>();
    dst.reserve(method.as_str().len() + target.len() + 13 + size + 2);
    dst.extend_from_slice(method.as_str().as_bytes());
    dst.extend_from_slice(b" ");
    dst.extend_from_slice(target.as_bytes());
    dst.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in all() {
        dst.extend_from_slice(name.as_str().as_bytes());
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value);
        dst.extend_from_slice(b"\r\n");
    }
    dst.extend_from_slice(b"\r\n");
}

/// How a response's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// None (a `HEAD` request; 204, 304).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked.
    Chunked,
    /// Until the member closes.
    UntilClose,
}

/// A member's final response head.
#[derive(Debug)]
pub struct ResponseHead {
    /// Status.
    pub status: StatusCode,
    /// Headers as the member sent them (hop-by-hop ones included; the forwarder strips them).
    pub headers: HeaderMap,
    /// How the body is delimited.
    pub framing: BodyFraming,
    /// Whether the connection may carry another request after this response.
    pub reusable: bool,
}

/// What the bytes read so far hold.
#[derive(Debug)]
pub enum Parsed {
    /// Not a whole head yet.
    Partial,
    /// An interim (1xx) response of this many bytes, to skip.
    Interim(usize),
    /// The final head and its length.
    Final(ResponseHead, usize),
}

/// Reads a response head from the start of `buf`. `head_request`: the request was `HEAD`, so
/// the response has no body whatever its headers say.
///
/// The framing facts (`Connection: close`, `Transfer-Encoding`, `Content-Length`) are taken from
/// the header lines in the one walk that builds the map, not looked up again after it.
pub fn parse_response_head(buf: &[u8], head_request: bool) -> Result<Parsed, FrameError> {
    // Slots httparse fills as it parses: no 4 KiB of empty headers written first.
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed =
        httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut resp, buf, &mut slots);
    let len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_RESPONSE_HEAD => {
            return Err(FrameError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(FrameError::HeadTooLarge),
        Err(e) => return Err(FrameError::Head(e)),
    };
    if len > MAX_RESPONSE_HEAD {
        return Err(FrameError::HeadTooLarge);
    }
    let code = resp.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| FrameError::Head(httparse::Error::Status))?;
    if code == 101 {
        return Err(FrameError::Upgrade);
    }
    if status.is_informational() {
        return Ok(Parsed::Interim(len));
    }
    // Room for one more: an assert route adds its `WWW-Authenticate` (the map grew for it).
    let mut headers = HeaderMap::with_capacity(resp.headers.len() + 1);
    let mut close = false;
    // Whether the last `Transfer-Encoding` line so far ends in chunked (`None`: no such line).
    let mut chunked: Option<bool> = None;
    let mut length: Result<Option<u64>, FrameError> = Ok(None);
    for h in resp.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| FrameError::Header)?;
        let value = HeaderValue::from_bytes(h.value).map_err(|_| FrameError::Header)?;
        if name == CONNECTION {
            close |= super::forward_headers::says_close(&value);
        } else if name == CONTENT_LENGTH {
            // The first error is kept; a `Transfer-Encoding` may still make it moot.
            if let Ok(found) = &mut length {
                if let Err(e) = add_content_length(found, &value) {
                    length = Err(e);
                }
            }
        } else if name == TRANSFER_ENCODING {
            chunked = Some(last_coding_is_chunked(&value));
        }
        headers.append(name, value);
    }
    let version = if resp.version == Some(1) {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    let mut reusable = version == Version::HTTP_11 && !close;
    let no_body = head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    let framing = if no_body {
        BodyFraming::Empty
    } else if let Some(chunked) = chunked {
        // Transfer-Encoding wins over Content-Length (§6.3 3); such a message may be an attempt
        // at smuggling, so the connection is not used again. A coding list that does not end in
        // chunked runs until the close.
        if !matches!(length, Ok(None)) {
            headers.remove(CONTENT_LENGTH);
            reusable = false;
        }
        if chunked {
            BodyFraming::Chunked
        } else {
            reusable = false;
            BodyFraming::UntilClose
        }
    } else {
        match length? {
            Some(n) => BodyFraming::Length(n),
            None => {
                reusable = false;
                BodyFraming::UntilClose
            }
        }
    };
    Ok(Parsed::Final(
        ResponseHead {
            status,
            headers,
            framing,
            reusable,
        },
        len,
    ))
}

/// Whether a `Transfer-Encoding` value's last coding is `chunked` (a value that is not
/// visible ASCII says nothing).
fn last_coding_is_chunked(value: &HeaderValue) -> bool {
    let last = value.to_str().ok().and_then(|v| v.rsplit(',').next());
    last.is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"))
}

/// The `Content-Length`, if any: every value (and every comma-separated element) must be the
/// same decimal number (RFC 9110 §8.6).
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, FrameError> {
    let mut found = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        add_content_length(&mut found, value)?;
    }
    Ok(found)
}

/// Adds one `Content-Length` value to what the earlier ones said: every value (and every
/// comma-separated element) must be the same decimal number (RFC 9110 §8.6).
fn add_content_length(found: &mut Option<u64>, value: &HeaderValue) -> Result<(), FrameError> {
    for part in value.as_bytes().split(|&b| b == b',') {
        let digits = part.trim_ascii();
        if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
            return Err(FrameError::ContentLength);
        }
        let n = digits.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        if found.is_some_and(|f| f != n) {
            return Err(FrameError::ContentLength);
        }
        *found = Some(n);
    }
    Ok(())
}

/// What the chunked decoder got out of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Body bytes.
    Data(Bytes),
    /// The buffer ends inside framing: read more.
    NeedMore,
    /// The last chunk and its trailers are through.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size {
        value: u64,
        digits: u8,
    },
    /// Whitespace after the size, before `;` or CR.
    SizeWs {
        value: u64,
    },
    Ext {
        value: u64,
    },
    SizeLf {
        value: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    Trailer {
        line: usize,
    },
    TrailerLf {
        empty: bool,
    },
    Done,
}

/// A chunked body's decoder (RFC 9112 §7.1): sizes in hex (at most 16 digits), extensions
/// skipped (one line at most 4 KiB), CRLF required everywhere, trailers read and dropped (at
/// most 16 KiB).
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: ChunkState,
    line: usize,
    trailers: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self {
            state: ChunkState::Size { value: 0, digits: 0 },
            line: 0,
            trailers: 0,
        }
    }
}

impl ChunkedDecoder {
    /// Takes what it can from the front of `buf`: the next data (split off `buf`, no copy),
    /// or the end, or a request for more bytes.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, FrameError> {
        use ChunkState::*;
        loop {
            if let Data(left) = self.state {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                let data = buf.split_to(take).freeze();
                let left = left - take as u64;
                self.state = if left == 0 { DataCr } else { Data(left) };
                return Ok(Decoded::Data(data));
            }
            if self.state == Done {
                return Ok(Decoded::Done);
            }
            let Some(&b) = buf.first() else {
                return Ok(Decoded::NeedMore);
            };
            buf.advance(1);
            self.state = self.step(b)?;
        }
    }

    fn step(&mut self, b: u8) -> Result<ChunkState, FrameError> {
        use ChunkState::*;
        if matches!(self.state, Size { .. } | SizeWs { .. } | Ext { .. }) {
            self.line += 1;
            if self.line > MAX_CHUNK_LINE {
                return Err(FrameError::Chunk("chunk-size line too long"));
            }
        }
        if matches!(self.state, Trailer { .. }) {
            self.trailers += 1;
            if self.trailers > MAX_TRAILERS {
                return Err(FrameError::Chunk("trailers too long"));
            }
        }
        Ok(match (self.state, b) {
            (Size { value, digits }, _) if b.is_ascii_hexdigit() => {
                if digits == 16 {
                    return Err(FrameError::Chunk("chunk size too large"));
                }
                let d = (b as char).to_digit(16).unwrap_or(0);
                Size {
                    value: value << 4 | u64::from(d),
                    digits: digits + 1,
                }
            }
            (Size { digits: 0, .. }, _) => return Err(FrameError::Chunk("no chunk size")),
            (Size { value, .. } | SizeWs { value }, b' ' | b'\t') => SizeWs { value },
            (Size { value, .. } | SizeWs { value }, b';') => Ext { value },
            (Size { value, .. } | SizeWs { value } | Ext { value }, b'\r') => SizeLf { value },
            (Ext { value }, b) if b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80 => Ext { value },
            (SizeLf { value }, b'\n') => {
                self.line = 0;
                if value == 0 {
                    Trailer { line: 0 }
                } else {
                    Data(value)
                }
            }
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => Size { value: 0, digits: 0 },
            (Trailer { line }, b'\r') => TrailerLf { empty: line == 0 },
            (Trailer { line }, b) if b != b'\n' => Trailer { line: line + 1 },
            (TrailerLf { empty: true }, b'\n') => Done,
            (TrailerLf { empty: false }, b'\n') => Trailer { line: 0 },
            (DataCr | DataLf, _) => return Err(FrameError::Chunk("no CRLF after chunk data")),
            _ => return Err(FrameError::Chunk("bad byte in chunk framing")),
        })
    }
}

/// A chunk's size line for `len` bytes of data.
pub fn chunk_size_line(len: usize) -> Bytes {
    Bytes::from(format!("{len:x}\r\n"))
}

#[cfg(test)]
#[path = "h1_frame_tests.rs"]
mod tests;
