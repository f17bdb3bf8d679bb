//! All pools of the process by name, built from the config, reloaded together, and their health
//! checkers run as tokio tasks until shutdown.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::config::{MemberConfig, PoolConfig};
use super::{health, Pool, PoolError};

/// The pools, by name.
#[derive(Debug)]
pub struct Pools {
    pools: ArcSwap<BTreeMap<String, Arc<Pool>>>,
    /// Reload serialization; also where new pools are handed to a running checker supervisor.
    checker: Mutex<Option<mpsc::UnboundedSender<Arc<Pool>>>>,
}

/// The running health checkers; await [`HealthChecks::join`] after shutdown.
#[derive(Debug)]
pub struct HealthChecks {
    handle: JoinHandle<()>,
}

impl HealthChecks {
    /// Waits for every checker to stop (they stop when the shutdown future completes).
    pub async fn join(self) {
        let _ = self.handle.await;
    }
}

impl Pools {
    /// Builds every pool of the config.
    pub fn from_config(
        members: &BTreeMap<String, MemberConfig>,
        pools: &BTreeMap<String, PoolConfig>,
    ) -> Result<Self, PoolError> {
        let mut map = BTreeMap::new();
        for (name, cfg) in pools {
            map.insert(name.clone(), Arc::new(Pool::new(name, cfg, members)?));
        }
        Ok(Self {
            pools: ArcSwap::from_pointee(map),
            checker: Mutex::new(None),
        })
    }

    /// The pool called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Pool>> {
        self.pools.load().get(name).cloned()
    }

    /// Every pool, by name.
    pub fn all(&self) -> Vec<Arc<Pool>> {
        self.pools.load().values().cloned().collect()
    }

    /// Applies a reloaded config to every pool at once, or to none if any pool's config is bad:
    /// new pools are created (and checked, if checkers run), changed ones reconfigured, removed
    /// ones closed (their members drain; open sessions carry on).
    pub fn reconfigure(
        &self,
        members: &BTreeMap<String, MemberConfig>,
        pools: &BTreeMap<String, PoolConfig>,
    ) -> Result<(), PoolError> {
        let checker = self.checker.lock().unwrap_or_else(PoisonError::into_inner);
        let old = self.pools.load_full();
        let mut prepared = Vec::new();
        let mut created = Vec::new();
        for (name, cfg) in pools {
            match old.get(name) {
                Some(p) => prepared.push((p.clone(), p.prepare(cfg, members)?)),
                None => created.push(Arc::new(Pool::new(name, cfg, members)?)),
            }
        }
        let mut map = BTreeMap::new();
        for (p, prep) in prepared {
            p.commit(prep);
            map.insert(p.name().to_owned(), p);
        }
        for p in &created {
            map.insert(p.name().to_owned(), p.clone());
            if let Some(tx) = checker.as_ref() {
                let _ = tx.send(p.clone());
            }
        }
        for (name, p) in old.iter() {
            if !map.contains_key(name) {
                tracing::info!(pool = %name, "pool removed; draining its members");
                p.close();
            }
        }
        self.pools.store(Arc::new(map));
        Ok(())
    }

    /// Starts one health-check task per pool (and per pool added by later reloads); they stop
    /// when `shutdown` completes. Needs a tokio runtime.
    pub fn spawn_health_checks(&self, shutdown: impl Future<Output = ()> + Send + 'static) -> HealthChecks {
        let (tx, mut rx) = mpsc::unbounded_channel::<Arc<Pool>>();
        let mut checker = self.checker.lock().unwrap_or_else(PoisonError::into_inner);
        for p in self.all() {
            let _ = tx.send(p);
        }
        *checker = Some(tx);
        let handle = tokio::spawn(async move {
            let (stop_tx, stop_rx) = watch::channel(false);
            let mut tasks = JoinSet::new();
            tokio::pin!(shutdown);
            loop {
                tokio::select! {
                    _ = &mut shutdown => break,
                    p = rx.recv() => match p {
                        Some(p) => { tasks.spawn(health::run(p, stop_rx.clone())); }
                        None => break,
                    },
                }
            }
            let _ = stop_tx.send(true);
            // A probe in flight ends within its timeout; do not wait for ever on a stuck one.
            let _ = tokio::time::timeout(Duration::from_secs(10), async {
                while tasks.join_next().await.is_some() {}
            })
            .await;
            tasks.abort_all();
        });
        HealthChecks { handle }
    }
}
