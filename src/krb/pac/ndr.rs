//! The slice of NDR (C706 ch. 14, MS-RPCE 2.2.5/2.2.6) that `KERB_VALIDATION_INFO` (MS-PAC 2.5)
//! needs: the type serialization version 1 headers, little-endian primitives with natural
//! alignment, unique pointers (a non-zero referent, or 0 for NULL), conformant arrays, and
//! `RPC_UNICODE_STRING` (MS-DTYP 2.3.10) with its conformant varying body.
//!
//! Every read is bounds-checked; a conformant count is checked against the bytes left before
//! anything is allocated for it.

use super::sid::{Sid, MAX_SUB_AUTHORITIES};
use super::PacError;

/// MS-RPCE 2.2.6.1 common header: version 1.
const TS_VERSION: u8 = 1;
/// MS-RPCE 2.2.6.1 common header: little-endian data representation.
const TS_LITTLE_ENDIAN: u8 = 0x10;
/// MS-RPCE 2.2.6.1 common header length.
const TS_COMMON_HEADER_LEN: u16 = 8;
/// The filler Windows writes in both headers.
const TS_FILLER: u32 = 0xcccc_cccc;
/// Common (8) plus private (8) header.
const TS_HEADERS_LEN: usize = 16;
/// The first referent ID Windows hands out; each further pointer adds 4.
const FIRST_REFERENT: u32 = 0x0002_0000;

/// Checks the type serialization version 1 headers (MS-RPCE 2.2.6.1 common header, 2.2.6.2
/// private header) and returns the object buffer they frame.
pub(crate) fn type_serialization_body<'a>(buf: &'a [u8], what: &'static str) -> Result<&'a [u8], PacError> {
    let mut r = NdrReader::new(buf, what);
    if r.u8()? != TS_VERSION {
        return Err(PacError::malformed(what, "type serialization version is not 1"));
    }
    if r.u8()? != TS_LITTLE_ENDIAN {
        return Err(PacError::malformed(
            what,
            "type serialization is not little-endian",
        ));
    }
    if r.u16()? != TS_COMMON_HEADER_LEN {
        return Err(PacError::malformed(
            what,
            "type serialization common header length is not 8",
        ));
    }
    let _filler = r.u32()?;
    let object_len = usize::try_from(r.u32()?).map_err(|_| r.err("object buffer length"))?;
    let _filler = r.u32()?;
    buf.get(TS_HEADERS_LEN..)
        .and_then(|rest| rest.get(..object_len))
        .ok_or(PacError::malformed(
            what,
            "object buffer length runs past the buffer",
        ))
}

