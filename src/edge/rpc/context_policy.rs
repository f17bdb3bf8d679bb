//! What an admitted connection may still do: the decision for every later bind, alter_context
//! and rpc_auth_3, as a small I/O-free state machine (DESIGN §2 "MS-RPC over TCP").
//!
//! A connection-oriented association can add presentation contexts (alter_context, C706
//! 12.6.4.1) and security contexts, each named by its `auth_context_id` (MS-RPCE 2.2.2.11,
//! 3.3.1.5.2), long after its first bind. kedge validated only that first bind, so it holds each
//! later bind / alter_context / auth3 whole and asks [`ContextPolicy::inspect`]:
//!
//! | later PDU | verdict |
//! |---|---|
//! | after an unauthenticated (endpoint-mapper) admission: another interface, or any auth verifier | refuse |
//! | same security context (`auth_context_id` and `auth_type`), a continuation token (AP-REP, NegTokenResp, NTLM AUTHENTICATE) | forward |
//! | same security context, an initial token (AP-REQ, NegTokenInit, NTLM NEGOTIATE) | admit again |
//! | a new security context (new `auth_context_id`, or another `auth_type`) | admit |
//! | no token (or a continuation), an interface of a service already admitted | forward |
//! | no token (or a continuation), an interface of another service | refuse |
//! | no token, an interface needing no credential (the endpoint mapper) | admit (listener policy) |
//! | rpc_auth_3 on a context never opened | refuse |
//!
//! "Admit" is the caller's job: it runs the one admission of the edge
//! ([`admit`](super::admission::admit), the same as for a first bind: the interface's SPN,
//! Kerberos validation with the replay check, NTLM policy, group rules) and hands the result to
//! [`ContextPolicy::settle`], which also requires a Kerberos identity to equal the connection's
//! (compared in `Principal::canonical` form) and refuses a new context that validated no identity.

use super::admission::{interface_label, Admission, AdmissionRequest};
use super::error::{classify, RpcEdgeError};
use crate::krb::framing::starts_context;
use crate::rpc::{
    parse_auth3, parse_bind, Auth3, AuthType, BindInfo, CommonHeader, InterfaceMap, PacketType, Requirement,
    RpcError, Uuid,
};

/// Most security contexts one connection may open (Windows uses one per interface at most;
/// NTLM passthrough would otherwise let a client open contexts without bound).
pub const MAX_CONTEXTS: usize = 16;

/// Most distinct interfaces remembered for a connection (informational).
const MAX_INTERFACES: usize = 32;

/// A security context the connection opened (MS-RPCE 3.3.1.5.2: named by `auth_context_id`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct SecurityContext {
    id: u32,
    auth_type: AuthType,
    /// What it was admitted for (an rpc_auth_3 restarting it is admitted for the same).
    requirement: Requirement,
}

/// Why a later PDU was refused. Names and numbers only, never token bytes.
#[derive(Debug, thiserror::Error)]
pub enum ContextRefusal {
    /// An unauthenticated admission may bind interfaces that need no credential only.
    #[error(
        "an unauthenticated (endpoint-mapper) connection may bind the endpoint mapper only, not {interface}"
    )]
    EpmOnly {
        /// The interface asked for.
        interface: String,
    },
    /// An unauthenticated admission may not open or continue a security context.
    #[error("an unauthenticated (endpoint-mapper) connection may not carry an auth verifier (auth_type {auth_type})")]
    EpmAuth {
        /// The verifier's `auth_type`.
        auth_type: u8,
    },
    /// A new or restarted security context authenticates someone else.
    #[error("the connection was admitted as {admitted}, the new security context authenticates {got}")]
    PrincipalMismatch {
        /// The connection's principal.
        admitted: String,
        /// The new context's principal.
        got: String,
    },
    /// A move to an interface of another service without a token for that service.
    #[error("binding an interface of {service} needs a token for {service}")]
    ServiceWithoutToken {
        /// The service the interface needs.
        service: String,
    },
    /// rpc_auth_3 on a security context that was never opened.
    #[error(
        "auth3 names security context {auth_context_id} (auth_type {auth_type}), which was never opened"
    )]
    UnknownContext {
        /// `auth_context_id`.
        auth_context_id: u32,
        /// `auth_type`.
        auth_type: u8,
    },
    /// A security context whose token no admission validated (an interface needing no
    /// credential, with a token for someone).
    #[error("security context {auth_context_id} for {service} would carry an unvalidated token")]
    UnverifiedContext {
        /// `auth_context_id`.
        auth_context_id: u32,
        /// The service its interfaces need.
        service: String,
    },
    /// More than [`MAX_CONTEXTS`] security contexts.
    #[error("more than {max} security contexts on one connection")]
    TooManyContexts {
        /// The limit.
        max: usize,
    },
    /// Malformed, fragmented, or naming interfaces outside the map.
    #[error("{0}")]
    Pdu(RpcError),
    /// The admission refused it (NTLM policy, a replay, a failed or missing token, groups, …).
    #[error("{0}")]
    Admission(RpcEdgeError),
}

