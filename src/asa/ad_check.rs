//! What Active Directory says about the ASA (`kedge spn check --ldap`): the account's
//! `servicePrincipalName` values and `msDS-KeyVersionNumber`, and every account holding each
//! required SPN (a duplicate makes the KDC refuse or misdirect tickets: KRB_AP_ERR_MODIFIED on
//! the members). Read with the `ldap3` crate over a simple bind (ldaps:// or StartTLS-less
//! ldap://; AD may require signing or TLS for simple binds). The judgement is pure: [`findings`].

use std::time::Duration;

use ldap3::{ldap_escape, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use zeroize::Zeroizing;

/// How to reach and bind to AD.
#[derive(Clone, Debug)]
pub struct LdapOptions {
    /// `ldap://dc01.contoso.com`, `ldaps://dc01.contoso.com`, or a global catalog
    /// (`ldap://gc.contoso.com:3268`: the duplicate search then covers the whole forest).
    pub url: String,
    /// Bind name (a DN, or a UPN such as `svc-kedge@contoso.com`); anonymous when `None`.
    pub bind: Option<String>,
    /// Bind password.
    pub password: Option<Zeroizing<String>>,
    /// Search base (default: the server's `defaultNamingContext`; "" on a global catalog).
    pub base: Option<String>,
    /// Per-operation timeout.
    pub timeout: Duration,
}

/// Why AD could not be read. No variant carries the password.
#[derive(Debug, thiserror::Error)]
pub enum AdCheckError {
    /// Connecting, binding or searching failed.
    #[error("LDAP {url}: {what}: {reason}")]
    Ldap {
        url: String,
        what: &'static str,
        reason: String,
    },
}

/// The ASA's account as AD stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountFacts {
    /// Its DN.
    pub dn: String,
    /// Its `servicePrincipalName` values.
    pub spns: Vec<String>,
    /// Its `msDS-KeyVersionNumber` (AD's current kvno).
    pub kvno: Option<u32>,
}

/// What was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdFacts {
    /// The account, if found.
    pub account: Option<AccountFacts>,
    /// For each required SPN, the DNs of every account holding it.
    pub holders: Vec<(String, Vec<String>)>,
}

/// One thing the check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// No account of that sAMAccountName.
    AccountMissing { sam: String },
    /// The SPN is on no account: tickets for it cannot be had (KDC_ERR_S_PRINCIPAL_UNKNOWN).
    SpnMissing { spn: String, add: String },
    /// The SPN is on other accounts only: their key encrypts its tickets, not the ASA's.
    SpnElsewhere { spn: String, holders: Vec<String> },
    /// The SPN is on the ASA and on other accounts too: AD's behaviour is undefined.
    SpnDuplicate { spn: String, others: Vec<String> },
    /// AD's kvno is ahead of the keytab's: the password changed elsewhere.
    StaleKeytab { ad: u32, keytab: u32 },
    /// The keytab holds a kvno above AD's: a prepared roll awaiting commit (fine).
    Staged { ad: u32, keytab: u32 },
    /// The SPN is registered on the ASA only (fine).
    SpnOk { spn: String },
    /// AD's kvno equals the keytab's newest (fine).
    KvnoOk { kvno: u32 },
}

impl Finding {
    /// Whether the finding makes the check fail.
    pub fn is_problem(&self) -> bool {
        !matches!(
            self,
            Self::Staged { .. } | Self::SpnOk { .. } | Self::KvnoOk { .. }
        )
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AccountMissing { sam } => write!(f, "MISSING ACCOUNT: AD has no account {sam}"),
            Self::SpnMissing { spn, add } => write!(f, "{spn}: NOT REGISTERED in AD (add it: {add})"),
            Self::SpnElsewhere { spn, holders } => write!(
                f,
                "{spn}: REGISTERED ON ANOTHER ACCOUNT ({}), not on the ASA: move it (setspn -D, then setspn -S)",
                holders.join("; ")
            ),
            Self::SpnDuplicate { spn, others } => write!(
                f,
                "{spn}: DUPLICATE: also on {} (find with setspn -F -Q {spn}; remove with setspn -D)",
                others.join("; ")
            ),
            Self::StaleKeytab { ad, keytab } => write!(
                f,
                "STALE KEYTAB: AD's msDS-KeyVersionNumber is {ad}, the keytab's newest kvno is {keytab}: \
                 the password changed elsewhere (Exchange-RollAsa?); tickets of kvno {ad} will fail"
            ),
            Self::Staged { ad, keytab } => write!(
                f,
                "kvno {keytab} staged above AD's {ad} (a prepared roll: run `kedge asa roll commit`)"
            ),
            Self::SpnOk { spn } => write!(f, "{spn}: registered on the ASA only"),
            Self::KvnoOk { kvno } => write!(f, "AD's msDS-KeyVersionNumber {kvno} = the keytab's newest kvno"),
        }
    }
}

