//! From an initial context token to the DER AP-REQ inside it: SPNEGO (RFC 4178), GSS krb5
//! (RFC 2743 §3.1, RFC 4121 §4.1) or a bare AP-REQ (Microsoft RPC's DCE style). Zero-copy.

use super::error::AuthError;
use super::gss::{self, TokenShape};
use super::spnego::{self, SpnegoInner};

/// How the token was framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// SPNEGO NegTokenInit (GSS-wrapped) carrying a Kerberos mechToken.
    Spnego { legacy_oid: bool },
    /// RFC 4121 initial context token (`60 … 1.2.840.113554.1.2.2 01 00 AP-REQ`).
    Gss,
    /// A bare AP-REQ (`6e …`), as Microsoft RPC sends for DCE style.
    Bare,
}

/// Strips GSS/SPNEGO framing down to the DER AP-REQ (RFC 2743 §3.1, RFC 4178, RFC 4121 §4.1).
pub fn unframe(token: &[u8]) -> Result<(&[u8], Framing), AuthError> {
    match gss::shape(token) {
        TokenShape::Ntlm => Err(AuthError::Ntlm),
        TokenShape::BareApReq => Ok((token, Framing::Bare)),
        TokenShape::Gss => {
            let (oid, inner) = gss::unwrap_initial(token)?;
            if gss::is_krb5_oid(oid) {
                Ok((krb5_ap_req(inner)?, Framing::Gss))
            } else if oid == gss::OID_SPNEGO {
                spnego_ap_req(inner)
            } else if oid == gss::OID_NTLM {
                Err(AuthError::Ntlm)
            } else {
                Err(AuthError::malformed("gss", "unknown mechanism OID"))
            }
        }
        TokenShape::BareSpnegoInit => spnego_ap_req(token),
        TokenShape::SpnegoResp => Err(AuthError::malformed(
            "spnego",
            "NegTokenResp is a continuation, not an initial token",
        )),
        TokenShape::Unknown => Err(AuthError::malformed(
            "gss",
            "not a GSS, SPNEGO, AP-REQ or NTLM token",
        )),
    }
}

/// The AP-REQ inside a krb5 mechanism token: `01 00` then the message (RFC 4121 §4.1).
fn krb5_ap_req(inner: &[u8]) -> Result<&[u8], AuthError> {
    match inner {
        [0x01, 0x00, rest @ ..] => Ok(rest),
        [a, b, ..] => Err(AuthError::malformed(
            "gss",
            format!("krb5 token ID {a:02x}{b:02x} is not an AP-REQ"),
        )),
        _ => Err(AuthError::malformed("gss", "krb5 token ID missing")),
    }
}

/// Finds the AP-REQ in a SPNEGO NegTokenInit (zero-copy).
fn spnego_ap_req(body: &[u8]) -> Result<(&[u8], Framing), AuthError> {
    match spnego::inner_token(body)? {
        SpnegoInner::Ntlm => Err(AuthError::Ntlm),
        SpnegoInner::Kerberos {
            token: mech,
            legacy_oid,
        } => {
            let framing = Framing::Spnego { legacy_oid };
            match gss::shape(mech) {
                TokenShape::Gss => match gss::unwrap_initial(mech)? {
                    (oid, inner) if gss::is_krb5_oid(oid) => Ok((krb5_ap_req(inner)?, framing)),
                    _ => Err(AuthError::malformed("spnego", "mechToken is not a krb5 token")),
                },
                TokenShape::BareApReq => Ok((mech, framing)),
                TokenShape::Ntlm => Err(AuthError::Ntlm),
                _ => Err(AuthError::malformed(
                    "spnego",
                    "mechToken is neither GSS krb5 nor an AP-REQ",
                )),
            }
        }
    }
}

/// Whether `token` starts a security context rather than continuing one (MS-RPCE 3.3.1.5.2:
/// later legs of a handshake travel in alter_context / rpc_auth_3 on the same
/// `auth_context_id`). Starting tokens are the forms an acceptor takes as initial: an AP-REQ,
/// bare (Microsoft RPC's DCE style, MS-KILE 3.4.5.1) or GSS-framed with token ID `01 00` (RFC
/// 4121 §4.1); a SPNEGO NegTokenInit (RFC 4178 §4.2.1), GSS-framed or bare; a NegTokenResp whose
/// responseToken is itself one (mechanism renegotiation, RFC 4178 §3.2); an NTLM NEGOTIATE
/// (MS-NLMP 2.2.1.1); and any GSS-framed token of another mechanism. Everything else continues a
/// context: AP-REP and KRB-ERROR, bare or framed; RFC 1964 / RFC 4121 per-message tokens; a
/// NegTokenResp carrying a continuation or nothing; NTLM AUTHENTICATE; an empty token. A
/// NegTokenResp that does not decode counts as starting one, so it is validated rather than
/// waved through.
pub fn starts_context(token: &[u8]) -> bool {
    starts(token, true)
}

