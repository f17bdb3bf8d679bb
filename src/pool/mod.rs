//! Backend pools: CAS members, selection, failover, health and draining (DESIGN.md §3).
//!
//! The edge asks a [`Pool`] for a connection keyed on the authenticated principal; the pool
//! orders its members (rendezvous hashing or least connections), skips members that are down or
//! draining, and fails over to the next one when a connect is refused — before any request byte
//! was sent, so no request is ever retried.
//!
//! The member set is an [`arc_swap::ArcSwap`] snapshot: [`Pool::connect`] reads atomics only,
//! [`Pool::reconfigure`] builds a new snapshot and swaps it in whole.

pub mod config;
mod drain;
pub mod eject;
mod health;
pub mod health_state;
mod lease;
mod member;
pub mod probe;
mod registry;
pub mod select;
pub mod tls;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

pub use config::{BackendTlsConfig, Balance, HealthConfig, HealthKind, MemberConfig, PoolConfig};
pub use lease::{BackendConn, MemberLease};
pub use member::Member;
pub use registry::{HealthChecks, Pools};

use crate::observe;
use drain::MemberSet;

/// Why no backend connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Every member is down, draining or has weight 0.
    #[error("pool {pool}: no healthy member")]
    NoHealthyMember { pool: String },
    /// Every candidate refused or timed out.
    #[error("pool {pool}: all {tried} candidate members failed to connect (last: {last})")]
    AllFailed {
        pool: String,
        tried: usize,
        last: String,
    },
    /// Configuration problem found at build time.
    #[error("pool {pool}: {msg}")]
    Config { pool: String, msg: String },
    /// No member of that name in the pool (admin API).
    #[error("pool {pool}: no member named {member:?}")]
    UnknownMember { pool: String, member: String },
}

/// A pool of members for one protocol or route.
#[derive(Debug)]
pub struct Pool {
    name: Arc<str>,
    set: ArcSwap<MemberSet>,
    /// Serializes writers of `set` (reload, prune); readers never take it.
    write: Mutex<()>,
    turn: AtomicUsize,
    closed: AtomicBool,
}

