//! Helpers for the RPC edge tests: a recording backend on 127.0.0.1:0 (bind_ack /
//! alter_context_resp, echoes requests), kedge's RPC listener started in-process on
//! 127.0.0.1:0, PDU builders (bind, alter_context, auth3, request) and a tiny client.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use kedge::config::{NtlmPolicy, RpcListenerConfig};
use kedge::edge::rpc::{serve_rpc, RpcEdgeContext};
use kedge::edge::workers::Workers;
use kedge::krb::acceptor::{Acceptor, AcceptorConfig};
use kedge::krb::keyset::KeySet;
use kedge::krb::keytab::Keytab;
use kedge::krb::replay::ReplayCache;
use kedge::pool::{Balance, HealthConfig, HealthKind, MemberConfig, Pool, PoolConfig};
use kedge::rpc::{
    build_auth3, parse_bind, parse_bind_ack, parse_bind_nak, parse_fault, AckResult, AuthLevel, AuthType,
    AuthVerifier, BindAck, BindInfo, BindNak, ContextResult, Drep, Fault, PacketType, PresentationContext,
    RejectReason, SyntaxId, Uuid, FAULT_ACCESS_DENIED,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long any test step may take before the test fails.
pub const STEP: Duration = Duration::from_secs(10);

/// The krb5 mechanism OID, DER (RFC 1964).
const KRB5_OID_DER: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];

