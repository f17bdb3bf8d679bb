//! Opening an HTTP/1.1 connection to a backend member: a connection from the pool (which
//! chooses the member and fails over), TLS where the pool has it, then hyper's client handshake.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;

use super::error::{EdgeError, ErrorKind};
use crate::pool::{MemberLease, Pool, PoolError};

/// One HTTP/1.1 connection to a member. Dropping it closes the connection.
#[derive(Debug)]
pub struct BackendLink {
    /// Sends requests on this connection.
    pub sender: SendRequest<Incoming>,
    lease: MemberLease,
    driver: JoinHandle<()>,
}

impl BackendLink {
    /// The member's name.
    pub fn member(&self) -> &str {
        &self.lease.member().name
    }

    /// Whether the connection is gone (closed by the member, or failed).
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed() || self.driver.is_finished()
    }
}

impl Drop for BackendLink {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// A pool plus the TLS client for its members.
#[derive(Clone, Debug)]
pub struct Backend {
    /// The pool (which also holds the TLS client for its members).
    pub pool: Arc<Pool>,
}

impl Backend {
    /// Connects for `key` (the principal, for affinity) and completes the handshakes.
    pub async fn open(&self, key: Option<&str>, mode: &'static str) -> Result<BackendLink, EdgeError> {
        let conn = self.pool.connect(key).await.map_err(|e| match e {
            PoolError::NoHealthyMember { .. }
            | PoolError::Config { .. }
            | PoolError::UnknownMember { .. } => EdgeError::backend(ErrorKind::Unavailable, e.to_string()),
            PoolError::AllFailed { .. } => EdgeError::backend(ErrorKind::Connect, e.to_string()),
        })?;
        crate::edge::metrics::backend_connection(self.pool.name(), mode);
        let timeout = Duration::from_millis(self.pool.config().connect_timeout_ms.max(1));
        let member = conn.lease.member().clone();
        let (sender, driver) = match self.pool.tls_for(&member) {
            None if self.pool.config().tls.is_some() => {
                return Err(EdgeError::backend(
                    ErrorKind::Handshake,
                    format!("{}: no valid TLS server name", member.name),
                ))
            }
            None => handshake(conn.stream).await?,
            Some((config, name)) => {
                let connector = tokio_rustls::TlsConnector::from(config);
                let stream = tokio::time::timeout(timeout, connector.connect(name, conn.stream))
                    .await
                    .map_err(|_| {
                        EdgeError::backend(ErrorKind::Timeout, format!("{}: TLS handshake", member.name))
                    })?
                    .map_err(|e| {
                        EdgeError::backend(ErrorKind::Handshake, format!("{}: TLS: {e}", member.name))
                    })?;
                handshake(stream).await?
            }
        };
        Ok(BackendLink {
            sender,
            lease: conn.lease,
            driver,
        })
    }
}

/// Classifies a failed exchange with a member: a request body that broke on the client's side
/// (hyper reports it as a user error) is the client's fault, anything else the backend's.
pub fn exchange_error(e: hyper::Error) -> EdgeError {
    if e.is_user() {
        EdgeError::client(ErrorKind::Io, format!("request body: {e}"))
    } else {
        EdgeError::backend(ErrorKind::Io, e.to_string())
    }
}

async fn handshake<T>(io: T) -> Result<(SendRequest<Incoming>, JoinHandle<()>), EdgeError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .preserve_header_case(true)
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| EdgeError::backend(ErrorKind::Handshake, format!("HTTP handshake: {e}")))?;
    let driver = tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "backend connection ended with an error");
        }
    });
    Ok((sender, driver))
}
