//! End to end with real parties: python3-impacket binds to EMSMDB with Kerberos (auth 9, the
//! ticket from a real MIT KDC) **through kedge**, and an MIT-based CAS member stand-in
//! (python3-gssapi with the ASA keytab, its own replay cache) completes the 3-leg DCE handshake
//! behind it. kedge validates the first leg and splices the rest.

mod support;
mod support_rpc;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use kedge::rpc::{parse_bind, parse_bind_ack, AuthType};
use support::{Kdc, Mech, Step, TokenSpec, ARRAY_FQDN, DCE_FLAGS, PYTHON, REALM};
use support_rpc::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const MIT_BACKEND: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support_rpc/mit_backend.py");
const IMPACKET_CLIENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/support_rpc/impacket_client.py"
);

/// The MIT-backed member: a python process that dies with this value (stdin closes, then kill).
struct MitBackend {
    child: Child,
    port: u16,
    records: mpsc::Receiver<serde_json::Value>,
}

impl MitBackend {
    fn start(kdc: &Kdc) -> MitBackend {
        let mut child = kdc
            .command(PYTHON)
            .arg(MIT_BACKEND)
            .env("KRB5RCACHETYPE", "none")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start mit_backend.py");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = lines
            .next()
            .expect("mit_backend.py printed no port")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let (tx, records) = mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                    return;
                }
            }
        });
        MitBackend { child, port, records }
    }

    fn next_record(&self) -> serde_json::Value {
        self.records
            .recv_timeout(Duration::from_secs(20))
            .expect("the MIT backend reported no connection")
    }
}

impl Drop for MitBackend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn edge_to(kdc: &Kdc, name: &str, port: u16) -> Edge {
    let acceptor = acceptor_from_keytab(&kdc.keytab_path(), REALM, ARRAY_FQDN);
    Edge::start(listener_config(name), acceptor, ([127, 0, 0, 1], port).into()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impacket_kerberos_bind_through_kedge_completes_with_an_mit_backend() {
    let kdc = Kdc::shared();
    let spn = kdc.spn("exchangeMDB");
    let cc = kdc.service_ticket("alice", &spn);
    let backend = MitBackend::start(kdc);
    let edge = edge_to(kdc, "i-impacket", backend.port).await;
    let ok_before = metric(
        "kedge_auth_total",
        &[("protocol", "rpc"), ("service", "exchangeMDB"), ("result", "ok")],
    );
    let mut client = kdc.command(PYTHON);
    client
        .env("KRB5CCNAME", cc.name())
        .arg(IMPACKET_CLIENT)
        .args(["--port", &edge.addr.port().to_string(), "--spn", &spn])
        .args(["--user", "alice", "--realm", REALM]);
    let out = tokio::task::spawn_blocking(move || client.output().expect("run impacket_client.py"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let record = backend.next_record();
    assert!(
        out.status.success(),
        "impacket failed: {stdout}{}\nbackend saw: {record}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(record["error"], serde_json::Value::Null, "{record}");
    assert_eq!(record["complete"], true, "the member completed the DCE handshake");
    assert_eq!(record["initiator"], format!("alice@{REALM}"));
    assert_eq!(
        record["third_leg_ptype"], 14,
        "auth 9 completes with alter_context"
    );
    let bind = hex::decode(record["bind"].as_str().unwrap()).unwrap();
    let info = parse_bind(&bind).expect("the member got a well-formed bind");
    assert_eq!(info.auth.unwrap().auth_type, AuthType::Spnego);
    assert!(
        metric(
            "kedge_auth_total",
            &[("protocol", "rpc"), ("service", "exchangeMDB"), ("result", "ok")]
        ) > ok_before
    );
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth16_bind_through_kedge_completes_with_an_mit_backend_via_auth3() {
    let kdc = Kdc::shared();
    let spn = kdc.spn("exchangeMDB");
    let backend = MitBackend::start(kdc);
    let edge = edge_to(kdc, "i-auth16", backend.port).await;
    // A real MIT initiator drives the three legs: AP-REQ in the bind, AP-REP from the member in
    // the bind_ack, the client's AP-REP in auth3.
    let mut initiator = kdc.initiator("bob");
    let spec = TokenSpec::new(&spn, Mech::Krb5).flags(DCE_FLAGS);
    let token = initiator.try_init(&spec).unwrap();
    let bind = emsmdb_bind(AuthType::Krb5, &token);
    let mut s = TcpStream::connect(edge.addr).await.unwrap();
    s.write_all(&bind).await.unwrap();
    let ack_pdu = read_pdu(&mut s).await.expect("the member's bind_ack");
    let ack = parse_bind_ack(&ack_pdu).unwrap();
    assert_eq!(ack.assoc_group_id, 0x5eed);
    let ap_rep = ack
        .auth
        .as_ref()
        .and_then(|a| a.token(&ack_pdu))
        .expect("AP-REP in the bind_ack");
    let third = match initiator
        .step_full(ap_rep)
        .expect("initiator takes the member's AP-REP")
    {
        Step::Complete(Some(t)) => t,
        other => panic!("want a third-leg AP-REP, got {other:?}"),
    };
    s.write_all(&auth3_pdu(1, AuthType::Krb5, AUTH_CONTEXT_ID, &third))
        .await
        .unwrap();
    let record = backend.next_record();
    assert_eq!(record["error"], serde_json::Value::Null, "{record}");
    assert_eq!(record["complete"], true);
    assert_eq!(record["initiator"], format!("bob@{REALM}"));
    assert_eq!(record["third_leg_ptype"], 16);
    assert_eq!(
        hex::decode(record["bind"].as_str().unwrap()).unwrap(),
        bind,
        "byte for byte"
    );
    drop(s);
    edge.stop().await;
}
