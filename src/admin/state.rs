//! What the admin listener reads: the pools, and providers the rest of kedge plugs in for the
//! parts the admin module does not own (key set, listeners).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::guard::MutationGuard;
use super::status::{CredentialStatus, ListenerStatus, PoolStatus, ReplayStoreStatus, Status};
use crate::edge::workers::Workers;
use crate::observe;
use crate::pool::Pools;

/// Gives the current ASA credentials (called on every `/status` and `/readyz`).
pub type CredentialProvider = Arc<dyn Fn() -> CredentialStatus + Send + Sync>;
/// Gives the current listeners (called on every `/status`).
pub type ListenerProvider = Arc<dyn Fn() -> Vec<ListenerStatus> + Send + Sync>;
/// Gives the shared replay store's state (called on every `/status`).
pub type ReplayStoreProvider = Arc<dyn Fn() -> ReplayStoreStatus + Send + Sync>;

/// The admin listener's view of the process.
#[derive(Clone)]
pub struct AdminState {
    pools: Arc<Pools>,
    credentials: CredentialProvider,
    listeners: ListenerProvider,
    replay_store: Option<ReplayStoreProvider>,
    workers: Option<Arc<Workers>>,
    started_at: u64,
    guard: MutationGuard,
    members_validate: Arc<Vec<String>>,
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
            replay_store: None,
            workers: None,
            started_at: unix_now(),
            guard: MutationGuard::default(),
            members_validate: Arc::new(Vec::new()),
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

    /// Plugs in the shared replay store shown by `/status` (it does not affect readiness: every
    /// replica shares the one store, so taking replicas out of rotation would not help).
    pub fn with_replay_store(mut self, f: impl Fn() -> ReplayStoreStatus + Send + Sync + 'static) -> Self {
        self.replay_store = Some(Arc::new(f));
        self
    }

    /// Plugs in the connection workers: `/healthz` then needs every one of them to answer.
    pub fn with_workers(mut self, workers: Arc<Workers>) -> Self {
        self.workers = Some(workers);
        self
    }

    /// Sets the start time shown (seconds since the Unix epoch); default: when `new` ran.
    pub fn with_started_at(mut self, unix_secs: u64) -> Self {
        self.started_at = unix_secs;
        self
    }

    /// Sets what makes the CAS members validate tickets too (shown by `/status`).
    pub fn with_members_validate(mut self, why: Vec<String>) -> Self {
        self.members_validate = Arc::new(why);
        self
    }

    /// The pools.
    pub fn pools(&self) -> &Arc<Pools> {
        &self.pools
    }

    /// `/readyz`: `Ok` while the HTTP(S) listeners can serve — keys loaded and a member up in
    /// each pool their routes use — so one dead RPC pool does not take port 443 out of the
    /// load balancer. Without HTTP listeners, every listener counts; without any, every pool.
    pub fn readiness(&self) -> Result<(), Vec<String>> {
        let creds = (self.credentials)();
        let listeners = (self.listeners)();
        let http: Vec<&ListenerStatus> = listeners.iter().filter(|l| l.kind != "rpc").collect();
        let counted: Vec<&ListenerStatus> = if http.is_empty() {
            listeners.iter().collect()
        } else {
            http
        };
        let pools: Option<Vec<&str>> = (!counted.is_empty()).then(|| {
            let mut p: Vec<&str> = counted
                .iter()
                .flat_map(|l| l.pools.iter().map(String::as_str))
                .collect();
            p.sort_unstable();
            p.dedup();
            p
        });
        self.readiness_of(&creds, pools.as_deref())
    }

    /// `/readyz/<listener>`: keys loaded and a member up in each pool of that listener; `None`
    /// when no listener has that name.
    pub fn listener_readiness(&self, name: &str) -> Option<Result<(), Vec<String>>> {
        let creds = (self.credentials)();
        let listeners = (self.listeners)();
        let l = listeners.iter().find(|l| l.name == name)?;
        let pools: Vec<&str> = l.pools.iter().map(String::as_str).collect();
        Some(self.readiness_of(&creds, Some(&pools)))
    }

    /// Keys loaded and a member up in each of `pools` (every pool when `None`).
    fn readiness_of(&self, creds: &CredentialStatus, pools: Option<&[&str]>) -> Result<(), Vec<String>> {
        let mut why = Vec::new();
        if creds.latest.is_none() {
            why.push("no keys loaded".to_owned());
        }
        for p in self.pools.all() {
            let counted = pools.is_none_or(|names| names.contains(&p.name()));
            if counted && p.up_count() == 0 {
                why.push(format!("pool {}: no member up", p.name()));
            }
        }
        if why.is_empty() {
            Ok(())
        } else {
            Err(why)
        }
    }

    /// `/healthz`: the process is alive when every connection worker runs a task within a
    /// second (the admin thread answering proves only itself).
    pub async fn liveness(&self) -> Result<(), Vec<String>> {
        let Some(w) = &self.workers else {
            return Ok(());
        };
        let stuck = w.unresponsive(std::time::Duration::from_secs(1)).await;
        if stuck.is_empty() {
            Ok(())
        } else {
            Err(stuck
                .iter()
                .map(|i| format!("worker {i} did not answer within 1 s"))
                .collect())
        }
    }

    /// The full status.
    pub fn status(&self) -> Status {
        let credentials = (self.credentials)();
        let not_ready = self.readiness().err().unwrap_or_default();
        let mut listeners = (self.listeners)();
        for l in &mut listeners {
            let pools: Vec<&str> = l.pools.iter().map(String::as_str).collect();
            l.not_ready = self
                .readiness_of(&credentials, Some(&pools))
                .err()
                .unwrap_or_default();
            l.ready = l.not_ready.is_empty();
        }
        Status {
            version: env!("CARGO_PKG_VERSION").into(),
            started_at: self.started_at,
            now: unix_now(),
            ready: not_ready.is_empty(),
            not_ready,
            listeners,
            pools: self.pools.all().iter().map(|p| PoolStatus::of(p)).collect(),
            credentials,
            members_validate: self.members_validate.as_ref().clone(),
            counters: observe::tally().snapshot(),
            replay_store: self.replay_store.as_ref().map(|f| f()),
        }
    }
}
