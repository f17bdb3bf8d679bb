//! Reloading a listener's certificates: on SIGHUP ([`ServerTls::reload`]) and when their files
//! change ([`ServerTls::watch`]: file events on their directories, plus polling every
//! `poll_secs`). Files whose bytes did not change are not looked at again. New files are
//! installed only whole and good: a certificate that does not parse, a key that is not its
//! certificate's, a certificate expired or not yet valid keeps the old certificates, with a
//! warning naming the file and `kedge_tls_reloads_total{result="rejected"}` — once per
//! distinct set of bytes, not on every poll.

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::certificate::{rfc3339, LoadedCert};
use super::{snapshot, ServerTls, TlsError};
use crate::config::TlsCertificateConfig;
use crate::file_events::FileEvents;

/// What the last look at the files found.
#[derive(Debug, Default)]
pub(super) struct State {
    /// Digest of the files now served.
    pub loaded: Option<[u8; 32]>,
    /// Digest of the files (or of the read error) last refused.
    pub refused: Option<[u8; 32]>,
}

/// The bytes of every file, in config order: (certificate chain, key).
pub(super) struct Files(Vec<(Vec<u8>, Zeroizing<Vec<u8>>)>);

impl Files {
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        for (c, k) in &self.0 {
            h.update((c.len() as u64).to_be_bytes());
            h.update(c);
            h.update((k.len() as u64).to_be_bytes());
            h.update(&k[..]);
        }
        h.finalize().into()
    }
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Io {
        path: path.display().to_string(),
        source,
    })
}

pub(super) fn read_all(sources: &[TlsCertificateConfig]) -> Result<Files, TlsError> {
    let mut out = Vec::with_capacity(sources.len());
    for s in sources {
        out.push((read(&s.cert)?, Zeroizing::new(read(&s.key)?)));
    }
    Ok(Files(out))
}

pub(super) fn parse_all(
    sources: &[TlsCertificateConfig],
    files: &Files,
    provider: &CryptoProvider,
) -> Result<Vec<LoadedCert>, TlsError> {
    sources
        .iter()
        .zip(&files.0)
        .map(|(s, (chain, key))| {
            LoadedCert::from_pem(
                chain,
                key,
                &s.cert.display().to_string(),
                &s.key.display().to_string(),
                &s.names,
                provider,
            )
        })
        .collect()
}

impl ServerTls {
    /// Re-reads the files now (as SIGHUP does): `Ok(true)` when new certificates were
    /// installed, `Ok(false)` when the files are unchanged (or were already refused as they
    /// are), an error when new files were refused (the old certificates stay).
    pub fn reload(&self) -> Result<bool, TlsError> {
        self.reload_at(SystemTime::now())
    }

    /// [`Self::reload`] judged at `now`.
    pub fn reload_at(&self, now: SystemTime) -> Result<bool, TlsError> {
        let inner = &self.inner;
        if inner.sources.is_empty() {
            return Ok(false);
        }
        let mut st = self.lock();
        let files = match read_all(&inner.sources) {
            Ok(f) => f,
            Err(e) => {
                let digest: [u8; 32] = Sha256::digest(e.to_string().as_bytes()).into();
                return Err(self.refuse(&mut st, digest, e));
            }
        };
        let digest = files.digest();
        if st.loaded == Some(digest) || st.refused == Some(digest) {
            return Ok(false);
        }
        let unix_now = crate::krb::time::unix_secs(now);
        let installed = parse_all(&inner.sources, &files, &inner.provider).and_then(|certs| {
            if let Some(problem) = certs.iter().find_map(|c| c.validity_problem(unix_now)) {
                return Err(problem);
            }
            snapshot(certs, &inner.provider)
        });
        let snap = match installed {
            Ok(s) => s,
            Err(e) => return Err(self.refuse(&mut st, digest, e)),
        };
        let served: Vec<String> = snap
            .certificates()
            .iter()
            .map(|c| format!("{} (until {})", c.label, rfc3339(c.not_after)))
            .collect();
        inner.current.store(Arc::new(snap));
        st.loaded = Some(digest);
        st.refused = None;
        drop(st);
        crate::observe::tls_reload(&inner.listener, true);
        self.published(now);
        tracing::info!(listener = %inner.listener, certificates = ?served, "TLS certificates reloaded");
        Ok(true)
    }

    fn refuse(&self, st: &mut super::reload::State, digest: [u8; 32], e: TlsError) -> TlsError {
        if st.refused != Some(digest) {
            st.refused = Some(digest);
            crate::observe::tls_reload(&self.inner.listener, false);
            tracing::warn!(listener = %self.inner.listener, error = %e,
                "new TLS certificate refused; keeping the ones served");
        }
        e
    }

    /// Reloads whenever the files change (file events on their directories, polling every
    /// `poll_secs` as a fallback) until `shutdown` resolves. Needs a tokio runtime.
    pub async fn watch(self, shutdown: impl Future) {
        if self.inner.sources.is_empty() {
            return;
        }
        let mut events = FileEvents::watch(&self.files(), "TLS certificate");
        let mut poll = tokio::time::interval(self.inner.poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        poll.tick().await;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = poll.tick() => {}
                _ = events.changed() => {}
            }
            let tls = self.clone();
            // File reads and key parsing off the async threads; a refusal is logged and counted.
            let _ = tokio::task::spawn_blocking(move || tls.reload()).await;
        }
    }
}
