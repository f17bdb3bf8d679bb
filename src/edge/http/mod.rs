//! The HTTP(S) edge (DESIGN.md §2 "HTTPS"): TLS termination, connection-bound Negotiate,
//! passthrough and assert forwarding, limits and graceful shutdown.
//!
//! Entry point: [`serve_http`], mini-redis style — the caller binds, tests bind `127.0.0.1:0`.
//!
//! | file | holds |
//! |---|---|
//! | `listener.rs` | accept loop, connection limit, shutdown |
//! | `connection.rs` | one client connection: TLS handshake, hyper, timeouts |
//! | `handler.rs` | one request: route, credentials, connection auth state, dispatch |
//! | `negotiate.rs` | Authorization parsing, identities, challenge |
//! | `passthrough.rs` | the pinned backend connection per client connection |
//! | `wire_link.rs` | a pinned connection kedge speaks HTTP/1.1 on: parked, watched, checked out per exchange |
//! | `wire_exchange.rs` | one request and response on it, both bodies copied full duplex |
//! | `h1_frame.rs` | HTTP/1.1 framing, pure: request heads out, response heads and chunked bodies in |
//! | `assert.rs` | identity headers, HMAC, pooled backend connections (wire links per worker) |
//! | `backend.rs` | connecting to a member (pool, TLS), its timeouts |
//! | `backend_idle.rs` | the backend connection's idle timeout |
//! | `forward_headers.rs` | hop-by-hop headers, `X-Forwarded-For`, `Forwarded` |
//! | `limits.rs` | head and idle timeouts |
//! | `watched_io.rs` | the stream wrapper both clocks watch bytes through |
//! | `tls/` | rustls server, certificates by SNI, reload on SIGHUP and file change, channel binding, handshake failure reasons |
//! | `error.rs` | error kind + side → status, metric label, log level |
//! | `routes.rs` | route table, path checks |
//! | `body.rs` | response bodies; the access-log line written when one ends |

mod assert;
mod assert_pool;
mod assert_signature;
mod backend;
mod backend_idle;
mod body;
mod connection;
pub mod error;
pub mod forward_headers;
pub(crate) mod h1_frame;
mod handler;
mod limits;
mod listener;
pub mod negotiate;
mod passthrough;
mod routes;
pub mod tls;
mod watched_io;
mod wire_exchange;
mod wire_link;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::HttpListenerConfig;
pub use assert_signature::{signature as assert_signature, Signed as AssertSigned};
pub use listener::serve_http;

/// Builds `cfg`'s routes over `ctx` as [`serve_http`] will (pools, assert headers, HMAC key
/// file), so a start or `kedge run --check` fails before anything listens.
pub fn check_routes(cfg: &HttpListenerConfig, ctx: &EdgeContext) -> Result<(), ServeError> {
    routes::RouteTable::build(cfg, ctx).map(drop)
}
pub use tls::{ServerTls, TlsError};

use self::assert::AssertPool;
use self::backend::Backend;
use crate::edge::workers::Workers;
use crate::edge::Authenticate;
use crate::observe::access_log::AccessLog;
use crate::pool::Pool;

/// What the HTTP edge needs from the rest of kedge: the token validator, the backend pools by
/// name and, for a TLS listener, its certificate. Build one per listener (they are cheap: the
/// validator and pools are shared `Arc`s).
pub struct EdgeContext {
    auth: Arc<dyn Authenticate>,
    pools: BTreeMap<String, Arc<Pool>>,
    tls: Option<ServerTls>,
    backends: BTreeMap<String, Backend>,
    assert_pools: BTreeMap<String, Arc<AssertPool>>,
    workers: Option<Arc<Workers>>,
    access_log: Option<Arc<AccessLog>>,
}

impl std::fmt::Debug for EdgeContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeContext")
            .field("pools", &self.pools.keys().collect::<Vec<_>>())
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl EdgeContext {
    /// A context over a validator (normally the [`Acceptor`](crate::krb::acceptor::Acceptor)) and
    /// the pools (each with its own backend TLS client).
    pub fn new(auth: Arc<dyn Authenticate>, pools: BTreeMap<String, Arc<Pool>>) -> Self {
        let mut backends = BTreeMap::new();
        let mut assert_pools = BTreeMap::new();
        for (name, pool) in &pools {
            let backend = Backend {
                pool: pool.clone(),
                response_time: crate::observe::backend_response_duration(name),
            };
            assert_pools.insert(name.clone(), Arc::new(AssertPool::new(backend.clone())));
            backends.insert(name.clone(), backend);
        }
        Self {
            auth,
            pools,
            tls: None,
            backends,
            assert_pools,
            workers: None,
            access_log: None,
        }
    }

    /// Writes an access-log line per request to `log`.
    pub fn with_access_log(mut self, log: Arc<AccessLog>) -> Self {
        self.access_log = Some(log);
        self
    }

    /// The access log, where one is written.
    pub fn access_log(&self) -> Option<&Arc<AccessLog>> {
        self.access_log.as_ref()
    }

    /// Serves connections on per-core workers instead of the current runtime.
    pub fn with_workers(mut self, workers: Arc<Workers>) -> Self {
        self.workers = Some(workers);
        self
    }

    /// The per-core workers, when connections run on them.
    pub fn workers(&self) -> Option<&Arc<Workers>> {
        self.workers.as_ref()
    }

    /// Adds the listener's TLS (required when its config has `tls`).
    pub fn with_tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The validator.
    pub fn auth(&self) -> &Arc<dyn Authenticate> {
        &self.auth
    }

    /// The pools by name.
    pub fn pools(&self) -> &BTreeMap<String, Arc<Pool>> {
        &self.pools
    }

    /// The listener's TLS.
    pub fn tls(&self) -> Option<&ServerTls> {
        self.tls.as_ref()
    }

    fn backend(&self, pool: &str) -> Option<Backend> {
        self.backends.get(pool).cloned()
    }

    fn assert_pool(&self, pool: &str) -> Option<Arc<AssertPool>> {
        self.assert_pools.get(pool).cloned()
    }
}

/// Why a listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The config has `tls` but the context carries no certificate.
    #[error("listener {0}: tls is configured but no certificate was loaded (EdgeContext::with_tls)")]
    TlsNotLoaded(String),
    /// A route could not be set up.
    #[error("route {index}: {reason}")]
    Route {
        /// Index in the listener's `routes`.
        index: usize,
        /// Why.
        reason: String,
    },
    /// The listening socket could not be shared with the worker threads.
    #[error("listener {name}: cannot serve on the worker threads: {source}")]
    Workers {
        /// The listener.
        name: String,
        /// Why.
        source: std::io::Error,
    },
}
