//! The Active Directory account that holds an ASA's keys, and AD's salt rules for it
//! (MS-KILE §3.1.1.2): a *computer* account (`EXCH2010ASA$`, the usual ASA) salts its AES keys
//! with `<REALM>host<name without $, lowercase>.<realm lowercase>`; a *user* account (the seed
//! allows one) with `<REALM><sAMAccountName as stored, case-sensitive>`. Getting this wrong
//! gives AES keys that silently never decrypt a ticket.

use super::principal::Principal;

/// Which kind of AD account the ASA is (its `objectClass`: `computer` or `user`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccountType {
    /// A computer account (`New-ADComputer`); its sAMAccountName ends with `$`.
    Computer,
    /// A user account (`New-ADUser`); its sAMAccountName has no `$`.
    User,
}

impl AccountType {
    /// `computer` or `user`, as the command line spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Computer => "computer",
            Self::User => "user",
        }
    }
}

impl std::str::FromStr for AccountType {
    type Err = AdAccountError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "computer" => Ok(Self::Computer),
            "user" => Ok(Self::User),
            _ => Err(AdAccountError::UnknownType(s.to_string())),
        }
    }
}

/// Why an account name cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdAccountError {
    /// Neither `user` nor `computer`.
    #[error("account type {0:?}: want `user` or `computer`")]
    UnknownType(String),
    /// Empty, or holding characters AD forbids in a sAMAccountName.
    #[error("account name {0:?} is not a sAMAccountName (empty, or holds one of \"/\\[]:;|=,+*?<>@ or a space at the end)")]
    BadName(String),
    /// A user account named like a computer account.
    #[error("account {0:?} ends with `$`, the mark of a computer account: pass --account-type computer, or the user's name without `$`")]
    DollarOnUser(String),
    /// An empty realm.
    #[error("the account needs a realm (CONTOSO.COM)")]
    NoRealm,
}

/// An ASA's AD account: its type, its sAMAccountName (as stored: a computer's with `$`) and realm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdAccount {
    kind: AccountType,
    sam: String,
    realm: String,
}

/// Characters AD refuses in a sAMAccountName (MS-ADTS §3.1.1.3.1.x, `"/\[]:;|=,+*?<>`), plus `@`
/// which would make the principal ambiguous.
const FORBIDDEN: &[char] = &[
    '"', '/', '\\', '[', ']', ':', ';', '|', '=', ',', '+', '*', '?', '<', '>', '@',
];

impl AdAccount {
    /// The account `name` of type `kind` in `realm`. A computer account's name gets its `$` if
    /// given without; a user's keeps its case, which its salt depends on.
    pub fn new(kind: AccountType, name: &str, realm: &str) -> Result<Self, AdAccountError> {
        let bare = name.strip_suffix('$').unwrap_or(name);
        if bare.is_empty() || bare.ends_with(' ') || bare.contains(FORBIDDEN) {
            return Err(AdAccountError::BadName(name.to_string()));
        }
        if realm.is_empty() {
            return Err(AdAccountError::NoRealm);
        }
        let sam = match kind {
            AccountType::Computer => format!("{bare}$"),
            AccountType::User if name.ends_with('$') => {
                return Err(AdAccountError::DollarOnUser(name.to_string()))
            }
            AccountType::User => name.to_string(),
        };
        Ok(Self {
            kind,
            sam,
            realm: realm.to_ascii_uppercase(),
        })
    }

    /// The account's type.
    pub fn kind(&self) -> AccountType {
        self.kind
    }

    /// The sAMAccountName as AD stores it (`EXCH2010ASA$`, `svc-exch-asa`).
    pub fn sam_account_name(&self) -> &str {
        &self.sam
    }

    /// The realm, uppercase.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The account's own principal, `EXCH2010ASA$@CONTOSO.COM` or `svc-exch-asa@CONTOSO.COM`:
    /// what an AS exchange (`asa roll`, `spn check --kdc`) authenticates as.
    pub fn principal(&self) -> Principal {
        Principal {
            name_type: super::kdc_client::NT_PRINCIPAL,
            components: vec![self.sam.clone()],
            realm: self.realm.clone(),
        }
    }

    /// `DOMAIN\name` as `setspn` and `Get-Credential` take it.
    pub fn down_level(&self, netbios_domain: &str) -> String {
        format!("{}\\{}", netbios_domain.to_ascii_uppercase(), self.sam)
    }

    /// The salt AD uses for the account's AES keys (MS-KILE §3.1.1.2).
    pub fn salt(&self) -> String {
        match self.kind {
            AccountType::Computer => ad_computer_salt(&self.realm, &self.sam),
            AccountType::User => ad_user_salt(&self.realm, &self.sam),
        }
    }
}

/// The AD salt of a computer account such as the ASA (MS-KILE §3.1.1.2):
/// `<REALM uppercase>host<name lowercase, without trailing $>.<realm lowercase>`.
pub fn ad_computer_salt(realm: &str, account: &str) -> String {
    let name = account.trim_end_matches('$').to_ascii_lowercase();
    format!(
        "{}host{}.{}",
        realm.to_ascii_uppercase(),
        name,
        realm.to_ascii_lowercase()
    )
}

/// The AD salt of a user account (MS-KILE §3.1.1.2): `<REALM uppercase><sAMAccountName>`, the
/// name exactly as stored (case-sensitive).
pub fn ad_user_salt(realm: &str, sam_account_name: &str) -> String {
    format!("{}{}", realm.to_ascii_uppercase(), sam_account_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computer_account_gets_its_dollar_and_the_host_salt() {
        let a = AdAccount::new(AccountType::Computer, "EXCH2010ASA", "contoso.com").unwrap();
        assert_eq!(a.sam_account_name(), "EXCH2010ASA$");
        assert_eq!(a.principal().to_string(), "EXCH2010ASA$@CONTOSO.COM");
        assert_eq!(a.salt(), "CONTOSO.COMhostexch2010asa.contoso.com");
        assert_eq!(a.down_level("contoso"), "CONTOSO\\EXCH2010ASA$");
        let same = AdAccount::new(AccountType::Computer, "EXCH2010ASA$", "CONTOSO.COM").unwrap();
        assert_eq!(a, same);
    }

    #[test]
    fn user_account_keeps_its_case_and_has_no_dollar() {
        let a = AdAccount::new(AccountType::User, "ExchAsaSvc", "contoso.com").unwrap();
        assert_eq!(a.principal().to_string(), "ExchAsaSvc@CONTOSO.COM");
        assert_eq!(a.salt(), "CONTOSO.COMExchAsaSvc");
        assert_eq!(a.down_level("CONTOSO"), "CONTOSO\\ExchAsaSvc");
        assert_eq!(
            AdAccount::new(AccountType::User, "EXCHASA$", "CONTOSO.COM"),
            Err(AdAccountError::DollarOnUser("EXCHASA$".into()))
        );
    }

    #[test]
    fn bad_names_and_types_are_refused() {
        for bad in ["", "$", "a/b", "a@b", "a b ", "x*"] {
            assert!(AdAccount::new(AccountType::User, bad, "R").is_err(), "{bad:?}");
        }
        assert_eq!("Computer".parse::<AccountType>(), Ok(AccountType::Computer));
        assert!("machine".parse::<AccountType>().is_err());
        assert_eq!(
            AdAccount::new(AccountType::User, "u", ""),
            Err(AdAccountError::NoRealm)
        );
    }
}