fn starts(token: &[u8], look_into_resp: bool) -> bool {
    match gss::shape(token) {
        TokenShape::Ntlm => ntlm_message_type(token) != Some(NTLM_AUTHENTICATE),
        TokenShape::BareApReq | TokenShape::BareSpnegoInit => true,
        TokenShape::Gss => match gss::unwrap_initial(token) {
            Ok((oid, inner)) if gss::is_krb5_oid(oid) => inner.starts_with(&gss::TOK_AP_REQ),
            _ => true,
        },
        TokenShape::SpnegoResp if look_into_resp => {
            match rasn::der::decode::<spnego::NegotiationToken>(token) {
                Ok(spnego::NegotiationToken::Resp(resp)) => {
                    resp.response_token.is_some_and(|inner| starts(&inner, false))
                }
                _ => true,
            }
        }
        TokenShape::SpnegoResp => true,
        TokenShape::Unknown => false,
    }
}

/// NTLM AUTHENTICATE_MESSAGE type (MS-NLMP 2.2.1.3).
const NTLM_AUTHENTICATE: u32 = 3;

/// The MessageType after the NTLMSSP signature (MS-NLMP 2.2.1), little-endian.
fn ntlm_message_type(token: &[u8]) -> Option<u32> {
    let t = token.get(gss::NTLMSSP.len()..gss::NTLMSSP.len() + 4)?;
    Some(u32::from_le_bytes([t[0], t[1], t[2], t[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::krb::gss::{wrap_krb5, OID_KRB5, TOK_AP_REP, TOK_AP_REQ, TOK_KRB_ERROR};

    const KRB5: &[u32] = &[1, 2, 840, 113554, 1, 2, 2];
    const AP_REQ: &[u8] = b"\x6e\x03\x02\x01\x05";
    const AP_REP: &[u8] = b"\x6f\x03\x02\x01\x05";

    fn ntlm(kind: u8) -> Vec<u8> {
        let mut m = gss::NTLMSSP.to_vec();
        m.extend_from_slice(&[kind, 0, 0, 0, 0, 0]);
        m
    }

    fn resp(inner: Option<&[u8]>) -> Vec<u8> {
        spnego::accept_completed(false, inner.map(<[u8]>::to_vec))
    }

    #[test]
    fn initial_tokens_start_a_context() {
        let framed = wrap_krb5(OID_KRB5, TOK_AP_REQ, AP_REQ);
        for (name, t) in [
            ("bare AP-REQ", AP_REQ.to_vec()),
            ("GSS AP-REQ", framed.clone()),
            ("SPNEGO NegTokenInit", spnego::init_token(&[KRB5], &framed)),
            ("NTLM NEGOTIATE", ntlm(1)),
            ("NegTokenResp carrying an AP-REQ", resp(Some(&framed))),
            ("NegTokenResp carrying NTLM NEGOTIATE", resp(Some(&ntlm(1)))),
            (
                "GSS token of another mechanism",
                gss::wrap_initial(gss::OID_NTLM, &ntlm(1)),
            ),
            ("undecodable NegTokenResp", b"\xa1\x05\x30\x03".to_vec()),
        ] {
            assert!(starts_context(&t), "{name}");
        }
    }

    #[test]
    fn later_legs_continue_a_context() {
        for (name, t) in [
            ("bare AP-REP", AP_REP.to_vec()),
            ("GSS AP-REP", wrap_krb5(OID_KRB5, TOK_AP_REP, AP_REP)),
            ("GSS KRB-ERROR", wrap_krb5(OID_KRB5, TOK_KRB_ERROR, b"\x7e\x00")),
            ("bare KRB-ERROR", b"\x7e\x00".to_vec()),
            ("NTLM AUTHENTICATE", ntlm(3)),
            ("NegTokenResp carrying an AP-REP", resp(Some(AP_REP))),
            ("NegTokenResp carrying NTLM AUTHENTICATE", resp(Some(&ntlm(3)))),
            ("NegTokenResp without a token", resp(None)),
            (
                "RFC 1964 MIC token",
                wrap_krb5(OID_KRB5, [0x01, 0x01], b"\x11\x00"),
            ),
            ("RFC 4121 Wrap token", b"\x05\x04\x06\xff\x00\x00".to_vec()),
            ("empty", Vec::new()),
        ] {
            assert!(!starts_context(&t), "{name}");
        }
    }

    #[test]
    fn never_panics_on_truncations() {
        let t = resp(Some(&wrap_krb5(OID_KRB5, TOK_AP_REQ, AP_REQ)));
        for n in 0..t.len() {
            let _ = starts_context(&t[..n]);
        }
    }
}
