//! `KERB_VALIDATION_INFO` (MS-PAC 2.5), the LOGON_INFO buffer (type 1): the user's account and
//! group memberships, NDR-encoded with the type serialization version 1 headers (MS-RPCE 2.2.6).
//!
//! The structure is read inline first; its pointers' referents follow in field order (C706 14.3.12
//! deferred pointers): the six name strings, GroupIds, LogonServer, LogonDomainName,
//! LogonDomainId, ExtraSids (the array, then each SID it points to), ResourceGroupDomainSid and
//! ResourceGroupIds.

use super::filetime::FileTime;
use super::ndr::{self, to_utf16le, NdrReader, NdrWriter, UnicodeStringHeader};
use super::sid::{Sid, MAX_SUB_AUTHORITIES};
use super::PacError;

const NAME: &str = "KERB_VALIDATION_INFO";

/// `UserFlags` bit D: ExtraSids is populated (MS-PAC 2.5, LOGON_EXTRA_SIDS).
pub const LOGON_EXTRA_SIDS: u32 = 0x20;
/// `UserFlags` bit H: ResourceGroupIds is populated (MS-PAC 2.5, LOGON_RESOURCE_GROUPS).
pub const LOGON_RESOURCE_GROUPS: u32 = 0x200;

/// `SE_GROUP_MANDATORY | SE_GROUP_ENABLED_BY_DEFAULT | SE_GROUP_ENABLED` (MS-PAC 2.2.1), the
/// attributes Windows gives ordinary group memberships.
pub const SE_GROUP_DEFAULT: u32 = 0x7;

/// A `GROUP_MEMBERSHIP` (MS-PAC 2.2.2): a RID relative to a domain SID and its attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupMembership {
    /// The group's relative identifier.
    pub rid: u32,
    /// `SE_GROUP_*` attributes (MS-PAC 2.2.1).
    pub attributes: u32,
}

/// A `KERB_SID_AND_ATTRIBUTES` (MS-PAC 2.2.1): a full SID and its attributes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SidAndAttributes {
    /// The SID.
    pub sid: Sid,
    /// `SE_GROUP_*` attributes (MS-PAC 2.2.1).
    pub attributes: u32,
}

/// The decoded `KERB_VALIDATION_INFO` (MS-PAC 2.5). Read-only: the domain SIDs are checked at
/// parse time to leave room for a RID, so [`user_sid`](Self::user_sid) and
/// [`group_sids`](Self::group_sids) cannot fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogonInfo {
    pub(crate) logon_time: FileTime,
    pub(crate) logoff_time: FileTime,
    pub(crate) kick_off_time: FileTime,
    pub(crate) password_last_set: FileTime,
    pub(crate) password_can_change: FileTime,
    pub(crate) password_must_change: FileTime,
    pub(crate) effective_name: String,
    pub(crate) full_name: String,
    pub(crate) logon_script: String,
    pub(crate) profile_path: String,
    pub(crate) home_directory: String,
    pub(crate) home_directory_drive: String,
    pub(crate) logon_count: u16,
    pub(crate) bad_password_count: u16,
    pub(crate) user_id: u32,
    pub(crate) primary_group_id: u32,
    pub(crate) group_ids: Vec<GroupMembership>,
    pub(crate) user_flags: u32,
    pub(crate) logon_server: String,
    pub(crate) logon_domain_name: String,
    pub(crate) domain_sid: Sid,
    pub(crate) user_account_control: u32,
    pub(crate) extra_sids: Vec<SidAndAttributes>,
    pub(crate) resource_group_domain_sid: Option<Sid>,
    pub(crate) resource_group_ids: Vec<GroupMembership>,
}

