//! One client connection: TLS handshake (bounded by the head timeout), hyper's HTTP/1.1 server
//! with the listener's head limits, and a watchdog for the head and idle timeouts and for
//! graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use crate::edge::proxy_protocol;
use crate::edge::source_limits::{SourceGuard, SourceLimits};
use tokio::time::Instant;

use futures_util::stream::{FuturesUnordered, StreamExt};
use std::future::Future as _;
use std::task::{Context, Poll};

use super::backend::{LocalDriver, LocalDrivers, LOCAL_DRIVERS};
use super::handler::{ListenerShared, Session};
use super::limits::{ConnClock, Expiry, WatchedIo};
use super::passthrough::Origin;
use super::tls::HandshakeFailure;
use crate::edge::metrics;
use crate::edge::shutdown::DrainSignal;
use crate::observe;

/// Serves a connection on a PROXY-protocol listener: reads the header (within the head
/// timeout), admits the client it names under the per-source limits, then serves it as that
/// client. Refused connections are closed without an answer and counted.
pub async fn serve_proxied(
    mut stream: TcpStream,
    via: SocketAddr,
    listener: Arc<ListenerShared>,
    mut drain: DrainSignal,
    permit: OwnedSemaphorePermit,
    sources: Arc<SourceLimits>,
) {
    let Some(pp) = listener.cfg.proxy_protocol.as_ref() else {
        return;
    };
    let head = Duration::from_millis(listener.cfg.limits.header_timeout_ms);
    let door = (listener.name.as_str(), pp);
    let admitted = tokio::select! {
        a = proxy_protocol::admit(&mut stream, via, door, head, &sources) => a,
        _ = drain.draining() => return,
    };
    if let Some(a) = admitted {
        serve(stream, a.peer, a.via, listener, drain, (permit, a.source)).await
    }
}

/// Serves one accepted connection until it ends, times out or is drained. `_places` are its
/// places in the listener's and its source's counts, freed when it ends. `via` is the balancer
/// whose PROXY header named `peer`.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    via: Option<SocketAddr>,
    listener: Arc<ListenerShared>,
    mut drain: DrainSignal,
    _places: (OwnedSemaphorePermit, SourceGuard),
) {
    let _active = metrics::connection_opened(&listener.name);
    let _ = stream.set_nodelay(true);
    let head = Duration::from_millis(listener.cfg.limits.header_timeout_ms);
    match listener.tls.as_ref().map(|t| t.snapshot()) {
        None => run(stream, (peer, via), None, listener, drain).await,
        Some(tls) => {
            // The certificates current now serve this connection's handshake and give its
            // channel binding, whatever a reload installs meanwhile.
            let handshake = tokio::time::timeout(head, tls.acceptor().accept(stream));
            let stream = tokio::select! {
                res = handshake => match res {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        let reason = HandshakeFailure::of(&e).label();
                        tracing::debug!(listener = %listener.name, %peer, reason, error = %e, "TLS handshake failed");
                        metrics::edge_error(&listener.name, "client", "tls_handshake");
                        observe::tls_handshake_failed(&listener.name, reason);
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(listener = %listener.name, %peer, "TLS handshake timed out");
                        metrics::limit_exceeded(&listener.name, "tls_handshake_timeout");
                        observe::tls_handshake_failed(&listener.name, HandshakeFailure::Timeout.label());
                        return;
                    }
                },
                _ = drain.draining() => return,
            };
            let binding = tls.channel_binding_for(stream.get_ref().1.server_name());
            run(stream, (peer, via), Some(binding), listener, drain).await
        }
    }
}

