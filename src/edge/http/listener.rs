//! The accept loop of an HTTP(S) listener: a connection limit, one task per connection, and
//! graceful shutdown (stop accepting, let connections finish up to the grace period, cut the rest).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::handler::ListenerShared;
use super::routes::RouteTable;
use super::{connection, EdgeContext, ServeError};
use crate::config::HttpListenerConfig;
use crate::edge::metrics;
use crate::edge::shutdown::{self, Drain};
use crate::edge::workers::spawn_connection;

/// Serves HTTP(S) on `listener` until `shutdown` resolves, then drains: no new connections,
/// in-flight exchanges finish (idle keep-alive connections close at once), and whatever is still
/// open after `limits.shutdown_grace_secs` is cut. Returns once every connection is gone.
pub async fn serve_http(
    listener: TcpListener,
    cfg: Arc<HttpListenerConfig>,
    ctx: Arc<EdgeContext>,
    shutdown: impl Future,
) -> Result<(), ServeError> {
    if cfg.tls.is_some() && ctx.tls().is_none() {
        return Err(ServeError::TlsNotLoaded(cfg.name.clone()));
    }
    let routes = RouteTable::build(&cfg, &ctx)?;
    let shared = Arc::new(ListenerShared {
        name: cfg.name.clone(),
        cfg: cfg.clone(),
        routes,
        auth: ctx.auth().clone(),
        tls: ctx.tls().cloned(),
    });
    let tls = shared.tls.is_some();
    let workers = ctx.workers().cloned();
    let permits = Arc::new(Semaphore::new(cfg.limits.max_connections));
    let drain = Drain::new();
    let mut tasks = JoinSet::new();
    tracing::info!(listener = %cfg.name, addr = ?listener.local_addr().ok(), tls, "HTTP listener serving");

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let (shared, signal) = (shared.clone(), drain.signal());
                        spawn_connection(&mut tasks, workers.as_deref(), stream, move |stream| {
                            connection::serve(stream, peer, shared, signal, permit)
                        });
                    }
                    Err(_) => {
                        metrics::limit_exceeded(&cfg.name, "max_connections");
                        metrics::edge_error(&cfg.name, "internal", "overloaded");
                        tracing::debug!(listener = %cfg.name, %peer, "connection limit reached");
                        tasks.spawn(connection::refuse(stream, tls));
                    }
                },
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(listener = %cfg.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    drop(listener);
    let open = tasks.len();
    tracing::info!(listener = %cfg.name, open, "HTTP listener draining");
    drain.start();
    let cut = shutdown::finish(&mut tasks, Duration::from_secs(cfg.limits.shutdown_grace_secs)).await;
    tracing::info!(listener = %cfg.name, cut, "HTTP listener stopped");
    Ok(())
}
