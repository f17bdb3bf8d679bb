//! The RPC edge with tokens from a real MIT KDC and initiator (python3-gssapi): which binds are
//! forwarded byte for byte and which get a bind_nak, with which reason.

mod access_log_file;
mod support;
mod support_rpc;

use kedge::config::NtlmPolicy;
use kedge::rpc::{AuthType, RejectReason, EMSMDB, EPM};
use support::{Kdc, Mech, ARRAY_FQDN, REALM};
use support_rpc::*;
use tokio::io::AsyncWriteExt;

const NTLM_BIND: &[u8] = include_bytes!("testdata/rpc/emsmdb_ntlm_connect.bin");
const EPM_BIND: &[u8] = include_bytes!("testdata/rpc/epm_noauth.bin");

/// kedge in front of a recording backend, with the shared KDC's ASA keytab.
async fn edge(
    name: &str,
    tweak: impl FnOnce(&mut kedge::config::RpcListenerConfig),
) -> (Edge, RecordingBackend) {
    let acceptor = acceptor_from_keytab(&Kdc::shared().keytab_path(), REALM, ARRAY_FQDN);
    edge_with(name, acceptor, tweak).await
}

#[tokio::test]
async fn auth16_bare_ap_req_bind_is_forwarded_byte_identical_and_spliced() {
    let kdc = Kdc::shared();
    let token = kdc.dce_tokens("alice", "exchangeMDB", 1).remove(0);
    let (edge, backend) = edge("t-krb5-bare", |_| {}).await;
    let ok_before = metric("kedge_auth_total", &[("protocol", "rpc"), ("result", "ok")]);
    let bind = emsmdb_bind(AuthType::Krb5, &token);
    let (reply, mut s) = send_bind(edge.addr, &bind).await;
    let Reply::Ack(ack) = reply else {
        panic!("want the backend's bind_ack, got {reply:?}")
    };
    assert_eq!(ack.assoc_group_id, 0x5eed, "the ack is the backend's");
    assert_eq!(
        backend.binds(),
        vec![bind.clone()],
        "backend got the bind byte for byte"
    );
    // Later PDUs are spliced both ways.
    let request = request_pdu(2, b"request after bind");
    s.write_all(&request).await.unwrap();
    assert_eq!(read_pdu(&mut s).await, Some(request), "echoed by the backend");
    assert!(metric("kedge_auth_total", &[("protocol", "rpc"), ("result", "ok")]) > ok_before);
    drop(s);
    edge.stop().await;
}

#[tokio::test]
async fn auth16_gss_wrapped_ap_req_bind_is_forwarded() {
    let kdc = Kdc::shared();
    let token = gss_wrap(&kdc.dce_tokens("bob", "exchangeMDB", 1)[0]);
    let (edge, backend) = edge("t-krb5-gss", |_| {}).await;
    let bind = emsmdb_bind(AuthType::Krb5, &token);
    let (reply, _s) = send_bind(edge.addr, &bind).await;
    assert!(matches!(reply, Reply::Ack(_)), "{reply:?}");
    assert_eq!(backend.binds(), vec![bind]);
}

#[tokio::test]
async fn auth9_spnego_bind_is_forwarded() {
    let kdc = Kdc::shared();
    let token = kdc
        .tokens("alice", &format!("exchangeMDB@{ARRAY_FQDN}"), Mech::Spnego, 1)
        .remove(0);
    let (edge, backend) = edge("t-spnego", |_| {}).await;
    let bind = emsmdb_bind(AuthType::Spnego, &token);
    let (reply, _s) = send_bind(edge.addr, &bind).await;
    assert!(matches!(reply, Reply::Ack(_)), "{reply:?}");
    assert_eq!(backend.binds(), vec![bind]);
}

#[tokio::test]
async fn exchange_ab_ticket_on_emsmdb_gets_bind_nak_9_and_close() {
    let kdc = Kdc::shared();
    let token = kdc.dce_tokens("alice", "exchangeAB", 1).remove(0);
    let (edge, backend) = edge("t-wrong-spn", |_| {}).await;
    let labels = [
        ("protocol", "rpc"),
        ("service", "exchangeMDB"),
        ("reason", "wrong_spn"),
    ];
    let before = metric("kedge_auth_total", &labels);
    let (reply, mut s) = send_bind(edge.addr, &emsmdb_bind(AuthType::Krb5, &token)).await;
    expect_nak(reply, RejectReason::InvalidChecksum);
    assert_closed(&mut s).await;
    metric_moved("kedge_auth_total", &labels, before).await;
    assert!(
        backend.binds().is_empty(),
        "a refused bind never reaches a backend"
    );
}