impl LogonInfo {
    /// `LogonTime`: when the user logged on (the TGT's authtime).
    pub fn logon_time(&self) -> FileTime {
        self.logon_time
    }
    /// `LogoffTime` ([`FileTime::NEVER`] where unlimited).
    pub fn logoff_time(&self) -> FileTime {
        self.logoff_time
    }
    /// `KickOffTime` ([`FileTime::NEVER`] where unlimited).
    pub fn kick_off_time(&self) -> FileTime {
        self.kick_off_time
    }
    /// `PasswordLastSet`.
    pub fn password_last_set(&self) -> FileTime {
        self.password_last_set
    }
    /// `PasswordCanChange`.
    pub fn password_can_change(&self) -> FileTime {
        self.password_can_change
    }
    /// `PasswordMustChange`.
    pub fn password_must_change(&self) -> FileTime {
        self.password_must_change
    }
    /// `EffectiveName`: the account's sAMAccountName.
    pub fn effective_name(&self) -> &str {
        &self.effective_name
    }
    /// `FullName`: the display name.
    pub fn full_name(&self) -> &str {
        &self.full_name
    }
    /// `LogonScript`.
    pub fn logon_script(&self) -> &str {
        &self.logon_script
    }
    /// `ProfilePath`.
    pub fn profile_path(&self) -> &str {
        &self.profile_path
    }
    /// `HomeDirectory`.
    pub fn home_directory(&self) -> &str {
        &self.home_directory
    }
    /// `HomeDirectoryDrive`.
    pub fn home_directory_drive(&self) -> &str {
        &self.home_directory_drive
    }
    /// `LogonCount`.
    pub fn logon_count(&self) -> u16 {
        self.logon_count
    }
    /// `BadPasswordCount`.
    pub fn bad_password_count(&self) -> u16 {
        self.bad_password_count
    }
    /// `UserId`: the account's RID in the logon domain.
    pub fn user_id(&self) -> u32 {
        self.user_id
    }
    /// `PrimaryGroupId`: the primary group's RID (513, Domain Users, usually).
    pub fn primary_group_id(&self) -> u32 {
        self.primary_group_id
    }
    /// `GroupIds`: the domain groups (RIDs relative to [`domain_sid`](Self::domain_sid)).
    pub fn group_ids(&self) -> &[GroupMembership] {
        &self.group_ids
    }
    /// `UserFlags` ([`LOGON_EXTRA_SIDS`], [`LOGON_RESOURCE_GROUPS`], …).
    pub fn user_flags(&self) -> u32 {
        self.user_flags
    }
    /// `LogonServer`: the NetBIOS name of the DC that authenticated the user.
    pub fn logon_server(&self) -> &str {
        &self.logon_server
    }
    /// `LogonDomainName`: the NetBIOS domain name.
    pub fn logon_domain_name(&self) -> &str {
        &self.logon_domain_name
    }
    /// `LogonDomainId`: the account domain's SID.
    pub fn domain_sid(&self) -> &Sid {
        &self.domain_sid
    }
    /// `UserAccountControl` (`USER_*` flags, MS-SAMR 2.2.1.12).
    pub fn user_account_control(&self) -> u32 {
        self.user_account_control
    }
    /// `ExtraSids` SIDs: universal groups of other domains, claims-aware well-known SIDs, …
    pub fn extra_sids(&self) -> Vec<Sid> {
        self.extra_sids.iter().map(|e| e.sid.clone()).collect()
    }
    /// `ExtraSids` with their attributes.
    pub fn extra_sids_with_attributes(&self) -> &[SidAndAttributes] {
        &self.extra_sids
    }
    /// `ResourceGroupDomainSid`, where resource groups are present.
    pub fn resource_group_domain_sid(&self) -> Option<&Sid> {
        self.resource_group_domain_sid.as_ref()
    }
    /// `ResourceGroupIds`: RIDs relative to the resource group domain SID.
    pub fn resource_group_ids(&self) -> &[GroupMembership] {
        &self.resource_group_ids
    }
    /// The user's SID: `LogonDomainId` plus `UserId` (MS-PAC 2.5).
    pub fn user_sid(&self) -> Sid {
        with_rid(&self.domain_sid, self.user_id)
    }
    /// The domain group SIDs: `LogonDomainId` plus each `GroupIds` RID (MS-PAC 2.5), in PAC order.
    pub fn group_sids(&self) -> Vec<Sid> {
        self.group_ids
            .iter()
            .map(|g| with_rid(&self.domain_sid, g.rid))
            .collect()
    }
    /// The resource group SIDs: `ResourceGroupDomainSid` plus each `ResourceGroupIds` RID.
    pub fn resource_group_sids(&self) -> Vec<Sid> {
        match &self.resource_group_domain_sid {
            Some(domain) => self
                .resource_group_ids
                .iter()
                .map(|g| with_rid(domain, g.rid))
                .collect(),
            None => Vec::new(),
        }
    }
    /// Every group SID the token would carry (MS-PAC 3.3.1.1 token construction): domain groups,
    /// then extra SIDs, then resource groups, without duplicates, first occurrence kept.
    pub fn all_group_sids(&self) -> Vec<Sid> {
        let mut seen = std::collections::HashSet::new();
        let all = self
            .group_sids()
            .into_iter()
            .chain(self.extra_sids())
            .chain(self.resource_group_sids());
        all.filter(|sid| seen.insert(sid.clone())).collect()
    }

