//! SPNEGO (RFC 4178 §4.2) NegTokenInit / NegTokenResp, as small rasn definitions, and the
//! decision of which inner mechanism token a client sent (Kerberos, NTLM or none).

use super::der_back::{DerBack, Mark};
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
pub enum SpnegoInner<'a> {
    /// A Kerberos token (GSS-framed krb5 or bare AP-REQ), borrowed from the input; `legacy_oid`
    /// when the client named Microsoft's 1.2.840.48018.1.2.2 first.
    Kerberos { token: &'a [u8], legacy_oid: bool },
    /// NTLM was the first mechanism, or the only one offered.
    Ntlm,
}

/// One DER TLV: (tag, content, rest). Definite lengths of at most four octets only; every
/// offset checked (untrusted input).
fn tlv(buf: &[u8]) -> Result<(u8, &[u8], &[u8]), AuthError> {
    let bad = |d: &'static str| AuthError::malformed("spnego", d);
    let tag = *buf.first().ok_or_else(|| bad("truncated"))?;
    let (len, used) = gss::der_length(buf, 1).map_err(|_| bad("bad length"))?;
    let start = 1 + used;
    let end = start.checked_add(len).ok_or_else(|| bad("bad length"))?;
    let content = buf.get(start..end).ok_or_else(|| bad("truncated"))?;
    Ok((tag, content, &buf[end..]))
}

fn mech_name(der: &[u8]) -> &'static str {
    match der {
        d if d == OID_KRB5 => "krb5",
        d if d == OID_MS_KRB5 => "ms-krb5",
        d if d == OID_NTLM => "ntlm",
        _ => "other",
    }
}

/// Walks the body of a SPNEGO initial token (after the GSS frame, or a bare `[0]` token) and
/// picks the Kerberos mechanism token (RFC 4178 §3.2: the optimistic token is for the first
/// mech). Zero-copy: the DER is walked by hand (RFC 4178 §4.2.1 layout), the token borrowed.
pub fn inner_token(body: &[u8]) -> Result<SpnegoInner<'_>, AuthError> {
    let bad = |d: &'static str| AuthError::malformed("spnego", d);
    let (tag, choice, _) = tlv(body)?;
    match tag {
        0xa0 => {}
        0xa1 => return Err(bad("NegTokenResp where an initial token was expected")),
        _ => return Err(bad("not a NegotiationToken")),
    }
    let (tag, mut fields, _) = tlv(choice)?;
    if tag != 0x30 {
        return Err(bad("NegTokenInit is not a SEQUENCE"));
    }
    let mut mech_list: Option<&[u8]> = None;
    let mut mech_token: Option<&[u8]> = None;
    let mut last = 0u8;
    while !fields.is_empty() {
        let (tag, content, rest) = tlv(fields)?;
        fields = rest;
        if tag <= last || !(0xa0..=0xa4).contains(&tag) {
            return Err(bad("NegTokenInit fields out of order or unknown"));
        }
        last = tag;
        match tag {
            0xa0 => {
                let (t, list, _) = tlv(content)?;
                if t != 0x30 {
                    return Err(bad("mechTypes is not a SEQUENCE OF"));
                }
                mech_list = Some(list);
            }
            0xa2 => {
                let (t, tok, _) = tlv(content)?;
                if t != 0x04 {
                    return Err(bad("mechToken is not an OCTET STRING"));
                }
                mech_token = Some(tok);
            }
            _ => {} // reqFlags [1], mechListMIC [3] (or negHints in NegTokenInit2): not needed
        }
    }
    let mut list = mech_list.ok_or_else(|| bad("mechTypes missing"))?;
    let mut mechs: Vec<&[u8]> = Vec::with_capacity(4);
    while !list.is_empty() {
        let (t, oid, rest) = tlv(list)?;
        if t != 0x06 {
            return Err(bad("mechType is not an OID"));
        }
        mechs.push(oid);
        list = rest;
        if mechs.len() > 32 {
            return Err(bad("too many mechTypes"));
        }
    }
    let first = *mechs.first().ok_or_else(|| bad("empty mechanism list"))?;
    match mech_token {
        Some(token) if gss::is_krb5_oid(first) => Ok(SpnegoInner::Kerberos {
            token,
            legacy_oid: first == OID_MS_KRB5,
        }),
        Some(token) if token.starts_with(gss::NTLMSSP) || first == OID_NTLM => Ok(SpnegoInner::Ntlm),
        _ if mechs.iter().all(|m| *m == OID_NTLM) => Ok(SpnegoInner::Ntlm),
        _ => Err(AuthError::NoKerberosMech(
            mechs.iter().map(|m| mech_name(m)).collect::<Vec<_>>().join(","),
        )),
    }
}

