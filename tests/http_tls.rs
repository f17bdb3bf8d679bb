//! TLS on both sides: the listener with a test CA (ALPN `http/1.1` only), the channel binding
//! of its certificate handed to the validator, and HTTPS backends with a configured CA and SNI.

mod http_common;

use std::sync::Arc;

use http_common::backend::TestBackend;
use http_common::client::{tls_connector, Conn};
use http_common::fake::{self, FakeAuth};
use http_common::kedge::{start, PoolSpec, PASSTHROUGH};
use http_common::{bounded, pki};
use kedge::edge::http::ServerTls;
use kedge::pool::BackendTlsConfig;
use rustls::pki_types::ServerName;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn server_tls(p: &pki::TestPki) -> ServerTls {
    ServerTls::from_pem(p.cert_pem.as_bytes(), p.key_pem.as_bytes()).expect("server tls")
}

#[tokio::test]
async fn tls_listener_serves_with_the_test_ca_and_offers_only_http11() {
    let p = pki::generate();
    let backend = TestBackend::start().await;
    let auth = Arc::new(FakeAuth::default());
    let kedge = start(
        PASSTHROUGH,
        vec![PoolSpec::plain("cas", backend.addr)],
        auth,
        Some(server_tls(&p)),
    )
    .await;

    // A client offering h2 first still gets http/1.1.
    let stream = TcpStream::connect(kedge.addr).await.unwrap();
    let tls = tls_connector(&p.ca_pem, &[b"h2", b"http/1.1"])
        .connect(ServerName::try_from("outlook.contoso.com").unwrap(), stream)
        .await
        .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    drop(tls);

    let mut c = Conn::tls(kedge.addr, &p.ca_pem, "outlook.contoso.com").await;
    let r = bounded("anon", c.get("/owa/healthcheck.htm", &[])).await;
    assert_eq!(r.status, 200);
    let r = bounded("401", c.get("/mapi/", &[])).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.all("www-authenticate"), vec!["Negotiate"]);
    let seen = backend.seen();
    assert_eq!(seen[0].headers.get("x-forwarded-proto").unwrap(), "https");
}

#[tokio::test]
async fn the_validator_gets_the_channel_binding_of_the_listener_certificate() {
    let p = pki::generate();
    let backend = TestBackend::start().await;
    let auth = Arc::new(FakeAuth::default());
    let kedge = start(
        PASSTHROUGH,
        vec![PoolSpec::plain("cas", backend.addr)],
        auth.clone(),
        Some(server_tls(&p)),
    )
    .await;
    let mut c = Conn::tls(kedge.addr, &p.ca_pem, "outlook.contoso.com").await;
    assert_eq!(
        bounded(
            "auth",
            c.get("/", &[("authorization", &fake::header("alice", ""))])
        )
        .await
        .status,
        200
    );
    let mut want = b"tls-server-end-point:".to_vec();
    want.extend_from_slice(&Sha256::digest(&p.cert_der));
    assert_eq!(auth.bindings.lock().unwrap().as_slice(), &[Some(want)]);
}

#[tokio::test]
async fn plain_http_listener_gives_no_channel_binding() {
    let backend = TestBackend::start().await;
    let auth = Arc::new(FakeAuth::default());
    let kedge = start(
        PASSTHROUGH,
        vec![PoolSpec::plain("cas", backend.addr)],
        auth.clone(),
        None,
    )
    .await;
    let mut c = Conn::plain(kedge.addr).await;
    assert_eq!(
        bounded(
            "auth",
            c.get("/", &[("authorization", &fake::header("alice", ""))])
        )
        .await
        .status,
        200
    );
    assert_eq!(auth.bindings.lock().unwrap().as_slice(), &[None]);
}

#[tokio::test]
async fn plaintext_on_the_tls_port_is_closed_without_a_reply() {
    let p = pki::generate();
    let backend = TestBackend::start().await;
    let kedge = start(
        PASSTHROUGH,
        vec![PoolSpec::plain("cas", backend.addr)],
        Arc::new(FakeAuth::default()),
        Some(server_tls(&p)),
    )
    .await;
    let mut s = TcpStream::connect(kedge.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    let _ = bounded("close", s.read_to_end(&mut out)).await;
    assert!(!out.starts_with(b"HTTP/"), "no plaintext reply on a TLS port");
    assert_eq!(backend.seen().len(), 0);
}

#[tokio::test]
async fn https_backends_are_verified_against_the_configured_ca_with_sni() {
    let p = pki::generate();
    let backend = TestBackend::start_tls(&p.cert_pem, &p.key_pem).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &p.ca_pem).unwrap();
    let pool = PoolSpec {
        name: "cas",
        addr: backend.addr,
        tls: Some(BackendTlsConfig {
            ca: ca.display().to_string(),
            sni: Some("outlook.contoso.com".into()),
        }),
    };
    let kedge = start(PASSTHROUGH, vec![pool], Arc::new(FakeAuth::default()), None).await;
    let mut c = Conn::plain(kedge.addr).await;
    let r = bounded(
        "auth",
        c.get("/ews/", &[("authorization", &fake::header("alice", ""))]),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "conn=1 owner=alice@KEDGE.TEST path=/ews/");

    // A backend whose certificate the CA did not sign is a 502, never a silent plaintext retry.
    let other = pki::generate();
    let rogue = TestBackend::start_tls(&other.cert_pem, &other.key_pem).await;
    let pool = PoolSpec {
        name: "cas",
        addr: rogue.addr,
        tls: Some(BackendTlsConfig {
            ca: ca.display().to_string(),
            sni: Some("outlook.contoso.com".into()),
        }),
    };
    let kedge = start(PASSTHROUGH, vec![pool], Arc::new(FakeAuth::default()), None).await;
    let mut c = Conn::plain(kedge.addr).await;
    assert_eq!(
        bounded("rogue", c.get("/owa/healthcheck.htm", &[])).await.status,
        502
    );
    assert_eq!(rogue.seen().len(), 0);
}
