//! Draining a member through the real HTTP edge: a drained member gets no new session while a
//! live streaming session on it carries on to its end.

mod http_common;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;
use http_common::backend::TestBackend;
use http_common::client::{Conn, TestBody};
use http_common::fake::{self, FakeAuth, REALM};
use http_common::kedge::{multi_member_pool, start_over, PASSTHROUGH};
use hyper::body::Incoming;
use kedge::pool::Pool;
use tokio::sync::mpsc;

/// Hang guard for one step (never a speed assertion: everything here is loopback and small).
const STEP: Duration = Duration::from_secs(5);
/// Hang guard for the whole scenario, so a stuck test fails well before the harness notices.
const WHOLE: Duration = Duration::from_secs(9);
/// New sessions opened while the member is drained.
const NEW_USERS: usize = 20;

async fn step<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(STEP, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: still waiting after {STEP:?}"),
    }
}

fn principal(user: &str) -> String {
    format!("{user}@{REALM}")
}

/// The member the pool would choose first for `user` right now.
fn first_choice(pool: &Pool, user: &str) -> String {
    pool.candidates(Some(&principal(user)))[0].name.clone()
}

/// Reads exactly `n` echoed bytes from the streaming response.
async fn read_echo(body: &mut Incoming, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < n {
        let frame = step("stream echo", body.frame())
            .await
            .expect("stream ended early")
            .expect("stream error");
        got.extend_from_slice(&frame.into_data().expect("data frame"));
    }
    assert_eq!(got.len(), n, "no more than what was sent comes back");
    got
}

/// Opens a new client connection for `user` (fresh token) and GETs `/owa/`; returns the
/// connection (kept open: its session holds a lease on its member) and the reply body.
async fn new_session(addr: std::net::SocketAddr, user: &str) -> (Conn, String) {
    let mut c = step("connect", Conn::plain(addr)).await;
    let authz = fake::header(user, "");
    let r = step("new session", c.get("/owa/", &[("authorization", &authz)])).await;
    assert_eq!(r.status, 200, "{user}: {r:?}");
    (c, r.body)
}

/// Whether `backend` served a request for `user`.
fn served(backend: &TestBackend, user: &str) -> bool {
    let p = principal(user);
    backend
        .seen()
        .iter()
        .any(|s| s.owner.as_deref() == Some(p.as_str()))
}

#[tokio::test]
async fn a_drained_member_gets_no_new_session_while_its_live_stream_finishes() {
    tokio::time::timeout(WHOLE, scenario())
        .await
        .expect("the scenario hung");
}

