//! Untrusted bytes: every rule of MS-PAC 2.3/2.4 and of the NDR decoding refuses what breaks it,
//! and no input panics.

use proptest::prelude::*;

use super::super::*;
use super::{sample, S4U_SAMPLES};
use crate::krb::crypto::EncType;

/// A small deterministic generator, so failures reproduce.
pub(super) struct Lcg(pub u64);

impl Lcg {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Parses and touches everything a caller would use.
fn exercise(bytes: &[u8]) {
    if let Ok(pac) = Pac::parse(bytes) {
        if let Some(li) = pac.logon_info() {
            let all: Vec<String> = li.all_group_sids().iter().map(|s| s.to_string()).collect();
            assert_eq!(
                li.all_group_sids_joined(),
                all.join(","),
                "one text for the same SIDs"
            );
            let _ = (li.user_sid().to_string(), li.resource_group_sids());
        }
        let _ = (
            pac.client_info().map(|c| c.logon_time_unix()),
            pac.upn_dns_info(),
            format!("{pac:?}"),
        );
    }
}

fn built_pac() -> Vec<u8> {
    let sid: Sid = "S-1-5-21-1004336348-1177238915-682003330".parse().unwrap();
    PacBuilder::windows_like("alice", "CONTOSO.COM", sid.clone(), 1105, 30)
        .resource_groups(
            "S-1-5-21-1-2-3".parse().unwrap(),
            [GroupMembership {
                rid: 1200,
                attributes: 0x20000007,
            }],
        )
        .build_unsigned(EncType::Aes256CtsHmacSha196, EncType::Aes256CtsHmacSha196)
        .unwrap()
}

fn all_inputs() -> Vec<Vec<u8>> {
    let mut v = vec![sample("mit_saved_pac").to_vec(), built_pac()];
    v.extend(S4U_SAMPLES.iter().map(|s| sample(s.file).to_vec()));
    v
}

fn entry_mut(pac: &mut [u8], i: usize) -> &mut [u8] {
    &mut pac[8 + 16 * i..8 + 16 * (i + 1)]
}

#[test]
fn every_truncation_is_refused_without_panicking() {
    for bytes in all_inputs() {
        let pac = Pac::parse(&bytes).unwrap();
        let end = pac
            .buffers()
            .iter()
            .map(|b| (b.offset + u64::from(b.size)) as usize)
            .max()
            .unwrap();
        for n in 0..bytes.len() {
            // Cutting into any buffer is caught by the table check; only the final padding may go.
            assert_eq!(Pac::parse(&bytes[..n]).is_err(), n < end, "truncation to {n}");
        }
        // And every buffer cut short in its table entry (the decoders see short buffers).
        for b in pac.buffers() {
            let buf = pac.buffer(b.buffer_type).unwrap();
            for n in 0..buf.len() {
                let mut cut = bytes.clone();
                let i = pac.buffers().iter().position(|x| x == b).unwrap();
                entry_mut(&mut cut, i)[4..8].copy_from_slice(&(n as u32).to_le_bytes());
                exercise(&cut);
            }
        }
    }
}

#[test]
fn thousands_of_single_byte_mutations_never_panic() {
    let mut rng = Lcg(0x5eed);
    for bytes in all_inputs() {
        for _ in 0..3000 {
            let mut t = bytes.clone();
            let at = rng.below(t.len());
            t[at] = rng.next() as u8;
            exercise(&t);
        }
    }
}

#[test]
fn mutations_of_the_logon_info_count_fields_never_panic() {
    // Every 4-byte-aligned word of LOGON_INFO set to the values most likely to break a decoder.
    for bytes in all_inputs() {
        let pac = Pac::parse(&bytes).unwrap();
        let li = pac
            .buffers()
            .iter()
            .find(|b| b.buffer_type == PAC_LOGON_INFO)
            .unwrap();
        for at in (li.offset as usize..(li.offset + u64::from(li.size)) as usize).step_by(4) {
            for v in [0u32, 1, 0x7fff_ffff, 0xffff_ffff, 0x8000, 0x0002_0000] {
                let mut t = bytes.clone();
                if let Some(w) = t.get_mut(at..at + 4) {
                    w.copy_from_slice(&v.to_le_bytes());
                }
                exercise(&t);
            }
        }
    }
}

#[test]
fn version_other_than_zero_is_refused() {
    let mut t = sample("mit_saved_pac").to_vec();
    t[4] = 1;
    assert_eq!(Pac::parse(&t).unwrap_err(), PacError::BadVersion(1));
}

#[test]
fn zero_or_huge_buffer_counts_are_refused() {
    let mut t = sample("mit_saved_pac").to_vec();
    for count in [0u32, MAX_BUFFERS + 1, u32::MAX] {
        t[..4].copy_from_slice(&count.to_le_bytes());
        assert_eq!(Pac::parse(&t).unwrap_err(), PacError::BufferCount(count));
    }
    t[..4].copy_from_slice(&100u32.to_le_bytes());
    assert!(matches!(Pac::parse(&t), Err(PacError::Truncated(_))));
}

#[test]
fn buffer_placement_rules_are_enforced() {
    let base = sample("mit_saved_pac");
    let set_offset = |i: usize, off: u64| {
        let mut t = base.to_vec();
        entry_mut(&mut t, i)[8..16].copy_from_slice(&off.to_le_bytes());
        Pac::parse(&t).unwrap_err()
    };
    let reason = |e: PacError| match e {
        PacError::BadBuffer { reason, .. } => reason,
        other => panic!("{other:?}"),
    };
    assert_eq!(reason(set_offset(1, 548)), "is not 8-byte aligned");
    assert_eq!(reason(set_offset(0, 64)), "overlaps the PAC header");
    assert_eq!(reason(set_offset(0, 0)), "overlaps the PAC header");
    assert_eq!(reason(set_offset(3, 608)), "runs past the end of the PAC");
    assert_eq!(
        reason(set_offset(3, u64::MAX - 7)),
        "runs past the end of the PAC"
    );
    assert_eq!(reason(set_offset(1, 536)), "overlaps another buffer");
    let mut t = base.to_vec();
    entry_mut(&mut t, 2)[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        reason(Pac::parse(&t).unwrap_err()),
        "runs past the end of the PAC"
    );
}

#[test]
fn signature_buffer_laid_over_logon_info_is_refused() {
    // Point the server signature into LOGON_INFO: zeroing it would change what the checksum covers.
    let mut t = sample("mit_saved_pac").to_vec();
    entry_mut(&mut t, 2)[8..16].copy_from_slice(&80u64.to_le_bytes());
    assert!(matches!(Pac::parse(&t), Err(PacError::BadBuffer { .. })));
}

#[test]
fn logon_info_with_a_huge_group_count_is_refused_without_allocating() {
    let bytes = sample("mit_saved_pac");
    let pac = Pac::parse(bytes).unwrap();
    // GroupCount sits 0x70 bytes into the NDR body (after the 16 bytes of headers).
    let li_off = pac.buffers()[0].offset as usize;
    let at = li_off + 16 + 0x70;
    assert_eq!(&bytes[at..at + 4], &1u32.to_le_bytes(), "GroupCount of saved_pac");
    for count in [u32::MAX, 0x1000_0000, 2] {
        let mut t = bytes.to_vec();
        t[at..at + 4].copy_from_slice(&count.to_le_bytes());
        let err = Pac::parse(&t).unwrap_err();
        assert!(
            matches!(
                err,
                PacError::Malformed {
                    buffer: "KERB_VALIDATION_INFO",
                    ..
                }
            ),
            "{err:?}"
        );
    }
}

#[test]
fn logon_info_without_type_serialization_header_is_refused() {
    let bytes = sample("mit_saved_pac");
    for (delta, v) in [(0usize, 2u8), (1, 0x00), (2, 16)] {
        let mut t = bytes.to_vec();
        t[72 + delta] = v;
        assert!(matches!(Pac::parse(&t), Err(PacError::Malformed { .. })));
    }
}

#[test]
fn duplicate_buffer_types_are_refused() {
    let mut t = sample("mit_saved_pac").to_vec();
    entry_mut(&mut t, 1)[..4].copy_from_slice(&PAC_LOGON_INFO.to_le_bytes());
    assert_eq!(
        Pac::parse(&t).unwrap_err(),
        PacError::DuplicateBuffer(PAC_LOGON_INFO)
    );
}

#[test]
fn unknown_buffer_types_are_kept_raw() {
    let mut t = sample("mit_saved_pac").to_vec();
    entry_mut(&mut t, 1)[..4].copy_from_slice(&0x4242u32.to_le_bytes());
    let pac = Pac::parse(&t).unwrap();
    assert!(pac.client_info().is_none());
    assert_eq!(pac.buffer(0x4242).unwrap().len(), 32);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        exercise(&bytes);
    }

    #[test]
    fn arbitrary_edits_of_a_real_pac_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut t = sample("mit_s4u_pac_regular").to_vec();
        for (i, v) in edits {
            let at = i.index(t.len());
            t[at] = v;
        }
        let keep = cut.index(t.len() + 1);
        exercise(&t[..keep.max(t.len() - 64)]);
    }
}