/// Reads NDR primitives from one object buffer; alignment is relative to its start (the
/// serialization headers are 16 bytes, so that is also 8-aligned in the PAC buffer).
pub(crate) struct NdrReader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> NdrReader<'a> {
    /// A reader at the start of `buf`; errors name `what`.
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, pos: 0, what }
    }

    /// A `Malformed` error for this structure.
    pub(crate) fn err(&self, reason: &'static str) -> PacError {
        PacError::malformed(self.what, reason)
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Skips to the next multiple of `n` (a power of two).
    pub(crate) fn align(&mut self, n: usize) -> Result<(), PacError> {
        let pad = (n - self.pos % n) % n;
        self.bytes(pad).map(|_| ())
    }

    /// The next `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], PacError> {
        let end = self.pos.checked_add(n).ok_or(self.err("length overflows"))?;
        let out = self.buf.get(self.pos..end).ok_or(self.err("truncated"))?;
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PacError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    /// An unsigned 8-bit value.
    pub(crate) fn u8(&mut self) -> Result<u8, PacError> {
        Ok(self.array::<1>()?[0])
    }

    /// A 2-aligned little-endian u16.
    pub(crate) fn u16(&mut self) -> Result<u16, PacError> {
        self.align(2)?;
        Ok(u16::from_le_bytes(self.array()?))
    }

    /// A 4-aligned little-endian u32.
    pub(crate) fn u32(&mut self) -> Result<u32, PacError> {
        self.align(4)?;
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A FILETIME (MS-DTYP 2.3.3): two 4-aligned u32s, low part first.
    pub(crate) fn filetime(&mut self) -> Result<u64, PacError> {
        let low = self.u32()?;
        let high = self.u32()?;
        Ok(u64::from(high) << 32 | u64::from(low))
    }

    /// A unique or full pointer's referent ID: `true` for non-NULL (C706 14.3.10).
    pub(crate) fn pointer(&mut self) -> Result<bool, PacError> {
        Ok(self.u32()? != 0)
    }

    /// A conformant array's max count (C706 14.3.3.2), which must equal `expected` (the count
    /// field the structure declared) and leave room for `elem_size` bytes per element, so the
    /// caller may allocate for it.
    pub(crate) fn conformant_count(&mut self, expected: u32, elem_size: usize) -> Result<usize, PacError> {
        let count = self.u32()?;
        if count != expected {
            return Err(self.err("conformant array size differs from its count field"));
        }
        let count = usize::try_from(count).map_err(|_| self.err("array count"))?;
        match count.checked_mul(elem_size) {
            Some(total) if total <= self.remaining() => Ok(count),
            _ => Err(self.err("array count exceeds the buffer")),
        }
    }

    /// The inline part of an `RPC_UNICODE_STRING` (MS-DTYP 2.3.10): Length, MaximumLength (bytes)
    /// and the Buffer pointer.
    pub(crate) fn unicode_string_header(&mut self) -> Result<UnicodeStringHeader, PacError> {
        let length = self.u16()?;
        let max_length = self.u16()?;
        let present = self.pointer()?;
        if length % 2 != 0 || max_length % 2 != 0 || length > max_length {
            return Err(self.err("RPC_UNICODE_STRING lengths are odd or Length > MaximumLength"));
        }
        if !present && length != 0 {
            return Err(self.err("RPC_UNICODE_STRING has a length but a NULL buffer"));
        }
        Ok(UnicodeStringHeader {
            length,
            max_length,
            present,
        })
    }

    /// The deferred body of an `RPC_UNICODE_STRING`: a conformant varying array of UTF-16 units
    /// (max count, offset 0, actual count) matching the header, decoded strictly (an unpaired
    /// surrogate is an error, so two different names never decode alike).
    pub(crate) fn unicode_string_body(&mut self, h: UnicodeStringHeader) -> Result<String, PacError> {
        if !h.present {
            return Ok(String::new());
        }
        let max_count = self.u32()?;
        let offset = self.u32()?;
        let actual = self.u32()?;
        if offset != 0
            || u64::from(max_count) != u64::from(h.max_length / 2)
            || u64::from(actual) != u64::from(h.length / 2)
        {
            return Err(self.err("RPC_UNICODE_STRING body does not match its lengths"));
        }
        let units = self.bytes(usize::from(h.length))?;
        utf16le(units).ok_or(self.err("name is not valid UTF-16"))
    }

    /// An `RPC_SID` (MS-DTYP 2.4.2.3): the conformant count, then the SID with that many
    /// sub-authorities.
    pub(crate) fn rpc_sid(&mut self) -> Result<Sid, PacError> {
        let count = self.u32()?;
        if count as usize > MAX_SUB_AUTHORITIES {
            return Err(self.err("RPC_SID has more than 15 sub-authorities"));
        }
        let rest = self.buf.get(self.pos..).ok_or(self.err("truncated"))?;
        let (sid, used) = Sid::parse_prefix(rest).map_err(|_| self.err("bad RPC_SID"))?;
        if sid.sub_authorities().len() != count as usize {
            return Err(self.err("RPC_SID count differs from SubAuthorityCount"));
        }
        self.bytes(used)?;
        Ok(sid)
    }
}

/// The inline part of an `RPC_UNICODE_STRING` (MS-DTYP 2.3.10), lengths in bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UnicodeStringHeader {
    length: u16,
    max_length: u16,
    present: bool,
}

/// Length and MaximumLength in bytes of an encoded name.
fn string_lengths(units: &[u8], nul: bool) -> Result<(u16, u16), PacError> {
    let too_long = || PacError::Encode("name longer than 32766 UTF-16 units");
    let len = u16::try_from(units.len()).map_err(|_| too_long())?;
    let max = if nul {
        len.checked_add(2).ok_or_else(too_long)?
    } else {
        len
    };
    Ok((len, max))
}

/// Decodes UTF-16LE strictly; `None` for an odd length or an unpaired surrogate.
pub(crate) fn utf16le(bytes: &[u8]) -> Option<String> {
    if bytes.len() % 2 != 0 {
        return None;
    }
    let units = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]));
    char::decode_utf16(units).collect::<Result<String, _>>().ok()
}

/// Encodes UTF-16LE.
pub(crate) fn to_utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// Writes NDR the way Windows does: referent IDs from 0x00020000 in steps of 4, zero padding.
pub(crate) struct NdrWriter {
    buf: Vec<u8>,
    next_referent: u32,
}

impl NdrWriter {
    /// An empty object buffer.
    pub(crate) fn new() -> Self {
        Self {
            buf: Vec::new(),
            next_referent: FIRST_REFERENT,
        }
    }

    /// Pads with zeros to a multiple of `n`.
    pub(crate) fn align(&mut self, n: usize) {
        while self.buf.len() % n != 0 {
            self.buf.push(0);
        }
    }

    /// Raw bytes, unaligned.
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// A 2-aligned u16.
    pub(crate) fn u16(&mut self, v: u16) {
        self.align(2);
        self.bytes(&v.to_le_bytes());
    }

    /// A 4-aligned u32.
    pub(crate) fn u32(&mut self, v: u32) {
        self.align(4);
        self.bytes(&v.to_le_bytes());
    }

    /// A FILETIME as two u32s, low part first.
    pub(crate) fn filetime(&mut self, v: u64) {
        // Truncation intended: the low and high halves.
        self.u32(v as u32);
        self.u32((v >> 32) as u32);
    }

