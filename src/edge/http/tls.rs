//! TLS: the listener's rustls server (ALPN `http/1.1` only: Negotiate is connection-bound, which
//! HTTP/2 cannot carry) and its RFC 5929 `tls-server-end-point` channel binding. TLS towards
//! backends comes from the pool (`Pool::tls_for`).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use sha2::{Digest, Sha256, Sha384, Sha512};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// TLS set-up failures (at load time, never per connection).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A PEM file is malformed.
    #[error("{path}: {msg}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong with it.
        msg: String,
    },
    /// The PEM holds no certificate.
    #[error("{0}: no certificate found")]
    NoCertificate(String),
    /// The PEM holds no private key.
    #[error("{0}: no private key found")]
    NoKey(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The certificate could not be parsed far enough to find its signature algorithm.
    #[error("certificate: {0}")]
    BadCertificate(&'static str),
}

/// The listener's TLS: the acceptor and the channel binding of its certificate.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
    channel_binding: Arc<[u8]>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn parse_certs(pem: &[u8], origin: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = match CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>() {
        Ok(certs) => certs,
        Err(pem::Error::NoItemsFound) => Vec::new(),
        Err(e) => {
            return Err(TlsError::Pem {
                path: origin.into(),
                msg: e.to_string(),
            })
        }
    };
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(origin.into()));
    }
    Ok(certs)
}

impl ServerTls {
    /// Loads the PEM chain and key named by the listener's config.
    pub fn load(cfg: &TlsConfig) -> Result<Self, TlsError> {
        let chain = read(&cfg.cert)?;
        let key = read(&cfg.key)?;
        Self::from_pem_named(
            &chain,
            &key,
            &cfg.cert.display().to_string(),
            &cfg.key.display().to_string(),
        )
    }

    /// Builds from PEM bytes (leaf first, then intermediates; PKCS#8, PKCS#1 or SEC1 key).
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<Self, TlsError> {
        Self::from_pem_named(chain, key, "certificate", "key")
    }

    fn from_pem_named(chain: &[u8], key: &[u8], chain_name: &str, key_name: &str) -> Result<Self, TlsError> {
        let certs = parse_certs(chain, chain_name)?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| match e {
            pem::Error::NoItemsFound => TlsError::NoKey(key_name.into()),
            e => TlsError::Pem {
                path: key_name.into(),
                msg: e.to_string(),
            },
        })?;
        let channel_binding = tls_server_end_point(&certs[0])?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            channel_binding: channel_binding.into(),
        })
    }

    /// The acceptor.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// The channel-binding application data of this listener's certificate
    /// (`tls-server-end-point:` followed by the certificate hash).
    pub fn channel_binding(&self) -> &[u8] {
        &self.channel_binding
    }
}

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
    fn pem_problems_are_named_with_the_file() {
        let ck = rcgen::generate_simple_self_signed(vec!["kedge.test".into()]).expect("cert");
        let (chain, key) = (ck.cert.pem(), ck.key_pair.serialize_pem());
        assert!(ServerTls::from_pem(chain.as_bytes(), key.as_bytes()).is_ok());
        // Key and certificate swapped, or a file with neither.
        let e = ServerTls::from_pem_named(key.as_bytes(), key.as_bytes(), "a.pem", "a.key").unwrap_err();
        assert!(matches!(&e, TlsError::NoCertificate(p) if p == "a.pem"), "{e}");
        let e = ServerTls::from_pem_named(chain.as_bytes(), chain.as_bytes(), "a.pem", "a.key").unwrap_err();
        assert!(matches!(&e, TlsError::NoKey(p) if p == "a.key"), "{e}");
        let e = ServerTls::from_pem_named(b"", key.as_bytes(), "empty.pem", "a.key").unwrap_err();
        assert_eq!(e.to_string(), "empty.pem: no certificate found");
        // Broken base64 between the markers.
        let broken = "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n";
        let e = ServerTls::from_pem_named(broken.as_bytes(), key.as_bytes(), "bad.pem", "a.key").unwrap_err();
        assert!(
            matches!(&e, TlsError::Pem { path, .. } if path == "bad.pem"),
            "{e}"
        );
        assert!(e.to_string().starts_with("bad.pem: "), "{e}");
    }

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

    #[test]
    fn server_tls_loads_rcgen_pem() {
        let ck = rcgen::generate_simple_self_signed(vec!["kedge.test".into()]).expect("cert");
        let tls = ServerTls::from_pem(ck.cert.pem().as_bytes(), ck.key_pair.serialize_pem().as_bytes())
            .expect("tls");
        assert!(tls.channel_binding().starts_with(b"tls-server-end-point:"));
    }
}
