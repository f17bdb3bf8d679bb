//! The accept loops of an HTTP(S) listener (one per worker thread): a connection limit, one task
//! per connection, and graceful shutdown (stop accepting, let connections finish up to the grace
//! period, cut the rest).

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
use crate::edge::shutdown::{self, Drain, DrainSignal};
use crate::edge::source_limits::{self, SourceLimits};
use crate::edge::workers::{accept_loops, Seat};

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
        access_log: ctx.access_log().cloned(),
        label: cfg.name.as_str().into(),
        no_route: crate::observe::RequestDurations::new(&cfg.name, "none"),
        responses: crate::observe::ResponseCounters::new(&cfg.name),
        bytes: crate::edge::metrics::bytes_counters(&cfg.name),
    });
    let tls = shared.tls.is_some();
    // Shared by every accept loop: one connection limit, one drain switch per listener.
    let permits = Arc::new(Semaphore::new(cfg.limits.max_connections));
    let sources = SourceLimits::new(cfg.limits.per_source);
    source_limits::register(&cfg.name, &sources);
    let drain = Arc::new(Drain::new());
    tracing::info!(listener = %cfg.name, addr = ?listener.local_addr().ok(), tls,
        workers = ctx.workers().map_or(0, |w| w.len()), "HTTP listener serving");

    let cut = accept_loops(listener, ctx.workers(), shutdown, move |l, stop, seat| {
        let door = Door {
            permits: permits.clone(),
            sources: sources.clone(),
        };
        accept_loop(l, stop, seat, shared.clone(), door, drain.clone())
    })
    .await
    .map_err(|source| ServeError::Workers {
        name: cfg.name.clone(),
        source,
    })?
    .into_iter()
    .sum::<usize>();
    tracing::info!(listener = %cfg.name, cut, "HTTP listener stopped");
    Ok(())
}

/// What a new connection must get past: the per-source limits, then the listener's limit.
struct Door {
    permits: Arc<Semaphore>,
    sources: Arc<SourceLimits>,
}

/// One accept loop and the connections it accepted; returns how many were cut at shutdown.
async fn accept_loop(
    listener: TcpListener,
    mut stop: DrainSignal,
    seat: Seat,
    shared: Arc<ListenerShared>,
    door: Door,
    drain: Arc<Drain>,
) -> usize {
    let name = shared.name.clone();
    let tls = shared.tls.is_some();
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.draining() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                // Behind a balancer: the per-source limits apply to the client its PROXY
                // header names, so they are checked once the header is read.
                Ok((stream, peer)) if shared.cfg.proxy_protocol.is_some() => match door.permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let (shared, signal, sources) = (shared.clone(), drain.signal(), door.sources.clone());
                        seat.spawn(&mut tasks, stream, move |stream| {
                            connection::serve_proxied(stream, peer, shared, signal, permit, sources)
                        });
                    }
                    Err(_) => {
                        metrics::limit_exceeded(&name, "max_connections");
                        tasks.spawn(connection::refuse(stream, tls));
                    }
                },
                Ok((stream, peer)) => match door.sources.admit(peer.ip(), std::time::Instant::now()) {
                    Err(refusal) => {
                        // Counted before it is closed (a client that sees the close sees the
                        // count), then closed at once: no handshake, no byte read.
                        metrics::limit_exceeded(&name, refusal.label());
                        tracing::info!(listener = %name, %peer, reason = refusal.label(), "connection refused");
                        drop(stream);
                    }
                    Ok(source) => match door.permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let (shared, signal) = (shared.clone(), drain.signal());
                        seat.spawn(&mut tasks, stream, move |stream| {
                            connection::serve(stream, peer, None, shared, signal, (permit, source))
                        });
                    }
                    Err(_) => {
                        metrics::limit_exceeded(&name, "max_connections");
                        metrics::edge_error(&name, "internal", "overloaded");
                        tracing::debug!(listener = %name, %peer, "connection limit reached");
                        tasks.spawn(connection::refuse(stream, tls));
                    }
                    },
                },
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(listener = %name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    drop(listener);
    tracing::debug!(listener = %name, open = tasks.len(), "HTTP accept loop draining");
    drain.start();
    shutdown::finish(
        &mut tasks,
        Duration::from_secs(shared.cfg.limits.shutdown_grace_secs),
        |_| {},
    )
    .await
}
