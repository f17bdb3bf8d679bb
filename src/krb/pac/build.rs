//! [`PacBuilder`]: Windows-shaped PACs (MS-PAC 2.3–2.15) for tests and for `kedge-bench`, which
//! embeds them in locally minted tickets so tokens have the size of a real AD user's.

use std::ops::Range;

use crate::krb::crypto::{EncType, Key};

use super::client_info::{self, ClientInfo};
use super::filetime::FileTime;
use super::logon_info::{
    self, GroupMembership, LogonInfo, SidAndAttributes, LOGON_EXTRA_SIDS, SE_GROUP_DEFAULT,
};
use super::sid::Sid;
use super::signature::{self, checksum_len};
use super::upn_dns_info::{self, UpnDnsInfo, UPN_EXTENDED};
use super::{
    PacError, INFO_BUFFER_LEN, PACTYPE_LEN, PAC_ATTRIBUTES_INFO, PAC_CLIENT_INFO, PAC_LOGON_INFO,
    PAC_PRIVSVR_CHECKSUM, PAC_REQUESTOR, PAC_SERVER_CHECKSUM, PAC_UPN_DNS_INFO,
};

/// `PAC_ATTRIBUTES_INFO` flag: the client asked for the PAC (MS-PAC 2.14, PAC_WAS_REQUESTED).
const PAC_WAS_REQUESTED: u32 = 0x1;
/// `USER_NORMAL_ACCOUNT | USER_DONT_EXPIRE_PASSWORD` (MS-SAMR 2.2.1.12), a typical user's UAC.
const UAC_NORMAL_NO_EXPIRY: u32 = 0x210;
/// Domain Users, every account's default primary group.
const DOMAIN_USERS_RID: u32 = 513;
/// `S-1-18-1`, AUTHENTICATION_AUTHORITY_ASSERTED_IDENTITY, which Windows KDCs add to ExtraSids.
const ASSERTED_IDENTITY: (u64, u32) = (18, 1);

/// Builds a PAC in the layout a Windows KDC emits: LOGON_INFO (MS-PAC 2.5), PAC_CLIENT_INFO (2.7),
/// UPN_DNS_INFO (2.10, extended form), PAC_ATTRIBUTES_INFO (2.14), PAC_REQUESTOR (2.15), then the
/// server and KDC signatures (2.8), each buffer 8-aligned.
#[derive(Clone, Debug)]
pub struct PacBuilder {
    logon: LogonInfo,
    client_name: Option<String>,
    upn: Option<String>,
    dns_domain: String,
    upn_flags: u32,
    sam_name_and_sid: bool,
    attributes_and_requestor: bool,
}

impl PacBuilder {
    /// A PAC for `user` (the sAMAccountName) with RID `user_rid` in the domain `domain_sid`,
    /// member of Domain Users (513) only, logged on at the Unix epoch; set the rest with the
    /// other methods.
    pub fn new(user: &str, domain_sid: Sid, user_rid: u32) -> Self {
        Self {
            logon: LogonInfo {
                logon_time: FileTime::from_unix(0),
                logoff_time: FileTime::NEVER,
                kick_off_time: FileTime::NEVER,
                password_last_set: FileTime::from_unix(0),
                password_can_change: FileTime::from_unix(0),
                password_must_change: FileTime::NEVER,
                effective_name: user.to_owned(),
                full_name: String::new(),
                logon_script: String::new(),
                profile_path: String::new(),
                home_directory: String::new(),
                home_directory_drive: String::new(),
                logon_count: 0,
                bad_password_count: 0,
                user_id: user_rid,
                primary_group_id: DOMAIN_USERS_RID,
                group_ids: vec![GroupMembership {
                    rid: DOMAIN_USERS_RID,
                    attributes: SE_GROUP_DEFAULT,
                }],
                user_flags: LOGON_EXTRA_SIDS,
                logon_server: String::new(),
                logon_domain_name: String::new(),
                domain_sid,
                user_account_control: UAC_NORMAL_NO_EXPIRY,
                extra_sids: Vec::new(),
                resource_group_domain_sid: None,
                resource_group_ids: Vec::new(),
            },
            client_name: None,
            upn: None,
            dns_domain: String::new(),
            upn_flags: 0,
            sam_name_and_sid: true,
            attributes_and_requestor: true,
        }
    }

