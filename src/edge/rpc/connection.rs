//! One client connection: read the first bind, decide, then refuse with a bind_nak or splice to
//! a backend. Every ending is classified once ([`classify`]), counted once ([`record`]) and
//! logged once with the principal, interface, service and reason.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::admission::{admit, requirement, service_label, Admission};
use super::error::{classify, Metric, Outcome, RpcEdgeError};
use super::first_bind::FirstPdu;
use super::splice::{splice, Meters, SpliceEnd};
use super::{RpcEdgeContext, PROTOCOL};
use crate::config::RpcListenerConfig;
use crate::edge::authenticate::confirm_shared;
use crate::observe;
use crate::rpc::{build_bind_nak, parse_bind, BindInfo, EMSMDB, EPM, NSPI, RFR};

/// After a bind_nak, how long the client may take to close (its unread bytes are drained so the
/// close does not turn into a reset that could destroy the bind_nak in flight).
const LINGER: Duration = Duration::from_secs(1);
/// At most this much is drained while lingering.
const LINGER_MAX_BYTES: usize = 1 << 20;

/// What is known about a connection, for its log line and metrics.
#[derive(Default)]
struct Facts {
    interface: Option<String>,
    service: Option<Arc<str>>,
    principal: Option<String>,
    auth_secs: Option<f64>,
}

/// Serves one accepted connection to its end.
pub(super) async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    cfg: Arc<RpcListenerConfig>,
    ctx: Arc<RpcEdgeContext>,
    meters: Arc<Meters>,
) {
    let _open = observe::connection_opened(&cfg.name);
    let _ = stream.set_nodelay(true);
    let mut first = FirstPdu::new();
    let mut facts = Facts::default();
    let result = run(&mut stream, &mut first, &mut facts, &cfg, &ctx, &meters).await;
    let err = match result {
        Ok((admission, end)) => {
            let fields = (&facts, peer, &cfg.name);
            match end {
                SpliceEnd::Closed { up, down } => tracing::debug!(
                    listener = %fields.2, %peer, principal = facts.principal.as_deref().unwrap_or("-"),
                    interface = facts.interface.as_deref().unwrap_or("-"), admission = admission.as_str(),
                    up, down, "rpc connection closed"
                ),
                SpliceEnd::Failed(e) => tracing::debug!(
                    listener = %fields.2, %peer, principal = facts.principal.as_deref().unwrap_or("-"),
                    error = %e, "rpc connection reset"
                ),
                SpliceEnd::Idle => {
                    end_with(
                        &mut stream,
                        &first,
                        &facts,
                        peer,
                        &cfg,
                        RpcEdgeError::IdleTimeout {
                            secs: cfg.idle_timeout_secs,
                        },
                    )
                    .await
                }
                SpliceEnd::PrefixFailed(e) => {
                    end_with(
                        &mut stream,
                        &first,
                        &facts,
                        peer,
                        &cfg,
                        RpcEdgeError::BackendIo(e),
                    )
                    .await
                }
            }
            return;
        }
        Err(e) => e,
    };
    end_with(&mut stream, &first, &facts, peer, &cfg, err).await;
}

/// Reads, decides and splices; returns how the bind was admitted and how the splice ended.
async fn run(
    stream: &mut TcpStream,
    first: &mut FirstPdu,
    facts: &mut Facts,
    cfg: &RpcListenerConfig,
    ctx: &RpcEdgeContext,
    meters: &Meters,
) -> Result<(Admission, SpliceEnd), RpcEdgeError> {
    let bind_timeout = Duration::from_millis(cfg.bind_timeout_ms);
    match tokio::time::timeout(bind_timeout, first.read_from(stream, cfg.max_bind_bytes)).await {
        Ok(read) => read?,
        Err(_) => {
            return Err(RpcEdgeError::BindTimeout {
                timeout_ms: cfg.bind_timeout_ms,
                have: first.received(),
            })
        }
    }
    let pdu = first.pdu().unwrap_or_default();
    let bind = parse_bind(pdu)?;
    facts.interface = Some(interface_label(&bind));
    let req = requirement(&ctx.interfaces, &bind)?;
    facts.service = Some(service_label(Some(&req)));
    let started = Instant::now();
    let admitted = match admit(pdu, &bind, &req, cfg, &ctx.acceptor, SystemTime::now()) {
        Ok(a) => confirm_shared_replay(ctx, &a, facts).await.map(|()| a),
        Err(e) => Err(e),
    };
    facts.auth_secs = Some(started.elapsed().as_secs_f64());
    let admission = admitted?;
    if let Admission::Kerberos { principal, .. } = &admission {
        let service = facts.service.as_deref().unwrap_or("unknown");
        observe::auth_attempt(PROTOCOL, service, "ok", "ok", facts.auth_secs);
        facts.principal = Some(principal.clone());
    }
    let backend = ctx.pool.connect(admission.principal()).await?;
    tracing::debug!(
        listener = %cfg.name, principal = admission.principal().unwrap_or("-"),
        interface = facts.interface.as_deref().unwrap_or("-"), backend = %backend.addr,
        admission = admission.as_str(), "rpc bind forwarded"
    );
    let idle = Duration::from_secs(cfg.idle_timeout_secs);
    let end = splice(&mut *stream, backend.stream, first.bytes(), idle, meters).await;
    drop(backend.lease);
    Ok((admission, end))
}

