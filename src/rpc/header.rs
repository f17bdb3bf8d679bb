//! The 16-byte common header of every connection-oriented PDU (C706 12.6.3.1, MS-RPCE 2.2.2.1).
//!
//! ```text
//! rpc_vers u8 (5) | rpc_vers_minor u8 (0/1) | PTYPE u8 | pfc_flags u8 | packed_drep [4]
//! frag_length u16 | auth_length u16 | call_id u32            (integers in drep's byte order)
//! ```

use super::cursor::{Reader, Writer};
use super::error::RpcError;

/// Size of the common header (C706 12.6.3.1).
pub const HEADER_LEN: usize = 16;

/// PFC_FIRST_FRAG: first fragment of a PDU sequence (C706 12.6.3.1).
pub const PFC_FIRST_FRAG: u8 = 0x01;
/// PFC_LAST_FRAG: last fragment of a PDU sequence (C706 12.6.3.1).
pub const PFC_LAST_FRAG: u8 = 0x02;
/// PFC_SUPPORT_HEADER_SIGN on bind/alter_context (MS-RPCE 2.2.2.3); PFC_PENDING_CANCEL elsewhere.
pub const PFC_SUPPORT_HEADER_SIGN: u8 = 0x04;
/// PFC_CONC_MPX: the client supports concurrent multiplexing (C706 12.6.3.1).
pub const PFC_CONC_MPX: u8 = 0x10;
/// PFC_OBJECT_UUID: an object UUID follows the header (request PDUs only, C706 12.6.3.1).
pub const PFC_OBJECT_UUID: u8 = 0x80;

/// Byte order of integers, from the integer nibble of `packed_drep` (C706 14.1, 12.6.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endian {
    /// Integer representation 0: big-endian.
    Big,
    /// Integer representation 1: little-endian (every Windows client).
    Little,
}

/// The 4-byte data representation label `packed_drep` (C706 14.1 Figure 14-1): byte 0 holds the
/// integer (high nibble) and character (low nibble) formats, byte 1 the floating-point format,
/// bytes 2–3 are reserved. Kept as received so replies echo it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Drep(pub [u8; 4]);

impl Drep {
    /// Little-endian integers, ASCII characters, IEEE floats: `10 00 00 00` (what Windows sends).
    pub const LITTLE_ENDIAN: Drep = Drep([0x10, 0, 0, 0]);
    /// Big-endian integers, ASCII characters, IEEE floats: `00 00 00 00`.
    pub const BIG_ENDIAN: Drep = Drep([0x00, 0, 0, 0]);

    /// The integer byte order, or `BadDrep` for an integer nibble other than 0 or 1 (C706 14.1).
    pub fn endian(&self) -> Result<Endian, RpcError> {
        match self.0[0] >> 4 {
            0 => Ok(Endian::Big),
            1 => Ok(Endian::Little),
            _ => Err(RpcError::BadDrep(self.0)),
        }
    }
}

/// Connection-oriented PDU types used here (C706 12.6.4, Table 12-4 `PTYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// bind (11), C706 12.6.4.3.
    Bind,
    /// bind_ack (12), C706 12.6.4.4.
    BindAck,
    /// bind_nak (13), C706 12.6.4.5.
    BindNak,
    /// alter_context (14), C706 12.6.4.1.
    AlterContext,
    /// alter_context_resp (15), C706 12.6.4.2.
    AlterContextResp,
    /// rpc_auth_3 (16), MS-RPCE 2.2.2.10.
    Auth3,
    /// Any other PTYPE value (request 0, response 2, fault 3, shutdown 17, co_cancel 18, …).
    Other(u8),
}

impl PacketType {
    /// The PTYPE octet.
    pub fn code(self) -> u8 {
        match self {
            PacketType::Bind => 11,
            PacketType::BindAck => 12,
            PacketType::BindNak => 13,
            PacketType::AlterContext => 14,
            PacketType::AlterContextResp => 15,
            PacketType::Auth3 => 16,
            PacketType::Other(n) => n,
        }
    }

    /// The type named by a PTYPE octet.
    pub fn from_code(n: u8) -> PacketType {
        match n {
            11 => PacketType::Bind,
            12 => PacketType::BindAck,
            13 => PacketType::BindNak,
            14 => PacketType::AlterContext,
            15 => PacketType::AlterContextResp,
            16 => PacketType::Auth3,
            n => PacketType::Other(n),
        }
    }
}

/// The decoded common header (C706 12.6.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommonHeader {
    /// `rpc_vers_minor`: 0 or 1 (`rpc_vers` is always 5).
    pub rpc_vers_minor: u8,
    /// `PTYPE`.
    pub ptype: PacketType,
    /// `pfc_flags` (PFC_* constants).
    pub pfc_flags: u8,
    /// `packed_drep`.
    pub drep: Drep,
    /// `frag_length`: the whole PDU, header included.
    pub frag_length: u16,
    /// `auth_length`: the token after the 8-byte sec_trailer, 0 without an auth verifier.
    pub auth_length: u16,
    /// `call_id`.
    pub call_id: u32,
}

