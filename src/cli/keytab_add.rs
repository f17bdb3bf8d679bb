//! `kedge keytab add`: keys derived from the ASA's password with AD's salt for its account type,
//! filed under every SPN asked for *and* the account principal itself (`EXCH2010ASA$@…` or
//! `svc@…`), so a later `kedge asa roll --principal <account>` finds them. Never prints key bytes.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;

use super::keytab_cmd::{read_keytab, write_atomic};
use crate::krb::ad_account::{AccountType, AdAccount};
use crate::krb::crypto::{string_to_key, EncType};
use crate::krb::keyset::principal_matches;
use crate::krb::keytab::{Keytab, KeytabEntry};
use crate::krb::principal::Principal;

#[derive(Args, Debug)]
pub struct AddArgs {
    /// Keytab file (created if missing; written atomically, mode 0600).
    pub file: PathBuf,
    /// A principal to file the keys under, e.g. `http/outlook.contoso.com@CONTOSO.COM`
    /// (repeat for several SPNs). The account principal is always written too.
    #[arg(long)]
    pub principal: Vec<String>,
    /// Key version number (AD's msDS-KeyVersionNumber of the ASA).
    #[arg(long)]
    pub kvno: u32,
    /// The ASA's sAMAccountName (a computer account's with or without `$`; a user's exactly as
    /// stored: its salt is case-sensitive).
    #[arg(long)]
    pub account: Option<String>,
    /// The ASA's AD account type: `computer` (default; salt `<REALM>host<name>.<realm>`) or
    /// `user` (salt `<REALM><sAMAccountName>`).
    #[arg(long)]
    pub account_type: Option<AccountType>,
    /// The realm (default: the realm of the first --principal).
    #[arg(long)]
    pub realm: Option<String>,
    /// Explicit salt (overrides the account's).
    #[arg(long)]
    pub salt: Option<String>,
    /// Enctypes (comma-separated MIT names).
    #[arg(
        long,
        default_value = "aes256-cts-hmac-sha1-96,aes128-cts-hmac-sha1-96",
        value_delimiter = ','
    )]
    pub enctypes: Vec<String>,
    /// Read the password from the first line of stdin (required: passwords never go on the command line).
    #[arg(long)]
    pub password_stdin: bool,
}

