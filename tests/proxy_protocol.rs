//! kedge behind an L4 balancer: the PROXY header (v1 or v2) of a trusted source names the
//! client, and that address is the one the access log, `X-Forwarded-For` and the RPC access
//! line show; untrusted sources and missing headers are refused before anything is served.

mod access_log_file;
mod http_common;
mod support_rpc;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use access_log_file::AccessLogFile;
use http_common::backend::TestBackend;
use http_common::bounded;
use http_common::client::Conn;
use http_common::fake::FakeAuth;
use http_common::kedge::{logged, Kedge, PoolSpec};
use kedge::edge::proxy_protocol::header::encode_v2;
use kedge::edge::proxy_protocol::ProxyProtocolConfig;
use support_rpc::{acceptor_from_keytab, listener_config, read_pdu, Edge, RecordingBackend};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const EPM_BIND: &[u8] = include_bytes!("testdata/rpc/epm_noauth.bin");
const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
/// Another loopback address, not among the trusted sources.
const UNTRUSTED: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// A listener that takes PROXY headers from 127.0.0.1 only.
const BEHIND_BALANCER: &str = r#"
name = "behind-nlb"
proxy_protocol = { trusted = ["127.0.0.1/32"] }
[[routes]]
prefix = "/"
pool = "cas"
"#;

async fn setup(log: &AccessLogFile) -> (TestBackend, Kedge) {
    logged(BEHIND_BALANCER, log.log.clone()).await
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

#[tokio::test]
async fn a_v2_client_address_is_the_one_in_the_access_log_and_x_forwarded_for() {
    let log = AccessLogFile::json();
    let (backend, kedge) = setup(&log).await;
    // An AWS NLB-style header with a TLV (the VPC endpoint id), skipped unread.
    let header = encode_v2(
        addr("203.0.113.7:40123"),
        kedge.addr,
        &[0xea, 0x00, 0x04, 0x01, b'v', b'p', b'c'],
    );
    let mut c = Conn::plain_after(kedge.addr, LOOPBACK, &header).await;
    let r = c.get_as("get", "/mapi/", "alice").await;
    assert_eq!(r.status, 200);

    let seen = backend.seen();
    assert_eq!(seen[0].headers["x-forwarded-for"], "203.0.113.7");
    assert_eq!(
        seen[0].headers["forwarded"],
        "for=203.0.113.7;proto=http;host=\"outlook.kedge.test\""
    );
    let lines = log.wait_for(1).await;
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0]["peer"], "203.0.113.7");
    assert_eq!(lines[0]["via"], "127.0.0.1");
    assert_eq!(lines[0]["principal"], "alice@KEDGE.TEST");
}

#[tokio::test]
async fn a_v1_line_names_the_client_too() {
    let log = AccessLogFile::json();
    let (backend, kedge) = setup(&log).await;
    let line = format!(
        "PROXY TCP4 198.51.100.9 127.0.0.1 50000 {}\r\n",
        kedge.addr.port()
    );
    let mut c = Conn::plain_after(kedge.addr, LOOPBACK, line.as_bytes()).await;
    assert_eq!(c.get_as("get", "/ews/", "bob").await.status, 200);
    assert_eq!(backend.seen()[0].headers["x-forwarded-for"], "198.51.100.9");
    assert_eq!(log.wait_for(1).await[0]["peer"], "198.51.100.9");
}

#[tokio::test]
async fn a_local_command_keeps_the_balancers_own_address() {
    let log = AccessLogFile::json();
    let (backend, kedge) = setup(&log).await;
    let mut local = kedge::edge::proxy_protocol::header::V2_SIGNATURE.to_vec();
    local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
    let mut c = Conn::plain_after(kedge.addr, LOOPBACK, &local).await;
    assert_eq!(c.get_as("get", "/owa/", "carol").await.status, 200);
    assert_eq!(backend.seen()[0].headers["x-forwarded-for"], "127.0.0.1");
    let lines = log.wait_for(1).await;
    assert_eq!(lines[0]["peer"], "127.0.0.1");
    assert!(lines[0].get("via").is_none());
}

/// Connects from `local`, writes `bytes`, and reads what comes back until kedge closes.
async fn raw_from(kedge: SocketAddr, local: IpAddr, bytes: &[u8]) -> Vec<u8> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(local, 0)).unwrap();
    let mut s = socket.connect(kedge).await.unwrap();
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = bounded("close", s.read_to_end(&mut out)).await;
    out
}