    /// A pointer: the next referent ID, or 0 for NULL.
    pub(crate) fn pointer(&mut self, present: bool) {
        if present {
            let id = self.next_referent;
            self.next_referent = self.next_referent.wrapping_add(4);
            self.u32(id);
        } else {
            self.u32(0);
        }
    }

    /// Takes the next `n` referent IDs for pointers written later, returning them in order.
    pub(crate) fn reserve_referents(&mut self, n: u32) -> impl Iterator<Item = u32> {
        let first = self.next_referent;
        self.next_referent = first.wrapping_add(n.wrapping_mul(4));
        (0..n).map(move |i| first.wrapping_add(i.wrapping_mul(4)))
    }

    /// The inline `RPC_UNICODE_STRING`: Length, MaximumLength (Length, plus 2 where Windows counts
    /// a terminating NUL it does not send) and a non-NULL Buffer, as Windows writes even for
    /// empty strings.
    pub(crate) fn unicode_string_header(&mut self, units: &[u8], nul: bool) -> Result<(), PacError> {
        let (len, max) = string_lengths(units, nul)?;
        self.u16(len);
        self.u16(max);
        self.pointer(true);
        Ok(())
    }

    /// The deferred `RPC_UNICODE_STRING` body: max count, offset 0, actual count, units.
    pub(crate) fn unicode_string_body(&mut self, units: &[u8], nul: bool) -> Result<(), PacError> {
        let (len, max) = string_lengths(units, nul)?;
        self.u32(u32::from(max / 2));
        self.u32(0);
        self.u32(u32::from(len / 2));
        self.bytes(units);
        Ok(())
    }

    /// An `RPC_SID` (MS-DTYP 2.4.2.3).
    pub(crate) fn rpc_sid(&mut self, sid: &Sid) {
        self.u32(sid.sub_authorities().len() as u32);
        sid.write_body(&mut self.buf);
    }

    /// The object buffer wrapped in the type serialization version 1 headers (MS-RPCE 2.2.6),
    /// padded to a multiple of 8.
    pub(crate) fn finish_type_serialization(mut self) -> Result<Vec<u8>, PacError> {
        self.align(8);
        let object_len =
            u32::try_from(self.buf.len()).map_err(|_| PacError::Encode("LOGON_INFO larger than 4 GiB"))?;
        let mut out = Vec::with_capacity(TS_HEADERS_LEN + self.buf.len());
        out.extend_from_slice(&[TS_VERSION, TS_LITTLE_ENDIAN]);
        out.extend_from_slice(&TS_COMMON_HEADER_LEN.to_le_bytes());
        out.extend_from_slice(&TS_FILLER.to_le_bytes());
        out.extend_from_slice(&object_len.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&self.buf);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_aligned_to_their_size() {
        let data = [1u8, 0xff, 2, 0, 3, 0, 0, 0];
        let mut r = NdrReader::new(&data, "t");
        assert_eq!(r.u8().unwrap(), 1);
        assert_eq!(r.u16().unwrap(), 2);
        assert_eq!(r.u32().unwrap(), 3);
        assert!(r.u8().is_err());
    }

    #[test]
    fn conformant_count_larger_than_the_buffer_is_refused_before_allocating() {
        let data = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        let mut r = NdrReader::new(&data, "t");
        assert!(r.conformant_count(u32::MAX, 8).is_err());
        let mut r = NdrReader::new(&data, "t");
        assert!(
            r.conformant_count(7, 8).is_err(),
            "count differing from the field is refused"
        );
    }

    #[test]
    fn unicode_string_round_trips_through_writer_and_reader() {
        let units = to_utf16le("Grüße 𝄞");
        let mut w = NdrWriter::new();
        w.unicode_string_header(&units, true).unwrap();
        w.unicode_string_body(&units, true).unwrap();
        let bytes = w.buf;
        let mut r = NdrReader::new(&bytes, "t");
        let h = r.unicode_string_header().unwrap();
        assert_eq!(r.unicode_string_body(h).unwrap(), "Grüße 𝄞");
    }

    #[test]
    fn unpaired_surrogate_is_refused() {
        assert_eq!(utf16le(&[0x00, 0xd8, 0x41, 0x00]), None);
        assert_eq!(utf16le(&[0x41]), None);
    }

    #[test]
    fn type_serialization_header_is_checked() {
        let w = NdrWriter::new();
        let mut buf = w.finish_type_serialization().unwrap();
        assert_eq!(&buf[..8], &[1, 0x10, 8, 0, 0xcc, 0xcc, 0xcc, 0xcc]);
        assert!(type_serialization_body(&buf, "t").is_ok());
        buf[1] = 0; // big-endian
        assert!(type_serialization_body(&buf, "t").is_err());
        buf[1] = 0x10;
        buf[8] = 8; // object buffer longer than what follows
        assert!(type_serialization_body(&buf, "t").is_err());
    }
}