/// Judges what AD said against the required SPNs and the keytab's newest kvno (pure).
/// `add_as` is the account as `setspn` names it, for the advice.
pub fn findings(facts: &AdFacts, sam: &str, add_as: &str, keytab_kvno: Option<u32>) -> Vec<Finding> {
    let Some(account) = &facts.account else {
        return vec![Finding::AccountMissing { sam: sam.to_string() }];
    };
    let mut out = Vec::new();
    for (spn, holders) in &facts.holders {
        let on_asa = account.spns.iter().any(|s| s.eq_ignore_ascii_case(spn));
        let others: Vec<String> = holders
            .iter()
            .filter(|dn| !dn.eq_ignore_ascii_case(&account.dn))
            .cloned()
            .collect();
        out.push(match (on_asa, others.is_empty()) {
            (true, true) => Finding::SpnOk { spn: spn.clone() },
            (true, false) => Finding::SpnDuplicate {
                spn: spn.clone(),
                others,
            },
            (false, false) => Finding::SpnElsewhere {
                spn: spn.clone(),
                holders: others,
            },
            (false, true) => Finding::SpnMissing {
                spn: spn.clone(),
                add: format!("setspn -S {spn} {add_as}"),
            },
        });
    }
    match (account.kvno, keytab_kvno) {
        (Some(ad), Some(kt)) if ad > kt => out.push(Finding::StaleKeytab { ad, keytab: kt }),
        (Some(ad), Some(kt)) if ad < kt => out.push(Finding::Staged { ad, keytab: kt }),
        (Some(ad), Some(_)) => out.push(Finding::KvnoOk { kvno: ad }),
        _ => {}
    }
    out
}

fn entry(re: ldap3::ResultEntry) -> Option<SearchEntry> {
    // ldap3 panics on a malformed entry; the DC's answer must not take kedge down with it.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| SearchEntry::construct(re))).ok()
}

