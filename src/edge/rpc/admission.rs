//! Deciding a first bind: which credential its interfaces need ([`InterfaceMap`]) and whether
//! its auth verifier supplies it (DESIGN §2 "MS-RPC over TCP").
//!
//! | bind | decision |
//! |---|---|
//! | endpoint mapper (`no-auth`), allowed by the listener | forward, no principal |
//! | endpoint mapper, `allow_unauthenticated_epm = false` | refuse (`unauthenticated_epm_refused`) |
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
use crate::rpc::{AuthType, BindInfo, InterfaceMap, Requirement, EPM};

/// How a bind was let through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// A valid Kerberos ticket for the interface's service.
    Kerberos {
        /// `user@REALM` of the ticket.
        principal: String,
        /// The authenticator's replica-independent replay id, for the shared replay store
        /// (`None` without one).
        replay_id: Option<ReplayId>,
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
            Admission::Kerberos { principal, .. } => Some(principal),
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

/// Decides a parsed first bind. `pdu` is the bind's bytes (the token is a slice of it); `now`
/// is the validation time. Pure apart from the acceptor's replay cache.
pub fn admit(
    pdu: &[u8],
    bind: &BindInfo,
    requirement: &Requirement,
    cfg: &RpcListenerConfig,
    acceptor: &Acceptor,
    now: SystemTime,
) -> Result<Admission, RpcEdgeError> {
    let service = match requirement {
        Requirement::NoAuth => {
            let epm = bind.contexts.iter().any(|c| c.abstract_syntax.uuid == EPM);
            return if epm && !cfg.allow_unauthenticated_epm {
                Err(RpcEdgeError::EpmNotAllowed)
            } else {
                Ok(Admission::NoAuth)
            };
        }
        Requirement::Service(s) => s,
    };
    let missing = || RpcEdgeError::AuthMissing {
        service: service.to_string(),
    };
    let verifier = bind.auth.as_ref().ok_or_else(missing)?;
    let ntlm = || match cfg.ntlm {
        NtlmPolicy::Reject => Err(RpcEdgeError::NtlmRefused),
        NtlmPolicy::Passthrough => Ok(Admission::NtlmPassthrough),
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
    let token = bind.token(pdu).filter(|t| !t.is_empty()).ok_or_else(missing)?;
    let ctx = AcceptCtx {
        now,
        service,
        channel_binding: None,
        groups: cfg.groups.as_ref(),
        check_replay: true,
    };
    match acceptor.accept(token, &ctx) {
        Ok(accepted) => Ok(Admission::Kerberos {
            principal: accepted.client.canonical(),
            replay_id: accepted.replay_id,
        }),
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