    /// A PAC shaped like a Windows Server 2019+ KDC's for an ordinary domain user: Domain Users
    /// plus `group_count - 1` further domain groups, the asserted-identity extra SID, a full name,
    /// profile and home paths, and the NetBIOS domain taken from the realm's first label. Twenty to
    /// forty groups give the ~1.4 KB tokens of a typical Exchange user.
    pub fn windows_like(user: &str, realm: &str, domain_sid: Sid, user_rid: u32, group_count: u32) -> Self {
        let netbios = realm.split('.').next().unwrap_or(realm).to_ascii_uppercase();
        let mut b = Self::new(user, domain_sid, user_rid)
            .full_name(&format!("{user} (kedge bench)"))
            .logon_domain(&netbios, &realm.to_ascii_uppercase())
            .logon_server("DC01")
            .profile_path(&format!("\\\\fs01\\profiles$\\{user}"))
            .home_directory(&format!("\\\\fs01\\home$\\{user}"), "H:");
        for i in 1..group_count {
            b = b.group(1100 + i, SE_GROUP_DEFAULT);
        }
        match Sid::new(ASSERTED_IDENTITY.0, &[ASSERTED_IDENTITY.1]) {
            Ok(sid) => b.extra_sid(sid, SE_GROUP_DEFAULT),
            Err(_) => b,
        }
    }

    /// `EffectiveName` (and the default client name).
    pub fn user(mut self, name: &str) -> Self {
        self.logon.effective_name = name.to_owned();
        self
    }

    /// `FullName`.
    pub fn full_name(mut self, name: &str) -> Self {
        self.logon.full_name = name.to_owned();
        self
    }

    /// `LogonDomainName` (NetBIOS) and the DNS domain of UPN_DNS_INFO (and of the default UPN).
    pub fn logon_domain(mut self, netbios: &str, dns: &str) -> Self {
        self.logon.logon_domain_name = netbios.to_owned();
        self.dns_domain = dns.to_owned();
        self
    }

    /// `LogonServer`: the DC's NetBIOS name.
    pub fn logon_server(mut self, name: &str) -> Self {
        self.logon.logon_server = name.to_owned();
        self
    }

    /// `LogonScript`.
    pub fn logon_script(mut self, path: &str) -> Self {
        self.logon.logon_script = path.to_owned();
        self
    }

    /// `ProfilePath`.
    pub fn profile_path(mut self, path: &str) -> Self {
        self.logon.profile_path = path.to_owned();
        self
    }

    /// `HomeDirectory` and `HomeDirectoryDrive`.
    pub fn home_directory(mut self, path: &str, drive: &str) -> Self {
        self.logon.home_directory = path.to_owned();
        self.logon.home_directory_drive = drive.to_owned();
        self
    }

    /// The logon time (the TGT's authtime): LOGON_INFO `LogonTime` and PAC_CLIENT_INFO `ClientId`.
    pub fn logon_time(mut self, unix_secs: i64) -> Self {
        self.logon.logon_time = FileTime::from_unix(unix_secs);
        self
    }

    /// `PasswordLastSet` (and `PasswordCanChange`, one day later as the default domain policy has).
    pub fn password_last_set(mut self, unix_secs: i64) -> Self {
        self.logon.password_last_set = FileTime::from_unix(unix_secs);
        self.logon.password_can_change = FileTime::from_unix(unix_secs.saturating_add(86_400));
        self
    }

    /// `LogonCount` and `BadPasswordCount`.
    pub fn counts(mut self, logon_count: u16, bad_password_count: u16) -> Self {
        self.logon.logon_count = logon_count;
        self.logon.bad_password_count = bad_password_count;
        self
    }

    /// `UserAccountControl` (default 0x210).
    pub fn user_account_control(mut self, uac: u32) -> Self {
        self.logon.user_account_control = uac;
        self
    }

