//! `kedge run` as an operator runs it: a real process with a config file, authenticated and
//! refused requests, `/metrics` and `/status`, SIGHUP with a bad and a good config, SIGTERM.

mod kedge_process;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use kedge_process::{backend, get, metric, promtool_check_metrics, start, terminate};

use base64::Engine;
use kedge::krb::acceptor::Framing;
use kedge::krb::crypto::{EncType, Key};
use kedge::krb::keytab::{Keytab, KeytabEntry};
use kedge::krb::mint::{mint, MintRequest};
use kedge::krb::principal::Principal;

const SPN: &str = "http/outlook.contoso.com@CONTOSO.COM";

fn config(keytab: &Path, members: &[(&str, SocketAddr)]) -> String {
    let mut s = format!(
        "[kerberos]\nkeytab = \"{}\"\nrealm = \"CONTOSO.COM\"\narray = [\"outlook.contoso.com\"]\n\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [[http]]\nname = \"http\"\nlisten = \"127.0.0.1:0\"\nroutes = [{{ prefix = \"/\", pool = \"web\" }}]\n\n",
        keytab.display()
    );
    for (n, a) in members {
        s.push_str(&format!(
            "[members.{n}]\naddress = \"127.0.0.1\"\nports = {{ http = {} }}\n\n",
            a.port()
        ));
    }
    let names: Vec<String> = members.iter().map(|(n, _)| format!("\"{n}\"")).collect();
    s.push_str(&format!(
        "[pools.web]\nmembers = [{}]\nport = \"http\"\nhealth = {{ kind = \"http\", path = \"/owa/healthcheck.htm\", interval_ms = 200, rise = 1, fall = 1 }}\n",
        names.join(", ")
    ));
    s
}

fn token(key: &Key, user: &str) -> String {
    let spn = Principal::parse(SPN, "").unwrap();
    let client = Principal::parse(user, "").unwrap();
    let now = kedge::krb::time::unix_secs(std::time::SystemTime::now());
    let m = mint(&MintRequest {
        client: &client,
        service: &spn,
        service_key: key,
        kvno: 2,
        now,
        cusec: rand::random::<u32>() % 1_000_000,
        lifetime: 3600,
        framing: Framing::Spnego { legacy_oid: false },
        gss_flags: 0x3e,
        channel_binding: None,
        pac: None,
    });
    base64::engine::general_purpose::STANDARD.encode(m.token)
}

fn hup(child: &Child) {
    let ok = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    std::thread::sleep(Duration::from_millis(700));
}