/// Reads the account `sam` and the holders of every SPN in `spns`.
pub async fn read_facts(opts: &LdapOptions, sam: &str, spns: &[String]) -> Result<AdFacts, AdCheckError> {
    let err = |what: &'static str| {
        move |e: ldap3::LdapError| AdCheckError::Ldap {
            url: opts.url.clone(),
            what,
            reason: e.to_string(),
        }
    };
    let settings = LdapConnSettings::new().set_conn_timeout(opts.timeout);
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &opts.url)
        .await
        .map_err(err("connect"))?;
    let driver = tokio::spawn(async move {
        let _ = conn.drive().await;
    });
    let result = async {
        if let Some(bind) = &opts.bind {
            let pw = opts.password.as_ref().map(|p| p.as_str()).unwrap_or("");
            ldap.with_timeout(opts.timeout)
                .simple_bind(bind, pw)
                .await
                .and_then(|r| r.success())
                .map_err(err("bind"))?;
        }
        let gc = opts.url.contains(":3268") || opts.url.contains(":3269");
        let base = match &opts.base {
            Some(b) => b.clone(),
            None if gc => String::new(),
            None => {
                let (rs, _) = ldap
                    .with_timeout(opts.timeout)
                    .search("", Scope::Base, "(objectClass=*)", vec!["defaultNamingContext"])
                    .await
                    .and_then(|r| r.success())
                    .map_err(err("reading the rootDSE"))?;
                rs.into_iter()
                    .filter_map(entry)
                    .find_map(|e| e.attrs.get("defaultNamingContext")?.first().cloned())
                    .unwrap_or_default()
            }
        };
        let filter = format!("(sAMAccountName={})", ldap_escape(sam));
        let (rs, _) = ldap
            .with_timeout(opts.timeout)
            .search(
                &base,
                Scope::Subtree,
                &filter,
                vec!["servicePrincipalName", "msDS-KeyVersionNumber"],
            )
            .await
            .and_then(|r| r.success())
            .map_err(err("searching the account"))?;
        let account = rs.into_iter().filter_map(entry).next().map(|e| AccountFacts {
            spns: e.attrs.get("servicePrincipalName").cloned().unwrap_or_default(),
            kvno: e
                .attrs
                .get("msDS-KeyVersionNumber")
                .and_then(|v| v.first())
                .and_then(|v| v.parse().ok()),
            dn: e.dn,
        });
        let mut holders = Vec::new();
        for spn in spns {
            let filter = format!("(servicePrincipalName={})", ldap_escape(spn.as_str()));
            let (rs, _) = ldap
                .with_timeout(opts.timeout)
                .search(&base, Scope::Subtree, &filter, vec!["1.1"])
                .await
                .and_then(|r| r.success())
                .map_err(err("searching SPN holders"))?;
            holders.push((
                spn.clone(),
                rs.into_iter().filter_map(entry).map(|e| e.dn).collect(),
            ));
        }
        let _ = ldap.unbind().await;
        Ok(AdFacts { account, holders })
    }
    .await;
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASA: &str = "CN=EXCHASA,CN=Computers,DC=contoso,DC=com";
    const CAS: &str = "CN=CAS01,CN=Computers,DC=contoso,DC=com";

    fn facts(spns: &[&str], holders: &[(&str, &[&str])], kvno: u32) -> AdFacts {
        AdFacts {
            account: Some(AccountFacts {
                dn: ASA.into(),
                spns: spns.iter().map(|s| s.to_string()).collect(),
                kvno: Some(kvno),
            }),
            holders: holders
                .iter()
                .map(|(s, h)| (s.to_string(), h.iter().map(|d| d.to_string()).collect()))
                .collect(),
        }
    }

    #[test]
    fn every_problem_is_named_and_fine_things_are_not_problems() {
        let f = facts(
            &["HTTP/outlook.contoso.com", "exchangeMDB/outlook.contoso.com"],
            &[
                ("http/outlook.contoso.com", &[ASA]),
                ("exchangeMDB/outlook.contoso.com", &[ASA, CAS]),
                ("exchangeRFR/outlook.contoso.com", &[CAS]),
                ("exchangeAB/outlook.contoso.com", &[]),
            ],
            5,
        );
        let got = findings(&f, "EXCHASA$", "CONTOSO\\EXCHASA$", Some(4));
        assert_eq!(
            got[0],
            Finding::SpnOk {
                spn: "http/outlook.contoso.com".into()
            }
        );
        assert!(matches!(&got[1], Finding::SpnDuplicate { others, .. } if others == &[CAS]));
        assert!(matches!(&got[2], Finding::SpnElsewhere { holders, .. } if holders == &[CAS]));
        assert!(
            got[3]
                .to_string()
                .contains("setspn -S exchangeAB/outlook.contoso.com CONTOSO\\EXCHASA$"),
            "{}",
            got[3]
        );
        assert_eq!(got[4], Finding::StaleKeytab { ad: 5, keytab: 4 });
        assert_eq!(got.iter().filter(|f| f.is_problem()).count(), 4);
    }

    #[test]
    fn a_staged_kvno_and_a_matching_kvno_are_fine_and_a_missing_account_is_not() {
        let f = facts(&["http/x"], &[("http/x", &[ASA])], 5);
        assert!(!findings(&f, "A$", "D\\A$", Some(6))
            .iter()
            .any(Finding::is_problem));
        assert!(!findings(&f, "A$", "D\\A$", Some(5))
            .iter()
            .any(Finding::is_problem));
        let none = AdFacts {
            account: None,
            holders: vec![],
        };
        assert!(findings(&none, "A$", "D\\A$", Some(5))[0].is_problem());
    }
}
