//! SPNEGO (RFC 4178 §4.2) NegTokenInit / NegTokenResp, as small rasn definitions, and the
//! decision of which inner mechanism token a client sent (Kerberos, NTLM or none).

use rasn::prelude::*;
use rasn::types::{BitString, ObjectIdentifier, OctetString};

use super::error::AuthError;
use super::gss::{self, OID_KRB5, OID_MS_KRB5, OID_NTLM, OID_SPNEGO};

/// `NegotiationToken ::= CHOICE { negTokenInit [0], negTokenResp [1] }` (RFC 4178 §4.2).
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq)]
#[rasn(choice)]
pub enum NegotiationToken {
    /// The initiator's first token.
    #[rasn(tag(explicit(0)))]
    Init(NegTokenInit),
    /// Every later token, and the acceptor's answers.
    #[rasn(tag(explicit(1)))]
    Resp(NegTokenResp),
}

/// RFC 4178 §4.2.1 NegTokenInit.
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq)]
pub struct NegTokenInit {
    /// Mechanisms in the initiator's order of preference.
    #[rasn(tag(explicit(0)))]
    pub mech_types: Vec<ObjectIdentifier>,
    /// Context flags (deprecated, ignored).
    #[rasn(tag(explicit(1)))]
    pub req_flags: Option<BitString>,
    /// The optimistic token of the first mechanism.
    #[rasn(tag(explicit(2)))]
    pub mech_token: Option<OctetString>,
    /// MIC over the mechanism list.
    #[rasn(tag(explicit(3)))]
    pub mech_list_mic: Option<OctetString>,
}

/// RFC 4178 §4.2.2 negState.
#[derive(AsnType, Decode, Encode, Debug, Clone, Copy, PartialEq, Eq)]
#[rasn(enumerated)]
pub enum NegState {
    /// accept-completed (0).
    AcceptCompleted = 0,
    /// accept-incomplete (1).
    AcceptIncomplete = 1,
    /// reject (2).
    Reject = 2,
    /// request-mic (3).
    RequestMic = 3,
}

/// RFC 4178 §4.2.2 NegTokenResp.
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq)]
pub struct NegTokenResp {
    /// State of the negotiation.
    #[rasn(tag(explicit(0)))]
    pub neg_state: Option<NegState>,
    /// The mechanism the acceptor chose.
    #[rasn(tag(explicit(1)))]
    pub supported_mech: Option<ObjectIdentifier>,
    /// The mechanism's response token (the AP-REP).
    #[rasn(tag(explicit(2)))]
    pub response_token: Option<OctetString>,
    /// MIC over the mechanism list.
    #[rasn(tag(explicit(3)))]
    pub mech_list_mic: Option<OctetString>,
}

/// The mechanism token a SPNEGO NegTokenInit carries, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum SpnegoInner {
    /// A Kerberos token (GSS-framed krb5 or bare AP-REQ); `legacy_oid` when the client named
    /// Microsoft's 1.2.840.48018.1.2.2 first.
    Kerberos { token: OctetString, legacy_oid: bool },
    /// NTLM was the first mechanism, or the only one offered.
    Ntlm,
}

fn oid_der(oid: &ObjectIdentifier) -> Vec<u8> {
    // Re-encode the arcs to DER content octets to compare with the constants.
    let arcs: &[u32] = oid;
    let mut out = Vec::with_capacity(12);
    if arcs.len() < 2 {
        return out;
    }
    let mut push_arc = |mut v: u64| {
        let mut tmp = [0u8; 10];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = (v & 0x7f) as u8 | if i == tmp.len() - 1 { 0 } else { 0x80 };
            v >>= 7;
            if v == 0 {
                break;
            }
        }
        out.extend_from_slice(&tmp[i..]);
    };
    push_arc(arcs[0] as u64 * 40 + arcs[1] as u64);
    for a in &arcs[2..] {
        push_arc(*a as u64);
    }
    out
}

fn mech_name(der: &[u8]) -> &'static str {
    match der {
        d if d == OID_KRB5 => "krb5",
        d if d == OID_MS_KRB5 => "ms-krb5",
        d if d == OID_NTLM => "ntlm",
        _ => "other",
    }
}

