//! The auth verifier at the end of a PDU: an 8-byte `sec_trailer` followed by `auth_length`
//! bytes of security-provider token (C706 13.2.6.1, MS-RPCE 2.2.2.11).
//!
//! ```text
//! auth_type u8 | auth_level u8 | auth_pad_length u8 | auth_reserved u8 | auth_context_id u32
//! auth_value [auth_length]          (the trailer starts at frag_length - auth_length - 8)
//! ```

use std::ops::Range;

use super::cursor::{Reader, Writer};
use super::error::RpcError;
use super::header::CommonHeader;

/// Size of the sec_trailer before the token (C706 13.2.6.1).
pub const SEC_TRAILER_LEN: usize = 8;

/// Largest `auth_pad_length`: the stub is padded to a 16-byte boundary at most (MS-RPCE 2.2.2.11).
pub const MAX_AUTH_PAD: usize = 15;

/// The security provider named by `auth_type` (C706 13.1.1, MS-RPCE 2.2.1.1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthType {
    /// RPC_C_AUTHN_NONE (0).
    None,
    /// RPC_C_AUTHN_GSS_NEGOTIATE (9): SPNEGO.
    Spnego,
    /// RPC_C_AUTHN_WINNT (10): NTLM.
    Ntlm,
    /// RPC_C_AUTHN_GSS_KERBEROS (16): Kerberos, DCE style.
    Krb5,
    /// Any other provider (RPC_C_AUTHN_NETLOGON 0x44, RPC_C_AUTHN_DEFAULT 0xff, …).
    Other(u8),
}

impl AuthType {
    /// The `auth_type` octet.
    pub fn code(self) -> u8 {
        match self {
            AuthType::None => 0,
            AuthType::Spnego => 9,
            AuthType::Ntlm => 10,
            AuthType::Krb5 => 16,
            AuthType::Other(n) => n,
        }
    }

    /// The provider named by an `auth_type` octet.
    pub fn from_code(n: u8) -> AuthType {
        match n {
            0 => AuthType::None,
            9 => AuthType::Spnego,
            10 => AuthType::Ntlm,
            16 => AuthType::Krb5,
            n => AuthType::Other(n),
        }
    }
}

/// The protection level named by `auth_level` (C706 13.1.2.1, MS-RPCE 2.2.1.1.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthLevel {
    /// RPC_C_AUTHN_LEVEL_DEFAULT (0).
    Default,
    /// RPC_C_AUTHN_LEVEL_NONE (1).
    None,
    /// RPC_C_AUTHN_LEVEL_CONNECT (2): what tools such as impacket use.
    Connect,
    /// RPC_C_AUTHN_LEVEL_CALL (3).
    Call,
    /// RPC_C_AUTHN_LEVEL_PKT (4).
    Pkt,
    /// RPC_C_AUTHN_LEVEL_PKT_INTEGRITY (5).
    PktIntegrity,
    /// RPC_C_AUTHN_LEVEL_PKT_PRIVACY (6): what Outlook uses.
    PktPrivacy,
    /// Any other value.
    Other(u8),
}

impl AuthLevel {
    /// The `auth_level` octet.
    pub fn code(self) -> u8 {
        match self {
            AuthLevel::Default => 0,
            AuthLevel::None => 1,
            AuthLevel::Connect => 2,
            AuthLevel::Call => 3,
            AuthLevel::Pkt => 4,
            AuthLevel::PktIntegrity => 5,
            AuthLevel::PktPrivacy => 6,
            AuthLevel::Other(n) => n,
        }
    }

    /// The level named by an `auth_level` octet.
    pub fn from_code(n: u8) -> AuthLevel {
        match n {
            0 => AuthLevel::Default,
            1 => AuthLevel::None,
            2 => AuthLevel::Connect,
            3 => AuthLevel::Call,
            4 => AuthLevel::Pkt,
            5 => AuthLevel::PktIntegrity,
            6 => AuthLevel::PktPrivacy,
            n => AuthLevel::Other(n),
        }
    }
}

