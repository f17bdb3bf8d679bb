//! `PAC_SIGNATURE_DATA` (MS-PAC 2.8): the server (type 6) and KDC (type 7) signatures, and the
//! checksum computations of MS-PAC 2.8.1–2.8.2.

use crate::krb::crypto::{self, Key};

use super::PacError;

/// Key usage 17, `KERB_NON_KERB_CKSUM_SALT` (MS-PAC 2.8; RFC 4120 7.5.1 "reserved for Microsoft").
pub const KERB_NON_KERB_CKSUM_SALT: u32 = 17;

/// HMAC-MD5 (RFC 4757), the rc4-hmac keyed checksum type.
pub const CKSUMTYPE_HMAC_MD5: i32 = -138;
/// hmac-sha1-96-aes128 (RFC 3962).
pub const CKSUMTYPE_HMAC_SHA1_96_AES128: i32 = 15;
/// hmac-sha1-96-aes256 (RFC 3962).
pub const CKSUMTYPE_HMAC_SHA1_96_AES256: i32 = 16;
/// hmac-sha256-128-aes128 (RFC 8009).
pub const CKSUMTYPE_HMAC_SHA256_128_AES128: i32 = 19;
/// hmac-sha384-192-aes256 (RFC 8009).
pub const CKSUMTYPE_HMAC_SHA384_192_AES256: i32 = 20;

const NAME: &str = "PAC_SIGNATURE_DATA";

/// The Signature length of a keyed checksum type (MS-PAC 2.8: 12 for the AES types, 16 for
/// HMAC-MD5; RFC 8009 gives 16 and 24), `None` for a type kedge does not know.
pub fn checksum_len(cksumtype: i32) -> Option<usize> {
    match cksumtype {
        CKSUMTYPE_HMAC_SHA1_96_AES128 | CKSUMTYPE_HMAC_SHA1_96_AES256 => Some(12),
        CKSUMTYPE_HMAC_MD5 | CKSUMTYPE_HMAC_SHA256_128_AES128 => Some(16),
        CKSUMTYPE_HMAC_SHA384_192_AES256 => Some(24),
        _ => None,
    }
}

/// A decoded `PAC_SIGNATURE_DATA` (MS-PAC 2.8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureData {
    /// `SignatureType`: the checksum type.
    pub signature_type: i32,
    /// `Signature`: its length follows from the type; for an unknown type, everything after it.
    pub signature: Vec<u8>,
    /// `RODCIdentifier` (KDC signatures of read-only DCs only): the key version number of the
    /// RODC's krbtgt account.
    pub rodc_identifier: Option<u16>,
}

/// Decodes a `PAC_SIGNATURE_DATA` (MS-PAC 2.8). A 2-byte trailer after a known-length
/// Signature is the `RODCIdentifier`.
pub(crate) fn parse(buf: &[u8]) -> Result<SignatureData, PacError> {
    let head = buf
        .get(..4)
        .ok_or(PacError::malformed(NAME, "shorter than 4 bytes"))?;
    let signature_type = i32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let rest = buf.get(4..).unwrap_or_default();
    let (signature, rodc_identifier) = match checksum_len(signature_type) {
        Some(len) => {
            let sig = rest
                .get(..len)
                .ok_or(PacError::malformed(NAME, "Signature shorter than its type"))?;
            let rodc = rest.get(len..len + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
            (sig.to_vec(), rodc)
        }
        None => (rest.to_vec(), None),
    };
    Ok(SignatureData {
        signature_type,
        signature,
        rodc_identifier,
    })
}

/// The checksum type `key` must sign with; kedge refuses any other (a PAC whose server
/// signature claims a weaker or foreign type than the service key's enctype is forged or broken).
pub(crate) fn expected_type(key: &Key) -> i32 {
    key.etype().checksum_type()
}

/// Computes a PAC signature with `key`, key usage 17 (MS-PAC 2.8.1, 2.8.2).
pub(crate) fn compute(key: &Key, data: &[u8]) -> Result<Vec<u8>, PacError> {
    Ok(crypto::checksum(
        key,
        expected_type(key),
        KERB_NON_KERB_CKSUM_SALT,
        data,
    )?)
}

/// Verifies `sig` over `data` with `key` (MS-PAC 2.8.1 server, 2.8.2 KDC): the type must be the
/// key's, the checksum must match in constant time.
pub(crate) fn verify(
    which: &'static str,
    key: &Key,
    sig: &SignatureData,
    data: &[u8],
) -> Result<(), PacError> {
    let want = expected_type(key);
    if sig.signature_type != want {
        return Err(PacError::ChecksumTypeMismatch {
            which,
            got: sig.signature_type,
            want,
        });
    }
    match crypto::verify_checksum(key, want, KERB_NON_KERB_CKSUM_SALT, data, &sig.signature) {
        Ok(()) => Ok(()),
        Err(crypto::CryptoError::Integrity) => Err(PacError::BadSignature(which)),
        Err(e) => Err(PacError::Crypto(e)),
    }
}

/// Like [`verify`], with the service key's usage-17 keys already derived (the acceptor caches
/// them per key so the hot path derives nothing).
pub(crate) fn verify_with(
    which: &'static str,
    keys: &crypto::UsageKeys,
    sig: &SignatureData,
    data: &[u8],
) -> Result<(), PacError> {
    let want = keys.etype().checksum_type();
    if sig.signature_type != want {
        return Err(PacError::ChecksumTypeMismatch {
            which,
            got: sig.signature_type,
            want,
        });
    }
    let got = keys.checksum(data);
    if got.len() == sig.signature.len()
        && bool::from(subtle::ConstantTimeEq::ct_eq(got.as_slice(), &sig.signature[..]))
    {
        Ok(())
    } else {
        Err(PacError::BadSignature(which))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_with_rodc_identifier_is_split() {
        let mut buf = CKSUMTYPE_HMAC_MD5.to_le_bytes().to_vec();
        buf.extend_from_slice(&[0xab; 16]);
        buf.extend_from_slice(&7u16.to_le_bytes());
        let sig = parse(&buf).unwrap();
        assert_eq!(sig.signature, [0xab; 16]);
        assert_eq!(sig.rodc_identifier, Some(7));
    }

    #[test]
    fn signature_shorter_than_its_type_is_refused() {
        let mut buf = CKSUMTYPE_HMAC_SHA1_96_AES256.to_le_bytes().to_vec();
        buf.extend_from_slice(&[0; 11]);
        assert!(parse(&buf).is_err());
        assert!(parse(&buf[..3]).is_err());
    }

    #[test]
    fn unknown_signature_type_keeps_the_rest() {
        let mut buf = 99i32.to_le_bytes().to_vec();
        buf.extend_from_slice(&[1, 2, 3]);
        assert_eq!(parse(&buf).unwrap().signature, [1, 2, 3]);
    }
}
