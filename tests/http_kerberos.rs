//! The HTTP edge with the real acceptor and a real MIT realm (tests/support): curl
//! --negotiate over TLS, python3-gssapi clients with mutual auth in both modes, SPN and replay
//! refusals, channel bindings, and two users' requests never crossing backend connections.

mod http_common;
mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine;
use http_common::backend::{OwnerOf, TestBackend};
use http_common::client::Conn;
use http_common::kedge::{start, Kedge, PoolSpec, PASSTHROUGH};
use http_common::{bounded, pki};
use kedge::edge::http::ServerTls;
use kedge::krb::acceptor::{AcceptCtx, Acceptor, AcceptorConfig};
use kedge::krb::keyset::KeySet;
use kedge::krb::keytab::Keytab;
use kedge::krb::replay::ReplayCache;
use support::{Kdc, Mech, TokenSpec, ARRAY_FQDN, PYTHON, REALM, UTF8_USERS};

const HTTP_SPN: &str = "HTTP@outlook.contoso.com";

/// An acceptor with the ASA keytab and a replay cache of its own.
fn acceptor(kdc: &Kdc) -> Acceptor {
    let kt = Keytab::parse(&std::fs::read(kdc.keytab_path()).unwrap()).unwrap();
    let cfg = AcceptorConfig {
        realm: Some(REALM.into()),
        hosts: vec![ARRAY_FQDN.into()],
        ..Default::default()
    };
    Acceptor::new(
        cfg,
        KeySet::from_keytab(&kt, SystemTime::now(), "test"),
        Arc::new(ReplayCache::new(100_000)),
    )
}

/// A Rust backend that learns each connection's owner with an acceptor of its own (its own
/// replay cache, like a separate CAS member).
async fn member(kdc: &Kdc) -> TestBackend {
    let acc = acceptor(kdc);
    let owner_of: OwnerOf = Arc::new(move |token: &[u8]| {
        let ctx = AcceptCtx {
            now: SystemTime::now(),
            service: "http",
            channel_binding: None,
            groups: None,
            check_replay: true,
        };
        acc.accept(token, &ctx).ok().map(|a| a.client.to_string())
    });
    TestBackend::start_with(owner_of).await
}

async fn kedge_over(kdc: &Kdc, cfg: &str, backend: SocketAddr, tls: Option<ServerTls>) -> Kedge {
    start(
        cfg,
        vec![PoolSpec::plain("cas", backend)],
        Arc::new(acceptor(kdc)),
        tls,
    )
    .await
}

/// A member, and kedge in front of it with one assert route for every path.
async fn assert_everything(kdc: &Kdc) -> (TestBackend, Kedge) {
    let backend = member(kdc).await;
    let cfg = "[[routes]]\nprefix = \"/\"\npool = \"cas\"\nmode = \"assert\"\n";
    let kedge = kedge_over(kdc, cfg, backend.addr, None).await;
    (backend, kedge)
}

fn negotiate(token: &[u8]) -> String {
    format!(
        "Negotiate {}",
        base64::engine::general_purpose::STANDARD.encode(token)
    )
}

fn reply_token(header: &str) -> Vec<u8> {
    let b64 = header.strip_prefix("Negotiate ").expect("Negotiate reply");
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64 reply")
}

/// The python3-gssapi member (MIT acceptor, no replay cache), killed on drop.
struct GssMember {
    child: Child,
    addr: SocketAddr,
}

impl GssMember {
    fn start(kdc: &Kdc) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/http_common/gss_backend.py");
        let mut child = kdc
            .command(PYTHON)
            .arg(script)
            .env("KRB5RCACHETYPE", "none")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start gss_backend.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line
            .trim()
            .strip_prefix("port ")
            .expect("port line")
            .parse()
            .unwrap();
        GssMember {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }
}