impl ContextRefusal {
    /// Stable label for logs (the metric's reason is `context_change_refused`).
    pub fn cause(&self) -> &'static str {
        match self {
            ContextRefusal::EpmOnly { .. } => "epm_only",
            ContextRefusal::EpmAuth { .. } => "epm_auth",
            ContextRefusal::PrincipalMismatch { .. } => "principal_mismatch",
            ContextRefusal::ServiceWithoutToken { .. } => "service_without_token",
            ContextRefusal::UnknownContext { .. } => "unknown_context",
            ContextRefusal::UnverifiedContext { .. } => "unverified_context",
            ContextRefusal::TooManyContexts { .. } => "too_many_contexts",
            ContextRefusal::Pdu(e) => e.reason(),
            ContextRefusal::Admission(e) => classify(e).reason,
        }
    }
}

/// The PDU an admission is asked for.
#[derive(Debug)]
enum HeldPdu {
    Bind(BindInfo),
    Auth3(Auth3),
}

/// A held PDU that needs the edge's admission before it may pass; see [`ContextPolicy::settle`].
#[derive(Debug)]
pub struct PendingAdmission {
    pdu: HeldPdu,
    requirement: Requirement,
    /// The security context it opens, if admitted.
    opens: Option<(u32, AuthType)>,
    /// Whether it carries a token that starts a context, which the admission must validate.
    needs_identity: bool,
}

impl PendingAdmission {
    /// The admission request for `pdu`, the bytes this was inspected from.
    pub fn request<'a>(&'a self, pdu: &'a [u8]) -> AdmissionRequest<'a> {
        match &self.pdu {
            HeldPdu::Bind(bind) => AdmissionRequest::bind(pdu, bind, &self.requirement),
            HeldPdu::Auth3(a) => AdmissionRequest {
                pdu,
                auth: Some(&a.auth),
                requirement: &self.requirement,
                names_epm: false,
            },
        }
    }

    /// What the PDU's interfaces (or its security context) need.
    pub fn requirement(&self) -> &Requirement {
        &self.requirement
    }
}

/// What to do with a held PDU.
#[derive(Debug)]
pub enum Verdict {
    /// Send it to the backend.
    Forward,
    /// Run the admission, then [`ContextPolicy::settle`].
    Admit(PendingAdmission),
    /// Answer with a bind_nak (bind) or fault (alter_context, auth3) and close.
    Refuse(ContextRefusal),
}

/// The security state of one admitted connection.
#[derive(Debug, Clone)]
pub struct ContextPolicy {
    admission: Admission,
    /// The Kerberos principal every later Kerberos context must match, once one is known.
    principal: Option<String>,
    contexts: Vec<SecurityContext>,
    /// The requirements admitted so far (services whose interfaces may bind without a token).
    services: Vec<Requirement>,
    interfaces: Vec<Uuid>,
}

impl ContextPolicy {
    /// The state after the first bind `bind` was admitted as `admission` for `requirement`. An
    /// unauthenticated admission opens no security context (its first bind's verifier, if any,
    /// was never validated, so no later leg may continue it).
    pub fn new(bind: &BindInfo, requirement: &Requirement, admission: Admission) -> Self {
        let contexts = match (&admission, &bind.auth) {
            (Admission::NoAuth, _) | (_, None) => Vec::new(),
            (_, Some(v)) => vec![SecurityContext {
                id: v.auth_context_id,
                auth_type: v.auth_type,
                requirement: requirement.clone(),
            }],
        };
        let mut policy = ContextPolicy {
            principal: admission.principal().map(str::to_owned),
            admission,
            contexts,
            services: vec![requirement.clone()],
            interfaces: Vec::new(),
        };
        policy.record_interfaces(bind);
        policy
    }

