//! The `/status` model (serde), and how it is gathered from the pools and the providers the
//! rest of kedge plugs into [`super::AdminState`].

use serde::{Deserialize, Serialize};

pub use crate::asa::credentials::{Credential, CredentialStatus};
pub use crate::edge::source_limits::Talker;

use crate::observe::Counters;
use crate::pool::{Balance, HealthKind, Member, Pool};

/// Everything `/status` reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// kedge version.
    pub version: String,
    /// Process start, seconds since the Unix epoch.
    pub started_at: u64,
    /// When this status was taken, seconds since the Unix epoch.
    pub now: u64,
    /// Whether `/readyz` would answer 200.
    pub ready: bool,
    /// Why not, when not ready.
    #[serde(default)]
    pub not_ready: Vec<String>,
    /// Client-facing listeners.
    pub listeners: Vec<ListenerStatus>,
    /// Backend pools.
    pub pools: Vec<PoolStatus>,
    /// The ASA credentials in use.
    pub credentials: CredentialStatus,
    /// Why the CAS members validate the same tickets with the ASA key too (passthrough routes,
    /// RPC listeners): then the ASA password must reach them before AD's changes (staged roll),
    /// and Exchange's own scheduled `Exchange-RollAsa` task must not run. Empty in assert-only
    /// deployments.
    #[serde(default)]
    pub members_validate: Vec<String>,
    /// Running totals.
    pub counters: Counters,
    /// The replay store shared with other replicas, where one is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_store: Option<ReplayStoreStatus>,
}

/// The shared replay store (`[kerberos.replay] store`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayStoreStatus {
    /// Its address, without credentials (`redis://10.0.0.5:6379/0`).
    pub store: String,
    /// `up` while a connection is open, else `down` (reconnecting in the background).
    pub state: String,
    /// When the state last changed, seconds since the Unix epoch (0: never connected).
    pub since: u64,
    /// What authentications do while it is down: `closed` (refuse) or `local`.
    pub fail: String,
    /// Per-call timeout, milliseconds.
    pub timeout_ms: u64,
    /// Prefix of its keys.
    pub key_prefix: String,
    /// How long an entry lives (2 × skew), seconds.
    pub window_secs: u64,
    /// Connections opened so far (1 + reconnects).
    pub connects: u64,
    /// Why the last connection attempt or connection failed.
    pub last_error: Option<String>,
    /// Calls by result.
    pub calls: ReplayStoreCalls,
}

/// Store calls by result since start.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayStoreCalls {
    /// Not seen before: recorded.
    pub fresh: u64,
    /// Seen by some replica: refused as a replay.
    pub replay: u64,
    /// No verdict: not connected, or an error.
    pub error: u64,
    /// No verdict within the timeout.
    pub timeout: u64,
}

/// One client-facing listener.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerStatus {
    /// Name (as in metrics).
    pub name: String,
    /// `http`, `https` or `rpc`.
    pub kind: String,
    /// Bound address.
    pub listen: String,
    /// Whether TLS is terminated here.
    pub tls: bool,
    /// Open client connections.
    pub connections_active: u64,
    /// The pools it forwards to.
    #[serde(default)]
    pub pools: Vec<String>,
    /// Whether `/readyz/<name>` answers 200: keys loaded and a member up in each of its pools.
    #[serde(default)]
    pub ready: bool,
    /// Why not, when not ready.
    #[serde(default)]
    pub not_ready: Vec<String>,
    /// The sources with the most open connections (then the most refused), IPv6 per /64.
    #[serde(default)]
    pub top_talkers: Vec<Talker>,
}

/// One pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStatus {
    /// Pool name.
    pub name: String,
    /// The member port key it uses (`https`, `mdb`, …).
    pub port: String,
    /// `rendezvous` or `least_conn`.
    pub balance: String,
    /// Whether a principal sticks to one member.
    pub affinity: bool,
    /// Whether members are reached over TLS.
    pub tls: bool,
    /// `http <path>`, `tcp` or `none`.
    pub health_check: String,
    /// Members able to take new sessions.
    pub members_up: usize,
    /// Members, configured ones first, then retiring ones.
    pub members: Vec<MemberStatus>,
}

/// One member of a pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Member name.
    pub name: String,
    /// Host name or address.
    pub address: String,
    /// Port used by this pool.
    pub port: u16,
    /// Selection weight.
    pub weight: u32,
    /// Active health verdict: `up` or `down`.
    pub health: String,
    /// Whether at least one active check has reported.
    pub checked: bool,
    /// Whether the member can take a new session (healthy, not draining, weight > 0).
    pub up: bool,
    /// Drained by config or the admin API.
    pub draining: bool,
    /// Removed by a reload; lives until its last session ends.
    pub retiring: bool,
    /// Remaining passive-ejection time, milliseconds, if ejected.
    pub ejected_ms: Option<u64>,
    /// Open sessions through this pool.
    pub active_sessions: u64,
    /// Consecutive passing checks.
    pub consecutive_successes: u32,
    /// Consecutive failing checks.
    pub consecutive_failures: u32,
    /// Last check or connect error.
    pub last_error: Option<String>,
}

impl PoolStatus {
    /// Reads a pool's current state.
    pub fn of(pool: &Pool) -> Self {
        let cfg = pool.config();
        let members: Vec<_> = pool
            .members()
            .iter()
            .chain(&pool.retiring())
            .map(|m| MemberStatus::of(m))
            .collect();
        Self {
            name: pool.name().into(),
            port: cfg.port.clone(),
            balance: match cfg.balance {
                Balance::Rendezvous => "rendezvous".into(),
                Balance::LeastConn => "least_conn".into(),
            },
            affinity: cfg.affinity,
            tls: cfg.tls.is_some(),
            health_check: match cfg.health.kind {
                HealthKind::Http => format!("http {}", cfg.health.path),
                HealthKind::Tcp => "tcp".into(),
                HealthKind::None => "none".into(),
            },
            members_up: pool.up_count(),
            members,
        }
    }
}

impl MemberStatus {
    /// Reads a member's current state.
    pub fn of(m: &Member) -> Self {
        let h = m.health();
        let now = std::time::Instant::now();
        Self {
            name: m.name.clone(),
            address: m.host.clone(),
            port: m.port,
            weight: m.weight(),
            health: if m.is_healthy() { "up" } else { "down" }.into(),
            checked: h.is_checked(),
            up: m.is_eligible(),
            draining: m.is_draining(),
            retiring: m.is_retiring(),
            ejected_ms: m.ejected_for(now).map(|d| d.as_millis() as u64),
            active_sessions: m.active(),
            consecutive_successes: h.successes(),
            consecutive_failures: h.failures(),
            last_error: m.last_error(),
        }
    }
}
