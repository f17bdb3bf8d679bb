//! Deciding a bind: which credential its interfaces need ([`InterfaceMap`]) and whether its auth
//! verifier supplies it (DESIGN §2 "MS-RPC over TCP"). The one admission of the RPC edge: the
//! first bind of a connection and every later bind / alter_context / rpc_auth_3 that opens a
//! security context, restarts one or moves to another service
//! ([`context_policy`](super::context_policy)) go through [`admit`].
//!
//! | bind | decision |
//! |---|---|
//! | endpoint mapper (`no-auth`), allowed by the listener (`endpoint_mapper = true`) | forward, no principal |
//! | endpoint mapper where not allowed (any other listener, by default) | refuse (`unauthenticated_epm_refused`) |
//! | `Service(svc)`, auth 9 (SPNEGO) or 16 (Kerberos, bare or GSS-wrapped AP-REQ) | validate against `svc` |
//! | `Service(svc)`, auth 10 (NTLM) or SPNEGO offering only NTLM | per `ntlm` policy |
//! | `Service(svc)`, no verifier, empty token, other auth types | refuse |

use std::sync::Arc;
use std::time::SystemTime;

use super::error::RpcEdgeError;
use crate::config::{NtlmPolicy, RpcListenerConfig};
use crate::krb::acceptor::{AcceptCtx, Acceptor};
use crate::krb::error::AuthError;
use crate::krb::replay::ReplayId;
use crate::rpc::{AuthType, AuthVerifier, BindInfo, InterfaceMap, Requirement, EMSMDB, EPM, NSPI, RFR};

/// How a bind was let through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// A valid Kerberos ticket for the interface's service.
    Kerberos {
        /// `user@REALM` of the ticket.
        principal: String,
    },
    /// An interface that needs no credential (the endpoint mapper).
    NoAuth,
    /// NTLM under the `passthrough` policy: the backend does its own logon.
    NtlmPassthrough,
}

impl Admission {
    /// The principal to hash on for backend affinity, where one is known.
    pub fn principal(&self) -> Option<&str> {
        match self {
            Admission::Kerberos { principal } => Some(principal),
            _ => None,
        }
    }

    /// Label for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Admission::Kerberos { .. } => "kerberos",
            Admission::NoAuth => "no_auth",
            Admission::NtlmPassthrough => "ntlm_passthrough",
        }
    }
}

/// The service a bind needs, once known (`no-auth` or the SPN service), for logs and metrics.
pub fn service_label(req: Option<&Requirement>) -> Arc<str> {
    match req {
        Some(Requirement::Service(s)) => s.clone(),
        Some(Requirement::NoAuth) => Arc::from(Requirement::NO_AUTH),
        None => Arc::from("unknown"),
    }
}

/// The interface a bind names, for logs: the first context's abstract syntax, by its Exchange
/// name where it has one.
pub fn interface_label(bind: &BindInfo) -> String {
    let Some(c) = bind.contexts.first() else {
        return "none".into();
    };
    let s = &c.abstract_syntax;
    let name = match s.uuid {
        u if u == EMSMDB => "EMSMDB".to_owned(),
        u if u == NSPI => "NSPI".to_owned(),
        u if u == RFR => "RFR".to_owned(),
        u if u == EPM => "EPM".to_owned(),
        u => u.to_string(),
    };
    format!("{name} v{}.{}", s.major, s.minor)
}

/// What one admission looks at: the PDU, its auth verifier, and what its interfaces need.
#[derive(Clone, Copy, Debug)]
pub struct AdmissionRequest<'a> {
    /// The PDU's bytes (the token is a slice of them).
    pub pdu: &'a [u8],
    /// Its auth verifier, if any.
    pub auth: Option<&'a AuthVerifier>,
    /// What the interfaces need (for an rpc_auth_3: what its security context was opened for).
    pub requirement: &'a Requirement,
    /// Whether the PDU names the endpoint mapper (gated by `allow_unauthenticated_epm`).
    pub names_epm: bool,
}

impl<'a> AdmissionRequest<'a> {
    /// The request of a parsed bind or alter_context.
    pub fn bind(pdu: &'a [u8], bind: &'a BindInfo, requirement: &'a Requirement) -> Self {
        AdmissionRequest {
            pdu,
            auth: bind.auth.as_ref(),
            requirement,
            names_epm: bind.contexts.iter().any(|c| c.abstract_syntax.uuid == EPM),
        }
    }
}

/// Decides one admission (see the module table); `now` is the validation time. Pure apart from
/// the acceptor's replay cache. A Kerberos admission comes with its authenticator's replay id
/// where the acceptor computes one, for the replay store shared with other replicas (which the
/// caller consults next).
pub fn admit(
    req: &AdmissionRequest<'_>,
    cfg: &RpcListenerConfig,
    acceptor: &Acceptor,
    now: SystemTime,
) -> Result<(Admission, Option<ReplayId>), RpcEdgeError> {
    let service = match req.requirement {
        Requirement::NoAuth => {
            return if req.names_epm && !cfg.allows_unauthenticated_epm() {
                Err(RpcEdgeError::EpmNotAllowed)
            } else {
                Ok((Admission::NoAuth, None))
            };
        }
        Requirement::Service(s) => s,
    };
    let missing = || RpcEdgeError::AuthMissing {
        service: service.to_string(),
    };
    let verifier = req.auth.ok_or_else(missing)?;
    let ntlm = || match cfg.ntlm {
        NtlmPolicy::Reject => Err(RpcEdgeError::NtlmRefused),
        NtlmPolicy::Passthrough => Ok((Admission::NtlmPassthrough, None)),
    };
    match verifier.auth_type {
        AuthType::Spnego | AuthType::Krb5 => {}
        AuthType::Ntlm => return ntlm(),
        AuthType::None => return Err(missing()),
        other => {
            return Err(RpcEdgeError::AuthTypeUnsupported {
                auth_type: other.code(),
            })
        }
    }
    let token = verifier
        .token(req.pdu)
        .filter(|t| !t.is_empty())
        .ok_or_else(missing)?;
    let ctx = AcceptCtx {
        now,
        service,
        channel_binding: None,
        groups: cfg.groups.as_ref(),
        check_replay: true,
    };
    match acceptor.accept(token, &ctx) {
        Ok(accepted) => Ok((
            Admission::Kerberos {
                principal: accepted.client.canonical(),
            },
            accepted.replay_id,
        )),
        Err(AuthError::Ntlm) => ntlm(),
        Err(error) => Err(RpcEdgeError::Auth {
            service: service.to_string(),
            error,
        }),
    }
}

/// The requirement of a bind under `map`, as an edge error where the map has no answer.
pub fn requirement(map: &InterfaceMap, bind: &BindInfo) -> Result<Requirement, RpcEdgeError> {
    Ok(map.required_service(bind)?)
}
