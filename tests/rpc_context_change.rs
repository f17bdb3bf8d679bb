//! After the first bind: what a spliced connection may still do (issue 10). Real MIT tokens,
//! kedge's RPC listener in-process, a backend that records every PDU it receives. A refused
//! alter_context / auth3 gets a fault (access denied, its call_id and drep), the connection
//! closes and the backend never sees the refused PDU; what is allowed reaches the backend byte for
//! byte.

mod support;
mod support_rpc;

use std::sync::Arc;
use std::time::Duration;

use kedge::config::{Config, NtlmPolicy, RpcListenerConfig};
use kedge::krb::acceptor::Acceptor;
use kedge::rpc::{parse_bind, AuthType, PacketType, RejectReason, EMSMDB, EPM, NSPI};
use support::{Kdc, Mech, ARRAY_FQDN, REALM};
use support_rpc::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const NTLM_BIND: &[u8] = include_bytes!("testdata/rpc/emsmdb_ntlm_connect.bin");
const EPM_BIND: &[u8] = include_bytes!("testdata/rpc/epm_noauth.bin");
const REFUSED: [(&str, &str); 2] = [("protocol", "rpc"), ("reason", "context_change_refused")];
/// EMSMDB's version in the binds (MS-OXCRPC).
const V_MDB: (u16, u16) = (0, 81);
/// NSPI's version (MS-OXNSPI).
const V_NSPI: (u16, u16) = (56, 0);
/// A second security context on the connection.
const NEW_CTX: u32 = 2;
/// The shape of a DCE-style third leg (a bare AP-REP): a continuation, not validated by kedge.
const AP_REP: &[u8] = b"\x6f\x03\x02\x01\x05";

fn acceptor() -> Arc<Acceptor> {
    acceptor_from_keytab(&Kdc::shared().keytab_path(), REALM, ARRAY_FQDN)
}

/// The NTLM NEGOTIATE a real client put in its EMSMDB bind (captured).
fn ntlm_negotiate() -> Vec<u8> {
    let bind = parse_bind(NTLM_BIND).unwrap();
    bind.token(NTLM_BIND).unwrap().to_vec()
}

/// Connects, sends `bind` and expects the backend's bind_ack.
async fn admitted(addr: std::net::SocketAddr, bind: &[u8]) -> TcpStream {
    let (reply, s) = send_bind(addr, bind).await;
    assert!(matches!(reply, Reply::Ack(_)), "first bind: {reply:?}");
    s
}

/// Sends `pdu` (call_id 2) and expects a fault for it, the close, and the refusal counted.
async fn refused_with_fault(s: &mut TcpStream, pdu: &[u8]) {
    let before = metric("kedge_auth_total", &REFUSED);
    expect_fault(exchange(s, pdu).await, 2);
    assert_closed(s).await;
    metric_moved("kedge_auth_total", &REFUSED, before).await;
}

/// Sends `pdu` and expects the backend's alter_context_resp.
async fn forwarded(s: &mut TcpStream, pdu: &[u8]) {
    match exchange(s, pdu).await {
        Reply::Ack(a) => assert_eq!(a.ptype, PacketType::AlterContextResp),
        other => panic!("want the backend's alter_context_resp, got {other:?}"),
    }
}

/// The PDUs the backend got on its only connection.
fn only_connection(backend: &RecordingBackend) -> Vec<Vec<u8>> {
    let mut c = backend.connections();
    assert_eq!(c.len(), 1, "one backend connection");
    c.remove(0)
}

#[tokio::test]
async fn epm_connection_altering_to_emsmdb_with_ntlm_gets_a_fault_and_never_reaches_the_backend() {
    let (edge, backend) = edge_with("c-epm-ntlm", acceptor(), |c| {
        c.endpoint_mapper = true;
        c.ntlm = NtlmPolicy::Reject;
    })
    .await;
    let mut s = admitted(edge.addr, EPM_BIND).await;
    let alter = alter_context_pdu(2, EMSMDB, V_MDB, Some((AuthType::Ntlm, 1)), &ntlm_negotiate());
    refused_with_fault(&mut s, &alter).await;
    assert_eq!(only_connection(&backend), vec![EPM_BIND.to_vec()]);
}