/// Wraps a bare AP-REQ in an RFC 2743 §3.1 initial context token: `60 len OID 01 00 AP-REQ`.
pub fn gss_wrap(ap_req: &[u8]) -> Vec<u8> {
    let mut inner = KRB5_OID_DER.to_vec();
    inner.extend_from_slice(&[0x01, 0x00]);
    inner.extend_from_slice(ap_req);
    let mut out = vec![0x60];
    match inner.len() {
        n if n < 0x80 => out.push(n as u8),
        n if n < 0x100 => out.extend_from_slice(&[0x81, n as u8]),
        n => out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(&inner);
    out
}

/// The `auth_context_id` of the binds built here (the value impacket uses).
pub const AUTH_CONTEXT_ID: u32 = 79231;

/// A bind or alter_context (little-endian) for `iface` v`major.minor`, with an auth verifier
/// (`auth_type`, level connect, `auth_context_id`) carrying `token` where `auth` is given.
pub fn context_pdu(
    ptype: PacketType,
    call_id: u32,
    iface: Uuid,
    (major, minor): (u16, u16),
    auth: Option<(AuthType, u32)>,
    token: &[u8],
) -> Vec<u8> {
    BindInfo {
        ptype,
        rpc_vers_minor: 0,
        pfc_flags: 0x03,
        call_id,
        drep: Drep::LITTLE_ENDIAN,
        max_xmit_frag: 4280,
        max_recv_frag: 4280,
        assoc_group_id: 0,
        contexts: vec![PresentationContext {
            context_id: 0,
            abstract_syntax: SyntaxId {
                uuid: iface,
                major,
                minor,
            },
            transfer_syntaxes: vec![SyntaxId::NDR],
        }],
        auth: auth.map(|(auth_type, auth_context_id)| verifier(auth_type, auth_context_id)),
    }
    .to_bytes(token)
    .expect("encodable bind")
}

fn verifier(auth_type: AuthType, auth_context_id: u32) -> AuthVerifier {
    AuthVerifier {
        auth_type,
        auth_level: AuthLevel::Connect,
        auth_pad_length: 0,
        auth_reserved: 0,
        auth_context_id,
        token_range: 0..0,
    }
}

/// A bind (call_id 1, little-endian) for `iface` v`major.minor` with an auth verifier of
/// `auth_type` at level connect carrying `token`, or none when `auth_type` is `None`.
pub fn bind_pdu(iface: Uuid, major: u16, minor: u16, auth_type: Option<AuthType>, token: &[u8]) -> Vec<u8> {
    let auth = auth_type.map(|t| (t, AUTH_CONTEXT_ID));
    context_pdu(PacketType::Bind, 1, iface, (major, minor), auth, token)
}

/// An alter_context (call_id `call_id`) to `iface` v`major.minor`, with `auth` (type, context
/// id) carrying `token` where given.
pub fn alter_context_pdu(
    call_id: u32,
    iface: Uuid,
    version: (u16, u16),
    auth: Option<(AuthType, u32)>,
    token: &[u8],
) -> Vec<u8> {
    context_pdu(PacketType::AlterContext, call_id, iface, version, auth, token)
}

/// An rpc_auth_3 (MS-RPCE 2.2.2.10) with `call_id` on security context `auth_context_id` of
/// `auth_type` carrying `token`.
pub fn auth3_pdu(call_id: u32, auth_type: AuthType, auth_context_id: u32, token: &[u8]) -> Vec<u8> {
    let v = verifier(auth_type, auth_context_id);
    build_auth3(call_id, Drep::LITTLE_ENDIAN, &v, token).expect("encodable auth3")
}

/// A request PDU (C706 12.6.4.9: alloc_hint, p_cont_id 0, opnum 0, then `stub`), call_id
/// `call_id`, little-endian.
pub fn request_pdu(call_id: u32, stub: &[u8]) -> Vec<u8> {
    let frag = u16::try_from(24 + stub.len()).expect("request fits one PDU");
    let mut p = vec![5, 0, 0, 3, 0x10, 0, 0, 0];
    p.extend_from_slice(&frag.to_le_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&call_id.to_le_bytes());
    p.extend_from_slice(&(stub.len() as u32).to_le_bytes());
    p.extend_from_slice(&[0, 0, 0, 0]);
    p.extend_from_slice(stub);
    p
}

/// An EMSMDB (v0.81) bind carrying `token` with `auth_type`.
pub fn emsmdb_bind(auth_type: AuthType, token: &[u8]) -> Vec<u8> {
    bind_pdu(kedge::rpc::EMSMDB, 0, 81, Some(auth_type), token)
}

/// The bind_ack the test backend answers `bind` with: every context accepted with NDR,
/// secondary address "49152", assoc group 0x5eed, no auth verifier.
pub fn bind_ack_for(bind: &BindInfo) -> Vec<u8> {
    BindAck {
        ptype: if bind.ptype == PacketType::AlterContext {
            PacketType::AlterContextResp
        } else {
            PacketType::BindAck
        },
        pfc_flags: 0x03,
        call_id: bind.call_id,
        drep: bind.drep,
        max_xmit_frag: bind.max_xmit_frag,
        max_recv_frag: bind.max_recv_frag,
        assoc_group_id: 0x5eed,
        secondary_address: if bind.ptype == PacketType::AlterContext {
            Vec::new()
        } else {
            b"49152\0".to_vec()
        },
        results: bind
            .contexts
            .iter()
            .map(|_| ContextResult {
                result: AckResult::Acceptance,
                reason: 0,
                transfer_syntax: SyntaxId::NDR,
            })
            .collect(),
        auth: None,
    }
    .to_bytes(&[])
    .expect("encodable bind_ack")
}

/// Reads one whole PDU (header, then `frag_length`), or `None` at EOF / reset.
async fn read_pdu_untimed<R: AsyncRead + Unpin>(s: &mut R) -> Option<Vec<u8>> {
    let mut head = [0u8; 16];
    s.read_exact(&mut head).await.ok()?;
    let len = if head[4] & 0x10 != 0 {
        u16::from_le_bytes([head[8], head[9]])
    } else {
        u16::from_be_bytes([head[8], head[9]])
    } as usize;
    let mut pdu = head.to_vec();
    pdu.resize(len.max(16), 0);
    s.read_exact(&mut pdu[16..]).await.ok()?;
    Some(pdu)
}

/// Reads one whole PDU, or `None` at EOF / reset; fails the test after [`STEP`].
pub async fn read_pdu<R: AsyncRead + Unpin>(s: &mut R) -> Option<Vec<u8>> {
    tokio::time::timeout(STEP, read_pdu_untimed(s))
        .await
        .expect("no PDU or EOF within the step timeout")
}

/// A backend on 127.0.0.1:0 that records every PDU of every connection exactly as received,
/// answers a bind with a bind_ack and an alter_context with an alter_context_resp
/// ([`bind_ack_for`]), takes an rpc_auth_3 silently and echoes every other PDU.
pub struct RecordingBackend {
    pub addr: SocketAddr,
    /// Per connection, in accept order: its PDUs in arrival order.
    pub received: Arc<Mutex<Vec<Vec<Vec<u8>>>>>,
    task: JoinHandle<()>,
}

impl RecordingBackend {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let rec = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let conn = {
                    let mut r = rec.lock().unwrap();
                    r.push(Vec::new());
                    r.len() - 1
                };
                let rec = rec.clone();
                tokio::spawn(async move {
                    while let Some(pdu) = read_pdu_untimed(&mut s).await {
                        rec.lock().unwrap()[conn].push(pdu.clone());
                        let reply = match PacketType::from_code(pdu[2]) {
                            PacketType::Bind | PacketType::AlterContext => match parse_bind(&pdu) {
                                Ok(bind) => bind_ack_for(&bind),
                                Err(_) => return,
                            },
                            PacketType::Auth3 => continue,
                            _ => pdu,
                        };
                        if s.write_all(&reply).await.is_err() {
                            return;
                        }
                    }
                    let _ = s.shutdown().await;
                });
            }
        });
        Self { addr, received, task }
    }

    /// First PDUs of the connections so far.
    pub fn binds(&self) -> Vec<Vec<u8>> {
        let r = self.received.lock().unwrap();
        r.iter().filter_map(|c| c.first().cloned()).collect()
    }

    /// Every PDU of every connection so far, per connection.
    pub fn connections(&self) -> Vec<Vec<Vec<u8>>> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for RecordingBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An acceptor over the KDC's ASA keytab (its own replay cache, like one kedge process).
