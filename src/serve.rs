//! The kedge process: builds the acceptor, key watcher, pools, listeners and admin endpoint from
//! a [`Config`], runs them until shutdown, and applies reloads. mini-redis style: listeners are
//! bound by the caller ([`bind`]) and passed in, so tests bind `127.0.0.1:0` and read ports back.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::admin::{self, status::ListenerStatus, AdminState};
use crate::asa::{KeytabWatcher, WatchConfig};
use crate::config::{Config, Scheduler};
use crate::edge::authenticate::{Authenticate, SharedReplay};
use crate::edge::http::{serve_http, EdgeContext, ServerTls};
use crate::edge::rpc::{serve_rpc, RpcEdgeContext};
use crate::edge::source_limits::top_talkers;
use crate::edge::workers::Workers;
use crate::krb::acceptor::{Acceptor, AcceptorConfig};
use crate::krb::keyset::KeySet;
use crate::krb::replay::ReplayCache;
use crate::observe;
use crate::observe::access_log::AccessLog;
use crate::pool::Pools;
use crate::replay_store::ReplayStore;

/// Why kedge could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listener could not be bound.
    #[error("{what} {addr}: cannot listen: {source}")]
    Bind {
        what: String,
        addr: String,
        source: std::io::Error,
    },
    /// The keytab could not be loaded at start.
    #[error("keytab: {0}")]
    Keytab(String),
    /// TLS material could not be loaded.
    #[error("http listener {name}: {msg}")]
    Tls { name: String, msg: String },
    /// Pools could not be built.
    #[error("pools: {0}")]
    Pool(String),
    /// A listener refused its configuration.
    #[error("listener {name}: {msg}")]
    Listener { name: String, msg: String },
    /// The shared replay store's settings are unusable.
    #[error("{0}")]
    ReplayStore(String),
    /// The admin listener's token file cannot be used.
    #[error("admin.token_file: {0}")]
    Admin(String),
    /// The connection worker threads could not start.
    #[error("runtime: cannot start worker threads: {0}")]
    Runtime(String),
    /// The access log's file cannot be opened.
    #[error("access_log.path: {0}")]
    AccessLog(String),
}

/// Listeners bound for a config, in config order.
pub struct Bound {
    /// One per `[[http]]`.
    pub http: Vec<TcpListener>,
    /// One per `[[rpc]]`.
    pub rpc: Vec<TcpListener>,
    /// The admin listener, if configured.
    pub admin: Option<TcpListener>,
}

impl Bound {
    /// The bound addresses: (kind, name, address), for logs and tests.
    pub fn addresses(&self, cfg: &Config) -> Vec<(&'static str, String, SocketAddr)> {
        let mut v = Vec::new();
        for (l, c) in self.http.iter().zip(&cfg.http) {
            if let Ok(a) = l.local_addr() {
                v.push(("http", c.name.clone(), a));
            }
        }
        for (l, c) in self.rpc.iter().zip(&cfg.rpc) {
            if let Ok(a) = l.local_addr() {
                v.push(("rpc", c.name.clone(), a));
            }
        }
        if let Some(a) = self.admin.as_ref().and_then(|l| l.local_addr().ok()) {
            v.push(("admin", "admin".into(), a));
        }
        v
    }
}

async fn bind_one(what: &str, addr: &str) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr).await.map_err(|source| ServeError::Bind {
        what: what.into(),
        addr: addr.into(),
        source,
    })
}

/// Binds every listener of `cfg`.
pub async fn bind(cfg: &Config) -> Result<Bound, ServeError> {
    let mut http = Vec::new();
    for l in &cfg.http {
        http.push(bind_one(&format!("http listener {}", l.name), &l.listen).await?);
    }
    let mut rpc = Vec::new();
    for l in &cfg.rpc {
        rpc.push(bind_one(&format!("rpc listener {}", l.name), &l.listen).await?);
    }
    let admin = match &cfg.admin {
        Some(a) => Some(bind_one("admin listener", &a.listen).await?),
        None => None,
    };
    Ok(Bound { http, rpc, admin })
}

