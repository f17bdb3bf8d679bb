//! The SPN plan an Exchange administrator runs (DESIGN.md §1, §4): for one ASA account and every
//! namespace of the array (the HTTP names and the RPC array name often differ), the forest-wide
//! duplicate queries, the `setspn -S` lines, the keytab, the CAS members' credential and the
//! warning about Exchange's own scheduled roll; or, with `remove`, the `setspn -D` lines.
//! Pure text; `kedge spn plan` prints it.

use std::fmt::Write;

use super::spn::required_spns;
use crate::krb::ad_account::{AccountType, AdAccount};

/// What the plan is for.
#[derive(Clone, Debug)]
pub struct PlanInput<'a> {
    /// Array names (`outlook.contoso.com`, `mail.contoso.com`), at least one.
    pub arrays: &'a [String],
    /// The ASA account (type, sAMAccountName, realm).
    pub account: &'a AdAccount,
    /// NetBIOS domain name (`CONTOSO`).
    pub domain: &'a str,
    /// The `setspn -D` plan instead of the registration plan.
    pub remove: bool,
}

/// The warning every plan, the runbook and `kedge status` carry: Exchange's scheduled roll and
/// kedge cannot both own the ASA's password.
pub const ROLL_ASA_WARNING: &str = "Exchange's scheduled task \"Exchange-RollAsa\" (made by \
RollAlternateServiceAccountPassword.ps1 -CreateScheduledTask) sets a random ASA password nobody \
sees: kedge's keytab goes stale at its next run and every Kerberos logon through kedge fails. \
Where the CAS members validate too (passthrough routes, RPC listeners), delete that task \
(Unregister-ScheduledTask Exchange-RollAsa) and roll with `kedge asa roll prepare` / `commit`.";

fn spns(arrays: &[String]) -> Vec<String> {
    let mut all: Vec<String> = arrays.iter().flat_map(|a| required_spns(a)).collect();
    let mut seen = std::collections::HashSet::new();
    all.retain(|s| seen.insert(s.to_ascii_lowercase()));
    all
}

/// Renders the plan.
pub fn render(input: &PlanInput<'_>) -> String {
    if input.remove {
        render_remove(input)
    } else {
        render_add(input)
    }
}

fn render_remove(input: &PlanInput<'_>) -> String {
    let acct = input.account.down_level(input.domain);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Removing the ASA SPNs of {} from {acct}",
        input.arrays.join(", ")
    );
    s.push_str("# Tickets for these names stop being issued at once; clients that hold one keep it until it expires.\n\n");
    for p in spns(input.arrays) {
        let _ = writeln!(s, "setspn -D {p} {acct}");
    }
    let _ = writeln!(s, "\n# Verify:\nsetspn -L {acct}");
    s.push_str("\n# Then drop kedge's keys filed under them (the account's own keys stay):\n");
    for p in spns(input.arrays) {
        let _ = writeln!(
            s,
            "kedge keytab remove asa.keytab --principal {p}@{}",
            input.account.realm()
        );
    }
    s
}

