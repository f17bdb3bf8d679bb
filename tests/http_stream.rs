//! Streaming both ways without buffering: an Outlook Anywhere style request that declares a
//! 1 GiB body sends small chunks over time and reads interleaved echoes, each delivered before
//! the body ends; chunked bodies stream the same way; kedge's memory stays flat.

mod http_common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;
use http_common::backend::TestBackend;
use http_common::client::{Conn, TestBody};
use http_common::fake::{self, FakeAuth};
use http_common::kedge::{start, Kedge, PoolSpec, PASSTHROUGH};
use http_common::{bounded, rss_kib};
use hyper::body::Incoming;
use tokio::sync::mpsc;

const GIB: u64 = 1 << 30;

async fn setup() -> (TestBackend, Kedge) {
    let backend = TestBackend::start().await;
    let kedge = start(
        PASSTHROUGH,
        vec![PoolSpec::plain("cas", backend.addr)],
        Arc::new(FakeAuth::default()),
        None,
    )
    .await;
    (backend, kedge)
}

/// Opens `method path` with a declared length (or chunked) and returns the sender and the body.
async fn open(
    c: &mut Conn,
    method: &str,
    path: &str,
    declared: Option<u64>,
    authz: Option<&str>,
) -> (mpsc::Sender<Bytes>, Incoming) {
    let (tx, rx) = mpsc::channel(2);
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "outlook.kedge.test");
    if let Some(n) = declared {
        b = b.header("content-length", n.to_string());
    }
    if let Some(a) = authz {
        b = b.header("authorization", a);
    }
    let resp = bounded(
        "response head",
        c.send(b.body(TestBody::Channel(rx, declared)).unwrap()),
    )
    .await
    .expect("response");
    assert_eq!(resp.status(), 200);
    (tx, resp.into_body())
}

/// Reads exactly `n` body bytes.
async fn read_exact(body: &mut Incoming, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < n {
        let frame = bounded("echo", body.frame())
            .await
            .expect("body ended early")
            .expect("body error");
        got.extend_from_slice(&frame.into_data().expect("data"));
    }
    got
}

#[tokio::test]
async fn a_1gib_declared_body_flows_chunk_by_chunk_with_interleaved_replies() {
    let (backend, kedge) = setup().await;
    let mut c = Conn::plain(kedge.addr).await;
    let (tx, mut body) = open(
        &mut c,
        "RPC_IN_DATA",
        "/stream-anon/rpc/rpcproxy.dll",
        Some(GIB),
        None,
    )
    .await;
    for i in 0..20u32 {
        let chunk = format!("chunk-{i:04}-").repeat(10);
        tx.send(Bytes::from(chunk.clone())).await.unwrap();
        // The echo of this chunk arrives before the next is sent: nothing waits for the body's end.
        let echo = read_exact(&mut body, chunk.len()).await;
        assert_eq!(echo, chunk.as_bytes());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The client ends the channel by closing, as Outlook does.
    drop(tx);
    drop(body);
    drop(c);
    let seen = backend.seen();
    assert_eq!(seen[0].method.as_str(), "RPC_IN_DATA");
    assert_eq!(seen[0].headers.get("content-length").unwrap(), "1073741824");
}

#[tokio::test]
async fn an_authenticated_rpc_channel_streams_on_its_pinned_connection() {
    let (backend, kedge) = setup().await;
    let mut c = Conn::plain(kedge.addr).await;
    let authz = fake::header("alice", "");
    let (tx, mut body) = open(
        &mut c,
        "RPC_OUT_DATA",
        "/stream/rpc/rpcproxy.dll",
        Some(GIB),
        Some(&authz),
    )
    .await;
    for i in 0..5u8 {
        tx.send(Bytes::from(vec![b'a' + i; 100])).await.unwrap();
        assert_eq!(read_exact(&mut body, 100).await, vec![b'a' + i; 100]);
    }
    assert_eq!(backend.seen()[0].owner.as_deref(), Some("alice@KEDGE.TEST"));
}

#[tokio::test]
async fn a_chunked_body_streams_too() {
    let (_backend, kedge) = setup().await;
    let mut c = Conn::plain(kedge.addr).await;
    let (tx, mut body) = open(&mut c, "POST", "/stream-anon/mapi/emsmdb/", None, None).await;
    for i in 0..5u8 {
        tx.send(Bytes::from(vec![b'0' + i; 1000])).await.unwrap();
        assert_eq!(read_exact(&mut body, 1000).await, vec![b'0' + i; 1000]);
    }
    drop(tx);
    assert!(
        bounded("end", body.frame()).await.is_none(),
        "the chunked body ends when the client's does"
    );
    // The connection is reusable afterwards.
    assert_eq!(
        bounded("next", c.get("/owa/healthcheck.htm", &[])).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_flat_while_hundreds_of_megabytes_stream_through() {
    let (_backend, kedge) = setup().await;
    let mut c = Conn::plain(kedge.addr).await;
    let (tx, mut body) = open(
        &mut c,
        "RPC_IN_DATA",
        "/stream-anon/rpc/rpcproxy.dll",
        Some(GIB),
        None,
    )
    .await;
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    let total: usize = 256 * 1024 * 1024;
    // Warm up: buffers and allocator arenas reach their working size.
    let warm = 8 * 1024 * 1024;
    let reader = tokio::spawn(async move {
        let mut n = 0usize;
        let mut marks = Vec::new();
        while n < total {
            let f = body.frame().await.expect("ended").expect("error");
            n += f.into_data().expect("data").len();
            if n >= warm && marks.is_empty() {
                marks.push(rss_kib());
            }
        }
        marks.push(rss_kib());
        (marks, body)
    });
    let mut sent = 0;
    while sent < total {
        bounded("send", tx.send(chunk.clone())).await.unwrap();
        sent += chunk.len();
    }
    let (marks, _body) = bounded("reader", reader).await.unwrap();
    let growth = marks[1] as i64 - marks[0] as i64;
    // 256 MiB went through; buffering even a tenth of it would show.
    assert!(
        growth < 24 * 1024,
        "RSS grew by {growth} KiB while streaming 256 MiB ({marks:?})"
    );
}
