//! Walking a client's byte stream PDU by PDU without copying it (C706 12.6.3.1: every
//! connection-oriented PDU starts with the 16-byte common header, whose `frag_length` counts the
//! whole PDU; PDUs follow each other with nothing in between, C706 12.6.1).
//!
//! After a connection is admitted the edge forwards ordinary PDUs (request, co_cancel,
//! orphaned, shutdown, …) as they arrive and holds only those that change who is authenticated
//! or to which interface: bind (11), alter_context (14) and rpc_auth_3 (16) (MS-RPCE 2.2.2.10).
//! [`PduScanner::scan`] says how many bytes of a read may pass and where a held PDU begins; it
//! looks at nothing but the 16-byte headers.

use super::error::RpcError;
use super::header::{CommonHeader, PacketType, HEADER_LEN};

/// Whether PDUs of `ptype` are held whole and inspected before they are forwarded: bind,
/// alter_context and rpc_auth_3 carry the security context and interface changes.
pub fn is_held(ptype: PacketType) -> bool {
    matches!(
        ptype,
        PacketType::Bind | PacketType::AlterContext | PacketType::Auth3
    )
}

/// Where a scan of some stream bytes stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scanned {
    /// Every byte scanned may pass (the last PDU may go on in later bytes).
    All,
    /// A header starts at `at` but is not complete: the bytes before `at` may pass; offer the
    /// rest again with more bytes after it.
    PartialHeader {
        /// Offset of the incomplete header.
        at: usize,
    },
    /// A PDU to hold starts at `at`: the bytes before it may pass, then `header.frag_length`
    /// bytes from `at` on are to be collected and inspected before anything after them.
    Hold {
        /// Offset of the held PDU.
        at: usize,
        /// Its decoded header.
        header: CommonHeader,
    },
}

/// The PDU boundary tracker of one direction of a connection.
#[derive(Debug, Clone)]
pub struct PduScanner {
    /// Bytes of the current passing PDU not scanned yet (0: at a boundary).
    rest: usize,
    /// Largest PDU held (the listener's `max_bind_bytes`).
    max_held: usize,
    /// PDUs begun so far (ordinary and held).
    pdus: u64,
}

impl PduScanner {
    /// A scanner at a PDU boundary that refuses held PDUs over `max_held` bytes.
    pub fn new(max_held: usize) -> Self {
        PduScanner {
            rest: 0,
            max_held,
            pdus: 0,
        }
    }

    /// Whether the next byte starts a PDU.
    pub fn at_boundary(&self) -> bool {
        self.rest == 0
    }

    /// PDUs whose header was scanned so far.
    pub fn pdus(&self) -> u64 {
        self.pdus
    }