/// Builds the acceptor's final NegTokenResp: accept-completed, the chosen mech, and the AP-REP
/// (already GSS-framed) where mutual authentication was asked for. Written by hand (a fixed
/// shape, built for every mutually authenticated request; the tests hold it to rasn's DER).
pub fn accept_completed(legacy_oid: bool, response_token: Option<Vec<u8>>) -> Vec<u8> {
    let token_len = response_token.as_ref().map_or(0, Vec::len);
    let mut w = DerBack::with_capacity(token_len + 40);
    let m = w.mark();
    if let Some(token) = &response_token {
        w.prepend(token);
    }
    frame_accept_completed(&mut w, legacy_oid, response_token.is_some(), m);
    w.into_vec()
}

/// Frames what `w` holds since `mark` (the response token when `with_token`, else nothing) as
/// [`accept_completed`] does.
pub fn frame_accept_completed(w: &mut DerBack, legacy_oid: bool, with_token: bool, mark: Mark) {
    let oid = if legacy_oid {
        gss::OID_MS_KRB5
    } else {
        gss::OID_KRB5
    };
    if with_token {
        w.wrap(0x04, mark);
        w.wrap(0xA2, mark);
    }
    let mech = w.mark();
    w.tlv(0x06, oid);
    w.wrap(0xA1, mech);
    // negState [0] ENUMERATED accept-completed (0).
    w.prepend(&[0xA0, 0x03, 0x0A, 0x01, 0x00]);
    w.wrap(0x30, mark);
    w.wrap(0xA1, mark);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rasn_encoded_oids_match_the_constants() {
        for (arcs, der) in [
            (arcs::KRB5, OID_KRB5),
            (arcs::MS_KRB5, OID_MS_KRB5),
            (arcs::NTLM, OID_NTLM),
        ] {
            let enc = rasn::der::encode(&ObjectIdentifier::new_unchecked(arcs.to_vec().into())).unwrap();
            assert_eq!(&enc[2..], der);
        }
    }

    #[test]
    fn neg_token_resp_and_truncations_are_refused() {
        assert!(inner_token(&accept_completed(false, None)).is_err());
        let t = init_token(&[arcs::KRB5], b"\x60\x01\x02");
        let (_, body) = gss::unwrap_initial(&t).unwrap();
        for n in 0..body.len() {
            assert!(inner_token(&body[..n]).is_err());
        }
    }

    #[test]
    fn init_token_yields_its_kerberos_mech_token() {
        let t = init_token(&[arcs::MS_KRB5, arcs::KRB5, arcs::NTLM], b"\x60\x01\x02");
        let (oid, body) = gss::unwrap_initial(&t).unwrap();
        assert_eq!(oid, OID_SPNEGO);
        match inner_token(body).unwrap() {
            SpnegoInner::Kerberos { token, legacy_oid } => {
                assert!(legacy_oid);
                assert_eq!(token, b"\x60\x01\x02");
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
    fn accept_completed_is_rasn_s_der() {
        for legacy_oid in [false, true] {
            let arcs = if legacy_oid { arcs::MS_KRB5 } else { arcs::KRB5 };
            for token in [None, Some(0), Some(3), Some(110), Some(200), Some(70_000)] {
                let token = token.map(|n| vec![0x5A; n]);
                let resp = NegotiationToken::Resp(NegTokenResp {
                    neg_state: Some(NegState::AcceptCompleted),
                    supported_mech: Some(ObjectIdentifier::new_unchecked(arcs.to_vec().into())),
                    response_token: token.clone().map(OctetString::from),
                    mech_list_mic: None,
                });
                assert_eq!(
                    accept_completed(legacy_oid, token.clone()),
                    rasn::der::encode(&resp).unwrap(),
                    "{legacy_oid} {:?}",
                    token.map(|t| t.len())
                );
            }
        }
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
