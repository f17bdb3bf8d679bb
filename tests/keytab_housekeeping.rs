//! `kedge keytab remove|prune` as an administrator runs them: old kvnos and `.bak-<kvno>` copies
//! go, the newest stay, and the file stays a valid 0600 keytab.

use std::process::{Command, Output};

use kedge::krb::crypto::{EncType, Key};
use kedge::krb::keytab::{Keytab, KeytabEntry};
use kedge::krb::principal::Principal;

fn kedge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kedge"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write(path: &std::path::Path, spec: &[(&str, u32)]) {
    let mut entries = Vec::new();
    for (p, kvno) in spec {
        for et in [EncType::Aes256CtsHmacSha196, EncType::Aes128CtsHmacSha196] {
            entries.push(KeytabEntry {
                principal: Principal::parse(p, "").unwrap(),
                timestamp: 0,
                kvno: *kvno,
                key: Key::random(et),
            });
        }
    }
    let kt = Keytab {
        entries,
        skipped_unsupported: 0,
    };
    std::fs::write(path, kt.to_bytes()).unwrap();
}

fn kvnos(path: &std::path::Path) -> Vec<(String, u32)> {
    let kt = Keytab::parse(&std::fs::read(path).unwrap()).unwrap();
    let mut v: Vec<_> = kt
        .entries
        .iter()
        .map(|e| (e.principal.to_string(), e.kvno))
        .collect();
    v.dedup();
    v
}

#[test]
fn remove_kvno_takes_that_kvno_of_every_principal() {
    let dir = tempfile::tempdir().unwrap();
    let kt = dir.path().join("asa.keytab");
    write(
        &kt,
        &[
            ("EXCHASA$@CONTOSO.COM", 4),
            ("http/outlook.contoso.com@CONTOSO.COM", 4),
            ("EXCHASA$@CONTOSO.COM", 5),
        ],
    );
    let f = kt.to_str().unwrap();
    let o = kedge(&["keytab", "remove", f, "--kvno", "4"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(text(&o).matches("removed ").count(), 2, "{}", text(&o));
    assert_eq!(kvnos(&kt), [("EXCHASA$@CONTOSO.COM".to_string(), 5)]);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&kt).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    // Nothing matches: exit 1, file untouched; removing the last keys is refused.
    let o = kedge(&["keytab", "remove", f, "--kvno", "9"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let o = kedge(&["keytab", "remove", f, "--kvno", "5"]);
    assert!(
        !o.status.success() && text(&o).contains("every key"),
        "{}",
        text(&o)
    );
    assert_eq!(kvnos(&kt).len(), 1);
}

#[test]
fn remove_principal_drops_an_spn_and_keeps_the_account() {
    let dir = tempfile::tempdir().unwrap();
    let kt = dir.path().join("asa.keytab");
    write(
        &kt,
        &[
            ("EXCHASA$@CONTOSO.COM", 4),
            ("http/old.contoso.com@CONTOSO.COM", 4),
        ],
    );
    let o = kedge(&[
        "keytab",
        "remove",
        kt.to_str().unwrap(),
        "--principal",
        "HTTP/old.contoso.com@CONTOSO.COM",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(kvnos(&kt), [("EXCHASA$@CONTOSO.COM".to_string(), 4)]);
}

#[test]
fn prune_keeps_the_newest_kvnos_and_removes_older_backups() {
    let dir = tempfile::tempdir().unwrap();
    let kt = dir.path().join("asa.keytab");
    write(
        &kt,
        &[
            ("EXCHASA$@CONTOSO.COM", 3),
            ("EXCHASA$@CONTOSO.COM", 4),
            ("EXCHASA$@CONTOSO.COM", 5),
        ],
    );
    for k in [2, 3, 4] {
        std::fs::write(dir.path().join(format!("asa.keytab.bak-{k}")), b"old").unwrap();
    }
    let f = kt.to_str().unwrap();
    let o = kedge(&["keytab", "prune", f, "--keep", "2", "--dry-run"]);
    assert!(
        o.status.success() && text(&o).contains("would remove EXCHASA$@CONTOSO.COM kvno 3"),
        "{}",
        text(&o)
    );
    assert_eq!(kvnos(&kt).len(), 3, "dry run changes nothing");
    assert!(dir.path().join("asa.keytab.bak-2").exists());

    let o = kedge(&["keytab", "prune", f, "--keep", "2"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        kvnos(&kt),
        [
            ("EXCHASA$@CONTOSO.COM".to_string(), 4),
            ("EXCHASA$@CONTOSO.COM".to_string(), 5)
        ]
    );
    assert!(!dir.path().join("asa.keytab.bak-2").exists());
    assert!(!dir.path().join("asa.keytab.bak-3").exists());
    assert!(
        dir.path().join("asa.keytab.bak-4").exists(),
        "the copy from before kvno 5 stays"
    );
}
