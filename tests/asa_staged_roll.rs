//! `kedge asa roll prepare|commit` against a real MIT kadmind: prepare pre-loads kvno + 1 and
//! changes nothing in the KDC, commit changes the password to the prepared one; a watching
//! acceptor takes tickets of both kvnos throughout.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use support::{accepted_kvno, output_text, wait_until, watch_keytab, Kdc, Mech};

const KEDGE: &str = env!("CARGO_BIN_EXE_kedge");

fn step(kdc: &Kdc, step: &str, keytab: &Path, pwfile: &Path, extra: &[&str]) -> Output {
    Command::new(KEDGE)
        .args(["asa", "roll", step, "--keytab"])
        .arg(keytab)
        .args([
            "--principal",
            &kdc.spn("HTTP"),
            "--kdc",
            &kdc.kdc_addr().to_string(),
        ])
        .args(["--kpasswd", &kdc.kpasswd_addr().to_string(), "--password-file"])
        .arg(pwfile)
        .args(extra)
        .output()
        .unwrap()
}

fn setup(kdc: &Kdc, dir: &Path) -> PathBuf {
    // AD always requires pre-authentication; make MIT do the same so PA-ENC-TIMESTAMP is used.
    // (On a service, MIT's flag also demands pre-authenticated TGTs of its clients: alice too.)
    kdc.kadmin_local(&format!("modprinc +requires_preauth {}", kdc.spn("HTTP")));
    kdc.kadmin_local("modprinc +requires_preauth alice");
    let keytab = dir.join("asa.keytab");
    kdc.export_keytab(&keytab, &[&kdc.spn("HTTP")]);
    std::fs::set_permissions(&keytab, PermissionsExt::from_mode(0o600)).unwrap();
    keytab
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_preloads_without_changing_the_kdc_and_commit_changes_to_the_prepared_password() {
    let kdc = Kdc::start_with_kadmind();
    let http = kdc.spn("HTTP");
    let dir = tempfile::tempdir().unwrap();
    let keytab = setup(&kdc, dir.path());
    let pwfile = dir.path().join("asa.password");
    let support::Watched { acceptor: a, watcher } =
        watch_keytab(&keytab, Duration::from_millis(100), 100_000);
    let before_token = kdc.tokens("alice", &http, Mech::Spnego, 1).remove(0);

    let o = step(&kdc, "prepare", &keytab, &pwfile, &["--member", "CAS01,CAS02"]);
    let t = output_text(&o);
    assert!(o.status.success(), "{t}\n{}", kdc.logs());
    assert!(t.contains("staged kvno 2"), "{t}");
    assert!(
        t.contains("Set-ClientAccessServer -Identity CAS01 -AlternateServiceAccountCredential $cred")
            && t.contains("Set-ClientAccessServer -Identity CAS02 -AlternateServiceAccountCredential $cred"),
        "{t}"
    );
    assert!(t.contains("kedge asa roll commit"), "{t}");
    assert_eq!(kdc.kvno_of(&http), 1, "prepare changes nothing in the KDC");
    let mode = std::fs::metadata(&pwfile).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let password = std::fs::read_to_string(&pwfile).unwrap();
    assert!(!t.contains(password.trim()), "the password is never printed");
    wait_until("kvno 2 pre-loaded", || watcher.stats().kvnos == vec![1, 2]);
    let mid_token = kdc.tokens("alice", &http, Mech::Spnego, 1).remove(0);
    assert_eq!(accepted_kvno(&a, &before_token), Ok(1));
    assert_eq!(
        accepted_kvno(&a, &mid_token),
        Ok(1),
        "tickets stay kvno 1 until commit"
    );

    // A second prepare would stage over the first: refused (the staged key is not the KDC's).
    let o = step(&kdc, "prepare", &keytab, &pwfile, &[]);
    assert!(!o.status.success(), "{}", output_text(&o));

    let o = step(&kdc, "commit", &keytab, &pwfile, &[]);
    let t = output_text(&o);
    assert!(o.status.success(), "{t}\n{}", kdc.logs());
    assert!(t.contains("kvno 1 → 2") && t.contains("verified"), "{t}");
    assert!(!pwfile.exists(), "commit destroys the password file");
    assert_eq!(kdc.kvno_of(&http), 2);
    // MIT's salt is the principal's default; kinit with the password proves the keys match it.
    kdc.remember_password(&http, password.trim());
    let after_token = kdc.tokens("alice", &http, Mech::Spnego, 1).remove(0);
    assert_eq!(accepted_kvno(&a, &after_token), Ok(2));

    let o = step(&kdc, "commit", &keytab, &pwfile, &[]);
    assert!(
        !o.status.success() && output_text(&o).contains("prepare"),
        "{}",
        output_text(&o)
    );
}

#[test]
fn commit_refuses_a_password_file_that_does_not_match_the_staged_keys() {
    let kdc = Kdc::start_with_kadmind();
    let dir = tempfile::tempdir().unwrap();
    let keytab = setup(&kdc, dir.path());
    let pwfile = dir.path().join("asa.password");
    let o = step(&kdc, "prepare", &keytab, &pwfile, &["--exchange", "2016"]);
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("Get-ClientAccessService | Set-ClientAccessService"),
        "{}",
        output_text(&o)
    );
    std::fs::write(&pwfile, "Another-Pa55word!\n").unwrap();
    let o = step(&kdc, "commit", &keytab, &pwfile, &[]);
    let t = output_text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("does not hold the password whose keys are staged"),
        "{t}"
    );
    assert_eq!(kdc.kvno_of(&kdc.spn("HTTP")), 1, "nothing changed");
}

#[test]
fn prepare_with_unreachable_replicas_says_not_ready_and_exits_1() {
    let kdc = Kdc::start_with_kadmind();
    let dir = tempfile::tempdir().unwrap();
    let keytab = setup(&kdc, dir.path());
    let pwfile = dir.path().join("asa.password");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap().to_string();
    drop(closed);
    let o = step(
        &kdc,
        "prepare",
        &keytab,
        &pwfile,
        &["--wait-replicas", &addr, "--wait-secs", "1"],
    );
    let t = output_text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("NOT READY") && t.contains(&addr), "{t}");
    assert_eq!(kdc.kvno_of(&kdc.spn("HTTP")), 1);
    // Commit waits for the replicas too and changes nothing while one lags.
    let o = step(
        &kdc,
        "commit",
        &keytab,
        &pwfile,
        &["--wait-replicas", &addr, "--wait-secs", "1"],
    );
    let t = output_text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("NOT COMMITTED") && t.contains(&addr), "{t}");
    assert_eq!(kdc.kvno_of(&kdc.spn("HTTP")), 1);
    assert!(pwfile.exists());
}
