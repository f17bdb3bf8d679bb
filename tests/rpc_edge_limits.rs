//! The RPC edge under bad input, limits and shutdown: every case ends the connection cleanly
//! (EOF or a bind_nak within the step timeout) and moves a metric. No Kerberos needed here.

mod support_rpc;

use std::sync::Arc;
use std::time::Duration;

use kedge::krb::acceptor::{Acceptor, AcceptorConfig};
use kedge::krb::keyset::KeySet;
use kedge::krb::replay::ReplayCache;
use kedge::rpc::RejectReason;
use support_rpc::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const EPM_BIND: &[u8] = include_bytes!("testdata/rpc/epm_noauth.bin");
const MDB_BIND: &[u8] = include_bytes!("testdata/rpc/emsmdb_spnego_connect.bin");

fn no_keys() -> Arc<Acceptor> {
    Arc::new(Acceptor::new(
        AcceptorConfig::default(),
        KeySet::from_keys(Vec::new(), std::time::SystemTime::now(), "none"),
        Arc::new(ReplayCache::new(16)),
    ))
}

/// An endpoint-mapper listener (the unauthenticated EPM bind is the bind that passes without
/// keys) in front of a recording backend, configured by `tweak`.
async fn edge(
    name: &str,
    tweak: impl FnOnce(&mut kedge::config::RpcListenerConfig),
) -> (Edge, RecordingBackend) {
    edge_with(name, no_keys(), |c| {
        c.endpoint_mapper = true;
        tweak(c);
    })
    .await
}

