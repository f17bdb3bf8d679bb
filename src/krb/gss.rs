//! GSS-API framing (RFC 2743 §3.1 initial context token, RFC 4121 §4.1 token IDs) and token
//! classification. The header is walked by hand: `60 <DER length> 06 <oid length> <oid> <inner>`.

use super::der_back::{DerBack, Mark};
use super::error::AuthError;

/// DER of the Kerberos V5 mechanism OID 1.2.840.113554.1.2.2 (RFC 4121).
pub const OID_KRB5: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];
/// DER of Microsoft's legacy Kerberos OID 1.2.840.48018.1.2.2 (MS-KILE §3.1.5.10).
pub const OID_MS_KRB5: &[u8] = &[0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02];
/// DER of the SPNEGO OID 1.3.6.1.5.5.2 (RFC 4178).
pub const OID_SPNEGO: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x02];
/// DER of the NTLMSSP mechanism OID 1.3.6.1.4.1.311.2.2.10 (MS-NLMP).
pub const OID_NTLM: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a];

/// The NTLMSSP signature that starts every NTLM message (MS-NLMP §2.2.1).
pub const NTLMSSP: &[u8] = b"NTLMSSP\0";

/// RFC 4121 §4.1 token ID of an AP-REQ.
pub const TOK_AP_REQ: [u8; 2] = [0x01, 0x00];
/// RFC 4121 §4.1 token ID of an AP-REP.
pub const TOK_AP_REP: [u8; 2] = [0x02, 0x00];
/// RFC 4121 §4.1 token ID of a KRB-ERROR.
pub const TOK_KRB_ERROR: [u8; 2] = [0x03, 0x00];

/// Reads a DER length at `buf[pos..]`; returns (length, bytes consumed). Only definite lengths of
/// at most 4 length octets (GSS tokens are bounded far below that).
pub fn der_length(buf: &[u8], pos: usize) -> Result<(usize, usize), AuthError> {
    let first = *buf
        .get(pos)
        .ok_or_else(|| AuthError::malformed("gss", "length missing"))?;
    if first < 0x80 {
        return Ok((first as usize, 1));
    }
    let n = (first & 0x7f) as usize;
    if n == 0 || n > 4 {
        return Err(AuthError::malformed(
            "gss",
            format!("unsupported length form 0x{first:02x}"),
        ));
    }
    let bytes = buf
        .get(pos + 1..pos + 1 + n)
        .ok_or_else(|| AuthError::malformed("gss", "length octets truncated"))?;
    let mut len = 0usize;
    for b in bytes {
        len = (len << 8) | *b as usize;
    }
    Ok((len, 1 + n))
}

/// Splits an RFC 2743 §3.1 initial context token into (mechanism OID DER bytes, inner token).
pub fn unwrap_initial(token: &[u8]) -> Result<(&[u8], &[u8]), AuthError> {
    if token.first() != Some(&0x60) {
        return Err(AuthError::malformed(
            "gss",
            "initial context token must start with 0x60",
        ));
    }
    let (len, used) = der_length(token, 1)?;
    let body_start = 1 + used;
    let body = token
        .get(body_start..)
        .filter(|b| b.len() == len)
        .ok_or_else(|| {
            AuthError::malformed(
                "gss",
                format!("token length {len} does not match its {} bytes", token.len()),
            )
        })?;
    if body.first() != Some(&0x06) {
        return Err(AuthError::malformed("gss", "mechanism OID missing"));
    }
    let (oid_len, oid_used) = der_length(body, 1)?;
    let oid_start = 1 + oid_used;
    let oid = body
        .get(oid_start..oid_start + oid_len)
        .ok_or_else(|| AuthError::malformed("gss", "mechanism OID truncated"))?;
    Ok((oid, &body[oid_start + oid_len..]))
}

/// Frames `inner` as an initial context token for `oid` (RFC 2743 §3.1).
pub fn wrap_initial(oid: &[u8], inner: &[u8]) -> Vec<u8> {
    let mut w = DerBack::with_capacity(inner.len() + oid.len() + 8);
    let m = w.mark();
    w.prepend(inner);
    frame_initial(&mut w, oid, m);
    w.into_vec()
}

/// Frames what `w` holds since `mark` as an initial context token for `oid` (RFC 2743 §3.1).
pub fn frame_initial(w: &mut DerBack, oid: &[u8], mark: Mark) {
    w.tlv(0x06, oid);
    w.wrap(0x60, mark);
}

