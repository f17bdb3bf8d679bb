//! What the `kedge` binary writes when its output is not a terminal: no colour codes in logs
//! piped to a file or the journal, and a quiet exit when a pipe reader goes away early.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kedge::krb::crypto::{EncType, Key};
use kedge::krb::keytab::{Keytab, KeytabEntry};
use kedge::krb::principal::Principal;

const SPN: &str = "http/outlook.contoso.com@CONTOSO.COM";

/// A keytab (mode 0600) with `n` random keys in `dir`.
fn keytab(dir: &Path, n: u32) -> std::path::PathBuf {
    let entries = (0..n)
        .map(|i| KeytabEntry {
            principal: Principal::parse(&format!("host{i}/outlook.contoso.com@CONTOSO.COM"), "").unwrap(),
            timestamp: 0,
            kvno: 2,
            key: Key::random(EncType::Aes256CtsHmacSha196),
        })
        .chain(std::iter::once(KeytabEntry {
            principal: Principal::parse(SPN, "").unwrap(),
            timestamp: 0,
            kvno: 2,
            key: Key::random(EncType::Aes256CtsHmacSha196),
        }))
        .collect();
    let kt = Keytab {
        entries,
        skipped_unsupported: 0,
    };
    let path = dir.join("asa.keytab");
    std::fs::write(&path, kt.to_bytes()).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    path
}

/// A config serving plain HTTP on loopback (one member, no health checks), plus `extra`.
fn config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let kt = keytab(dir, 0);
    let cfg = dir.join("kedge.toml");
    std::fs::write(
        &cfg,
        format!(
            "[kerberos]\nkeytab = \"{}\"\nrealm = \"CONTOSO.COM\"\n\n{extra}\n\n\
             [[http]]\nname = \"http\"\nlisten = \"127.0.0.1:0\"\nroutes = [{{ prefix = \"/\", pool = \"web\" }}]\n\n\
             [members.cas1]\naddress = \"127.0.0.1\"\nports = {{ http = 9 }}\n\n\
             [pools.web]\nmembers = [\"cas1\"]\nport = \"http\"\nhealth = {{ kind = \"none\" }}\n",
            kt.display()
        ),
    )
    .unwrap();
    cfg
}

/// Runs `kedge run --config cfg` (text logs, stderr piped) until a line contains `until` (or
/// 20 s pass), then stops it; its stderr lines.
fn run_until(cfg: &Path, until: &str) -> Vec<String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kedge"))
        .args(["run", "--config"])
        .arg(cfg)
        .env_remove("KEDGE_LOG_FORMAT")
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kedge");
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.contains(until)) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) => lines.push(l),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    lines
}

#[test]
fn logs_piped_to_a_file_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let lines = run_until(&config(dir.path(), ""), "listening");
    assert!(
        lines.iter().any(|l| l.contains("listening")),
        "kedge did not log its listeners: {lines:#?}"
    );
    for l in &lines {
        assert!(!l.contains('\u{1b}'), "an ANSI escape in a piped log line: {l:?}");
        assert!(
            l.contains(" INFO ") || l.contains(" WARN ") || l.contains(" ERROR "),
            "{l:?}"
        );
    }
}

#[test]
fn an_admin_listener_off_loopback_is_warned_about_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let lines = run_until(
        &config(dir.path(), "[admin]\nlisten = \"0.0.0.0:0\""),
        "listening",
    );
    let warn = lines.iter().find(|l| l.contains("not on loopback"));
    let warn = warn.unwrap_or_else(|| panic!("no warning: {lines:#?}"));
    assert!(
        warn.contains(" WARN ") && warn.contains("POST /drain is off"),
        "{warn}"
    );
}

#[test]
fn an_admin_token_file_others_may_write_stops_kedge_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("admin.token");
    std::fs::write(&token, "t0ken\n").unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let cfg = config(
        dir.path(),
        &format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"{}\"",
            token.display()
        ),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_kedge"))
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("admin.token_file") && err.contains("group or others may write"),
        "{err}"
    );
}

/// Runs `cmd` with its stdout read like `| head -1`: one line, then the pipe closes. The
/// command must end quietly (no panic, nothing on stderr) with exit 0.
fn assert_quiet_after_first_line(mut cmd: Command) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(!first.is_empty());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.is_empty(), "quiet: {stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[test]
fn a_reader_that_goes_away_early_ends_kedge_quietly() {
    let dir = tempfile::tempdir().unwrap();
    // Far more than a pipe buffer (64 KiB) of listing, so kedge is still writing when the
    // reader goes.
    let kt = keytab(dir.path(), 3000);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kedge"));
    cmd.args(["keytab", "list"]).arg(&kt);
    assert_quiet_after_first_line(cmd);
}

#[test]
fn a_reader_that_goes_away_early_ends_the_bench_client_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let kt = keytab(dir.path(), 0);
    // 2,000 tokens of over 1 KB each in base64: far more than a pipe buffer.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kedge-bench"));
    cmd.args(["mint", "--keytab"]).arg(&kt).args([
        "--spn",
        SPN,
        "--user",
        "alice@CONTOSO.COM",
        "--count",
        "2000",
        "--pac-groups",
        "30",
    ]);
    assert_quiet_after_first_line(cmd);
}