impl Pool {
    /// Builds a pool from its config and the member table.
    pub fn new(
        name: &str,
        cfg: &PoolConfig,
        members: &BTreeMap<String, MemberConfig>,
    ) -> Result<Self, PoolError> {
        let pool: Arc<str> = Arc::from(name);
        let set = MemberSet::prepare(&pool, cfg, members, None)?.commit();
        Ok(Self {
            name: pool,
            set: ArcSwap::from_pointee(set),
            write: Mutex::new(()),
            turn: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pool's current config.
    pub fn config(&self) -> Arc<PoolConfig> {
        self.set.load().cfg.clone()
    }

    /// Members of the current config, in config order (retiring members not included).
    pub fn members(&self) -> Vec<Arc<Member>> {
        self.set.load().members.clone()
    }

    /// Members removed by a reload that still have open sessions.
    pub fn retiring(&self) -> Vec<Arc<Member>> {
        self.set.load().retiring.clone()
    }

    /// The member called `name` (retiring ones included).
    pub fn member(&self, name: &str) -> Option<Arc<Member>> {
        self.set.load().all().find(|m| m.name == name).cloned()
    }

    /// Members that can take a new session now (healthy, not draining, weight > 0).
    pub fn up_count(&self) -> usize {
        self.set.load().members.iter().filter(|m| m.is_eligible()).count()
    }

    /// Members in the order they should be tried for `key` (the principal, when affinity is on).
    ///
    /// Down, draining and weight-0 members are left out. Passively ejected members come last, in
    /// their own order, so a pool whose every member was ejected still tries them.
    pub fn candidates(&self, key: Option<&str>) -> Vec<Arc<Member>> {
        let set = self.set.load();
        let now = Instant::now();
        let (mut ready, mut ejected): (Vec<_>, Vec<_>) = set
            .members
            .iter()
            .filter(|m| m.is_eligible())
            .cloned()
            .partition(|m| !m.is_ejected(now));
        match key {
            Some(k) if set.cfg.affinity && set.cfg.balance == Balance::Rendezvous => {
                select::rendezvous_order(&mut ready, k);
                select::rendezvous_order(&mut ejected, k);
            }
            _ => {
                let turn = self.turn.fetch_add(1, Ordering::Relaxed);
                select::least_loaded_order(&mut ready, turn);
                select::least_loaded_order(&mut ejected, turn);
            }
        }
        ready.append(&mut ejected);
        ready
    }

    /// The first of [`Pool::candidates`], without ordering the rest: with affinity, the
    /// eligible member of the highest rendezvous score for `key` (ties by name), one that is
    /// not ejected if there is any. Asked per request by assert routes.
    pub fn preferred(&self, key: Option<&str>) -> Option<Arc<Member>> {
        self.with_preferred(key, Arc::clone)
    }

    /// [`Pool::preferred`]'s member lent to `f` instead of cloned: assert routes ask per request,
    /// and a clone and its drop would write the member's reference count, a cache line every
    /// worker shares, twice per request.
    pub fn with_preferred<R>(&self, key: Option<&str>, f: impl FnOnce(&Arc<Member>) -> R) -> Option<R> {
        let set = self.set.load();
        let Some(k) = key.filter(|_| set.cfg.affinity && set.cfg.balance == Balance::Rendezvous) else {
            return self.candidates(key).first().map(f);
        };
        let now = Instant::now();
        let kh = select::key_hash(k);
        let best = |ejected: bool| {
            set.members
                .iter()
                .filter(|m| m.is_eligible() && m.is_ejected(now) == ejected)
                .map(|m| (select::hrw_score(m.seed(), kh, m.weight()), m))
                .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.name.cmp(&a.1.name)))
                .map(|(_, m)| m)
        };
        best(false).or_else(|| best(true)).map(f)
    }

    /// Connects to the first candidate that accepts, failing over on refusal or timeout.
    ///
    /// Nothing has been written when this returns, so a failover never replays a request. A
    /// failed member is ejected for a back-off ([`eject::Ejection`]).
    pub async fn connect(&self, key: Option<&str>) -> Result<BackendConn, PoolError> {
        let cands = self.candidates(key);
        if cands.is_empty() {
            return Err(PoolError::NoHealthyMember {
                pool: self.name.to_string(),
            });
        }
        let cfg = self.config();
        let timeout = Duration::from_millis(cfg.connect_timeout_ms);
        let (base, max) = (
            Duration::from_millis(cfg.eject_base_ms),
            Duration::from_millis(cfg.eject_max_ms),
        );
        let mut last = String::new();
        for (i, m) in cands.iter().enumerate() {
            if i > 0 {
                observe::backend_failover(self.name.clone());
                tracing::info!(pool = %self.name, from = %cands[i - 1].name, to = %m.name, "failing over");
            }
            let lease = MemberLease::new(m.clone());
            let started = Instant::now();
            let err = match tokio::time::timeout(timeout, TcpStream::connect((m.host.as_str(), m.port))).await
            {
                Ok(Ok(stream)) => match stream.peer_addr() {
                    Ok(addr) => {
                        let _ = stream.set_nodelay(true);
                        observe::backend_connect_duration(self.name.clone(), started.elapsed().as_secs_f64());
                        observe::backend_selected(self.name.clone(), m.label());
                        m.connect_succeeded();
                        return Ok(BackendConn {
                            stream,
                            addr,
                            lease: lease.established(),
                        });
                    }
                    Err(e) => e.to_string(),
                },
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("connect timeout after {} ms", cfg.connect_timeout_ms),
            };
            m.connect_failed(Instant::now(), err.clone(), base, max);
            last = format!("{}: {err}", m.name);
        }
        Err(PoolError::AllFailed {
            pool: self.name.to_string(),
            tried: cands.len(),
            last,
        })
    }

    /// A member accepted a connection and then failed to answer in time (TLS handshake,
    /// response head): it is ejected for a back-off, exactly as one that refused the connect.
    pub fn eject(&self, member: &Member, err: String) {
        let cfg = self.config();
        member.answer_failed(
            Instant::now(),
            err,
            Duration::from_millis(cfg.eject_base_ms),
            Duration::from_millis(cfg.eject_max_ms),
        );
    }

    /// TLS settings for the pool's members: the client config and the configured SNI (or, when
    /// none is configured, the first member's host — prefer [`Pool::tls_for`], which gives each
    /// member its own name). `None` for plain-TCP pools.
    pub fn tls(&self) -> Option<(Arc<rustls::ClientConfig>, ServerName<'static>)> {
        let set = self.set.load();
        let tls = set.tls.as_ref()?;
        let name = match &tls.sni {
            Some(n) => n.clone(),
            None => set.members.first().and_then(|m| m.server_name.clone())?,
        };
        Some((tls.config.clone(), name))
    }

    /// TLS settings for one member (its own server name unless the pool sets `sni`).
    pub fn tls_for(&self, member: &Member) -> Option<(Arc<rustls::ClientConfig>, ServerName<'static>)> {
        let set = self.set.load();
        let tls = set.tls.as_ref()?;
        Some((tls.config.clone(), member.server_name.clone()?))
    }

    /// Drains (`true`) or undrains a member: a drained member takes no new session; open ones
    /// carry on.
    pub fn drain(&self, member: &str, drain: bool) -> Result<(), PoolError> {
        let m = self.member(member).ok_or_else(|| PoolError::UnknownMember {
            pool: self.name.to_string(),
            member: member.into(),
        })?;
        m.set_draining(drain);
        tracing::info!(pool = %self.name, member, drain, active = m.active(), "drain changed");
        Ok(())
    }

    /// Applies a new config: new members are added (presumed up until checked), unchanged ones
    /// keep their health, removed ones drain and disappear after their last session.
    pub fn reconfigure(
        &self,
        cfg: &PoolConfig,
        members: &BTreeMap<String, MemberConfig>,
    ) -> Result<(), PoolError> {
        let prepared = self.prepare(cfg, members)?;
        self.commit(prepared);
        Ok(())
    }

    fn prepare(
        &self,
        cfg: &PoolConfig,
        members: &BTreeMap<String, MemberConfig>,
    ) -> Result<drain::Prepared, PoolError> {
        let _w = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        MemberSet::prepare(&self.name, cfg, members, Some(&self.set.load()))
    }

    fn commit(&self, prepared: drain::Prepared) {
        let _w = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        self.set.store(Arc::new(prepared.commit()));
    }

    /// Runs one round of active health checks now and waits for it (the task started by
    /// [`Pools::spawn_health_checks`] does this every interval).
    pub async fn check_now(&self) {
        health::check_round(self).await;
        self.prune();
    }

    /// Forgets retiring members whose last session has ended (the health task calls this on
    /// every round).
    pub fn prune(&self) {
        let _w = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(next) = self.set.load().pruned() {
            self.set.store(Arc::new(next));
        }
    }

    /// Takes the pool out of service: every member drains, health checking stops.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        for m in self.set.load().all() {
            m.retire();
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    pub(crate) fn snapshot(&self) -> Arc<MemberSet> {
        self.set.load_full()
    }
}
