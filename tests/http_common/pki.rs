//! A test CA and server certificates it signs (rcgen): by default for `kedge.test`, `localhost`,
//! `outlook.contoso.com` and 127.0.0.1.

use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, SanType};

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

/// A CA that signs as many leaves as a test needs.
pub struct TestCa {
    cert: Certificate,
    key: KeyPair,
}

impl TestCa {
    /// A fresh CA.
    pub fn new() -> Self {
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "kedge test CA");
        let cert = params.self_signed(&key).expect("ca");
        Self { cert, key }
    }

    /// A leaf for `names` (DNS SANs; the first is also the CN), valid from 2020 to 2100.
    pub fn leaf(&self, names: &[&str]) -> TestPki {
        self.leaf_valid(names, (2020, 1, 1), (2100, 1, 1))
    }

    /// A leaf for `names` valid from `not_before` to `not_after` (year, month, day; UTC midnight).
    pub fn leaf_valid(&self, names: &[&str], not_before: (i32, u8, u8), not_after: (i32, u8, u8)) -> TestPki {
        let key = KeyPair::generate().expect("leaf key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("params");
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        self.sign(params, key)
    }

    fn sign(&self, params: CertificateParams, key: KeyPair) -> TestPki {
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("leaf");
        TestPki {
            ca_pem: self.cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
        }
    }
}

/// A fresh CA and leaf.
pub fn generate() -> TestPki {
    let ca = TestCa::new();
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
    ca.sign(params, key)
}
