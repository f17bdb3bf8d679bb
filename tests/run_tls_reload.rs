//! `kedge run` with an HTTPS listener as an operator renews its certificate: new files put in
//! place where no file event reaches kedge, then SIGHUP — the next TLS client gets the new
//! certificate; a bad one on SIGHUP is refused and the old one stays; files renamed into place
//! are picked up without a signal. The live scrape with the TLS and process metrics passes
//! `promtool check metrics`.

mod kedge_process;

#[allow(dead_code)]
#[path = "http_common/pki.rs"]
mod pki;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kedge::krb::crypto::{EncType, Key};
use kedge::krb::keytab::{Keytab, KeytabEntry};
use kedge::krb::principal::Principal;
use kedge_process::{backend, get, metric, promtool_check_metrics, start, terminate};
use pki::{TestCa, TestPki};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

const MAIL: &str = "mail.contoso.com";

/// The leaf certificate (DER) a new TLS client asking for `name` gets from `addr`.
fn served(addr: SocketAddr, ca_pem: &str, name: &str) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut conn =
        rustls::ClientConnection::new(Arc::new(cfg), ServerName::try_from(name.to_string()).unwrap())
            .unwrap();
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).expect("TLS handshake");
    }
    conn.peer_certificates().expect("a certificate")[0].to_vec()
}

