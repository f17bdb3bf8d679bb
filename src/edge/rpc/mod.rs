//! The MS-RPC/TCP edge (DESIGN §2 "MS-RPC over TCP"): the endpoint mapper and the static RPC
//! ports of the CAS array.
//!
//! For each connection kedge reads exactly the first PDU (bounded by `max_bind_bytes` and
//! `bind_timeout_ms`, [`first_bind`]), parses it as bind / alter_context, asks the interface map
//! which SPN service it needs and validates its auth verifier's Kerberos token against it
//! ([`admission`]). An admitted bind goes unchanged to a backend chosen by the principal, and
//! both directions are spliced ([`splice`]); the backend completes bind_ack / auth3 /
//! alter_context with its own ASA key. A refused bind gets a `bind_nak` echoing its call_id and
//! drep, with the reject reason [`error::classify`] picks, and the connection closes.
//!
//! The splice keeps reading the client's PDU headers (C706 12.6.3.1): ordinary PDUs pass as they
//! arrive, but every later bind, alter_context and rpc_auth_3 is held whole and decided by
//! [`context_policy`] — a continuation of an admitted security context passes; a new security
//! context, a restarted one or a move to an interface of another service goes through the same
//! [`admission::admit`] as a first bind and must authenticate the same principal; an
//! unauthenticated endpoint-mapper connection may bind the endpoint mapper only. A refused one is
//! answered with a bind_nak (bind) or a fault (alter_context, auth3; C706 12.6.4.7), never
//! reaches the backend, and both sides are closed. Only a listener with `endpoint_mapper = true`
//! admits unauthenticated endpoint-mapper binds by default.
//!
//! Shape: mini-redis's `run(listener, shutdown)` — [`serve_rpc`] takes a bound listener, so
//! tests bind `127.0.0.1:0`.

pub mod admission;
mod connection;
pub mod context_policy;
#[cfg(test)]
mod context_policy_tests;
mod copy;
pub mod error;
pub mod first_bind;
mod listener;
pub mod splice;
#[cfg(test)]
mod splice_tests;

use std::sync::Arc;

use crate::config::RpcListenerConfig;
use crate::edge::workers::Workers;
use crate::krb::acceptor::Acceptor;
use crate::observe::access_log::AccessLog;
use crate::pool::Pool;
use crate::replay_store::ReplayStore;
use crate::rpc::{InterfaceMap, RpcError};

pub use admission::Admission;
pub use error::{classify, Outcome, RpcEdgeError, Side};
pub use listener::serve_rpc;

/// The `protocol` label of RPC auth metrics.
pub const PROTOCOL: &str = "rpc";

/// What an RPC listener shares with its connections.
pub struct RpcEdgeContext {
    /// The Kerberos acceptor (process-wide: its replay cache is shared by every listener).
    pub acceptor: Arc<Acceptor>,
    /// The backend pool of this listener.
    pub pool: Arc<Pool>,
    /// Interface → SPN service (Exchange defaults plus the listener's `interfaces`).
    pub interfaces: InterfaceMap,
    /// Per-core workers the connections run on (`None`: the current runtime).
    pub workers: Option<Arc<Workers>>,
    /// The replay store shared with other replicas, where one is configured.
    pub replay_store: Option<Arc<ReplayStore>>,
    /// The access log, where one is written (a line per connection).
    pub access_log: Option<Arc<AccessLog>>,
    /// `kedge_rpc_bind_duration_seconds{listener}`.
    pub bind_duration: metrics::Histogram,
}

impl RpcEdgeContext {
    /// Builds the context of a listener: its interface map is the Exchange default extended by
    /// `cfg.interfaces`; a bad entry is reported.
    pub fn new(acceptor: Arc<Acceptor>, pool: Arc<Pool>, cfg: &RpcListenerConfig) -> Result<Self, RpcError> {
        let interfaces =
            InterfaceMap::with_extensions(cfg.interfaces.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        Ok(Self {
            acceptor,
            pool,
            interfaces,
            workers: None,
            replay_store: None,
            access_log: None,
            bind_duration: crate::observe::rpc_bind_duration(&cfg.name),
        })
    }

    /// Writes an access-log line per connection to `log`.
    pub fn with_access_log(mut self, log: Arc<AccessLog>) -> Self {
        self.access_log = Some(log);
        self
    }

    /// Serves connections on per-core workers instead of the current runtime.
    pub fn with_workers(mut self, workers: Arc<Workers>) -> Self {
        self.workers = Some(workers);
        self
    }

    /// Records every Kerberos admission in a replay store shared with other replicas.
    pub fn with_replay_store(mut self, store: Arc<ReplayStore>) -> Self {
        self.replay_store = Some(store);
        self
    }
}
