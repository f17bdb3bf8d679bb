//! The accept loop of one RPC listener and its graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::connection::{refuse_over_limit, serve_connection, serve_proxied};
use super::splice::Meters;
use super::RpcEdgeContext;
use crate::config::RpcListenerConfig;
use crate::edge::shutdown::{self, DrainSignal};
use crate::edge::source_limits::{self, SourceLimits};
use crate::edge::workers::{accept_loops, Seat};
use crate::observe::{self, Direction};

/// Pause after a failed `accept` (out of file descriptors, …) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves MS-RPC/TCP on `listener` until `shutdown` resolves (mini-redis's `run(listener,
/// shutdown)`).
///
/// Each connection is served as the module docs describe. At most `cfg.max_connections` are
/// open at once; more are closed on arrival and counted. When `shutdown` resolves the listener
/// stops accepting (and is closed), connections still reading their bind or spliced run on for
/// up to `cfg.shutdown_grace_secs`, then the rest are cut; the function returns when every
/// connection task has ended.
pub async fn serve_rpc(
    listener: TcpListener,
    cfg: Arc<RpcListenerConfig>,
    ctx: Arc<RpcEdgeContext>,
    shutdown: impl Future,
) {
    let limit = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
    let sources = SourceLimits::new(cfg.per_source);
    source_limits::register(&cfg.name, &sources);
    // Label lookups once per listener, not per connection.
    let meters = Arc::new(Meters {
        up: observe::byte_meter(&cfg.name, Direction::ClientToBackend),
        down: observe::byte_meter(&cfg.name, Direction::BackendToClient),
    });
    tracing::info!(listener = %cfg.name, addr = ?listener.local_addr().ok(), pool = ctx.pool.name(),
        workers = ctx.workers.as_ref().map_or(0, |w| w.len()), "rpc listener started");
    let name = cfg.name.clone();
    let workers = ctx.workers.clone();
    let loops = accept_loops(listener, workers.as_ref(), shutdown, move |l, stop, seat| {
        accept_loop(
            l,
            stop,
            seat,
            cfg.clone(),
            ctx.clone(),
            (limit.clone(), sources.clone()),
            meters.clone(),
        )
    })
    .await;
    match loops {
        Ok(cut) => {
            let cut: usize = cut.into_iter().sum();
            tracing::info!(listener = %name, cut, "rpc listener stopped");
        }
        Err(e) => {
            tracing::error!(listener = %name, error = %e, "rpc listener could not serve on the worker threads")
        }
    }
}

/// One accept loop and its connections; returns how many were cut when the grace period ran out.
async fn accept_loop(
    listener: TcpListener,
    mut stop: DrainSignal,
    seat: Seat,
    cfg: Arc<RpcListenerConfig>,
    ctx: Arc<RpcEdgeContext>,
    (limit, sources): (Arc<Semaphore>, Arc<SourceLimits>),
    meters: Arc<Meters>,
) -> usize {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = stop.draining() => break,
            Some(done) = conns.join_next(), if !conns.is_empty() => log_join(&cfg.name, done),
            accepted = listener.accept() => match accepted {
                // Behind a balancer: per-source limits apply to the client its PROXY header
                // names, once the header is read.
                Ok((stream, peer)) if cfg.proxy_protocol.is_some() => match limit.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let (cfg, ctx, meters, sources) = (cfg.clone(), ctx.clone(), meters.clone(), sources.clone());
                        seat.spawn(&mut conns, stream, move |stream| async move {
                            serve_proxied(stream, peer, cfg, ctx, meters, sources).await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        refuse_over_limit(&cfg.name, peer);
                        drop(stream);
                    }
                },
                // Per-source limits first: over them, closed at once and counted.
                Ok((stream, peer)) => match sources.admit(peer.ip(), std::time::Instant::now()) {
                    Err(refusal) => {
                        // Counted before it is closed: a client that sees the close sees the count.
                        observe::limit_exceeded(&cfg.name, refusal.label());
                        tracing::info!(listener = %cfg.name, %peer, reason = refusal.label(), "rpc connection refused");
                        drop(stream);
                    }
                    Ok(source) => match limit.clone().try_acquire_owned() {
                        Ok(permit) => {
                            let (cfg, ctx, meters) = (cfg.clone(), ctx.clone(), meters.clone());
                            seat.spawn(&mut conns, stream, move |stream| async move {
                                serve_connection(stream, peer, None, cfg, ctx, meters).await;
                                drop((permit, source));
                            });
                        }
                        Err(_) => {
                            refuse_over_limit(&cfg.name, peer);
                            drop(stream);
                        }
                    },
                },
                Err(e) => {
                    tracing::warn!(listener = %cfg.name, error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    let open = conns.len();
    tracing::info!(listener = %cfg.name, open, grace_secs = cfg.shutdown_grace_secs,
        "rpc listener stopped accepting; waiting for open connections");
    let grace = Duration::from_secs(cfg.shutdown_grace_secs);
    let cut = shutdown::finish(&mut conns, grace, |done| log_join(&cfg.name, done)).await;
    if cut > 0 {
        tracing::warn!(listener = %cfg.name, cut, "shutdown grace expired; connections closed");
    }
    cut
}

fn log_join(listener: &str, done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            tracing::error!(listener, error = %e, "rpc connection task panicked");
        }
    }
}
