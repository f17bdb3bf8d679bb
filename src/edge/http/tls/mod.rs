//! TLS: the listener's rustls server (ALPN `http/1.1` only: Negotiate is connection-bound, which
//! HTTP/2 cannot carry), several certificates chosen by SNI ([`sni`]), reloaded on SIGHUP and
//! when their files change (`reload`), and the RFC 5929 `tls-server-end-point` channel binding
//! of the certificate a connection got ([`channel_binding`]). TLS towards backends comes from the
//! pool (`Pool::tls_for`).
//!
//! A listener's certificates are swapped whole: each connection takes the current
//! [`Snapshot`] once, and its handshake and its channel binding both come from that snapshot,
//! so a reload in between can never pair one certificate with another's binding.

pub mod certificate;
pub mod channel_binding;
mod handshake;
mod reload;
pub mod sni;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::config::{TlsCertificateConfig, TlsConfig};
use certificate::LoadedCert;
use sni::{CertSet, SniResolver};

pub use channel_binding::tls_server_end_point;
pub use handshake::HandshakeFailure;

/// Why certificates could not be loaded (at start, or a reload that keeps the old ones).
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
    /// The private key cannot be used.
    #[error("{path}: {msg}")]
    Key {
        /// The key file.
        path: String,
        /// Why.
        msg: String,
    },
    /// The key is not the certificate's.
    #[error("{cert} and {key}: the private key is not the certificate's")]
    KeyMismatch {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
    },
    /// The certificate's notAfter has passed.
    #[error("{path}: certificate expired at {not_after}")]
    Expired {
        /// The certificate file.
        path: String,
        /// notAfter, RFC 3339.
        not_after: String,
    },
    /// The certificate's notBefore is still ahead.
    #[error("{path}: certificate is not valid before {not_before}")]
    NotYetValid {
        /// The certificate file.
        path: String,
        /// notBefore, RFC 3339.
        not_before: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The certificate could not be parsed far enough to find its signature algorithm.
    #[error("certificate: {0}")]
    BadCertificate(&'static str),
}

/// What one connection uses: the acceptor of the certificates current when it arrived, and
/// those certificates (for its channel binding).
pub struct Snapshot {
    acceptor: TlsAcceptor,
    certs: Arc<CertSet>,
}

impl Snapshot {
    /// The acceptor.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// The channel binding of the certificate a client that sent `sni` was served.
    pub fn channel_binding_for(&self, sni: Option<&str>) -> Arc<[u8]> {
        self.certs.pick(sni).channel_binding.clone()
    }

    /// The certificates, the default first.
    pub fn certificates(&self) -> &[LoadedCert] {
        self.certs.all()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn snapshot(certs: Vec<LoadedCert>, provider: &Arc<CryptoProvider>) -> Result<Snapshot, TlsError> {
    let certs = Arc::new(CertSet::new(certs));
    let mut config = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver(certs.clone())));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Snapshot {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        certs,
    })
}

/// A listener's TLS: the current [`Snapshot`], swapped whole by a reload. Cheap to clone.
#[derive(Clone)]
pub struct ServerTls {
    inner: Arc<Inner>,
}

struct Inner {
    listener: String,
    /// The files (empty when built from PEM bytes: nothing to reload).
    sources: Vec<TlsCertificateConfig>,
    poll: Duration,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<Snapshot>,
    state: Mutex<reload::State>,
    /// The certificate labels whose expiry was last published.
    published: Mutex<Vec<String>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("listener", &self.inner.listener)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Loads every certificate of `listener`'s config (an error names the file and the
    /// problem: kedge does not start without them) and publishes their expiry.
    pub fn load(listener: &str, cfg: &TlsConfig) -> Result<Self, TlsError> {
        let sources = cfg.all_certificates();
        let provider = provider();
        let files = reload::read_all(&sources)?;
        let certs = reload::parse_all(&sources, &files, &provider)?;
        let tls = Self::build(listener, sources, cfg.poll_secs, provider, certs)?;
        tls.lock().loaded = Some(files.digest());
        crate::observe::tls_reloads_known(listener);
        tls.published(SystemTime::now());
        Ok(tls)
    }

    /// From PEM bytes, one certificate (leaf first, then intermediates; PKCS#8, PKCS#1 or SEC1
    /// key), without files to reload.
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<Self, TlsError> {
        let provider = provider();
        let cert = LoadedCert::from_pem(chain, key, "certificate", "key", &[], &provider)?;
        Self::build("tls", Vec::new(), 60, provider, vec![cert])
    }

    fn build(
        listener: &str,
        sources: Vec<TlsCertificateConfig>,
        poll_secs: u64,
        provider: Arc<CryptoProvider>,
        certs: Vec<LoadedCert>,
    ) -> Result<Self, TlsError> {
        let current = ArcSwap::from_pointee(snapshot(certs, &provider)?);
        Ok(Self {
            inner: Arc::new(Inner {
                listener: listener.to_owned(),
                sources,
                poll: Duration::from_secs(poll_secs.max(1)),
                provider,
                current,
                state: Mutex::new(reload::State::default()),
                published: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The certificates a new connection gets now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.current.load_full()
    }

    /// The channel binding of the default certificate.
    pub fn channel_binding(&self) -> Arc<[u8]> {
        self.snapshot().channel_binding_for(None)
    }

    /// The listener's name.
    pub fn listener(&self) -> &str {
        &self.inner.listener
    }

    /// The certificate files, for the file watch.
    fn files(&self) -> Vec<PathBuf> {
        self.inner
            .sources
            .iter()
            .flat_map(|s| [s.cert.clone(), s.key.clone()])
            .collect()
    }

    /// What a start should warn about at `now`: certificates expired, not yet valid, or
    /// expiring within 14 days (kedge serves them: there is nothing better to serve).
    pub fn warnings(&self, now: SystemTime) -> Vec<String> {
        let now = crate::krb::time::unix_secs(now);
        let mut out = Vec::new();
        for c in self.snapshot().certificates() {
            if let Some(problem) = c.validity_problem(now) {
                out.push(format!("http listener {}: {problem}", self.inner.listener));
            } else if c.not_after - now < 14 * 86_400 {
                out.push(format!(
                    "http listener {}: {}: certificate expires at {} (in {} days)",
                    self.inner.listener,
                    c.origin,
                    certificate::rfc3339(c.not_after),
                    (c.not_after - now) / 86_400
                ));
            }
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, reload::State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes the current certificates' expiry and the load time. A certificate no longer
    /// served (a reload replaced it with one of another name) reads NaN from then on, so an
    /// expiry alert does not fire for a certificate nobody is shown.
    fn published(&self, now: SystemTime) {
        let snap = self.snapshot();
        let labels: Vec<String> = snap.certificates().iter().map(|c| c.label.clone()).collect();
        for c in snap.certificates() {
            crate::observe::tls_certificate_expiry(&self.inner.listener, &c.label, c.not_after);
        }
        let mut before = self.inner.published.lock().unwrap_or_else(|p| p.into_inner());
        for gone in before.iter().filter(|l| !labels.contains(l)) {
            crate::observe::tls_certificate_retired(&self.inner.listener, gone);
        }
        *before = labels;
        crate::observe::reloaded(crate::observe::Reloaded::Tls, now);
    }
}
