//! bind_ack (PTYPE 12) and alter_context_resp (PTYPE 15): built by test backends and parsed by
//! test clients (C706 12.6.4.2, 12.6.4.4; MS-RPCE 2.2.2.4 for the negotiate_ack result).
//!
//! ```text
//! common header (16) | max_xmit_frag u16 | max_recv_frag u16 | assoc_group_id u32
//! sec_addr: port_any_t { length u16 | port_spec [length] (NUL-terminated) } | pad to 4
//! p_result_list_t: n_results u8 | reserved u8 | reserved2 u16
//!   p_result_t[n]: result u16 | reason u16 | transfer_syntax p_syntax_id_t
//! [auth pad] [sec_trailer (8) | auth token (auth_length)]
//! ```

use super::bind::SyntaxId;
use super::cursor::{Reader, Writer};
use super::error::RpcError;
use super::header::{CommonHeader, Drep, PacketType, HEADER_LEN};
use super::sec_trailer::{pad4, split_auth, write_auth, AuthVerifier};

/// `result` of one presentation context (C706 12.6.3.1 `p_cont_def_result_t`, MS-RPCE 2.2.2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckResult {
    /// 0 `acceptance`.
    Acceptance,
    /// 1 `user_rejection`.
    UserRejection,
    /// 2 `provider_rejection`; `reason` says why (C706 `p_provider_reason_t`: 0 not specified,
    /// 1 abstract syntax not supported, 2 proposed transfer syntaxes not supported, 3 local limit
    /// exceeded).
    ProviderRejection,
    /// 3 `negotiate_ack`: answer to bind-time feature negotiation; `reason` holds the feature bits
    /// (MS-RPCE 2.2.2.4).
    NegotiateAck,
    /// Any other value.
    Other(u16),
}

impl AckResult {
    /// The `result` value.
    pub fn code(self) -> u16 {
        match self {
            AckResult::Acceptance => 0,
            AckResult::UserRejection => 1,
            AckResult::ProviderRejection => 2,
            AckResult::NegotiateAck => 3,
            AckResult::Other(n) => n,
        }
    }

    /// The result named by a `result` value.
    pub fn from_code(n: u16) -> AckResult {
        match n {
            0 => AckResult::Acceptance,
            1 => AckResult::UserRejection,
            2 => AckResult::ProviderRejection,
            3 => AckResult::NegotiateAck,
            n => AckResult::Other(n),
        }
    }
}

/// One entry of the result list, `p_result_t` (C706 12.6.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContextResult {
    /// `result`.
    pub result: AckResult,
    /// `reason` (provider reason, or bind-time feature bits for `NegotiateAck`).
    pub reason: u16,
    /// The accepted transfer syntax (all zero when rejected).
    pub transfer_syntax: SyntaxId,
}

/// A bind_ack or alter_context_resp (C706 12.6.4.2 / 12.6.4.4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BindAck {
    /// `PacketType::BindAck` or `PacketType::AlterContextResp`.
    pub ptype: PacketType,
    /// `pfc_flags`.
    pub pfc_flags: u8,
    /// `call_id` of the bind answered.
    pub call_id: u32,
    /// `packed_drep`.
    pub drep: Drep,
    /// `max_xmit_frag`.
    pub max_xmit_frag: u16,
    /// `max_recv_frag`.
    pub max_recv_frag: u16,
    /// `assoc_group_id`.
    pub assoc_group_id: u32,
    /// `sec_addr.port_spec` exactly as sent, NUL terminator included (`b"49152\0"`); empty for
    /// an alter_context_resp.
    pub secondary_address: Vec<u8>,
    /// One result per presentation context of the bind, in order.
    pub results: Vec<ContextResult>,
    /// The auth verifier (the server's leg of the security handshake), if any.
    pub auth: Option<AuthVerifier>,
}