    /// `UserFlags` (default [`LOGON_EXTRA_SIDS`], as Windows sets; the extra-SID and resource-group
    /// bits are added where those arrays are non-empty).
    pub fn user_flags(mut self, flags: u32) -> Self {
        self.logon.user_flags = flags;
        self
    }

    /// `PrimaryGroupId`, also added to `GroupIds` where missing (as Windows lists it there).
    pub fn primary_group(mut self, rid: u32) -> Self {
        self.logon.primary_group_id = rid;
        if !self.logon.group_ids.iter().any(|g| g.rid == rid) {
            self.logon.group_ids.push(GroupMembership {
                rid,
                attributes: SE_GROUP_DEFAULT,
            });
        }
        self
    }

    /// Adds a domain group (`GroupIds`, RID relative to the domain SID).
    pub fn group(mut self, rid: u32, attributes: u32) -> Self {
        self.logon.group_ids.push(GroupMembership { rid, attributes });
        self
    }

    /// Replaces `GroupIds` (the default is Domain Users only).
    pub fn groups(mut self, groups: impl IntoIterator<Item = GroupMembership>) -> Self {
        self.logon.group_ids = groups.into_iter().collect();
        self
    }

    /// Adds an `ExtraSids` entry.
    pub fn extra_sid(mut self, sid: Sid, attributes: u32) -> Self {
        self.logon.extra_sids.push(SidAndAttributes { sid, attributes });
        self
    }

    /// Sets `ResourceGroupDomainSid` and `ResourceGroupIds`.
    pub fn resource_groups(
        mut self,
        domain_sid: Sid,
        groups: impl IntoIterator<Item = GroupMembership>,
    ) -> Self {
        self.logon.resource_group_domain_sid = Some(domain_sid);
        self.logon.resource_group_ids = groups.into_iter().collect();
        self
    }

    /// PAC_CLIENT_INFO `Name` (default: the user name, as for a ticket whose cname is the user).
    pub fn client_name(mut self, name: &str) -> Self {
        self.client_name = Some(name.to_owned());
        self
    }

    /// The UPN (default: `user@dnsdomain` with the U flag, as for an account without a UPN).
    pub fn upn(mut self, upn: &str) -> Self {
        self.upn = Some(upn.to_owned());
        self
    }

    /// Whether UPN_DNS_INFO carries SamName and Sid (the S flag; default on, as Windows since
    /// November 2021).
    pub fn sam_name_and_sid(mut self, on: bool) -> Self {
        self.sam_name_and_sid = on;
        self
    }

    /// Whether to add PAC_ATTRIBUTES_INFO and PAC_REQUESTOR (default on, as Windows since
    /// November 2021).
    pub fn attributes_and_requestor(mut self, on: bool) -> Self {
        self.attributes_and_requestor = on;
        self
    }

    /// The PAC signed with `server_key` (the service's key) and `kdc_key` (the krbtgt key), each
    /// with its enctype's checksum type and key usage 17 (MS-PAC 2.8.1, 2.8.2).
    pub fn build(&self, server_key: &Key, kdc_key: &Key) -> Result<Vec<u8>, PacError> {
        let Unsigned {
            mut pac,
            server_sig,
            kdc_sig,
        } = self.assemble(server_key.etype(), kdc_key.etype())?;
        let server_checksum = signature::compute(server_key, &pac)?;
        write_signature(&mut pac, server_sig, &server_checksum)?;
        let kdc_checksum = signature::compute(kdc_key, &server_checksum)?;
        write_signature(&mut pac, kdc_sig, &kdc_checksum)?;
        Ok(pac)
    }

    /// The PAC with both signatures zeroed, sized for the checksum types of `server_etype` and
    /// `kdc_etype`: exactly what [`build`](Self::build) signs.
    pub fn build_unsigned(&self, server_etype: EncType, kdc_etype: EncType) -> Result<Vec<u8>, PacError> {
        Ok(self.assemble(server_etype, kdc_etype)?.pac)
    }

