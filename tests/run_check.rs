//! `kedge run --check` fails exactly where a start would, with the start's message: missing
//! certificates, keys and backend CAs, a keytab group or others may write, an HMAC key file
//! others may write, two listeners on one socket, a keytab of another realm, a replay store CA
//! file that is not there. A good config passes and says what it loaded.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kedge::krb::crypto::{EncType, Key};
use kedge::krb::keytab::{Keytab, KeytabEntry};
use kedge::krb::principal::Principal;

const KEDGE: &str = env!("CARGO_BIN_EXE_kedge");

#[allow(dead_code)]
#[path = "http_common/pki.rs"]
mod pki;

/// A scratch directory with a keytab of `realm` and a good config over it; tests break one
/// thing each.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(realm: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let kt = Keytab {
            entries: vec![KeytabEntry {
                principal: Principal::parse(&format!("http/outlook.contoso.com@{realm}"), "").unwrap(),
                timestamp: 0,
                kvno: 2,
                key: Key::random(EncType::Aes256CtsHmacSha196),
            }],
            skipped_unsupported: 0,
        };
        let site = Self { dir };
        let path = site.path("asa.keytab");
        std::fs::write(&path, kt.to_bytes()).unwrap();
        site.chmod("asa.keytab", 0o600);
        site
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn chmod(&self, name: &str, mode: u32) {
        std::fs::set_permissions(self.path(name), std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A config: `[kerberos]` for CONTOSO.COM, one HTTP listener on a free port with `route`,
    /// `extra` appended, one member and pool.
    fn config(&self, route: &str, extra: &str) -> PathBuf {
        let text = format!(
            r#"[kerberos]
keytab = "{kt}"
realm = "CONTOSO.COM"
array = ["outlook.contoso.com"]

[[http]]
name = "https"
listen = "127.0.0.1:0"
routes = [{route}]
{extra}
[members.cas1]
address = "127.0.0.1"
ports = {{ https = 9 }}

[pools.cas]
members = ["cas1"]
port = "https"
"#,
            kt = self.path("asa.keytab").display(),
        );
        let path = self.path("kedge.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

const ROUTE: &str = r#"{ prefix = "/", pool = "cas" }"#;

fn kedge(args: &[&str], config: &Path) -> Output {
    Command::new(KEDGE)
        .args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run kedge")
}

/// A real start of `config`, which must fail within a few seconds; its stderr.
fn failed_start(config: &Path) -> String {
    let mut child = Command::new(KEDGE)
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("kedge started although --check refuses the config");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `--check` fails, names `want` in a problem line (`error: …`, or a config problem indented
/// under its file), and a real start fails with the same problem text.
fn check_refuses_like_a_start(config: &Path, want: &str) {
    let out = kedge(&["run", "--check"], config);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "--check passed: {err}");
    let line = err
        .lines()
        .find(|l| (l.starts_with("error: ") || l.starts_with("  ")) && l.contains(want))
        .unwrap_or_else(|| panic!("no error line with {want:?} in:\n{err}"));
    let problem = line.trim().trim_start_matches("error: ");
    let start = failed_start(config);
    assert!(
        start.contains(problem),
        "a start says something else.\n--check: {problem}\nstart: {start}"
    );
}

#[test]
fn a_good_config_passes_and_says_what_it_loaded() {
    let site = Site::new("CONTOSO.COM");
    let out = kedge(&["run", "--check"], &site.config(ROUTE, ""));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("configuration is valid; keytab"), "{stdout}");
    assert!(stdout.contains("holds 1 keys"), "{stdout}");
}

#[test]
fn missing_certificate_and_key_files_fail_the_check() {
    let site = Site::new("CONTOSO.COM");
    let tls = format!(
        "tls = {{ cert = \"{}\", key = \"{}\" }}",
        site.path("missing.pem").display(),
        site.path("missing.key").display()
    );
    let config = site.config(ROUTE, &tls);
    // The tls line lands in the [[http]] table (it follows `routes`).
    check_refuses_like_a_start(&config, "missing.pem");
}

/// `tls = {...}` in the `[[http]]` table over `<stem>.pem` / `<stem>.key` written from `pki`,
/// the key taken from `key_of` when given (a mismatch).
fn tls_files(site: &Site, stem: &str, pki: &pki::TestPki, key_of: Option<&pki::TestPki>) -> String {
    std::fs::write(site.path(&format!("{stem}.pem")), &pki.cert_pem).unwrap();
    std::fs::write(site.path(&format!("{stem}.key")), &key_of.unwrap_or(pki).key_pem).unwrap();
    format!(
        "tls = {{ cert = \"{}\", key = \"{}\" }}",
        site.path(&format!("{stem}.pem")).display(),
        site.path(&format!("{stem}.key")).display()
    )
}

#[test]
fn a_key_that_is_not_the_certificates_fails_the_check() {
    let site = Site::new("CONTOSO.COM");
    let ca = pki::TestCa::new();
    let (a, b) = (
        ca.leaf(&["outlook.contoso.com"]),
        ca.leaf(&["outlook.contoso.com"]),
    );
    let tls = tls_files(&site, "swapped", &a, Some(&b));
    check_refuses_like_a_start(
        &site.config(ROUTE, &tls),
        "the private key is not the certificate's",
    );
}

#[test]
fn an_expired_or_expiring_certificate_is_a_warning_of_the_check() {
    let site = Site::new("CONTOSO.COM");
    let ca = pki::TestCa::new();
    let expired = ca.leaf_valid(&["outlook.contoso.com"], (2020, 1, 1), (2021, 1, 1));
    let tls = tls_files(&site, "expired", &expired, None);
    let out = kedge(&["run", "--check"], &site.config(ROUTE, &tls));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: http listener https: ")
            && err.contains("expired.pem: certificate expired at 2021-01-01T00:00:00Z"),
        "{err}"
    );
    // notAfter at midnight (UTC) five days from now: 4 whole days left.
    use chrono::Datelike;
    let soon = chrono::Utc::now() + chrono::Duration::days(5);
    let expiring = ca.leaf_valid(
        &["outlook.contoso.com"],
        (2020, 1, 1),
        (soon.year(), soon.month() as u8, soon.day() as u8),
    );
    let tls = tls_files(&site, "expiring", &expiring, None);
    let out = kedge(&["run", "--check"], &site.config(ROUTE, &tls));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("expiring.pem: certificate expires at") && err.contains("(in 4 days)"),
        "{err}"
    );
}

#[test]
fn a_missing_backend_ca_fails_the_check() {
    let site = Site::new("CONTOSO.COM");
    let config = site.config(ROUTE, "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "port = \"https\"\n",
        &format!(
            "port = \"https\"\ntls = {{ ca = \"{}\" }}\n",
            site.path("no-such-ca.pem").display()
        ),
    );
    std::fs::write(&config, text).unwrap();
    check_refuses_like_a_start(&config, "no-such-ca.pem");
}

#[test]
fn a_keytab_others_may_write_fails_the_check() {
    let site = Site::new("CONTOSO.COM");
    site.chmod("asa.keytab", 0o666);
    check_refuses_like_a_start(&site.config(ROUTE, ""), "asa.keytab");
}

#[test]
fn an_hmac_key_others_may_write_fails_the_check() {
    let site = Site::new("CONTOSO.COM");
    std::fs::write(site.path("hmac.key"), "secret\n").unwrap();
    site.chmod("hmac.key", 0o666);
    let route = format!(
        r#"{{ prefix = "/", pool = "cas", mode = "assert", assert = {{ signature_header = "X-Kedge-Signature", hmac_key_file = "{}" }} }}"#,
        site.path("hmac.key").display()
    );
    check_refuses_like_a_start(&site.config(&route, ""), "group or others may write");
}

#[test]
fn two_listeners_on_one_socket_fail_the_check() {
    let site = Site::new("CONTOSO.COM");
    let extra = "\n[admin]\nlisten = \"0.0.0.0:19443\"\n\n[[rpc]]\nname = \"mdb\"\nlisten = \"127.0.0.1:19443\"\npool = \"cas\"\n";
    check_refuses_like_a_start(
        &site.config(ROUTE, extra),
        "admin.listen: 0.0.0.0:19443 overlaps rpc[0].listen",
    );
}

#[test]
fn a_keytab_of_another_realm_fails_the_check() {
    let site = Site::new("FABRIKAM.COM");
    let out = kedge(&["run", "--check"], &site.config(ROUTE, ""));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("kerberos.realm: CONTOSO.COM but keytab") && err.contains("FABRIKAM.COM only"),
        "{err}"
    );
}

/// A shipped config with its `/etc/kedge` files made here (the ASA's keys for every SPN of its
/// array names, a certificate and key, the backend CA) and every listener on a free port.
fn shipped(name: &str, site: &Site) -> PathBuf {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config").join(name)).unwrap();
    let cfg = kedge::config::Config::from_toml(&text, name).unwrap_or_else(|e| panic!("{e}"));
    let key = Key::random(EncType::Aes256CtsHmacSha196);
    let mut entries = Vec::new();
    for host in &cfg.kerberos.array {
        for svc in ["http", "exchangeMDB", "exchangeAB", "exchangeRFR"] {
            entries.push(KeytabEntry {
                principal: Principal::parse(&format!("{svc}/{host}@CONTOSO.COM"), "").unwrap(),
                timestamp: 0,
                kvno: 2,
                key: key.clone(),
            });
        }
    }
    let kt = Keytab {
        entries,
        skipped_unsupported: 0,
    };
    std::fs::write(site.path("asa.keytab"), kt.to_bytes()).unwrap();
    site.chmod("asa.keytab", 0o600);
    let p = pki::generate();
    std::fs::write(site.path("cert.pem"), &p.cert_pem).unwrap();
    std::fs::write(site.path("key.pem"), &p.key_pem).unwrap();
    std::fs::write(site.path("ca.pem"), &p.ca_pem).unwrap();
    let mut text = text.replace(
        "/etc/kedge/asa.keytab",
        &site.path("asa.keytab").display().to_string(),
    );
    for (suffix, file) in [(".pem\"", "cert.pem"), (".key\"", "key.pem")] {
        for host in [
            "outlook.contoso.com",
            "mail.contoso.com",
            "autodiscover.contoso.com",
        ] {
            let old = format!("/etc/kedge/{host}{suffix}");
            text = text.replace(&old, &format!("{}\"", site.path(file).display()));
        }
    }
    text = text.replace(
        "/etc/kedge/contoso-root-ca.pem",
        &site.path("ca.pem").display().to_string(),
    );
    text = text.replace(
        "/var/log/kedge/access.log",
        &site.path("access.log").display().to_string(),
    );
    for port in ["443", "135", "59532", "59533", "9180"] {
        text = text
            .replace(&format!("\"0.0.0.0:{port}\""), "\"127.0.0.1:0\"")
            .replace(&format!("\"127.0.0.1:{port}\""), "\"127.0.0.1:0\"");
    }
    let unreplaced = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .any(|l| l.contains("/etc/kedge"));
    assert!(!unreplaced, "every file replaced:\n{text}");
    let path = site.path(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_shipped_exchange_configs_pass_the_check_with_their_files_in_place() {
    for name in ["exchange2010.toml", "exchange2016.toml", "example.toml"] {
        let site = Site::new("CONTOSO.COM");
        let out = kedge(&["run", "--check"], &shipped(name, &site));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        assert!(!stderr.contains("warning: no key is filed"), "{name}: {stderr}");
    }
}

#[test]
fn a_missing_replay_store_ca_file_fails_the_check() {
    let site = Site::new("CONTOSO.COM");
    let extra = format!(
        "\n[kerberos.replay]\nstore = \"rediss://127.0.0.1:6380/0\"\nca_file = \"{}\"\n",
        site.path("no-such-redis-ca.pem").display()
    );
    check_refuses_like_a_start(&site.config(ROUTE, &extra), "kerberos.replay.ca_file");
}
