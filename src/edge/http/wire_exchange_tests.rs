//! The exchange against a scripted member on an in-memory stream: what reaches the member byte
//! for byte, what comes back, and when the connection is given back or closed.

use super::*;
use crate::edge::http::wire_link::WireLink;
use crate::pool::MemberLease;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use std::convert::Infallible;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

type TestBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

fn empty() -> TestBody {
    Empty::new().boxed_unsync()
}

fn full(s: &'static str) -> TestBody {
    Full::new(Bytes::from_static(s.as_bytes())).boxed_unsync()
}

/// The exchange with a response-head timeout longer than any test waits.
async fn send<B>(
    checkout: Checkout,
    parts: &http::request::Parts,
    body: B,
    framing: RequestFraming,
) -> Result<(ResponseHead, WireBody<B>), WireError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    exchange(
        checkout,
        (parts, &AddedHeaders::new()),
        body,
        framing,
        Duration::from_secs(30),
    )
    .await
}

/// A link to an in-memory member, its connection parked.
fn link() -> (WireLink, DuplexStream) {
    let (ours, member) = tokio::io::duplex(64 * 1024);
    let (link, mut first) = WireLink::new(Box::new(ours), MemberLease::for_tests("m1"), false);
    first.finish(true);
    (link, member)
}

fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
    let mut b = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).expect("request").into_parts().0
}

/// Reads from the member's end until `n` bytes or the blank line of a head came.
async fn read_until(member: &mut DuplexStream, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !done(&got) {
        let n = tokio::time::timeout(Duration::from_secs(5), member.read(&mut buf))
            .await
            .expect("the member got more")
            .expect("read");
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    got
}

fn ends_head(b: &[u8]) -> bool {
    b.windows(4).any(|w| w == b"\r\n\r\n")
}

async fn body_of<B>(body: WireBody<B>) -> Result<Vec<u8>, BoxError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    Ok(body.collect().await?.to_bytes().to_vec())
}

#[tokio::test]
async fn a_get_goes_as_its_head_and_the_connection_comes_back() {
    let (link, mut member) = link();
    for round in 0..3 {
        let parts = request(
            "GET",
            "/ews/exchange.asmx?r=1",
            &[("host", "outlook.contoso.com")],
        );
        let answer = tokio::spawn(async move {
            let got = read_until(&mut member, ends_head).await;
            member
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Member: m1\r\n\r\nhello")
                .await
                .unwrap();
            (got, member)
        });
        let (head, body) = send(
            link.checkout().expect("parked"),
            &parts,
            empty(),
            RequestFraming::Empty,
        )
        .await
        .expect("answered");
        assert_eq!(head.status, 200);
        assert_eq!(head.headers["x-member"], "m1");
        assert_eq!(body_of(body).await.unwrap(), b"hello");
        let (got, back) = answer.await.unwrap();
        member = back;
        assert_eq!(
            got, b"GET /ews/exchange.asmx?r=1 HTTP/1.1\r\nhost: outlook.contoso.com\r\n\r\n",
            "round {round}"
        );
        assert!(!link.is_closed(), "given back after round {round}");
    }
}