impl Drop for GssMember {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_negotiate_over_tls_reaches_the_backend_and_no_credentials_get_401() {
    let kdc = Kdc::shared();
    let p = pki::generate();
    let backend = member(kdc).await;
    let tls = ServerTls::from_pem(p.cert_pem.as_bytes(), p.key_pem.as_bytes()).unwrap();
    let kedge = kedge_over(kdc, PASSTHROUGH, backend.addr, Some(tls)).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &p.ca_pem).unwrap();

    // No credentials: 401 with Negotiate.
    let mut c = Conn::tls(kedge.addr, &p.ca_pem, "outlook.contoso.com").await;
    let r = bounded("401", c.get("/ews/exchange.asmx", &[])).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.all("www-authenticate"), vec!["Negotiate"]);

    let body = curl_ok(kdc, "alice", &kedge, Some(ca.as_path())).await;
    assert_eq!(
        body,
        format!("conn=1 owner=alice@{REALM} path=/ews/exchange.asmx")
    );
}

/// `curl --negotiate --fail` as `user` to kedge's `/ews/exchange.asmx` (over TLS trusting
/// `ca`, else plain HTTP), with outlook.contoso.com resolved to loopback; its body, once it
/// succeeded.
async fn curl_ok(kdc: &Kdc, user: &str, kedge: &Kedge, ca: Option<&std::path::Path>) -> String {
    let port = kedge.addr.port();
    let mut cmd = kdc.curl_cmd(user);
    if let Some(ca) = ca {
        cmd.arg("--cacert").arg(ca);
    }
    let scheme = if ca.is_some() { "https" } else { "http" };
    cmd.arg("--resolve")
        .arg(format!("outlook.contoso.com:{port}:127.0.0.1"))
        .arg("--fail")
        .arg(format!("{scheme}://outlook.contoso.com:{port}/ews/exchange.asmx"));
    let out = bounded("curl", tokio::task::spawn_blocking(move || cmd.output()))
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "curl as {user}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_auth_completes_from_kedges_ap_rep_in_assert_mode() {
    let kdc = Kdc::shared();
    let (backend, kedge) = assert_everything(kdc).await;
    let mut init = kdc.initiator("alice");
    let token = init.init(HTTP_SPN, Mech::Spnego, "mutual");
    let mut c = Conn::plain(kedge.addr).await;
    let r = bounded(
        "auth",
        c.get(
            "/ews/",
            &[
                ("authorization", &negotiate(&token)),
                ("x-kedge-principal", "administrator@KEDGE.TEST"),
            ],
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let ap_rep = reply_token(&r.header("www-authenticate").expect("kedge's AP-REP"));
    init.step(&ap_rep)
        .expect("the initiator completes its context from kedge's AP-REP");

    let seen = backend.seen();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].headers.get("authorization").is_none());
    assert_eq!(
        seen[0]
            .headers
            .get_all("x-kedge-principal")
            .iter()
            .collect::<Vec<_>>(),
        vec![format!("alice@{REALM}").as_str()]
    );
}

/// Fresh tokens on one connection, some of one kept ticket and some of another user's: every
/// request reaches the member as the principal of its own token (kedge keeps a connection's
/// identity only for a token of the very ticket it was made from).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fresh_token_on_a_connection_states_its_own_principal() {
    let kdc = Kdc::shared();
    let (backend, kedge) = assert_everything(kdc).await;
    let (mut alice, mut bob) = (kdc.initiator("alice"), kdc.initiator("bob"));
    let mut c = Conn::plain(kedge.addr).await;
    let order = ["alice", "alice", "bob", "alice", "bob", "bob"];
    for user in order {
        let init = if user == "alice" { &mut alice } else { &mut bob };
        let token = init.init(HTTP_SPN, Mech::Spnego, "mutual");
        let r = bounded(user, c.get("/ews/", &[("authorization", &negotiate(&token))])).await;
        assert_eq!(r.status, 200, "{user}: {r:?}");
    }
    let stated: Vec<String> = backend
        .seen()
        .iter()
        .map(|s| {
            let all: Vec<_> = s.headers.get_all("x-kedge-principal").iter().collect();
            assert_eq!(all.len(), 1, "one principal header");
            all[0].to_str().unwrap().to_owned()
        })
        .collect();
    let want: Vec<String> = order.iter().map(|u| format!("{u}@{REALM}")).collect();
    assert_eq!(stated, want);
}

