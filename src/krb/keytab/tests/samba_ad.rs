//! Keys Active Directory derived itself (a Samba AD DC's `samba-tool domain exportkeytab`, see
//! `tests/testdata/keytab/samba_ad_accounts.txt`) against AD's salt rules (MS-KILE §3.1.1.2).

use crate::krb::ad_account::{AccountType, AdAccount};
use crate::krb::crypto::derive_keys;
use crate::krb::keytab::Keytab;

const USER: &[u8] = include_bytes!("../../../../tests/testdata/keytab/samba_ad_user_ExchAsaSvc.keytab");
const COMPUTER: &[u8] =
    include_bytes!("../../../../tests/testdata/keytab/samba_ad_computer_EXCH2010ASA.keytab");

fn assert_same_keys(exported: &[u8], account: &AdAccount, password: &str) {
    let kt = Keytab::parse(exported).unwrap();
    assert_eq!(kt.entries.len(), 3, "aes256, aes128, rc4");
    let etypes: Vec<_> = kt.entries.iter().map(|e| e.key.etype()).collect();
    let derived = derive_keys(password.as_bytes(), account.salt().as_bytes(), &etypes).unwrap();
    for (e, d) in kt.entries.iter().zip(&derived) {
        assert_eq!(e.principal, account.principal());
        assert_eq!(e.kvno, 2);
        assert!(
            d.expose_bytes() == e.key.expose_bytes(),
            "{} key of {} differs from AD's (salt {})",
            e.key.etype().name(),
            e.principal,
            account.salt()
        );
    }
}

#[test]
fn user_account_keys_equal_the_keys_ad_exports() {
    let a = AdAccount::new(AccountType::User, "ExchAsaSvc", "KEDGE.AD").unwrap();
    assert_eq!(a.salt(), "KEDGE.ADExchAsaSvc");
    assert_same_keys(USER, &a, "Us3r-Asa-Pa55!");
}

#[test]
fn computer_account_keys_equal_the_keys_ad_exports() {
    let a = AdAccount::new(AccountType::Computer, "EXCH2010ASA", "kedge.ad").unwrap();
    assert_eq!(a.salt(), "KEDGE.ADhostexch2010asa.kedge.ad");
    assert_same_keys(COMPUTER, &a, "C0mputer-Asa-Pa55!");
}

#[test]
fn the_other_rule_gives_wrong_aes_keys() {
    // A user account salted like a computer (what `keytab add` did before account types) and
    // a user's name lower-cased: AES keys differ from AD's, only rc4 (unsalted) still matches.
    let kt = Keytab::parse(USER).unwrap();
    let aes = &kt.entries[0];
    for salt in ["KEDGE.ADhostexchasasvc.kedge.ad", "KEDGE.ADexchasasvc"] {
        let k = derive_keys(b"Us3r-Asa-Pa55!", salt.as_bytes(), &[aes.key.etype()]).unwrap();
        assert!(k[0].expose_bytes() != aes.key.expose_bytes(), "{salt}");
    }
}
