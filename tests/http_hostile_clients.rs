//! Clients that do not authenticate, through the real HTTP edge: a connection kedge refused has
//! a short budget (time and refusals) to authenticate before it is closed, and one source
//! address gets a bounded share of the listener (open connections and new connections per
//! second), counted and shown as a top talker.

mod http_common;

use std::sync::Arc;
use std::time::Duration;

use http_common::backend::TestBackend;
use http_common::client::Conn;
use http_common::fake::{self, FakeAuth};
use http_common::kedge::{start, Kedge, PoolSpec, PASSTHROUGH};
use http_common::{bounded, BOUND};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn with_limits(name: &str, limits: &str) -> (TestBackend, Kedge) {
    kedge::observe::install();
    let backend = TestBackend::start().await;
    let cfg = format!(
        "{}\n[limits]\n{limits}\n",
        PASSTHROUGH.replace("name = \"https\"", &format!("name = \"{name}\""))
    );
    let kedge = start(
        &cfg,
        vec![PoolSpec::plain("cas", backend.addr)],
        Arc::new(FakeAuth::default()),
        None,
    )
    .await;
    (backend, kedge)
}

/// Sends one request on `s` and reads its response head (and body, by Content-Length).
async fn exchange(s: &mut TcpStream, path: &str, authorization: Option<&str>) -> String {
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: outlook.kedge.test\r\n{auth}\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut got = Vec::new();
    bounded("response", async {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if got.len() >= end + 4 + len {
                    return;
                }
            }
            let n = s.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed mid-response: {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    String::from_utf8_lossy(&got).into_owned()
}

/// Whether the server closes `s` within `within` (EOF or reset), reading and discarding.
async fn closes_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let read = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, read).await.is_ok()
}

#[tokio::test]
async fn a_refused_connection_that_does_not_authenticate_is_closed_after_its_time_budget() {
    let (_backend, kedge) = with_limits("budget-time", "unauthenticated_timeout_ms = 300").await;
    let mut s = TcpStream::connect(kedge.addr).await.unwrap();
    assert!(exchange(&mut s, "/mapi/", None).await.starts_with("HTTP/1.1 401"));
    // Before: open until the 1200 s idle timeout.
    assert!(
        closes_within(&mut s, Duration::from_secs(5)).await,
        "a 401'd connection idles on unauthenticated"
    );
}

#[tokio::test]
async fn the_last_allowed_refusal_closes_the_connection() {
    let (_backend, kedge) = with_limits("budget-count", "max_failed_auth = 3").await;
    let mut s = TcpStream::connect(kedge.addr).await.unwrap();
    let bad = fake::negotiate(b"not a token kedge accepts");
    for i in 1..=3 {
        let r = exchange(&mut s, "/mapi/", Some(&bad)).await;
        assert!(r.starts_with("HTTP/1.1 401"), "{r}");
        let close = r.to_ascii_lowercase().contains("connection: close");
        assert_eq!(close, i == 3, "refusal {i}: {r}");
    }
    assert!(closes_within(&mut s, Duration::from_secs(2)).await);
    let refused = http_common_metric("kedge_limit_exceeded_total", "budget-count", "max_failed_auth");
    assert!(refused >= 1.0, "counted: {refused}");
}

#[tokio::test]
async fn a_connection_that_authenticates_after_a_401_keeps_its_keep_alive() {
    let (backend, kedge) = with_limits(
        "budget-ok",
        "unauthenticated_timeout_ms = 300\nmax_failed_auth = 2",
    )
    .await;
    let mut c = Conn::plain(kedge.addr).await;
    assert_eq!(c.get_plain("no credentials", "/mapi/").await.status, 401);
    assert_eq!(c.get_as("token", "/mapi/", "alice").await.status, 200);
    // Past the budget, and past another refusal's worth: still open, still alice.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!c.is_closed(), "an authenticated connection is not on a budget");
    assert_eq!(c.get_plain("keep-alive", "/mapi/x").await.status, 200);
    assert_eq!(backend.seen().len(), 2);
}

#[tokio::test]
async fn one_source_gets_at_most_its_share_of_open_connections() {
    let (_backend, kedge) = with_limits(
        "per-source-open",
        "per_source = { max_connections = 3, rate_per_sec = 0 }",
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(kedge.addr).await.unwrap();
        assert!(exchange(&mut s, "/owa/healthcheck.htm", None)
            .await
            .starts_with("HTTP/1.1 200"));
        held.push(s);
    }
    let mut fourth = TcpStream::connect(kedge.addr).await.unwrap();
    assert!(
        closes_within(&mut fourth, Duration::from_secs(2)).await,
        "the fourth is closed at once"
    );
    let talkers = kedge::edge::source_limits::top_talkers("per-source-open", 5);
    assert_eq!(talkers.len(), 1, "{talkers:?}");
    assert_eq!((talkers[0].source.as_str(), talkers[0].open), ("127.0.0.1", 3));
    assert!(talkers[0].refused >= 1);
    assert!(
        http_common_metric(
            "kedge_limit_exceeded_total",
            "per-source-open",
            "per_source_connections"
        ) >= 1.0
    );
    // A closed connection frees its place.
    drop(held.pop());
    let ok = bounded("a place frees up", async {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut s = TcpStream::connect(kedge.addr).await.unwrap();
            s.write_all(b"GET /owa/healthcheck.htm HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out).await;
            if out.starts_with(b"HTTP/1.1 200") {
                return true;
            }
        }
    })
    .await;
    assert!(ok);
}

#[tokio::test]
async fn one_source_opening_connections_too_fast_is_refused_beyond_its_burst() {
    let (_backend, kedge) = with_limits(
        "per-source-rate",
        "per_source = { max_connections = 0, rate_per_sec = 1, burst = 4 }",
    )
    .await;
    let mut answered = 0;
    for _ in 0..10 {
        let mut s = TcpStream::connect(kedge.addr).await.unwrap();
        let _ = s
            .write_all(b"GET /owa/healthcheck.htm HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(BOUND, s.read_to_end(&mut out)).await;
        if out.starts_with(b"HTTP/1.1 200") {
            answered += 1;
        }
    }
    // Four at once, and at most one more token while the ten were made.
    assert!((4..=5).contains(&answered), "{answered} answered");
    assert!(http_common_metric("kedge_limit_exceeded_total", "per-source-rate", "per_source_rate") >= 5.0);
}

/// Sum of `name{listener, limit}` in kedge's registry.
fn http_common_metric(name: &str, listener: &str, limit: &str) -> f64 {
    let text = kedge::observe::render();
    text.lines()
        .filter(|l| {
            l.starts_with(name)
                && l.contains(&format!("listener=\"{listener}\""))
                && l.contains(&format!("limit=\"{limit}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
