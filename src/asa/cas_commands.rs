//! The Exchange Management Shell lines that give every CAS member the ASA's new password during
//! a staged roll (`kedge asa roll prepare`): Exchange 2010's `Set-ClientAccessServer`, 2013's
//! too, and 2016/2019's `Set-ClientAccessService`, each with
//! `-AlternateServiceAccountCredential`. The member then holds the new password as Latest and
//! the old one as Previous, both valid, until AD's password changes (commit).

use std::fmt::Write;

/// Which cmdlet family the members take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeVersion {
    /// Exchange 2010 and 2013: `Set-ClientAccessServer`.
    Exchange2010,
    /// Exchange 2016 and later: `Set-ClientAccessService`.
    Exchange2016,
}

impl std::str::FromStr for ExchangeVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "2010" | "2013" => Ok(Self::Exchange2010),
            "2016" | "2019" | "se" | "SE" => Ok(Self::Exchange2016),
            _ => Err(format!(
                "exchange version {s:?}: want 2010, 2013, 2016, 2019 or SE"
            )),
        }
    }
}

impl ExchangeVersion {
    fn noun(self) -> &'static str {
        match self {
            Self::Exchange2010 => "ClientAccessServer",
            Self::Exchange2016 => "ClientAccessService",
        }
    }
}

/// The lines for `members` (CAS server names; none: every CAS via the `Get-` cmdlet), reading
/// the password from `password_file` (its name as copied to the Exchange server) for the
/// account `down_level` (`CONTOSO\EXCH2010ASA$`).
pub fn render(down_level: &str, password_file: &str, members: &[String], version: ExchangeVersion) -> String {
    let noun = version.noun();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "$pw = ConvertTo-SecureString (Get-Content -Raw '{}').Trim() -AsPlainText -Force",
        password_file.replace('\'', "''")
    );
    let _ = writeln!(
        s,
        "$cred = New-Object System.Management.Automation.PSCredential('{}', $pw)",
        down_level.replace('\'', "''")
    );
    if members.is_empty() {
        let _ = writeln!(
            s,
            "Get-{noun} | Set-{noun} -AlternateServiceAccountCredential $cred"
        );
    }
    for m in members {
        let _ = writeln!(
            s,
            "Set-{noun} -Identity {m} -AlternateServiceAccountCredential $cred"
        );
    }
    let _ = writeln!(
        s,
        "Get-{noun} -IncludeAlternateServiceAccountCredentialStatus | fl Name,AlternateServiceAccountConfiguration"
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_2010_members_get_set_client_access_server_each() {
        let m = vec!["CAS01".to_string(), "CAS02".to_string()];
        let s = render(
            "CONTOSO\\EXCH2010ASA$",
            "C:\\asa.password",
            &m,
            ExchangeVersion::Exchange2010,
        );
        assert!(
            s.contains("Set-ClientAccessServer -Identity CAS01 -AlternateServiceAccountCredential $cred\n")
        );
        assert!(
            s.contains("Set-ClientAccessServer -Identity CAS02 -AlternateServiceAccountCredential $cred\n")
        );
        assert!(s.contains("PSCredential('CONTOSO\\EXCH2010ASA$', $pw)"));
        assert!(s.contains("Get-ClientAccessServer -IncludeAlternateServiceAccountCredentialStatus"));
    }

    #[test]
    fn exchange_2016_uses_set_client_access_service_and_all_members_without_names() {
        let s = render("CONTOSO\\asa", "asa.password", &[], "2019".parse().unwrap());
        assert!(s.contains(
            "Get-ClientAccessService | Set-ClientAccessService -AlternateServiceAccountCredential $cred"
        ));
        assert!(!s.contains("ClientAccessServer "));
        assert!("2007".parse::<ExchangeVersion>().is_err());
    }
}
