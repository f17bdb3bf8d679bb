//! `kedge spn plan|check`: the ASA's SPNs on the array names, the `setspn`/`ktpass` commands that
//! register (or remove) them and produce a keytab, and a check that a keytab covers them with keys
//! of the ASA's own account, proven against the KDC with `--kdc`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;

use super::keytab_cmd::read_keytab;
use crate::asa::key_proof::{self, Proof, ProofError};
use crate::asa::spn::{self, CheckInput, Coverage, SpnCheck};
use crate::asa::spn_plan::{self, PlanInput};
use crate::krb::ad_account::{AccountType, AdAccount};
use crate::krb::principal::Principal;

#[derive(Subcommand, Debug)]
pub enum SpnCmd {
    /// Print the SPN plan and the exact setspn / ktpass / kedge commands for an array.
    Plan {
        /// A CAS array name, e.g. outlook.contoso.com; repeat for every namespace (the HTTP
        /// names and the RPC array name often differ).
        #[arg(long, required = true)]
        array: Vec<String>,
        /// The ASA's account name (sAMAccountName), e.g. EXCH2010ASA.
        #[arg(long)]
        account: String,
        /// The ASA's AD account type: `computer` (default, gets `$`) or `user`.
        #[arg(long, default_value = "computer")]
        account_type: AccountType,
        /// The AD realm (default: the first array's parent domain, uppercase).
        #[arg(long)]
        realm: Option<String>,
        /// The NetBIOS domain name (default: the realm's first label).
        #[arg(long)]
        domain: Option<String>,
        /// Print the `setspn -D` lines that remove the SPNs instead.
        #[arg(long)]
        remove: bool,
    },
    /// Check that a keytab holds keys of the ASA's account for every SPN of the arrays; exit 1
    /// when one is missing, only covered by unrelated keys, or refused by the KDC.
    Check {
        /// Keytab file.
        #[arg(long)]
        keytab: PathBuf,
        /// A CAS array name; repeat for every namespace.
        #[arg(long, required = true)]
        array: Vec<String>,
        /// The AD realm (default: the realm of the keytab's entries, else the array's parent domain).
        #[arg(long)]
        realm: Option<String>,
        /// The ASA's account name (default: the keytab's one account principal, if it has one).
        #[arg(long)]
        account: Option<String>,
        /// The ASA's AD account type.
        #[arg(long, default_value = "computer")]
        account_type: AccountType,
        /// KDC host:port: prove every key used with an AS exchange.
        #[arg(long)]
        kdc: Option<String>,
        /// Timeout per KDC or LDAP exchange, seconds.
        #[arg(long, default_value_t = 10)]
        timeout_secs: u64,
        #[command(flatten)]
        ldap: super::spn_ldap::LdapArgs,
    },
}

pub fn run(cmd: SpnCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        SpnCmd::Plan {
            array,
            account,
            account_type,
            realm,
            domain,
            remove,
        } => {
            let realm = realm
                .map(|r| r.to_ascii_uppercase())
                .unwrap_or_else(|| spn::realm_from_fqdn(&array[0]));
            let domain = domain
                .map(|d| d.to_ascii_uppercase())
                .unwrap_or_else(|| spn::netbios_from_realm(&realm));
            let account = AdAccount::new(account_type, &account, &realm)?;
            out!(
                "{}",
                spn_plan::render(&PlanInput {
                    arrays: &array,
                    account: &account,
                    domain: &domain,
                    remove,
                })
            )?;
            Ok(ExitCode::SUCCESS)
        }
        SpnCmd::Check {
            keytab,
            array,
            realm,
            account,
            account_type,
            kdc,
            timeout_secs,
            ldap,
        } => {
            let kt = read_keytab(&keytab)?;
            let realm = realm
                .map(|r| r.to_ascii_uppercase())
                .or_else(|| kt.entries.first().map(|e| e.principal.realm.to_ascii_uppercase()))
                .unwrap_or_else(|| spn::realm_from_fqdn(&array[0]));
            let account = account
                .map(|a| AdAccount::new(account_type, &a, &realm).map(|a| a.principal()))
                .transpose()?;
            let rows = spn::check(
                &kt,
                &CheckInput {
                    arrays: &array,
                    realm: &realm,
                    account: account.as_ref(),
                },
            );
            outln!(
                "Keytab: {}  arrays: {}  realm: {realm}  account: {}",
                keytab.display(),
                array.join(", "),
                spn::account_of(&kt, account.as_ref())
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "(unknown: pass --account)".into())
            )?;
            let client = spn::account_of(&kt, account.as_ref());
            let proofs = match &kdc {
                Some(kdc) => prove_all(
                    &kt,
                    &rows,
                    client.as_ref(),
                    kdc,
                    Duration::from_secs(timeout_secs.max(1)),
                )?,
                None => Vec::new(),
            };
            let code = report(&rows, &proofs, kdc.as_deref())?;
            let Some(url) = &ldap.ldap else {
                return Ok(code);
            };
            outln!()?;
            let problems = super::spn_ldap::check(
                &ldap,
                url,
                &kt,
                client.as_ref(),
                &array,
                Duration::from_secs(timeout_secs.max(1)),
            )?;
            if problems > 0 {
                outln!("{problems} problem(s) in AD")?;
                return Ok(ExitCode::from(1));
            }
            Ok(code)
        }
    }
}