/// Decodes the body of a SPNEGO initial token (after the GSS frame, or a bare `[0]` token) and
/// picks the Kerberos mechanism token (RFC 4178 §3.2: the optimistic token is for the first mech).
pub fn inner_token(body: &[u8]) -> Result<SpnegoInner, AuthError> {
    let tok: NegotiationToken =
        rasn::ber::decode(body).map_err(|e| AuthError::malformed("spnego", short(&e.to_string())))?;
    let init = match tok {
        NegotiationToken::Init(i) => i,
        NegotiationToken::Resp(_) => {
            return Err(AuthError::malformed(
                "spnego",
                "NegTokenResp where an initial token was expected",
            ))
        }
    };
    let mechs: Vec<Vec<u8>> = init.mech_types.iter().map(oid_der).collect();
    let names = || mechs.iter().map(|m| mech_name(m)).collect::<Vec<_>>().join(",");
    let first = mechs
        .first()
        .ok_or_else(|| AuthError::malformed("spnego", "empty mechanism list"))?;
    match init.mech_token {
        Some(token) if gss::is_krb5_oid(first) => Ok(SpnegoInner::Kerberos {
            token,
            legacy_oid: first.as_slice() == OID_MS_KRB5,
        }),
        Some(token) if token.starts_with(gss::NTLMSSP) || first.as_slice() == OID_NTLM => {
            Ok(SpnegoInner::Ntlm)
        }
        _ if mechs.iter().all(|m| m.as_slice() == OID_NTLM) => Ok(SpnegoInner::Ntlm),
        _ => Err(AuthError::NoKerberosMech(names())),
    }
}

/// Builds the acceptor's final NegTokenResp: accept-completed, the chosen mech, and the AP-REP
/// (already GSS-framed) where mutual authentication was asked for.
pub fn accept_completed(legacy_oid: bool, response_token: Option<Vec<u8>>) -> Vec<u8> {
    let oid: &[u32] = if legacy_oid {
        &[1, 2, 840, 48018, 1, 2, 2]
    } else {
        &[1, 2, 840, 113554, 1, 2, 2]
    };
    let resp = NegotiationToken::Resp(NegTokenResp {
        neg_state: Some(NegState::AcceptCompleted),
        supported_mech: Some(ObjectIdentifier::new_unchecked(oid.to_vec().into())),
        response_token: response_token.map(OctetString::from),
        mech_list_mic: None,
    });
    rasn::der::encode(&resp).unwrap_or_default()
}

/// Builds a GSS-framed SPNEGO NegTokenInit offering `mechs` with `mech_token` (for kedge's own
/// bench client and tests).
pub fn init_token(mechs: &[&[u32]], mech_token: &[u8]) -> Vec<u8> {
    let init = NegotiationToken::Init(NegTokenInit {
        mech_types: mechs
            .iter()
            .map(|m| ObjectIdentifier::new_unchecked(m.to_vec().into()))
            .collect(),
        req_flags: None,
        mech_token: Some(OctetString::from_slice(mech_token)),
        mech_list_mic: None,
    });
    gss::wrap_initial(OID_SPNEGO, &rasn::der::encode(&init).unwrap_or_default())
}

/// Arcs of the Kerberos mechanism OIDs and NTLM, for [`init_token`].
pub mod arcs {
    /// 1.2.840.113554.1.2.2
    pub const KRB5: &[u32] = &[1, 2, 840, 113554, 1, 2, 2];
    /// 1.2.840.48018.1.2.2
    pub const MS_KRB5: &[u32] = &[1, 2, 840, 48018, 1, 2, 2];
    /// 1.3.6.1.4.1.311.2.2.10
    pub const NTLM: &[u32] = &[1, 3, 6, 1, 4, 1, 311, 2, 2, 10];
}

fn short(s: &str) -> String {
    s.chars().take(160).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_der_matches_constants() {
        let k = ObjectIdentifier::new_unchecked(arcs::KRB5.to_vec().into());
        assert_eq!(oid_der(&k), OID_KRB5);
        let m = ObjectIdentifier::new_unchecked(arcs::MS_KRB5.to_vec().into());
        assert_eq!(oid_der(&m), OID_MS_KRB5);
        let n = ObjectIdentifier::new_unchecked(arcs::NTLM.to_vec().into());
        assert_eq!(oid_der(&n), OID_NTLM);
    }

    #[test]
    fn init_token_yields_its_kerberos_mech_token() {
        let t = init_token(&[arcs::MS_KRB5, arcs::KRB5, arcs::NTLM], b"\x60\x01\x02");
        let (oid, body) = gss::unwrap_initial(&t).unwrap();
        assert_eq!(oid, OID_SPNEGO);
        match inner_token(body).unwrap() {
            SpnegoInner::Kerberos { token, legacy_oid } => {
                assert!(legacy_oid);
                assert_eq!(&token[..], b"\x60\x01\x02");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ntlm_only_offer_is_ntlm() {
        let t = init_token(&[arcs::NTLM], b"NTLMSSP\0\x01\0\0\0");
        let (_, body) = gss::unwrap_initial(&t).unwrap();
        assert_eq!(inner_token(body).unwrap(), SpnegoInner::Ntlm);
    }

    #[test]
    fn accept_completed_decodes_as_resp() {
        let r = accept_completed(false, Some(vec![1, 2, 3]));
        match rasn::ber::decode::<NegotiationToken>(&r).unwrap() {
            NegotiationToken::Resp(resp) => {
                assert_eq!(resp.neg_state, Some(NegState::AcceptCompleted));
                assert_eq!(resp.response_token.as_deref(), Some(&[1u8, 2, 3][..]));
            }
            other => panic!("{other:?}"),
        }
    }
}
