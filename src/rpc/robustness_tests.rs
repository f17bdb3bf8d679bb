//! Untrusted bytes never panic: every truncation of every capture, oversize and inconsistent
//! lengths, wrong versions, and thousands of random mutations go through the parsers.

use super::captures_tests::CAPTURES;
use super::*;

/// Deterministic xorshift64*, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Runs every parser on `bytes`; returns whether `parse_bind` accepted them.
fn exercise(bytes: &[u8]) -> bool {
    let _ = pdu_length(bytes, 65_535);
    let _ = CommonHeader::parse(bytes);
    let _ = parse_bind_ack(bytes);
    let _ = parse_bind_nak(bytes);
    let _ = parse_fault(bytes);
    if let Ok(a) = parse_auth3(bytes) {
        assert!(a.token(bytes).is_some());
    }
    if let Ok(Some(v)) = parse_auth_verifier(bytes) {
        assert!(v.token(bytes).is_some());
    }
    let mut scanner = PduScanner::new(65_535);
    if let Ok(Scanned::Hold { at, header }) = scanner.scan(bytes) {
        assert!(is_held(header.ptype) && at < bytes.len());
    }
    match parse_bind(bytes) {
        Ok(b) => {
            // Whatever parsed must be self-consistent.
            if let Some(a) = &b.auth {
                assert!(a.token(bytes).is_some());
                assert!(a.token_range.end <= bytes.len());
            }
            let _ = InterfaceMap::default().required_service(&b);
            let _ = b.to_bytes(b.token(bytes).unwrap_or(&[]));
            true
        }
        Err(e) => {
            let _ = (e.reason(), e.reject_reason(), e.to_string());
            false
        }
    }
}

#[test]
fn every_truncation_of_every_capture_is_refused() {
    for (name, pdu) in CAPTURES {
        for n in 0..pdu.len() {
            assert!(!exercise(&pdu[..n]), "{name} cut at {n}");
        }
    }
}

#[test]
fn frag_length_beyond_the_data_is_refused() {
    for (name, pdu) in CAPTURES {
        let mut p = pdu.to_vec();
        p[8..10].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(
            matches!(parse_bind(&p), Err(RpcError::Truncated { need: 65_535, .. })),
            "{name}"
        );
        assert_eq!(
            pdu_length(&p[..16], 16_384),
            Err(RpcError::FragTooLong {
                frag_length: 65_535,
                max: 16_384
            })
        );
    }
}

#[test]
fn frag_length_shorter_than_the_pdu_is_refused() {
    for (name, pdu) in CAPTURES {
        let mut p = pdu.to_vec();
        let short = (pdu.len() - 1) as u16;
        p[8..10].copy_from_slice(&short.to_le_bytes());
        assert!(parse_bind(&p).is_err(), "{name}");
    }
}

#[test]
fn auth_length_inconsistent_with_frag_length_is_refused() {
    for (name, pdu) in CAPTURES.iter().filter(|(n, _)| !n.starts_with("epm")) {
        let auth_length = u16::from_le_bytes([pdu[10], pdu[11]]);
        for delta in [1i32, -1, 4, -4, 100] {
            let mut p = pdu.to_vec();
            let bad = (i32::from(auth_length) + delta) as u16;
            p[10..12].copy_from_slice(&bad.to_le_bytes());
            assert!(parse_bind(&p).is_err(), "{name} auth_length {bad}");
        }
        let mut p = pdu.to_vec();
        p[10..12].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(
            matches!(parse_bind(&p), Err(RpcError::AuthLengthInconsistent { .. })),
            "{name}"
        );
    }
}

#[test]
fn wrong_protocol_version_is_refused() {
    for (name, pdu) in CAPTURES {
        for (major, minor) in [(4, 0), (6, 0), (5, 2), (0, 0), (255, 255)] {
            let mut p = pdu.to_vec();
            p[0] = major;
            p[1] = minor;
            assert_eq!(
                parse_bind(&p),
                Err(RpcError::BadVersion { major, minor }),
                "{name}"
            );
        }
    }
}

#[test]
fn random_mutations_never_panic() {
    let mut rng = Rng(0x6b65_6467_6521_2026);
    let mut accepted = 0;
    let mut total = 0;
    for (_, pdu) in CAPTURES {
        for _ in 0..600 {
            let mut p = pdu.to_vec();
            for _ in 0..1 + rng.below(4) {
                // Bias towards the header and bind body, where the lengths and counts live.
                let at = if rng.below(2) == 0 {
                    rng.below(p.len().min(96))
                } else {
                    rng.below(p.len())
                };
                p[at] = match rng.below(4) {
                    0 => 0,
                    1 => 0xff,
                    2 => p[at] ^ (1 << rng.below(8)),
                    _ => rng.next() as u8,
                };
            }
            if rng.below(8) == 0 {
                p.truncate(rng.below(p.len() + 1));
            }
            total += 1;
            accepted += usize::from(exercise(&p));
        }
    }
    assert_eq!(total, 6600);
    // Most mutations hit token bytes or free fields and still parse; all of them returned.
    assert!(accepted > 0 && accepted < total, "{accepted} of {total}");
}

#[test]
fn header_mutations_are_refused() {
    let mut rng = Rng(42);
    for (name, pdu) in CAPTURES {
        for _ in 0..200 {
            let mut p = pdu.to_vec();
            // version, type, flags (LAST_FRAG cleared), drep integer nibble, frag_length
            match rng.below(5) {
                0 => p[0] = 5 ^ (1 + rng.below(255) as u8),
                1 => p[2] = [0u8, 2, 3, 12, 13, 15, 16, 17, 18][rng.below(9)],
                2 => p[3] &= !PFC_LAST_FRAG,
                3 => p[4] = 0x20 | (rng.below(0xe0) as u8),
                _ => {
                    let f = 16 + rng.below(pdu.len() - 16 - 11) as u16;
                    p[8..10].copy_from_slice(&f.to_le_bytes());
                }
            }
            assert!(parse_bind(&p).is_err(), "{name}: {:02x?}", &p[..16]);
        }
    }
}

#[test]
fn random_garbage_never_panics() {
    let mut rng = Rng(7);
    for _ in 0..3000 {
        let len = rng.below(200);
        let mut p: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if len >= 16 && rng.below(2) == 0 {
            // Make the header plausible so the body parsers get exercised too.
            p[..4].copy_from_slice(&[5, 0, [11u8, 12, 13, 14, 15][rng.below(5)], 3]);
            p[4] = 0x10;
            let f = rng.below(len + 1) as u16;
            p[8..10].copy_from_slice(&f.to_le_bytes());
            let a = rng.below(len + 1) as u16;
            p[10..12].copy_from_slice(&a.to_le_bytes());
        }
        exercise(&p);
    }
}