#[tokio::test]
async fn epm_connection_altering_to_emsmdb_with_a_valid_kerberos_token_is_refused() {
    let token = Kdc::shared().dce_tokens("alice", "exchangeMDB", 1).remove(0);
    let (edge, backend) = edge_with("c-epm-krb", acceptor(), |c| c.endpoint_mapper = true).await;
    let mut s = admitted(edge.addr, EPM_BIND).await;
    let alter = alter_context_pdu(2, EMSMDB, V_MDB, Some((AuthType::Krb5, 1)), &token);
    refused_with_fault(&mut s, &alter).await;
    assert_eq!(only_connection(&backend), vec![EPM_BIND.to_vec()]);
    // Refused for being on an endpoint-mapper connection, not for the token: it never reached
    // the acceptor, so it still opens an EMSMDB connection of its own.
    let _ok = admitted(edge.addr, &emsmdb_bind(AuthType::Krb5, &token)).await;
}

#[tokio::test]
async fn kerberos_connection_refuses_another_principal_in_a_new_context() {
    let kdc = Kdc::shared();
    let alice = kdc.dce_tokens("alice", "exchangeMDB", 1).remove(0);
    let bob = kdc.dce_tokens("bob", "exchangeMDB", 1).remove(0);
    let (edge, backend) = edge_with("c-bob", acceptor(), |_| {}).await;
    let bind = emsmdb_bind(AuthType::Krb5, &alice);
    let mut s = admitted(edge.addr, &bind).await;
    let alter = alter_context_pdu(2, EMSMDB, V_MDB, Some((AuthType::Krb5, NEW_CTX)), &bob);
    refused_with_fault(&mut s, &alter).await;
    assert_eq!(only_connection(&backend), vec![bind]);
}

#[tokio::test]
async fn kerberos_connection_forwards_a_new_context_of_the_same_principal() {
    let mut alice = Kdc::shared().dce_tokens("alice", "exchangeMDB", 2);
    let (edge, backend) = edge_with("c-alice-twice", acceptor(), |_| {}).await;
    let bind = emsmdb_bind(AuthType::Krb5, &alice.remove(0));
    let mut s = admitted(edge.addr, &bind).await;
    let alter = alter_context_pdu(2, EMSMDB, V_MDB, Some((AuthType::Krb5, NEW_CTX)), &alice[0]);
    forwarded(&mut s, &alter).await;
    assert_eq!(only_connection(&backend), vec![bind, alter], "byte for byte");
}

#[tokio::test]
async fn kerberos_connection_adding_ntlm_is_refused_under_reject_and_forwarded_under_passthrough() {
    let mut tokens = Kdc::shared().dce_tokens("alice", "exchangeMDB", 2);
    let ntlm = alter_context_pdu(
        2,
        EMSMDB,
        V_MDB,
        Some((AuthType::Ntlm, NEW_CTX)),
        &ntlm_negotiate(),
    );

    let (edge, backend) = edge_with("c-ntlm-reject", acceptor(), |c| c.ntlm = NtlmPolicy::Reject).await;
    let ntlm_before = metric("kedge_ntlm_rejected_total", &[("protocol", "rpc")]);
    let bind = emsmdb_bind(AuthType::Krb5, &tokens.remove(0));
    let mut s = admitted(edge.addr, &bind).await;
    refused_with_fault(&mut s, &ntlm).await;
    metric_moved("kedge_ntlm_rejected_total", &[("protocol", "rpc")], ntlm_before).await;
    assert_eq!(only_connection(&backend), vec![bind]);

    let (edge, backend) = edge_with("c-ntlm-pass", acceptor(), |c| c.ntlm = NtlmPolicy::Passthrough).await;
    let bind = emsmdb_bind(AuthType::Krb5, &tokens.remove(0));
    let mut s = admitted(edge.addr, &bind).await;
    forwarded(&mut s, &ntlm).await;
    assert_eq!(only_connection(&backend), vec![bind, ntlm]);
}

