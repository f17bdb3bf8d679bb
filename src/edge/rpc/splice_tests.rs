//! The splice's copy: order, half-close both ways, idle timeout, odd read boundaries, held PDUs
//! kept back until released, and headers that end the connection.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::splice::{Meters, Splice, SpliceEnd, SpliceEvent, SpliceLimits};
use crate::observe::{byte_meter, Direction};
use crate::rpc::RpcError;

fn meters() -> Meters {
    Meters {
        up: byte_meter("splice-test", Direction::ClientToBackend),
        down: byte_meter("splice-test", Direction::BackendToClient),
    }
}

fn limits(idle_ms: u64) -> SpliceLimits {
    SpliceLimits {
        idle: Duration::from_millis(idle_ms),
        max_held: 4096,
    }
}

/// A PDU of `ptype` whose body is `body` (little-endian header, call_id 1).
fn pdu(ptype: u8, body: &[u8]) -> Vec<u8> {
    let len = (16 + body.len()) as u16;
    let mut p = vec![5, 0, ptype, 3, 0x10, 0, 0, 0];
    p.extend_from_slice(&len.to_le_bytes());
    p.extend_from_slice(&[0, 0, 1, 0, 0, 0]);
    p.extend_from_slice(body);
    p
}

fn request(body: &[u8]) -> Vec<u8> {
    pdu(0, body)
}

/// Splices with every held PDU let through: the copy alone, no policy.
async fn splice_forwarding_all<C, B>(client: C, backend: B, admitted: &[u8], idle_ms: u64) -> SpliceEnd
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let m = meters();
    let mut s = match Splice::start(client, backend, admitted, &[], limits(idle_ms), &m).await {
        Ok(s) => s,
        Err(end) => return end,
    };
    loop {
        match s.next().await {
            SpliceEvent::Held => s.release(),
            SpliceEvent::End(end) => return end,
        }
    }
}

/// Splices `client` (forwarding everything) to a backend that reads to EOF and then closes;
/// returns how the splice ended and what the backend got.
async fn through<C>(client: C, admitted: &[u8]) -> (SpliceEnd, Vec<u8>)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let (backend_near, mut backend_far) = tokio::io::duplex(1 << 16);
    let collect = async move {
        let mut got = Vec::new();
        backend_far.read_to_end(&mut got).await.unwrap();
        got
    };
    tokio::join!(
        splice_forwarding_all(client, backend_near, admitted, 5_000),
        collect
    )
}

#[tokio::test]
async fn prefix_goes_first_then_both_directions_flow_until_both_close() {
    let (client_far, client_near) = tokio::io::duplex(1024);
    let (backend_near, backend_far) = tokio::io::duplex(1024);
    let hello = request(b"hello");
    let splice = splice_forwarding_all(client_near, backend_near, b"BIND", 5_000);
    let want = [&b"BIND"[..], &hello].concat();
    let peers = async move {
        let (mut c, mut b) = (client_far, backend_far);
        c.write_all(&hello).await.unwrap();
        c.shutdown().await.unwrap();
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, want);
        b.write_all(b"reply").await.unwrap();
        b.shutdown().await.unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"reply");
    };
    let (end, ()) = tokio::join!(splice, peers);
    assert!(matches!(end, SpliceEnd::Closed { up: 25, down: 5 }), "{end:?}");
}

#[tokio::test]
async fn idle_connection_is_closed_after_the_timeout() {
    let (_client_far, client_near) = tokio::io::duplex(64);
    let (backend_near, _backend_far) = tokio::io::duplex(64);
    let end = splice_forwarding_all(client_near, backend_near, b"", 50).await;
    assert!(matches!(end, SpliceEnd::Idle));
}

#[tokio::test]
async fn backend_eof_half_closes_the_client_which_may_still_send() {
    let (client_far, client_near) = tokio::io::duplex(1024);
    let (backend_near, backend_far) = tokio::io::duplex(1024);
    let late = request(b"after the backend closed");
    let splice = splice_forwarding_all(client_near, backend_near, b"", 5_000);
    let want = late.clone();
    let peers = async move {
        let (mut c, mut b) = (client_far, backend_far);
        b.write_all(b"bye").await.unwrap();
        b.shutdown().await.unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"bye", "the client sees the backend's EOF");
        c.write_all(&late).await.unwrap();
        c.shutdown().await.unwrap();
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, want);
    };
    let (end, ()) = tokio::join!(splice, peers);
    assert!(matches!(end, SpliceEnd::Closed { down: 3, .. }), "{end:?}");
}

/// A client whose reads return exactly the given pieces (odd boundaries that split headers and
/// coalesce PDUs), then EOF; what is written to it is kept.
struct Pieces {
    reads: VecDeque<Vec<u8>>,
    written: Vec<u8>,
}