    /// [`all_group_sids`](Self::all_group_sids) as text joined with `,` (what assert-mode
    /// headers state), built without a `Sid` per group: each domain SID is formatted once and its
    /// groups' RIDs appended; the same SIDs, in the same order, without duplicates.
    pub fn all_group_sids_joined(&self) -> String {
        let groups = self.group_ids.len() + self.extra_sids.len() + self.resource_group_ids.len();
        // Every SID once, back to back in `text` (in `all_group_sids` order), at `spans`.
        let mut text = String::with_capacity(48 * groups);
        let mut spans = Vec::with_capacity(groups);
        write_under(&mut text, &mut spans, &self.domain_sid, &self.group_ids);
        for e in &self.extra_sids {
            let start = text.len();
            e.sid.push_to(&mut text);
            spans.push(start..text.len());
        }
        if let Some(domain) = &self.resource_group_domain_sid {
            write_under(&mut text, &mut spans, domain, &self.resource_group_ids);
        }
        let mut seen = std::collections::HashSet::with_capacity(groups);
        let mut out = String::with_capacity(text.len() + groups);
        for span in spans {
            let sid = &text[span];
            if seen.insert(sid) {
                if !out.is_empty() {
                    out.push(',');
                }
                out.push_str(sid);
            }
        }
        out
    }
}

/// Appends `domain`-`rid` for each of `rids` to `text` (the domain formatted once), and where
/// each one is to `spans`. Like [`with_rid`], a domain SID with no room for a RID stands alone.
fn write_under(
    text: &mut String,
    spans: &mut Vec<std::ops::Range<usize>>,
    domain: &Sid,
    rids: &[GroupMembership],
) {
    let mut prefix = String::with_capacity(64);
    domain.push_to(&mut prefix);
    let room = domain.sub_authorities().len() < MAX_SUB_AUTHORITIES;
    for g in rids {
        let start = text.len();
        text.push_str(&prefix);
        if room {
            text.push('-');
            super::sid::push_decimal(text, g.rid.into());
        }
        spans.push(start..text.len());
    }
}

/// `domain` plus `rid`. Parsing and building refuse a domain SID with 15 sub-authorities, so the
/// fallback (the domain SID itself, never a member of anything) is unreachable.
fn with_rid(domain: &Sid, rid: u32) -> Sid {
    domain.with_rid(rid).unwrap_or_else(|_| domain.clone())
}

/// Refuses a domain SID that leaves no room for a RID.
fn check_domain_sid(sid: &Sid) -> Result<(), PacError> {
    if sid.sub_authorities().len() >= MAX_SUB_AUTHORITIES {
        return Err(PacError::malformed(NAME, "domain SID has no room for a RID"));
    }
    Ok(())
}