/// curl --negotiate as users whose UTF-8 names hold bytes in 0x80..=0xA0 (`weiß`, `рябов`),
/// through an assert route: the member gets the principal header with the name's UTF-8 bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_as_a_utf8_user_reaches_the_member_with_the_utf8_principal_header() {
    let kdc = Kdc::shared();
    let (backend, kedge) = assert_everything(kdc).await;
    for (user, _) in UTF8_USERS {
        curl_ok(kdc, user, &kedge, None).await;
    }
    let seen = backend.seen();
    assert_eq!(seen.len(), UTF8_USERS.len());
    for (s, (user, _)) in seen.iter().zip(UTF8_USERS) {
        assert!(s.headers.get("authorization").is_none());
        let stated: Vec<&[u8]> = s
            .headers
            .get_all("x-kedge-principal")
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        assert_eq!(stated, vec![format!("{user}@{REALM}").as_bytes()], "{user}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_auth_completes_from_the_backends_untouched_reply_in_passthrough_mode() {
    let kdc = Kdc::shared();
    let gss = GssMember::start(kdc);
    let kedge = kedge_over(kdc, PASSTHROUGH, gss.addr, None).await;
    let mut init = kdc.initiator("bob");
    let token = init.init(HTTP_SPN, Mech::Spnego, "mutual");
    let mut c = Conn::plain(kedge.addr).await;
    let r = bounded(
        "auth",
        c.get("/mapi/emsmdb/", &[("authorization", &negotiate(&token))]),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body.starts_with(&format!("conn=1 user=bob@{REALM}")),
        "{}",
        r.body
    );
    let ap_rep = reply_token(&r.header("www-authenticate").expect("the member's AP-REP"));
    init.step(&ap_rep)
        .expect("the initiator completes its context from the member's AP-REP");
    // Connection-bound on both sides: no header needed, same member connection.
    let r = bounded("later", c.get("/mapi/emsmdb/2", &[])).await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.starts_with(&format!("conn=1 user=bob@{REALM}")),
        "{}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_sees_the_clients_authorization_header_in_passthrough() {
    let kdc = Kdc::shared();
    let backend = member(kdc).await;
    let kedge = kedge_over(kdc, PASSTHROUGH, backend.addr, None).await;
    let token = kdc.tokens("alice", HTTP_SPN, Mech::Spnego, 1).remove(0);
    let authz = negotiate(&token);
    let mut c = Conn::plain(kedge.addr).await;
    let r = bounded("auth", c.get("/ews/", &[("authorization", &authz)])).await;
    assert_eq!(r.status, 200);
    let seen = backend.seen();
    assert_eq!(
        seen[0].headers.get("authorization").unwrap().to_str().unwrap(),
        authz
    );
    assert_eq!(
        seen[0].owner.as_deref(),
        Some(format!("alice@{REALM}").as_str()),
        "the member's own logon worked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_mdb_ticket_sent_to_http_is_refused() {
    let kdc = Kdc::shared();
    let backend = member(kdc).await;
    let kedge = kedge_over(kdc, PASSTHROUGH, backend.addr, None).await;
    let token = kdc
        .tokens("alice", &kdc.spn("exchangeMDB"), Mech::Spnego, 1)
        .remove(0);
    let mut c = Conn::plain(kedge.addr).await;
    let r = bounded("auth", c.get("/ews/", &[("authorization", &negotiate(&token))])).await;
    assert_eq!(r.status, 401);
    assert_eq!(backend.seen().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_header_is_refused() {
    let kdc = Kdc::shared();
    let backend = member(kdc).await;
    let kedge = kedge_over(kdc, PASSTHROUGH, backend.addr, None).await;
    let authz = negotiate(&kdc.tokens("alice", HTTP_SPN, Mech::Spnego, 1).remove(0));
    let mut a = Conn::plain(kedge.addr).await;
    assert_eq!(
        bounded("first", a.get("/", &[("authorization", &authz)]))
            .await
            .status,
        200
    );
    let mut b = Conn::plain(kedge.addr).await;
    assert_eq!(
        bounded("replay", b.get("/", &[("authorization", &authz)]))
            .await
            .status,
        401
    );
    assert_eq!(backend.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_bindings_are_checked_against_kedges_own_tls_certificate() {
    let kdc = Kdc::shared();
    let p = pki::generate();
    let backend = member(kdc).await;
    let tls = ServerTls::from_pem(p.cert_pem.as_bytes(), p.key_pem.as_bytes()).unwrap();
    let cb = tls.channel_binding().to_vec();
    let kedge = kedge_over(kdc, PASSTHROUGH, backend.addr, Some(tls)).await;
    let good = kdc
        .tokens_for(
            "alice",
            &TokenSpec::new(HTTP_SPN, Mech::Spnego).channel_binding(&cb),
            1,
        )
        .remove(0);
    let bad = kdc
        .tokens_for(
            "alice",
            &TokenSpec::new(HTTP_SPN, Mech::Spnego).channel_binding(b"tls-server-end-point:elsewhere"),
            1,
        )
        .remove(0);
    let mut c = Conn::tls(kedge.addr, &p.ca_pem, "outlook.contoso.com").await;
    assert_eq!(
        bounded("good", c.get("/", &[("authorization", &negotiate(&good))]))
            .await
            .status,
        200
    );
    let mut c = Conn::tls(kedge.addr, &p.ca_pem, "outlook.contoso.com").await;
    assert_eq!(
        bounded("bad", c.get("/", &[("authorization", &negotiate(&bad))]))
            .await
            .status,
        401
    );
    assert_eq!(backend.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_requests_never_cross_backend_connections() {
    let kdc = Kdc::shared();
    let backend = member(kdc).await;
    let kedge = kedge_over(kdc, PASSTHROUGH, backend.addr, None).await;
    const CONNS: usize = 4;
    const REQUESTS: usize = 50;
    let mut tasks = Vec::new();
    for user in ["alice", "bob"] {
        for token in kdc.tokens(user, HTTP_SPN, Mech::Spnego, CONNS) {
            let addr = kedge.addr;
            tasks.push(tokio::spawn(async move {
                let mut c = Conn::plain(addr).await;
                let r = c
                    .get(
                        "/mapi/emsmdb/",
                        &[("authorization", &negotiate(&token)), ("x-test-user", user)],
                    )
                    .await;
                assert_eq!(r.status, 200, "{user}: {r:?}");
                for n in 0..REQUESTS {
                    let r = c
                        .get(&format!("/mapi/emsmdb/?n={n}"), &[("x-test-user", user)])
                        .await;
                    assert_eq!(r.status, 200);
                    assert!(
                        r.body.contains(&format!("owner={user}@{REALM}")),
                        "{user} got {}",
                        r.body
                    );
                }
            }));
        }
    }
    for t in tasks {
        bounded("client", t).await.expect("client");
    }
    let seen = backend.seen();
    assert_eq!(seen.len(), 2 * CONNS * (REQUESTS + 1));
    for s in &seen {
        let claimed = s.headers.get("x-test-user").unwrap().to_str().unwrap();
        assert_eq!(
            s.owner.as_deref(),
            Some(format!("{claimed}@{REALM}").as_str()),
            "a request of {claimed} arrived on backend connection {} owned by {:?}",
            s.conn,
            s.owner
        );
    }
    assert_eq!(backend.connections() as usize, 2 * CONNS);
}
