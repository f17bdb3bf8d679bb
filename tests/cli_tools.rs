//! The administrator's tools as they are run: `kedge keytab add|list` and `kedge token verify`.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use base64::Engine;
use kedge::krb::acceptor::Framing;
use kedge::krb::keytab::Keytab;
use kedge::krb::mint::{mint, MintRequest};
use kedge::krb::principal::Principal;

fn kedge(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kedge"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn keytab_add_derives_ad_salted_keys_and_list_never_prints_them() {
    let dir = tempfile::tempdir().unwrap();
    let kt = dir.path().join("asa.keytab");
    let kt_s = kt.to_str().unwrap();
    let o = kedge(
        &[
            "keytab",
            "add",
            kt_s,
            "--principal",
            "http/outlook.contoso.com@CONTOSO.COM",
            "--kvno",
            "3",
            "--account",
            "EXCH2010ASA",
            "--password-stdin",
        ],
        "Pa55-w0rd!\n",
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("CONTOSO.COMhostexch2010asa.contoso.com"),
        "{}",
        text(&o)
    );
    let parsed = Keytab::parse(&std::fs::read(&kt).unwrap()).unwrap();
    // Under the SPN and the account principal (for `asa roll --principal EXCH2010ASA$@…`).
    assert_eq!(parsed.entries.len(), 4);
    assert!(parsed
        .entries
        .iter()
        .any(|e| e.principal.to_string() == "EXCH2010ASA$@CONTOSO.COM"));
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&kt).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    // The same keys ktpass/AD derive: PBKDF2 with the AD computer salt.
    let want = kedge::krb::crypto::string_to_key(
        kedge::krb::crypto::EncType::Aes256CtsHmacSha196,
        b"Pa55-w0rd!",
        b"CONTOSO.COMhostexch2010asa.contoso.com",
        None,
    )
    .unwrap();
    assert!(parsed
        .entries
        .iter()
        .any(|e| e.key.expose_bytes() == want.expose_bytes()));

    let o = kedge(&["keytab", "list", kt_s], "");
    let out = text(&o);
    assert!(
        o.status.success() && out.contains("aes256-cts-hmac-sha1-96") && out.contains("    3  "),
        "{out}"
    );
    for e in &parsed.entries {
        let hex = hex::encode(e.key.expose_bytes());
        assert!(
            !out.contains(&hex) && !out.to_lowercase().contains(&hex[..16]),
            "key bytes printed"
        );
    }

    // An SPN without --account or --salt is refused with advice.
    let o = kedge(
        &[
            "keytab",
            "add",
            kt_s,
            "--principal",
            "http/x@R",
            "--kvno",
            "1",
            "--password-stdin",
        ],
        "p\n",
    );
    assert!(
        !o.status.success() && text(&o).contains("--account"),
        "{}",
        text(&o)
    );
    // A corrupt keytab is named with its problem.
    std::fs::write(&kt, b"\x05\x02\x00\x00\x00\x40\x00").unwrap();
    let o = kedge(&["keytab", "list", kt_s], "");
    assert!(
        !o.status.success() && text(&o).contains(kt_s) && text(&o).contains("truncated"),
        "{}",
        text(&o)
    );
}

