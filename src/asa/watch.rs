//! Hot-loading the ASA keytab (DESIGN.md §4): file events ([`crate::file_events`], on the
//! keytab's directory so that an atomic rename into place is seen) plus a polling fallback
//! comparing mtime, size, inode and mode, then a content hash.
//!
//! A new valid keytab replaces the acceptor's key set atomically ([`Acceptor::set_keys`]),
//! merged through [`CredentialHistory`] (Latest/Previous retirement). An unreadable, empty,
//! truncated, corrupt or key-less file, or one that group or others may write, is refused with
//! a log line naming the file and the problem, `kedge_keytab_reloads_total{result="rejected"}`,
//! and the old keys stay. A file that group or others may read is loaded with a warning and
//! `kedge_keytab_insecure_permissions` set to 1.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::credentials::{Credential, CredentialStatus};
use super::history::CredentialHistory;
use crate::config::KerberosConfig;
use crate::krb::acceptor::Acceptor;
use crate::krb::keytab::{Keytab, KeytabError};
use crate::observe::{self, KvnoSlot};

/// Gauge: 1 while the loaded keytab file is readable by group or others.
pub const KEYTAB_INSECURE_PERMISSIONS: &str = "kedge_keytab_insecure_permissions";

/// What to watch and the retirement policy.
#[derive(Clone, Debug)]
pub struct WatchConfig {
    /// The keytab file.
    pub path: PathBuf,
    /// Keys of an older kvno stay valid this long after a newer kvno is first seen.
    pub previous_key_retire: Duration,
    /// Polling interval (the fallback when file events are lost or unavailable).
    pub poll_interval: Duration,
}

impl WatchConfig {
    /// From the `[kerberos]` configuration.
    pub fn from_config(cfg: &KerberosConfig) -> Self {
        Self {
            path: cfg.keytab.clone(),
            previous_key_retire: Duration::from_secs(cfg.previous_key_retire_secs),
            poll_interval: Duration::from_millis(cfg.keytab_poll_ms.max(10)),
        }
    }
}

/// Why a keytab file was refused; the old keys stay.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReloadError {
    /// The file cannot be read (missing, permissions, I/O).
    #[error("{path}: cannot read: {reason}")]
    Unreadable { path: String, reason: String },
    /// The keytab does not parse (truncated, half-written, corrupt, empty file).
    #[error("{path}: {error}")]
    Corrupt { path: String, error: KeytabError },
    /// A well-formed keytab without any usable key.
    #[error("{path}: no usable keys ({skipped} entries of unsupported enctypes skipped)")]
    NoKeys { path: String, skipped: usize },
    /// Group or others may write the file: anyone who can write it can plant keys and forge
    /// tickets.
    #[error("{path}: writable by group or others (mode {mode:04o}); refused — chmod 0600 it")]
    InsecureWritable { path: String, mode: u32 },
}

impl ReloadError {
    /// A short label (`unreadable`, `corrupt`, `truncated`, `empty`, `no_keys`, `insecure`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unreadable { .. } => "unreadable",
            Self::Corrupt {
                error: KeytabError::Empty,
                ..
            } => "empty",
            Self::Corrupt {
                error: KeytabError::Truncated { .. },
                ..
            } => "truncated",
            Self::Corrupt { .. } => "corrupt",
            Self::NoKeys { .. } => "no_keys",
            Self::InsecureWritable { .. } => "insecure",
        }
    }
}

/// Counters and the last problem, for tests, logs and `kedge status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchStats {
    /// Key sets installed (the initial load included).
    pub reloads_ok: u64,
    /// Files refused.
    pub reloads_refused: u64,
    /// The last refusal, if the last file seen was refused.
    pub last_error: Option<String>,
    /// Its label ([`ReloadError::reason`]).
    pub last_reason: Option<&'static str>,
    /// Whether the loaded file is readable by group or others.
    pub insecure_permissions: bool,
    /// Kvnos loaded now.
    pub kvnos: Vec<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    mtime: (i64, i64),
    size: u64,
    ino: u64,
    dev: u64,
    mode: u32,
}

struct State {
    history: CredentialHistory,
    stamp: Option<Stamp>,
    hash: Option<[u8; 32]>,
    stats: WatchStats,
}

struct Inner {
    cfg: WatchConfig,
    acceptor: Arc<Acceptor>,
    state: Mutex<State>,
}

/// The running watcher. Dropping it stops the background task.
pub struct KeytabWatcher {
    inner: Arc<Inner>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for KeytabWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeytabWatcher")
            .field("path", &self.inner.cfg.path)
            .finish()
    }
}

fn describe_metric() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        metrics::describe_gauge!(
            KEYTAB_INSECURE_PERMISSIONS,
            metrics::Unit::Count,
            "1 while the loaded keytab file is readable by group or others."
        );
    });
}