/// What a reload changed.
#[derive(Debug, Default)]
pub struct ReloadReport {
    /// Whether pools and members were applied.
    pub pools_applied: bool,
    /// Whether a new key set was installed.
    pub keys_reloaded: bool,
    /// Listeners whose new certificate files were installed.
    pub tls_reloaded: Vec<String>,
    /// Listeners whose new certificate files were refused (they keep the old ones), and why.
    pub tls_refused: Vec<String>,
    /// Settings that changed but need a restart (listeners, routes, Kerberos policy).
    pub needs_restart: Vec<String>,
}

/// A running kedge.
pub struct Kedge {
    cfg: Mutex<Config>,
    acceptor: Arc<Acceptor>,
    pools: Arc<Pools>,
    watcher: KeytabWatcher,
    /// Every TLS listener's certificates (reloaded on SIGHUP too).
    tls: Vec<ServerTls>,
    shutdown_tx: watch::Sender<bool>,
    tasks: JoinSet<()>,
    workers: Option<Arc<Workers>>,
    addresses: Vec<(&'static str, String, SocketAddr)>,
    access_log: Option<Arc<AccessLog>>,
}

/// The acceptor policy a config asks for.
pub(crate) fn acceptor_config(cfg: &Config) -> AcceptorConfig {
    AcceptorConfig {
        realm: cfg.kerberos.realm.clone(),
        hosts: cfg
            .kerberos
            .array
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        skew: Duration::from_secs(cfg.kerberos.skew_secs),
        channel_binding: cfg.kerberos.channel_binding,
        require_pac: cfg.kerberos.require_pac,
        verify_pac: true,
        client_realms: cfg.kerberos.allowed_client_realms.clone(),
        shared_replay: cfg.kerberos.replay.store.is_some(),
        ticket_cache_bytes: cfg.kerberos.ticket_cache_bytes,
    }
}

/// A future that completes when `rx` turns true.
async fn signalled(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

impl Kedge {
    /// Starts everything on the current tokio runtime. Fails (without serving anything) when the
    /// keytab, TLS material or pools cannot be loaded.
    pub async fn start(cfg: Config, bound: Bound) -> Result<Self, ServeError> {
        observe::install();
        let addresses = bound.addresses(&cfg);
        let replay = Arc::new(ReplayCache::with_principal_share(
            cfg.kerberos.replay_max_entries,
            cfg.kerberos.replay_principal_share,
        ));
        let acceptor = Arc::new(Acceptor::new(
            acceptor_config(&cfg),
            KeySet::default(),
            replay.clone(),
        ));
        // Entries live as long as the local cache keeps them: 2 × skew.
        let window = 2 * Duration::from_secs(cfg.kerberos.skew_secs);
        let store = ReplayStore::from_config(&cfg.kerberos.replay, window)
            .map_err(|e| ServeError::ReplayStore(e.to_string()))?;
        let auth: Arc<dyn Authenticate> = match &store {
            Some(s) => Arc::new(SharedReplay::new(acceptor.clone(), s.clone())),
            None => acceptor.clone(),
        };
        let watcher = KeytabWatcher::start(WatchConfig::from_config(&cfg.kerberos), acceptor.clone())
            .map_err(|e| ServeError::Keytab(e.to_string()))?;
        let pools = Arc::new(
            Pools::from_config(&cfg.members, &cfg.pools).map_err(|e| ServeError::Pool(e.to_string()))?,
        );
        let access_log =
            AccessLog::start(&cfg.access_log).map_err(|e| ServeError::AccessLog(e.to_string()))?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let checks = pools.spawn_health_checks(signalled(shutdown_rx.clone()));
        tasks.spawn(async move { checks.join().await });
        if let Some(s) = &store {
            observe::replay_store_up(false);
            tasks.spawn(s.clone().maintain(signalled(shutdown_rx.clone())));
        }

        let pool_map: BTreeMap<String, Arc<crate::pool::Pool>> = pools
            .all()
            .into_iter()
            .map(|p| (p.name().to_string(), p))
            .collect();
        let workers = match cfg.runtime.scheduler {
            Scheduler::PerCore => Some(
                Workers::start(cfg.runtime.worker_count()).map_err(|e| ServeError::Runtime(e.to_string()))?,
            ),
            Scheduler::WorkStealing => None,
        };
        let mut tls_listeners = Vec::new();
        for (listener, lcfg) in bound.http.into_iter().zip(cfg.http.iter().cloned()) {
            let mut ctx = EdgeContext::new(auth.clone(), pool_map.clone());
            if let Some(w) = &workers {
                ctx = ctx.with_workers(w.clone());
            }
            if let Some(log) = &access_log {
                ctx = ctx.with_access_log(log.clone());
            }
            if let Some(t) = &lcfg.tls {
                let tls = ServerTls::load(&lcfg.name, t).map_err(|e| ServeError::Tls {
                    name: lcfg.name.clone(),
                    msg: e.to_string(),
                })?;
                for w in tls.warnings(std::time::SystemTime::now()) {
                    tracing::warn!("{w}");
                }
                tasks.spawn(tls.clone().watch(signalled(shutdown_rx.clone())));
                tls_listeners.push(tls.clone());
                ctx = ctx.with_tls(tls);
            }
            // Routes (assert headers, HMAC key files) are built before anything serves, so a
            // bad one stops the start rather than one listener.
            crate::edge::http::check_routes(&lcfg, &ctx).map_err(|e| ServeError::Listener {
                name: lcfg.name.clone(),
                msg: e.to_string(),
            })?;
            let name = lcfg.name.clone();
            let shutdown = signalled(shutdown_rx.clone());
            tasks.spawn(async move {
                if let Err(e) = serve_http(listener, Arc::new(lcfg), Arc::new(ctx), shutdown).await {
                    tracing::error!(listener = %name, error = %e, "http listener stopped");
                }
            });
        }
        for (listener, lcfg) in bound.rpc.into_iter().zip(cfg.rpc.iter().cloned()) {
            let pool = pools.get(&lcfg.pool).ok_or_else(|| ServeError::Listener {
                name: lcfg.name.clone(),
                msg: format!("no pool named {:?}", lcfg.pool),
            })?;
            let mut ctx =
                RpcEdgeContext::new(acceptor.clone(), pool, &lcfg).map_err(|e| ServeError::Listener {
                    name: lcfg.name.clone(),
                    msg: e.to_string(),
                })?;
            if let Some(w) = &workers {
                ctx = ctx.with_workers(w.clone());
            }
            if let Some(s) = &store {
                ctx = ctx.with_replay_store(s.clone());
            }
            if let Some(log) = &access_log {
                ctx = ctx.with_access_log(log.clone());
            }
            let shutdown = signalled(shutdown_rx.clone());
            tasks.spawn(async move { serve_rpc(listener, Arc::new(lcfg), Arc::new(ctx), shutdown).await });
        }

        // Replay- and ticket-cache gauges.
        {
            let mut rx = shutdown_rx.clone();
            let tickets = acceptor.clone();
            tasks.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            observe::replay_cache_entries(replay.len());
                            observe::ticket_cache(tickets.ticket_cache_stats());
                        }
                        _ = rx.changed() => return,
                    }
                }
            });
        }

        if let Some(listener) = bound.admin {
            let listeners = cfg.clone();
            let token_file = cfg.admin.as_ref().and_then(|a| a.token_file.clone());
            let guard = admin::MutationGuard::new(token_file.clone());
            guard.check_file().map_err(|e| ServeError::Admin(e.to_string()))?;
            if let Some(w) = listener
                .local_addr()
                .ok()
                .and_then(|a| admin::exposure_warning(a, guard.enabled()))
            {
                tracing::warn!("{w}");
            }
            let mut state = AdminState::new(pools.clone())
                .with_token_file(token_file)
                .with_credentials(watcher.status_provider())
                .with_members_validate(crate::asa::member_validation::reasons(&cfg))
                .with_listeners(move || listener_status(&listeners))
                .with_started_at(crate::krb::time::unix_secs(std::time::SystemTime::now()).max(0) as u64);
            if let Some(s) = store.clone() {
                state = state.with_replay_store(move || s.status());
            }
            if let Some(w) = &workers {
                state = state.with_workers(w.clone());
            }
            let shutdown = signalled(shutdown_rx.clone());
            tasks.spawn(async move { admin::serve(listener, state, shutdown).await });
        }
        for (kind, name, addr) in &addresses {
            tracing::info!(%kind, %name, %addr, "listening");
        }
        observe::reloaded(observe::Reloaded::Config, std::time::SystemTime::now());
        Ok(Self {
            cfg: Mutex::new(cfg),
            acceptor,
            pools,
            watcher,
            tls: tls_listeners,
            shutdown_tx,
            tasks,
            workers,
            addresses,
            access_log,
        })
    }

    /// Reopens the access log's file (SIGUSR1, after logrotate moved it away).
    pub fn reopen_access_log(&self) {
        if let Some(log) = &self.access_log {
            log.reopen();
        }
    }

    /// The bound addresses: (kind, name, address).
    pub fn addresses(&self) -> &[(&'static str, String, SocketAddr)] {
        &self.addresses
    }

    /// The acceptor (shared by every listener).
    pub fn acceptor(&self) -> &Arc<Acceptor> {
        &self.acceptor
    }

    /// The pools.
    pub fn pools(&self) -> &Arc<Pools> {
        &self.pools
    }

    /// The keytab watcher.
    pub fn watcher(&self) -> &KeytabWatcher {
        &self.watcher
    }

    /// Applies a new, already validated config: members and pools (add, drain, remove), the
    /// keytab and the TLS certificates' files; reports settings that need a restart. Pools are applied all or nothing: a pool
    /// error leaves everything as it was.
    pub fn reload(&self, new: Config) -> Result<ReloadReport, ServeError> {
        let mut cur = self.cfg.lock().unwrap_or_else(|p| p.into_inner());
        let mut report = ReloadReport::default();
        self.pools
            .reconfigure(&new.members, &new.pools)
            .map_err(|e| ServeError::Pool(e.to_string()))?;
        report.pools_applied = true;
        report.keys_reloaded = matches!(self.watcher.check_now(), Ok(true));
        for tls in &self.tls {
            match tls.reload() {
                Ok(true) => report.tls_reloaded.push(tls.listener().to_owned()),
                Ok(false) => {}
                Err(e) => report.tls_refused.push(format!("{}: {e}", tls.listener())),
            }
        }
        for (what, changed) in [
            ("http listeners and routes", json(&cur.http) != json(&new.http)),
            ("rpc listeners", json(&cur.rpc) != json(&new.rpc)),
            ("admin listener", json(&cur.admin) != json(&new.admin)),
            ("kerberos settings", json(&cur.kerberos) != json(&new.kerberos)),
            ("runtime", json(&cur.runtime) != json(&new.runtime)),
            ("logging", json(&cur.logging) != json(&new.logging)),
            ("access log", json(&cur.access_log) != json(&new.access_log)),
        ] {
            if changed {
                report.needs_restart.push(what.to_string());
            }
        }
        *cur = new;
        Ok(report)
    }

    /// Stops accepting, lets connections drain (each listener's grace period) and waits.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        while self.tasks.join_next().await.is_some() {}
        if let Some(w) = self.workers.take() {
            // Every connection has ended: the worker threads exit at once.
            let _ = tokio::task::spawn_blocking(move || w.stop()).await;
        }
    }
}