#[test]
fn token_verify_explains_success_and_failure() {
    let dir = tempfile::tempdir().unwrap();
    let kt = dir.path().join("asa.keytab");
    let kt_s = kt.to_str().unwrap();
    let o = kedge(
        &[
            "keytab",
            "add",
            kt_s,
            "--principal",
            "http/outlook.contoso.com@CONTOSO.COM",
            "--kvno",
            "5",
            "--account",
            "ASA",
            "--password-stdin",
        ],
        "secret-1\n",
    );
    assert!(o.status.success(), "{}", text(&o));
    let keytab = Keytab::parse(&std::fs::read(&kt).unwrap()).unwrap();
    let spn = Principal::parse("http/outlook.contoso.com@CONTOSO.COM", "").unwrap();
    let alice = Principal::parse("alice@CONTOSO.COM", "").unwrap();
    let key = &keytab
        .entries
        .iter()
        .find(|e| e.key.etype().name() == "aes256-cts-hmac-sha1-96")
        .unwrap()
        .key;
    let now = kedge::krb::time::unix_secs(std::time::SystemTime::now());
    let token = |kvno: u32| {
        let m = mint(&MintRequest {
            client: &alice,
            service: &spn,
            service_key: key,
            kvno,
            now,
            cusec: 1,
            lifetime: 3600,
            framing: Framing::Spnego { legacy_oid: true },
            gss_flags: 0x3e,
            channel_binding: None,
            pac: None,
        });
        base64::engine::general_purpose::STANDARD.encode(m.token)
    };
    let header = format!("Authorization: Negotiate {}\n", token(5));
    let o = kedge(
        &[
            "token",
            "verify",
            "--keytab",
            kt_s,
            "--spn",
            "http/outlook.contoso.com",
        ],
        &header,
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("principal:  alice@CONTOSO.COM") && out.contains("kvno:       5"),
        "{out}"
    );
    // Wrong protocol: the same token checked as an exchangeMDB one.
    let o = kedge(
        &[
            "token",
            "verify",
            "--keytab",
            kt_s,
            "--spn",
            "exchangeMDB/outlook.contoso.com",
        ],
        &header,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("wrong_spn"), "{}", text(&o));
    // Expired at a later `--now`.
    let later = (now + 7200).to_string();
    let o = kedge(&["token", "verify", "--keytab", kt_s, "--now", &later], &header);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("KRB_AP_ERR_TKT_EXPIRED"), "{}", text(&o));
    // Garbage is a clear error, not a panic.
    let o = kedge(
        &["token", "verify", "--keytab", kt_s],
        "Negotiate !!!not-base64!!!\n",
    );
    assert!(!o.status.success() && text(&o).contains("base64"), "{}", text(&o));
    let o = kedge(
        &["token", "verify", "--keytab", kt_s],
        "Authorization: NTLM TlRMTVNTUAABAAAA\n",
    );
    assert!(!o.status.success() && text(&o).contains("NTLM"), "{}", text(&o));
}

/// `keytab add` for each AD account type gives the keys a Samba AD DC exported for that account
/// (tests/testdata/keytab/samba_ad_accounts.txt), filed under the SPN and the account principal.
#[test]
fn keytab_add_matches_ad_exported_keys_for_user_and_computer_accounts() {
    let cases = [
        (
            "user",
            "ExchAsaSvc",
            "Us3r-Asa-Pa55!",
            "samba_ad_user_ExchAsaSvc.keytab",
            "ExchAsaSvc@KEDGE.AD",
        ),
        (
            "computer",
            "EXCH2010ASA",
            "C0mputer-Asa-Pa55!",
            "samba_ad_computer_EXCH2010ASA.keytab",
            "EXCH2010ASA$@KEDGE.AD",
        ),
    ];
    for (kind, account, password, exported, own) in cases {
        let dir = tempfile::tempdir().unwrap();
        let kt = dir.path().join("asa.keytab");
        let o = kedge(
            &[
                "keytab",
                "add",
                kt.to_str().unwrap(),
                "--principal",
                "http/outlook.kedge.ad@KEDGE.AD",
                "--account",
                account,
                "--account-type",
                kind,
                "--kvno",
                "2",
                "--enctypes",
                "aes256-cts-hmac-sha1-96,aes128-cts-hmac-sha1-96,arcfour-hmac",
                "--password-stdin",
            ],
            &format!("{password}\n"),
        );
        assert!(o.status.success(), "{}", text(&o));
        let ours = Keytab::parse(&std::fs::read(&kt).unwrap()).unwrap();
        let ad_path = format!("{}/tests/testdata/keytab/{exported}", env!("CARGO_MANIFEST_DIR"));
        let ad = Keytab::parse(&std::fs::read(ad_path).unwrap()).unwrap();
        for principal in ["http/outlook.kedge.ad@KEDGE.AD", own] {
            for want in &ad.entries {
                let got = ours
                    .entries
                    .iter()
                    .find(|e| e.principal.to_string() == principal && e.key.etype() == want.key.etype())
                    .unwrap_or_else(|| {
                        panic!("{kind}: no {} key under {principal}", want.key.etype().name())
                    });
                assert!(
                    got.key.expose_bytes() == want.key.expose_bytes(),
                    "{kind} {principal} {}: differs from AD's key",
                    want.key.etype().name()
                );
            }
        }
    }
}
