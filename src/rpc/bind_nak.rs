//! bind_nak (PTYPE 13): what the edge answers a refused bind with (C706 12.6.4.5, MS-RPCE 2.2.2.9;
//! reject reasons C706 12.6.3.1 `p_reject_reason_t` and MS-RPCE 2.2.2.5).
//!
//! ```text
//! common header (16) | provider_reject_reason u16 | n_protocols u8 | {major u8, minor u8}[n]
//! [Signature UUID (16, optional, MS-RPCE 2.2.2.9) + extended error]
//! ```
//!
//! kedge sends the C706 form: one supported version (5.0), no Signature, padded with zeros to a
//! 4-byte boundary (24 bytes in all), so by the MS-RPCE 2.2.2.9 rule (`frag_length` ≥ L + 16) a
//! client sees no extended error information.

use super::cursor::{Reader, Writer};
use super::error::RpcError;
use super::header::{CommonHeader, Drep, PacketType, PFC_FIRST_FRAG, PFC_LAST_FRAG};

/// `provider_reject_reason` of a bind_nak (C706 12.6.3.1 `p_reject_reason_t`; MS-RPCE 2.2.2.5
/// adds 8 and 9 and says 1 is treated like 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// 0 `reason_not_specified` (MS-RPCE: REASON_NOT_SPECIFIED, for anything that fits no other).
    ReasonNotSpecified,
    /// 1 `temporary_congestion` (MS-RPCE: not used; clients treat it as LOCAL_LIMIT_EXCEEDED).
    TemporaryCongestion,
    /// 2 `local_limit_exceeded`: the server lacks resources (or a limit was hit).
    LocalLimitExceeded,
    /// 3 `called_paddr_unknown` (C706).
    CalledPaddrUnknown,
    /// 4 `protocol_version_not_supported` (MS-RPCE: PROTOCOL_VERSION_NOT_SPECIFIED, a protocol error
    /// in a bind or alter_context).
    ProtocolVersionNotSupported,
    /// 5 `default_context_not_supported` (C706).
    DefaultContextNotSupported,
    /// 6 `user_data_not_readable` (C706).
    UserDataNotReadable,
    /// 7 `no_psap_available` (C706).
    NoPsapAvailable,
    /// 8 `authentication_type_not_recognized` (MS-RPCE 2.2.2.5).
    AuthenticationTypeNotRecognized,
    /// 9 `invalid_checksum`: an unrecoverable error in the security provider (MS-RPCE 2.2.2.5) —
    /// the fitting answer to a token that fails validation.
    InvalidChecksum,
    /// Any other value.
    Other(u16),
}

impl RejectReason {
    /// The `provider_reject_reason` value.
    pub fn code(self) -> u16 {
        match self {
            RejectReason::ReasonNotSpecified => 0,
            RejectReason::TemporaryCongestion => 1,
            RejectReason::LocalLimitExceeded => 2,
            RejectReason::CalledPaddrUnknown => 3,
            RejectReason::ProtocolVersionNotSupported => 4,
            RejectReason::DefaultContextNotSupported => 5,
            RejectReason::UserDataNotReadable => 6,
            RejectReason::NoPsapAvailable => 7,
            RejectReason::AuthenticationTypeNotRecognized => 8,
            RejectReason::InvalidChecksum => 9,
            RejectReason::Other(n) => n,
        }
    }

    /// The reason named by a `provider_reject_reason` value.
    pub fn from_code(n: u16) -> RejectReason {
        match n {
            0 => RejectReason::ReasonNotSpecified,
            1 => RejectReason::TemporaryCongestion,
            2 => RejectReason::LocalLimitExceeded,
            3 => RejectReason::CalledPaddrUnknown,
            4 => RejectReason::ProtocolVersionNotSupported,
            5 => RejectReason::DefaultContextNotSupported,
            6 => RejectReason::UserDataNotReadable,
            7 => RejectReason::NoPsapAvailable,
            8 => RejectReason::AuthenticationTypeNotRecognized,
            9 => RejectReason::InvalidChecksum,
            n => RejectReason::Other(n),
        }
    }
}

