//! Per-source limits on the real RPC edge: one address holds a bounded share of the listener's
//! connections; over it a connection is closed at once (no bind read) and counted.

mod support_rpc;

use std::sync::Arc;

use kedge::config::SourceLimitsConfig;
use kedge::krb::acceptor::{Acceptor, AcceptorConfig};
use kedge::krb::keyset::KeySet;
use kedge::krb::replay::ReplayCache;
use support_rpc::*;
use tokio::net::TcpStream;

const EPM_BIND: &[u8] = include_bytes!("testdata/rpc/epm_noauth.bin");

#[tokio::test]
async fn one_source_gets_at_most_its_share_of_rpc_connections() {
    kedge::observe::install();
    let backend = RecordingBackend::start().await;
    let mut cfg = listener_config("rpc-per-source");
    cfg.endpoint_mapper = true;
    cfg.per_source = SourceLimitsConfig {
        max_connections: 2,
        rate_per_sec: 0,
        burst: 0,
    };
    let acceptor = Arc::new(Acceptor::new(
        AcceptorConfig::default(),
        KeySet::from_keys(Vec::new(), std::time::SystemTime::now(), "none"),
        Arc::new(ReplayCache::new(16)),
    ));
    let edge = Edge::start(cfg, acceptor, backend.addr).await;
    let labels = [
        ("listener", "rpc-per-source"),
        ("limit", "per_source_connections"),
    ];
    let before = metric("kedge_limit_exceeded_total", &labels);

    // Two spliced endpoint-mapper sessions stay open.
    let (a, _sa) = send_bind(edge.addr, EPM_BIND).await;
    let (b, _sb) = send_bind(edge.addr, EPM_BIND).await;
    assert!(matches!(a, Reply::Ack(_)) && matches!(b, Reply::Ack(_)));
    // The third from the same address is closed before its bind is read.
    let mut third = TcpStream::connect(edge.addr).await.unwrap();
    assert_closed(&mut third).await;
    metric_moved("kedge_limit_exceeded_total", &labels, before).await;
    let talkers = kedge::edge::source_limits::top_talkers("rpc-per-source", 3);
    assert_eq!((talkers[0].source.as_str(), talkers[0].open), ("127.0.0.1", 2));
    assert_eq!(
        backend.binds().len(),
        2,
        "the refused connection never reached a member"
    );
}