fn render_add(input: &PlanInput<'_>) -> String {
    let a = input.account;
    let realm = a.realm();
    let acct = a.down_level(input.domain);
    let kind = match a.kind() {
        AccountType::Computer => "computer account",
        AccountType::User => "user account",
    };
    let spns = spns(input.arrays);
    let mut s = String::new();
    let mut line = |l: &str| {
        s.push_str(l);
        s.push('\n');
    };
    line(&format!(
        "# ASA SPN plan for {} {}, account {acct} ({kind}), realm {realm}",
        if input.arrays.len() == 1 {
            "array"
        } else {
            "arrays"
        },
        input.arrays.join(", ")
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
    line("# 3. Verify, and read the key version number for step 4:");
    line(&format!("setspn -L {acct}"));
    line(&format!(
        "Get-AD{} {} -Properties msDS-KeyVersionNumber | fl Name,msDS-KeyVersionNumber",
        if a.kind() == AccountType::Computer {
            "Computer"
        } else {
            "User"
        },
        a.sam_account_name().trim_end_matches('$')
    ));
    line("");
    line("# 4. A keytab for kedge, derived from the password you set (AD's salt for this account");
    line(&format!(
        "#    type: {}); keys go under the account principal {} and the names below:",
        a.salt(),
        a.principal()
    ));
    let principals: String = input
        .arrays
        .iter()
        .map(|x| {
            format!(
                " --principal http/{}@{realm}",
                x.trim_end_matches('.').to_ascii_lowercase()
            )
        })
        .collect();
    line(&format!(
        "kedge keytab add asa.keytab --account {} --account-type {}{principals} --kvno <msDS-KeyVersionNumber> --password-stdin",
        a.sam_account_name(),
        a.kind().as_str()
    ));
    let arrays: String = input.arrays.iter().map(|x| format!(" --array {x}")).collect();
    line(&format!(
        "kedge spn check --keytab asa.keytab{arrays} --account {} --account-type {} --kdc <DC>:88",
        a.sam_account_name(),
        a.kind().as_str()
    ));
    line("#  or with ktpass on a domain controller (then prove it with the spn check above):");
    line(&format!(
        "ktpass /princ {}@{realm} /mapuser {acct} /crypto AES256-SHA1 /ptype KRB5_NT_PRINCIPAL /pass * -setpass -setupn /out asa.keytab",
        a.sam_account_name()
    ));
    line("#    Careful: without -setpass, ktpass RESETS the account's password to /pass (the CAS members");
    line("#    must then get the same password, step 5); -setupn keeps it from changing the account's UPN.");
    line("#    ktpass salts AES keys from /princ, so its AES keys match AD's only for a user account");
    line("#    whose /princ is its sAMAccountName; for a computer account use the kedge command above.");
    line("");
    line("# 5. Every CAS member must hold the same password (Exchange 2010: Set-ClientAccessServer,");
    line("#    2016 and later: Set-ClientAccessService):");
    line(&format!("$cred = Get-Credential {acct}"));
    line("Get-ClientAccessServer | Set-ClientAccessServer -AlternateServiceAccountCredential $cred");
    line("Get-ClientAccessServer -IncludeAlternateServiceAccountCredentialStatus | fl Name,AlternateServiceAccountConfiguration");
    line("");
    line("# WARNING — Exchange-RollAsa:");
    for w in wrap(ROLL_ASA_WARNING, 92) {
        line(&format!("#   {w}"));
    }
    line("#   Check on a CAS: Get-ScheduledTask -TaskName Exchange-RollAsa");
    s
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out = vec![String::new()];
    for w in text.split_whitespace() {
        let cur = out.last_mut().expect("never empty");
        if !cur.is_empty() && cur.len() + 1 + w.len() > width {
            out.push(w.to_string());
        } else {
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(w);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(kind: AccountType, name: &str, arrays: &[&str], remove: bool) -> String {
        let arrays: Vec<String> = arrays.iter().map(|s| s.to_string()).collect();
        let account = AdAccount::new(kind, name, "CONTOSO.COM").unwrap();
        render(&PlanInput {
            arrays: &arrays,
            account: &account,
            domain: "CONTOSO",
            remove,
        })
    }

    #[test]
    fn user_account_is_named_without_a_dollar_and_with_the_user_salt() {
        let p = plan(AccountType::User, "ExchAsaSvc", &["outlook.contoso.com"], false);
        assert!(
            p.contains("setspn -S http/outlook.contoso.com CONTOSO\\ExchAsaSvc\n"),
            "{p}"
        );
        assert!(!p.contains("ExchAsaSvc$"), "{p}");
        assert!(p.contains("CONTOSO.COMExchAsaSvc"), "{p}");
        assert!(p.contains("--account ExchAsaSvc --account-type user"), "{p}");
        assert!(p.contains("Get-ADUser ExchAsaSvc"), "{p}");
    }

    #[test]
    fn computer_account_gets_its_dollar_and_host_salt() {
        let p = plan(
            AccountType::Computer,
            "EXCH2010ASA",
            &["outlook.contoso.com"],
            false,
        );
        assert!(p.contains("setspn -S exchangeMDB/outlook.contoso.com CONTOSO\\EXCH2010ASA$\n"));
        assert!(p.contains("CONTOSO.COMhostexch2010asa.contoso.com"));
        assert!(p.contains("Get-ADComputer EXCH2010ASA "));
    }

    #[test]
    fn several_namespaces_get_every_spn_once_and_queries_come_first() {
        let p = plan(
            AccountType::Computer,
            "EXCHASA",
            &["outlook.contoso.com", "mail.contoso.com", "Outlook.Contoso.com"],
            false,
        );
        for host in ["outlook.contoso.com", "mail.contoso.com"] {
            for svc in ["http", "exchangeMDB", "exchangeRFR", "exchangeAB"] {
                let spn = format!("{svc}/{host}");
                assert_eq!(p.matches(&format!("setspn -F -Q {spn}\n")).count(), 1, "{spn}");
                let q = p.find(&format!("setspn -F -Q {spn}")).unwrap();
                let s = p.find(&format!("setspn -S {spn} ")).unwrap();
                assert!(q < s);
            }
        }
        assert!(p.contains("--array outlook.contoso.com --array mail.contoso.com"));
    }

    #[test]
    fn every_plan_warns_about_exchange_roll_asa() {
        let p = plan(AccountType::Computer, "EXCHASA", &["outlook.contoso.com"], false);
        assert!(p.contains("WARNING — Exchange-RollAsa"), "{p}");
        assert!(p.contains("Unregister-ScheduledTask"), "{p}");
    }

    #[test]
    fn remove_plan_has_setspn_d_lines_only() {
        let p = plan(AccountType::User, "svc", &["outlook.contoso.com"], true);
        assert!(
            p.contains("setspn -D exchangeAB/outlook.contoso.com CONTOSO\\svc\n"),
            "{p}"
        );
        assert!(!p.contains("setspn -S"), "{p}");
        assert!(p.contains("kedge keytab remove asa.keytab --principal http/outlook.contoso.com@CONTOSO.COM"));
    }
}
