//! The two directions of a spliced connection, each a poll-based copy through one buffer (the
//! shape of tokio's internal `CopyBuffer`: read while there is room, write what is ready, flush
//! when the reader stalls, shut the writer down after the reader's EOF, so half-close works).
//!
//! - [`BlindCopy`], backend → client: bytes as they come.
//! - [`PduCopy`], client → backend: the same, but a [`PduScanner`] walks the PDU headers as the
//!   bytes go by (C706 12.6.3.1). Ordinary PDUs are written straight from the read buffer; a
//!   bind, alter_context or rpc_auth_3 is collected whole (at most `max_bind_bytes`) and held:
//!   [`PduCopy::poll_copy`] reports [`UpPoll::Held`] once everything before it was written, and
//!   nothing after it moves until the caller [`release`](PduCopy::release)s it (or drops the
//!   copy). A header that does not parse ends the copy with an error.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::splice::Activity;
use crate::observe::ByteMeter;
use crate::rpc::{PduScanner, RpcError, Scanned};

/// Why a direction stopped early.
#[derive(Debug)]
pub enum CopyError {
    /// A read or write failed (a reset, usually).
    Io(io::Error),
    /// The client sent a PDU header that does not parse, or a held PDU over the limit.
    Pdu(RpcError),
}

impl From<io::Error> for CopyError {
    fn from(e: io::Error) -> Self {
        CopyError::Io(e)
    }
}

fn write_zero() -> io::Error {
    io::Error::new(io::ErrorKind::WriteZero, "write zero bytes into the peer")
}

/// Backend → client: a plain copy.
#[derive(Debug)]
pub struct BlindCopy {
    buf: Box<[u8]>,
    pos: usize,
    cap: usize,
    read_done: bool,
    need_flush: bool,
    shut_down: bool,
    amt: u64,
}

impl BlindCopy {
    /// A copy through a `size`-byte buffer.
    pub fn new(size: usize) -> Self {
        BlindCopy {
            buf: vec![0; size].into_boxed_slice(),
            pos: 0,
            cap: 0,
            read_done: false,
            need_flush: false,
            shut_down: false,
            amt: 0,
        }
    }

    /// Bytes read but not yet written.
    pub fn unwritten(&self) -> &[u8] {
        &self.buf[self.pos..self.cap]
    }

    /// Marks `n` bytes of [`BlindCopy::unwritten`] as written elsewhere.
    pub fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.cap);
    }

    /// Copies until `reader`'s EOF, then shuts `writer` down; returns the bytes written.
    pub fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        mut reader: Pin<&mut R>,
        mut writer: Pin<&mut W>,
        meter: &ByteMeter,
        activity: &Activity,
    ) -> Poll<io::Result<u64>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        loop {
            if self.cap < self.buf.len() && !self.read_done {
                let mut rb = ReadBuf::new(&mut self.buf[self.cap..]);
                match reader.as_mut().poll_read(cx, &mut rb) {
                    Poll::Ready(Ok(())) => match rb.filled().len() {
                        0 => self.read_done = true,
                        n => {
                            self.cap += n;
                            activity.touch();
                        }
                    },
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending if self.pos == self.cap => {
                        if self.need_flush {
                            ready!(writer.as_mut().poll_flush(cx))?;
                            self.need_flush = false;
                        }
                        return Poll::Pending;
                    }
                    Poll::Pending => {}
                }
            }
            while self.pos < self.cap {
                let n = ready!(writer.as_mut().poll_write(cx, &self.buf[self.pos..self.cap]))?;
                if n == 0 {
                    return Poll::Ready(Err(write_zero()));
                }
                self.pos += n;
                self.amt += n as u64;
                meter.add(n as u64);
                self.need_flush = true;
            }
            self.pos = 0;
            self.cap = 0;
            if self.read_done {
                if !self.shut_down {
                    ready!(writer.as_mut().poll_shutdown(cx))?;
                    self.shut_down = true;
                }
                return Poll::Ready(Ok(self.amt));
            }
        }
    }
}

/// The held PDU of a [`PduCopy`].
#[derive(Debug)]
enum Hold {
    /// No PDU held: scanning.
    None,
    /// Collecting a held PDU of `len` bytes.
    Collecting { pdu: Vec<u8>, len: usize },
    /// Whole, waiting for the caller's verdict.
    Ready(Vec<u8>),
    /// Released: written before anything after it.
    Releasing { pdu: Vec<u8>, written: usize },
}

/// What [`PduCopy::poll_copy`] stopped for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpPoll {
    /// A held PDU is whole and everything before it was written: see [`PduCopy::held`].
    Held,
    /// The client's EOF was passed on (backend write shut down): bytes written.
    Done(u64),
}

/// Client → backend, PDU-aware (module docs).
///
/// The buffer holds `[pos, cleared)` bytes cleared to be written, then `[cleared, cap)` bytes
/// not scanned yet (a header split across reads, or what follows a held PDU).
#[derive(Debug)]
pub struct PduCopy {
    buf: Box<[u8]>,
    pos: usize,
    cleared: usize,
    cap: usize,
    scanner: PduScanner,
    hold: Hold,
    read_done: bool,
    need_flush: bool,
    shut_down: bool,
    amt: u64,
}