#[test]
fn kedge_run_serves_counts_and_reloads_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (key, kt_path) = asa_keytab(dir.path());
    let cas1 = backend("cas1");
    let cas2 = backend("cas2");
    let cfg_path = dir.path().join("kedge.toml");
    std::fs::write(&cfg_path, config(&kt_path, &[("cas1", cas1)])).unwrap();
    let k = start(&cfg_path);

    // Authenticated and refused requests, counted.
    assert_eq!(get(k.http, "/owa/", None).0, 401);
    let t = token(&key, "alice@CONTOSO.COM");
    let (code, body) = get(k.http, "/owa/", Some(&t));
    assert_eq!((code, body.as_str()), (200, "cas1\n"));
    assert_eq!(get(k.http, "/owa/", Some(&t)).0, 401, "replayed token");
    let ok = metric(
        k.admin,
        "kedge_auth_total",
        &[("protocol", "http"), ("result", "ok")],
    );
    let replay = metric(
        k.admin,
        "kedge_auth_total",
        &[("protocol", "http"), ("reason", "KRB_AP_ERR_REPEAT")],
    );
    assert_eq!((ok, replay), (1.0, 1.0));

    // A bad config on SIGHUP changes nothing.
    std::fs::write(&cfg_path, "[kerberos]\nkeytab = 42\n").unwrap();
    hup(&k.child);
    assert_eq!(
        metric(k.admin, "kedge_config_reloads_total", &[("result", "rejected")]),
        1.0
    );
    let (_, status) = get(k.admin, "/status", None);
    assert!(status.contains("cas1") && !status.contains("cas2"), "{status}");
    assert_eq!(get(k.http, "/owa/", Some(&token(&key, "bob@CONTOSO.COM"))).0, 200);

    // A good config adding a member is applied.
    std::fs::write(&cfg_path, config(&kt_path, &[("cas1", cas1), ("cas2", cas2)])).unwrap();
    hup(&k.child);
    assert_eq!(
        metric(k.admin, "kedge_config_reloads_total", &[("result", "ok")]),
        1.0
    );
    let (_, status) = get(k.admin, "/status", None);
    assert!(status.contains("cas2"), "{status}");
    // `kedge status` shows the ASA credential (Latest, kvno 2) and every member's health.
    let out = Command::new(env!("CARGO_BIN_EXE_kedge"))
        .args(["status", "--admin", &k.admin.to_string()])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    let latest = table
        .lines()
        .find(|l| l.trim_start().starts_with("Latest"))
        .unwrap_or_default();
    assert!(
        latest.contains(SPN) && latest.contains(" 2 ") && latest.contains("aes256"),
        "{table}"
    );
    assert!(
        table.contains("cas1") && table.contains("cas2") && table.contains("up"),
        "{table}"
    );
    // Every user lands on a member that is in the pool; across many users both are used.
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..40 {
        let (code, body) = get(
            k.http,
            "/owa/",
            Some(&token(&key, &format!("user{i}@CONTOSO.COM"))),
        );
        assert_eq!(code, 200);
        seen.insert(body);
    }
    assert_eq!(
        seen.len(),
        2,
        "rendezvous spreads users over both members: {seen:?}"
    );

    // SIGTERM drains and exits 0.
    terminate(k);
}