#[tokio::test]
async fn garbage_bytes_end_the_connection_with_a_metric() {
    let (edge, backend) = edge("l-garbage", |_| {}).await;
    let labels = [("protocol", "rpc"), ("reason", "bad_version")];
    let before = metric("kedge_auth_total", &labels);
    let mut s = TcpStream::connect(edge.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: outlook\r\n\r\n")
        .await
        .unwrap();
    assert!(matches!(reply_of(&mut s).await, Reply::Closed));
    metric_moved("kedge_auth_total", &labels, before).await;
    assert!(backend.binds().is_empty());
}

#[tokio::test]
async fn truncated_pdu_ends_the_connection_with_a_metric() {
    let (edge, backend) = edge("l-truncated", |_| {}).await;
    let labels = [("protocol", "rpc"), ("reason", "truncated")];
    let before = metric("kedge_auth_total", &labels);
    let mut s = TcpStream::connect(edge.addr).await.unwrap();
    s.write_all(&MDB_BIND[..200]).await.unwrap();
    s.shutdown().await.unwrap();
    assert!(matches!(reply_of(&mut s).await, Reply::Closed));
    metric_moved("kedge_auth_total", &labels, before).await;
    assert!(backend.binds().is_empty());
}

#[tokio::test]
async fn oversize_frag_length_gets_bind_nak_2_before_the_body_is_read() {
    let (edge, backend) = edge("l-oversize", |c| c.max_bind_bytes = 512).await;
    let labels = [("listener", "l-oversize"), ("limit", "max_bind_bytes")];
    let before = metric("kedge_limit_exceeded_total", &labels);
    let mut s = TcpStream::connect(edge.addr).await.unwrap();
    s.write_all(MDB_BIND).await.unwrap();
    match reply_of(&mut s).await {
        Reply::Nak(n) => assert_eq!((n.reason, n.call_id), (RejectReason::LocalLimitExceeded, 1)),
        other => panic!("want bind_nak 2, got {other:?}"),
    }
    assert_closed(&mut s).await;
    metric_moved("kedge_limit_exceeded_total", &labels, before).await;
    assert!(backend.binds().is_empty());
}

#[tokio::test]
async fn silent_client_is_closed_after_the_bind_timeout() {
    let (edge, _backend) = edge("l-silent", |c| c.bind_timeout_ms = 200).await;
    let labels = [("listener", "l-silent"), ("limit", "bind_timeout")];
    let before = metric("kedge_limit_exceeded_total", &labels);
    let mut s = TcpStream::connect(edge.addr).await.unwrap();
    assert!(matches!(reply_of(&mut s).await, Reply::Closed));
    metric_moved("kedge_limit_exceeded_total", &labels, before).await;
}

#[tokio::test]
async fn client_stalling_after_the_header_gets_bind_nak_2_at_the_timeout() {
    let (edge, _backend) = edge("l-stall", |c| c.bind_timeout_ms = 200).await;
    let mut s = TcpStream::connect(edge.addr).await.unwrap();
    s.write_all(&MDB_BIND[..40]).await.unwrap();
    match reply_of(&mut s).await {
        Reply::Nak(n) => assert_eq!(n.reason, RejectReason::LocalLimitExceeded),
        other => panic!("want bind_nak 2, got {other:?}"),
    }
}

#[tokio::test]
async fn request_pdu_instead_of_a_bind_is_refused() {
    let (edge, _backend) = edge("l-request", |_| {}).await;
    let mut pdu = EPM_BIND.to_vec();
    pdu[2] = 0; // request
    let (reply, mut s) = send_bind(edge.addr, &pdu).await;
    assert!(matches!(reply, Reply::Nak(_)), "{reply:?}");
    assert_closed(&mut s).await;
}

#[tokio::test]
async fn kerberos_bind_with_garbage_token_gets_bind_nak_9() {
    let (edge, backend) = edge("l-bad-token", |_| {}).await;
    let bind = emsmdb_bind(kedge::rpc::AuthType::Krb5, b"\x6e\x03\x02\x01\x05");
    let (reply, _s) = send_bind(edge.addr, &bind).await;
    match reply {
        Reply::Nak(n) => assert_eq!(n.reason, RejectReason::InvalidChecksum),
        other => panic!("{other:?}"),
    }
    assert!(backend.binds().is_empty());
}

#[tokio::test]
async fn no_backend_gets_bind_nak_2() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut cfg = listener_config("l-no-backend");
    cfg.endpoint_mapper = true;
    let edge = Edge::start(cfg, no_keys(), closed).await;
    let (reply, _s) = send_bind(edge.addr, EPM_BIND).await;
    match reply {
        Reply::Nak(n) => assert_eq!(n.reason, RejectReason::LocalLimitExceeded),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn idle_spliced_connection_is_closed_with_a_metric() {
    let (edge, _backend) = edge("l-idle", |c| c.idle_timeout_secs = 1).await;
    let labels = [("listener", "l-idle"), ("limit", "idle_timeout")];
    let before = metric("kedge_limit_exceeded_total", &labels);
    let (reply, mut s) = send_bind(edge.addr, EPM_BIND).await;
    assert!(matches!(reply, Reply::Ack(_)));
    assert_closed(&mut s).await;
    metric_moved("kedge_limit_exceeded_total", &labels, before).await;
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_and_counted() {
    let (edge, _backend) = edge("l-max-conns", |c| c.max_connections = 1).await;
    let labels = [("listener", "l-max-conns"), ("limit", "max_connections")];
    let before = metric("kedge_limit_exceeded_total", &labels);
    let (reply, _held) = send_bind(edge.addr, EPM_BIND).await;
    assert!(matches!(reply, Reply::Ack(_)));
    let mut second = TcpStream::connect(edge.addr).await.unwrap();
    let _ = second.write_all(EPM_BIND).await;
    assert!(matches!(reply_of(&mut second).await, Reply::Closed));
    metric_moved("kedge_limit_exceeded_total", &labels, before).await;
}

#[tokio::test]
async fn shutdown_stops_accepting_and_lets_spliced_connections_finish() {
    let (mut edge, _backend) = edge("l-shutdown", |c| c.shutdown_grace_secs = 10).await;
    let (reply, mut s) = send_bind(edge.addr, EPM_BIND).await;
    assert!(matches!(reply, Reply::Ack(_)));
    edge.shutdown();
    // New connections are refused once the listener is gone.
    let mut refused = false;
    for _ in 0..200 {
        if TcpStream::connect(edge.addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "listener still accepting after shutdown");
    // The spliced connection still works.
    let request = request_pdu(2, b"still here");
    s.write_all(&request).await.unwrap();
    assert_eq!(read_pdu(&mut s).await, Some(request));
    // serve_rpc returns once it closes.
    drop(s);
    let task = edge.task.take().unwrap();
    tokio::time::timeout(STEP, task)
        .await
        .expect("serve_rpc returns")
        .unwrap();
}

#[tokio::test]
async fn shutdown_cuts_connections_still_open_after_the_grace_period() {
    let (mut edge, _backend) = edge("l-grace", |c| c.shutdown_grace_secs = 1).await;
    let (reply, mut s) = send_bind(edge.addr, EPM_BIND).await;
    assert!(matches!(reply, Reply::Ack(_)));
    edge.shutdown();
    assert_closed(&mut s).await;
    let task = edge.task.take().unwrap();
    tokio::time::timeout(STEP, task)
        .await
        .expect("serve_rpc returns")
        .unwrap();
}