impl KeytabWatcher {
    /// Loads the keytab into `acceptor` now (an error if it cannot: kedge must not start
    /// without keys), without watching. Call [`Self::spawn`] to watch.
    pub fn load(cfg: WatchConfig, acceptor: Arc<Acceptor>) -> Result<Self, ReloadError> {
        describe_metric();
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                history: CredentialHistory::new(cfg.previous_key_retire),
                stamp: None,
                hash: None,
                stats: WatchStats::default(),
            }),
            cfg,
            acceptor,
        });
        inner.check(SystemTime::now())?;
        Ok(Self { inner, task: None })
    }

    /// [`Self::load`] then [`Self::spawn`]. Needs a tokio runtime.
    pub fn start(cfg: WatchConfig, acceptor: Arc<Acceptor>) -> Result<Self, ReloadError> {
        let mut w = Self::load(cfg, acceptor)?;
        w.spawn();
        Ok(w)
    }

    /// Starts watching (file events on the directory plus polling) on the current tokio runtime.
    pub fn spawn(&mut self) {
        if self.task.is_some() {
            return;
        }
        let inner = self.inner.clone();
        self.task = Some(tokio::spawn(run(inner)));
    }

    /// Checks the file now (as SIGHUP would): `Ok(true)` when a new key set was installed,
    /// `Ok(false)` when the file is unchanged (or was already refused as it is).
    pub fn check_now(&self) -> Result<bool, ReloadError> {
        self.inner.check(SystemTime::now())
    }

    /// Counters and the last problem.
    pub fn stats(&self) -> WatchStats {
        self.inner.lock().stats.clone()
    }

    /// Latest and Previous credentials in the admin status model (kvno, enctypes, loaded-at).
    pub fn credential_status(&self) -> (Option<Credential>, Option<Credential>) {
        let keys = self.inner.acceptor.keys();
        self.inner.lock().history.credential_status(&keys)
    }

    /// A provider for [`crate::admin::AdminState::with_credentials`].
    pub fn status_provider(&self) -> impl Fn() -> CredentialStatus + Send + Sync + 'static {
        let inner = self.inner.clone();
        move || {
            let keys = inner.acceptor.keys();
            inner.lock().history.status(&keys)
        }
    }

    /// The watched file.
    pub fn path(&self) -> &Path {
        &self.inner.cfg.path
    }
}

impl Drop for KeytabWatcher {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

async fn run(inner: Arc<Inner>) {
    let mut events = crate::file_events::FileEvents::watch(std::slice::from_ref(&inner.cfg.path), "keytab");
    let mut poll = tokio::time::interval(inner.cfg.poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    poll.tick().await;
    loop {
        tokio::select! {
            _ = poll.tick() => {}
            _ = events.changed() => {}
        }
        let inner = inner.clone();
        // File reads and key derivation off the async threads.
        let _ = tokio::task::spawn_blocking(move || inner.check(SystemTime::now())).await;
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check(&self, now: SystemTime) -> Result<bool, ReloadError> {
        let path = &self.cfg.path;
        let shown = path.display().to_string();
        let mut st = self.lock();
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                let err = ReloadError::Unreadable {
                    path: shown,
                    reason: e.to_string(),
                };
                // A missing file is reported once, not on every poll.
                if st.stamp.is_some() || st.stats.reloads_ok == 0 {
                    st.stamp = None;
                    st.hash = None;
                    return Err(self.refuse(&mut st, err));
                }
                return Err(err);
            }
        };
        let stamp = Stamp {
            mtime: (meta.mtime(), meta.mtime_nsec()),
            size: meta.size(),
            ino: meta.ino(),
            dev: meta.dev(),
            mode: meta.mode(),
        };
        if st.stamp == Some(stamp) {
            return Ok(false);
        }
        st.stamp = Some(stamp);
        let mode = stamp.mode & 0o7777;
        if crate::secret_file::writable_by_others(mode) {
            st.hash = None;
            let err = ReloadError::InsecureWritable { path: shown, mode };
            return Err(self.refuse(&mut st, err));
        }
        let bytes = match std::fs::read(path) {
            Ok(b) => Zeroizing::new(b),
            Err(e) => {
                st.hash = None;
                let err = ReloadError::Unreadable {
                    path: shown,
                    reason: e.to_string(),
                };
                return Err(self.refuse(&mut st, err));
            }
        };
        let hash: [u8; 32] = Sha256::digest(&bytes[..]).into();
        if st.hash == Some(hash) {
            return Ok(false);
        }
        st.hash = Some(hash);
        let kt = match Keytab::parse(&bytes) {
            Ok(kt) => kt,
            Err(error) => return Err(self.refuse(&mut st, ReloadError::Corrupt { path: shown, error })),
        };
        if kt.entries.is_empty() {
            let err = ReloadError::NoKeys {
                path: shown,
                skipped: kt.skipped_unsupported,
            };
            return Err(self.refuse(&mut st, err));
        }
        let insecure = crate::secret_file::readable_by_others(mode);
        metrics::gauge!(KEYTAB_INSECURE_PERMISSIONS).set(if insecure { 1.0 } else { 0.0 });
        if insecure {
            tracing::warn!(keytab = %shown, mode = format!("{mode:04o}"),
                "keytab is readable by group or others: anyone who reads it can impersonate the ASA; chmod 0600");
        }
        let current = self.acceptor.keys();
        let keys = st.history.merge(&kt, &current, now, &shown);
        let kvnos = keys.kvnos();
        self.acceptor.set_keys(keys);
        let creds = self.acceptor.keys().credentials();
        observe::keytab_kvno(KvnoSlot::Latest, creds.first().map(|c| c.kvno));
        observe::keytab_kvno(KvnoSlot::Previous, creds.get(1).map(|c| c.kvno));
        observe::keytab_reload(true);
        observe::reloaded(observe::Reloaded::Keytab, now);
        tracing::info!(keytab = %shown, kvnos = ?kvnos, entries = kt.entries.len(), "keytab loaded");
        st.stats.reloads_ok += 1;
        st.stats.last_error = None;
        st.stats.last_reason = None;
        st.stats.insecure_permissions = insecure;
        st.stats.kvnos = kvnos;
        Ok(true)
    }

    fn refuse(&self, st: &mut State, err: ReloadError) -> ReloadError {
        tracing::warn!(keytab = %self.cfg.path.display(), reason = err.reason(), error = %err,
            "keytab refused; keeping the loaded keys");
        observe::keytab_reload(false);
        st.stats.reloads_refused += 1;
        st.stats.last_error = Some(err.to_string());
        st.stats.last_reason = Some(err.reason());
        err
    }
}
