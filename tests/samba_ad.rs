//! The ASA life cycle against a real Active Directory domain controller (Samba AD DC, started by
//! `support::SambaDc` in a network namespace of its own; the tests pass as skipped when not
//! root): keys `kedge keytab add` derives for user and computer accounts equal the keys AD
//! exports; `kedge spn check --kdc` proves them; a staged roll with a second `kedge run`
//! process holding the keys throughout fails no validation of tickets of either kvno.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kedge::krb::keytab::Keytab;
use support::{output_text, SambaDc, AD_REALM, AD_USER};

const KEDGE: &str = env!("CARGO_BIN_EXE_kedge");

macro_rules! dc_or_skip {
    () => {
        match SambaDc::shared() {
            Some(dc) => dc,
            None => return,
        }
    };
}

fn keytab_add(path: &Path, account: &str, kind: &str, kvno: u32, password: &str, principals: &[&str]) {
    keytab_add_with(path, account, kind, kvno, password, principals, &[])
}

fn keytab_add_with(
    path: &Path,
    account: &str,
    kind: &str,
    kvno: u32,
    password: &str,
    principals: &[&str],
    extra: &[&str],
) {
    let mut cmd = Command::new(KEDGE);
    cmd.args(["keytab", "add"])
        .arg(path)
        .args(["--account", account, "--account-type", kind, "--realm", AD_REALM])
        .args(["--kvno", &kvno.to_string(), "--password-stdin"])
        .args([
            "--enctypes",
            "aes256-cts-hmac-sha1-96,aes128-cts-hmac-sha1-96,arcfour-hmac",
        ]);
    for p in principals {
        cmd.args(["--principal", p]);
    }
    cmd.args(extra);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "keytab add: {}", output_text(&o));
}

fn parse(path: &Path) -> Keytab {
    Keytab::parse(&std::fs::read(path).unwrap()).unwrap()
}

/// Every key AD exported for `sam` is in `ours` under `principal`, byte for byte.
fn assert_same_keys(ad: &Keytab, ours: &Keytab, principal: &str) {
    assert!(!ad.entries.is_empty());
    for want in &ad.entries {
        let got = ours
            .entries
            .iter()
            .find(|e| {
                e.principal.to_string() == principal
                    && e.key.etype() == want.key.etype()
                    && e.kvno == want.kvno
            })
            .unwrap_or_else(|| {
                panic!(
                    "no {} kvno {} key under {principal}",
                    want.key.etype().name(),
                    want.kvno
                )
            });
        assert!(
            got.key.expose_bytes() == want.key.expose_bytes(),
            "{principal} {}: kedge's key differs from AD's",
            want.key.etype().name()
        );
    }
}

fn spn_check(dc: &SambaDc, keytab: &Path, array: &str, extra: &[&str]) -> Output {
    dc.command(KEDGE)
        .args(["spn", "check", "--keytab"])
        .arg(keytab)
        .args(["--array", array, "--kdc", dc.kdc_addr()])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn computer_account_keys_equal_what_ad_exports_and_the_kdc_accepts_them() {
    let dc = dc_or_skip!();
    let password = "C0mputer-Asa-Pa55!";
    let spns = [
        "http/outlook.kedge.ad",
        "exchangeMDB/outlook.kedge.ad",
        "exchangeRFR/outlook.kedge.ad",
        "exchangeAB/outlook.kedge.ad",
    ];
    dc.add_computer("EXCHASA1", password, &spns);
    let kvno = dc.kvno_of("EXCHASA1$");
    let dir = tempfile::tempdir().unwrap();
    let exported = dir.path().join("ad.keytab");
    dc.export_keytab("EXCHASA1$", &exported);
    let ours = dir.path().join("asa.keytab");
    keytab_add(
        &ours,
        "EXCHASA1",
        "computer",
        kvno,
        password,
        &["http/outlook.kedge.ad@KEDGE.AD"],
    );
    let (ad, mine) = (parse(&exported), parse(&ours));
    assert_same_keys(&ad, &mine, "EXCHASA1$@KEDGE.AD");
    assert_same_keys(&ad, &mine, "http/outlook.kedge.ad@KEDGE.AD");

    let o = spn_check(dc, &ours, "outlook.kedge.ad", &[]);
    let t = output_text(&o);
    assert!(o.status.success(), "{t}\n{}", dc.logs());
    assert_eq!(t.matches("proven: the KDC accepts").count(), 4, "{t}");

    // The same password with a user account's salt rule: AD's KDC refuses those keys.
    let wrong = dir.path().join("wrong.keytab");
    keytab_add_with(
        &wrong,
        "EXCHASA1",
        "computer",
        kvno,
        password,
        &[],
        &["--salt", "KEDGE.ADEXCHASA1$"],
    );
    let o = dc
        .command(KEDGE)
        .args(["spn", "check", "--keytab"])
        .arg(&wrong)
        .args([
            "--array",
            "outlook.kedge.ad",
            "--kdc",
            dc.kdc_addr(),
            "--account",
            "EXCHASA1",
            "--account-type",
            "computer",
        ])
        .output()
        .unwrap();
    let t = output_text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("NOT COVERED") || t.contains("NOT PROVEN"), "{t}");
}