/// A random aes256 ASA key at kvno 2 for the SPN, written as `asa.keytab` (mode 0600) in `dir`.
fn asa_keytab(dir: &Path) -> (Key, std::path::PathBuf) {
    let key = Key::random(EncType::Aes256CtsHmacSha196);
    let kt = Keytab {
        entries: vec![KeytabEntry {
            principal: Principal::parse(SPN, "").unwrap(),
            timestamp: 0,
            kvno: 2,
            key: key.clone(),
        }],
        skipped_unsupported: 0,
    };
    let kt_path = dir.join("asa.keytab");
    std::fs::write(&kt_path, kt.to_bytes()).unwrap();
    std::fs::set_permissions(&kt_path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    (key, kt_path)
}

#[test]
fn both_schedulers_serve_and_stop() {
    let dir = tempfile::tempdir().unwrap();
    let (key, kt_path) = asa_keytab(dir.path());
    let cas1 = backend("cas1");
    for (i, runtime) in [
        "scheduler = \"work-stealing\"\nworkers = 3",
        "scheduler = \"per-core\"\nworkers = 3",
    ]
    .iter()
    .enumerate()
    {
        let cfg_path = dir.path().join(format!("kedge{i}.toml"));
        let cfg = format!("[runtime]\n{runtime}\n\n{}", config(&kt_path, &[("cas1", cas1)]));
        std::fs::write(&cfg_path, cfg).unwrap();
        let k = start(&cfg_path);
        assert_eq!(get(k.http, "/owa/", None).0, 401, "{runtime}");
        for n in 0..8 {
            let t = token(&key, &format!("user{n}@CONTOSO.COM"));
            assert_eq!(
                get(k.http, "/owa/", Some(&t)),
                (200, "cas1\n".to_owned()),
                "{runtime}"
            );
        }
        terminate(k);
    }
}

#[test]
fn kedge_status_exits_1_while_the_instance_is_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let (_key, kt_path) = asa_keytab(dir.path());
    // A member nobody listens on: its health check fails, the pool has no member up.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cfg_path = dir.path().join("kedge.toml");
    std::fs::write(&cfg_path, config(&kt_path, &[("cas1", dead)])).unwrap();
    let k = start(&cfg_path);
    let status = || {
        Command::new(env!("CARGO_BIN_EXE_kedge"))
            .args(["status", "--admin", &k.admin.to_string()])
            .output()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let out = loop {
        let out = status();
        if out.status.code() == Some(1) || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is not ready"), "{stderr}");
    assert!(!out.stdout.is_empty(), "the table is still printed");
    terminate(k);
}

/// `promtool check metrics` on a live scrape after served, refused and NTLM requests: every
/// metric has help text and a valid name, type and unit suffix. promtool comes with Debian's
/// `prometheus` package (`scripts/install-test-deps`).
#[test]
fn a_live_scrape_passes_promtool_check_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (key, kt_path) = asa_keytab(dir.path());
    let cas1 = backend("cas1");
    let cfg_path = dir.path().join("kedge.toml");
    std::fs::write(&cfg_path, config(&kt_path, &[("cas1", cas1)])).unwrap();
    let k = start(&cfg_path);
    assert_eq!(
        get(k.http, "/owa/", Some(&token(&key, "alice@CONTOSO.COM"))).0,
        200
    );
    assert_eq!(get(k.http, "/owa/", None).0, 401);
    // `get` sends `Negotiate <auth>`: a raw NTLMSSP message, then bad base64.
    assert_eq!(get(k.http, "/owa/", Some("TlRMTVNTUAABAAAA")).0, 401);
    assert_eq!(get(k.http, "/owa/", Some("!!")).0, 400);
    let (code, scrape) = get(k.admin, "/metrics", None);
    assert_eq!(code, 200);
    // Request latency by listener, route and status class; upstream latency by pool.
    for series in [
        r#"kedge_http_request_duration_seconds_count{listener="http",route="/",status="2xx"} 1"#,
        r#"kedge_http_request_duration_seconds_count{listener="http",route="/",status="4xx"} 3"#,
        r#"kedge_backend_response_duration_seconds_count{pool="web"} 1"#,
    ] {
        assert!(scrape.contains(series), "{series} missing from:\n{scrape}");
    }
    promtool_check_metrics(&scrape);
    terminate(k);
}

/// The access log as logrotate meets it: lines go to the configured file; after the file is
/// moved away, SIGUSR1 makes kedge write to a new file of that name.
#[test]
fn the_access_log_file_is_reopened_on_sigusr1() {
    let dir = tempfile::tempdir().unwrap();
    let (key, kt_path) = asa_keytab(dir.path());
    let cas1 = backend("cas1");
    let log = dir.path().join("access.log");
    let cfg_path = dir.path().join("kedge.toml");
    let cfg = config(&kt_path, &[("cas1", cas1)]);
    let cfg = format!(
        "[access_log]\nenabled = true\npath = \"{}\"\n\n{cfg}",
        log.display()
    );
    std::fs::write(&cfg_path, cfg).unwrap();
    let k = start(&cfg_path);
    let lines_of = |p: &Path, want: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            let lines: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).expect("a JSON line"))
                .collect();
            if lines.len() >= want || std::time::Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    assert_eq!(
        get(k.http, "/owa/", Some(&token(&key, "alice@CONTOSO.COM"))).0,
        200
    );
    let first = lines_of(&log, 1);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["principal"], "alice@CONTOSO.COM");
    assert_eq!(first[0]["member"], "cas1");

    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    let ok = Command::new("kill")
        .args(["-USR1", &k.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(k.http, "/owa/", None).0, 401);
    let second = lines_of(&log, 1);
    assert_eq!(second.len(), 1, "a new file after SIGUSR1");
    assert_eq!(second[0]["status"], 401);
    assert_eq!(lines_of(&rotated, 1).len(), 1, "the rotated file keeps its line");
    terminate(k);
}
