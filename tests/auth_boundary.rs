//! The authentication boundary through the real edges, with tokens from a real MIT KDC: what an
//! attacker holding a used token, a password list or a forged header can and cannot get past.
//!
//! - A used token re-labelled in its cleartext fields (the ticket's `sname` and realm re-cased,
//!   the framing changed) is the same authenticator, so a replay; a token admitted on the RPC
//!   listener and re-labelled `http/` is a replay on HTTPS (one replay cache per process).
//! - Basic credentials never pass an anonymous route unless the route says so.
//! - Group deny rules fail closed without a PAC; client realms are restricted.

mod http_common;
mod support;
mod support_rpc;

use std::sync::Arc;
use std::time::SystemTime;

use http_common::backend::TestBackend;
use http_common::client::Conn;
use http_common::kedge::{start, Kedge, PoolSpec};
use http_common::{bounded, fake};
use kedge::edge::Authenticate;
use kedge::krb::acceptor::{unframe, Acceptor, AcceptorConfig};
use kedge::krb::gss::{wrap_krb5, OID_KRB5, TOK_AP_REQ};
use kedge::krb::keyset::KeySet;
use kedge::krb::keytab::Keytab;
use kedge::krb::replay::ReplayCache;
use kedge::rpc::AuthType;
use rasn_kerberos::ApReq;
use support::{Kdc, Mech, TokenSpec, ARRAY_FQDN, REALM};
use support_rpc::{emsmdb_bind, listener_config, metric, send_bind, Edge, Reply};

const ASSERT_ROUTE: &str = r#"
[[routes]]
prefix = "/"
pool = "cas"
mode = "assert"
"#;

/// The array's acceptor (ASA keytab of the shared realm, its own replay cache), tuned by `tweak`.
fn acceptor(tweak: impl FnOnce(&mut AcceptorConfig)) -> Arc<Acceptor> {
    let kdc = Kdc::shared();
    let kt = Keytab::parse(&std::fs::read(kdc.keytab_path()).unwrap()).unwrap();
    let mut cfg = AcceptorConfig {
        realm: Some(REALM.into()),
        hosts: vec![ARRAY_FQDN.into()],
        ..Default::default()
    };
    tweak(&mut cfg);
    Arc::new(Acceptor::new(
        cfg,
        KeySet::from_keytab(&kt, SystemTime::now(), "test"),
        Arc::new(ReplayCache::new(100_000)),
    ))
}

/// kedge's HTTP listener with `routes` over one recording member.
async fn http_edge(routes: &str, auth: Arc<dyn Authenticate>) -> (Kedge, TestBackend) {
    let backend = TestBackend::start().await;
    let kedge = start(routes, vec![PoolSpec::plain("cas", backend.addr)], auth, None).await;
    (kedge, backend)
}

/// One request on a new connection with `authorization` (if any); the status.
async fn status_of(kedge: &Kedge, path: &str, authorization: Option<&str>) -> u16 {
    let mut c = Conn::plain(kedge.addr).await;
    let headers: Vec<(&str, &str)> = authorization.map(|a| ("authorization", a)).into_iter().collect();
    bounded("request", c.get(path, &headers)).await.status.as_u16()
}

fn negotiate(token: &[u8]) -> String {
    fake::negotiate(token)
}

/// `token`'s AP-REQ with `edit` applied to its cleartext fields, framed as a raw RFC 4121
/// token (whatever the original framing was): what an attacker can make of a captured token.
fn relabel(token: &[u8], edit: impl FnOnce(&mut ApReq)) -> Vec<u8> {
    let (der, _) = unframe(token).expect("a token kedge can unframe");
    let mut req: ApReq = rasn::der::decode(der).expect("AP-REQ");
    edit(&mut req);
    let der = rasn::der::encode(&req).expect("encode AP-REQ");
    wrap_krb5(OID_KRB5, TOK_AP_REQ, &der)
}