impl BindAck {
    /// Encodes the PDU with `token` as the auth value (C706 12.6.4.4, 13.2.6.1). `token` must be
    /// empty when `auth` is `None`; `auth.auth_pad_length` is recomputed to align the sec_trailer
    /// and `auth.token_range` is ignored.
    pub fn to_bytes(&self, token: &[u8]) -> Result<Vec<u8>, RpcError> {
        let endian = self.drep.endian()?;
        if self.auth.is_none() && !token.is_empty() {
            return Err(RpcError::Malformed {
                what: "auth token without an auth verifier",
            });
        }
        let too_long = |what, len| RpcError::TooLong { what, len };
        let addr_len = u16::try_from(self.secondary_address.len())
            .map_err(|_| too_long("secondary address", self.secondary_address.len()))?;
        let n_results =
            u8::try_from(self.results.len()).map_err(|_| too_long("result list", self.results.len()))?;
        let auth_length = u16::try_from(token.len()).map_err(|_| too_long("auth token", token.len()))?;
        let mut w = Writer::new(
            endian,
            64 + self.secondary_address.len() + 24 * self.results.len() + token.len(),
        );
        let mut header = CommonHeader {
            rpc_vers_minor: 0,
            ptype: self.ptype,
            pfc_flags: self.pfc_flags,
            drep: self.drep,
            frag_length: 0,
            auth_length: if self.auth.is_some() { auth_length } else { 0 },
            call_id: self.call_id,
        };
        header.write(&mut w);
        w.u16(self.max_xmit_frag);
        w.u16(self.max_recv_frag);
        w.u32(self.assoc_group_id);
        w.u16(addr_len);
        w.bytes(&self.secondary_address);
        let pad = usize::from(pad4(w.out.len()));
        w.bytes(&[0u8; 3][..pad]);
        w.u8(n_results);
        w.bytes(&[0, 0, 0]);
        for r in &self.results {
            w.u16(r.result.code());
            w.u16(r.reason);
            r.transfer_syntax.write(&mut w);
        }
        if let Some(v) = &self.auth {
            let mut v = v.clone();
            v.auth_pad_length = pad4(w.out.len());
            write_auth(&mut w, &v, token);
        }
        header.frag_length = u16::try_from(w.out.len()).map_err(|_| too_long("bind_ack PDU", w.out.len()))?;
        w.patch_u16(8, header.frag_length);
        Ok(w.out)
    }
}

