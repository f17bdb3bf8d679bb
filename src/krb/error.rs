//! Why an AP-REQ was refused, named the way MIT and Windows events name it (RFC 4120 §7.5.9).
//!
//! No variant carries key or token bytes: only names, numbers and short descriptions, so an
//! `AuthError` can go to logs and metrics as it is. Names may come from the token's cleartext
//! (a ticket's `sname` and realm are outside its encryption): `Display` escapes every text field
//! ([`crate::observe::escape`]), so a `\n` in an `sname` cannot forge a log line.

use crate::observe::escape::escaped;

/// A refused Kerberos credential. `reason()` gives the stable label used in metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The token is not well-formed at some layer (`layer` names where: gss, spnego, ap-req, ticket, …).
    #[error("malformed {layer}: {}", escaped(detail))]
    Malformed { layer: &'static str, detail: String },
    /// The token is NTLM (NTLMSSP, or SPNEGO offering only NTLM), not Kerberos.
    #[error("NTLM token (kedge accepts Kerberos only on this route)")]
    Ntlm,
    /// SPNEGO offered no mechanism kedge accepts, or carried no mechToken.
    #[error("SPNEGO offers no Kerberos mechanism token (mechs: {})", escaped(.0))]
    NoKerberosMech(String),
    /// A U2U or other unsupported AP option or message.
    #[error("unsupported: {}", escaped(.0))]
    Unsupported(String),
    /// KRB_AP_ERR_BADVERSION: pvno or authenticator-vno not 5.
    #[error("KRB_AP_ERR_BADVERSION: protocol version {0}")]
    BadVersion(i64),
    /// KRB_AP_ERR_MSG_TYPE: not an AP-REQ.
    #[error("KRB_AP_ERR_MSG_TYPE: message type {0}")]
    MsgType(i64),
    /// KRB_AP_ERR_NOKEY: no key of the ticket's enctype at all.
    #[error(
        "KRB_AP_ERR_NOKEY: no key for {} with enctype {}",
        escaped(principal),
        escaped(etype)
    )]
    NoKey { principal: String, etype: String },
    /// KRB_AP_ERR_BADKEYVER: the ticket's kvno is not in the keytab and no key of that enctype
    /// decrypted it. `stale` is set when the ticket's kvno is newer than every loaded key.
    #[error("KRB_AP_ERR_BADKEYVER: {}", badkeyver_text(*ticket_kvno, loaded, *stale))]
    BadKeyVersion {
        ticket_kvno: u32,
        loaded: Vec<u32>,
        stale: bool,
    },
    /// KRB_AP_ERR_MODIFIED / BAD_INTEGRITY: decryption integrity check failed (`part` = ticket or authenticator).
    #[error("KRB_AP_ERR_MODIFIED: {part} failed its integrity check (wrong key or modified)")]
    Modified { part: &'static str },
    /// The ticket names a service this listener does not serve (an `exchangeMDB` ticket on HTTP …).
    #[error(
        "KRB_AP_ERR_NOT_US: ticket is for {}, this {} listener needs {}",
        escaped(got),
        escaped(protocol),
        escaped(want)
    )]
    WrongSpn {
        got: String,
        want: String,
        protocol: String,
    },
    /// The ticket's realm is not the configured one.
    #[error(
        "KRB_AP_ERR_NOT_US: ticket realm {}, expected {}",
        escaped(got),
        escaped(want)
    )]
    WrongRealm { got: String, want: String },
    /// The client's realm (from the decrypted ticket) is not one whose users may log on here
    /// (a trusting realm's users arrive with their own realm as `crealm`).
    #[error(
        "client realm {} is not allowed (allowed: {})",
        escaped(realm),
        escaped(allowed)
    )]
    ClientRealmNotAllowed { realm: String, allowed: String },
    /// KRB_AP_ERR_TKT_EXPIRED.
    #[error("KRB_AP_ERR_TKT_EXPIRED: ticket ended at {endtime} (now {now}, skew {skew}s)")]
    TicketExpired { endtime: i64, now: i64, skew: i64 },
    /// KRB_AP_ERR_TKT_NYV: ticket not yet valid.
    #[error("KRB_AP_ERR_TKT_NYV: ticket starts at {starttime} (now {now}, skew {skew}s)")]
    TicketNotYetValid { starttime: i64, now: i64, skew: i64 },
    /// KRB_AP_ERR_SKEW: authenticator time too far from now.
    #[error("KRB_AP_ERR_SKEW: authenticator time {ctime} is {delta}s from now (allowed {skew}s)")]
    Skew { ctime: i64, delta: i64, skew: i64 },
    /// KRB_AP_ERR_BADMATCH: authenticator client differs from the ticket's.
    #[error(
        "KRB_AP_ERR_BADMATCH: authenticator names {}, ticket names {}",
        escaped(authenticator),
        escaped(ticket)
    )]
    BadMatch { ticket: String, authenticator: String },
    /// KRB_AP_ERR_REPEAT: this authenticator was seen before.
    #[error("KRB_AP_ERR_REPEAT: replayed authenticator from {}", escaped(client))]
    Replay { client: String },
    /// The replay cache is full and refuses new entries rather than forget live ones.
    #[error("replay cache full ({0} live entries): refusing rather than forgetting")]
    ReplayCacheFull(usize),
    /// The replay store shared with other replicas gave no verdict (unreachable, slow or
    /// failing) and policy (`fail = "closed"`) refuses rather than accept on the local cache
    /// alone. The text says why, without addresses or credentials.
    #[error("shared replay store gave no verdict ({0}); refused by fail = closed")]
    ReplayStoreUnavailable(String),
    /// The client principal holds its whole share of the replay cache (a flood of fresh
    /// authenticators from one principal): its new ones are refused until some expire.
    #[error(
        "replay cache share of {} used up ({max} live authenticators): refusing its new ones",
        escaped(client)
    )]
    ReplayShareExceeded { client: String, max: usize },
    /// The GSS authenticator checksum (0x8003) is absent, of another type or malformed.
    #[error("KRB_AP_ERR_INAPP_CKSUM: {}", escaped(.0))]
    BadChecksum(String),
    /// Channel bindings differ from this TLS connection's (Extended Protection).
    #[error("GSS_S_BAD_BINDINGS: channel binding does not match this connection")]
    BadBindings,
    /// Channel bindings required by policy but the client sent none.
    #[error("GSS_S_BAD_BINDINGS: channel binding required but the client sent none")]
    MissingBindings,
    /// The PAC is malformed or its server signature does not verify.
    #[error("PAC refused: {}", escaped(.0))]
    Pac(String),
    /// A PAC is required by policy but the ticket carries none.
    #[error("PAC required but the ticket carries none")]
    MissingPac,
    /// Group policy refused the user.
    #[error("access denied by group policy: {}", escaped(.0))]
    GroupDenied(String),
    /// No keys are loaded at all.
    #[error("no keytab keys loaded")]
    NoKeys,
}

