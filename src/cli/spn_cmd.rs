//! `kedge spn plan|check`: the ASA's SPNs on the array name, the `setspn`/`ktpass` commands that
//! register them and produce a keytab, and a check that a keytab covers them.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::keytab_cmd::read_keytab;
use crate::asa::spn::{self, Coverage};

#[derive(Subcommand, Debug)]
pub enum SpnCmd {
    /// Print the SPN plan and the exact setspn / ktpass / kedge commands for an array.
    Plan {
        /// The CAS array FQDN, e.g. outlook.contoso.com.
        #[arg(long)]
        array: String,
        /// The ASA's account name (sAMAccountName, with or without `$`), e.g. EXCH2010ASA.
        #[arg(long)]
        account: String,
        /// The AD realm (default: the array's parent domain, uppercase).
        #[arg(long)]
        realm: Option<String>,
        /// The NetBIOS domain name (default: the realm's first label).
        #[arg(long)]
        domain: Option<String>,
    },
    /// Check that a keytab holds keys for every SPN of the array; exit 1 when one is missing.
    Check {
        /// Keytab file.
        #[arg(long)]
        keytab: PathBuf,
        /// The CAS array FQDN.
        #[arg(long)]
        array: String,
        /// The AD realm (default: the realm of the keytab's entries, else the array's parent domain).
        #[arg(long)]
        realm: Option<String>,
    },
}

pub fn run(cmd: SpnCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        SpnCmd::Plan {
            array,
            account,
            realm,
            domain,
        } => {
            print!("{}", plan(&array, &account, realm.as_deref(), domain.as_deref()));
            Ok(ExitCode::SUCCESS)
        }
        SpnCmd::Check { keytab, array, realm } => check(&keytab, &array, realm.as_deref()),
    }
}

fn plan(array: &str, account: &str, realm: Option<&str>, domain: Option<&str>) -> String {
    let realm = realm
        .map(str::to_ascii_uppercase)
        .unwrap_or_else(|| spn::realm_from_fqdn(array));
    let domain = domain
        .map(str::to_ascii_uppercase)
        .unwrap_or_else(|| spn::netbios_from_realm(&realm));
    let name = account.trim_end_matches('$');
    let acct = format!("{domain}\\{name}$");
    let spns = spn::required_spns(array);
    let mut s = String::new();
    let mut line = |l: &str| {
        s.push_str(l);
        s.push('\n');
    };
    line(&format!(
        "# ASA SPN plan for array {array}, account {acct}, realm {realm}"
    ));
    line("# Each SPN must exist exactly once in the forest (AD compares them case-insensitively).");
    line("");
    line("# 1. Look for duplicates, forest-wide (expect \"No such SPN found.\"):");
    for p in &spns {
        line(&format!("setspn -F -Q {p}"));
    }
    line("");
    line("# 2. Add them to the ASA (-S checks for duplicates again before adding):");
    for p in &spns {
        line(&format!("setspn -S {p} {acct}"));
    }
    line("");
    line("# 3. Verify:");
    line(&format!("setspn -L {acct}"));
    line("");
    line("# 4. A keytab for kedge. Either derive the keys from the password you set (recommended:");
    line("#    kedge uses AD's computer-account salt, which ktpass does not, see below):");
    line(&format!(
        "kedge keytab add asa.keytab --principal http/{}@{realm} --account {name}$ --kvno <msDS-KeyVersionNumber> --password-stdin",
        array.to_ascii_lowercase()
    ));
    line("#    (repeat with --principal exchangeMDB/…, exchangeRFR/…, exchangeAB/… if you want exact names;");
    line("#    kedge falls back to any key of the ASA, so one principal is enough)");
    line("#  or with ktpass on a domain controller:");
    line(&format!(
        "ktpass /princ http/{}@{realm} /mapuser {acct} /crypto AES256-SHA1 /ptype KRB5_NT_SRV_HST /pass * /out asa.keytab",
        array.to_ascii_lowercase()
    ));
    line("#    Careful: without -setpass, ktpass RESETS the account's password to /pass (Exchange must");
    line("#    then get the same password, step 5); with -setpass the password is only used to derive");
    line("#    keys and must equal the account's current one. ktpass also sets the account's UPN to");
    line("#    /princ unless you pass -setupn, and salts AES keys from /princ, while AD salts a computer");
    line(&format!(
        "#    account's keys with {} — so prefer the kedge command above for AES",
        crate::krb::keytab::ad_computer_salt(&realm, name)
    ));
    line("#    keys, and prove any keytab with: kedge asa roll --dry-run --keytab asa.keytab …");
    line("");
    line("# 5. Exchange: every CAS member must hold the same password:");
    line(&format!(
        "#    Set-ClientAccessServer <CAS> -AlternateServiceAccountCredential (Get-Credential {acct})"
    ));
    line("#    (Set-ClientAccessService on Exchange 2016+). Check with");
    line("#    Get-ClientAccessServer -IncludeAlternateServiceAccountCredentialStatus | fl Name,AlternateServiceAccountConfiguration");
    line("#    Exchange's Scripts\\RollAlternateServiceAccountPassword.ps1 rolls to a random password it");
    line(
        "#    never reveals, so kedge's keytab cannot follow it: roll with `kedge asa roll --show-password`",
    );
    line("#    and push that password with Set-ClientAccessServer instead.");
    s
}

fn check(path: &std::path::Path, array: &str, realm: Option<&str>) -> anyhow::Result<ExitCode> {
    let kt = read_keytab(path)?;
    let realm = realm
        .map(str::to_ascii_uppercase)
        .or_else(|| kt.entries.first().map(|e| e.principal.realm.clone()))
        .unwrap_or_else(|| spn::realm_from_fqdn(array));
    let rows = spn::check(&kt, array, &realm);
    println!("Keytab: {}  array: {array}  realm: {realm}", path.display());
    let mut missing = 0;
    for r in &rows {
        let what = match &r.coverage {
            Coverage::Exact { kvnos, enctypes } => format!(
                "exact: kvno {} ({})",
                kvnos
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                enctypes.join(", ")
            ),
            Coverage::Fallback {
                principal,
                kvno,
                enctypes,
            } => format!(
                "covered by fallback to {principal} kvno {kvno} ({}) — only if that is the same ASA account",
                enctypes.join(", ")
            ),
            Coverage::Missing => {
                missing += 1;
                "MISSING: no key at all".to_string()
            }
        };
        println!("{:<48} {what}", r.spn);
        if r.rc4_only {
            println!("{:<48} warning: rc4-hmac only; give the ASA AES keys", "");
        }
    }
    if missing > 0 {
        println!("{missing} SPN(s) missing");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
