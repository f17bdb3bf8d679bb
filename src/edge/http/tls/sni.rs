//! Choosing a listener's certificate by the client's SNI name: an exact name first, then a
//! `*.domain` wildcard (one label, as RFC 6125 §6.4.3 allows), else the default certificate (the
//! first) — for clients without SNI and for names no certificate covers, so an old client still
//! gets the array's certificate rather than a failed handshake. Names the default shares with
//! another certificate go to the other one.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::certificate::LoadedCert;

/// The certificates of one listener, looked up by SNI name.
#[derive(Debug)]
pub struct CertSet {
    certs: Vec<LoadedCert>,
    exact: HashMap<String, usize>,
    wildcard: HashMap<String, usize>,
}

impl CertSet {
    /// Over `certs` (not empty), the first being the default. A name two certificates claim
    /// goes to the earlier of the others before the default: an Autodiscover certificate added
    /// beside an array certificate that also lists `autodiscover.` (a typical UCC certificate)
    /// serves Autodiscover.
    pub fn new(certs: Vec<LoadedCert>) -> Self {
        assert!(!certs.is_empty(), "a TLS listener has at least one certificate");
        let (mut exact, mut wildcard) = (HashMap::new(), HashMap::new());
        let order = (1..certs.len()).chain([0]);
        for (i, c) in order.map(|i| (i, &certs[i])) {
            for n in &c.names {
                match n.strip_prefix("*.") {
                    Some(domain) => wildcard.entry(domain.to_owned()).or_insert(i),
                    None => exact.entry(n.clone()).or_insert(i),
                };
            }
        }
        Self {
            certs,
            exact,
            wildcard,
        }
    }

    /// The certificate for a client that sent `sni`.
    pub fn pick(&self, sni: Option<&str>) -> &LoadedCert {
        let i = sni.and_then(|name| {
            let lower;
            let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
                lower = name.to_ascii_lowercase();
                lower.as_str()
            } else {
                name
            };
            let name = name.trim_end_matches('.');
            self.exact.get(name).or_else(|| {
                let (_, parent) = name.split_once('.')?;
                self.wildcard.get(parent)
            })
        });
        &self.certs[i.copied().unwrap_or(0)]
    }

    /// Every certificate, the default first.
    pub fn all(&self) -> &[LoadedCert] {
        &self.certs
    }
}

/// rustls' side: the set behind a listener's current `ServerConfig`.
#[derive(Debug)]
pub struct SniResolver(pub Arc<CertSet>);

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.pick(hello.server_name()).key.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(names: &[&str]) -> LoadedCert {
        let ck = rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("cert");
        LoadedCert::from_pem(
            ck.cert.pem().as_bytes(),
            ck.key_pair.serialize_pem().as_bytes(),
            &format!("{}.pem", names[0]),
            "k",
            &[],
            &rustls::crypto::ring::default_provider(),
        )
        .expect("load")
    }

    #[test]
    fn exact_names_then_one_label_wildcards_then_the_default() {
        let set = CertSet::new(vec![
            cert(&["mail.contoso.com"]),
            cert(&["autodiscover.contoso.com"]),
            cert(&["*.owa.contoso.com", "owa.contoso.com"]),
        ]);
        let label = |sni| set.pick(sni).label.clone();
        assert_eq!(
            label(Some("autodiscover.contoso.com")),
            "autodiscover.contoso.com"
        );
        assert_eq!(
            label(Some("AutoDiscover.Contoso.COM.")),
            "autodiscover.contoso.com"
        );
        assert_eq!(label(Some("owa.contoso.com")), "*.owa.contoso.com");
        assert_eq!(label(Some("eu.owa.contoso.com")), "*.owa.contoso.com");
        // A wildcard covers one label only.
        assert_eq!(label(Some("a.eu.owa.contoso.com")), "mail.contoso.com");
        assert_eq!(label(Some("unknown.example")), "mail.contoso.com");
        assert_eq!(label(None), "mail.contoso.com");
    }

    #[test]
    fn a_name_the_default_shares_goes_to_the_other_certificate_then_to_the_earlier() {
        let set = CertSet::new(vec![
            cert(&["mail.test", "shared.test", "autodiscover.test"]),
            cert(&["autodiscover.test", "shared.test"]),
            cert(&["shared.test"]),
        ]);
        assert_eq!(
            set.pick(Some("autodiscover.test")).origin,
            "autodiscover.test.pem"
        );
        assert_eq!(set.pick(Some("shared.test")).origin, "autodiscover.test.pem");
        assert_eq!(set.pick(Some("mail.test")).origin, "mail.test.pem");
    }
}