/// Parses a bind_ack or alter_context_resp (C706 12.6.4.2 / 12.6.4.4). For tests and test
/// clients; never panics.
pub fn parse_bind_ack(pdu: &[u8]) -> Result<BindAck, RpcError> {
    let h = CommonHeader::parse(pdu)?;
    if !matches!(h.ptype, PacketType::BindAck | PacketType::AlterContextResp) {
        return Err(RpcError::UnexpectedType {
            ptype: h.ptype.code(),
            expected: "bind_ack or alter_context_resp",
        });
    }
    let frag = usize::from(h.frag_length);
    if pdu.len() < frag {
        return Err(RpcError::Truncated {
            need: frag,
            have: pdu.len(),
        });
    }
    let (body_end, auth) = split_auth(pdu, &h)?;
    let body = pdu.get(..body_end).ok_or(RpcError::Malformed {
        what: "bind_ack body",
    })?;
    let mut r = Reader::new(body, HEADER_LEN, h.drep.endian()?);
    let max_xmit_frag = r.u16()?;
    let max_recv_frag = r.u16()?;
    let assoc_group_id = r.u32()?;
    let addr_len = r.u16()?;
    let secondary_address = r.bytes(addr_len.into())?.to_vec();
    r.bytes(pad4(r.pos()).into())?;
    let n = r.u8()?;
    r.bytes(3)?;
    let mut results = Vec::with_capacity(n.into());
    for _ in 0..n {
        let result = AckResult::from_code(r.u16()?);
        let reason = r.u16()?;
        let transfer_syntax = SyntaxId::read(&mut r)?;
        results.push(ContextResult {
            result,
            reason,
            transfer_syntax,
        });
    }
    Ok(BindAck {
        ptype: h.ptype,
        pfc_flags: h.pfc_flags,
        call_id: h.call_id,
        drep: h.drep,
        max_xmit_frag,
        max_recv_frag,
        assoc_group_id,
        secondary_address,
        results,
        auth,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::sec_trailer::{AuthLevel, AuthType};

    fn ack(drep: Drep, addr: &[u8], auth: bool) -> BindAck {
        BindAck {
            ptype: PacketType::BindAck,
            pfc_flags: 3,
            call_id: 1,
            drep,
            max_xmit_frag: 4280,
            max_recv_frag: 4280,
            assoc_group_id: 0x5a5a,
            secondary_address: addr.to_vec(),
            results: vec![
                ContextResult {
                    result: AckResult::Acceptance,
                    reason: 0,
                    transfer_syntax: SyntaxId::NDR,
                },
                ContextResult {
                    result: AckResult::ProviderRejection,
                    reason: 2,
                    transfer_syntax: SyntaxId {
                        uuid: crate::rpc::Uuid::from_bytes([0; 16]),
                        major: 0,
                        minor: 0,
                    },
                },
            ],
            auth: auth.then_some(AuthVerifier {
                auth_type: AuthType::Spnego,
                auth_level: AuthLevel::PktPrivacy,
                auth_pad_length: 0,
                auth_reserved: 0,
                auth_context_id: 79231,
                token_range: 0..0,
            }),
        }
    }

    #[test]
    fn bind_ack_round_trips_with_secondary_address_and_auth() {
        let a = ack(Drep::LITTLE_ENDIAN, b"49152\0", true);
        let token = b"\xa1\x81\x9f\x30";
        let pdu = a.to_bytes(token).unwrap();
        // 16 header + 8 + 2 + 6 address = 32, aligned → n_results at 32.
        assert_eq!(pdu[32], 2);
        assert_eq!(pdu.len() % 4, token.len() % 4);
        let p = parse_bind_ack(&pdu).unwrap();
        assert_eq!(p.secondary_address, b"49152\0");
        assert_eq!(p.results, a.results);
        assert_eq!(p.auth.as_ref().unwrap().token(&pdu), Some(&token[..]));
        assert_eq!(p.to_bytes(token).unwrap(), pdu);
    }

    #[test]
    fn secondary_address_is_padded_to_four_bytes() {
        let pdu = ack(Drep::LITTLE_ENDIAN, b"135\0", false).to_bytes(&[]).unwrap();
        // 16 + 8 + 2 + 4 = 30, two pad bytes → n_results at 32.
        assert_eq!(&pdu[30..33], &[0, 0, 2]);
        assert_eq!(parse_bind_ack(&pdu).unwrap().secondary_address, b"135\0");
    }

    #[test]
    fn big_endian_bind_ack_round_trips() {
        let a = ack(Drep::BIG_ENDIAN, b"135\0", false);
        let pdu = a.to_bytes(&[]).unwrap();
        assert_eq!(&pdu[16..18], &4280u16.to_be_bytes());
        let p = parse_bind_ack(&pdu).unwrap();
        assert_eq!(p, BindAck { auth: None, ..a });
    }

    #[test]
    fn alter_context_resp_with_empty_address_round_trips() {
        let mut a = ack(Drep::LITTLE_ENDIAN, b"", false);
        a.ptype = PacketType::AlterContextResp;
        let pdu = a.to_bytes(&[]).unwrap();
        assert_eq!(parse_bind_ack(&pdu).unwrap(), a);
    }

    #[test]
    fn truncated_bind_ack_is_refused() {
        let pdu = ack(Drep::LITTLE_ENDIAN, b"49152\0", true)
            .to_bytes(b"\xa1\x00")
            .unwrap();
        for n in 0..pdu.len() {
            assert!(parse_bind_ack(&pdu[..n]).is_err(), "{n}");
        }
    }
}