#[test]
fn user_account_keys_equal_what_ad_exports_and_the_kdc_accepts_them() {
    let dc = dc_or_skip!();
    let password = "Us3r-Asa-Pa55!";
    dc.add_user(
        "ExchAsaUser",
        password,
        &["http/mail.kedge.ad", "exchangeMDB/mail.kedge.ad"],
    );
    let kvno = dc.kvno_of("ExchAsaUser");
    let dir = tempfile::tempdir().unwrap();
    let exported = dir.path().join("ad.keytab");
    dc.export_keytab("ExchAsaUser", &exported);
    let ours = dir.path().join("asa.keytab");
    keytab_add(
        &ours,
        "ExchAsaUser",
        "user",
        kvno,
        password,
        &["http/mail.kedge.ad@KEDGE.AD"],
    );
    let (ad, mine) = (parse(&exported), parse(&ours));
    assert_same_keys(&ad, &mine, "ExchAsaUser@KEDGE.AD");
    assert_same_keys(&ad, &mine, "http/mail.kedge.ad@KEDGE.AD");

    let o = spn_check(
        dc,
        &ours,
        "mail.kedge.ad",
        &["--account", "ExchAsaUser", "--account-type", "user"],
    );
    let t = output_text(&o);
    assert!(o.status.success(), "{t}\n{}", dc.logs());
    assert!(t.contains("proven: the KDC accepts ExchAsaUser@KEDGE.AD"), "{t}");

    // A computer salt for a user account (what kedge did before account types): refused.
    let wrong = dir.path().join("wrong.keytab");
    keytab_add(&wrong, "ExchAsaUser", "computer", kvno, password, &[]);
    let o = spn_check(
        dc,
        &wrong,
        "mail.kedge.ad",
        &["--account", "ExchAsaUser", "--account-type", "computer"],
    );
    let t = output_text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
}

// ---- a second process: `kedge run` watching the keytab ----------------------------------------
//
// The KDC is reachable only inside the DC's network namespace, and so are `kedge asa roll
// prepare|commit --wait-replicas`: the second kedge, its CAS member (python's http.server) and
// the clients (kinit, kvno, curl --negotiate) run in there too, on fixed ports nothing else
// in that namespace uses.

