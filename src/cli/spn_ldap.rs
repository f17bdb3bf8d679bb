//! `kedge spn check --ldap`: what AD says about the ASA (its SPNs, duplicates on other accounts,
//! `msDS-KeyVersionNumber` against the keytab), printed one finding a line.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::asa::ad_check::{self, Finding, LdapOptions};
use crate::asa::spn;
use crate::krb::keyset::principal_matches;
use crate::krb::keytab::Keytab;
use crate::krb::principal::Principal;

#[derive(Args, Debug)]
pub struct LdapArgs {
    /// Ask AD: `ldap://dc01.contoso.com`, `ldaps://…`, or a global catalog
    /// (`ldap://gc.contoso.com:3268`) to look for duplicates in the whole forest.
    #[arg(long)]
    pub ldap: Option<String>,
    /// Simple-bind name (DN or UPN, e.g. svc-kedge@contoso.com); anonymous without it.
    #[arg(long)]
    pub ldap_bind: Option<String>,
    /// File holding the bind password (first line; refused if group or others may write it).
    #[arg(long)]
    pub ldap_password_file: Option<PathBuf>,
    /// Search base (default: the server's defaultNamingContext; the whole forest on a GC).
    #[arg(long)]
    pub ldap_base: Option<String>,
}

/// Runs the LDAP part of the check; returns how many problems it found.
pub fn check(
    args: &LdapArgs,
    url: &str,
    kt: &Keytab,
    account: Option<&Principal>,
    arrays: &[String],
    timeout: Duration,
) -> anyhow::Result<usize> {
    let account = account.context("--ldap needs the ASA's account: pass --account")?;
    let sam = account.components.first().cloned().unwrap_or_default();
    let password = match &args.ldap_password_file {
        Some(p) => {
            let bytes = crate::secret_file::read_secret(p, "LDAP bind password")?;
            let text = std::str::from_utf8(&bytes).context("the LDAP password file is not UTF-8")?;
            Some(zeroize::Zeroizing::new(
                text.lines().next().unwrap_or("").to_string(),
            ))
        }
        None => None,
    };
    let opts = LdapOptions {
        url: url.to_string(),
        bind: args.ldap_bind.clone(),
        password,
        base: args.ldap_base.clone(),
        timeout,
    };
    let mut spns: Vec<String> = arrays.iter().flat_map(|a| spn::required_spns(a)).collect();
    let mut seen = std::collections::HashSet::new();
    spns.retain(|s| seen.insert(s.to_ascii_lowercase()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let facts = rt.block_on(ad_check::read_facts(&opts, &sam, &spns))?;
    let mine: Vec<u32> = kt
        .entries
        .iter()
        .filter(|e| principal_matches(&e.principal, account))
        .map(|e| e.kvno)
        .collect();
    let keytab_kvno = mine
        .into_iter()
        .max()
        .or_else(|| kt.entries.iter().map(|e| e.kvno).max());
    let down_level = format!("{}\\{sam}", spn::netbios_from_realm(&account.realm));
    let found = ad_check::findings(&facts, &sam, &down_level, keytab_kvno);
    outln!(
        "AD ({url}): account {}",
        facts
            .account
            .as_ref()
            .map(|a| a.dn.as_str())
            .unwrap_or("not found")
    )?;
    for f in &found {
        let mark = if f.is_problem() { "PROBLEM" } else { "ok" };
        outln!("  {mark:<8} {f}")?;
    }
    Ok(found.iter().filter(|f| Finding::is_problem(f)).count())
}
