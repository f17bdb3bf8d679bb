//! Listener limits: head timeout (slowloris), idle timeout, head size and header count,
//! malformed requests, the connection limit, and graceful shutdown.

mod http_common;

use std::sync::Arc;
use std::time::Duration;

use http::Request;
use http_common::backend::TestBackend;
use http_common::bounded;
use http_common::client::{raw, status_of, Conn, TestBody};
use http_common::fake::FakeAuth;
use http_common::kedge::{start, Kedge, PoolSpec, PASSTHROUGH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn with_limits(limits: &str) -> (TestBackend, Kedge) {
    let backend = TestBackend::start().await;
    let cfg = format!("{PASSTHROUGH}\n[limits]\n{limits}\n");
    let kedge = start(
        &cfg,
        vec![PoolSpec::plain("cas", backend.addr)],
        Arc::new(FakeAuth::default()),
        None,
    )
    .await;
    (backend, kedge)
}

/// Reads until EOF; returns what came.
async fn until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    bounded("server close", s.read_to_end(&mut out)).await.ok();
    out
}

#[tokio::test]
async fn a_slowloris_head_is_cut_at_the_header_timeout() {
    let (backend, kedge) = with_limits("header_timeout_ms = 300").await;
    let mut s = TcpStream::connect(kedge.addr).await.unwrap();
    s.write_all(b"GET /owa/healthcheck.htm HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Dribble header bytes for well past the timeout; the server must close on us.
    let dribble = async {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if s.write_all(b"X-a: b\r\n").await.is_err() {
                return;
            }
        }
    };
    bounded("dribble", dribble).await;
    let mut rest = Vec::new();
    let n = bounded("closed", s.read_to_end(&mut rest)).await;
    assert!(
        n.is_err() || rest.is_empty(),
        "no response to a head that never ended"
    );
    assert_eq!(backend.seen().len(), 0);
}

#[tokio::test]
async fn a_silent_connection_is_cut_at_the_header_timeout() {
    let (_backend, kedge) = with_limits("header_timeout_ms = 200").await;
    let mut s = TcpStream::connect(kedge.addr).await.unwrap();
    assert!(until_closed(&mut s).await.is_empty());
}

#[tokio::test]
async fn an_idle_keep_alive_connection_outlives_the_header_timeout() {
    let (_backend, kedge) = with_limits("header_timeout_ms = 200\nidle_timeout_secs = 60").await;
    let mut c = Conn::plain(kedge.addr).await;
    assert_eq!(
        bounded("first", c.get("/owa/healthcheck.htm", &[])).await.status,
        200
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!c.is_closed());
    assert_eq!(
        bounded("second", c.get("/owa/healthcheck.htm", &[])).await.status,
        200
    );
}

