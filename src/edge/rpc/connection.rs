//! One client connection: read the first bind, decide, then refuse with a bind_nak or splice to
//! a backend — and, while spliced, decide every later bind / alter_context / auth3 the splice
//! holds ([`ContextPolicy`], the same [`admit`] as the first bind), forwarding it or refusing it
//! with a bind_nak or fault and closing both sides. Every ending is classified once
//! ([`classify`]), counted once ([`record`]) and logged once with the principal, interface,
//! service and reason.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::admission::{admit, interface_label, requirement, service_label, Admission, AdmissionRequest};
use super::context_policy::{ContextPolicy, Verdict};
use super::error::{classify, Metric, Outcome, RpcEdgeError};
use super::first_bind::FirstPdu;
use super::splice::{Meters, Splice, SpliceEnd, SpliceEvent, SpliceLimits};
use super::{RpcEdgeContext, PROTOCOL};
use crate::config::RpcListenerConfig;
use crate::edge::authenticate::confirm_shared;
use crate::edge::proxy_protocol;
use crate::edge::source_limits::SourceLimits;
use crate::observe;
use crate::observe::access_log::{Entry, Kind};
use crate::pool::Member;
use crate::rpc::{
    build_bind_nak, build_fault, parse_bind, CommonHeader, Drep, PacketType, FAULT_ACCESS_DENIED,
};

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
    /// PDUs the client sent after its first bind.
    later_pdus: u64,
    /// How the first bind was admitted.
    admission: Option<&'static str>,
    /// The member it was spliced to.
    member: Option<Arc<Member>>,
    /// Bytes relayed (client → member, member → client), where the splice closed cleanly.
    bytes: (u64, u64),
}

/// Serves a connection on a PROXY-protocol listener: reads the header (within the bind
/// timeout), admits the client it names under the per-source limits, then serves it as that
/// client. Refused connections are closed without an answer and counted.
pub(super) async fn serve_proxied(
    mut stream: TcpStream,
    via: SocketAddr,
    cfg: Arc<RpcListenerConfig>,
    ctx: Arc<RpcEdgeContext>,
    meters: Arc<Meters>,
    sources: Arc<SourceLimits>,
) {
    let Some(pp) = cfg.proxy_protocol.as_ref() else {
        return;
    };
    let timeout = Duration::from_millis(cfg.bind_timeout_ms);
    let door = (cfg.name.as_str(), pp);
    if let Some(a) = proxy_protocol::admit(&mut stream, via, door, timeout, &sources).await {
        serve_connection(stream, a.peer, a.via, cfg, ctx, meters).await;
        drop(a.source);
    }
}

/// Serves one accepted connection to its end; `via` is the balancer whose PROXY header named
/// `peer`.
pub(super) async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    via: Option<SocketAddr>,
    cfg: Arc<RpcListenerConfig>,
    ctx: Arc<RpcEdgeContext>,
    meters: Arc<Meters>,
) {
    let _open = observe::connection_opened(&cfg.name);
    let _ = stream.set_nodelay(true);
    let accepted = Instant::now();
    let mut first = FirstPdu::new();
    let mut facts = Facts::default();
    let result = run(&mut stream, &mut first, &mut facts, &cfg, &ctx, &meters).await;
    let line = Line {
        ctx: &ctx,
        listener: &cfg.name,
        peer,
        via,
        accepted,
    };
    let err = match result {
        Ok((admission, SpliceEnd::Closed { up, down })) => {
            tracing::debug!(listener = %cfg.name, %peer, principal = facts.principal.as_deref().unwrap_or("-"),
                interface = facts.interface.as_deref().unwrap_or("-"), admission = admission.as_str(),
                up, down, later_pdus = facts.later_pdus, "rpc connection closed");
            facts.bytes = (up, down);
            line.write(&facts, "spliced", None);
            return;
        }
        Ok((_, SpliceEnd::Failed(e))) => {
            tracing::debug!(listener = %cfg.name, %peer, principal = facts.principal.as_deref().unwrap_or("-"),
                error = %e, "rpc connection reset");
            line.write(&facts, "spliced", None);
            return;
        }
        Ok((_, SpliceEnd::Idle)) => RpcEdgeError::IdleTimeout {
            secs: cfg.idle_timeout_secs,
        },
        Ok((_, SpliceEnd::PrefixFailed(e))) => RpcEdgeError::BackendIo(e),
        Ok((_, SpliceEnd::BadPdu(e))) => RpcEdgeError::LaterPdu(e),
        Err(e) => e,
    };
    end_with(&mut stream, &first, &facts, &line, &cfg, err).await;
}