#[tokio::test]
async fn an_untrusted_source_is_refused_even_with_a_header() {
    let log = AccessLogFile::json();
    let (backend, kedge) = setup(&log).await;
    let mut forged = encode_v2(addr("10.9.9.9:1"), kedge.addr, &[]);
    forged.extend_from_slice(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    let answer = raw_from(kedge.addr, UNTRUSTED, &forged).await;
    assert!(
        answer.is_empty(),
        "closed without an answer: {:?}",
        String::from_utf8_lossy(&answer)
    );
    assert!(backend.seen().is_empty());
    assert!(log.wait_for(0).await.is_empty(), "no request, no access line");
}

#[tokio::test]
async fn a_trusted_source_without_a_header_is_refused() {
    let log = AccessLogFile::json();
    let (backend, kedge) = setup(&log).await;
    let answer = raw_from(kedge.addr, LOOPBACK, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
    let lying = [
        &kedge::edge::proxy_protocol::header::V2_SIGNATURE[..],
        &[0x21, 0x11, 0xff, 0xff],
    ]
    .concat();
    assert!(
        raw_from(kedge.addr, LOOPBACK, &lying).await.is_empty(),
        "a length over the limit"
    );
    assert!(backend.seen().is_empty());
}

#[tokio::test]
async fn an_rpc_connection_behind_a_balancer_is_logged_as_its_client() {
    let log = AccessLogFile::json();
    let backend = RecordingBackend::start().await;
    let mut cfg = listener_config("rpc-behind-nlb");
    cfg.endpoint_mapper = true;
    cfg.proxy_protocol = Some(ProxyProtocolConfig {
        trusted: vec!["127.0.0.0/31".parse().unwrap()],
        required: true,
        max_v2_bytes: 256,
    });
    // No Kerberos here: the endpoint mapper binds without credentials.
    let keytab = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/rpc/exchange.keytab");
    let acceptor = acceptor_from_keytab(&keytab, "CONTOSO.TEST", "outlook.contoso.com");
    let edge = Edge::start_logged(cfg, acceptor, backend.addr, Some(log.log.clone())).await;

    let mut s = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    s.write_all(&encode_v2(addr("[2001:db8::77]:50000"), edge.addr, &[]))
        .await
        .unwrap();
    s.write_all(EPM_BIND).await.unwrap();
    let ack = bounded("bind_ack", read_pdu(&mut s)).await.expect("a reply");
    assert_eq!(ack[2], 12, "bind_ack");
    assert_eq!(
        backend.binds(),
        vec![EPM_BIND.to_vec()],
        "the header did not reach the member"
    );
    drop(s);

    let lines = log.wait_for(1).await;
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let l = &lines[0];
    assert_eq!(l["kind"], "rpc");
    assert_eq!(l["peer"], "2001:db8::77");
    assert_eq!(l["via"], "127.0.0.1");
    assert_eq!(l["interface"], "EPM v3.0");
    assert_eq!(l["auth"], "no_auth");
    assert_eq!(l["result"], "spliced");
    assert_eq!(l["member"], "cas1");
    assert!(l["bytes_in"].as_u64().unwrap() >= EPM_BIND.len() as u64, "{l}");
    assert!(l["bytes_out"].as_u64().unwrap() > 0, "{l}");
    edge.stop().await;
}

#[tokio::test]
async fn proxy_protocol_config_is_checked_with_its_path() {
    let toml = r#"
[kerberos]
keytab = "/nonexistent"
[[http]]
listen = "127.0.0.1:0"
proxy_protocol = { trusted = [] }
routes = []
[[rpc]]
name = "mdb"
listen = "127.0.0.1:0"
pool = "p"
proxy_protocol = { trusted = ["10.0.0.0/33"] }
"#;
    let err = kedge::config::Config::from_toml(toml, "t.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("prefix length"), "{err}");
    let toml = toml.replace("10.0.0.0/33", "10.0.0.0/8");
    let err = kedge::config::Config::from_toml(&toml, "t.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("http[0].proxy_protocol.trusted: empty"), "{err}");
}

#[tokio::test]
async fn on_https_the_header_comes_before_the_tls_handshake() {
    let p = http_common::pki::generate();
    let backend = TestBackend::start().await;
    let tls = kedge::edge::http::ServerTls::from_pem(p.cert_pem.as_bytes(), p.key_pem.as_bytes()).unwrap();
    let kedge = http_common::kedge::start(
        BEHIND_BALANCER,
        vec![PoolSpec::plain("cas", backend.addr)],
        Arc::new(FakeAuth::default()),
        Some(tls),
    )
    .await;
    let header = encode_v2(addr("203.0.113.44:443"), kedge.addr, &[]);
    let mut c = Conn::tls_after(kedge.addr, &header, &p.ca_pem, "outlook.contoso.com").await;
    assert_eq!(c.get_as("get", "/mapi/", "dave").await.status, 200);
    let seen = backend.seen();
    assert_eq!(seen[0].headers["x-forwarded-for"], "203.0.113.44");
    assert_eq!(seen[0].headers["x-forwarded-proto"], "https");
}

#[tokio::test]
async fn per_source_limits_and_top_talkers_count_the_clients_not_the_balancer() {
    let log = AccessLogFile::json();
    let toml = r#"
name = "nlb-limits"
proxy_protocol = { trusted = ["127.0.0.1/32"] }
limits = { per_source = { max_connections = 1, rate_per_sec = 0, burst = 0 } }
[[routes]]
prefix = "/"
pool = "cas"
"#;
    let (_backend, kedge) = logged(toml, log.log.clone()).await;
    let from = |client: &str| encode_v2(addr(client), kedge.addr, &[]);
    // Two clients behind the one balancer address: one connection each is within the limit.
    let mut first = Conn::plain_after(kedge.addr, LOOPBACK, &from("203.0.113.10:1000")).await;
    assert_eq!(first.get_as("first", "/owa/", "erin").await.status, 200);
    let mut other = Conn::plain_after(kedge.addr, LOOPBACK, &from("203.0.113.11:1000")).await;
    assert_eq!(other.get_as("other client", "/owa/", "frank").await.status, 200);
    // A second connection of the first client is over its limit: closed unanswered.
    let mut again = from("203.0.113.10:1001");
    again.extend_from_slice(b"GET /owa/ HTTP/1.1\r\nhost: x\r\n\r\n");
    assert!(raw_from(kedge.addr, LOOPBACK, &again).await.is_empty());

    let talkers = kedge::edge::source_limits::top_talkers("nlb-limits", 10);
    let of = |s: &str| {
        talkers
            .iter()
            .find(|t| t.source == s)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(
        (of("203.0.113.10").open, of("203.0.113.10").refused),
        (1, 1),
        "{talkers:?}"
    );
    assert_eq!(of("203.0.113.11").open, 1, "{talkers:?}");
    assert!(talkers.iter().all(|t| t.source != "127.0.0.1"), "{talkers:?}");
    drop((first, other));
}