impl CommonHeader {
    /// Decodes the first 16 bytes of `pdu`, checking version 5.0/5.1, the drep and that
    /// `frag_length` covers the header and, where present, the 8-byte sec_trailer and token
    /// (C706 12.6.3.1, 13.2.6.1). Does not look at `pdu` beyond the header.
    pub fn parse(pdu: &[u8]) -> Result<CommonHeader, RpcError> {
        let head: &[u8; HEADER_LEN] =
            pdu.get(..HEADER_LEN)
                .and_then(|h| h.try_into().ok())
                .ok_or(RpcError::Truncated {
                    need: HEADER_LEN,
                    have: pdu.len(),
                })?;
        let (major, minor) = (head[0], head[1]);
        if major != 5 || minor > 1 {
            return Err(RpcError::BadVersion { major, minor });
        }
        let drep = Drep([head[4], head[5], head[6], head[7]]);
        let mut r = Reader::new(head, 8, drep.endian()?);
        let frag_length = r.u16()?;
        let auth_length = r.u16()?;
        let call_id = r.u32()?;
        let trailer = if auth_length > 0 {
            usize::from(auth_length) + 8
        } else {
            0
        };
        if usize::from(frag_length) < HEADER_LEN + trailer {
            return Err(if auth_length > 0 && usize::from(frag_length) >= HEADER_LEN {
                RpcError::AuthLengthInconsistent {
                    auth_length: auth_length.into(),
                    frag_length: frag_length.into(),
                }
            } else {
                RpcError::FragTooShort {
                    frag_length: frag_length.into(),
                    min: HEADER_LEN + trailer,
                }
            });
        }
        Ok(CommonHeader {
            rpc_vers_minor: minor,
            ptype: PacketType::from_code(head[2]),
            pfc_flags: head[3],
            drep,
            frag_length,
            auth_length,
            call_id,
        })
    }

    /// Appends the 16 header bytes (C706 12.6.3.1).
    pub(crate) fn write(&self, w: &mut Writer) {
        w.u8(5);
        w.u8(self.rpc_vers_minor);
        w.u8(self.ptype.code());
        w.u8(self.pfc_flags);
        w.bytes(&self.drep.0);
        w.u16(self.frag_length);
        w.u16(self.auth_length);
        w.u32(self.call_id);
    }
}

/// How many bytes the PDU starting with `first16` occupies (its `frag_length`), after checking
/// the version, drep and header consistency (C706 12.6.3.1) and that it is at most `max` bytes
/// (a config limit). The edge reads 16 bytes, calls this, then reads the rest of the PDU.
pub fn pdu_length(first16: &[u8], max: usize) -> Result<usize, RpcError> {
    let h = CommonHeader::parse(first16)?;
    let len = usize::from(h.frag_length);
    if len > max {
        return Err(RpcError::FragTooLong {
            frag_length: len,
            max,
        });
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(drep0: u8, frag: [u8; 2], auth: [u8; 2]) -> Vec<u8> {
        let mut h = vec![5, 0, 11, 3, drep0, 0, 0, 0];
        h.extend_from_slice(&frag);
        h.extend_from_slice(&auth);
        h.extend_from_slice(&[1, 0, 0, 0]);
        h
    }

    #[test]
    fn pdu_length_reads_little_endian_frag_length() {
        assert_eq!(pdu_length(&header(0x10, [0x18, 0x03], [0, 0]), 65536), Ok(0x318));
    }

    #[test]
    fn pdu_length_reads_big_endian_frag_length() {
        assert_eq!(pdu_length(&header(0x00, [0x03, 0x18], [0, 0]), 65536), Ok(0x318));
    }

    #[test]
    fn pdu_length_above_the_limit_is_refused() {
        assert_eq!(
            pdu_length(&header(0x10, [0x18, 0x03], [0, 0]), 512),
            Err(RpcError::FragTooLong {
                frag_length: 0x318,
                max: 512
            })
        );
    }

    #[test]
    fn pdu_length_needs_sixteen_bytes() {
        assert!(matches!(
            pdu_length(&header(0x10, [0x18, 0x03], [0, 0])[..15], 65536),
            Err(RpcError::Truncated { .. })
        ));
    }

    #[test]
    fn version_other_than_5_0_or_5_1_is_refused() {
        let mut h = header(0x10, [0x48, 0], [0, 0]);
        h[0] = 4;
        assert_eq!(
            pdu_length(&h, 65536),
            Err(RpcError::BadVersion { major: 4, minor: 0 })
        );
        h[0] = 5;
        h[1] = 2;
        assert_eq!(
            pdu_length(&h, 65536),
            Err(RpcError::BadVersion { major: 5, minor: 2 })
        );
        h[1] = 1;
        assert_eq!(pdu_length(&h, 65536), Ok(0x48));
    }

    #[test]
    fn unknown_integer_representation_is_refused() {
        assert!(matches!(
            pdu_length(&header(0x20, [0x48, 0], [0, 0]), 65536),
            Err(RpcError::BadDrep(_))
        ));
    }

    #[test]
    fn frag_length_shorter_than_header_is_refused() {
        assert!(matches!(
            pdu_length(&header(0x10, [15, 0], [0, 0]), 65536),
            Err(RpcError::FragTooShort { .. })
        ));
    }

    #[test]
    fn auth_length_beyond_frag_length_is_refused() {
        assert!(matches!(
            pdu_length(&header(0x10, [0x48, 0], [0x41, 0]), 65536),
            Err(RpcError::AuthLengthInconsistent { .. })
        ));
    }
}