#[tokio::test]
async fn a_body_with_a_length_goes_as_it_is_and_a_chunked_one_is_re_chunked() {
    let (link, mut member) = link();
    let parts = request("POST", "/mapi/emsmdb/", &[("content-length", "5")]);
    let answer = tokio::spawn(async move {
        let got = read_until(&mut member, |b| b.ends_with(b"hello")).await;
        member
            .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
            .await
            .unwrap();
        (got, member)
    });
    let (head, body) = send(
        link.checkout().unwrap(),
        &parts,
        full("hello"),
        RequestFraming::Length(5),
    )
    .await
    .unwrap();
    assert_eq!(head.status, 204);
    assert!(body.is_end_stream());
    let (got, mut member) = answer.await.unwrap();
    assert!(got.ends_with(b"content-length: 5\r\n\r\nhello"));
    assert!(!link.is_closed());

    let parts = request("POST", "/mapi/emsmdb/", &[("transfer-encoding", "chunked")]);
    let frames = futures_util::stream::iter(
        ["ab", "", "cde"].map(|s| Ok::<_, Infallible>(Frame::data(Bytes::from_static(s.as_bytes())))),
    );
    let answer = tokio::spawn(async move {
        let got = read_until(&mut member, |b| b.ends_with(b"0\r\n\r\n")).await;
        member
            .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
            .await
            .unwrap();
        (got, member)
    });
    let (_, body) = send(
        link.checkout().unwrap(),
        &parts,
        StreamBody::new(frames),
        RequestFraming::Chunked,
    )
    .await
    .unwrap();
    assert_eq!(body_of(body).await.unwrap(), b"abc");
    let (got, _member) = answer.await.unwrap();
    assert!(
        got.ends_with(b"\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(!link.is_closed());
}

#[tokio::test]
async fn both_bodies_stream_at_once() {
    let (link, mut member) = link();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
    let upload = StreamBody::new(tokio_stream_of(rx));
    let parts = request(
        "RPC_IN_DATA",
        "/rpc/rpcproxy.dll",
        &[("content-length", "1073741824")],
    );
    let echo = tokio::spawn(async move {
        read_until(&mut member, ends_head).await;
        member
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        loop {
            match member.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => member.write_all(&buf[..n]).await.unwrap(),
            }
        }
    });
    let (_, mut body) = send(
        link.checkout().unwrap(),
        &parts,
        upload,
        RequestFraming::Length(1 << 30),
    )
    .await
    .unwrap();
    for i in 0..5u8 {
        let chunk = Bytes::from(vec![b'a' + i; 100]);
        tx.send(Ok(Frame::data(chunk.clone()))).await.unwrap();
        let mut got = Vec::new();
        while got.len() < 100 {
            let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
                .await
                .expect("the echo came while the upload goes on")
                .expect("more")
                .expect("ok");
            got.extend_from_slice(&frame.into_data().unwrap());
        }
        assert_eq!(got, chunk);
    }
    drop(body);
    assert!(
        link.is_closed(),
        "an exchange dropped mid-way closes the connection"
    );
    echo.abort();
}

fn tokio_stream_of<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Unpin {
    Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

#[tokio::test]
async fn a_member_that_answers_before_the_body_is_heard_and_the_connection_is_not_reused() {
    let (link, mut member) = link();
    let (_tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
    let parts = request("POST", "/owa/", &[("content-length", "100000")]);
    tokio::spawn(async move {
        read_until(&mut member, ends_head).await;
        member
            .write_all(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 2\r\n\r\nno")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let (head, body) = send(
        link.checkout().unwrap(),
        &parts,
        StreamBody::new(tokio_stream_of(rx)),
        RequestFraming::Length(100_000),
    )
    .await
    .unwrap();
    assert_eq!(head.status, 413);
    assert_eq!(body_of(body).await.unwrap(), b"no");
    assert!(link.is_closed(), "the request body never finished: not reusable");
}

/// A link whose member answers the first request head with `reply`, then keeps its end open
/// (`hold`) or closes it.
fn replying(reply: &'static [u8], hold: bool) -> WireLink {
    let (link, mut member) = link();
    tokio::spawn(async move {
        read_until(&mut member, ends_head).await;
        member.write_all(reply).await.unwrap();
        if hold {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
    link
}

/// `GET /` on `link`'s parked connection.
async fn get(link: &WireLink) -> Result<(ResponseHead, WireBody<TestBody>), WireError> {
    let parts = request("GET", "/", &[]);
    send(
        link.checkout().expect("parked"),
        &parts,
        empty(),
        RequestFraming::Empty,
    )
    .await
}

#[tokio::test]
async fn a_body_cut_short_is_an_error_and_until_close_is_not() {
    let link = replying(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234", false);
    let (_, body) = get(&link).await.unwrap();
    let err = body_of(body).await.unwrap_err();
    assert!(err.to_string().contains("mid-body"), "{err}");
    assert!(link.is_closed());

    let link = replying(b"HTTP/1.0 200 OK\r\n\r\nall of it", false);
    let (head, body) = get(&link).await.unwrap();
    assert!(!head.reusable);
    assert_eq!(body_of(body).await.unwrap(), b"all of it");
    assert!(link.is_closed());
}

#[tokio::test]
async fn interim_heads_are_skipped_and_bad_heads_refused() {
    let link = replying(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        true,
    );
    assert_eq!(get(&link).await.unwrap().0.status, 200);
    assert!(!link.is_closed());

    for reply in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..],
        b"garbage\r\n\r\n",
        b"",
    ] {
        let link = replying(reply, false);
        assert!(get(&link).await.is_err(), "{:?}", String::from_utf8_lossy(reply));
        assert!(link.is_closed());
    }
}

#[tokio::test]
async fn a_member_that_keeps_sending_interim_heads_is_not_answering() {
    let interim = "HTTP/1.1 102 Processing\r\n\r\n";
    let fine = interim.repeat(MAX_INTERIM_HEADS as usize) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let link = replying(Box::leak(fine.into_bytes().into_boxed_slice()), true);
    assert_eq!(get(&link).await.unwrap().0.status, 200, "as many as allowed");

    let endless =
        interim.repeat(MAX_INTERIM_HEADS as usize + 1) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let link = replying(Box::leak(endless.into_bytes().into_boxed_slice()), true);
    let Err(err) = get(&link).await else {
        panic!(
            "a final head after {} interim ones was taken",
            MAX_INTERIM_HEADS + 1
        )
    };
    assert!(
        matches!(err, WireError::Frame(FrameError::TooManyInterim)),
        "{err}"
    );
    let edge = err.into_edge("m1");
    assert_eq!(
        (edge.disposition().status.as_u16(), edge.disposition().label),
        (502, "backend_malformed"),
        "told apart from a connection that broke"
    );
}

#[tokio::test]
async fn a_response_with_bytes_after_it_does_not_go_back() {
    let link = replying(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        true,
    );
    let (_, body) = get(&link).await.unwrap();
    assert_eq!(body_of(body).await.unwrap(), b"ok");
    assert!(
        link.is_closed(),
        "a second, unasked-for response must not answer the next request"
    );
}

#[tokio::test]
async fn the_head_timeout_runs_from_the_request_s_last_byte() {
    let (link, mut member) = link();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
    let parts = request("RPC_IN_DATA", "/rpc/rpcproxy.dll", &[("content-length", "6")]);
    tokio::spawn(async move {
        read_until(&mut member, |b| b.ends_with(b"abcdef")).await;
        member
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let upload = tokio::spawn(async move {
        // The body streams for three times the head timeout.
        for part in ["ab", "cd", "ef"] {
            tokio::time::sleep(Duration::from_millis(100)).await;
            tx.send(Ok(Frame::data(Bytes::from_static(part.as_bytes()))))
                .await
                .unwrap();
        }
    });
    let answer = exchange(
        link.checkout().unwrap(),
        (&parts, &AddedHeaders::new()),
        StreamBody::new(tokio_stream_of(rx)),
        RequestFraming::Length(6),
        Duration::from_millis(100),
    )
    .await;
    assert_eq!(answer.expect("answered after the upload").0.status, 200);
    upload.await.unwrap();

    // A member that never answers a request that went whole: timed out.
    let link = replying(b"", true);
    let started = tokio::time::Instant::now();
    let res = exchange(
        link.checkout().unwrap(),
        (&request("GET", "/", &[]), &AddedHeaders::new()),
        empty(),
        RequestFraming::Empty,
        Duration::from_millis(100),
    )
    .await;
    assert!(matches!(res, Err(WireError::HeadTimeout(_))), "{:?}", res.err());
    assert!(started.elapsed() >= Duration::from_millis(100));
}
