//! RFC 5929 `tls-server-end-point` channel binding of a server certificate: what a client
//! hashes into its Kerberos authenticator (Extended Protection) and kedge compares.

use sha2::{Digest, Sha256, Sha384, Sha512};

use super::TlsError;

/// RFC 5929 §4 `tls-server-end-point` application data for a server certificate (DER):
/// `tls-server-end-point:` + hash of the certificate, where the hash is the one of the
/// certificate's signature algorithm, SHA-256 when that is MD5 or SHA-1 (§4.1). Algorithms
/// without a single hash (Ed25519) get SHA-256, as Windows does for unknown algorithms.
pub fn tls_server_end_point(cert_der: &[u8]) -> Result<Vec<u8>, TlsError> {
    let mut out = b"tls-server-end-point:".to_vec();
    match signature_hash(cert_der)? {
        Hash::Sha384 => out.extend_from_slice(&Sha384::digest(cert_der)),
        Hash::Sha512 => out.extend_from_slice(&Sha512::digest(cert_der)),
        Hash::Sha256 => out.extend_from_slice(&Sha256::digest(cert_der)),
    }
    Ok(out)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

// OID contents (DER, without tag and length).
const SHA384_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c];
const SHA512_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
const RSASSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
const ECDSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
const ECDSA_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
const SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
const SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];

/// Splits one DER TLV off `input`: (tag, contents, rest).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The hash RFC 5929 picks for a certificate, from its outer `signatureAlgorithm`.
fn signature_hash(cert_der: &[u8]) -> Result<Hash, TlsError> {
    const BAD: TlsError = TlsError::BadCertificate("not a DER X.509 certificate");
    let (_, cert, _) = tlv(cert_der).filter(|t| t.0 == 0x30).ok_or(BAD)?;
    let (_, _tbs, rest) = tlv(cert).ok_or(BAD)?;
    let (_, alg, _) = tlv(rest).filter(|t| t.0 == 0x30).ok_or(BAD)?;
    let (_, oid, params) = tlv(alg).filter(|t| t.0 == 0x06).ok_or(BAD)?;
    Ok(match oid {
        SHA384_WITH_RSA | ECDSA_SHA384 => Hash::Sha384,
        SHA512_WITH_RSA | ECDSA_SHA512 => Hash::Sha512,
        RSASSA_PSS => pss_hash(params).unwrap_or(Hash::Sha256),
        _ => Hash::Sha256,
    })
}

/// RSASSA-PSS-params `[0] hashAlgorithm` (RFC 4055); absent means SHA-1, hence SHA-256.
fn pss_hash(params: &[u8]) -> Option<Hash> {
    let (_, seq, _) = tlv(params).filter(|t| t.0 == 0x30)?;
    let (_, explicit, _) = tlv(seq).filter(|t| t.0 == 0xa0)?;
    let (_, alg, _) = tlv(explicit).filter(|t| t.0 == 0x30)?;
    let (_, oid, _) = tlv(alg).filter(|t| t.0 == 0x06)?;
    Some(match oid {
        SHA384 => Hash::Sha384,
        SHA512 => Hash::Sha512,
        _ => Hash::Sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_binding_of_an_ecdsa_sha256_certificate_is_its_sha256() {
        let ck = rcgen::generate_simple_self_signed(vec!["kedge.test".into()]).expect("cert");
        let der = ck.cert.der().to_vec();
        let cb = tls_server_end_point(&der).expect("cb");
        assert_eq!(&cb[..21], b"tls-server-end-point:");
        assert_eq!(&cb[21..], Sha256::digest(&der).as_slice());
    }

    #[test]
    fn channel_binding_of_an_ecdsa_sha384_certificate_is_its_sha384() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("key");
        let cert = rcgen::CertificateParams::new(vec!["kedge.test".into()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let cb = tls_server_end_point(cert.der()).expect("cb");
        assert_eq!(&cb[21..], Sha384::digest(cert.der()).as_slice());
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(tls_server_end_point(&[0x30, 0x82]).is_err());
        assert!(tls_server_end_point(&[]).is_err());
    }
}