    /// The unsigned PAC and the offsets of the two Signature fields.
    fn assemble(&self, server_etype: EncType, kdc_etype: EncType) -> Result<Unsigned, PacError> {
        let user_sid = self.logon.domain_sid.with_rid(self.logon.user_id)?;
        let name = &self.logon.effective_name;
        let client = ClientInfo {
            logon_time: self.logon.logon_time,
            name: self.client_name.clone().unwrap_or_else(|| name.clone()),
        };
        let (upn, upn_flags) = match &self.upn {
            Some(u) => (u.clone(), self.upn_flags),
            None => (
                format!("{name}@{}", self.dns_domain.to_ascii_lowercase()),
                self.upn_flags | super::UPN_CONSTRUCTED,
            ),
        };
        let upn_info = UpnDnsInfo {
            upn,
            dns_domain: self.dns_domain.clone(),
            flags: if self.sam_name_and_sid {
                upn_flags | UPN_EXTENDED
            } else {
                upn_flags
            },
            sam_name: self.sam_name_and_sid.then(|| name.clone()),
            sid: self.sam_name_and_sid.then(|| user_sid.clone()),
        };
        let mut buffers: Vec<(u32, Vec<u8>)> = vec![
            (PAC_LOGON_INFO, logon_info::encode(&self.logon)?),
            (PAC_CLIENT_INFO, client_info::encode(&client)?),
            (PAC_UPN_DNS_INFO, upn_dns_info::encode(&upn_info)?),
        ];
        if self.attributes_and_requestor {
            let attrs = [2u32.to_le_bytes(), PAC_WAS_REQUESTED.to_le_bytes()].concat();
            buffers.push((PAC_ATTRIBUTES_INFO, attrs));
            buffers.push((PAC_REQUESTOR, user_sid.to_bytes()));
        }
        for (t, etype) in [
            (PAC_SERVER_CHECKSUM, server_etype),
            (PAC_PRIVSVR_CHECKSUM, kdc_etype),
        ] {
            let cksumtype = etype.checksum_type();
            let len =
                checksum_len(cksumtype).ok_or(PacError::Encode("no checksum length for the enctype"))?;
            let mut sig = cksumtype.to_le_bytes().to_vec();
            sig.resize(4 + len, 0);
            buffers.push((t, sig));
        }

        let header_len = PACTYPE_LEN + INFO_BUFFER_LEN * buffers.len();
        let mut out = Vec::with_capacity(header_len + buffers.iter().map(|b| b.1.len() + 8).sum::<usize>());
        out.extend_from_slice(&(buffers.len() as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        let mut offset = header_len;
        let mut ranges = Vec::with_capacity(buffers.len());
        for (t, data) in &buffers {
            let size = u32::try_from(data.len()).map_err(|_| PacError::Encode("buffer larger than 4 GiB"))?;
            out.extend_from_slice(&t.to_le_bytes());
            out.extend_from_slice(&size.to_le_bytes());
            out.extend_from_slice(&(offset as u64).to_le_bytes());
            ranges.push(offset..offset + data.len());
            offset += data.len().next_multiple_of(8);
        }
        for (_, data) in &buffers {
            out.extend_from_slice(data);
            out.resize(out.len().next_multiple_of(8), 0);
        }
        // The two signature buffers are the last two; their Signature follows the 4-byte type.
        let kdc = ranges.pop().ok_or(PacError::Encode("no KDC signature buffer"))?;
        let server = ranges
            .pop()
            .ok_or(PacError::Encode("no server signature buffer"))?;
        Ok(Unsigned {
            pac: out,
            server_sig: server.start + 4..server.end,
            kdc_sig: kdc.start + 4..kdc.end,
        })
    }
}

/// A PAC with zeroed signatures and where its two Signature fields are.
struct Unsigned {
    pac: Vec<u8>,
    server_sig: Range<usize>,
    kdc_sig: Range<usize>,
}

/// Writes `sig` into the zeroed Signature field `at`, which must be its length.
fn write_signature(pac: &mut [u8], at: Range<usize>, sig: &[u8]) -> Result<(), PacError> {
    match pac.get_mut(at) {
        Some(field) if field.len() == sig.len() => {
            field.copy_from_slice(sig);
            Ok(())
        }
        _ => Err(PacError::Encode(
            "checksum length differs from its checksum type's",
        )),
    }
}