impl clap::ValueEnum for AccountType {
    fn value_variants<'a>() -> &'a [Self] {
        &[AccountType::Computer, AccountType::User]
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

/// What `keytab add` writes: the principals and the salt, decided before any key is derived.
#[derive(Debug, PartialEq, Eq)]
pub struct AddPlan {
    /// Every principal the keys are filed under (the SPNs asked for, then the account's own).
    pub principals: Vec<Principal>,
    /// The salt.
    pub salt: String,
}

/// Decides the principals and salt from the arguments (pure; the tests use it).
pub fn plan(
    principals: &[String],
    account: Option<&str>,
    account_type: Option<AccountType>,
    realm: Option<&str>,
    salt: Option<&str>,
) -> anyhow::Result<AddPlan> {
    let mut parsed = Vec::new();
    for p in principals {
        let default_realm = realm.unwrap_or("");
        let pr = Principal::parse(p, default_realm).with_context(|| format!("--principal {p:?}"))?;
        if pr.realm.is_empty() {
            bail!("--principal {p:?} needs a realm (…@CONTOSO.COM) or --realm");
        }
        parsed.push(pr);
    }
    let realm = realm
        .map(str::to_ascii_uppercase)
        .or_else(|| parsed.first().map(|p| p.realm.to_ascii_uppercase()))
        .context("give --realm or a --principal with a realm")?;
    // The account: named, or the one single-component principal given (`EXCH2010ASA$@…`).
    let account = match account {
        Some(a) => Some(AdAccount::new(
            account_type.unwrap_or(AccountType::Computer),
            a,
            &realm,
        )?),
        None => match parsed.iter().find(|p| p.components.len() == 1) {
            Some(p) => {
                let name = &p.components[0];
                let kind = account_type.unwrap_or(if name.ends_with('$') {
                    AccountType::Computer
                } else {
                    AccountType::User
                });
                Some(AdAccount::new(kind, name, &realm)?)
            }
            None => None,
        },
    };
    let salt = match (salt, &account) {
        (Some(s), _) => s.to_string(),
        (None, Some(a)) => a.salt(),
        (None, None) => bail!(
            "{} is an SPN: its keys are the ASA account's, salted with the account name; \
             pass --account <ASA sAMAccountName> [--account-type user|computer] (or --salt)",
            principals
                .first()
                .map(String::as_str)
                .unwrap_or("no --principal given")
        ),
    };
    if let Some(a) = &account {
        let own = a.principal();
        if !parsed.iter().any(|p| principal_matches(p, &own)) {
            parsed.push(own);
        }
    }
    Ok(AddPlan {
        principals: parsed,
        salt,
    })
}

fn read_password() -> anyhow::Result<zeroize::Zeroizing<String>> {
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let password = zeroize::Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
    if password.is_empty() {
        bail!("empty password on stdin");
    }
    Ok(password)
}

pub fn run(a: AddArgs) -> anyhow::Result<ExitCode> {
    if !a.password_stdin {
        bail!("pass --password-stdin and give the password on standard input");
    }
    let plan = plan(
        &a.principal,
        a.account.as_deref(),
        a.account_type,
        a.realm.as_deref(),
        a.salt.as_deref(),
    )?;
    let password = read_password()?;
    add(&a.file, &plan, a.kvno, &a.enctypes, password.as_bytes())
}

fn add(
    path: &Path,
    plan: &AddPlan,
    kvno: u32,
    enctypes: &[String],
    password: &[u8],
) -> anyhow::Result<ExitCode> {
    let mut kt = if path.exists() {
        read_keytab(path)?
    } else {
        Keytab::default()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0);
    for name in enctypes {
        let et = EncType::from_name(name).with_context(|| format!("unknown or refused enctype {name:?}"))?;
        let key = string_to_key(et, password, plan.salt.as_bytes(), None)?;
        for p in &plan.principals {
            kt.entries
                .retain(|e| !(principal_matches(&e.principal, p) && e.kvno == kvno && e.key.etype() == et));
            kt.entries.push(KeytabEntry {
                principal: p.clone(),
                timestamp: now,
                kvno,
                key: key.clone(),
            });
            outln!("added {p} kvno {kvno} {}", et.name())?;
        }
    }
    write_atomic(path, &zeroize::Zeroizing::new(kt.to_bytes()))?;
    outln!("salt used: {}", plan.salt)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: &AddPlan) -> Vec<String> {
        p.principals.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn spn_with_a_computer_account_adds_the_account_principal_and_host_salt() {
        let p = plan(
            &["http/outlook.contoso.com@CONTOSO.COM".into()],
            Some("EXCH2010ASA"),
            None,
            None,
            None,
        )
        .unwrap();
        assert_eq!(
            names(&p),
            ["http/outlook.contoso.com@CONTOSO.COM", "EXCH2010ASA$@CONTOSO.COM"]
        );
        assert_eq!(p.salt, "CONTOSO.COMhostexch2010asa.contoso.com");
    }

    #[test]
    fn user_account_gets_no_dollar_and_the_case_sensitive_user_salt() {
        let p = plan(
            &["http/outlook.contoso.com@CONTOSO.COM".into()],
            Some("ExchAsaSvc"),
            Some(AccountType::User),
            None,
            None,
        )
        .unwrap();
        assert_eq!(
            names(&p),
            ["http/outlook.contoso.com@CONTOSO.COM", "ExchAsaSvc@CONTOSO.COM"]
        );
        assert_eq!(p.salt, "CONTOSO.COMExchAsaSvc");
    }

    #[test]
    fn account_alone_with_a_realm_is_enough_and_an_spn_alone_is_refused() {
        let p = plan(&[], Some("EXCH2010ASA$"), None, Some("contoso.com"), None).unwrap();
        assert_eq!(names(&p), ["EXCH2010ASA$@CONTOSO.COM"]);
        let p = plan(&["svc@CONTOSO.COM".into()], None, None, None, None).unwrap();
        assert_eq!(
            (names(&p), p.salt.as_str()),
            (vec!["svc@CONTOSO.COM".into()], "CONTOSO.COMsvc")
        );
        let e = plan(&["http/x.contoso.com@CONTOSO.COM".into()], None, None, None, None).unwrap_err();
        assert!(e.to_string().contains("--account"), "{e}");
    }
}