/// Sends SIGHUP and waits (20 s at most) until `kedge_last_reload_timestamp_seconds{what=
/// "config"}` moves: the reload, TLS included, has run.
fn hup_and_wait(k: &kedge_process::Running) {
    let before = metric(k.admin, "kedge_config_reloads_total", &[]);
    let ok = Command::new("kill")
        .args(["-HUP", &k.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(k.admin, "kedge_config_reloads_total", &[]) == before {
        assert!(Instant::now() < deadline, "no reload within 20 s of SIGHUP");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes the certificate and key into a new directory `dir/<version>` and points the
/// `dir/live` symlink at it: the files kedge watches (`live/mail.pem`) change without any event
/// in the directory it watches — as when an operator swaps a directory symlink — so only
/// SIGHUP (or the hourly poll) can pick them up.
fn publish(dir: &Path, version: &str, pki: &TestPki) {
    let d = dir.join(version);
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("mail.pem"), &pki.cert_pem).unwrap();
    std::fs::write(d.join("mail.key"), &pki.key_pem).unwrap();
    std::os::unix::fs::symlink(version, dir.join("live.tmp")).unwrap();
    std::fs::rename(dir.join("live.tmp"), dir.join("live")).unwrap();
}

/// A config whose HTTPS listener serves `<certs>/mail.pem` and `mail.key`.
fn config(dir: &Path, certs: &Path) -> String {
    let key = Key::random(EncType::Aes256CtsHmacSha196);
    let kt = Keytab {
        entries: vec![KeytabEntry {
            principal: Principal::parse(&format!("http/{MAIL}@CONTOSO.COM"), "").unwrap(),
            timestamp: 0,
            kvno: 2,
            key,
        }],
        skipped_unsupported: 0,
    };
    let kt_path = dir.join("asa.keytab");
    std::fs::write(&kt_path, kt.to_bytes()).unwrap();
    std::fs::set_permissions(&kt_path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    format!(
        r#"[kerberos]
keytab = "{kt}"
realm = "CONTOSO.COM"
array = ["{MAIL}"]

[admin]
listen = "127.0.0.1:0"

[[http]]
name = "https"
listen = "127.0.0.1:0"
routes = [{{ prefix = "/", pool = "web" }}]
[http.tls]
cert = "{certs}/mail.pem"
key = "{certs}/mail.key"
poll_secs = "1h"

[members.cas1]
address = "127.0.0.1"
ports = {{ http = {port} }}

[pools.web]
members = ["cas1"]
port = "http"
"#,
        kt = kt_path.display(),
        certs = certs.display(),
        port = backend("cas1").port(),
    )
}

#[test]
fn a_certificate_swapped_under_kedge_run_is_served_after_sighup_and_a_bad_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let old = ca.leaf(&[MAIL]);
    publish(dir.path(), "v1", &old);
    let cfg_path = dir.path().join("kedge.toml");
    std::fs::write(&cfg_path, config(dir.path(), &dir.path().join("live"))).unwrap();
    let k = start(&cfg_path);
    assert_eq!(served(k.http, &old.ca_pem, MAIL), old.cert_der);
    let loaded_at = metric(k.admin, "kedge_last_reload_timestamp_seconds", &[("what", "tls")]);
    assert!(loaded_at > 1.7e9, "the start counts as a load: {loaded_at}");

    // Renewed: the next client gets the new certificate.
    let new = ca.leaf(&[MAIL]);
    publish(dir.path(), "v2", &new);
    std::thread::sleep(Duration::from_millis(1100)); // the timestamp has whole-second steps
    hup_and_wait(&k);
    assert_eq!(served(k.http, &new.ca_pem, MAIL), new.cert_der);
    assert_eq!(
        metric(
            k.admin,
            "kedge_tls_reloads_total",
            &[("listener", "https"), ("result", "ok")]
        ),
        1.0
    );
    assert!(metric(k.admin, "kedge_last_reload_timestamp_seconds", &[("what", "tls")]) > loaded_at);

    // A certificate with another certificate's key: refused, the renewed one stays.
    let mismatched = TestPki {
        key_pem: ca.leaf(&[MAIL]).key_pem,
        ..ca.leaf(&[MAIL])
    };
    publish(dir.path(), "v3", &mismatched);
    hup_and_wait(&k);
    assert_eq!(served(k.http, &new.ca_pem, MAIL,), new.cert_der);
    assert_eq!(
        metric(
            k.admin,
            "kedge_tls_reloads_total",
            &[("listener", "https"), ("result", "rejected")]
        ),
        1.0
    );
    terminate(k);
}

/// A certificate replaced by one of another name no longer reports an expiry (it reads NaN,
/// which no alert threshold matches): the dashboard and alerts follow what is served.
#[test]
fn a_certificate_no_longer_served_stops_reporting_its_expiry() {
    const OWA: &str = "owa.contoso.com";
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    publish(dir.path(), "v1", &ca.leaf(&[MAIL]));
    let cfg_path = dir.path().join("kedge.toml");
    std::fs::write(&cfg_path, config(dir.path(), &dir.path().join("live"))).unwrap();
    let k = start(&cfg_path);
    let expiry = |name: &str| {
        metric(
            k.admin,
            "kedge_tls_certificate_expiry_timestamp_seconds",
            &[("listener", "https"), ("name", name)],
        )
    };
    assert_eq!(expiry(MAIL), 4_102_444_800.0);
    let owa = ca.leaf(&[OWA]);
    publish(dir.path(), "v2", &owa);
    std::thread::sleep(Duration::from_millis(1100)); // the timestamp has whole-second steps
    hup_and_wait(&k);
    assert_eq!(served(k.http, &owa.ca_pem, OWA), owa.cert_der);
    assert_eq!(expiry(OWA), 4_102_444_800.0);
    assert!(
        expiry(MAIL).is_nan(),
        "the retired certificate reads {}",
        expiry(MAIL)
    );
    let (_, scrape) = get(k.admin, "/metrics", None);
    promtool_check_metrics(&scrape);
    terminate(k);
}

#[test]
fn a_certificate_renamed_into_place_is_served_without_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("tls");
    std::fs::create_dir(&certs).unwrap();
    let put = |pki: &TestPki| {
        for (name, text) in [("mail.key", &pki.key_pem), ("mail.pem", &pki.cert_pem)] {
            std::fs::write(certs.join(".tmp"), text).unwrap();
            std::fs::rename(certs.join(".tmp"), certs.join(name)).unwrap();
        }
    };
    let ca = TestCa::new();
    let old = ca.leaf(&[MAIL]);
    put(&old);
    let cfg_path = dir.path().join("kedge.toml");
    std::fs::write(&cfg_path, config(dir.path(), &certs)).unwrap();
    let k = start(&cfg_path);
    assert_eq!(served(k.http, &old.ca_pem, MAIL), old.cert_der);

    // Polling is hourly: only the file watch can make this happen in time.
    let new = ca.leaf(&[MAIL]);
    put(&new);
    let deadline = Instant::now() + Duration::from_secs(20);
    while served(k.http, &new.ca_pem, MAIL) != new.cert_der {
        assert!(
            Instant::now() < deadline,
            "the renamed certificate was not served within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    terminate(k);
}

/// The live scrape after TLS handshakes, a refused one and a reload: the TLS metrics and the
/// process metrics are there, and `promtool check metrics` finds nothing to say.
#[test]
fn a_live_scrape_with_tls_and_process_metrics_passes_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let cert = ca.leaf(&[MAIL]);
    publish(dir.path(), "v1", &cert);
    let cfg_path = dir.path().join("kedge.toml");
    std::fs::write(&cfg_path, config(dir.path(), &dir.path().join("live"))).unwrap();
    let k = start(&cfg_path);
    assert_eq!(served(k.http, &cert.ca_pem, MAIL), cert.cert_der);
    let mut s = TcpStream::connect(k.http).unwrap();
    s.write_all(&[0x42; 64]).unwrap();
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(
        k.admin,
        "kedge_tls_handshake_failures_total",
        &[("reason", "malformed")],
    ) < 1.0
    {
        assert!(Instant::now() < deadline, "garbage handshake not counted");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, scrape) = get(k.admin, "/metrics", None);
    assert_eq!(code, 200);
    for name in [
        "kedge_tls_certificate_expiry_timestamp_seconds",
        "kedge_tls_reloads_total",
        "kedge_tls_handshake_failures_total",
        "kedge_last_reload_timestamp_seconds",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_threads",
        "process_start_time_seconds",
    ] {
        assert!(
            scrape.lines().any(|l| l.starts_with(name)),
            "{name} missing from the scrape"
        );
    }
    assert!(metric(k.admin, "process_resident_memory_bytes", &[]) > 0.0);
    assert_eq!(
        metric(
            k.admin,
            "kedge_tls_certificate_expiry_timestamp_seconds",
            &[("listener", "https"), ("name", MAIL)]
        ),
        4_102_444_800.0,
        "2100-01-01T00:00:00Z"
    );
    promtool_check_metrics(&scrape);
    terminate(k);
}
