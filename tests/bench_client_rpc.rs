//! `kedge-bench rpc` against an in-test TCP server that does what kedge's RPC edge does with a
//! first bind: parse it with `kedge::rpc::parse_bind`, validate its token with the real
//! `Acceptor` for the SPN the interface needs, and answer bind_ack (or bind_nak).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use kedge::benchclient::credentials::ServiceCredential;
use kedge::benchclient::limits::Limits;
use kedge::benchclient::rpc::{self, Interface, RpcAuth, RpcOptions};
use kedge::benchclient::tokens::{TokenMinter, TokenSpec};
use kedge::krb::acceptor::{AcceptCtx, Acceptor, AcceptorConfig, Framing};
use kedge::krb::crypto::{EncType, Key};
use kedge::krb::keyset::{KeySet, ServiceKey};
use kedge::krb::principal::Principal;
use kedge::krb::replay::ReplayCache;
use kedge::krb::time::unix_secs;
use kedge::rpc::{
    build_bind_nak, parse_bind, pdu_length, AckResult, AuthLevel, AuthType, AuthVerifier, BindAck,
    ContextResult, InterfaceMap, PacketType, RejectReason, Requirement, SyntaxId, HEADER_LEN,
};

const MDB: &str = "exchangeMDB/outlook.contoso.com@CONTOSO.COM";

struct Server {
    acceptor: Acceptor,
    tokens: Mutex<HashSet<Vec<u8>>>,
    acked: AtomicU64,
    naked: AtomicU64,
    framings: Mutex<HashSet<String>>,
}

fn server_state(key: &Key) -> Arc<Server> {
    let cfg = AcceptorConfig {
        realm: Some("CONTOSO.COM".into()),
        hosts: vec!["outlook.contoso.com".into()],
        ..Default::default()
    };
    let sk = ServiceKey::new(Principal::parse(MDB, "").unwrap(), 7, key.clone(), 0);
    Arc::new(Server {
        acceptor: Acceptor::new(
            cfg,
            KeySet::from_keys(vec![sk], SystemTime::now(), "test"),
            Arc::new(ReplayCache::new(2_000_000)),
        ),
        tokens: Mutex::new(HashSet::new()),
        acked: AtomicU64::new(0),
        naked: AtomicU64::new(0),
        framings: Mutex::new(HashSet::new()),
    })
}

/// The reply to one first bind: bind_ack carrying the acceptor's response token (SPNEGO) where
/// there is one, or bind_nak (reason 9, invalid checksum) for a token that fails.
fn reply(state: &Server, pdu: &[u8]) -> Vec<u8> {
    let bind = parse_bind(pdu).expect("the client sends well-formed binds");
    let service = match InterfaceMap::default().required_service(&bind) {
        Ok(Requirement::Service(s)) => s,
        other => panic!("unexpected interface requirement {other:?}"),
    };
    let token = bind.token(pdu).expect("bind carries a token");
    state.tokens.lock().unwrap().insert(token.to_vec());
    let ctx = AcceptCtx {
        now: SystemTime::now(),
        service: &service,
        channel_binding: None,
        groups: None,
        check_replay: true,
    };
    match state.acceptor.accept(token, &ctx) {
        Ok(a) => {
            assert!(a.dce_style, "RPC tokens carry DCE style");
            state.acked.fetch_add(1, Ordering::Relaxed);
            state.framings.lock().unwrap().insert(format!("{:?}", a.framing));
            let auth = bind.auth.clone().unwrap();
            let rep = a.response_token().unwrap_or_default();
            let ack = BindAck {
                ptype: PacketType::BindAck,
                pfc_flags: 0x03,
                call_id: bind.call_id,
                drep: bind.drep,
                max_xmit_frag: bind.max_xmit_frag,
                max_recv_frag: bind.max_recv_frag,
                assoc_group_id: 0x5a5a,
                secondary_address: b"6001\0".to_vec(),
                results: vec![ContextResult {
                    result: AckResult::Acceptance,
                    reason: 0,
                    transfer_syntax: SyntaxId::NDR,
                }],
                auth: Some(AuthVerifier {
                    token_range: 0..0,
                    ..auth
                }),
            };
            ack.to_bytes(&rep).unwrap()
        }
        Err(_) => {
            state.naked.fetch_add(1, Ordering::Relaxed);
            build_bind_nak(bind.call_id, bind.drep, RejectReason::InvalidChecksum)
        }
    }
}

async fn serve(state: Arc<Server>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let mut pdu = vec![0u8; HEADER_LEN];
                if s.read_exact(&mut pdu).await.is_err() {
                    return;
                }
                let len = pdu_length(&pdu, 65_535).unwrap();
                pdu.resize(len, 0);
                if s.read_exact(&mut pdu[HEADER_LEN..]).await.is_err() {
                    return;
                }
                let out = reply(&state, &pdu);
                let _ = s.write_all(&out).await;
                // Wait for the client to close, as a server waiting for auth3 would.
                let mut rest = [0u8; 64];
                let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut rest)).await;
            });
        }
    });
    addr
}

