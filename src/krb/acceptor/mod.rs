//! Validating a Kerberos AP-REQ (RFC 4120 §3.2.3, RFC 4121 §4.1, MS-KILE §3.4.5) — the core of kedge.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use super::aprep;
use super::crypto::{EncType, Key};
use super::der_back::DerBack;
use super::error::AuthError;
use super::gss;
use super::keyset::KeySet;
use super::principal::Principal;
use super::replay::{ReplayCache, ReplayId};
use super::spnego;
use super::ticket_cache::{OpenedTicket, TicketCache, TicketCacheStats};
use validate::{validate, Keys};

mod validate;

pub use super::framing::{unframe, Framing};
pub use super::pac_identity::PacIdentity;

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
    /// Realms whose users may authenticate (the decrypted ticket's `crealm`), compared
    /// case-insensitively. Empty: only the service's own realm (`realm`, or the realm of the
    /// key that decrypted the ticket).
    pub client_realms: Vec<String>,
    /// Compute [`Accepted::replay_id`] for a replay store shared between replicas.
    pub shared_replay: bool,
    /// Bytes of opened tickets kept for the next AP-REQ around the same ticket
    /// ([`super::ticket_cache`]); 0 keeps none.
    pub ticket_cache_bytes: usize,
}

/// Default [`AcceptorConfig::ticket_cache_bytes`]: 64 MiB, some 8,000 AD tickets with a
/// 30-group PAC, counted at the most they can grow to.
pub const DEFAULT_TICKET_CACHE_BYTES: usize = 64 << 20;

impl Default for AcceptorConfig {
    fn default() -> Self {
        Self {
            realm: None,
            hosts: Vec::new(),
            skew: Duration::from_secs(300),
            channel_binding: ChannelBindingPolicy::WhenPresent,
            require_pac: false,
            verify_pac: true,
            client_realms: Vec::new(),
            shared_replay: false,
            ticket_cache_bytes: DEFAULT_TICKET_CACHE_BYTES,
        }
    }
}

/// `AcceptCtx::service` value that accepts any service name (diagnostic tools only).
pub const ANY_SERVICE: &str = "*";

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

/// A validated AP-REQ.
#[derive(Debug)]
pub struct Accepted {
    /// The client principal (`alice@CONTOSO.COM`).
    pub client: Principal,
    /// The ticket's service principal (shared with the kept ticket it was opened under, where
    /// this token names it in the same bytes).
    pub service: Arc<Principal>,
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
    /// PAC identity where a PAC was present (shared by every acceptance of one kept ticket).
    pub pac: Option<Arc<PacIdentity>>,
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
    /// The authenticator's replica-independent replay identity, where the acceptor was asked
    /// for it ([`AcceptorConfig::shared_replay`]): the edge records it in the shared store.
    pub replay_id: Option<ReplayId>,
    /// What the response token is made from; see [`Accepted::response_token`].
    pub reply: Reply,
}

/// The source of an acceptance's response token.
#[derive(Debug)]
pub enum Reply {
    /// Nothing to send.
    None,
    /// A ready-made token (other `Authenticate` implementations, test doubles).
    Fixed(Vec<u8>),
    /// A Kerberos AP-REP, built on demand so that passthrough (where the backend answers) never
    /// pays for it.
    Kerberos(ApRepParts),
}

/// The inputs of the AP-REP: the ticket (its session key) and the authenticator time (RFC 4120
/// §5.5.2). Only the acceptor makes these.
#[derive(Debug)]
pub struct ApRepParts {
    ticket: Arc<OpenedTicket>,
    ctime: rasn_kerberos::KerberosTime,
    cusec: u32,
}

