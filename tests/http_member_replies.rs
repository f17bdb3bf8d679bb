//! What kedge does with a member's bytes on a passthrough connection, through the real HTTP
//! edge: a reply shaped for smuggling ends the connection and its tail answers nobody, a reply
//! that is not HTTP is a 502, a parked connection the member closes (or that idles past the
//! pool's timeout) is replaced, and a chunked reply with extensions and trailers arrives whole.

mod http_common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_common::bounded;
use http_common::client::Conn;
use http_common::raw_member::{edge, pool, read_head, serve_raw};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A member that answers the first request of each connection with `first` and any later one
/// with a plain `honest` reply; it counts its connections.
async fn member(first: &'static [u8]) -> (SocketAddr, Arc<AtomicUsize>) {
    let conns = Arc::new(AtomicUsize::new(0));
    let count = conns.clone();
    let addr = serve_raw(move |mut s| {
        count.fetch_add(1, Ordering::SeqCst);
        async move {
            let mut reply = first;
            while read_head(&mut s).await.is_some() {
                if s.write_all(reply).await.is_err() {
                    return;
                }
                reply = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhonest";
            }
        }
    })
    .await;
    (addr, conns)
}

async fn kedge_over(addr: SocketAddr, timeouts: &str) -> http_common::kedge::Kedge {
    edge(pool(&[("m1", addr)], timeouts)).await
}

#[tokio::test]
async fn a_reply_shaped_for_smuggling_ends_the_connection_and_its_tail_answers_nobody() {
    // Content-Length and Transfer-Encoding together, and a second response behind the first.
    let (addr, conns) = member(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n\
          HTTP/1.1 200 OK\r\nContent-Length: 7\r\nX-Smuggled: 1\r\n\r\nsmuggle",
    )
    .await;
    let kedge = kedge_over(addr, "").await;
    let mut c = Conn::plain(kedge.addr).await;
    let r = c.get_as("first", "/ews/", "alice").await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "ok"));
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    for user in ["alice", "bob"] {
        let mut c = Conn::plain(kedge.addr).await;
        let r = c.get_as("next", "/ews/", user).await;
        assert_eq!(r.body, "ok", "{user} got a fresh connection's first reply");
        assert!(r.header("x-smuggled").is_none());
    }
    assert_eq!(
        conns.load(Ordering::SeqCst),
        3,
        "no member connection was used twice"
    );
}

#[tokio::test]
async fn a_reply_that_is_not_http_is_a_502() {
    // A member that keeps sending interim heads never answers.
    let interims = "HTTP/1.1 100 Continue\r\n\r\n".repeat(1000) + "HTTP/1.1 200 OK\r\n\r\n";
    let interims: &'static [u8] = Box::leak(interims.into_bytes().into_boxed_slice());
    for reply in [
        &b"SSH-2.0-OpenSSH_9.2\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        interims,
    ] {
        let (addr, _) = member(reply).await;
        let kedge = kedge_over(addr, "").await;
        let mut c = Conn::plain(kedge.addr).await;
        let r = c.get_as("bad reply", "/ews/", "alice").await;
        assert_eq!(
            r.status,
            502,
            "{:?}",
            String::from_utf8_lossy(&reply[..reply.len().min(80)])
        );
    }
}

#[tokio::test]
async fn a_chunked_reply_with_extensions_and_trailers_arrives_whole() {
    let (addr, _) = member(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Checksum: 1\r\n\r\n",
    )
    .await;
    let kedge = kedge_over(addr, "").await;
    let mut c = Conn::plain(kedge.addr).await;
    let r = c.get_as("chunked", "/ews/", "alice").await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "hello world"));
    let r = c.get_as("again", "/ews/", "alice").await;
    assert_eq!(
        r.body, "honest",
        "the same member connection answered the next request"
    );
}

#[tokio::test]
async fn a_parked_connection_the_member_closed_is_replaced_for_the_next_request() {
    let conns = Arc::new(AtomicUsize::new(0));
    let count = conns.clone();
    let addr = serve_raw(move |mut s| {
        count.fetch_add(1, Ordering::SeqCst);
        async move {
            if read_head(&mut s).await.is_some() {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
            }
            // Closes its side after one exchange, with keep-alive promised (IIS at its timeout).
        }
    })
    .await;
    let kedge = kedge_over(addr, "").await;
    let mut c = Conn::plain(kedge.addr).await;
    assert_eq!(c.get_as("first", "/ews/", "alice").await.status, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = c.get_as("second", "/ews/", "alice").await;
    assert_eq!(
        r.status, 200,
        "not a 502 for a connection that was gone before the request"
    );
    assert_eq!(conns.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_pinned_connection_idle_past_the_pool_timeout_is_closed_while_the_client_stays() {
    let ended = Arc::new(Mutex::new(None));
    let seen = ended.clone();
    let addr = serve_raw(move |mut s| {
        let seen = seen.clone();
        async move {
            if read_head(&mut s).await.is_some() {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
            }
            let answered = Instant::now();
            let mut buf = [0u8; 64];
            while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            *seen.lock().unwrap() = Some(answered.elapsed());
        }
    })
    .await;
    let kedge = kedge_over(addr, "idle_timeout_secs = 1").await;
    let mut c = Conn::plain(kedge.addr).await;
    assert_eq!(c.get_as("one", "/ews/", "alice").await.status, 200);
    let idle = bounded("the member sees kedge close", async {
        loop {
            if let Some(d) = *ended.lock().unwrap() {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(idle >= Duration::from_millis(900), "closed after {idle:?}");
    assert!(!c.is_closed(), "the client connection stays");
}
