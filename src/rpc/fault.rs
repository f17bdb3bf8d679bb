//! fault (PTYPE 3): how kedge refuses an alter_context or auth3 after a connection was admitted
//! (C706 12.6.4.7; MS-RPCE 3.2.3.5.1 and 3.1.1.5.5 for the status an authorization refusal
//! carries).
//!
//! ```text
//! common header (16) | alloc_hint u32 | p_cont_id u16 | cancel_count u8 | reserved u8
//! status u32 | reserved2 u32                                        (32 bytes, no stub)
//! ```
//!
//! A bind is refused with a bind_nak instead ([`build_bind_nak`](super::build_bind_nak)): the
//! association does not exist yet. An alter_context or auth3 belongs to an association, and the
//! fault is its refusal; kedge then closes the connection.

use super::cursor::{Reader, Writer};
use super::error::RpcError;
use super::header::{CommonHeader, Drep, Endian, PacketType, PFC_FIRST_FRAG, PFC_LAST_FRAG};

/// PFC_DID_NOT_EXECUTE: on a fault, the call was not executed at all (C706 12.6.3.1).
pub const PFC_DID_NOT_EXECUTE: u8 = 0x20;

/// `nca_s_fault_access_denied` as Windows sends it: the Win32 `ERROR_ACCESS_DENIED`
/// (`rpc_s_access_denied`, 0x00000005), the status MS-RPCE 3.2.3.5.1 requires where an
/// authorization policy refuses the caller (MS-ERREF 2.2).
pub const FAULT_ACCESS_DENIED: u32 = 0x0000_0005;

/// Size of the fault PDU kedge builds.
const FAULT_LEN: u16 = 32;

/// Builds a fault answering the PDU with `call_id`, in the client's `drep` (C706 12.6.4.7):
/// `status`, PFC_FIRST_FRAG | PFC_LAST_FRAG | PFC_DID_NOT_EXECUTE, no stub. A `drep` whose
/// integer format is unknown falls back to little-endian.
pub fn build_fault(call_id: u32, drep: Drep, status: u32) -> Vec<u8> {
    let drep = if drep.endian().is_ok() {
        drep
    } else {
        Drep::LITTLE_ENDIAN
    };
    let mut w = Writer::new(drep.endian().unwrap_or(Endian::Little), FAULT_LEN.into());
    CommonHeader {
        rpc_vers_minor: 0,
        ptype: PacketType::Other(3),
        pfc_flags: PFC_FIRST_FRAG | PFC_LAST_FRAG | PFC_DID_NOT_EXECUTE,
        drep,
        frag_length: FAULT_LEN,
        auth_length: 0,
        call_id,
    }
    .write(&mut w);
    w.u32(0); // alloc_hint: no stub
    w.u16(0); // p_cont_id
    w.u8(0); // cancel_count
    w.u8(0); // reserved
    w.u32(status);
    w.u32(0); // reserved2
    w.out
}

/// A decoded fault (C706 12.6.4.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fault {
    /// `call_id` of the refused call.
    pub call_id: u32,
    /// `packed_drep`.
    pub drep: Drep,
    /// `pfc_flags`.
    pub pfc_flags: u8,
    /// `status`.
    pub status: u32,
}

/// Parses a fault PDU (C706 12.6.4.7); the stub, if any, is ignored. For tests and test clients.
pub fn parse_fault(pdu: &[u8]) -> Result<Fault, RpcError> {
    let h = CommonHeader::parse(pdu)?;
    if h.ptype != PacketType::Other(3) {
        return Err(RpcError::UnexpectedType {
            ptype: h.ptype.code(),
            expected: "fault",
        });
    }
    let frag = usize::from(h.frag_length);
    let body = pdu.get(..frag).ok_or(RpcError::Truncated {
        need: frag,
        have: pdu.len(),
    })?;
    let mut r = Reader::new(body, 16, h.drep.endian()?);
    let _alloc_hint = r.u32()?;
    let _p_cont_id = r.u16()?;
    let _cancel_count = r.u8()?;
    let _reserved = r.u8()?;
    let status = r.u32()?;
    Ok(Fault {
        call_id: h.call_id,
        drep: h.drep,
        pfc_flags: h.pfc_flags,
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_is_32_bytes_with_access_denied() {
        let f = build_fault(7, Drep::LITTLE_ENDIAN, FAULT_ACCESS_DENIED);
        assert_eq!(
            f,
            [
                5, 0, 3, 0x23, 0x10, 0, 0, 0, 32, 0, 0, 0, 7, 0, 0, 0, // header
                0, 0, 0, 0, 0, 0, 0, 0, // alloc_hint, p_cont_id, cancel_count, reserved
                5, 0, 0, 0, 0, 0, 0, 0, // status, reserved2
            ]
        );
    }

    #[test]
    fn fault_echoes_call_id_and_a_big_endian_drep() {
        let f = build_fault(0x0102_0304, Drep::BIG_ENDIAN, FAULT_ACCESS_DENIED);
        assert_eq!(&f[12..16], &[1, 2, 3, 4]);
        assert_eq!(&f[24..28], &[0, 0, 0, 5]);
        let p = parse_fault(&f).unwrap();
        assert_eq!(
            (p.call_id, p.drep, p.status),
            (0x0102_0304, Drep::BIG_ENDIAN, FAULT_ACCESS_DENIED)
        );
        assert_eq!(p.pfc_flags & PFC_DID_NOT_EXECUTE, PFC_DID_NOT_EXECUTE);
    }

    #[test]
    fn fault_for_an_unknown_drep_is_little_endian() {
        let f = build_fault(1, Drep([0x30, 0, 0, 0]), FAULT_ACCESS_DENIED);
        assert_eq!(&f[4..8], &[0x10, 0, 0, 0]);
    }

    #[test]
    fn truncated_fault_is_refused() {
        let f = build_fault(1, Drep::LITTLE_ENDIAN, FAULT_ACCESS_DENIED);
        for n in 0..28 {
            assert!(parse_fault(&f[..n]).is_err(), "{n}");
        }
    }
}