impl Accepted {
    /// The response token that completes the context, framed to match the request: for SPNEGO a
    /// NegTokenResp (accept-completed) carrying the GSS-framed AP-REP when mutual authentication
    /// was asked; for raw krb5 the GSS-framed AP-REP; for a bare (DCE-style) AP-REQ the bare
    /// AP-REP. `None` where nothing needs to be sent. Each call builds a fresh AP-REP.
    pub fn response_token(&self) -> Option<Vec<u8>> {
        let parts = match &self.reply {
            Reply::None => return None,
            Reply::Fixed(t) => return Some(t.clone()),
            Reply::Kerberos(p) => p,
        };
        // Written back to front in one buffer: the AP-REP, then its GSS framing, then the
        // NegTokenResp around it.
        let (spnego, gss_oid) = match self.framing {
            Framing::Spnego { legacy_oid: true } => (Some(true), Some(gss::OID_MS_KRB5)),
            Framing::Spnego { legacy_oid: false } => (Some(false), Some(gss::OID_KRB5)),
            Framing::Gss if self.mutual => (None, Some(gss::OID_KRB5)),
            Framing::Bare if self.mutual => (None, None),
            Framing::Gss | Framing::Bare => return None,
        };
        let mut w = DerBack::with_capacity(aprep::AP_REP_CAPACITY);
        let token = w.mark();
        if self.mutual {
            aprep::write_with(
                &mut w,
                parts.ticket.ap_rep_keys(),
                parts.ticket.session_key.etype(),
                &parts.ctime,
                parts.cusec,
                rand::random(),
            );
            if let Some(oid) = gss_oid {
                gss::frame_krb5(&mut w, oid, gss::TOK_AP_REP, token);
            }
        }
        if let Some(legacy_oid) = spnego {
            spnego::frame_accept_completed(&mut w, legacy_oid, self.mutual, token);
        }
        Some(w.into_vec())
    }
}

/// The acceptor: policy, the current key set with the tickets opened under it (swapped
/// atomically on reload) and the shared replay cache.
pub struct Acceptor {
    cfg: AcceptorConfig,
    keys: ArcSwap<Keyed>,
    replay: Arc<ReplayCache>,
    /// Hits and misses of the ticket caches of earlier key sets.
    earlier_lookups: std::sync::Mutex<(u64, u64)>,
}

/// One key set and the tickets opened with it: a reload starts both afresh, so a kept ticket
/// never outlives the keys it was opened with.
struct Keyed {
    set: Arc<KeySet>,
    tickets: TicketCache,
}

impl Acceptor {
    /// Builds an acceptor over a key set and a (process-wide) replay cache.
    pub fn new(cfg: AcceptorConfig, keys: KeySet, replay: Arc<ReplayCache>) -> Self {
        let keys = ArcSwap::from_pointee(Keyed {
            set: Arc::new(keys),
            tickets: TicketCache::new(cfg.ticket_cache_bytes),
        });
        Self {
            cfg,
            keys,
            replay,
            earlier_lookups: std::sync::Mutex::new((0, 0)),
        }
    }
    /// Replaces the key set atomically, with an empty ticket cache; in-flight validations
    /// finish with the old one.
    pub fn set_keys(&self, keys: KeySet) {
        let old = self.keys.swap(Arc::new(Keyed {
            set: Arc::new(keys),
            tickets: TicketCache::new(self.cfg.ticket_cache_bytes),
        }));
        let s = old.tickets.stats();
        let mut earlier = self.earlier_lookups.lock().unwrap_or_else(|p| p.into_inner());
        earlier.0 += s.hits;
        earlier.1 += s.misses;
    }
    /// The current key set.
    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.load().set.clone()
    }
    /// The ticket cache of the current key set (entries, bytes), with the hits and misses of
    /// every key set so far.
    pub fn ticket_cache_stats(&self) -> TicketCacheStats {
        let mut s = self.keys.load().tickets.stats();
        let earlier = *self.earlier_lookups.lock().unwrap_or_else(|p| p.into_inner());
        s.hits += earlier.0;
        s.misses += earlier.1;
        s
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
        let (ap_req_bytes, framing) = unframe(token)?;
        let keyed = self.keys.load();
        let keys = Keys {
            set: &keyed.set,
            tickets: &keyed.tickets,
        };
        validate(&self.cfg, keys, &self.replay, ap_req_bytes, framing, ctx)
    }
}

/// RFC 4120 §7.5.1 key usage of the authenticator.
pub const USAGE_AUTHENTICATOR: u32 = 11;
