//! A TLS listener's certificates: chosen by SNI (the default for clients without it), swapped
//! whole by a reload — SIGHUP's path and the file watch, an atomic rename and a Kubernetes Secret
//! symlink swap — so the next client gets the new one, a bad replacement refused, kept out and
//! counted once, the expiry gauge, and failed handshakes counted by reason.

mod http_common;
mod kedge_process;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http_common::backend::TestBackend;
use http_common::client::{self, Conn};
use http_common::fake::{self, FakeAuth};
use http_common::kedge::{start, Kedge, PoolSpec};
use http_common::pki::{TestCa, TestPki};
use http_common::{bounded, BOUND};
use kedge::config::TlsConfig;
use kedge::edge::http::{ServerTls, TlsError};
use rustls::pki_types::ServerName;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const MAIL: &str = "mail.contoso.com";
const AUTODISCOVER: &str = "autodiscover.contoso.com";

/// A directory of certificate files signed by one test CA.
struct Site {
    dir: tempfile::TempDir,
    ca: TestCa,
}

impl Site {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            ca: TestCa::new(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `<stem>.pem` and `<stem>.key`, each renamed into place (as certbot and
    /// cert-manager do), the key first.
    fn install(&self, stem: &str, pki: &TestPki) {
        for (ext, text) in [("key", &pki.key_pem), ("pem", &pki.cert_pem)] {
            let tmp = self.path(&format!(".{stem}.{ext}.tmp"));
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, self.path(&format!("{stem}.{ext}"))).unwrap();
        }
    }

    /// `[http.tls]` over the installed `stems`: the first as `cert`/`key` (the default), the
    /// others as `[[certificates]]`.
    fn config(&self, stems: &[&str]) -> TlsConfig {
        let file = |stem: &str, ext: &str| self.path(&format!("{stem}.{ext}")).display().to_string();
        let mut text = format!(
            "cert = {:?}\nkey = {:?}\npoll_secs = 3600\n",
            file(stems[0], "pem"),
            file(stems[0], "key")
        );
        for s in &stems[1..] {
            text.push_str(&format!(
                "[[certificates]]\ncert = {:?}\nkey = {:?}\n",
                file(s, "pem"),
                file(s, "key")
            ));
        }
        toml::from_str(&text).expect("tls config")
    }
}

/// A listener `name` serving `tls` (head timeout `header_ms`) in front of one backend.
async fn listener(name: &str, tls: ServerTls, header_ms: u64) -> (Kedge, Arc<FakeAuth>, TestBackend) {
    let backend = TestBackend::start().await;
    let auth = Arc::new(FakeAuth::default());
    let toml = format!(
        "name = {name:?}\nlimits = {{ header_timeout_ms = {header_ms} }}\n[[routes]]\nprefix = \"/\"\npool = \"cas\"\n"
    );
    let kedge = start(
        &toml,
        vec![PoolSpec::plain("cas", backend.addr)],
        auth.clone(),
        Some(tls),
    )
    .await;
    (kedge, auth, backend)
}

fn client_config(ca_pem: &str, sni: bool) -> Arc<rustls::ClientConfig> {
    let mut cfg = client::client_config(ca_pem);
    cfg.enable_sni = sni;
    Arc::new(cfg)
}

/// The leaf certificate (DER) a new client asking for `name` is served; with `sni` false the
/// client sends no SNI (and still checks the certificate against `name`).
async fn served(kedge: &Kedge, ca_pem: &str, name: &str, sni: bool) -> Vec<u8> {
    let stream = TcpStream::connect(kedge.addr).await.unwrap();
    let tls = bounded(
        "handshake",
        tokio_rustls::TlsConnector::from(client_config(ca_pem, sni))
            .connect(ServerName::try_from(name.to_string()).unwrap(), stream),
    )
    .await
    .expect("TLS handshake");
    tls.get_ref().1.peer_certificates().expect("a certificate")[0].to_vec()
}

/// Waits (within `BOUND`) until new clients asking for `name` get `want`.
async fn until_served(kedge: &Kedge, ca_pem: &str, name: &str, want: &[u8]) {
    let deadline = Instant::now() + BOUND;
    while served(kedge, ca_pem, name, true).await != want {
        assert!(
            Instant::now() < deadline,
            "still the old certificate after {BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sum of the samples of metric `name` (kedge's in-process recorder) with every label pair.
fn metric(name: &str, labels: &[(&str, &str)]) -> f64 {
    kedge_process::sample_sum(&kedge::observe::render(), name, labels)
}

/// Waits (within `BOUND`) until metric `name` with `labels` reaches `want`.
async fn until_metric(name: &str, labels: &[(&str, &str)], want: f64) {
    let deadline = Instant::now() + BOUND;
    while metric(name, labels) != want {
        assert!(
            Instant::now() < deadline,
            "{name}{labels:?} = {}, not {want}",
            metric(name, labels)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn binding_of(der: &[u8]) -> Vec<u8> {
    let mut want = b"tls-server-end-point:".to_vec();
    want.extend_from_slice(&Sha256::digest(der));
    want
}

#[tokio::test]
async fn sni_picks_each_names_certificate_and_the_default_without_sni() {
    kedge::observe::install();
    let site = Site::new();
    let (mail, autodiscover) = (site.ca.leaf(&[MAIL]), site.ca.leaf(&[AUTODISCOVER]));
    site.install("mail", &mail);
    site.install("autodiscover", &autodiscover);
    let tls = ServerTls::load("sni", &site.config(&["mail", "autodiscover"])).expect("load");
    let (kedge, auth, _backend) = listener("sni", tls, 10_000).await;
    let ca = &mail.ca_pem;

    assert_eq!(served(&kedge, ca, MAIL, true).await, mail.cert_der);
    assert_eq!(
        served(&kedge, ca, AUTODISCOVER, true).await,
        autodiscover.cert_der
    );
    assert_eq!(
        served(&kedge, ca, MAIL, false).await,
        mail.cert_der,
        "no SNI: the default certificate"
    );

    // The validator gets the channel binding of the certificate the connection was served.
    for (name, pki) in [(AUTODISCOVER, &autodiscover), (MAIL, &mail)] {
        let mut c = Conn::tls(kedge.addr, ca, name).await;
        let r = bounded(
            "auth",
            c.get("/", &[("authorization", &fake::header("alice", ""))]),
        )
        .await;
        assert_eq!(r.status, 200);
        let last = auth.bindings.lock().unwrap().last().cloned().flatten();
        assert_eq!(last, Some(binding_of(&pki.cert_der)), "{name}");
    }
}

#[tokio::test]
async fn a_reload_serves_the_new_certificate_to_the_next_client_and_keeps_open_connections() {
    kedge::observe::install();
    let site = Site::new();
    let old = site.ca.leaf(&[MAIL]);
    site.install("mail", &old);
    let tls = ServerTls::load("swap", &site.config(&["mail"])).expect("load");
    let (kedge, _auth, _backend) = listener("swap", tls.clone(), 10_000).await;
    let mut open = Conn::tls(kedge.addr, &old.ca_pem, MAIL).await;
    assert_eq!(served(&kedge, &old.ca_pem, MAIL, true).await, old.cert_der);
    assert!(!tls.reload().expect("unchanged files"), "nothing new to install");

    let before = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let new = site.ca.leaf(&[MAIL]);
    site.install("mail", &new);
    assert!(tls.reload().expect("new files"), "installed");
    assert_eq!(served(&kedge, &new.ca_pem, MAIL, true).await, new.cert_der);
    assert_eq!(
        metric(
            "kedge_tls_reloads_total",
            &[("listener", "swap"), ("result", "ok")]
        ),
        1.0
    );
    assert!(metric("kedge_last_reload_timestamp_seconds", &[("what", "tls")]) >= before.floor());
    // A connection made before the swap goes on.
    assert_eq!(
        bounded("open connection", open.get("/owa/", &[])).await.status,
        401
    );
}

#[tokio::test]
async fn a_bad_replacement_keeps_the_old_certificate_and_is_counted_once() {
    kedge::observe::install();
    let site = Site::new();
    let good = site.ca.leaf(&[MAIL]);
    site.install("mail", &good);
    let tls = ServerTls::load("refuse", &site.config(&["mail"])).expect("load");
    let (kedge, _auth, _backend) = listener("refuse", tls.clone(), 10_000).await;
    let rejected = || {
        metric(
            "kedge_tls_reloads_total",
            &[("listener", "refuse"), ("result", "rejected")],
        )
    };
    assert_eq!(rejected(), 0.0, "the series exists from the start");

    // The new certificate with another certificate's key.
    let other = site.ca.leaf(&[MAIL]);
    let mismatched = TestPki {
        key_pem: other.key_pem.clone(),
        ..site.ca.leaf(&[MAIL])
    };
    site.install("mail", &mismatched);
    let e = tls.reload().unwrap_err();
    assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e}");
    assert_eq!(served(&kedge, &good.ca_pem, MAIL, true).await, good.cert_der);
    assert_eq!(rejected(), 1.0);
    // The same refused files are not counted again on the next look.
    assert!(!tls.reload().expect("already refused"));
    assert_eq!(rejected(), 1.0);

    // An expired certificate, then one not valid yet, then garbage.
    site.install("mail", &site.ca.leaf_valid(&[MAIL], (2020, 1, 1), (2021, 1, 1)));
    let e = tls.reload().unwrap_err();
    assert!(
        e.to_string()
            .contains("certificate expired at 2021-01-01T00:00:00Z"),
        "{e}"
    );
    site.install("mail", &site.ca.leaf_valid(&[MAIL], (2099, 1, 1), (2100, 1, 1)));
    assert!(matches!(tls.reload().unwrap_err(), TlsError::NotYetValid { .. }));
    std::fs::write(site.path("mail.pem"), "not a certificate\n").unwrap();
    assert!(matches!(tls.reload().unwrap_err(), TlsError::NoCertificate(_)));
    assert_eq!(rejected(), 4.0);
    assert_eq!(served(&kedge, &good.ca_pem, MAIL, true).await, good.cert_der);

    // A good one afterwards is installed.
    let renewed = site.ca.leaf(&[MAIL]);
    site.install("mail", &renewed);
    assert!(tls.reload().expect("good files"));
    assert_eq!(
        served(&kedge, &renewed.ca_pem, MAIL, true).await,
        renewed.cert_der
    );
}

#[tokio::test]
async fn the_file_watch_installs_a_certificate_renamed_into_place_without_a_signal() {
    kedge::observe::install();
    let site = Site::new();
    let old = site.ca.leaf(&[MAIL]);
    site.install("mail", &old);
    // Polling once an hour: only file events can make this reload happen in time.
    let tls = ServerTls::load("watch", &site.config(&["mail"])).expect("load");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let watch = tokio::spawn(tls.clone().watch(stopped));
    let (kedge, _auth, _backend) = listener("watch", tls, 10_000).await;
    assert_eq!(served(&kedge, &old.ca_pem, MAIL, true).await, old.cert_der);

    let new = site.ca.leaf(&[MAIL]);
    site.install("mail", &new);
    until_served(&kedge, &new.ca_pem, MAIL, &new.cert_der).await;
    until_metric(
        "kedge_tls_reloads_total",
        &[("listener", "watch"), ("result", "ok")],
        1.0,
    )
    .await;
    let _ = stop.send(());
    bounded("watch stops", watch).await.unwrap();
}

/// A Kubernetes Secret volume: `tls.crt -> ..data/tls.crt`, `..data -> ..<timestamp>`; an
/// update writes a new timestamped directory and swaps the `..data` symlink atomically.
#[tokio::test]
async fn the_file_watch_follows_a_kubernetes_secret_symlink_swap() {
    kedge::observe::install();
    let site = Site::new();
    let write_version = |v: &str, pki: &TestPki| {
        let d = site.path(v);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("tls.crt"), &pki.cert_pem).unwrap();
        std::fs::write(d.join("tls.key"), &pki.key_pem).unwrap();
        std::os::unix::fs::symlink(v, site.path("..data_tmp")).unwrap();
        std::fs::rename(site.path("..data_tmp"), site.path("..data")).unwrap();
    };
    let old = site.ca.leaf(&[MAIL]);
    write_version("..2026_11_29_01", &old);
    for f in ["tls.crt", "tls.key"] {
        std::os::unix::fs::symlink(format!("..data/{f}"), site.path(f)).unwrap();
    }
    let cfg: TlsConfig = toml::from_str(&format!(
        "cert = {:?}\nkey = {:?}\npoll_secs = 3600\n",
        site.path("tls.crt").display().to_string(),
        site.path("tls.key").display().to_string()
    ))
    .unwrap();
    let tls = ServerTls::load("k8s", &cfg).expect("load");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let watch = tokio::spawn(tls.clone().watch(stopped));
    let (kedge, _auth, _backend) = listener("k8s", tls, 10_000).await;
    assert_eq!(served(&kedge, &old.ca_pem, MAIL, true).await, old.cert_der);

    let new = site.ca.leaf(&[MAIL]);
    write_version("..2026_11_29_02", &new);
    until_served(&kedge, &new.ca_pem, MAIL, &new.cert_der).await;
    let _ = stop.send(());
    bounded("watch stops", watch).await.unwrap();
}

#[tokio::test]
async fn the_expiry_gauge_is_each_certificates_not_after() {
    kedge::observe::install();
    let site = Site::new();
    site.install("mail", &site.ca.leaf_valid(&[MAIL], (2024, 1, 1), (2031, 6, 30)));
    site.install(
        "autodiscover",
        &site.ca.leaf_valid(&[AUTODISCOVER], (2024, 1, 1), (2032, 1, 1)),
    );
    let _tls = ServerTls::load("expiry", &site.config(&["mail", "autodiscover"])).expect("load");
    let gauge = |name| {
        metric(
            "kedge_tls_certificate_expiry_timestamp_seconds",
            &[("listener", "expiry"), ("name", name)],
        )
    };
    assert_eq!(gauge(MAIL), 1_940_544_000.0, "2031-06-30T00:00:00Z");
    assert_eq!(gauge(AUTODISCOVER), 1_956_528_000.0, "2032-01-01T00:00:00Z");
}

#[tokio::test]
async fn failed_handshakes_are_counted_by_reason() {
    kedge::observe::install();
    let site = Site::new();
    let mail = site.ca.leaf(&[MAIL]);
    site.install("mail", &mail);
    let tls = ServerTls::load("hostile", &site.config(&["mail"])).expect("load");
    let (kedge, _auth, backend) = listener("hostile", tls, 500).await;
    let failures = |reason| {
        metric(
            "kedge_tls_handshake_failures_total",
            &[("listener", "hostile"), ("reason", reason)],
        )
    };

    // Garbage instead of a ClientHello, and plaintext HTTP on the TLS port.
    for bytes in [&[0x42u8; 64][..], b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"] {
        let mut s = TcpStream::connect(kedge.addr).await.unwrap();
        s.write_all(bytes).await.unwrap();
        let _ = bounded(
            "close",
            tokio::io::AsyncReadExt::read_to_end(&mut s, &mut Vec::new()),
        )
        .await;
    }
    until_metric(
        "kedge_tls_handshake_failures_total",
        &[("listener", "hostile"), ("reason", "malformed")],
        2.0,
    )
    .await;

    // A client asking for a name kedge's certificate does not cover refuses it (alert
    // bad_certificate), as after a renewal that dropped a name.
    let stream = TcpStream::connect(kedge.addr).await.unwrap();
    let refused = tokio_rustls::TlsConnector::from(client_config(&mail.ca_pem, true))
        .connect(ServerName::try_from("legacy.contoso.com").unwrap(), stream)
        .await;
    assert!(refused.is_err());
    until_metric(
        "kedge_tls_handshake_failures_total",
        &[("listener", "hostile"), ("reason", "certificate_rejected")],
        1.0,
    )
    .await;

    // A client that connects and says nothing, past the head timeout; one that hangs up.
    let silent = TcpStream::connect(kedge.addr).await.unwrap();
    until_metric(
        "kedge_tls_handshake_failures_total",
        &[("listener", "hostile"), ("reason", "timeout")],
        1.0,
    )
    .await;
    drop(silent);
    let mut s = TcpStream::connect(kedge.addr).await.unwrap();
    s.write_all(&[0x16, 0x03, 0x01, 0x00, 0x80]).await.unwrap();
    drop(s);
    until_metric(
        "kedge_tls_handshake_failures_total",
        &[("listener", "hostile"), ("reason", "io")],
        1.0,
    )
    .await;
    assert_eq!(failures("protocol"), 0.0);
    assert_eq!(backend.seen().len(), 0);
}
