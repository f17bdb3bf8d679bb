//! Bounded, endian-aware reading and writing of NDR primitives (C706 14.2: integers in the
//! PDU's integer representation, no implicit alignment in the connection-oriented headers).
//!
//! Every read is checked: a short buffer yields `RpcError::Truncated`, never a panic.

use super::error::RpcError;
use super::header::Endian;
use super::uuid::Uuid;

/// A read position over untrusted bytes.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    endian: Endian,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], pos: usize, endian: Endian) -> Self {
        Reader { buf, pos, endian }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], RpcError> {
        let end = self.pos.checked_add(n).ok_or(RpcError::Truncated {
            need: usize::MAX,
            have: self.buf.len(),
        })?;
        let s = self.buf.get(self.pos..end).ok_or(RpcError::Truncated {
            need: end,
            have: self.buf.len(),
        })?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RpcError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, RpcError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, RpcError> {
        let a = self.array::<2>()?;
        Ok(match self.endian {
            Endian::Little => u16::from_le_bytes(a),
            Endian::Big => u16::from_be_bytes(a),
        })
    }

    pub(crate) fn u32(&mut self) -> Result<u32, RpcError> {
        let a = self.array::<4>()?;
        Ok(match self.endian {
            Endian::Little => u32::from_le_bytes(a),
            Endian::Big => u32::from_be_bytes(a),
        })
    }

    pub(crate) fn uuid(&mut self) -> Result<Uuid, RpcError> {
        Ok(Uuid::from_wire(&self.array::<16>()?, self.endian))
    }
}

/// An output buffer that writes integers in one representation.
pub(crate) struct Writer {
    pub(crate) out: Vec<u8>,
    endian: Endian,
}

impl Writer {
    pub(crate) fn new(endian: Endian, capacity: usize) -> Self {
        Writer {
            out: Vec::with_capacity(capacity),
            endian,
        }
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.out.push(v);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        match self.endian {
            Endian::Little => self.out.extend_from_slice(&v.to_le_bytes()),
            Endian::Big => self.out.extend_from_slice(&v.to_be_bytes()),
        }
    }

    pub(crate) fn u32(&mut self, v: u32) {
        match self.endian {
            Endian::Little => self.out.extend_from_slice(&v.to_le_bytes()),
            Endian::Big => self.out.extend_from_slice(&v.to_be_bytes()),
        }
    }

    pub(crate) fn uuid(&mut self, u: &Uuid) {
        self.out.extend_from_slice(&u.to_wire(self.endian));
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.out.extend_from_slice(b);
    }

    /// Overwrites the 16-bit field at `at` (used for frag_length once the PDU is complete).
    pub(crate) fn patch_u16(&mut self, at: usize, v: u16) {
        let b = match self.endian {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        };
        if let Some(dst) = self.out.get_mut(at..at + 2) {
            dst.copy_from_slice(&b);
        }
    }
}
