//! The identity a PAC carries (MS-PAC §2.5), as the edges see it: user and group SIDs, decoded
//! only when a caller asks.

use std::sync::Arc;

use bytes::Bytes;

use super::pac::{LogonInfo, Sid};

/// Identity taken from the PAC. LOGON_INFO stays encoded until a caller asks for SIDs (group
/// rules, assert-mode headers, status); it is decoded once and kept, so validation pays nothing
/// for a large group list on routes that never look at it.
#[derive(Clone, Debug, Default)]
pub struct PacIdentity {
    /// Whether the server signature was verified.
    pub server_signature_verified: bool,
    logon_raw: Option<Arc<[u8]>>,
    logon: std::sync::OnceLock<Result<LogonInfo, String>>,
    /// The group SIDs comma-separated, formatted the first time they are asked for (a kept
    /// ticket's identity is shared by every request made with that ticket).
    joined: std::sync::OnceLock<Bytes>,
    fixed: Option<FixedSids>,
}

impl PartialEq for PacIdentity {
    fn eq(&self, other: &Self) -> bool {
        self.server_signature_verified == other.server_signature_verified
            && self.logon_raw == other.logon_raw
            && self.fixed == other.fixed
    }
}

impl Eq for PacIdentity {}

/// SIDs given as text (other `Authenticate` implementations and test doubles).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct FixedSids {
    user: Option<String>,
    groups: Vec<String>,
    domain: Option<String>,
}

impl PacIdentity {
    /// From a PAC's encoded LOGON_INFO buffer (MS-PAC §2.5), if it had one.
    pub fn from_logon_info_raw(raw: Option<&[u8]>, server_signature_verified: bool) -> Self {
        Self {
            server_signature_verified,
            logon_raw: raw.map(Arc::from),
            ..Default::default()
        }
    }
    /// From SIDs as text.
    pub fn from_sids(
        user_sid: Option<String>,
        group_sids: Vec<String>,
        logon_domain: Option<String>,
    ) -> Self {
        Self {
            server_signature_verified: true,
            fixed: Some(FixedSids {
                user: user_sid,
                groups: group_sids,
                domain: logon_domain,
            }),
            ..Default::default()
        }
    }
    /// The decoded LOGON_INFO: `Ok(None)` without one, `Err` when it does not decode.
    pub fn logon_info(&self) -> Result<Option<&LogonInfo>, String> {
        let Some(raw) = &self.logon_raw else {
            return Ok(None);
        };
        match self
            .logon
            .get_or_init(|| super::pac::decode_logon_info(raw).map_err(|e| e.to_string()))
        {
            Ok(li) => Ok(Some(li)),
            Err(e) => Err(e.clone()),
        }
    }
    fn logon(&self) -> Option<&LogonInfo> {
        self.logon_info().ok().flatten()
    }
    /// The user's SID (`S-1-5-21-…-RID`).
    pub fn user_sid(&self) -> Option<String> {
        match (self.logon(), &self.fixed) {
            (Some(li), _) => Some(li.user_sid().to_string()),
            (None, Some(f)) => f.user.clone(),
            _ => None,
        }
    }
    /// Group SIDs: domain groups, extra SIDs and resource groups (MS-PAC §3.3.1.1 order).
    pub fn group_sids(&self) -> Vec<String> {
        match (self.logon(), &self.fixed) {
            (Some(li), _) => li.all_group_sids().iter().map(|s| s.to_string()).collect(),
            (None, Some(f)) => f.groups.clone(),
            _ => Vec::new(),
        }
    }
    /// [`group_sids`](Self::group_sids) joined with `,`, formatted once (without a string per
    /// SID) and kept.
    pub fn group_sids_joined(&self) -> &str {
        // The text is ASCII (SIDs and commas); the fallback is never taken.
        std::str::from_utf8(self.group_sids_joined_bytes()).unwrap_or_default()
    }
    /// [`group_sids_joined`](Self::group_sids_joined) as shared bytes: a header value made
    /// from them copies nothing.
    pub fn group_sids_joined_bytes(&self) -> &Bytes {
        self.joined.get_or_init(|| {
            Bytes::from(match (self.logon(), &self.fixed) {
                (Some(li), _) => li.all_group_sids_joined(),
                (None, Some(f)) => f.groups.join(","),
                _ => String::new(),
            })
        })
    }
    /// The bytes of the encoded LOGON_INFO kept (what an identity costs to keep).
    pub fn encoded_len(&self) -> usize {
        self.logon_raw.as_ref().map_or(0, |r| r.len())
    }
    /// Logon domain (NetBIOS) name.
    pub fn logon_domain(&self) -> Option<String> {
        match (self.logon(), &self.fixed) {
            (Some(li), _) => Some(li.logon_domain_name().to_string()),
            (None, Some(f)) => f.domain.clone(),
            _ => None,
        }
    }
    /// Whether the PAC states group membership at all (a LOGON_INFO buffer, MS-PAC §2.5). MIT
    /// KDCs since 1.20 issue PACs without one, so such a PAC says nothing about groups.
    pub fn has_groups(&self) -> bool {
        self.logon().is_some() || self.fixed.is_some()
    }

    /// Whether the user is, or is a member of, `sid` (text form, compared structurally; no
    /// formatting of the PAC's SIDs).
    pub fn holds(&self, sid: &str) -> bool {
        match (self.logon(), &self.fixed) {
            (Some(li), _) => sid.parse::<Sid>().is_ok_and(|s| logon_holds(li, &s)),
            (None, Some(f)) => {
                f.user.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(sid))
                    || f.groups.iter().any(|g| g.eq_ignore_ascii_case(sid))
            }
            _ => false,
        }
    }
}

/// Structural membership: the user SID, a domain group (domain SID + RID), an extra SID, or a
/// resource group (resource domain SID + RID).
fn logon_holds(li: &LogonInfo, sid: &Sid) -> bool {
    let subs = sid.sub_authorities();
    let Some((&rid, prefix)) = subs.split_last() else {
        return false;
    };
    let under = |domain: &Sid| domain.authority() == sid.authority() && domain.sub_authorities() == prefix;
    (under(li.domain_sid()) && (li.user_id() == rid || li.group_ids().iter().any(|g| g.rid == rid)))
        || li.extra_sids_with_attributes().iter().any(|e| &e.sid == sid)
        || li
            .resource_group_domain_sid()
            .is_some_and(|d| under(d) && li.resource_group_ids().iter().any(|g| g.rid == rid))
}