#[tokio::test]
async fn replayed_bind_gets_bind_nak_9() {
    let kdc = Kdc::shared();
    let token = kdc.dce_tokens("bob", "exchangeMDB", 1).remove(0);
    let (edge, backend) = edge("t-replay", |_| {}).await;
    let before = metric("kedge_replay_rejected_total", &[("protocol", "rpc")]);
    let bind = emsmdb_bind(AuthType::Krb5, &token);
    let (first, _s1) = send_bind(edge.addr, &bind).await;
    assert!(matches!(first, Reply::Ack(_)), "{first:?}");
    let (second, mut s2) = send_bind(edge.addr, &bind).await;
    expect_nak(second, RejectReason::InvalidChecksum);
    assert_closed(&mut s2).await;
    metric_moved("kedge_replay_rejected_total", &[("protocol", "rpc")], before).await;
    assert_eq!(backend.binds().len(), 1);
}

#[tokio::test]
async fn ntlm_bind_gets_bind_nak_8_under_reject() {
    let (edge, backend) = edge("t-ntlm-reject", |c| c.ntlm = NtlmPolicy::Reject).await;
    let before = metric("kedge_ntlm_rejected_total", &[("protocol", "rpc")]);
    let (reply, mut s) = send_bind(edge.addr, NTLM_BIND).await;
    expect_nak(reply, RejectReason::AuthenticationTypeNotRecognized);
    assert_closed(&mut s).await;
    metric_moved("kedge_ntlm_rejected_total", &[("protocol", "rpc")], before).await;
    assert!(backend.binds().is_empty());
}

#[tokio::test]
async fn ntlm_bind_is_forwarded_under_passthrough() {
    let (edge, backend) = edge("t-ntlm-pass", |c| c.ntlm = NtlmPolicy::Passthrough).await;
    let (reply, _s) = send_bind(edge.addr, NTLM_BIND).await;
    assert!(matches!(reply, Reply::Ack(_)), "{reply:?}");
    assert_eq!(backend.binds(), vec![NTLM_BIND.to_vec()]);
}

#[tokio::test]
async fn unauthenticated_endpoint_mapper_bind_is_forwarded_where_allowed() {
    let (edge, backend) = edge("t-epm-allowed", |c| c.allow_unauthenticated_epm = Some(true)).await;
    let (reply, _s) = send_bind(edge.addr, EPM_BIND).await;
    assert!(matches!(reply, Reply::Ack(_)), "{reply:?}");
    assert_eq!(backend.binds(), vec![EPM_BIND.to_vec()]);
}

#[tokio::test]
async fn unauthenticated_endpoint_mapper_bind_is_refused_where_not_allowed() {
    let (edge, backend) = edge("t-epm-refused", |c| {
        c.endpoint_mapper = true;
        c.allow_unauthenticated_epm = Some(false);
    })
    .await;
    let (reply, mut s) = send_bind(edge.addr, EPM_BIND).await;
    expect_nak(reply, RejectReason::AuthenticationTypeNotRecognized);
    assert_closed(&mut s).await;
    assert!(backend.binds().is_empty());
}

#[tokio::test]
async fn emsmdb_bind_without_credential_gets_bind_nak_8() {
    let (edge, backend) = edge("t-no-auth", |_| {}).await;
    let labels = [("protocol", "rpc"), ("reason", "auth_missing")];
    let before = metric("kedge_auth_total", &labels);
    let (reply, mut s) = send_bind(edge.addr, &bind_pdu(EMSMDB, 0, 81, None, &[])).await;
    expect_nak(reply, RejectReason::AuthenticationTypeNotRecognized);
    assert_closed(&mut s).await;
    metric_moved("kedge_auth_total", &labels, before).await;
    assert!(backend.binds().is_empty());
}

#[tokio::test]
async fn bind_to_an_interface_outside_the_map_is_refused() {
    let (edge, backend) = edge("t-unknown-iface", |_| {}).await;
    let samr = "12345778-1234-abcd-ef00-0123456789ac".parse().unwrap();
    let (reply, mut s) = send_bind(edge.addr, &bind_pdu(samr, 1, 0, None, &[])).await;
    expect_nak(reply, RejectReason::ReasonNotSpecified);
    assert_closed(&mut s).await;
    assert!(backend.binds().is_empty());
}