/// Frames a Kerberos message with the krb5 mechanism's token ID (RFC 4121 §4.1), e.g. the
/// AP-REP that answers a GSS or SPNEGO initiator.
pub fn wrap_krb5(oid: &[u8], tok_id: [u8; 2], msg: &[u8]) -> Vec<u8> {
    let mut w = DerBack::with_capacity(msg.len() + oid.len() + 10);
    let m = w.mark();
    w.prepend(msg);
    frame_krb5(&mut w, oid, tok_id, m);
    w.into_vec()
}

/// Frames the Kerberos message `w` holds since `mark` as [`wrap_krb5`] does.
pub fn frame_krb5(w: &mut DerBack, oid: &[u8], tok_id: [u8; 2], mark: Mark) {
    w.prepend(&tok_id);
    frame_initial(w, oid, mark);
}

/// Appends a DER definite length ([`super::der_back::definite_length`]).
pub fn push_der_length(out: &mut Vec<u8>, len: usize) {
    let mut length = [0u8; 9];
    out.extend_from_slice(super::der_back::definite_length(len, &mut length));
}

/// `tag`, the DER length of `contents`, `contents` (front to front: the tests' reference for the
/// back-to-front writer, `der_back.rs`, that kedge's own tokens are written with).
#[cfg(test)]
pub fn push_tlv(out: &mut Vec<u8>, tag: u8, contents: &[u8]) {
    out.push(tag);
    push_der_length(out, contents.len());
    out.extend_from_slice(contents);
}

/// `tag`, the DER length of `contents`, `contents`, as a buffer of its own.
#[cfg(test)]
pub fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(contents.len() + 6);
    push_tlv(&mut out, tag, contents);
    out
}

/// Whether `oid` is one of the two Kerberos mechanism OIDs.
pub fn is_krb5_oid(oid: &[u8]) -> bool {
    oid == OID_KRB5 || oid == OID_MS_KRB5
}

/// What a token looks like from its first bytes (cheap; no decoding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenShape {
    /// A raw NTLMSSP message.
    Ntlm,
    /// A GSS-framed token (SPNEGO or krb5; see [`unwrap_initial`]).
    Gss,
    /// A bare AP-REQ (`[APPLICATION 14]`).
    BareApReq,
    /// A bare SPNEGO NegTokenInit (`[0]`), as some clients send without the GSS frame.
    BareSpnegoInit,
    /// A SPNEGO NegTokenResp (`[1]`): a continuation, not an initial token.
    SpnegoResp,
    /// Anything else.
    Unknown,
}

/// Classifies a token by its first bytes.
pub fn shape(token: &[u8]) -> TokenShape {
    if token.starts_with(NTLMSSP) {
        return TokenShape::Ntlm;
    }
    match token.first() {
        Some(0x60) => TokenShape::Gss,
        Some(0x6e) => TokenShape::BareApReq,
        Some(0xa0) => TokenShape::BareSpnegoInit,
        Some(0xa1) => TokenShape::SpnegoResp,
        _ => TokenShape::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_then_unwrap_round_trips_long_tokens() {
        for len in [0usize, 1, 100, 127, 128, 300, 70_000] {
            let inner = vec![0xab; len];
            let t = wrap_krb5(OID_KRB5, TOK_AP_REQ, &inner);
            let (oid, rest) = unwrap_initial(&t).unwrap();
            assert_eq!(oid, OID_KRB5);
            assert_eq!(&rest[..2], &TOK_AP_REQ);
            assert_eq!(rest.len(), len + 2);
        }
    }

    #[test]
    fn two_byte_input_is_an_error_not_a_panic() {
        assert!(unwrap_initial(&[0x60, 0x82]).is_err());
        assert!(unwrap_initial(&[0x60]).is_err());
        assert!(unwrap_initial(&[0x60, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn length_mismatch_is_refused() {
        let mut t = wrap_krb5(OID_KRB5, TOK_AP_REQ, &[1, 2, 3]);
        t.push(0);
        assert!(unwrap_initial(&t).is_err());
    }

    #[test]
    fn shapes_are_recognised() {
        assert_eq!(shape(b"NTLMSSP\0\x01\0\0\0"), TokenShape::Ntlm);
        assert_eq!(shape(&[0x6e, 0x82]), TokenShape::BareApReq);
        assert_eq!(shape(&[0x60]), TokenShape::Gss);
        assert_eq!(shape(&[]), TokenShape::Unknown);
    }
}
