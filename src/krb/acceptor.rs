//! Validating a Kerberos AP-REQ (RFC 4120 §3.2.3, RFC 4121 §4.1, MS-KILE §3.4.5) — the core of kedge.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use super::crypto::{EncType, Key};
use super::error::AuthError;
use super::keyset::KeySet;
use super::principal::Principal;
use super::replay::ReplayCache;

/// How channel bindings (Extended Protection, RFC 5929 `tls-server-end-point`) are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelBindingPolicy {
    /// Never check.
    Ignore,
    /// Check where both the client sent bindings and the connection has them (EP "Allow").
    #[default]
    WhenPresent,
    /// Refuse tokens without matching bindings (EP "Require").
    Require,
}

/// Allow/deny rules on PAC group SIDs (`S-1-5-21-…-513`). Deny wins; an empty allow list allows all.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRules {
    /// The user must hold at least one of these SIDs (when non-empty).
    #[serde(default)]
    pub allow: Vec<String>,
    /// The user must hold none of these SIDs.
    #[serde(default)]
    pub deny: Vec<String>,
}

/// Acceptor-wide policy, fixed at construction (rebuilt on config reload).
#[derive(Clone, Debug)]
pub struct AcceptorConfig {
    /// The realm tickets must come from; `None` accepts the realm of whichever key decrypts.
    pub realm: Option<String>,
    /// Host names (array FQDNs) the SPNs may name, lowercase. Empty: any host with a key.
    pub hosts: Vec<String>,
    /// Allowed clock skew (default 300 s).
    pub skew: Duration,
    /// Extended Protection policy.
    pub channel_binding: ChannelBindingPolicy,
    /// Refuse tickets without a PAC.
    pub require_pac: bool,
    /// Verify the PAC server signature where a PAC is present (default on).
    pub verify_pac: bool,
}

impl Default for AcceptorConfig {
    fn default() -> Self {
        Self {
            realm: None,
            hosts: Vec::new(),
            skew: Duration::from_secs(300),
            channel_binding: ChannelBindingPolicy::WhenPresent,
            require_pac: false,
            verify_pac: true,
        }
    }
}

/// Per-call context: the time, the service the listener needs and the connection's bindings.
#[derive(Clone, Copy, Debug)]
pub struct AcceptCtx<'a> {
    /// The current time; validation never reads a clock.
    pub now: SystemTime,
    /// Required SPN service (`http`, `exchangeMDB`, …), compared case-insensitively as AD does.
    pub service: &'a str,
    /// Application data of this connection's channel bindings (`tls-server-end-point:` + hash),
    /// or `None` on plain TCP.
    pub channel_binding: Option<&'a [u8]>,
    /// Group rules of the route/listener, if any.
    pub groups: Option<&'a GroupRules>,
    /// Replay-cache the authenticator (off only for tools such as `kedge token verify --no-replay`).
    pub check_replay: bool,
}

/// How the token was framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// SPNEGO NegTokenInit (GSS-wrapped) carrying a Kerberos mechToken.
    Spnego { legacy_oid: bool },
    /// RFC 4121 initial context token (`60 … 1.2.840.113554.1.2.2 01 00 AP-REQ`).
    Gss,
    /// A bare AP-REQ (`6e …`), as Microsoft RPC sends for DCE style.
    Bare,
}

/// Identity taken from the PAC.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PacIdentity {
    /// The user's SID (`S-1-5-21-…-RID`), when the PAC has a logon-info buffer.
    pub user_sid: Option<String>,
    /// Group SIDs: domain groups, extra SIDs and resource groups.
    pub group_sids: Vec<String>,
    /// Logon domain (NetBIOS) name.
    pub logon_domain: Option<String>,
    /// Whether the server signature was verified.
    pub server_signature_verified: bool,
}

/// A validated AP-REQ.
#[derive(Debug)]
pub struct Accepted {
    /// The client principal (`alice@CONTOSO.COM`).
    pub client: Principal,
    /// The ticket's service principal.
    pub service: Principal,
    /// The ticket's enctype and kvno.
    pub etype: EncType,
    /// The kvno of the key that decrypted the ticket.
    pub kvno: u32,
    /// Ticket times, Unix seconds.
    pub authtime: i64,
    /// Ticket start (authtime where absent).
    pub starttime: i64,
    /// Ticket end.
    pub endtime: i64,
    /// PAC identity where a PAC was present.
    pub pac: Option<PacIdentity>,
    /// The session key (subkey where the client sent one). Zeroized on drop.
    pub session_key: Key,
    /// GSS flags from the 0x8003 checksum (RFC 4121 §4.1.1.1).
    pub gss_flags: u32,
    /// Whether mutual authentication was requested (AP option or GSS flag).
    pub mutual: bool,
    /// Whether the DCE-style flag (0x1000) was set.
    pub dce_style: bool,
    /// How the token was framed.
    pub framing: Framing,
    /// The AP-REP response token, framed to match the request (SPNEGO NegTokenResp with a
    /// GSS-framed AP-REP for SPNEGO; GSS-framed AP-REP for raw krb5), when mutual auth was asked.
    pub response_token: Option<Vec<u8>>,
}

/// The acceptor: policy, the current key set (swapped atomically on reload) and the shared
/// replay cache.
pub struct Acceptor {
    cfg: AcceptorConfig,
    keys: ArcSwap<KeySet>,
    replay: Arc<ReplayCache>,
}

impl Acceptor {
    /// Builds an acceptor over a key set and a (process-wide) replay cache.
    pub fn new(cfg: AcceptorConfig, keys: KeySet, replay: Arc<ReplayCache>) -> Self {
        Self {
            cfg,
            keys: ArcSwap::from_pointee(keys),
            replay,
        }
    }
    /// Replaces the key set atomically; in-flight validations finish with the old one.
    pub fn set_keys(&self, keys: KeySet) {
        self.keys.store(Arc::new(keys));
    }
    /// The current key set.
    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.load_full()
    }
    /// The replay cache.
    pub fn replay_cache(&self) -> &Arc<ReplayCache> {
        &self.replay
    }
    /// The policy.
    pub fn config(&self) -> &AcceptorConfig {
        &self.cfg
    }

    /// Validates an initial context token (SPNEGO, GSS krb5 or bare AP-REQ).
    pub fn accept(&self, token: &[u8], ctx: &AcceptCtx<'_>) -> Result<Accepted, AuthError> {
        let _ = (token, ctx);
        unimplemented!("acceptor")
    }
}