async fn scenario() {
    let cas1 = TestBackend::start().await;
    let cas2 = TestBackend::start().await;
    let pool = multi_member_pool("cas", &[("cas1", cas1.addr), ("cas2", cas2.addr)]);
    let kedge = start_over(
        PASSTHROUGH,
        [("cas".to_string(), pool.clone())].into_iter().collect(),
        Arc::new(FakeAuth::default()),
        None,
    )
    .await;
    let by_name = |name: &str| if name == "cas1" { &cas1 } else { &cas2 };

    // A long chunked POST as `streamer`, echoed chunk by chunk by whichever member it lands on.
    let mut stream_conn = step("connect", Conn::plain(kedge.addr)).await;
    let (tx, rx) = mpsc::channel::<Bytes>(2);
    let req = Request::post("/stream/mapi/emsmdb/")
        .header("host", "outlook.kedge.test")
        .header("authorization", fake::header("streamer", ""))
        .body(TestBody::Channel(rx, None))
        .unwrap();
    let resp = step("stream head", stream_conn.send(req))
        .await
        .expect("stream response");
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let (mut sent, mut echoed) = (0usize, 0usize);
    let mut chunk_no = 0u32;
    let mut next_chunk = || {
        chunk_no += 1;
        Bytes::from(format!("chunk-{chunk_no:04};").repeat(20))
    };
    for _ in 0..3 {
        let chunk = next_chunk();
        tx.send(chunk.clone()).await.unwrap();
        sent += chunk.len();
        assert_eq!(read_echo(&mut body, chunk.len()).await, chunk);
        echoed += chunk.len();
    }

    // Where did it land? Exactly one member saw the stream, and the pool agrees.
    let (in1, in2) = (served(&cas1, "streamer"), served(&cas2, "streamer"));
    assert!(
        in1 ^ in2,
        "the stream is on exactly one member (cas1: {in1}, cas2: {in2})"
    );
    let (drained, other) = if in1 { ("cas1", "cas2") } else { ("cas2", "cas1") };
    assert_eq!(first_choice(&pool, "streamer"), drained);
    let (drained_be, other_be) = (by_name(drained), by_name(other));
    let drained_member = pool.member(drained).unwrap();
    assert_eq!(
        drained_member.active(),
        1,
        "the stream holds one lease on {drained}"
    );
    assert_eq!(drained_be.connections(), 1);

    // Precondition: with nothing drained, affinity would send some of the new users to the
    // member about to be drained, so the assertion below can fail.
    let users: Vec<String> = (0..NEW_USERS).map(|i| format!("user{i:02}")).collect();
    let drawn_to_drained: Vec<&String> = users
        .iter()
        .filter(|u| first_choice(&pool, u) == drained)
        .collect();
    assert!(
        !drawn_to_drained.is_empty() && drawn_to_drained.len() < users.len(),
        "the users spread over both members when nothing is drained ({} of {} on {drained})",
        drawn_to_drained.len(),
        users.len()
    );

    pool.drain(drained, true).unwrap();
    assert!(drained_member.is_draining());

    // New sessions while drained, interleaved with more of the live stream: every new one goes
    // to the other member, and the stream keeps flowing both ways on the drained one.
    let mut sessions = Vec::new();
    for user in &users {
        let chunk = next_chunk();
        tx.send(chunk.clone()).await.unwrap();
        sent += chunk.len();

        let (conn, reply) = new_session(kedge.addr, user).await;
        assert!(
            reply.contains(&format!("owner={}", principal(user))),
            "{user}: {reply}"
        );
        assert!(served(other_be, user), "{user} lands on {other}");
        assert!(
            !served(drained_be, user),
            "{user} must not land on drained {drained}"
        );
        sessions.push(conn);

        assert_eq!(read_echo(&mut body, chunk.len()).await, chunk);
        echoed += chunk.len();
    }
    assert_eq!(
        drained_be.connections(),
        1,
        "no new backend connection to {drained} while drained"
    );
    assert_eq!(drained_member.active(), 1, "only the stream's lease on {drained}");
    assert_eq!(
        pool.member(other).unwrap().active(),
        NEW_USERS as u64,
        "every new session holds a lease on {other}"
    );

    // The stream finishes: the client ends its body, the echo ends with everything in it.
    drop(tx);
    while let Some(frame) = step("stream end", body.frame()).await {
        echoed += frame
            .expect("stream error")
            .into_data()
            .expect("data frame")
            .len();
    }
    assert_eq!(echoed, sent, "the whole body came back");
    let streamed: Vec<_> = drained_be
        .seen()
        .into_iter()
        .filter(|s| s.path == "/stream/mapi/emsmdb/")
        .collect();
    assert_eq!(streamed.len(), 1);
    assert_eq!(streamed[0].method, "POST");
    assert_eq!(streamed[0].owner.as_deref(), Some(principal("streamer").as_str()));
    assert!(!served(other_be, "streamer"), "the stream never moved");

    // Its connection stays pinned to the drained member: the session carries on there.
    let after = step("after the stream", stream_conn.get("/owa/", &[])).await;
    assert_eq!(after.status, 200);
    assert!(
        after.body.starts_with("conn=1 owner=streamer@"),
        "same backend connection on {drained}: {}",
        after.body
    );
    assert_eq!(drained_be.connections(), 1);

    // Once the client leaves, its lease goes; the drained member is then idle.
    drop(body);
    drop(stream_conn);
    step("lease released", async {
        while drained_member.active() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;

    // Undrained, the edge follows affinity again: the users drawn to that member go back to it
    // (so it was the drain that kept them away).
    pool.drain(drained, false).unwrap();
    for user in drawn_to_drained {
        let (_conn, _) = new_session(kedge.addr, user).await;
        assert!(
            served(drained_be, user),
            "{user} back on {drained} once undrained"
        );
    }
    drop(sessions);
}
