//! `kedge asa roll` against a real MIT kadmind (kpasswd, RFC 3244): the key changes, MIT
//! accepts the derived keys, and a running watcher hot-loads them so tickets of both kvnos pass.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use support::{accepted_kvno, output_text, wait_until, watch_keytab, Kdc, Mech};

const KEDGE: &str = env!("CARGO_BIN_EXE_kedge");

fn http(kdc: &Kdc) -> String {
    kdc.spn("HTTP")
}

/// A private copy of the ASA keytab holding only `HTTP/outlook.contoso.com`, mode 0600.
fn asa_keytab(kdc: &Kdc, dir: &Path) -> PathBuf {
    let path = dir.join("asa.keytab");
    kdc.export_keytab(&path, &[&http(kdc)]);
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    path
}

fn roll(kdc: &Kdc, keytab: &Path, extra: &[&str]) -> Output {
    Command::new(KEDGE)
        .args(["asa", "roll", "--keytab"])
        .arg(keytab)
        .args(["--principal", &http(kdc), "--kdc", &kdc.kdc_addr().to_string()])
        .args([
            "--kpasswd",
            &kdc.kpasswd_addr().to_string(),
            "--preload-wait-ms",
            "400",
        ])
        .args(extra)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roll_changes_the_key_mit_accepts_it_and_the_watcher_serves_both_kvnos() {
    let kdc = Kdc::start_with_kadmind();
    let principal = http(&kdc);
    // AD always requires pre-authentication; make MIT do the same so PA-ENC-TIMESTAMP is used.
    // (On a service, MIT's flag also demands pre-authenticated TGTs of its clients: alice too.)
    kdc.kadmin_local(&format!("modprinc +requires_preauth {principal}"));
    kdc.kadmin_local("modprinc +requires_preauth alice");
    let dir = tempfile::tempdir().unwrap();
    let keytab = asa_keytab(&kdc, dir.path());
    let before = kdc.kvno_of(&principal);

    let support::Watched { acceptor: a, watcher } =
        watch_keytab(&keytab, Duration::from_millis(100), 100_000);
    let old_token = kdc.tokens("alice", &principal, Mech::Spnego, 1).remove(0);

    let out = roll(&kdc, &keytab, &[]);
    let t = output_text(&out);
    assert!(out.status.success(), "roll failed: {t}\n{}", kdc.logs());
    assert!(t.contains("PA-ENC-TIMESTAMP"), "{t}");
    assert!(t.contains("verified"), "{t}");
    assert!(
        !t.contains("new password:"),
        "password printed without --show-password: {t}"
    );
    assert_eq!(kdc.kvno_of(&principal), before + 1, "MIT kvno moved up by one");
    assert!(dir.path().join(format!("asa.keytab.bak-{before}")).exists());

    // MIT's kinit accepts the keys kedge derived.
    let kinit = kdc
        .command("kinit")
        .arg("-k")
        .arg("-t")
        .arg(&keytab)
        .arg("-c")
        .arg(dir.path().join("cc"))
        .arg(&principal)
        .output()
        .unwrap();
    assert!(
        kinit.status.success(),
        "kinit -k with the new keytab: {}",
        output_text(&kinit)
    );

    wait_until("hot reload", || watcher.stats().kvnos == vec![before, before + 1]);
    let new_token = kdc.tokens("alice", &principal, Mech::Spnego, 1).remove(0);
    assert_eq!(
        accepted_kvno(&a, &old_token),
        Ok(before),
        "ticket from before the roll"
    );
    assert_eq!(
        accepted_kvno(&a, &new_token),
        Ok(before + 1),
        "ticket from after the roll"
    );
    let (latest, previous) = watcher.credential_status();
    assert_eq!(latest.unwrap().kvno, before + 1);
    assert_eq!(previous.unwrap().kvno, before);
}

#[test]
fn dry_run_proves_the_key_and_changes_nothing() {
    let kdc = Kdc::start_with_kadmind();
    let dir = tempfile::tempdir().unwrap();
    let keytab = asa_keytab(&kdc, dir.path());
    let bytes = std::fs::read(&keytab).unwrap();
    let out = roll(&kdc, &keytab, &["--dry-run"]);
    let t = output_text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("dry run") && t.contains("nothing was changed"), "{t}");
    assert!(
        t.contains("salt: KEDGE.TESTHTTPoutlook.contoso.com (from kdc)"),
        "{t}"
    );
    assert_eq!(kdc.kvno_of(&http(&kdc)), 1);
    assert_eq!(std::fs::read(&keytab).unwrap(), bytes);
}

#[test]
fn wrong_current_key_gives_a_clear_error_and_changes_nothing() {
    let kdc = Kdc::start_with_kadmind();
    let dir = tempfile::tempdir().unwrap();
    let keytab = asa_keytab(&kdc, dir.path());
    kdc.randkey(&http(&kdc)); // the keytab is now stale
    let kvno = kdc.kvno_of(&http(&kdc));
    let out = roll(&kdc, &keytab, &[]);
    let t = output_text(&out);
    assert!(!out.status.success());
    assert!(t.contains("refused the key") && t.contains("stale"), "{t}");
    assert_eq!(kdc.kvno_of(&http(&kdc)), kvno);
    assert!(!dir.path().join("asa.keytab.new-2").exists());
}

#[test]
fn a_roll_never_writes_through_a_symlink_planted_at_its_file_names() {
    let kdc = Kdc::start_with_kadmind();
    let dir = tempfile::tempdir().unwrap();
    let keytab = asa_keytab(&kdc, dir.path());
    let before = kdc.kvno_of(&http(&kdc));
    // Someone who may write the directory plants links at the names a roll used to use.
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    for name in [
        format!("asa.keytab.bak-{before}"),
        format!("asa.keytab.new-{}", before + 1),
    ] {
        std::os::unix::fs::symlink(&victim, dir.path().join(name)).unwrap();
    }
    let out = roll(&kdc, &keytab, &[]);
    assert!(out.status.success(), "roll failed: {}", output_text(&out));
    // (Compared without printing: on failure the victim holds keytab bytes.)
    let intact = std::fs::read(&victim).unwrap() == b"precious";
    assert!(
        intact,
        "a planted link was followed and the keytab written through it"
    );
    let backup = dir.path().join(format!("asa.keytab.bak-{before}-1"));
    assert!(
        backup.is_file(),
        "the backup moved to the next free name: {}",
        output_text(&out)
    );
    let mode = std::os::unix::fs::MetadataExt::mode(&std::fs::metadata(&backup).unwrap()) & 0o777;
    assert_eq!(mode, 0o600);
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