fn set_sname(req: &mut ApReq, service: &str, host: &str) {
    req.ticket.sname.string = vec![
        rasn_kerberos::KerberosString::try_from(service.to_string()).unwrap(),
        rasn_kerberos::KerberosString::try_from(host.to_string()).unwrap(),
    ];
}

fn replays() -> f64 {
    metric(
        "kedge_auth_total",
        &[("protocol", "http"), ("reason", "KRB_AP_ERR_REPEAT")],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_token_relabelled_in_its_cleartext_fields_is_a_replay() {
    let kdc = Kdc::shared();
    let (kedge, backend) = http_edge(ASSERT_ROUTE, acceptor(|_| {})).await;
    type Edit = fn(&mut ApReq);
    let edits: [(&str, Edit); 5] = [
        ("service re-cased", |r| set_sname(r, "HTTP", ARRAY_FQDN)),
        ("host re-cased", |r| {
            set_sname(r, "http", &ARRAY_FQDN.to_ascii_uppercase())
        }),
        ("realm re-cased", |r| {
            r.ticket.realm = rasn_kerberos::KerberosString::try_from(REALM.to_ascii_lowercase()).unwrap();
        }),
        ("kvno dropped", |r| r.ticket.enc_part.kvno = None),
        ("framing changed only", |_| {}),
    ];
    let tokens = kdc.tokens("alice", &kdc.spn("http"), Mech::Spnego, edits.len());
    for ((what, edit), token) in edits.into_iter().zip(tokens) {
        assert_eq!(
            status_of(&kedge, "/ews/", Some(&negotiate(&token))).await,
            200,
            "{what}: the original is accepted"
        );
        let before = replays();
        let forged = relabel(&token, edit);
        assert_eq!(
            status_of(&kedge, "/ews/", Some(&negotiate(&forged))).await,
            401,
            "{what}: the re-labelled copy is refused"
        );
        assert!(replays() > before, "{what}: refused as a replay");
    }
    assert_eq!(backend.seen().len(), 5, "only the originals reached the member");
}

/// A ticket kept from an earlier token lends its service name only to a token that names it
/// in the same bytes: a fresh token of the same ticket labelled otherwise (`sname` travels in
/// clear) is checked and reported under its own label, and a label for another protocol is
/// refused with that label named.
#[test]
fn a_kept_ticket_lends_its_service_name_only_to_the_same_label() {
    let kdc = Kdc::shared();
    let acc = acceptor(|_| {});
    let ctx = |service| kedge::krb::acceptor::AcceptCtx {
        now: SystemTime::now(),
        service,
        channel_binding: None,
        groups: None,
        check_replay: true,
    };
    // One ticket, four authenticators (one credential cache).
    let tokens = kdc.tokens("alice", &kdc.spn("http"), Mech::Spnego, 4);
    let first = acc
        .accept(&tokens[0], &ctx("http"))
        .expect("the first token opens the ticket");
    assert_eq!(first.service.to_string(), kdc.spn("http"));
    let again = acc
        .accept(&tokens[1], &ctx("http"))
        .expect("the kept ticket's next token");
    assert!(
        Arc::ptr_eq(&first.service, &again.service),
        "the same label shares the kept name"
    );
    let upper = relabel(&tokens[2], |r| {
        set_sname(r, "HTTP", &ARRAY_FQDN.to_ascii_uppercase())
    });
    let relabelled = acc
        .accept(&upper, &ctx("http"))
        .expect("an array name in other case");
    let want = format!("HTTP/{}@{REALM}", ARRAY_FQDN.to_ascii_uppercase());
    assert_eq!(
        relabelled.service.to_string(),
        want,
        "reported as this token names it"
    );
    assert!(!Arc::ptr_eq(&first.service, &relabelled.service));
    let other = relabel(&tokens[3], |r| set_sname(r, "exchangeMDB", ARRAY_FQDN));
    match acc.accept(&other, &ctx("http")) {
        Err(kedge::krb::error::AuthError::WrongSpn { got, .. }) => {
            assert_eq!(got, format!("exchangeMDB/{ARRAY_FQDN}"));
        }
        other => panic!("an exchangeMDB label on HTTP: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_admitted_on_rpc_is_a_replay_when_relabelled_for_https() {
    let kdc = Kdc::shared();
    let spn = kdc.spn("exchangeMDB");
    let dce = TokenSpec::new(&spn, Mech::Krb5).flags("mutual,dce,conf,integ,sequence,replay");
    let mut tokens = kdc.tokens_for("alice", &dce, 2);
    let (used, unused) = (tokens.remove(0), tokens.remove(0));
    // One process: the RPC and HTTPS listeners share the acceptor and its replay cache.
    let acc = acceptor(|_| {});
    let rpc_backend = support_rpc::RecordingBackend::start().await;
    let rpc = Edge::start(listener_config("boundary-rpc"), acc.clone(), rpc_backend.addr).await;
    let (https, backend) = http_edge(ASSERT_ROUTE, acc).await;

    let (reply, _conn) = send_bind(rpc.addr, &emsmdb_bind(AuthType::Krb5, &used)).await;
    assert!(matches!(reply, Reply::Ack(_)), "admitted on RPC: {reply:?}");

    let to_http = |t: &[u8]| relabel(t, |r| set_sname(r, "http", ARRAY_FQDN));
    let before = replays();
    assert_eq!(
        status_of(&https, "/mapi/", Some(&negotiate(&to_http(&used)))).await,
        401
    );
    assert!(replays() > before, "refused as a replay");
    assert!(backend.seen().is_empty());
    // What the replay cache stops is the second use, not the label: the ASA's SPNs share one
    // key and `sname` is cleartext, so an unused exchangeMDB token re-labelled http/ is a
    // valid first use (ARCHITECTURE.md, the SPN check is policy).
    assert_eq!(
        status_of(&https, "/mapi/", Some(&negotiate(&to_http(&unused)))).await,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_credentials_pass_an_anonymous_route_only_where_it_says_so() {
    let routes = r#"
[[routes]]
prefix = "/"
pool = "cas"
[[routes]]
prefix = "/autodiscover/"
pool = "cas"
anonymous = true
[[routes]]
prefix = "/Microsoft-Server-ActiveSync"
pool = "cas"
basic = "passthrough"
[[routes]]
prefix = "/rpc/"
pool = "cas"
anonymous = true
basic = "passthrough"
"#;
    let (kedge, backend) = http_edge(routes, Arc::new(fake::FakeAuth::default())).await;
    let basic = "Basic YWxpY2U6UGE1NXcwcmQ=";
    // Anonymous route: the request goes on, the password does not.
    assert_eq!(
        status_of(&kedge, "/autodiscover/autodiscover.xml", Some(basic)).await,
        200
    );
    // A route that passes Basic forwards it, anonymous or not.
    assert_eq!(
        status_of(&kedge, "/Microsoft-Server-ActiveSync", Some(basic)).await,
        200
    );
    assert_eq!(status_of(&kedge, "/rpc/rpcproxy.dll", Some(basic)).await, 200);
    // An authenticated route without the policy refuses it, and offers what it takes.
    let mut c = Conn::plain(kedge.addr).await;
    let r = bounded("basic", c.get("/ews/", &[("authorization", basic)])).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.all("www-authenticate"), vec!["Negotiate"]);
    let mut c = Conn::plain(kedge.addr).await;
    let r = bounded("challenge", c.get("/Microsoft-Server-ActiveSync", &[])).await;
    assert_eq!(r.status, 401);
    assert!(
        r.all("www-authenticate")
            .iter()
            .any(|v| v.starts_with("Basic realm=")),
        "{r:?}"
    );

    let seen = backend.seen();
    let auth_of = |path: &str| {
        let s = seen.iter().find(|s| s.path.starts_with(path)).expect(path);
        s.headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string())
    };
    assert_eq!(auth_of("/autodiscover/"), None, "stripped on the anonymous route");
    assert_eq!(auth_of("/Microsoft-Server-ActiveSync").as_deref(), Some(basic));
    assert_eq!(auth_of("/rpc/").as_deref(), Some(basic));
    assert!(
        seen.iter().all(|s| !s.path.starts_with("/ews/")),
        "refused, never forwarded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_rules_fail_closed_for_tickets_without_a_pac() {
    let kdc = Kdc::shared();
    // MIT issues no PAC: nobody can tell whether alice is in the denied group.
    let routes = r#"
[[routes]]
prefix = "/"
pool = "cas"
mode = "assert"
groups = { deny = ["S-1-5-21-1-2-3-512"] }
[[routes]]
prefix = "/open/"
pool = "cas"
mode = "assert"
"#;
    let (kedge, backend) = http_edge(routes, acceptor(|_| {})).await;
    let tokens = kdc.tokens("alice", &kdc.spn("http"), Mech::Spnego, 2);
    assert_eq!(
        status_of(&kedge, "/ews/", Some(&negotiate(&tokens[0]))).await,
        403
    );
    assert_eq!(
        status_of(&kedge, "/open/", Some(&negotiate(&tokens[1]))).await,
        200
    );
    assert_eq!(backend.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_of_realms_not_allowed_are_refused() {
    let kdc = Kdc::shared();
    let tokens = kdc.tokens("alice", &kdc.spn("http"), Mech::Spnego, 3);
    // Default: the configured realm only.
    let (own, _b1) = http_edge(ASSERT_ROUTE, acceptor(|_| {})).await;
    assert_eq!(status_of(&own, "/", Some(&negotiate(&tokens[0]))).await, 200);
    // A list that names only a trusted realm leaves out the own one.
    let only_trusted = acceptor(|c| c.client_realms = vec!["TRUSTED.TEST".into()]);
    let (elsewhere, backend) = http_edge(ASSERT_ROUTE, only_trusted).await;
    let before = metric(
        "kedge_auth_total",
        &[("protocol", "http"), ("reason", "client_realm_not_allowed")],
    );
    assert_eq!(
        status_of(&elsewhere, "/", Some(&negotiate(&tokens[1]))).await,
        401
    );
    assert!(
        metric(
            "kedge_auth_total",
            &[("protocol", "http"), ("reason", "client_realm_not_allowed")]
        ) > before
    );
    assert!(backend.seen().is_empty());
    // Listing both, case-insensitively, lets the own realm's users in again.
    let both = acceptor(|c| c.client_realms = vec!["trusted.test".into(), REALM.to_ascii_lowercase()]);
    let (listed, _b3) = http_edge(ASSERT_ROUTE, both).await;
    assert_eq!(status_of(&listed, "/", Some(&negotiate(&tokens[2]))).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_bearer_tokens_pass_only_where_a_route_says_so() {
    let routes = r#"
[[routes]]
prefix = "/"
pool = "cas"
[[routes]]
prefix = "/ews/"
pool = "cas"
bearer = "passthrough"
[[routes]]
prefix = "/owa/"
pool = "cas"
anonymous = true
"#;
    let (kedge, backend) = http_edge(routes, Arc::new(fake::FakeAuth::default())).await;
    let bearer = "Bearer eyJ0eXAiOiJKV1QifQ.e30.c2ln";
    assert_eq!(status_of(&kedge, "/ews/Exchange.asmx", Some(bearer)).await, 200);
    assert_eq!(status_of(&kedge, "/mapi/emsmdb", Some(bearer)).await, 401);
    assert_eq!(status_of(&kedge, "/owa/auth/logon.aspx", Some(bearer)).await, 200);
    let mut c = Conn::plain(kedge.addr).await;
    let r = bounded("challenge", c.get("/ews/Exchange.asmx", &[])).await;
    assert_eq!(
        r.all("www-authenticate"),
        vec!["Negotiate", "Bearer authorization_uri=\"\""]
    );
    let seen = backend.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].headers.get("authorization").unwrap(), bearer);
    assert!(
        seen[1].headers.get("authorization").is_none(),
        "stripped on the anonymous route"
    );
}
