//! What the admin listener reads: the pools, and providers the rest of kedge plugs in for the
//! parts the admin module does not own (key set, listeners).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::guard::MutationGuard;
use super::status::{CredentialStatus, ListenerStatus, PoolStatus, Status};
use crate::observe;
use crate::pool::Pools;

/// Gives the current ASA credentials (called on every `/status` and `/readyz`).
pub type CredentialProvider = Arc<dyn Fn() -> CredentialStatus + Send + Sync>;
/// Gives the current listeners (called on every `/status`).
pub type ListenerProvider = Arc<dyn Fn() -> Vec<ListenerStatus> + Send + Sync>;

/// The admin listener's view of the process.
#[derive(Clone)]
pub struct AdminState {
    pools: Arc<Pools>,
    credentials: CredentialProvider,
    listeners: ListenerProvider,
    started_at: u64,
    guard: MutationGuard,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("pools", &self.pools)
            .field("started_at", &self.started_at)
            .finish()
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl AdminState {
    /// State over `pools`, with no credentials (not ready) and no listeners until providers are
    /// plugged in.
    pub fn new(pools: Arc<Pools>) -> Self {
        Self {
            pools,
            credentials: Arc::new(CredentialStatus::default),
            listeners: Arc::new(Vec::new),
            started_at: unix_now(),
            guard: MutationGuard::default(),
        }
    }

    /// Mutating endpoints (`POST /drain/…`) need the bearer token held in `path` (without one
    /// they are off).
    pub fn with_token_file(mut self, path: Option<std::path::PathBuf>) -> Self {
        self.guard = MutationGuard::new(path);
        self
    }

    /// Who may use the mutating endpoints.
    pub fn guard(&self) -> &MutationGuard {
        &self.guard
    }

    /// Plugs in the key set: `/readyz` needs a Latest credential, `/status` shows both.
    pub fn with_credentials(mut self, f: impl Fn() -> CredentialStatus + Send + Sync + 'static) -> Self {
        self.credentials = Arc::new(f);
        self
    }

    /// Plugs in the listeners shown by `/status`.
    pub fn with_listeners(mut self, f: impl Fn() -> Vec<ListenerStatus> + Send + Sync + 'static) -> Self {
        self.listeners = Arc::new(f);
        self
    }

    /// Sets the start time shown (seconds since the Unix epoch); default: when `new` ran.
    pub fn with_started_at(mut self, unix_secs: u64) -> Self {
        self.started_at = unix_secs;
        self
    }

    /// The pools.
    pub fn pools(&self) -> &Arc<Pools> {
        &self.pools
    }

    /// `Ok` when keys are loaded and every pool has a member able to take sessions; otherwise
    /// every reason.
    pub fn readiness(&self) -> Result<(), Vec<String>> {
        self.readiness_with(&(self.credentials)())
    }

    fn readiness_with(&self, creds: &CredentialStatus) -> Result<(), Vec<String>> {
        let mut why = Vec::new();
        if creds.latest.is_none() {
            why.push("no keys loaded".to_owned());
        }
        for p in self.pools.all() {
            if p.up_count() == 0 {
                why.push(format!("pool {}: no member up", p.name()));
            }
        }
        if why.is_empty() {
            Ok(())
        } else {
            Err(why)
        }
    }

    /// The full status.
    pub fn status(&self) -> Status {
        let credentials = (self.credentials)();
        let not_ready = self.readiness_with(&credentials).err().unwrap_or_default();
        Status {
            version: env!("CARGO_PKG_VERSION").into(),
            started_at: self.started_at,
            now: unix_now(),
            ready: not_ready.is_empty(),
            not_ready,
            listeners: (self.listeners)(),
            pools: self.pools.all().iter().map(|p| PoolStatus::of(p)).collect(),
            credentials,
            counters: observe::tally().snapshot(),
        }
    }
}