#[tokio::test]
async fn kerberos_emsmdb_connection_adding_nspi_needs_an_exchange_ab_token() {
    let kdc = Kdc::shared();
    let mut mdb = kdc.dce_tokens("alice", "exchangeMDB", 2);
    let ab = kdc.dce_tokens("alice", "exchangeAB", 1).remove(0);
    let (edge, backend) = edge_with("c-nspi", acceptor(), |_| {}).await;

    let bind = emsmdb_bind(AuthType::Krb5, &mdb.remove(0));
    let mut s = admitted(edge.addr, &bind).await;
    refused_with_fault(&mut s, &alter_context_pdu(2, NSPI, V_NSPI, None, &[])).await;

    let bind2 = emsmdb_bind(AuthType::Krb5, &mdb.remove(0));
    let mut s = admitted(edge.addr, &bind2).await;
    let nspi = alter_context_pdu(2, NSPI, V_NSPI, Some((AuthType::Krb5, NEW_CTX)), &ab);
    forwarded(&mut s, &nspi).await;
    // Once admitted for exchangeAB, NSPI contexts need no further token.
    let more = alter_context_pdu(3, NSPI, V_NSPI, None, &[]);
    forwarded(&mut s, &more).await;
    assert_eq!(backend.connections(), vec![vec![bind], vec![bind2, nspi, more]]);
}

#[tokio::test]
async fn the_first_binds_own_token_in_a_later_alter_context_is_refused_as_a_replay() {
    let token = Kdc::shared().dce_tokens("alice", "exchangeMDB", 1).remove(0);
    let (edge, backend) = edge_with("c-replay", acceptor(), |_| {}).await;
    let replays = metric("kedge_replay_rejected_total", &[("protocol", "rpc")]);
    let bind = emsmdb_bind(AuthType::Krb5, &token);
    let mut s = admitted(edge.addr, &bind).await;
    let alter = alter_context_pdu(2, EMSMDB, V_MDB, Some((AuthType::Krb5, NEW_CTX)), &token);
    refused_with_fault(&mut s, &alter).await;
    metric_moved("kedge_replay_rejected_total", &[("protocol", "rpc")], replays).await;
    assert_eq!(only_connection(&backend), vec![bind]);
}

#[tokio::test]
async fn a_later_bind_for_another_principal_gets_a_bind_nak() {
    let kdc = Kdc::shared();
    let alice = kdc.dce_tokens("alice", "exchangeMDB", 1).remove(0);
    let bob = kdc.dce_tokens("bob", "exchangeMDB", 1).remove(0);
    let (edge, backend) = edge_with("c-second-bind", acceptor(), |_| {}).await;
    let bind = emsmdb_bind(AuthType::Krb5, &alice);
    let mut s = admitted(edge.addr, &bind).await;
    let second = context_pdu(
        PacketType::Bind,
        1,
        EMSMDB,
        V_MDB,
        Some((AuthType::Krb5, NEW_CTX)),
        &bob,
    );
    expect_nak(exchange(&mut s, &second).await, RejectReason::InvalidChecksum);
    assert_closed(&mut s).await;
    assert_eq!(only_connection(&backend), vec![bind]);
}

#[tokio::test]
async fn continuations_on_the_admitted_context_pass() {
    let kdc = Kdc::shared();
    let (edge, backend) = edge_with("c-continue", acceptor(), |_| {}).await;

    // auth 16: the third leg is an auth3 carrying the client's AP-REP.
    let bind = emsmdb_bind(AuthType::Krb5, &kdc.dce_tokens("alice", "exchangeMDB", 1)[0]);
    let mut s = admitted(edge.addr, &bind).await;
    let auth3 = auth3_pdu(1, AuthType::Krb5, AUTH_CONTEXT_ID, AP_REP);
    let request = request_pdu(2, b"after auth3");
    s.write_all(&[auth3.clone(), request.clone()].concat())
        .await
        .unwrap();
    assert_eq!(
        read_pdu(&mut s).await,
        Some(request.clone()),
        "the request came back"
    );

    // auth 9: the third leg is an alter_context carrying a SPNEGO NegTokenResp.
    let spnego = kdc
        .tokens("alice", &format!("exchangeMDB@{ARRAY_FQDN}"), Mech::Spnego, 1)
        .remove(0);
    let bind9 = emsmdb_bind(AuthType::Spnego, &spnego);
    let mut s9 = admitted(edge.addr, &bind9).await;
    let resp = kedge::krb::spnego::accept_completed(true, Some(AP_REP.to_vec()));
    let leg = alter_context_pdu(2, EMSMDB, V_MDB, Some((AuthType::Spnego, AUTH_CONTEXT_ID)), &resp);
    forwarded(&mut s9, &leg).await;

    // An auth3 naming a context that was never opened is not a continuation.
    refused_with_fault(&mut s, &auth3_pdu(2, AuthType::Krb5, 77, AP_REP)).await;
    assert_eq!(
        backend.connections(),
        vec![vec![bind, auth3, request], vec![bind9, leg]]
    );
}

