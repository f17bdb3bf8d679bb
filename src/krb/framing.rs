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
