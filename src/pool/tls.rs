//! TLS towards the members of a pool: a rustls client config trusting only the configured CA.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

use super::config::BackendTlsConfig;

/// Why a pool's TLS settings could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file could not be read.
    #[error("tls.ca {path}: {source}")]
    Read { path: String, source: std::io::Error },
    /// The CA file holds no usable certificate.
    #[error("tls.ca {path}: {msg}")]
    Certs { path: String, msg: String },
    /// The server name is neither a DNS name nor an IP address.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
    /// rustls refused the configuration.
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A pool's TLS client settings.
#[derive(Debug)]
pub struct BackendTls {
    /// The client config (ALPN `http/1.1`: Negotiate is connection-bound).
    pub config: Arc<ClientConfig>,
    /// The configured SNI, if any (else each member's own host).
    pub sni: Option<ServerName<'static>>,
}

impl BackendTls {
    /// Loads the CA PEM and builds the client config.
    pub fn load(cfg: &BackendTlsConfig) -> Result<Self, TlsError> {
        let pem = std::fs::read(&cfg.ca).map_err(|source| TlsError::Read {
            path: cfg.ca.clone(),
            source,
        })?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| TlsError::Certs {
                path: cfg.ca.clone(),
                msg: e.to_string(),
            })?;
            roots.add(cert).map_err(|e| TlsError::Certs {
                path: cfg.ca.clone(),
                msg: e.to_string(),
            })?;
        }
        if roots.is_empty() {
            return Err(TlsError::Certs {
                path: cfg.ca.clone(),
                msg: "no certificate found".into(),
            });
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let sni = cfg.sni.as_deref().map(server_name).transpose()?;
        Ok(Self {
            config: Arc::new(config),
            sni,
        })
    }

    /// The name to send and verify for a member at `host`.
    pub fn name_for(&self, host: &str) -> Result<ServerName<'static>, TlsError> {
        match &self.sni {
            Some(n) => Ok(n.clone()),
            None => server_name(host),
        }
    }
}

/// Parses a DNS name or IP address as a TLS server name.
pub fn server_name(s: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(s.to_owned()).map_err(|_| TlsError::ServerName(s.into()))
}