pub fn acceptor_from_keytab(path: &std::path::Path, realm: &str, fqdn: &str) -> Arc<Acceptor> {
    let kt = Keytab::parse(&std::fs::read(path).unwrap()).unwrap();
    Arc::new(Acceptor::new(
        AcceptorConfig {
            realm: Some(realm.into()),
            hosts: vec![fqdn.into()],
            skew: Duration::from_secs(300),
            ..Default::default()
        },
        KeySet::from_keytab(&kt, SystemTime::now(), "test"),
        Arc::new(ReplayCache::new(100_000)),
    ))
}

/// An RPC listener config named `name` with test-friendly limits and the defaults of a static
/// RPC port (not the endpoint mapper: unauthenticated endpoint-mapper binds are refused).
pub fn listener_config(name: &str) -> RpcListenerConfig {
    RpcListenerConfig {
        name: name.into(),
        listen: "127.0.0.1:0".into(),
        pool: name.into(),
        ntlm: NtlmPolicy::Reject,
        endpoint_mapper: false,
        allow_unauthenticated_epm: None,
        interfaces: BTreeMap::new(),
        max_bind_bytes: 64 * 1024,
        bind_timeout_ms: 5_000,
        idle_timeout_secs: 60,
        groups: None,
        max_connections: 1_000,
        per_source: Default::default(),
        shutdown_grace_secs: 5,
        proxy_protocol: None,
    }
}

/// A one-member pool (no active health checks) pointing at `backend`.
pub fn pool_to(name: &str, backend: SocketAddr) -> Arc<Pool> {
    let members = BTreeMap::from([(
        "cas1".to_owned(),
        MemberConfig {
            address: backend.ip().to_string(),
            weight: 100,
            ports: BTreeMap::from([("mdb".to_owned(), backend.port())]),
            drain: false,
        },
    )]);
    let cfg = PoolConfig {
        members: vec!["cas1".into()],
        port: "mdb".into(),
        balance: Balance::Rendezvous,
        affinity: true,
        tls: None,
        health: HealthConfig {
            kind: HealthKind::None,
            ..Default::default()
        },
        connect_timeout_ms: 2_000,
        response_header_timeout_ms: 300_000,
        idle_timeout_secs: 1_200,
        eject_base_ms: 10,
        eject_max_ms: 100,
    };
    Arc::new(Pool::new(name, &cfg, &members).unwrap())
}

/// kedge's RPC listener running in-process on 127.0.0.1:0.
pub struct Edge {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    pub task: Option<JoinHandle<()>>,
}

impl Edge {
    /// Starts `serve_rpc` with `cfg`, forwarding to `backend`.
    pub async fn start(cfg: RpcListenerConfig, acceptor: Arc<Acceptor>, backend: SocketAddr) -> Edge {
        Self::start_logged(cfg, acceptor, backend, None).await
    }