const MEMBER_PORT: u16 = 8080;
const HTTP_PORT: u16 = 8443;
const ADMIN_PORT: u16 = 9180;
const ARRAY: &str = "roll.kedge.ad";

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_port(dc: &SambaDc, port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !dc.listening(port) {
        assert!(Instant::now() < deadline, "{what} not listening on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kedge_run(dc: &SambaDc, keytab: &Path, dir: &Path) -> (Killed, Killed) {
    let member = dc
        .command(support::PYTHON)
        .args([
            "-m",
            "http.server",
            &MEMBER_PORT.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let member = Killed(member);
    wait_port(dc, MEMBER_PORT, "the CAS member");
    let cfg = format!(
        "[kerberos]\nkeytab = \"{}\"\nrealm = \"{AD_REALM}\"\narray = [\"{ARRAY}\"]\nkeytab_poll_ms = 100\n\n\
         [admin]\nlisten = \"127.0.0.1:{ADMIN_PORT}\"\n\n\
         [[http]]\nname = \"http\"\nlisten = \"127.0.0.1:{HTTP_PORT}\"\nroutes = [{{ prefix = \"/\", pool = \"web\", mode = \"assert\" }}]\n\n\
         [members.cas1]\naddress = \"127.0.0.1\"\nports = {{ http = {MEMBER_PORT} }}\n\n\
         [pools.web]\nmembers = [\"cas1\"]\nport = \"http\"\nhealth = {{ kind = \"none\" }}\n",
        keytab.display()
    );
    let path = dir.join("kedge.toml");
    std::fs::write(&path, cfg).unwrap();
    let log = std::fs::File::create(dir.join("kedge-run.log")).unwrap();
    let run = dc
        .command(KEDGE)
        .args(["run", "--config"])
        .arg(&path)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let run = Killed(run);
    wait_port(dc, HTTP_PORT, "kedge run");
    wait_port(dc, ADMIN_PORT, "kedge run's admin listener");
    (run, member)
}

/// The kvno of the service ticket `cc` holds (or gets now) for the array, as MIT's kvno says.
fn service_kvno(dc: &SambaDc, cc: &Path) -> u32 {
    let out = dc
        .command("kvno")
        .env("KRB5CCNAME", format!("FILE:{}", cc.display()))
        .arg(format!("HTTP/{ARRAY}@{AD_REALM}"))
        .output()
        .unwrap();
    let t = output_text(&out);
    t.rsplit("kvno = ")
        .next()
        .and_then(|k| k.trim().parse().ok())
        .unwrap_or_else(|| panic!("kvno: {t}"))
}

/// One authenticated request through kedge with the ticket in `cc` (curl --negotiate asks for
/// `HTTP/roll.kedge.ad`, the name `service_kvno` cached); the HTTP status.
fn curl(dc: &SambaDc, cc: &Path) -> u16 {
    let out = dc
        .command("curl")
        .env("KRB5CCNAME", format!("FILE:{}", cc.display()))
        .args([
            "--negotiate",
            "-u",
            ":",
            "--silent",
            "--output",
            "/dev/null",
            "--write-out",
            "%{http_code}",
        ])
        .args(["--resolve", &format!("{ARRAY}:{HTTP_PORT}:127.0.0.1")])
        .arg(format!("http://{ARRAY}:{HTTP_PORT}/"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

fn roll_step(dc: &SambaDc, step: &str, keytab: &Path, pwfile: &Path, extra: &[&str]) -> Output {
    dc.command(KEDGE)
        .args(["asa", "roll", step, "--keytab"])
        .arg(keytab)
        .args([
            "--account",
            "ROLLASA",
            "--account-type",
            "computer",
            "--realm",
            AD_REALM,
        ])
        .args(["--kdc", dc.kdc_addr(), "--password-file"])
        .arg(pwfile)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn staged_roll_with_a_running_kedge_fails_no_ticket_of_either_kvno() {
    let dc = dc_or_skip!();
    let first = "R0ll-Asa-Pa55-first!";
    dc.add_computer("ROLLASA", first, &[&format!("http/{ARRAY}")]);
    let old = dc.kvno_of("ROLLASA$");
    let dir = tempfile::tempdir().unwrap();
    let keytab = dir.path().join("asa.keytab");
    keytab_add(
        &keytab,
        "ROLLASA",
        "computer",
        old,
        first,
        &[&format!("http/{ARRAY}@{AD_REALM}")],
    );
    let (_run, _member) = kedge_run(dc, &keytab, dir.path());
    let admin = format!("127.0.0.1:{ADMIN_PORT}");

    // A ticket issued before the roll (kvno old), used throughout.
    let before = dc.kinit(AD_USER.0, AD_USER.1);
    assert_eq!(service_kvno(dc, &before), old);
    assert_eq!(
        curl(dc, &before),
        200,
        "{}",
        std::fs::read_to_string(dir.path().join("kedge-run.log")).unwrap_or_default()
    );

    // Load: every round, a request with the old ticket and one with a ticket from a fresh TGT
    // (whatever kvno AD issues at that moment), until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let results: Arc<Mutex<Vec<(u32, u16)>>> = Arc::default();
    let load = {
        let (stop, results, before) = (stop.clone(), results.clone(), before.clone());
        std::thread::spawn(move || {
            let dc = SambaDc::shared().unwrap();
            while !stop.load(Ordering::Relaxed) {
                let fresh = dc.kinit(AD_USER.0, AD_USER.1);
                let kvno = service_kvno(dc, &fresh);
                for (k, cc) in [(old, &before), (kvno, &fresh)] {
                    let code = curl(dc, cc);
                    results.lock().unwrap().push((k, code));
                }
            }
        })
    };

    let pwfile = dir.path().join("asa.password");
    let o = roll_step(
        dc,
        "prepare",
        &keytab,
        &pwfile,
        &["--wait-replicas", &admin, "--wait-secs", "30"],
    );
    let t = output_text(&o);
    assert!(o.status.success(), "prepare: {t}\n{}", dc.logs());
    assert!(
        t.contains(&format!("every replica holds kvno {} as Latest", old + 1)),
        "{t}"
    );
    assert_eq!(dc.kvno_of("ROLLASA$"), old, "prepare leaves AD alone");
    std::thread::sleep(Duration::from_millis(500));

    let o = roll_step(dc, "commit", &keytab, &pwfile, &["--wait-replicas", &admin]);
    let t = output_text(&o);
    assert!(o.status.success(), "commit: {t}\n{}", dc.logs());
    assert_eq!(dc.kvno_of("ROLLASA$"), old + 1);
    assert!(!pwfile.exists());

    // Keep going after the commit until tickets of the new kvno have been through kedge.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !results.lock().unwrap().iter().any(|&(k, _)| k == old + 1) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();

    let mut per_kvno = std::collections::BTreeMap::<u32, (usize, usize)>::new();
    for &(kvno, code) in results.lock().unwrap().iter() {
        let e = per_kvno.entry(kvno).or_default();
        e.0 += 1;
        if code != 200 {
            e.1 += 1;
        }
    }
    eprintln!(
        "requests through kedge run during and after the roll, kvno → (requests, failures): {per_kvno:?}"
    );
    assert_eq!(
        per_kvno.keys().copied().collect::<Vec<_>>(),
        [old, old + 1],
        "{per_kvno:?}"
    );
    assert!(per_kvno.values().all(|&(_, failed)| failed == 0), "{per_kvno:?}");
    // The second kedge states the roll as Exchange does: Latest = new, Previous = old.
    let status = dc
        .command(KEDGE)
        .args(["status", "--json", "--admin", &admin])
        .output()
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&status.stdout).unwrap_or_else(|_| panic!("{}", output_text(&status)));
    assert_eq!(v["credentials"]["latest"]["kvno"], old + 1, "{v}");
    assert_eq!(v["credentials"]["previous"]["kvno"], old, "{v}");
}

// ---- spn check --ldap ---------------------------------------------------------------------------

fn ldap_check(dc: &SambaDc, keytab: &Path, array: &str, account: &str, pwfile: &Path) -> Output {
    dc.command(KEDGE)
        .args(["spn", "check", "--keytab"])
        .arg(keytab)
        .args([
            "--array",
            array,
            "--account",
            account,
            "--ldap",
            "ldap://127.0.0.1",
        ])
        .args([
            "--ldap-bind",
            "CN=Administrator,CN=Users,DC=kedge,DC=ad",
            "--ldap-password-file",
        ])
        .arg(pwfile)
        .output()
        .unwrap()
}

#[test]
fn ldap_check_finds_a_missing_spn_a_duplicate_on_another_account_and_a_stale_kvno() {
    let dc = dc_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let pwfile = dir.path().join("bind.password");
    std::fs::write(&pwfile, format!("{}\n", support::AD_ADMIN_PASSWORD)).unwrap();
    std::fs::set_permissions(&pwfile, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let spns = |host: &str| -> Vec<String> {
        ["http", "exchangeMDB", "exchangeRFR", "exchangeAB"]
            .iter()
            .map(|s| format!("{s}/{host}"))
            .collect()
    };

    // A clean ASA: every SPN on it alone, the keytab at AD's kvno.
    let clean: Vec<String> = spns("clean.kedge.ad");
    dc.add_computer(
        "CLEANASA",
        "Cl3an-Asa-Pa55!",
        &clean.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let kt = dir.path().join("clean.keytab");
    keytab_add(
        &kt,
        "CLEANASA",
        "computer",
        dc.kvno_of("CLEANASA$"),
        "Cl3an-Asa-Pa55!",
        &[],
    );
    let o = ldap_check(dc, &kt, "clean.kedge.ad", "CLEANASA", &pwfile);
    let t = output_text(&o);
    assert!(o.status.success(), "{t}");
    assert_eq!(t.matches("registered on the ASA only").count(), 4, "{t}");
    assert!(t.contains("= the keytab's newest kvno"), "{t}");

    // exchangeAB missing, exchangeMDB also on a CAS's computer account, exchangeRFR only there.
    let all = spns("bad.kedge.ad");
    dc.add_computer("BADASA", "B4d-Asa-Pa55!", &[all[0].as_str(), all[1].as_str()]);
    dc.add_computer("BADCAS", "B4d-Cas-Pa55!", &[all[2].as_str()]);
    dc.add_spn_unchecked("BADCAS$", &all[1]);
    let kt = dir.path().join("bad.keytab");
    let kvno = dc.kvno_of("BADASA$");
    keytab_add(&kt, "BADASA", "computer", kvno, "B4d-Asa-Pa55!", &[]);
    // The password changes behind kedge's back (Exchange-RollAsa would do this).
    dc.samba_tool(&[
        "user",
        "setpassword",
        "BADASA$",
        "--newpassword=Ch4nged-Elsewhere!",
    ]);
    assert_eq!(dc.kvno_of("BADASA$"), kvno + 1);

    let o = ldap_check(dc, &kt, "bad.kedge.ad", "BADASA", &pwfile);
    let t = output_text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("http/bad.kedge.ad: registered on the ASA only"), "{t}");
    assert!(
        t.contains("exchangeMDB/bad.kedge.ad: DUPLICATE: also on CN=BADCAS,CN=Computers,DC=kedge,DC=ad"),
        "{t}"
    );
    assert!(
        t.contains(
            "exchangeRFR/bad.kedge.ad: REGISTERED ON ANOTHER ACCOUNT (CN=BADCAS,CN=Computers,DC=kedge,DC=ad)"
        ),
        "{t}"
    );
    assert!(
        t.contains("exchangeAB/bad.kedge.ad: NOT REGISTERED in AD (add it: setspn -S exchangeAB/bad.kedge.ad KEDGE\\BADASA$)"),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "STALE KEYTAB: AD's msDS-KeyVersionNumber is {}, the keytab's newest kvno is {kvno}",
            kvno + 1
        )),
        "{t}"
    );
    assert!(t.contains("4 problem(s) in AD"), "{t}");
}

// ---- UTF-8 user names -------------------------------------------------------------------------

/// AD issues UTF-8 client names, and its PAC names the client again in UTF-16 (CLIENT_INFO,
/// compared with the ticket's cname). Users whose names hold bytes in 0x80..=0xA0 (`weiß`: C3 9F;
/// `рябов`: D1 80, D1 8F) are accepted with their names, the PAC verified and its SIDs read.
#[test]
fn ad_users_with_utf8_names_are_accepted_and_their_pac_names_them() {
    use kedge::krb::acceptor::{AcceptCtx, Acceptor, AcceptorConfig};
    use kedge::krb::keyset::KeySet;
    use kedge::krb::replay::ReplayCache;
    use std::time::SystemTime;

    let dc = dc_or_skip!();
    dc.add_computer("UTF8ASA", "Utf8-Asa-Pa55!", &["http/utf8.kedge.ad"]);
    let dir = tempfile::tempdir().unwrap();
    let exported = dir.path().join("ad.keytab");
    dc.export_keytab("UTF8ASA$", &exported);
    let cfg = AcceptorConfig {
        realm: Some(AD_REALM.into()),
        hosts: vec!["utf8.kedge.ad".into()],
        require_pac: true,
        ..Default::default()
    };
    let acc = Acceptor::new(
        cfg,
        KeySet::from_keytab(&parse(&exported), SystemTime::now(), "test"),
        Arc::new(ReplayCache::new(1000)),
    );
    for (user, password) in [("weiß", "Weiss-Pa55w0rd!"), ("рябов", "Ryabov-Pa55w0rd!")] {
        assert!(user.bytes().any(|b| (0x80..=0xA0).contains(&b)), "{user}");
        dc.add_user(user, password, &[]);
        let cc = dc.kinit(user, password);
        let toks = dc
            .tokens(&cc, &format!("http/utf8.kedge.ad@{AD_REALM}"), 2)
            .unwrap_or_else(|e| panic!("tokens as {user}: {e}\n{}", dc.logs()));
        for (i, t) in toks.iter().enumerate() {
            let ctx = AcceptCtx {
                now: SystemTime::now(),
                service: "http",
                channel_binding: None,
                groups: None,
                check_replay: true,
            };
            let a = acc
                .accept(t, &ctx)
                .unwrap_or_else(|e| panic!("{user} token {i}: {e}"));
            assert_eq!(a.client.to_string(), format!("{user}@{AD_REALM}"));
            let pac = a.pac.expect("AD issues a PAC");
            assert!(pac.server_signature_verified);
            assert!(
                pac.user_sid().is_some_and(|s| s.starts_with("S-1-5-21-")),
                "{user}"
            );
        }
    }
}
