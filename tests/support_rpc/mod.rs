//! Helpers for the RPC edge tests: a recording bind_ack backend on 127.0.0.1:0, kedge's RPC
//! listener started in-process on 127.0.0.1:0, bind builders and a tiny client.
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
    parse_bind, parse_bind_ack, parse_bind_nak, AckResult, AuthLevel, AuthType, AuthVerifier, BindAck,
    BindInfo, BindNak, ContextResult, Drep, PacketType, PresentationContext, SyntaxId, Uuid,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

/// A bind (call_id 1, little-endian) for `iface` v`major.minor` with an auth verifier of
/// `auth_type` at level connect carrying `token`, or none when `auth_type` is `None`.
pub fn bind_pdu(iface: Uuid, major: u16, minor: u16, auth_type: Option<AuthType>, token: &[u8]) -> Vec<u8> {
    BindInfo {
        ptype: PacketType::Bind,
        rpc_vers_minor: 0,
        pfc_flags: 0x03,
        call_id: 1,
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
        auth: auth_type.map(|auth_type| AuthVerifier {
            auth_type,
            auth_level: AuthLevel::Connect,
            auth_pad_length: 0,
            auth_reserved: 0,
            auth_context_id: 79231,
            token_range: 0..0,
        }),
    }
    .to_bytes(token)
    .expect("encodable bind")
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

/// Reads one whole PDU (header, then `frag_length`), or `None` at EOF / reset / timeout.
pub async fn read_pdu(s: &mut TcpStream) -> Option<Vec<u8>> {
    tokio::time::timeout(STEP, async {
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
    })
    .await
    .expect("no PDU or EOF within the step timeout")
}

/// A backend on 127.0.0.1:0 that records each connection's first PDU exactly as received,
/// answers it with [`bind_ack_for`], then echoes every later byte.
pub struct RecordingBackend {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Vec<u8>>>>,
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
                let rec = rec.clone();
                tokio::spawn(async move {
                    let Some(pdu) = read_pdu(&mut s).await else { return };
                    rec.lock().unwrap().push(pdu.clone());
                    let Ok(bind) = parse_bind(&pdu) else { return };
                    if s.write_all(&bind_ack_for(&bind)).await.is_err() {
                        return;
                    }
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                    let _ = w.shutdown().await;
                });
            }
        });
        Self { addr, received, task }
    }

    /// First PDUs received so far.
    pub fn binds(&self) -> Vec<Vec<u8>> {
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

/// An RPC listener config named `name` with test-friendly limits.
pub fn listener_config(name: &str) -> RpcListenerConfig {
    RpcListenerConfig {
        name: name.into(),
        listen: "127.0.0.1:0".into(),
        pool: name.into(),
        ntlm: NtlmPolicy::Reject,
        allow_unauthenticated_epm: true,
        interfaces: BTreeMap::new(),
        max_bind_bytes: 64 * 1024,
        bind_timeout_ms: 5_000,
        idle_timeout_secs: 60,
        groups: None,
        max_connections: 1_000,
        per_source: Default::default(),
        shutdown_grace_secs: 5,
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
        kedge::observe::install();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pool = pool_to(&cfg.name, backend);
        // Connections run on per-core workers, as `kedge run` does by default.
        let workers = Workers::start(2).expect("worker threads");
        let ctx = Arc::new(
            RpcEdgeContext::new(acceptor, pool, &cfg)
                .unwrap()
                .with_workers(workers),
        );
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

/// What a client saw after sending its first bind.
#[derive(Debug)]
pub enum Reply {
    Ack(BindAck),
    Nak(BindNak),
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

/// Reads one PDU from `s` and decodes it as bind_ack / bind_nak.
pub async fn reply_of(s: &mut TcpStream) -> Reply {
    match read_pdu(s).await {
        None => Reply::Closed,
        Some(pdu) => match pdu[2] {
            12 | 15 => Reply::Ack(parse_bind_ack(&pdu).unwrap()),
            13 => Reply::Nak(parse_bind_nak(&pdu).unwrap()),
            t => panic!("unexpected PDU type {t}"),
        },
    }
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
