//! `kedge spn plan|check` from the command line.

mod support;

use std::process::Command;

const KEDGE: &str = env!("CARGO_BIN_EXE_kedge");

fn check(keytab: &std::path::Path) -> (i32, String) {
    let out = Command::new(KEDGE)
        .args(["spn", "check", "--array", "outlook.contoso.com", "--keytab"])
        .arg(keytab)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn check_reports_exact_fallback_and_missing_with_exit_codes() {
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
        text.contains("covered by fallback to HTTP/outlook.contoso.com@KEDGE.TEST kvno 1"),
        "{text}"
    );

    let empty = dir.path().join("empty.keytab");
    std::fs::write(&empty, [5, 2]).unwrap();
    let (code, text) = check(&empty);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("MISSING") && text.contains("4 SPN(s) missing"),
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
    assert!(
        text.contains("ktpass /princ http/outlook.contoso.com@CONTOSO.COM /mapuser CONTOSO\\EXCH2010ASA$")
    );
    assert!(text.contains("CONTOSO.COMhostexch2010asa.contoso.com"));
}
