//! The admin listener (DESIGN.md §4): `/metrics`, `/healthz`, `/readyz`, `/status`, and
//! `POST /drain/<pool>/<member>` / `POST /undrain/<pool>/<member>`. Keep it on a private
//! address: the read-only endpoints are open (probes, Prometheus); the mutating ones need the
//! bearer token of `admin.token_file` and refuse cross-site requests ([`guard`]).

mod client;
pub mod guard;
mod routes;
mod state;
pub mod status;
mod table;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use client::{drain_member, fetch_status, AdminClientError};
pub use guard::MutationGuard;
pub use state::{unix_now, AdminState, CredentialProvider, ListenerProvider, ReplayStoreProvider};
pub use status::{
    Credential, CredentialStatus, ListenerStatus, MemberStatus, PoolStatus, ReplayStoreCalls,
    ReplayStoreStatus, Status, Talker,
};
pub use table::{format_unix_time, render_status_table};

/// Serves the admin API on `listener` until `shutdown` completes, then lets requests in flight
/// finish (at most 5 s).
pub async fn serve(listener: TcpListener, state: AdminState, shutdown: impl Future<Output = ()>) {
    crate::observe::install();
    let state = Arc::new(state);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    conns.spawn(serve_conn(stream, peer, state.clone(), stop_rx.clone()));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    conns.abort_all();
}

async fn serve_conn(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    state: Arc<AdminState>,
    mut stop: watch::Receiver<bool>,
) {
    let svc = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, std::convert::Infallible>(routes::handle(&state, peer, req).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "admin connection error");
            }
        }
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// The warning for an admin listener on `addr`, when it is not on loopback: its read-only
/// endpoints answer anyone who can reach it.
pub fn exposure_warning(addr: std::net::SocketAddr, mutations: bool) -> Option<String> {
    if addr.ip().is_loopback() {
        return None;
    }
    let drains = if mutations {
        "POST /drain needs the bearer token of admin.token_file"
    } else {
        "POST /drain is off (no admin.token_file)"
    };
    Some(format!(
        "admin listener {addr} is not on loopback: /metrics, /status, /healthz and /readyz answer \
         anyone who can reach it ({drains}); keep it on a private network or firewall it"
    ))
}