/// A principal whose keys were put to the KDC, the client the AS exchange named, the outcome.
type Proven = (Principal, Principal, Result<Proof, ProofError>);

/// Proves the keys of every principal that serves an SPN: as that principal when it is an
/// account, as the ASA's account when it is an SPN and the account is known (AD refuses SPNs
/// as AS clients), else as the SPN (MIT KDCs accept that).
fn prove_all(
    kt: &crate::krb::keytab::Keytab,
    rows: &[SpnCheck],
    account: Option<&Principal>,
    kdc: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<Proven>> {
    let mut todo: Vec<Principal> = rows.iter().filter_map(|r| r.served_by.clone()).collect();
    todo.sort_by_key(|p| p.canonical());
    todo.dedup_by_key(|p| p.canonical());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    Ok(todo
        .into_iter()
        .map(|p| {
            let client = match account {
                Some(a) if p.components.len() > 1 => a.clone(),
                _ => p.clone(),
            };
            let r = rt.block_on(key_proof::prove(kdc, kt, &p, &client, timeout));
            (p, client, r)
        })
        .collect())
}

fn kvno_list(kvnos: &[u32]) -> String {
    kvnos
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn report(rows: &[SpnCheck], proofs: &[Proven], kdc: Option<&str>) -> anyhow::Result<ExitCode> {
    let mut problems = 0;
    for r in rows {
        let what = match &r.coverage {
            Coverage::Exact { kvnos, enctypes } => {
                format!("exact: kvno {} ({})", kvno_list(kvnos), enctypes.join(", "))
            }
            Coverage::SameAccount {
                principal,
                via,
                kvnos,
                enctypes,
            } => format!(
                "same account: {principal} ({via}) kvno {} ({})",
                kvno_list(kvnos),
                enctypes.join(", ")
            ),
            Coverage::Unrelated { principals } => {
                problems += 1;
                format!(
                    "NOT COVERED: the keytab only holds keys of other names ({}); a ticket for this SPN would not decrypt",
                    principals.join(", ")
                )
            }
            Coverage::Missing => {
                problems += 1;
                "MISSING: no key at all".to_string()
            }
        };
        outln!("{:<52} {what}", r.spn)?;
        if r.rc4_only {
            outln!("{:<52} warning: rc4-hmac only; give the ASA AES keys", "")?;
        }
        if let Some(p) = &r.served_by {
            match proofs.iter().find(|(q, _, _)| q == p).map(|(_, c, r)| (c, r)) {
                Some((client, Ok(proof))) => outln!(
                    "{:<52} proven: the KDC accepts {p} kvno {}{} ({}{})",
                    "",
                    proof.kvno,
                    if client == p {
                        String::new()
                    } else {
                        format!(" as {client}")
                    },
                    proof.etype,
                    match proof.kdc_kvno {
                        Some(k) if k != proof.kvno => format!("; but the KDC's kvno is {k}"),
                        _ => String::new(),
                    }
                )?,
                Some((client, Err(e))) => {
                    problems += 1;
                    outln!("{:<52} NOT PROVEN: {e}", "")?;
                    if client == p && p.components.len() > 1 {
                        outln!(
                            "{:<52} (Active Directory takes no SPN as an AS client: pass --account <ASA>)",
                            ""
                        )?;
                    }
                }
                None => {}
            }
        }
    }
    if problems > 0 {
        outln!(
            "{problems} problem(s){}",
            if kdc.is_none() {
                ""
            } else {
                " (keys checked against the KDC)"
            }
        )?;
        return Ok(ExitCode::from(1));
    }
    if kdc.is_none() {
        outln!("every SPN is covered by keys of one account (not proven: add --kdc <DC>:88 to prove them)")?;
    } else {
        outln!("every SPN is covered and its keys are proven by the KDC")?;
    }
    Ok(ExitCode::SUCCESS)
}