    /// How the first bind was admitted.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// The Kerberos principal of the connection, once one was validated.
    pub fn principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }

    /// Security contexts opened so far.
    pub fn context_count(&self) -> usize {
        self.contexts.len()
    }

    /// Distinct interfaces bound so far.
    pub fn interfaces(&self) -> &[Uuid] {
        &self.interfaces
    }

    /// Decides a held bind / alter_context / rpc_auth_3 (whole, `frag_length` bytes) per the
    /// module table. `map` is the listener's interface map.
    pub fn inspect(&mut self, pdu: &[u8], map: &InterfaceMap) -> Verdict {
        match CommonHeader::parse(pdu) {
            Ok(h) if h.ptype == PacketType::Auth3 => self.inspect_auth3(pdu),
            Ok(_) => self.inspect_bind(pdu, map),
            Err(e) => Verdict::Refuse(ContextRefusal::Pdu(e)),
        }
    }

    fn inspect_bind(&mut self, pdu: &[u8], map: &InterfaceMap) -> Verdict {
        let bind = match parse_bind(pdu) {
            Ok(b) => b,
            Err(e) => return Verdict::Refuse(ContextRefusal::Pdu(e)),
        };
        let requirement = match map.required_service(&bind) {
            Ok(r) => r,
            Err(e) => return Verdict::Refuse(ContextRefusal::Pdu(e)),
        };
        if self.admission == Admission::NoAuth {
            if let Some(v) = &bind.auth {
                let auth_type = v.auth_type.code();
                return Verdict::Refuse(ContextRefusal::EpmAuth { auth_type });
            }
            if requirement != Requirement::NoAuth {
                let interface = interface_label(&bind);
                return Verdict::Refuse(ContextRefusal::EpmOnly { interface });
            }
        }
        let (opens, needs_identity) = match &bind.auth {
            None => (None, false),
            Some(v) if self.has_context(v.auth_context_id, v.auth_type) => {
                (None, starts_context(v.token(pdu).unwrap_or_default()))
            }
            Some(v) => {
                if self.contexts.len() >= MAX_CONTEXTS {
                    return Verdict::Refuse(ContextRefusal::TooManyContexts { max: MAX_CONTEXTS });
                }
                (Some((v.auth_context_id, v.auth_type)), true)
            }
        };
        // Interfaces needing no credential always go through the admission: it alone knows
        // whether this listener lets the endpoint mapper bind unauthenticated.
        if let (false, Requirement::Service(s)) = (needs_identity, &requirement) {
            if !self.has_service(&requirement) {
                let service = s.to_string();
                return Verdict::Refuse(ContextRefusal::ServiceWithoutToken { service });
            }
            self.record_interfaces(&bind);
            return Verdict::Forward;
        }
        Verdict::Admit(PendingAdmission {
            pdu: HeldPdu::Bind(bind),
            requirement,
            opens,
            needs_identity,
        })
    }

    fn inspect_auth3(&self, pdu: &[u8]) -> Verdict {
        let a = match parse_auth3(pdu) {
            Ok(a) => a,
            Err(e) => return Verdict::Refuse(ContextRefusal::Pdu(e)),
        };
        let (id, auth_type) = (a.auth.auth_context_id, a.auth.auth_type);
        if self.admission == Admission::NoAuth {
            let auth_type = auth_type.code();
            return Verdict::Refuse(ContextRefusal::EpmAuth { auth_type });
        }
        let Some(context) = self
            .contexts
            .iter()
            .find(|c| c.id == id && c.auth_type == auth_type)
        else {
            return Verdict::Refuse(ContextRefusal::UnknownContext {
                auth_context_id: id,
                auth_type: auth_type.code(),
            });
        };
        if !starts_context(a.token(pdu).unwrap_or_default()) {
            return Verdict::Forward;
        }
        Verdict::Admit(PendingAdmission {
            requirement: context.requirement.clone(),
            pdu: HeldPdu::Auth3(a),
            opens: None,
            needs_identity: true,
        })
    }

    /// Applies the edge's admission of `pending`: refuses what the admission refused, a Kerberos
    /// identity other than the connection's, and a token no admission validated; otherwise
    /// records the opened context, the service and the interfaces. The PDU may then pass.
    pub fn settle(
        &mut self,
        pending: PendingAdmission,
        admitted: Result<Admission, RpcEdgeError>,
    ) -> Result<(), ContextRefusal> {
        match admitted.map_err(ContextRefusal::Admission)? {
            Admission::Kerberos { principal } => match &self.principal {
                Some(admitted) if *admitted != principal => {
                    return Err(ContextRefusal::PrincipalMismatch {
                        admitted: admitted.clone(),
                        got: principal,
                    })
                }
                Some(_) => {}
                None => self.principal = Some(principal),
            },
            Admission::NoAuth if pending.needs_identity => {
                let auth_context_id = match &pending.pdu {
                    HeldPdu::Bind(b) => b.auth.as_ref().map_or(0, |v| v.auth_context_id),
                    HeldPdu::Auth3(a) => a.auth.auth_context_id,
                };
                return Err(ContextRefusal::UnverifiedContext {
                    auth_context_id,
                    service: pending.requirement.to_string(),
                });
            }
            Admission::NoAuth | Admission::NtlmPassthrough => {}
        }
        if let Some((id, auth_type)) = pending.opens {
            self.contexts.push(SecurityContext {
                id,
                auth_type,
                requirement: pending.requirement.clone(),
            });
        }
        if !self.has_service(&pending.requirement) {
            self.services.push(pending.requirement);
        }
        if let HeldPdu::Bind(bind) = &pending.pdu {
            self.record_interfaces(bind);
        }
        Ok(())
    }

    fn has_context(&self, id: u32, auth_type: AuthType) -> bool {
        self.contexts
            .iter()
            .any(|c| c.id == id && c.auth_type == auth_type)
    }

    fn has_service(&self, requirement: &Requirement) -> bool {
        self.services.iter().any(|s| s.same(requirement))
    }

    fn record_interfaces(&mut self, bind: &BindInfo) {
        for c in &bind.contexts {
            let uuid = c.abstract_syntax.uuid;
            if !self.interfaces.contains(&uuid) && self.interfaces.len() < MAX_INTERFACES {
                self.interfaces.push(uuid);
            }
        }
    }
}