impl PduCopy {
    /// A copy through a `size`-byte buffer that starts with `already_read` (bytes the client
    /// sent after its first PDU, read with it) and holds PDUs of at most `max_held` bytes.
    pub fn new(size: usize, already_read: &[u8], max_held: usize) -> Result<Self, CopyError> {
        let mut buf = vec![0; size.max(already_read.len())].into_boxed_slice();
        buf[..already_read.len()].copy_from_slice(already_read);
        let mut copy = PduCopy {
            buf,
            pos: 0,
            cleared: 0,
            cap: already_read.len(),
            scanner: PduScanner::new(max_held),
            hold: Hold::None,
            read_done: false,
            need_flush: false,
            shut_down: false,
            amt: 0,
        };
        copy.absorb().map_err(CopyError::Pdu)?;
        Ok(copy)
    }

    /// The held PDU, whole, while it waits for a verdict.
    pub fn held(&self) -> Option<&[u8]> {
        match &self.hold {
            Hold::Ready(pdu) => Some(pdu),
            _ => None,
        }
    }

    /// Lets the held PDU go to the backend, ahead of everything after it.
    pub fn release(&mut self) {
        if let Hold::Ready(pdu) = std::mem::replace(&mut self.hold, Hold::None) {
            self.hold = Hold::Releasing { pdu, written: 0 };
        }
    }

    /// PDUs whose header was seen (the first bind not included).
    pub fn pdus(&self) -> u64 {
        self.scanner.pdus()
    }

    /// Moves newly read bytes on: into the held PDU being collected, else through the scanner.
    fn absorb(&mut self) -> Result<(), RpcError> {
        loop {
            match &mut self.hold {
                Hold::Collecting { pdu, len } => {
                    let take = (*len - pdu.len()).min(self.cap - self.cleared);
                    pdu.extend_from_slice(&self.buf[self.cleared..self.cleared + take]);
                    self.buf.copy_within(self.cleared + take..self.cap, self.cleared);
                    self.cap -= take;
                    if pdu.len() == *len {
                        self.hold = Hold::Ready(std::mem::take(pdu));
                    }
                    return Ok(());
                }
                Hold::None if self.cleared < self.cap => {
                    match self.scanner.scan(&self.buf[self.cleared..self.cap])? {
                        Scanned::All => {
                            self.cleared = self.cap;
                            return Ok(());
                        }
                        Scanned::PartialHeader { at } => {
                            self.cleared += at;
                            return Ok(());
                        }
                        Scanned::Hold { at, header } => {
                            self.cleared += at;
                            let len = usize::from(header.frag_length);
                            self.hold = Hold::Collecting {
                                pdu: Vec::with_capacity(len),
                                len,
                            };
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// Copies client → backend until the client's EOF (then shuts the backend's write side
    /// down) or until a held PDU is whole (then returns [`UpPoll::Held`] until released).
    pub fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        mut reader: Pin<&mut R>,
        mut writer: Pin<&mut W>,
        meter: &ByteMeter,
        activity: &Activity,
    ) -> Poll<Result<UpPoll, CopyError>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        loop {
            if let Hold::Releasing { pdu, written } = &mut self.hold {
                while *written < pdu.len() {
                    let n = ready!(writer.as_mut().poll_write(cx, &pdu[*written..]))?;
                    if n == 0 {
                        return Poll::Ready(Err(write_zero().into()));
                    }
                    *written += n;
                    self.amt += n as u64;
                    meter.add(n as u64);
                    self.need_flush = true;
                }
                self.hold = Hold::None;
                self.absorb().map_err(CopyError::Pdu)?;
                continue;
            }
            let may_read = matches!(self.hold, Hold::None | Hold::Collecting { .. });
            if may_read && self.cap < self.buf.len() && !self.read_done {
                let mut rb = ReadBuf::new(&mut self.buf[self.cap..]);
                match reader.as_mut().poll_read(cx, &mut rb) {
                    Poll::Ready(Ok(())) => match rb.filled().len() {
                        0 => {
                            // EOF: an incomplete header or held PDU is dropped, never forwarded.
                            self.read_done = true;
                            self.cap = self.cleared;
                            self.hold = Hold::None;
                        }
                        n => {
                            self.cap += n;
                            activity.touch();
                            self.absorb().map_err(CopyError::Pdu)?;
                        }
                    },
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                    Poll::Pending if self.pos == self.cleared => {
                        if self.need_flush {
                            ready!(writer.as_mut().poll_flush(cx))?;
                            self.need_flush = false;
                        }
                        return Poll::Pending;
                    }
                    Poll::Pending => {}
                }
            }
            while self.pos < self.cleared {
                let n = ready!(writer.as_mut().poll_write(cx, &self.buf[self.pos..self.cleared]))?;
                if n == 0 {
                    return Poll::Ready(Err(write_zero().into()));
                }
                self.pos += n;
                self.amt += n as u64;
                meter.add(n as u64);
                self.need_flush = true;
            }
            if self.cleared > 0 {
                self.buf.copy_within(self.cleared..self.cap, 0);
                self.cap -= self.cleared;
                self.pos = 0;
                self.cleared = 0;
            }
            if matches!(self.hold, Hold::Ready(_)) {
                return Poll::Ready(Ok(UpPoll::Held));
            }
            if self.read_done {
                if !self.shut_down {
                    ready!(writer.as_mut().poll_shutdown(cx))?;
                    self.shut_down = true;
                }
                return Poll::Ready(Ok(UpPoll::Done(self.amt)));
            }
        }
    }
}
