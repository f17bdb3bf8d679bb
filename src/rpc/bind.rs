//! bind (PTYPE 11) and alter_context (PTYPE 14) PDUs: parsing and encoding (C706 12.6.4.1,
//! 12.6.4.3, MS-RPCE 2.2.2.2).
//!
//! ```text
//! common header (16) | max_xmit_frag u16 | max_recv_frag u16 | assoc_group_id u32
//! p_cont_list_t: n_context_elem u8 | reserved u8 | reserved2 u16
//!   p_cont_elem_t[n]: p_cont_id u16 | n_transfer_syn u8 | reserved u8
//!                     abstract_syntax p_syntax_id_t | transfer_syntaxes p_syntax_id_t[n_transfer_syn]
//! [auth pad] [sec_trailer (8) | auth token (auth_length)]
//! p_syntax_id_t: if_uuid (16, NDR UUID) | if_version u32 (major in the low 16 bits, minor in the high)
//! ```
//!
//! A first bind carrying a Kerberos token fits in one PDU in practice (Windows' MaxTokenSize is
//! 48,000 bytes, under the 65,535-byte `frag_length` ceiling, and clients fragment only when the
//! token exceeds their max_xmit_frag; the binds captured from real clients are under 1 KiB). A
//! bind without both PFC_FIRST_FRAG and PFC_LAST_FRAG is reported as `RpcError::FragmentedBind`
//! so the edge can refuse it with a clear reason instead of reassembling.

use super::cursor::{Reader, Writer};
use super::error::RpcError;
use super::header::{CommonHeader, Drep, PacketType, HEADER_LEN, PFC_FIRST_FRAG, PFC_LAST_FRAG};
use super::sec_trailer::{pad4, split_auth, write_auth, AuthVerifier, MAX_AUTH_PAD};
use super::uuid::Uuid;

/// Fixed part of the bind body: max_xmit_frag, max_recv_frag, assoc_group_id and the context
/// list header (C706 12.6.4.3).
const BIND_FIXED_LEN: usize = 12;

/// An interface or transfer syntax identifier, `p_syntax_id_t` (C706 12.6.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SyntaxId {
    /// `if_uuid`.
    pub uuid: Uuid,
    /// Major version (low 16 bits of `if_version`).
    pub major: u16,
    /// Minor version (high 16 bits of `if_version`).
    pub minor: u16,
}

impl SyntaxId {
    /// The NDR 2.0 transfer syntax (C706 14).
    pub const NDR: SyntaxId = SyntaxId {
        uuid: Uuid::NDR,
        major: 2,
        minor: 0,
    };

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<SyntaxId, RpcError> {
        let uuid = r.uuid()?;
        let version = r.u32()?;
        Ok(SyntaxId {
            uuid,
            major: (version & 0xffff) as u16,
            minor: (version >> 16) as u16,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.uuid(&self.uuid);
        w.u32(u32::from(self.major) | (u32::from(self.minor) << 16));
    }
}

/// One presentation context offered by a bind, `p_cont_elem_t` (C706 12.6.3.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PresentationContext {
    /// `p_cont_id`.
    pub context_id: u16,
    /// The interface asked for.
    pub abstract_syntax: SyntaxId,
    /// The transfer syntaxes offered (NDR, NDR64, bind-time feature negotiation, …).
    pub transfer_syntaxes: Vec<SyntaxId>,
}

/// A decoded bind or alter_context PDU (C706 12.6.4.1 / 12.6.4.3, MS-RPCE 2.2.2.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BindInfo {
    /// `PacketType::Bind` or `PacketType::AlterContext`.
    pub ptype: PacketType,
    /// `rpc_vers_minor` (0 or 1).
    pub rpc_vers_minor: u8,
    /// `pfc_flags` (always has PFC_FIRST_FRAG and PFC_LAST_FRAG once parsed).
    pub pfc_flags: u8,
    /// `call_id`, echoed by bind_ack / bind_nak.
    pub call_id: u32,
    /// `packed_drep`, echoed by replies.
    pub drep: Drep,
    /// `max_xmit_frag`.
    pub max_xmit_frag: u16,
    /// `max_recv_frag`.
    pub max_recv_frag: u16,
    /// `assoc_group_id` (0 asks for a new association group).
    pub assoc_group_id: u32,
    /// The presentation contexts, in order.
    pub contexts: Vec<PresentationContext>,
    /// The auth verifier, where `auth_length` is non-zero.
    pub auth: Option<AuthVerifier>,
}

