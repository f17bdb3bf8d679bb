//! rpc_auth_3 (PTYPE 16): the client's last leg of a three-leg security handshake, sent after
//! the bind_ack on the same security context (MS-RPCE 2.2.2.10, 3.3.1.5.3; C706 has no auth3).
//!
//! ```text
//! common header (16) | pad [4] (max_xmit_frag, max_recv_frag in DCE; ignored)
//! [auth pad] sec_trailer (8) | auth token (auth_length)
//! ```
//!
//! DCE-style Kerberos (auth 16) carries the client's AP-REP here; NTLM (auth 10) its
//! AUTHENTICATE message. An auth3 without an auth verifier means nothing and is refused.

use super::cursor::Writer;
use super::error::RpcError;
use super::header::{CommonHeader, Drep, PacketType, HEADER_LEN, PFC_FIRST_FRAG, PFC_LAST_FRAG};
use super::sec_trailer::{split_auth, write_auth, AuthVerifier};

/// The 4 bytes between the header and the sec_trailer (MS-RPCE 2.2.2.10).
const AUTH3_PAD: usize = 4;

/// A decoded rpc_auth_3 PDU (MS-RPCE 2.2.2.10).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Auth3 {
    /// `call_id`.
    pub call_id: u32,
    /// `packed_drep`.
    pub drep: Drep,
    /// The auth verifier: which security context the leg continues, and its token.
    pub auth: AuthVerifier,
}

impl Auth3 {
    /// The token, given the PDU this auth3 was parsed from.
    pub fn token<'a>(&self, pdu: &'a [u8]) -> Option<&'a [u8]> {
        self.auth.token(pdu)
    }
}

/// Parses an rpc_auth_3 PDU (MS-RPCE 2.2.2.10, sec_trailer per C706 13.2.6.1). `pdu` must hold
/// `frag_length` bytes; later bytes are ignored. Never panics.
pub fn parse_auth3(pdu: &[u8]) -> Result<Auth3, RpcError> {
    let h = CommonHeader::parse(pdu)?;
    if h.ptype != PacketType::Auth3 {
        return Err(RpcError::UnexpectedType {
            ptype: h.ptype.code(),
            expected: "auth3",
        });
    }
    let (body_end, auth) = split_auth(pdu, &h)?;
    let auth = auth.ok_or(RpcError::Malformed {
        what: "auth3 without an auth verifier",
    })?;
    if body_end < HEADER_LEN {
        return Err(RpcError::AuthLengthInconsistent {
            auth_length: h.auth_length.into(),
            frag_length: h.frag_length.into(),
        });
    }
    Ok(Auth3 {
        call_id: h.call_id,
        drep: h.drep,
        auth,
    })
}

/// Builds an rpc_auth_3 PDU (MS-RPCE 2.2.2.10): the 4 pad bytes, then `auth`'s sec_trailer
/// (its `auth_pad_length` is written as 0; `token_range` is ignored) and `token`. For tests and
/// test clients.
pub fn build_auth3(call_id: u32, drep: Drep, auth: &AuthVerifier, token: &[u8]) -> Result<Vec<u8>, RpcError> {
    let endian = drep.endian()?;
    let auth_length = u16::try_from(token.len()).map_err(|_| RpcError::TooLong {
        what: "auth token",
        len: token.len(),
    })?;
    let mut w = Writer::new(endian, HEADER_LEN + AUTH3_PAD + 8 + token.len());
    let mut header = CommonHeader {
        rpc_vers_minor: 0,
        ptype: PacketType::Auth3,
        pfc_flags: PFC_FIRST_FRAG | PFC_LAST_FRAG,
        drep,
        frag_length: 0,
        auth_length,
        call_id,
    };
    header.write(&mut w);
    w.bytes(&[0; AUTH3_PAD]);
    let auth = AuthVerifier {
        auth_pad_length: 0,
        ..auth.clone()
    };
    write_auth(&mut w, &auth, token);
    header.frag_length = u16::try_from(w.out.len()).map_err(|_| RpcError::TooLong {
        what: "auth3 PDU",
        len: w.out.len(),
    })?;
    w.patch_u16(8, header.frag_length);
    Ok(w.out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::{AuthLevel, AuthType};

    fn verifier() -> AuthVerifier {
        AuthVerifier {
            auth_type: AuthType::Krb5,
            auth_level: AuthLevel::Connect,
            auth_pad_length: 0,
            auth_reserved: 0,
            auth_context_id: 79231,
            token_range: 0..0,
        }
    }

    #[test]
    fn auth3_round_trips_in_both_byte_orders() {
        for drep in [Drep::LITTLE_ENDIAN, Drep::BIG_ENDIAN] {
            let pdu = build_auth3(9, drep, &verifier(), b"\x6f\x03ap-rep").unwrap();
            assert_eq!(pdu.len(), 16 + 4 + 8 + 8);
            let a = parse_auth3(&pdu).unwrap();
            assert_eq!((a.call_id, a.drep), (9, drep));
            assert_eq!(a.auth.auth_context_id, 79231);
            assert_eq!(a.auth.auth_type, AuthType::Krb5);
            assert_eq!(a.token(&pdu), Some(&b"\x6f\x03ap-rep"[..]));
        }
    }

    #[test]
    fn auth3_matches_the_layout_the_mit_backend_test_sends() {
        // tests/rpc_edge_impacket.rs built this by hand before `build_auth3` existed.
        let token = b"\x6f\x01";
        let mut want = vec![5, 0, 16, 3, 0x10, 0, 0, 0, 30, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0];
        want.extend_from_slice(&[16, 2, 0, 0]);
        want.extend_from_slice(&79231u32.to_le_bytes());
        want.extend_from_slice(token);
        assert_eq!(
            build_auth3(1, Drep::LITTLE_ENDIAN, &verifier(), token).unwrap(),
            want
        );
    }

    #[test]
    fn auth3_without_a_verifier_is_refused() {
        let pdu = [5, 0, 16, 3, 0x10, 0, 0, 0, 20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            parse_auth3(&pdu),
            Err(RpcError::Malformed {
                what: "auth3 without an auth verifier"
            })
        );
    }

    #[test]
    fn other_types_are_not_auth3() {
        let mut pdu = build_auth3(1, Drep::LITTLE_ENDIAN, &verifier(), b"x").unwrap();
        pdu[2] = 14;
        assert!(matches!(
            parse_auth3(&pdu),
            Err(RpcError::UnexpectedType { ptype: 14, .. })
        ));
    }

    #[test]
    fn every_truncation_is_refused() {
        let pdu = build_auth3(1, Drep::LITTLE_ENDIAN, &verifier(), b"\x6f\x03abc").unwrap();
        for n in 0..pdu.len() {
            assert!(parse_auth3(&pdu[..n]).is_err(), "{n}");
        }
    }
}
