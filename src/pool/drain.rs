//! The member set of a pool and how a reload replaces it: an immutable snapshot swapped whole
//! (readers never lock), members kept by identity so their health survives, removed members
//! retired — they take no new session and disappear once their last lease is dropped.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::config::{MemberConfig, PoolConfig};
use super::member::Member;
use super::tls::BackendTls;
use super::PoolError;

/// One immutable view of a pool.
#[derive(Debug)]
pub(crate) struct MemberSet {
    /// The pool's config as of this view.
    pub cfg: Arc<PoolConfig>,
    /// TLS settings, for TLS pools.
    pub tls: Option<Arc<BackendTls>>,
    /// Members in config order.
    pub members: Vec<Arc<Member>>,
    /// Removed members that still have open sessions.
    pub retiring: Vec<Arc<Member>>,
}

/// A new view checked and built, whose changes to kept members are not applied yet (so a reload
/// that fails for another pool changes nothing).
#[derive(Debug)]
pub(crate) struct Prepared {
    set: MemberSet,
    updates: Vec<(Arc<Member>, u32, bool)>,
    retire: Vec<Arc<Member>>,
    pool: Arc<str>,
}

impl Prepared {
    /// Applies weight/drain changes and retirements; returns the view to publish.
    pub fn commit(self) -> MemberSet {
        for (m, weight, drain) in self.updates {
            m.update(weight, drain);
        }
        for m in self.retire {
            if !m.is_retiring() {
                tracing::info!(pool = %self.pool, member = %m.name, active = m.active(), "member removed; draining");
            }
            m.retire();
        }
        self.set
    }
}

impl MemberSet {
    /// Builds the set for `cfg`, reusing members of `old` whose name, host and port are unchanged.
    pub fn prepare(
        pool: &Arc<str>,
        cfg: &PoolConfig,
        table: &BTreeMap<String, MemberConfig>,
        old: Option<&MemberSet>,
    ) -> Result<Prepared, PoolError> {
        let err = |msg: String| PoolError::Config {
            pool: pool.to_string(),
            msg,
        };
        if cfg.eject_base_ms == 0 || cfg.eject_max_ms < cfg.eject_base_ms {
            return Err(err("eject_base_ms must be > 0 and ≤ eject_max_ms".into()));
        }
        if cfg.connect_timeout_ms == 0 || cfg.response_header_timeout_ms == 0 || cfg.idle_timeout_secs == 0 {
            return Err(err(
                "connect_timeout_ms, response_header_timeout_ms and idle_timeout_secs must be > 0".into(),
            ));
        }
        let tls = match &cfg.tls {
            None => None,
            Some(t) => Some(Arc::new(BackendTls::load(t).map_err(|e| err(e.to_string()))?)),
        };
        let mut members = Vec::with_capacity(cfg.members.len());
        let mut updates = Vec::new();
        for name in &cfg.members {
            if members.iter().any(|m: &Arc<Member>| &m.name == name) {
                return Err(err(format!("member {name:?} listed twice")));
            }
            let mc = table
                .get(name)
                .ok_or_else(|| err(format!("unknown member {name:?}")))?;
            let port = *mc
                .ports
                .get(&cfg.port)
                .ok_or_else(|| err(format!("member {name:?} has no port {:?}", cfg.port)))?;
            let server_name = match &tls {
                Some(t) => Some(
                    t.name_for(&mc.address)
                        .map_err(|e| err(format!("member {name:?}: {e}")))?,
                ),
                None => None,
            };
            let reused = old.and_then(|o| {
                o.members.iter().chain(&o.retiring).find(|m| {
                    &m.name == name && m.host == mc.address && m.port == port && m.server_name == server_name
                })
            });
            let member = match reused {
                Some(m) => {
                    updates.push((m.clone(), mc.weight, mc.drain));
                    m.clone()
                }
                None => Arc::new(Member::new(
                    pool,
                    name,
                    &mc.address,
                    port,
                    mc.weight,
                    mc.drain,
                    server_name,
                )),
            };
            members.push(member);
        }
        let mut retiring = Vec::new();
        let mut retire = Vec::new();
        if let Some(o) = old {
            for m in o.all() {
                if members.iter().any(|n| Arc::ptr_eq(n, m)) {
                    continue;
                }
                retire.push(m.clone());
                if m.active() > 0 {
                    retiring.push(m.clone());
                }
            }
        }
        let set = Self {
            cfg: Arc::new(cfg.clone()),
            tls,
            members,
            retiring,
        };
        Ok(Prepared {
            set,
            updates,
            retire,
            pool: pool.clone(),
        })
    }

    /// The same view without retiring members whose last session has ended, or `None` when
    /// nothing would change.
    pub fn pruned(&self) -> Option<Self> {
        if self.retiring.iter().all(|m| m.active() > 0) {
            return None;
        }
        Some(Self {
            cfg: self.cfg.clone(),
            tls: self.tls.clone(),
            members: self.members.clone(),
            retiring: self.retiring.iter().filter(|m| m.active() > 0).cloned().collect(),
        })
    }

    /// Every member of the view, retiring ones last.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Member>> {
        self.members.iter().chain(&self.retiring)
    }
}