/// Decodes a LOGON_INFO buffer (MS-PAC 2.5).
pub(crate) fn parse(buf: &[u8]) -> Result<LogonInfo, PacError> {
    let body = ndr::type_serialization_body(buf, NAME)?;
    let mut r = NdrReader::new(body, NAME);
    if !r.pointer()? {
        return Err(r.err("NULL top-level pointer"));
    }
    // Inline part.
    let logon_time = FileTime(r.filetime()?);
    let logoff_time = FileTime(r.filetime()?);
    let kick_off_time = FileTime(r.filetime()?);
    let password_last_set = FileTime(r.filetime()?);
    let password_can_change = FileTime(r.filetime()?);
    let password_must_change = FileTime(r.filetime()?);
    let mut names: [Option<UnicodeStringHeader>; 6] = [None; 6];
    for n in &mut names {
        *n = Some(r.unicode_string_header()?);
    }
    let logon_count = r.u16()?;
    let bad_password_count = r.u16()?;
    let user_id = r.u32()?;
    let primary_group_id = r.u32()?;
    let group_count = r.u32()?;
    let group_ids_ptr = r.pointer()?;
    let user_flags = r.u32()?;
    let _user_session_key = r.bytes(16)?;
    let logon_server_h = r.unicode_string_header()?;
    let logon_domain_name_h = r.unicode_string_header()?;
    let logon_domain_id_ptr = r.pointer()?;
    let _reserved1 = r.bytes(8)?;
    let user_account_control = r.u32()?;
    let _sub_auth_status = r.u32()?;
    let _last_successful_ilogon = r.filetime()?;
    let _last_failed_ilogon = r.filetime()?;
    let _failed_ilogon_count = r.u32()?;
    let _reserved3 = r.u32()?;
    let sid_count = r.u32()?;
    let extra_sids_ptr = r.pointer()?;
    let resource_domain_ptr = r.pointer()?;
    let resource_group_count = r.u32()?;
    let resource_groups_ptr = r.pointer()?;

    // Deferred referents, in field order.
    let mut strings = Vec::with_capacity(6);
    for h in names.into_iter().flatten() {
        strings.push(r.unicode_string_body(h)?);
    }
    let group_ids = group_memberships(&mut r, group_ids_ptr, group_count)?;
    let logon_server = r.unicode_string_body(logon_server_h)?;
    let logon_domain_name = r.unicode_string_body(logon_domain_name_h)?;
    if !logon_domain_id_ptr {
        return Err(r.err("NULL LogonDomainId"));
    }
    let domain_sid = r.rpc_sid()?;
    check_domain_sid(&domain_sid)?;
    let extra_sids = extra_sids(&mut r, extra_sids_ptr, sid_count)?;
    let resource_group_domain_sid = if resource_domain_ptr {
        let sid = r.rpc_sid()?;
        check_domain_sid(&sid)?;
        Some(sid)
    } else {
        None
    };
    let resource_group_ids = group_memberships(&mut r, resource_groups_ptr, resource_group_count)?;
    if resource_group_domain_sid.is_none() && !resource_group_ids.is_empty() {
        return Err(r.err("ResourceGroupIds without ResourceGroupDomainSid"));
    }

    let mut strings = strings.into_iter();
    let mut next = || strings.next().unwrap_or_default();
    Ok(LogonInfo {
        logon_time,
        logoff_time,
        kick_off_time,
        password_last_set,
        password_can_change,
        password_must_change,
        effective_name: next(),
        full_name: next(),
        logon_script: next(),
        profile_path: next(),
        home_directory: next(),
        home_directory_drive: next(),
        logon_count,
        bad_password_count,
        user_id,
        primary_group_id,
        group_ids,
        user_flags,
        logon_server,
        logon_domain_name,
        domain_sid,
        user_account_control,
        extra_sids,
        resource_group_domain_sid,
        resource_group_ids,
    })
}

/// A deferred `GROUP_MEMBERSHIP` conformant array (MS-PAC 2.2.2) of `count` elements.
fn group_memberships(
    r: &mut NdrReader<'_>,
    present: bool,
    count: u32,
) -> Result<Vec<GroupMembership>, PacError> {
    if !present {
        return if count == 0 {
            Ok(Vec::new())
        } else {
            Err(r.err("group count with a NULL array"))
        };
    }
    let n = r.conformant_count(count, 8)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let rid = r.u32()?;
        let attributes = r.u32()?;
        out.push(GroupMembership { rid, attributes });
    }
    Ok(out)
}

/// The deferred `KERB_SID_AND_ATTRIBUTES` array (MS-PAC 2.2.1), then the SID of each element.
fn extra_sids(r: &mut NdrReader<'_>, present: bool, count: u32) -> Result<Vec<SidAndAttributes>, PacError> {
    if !present {
        return if count == 0 {
            Ok(Vec::new())
        } else {
            Err(r.err("SidCount with a NULL ExtraSids"))
        };
    }
    let n = r.conformant_count(count, 8)?;
    let mut attrs = Vec::with_capacity(n);
    for _ in 0..n {
        if !r.pointer()? {
            return Err(r.err("NULL SID in ExtraSids"));
        }
        attrs.push(r.u32()?);
    }
    let mut out = Vec::with_capacity(n);
    for attributes in attrs {
        out.push(SidAndAttributes {
            sid: r.rpc_sid()?,
            attributes,
        });
    }
    Ok(out)
}