#[tokio::test]
async fn configured_interface_extension_needs_its_service() {
    let kdc = Kdc::shared();
    let token = kdc.dce_tokens("alice", "exchangeRFR", 1).remove(0);
    let iface = "12345778-1234-abcd-ef00-0123456789ac";
    let (edge, backend) = edge("t-extension", |c| {
        c.interfaces.insert(iface.into(), "exchangeRFR".into());
    })
    .await;
    let bind = bind_pdu(iface.parse().unwrap(), 1, 0, Some(AuthType::Krb5), &token);
    let (reply, _s) = send_bind(edge.addr, &bind).await;
    assert!(matches!(reply, Reply::Ack(_)), "{reply:?}");
    assert_eq!(backend.binds(), vec![bind]);
}

#[tokio::test]
async fn unsupported_auth_type_gets_bind_nak_8() {
    let (edge, _backend) = edge("t-auth-netlogon", |_| {}).await;
    let bind = emsmdb_bind(AuthType::Other(0x44), b"netlogon");
    let (reply, _s) = send_bind(edge.addr, &bind).await;
    expect_nak(reply, RejectReason::AuthenticationTypeNotRecognized);
}

#[tokio::test]
async fn bind_to_epm_passes_without_kdc_while_emsmdb_uses_the_principal_for_the_backend() {
    // Two binds on one listener: the endpoint mapper needs no ticket; EMSMDB does.
    let kdc = Kdc::shared();
    let token = kdc.dce_tokens("alice", "exchangeMDB", 1).remove(0);
    let (edge, backend) = edge("t-two-binds", |c| c.endpoint_mapper = true).await;
    let (a, _s1) = send_bind(edge.addr, &bind_pdu(EPM, 3, 0, None, &[])).await;
    let (b, _s2) = send_bind(edge.addr, &emsmdb_bind(AuthType::Krb5, &token)).await;
    assert!(matches!((a, b), (Reply::Ack(_), Reply::Ack(_))));
    assert_eq!(backend.binds().len(), 2);
}

#[tokio::test]
async fn each_rpc_connection_is_one_access_line_and_a_forwarded_bind_is_timed() {
    let kdc = Kdc::shared();
    let log = access_log_file::AccessLogFile::json();
    let backend = RecordingBackend::start().await;
    let acceptor = acceptor_from_keytab(&kdc.keytab_path(), REALM, ARRAY_FQDN);
    let edge = Edge::start_logged(
        listener_config("t-access"),
        acceptor,
        backend.addr,
        Some(log.log.clone()),
    )
    .await;
    let token = kdc.dce_tokens("alice", "exchangeMDB", 1).remove(0);
    let bind = emsmdb_bind(AuthType::Krb5, &token);
    let (reply, s) = send_bind(edge.addr, &bind).await;
    assert!(matches!(reply, Reply::Ack(_)), "{reply:?}");
    drop(s);
    // The same token again: a replay, answered with a bind_nak.
    let (reply, _s) = send_bind(edge.addr, &bind).await;
    expect_nak(reply, RejectReason::InvalidChecksum);

    let lines = log.wait_for(2).await;
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let (ok, nak) = if lines[0]["result"] == "spliced" {
        (&lines[0], &lines[1])
    } else {
        (&lines[1], &lines[0])
    };
    assert_eq!(ok["kind"], "rpc");
    assert_eq!(ok["listener"], "t-access");
    assert_eq!(ok["interface"], "EMSMDB v0.81");
    assert_eq!(ok["auth"], "kerberos");
    assert_eq!(ok["principal"], format!("alice@{REALM}"));
    assert_eq!(ok["member"], "cas1");
    assert_eq!(ok["result"], "spliced");
    assert_eq!(ok["bytes_in"].as_u64(), Some(bind.len() as u64));
    assert!(ok.get("reason").is_none(), "{ok}");
    assert_eq!(nak["result"], "bind_nak");
    assert_eq!(nak["reason"], "KRB_AP_ERR_REPEAT");
    assert_eq!(nak["interface"], "EMSMDB v0.81");
    assert!(
        nak.get("member").is_none(),
        "a refused bind reaches no member: {nak}"
    );
    let binds = metric(
        "kedge_rpc_bind_duration_seconds_count",
        &[("listener", "t-access")],
    );
    assert_eq!(binds, 1.0, "one bind forwarded, one refused");
    edge.stop().await;
}