/// Parses a bind or alter_context PDU (C706 12.6.4.1 / 12.6.4.3, 13.2.6.1; MS-RPCE 2.2.2.2).
///
/// `pdu` must hold at least `frag_length` bytes (the edge sizes it with
/// [`pdu_length`](super::header::pdu_length)); bytes past `frag_length` are ignored. Checks the
/// header (version 5.0/5.1, drep), the type, that the PDU is not fragmented, that `auth_length`
/// and its sec_trailer fit, that the context list fits the body, and that the 4-byte aligned
/// sec_trailer follows the context list after exactly `auth_pad_length` (≤ 15) bytes (an
/// alter_context may have more before the pad, as impacket sends). Without an
/// auth verifier, bytes between the context list and `frag_length` are tolerated (and not
/// re-encoded by [`BindInfo::to_bytes`]). Never panics, whatever the bytes.
pub fn parse_bind(pdu: &[u8]) -> Result<BindInfo, RpcError> {
    let h = CommonHeader::parse(pdu)?;
    if !matches!(h.ptype, PacketType::Bind | PacketType::AlterContext) {
        return Err(RpcError::UnexpectedType {
            ptype: h.ptype.code(),
            expected: "bind or alter_context",
        });
    }
    if h.pfc_flags & (PFC_FIRST_FRAG | PFC_LAST_FRAG) != PFC_FIRST_FRAG | PFC_LAST_FRAG {
        return Err(RpcError::FragmentedBind {
            pfc_flags: h.pfc_flags,
        });
    }
    let frag = usize::from(h.frag_length);
    if pdu.len() < frag {
        return Err(RpcError::Truncated {
            need: frag,
            have: pdu.len(),
        });
    }
    if frag < HEADER_LEN + BIND_FIXED_LEN {
        return Err(RpcError::FragTooShort {
            frag_length: frag,
            min: HEADER_LEN + BIND_FIXED_LEN,
        });
    }
    let (body_end, auth) = split_auth(pdu, &h)?;
    if body_end < HEADER_LEN + BIND_FIXED_LEN {
        return Err(RpcError::AuthLengthInconsistent {
            auth_length: h.auth_length.into(),
            frag_length: frag,
        });
    }
    let body = pdu.get(..body_end).ok_or(RpcError::ContextListOverrun)?;
    let mut r = Reader::new(body, HEADER_LEN, h.drep.endian()?);
    let max_xmit_frag = r.u16()?;
    let max_recv_frag = r.u16()?;
    let assoc_group_id = r.u32()?;
    let n_context_elem = r.u8()?;
    let _reserved = r.bytes(3)?;
    let contexts = read_contexts(&mut r, n_context_elem).map_err(|_| RpcError::ContextListOverrun)?;
    if let Some(v) = &auth {
        // The sec_trailer MUST be 4-byte aligned and follow the body and its pad directly
        // (MS-RPCE 2.2.2.11). An alter_context may carry bytes between its context list and the
        // pad: impacket 0.10 repeats the list there, and Windows servers accept it; the trailer's
        // place comes from frag_length and auth_length anyway (C706 13.2.6.1).
        let room = body_end - r.pos();
        let pad = usize::from(v.auth_pad_length);
        let tolerated = h.ptype == PacketType::AlterContext && room > pad;
        if pad != room && !tolerated {
            return Err(RpcError::BadAuthPad {
                pad: v.auth_pad_length.into(),
                room,
            });
        }
        if body_end % 4 != 0 {
            return Err(RpcError::Malformed {
                what: "sec_trailer alignment",
            });
        }
    }
    Ok(BindInfo {
        ptype: h.ptype,
        rpc_vers_minor: h.rpc_vers_minor,
        pfc_flags: h.pfc_flags,
        call_id: h.call_id,
        drep: h.drep,
        max_xmit_frag,
        max_recv_frag,
        assoc_group_id,
        contexts,
        auth,
    })
}

