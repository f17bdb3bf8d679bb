//! One certificate of a listener: its PEM chain and key parsed and checked (the key must be the
//! leaf's), the SNI names it answers, its validity period and the RFC 5929 channel binding of
//! its leaf.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use x509_parser::extensions::GeneralName;

use super::channel_binding::tls_server_end_point;
use super::TlsError;

/// A certificate ready to serve.
#[derive(Debug)]
pub struct LoadedCert {
    /// Chain and signing key, as rustls serves them.
    pub key: Arc<CertifiedKey>,
    /// Lowercase SNI names it answers: exact names and `*.domain` wildcards.
    pub names: Vec<String>,
    /// Its first name (the `name` label of the expiry gauge), else the file name.
    pub label: String,
    /// Where it came from (for logs and errors).
    pub origin: String,
    /// notBefore, unix seconds.
    pub not_before: i64,
    /// notAfter, unix seconds.
    pub not_after: i64,
    /// `tls-server-end-point:` + hash of the leaf.
    pub channel_binding: Arc<[u8]>,
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

/// The leaf's DNS names (subjectAltName; the subject CN when there is none), notBefore and
/// notAfter.
fn leaf_facts(der: &[u8], origin: &str) -> Result<(Vec<String>, i64, i64), TlsError> {
    let bad = |msg: String| TlsError::Pem {
        path: origin.into(),
        msg,
    };
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| bad(format!("not an X.509 certificate: {e}")))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(d) = n {
                names.push(d.to_ascii_lowercase());
            }
        }
    }
    if names.is_empty() {
        if let Some(cn) = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
        {
            names.push(cn.to_ascii_lowercase());
        }
    }
    let v = cert.validity();
    Ok((names, v.not_before.timestamp(), v.not_after.timestamp()))
}

impl LoadedCert {
    /// Builds from PEM bytes (leaf first, then intermediates; PKCS#8, PKCS#1 or SEC1 key).
    /// `names`: the configured SNI names, or empty for the certificate's own.
    pub fn from_pem(
        chain: &[u8],
        key: &[u8],
        chain_name: &str,
        key_name: &str,
        names: &[String],
        provider: &CryptoProvider,
    ) -> Result<Self, TlsError> {
        let certs = parse_certs(chain, chain_name)?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| match e {
            pem::Error::NoItemsFound => TlsError::NoKey(key_name.into()),
            e => TlsError::Pem {
                path: key_name.into(),
                msg: e.to_string(),
            },
        })?;
        let channel_binding = tls_server_end_point(&certs[0])?;
        let (own, not_before, not_after) = leaf_facts(&certs[0], chain_name)?;
        let key = CertifiedKey::from_der(certs, key, provider).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
                cert: chain_name.into(),
                key: key_name.into(),
            },
            e => TlsError::Key {
                path: key_name.into(),
                msg: e.to_string(),
            },
        })?;
        let names: Vec<String> = if names.is_empty() {
            own
        } else {
            names.iter().map(|n| n.to_ascii_lowercase()).collect()
        };
        let label = names.first().cloned().unwrap_or_else(|| {
            std::path::Path::new(chain_name)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| chain_name.to_owned())
        });
        Ok(Self {
            key: Arc::new(key),
            names,
            label,
            origin: chain_name.into(),
            not_before,
            not_after,
            channel_binding: channel_binding.into(),
        })
    }

    /// Why the certificate is not valid at `now` (unix seconds), if it is not.
    pub fn validity_problem(&self, now: i64) -> Option<TlsError> {
        if now > self.not_after {
            Some(TlsError::Expired {
                path: self.origin.clone(),
                not_after: rfc3339(self.not_after),
            })
        } else if now < self.not_before {
            Some(TlsError::NotYetValid {
                path: self.origin.clone(),
                not_before: rfc3339(self.not_before),
            })
        } else {
            None
        }
    }
}

/// A unix time as an RFC 3339 UTC string.
pub fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> CryptoProvider {
        rustls::crypto::ring::default_provider()
    }

    fn load(chain: &[u8], key: &[u8], c: &str, k: &str) -> Result<LoadedCert, TlsError> {
        LoadedCert::from_pem(chain, key, c, k, &[], &provider())
    }

    #[test]
    fn pem_problems_are_named_with_the_file() {
        let ck = rcgen::generate_simple_self_signed(vec!["kedge.test".into()]).expect("cert");
        let (chain, key) = (ck.cert.pem(), ck.key_pair.serialize_pem());
        assert!(load(chain.as_bytes(), key.as_bytes(), "a.pem", "a.key").is_ok());
        // Key and certificate swapped, or a file with neither.
        let e = load(key.as_bytes(), key.as_bytes(), "a.pem", "a.key").unwrap_err();
        assert!(matches!(&e, TlsError::NoCertificate(p) if p == "a.pem"), "{e}");
        let e = load(chain.as_bytes(), chain.as_bytes(), "a.pem", "a.key").unwrap_err();
        assert!(matches!(&e, TlsError::NoKey(p) if p == "a.key"), "{e}");
        let e = load(b"", key.as_bytes(), "empty.pem", "a.key").unwrap_err();
        assert_eq!(e.to_string(), "empty.pem: no certificate found");
        // Broken base64 between the markers.
        let broken = "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n";
        let e = load(broken.as_bytes(), key.as_bytes(), "bad.pem", "a.key").unwrap_err();
        assert!(
            matches!(&e, TlsError::Pem { path, .. } if path == "bad.pem"),
            "{e}"
        );
        assert!(e.to_string().starts_with("bad.pem: "), "{e}");
    }

    #[test]
    fn a_key_of_another_certificate_is_a_mismatch_naming_both_files() {
        let a = rcgen::generate_simple_self_signed(vec!["a.test".into()]).expect("cert");
        let b = rcgen::generate_simple_self_signed(vec!["b.test".into()]).expect("cert");
        let e = load(
            a.cert.pem().as_bytes(),
            b.key_pair.serialize_pem().as_bytes(),
            "a.pem",
            "b.key",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "a.pem and b.key: the private key is not the certificate's"
        );
    }

    #[test]
    fn names_come_from_the_san_unless_configured_and_validity_from_the_certificate() {
        let mut params =
            rcgen::CertificateParams::new(vec!["Mail.Contoso.com".into(), "*.contoso.com".into()])
                .expect("params");
        params.not_before = rcgen::date_time_ymd(2026, 1, 1);
        params.not_after = rcgen::date_time_ymd(2027, 1, 1);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let (chain, k) = (cert.pem(), key.serialize_pem());
        let c = load(chain.as_bytes(), k.as_bytes(), "m.pem", "m.key").expect("load");
        assert_eq!(c.names, ["mail.contoso.com", "*.contoso.com"]);
        assert_eq!(c.label, "mail.contoso.com");
        assert_eq!(c.not_after, 1_798_761_600); // 2027-01-01T00:00:00Z
        assert!(c.validity_problem(1_790_000_000).is_none());
        let e = c.validity_problem(1_798_761_601).expect("expired");
        assert_eq!(
            e.to_string(),
            "m.pem: certificate expired at 2027-01-01T00:00:00Z"
        );
        assert!(matches!(
            c.validity_problem(1_700_000_000),
            Some(TlsError::NotYetValid { .. })
        ));
        let named = LoadedCert::from_pem(
            chain.as_bytes(),
            k.as_bytes(),
            "m.pem",
            "m.key",
            &["Autodiscover.Contoso.com".into()],
            &provider(),
        )
        .expect("load");
        assert_eq!(named.names, ["autodiscover.contoso.com"]);
    }
}
