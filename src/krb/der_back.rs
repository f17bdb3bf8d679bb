//! A DER buffer written back to front: an element's contents first, then its header in front
//! of them, so a nest of definite lengths (AP-REP in GSS framing in a SPNEGO NegTokenResp) is
//! one buffer with no length computed ahead and no buffer per level.

/// The DER definite-length octets of `len` (X.690 §8.1.3: short form below 0x80, else the
/// long form with the fewest length bytes), written into `out`.
pub fn definite_length(len: usize, out: &mut [u8; 9]) -> &[u8] {
    if len < 0x80 {
        out[0] = len as u8;
        return &out[..1];
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    out[0] = 0x80 | (bytes.len() - skip) as u8;
    out[1..1 + bytes.len() - skip].copy_from_slice(&bytes[skip..]);
    &out[..1 + bytes.len() - skip]
}

/// The buffer; the bytes written so far are its tail.
#[derive(Debug)]
pub struct DerBack {
    buf: Vec<u8>,
    start: usize,
}

/// Where an element's contents end: [`DerBack::mark`], taken before they are written.
#[derive(Clone, Copy, Debug)]
pub struct Mark(usize);

impl DerBack {
    /// An empty buffer with room for `capacity` bytes before it grows.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: vec![0; capacity],
            start: capacity,
        }
    }

    /// Bytes written.
    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Whether nothing is written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes written.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// A mark before an element's contents: [`wrap`](Self::wrap) then frames everything
    /// written after it.
    pub fn mark(&self) -> Mark {
        Mark(self.len())
    }

    /// Writes `bytes` in front of what is written.
    pub fn prepend(&mut self, bytes: &[u8]) {
        if bytes.len() > self.start {
            let room = (self.buf.len() + bytes.len()).max(64);
            let mut grown = vec![0; room + self.len()];
            grown[room..].copy_from_slice(self.as_slice());
            self.buf = grown;
            self.start = room;
        }
        self.start -= bytes.len();
        self.buf[self.start..self.start + bytes.len()].copy_from_slice(bytes);
    }

    /// Frames what was written since `mark` as `tag`, its DER definite length and those bytes.
    pub fn wrap(&mut self, tag: u8, mark: Mark) {
        let mut length = [0u8; 9];
        let length = definite_length(self.len() - mark.0, &mut length);
        let mut head = [0u8; 1 + 9];
        head[0] = tag;
        head[1..1 + length.len()].copy_from_slice(length);
        self.prepend(&head[..1 + length.len()]);
    }

    /// `tag`, the DER length of `contents`, `contents`, in front of what is written.
    pub fn tlv(&mut self, tag: u8, contents: &[u8]) {
        let m = self.mark();
        self.prepend(contents);
        self.wrap(tag, m);
    }

    /// The bytes written, as a buffer of their own (moved to the front of this one).
    pub fn into_vec(mut self) -> Vec<u8> {
        self.buf.drain(..self.start);
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::krb::gss::{push_tlv, tlv};

    #[test]
    fn nested_elements_are_what_front_to_front_writing_gives() {
        for inner_len in [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x1_0000, 70_000] {
            let inner: Vec<u8> = (0..inner_len).map(|i| i as u8).collect();
            // SEQUENCE { [0] INTEGER 5, [2] OCTET STRING inner }, in [APPLICATION 15].
            let mut fields = vec![0xA0, 3, 0x02, 1, 5];
            push_tlv(&mut fields, 0xA2, &tlv(0x04, &inner));
            let want = tlv(0x6F, &tlv(0x30, &fields));
            // A small start: the buffer grows as it must.
            for capacity in [0, 3, 64, inner_len + 64] {
                let mut w = DerBack::with_capacity(capacity);
                let outer = w.mark();
                let field = w.mark();
                w.tlv(0x04, &inner);
                w.wrap(0xA2, field);
                w.prepend(&[0xA0, 3, 0x02, 1, 5]);
                w.wrap(0x30, outer);
                w.wrap(0x6F, outer);
                assert_eq!(w.as_slice(), &want[..], "{inner_len} {capacity}");
                assert_eq!(w.len(), want.len());
                assert_eq!(w.into_vec(), want, "{inner_len} {capacity}");
            }
        }
    }

    #[test]
    fn definite_lengths_are_x690_s_short_and_shortest_long_forms() {
        let cases: [(usize, &[u8]); 8] = [
            (0, &[0x00]),
            (0x7F, &[0x7F]),
            (0x80, &[0x81, 0x80]),
            (0xFF, &[0x81, 0xFF]),
            (0x100, &[0x82, 0x01, 0x00]),
            (0xFFFF, &[0x82, 0xFF, 0xFF]),
            (70_000, &[0x83, 0x01, 0x11, 0x70]),
            (
                usize::MAX,
                &[0x88, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
            ),
        ];
        for (len, want) in cases {
            let mut out = [0u8; 9];
            assert_eq!(definite_length(len, &mut out), want, "{len}");
        }
    }

    #[test]
    fn an_empty_writer_is_empty() {
        let w = DerBack::with_capacity(16);
        assert!(w.is_empty());
        assert!(w.into_vec().is_empty());
    }
}
