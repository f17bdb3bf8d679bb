//! The GSS authenticator checksum, type 0x8003 (RFC 4121 §4.1.1), and channel bindings
//! (RFC 2744 §3.11 `gss_channel_bindings_struct`, hashed with MD5 as RFC 4121 §4.1.1.2 says).

use md5::{Digest, Md5};

use super::error::AuthError;

/// Checksum type of the GSS authenticator checksum.
pub const CKSUM_GSS: i32 = 0x8003;

/// GSS_C_DELEG_FLAG.
pub const FLAG_DELEG: u32 = 0x01;
/// GSS_C_MUTUAL_FLAG.
pub const FLAG_MUTUAL: u32 = 0x02;
/// GSS_C_REPLAY_FLAG.
pub const FLAG_REPLAY: u32 = 0x04;
/// GSS_C_SEQUENCE_FLAG.
pub const FLAG_SEQUENCE: u32 = 0x08;
/// GSS_C_CONF_FLAG.
pub const FLAG_CONF: u32 = 0x10;
/// GSS_C_INTEG_FLAG.
pub const FLAG_INTEG: u32 = 0x20;
/// GSS_C_DCE_STYLE (MS-KILE §3.2.5.2; Microsoft RPC).
pub const FLAG_DCE_STYLE: u32 = 0x1000;

/// The decoded 0x8003 checksum value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GssChecksum {
    /// MD5 of the initiator's channel bindings, or zeros for none.
    pub bindings: [u8; 16],
    /// Context flags the initiator asked for.
    pub flags: u32,
    /// Whether a delegated credential (KRB-CRED) rides along.
    pub delegation: bool,
}

impl GssChecksum {
    /// Whether the initiator sent channel bindings at all (all-zero means none).
    pub fn has_bindings(&self) -> bool {
        self.bindings != [0u8; 16]
    }
}

/// Parses the checksum octets: Lgth (u32 LE, 16), Bnd (16), Flags (u32 LE), then DlgOpt/Dlgth/Deleg
/// when GSS_C_DELEG_FLAG is set, then optional extensions (ignored).
pub fn parse(value: &[u8]) -> Result<GssChecksum, AuthError> {
    let bad = |d: &str| AuthError::BadChecksum(format!("GSS checksum {d}"));
    if value.len() < 24 {
        return Err(bad(&format!("is {} bytes, needs at least 24", value.len())));
    }
    let lgth = u32::from_le_bytes([value[0], value[1], value[2], value[3]]);
    if lgth != 16 {
        return Err(bad(&format!("binding length {lgth}, expected 16")));
    }
    let mut bindings = [0u8; 16];
    bindings.copy_from_slice(&value[4..20]);
    let flags = u32::from_le_bytes([value[20], value[21], value[22], value[23]]);
    let mut delegation = false;
    if flags & FLAG_DELEG != 0 && value.len() > 24 {
        let rest = &value[24..];
        if rest.len() < 4 {
            return Err(bad("delegation header truncated"));
        }
        let dlgth = u16::from_le_bytes([rest[2], rest[3]]) as usize;
        if rest.len() < 4 + dlgth {
            return Err(bad("delegated credential truncated"));
        }
        delegation = true;
    }
    Ok(GssChecksum {
        bindings,
        flags,
        delegation,
    })
}

/// Builds a 0x8003 checksum value (no delegation), for kedge's bench client and tests.
pub fn build(bindings: [u8; 16], flags: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(24);
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&bindings);
    v.extend_from_slice(&(flags & !FLAG_DELEG).to_le_bytes());
    v
}

/// MD5 of a `gss_channel_bindings_struct` with no addresses and `application_data` (RFC 5929
/// `tls-server-end-point:` + certificate hash for TLS), as initiators put in `Bnd`.
pub fn bindings_hash(application_data: &[u8]) -> [u8; 16] {
    let mut h = Md5::new();
    h.update([0u8; 16]); // initiator addrtype+length, acceptor addrtype+length: all zero
    h.update((application_data.len() as u32).to_le_bytes());
    h.update(application_data);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_checksum_parses_back() {
        let c = parse(&build([7; 16], 0x103e)).unwrap();
        assert_eq!(c.flags, 0x103e);
        assert!(c.has_bindings());
        assert!(!c.delegation);
    }

    #[test]
    fn short_or_wrong_length_checksums_are_refused() {
        assert!(parse(&[0; 23]).is_err());
        let mut v = build([0; 16], 2);
        v[0] = 15;
        assert!(parse(&v).is_err());
    }

    #[test]
    fn truncated_delegation_is_refused() {
        let mut v = build([0; 16], 0);
        v[20] = FLAG_DELEG as u8;
        v.extend_from_slice(&[1, 0, 200, 0, 1, 2]);
        assert!(parse(&v).is_err());
    }
}