/// A config section as JSON, to compare sections without requiring `PartialEq` everywhere.
fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Sources per listener on `/status`.
const TOP_TALKERS: usize = 10;

fn listener_status(cfg: &Config) -> Vec<ListenerStatus> {
    let mut v = Vec::new();
    for l in &cfg.http {
        v.push(ListenerStatus {
            name: l.name.clone(),
            kind: if l.tls.is_some() {
                "https".into()
            } else {
                "http".into()
            },
            listen: l.listen.clone(),
            tls: l.tls.is_some(),
            connections_active: observe::listener_connections(&l.name).max(0) as u64,
            top_talkers: top_talkers(&l.name, TOP_TALKERS),
            pools: {
                let mut p: Vec<String> = l.routes.iter().map(|r| r.pool.clone()).collect();
                p.sort();
                p.dedup();
                p
            },
            ..Default::default()
        });
    }
    for l in &cfg.rpc {
        v.push(ListenerStatus {
            name: l.name.clone(),
            kind: "rpc".into(),
            listen: l.listen.clone(),
            tls: false,
            connections_active: observe::listener_connections(&l.name).max(0) as u64,
            top_talkers: top_talkers(&l.name, TOP_TALKERS),
            pools: vec![l.pool.clone()],
            ..Default::default()
        });
    }
    v
}