/// Every Kerberos admission also passes the replay store shared with other replicas
/// ([`confirm_shared`]): a replay there is refused like a local one, a store without a verdict
/// as its `fail` policy says.
async fn confirm_shared_replay(
    ctx: &RpcEdgeContext,
    admission: &Admission,
    facts: &Facts,
) -> Result<(), RpcEdgeError> {
    let Admission::Kerberos { principal, replay_id } = admission else {
        return Ok(());
    };
    confirm_shared(
        ctx.replay_store.as_deref(),
        replay_id.as_ref(),
        principal,
        PROTOCOL,
    )
    .await
    .map_err(|error| RpcEdgeError::Auth {
        service: facts.service.as_deref().unwrap_or("unknown").to_owned(),
        error,
    })
}

/// Classifies, counts, logs, and answers with a bind_nak where the client's header is known.
async fn end_with(
    stream: &mut TcpStream,
    first: &FirstPdu,
    facts: &Facts,
    peer: SocketAddr,
    cfg: &RpcListenerConfig,
    err: RpcEdgeError,
) {
    let outcome = classify(&err);
    let service = facts.service.as_deref().unwrap_or("unknown");
    record(&outcome, &cfg.name, service, facts.auth_secs);
    let nak = outcome.nak.zip(first.header);
    let principal = facts.principal.as_deref().unwrap_or("-");
    let interface = facts.interface.as_deref().unwrap_or("-");
    if outcome.metric == Metric::None && !matches!(err, RpcEdgeError::NoBackend(_)) {
        tracing::debug!(listener = %cfg.name, %peer, principal, interface, service,
            reason = outcome.reason, side = outcome.side.as_str(), error = %err, "rpc connection ended");
    } else {
        tracing::info!(listener = %cfg.name, %peer, principal, interface, service,
            reason = outcome.reason, side = outcome.side.as_str(),
            reject_reason = nak.map(|(r, _)| r.code()), error = %err, "rpc bind refused");
    }
    if let Some((reason, header)) = nak {
        let pdu = build_bind_nak(header.call_id, header.drep, reason);
        linger_close(stream, &pdu).await;
    }
}

/// Moves the metric an outcome names (the one place RPC endings touch metrics).
fn record(outcome: &Outcome, listener: &str, service: &str, auth_secs: Option<f64>) {
    match outcome.metric {
        Metric::Limit(limit) => observe::limit_exceeded(listener, limit),
        Metric::AuthFail => observe::auth_attempt(PROTOCOL, service, "fail", outcome.reason, auth_secs),
        Metric::Ntlm => {
            observe::ntlm_rejected(PROTOCOL);
            observe::auth_attempt(PROTOCOL, service, "fail", outcome.reason, auth_secs);
        }
        Metric::Replay => {
            observe::replay_rejected(PROTOCOL);
            observe::auth_attempt(PROTOCOL, service, "fail", outcome.reason, auth_secs);
        }
        Metric::None => {}
    }
}

/// Counts a connection refused at the door (over `max_connections`) and logs it.
pub(super) fn refuse_over_limit(listener: &str, peer: SocketAddr) {
    let err = RpcEdgeError::TooManyConnections;
    let outcome = classify(&err);
    record(&outcome, listener, "unknown", None);
    tracing::warn!(listener, %peer, reason = outcome.reason, side = outcome.side.as_str(), "rpc connection refused");
}

/// Sends `pdu`, half-closes, and drains what the client still sends until it closes (bounded
/// in time and bytes).
async fn linger_close(stream: &mut TcpStream, pdu: &[u8]) {
    let _ = tokio::time::timeout(LINGER, async {
        stream.write_all(pdu).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < LINGER_MAX_BYTES {
            match stream.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// The interface a bind names, for logs: the first context's abstract syntax, by its Exchange
/// name where it has one.
fn interface_label(bind: &BindInfo) -> String {
    let Some(c) = bind.contexts.first() else {
        return "none".into();
    };
    let s = &c.abstract_syntax;
    let name = match s.uuid {
        u if u == EMSMDB => "EMSMDB".to_owned(),
        u if u == NSPI => "NSPI".to_owned(),
        u if u == RFR => "RFR".to_owned(),
        u if u == EPM => "EPM".to_owned(),
        u => u.to_string(),
    };
    format!("{name} v{}.{}", s.major, s.minor)
}