impl AsyncRead for Pieces {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(mut piece) = self.reads.pop_front() {
            let n = piece.len().min(buf.remaining());
            buf.put_slice(&piece[..n]);
            if n < piece.len() {
                self.reads.push_front(piece.split_off(n));
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Pieces {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.written.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn pieces(stream: &[u8], sizes: &[usize]) -> Pieces {
    let mut reads = VecDeque::new();
    let (mut at, mut i) = (0, 0);
    while at < stream.len() {
        let n = sizes[i % sizes.len()].min(stream.len() - at);
        reads.push_back(stream[at..at + n].to_vec());
        at += n;
        i += 1;
    }
    Pieces {
        reads,
        written: Vec::new(),
    }
}

/// Ordinary PDUs of many sizes, the largest over the 16 KiB buffer.
fn requests() -> Vec<u8> {
    let mut stream = Vec::new();
    for (i, len) in [0usize, 1, 15, 16, 17, 100, 4264, 5824, 20_000, 65_519]
        .iter()
        .enumerate()
    {
        stream.extend(request(&vec![i as u8; *len]));
    }
    stream
}

#[tokio::test]
async fn requests_split_across_reads_and_coalesced_reach_the_backend_byte_for_byte() {
    let stream = requests();
    for sizes in [
        &[1][..],
        &[3, 13],
        &[15, 1, 16, 17],
        &[16_384],
        &[7_000, 40_000],
        &[1 << 20],
    ] {
        let (end, got) = through(pieces(&stream, sizes), b"").await;
        assert!(matches!(end, SpliceEnd::Closed { .. }), "{end:?}");
        assert!(
            got == stream,
            "sizes {sizes:?}: {} of {} bytes",
            got.len(),
            stream.len()
        );
    }
}

#[tokio::test]
async fn a_held_pdu_waits_for_release_and_keeps_its_place() {
    let before = request(b"before");
    let alter = pdu(14, b"alter_context body");
    let after = request(b"after");
    let stream = [before.clone(), alter.clone(), after.clone()].concat();
    // The alter_context arrives split, together with its neighbours.
    let client = pieces(&stream, &[10, 20, 9]);
    let (backend_near, mut backend_far) = tokio::io::duplex(1 << 16);
    let m = meters();
    let mut s = Splice::start(client, backend_near, b"", &[], limits(5_000), &m)
        .await
        .unwrap();
    assert!(matches!(s.next().await, SpliceEvent::Held));
    assert_eq!(s.held(), Some(&alter[..]));
    let mut got = vec![0u8; before.len()];
    backend_far.read_exact(&mut got).await.unwrap();
    assert_eq!(got, before, "what came before the held PDU was forwarded");
    s.release();
    let collect = async move {
        let mut rest = Vec::new();
        backend_far.read_to_end(&mut rest).await.unwrap();
        rest
    };
    let (end, rest) = tokio::join!(s.next(), collect);
    assert!(
        matches!(end, SpliceEvent::End(SpliceEnd::Closed { .. })),
        "{end:?}"
    );
    assert_eq!(rest, [alter, after].concat());
}

#[tokio::test]
async fn bytes_read_with_the_first_pdu_are_inspected_too() {
    let auth3 = pdu(16, b"auth3 leg");
    let (client_far, client_near) = tokio::io::duplex(1024);
    let (backend_near, mut backend_far) = tokio::io::duplex(1024);
    let m = meters();
    let mut s = Splice::start(client_near, backend_near, b"BIND", &auth3, limits(5_000), &m)
        .await
        .unwrap();
    assert!(matches!(s.next().await, SpliceEvent::Held));
    assert_eq!(s.held(), Some(&auth3[..]));
    // Refused: the splice is dropped and the backend never sees the auth3.
    drop(s);
    drop(client_far);
    let mut got = Vec::new();
    backend_far.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"BIND");
}

#[tokio::test]
async fn a_header_that_does_not_parse_ends_the_splice() {
    let good = request(b"fine");
    let stream = [&good[..], b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"].concat();
    let (end, got) = through(pieces(&stream, &[7]), b"").await;
    assert!(
        matches!(end, SpliceEnd::BadPdu(RpcError::BadVersion { .. })),
        "{end:?}"
    );
    assert_eq!(got, good, "nothing after the bad header is forwarded");
}

#[tokio::test]
async fn frag_length_below_sixteen_ends_the_splice() {
    let mut bad = request(b"");
    bad[8] = 8;
    let (backend_near, _b) = tokio::io::duplex(1024);
    let end = splice_forwarding_all(pieces(&bad, &[100]), backend_near, b"", 5_000).await;
    assert!(
        matches!(end, SpliceEnd::BadPdu(RpcError::FragTooShort { .. })),
        "{end:?}"
    );
}

#[tokio::test]
async fn a_held_pdu_over_the_limit_ends_the_splice() {
    let big = pdu(14, &[0; 5000]);
    let (backend_near, _b) = tokio::io::duplex(1024);
    let end = splice_forwarding_all(pieces(&big, &[100]), backend_near, b"", 5_000).await;
    assert!(
        matches!(
            end,
            SpliceEnd::BadPdu(RpcError::FragTooLong {
                frag_length: 5016,
                max: 4096
            })
        ),
        "{end:?}"
    );
}

#[tokio::test]
async fn eof_in_the_middle_of_a_held_pdu_forwards_none_of_it() {
    let before = request(b"x");
    let alter = pdu(14, b"never complete");
    let stream = [&before[..], &alter[..20]].concat();
    let (end, got) = through(pieces(&stream, &[5]), b"").await;
    assert!(matches!(end, SpliceEnd::Closed { .. }), "{end:?}");
    assert_eq!(got, before);
}
