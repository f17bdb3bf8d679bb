//! TLS pools: health checks over HTTPS, and the client config handed to the edge.

mod pool_support;

use std::collections::BTreeMap;
use std::sync::Arc;

use kedge::pool::{BackendTlsConfig, HealthKind, Pool};
use pool_support::*;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

struct TlsBackend {
    port: u16,
    ca_pem: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An HTTPS server for `cas.contoso.test` whose every path answers 200.
async fn tls_backend() -> TlsBackend {
    let ck = rcgen::generate_simple_self_signed(vec!["cas.contoso.test".to_owned()]).unwrap();
    let cert = CertificateDer::from(ck.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
                let _ = s.shutdown().await;
            });
        }
    });
    TlsBackend {
        port,
        ca_pem: ck.cert.pem(),
        task,
    }
}

fn tls_pool(port: u16, ca_pem: &str, dir: &tempfile::TempDir) -> Pool {
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let members = BTreeMap::from([("cas1".to_owned(), member(port, 100))]);
    let mut cfg = pool_config(&["cas1"], health(HealthKind::Http, 1, 1, 1_000));
    cfg.tls = Some(BackendTlsConfig {
        ca: ca.display().to_string(),
        sni: Some("cas.contoso.test".into()),
    });
    Pool::new("owa", &cfg, &members).unwrap()
}

#[tokio::test]
async fn https_health_check_passes_with_the_configured_ca() {
    let backend = tls_backend().await;
    let dir = tempfile::tempdir().unwrap();
    let pool = tls_pool(backend.port, &backend.ca_pem, &dir);
    pool.check_now().await;
    let m = pool.member("cas1").unwrap();
    assert!(m.is_healthy(), "{:?}", m.last_error());
    assert!(m.health().is_checked());
}

#[tokio::test]
async fn https_health_check_fails_with_an_untrusted_certificate() {
    let backend = tls_backend().await;
    let other_ca = rcgen::generate_simple_self_signed(vec!["cas.contoso.test".to_owned()])
        .unwrap()
        .cert
        .pem();
    let dir = tempfile::tempdir().unwrap();
    let pool = tls_pool(backend.port, &other_ca, &dir);
    pool.check_now().await;
    let m = pool.member("cas1").unwrap();
    assert!(!m.is_healthy());
    assert!(m.last_error().unwrap().starts_with("tls"), "{:?}", m.last_error());
}

#[tokio::test]
async fn the_edge_can_layer_tls_on_a_pool_connection() {
    let backend = tls_backend().await;
    let dir = tempfile::tempdir().unwrap();
    let pool = tls_pool(backend.port, &backend.ca_pem, &dir);
    let (config, name) = pool.tls().expect("a TLS pool");
    assert_eq!(name, ServerName::try_from("cas.contoso.test").unwrap());
    assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
    let conn = pool.connect(Some("alice@CONTOSO.COM")).await.unwrap();
    let (config, name) = pool.tls_for(conn.lease.member()).unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, conn.stream)
        .await
        .unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\nHost: cas.contoso.test\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    tls.read_to_end(&mut reply).await.unwrap();
    assert!(reply.starts_with(b"HTTP/1.1 200"));
}

#[tokio::test]
async fn plain_pools_have_no_tls() {
    let b = Backend::start("cas1").await;
    let pool = Pool::new(
        "mdb",
        &pool_config(&["cas1"], health(HealthKind::Tcp, 1, 1, 1_000)),
        &table(&[&b]),
    )
    .unwrap();
    assert!(pool.tls().is_none());
}

#[tokio::test]
async fn a_missing_ca_file_is_a_config_error() {
    let members = BTreeMap::from([("cas1".to_owned(), member(closed_port(), 100))]);
    let mut cfg = pool_config(&["cas1"], health(HealthKind::Http, 1, 1, 1_000));
    cfg.tls = Some(BackendTlsConfig {
        ca: "/nonexistent/ca.pem".into(),
        sni: None,
    });
    let err = Pool::new("owa", &cfg, &members).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}
