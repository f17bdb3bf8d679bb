//! Opening a connection to a backend member: a connection from the pool (which chooses the
//! member and fails over), TLS where the pool has it, then a [`WireLink`] kedge speaks HTTP/1.1
//! on itself; and the pool's timeouts on it: the TLS handshake (`connect_timeout_ms`), the response head
//! (`response_header_timeout_ms`) and idleness (`idle_timeout_secs`). A member that accepts and
//! then does not answer in time is ejected like one that refuses connections.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::backend_idle::idle_timeout;
use super::error::{EdgeError, ErrorKind};
use super::wire_exchange::WireError;
use super::wire_link::{BackendIo, Checkout, WireLink};
use crate::pool::{Member, MemberLease, Pool, PoolError};

/// A backend connection's watcher, run by the client connection's own task.
pub type LocalDriver = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where a client connection's task takes the watchers of its pinned backend connections, so
/// that a passthrough connection is watched on the task (and worker thread) that uses it.
#[derive(Clone, Debug)]
pub struct LocalDrivers(pub tokio::sync::mpsc::UnboundedSender<LocalDriver>);

tokio::task_local! {
    /// Set by the client connection's task around every poll of its HTTP connection.
    pub static LOCAL_DRIVERS: LocalDrivers;
}

/// A pool plus the TLS client for its members.
#[derive(Clone)]
pub struct Backend {
    /// The pool (which also holds the TLS client for its members).
    pub pool: Arc<Pool>,
    /// `kedge_backend_response_duration_seconds{pool}`, looked up once.
    pub response_time: std::sync::Arc<crate::observe::StripedHistogram>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl Backend {
    /// Connects for `key` (the principal, for affinity) a connection kedge speaks HTTP/1.1 on
    /// itself, checked out for its first exchange. A passthrough connection is watched on the
    /// client connection's task (it lives and dies with it); an assert one, pooled, on a task of
    /// its own.
    pub async fn open_wire(
        &self,
        key: Option<&str>,
        mode: &'static str,
    ) -> Result<(WireLink, Checkout), EdgeError> {
        // Boxed: connecting (member choice, connect timeout, TLS) is a large future that only
        // a new connection needs; inline it would be part of every request's future, copied
        // at each await.
        let (io, lease) = Box::pin(self.connect(key, mode)).await?;
        Ok(WireLink::new(io, lease, mode == "passthrough"))
    }

    /// A connection to a member chosen for `key`, with TLS where the pool has it and the pool's
    /// idle timeout.
    async fn connect(
        &self,
        key: Option<&str>,
        mode: &'static str,
    ) -> Result<(Box<dyn BackendIo>, MemberLease), EdgeError> {
        let conn = self.pool.connect(key).await.map_err(|e| match e {
            PoolError::NoHealthyMember { .. }
            | PoolError::Config { .. }
            | PoolError::UnknownMember { .. } => EdgeError::backend(ErrorKind::Unavailable, e.to_string()),
            PoolError::AllFailed { .. } => EdgeError::backend(ErrorKind::Connect, e.to_string()),
        })?;
        crate::edge::metrics::backend_connection(self.pool.name(), mode);
        let cfg = self.pool.config();
        let timeout = Duration::from_millis(cfg.connect_timeout_ms.max(1));
        let idle = Duration::from_secs(cfg.idle_timeout_secs.max(1));
        let member = conn.lease.member().clone();
        let stream = idle_timeout(conn.stream, idle);
        let io: Box<dyn BackendIo> = match self.pool.tls_for(&member) {
            None if self.pool.config().tls.is_some() => {
                return Err(EdgeError::backend(
                    ErrorKind::Handshake,
                    format!("{}: no valid TLS server name", member.name),
                ))
            }
            None => Box::new(stream),
            Some((config, name)) => {
                let connector = tokio_rustls::TlsConnector::from(config);
                let stream = tokio::time::timeout(timeout, connector.connect(name, stream))
                    .await
                    .map_err(|_| {
                        let what = format!("no TLS handshake within {} ms", timeout.as_millis());
                        self.pool.eject(&member, what.clone());
                        EdgeError::backend(ErrorKind::Timeout, format!("{}: {what}", member.name))
                    })?
                    .map_err(|e| {
                        EdgeError::backend(ErrorKind::Handshake, format!("{}: TLS: {e}", member.name))
                    })?;
                Box::new(stream)
            }
        };
        Ok((io, conn.lease))
    }
}

impl Backend {
    /// The pool's `response_header_timeout_ms`.
    pub fn head_timeout(&self) -> Duration {
        Duration::from_millis(self.pool.config().response_header_timeout_ms.max(1))
    }

    /// Waits for `response` (an exchange with `member`, which times its response head itself)
    /// and records how long it took (upstream latency). A member that did not answer in time is
    /// ejected, and the request is answered 504.
    pub async fn response_head<T>(
        &self,
        member: &Arc<Member>,
        response: impl Future<Output = Result<T, WireError>>,
    ) -> Result<T, EdgeError> {
        let sent = std::time::Instant::now();
        match response.await {
            Err(e @ WireError::HeadTimeout(_)) => {
                self.pool.eject(member, e.to_string());
                Err(e.into_edge(&member.name))
            }
            r => {
                self.response_time.record(sent.elapsed().as_secs_f64());
                // Answered in time (or failed at once): not a member that holds requests.
                member.answered();
                r.map_err(|e| e.into_edge(&member.name))
            }
        }
    }
}

/// Runs a backend connection's watcher on the client connection's task when `local` and that
/// task takes drivers (`LOCAL_DRIVERS`), else on a task of its own. It ends when the
/// connection does.
pub fn drive(run: impl Future<Output = ()> + Send + 'static, local: bool) {
    let run: LocalDriver = Box::pin(run);
    let tx = if local {
        LOCAL_DRIVERS.try_with(|d| d.0.clone()).ok()
    } else {
        None
    };
    match tx {
        Some(tx) => {
            if let Err(back) = tx.send(run) {
                tokio::spawn(back.0);
            }
        }
        None => {
            tokio::spawn(run);
        }
    }
}
