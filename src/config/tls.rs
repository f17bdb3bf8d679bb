//! `[http.tls]`: the listener's certificates (one, or several chosen by SNI) and how often their
//! files are polled for a reload.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// TLS server settings: one certificate (`cert`/`key`), or several chosen by SNI
/// (`[[http.tls.certificates]]`), reloaded on SIGHUP and when their files change.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain of the default certificate (clients without SNI, or naming a host
    /// no certificate covers). Without it, the first of `certificates` is the default.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// More certificates, chosen by the client's SNI name.
    #[serde(default)]
    pub certificates: Vec<TlsCertificateConfig>,
    /// How often the files are re-read when no file event came (lost events, filesystems
    /// without inotify), seconds; default 60.
    #[serde(
        default = "default_tls_poll_secs",
        deserialize_with = "crate::duration_field::secs"
    )]
    pub poll_secs: u64,
}

fn default_tls_poll_secs() -> u64 {
    60
}

/// One certificate of a TLS listener.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsCertificateConfig {
    /// PEM certificate chain (leaf first).
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// SNI names this certificate answers (exact, or `*.example.com`); default: the DNS names
    /// of its subjectAltName.
    #[serde(default)]
    pub names: Vec<String>,
}

impl TlsConfig {
    /// Every certificate in order, the default first.
    pub fn all_certificates(&self) -> Vec<TlsCertificateConfig> {
        let mut v = Vec::new();
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            v.push(TlsCertificateConfig {
                cert: cert.clone(),
                key: key.clone(),
                names: Vec::new(),
            });
        }
        v.extend(self.certificates.iter().cloned());
        v
    }

    pub(super) fn validate(&self, path: &str, p: &mut Vec<String>) {
        match (&self.cert, &self.key) {
            (Some(_), None) => p.push(format!("{path}.key: cert is set but key is not")),
            (None, Some(_)) => p.push(format!("{path}.cert: key is set but cert is not")),
            (None, None) if self.certificates.is_empty() => p.push(format!(
                "{path}: no certificate (set cert and key, or [[{path}.certificates]])"
            )),
            _ => {}
        }
        if !(1..=86_400).contains(&self.poll_secs) {
            p.push(format!(
                "{path}.poll_secs: {} is not between 1 and 86400",
                self.poll_secs
            ));
        }
        for (i, c) in self.certificates.iter().enumerate() {
            for (j, n) in c.names.iter().enumerate() {
                let bare = n.strip_prefix("*.").unwrap_or(n);
                if bare.is_empty() || bare.contains(['*', ' ', '/', ':']) || !bare.contains('.') {
                    p.push(format!(
                        "{path}.certificates[{i}].names[{j}]: {n:?} is not a host name (or *.domain)"
                    ));
                }
            }
        }
    }
}