    /// [`Edge::start`], writing an access line per connection to `log`.
    pub async fn start_logged(
        cfg: RpcListenerConfig,
        acceptor: Arc<Acceptor>,
        backend: SocketAddr,
        log: Option<Arc<kedge::observe::access_log::AccessLog>>,
    ) -> Edge {
        kedge::observe::install();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pool = pool_to(&cfg.name, backend);
        // Connections run on per-core workers, as `kedge run` does by default.
        let workers = Workers::start(2).expect("worker threads");
        let mut ctx = RpcEdgeContext::new(acceptor, pool, &cfg)
            .unwrap()
            .with_workers(workers);
        if let Some(log) = log {
            ctx = ctx.with_access_log(log);
        }
        let ctx = Arc::new(ctx);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_rpc(listener, Arc::new(cfg), ctx, async move {
            let _ = rx.await;
        }));
        Edge {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Signals shutdown; the task ends after the grace period at the latest.
    pub fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Signals shutdown and waits for `serve_rpc` to return.
    pub async fn stop(mut self) {
        self.shutdown();
        if let Some(t) = self.task.take() {
            tokio::time::timeout(STEP, t)
                .await
                .expect("serve_rpc did not stop")
                .unwrap();
        }
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// A [`RecordingBackend`] and kedge's listener in front of it, configured by `tweak` on top of
/// [`listener_config`].
pub async fn edge_with(
    name: &str,
    acceptor: Arc<Acceptor>,
    tweak: impl FnOnce(&mut RpcListenerConfig),
) -> (Edge, RecordingBackend) {
    let backend = RecordingBackend::start().await;
    let mut cfg = listener_config(name);
    tweak(&mut cfg);
    (Edge::start(cfg, acceptor, backend.addr).await, backend)
}

/// What a client saw after sending a bind, alter_context or auth3.
#[derive(Debug)]
pub enum Reply {
    Ack(BindAck),
    Nak(BindNak),
    Fault(Fault),
    /// The connection closed (or was reset) without a PDU.
    Closed,
}

/// Connects to `addr`, sends `bytes`, and reads one reply PDU; the stream is returned for more.
pub async fn send_bind(addr: SocketAddr, bytes: &[u8]) -> (Reply, TcpStream) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let reply = reply_of(&mut s).await;
    (reply, s)
}

/// Reads one PDU from `s` and decodes it as bind_ack / alter_context_resp / bind_nak / fault.
pub async fn reply_of(s: &mut TcpStream) -> Reply {
    match read_pdu(s).await {
        None => Reply::Closed,
        Some(pdu) => match pdu[2] {
            12 | 15 => Reply::Ack(parse_bind_ack(&pdu).unwrap()),
            13 => Reply::Nak(parse_bind_nak(&pdu).unwrap()),
            3 => Reply::Fault(parse_fault(&pdu).unwrap()),
            t => panic!("unexpected PDU type {t}"),
        },
    }
}

/// Asserts a bind_nak with `reason` answering call_id 1 in little-endian, version 5.0.
#[track_caller]
pub fn expect_nak(reply: Reply, reason: RejectReason) {
    match reply {
        Reply::Nak(n) => {
            assert_eq!(n.reason, reason);
            assert_eq!(n.call_id, 1, "bind_nak echoes the call_id");
            assert_eq!(n.drep, Drep::LITTLE_ENDIAN, "bind_nak echoes the drep");
            assert_eq!(n.versions, vec![(5, 0)]);
        }
        other => panic!("want bind_nak {reason:?}, got {other:?}"),
    }
}

/// Asserts a fault with status access denied (5) echoing `call_id` and the little-endian drep.
#[track_caller]
pub fn expect_fault(reply: Reply, call_id: u32) {
    match reply {
        Reply::Fault(f) => {
            assert_eq!(f.status, FAULT_ACCESS_DENIED);
            assert_eq!(f.call_id, call_id, "the fault echoes the call_id");
            assert_eq!(f.drep, Drep::LITTLE_ENDIAN, "the fault echoes the drep");
        }
        other => panic!("want a fault (access denied), got {other:?}"),
    }
}

/// Sends `pdu` on `s` and reads one reply.
pub async fn exchange(s: &mut TcpStream, pdu: &[u8]) -> Reply {
    s.write_all(pdu).await.unwrap();
    reply_of(s).await
}

/// Waits until the peer closes `s` (EOF or reset), failing the test after [`STEP`].
pub async fn assert_closed(s: &mut TcpStream) {
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(STEP, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "kedge did not close the connection");
}

/// Sum of the samples of `metric` whose labels include every `(name, value)` pair.
pub fn metric(metric: &str, labels: &[(&str, &str)]) -> f64 {
    kedge::observe::render()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Polls `metric` until it exceeds `before` (metrics are recorded as the connection ends, which
/// may be just after the client saw the close).
pub async fn metric_moved(name: &str, labels: &[(&str, &str)], before: f64) {
    for _ in 0..500 {
        if metric(name, labels) > before {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{name}{labels:?} did not move from {before}");
}