/// Builds a bind_nak answering the bind with `call_id`, in the client's `drep` (C706 12.6.4.5,
/// MS-RPCE 2.2.2.9): `reason`, one supported protocol version 5.0, 24 bytes. A `drep` whose
/// integer format is unknown (the bind was refused for it) falls back to little-endian.
pub fn build_bind_nak(call_id: u32, drep: Drep, reason: RejectReason) -> Vec<u8> {
    let drep = if drep.endian().is_ok() {
        drep
    } else {
        Drep::LITTLE_ENDIAN
    };
    let endian = drep.endian().unwrap_or(super::header::Endian::Little);
    let mut w = Writer::new(endian, 24);
    CommonHeader {
        rpc_vers_minor: 0,
        ptype: PacketType::BindNak,
        pfc_flags: PFC_FIRST_FRAG | PFC_LAST_FRAG,
        drep,
        frag_length: 24,
        auth_length: 0,
        call_id,
    }
    .write(&mut w);
    w.u16(reason.code());
    w.u8(1); // n_protocols
    w.u8(5); // rpc_vers
    w.u8(0); // rpc_vers_minor
    w.bytes(&[0, 0, 0]); // pad to 4
    w.out
}

/// A decoded bind_nak (C706 12.6.4.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BindNak {
    /// `call_id` of the refused bind.
    pub call_id: u32,
    /// `packed_drep`.
    pub drep: Drep,
    /// `provider_reject_reason`.
    pub reason: RejectReason,
    /// `versions`: the (major, minor) protocol versions the server supports.
    pub versions: Vec<(u8, u8)>,
}

/// Parses a bind_nak (C706 12.6.4.5); trailing padding, Signature and extended error
/// information (MS-RPCE 2.2.2.9) are ignored. For tests and test clients.
pub fn parse_bind_nak(pdu: &[u8]) -> Result<BindNak, RpcError> {
    let h = CommonHeader::parse(pdu)?;
    if h.ptype != PacketType::BindNak {
        return Err(RpcError::UnexpectedType {
            ptype: h.ptype.code(),
            expected: "bind_nak",
        });
    }
    let frag = usize::from(h.frag_length);
    let body = pdu.get(..frag).ok_or(RpcError::Truncated {
        need: frag,
        have: pdu.len(),
    })?;
    let mut r = Reader::new(body, 16, h.drep.endian()?);
    let reason = RejectReason::from_code(r.u16()?);
    let n = r.u8()?;
    let mut versions = Vec::with_capacity(n.into());
    for _ in 0..n {
        versions.push((r.u8()?, r.u8()?));
    }
    Ok(BindNak {
        call_id: h.call_id,
        drep: h.drep,
        reason,
        versions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_nak_is_24_bytes_with_version_5_0() {
        let nak = build_bind_nak(1, Drep::LITTLE_ENDIAN, RejectReason::InvalidChecksum);
        assert_eq!(
            nak,
            [5, 0, 13, 3, 0x10, 0, 0, 0, 24, 0, 0, 0, 1, 0, 0, 0, 9, 0, 1, 5, 0, 0, 0, 0]
        );
    }

    #[test]
    fn bind_nak_round_trips_and_echoes_call_id() {
        let nak = build_bind_nak(
            0xdead_beef,
            Drep::LITTLE_ENDIAN,
            RejectReason::AuthenticationTypeNotRecognized,
        );
        let p = parse_bind_nak(&nak).unwrap();
        assert_eq!(p.call_id, 0xdead_beef);
        assert_eq!(p.reason, RejectReason::AuthenticationTypeNotRecognized);
        assert_eq!(p.versions, vec![(5, 0)]);
    }

    #[test]
    fn bind_nak_follows_a_big_endian_client() {
        let nak = build_bind_nak(0x0102_0304, Drep::BIG_ENDIAN, RejectReason::LocalLimitExceeded);
        assert_eq!(&nak[8..10], &[0, 24]);
        assert_eq!(&nak[12..16], &[1, 2, 3, 4]);
        assert_eq!(&nak[16..18], &[0, 2]);
        let p = parse_bind_nak(&nak).unwrap();
        assert_eq!(
            (p.call_id, p.reason, p.drep),
            (0x0102_0304, RejectReason::LocalLimitExceeded, Drep::BIG_ENDIAN)
        );
    }

    #[test]
    fn bind_nak_for_an_unknown_drep_is_little_endian() {
        let nak = build_bind_nak(
            1,
            Drep([0x30, 0, 0, 0]),
            RejectReason::ProtocolVersionNotSupported,
        );
        assert_eq!(&nak[4..8], &[0x10, 0, 0, 0]);
        assert_eq!(
            parse_bind_nak(&nak).unwrap().reason,
            RejectReason::ProtocolVersionNotSupported
        );
    }

    #[test]
    fn reject_reason_codes_round_trip() {
        for n in 0..=12u16 {
            assert_eq!(RejectReason::from_code(n).code(), n);
        }
    }
}