#[tokio::test]
async fn requests_after_admission_reach_the_backend_byte_for_byte_across_odd_writes() {
    let (edge, backend) = edge_with("c-requests", acceptor(), |c| c.endpoint_mapper = true).await;
    let mut s = admitted(edge.addr, EPM_BIND).await;
    let requests: Vec<Vec<u8>> = [0usize, 1, 13, 100, 4256, 5000, 16_000, 40_000, 65_000]
        .iter()
        .enumerate()
        .map(|(i, n)| request_pdu(i as u32 + 2, &vec![i as u8; *n]))
        .collect();
    let stream = requests.concat();
    // Odd pieces, the first ones each sent on its own after a pause (headers split across
    // segments), larger ones carrying several PDUs at once (coalesced); echoes read meanwhile.
    let (mut r, mut w) = s.split();
    let writer = async {
        let mut at = 0;
        for (i, n) in [1, 7, 8, 3, 9, 33, 4096, 15, 100_000].iter().cycle().enumerate() {
            if at == stream.len() {
                break;
            }
            let end = (at + n).min(stream.len());
            w.write_all(&stream[at..end]).await.unwrap();
            at = end;
            if i < 12 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    let reader = async {
        let mut echoed = Vec::new();
        for _ in &requests {
            echoed.extend(read_pdu(&mut r).await.expect("an echoed request"));
        }
        echoed
    };
    let ((), echoed) = tokio::join!(writer, reader);
    assert!(echoed == stream, "echoes differ");
    let got = only_connection(&backend);
    assert_eq!(got[0], EPM_BIND);
    assert!(
        got[1..] == requests[..],
        "the backend got every request byte for byte"
    );
}

/// An RPC listener as `kedge run` loads it from TOML (`extra` lines added to its `[[rpc]]`).
fn loaded(name: &str, extra: &str) -> RpcListenerConfig {
    let text = format!(
        "[kerberos]\nkeytab = \"asa.keytab\"\n[[rpc]]\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\n\
         pool = \"p\"\n{extra}\n[members.m]\naddress = \"127.0.0.1\"\nports = {{ rpc = 1 }}\n\
         [pools.p]\nmembers = [\"m\"]\nport = \"rpc\"\n"
    );
    let mut cfg = Config::from_toml(&text, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    cfg.rpc.remove(0)
}

#[tokio::test]
async fn only_a_listener_declared_the_endpoint_mapper_admits_unauthenticated_epm_binds() {
    for (name, extra, admits) in [
        ("c-cfg-default", "", false),
        ("c-cfg-epm", "endpoint_mapper = true", true),
        (
            "c-cfg-epm-off",
            "endpoint_mapper = true\nallow_unauthenticated_epm = false",
            false,
        ),
        ("c-cfg-explicit", "allow_unauthenticated_epm = true", true),
    ] {
        let cfg = loaded(name, extra);
        assert_eq!(cfg.allows_unauthenticated_epm(), admits, "{name}");
        let backend = RecordingBackend::start().await;
        let edge = Edge::start(cfg, acceptor(), backend.addr).await;
        let (reply, _s) = send_bind(edge.addr, EPM_BIND).await;
        if admits {
            assert!(matches!(reply, Reply::Ack(_)), "{name}: {reply:?}");
        } else {
            expect_nak(reply, RejectReason::AuthenticationTypeNotRecognized);
            assert!(backend.binds().is_empty(), "{name}");
        }
    }
}

#[tokio::test]
async fn epm_connection_may_still_alter_context_to_the_endpoint_mapper() {
    let (edge, backend) = edge_with("c-epm-epm", acceptor(), |c| c.endpoint_mapper = true).await;
    let mut s = admitted(edge.addr, EPM_BIND).await;
    let alter = alter_context_pdu(2, EPM, (3, 0), None, &[]);
    forwarded(&mut s, &alter).await;
    assert_eq!(only_connection(&backend), vec![EPM_BIND.to_vec(), alter]);
}