/// `channel_binding`: the RFC 5929 binding of the certificate a TLS connection was served
/// (`None` on plain HTTP). `via`: the balancer whose PROXY header named `peer`.
async fn run<T>(
    io: T,
    (peer, via): (SocketAddr, Option<SocketAddr>),
    channel_binding: Option<Arc<[u8]>>,
    listener: Arc<ListenerShared>,
    mut drain: DrainSignal,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let tls = channel_binding.is_some();
    let limits = &listener.cfg.limits;
    let head = Duration::from_millis(limits.header_timeout_ms);
    let idle = Duration::from_secs(limits.idle_timeout_secs);
    let (bytes_in, bytes_out) = listener.bytes.clone();
    let clock = Arc::new(ConnClock::new(head, bytes_in, bytes_out));
    let session = Arc::new(Session::new(
        listener.clone(),
        Origin { peer, tls },
        via,
        clock.clone(),
        channel_binding,
    ));
    // `handle` is the request's future itself (no async block around it): hyper moves it into
    // its slot once, and a wrapper would be one more copy of the whole state per request.
    let service = service_fn(move |req| session.clone().handle(req));
    let conn = http1::Builder::new()
        .max_buf_size((limits.max_header_bytes + 16 * 1024).max(8192))
        .max_header_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        .keep_alive(true)
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(WatchedIo::new(io, clock.clone())), service);
    tokio::pin!(conn);
    // Pinned backend connections are watched here (between requests), on this task, next to the
    // client connection; their exchanges run inside hyper's poll of it.
    let (driver_tx, mut driver_rx) = tokio::sync::mpsc::unbounded_channel();
    let local = LocalDrivers(driver_tx);
    let mut drivers: FuturesUnordered<LocalDriver> = FuturesUnordered::new();
    let mut draining = false;
    let drained = drain.draining();
    tokio::pin!(drained);
    // One timer for the connection's life, moved only when the next look changes.
    let sleep = tokio::time::sleep_until(Instant::now() + head);
    tokio::pin!(sleep);
    // Backend connections opened while serving (passthrough pins) reach this task's drivers
    // through the task-local, set once around the whole loop.
    LOCAL_DRIVERS
        .scope(local, async move {
            loop {
                let next = match clock.look(Instant::now(), idle) {
                    Ok(at) => at,
                    Err(expiry) => {
                        let limit = match expiry {
                            Expiry::HeaderTimeout => "header_timeout",
                            Expiry::Idle => "idle_timeout",
                            Expiry::Unauthenticated => "unauthenticated_timeout",
                        };
                        tracing::debug!(listener = %listener.name, %peer, limit, "closing connection");
                        metrics::limit_exceeded(&listener.name, limit);
                        return;
                    }
                };
                if sleep.deadline() != next || sleep.is_elapsed() {
                    sleep.as_mut().reset(next);
                }
                // The client side and the watchers of its parked backend connections in one
                // step: a watcher that sees its connection end does so before the next request
                // would check it out.
                let step = std::future::poll_fn(|cx| {
                    poll_drivers(&mut drivers, &mut driver_rx, cx);
                    if let Poll::Ready(res) = conn.as_mut().poll(cx) {
                        return Poll::Ready(res);
                    }
                    poll_drivers(&mut drivers, &mut driver_rx, cx);
                    Poll::Pending
                });
                tokio::select! {
                    biased;
                    res = step => {
                        if let Err(e) = res {
                            connection_error(&listener.name, peer, &e);
                        }
                        return;
                    }
                    _ = &mut sleep => {}
                    _ = clock.head_began() => {}
                    _ = &mut drained, if !draining => {
                        draining = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        })
        .await
}

/// Takes new backend-connection watchers and runs every woken one until none can go on.
/// Watchers are only ever sent from inside the HTTP connection's poll (a request's handler on
/// this task opening its pinned connection), so the channel is emptied without registering a
/// wake-up, and an empty set is not polled at all.
fn poll_drivers(
    drivers: &mut FuturesUnordered<LocalDriver>,
    new: &mut tokio::sync::mpsc::UnboundedReceiver<LocalDriver>,
    cx: &mut Context<'_>,
) {
    while let Ok(d) = new.try_recv() {
        drivers.push(d);
    }
    if !drivers.is_empty() {
        while let Poll::Ready(Some(())) = drivers.poll_next_unpin(cx) {}
    }
}

/// Counts how a connection ended badly. hyper has already answered head errors itself
/// (431 for a head over the limits, 400 for a malformed one).
fn connection_error(listener: &str, peer: SocketAddr, e: &hyper::Error) {
    if e.is_parse_too_large() {
        metrics::limit_exceeded(listener, "request_head");
        metrics::edge_error(listener, "client", "too_large");
        tracing::info!(listener, %peer, reason = "too_large", error = %e, "request head over the limits");
    } else if e.is_parse() || e.is_parse_status() {
        metrics::edge_error(listener, "client", "bad_request");
        tracing::debug!(listener, %peer, error = %e, "malformed request");
    } else {
        // A client going away mid-stream is how Outlook Anywhere channels end: not an error.
        tracing::debug!(listener, %peer, error = %e, "connection ended");
    }
}

/// Answers a connection over the listener's limit: `503` on plain HTTP, a plain close on TLS
/// (a handshake would cost what the limit is there to save).
pub async fn refuse(mut stream: TcpStream, tls: bool) {
    if !tls {
        let reply = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\nRetry-After: 1\r\n\r\n";
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            stream.write_all(reply).await?;
            stream.shutdown().await
        })
        .await;
    }
}