/// Where an RPC connection's access-log line goes, and what is known of it from the start.
struct Line<'a> {
    ctx: &'a RpcEdgeContext,
    listener: &'a str,
    peer: SocketAddr,
    via: Option<SocketAddr>,
    accepted: Instant,
}

impl Line<'_> {
    /// Writes the connection's line: `result` is `spliced`, `bind_nak`, `fault` or `closed`;
    /// a success (no `reason`) only as often as `sample_successes` says.
    fn write(&self, facts: &Facts, result: &'static str, reason: Option<&'static str>) {
        let Some(log) = &self.ctx.access_log else {
            return;
        };
        if reason.is_none() && !log.sample_success() {
            return;
        }
        let now = SystemTime::now();
        let elapsed = self.accepted.elapsed();
        let mut e = Entry::new(
            Kind::Rpc,
            self.listener.into(),
            self.peer,
            now.checked_sub(elapsed).unwrap_or(now),
        );
        e.via = self.via;
        e.route.clone_from(&facts.interface);
        e.auth = facts.admission;
        e.principal.clone_from(&facts.principal);
        e.member = facts.member.as_ref().map(|m| m.name.clone());
        e.result = Some(result);
        e.reason = reason.map(str::to_owned);
        (e.bytes_in, e.bytes_out) = facts.bytes;
        e.duration = elapsed;
        log.log(e);
    }
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
    let accepted = Instant::now();
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
    let admission = admit_pdu(&AdmissionRequest::bind(pdu, &bind, &req), cfg, ctx, facts).await?;
    facts.principal = admission.principal().map(str::to_owned);
    facts.admission = Some(admission.as_str());
    let mut policy = ContextPolicy::new(&bind, &req, admission.clone());
    let backend = ctx.pool.connect(admission.principal()).await?;
    facts.member = Some(backend.lease.member().clone());
    ctx.bind_duration.record(accepted.elapsed().as_secs_f64());
    tracing::debug!(
        listener = %cfg.name, principal = admission.principal().unwrap_or("-"),
        interface = facts.interface.as_deref().unwrap_or("-"), backend = %backend.addr,
        admission = admission.as_str(), "rpc bind forwarded"
    );
    let limits = SpliceLimits {
        idle: Duration::from_secs(cfg.idle_timeout_secs),
        max_held: cfg.max_bind_bytes,
    };
    let rest = first.bytes().get(pdu.len()..).unwrap_or_default();
    let mut splice = match Splice::start(&mut *stream, backend.stream, pdu, rest, limits, meters).await {
        Ok(s) => s,
        Err(end) => return Ok((admission, end)),
    };
    let end = loop {
        match splice.next().await {
            SpliceEvent::End(end) => break end,
            SpliceEvent::Held => {
                let held = splice.held().unwrap_or_default();
                if let Err(refused) = decide(held, &mut policy, cfg, ctx, facts).await {
                    facts.later_pdus = splice.later_pdus();
                    // What the backend already sent goes first, then the refusal; the backend
                    // connection closes with the splice.
                    let _ = tokio::time::timeout(LINGER, splice.flush_to_client()).await;
                    return Err(refused);
                }
                splice.release();
            }
        }
    };
    facts.later_pdus = splice.later_pdus();
    drop(splice);
    drop(backend.lease);
    Ok((admission, end))
}

/// The one call of [`admit`] on the RPC edge, for a first bind and for every later PDU the
/// context policy sends to admission, followed by the replay store shared with other replicas
/// ([`confirm_shared`]: a replay there is refused like a local one, a store without a verdict as
/// its `fail` policy says): timed, and a Kerberos success counted.
async fn admit_pdu(
    req: &AdmissionRequest<'_>,
    cfg: &RpcListenerConfig,
    ctx: &RpcEdgeContext,
    facts: &mut Facts,
) -> Result<Admission, RpcEdgeError> {
    let started = Instant::now();
    let admitted = match admit(req, cfg, &ctx.acceptor, SystemTime::now()) {
        Ok((Admission::Kerberos { principal }, replay_id)) => confirm_shared(
            ctx.replay_store.as_deref(),
            replay_id.as_ref(),
            &principal,
            PROTOCOL,
        )
        .await
        .map(|()| Admission::Kerberos { principal })
        .map_err(|error| RpcEdgeError::Auth {
            service: service_label(Some(req.requirement)).to_string(),
            error,
        }),
        other => other.map(|(admission, _)| admission),
    };
    let secs = started.elapsed().as_secs_f64();
    facts.auth_secs = Some(secs);
    if let Ok(Admission::Kerberos { .. }) = &admitted {
        let service = service_label(Some(req.requirement));
        observe::auth_attempt(PROTOCOL, &service, "ok", "ok", Some(secs));
    }
    admitted
}