#[tokio::test]
async fn an_idle_connection_is_closed_at_the_idle_timeout() {
    let (_backend, kedge) = with_limits("idle_timeout_secs = 1").await;
    let mut c = Conn::plain(kedge.addr).await;
    assert_eq!(
        bounded("first", c.get("/owa/healthcheck.htm", &[])).await.status,
        200
    );
    bounded("idle close", async {
        while !c.is_closed() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_head_over_max_header_bytes_is_431() {
    let (backend, kedge) = with_limits("max_header_bytes = 16384").await;
    let req = format!(
        "GET /owa/healthcheck.htm HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let reply = raw(kedge.addr, req.as_bytes()).await;
    assert_eq!(status_of(&reply), 431, "{reply}");
    assert_eq!(backend.seen().len(), 0);
}

#[tokio::test]
async fn a_64k_authorization_header_fits_the_default_limits() {
    let (backend, kedge) = with_limits("").await;
    // 48,000-byte token → 64,000 base64 bytes: refused by the validator, not by the limits.
    let token = format!("Negotiate {}", "A".repeat(64_000));
    let mut c = Conn::plain(kedge.addr).await;
    let r = bounded("get", c.get("/", &[("authorization", &token)])).await;
    assert_eq!(r.status, 401);
    assert_eq!(backend.seen().len(), 0);
}

#[tokio::test]
async fn too_many_headers_is_431() {
    let (backend, kedge) = with_limits("max_headers = 20").await;
    let mut req = String::from("GET /owa/healthcheck.htm HTTP/1.1\r\nHost: x\r\n");
    for i in 0..40 {
        req.push_str(&format!("X-H{i}: v\r\n"));
    }
    req.push_str("\r\n");
    let reply = raw(kedge.addr, req.as_bytes()).await;
    assert_eq!(status_of(&reply), 431, "{reply}");
    assert_eq!(backend.seen().len(), 0);
}

#[tokio::test]
async fn malformed_requests_get_400_and_never_reach_the_backend() {
    let (backend, kedge) = with_limits("").await;
    let cases: &[&[u8]] = &[
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /owa/healthcheck.htm HTTP/1.1\r\nHost: x\r\nBad Header: v\r\n\r\n",
        b"GET /owa/healthcheck.htm HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"POST /owa/healthcheck.htm HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    ];
    for case in cases {
        let reply = raw(kedge.addr, case).await;
        let code = status_of(&reply);
        assert!(
            code == 400 || code == 0,
            "{:?} → {reply}",
            String::from_utf8_lossy(case)
        );
    }
    assert!(backend
        .seen()
        .iter()
        .all(|s| s.method != http::Method::GET || s.path != "/"));
}

#[tokio::test]
async fn connections_over_the_limit_get_a_clean_503() {
    let (_backend, kedge) = with_limits("max_connections = 2").await;
    let mut a = Conn::plain(kedge.addr).await;
    let mut b = Conn::plain(kedge.addr).await;
    assert_eq!(bounded("a", a.get("/owa/healthcheck.htm", &[])).await.status, 200);
    assert_eq!(bounded("b", b.get("/owa/healthcheck.htm", &[])).await.status, 200);
    let reply = raw(
        kedge.addr,
        b"GET /owa/healthcheck.htm HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&reply), 503, "{reply}");
    drop(a);
    // The slot comes back once a connection is gone.
    bounded("slot", async {
        loop {
            let reply = raw(
                kedge.addr,
                b"GET /owa/healthcheck.htm HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .await;
            if status_of(&reply) == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn shutdown_stops_accepting_and_lets_in_flight_streams_finish_within_the_grace() {
    let (_backend, kedge) = with_limits("shutdown_grace_secs = 2").await;
    let addr = kedge.addr;
    let mut idle = Conn::plain(addr).await;
    assert_eq!(
        bounded("idle", idle.get("/owa/healthcheck.htm", &[]))
            .await
            .status,
        200
    );
    let mut c = Conn::plain(addr).await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let req = Request::post("/stream-anon")
        .header("host", "x")
        .header("content-length", "1073741824")
        .body(TestBody::Channel(rx, Some(1 << 30)))
        .unwrap();
    let resp = bounded("head", c.send(req)).await.expect("response");
    let mut body = resp.into_body();
    tx.send(bytes::Bytes::from_static(b"before")).await.unwrap();
    let f = bounded("frame", http_body_util::BodyExt::frame(&mut body))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(f.into_data().unwrap(), "before");

    let stopping = tokio::spawn(kedge.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    // No new connections.
    assert!(
        TcpStream::connect(addr).await.is_err()
            || raw(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.is_empty()
    );
    // The idle keep-alive connection is closed at once.
    bounded("idle closed", async {
        while !idle.is_closed() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // The stream in flight still flows.
    tx.send(bytes::Bytes::from_static(b"during")).await.unwrap();
    let f = bounded("frame", http_body_util::BodyExt::frame(&mut body))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(f.into_data().unwrap(), "during");
    // And is cut after the grace period; the listener then returns.
    bounded("stopped", stopping).await.unwrap().unwrap();
}
