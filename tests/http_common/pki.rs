//! A test CA and a server certificate for `kedge.test`, `localhost` and 127.0.0.1 (rcgen).

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};

/// PEMs of a CA and a leaf it signed.
pub struct TestPki {
    /// The CA certificate.
    pub ca_pem: String,
    /// The leaf certificate.
    pub cert_pem: String,
    /// The leaf's key.
    pub key_pem: String,
    /// The leaf certificate, DER.
    pub cert_der: Vec<u8>,
}

/// A fresh CA and leaf.
pub fn generate() -> TestPki {
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "kedge test CA");
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let key = KeyPair::generate().expect("leaf key");
    let mut params = CertificateParams::new(vec![
        "kedge.test".to_string(),
        "localhost".to_string(),
        "outlook.contoso.com".to_string(),
    ])
    .expect("params");
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().expect("ip")));
    params.distinguished_name.push(DnType::CommonName, "kedge.test");
    let cert = params.signed_by(&key, &ca, &ca_key).expect("leaf");
    TestPki {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_der: cert.der().to_vec(),
    }
}