/// Decides a held later bind / alter_context / auth3 ([`ContextPolicy`], and the admission
/// where it asks for one); a refusal names the PDU so it can be answered.
async fn decide(
    pdu: &[u8],
    policy: &mut ContextPolicy,
    cfg: &RpcListenerConfig,
    ctx: &RpcEdgeContext,
    facts: &mut Facts,
) -> Result<(), RpcEdgeError> {
    let decided = match policy.inspect(pdu, &ctx.interfaces) {
        Verdict::Forward => Ok(()),
        Verdict::Refuse(refusal) => Err(refusal),
        Verdict::Admit(pending) => {
            let admitted = admit_pdu(&pending.request(pdu), cfg, ctx, facts).await;
            policy.settle(pending, admitted)
        }
    };
    match decided {
        Ok(()) => {
            facts.principal = policy.principal().map(str::to_owned);
            Ok(())
        }
        Err(refusal) => {
            // Log and count under the interface and service the refused PDU asked for.
            if let Ok(bind) = parse_bind(pdu) {
                facts.interface = Some(interface_label(&bind));
                if let Ok(req) = ctx.interfaces.required_service(&bind) {
                    facts.service = Some(service_label(Some(&req)));
                }
            }
            let header = CommonHeader::parse(pdu).ok();
            Err(RpcEdgeError::ContextChange {
                ptype: header.map_or(PacketType::AlterContext, |h| h.ptype),
                call_id: header.map_or(0, |h| h.call_id),
                drep: header.map_or(Drep::LITTLE_ENDIAN, |h| h.drep),
                refusal: Box::new(refusal),
            })
        }
    }
}

/// Classifies, counts, logs, and answers where the client's PDU is known: a bind_nak for a
/// refused bind, a fault for a refused alter_context or auth3.
async fn end_with(
    stream: &mut TcpStream,
    first: &FirstPdu,
    facts: &Facts,
    line: &Line<'_>,
    cfg: &RpcListenerConfig,
    err: RpcEdgeError,
) {
    let peer = line.peer;
    let outcome = classify(&err);
    let service = facts.service.as_deref().unwrap_or("unknown");
    record(&outcome, &cfg.name, service, facts.auth_secs);
    let answer = match &err {
        RpcEdgeError::ContextChange {
            ptype: PacketType::Bind,
            call_id,
            drep,
            ..
        } => outcome.nak.map(|r| build_bind_nak(*call_id, *drep, r)),
        RpcEdgeError::ContextChange { call_id, drep, .. } => {
            Some(build_fault(*call_id, *drep, FAULT_ACCESS_DENIED))
        }
        _ => outcome
            .nak
            .zip(first.header)
            .map(|(r, h)| build_bind_nak(h.call_id, h.drep, r)),
    };
    let principal = facts.principal.as_deref().unwrap_or("-");
    let interface = facts.interface.as_deref().unwrap_or("-");
    let (reason, side) = (outcome.reason, outcome.side.as_str());
    match &err {
        RpcEdgeError::ContextChange { refusal, .. } => tracing::info!(listener = %cfg.name, %peer, principal,
            interface, service, reason, cause = refusal.cause(), side, error = %err, "rpc context change refused"),
        RpcEdgeError::LaterPdu(_) => tracing::info!(listener = %cfg.name, %peer, principal, interface,
            reason, side, error = %err, "rpc connection cut"),
        _ if outcome.metric == Metric::None && !matches!(err, RpcEdgeError::NoBackend(_)) => tracing::debug!(
            listener = %cfg.name, %peer, principal, interface, service, reason, side, error = %err,
            "rpc connection ended"),
        _ => tracing::info!(listener = %cfg.name, %peer, principal, interface, service, reason, side,
            reject_reason = outcome.nak.filter(|_| answer.is_some()).map(|r| r.code()), error = %err,
            "rpc bind refused"),
    }
    let result = match (&err, &answer) {
        (
            RpcEdgeError::ContextChange {
                ptype: PacketType::Bind,
                ..
            },
            Some(_),
        ) => "bind_nak",
        (RpcEdgeError::ContextChange { .. }, Some(_)) => "fault",
        (_, Some(_)) => "bind_nak",
        (_, None) if facts.member.is_some() => "spliced",
        (_, None) => "closed",
    };
    // A connection closed before its first byte (a balancer's TCP health check) is no session.
    if !matches!(err, RpcEdgeError::ClientClosed) {
        line.write(facts, result, Some(outcome.reason));
    }
    if let Some(pdu) = answer {
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