fn read_contexts(r: &mut Reader<'_>, n: u8) -> Result<Vec<PresentationContext>, RpcError> {
    let mut contexts = Vec::with_capacity(n.into());
    for _ in 0..n {
        let context_id = r.u16()?;
        let n_transfer_syn = r.u8()?;
        let _reserved = r.u8()?;
        let abstract_syntax = SyntaxId::read(r)?;
        let mut transfer_syntaxes = Vec::with_capacity(n_transfer_syn.into());
        for _ in 0..n_transfer_syn {
            transfer_syntaxes.push(SyntaxId::read(r)?);
        }
        contexts.push(PresentationContext {
            context_id,
            abstract_syntax,
            transfer_syntaxes,
        });
    }
    Ok(contexts)
}

impl BindInfo {
    /// The auth token, given the PDU this bind was parsed from.
    pub fn token<'a>(&self, pdu: &'a [u8]) -> Option<&'a [u8]> {
        self.auth.as_ref().and_then(|a| a.token(pdu))
    }

    /// Encodes the bind / alter_context with `token` as the auth value (C706 12.6.4.3,
    /// 13.2.6.1). `token` must be empty when `auth` is `None`; `auth.token_range` is ignored
    /// (recomputed), pad bytes are written as zeros, reserved fields as zero. Re-encoding a parsed
    /// bind gives its original bytes whenever those follow these rules (every capture does).
    pub fn to_bytes(&self, token: &[u8]) -> Result<Vec<u8>, RpcError> {
        let endian = self.drep.endian()?;
        if self.auth.is_none() && !token.is_empty() {
            return Err(RpcError::Malformed {
                what: "auth token without an auth verifier",
            });
        }
        let n_ctx = u8::try_from(self.contexts.len()).map_err(|_| RpcError::TooLong {
            what: "context list",
            len: self.contexts.len(),
        })?;
        let auth_length = u16::try_from(token.len()).map_err(|_| RpcError::TooLong {
            what: "auth token",
            len: token.len(),
        })?;
        let mut w = Writer::new(endian, 64 + self.contexts.len() * 64 + token.len());
        let mut header = CommonHeader {
            rpc_vers_minor: self.rpc_vers_minor,
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
        w.u8(n_ctx);
        w.bytes(&[0, 0, 0]);
        for c in &self.contexts {
            let n_ts = u8::try_from(c.transfer_syntaxes.len()).map_err(|_| RpcError::TooLong {
                what: "transfer syntax list",
                len: c.transfer_syntaxes.len(),
            })?;
            w.u16(c.context_id);
            w.u8(n_ts);
            w.u8(0);
            c.abstract_syntax.write(&mut w);
            for t in &c.transfer_syntaxes {
                t.write(&mut w);
            }
        }
        if let Some(v) = &self.auth {
            let pad = usize::from(v.auth_pad_length);
            if pad > MAX_AUTH_PAD {
                return Err(RpcError::BadAuthPad {
                    pad,
                    room: MAX_AUTH_PAD,
                });
            }
            if (w.out.len() + pad) % 4 == 0 {
                write_auth(&mut w, v, token);
            } else {
                // The parsed pad sat after slack that is not re-encoded (an alter_context's
                // extra bytes): the pad is recomputed so the sec_trailer stays 4-byte aligned.
                let aligned = AuthVerifier {
                    auth_pad_length: pad4(w.out.len()),
                    ..v.clone()
                };
                write_auth(&mut w, &aligned, token);
            }
        }
        header.frag_length = u16::try_from(w.out.len()).map_err(|_| RpcError::TooLong {
            what: "bind PDU",
            len: w.out.len(),
        })?;
        w.patch_u16(8, header.frag_length);
        Ok(w.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::sec_trailer::{AuthLevel, AuthType};

    pub(crate) fn sample(drep: Drep, auth: bool) -> BindInfo {
        BindInfo {
            ptype: PacketType::Bind,
            rpc_vers_minor: 0,
            pfc_flags: 0x03,
            call_id: 7,
            drep,
            max_xmit_frag: 5840,
            max_recv_frag: 5840,
            assoc_group_id: 0x1234,
            contexts: vec![PresentationContext {
                context_id: 0,
                abstract_syntax: SyntaxId {
                    uuid: "a4f1db00-ca47-1067-b31f-00dd010662da".parse().unwrap(),
                    major: 0,
                    minor: 81,
                },
                transfer_syntaxes: vec![SyntaxId::NDR],
            }],
            auth: auth.then_some(AuthVerifier {
                auth_type: AuthType::Krb5,
                auth_level: AuthLevel::PktPrivacy,
                auth_pad_length: 0,
                auth_reserved: 0,
                auth_context_id: 1,
                token_range: 0..0,
            }),
        }
    }

    #[test]
    fn big_endian_bind_parses_to_the_same_values() {
        let token = b"\x6e\x03\x02\x01\x05";
        let be = sample(Drep::BIG_ENDIAN, true).to_bytes(token).unwrap();
        let le = sample(Drep::LITTLE_ENDIAN, true).to_bytes(token).unwrap();
        assert_ne!(be, le);
        assert_eq!(&be[8..10], &(be.len() as u16).to_be_bytes());
        // The UUID's first field is written big-endian, as in its string form.
        assert_eq!(&be[32..36], &[0xa4, 0xf1, 0xdb, 0x00]);
        let (pb, pl) = (parse_bind(&be).unwrap(), parse_bind(&le).unwrap());
        assert_eq!(pb.contexts, pl.contexts);
        assert_eq!(pb.max_xmit_frag, 5840);
        assert_eq!(pb.assoc_group_id, 0x1234);
        assert_eq!(pb.token(&be), Some(&token[..]));
        assert_eq!(pb.drep, Drep::BIG_ENDIAN);
    }

    #[test]
    fn bind_without_auth_has_no_verifier() {
        let pdu = sample(Drep::LITTLE_ENDIAN, false).to_bytes(&[]).unwrap();
        assert_eq!(pdu.len(), 72);
        let b = parse_bind(&pdu).unwrap();
        assert_eq!(b.auth, None);
        assert_eq!(b.token(&pdu), None);
    }

    #[test]
    fn alter_context_parses_like_bind() {
        let mut s = sample(Drep::LITTLE_ENDIAN, true);
        s.ptype = PacketType::AlterContext;
        let pdu = s.to_bytes(b"\x60\x00").unwrap();
        assert_eq!(parse_bind(&pdu).unwrap().ptype, PacketType::AlterContext);
    }

    #[test]
    fn first_pdu_without_last_frag_is_reported_as_fragmented() {
        let mut pdu = sample(Drep::LITTLE_ENDIAN, true).to_bytes(b"\x6e\x00").unwrap();
        pdu[3] = PFC_FIRST_FRAG;
        assert_eq!(
            parse_bind(&pdu),
            Err(RpcError::FragmentedBind { pfc_flags: 0x01 })
        );
        pdu[3] = PFC_LAST_FRAG;
        assert_eq!(
            parse_bind(&pdu),
            Err(RpcError::FragmentedBind { pfc_flags: 0x02 })
        );
    }

    #[test]
    fn other_packet_types_are_refused() {
        let mut pdu = sample(Drep::LITTLE_ENDIAN, false).to_bytes(&[]).unwrap();
        pdu[2] = 0; // request
        assert!(matches!(
            parse_bind(&pdu),
            Err(RpcError::UnexpectedType { ptype: 0, .. })
        ));
    }

    #[test]
    fn auth_pad_above_fifteen_is_refused() {
        let mut pdu = sample(Drep::LITTLE_ENDIAN, true).to_bytes(b"\x6e\x00").unwrap();
        let trailer = pdu.len() - 2 - 8;
        pdu[trailer + 2] = 16;
        assert!(matches!(
            parse_bind(&pdu),
            Err(RpcError::BadAuthPad { pad: 16, .. })
        ));
    }

    #[test]
    fn auth_pad_overlapping_the_context_list_is_refused() {
        let mut pdu = sample(Drep::LITTLE_ENDIAN, true).to_bytes(b"\x6e\x00").unwrap();
        let trailer = pdu.len() - 2 - 8;
        pdu[trailer + 2] = 4;
        assert_eq!(parse_bind(&pdu), Err(RpcError::BadAuthPad { pad: 4, room: 0 }));
    }

    #[test]
    fn auth_pad_is_encoded_before_the_trailer_and_round_trips() {
        let mut s = sample(Drep::LITTLE_ENDIAN, true);
        s.auth.as_mut().unwrap().auth_pad_length = 4;
        let pdu = s.to_bytes(b"\x6e\x00").unwrap();
        let b = parse_bind(&pdu).unwrap();
        assert_eq!(b.auth.as_ref().unwrap().auth_pad_length, 4);
        assert_eq!(b.to_bytes(b"\x6e\x00").unwrap(), pdu);
    }

    #[test]
    fn gap_between_context_list_and_trailer_is_refused() {
        let mut s = sample(Drep::LITTLE_ENDIAN, true);
        s.auth.as_mut().unwrap().auth_pad_length = 4;
        let mut pdu = s.to_bytes(b"\x6e\x00").unwrap();
        let trailer = pdu.len() - 2 - 8;
        pdu[trailer + 2] = 0; // pad bytes present but not declared
        assert_eq!(parse_bind(&pdu), Err(RpcError::BadAuthPad { pad: 0, room: 4 }));
    }

    /// The third leg of impacket 0.10's auth-9 bind (through kedge to an MIT backend): an
    /// alter_context whose context list (n_context_elem 1) is followed by a second copy of it,
    /// then the sec_trailer and a NegTokenResp carrying the client's AP-REP.
    const IMPACKET_ALTER_CONTEXT: &str = "05000e0310000000e100650001000000b810b81000000000010000000000010000dbf1a447ca6710b31f00dd010662da00005100045d888aeb1cc9119fe808002b104860020000000000010000dbf1a447ca6710b31f00dd010662da00005100045d888aeb1cc9119fe808002b10486002000000090200007f350100a1633061a25f045d6f5b3059a003020105a10302010fa24d304ba003020112a2440442256bbb213fe501b8fb8978473cd828ca1daa2dccf00188262136c7b441572098c0670deb16fd434e498bfa185a210705d544f05b375cb9840d2c5525fcd37b3bb843";

    #[test]
    fn impacket_alter_context_with_a_repeated_context_list_parses() {
        let pdu = hex::decode(IMPACKET_ALTER_CONTEXT).unwrap();
        let b = parse_bind(&pdu).unwrap();
        assert_eq!(b.ptype, PacketType::AlterContext);
        assert_eq!(b.contexts.len(), 1);
        let auth = b.auth.as_ref().unwrap();
        assert_eq!((auth.auth_type, auth.auth_context_id), (AuthType::Spnego, 79231));
        assert_eq!(b.token(&pdu).unwrap()[0], 0xa1, "a NegTokenResp");
        // The same bytes as a bind are refused: binds must be exact.
        let mut bind = pdu.clone();
        bind[2] = 11;
        assert!(matches!(
            parse_bind(&bind),
            Err(RpcError::BadAuthPad { pad: 0, room: 44 })
        ));
    }

    /// Found by the `rpc_bind` fuzz target: an alter_context whose pad (1) follows slack
    /// after its context list. The slack is not re-encoded, so the pad must be recomputed or the
    /// re-encoded sec_trailer is misaligned and the PDU no longer parses.
    const ALTER_CONTEXT_WITH_SLACK_BEFORE_PAD: &str = "BQAOAxAQAABwACAAKAAAALgQuBAAAAAAAAABAAAAAgABAAAAAAAAAAAAAAkAlAAAAAC1AAApAAAAAAAAJQ5buP////gAAAAAymcFAAsDELMfAN0BBgUIAP////sAAAAAAAAAfwFi2gABABAAAABwAAA=";

    #[test]
    fn alter_context_with_slack_re_encodes_with_an_aligned_trailer() {
        use base64::Engine as _;
        let pdu = base64::engine::general_purpose::STANDARD
            .decode(ALTER_CONTEXT_WITH_SLACK_BEFORE_PAD)
            .unwrap();
        let b = parse_bind(&pdu).unwrap();
        assert_eq!(b.ptype, PacketType::AlterContext);
        let token = b.token(&pdu).unwrap();
        let bytes = b.to_bytes(token).unwrap();
        let again = parse_bind(&bytes).unwrap();
        assert_eq!(again.contexts, b.contexts);
        assert_eq!(again.token(&bytes).unwrap(), token);
        assert_eq!(
            bytes.len() % 4,
            token.len() % 4,
            "the trailer starts 4-byte aligned"
        );
        // A pad that already aligns the trailer is kept as given (byte-identical re-encoding).
        let mut s = sample(Drep::LITTLE_ENDIAN, true);
        s.auth.as_mut().unwrap().auth_pad_length = 4;
        let kept = parse_bind(&s.to_bytes(b"\x6e\x00").unwrap()).unwrap();
        assert_eq!(kept.auth.unwrap().auth_pad_length, 4);
    }

    #[test]
    fn unaligned_sec_trailer_is_refused() {
        // The encoder always aligns the trailer, so the unaligned PDU is made by hand: an
        // aligned one with pad 4 loses one pad byte and says its pad is 3.
        let mut s = sample(Drep::LITTLE_ENDIAN, true);
        s.auth.as_mut().unwrap().auth_pad_length = 4;
        let mut pdu = s.to_bytes(b"\x6e\x00").unwrap();
        let trailer = pdu.len() - 8 - 2;
        pdu.remove(trailer - 1);
        pdu[trailer - 1 + 2] = 3;
        let frag = u16::try_from(pdu.len()).unwrap().to_le_bytes();
        pdu[8..10].copy_from_slice(&frag);
        assert_eq!(
            parse_bind(&pdu),
            Err(RpcError::Malformed {
                what: "sec_trailer alignment"
            })
        );
    }

    #[test]
    fn auth_length_larger_than_the_body_is_refused() {
        let mut pdu = sample(Drep::LITTLE_ENDIAN, true).to_bytes(b"\x6e\x00").unwrap();
        let bad = (pdu.len() - 16 - 8 + 1) as u16;
        pdu[10..12].copy_from_slice(&bad.to_le_bytes());
        assert!(matches!(
            parse_bind(&pdu),
            Err(RpcError::AuthLengthInconsistent { .. })
        ));
    }

    #[test]
    fn auth_length_eating_into_the_context_list_is_refused() {
        let mut pdu = sample(Drep::LITTLE_ENDIAN, true).to_bytes(b"\x6e\x00").unwrap();
        pdu[10..12].copy_from_slice(&10u16.to_le_bytes());
        // The trailer then lands inside the context list: whichever check trips first refuses it.
        assert!(matches!(
            parse_bind(&pdu),
            Err(RpcError::ContextListOverrun | RpcError::BadAuthPad { .. })
        ));
    }

    #[test]
    fn context_count_beyond_the_body_is_refused() {
        let mut pdu = sample(Drep::LITTLE_ENDIAN, false).to_bytes(&[]).unwrap();
        pdu[24] = 2;
        assert_eq!(parse_bind(&pdu), Err(RpcError::ContextListOverrun));
    }

    #[test]
    fn pdu_shorter_than_frag_length_is_truncated() {
        let pdu = sample(Drep::LITTLE_ENDIAN, false).to_bytes(&[]).unwrap();
        assert_eq!(
            parse_bind(&pdu[..71]),
            Err(RpcError::Truncated { need: 72, have: 71 })
        );
    }

    #[test]
    fn bytes_after_frag_length_are_ignored() {
        let mut pdu = sample(Drep::LITTLE_ENDIAN, true).to_bytes(b"\x6e\x00").unwrap();
        let b = parse_bind(&pdu).unwrap();
        pdu.extend_from_slice(b"next PDU");
        assert_eq!(parse_bind(&pdu), Ok(b));
    }

    #[test]
    fn token_without_verifier_is_not_encoded() {
        assert!(sample(Drep::LITTLE_ENDIAN, false).to_bytes(b"x").is_err());
    }

    #[test]
    fn oversize_token_is_not_encoded() {
        let big = vec![0u8; 70_000];
        assert!(matches!(
            sample(Drep::LITTLE_ENDIAN, true).to_bytes(&big),
            Err(RpcError::TooLong {
                what: "auth token",
                ..
            })
        ));
        let nearly = vec![0u8; 65_500];
        assert!(matches!(
            sample(Drep::LITTLE_ENDIAN, true).to_bytes(&nearly),
            Err(RpcError::TooLong { what: "bind PDU", .. })
        ));
    }
}
