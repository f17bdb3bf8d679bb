//! `kedge spn plan|check` from the command line.

mod support;

use std::process::Command;

const KEDGE: &str = env!("CARGO_BIN_EXE_kedge");

fn check(keytab: &std::path::Path) -> (i32, String) {
    check_with(keytab, &[])
}

fn check_with(keytab: &std::path::Path, extra: &[&str]) -> (i32, String) {
    let out = Command::new(KEDGE)
        .args(["spn", "check", "--array", "outlook.contoso.com", "--keytab"])
        .arg(keytab)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn check_reports_exact_same_account_and_missing_with_exit_codes() {
    let kdc = support::Kdc::shared();
    let (code, text) = check(&kdc.keytab_path());
    assert_eq!(code, 0, "{text}");
    assert_eq!(text.matches("exact: kvno 1").count(), 4, "{text}");

    let dir = tempfile::tempdir().unwrap();
    let only_http = dir.path().join("http.keytab");
    kdc.export_keytab(&only_http, &[&kdc.spn("HTTP")]);
    let (code, text) = check(&only_http);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("same account: HTTP/outlook.contoso.com@KEDGE.TEST (SPN on the same host) kvno 1"),
        "{text}"
    );

    let empty = dir.path().join("empty.keytab");
    std::fs::write(&empty, [5, 2]).unwrap();
    let (code, text) = check(&empty);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("MISSING") && text.contains("4 problem(s)"),
        "{text}"
    );
}

#[test]
fn plan_queries_forest_wide_before_adding_and_names_the_account() {
    let out = Command::new(KEDGE)
        .args([
            "spn",
            "plan",
            "--array",
            "outlook.contoso.com",
            "--account",
            "EXCH2010ASA",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    let q = text.find("setspn -F -Q exchangeAB/outlook.contoso.com").unwrap();
    let s = text
        .find("setspn -S http/outlook.contoso.com CONTOSO\\EXCH2010ASA$")
        .unwrap();
    assert!(q < s, "duplicate checks come first");
    assert!(text.contains("ktpass /princ EXCH2010ASA$@CONTOSO.COM /mapuser CONTOSO\\EXCH2010ASA$"));
    assert!(text.contains("CONTOSO.COMhostexch2010asa.contoso.com"));
}

/// A keytab of `entries` (principal, kvno) with random aes256 keys, mode 0600.
fn random_keytab(path: &std::path::Path, entries: &[(&str, u32)]) {
    use kedge::krb::crypto::{EncType, Key};
    use kedge::krb::keytab::{Keytab, KeytabEntry};
    let kt = Keytab {
        entries: entries
            .iter()
            .map(|(p, kvno)| KeytabEntry {
                principal: kedge::krb::principal::Principal::parse(p, "").unwrap(),
                timestamp: 0,
                kvno: *kvno,
                key: Key::random(EncType::Aes256CtsHmacSha196),
            })
            .collect(),
        skipped_unsupported: 0,
    };
    std::fs::write(path, kt.to_bytes()).unwrap();
}

#[test]
fn keytab_of_another_host_fails_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let kt = dir.path().join("fabrikam.keytab");
    random_keytab(&kt, &[("http/mail.fabrikam.com@CONTOSO.COM", 2)]);
    let (code, text) = check(&kt);
    assert_eq!(code, 1, "{text}");
    assert_eq!(text.matches("NOT COVERED").count(), 4, "{text}");
    assert!(text.contains("http/mail.fabrikam.com@CONTOSO.COM"), "{text}");
}

#[test]
fn several_namespaces_are_checked_and_the_account_principal_covers_them() {
    let dir = tempfile::tempdir().unwrap();
    let kt = dir.path().join("asa.keytab");
    random_keytab(&kt, &[("EXCHASA$@CONTOSO.COM", 7)]);
    let (code, text) = check_with(&kt, &["--array", "mail.contoso.com"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        text.matches("same account: EXCHASA$@CONTOSO.COM (account principal) kvno 7")
            .count(),
        8,
        "{text}"
    );
    assert!(
        text.contains("exchangeMDB/mail.contoso.com@CONTOSO.COM"),
        "{text}"
    );
    let (code, text) = check_with(&kt, &["--account", "OTHERASA"]);
    assert_eq!(code, 1, "another account named: {text}");
}

#[test]
fn kdc_proves_good_keys_and_refuses_stale_ones() {
    let kdc = support::Kdc::shared();
    let addr = kdc.kdc_addr().to_string();
    let (code, text) = check_with(&kdc.keytab_path(), &["--kdc", &addr]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(text.matches("proven: the KDC accepts").count(), 4, "{text}");

    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("stale.keytab");
    random_keytab(&stale, &[("HTTP/outlook.contoso.com@KEDGE.TEST", 1)]);
    let (code, text) = check_with(&stale, &["--kdc", &addr]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("NOT PROVEN") && text.contains("refused the key"),
        "{text}"
    );
}