/// A decoded auth verifier (C706 13.2.6.1, MS-RPCE 2.2.2.11). The token is not copied:
/// `token_range` indexes into the PDU bytes it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuthVerifier {
    /// `auth_type`.
    pub auth_type: AuthType,
    /// `auth_level`.
    pub auth_level: AuthLevel,
    /// `auth_pad_length`: pad bytes between the PDU body and the sec_trailer.
    pub auth_pad_length: u8,
    /// `auth_reserved` (0 from every client seen; kept for byte-identical re-encoding).
    pub auth_reserved: u8,
    /// `auth_context_id`: names the security context on the connection.
    pub auth_context_id: u32,
    /// Where the `auth_length` token bytes sit in the PDU.
    pub token_range: Range<usize>,
}

impl AuthVerifier {
    /// The token bytes, given the PDU this verifier was parsed from (`None` if `pdu` is not it).
    pub fn token<'a>(&self, pdu: &'a [u8]) -> Option<&'a [u8]> {
        pdu.get(self.token_range.clone())
    }
}

/// The auth verifier of any connection-oriented PDU (request, auth3, alter_context, …), or
/// `None` where `auth_length` is 0 (C706 13.2.6.1, MS-RPCE 2.2.2.11): the sec_trailer sits at
/// `frag_length - auth_length - 8`, after the header. `pdu` must hold `frag_length` bytes.
pub fn parse_auth_verifier(pdu: &[u8]) -> Result<Option<AuthVerifier>, RpcError> {
    let h = CommonHeader::parse(pdu)?;
    Ok(split_auth(pdu, &h)?.1)
}

/// Splits a PDU of at least `h.frag_length` bytes into its body end and auth verifier (C706
/// 13.2.6.1): returns where the body (stub, context list, …) ends — the sec_trailer offset, or
/// `frag_length` without one — and the verifier where `auth_length` is non-zero.
pub(crate) fn split_auth(pdu: &[u8], h: &CommonHeader) -> Result<(usize, Option<AuthVerifier>), RpcError> {
    let frag = usize::from(h.frag_length);
    if h.auth_length == 0 {
        return Ok((frag, None));
    }
    let auth_length = usize::from(h.auth_length);
    let inconsistent = RpcError::AuthLengthInconsistent {
        auth_length,
        frag_length: frag,
    };
    let trailer = frag
        .checked_sub(auth_length + SEC_TRAILER_LEN)
        .filter(|&t| t >= super::header::HEADER_LEN)
        .ok_or(inconsistent)?;
    let mut r = Reader::new(
        pdu.get(..frag).ok_or(RpcError::Truncated {
            need: frag,
            have: pdu.len(),
        })?,
        trailer,
        h.drep.endian()?,
    );
    let auth_type = AuthType::from_code(r.u8()?);
    let auth_level = AuthLevel::from_code(r.u8()?);
    let auth_pad_length = r.u8()?;
    let auth_reserved = r.u8()?;
    let auth_context_id = r.u32()?;
    if usize::from(auth_pad_length) > MAX_AUTH_PAD {
        return Err(RpcError::BadAuthPad {
            pad: auth_pad_length.into(),
            room: MAX_AUTH_PAD,
        });
    }
    let verifier = AuthVerifier {
        auth_type,
        auth_level,
        auth_pad_length,
        auth_reserved,
        auth_context_id,
        token_range: r.pos()..frag,
    };
    Ok((trailer, Some(verifier)))
}

/// Appends `pad` zero bytes, the sec_trailer and the token; returns the token's range
/// (C706 13.2.6.1).
pub(crate) fn write_auth(w: &mut Writer, v: &AuthVerifier, token: &[u8]) -> Range<usize> {
    w.bytes(&[0u8; MAX_AUTH_PAD][..usize::from(v.auth_pad_length).min(MAX_AUTH_PAD)]);
    w.u8(v.auth_type.code());
    w.u8(v.auth_level.code());
    w.u8(v.auth_pad_length);
    w.u8(v.auth_reserved);
    w.u32(v.auth_context_id);
    let start = w.out.len();
    w.bytes(token);
    start..w.out.len()
}

/// The pad needed to bring `len` to a 4-byte boundary (C706 13.2.6.1: the sec_trailer is
/// 4-byte aligned).
pub(crate) fn pad4(len: usize) -> u8 {
    ((4 - len % 4) % 4) as u8
}