/// Encodes a LOGON_INFO buffer (MS-PAC 2.5) in Windows' layout (a Windows PAC's LOGON_INFO
/// decodes and re-encodes to the same bytes); sets the `UserFlags` bits for extra SIDs and
/// resource groups where those arrays are present.
pub(crate) fn encode(info: &LogonInfo) -> Result<Vec<u8>, PacError> {
    check_domain_sid(&info.domain_sid).map_err(|_| PacError::Encode("domain SID has 15 sub-authorities"))?;
    if let Some(sid) = &info.resource_group_domain_sid {
        check_domain_sid(sid).map_err(|_| PacError::Encode("resource domain SID has 15 sub-authorities"))?;
    }
    if info.resource_group_domain_sid.is_none() && !info.resource_group_ids.is_empty() {
        return Err(PacError::Encode(
            "resource groups without a resource group domain SID",
        ));
    }
    let count = |n: usize| u32::try_from(n).map_err(|_| PacError::Encode("too many groups"));
    let names = [
        &info.effective_name,
        &info.full_name,
        &info.logon_script,
        &info.profile_path,
        &info.home_directory,
        &info.home_directory_drive,
    ]
    .map(|s| to_utf16le(s));
    let logon_server = to_utf16le(&info.logon_server);
    let logon_domain_name = to_utf16le(&info.logon_domain_name);
    let mut user_flags = info.user_flags;
    if !info.extra_sids.is_empty() {
        user_flags |= LOGON_EXTRA_SIDS;
    }
    if info.resource_group_domain_sid.is_some() {
        user_flags |= LOGON_RESOURCE_GROUPS;
    }

    let mut w = NdrWriter::new();
    w.pointer(true);
    for t in [
        info.logon_time,
        info.logoff_time,
        info.kick_off_time,
        info.password_last_set,
        info.password_can_change,
        info.password_must_change,
    ] {
        w.filetime(t.0);
    }
    for n in &names {
        w.unicode_string_header(n, false)?;
    }
    w.u16(info.logon_count);
    w.u16(info.bad_password_count);
    w.u32(info.user_id);
    w.u32(info.primary_group_id);
    w.u32(count(info.group_ids.len())?);
    w.pointer(!info.group_ids.is_empty());
    w.u32(user_flags);
    w.bytes(&[0u8; 16]); // UserSessionKey: zero in Kerberos PACs (MS-PAC 2.5).
                         // Windows counts a NUL in MaximumLength of these two.
    w.unicode_string_header(&logon_server, true)?;
    w.unicode_string_header(&logon_domain_name, true)?;
    w.pointer(true);
    w.bytes(&[0u8; 8]); // Reserved1
    w.u32(info.user_account_control);
    w.u32(0); // SubAuthStatus
    w.filetime(0); // LastSuccessfulILogon
    w.filetime(0); // LastFailedILogon
    w.u32(0); // FailedILogonCount
    w.u32(0); // Reserved3
    w.u32(count(info.extra_sids.len())?);
    w.pointer(!info.extra_sids.is_empty());
    // Windows numbers referents in the order their targets are written, and the ExtraSids
    // elements' SID pointers are written with the array, before ResourceGroupDomainSid.
    let extra_sid_ids = w.reserve_referents(count(info.extra_sids.len())?);
    w.pointer(info.resource_group_domain_sid.is_some());
    w.u32(count(info.resource_group_ids.len())?);
    w.pointer(!info.resource_group_ids.is_empty());

    for n in &names {
        w.unicode_string_body(n, false)?;
    }
    write_groups(&mut w, &info.group_ids)?;
    w.unicode_string_body(&logon_server, true)?;
    w.unicode_string_body(&logon_domain_name, true)?;
    w.rpc_sid(&info.domain_sid);
    if !info.extra_sids.is_empty() {
        w.u32(count(info.extra_sids.len())?);
        for (e, id) in info.extra_sids.iter().zip(extra_sid_ids) {
            w.u32(id);
            w.u32(e.attributes);
        }
        for e in &info.extra_sids {
            w.rpc_sid(&e.sid);
        }
    }
    if let Some(sid) = &info.resource_group_domain_sid {
        w.rpc_sid(sid);
    }
    write_groups(&mut w, &info.resource_group_ids)?;
    w.finish_type_serialization()
}

fn write_groups(w: &mut NdrWriter, groups: &[GroupMembership]) -> Result<(), PacError> {
    if groups.is_empty() {
        return Ok(());
    }
    w.u32(u32::try_from(groups.len()).map_err(|_| PacError::Encode("too many groups"))?);
    for g in groups {
        w.u32(g.rid);
        w.u32(g.attributes);
    }
    Ok(())
}