fn feed(key: &Key, auth: RpcAuth, users: u32) -> Arc<kedge::benchclient::feed::Feed<rpc::RpcBind>> {
    let cred = ServiceCredential {
        spn: Principal::parse(MDB, "").unwrap(),
        key: key.clone(),
        kvno: 7,
        filed_under: Principal::parse(MDB, "").unwrap(),
    };
    let spec = TokenSpec {
        user_count: users,
        framing: auth.framing(),
        gss_flags: auth.gss_flags(),
        pac_groups: Some(20),
    };
    let minter = Arc::new(TokenMinter::new(&cred, spec, unix_secs(SystemTime::now())).unwrap());
    Arc::new(rpc::bind_feed(
        minter,
        Interface::Emsmdb,
        auth,
        AuthLevel::PktPrivacy,
        1,
    ))
}

fn options(addr: SocketAddr, auth: RpcAuth, binds: u64, mutual: bool) -> RpcOptions {
    RpcOptions {
        addr,
        auth,
        level: AuthLevel::PktPrivacy,
        interface: Interface::Emsmdb,
        connections: 4,
        limits: Limits {
            duration: None,
            count: Some(binds),
            max_time: Duration::from_secs(60),
            rate: None,
        },
        mutual,
        timeout: Duration::from_secs(10),
    }
}

#[test]
fn bind_pdu_parses_back_with_its_token() {
    let token = vec![0x6e, 0x03, 0x02, 0x01, 0x05];
    let pdu = rpc::bind_pdu(Interface::Emsmdb, RpcAuth::Krb5, AuthLevel::Connect, &token).unwrap();
    let bind = parse_bind(&pdu).unwrap();
    assert_eq!(bind.ptype, PacketType::Bind);
    assert_eq!(bind.token(&pdu), Some(&token[..]));
    let auth = bind.auth.unwrap();
    assert_eq!(auth.auth_type, AuthType::Krb5);
    assert_eq!(auth.auth_level, AuthLevel::Connect);
    assert_eq!(bind.contexts[0].abstract_syntax.uuid, kedge::rpc::EMSMDB);
    assert_eq!(bind.contexts[0].abstract_syntax.minor, 81);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth16_binds_each_on_a_new_connection_are_acked_with_good_ap_reps() {
    let key = Key::random(EncType::Aes256CtsHmacSha196);
    let state = server_state(&key);
    let addr = serve(state.clone()).await;
    let feed = feed(&key, RpcAuth::Krb5, 30);
    let r = rpc::run(options(addr, RpcAuth::Krb5, 200, true), feed.clone())
        .await
        .unwrap();
    feed.stop();
    eprint!("{r}");
    assert_eq!(
        (r.completed, r.ok, r.errors),
        (200, 200, 0),
        "{:?}",
        r.errors_by_kind
    );
    assert_eq!(r.connects, 200, "one connection per bind");
    assert_eq!(
        r.mutual_verified, 200,
        "bare AP-REPs check against the session key"
    );
    assert_eq!(r.outcomes.get("bind_ack"), Some(&200));
    assert_eq!(state.acked.load(Ordering::Relaxed), 200);
    assert_eq!(state.tokens.lock().unwrap().len(), 200, "every token distinct");
    assert_eq!(
        *state.framings.lock().unwrap(),
        HashSet::from([format!("{:?}", Framing::Bare)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth9_spnego_binds_are_acked_and_their_ap_reps_verify() {
    let key = Key::random(EncType::Aes256CtsHmacSha196);
    let state = server_state(&key);
    let addr = serve(state.clone()).await;
    let feed = feed(&key, RpcAuth::Spnego, 30);
    let r = rpc::run(options(addr, RpcAuth::Spnego, 100, true), feed.clone())
        .await
        .unwrap();
    feed.stop();
    eprint!("{r}");
    assert_eq!((r.ok, r.errors), (100, 0), "{:?}", r.errors_by_kind);
    assert_eq!(r.mutual_verified, 100);
    assert_eq!(
        *state.framings.lock().unwrap(),
        HashSet::from([format!("{:?}", Framing::Spnego { legacy_oid: true })])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds_with_a_wrong_key_are_naked_and_counted_by_reason() {
    let state = server_state(&Key::random(EncType::Aes256CtsHmacSha196));
    let addr = serve(state.clone()).await;
    let feed = feed(&Key::random(EncType::Aes256CtsHmacSha196), RpcAuth::Krb5, 5);
    let r = rpc::run(options(addr, RpcAuth::Krb5, 40, false), feed.clone())
        .await
        .unwrap();
    feed.stop();
    assert_eq!((r.completed, r.ok), (40, 0));
    assert_eq!(r.errors_by_kind.get("bind_nak reason 9"), Some(&40));
    assert_eq!(state.naked.load(Ordering::Relaxed), 40);
}

/// The sample RPC load run: `cargo test --release --test bench_client_rpc -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "load run; use --release --ignored --nocapture"]
async fn sample_load_run() {
    let key = Key::random(EncType::Aes256CtsHmacSha196);
    let state = server_state(&key);
    let addr = serve(state.clone()).await;
    let secs: u64 = std::env::var("KEDGE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    for auth in [RpcAuth::Krb5, RpcAuth::Spnego] {
        let feed = feed(&key, auth, 1000);
        let mut opts = options(addr, auth, 0, false);
        opts.connections = 32;
        opts.limits = Limits {
            duration: Some(Duration::from_secs(secs)),
            count: None,
            max_time: Duration::from_secs(secs + 30),
            rate: None,
        };
        let r = rpc::run(opts, feed.clone()).await.unwrap();
        feed.stop();
        eprint!("{r}");
        assert_eq!(r.errors, 0, "{:?}", r.errors_by_kind);
        // Each run starts with an empty cache, as a fresh process would.
        state.acceptor.replay_cache().clear();
    }
}
