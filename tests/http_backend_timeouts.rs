//! Members that accept and then do not answer, through the real HTTP edge: the request gets a
//! 504 after the pool's `response_header_timeout_ms` and the member is ejected passively, like
//! one that refuses connections, so the next sessions go elsewhere; a member that stalls
//! mid-body is cut after the pool's `idle_timeout_secs`; and an upload that streams longer than
//! the head timeout (an Outlook Anywhere `RPC_IN_DATA`) is not, the head being timed from the
//! request's last byte.

mod http_common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use http_common::backend::TestBackend;
use http_common::client::Conn;
use http_common::fake;
use http_common::raw_member::{drain, edge, pool, read_head, read_until, serve_raw};
use http_common::{bounded, BOUND};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A member that accepts connections, reads what comes and never answers.
async fn hanging_member() -> SocketAddr {
    serve_raw(|mut s: TcpStream| async move { drain(&mut s).await }).await
}

/// A member that answers a response head promising 100 bytes, sends 10, and stalls.
async fn stalling_member() -> SocketAddr {
    serve_raw(|mut s: TcpStream| async move {
        if read_head(&mut s).await.is_none() {
            return;
        }
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
            .await;
        drain(&mut s).await;
    })
    .await
}

#[tokio::test]
async fn a_member_that_accepts_and_hangs_gets_a_504_and_is_ejected() {
    let hang = hanging_member().await;
    let good = TestBackend::start().await;
    let cas = pool(
        &[("hang", hang), ("good", good.addr)],
        "response_header_timeout_ms = 300",
    );
    let kedge = edge(cas.clone()).await;

    // Users spread over both members by rendezvous hashing; the first one sent to `hang`
    // waits the response-head timeout and gets a 504.
    let mut victim = None;
    for i in 0..40 {
        let user = format!("user{i}");
        let mut c = Conn::plain(kedge.addr).await;
        let started = Instant::now();
        let r = c.get_as("request", "/ews/", &user).await;
        match r.status.as_u16() {
            200 => {}
            504 => {
                let waited = started.elapsed();
                assert!(waited >= Duration::from_millis(300), "{waited:?}");
                victim = Some(user);
                break;
            }
            s => panic!("{user}: unexpected {s}"),
        }
    }
    let victim = victim.expect("one of 40 users hashes to the hanging member");
    let hung = cas.member("hang").unwrap();
    assert!(hung.is_ejected(std::time::Instant::now()), "ejected passively");
    assert!(
        hung.last_error()
            .unwrap_or_default()
            .contains("no response head within 300 ms"),
        "{:?}",
        hung.last_error()
    );
    let ejections = kedge::observe::render()
        .lines()
        .filter(|l| l.starts_with("kedge_backend_ejections_total") && l.contains("member=\"hang\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    assert!(ejections >= 1.0, "counted");

    // The same user, and everyone after, now goes to the healthy member at once.
    for user in std::iter::once(victim).chain((40..60).map(|i| format!("user{i}"))) {
        let mut c = Conn::plain(kedge.addr).await;
        let started = Instant::now();
        assert_eq!(
            c.get_as("after ejection", "/ews/", &user).await.status,
            200,
            "{user}"
        );
        assert!(
            started.elapsed() < Duration::from_millis(300),
            "{user} waited on the ejected member"
        );
    }
}

#[tokio::test]
async fn a_member_that_stalls_mid_body_is_cut_at_the_idle_timeout() {
    let stall = stalling_member().await;
    let kedge = edge(pool(&[("stall", stall)], "idle_timeout_secs = 1")).await;
    let mut c = Conn::plain(kedge.addr).await;
    let req = http::Request::get("/ews/")
        .header("host", "outlook.kedge.test")
        .header("authorization", fake::header("alice", ""))
        .body(http_common::client::TestBody::Empty)
        .unwrap();
    let resp = bounded("head", c.send(req)).await.expect("response head");
    assert_eq!(resp.status(), 200);
    let started = Instant::now();
    let body = tokio::time::timeout(BOUND, resp.into_body().collect()).await;
    let body = body.expect("the stalled body ends instead of hanging");
    assert!(body.is_err(), "a truncated body is an error, not a short success");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_upload_that_streams_past_the_head_timeout_is_not_cut() {
    // An Outlook Anywhere RPC_IN_DATA: the member answers when the body is through.
    let member = serve_raw(|mut s: TcpStream| async move {
        if read_until(&mut s, b"abcdef").await.is_none() {
            return;
        }
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone")
            .await;
        drain(&mut s).await;
    })
    .await;
    let kedge = edge(pool(&[("rpc", member)], "response_header_timeout_ms = 300")).await;
    let mut c = Conn::plain(kedge.addr).await;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let req = http::Request::builder()
        .method("RPC_IN_DATA")
        .uri("/rpc/rpcproxy.dll")
        .header("host", "outlook.kedge.test")
        .header("authorization", fake::header("alice", ""))
        .header("content-length", "6")
        .body(http_common::client::TestBody::Channel(rx, Some(6)))
        .unwrap();
    let sender = tokio::spawn(async move {
        for part in ["ab", "cd", "ef"] {
            tokio::time::sleep(Duration::from_millis(300)).await;
            tx.send(bytes::Bytes::from_static(part.as_bytes())).await.unwrap();
        }
    });
    let resp = bounded("answer", c.send(req)).await.expect("response");
    assert_eq!(resp.status(), 200, "900 ms of upload under a 300 ms head timeout");
    sender.await.unwrap();
}