fn badkeyver_text(kvno: u32, loaded: &[u32], stale: bool) -> String {
    let list = loaded
        .iter()
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if stale {
        format!("keytab is stale: ticket kvno {kvno}, keytab has {list}")
    } else {
        format!("ticket kvno {kvno} not in keytab (has {list}) and no other key decrypts it")
    }
}

impl AuthError {
    /// Stable, low-cardinality label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed { .. } => "malformed",
            Self::Ntlm => "ntlm",
            Self::NoKerberosMech(_) => "no_kerberos_mech",
            Self::Unsupported(_) => "unsupported",
            Self::BadVersion(_) => "KRB_AP_ERR_BADVERSION",
            Self::MsgType(_) => "KRB_AP_ERR_MSG_TYPE",
            Self::NoKey { .. } => "KRB_AP_ERR_NOKEY",
            Self::BadKeyVersion { .. } => "KRB_AP_ERR_BADKEYVER",
            Self::Modified { .. } => "KRB_AP_ERR_MODIFIED",
            Self::WrongSpn { .. } => "wrong_spn",
            Self::WrongRealm { .. } => "wrong_realm",
            Self::ClientRealmNotAllowed { .. } => "client_realm_not_allowed",
            Self::TicketExpired { .. } => "KRB_AP_ERR_TKT_EXPIRED",
            Self::TicketNotYetValid { .. } => "KRB_AP_ERR_TKT_NYV",
            Self::Skew { .. } => "KRB_AP_ERR_SKEW",
            Self::BadMatch { .. } => "KRB_AP_ERR_BADMATCH",
            Self::Replay { .. } => "KRB_AP_ERR_REPEAT",
            Self::ReplayCacheFull(_) => "replay_cache_full",
            Self::ReplayStoreUnavailable(_) => "replay_store_unavailable",
            Self::ReplayShareExceeded { .. } => "replay_principal_share",
            Self::BadChecksum(_) => "KRB_AP_ERR_INAPP_CKSUM",
            Self::BadBindings => "bad_channel_binding",
            Self::MissingBindings => "missing_channel_binding",
            Self::Pac(_) => "pac_invalid",
            Self::MissingPac => "pac_missing",
            Self::GroupDenied(_) => "group_denied",
            Self::NoKeys => "no_keys",
        }
    }

    /// Shorthand for a malformed-input error.
    pub fn malformed(layer: &'static str, detail: impl Into<String>) -> Self {
        Self::Malformed {
            layer,
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_keytab_is_said_plainly() {
        let e = AuthError::BadKeyVersion {
            ticket_kvno: 7,
            loaded: vec![5, 6],
            stale: true,
        };
        assert_eq!(
            e.to_string(),
            "KRB_AP_ERR_BADKEYVER: keytab is stale: ticket kvno 7, keytab has 5, 6"
        );
        assert_eq!(e.reason(), "KRB_AP_ERR_BADKEYVER");
    }

    #[test]
    fn cleartext_names_are_escaped_in_the_message() {
        let e = AuthError::WrongSpn {
            got: "http/x\n2026-01-01 INFO Negotiate token accepted principal=administrator".into(),
            want: "http/outlook.contoso.com".into(),
            protocol: "http".into(),
        };
        let text = e.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(text.contains("http/x\\n2026"), "{text}");
        let realm = AuthError::WrongRealm {
            got: "EVIL\r\u{1b}[2K".into(),
            want: "CONTOSO.COM".into(),
        };
        assert_eq!(
            realm.to_string(),
            "KRB_AP_ERR_NOT_US: ticket realm EVIL\\r\\u{1b}[2K, expected CONTOSO.COM"
        );
    }
}
