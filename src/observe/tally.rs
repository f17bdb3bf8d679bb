//! Process-wide running totals for `/status` (the Prometheus registry is for scraping; these
//! are plain atomics so the status page needs no parsing of the exposition).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::names::BYTES_TOTAL;
use super::record::Direction;
use super::striped::{family_sum, StripedCounter};

/// Bytes relayed in `direction` on every listener so far.
fn bytes_total(direction: Direction) -> u64 {
    family_sum(BYTES_TOTAL, ("direction", direction.as_str()))
}

/// Running totals since the process started.
#[derive(Debug, Default)]
pub struct Tally {
    /// Striped: every accepted token adds to it.
    pub(super) auth_ok: StripedCounter,
    pub(super) auth_fail: AtomicU64,
    pub(super) ntlm_rejected: AtomicU64,
    pub(super) replay_rejected: AtomicU64,
    pub(super) connections_active: AtomicI64,
    pub(super) connections_total: AtomicU64,
    pub(super) sessions_active: AtomicI64,
    pub(super) backend_failovers: AtomicU64,
    pub(super) backend_ejections: AtomicU64,
    pub(super) keytab_reloads_ok: AtomicU64,
    pub(super) keytab_reloads_rejected: AtomicU64,
    pub(super) limit_exceeded: AtomicU64,
    pub(super) replay_cache_full: AtomicU64,
}

static TALLY: Tally = Tally {
    auth_ok: StripedCounter::new(),
    auth_fail: AtomicU64::new(0),
    ntlm_rejected: AtomicU64::new(0),
    replay_rejected: AtomicU64::new(0),
    connections_active: AtomicI64::new(0),
    connections_total: AtomicU64::new(0),
    sessions_active: AtomicI64::new(0),
    backend_failovers: AtomicU64::new(0),
    backend_ejections: AtomicU64::new(0),
    keytab_reloads_ok: AtomicU64::new(0),
    keytab_reloads_rejected: AtomicU64::new(0),
    limit_exceeded: AtomicU64::new(0),
    replay_cache_full: AtomicU64::new(0),
};

/// The process's totals.
pub fn tally() -> &'static Tally {
    &TALLY
}

/// A copy of the totals, as `/status` shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Successful authentications.
    pub auth_ok: u64,
    /// Failed authentications (every reason, NTLM and replays included).
    pub auth_fail: u64,
    /// NTLM offers refused.
    pub ntlm_rejected: u64,
    /// Replays refused.
    pub replay_rejected: u64,
    /// Open client connections.
    pub connections_active: i64,
    /// Client connections accepted.
    pub connections_total: u64,
    /// Open backend sessions.
    pub sessions_active: i64,
    /// Bytes relayed client → backend.
    pub bytes_client_to_backend: u64,
    /// Bytes relayed backend → client.
    pub bytes_backend_to_client: u64,
    /// Backend connect failovers.
    pub backend_failovers: u64,
    /// Passive ejections.
    pub backend_ejections: u64,
    /// Keytab reloads accepted.
    pub keytab_reloads_ok: u64,
    /// Keytab reloads refused (corrupt or half-written file).
    pub keytab_reloads_rejected: u64,
    /// Limits hit.
    pub limit_exceeded: u64,
    /// Replay cache full events.
    pub replay_cache_full: u64,
}

impl Tally {
    /// Reads every total.
    pub fn snapshot(&self) -> Counters {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counters {
            auth_ok: self.auth_ok.sum(),
            auth_fail: r(&self.auth_fail),
            ntlm_rejected: r(&self.ntlm_rejected),
            replay_rejected: r(&self.replay_rejected),
            connections_active: self.connections_active.load(Ordering::Relaxed),
            connections_total: r(&self.connections_total),
            sessions_active: self.sessions_active.load(Ordering::Relaxed),
            // Summed from `kedge_bytes_total`'s series, which every relayed chunk adds to once.
            bytes_client_to_backend: bytes_total(Direction::ClientToBackend),
            bytes_backend_to_client: bytes_total(Direction::BackendToClient),
            backend_failovers: r(&self.backend_failovers),
            backend_ejections: r(&self.backend_ejections),
            keytab_reloads_ok: r(&self.keytab_reloads_ok),
            keytab_reloads_rejected: r(&self.keytab_reloads_rejected),
            limit_exceeded: r(&self.limit_exceeded),
            replay_cache_full: r(&self.replay_cache_full),
        }
    }
}

pub(super) fn bump(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}
