//! Hand-assembled DER for the outer layers of a minted token: the AP-REQ around a pre-encoded
//! ticket (RFC 4120 §5.5.1), the RFC 4121 §4.1 GSS framing and the RFC 4178 SPNEGO NegTokenInit,
//! written into one buffer sized up front.
//!
//! A user's ticket (with its ~1.2 KB PAC) never changes during a run, so re-encoding it through
//! `rasn` for every token, then copying it through two more framing layers, is most of the
//! minting cost; splicing its DER halves it. The unit tests pin the output byte for byte to the
//! `rasn` encoding and to `tokens::frame`.

use crate::krb::acceptor::Framing;
use crate::krb::gss::{self, push_der_length};

/// Bytes of a DER length field for `len`.
fn len_of_len(len: usize) -> usize {
    if len < 0x80 {
        1
    } else {
        1 + (usize::BITS as usize / 8 - len.leading_zeros() as usize / 8)
    }
}

/// Bytes of a whole TLV (one-byte tag) with `content` bytes of content.
fn tlv(content: usize) -> usize {
    1 + len_of_len(content) + content
}

fn head(out: &mut Vec<u8>, tag: u8, content: usize) {
    out.push(tag);
    push_der_length(out, content);
}

/// The mechanism OIDs offered in a NegTokenInit, and the one its mechToken is framed under
/// (Microsoft's OID first, as Windows sends, for `legacy_oid`).
fn mechs(legacy_oid: bool) -> (&'static [u8], &'static [&'static [u8]]) {
    if legacy_oid {
        (
            gss::OID_MS_KRB5,
            &[gss::OID_MS_KRB5, gss::OID_KRB5, gss::OID_NTLM],
        )
    } else {
        (gss::OID_KRB5, &[gss::OID_KRB5, gss::OID_NTLM])
    }
}

/// Writes the framed token: `[APPLICATION 14] AP-REQ { pvno 5, msg-type 14, ap-options,
/// ticket (pre-encoded DER), authenticator (EncryptedData DER) }`, framed as asked.
pub fn ap_req_token(framing: Framing, ap_options: [u8; 4], ticket: &[u8], authenticator: &[u8]) -> Vec<u8> {
    // AP-REQ SEQUENCE content: pvno, msg-type, ap-options are fixed-size.
    const FIXED: usize = 5 + 5 + 9;
    let seq = FIXED + tlv(ticket.len()) + tlv(authenticator.len());
    let app = tlv(seq);
    let ap_len = tlv(app);
    let krb5_inner = |oid: &[u8]| 2 + oid.len() + 2 + ap_len; // OID TLV, token ID, AP-REQ
    let total = match framing {
        Framing::Bare => ap_len,
        Framing::Gss => tlv(krb5_inner(gss::OID_KRB5)),
        Framing::Spnego { legacy_oid } => {
            let (oid, list) = mechs(legacy_oid);
            let types: usize = list.iter().map(|o| 2 + o.len()).sum();
            let init = tlv(tlv(types)) + tlv(tlv(tlv(krb5_inner(oid))));
            tlv(2 + gss::OID_SPNEGO.len() + tlv(tlv(init)))
        }
    };
    let mut out = Vec::with_capacity(total);
    match framing {
        Framing::Bare => {}
        Framing::Gss => {
            head(&mut out, 0x60, krb5_inner(gss::OID_KRB5));
            head(&mut out, 0x06, gss::OID_KRB5.len());
            out.extend_from_slice(gss::OID_KRB5);
            out.extend_from_slice(&gss::TOK_AP_REQ);
        }
        Framing::Spnego { legacy_oid } => {
            let (oid, list) = mechs(legacy_oid);
            let types: usize = list.iter().map(|o| 2 + o.len()).sum();
            let mech_token = tlv(krb5_inner(oid));
            let init = tlv(tlv(types)) + tlv(tlv(mech_token));
            head(&mut out, 0x60, 2 + gss::OID_SPNEGO.len() + tlv(tlv(init)));
            head(&mut out, 0x06, gss::OID_SPNEGO.len());
            out.extend_from_slice(gss::OID_SPNEGO);
            head(&mut out, 0xa0, tlv(init)); // negTokenInit [0]
            head(&mut out, 0x30, init); // NegTokenInit SEQUENCE
            head(&mut out, 0xa0, tlv(types)); // mechTypes [0]
            head(&mut out, 0x30, types);
            for o in list {
                head(&mut out, 0x06, o.len());
                out.extend_from_slice(o);
            }
            head(&mut out, 0xa2, tlv(mech_token)); // mechToken [2]
            head(&mut out, 0x04, mech_token);
            head(&mut out, 0x60, krb5_inner(oid));
            head(&mut out, 0x06, oid.len());
            out.extend_from_slice(oid);
            out.extend_from_slice(&gss::TOK_AP_REQ);
        }
    }
    head(&mut out, 0x6e, app);
    head(&mut out, 0x30, seq);
    out.extend_from_slice(&[0xa0, 0x03, 0x02, 0x01, 0x05]); // pvno 5
    out.extend_from_slice(&[0xa1, 0x03, 0x02, 0x01, 0x0e]); // msg-type 14
    out.extend_from_slice(&[0xa2, 0x07, 0x03, 0x05, 0x00]); // ap-options, 32 bits
    out.extend_from_slice(&ap_options);
    head(&mut out, 0xa3, ticket.len());
    out.extend_from_slice(ticket);
    head(&mut out, 0xa4, authenticator.len());
    out.extend_from_slice(authenticator);
    debug_assert_eq!(out.len(), total);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::benchclient::tokens::frame;
    use rasn::types::{BitString, OctetString};
    use rasn_kerberos::{ApOptions, ApReq, EncryptedData, KerberosString, PrincipalName, Ticket};

    fn ticket(cipher_len: usize) -> Ticket {
        Ticket {
            tkt_vno: 5.into(),
            realm: KerberosString::from_bytes(b"CONTOSO.COM").unwrap(),
            sname: PrincipalName {
                r#type: 2,
                string: vec![
                    KerberosString::from_bytes(b"http").unwrap(),
                    KerberosString::from_bytes(b"outlook.contoso.com").unwrap(),
                ],
            },
            enc_part: EncryptedData {
                etype: 18,
                kvno: Some(3),
                cipher: OctetString::from(vec![0x5a; cipher_len]),
            },
        }
    }

    #[test]
    fn spliced_tokens_equal_the_rasn_encoding_in_every_framing() {
        for (cipher_len, auth_len, mutual) in [
            (40, 30, false),
            (300, 120, true),
            (1300, 140, true),
            (70_000, 200, false),
        ] {
            let t = ticket(cipher_len);
            let auth = EncryptedData {
                etype: 18,
                kvno: None,
                cipher: OctetString::from(vec![0xa5; auth_len]),
            };
            let mut opts = BitString::repeat(false, 32);
            opts.set(2, mutual);
            let reference = rasn::der::encode(&ApReq {
                pvno: 5.into(),
                msg_type: 14.into(),
                ap_options: ApOptions(opts),
                ticket: t.clone(),
                authenticator: auth.clone(),
            })
            .unwrap();
            let ticket_der = rasn::der::encode(&t).unwrap();
            let auth_der = rasn::der::encode(&auth).unwrap();
            let flags = if mutual { [0x20, 0, 0, 0] } else { [0; 4] };
            for framing in [
                Framing::Bare,
                Framing::Gss,
                Framing::Spnego { legacy_oid: true },
                Framing::Spnego { legacy_oid: false },
            ] {
                assert_eq!(
                    ap_req_token(framing, flags, &ticket_der, &auth_der),
                    frame(framing, &reference),
                    "{framing:?}, ticket cipher {cipher_len} bytes"
                );
            }
        }
    }
}