    /// Scans `bytes`, the stream right after what earlier calls returned as passing (a held PDU,
    /// once collected, is not offered again: scanning resumes right after it). Each header is
    /// checked ([`CommonHeader::parse`]: version 5.0/5.1, drep, `frag_length` ≥ 16 and covering
    /// the auth verifier); a held PDU over `max_held` bytes is `FragTooLong`. An error leaves the
    /// scanner where it was: the connection is to end.
    pub fn scan(&mut self, bytes: &[u8]) -> Result<Scanned, RpcError> {
        let mut at = 0;
        loop {
            let body = self.rest.min(bytes.len() - at);
            self.rest -= body;
            at += body;
            if at == bytes.len() {
                return Ok(Scanned::All);
            }
            let Some(head) = bytes.get(at..at + HEADER_LEN) else {
                return Ok(Scanned::PartialHeader { at });
            };
            let header = CommonHeader::parse(head)?;
            let len = usize::from(header.frag_length);
            self.pdus += 1;
            if is_held(header.ptype) {
                if len > self.max_held {
                    return Err(RpcError::FragTooLong {
                        frag_length: len,
                        max: self.max_held,
                    });
                }
                return Ok(Scanned::Hold { at, header });
            }
            self.rest = len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PDU of `ptype` and `len` bytes (little-endian), body filled with `fill`.
    fn pdu(ptype: u8, len: u16, fill: u8) -> Vec<u8> {
        let mut p = vec![5, 0, ptype, 3, 0x10, 0, 0, 0];
        p.extend_from_slice(&len.to_le_bytes());
        p.extend_from_slice(&[0, 0, 1, 0, 0, 0]);
        p.resize(len.into(), fill);
        p
    }

    /// Feeds `stream` in pieces of `sizes` (cycled) the way the edge does — unscanned tails kept
    /// and offered again — and returns (passed bytes, held PDUs).
    fn run(stream: &[u8], sizes: &[usize]) -> Result<(Vec<u8>, Vec<Vec<u8>>), RpcError> {
        let mut s = PduScanner::new(1024);
        let (mut passed, mut held) = (Vec::new(), Vec::new());
        let mut pending: Vec<u8> = Vec::new();
        let mut collecting: Option<(Vec<u8>, usize)> = None;
        let mut input = stream;
        let mut i = 0;
        while !input.is_empty() || !pending.is_empty() {
            if !input.is_empty() {
                let n = sizes[i % sizes.len()].min(input.len());
                i += 1;
                pending.extend_from_slice(&input[..n]);
                input = &input[n..];
            }
            loop {
                if let Some((buf, need)) = collecting.as_mut() {
                    let take = (*need - buf.len()).min(pending.len());
                    buf.extend(pending.drain(..take));
                    if buf.len() < *need {
                        break;
                    }
                    held.push(collecting.take().unwrap().0);
                }
                match s.scan(&pending)? {
                    Scanned::All => {
                        passed.append(&mut pending);
                        break;
                    }
                    Scanned::PartialHeader { at } => {
                        passed.extend(pending.drain(..at));
                        if input.is_empty() {
                            return Ok((passed, held));
                        }
                        break;
                    }
                    Scanned::Hold { at, header } => {
                        passed.extend(pending.drain(..at));
                        collecting = Some((Vec::new(), header.frag_length.into()));
                    }
                }
            }
            if input.is_empty() && collecting.is_some() {
                break;
            }
        }
        Ok((passed, held))
    }

    #[test]
    fn requests_pass_whatever_the_read_boundaries() {
        let stream: Vec<u8> = [
            pdu(0, 100, 0xa1),
            pdu(0, 16, 0),
            pdu(0, 4280, 0xb2),
            pdu(2, 40, 0xc3),
        ]
        .concat();
        for sizes in [&[1][..], &[7], &[15, 1, 16], &[16], &[17, 3], &[4096], &[100_000]] {
            let (passed, held) = run(&stream, sizes).unwrap();
            assert_eq!(passed, stream, "sizes {sizes:?}");
            assert!(held.is_empty());
        }
    }

    #[test]
    fn bind_alter_context_and_auth3_are_held_in_order() {
        let parts = [
            pdu(0, 64, 1),
            pdu(14, 80, 2),
            pdu(0, 32, 3),
            pdu(16, 36, 4),
            pdu(11, 72, 5),
            pdu(0, 20, 6),
        ];
        let stream = parts.concat();
        for sizes in [&[1][..], &[5, 11], &[16], &[1000]] {
            let (passed, held) = run(&stream, sizes).unwrap();
            assert_eq!(
                held,
                vec![parts[1].clone(), parts[3].clone(), parts[4].clone()],
                "{sizes:?}"
            );
            assert_eq!(
                passed,
                [parts[0].clone(), parts[2].clone(), parts[5].clone()].concat()
            );
        }
    }

    #[test]
    fn a_bad_header_after_good_pdus_is_an_error() {
        let mut stream = pdu(0, 40, 0);
        stream.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        assert!(matches!(
            run(&stream, &[1000]),
            Err(RpcError::BadVersion { major: b'G', .. })
        ));
    }

    #[test]
    fn frag_length_below_the_header_is_an_error() {
        let mut p = pdu(0, 16, 0);
        p[8] = 15;
        assert!(matches!(
            PduScanner::new(1024).scan(&p),
            Err(RpcError::FragTooShort { .. })
        ));
    }

    #[test]
    fn held_pdu_over_the_limit_is_an_error_but_requests_are_not_limited() {
        let mut s = PduScanner::new(1024);
        assert_eq!(s.scan(&pdu(0, 4000, 0)), Ok(Scanned::All));
        assert!(s.at_boundary());
        assert_eq!(
            s.scan(&pdu(14, 2000, 0)[..16]),
            Err(RpcError::FragTooLong {
                frag_length: 2000,
                max: 1024
            })
        );
    }

    #[test]
    fn partial_header_reports_its_offset() {
        let mut s = PduScanner::new(1024);
        let stream = [pdu(0, 20, 0), pdu(0, 20, 0)].concat();
        assert_eq!(s.scan(&stream[..30]), Ok(Scanned::PartialHeader { at: 20 }));
        assert_eq!(s.pdus(), 1);
        assert!(s.at_boundary());
        assert_eq!(s.scan(&stream[20..]), Ok(Scanned::All));
        assert_eq!(s.pdus(), 2);
    }

    #[test]
    fn mid_pdu_the_scanner_is_not_at_a_boundary() {
        let mut s = PduScanner::new(1024);
        assert_eq!(s.scan(&pdu(0, 100, 0)[..50]), Ok(Scanned::All));
        assert!(!s.at_boundary());
    }
}
