//! Why an RPC connection ended before (or instead of) being spliced, or was cut while spliced,
//! and what that means — the pingora pattern: an error kind plus the side it came from, mapped to the client's answer and
//! the metric in [`classify`], the one place that decides it.

use std::io;

use super::context_policy::ContextRefusal;
use crate::krb::error::AuthError;
use crate::pool::PoolError;
use crate::rpc::{Drep, PacketType, RejectReason, RpcError};

/// Which party an error is blamed on (pingora's `ErrorSource`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The client sent something wrong, too much, too little or too late.
    Client,
    /// No backend could be reached, or it failed mid-way.
    Backend,
    /// kedge itself (keys missing, replay cache full, connection limit).
    Internal,
}

impl Side {
    /// The label used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Backend => "backend",
            Side::Internal => "internal",
        }
    }
}

/// A connection refused or ended by the RPC edge. Variants hold numbers and names only, never
/// token or key bytes, so they go to logs as they are.
#[derive(Debug, thiserror::Error)]
pub enum RpcEdgeError {
    /// The client closed before sending a byte (TCP health checks, port scans).
    #[error("client closed before sending a bind")]
    ClientClosed,
    /// The first PDU did not arrive within `bind_timeout_ms`.
    #[error("no complete bind within {timeout_ms} ms ({have} bytes received)")]
    BindTimeout { timeout_ms: u64, have: usize },
    /// The client closed in the middle of its first PDU.
    #[error("client closed mid-PDU: {have} of {need} bytes")]
    Truncated { need: usize, have: usize },
    /// The first PDU is malformed, too big, not a bind, or names interfaces kedge has no policy for.
    #[error("{0}")]
    Pdu(#[from] RpcError),
    /// An unauthenticated endpoint-mapper bind on a listener that does not allow it.
    #[error("unauthenticated endpoint-mapper bind refused by policy")]
    EpmNotAllowed,
    /// The interface needs a Kerberos ticket and the bind carries no auth verifier or token.
    #[error("bind for {service} carries no credential")]
    AuthMissing { service: String },
    /// An auth type kedge does not validate (neither 9, 16 nor 10).
    #[error("auth_type {auth_type} is not supported")]
    AuthTypeUnsupported { auth_type: u8 },
    /// NTLM (auth 10, or SPNEGO offering only NTLM) under the `reject` policy.
    #[error("NTLM refused by policy")]
    NtlmRefused,
    /// The Kerberos token failed validation.
    #[error("{service}: {error}")]
    Auth { service: String, error: AuthError },
    /// No backend connection could be had.
    #[error("{0}")]
    NoBackend(#[from] PoolError),
    /// Reading from or writing to the client failed.
    #[error("client I/O: {0}")]
    ClientIo(io::Error),
    /// Writing to or reading from the backend failed.
    #[error("backend I/O: {0}")]
    BackendIo(io::Error),
    /// A spliced connection saw no byte in either direction for `idle_timeout_secs`.
    #[error("idle for {secs} s")]
    IdleTimeout { secs: u64 },
    /// The listener is at `max_connections`.
    #[error("connection limit reached")]
    TooManyConnections,
    /// A bind, alter_context or rpc_auth_3 after admission that the connection's policy refuses
    /// ([`ContextRefusal`]); answered with a bind_nak (bind) or a fault echoing `call_id` and
    /// `drep`, then both sides are closed.
    #[error("{} after admission refused: {refusal}", ptype_name(*ptype))]
    ContextChange {
        ptype: PacketType,
        call_id: u32,
        drep: Drep,
        refusal: Box<ContextRefusal>,
    },
    /// After admission, a PDU header that does not parse, or a held PDU over `max_bind_bytes`:
    /// the connection is cut without an answer.
    #[error("after admission: {0}")]
    LaterPdu(RpcError),
}

/// The name of a PDU type in messages (C706 12.6.4).
fn ptype_name(ptype: PacketType) -> &'static str {
    match ptype {
        PacketType::Bind => "bind",
        PacketType::AlterContext => "alter_context",
        PacketType::Auth3 => "auth3",
        _ => "PDU",
    }
}

/// Which metric an outcome moves (labels are filled in by the caller from the connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// `kedge_limit_exceeded_total{limit}`.
    Limit(&'static str),
    /// `kedge_auth_total{result="fail", reason}` (protocol errors count as failed attempts too).
    AuthFail,
    /// `kedge_ntlm_rejected_total` and a failed auth attempt.
    Ntlm,
    /// `kedge_replay_rejected_total` and a failed auth attempt.
    Replay,
    /// Nothing beyond the log line (the pool counts its own failures; a silent close is normal).
    None,
}

/// What to do about an [`RpcEdgeError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Stable label for logs and the metric's `reason`.
    pub reason: &'static str,
    /// Whom to blame.
    pub side: Side,
    /// The bind_nak to answer with, where the client's header was read (else the connection
    /// just closes).
    pub nak: Option<RejectReason>,
    /// The metric to move.
    pub metric: Metric,
}

/// The single mapping of an edge error to (reason, side, bind_nak reject reason, metric).
///
/// Reject reasons follow MS-RPCE 2.2.2.5: a refused or missing credential is
/// `authentication_type_not_recognized` (8), a token that fails validation `invalid_checksum`
/// (9), a limit or a missing backend `local_limit_exceeded` (2), and a malformed PDU what
/// [`RpcError::reject_reason`] says.
pub fn classify(err: &RpcEdgeError) -> Outcome {
    use RejectReason as R;
    use RpcEdgeError as E;
    let out = |reason, side, nak, metric| Outcome {
        reason,
        side,
        nak,
        metric,
    };
    match err {
        E::ClientClosed => out("client_closed", Side::Client, None, Metric::None),
        E::BindTimeout { .. } => out(
            "bind_timeout",
            Side::Client,
            Some(R::LocalLimitExceeded),
            Metric::Limit("bind_timeout"),
        ),
        E::Truncated { .. } => out("truncated", Side::Client, None, Metric::AuthFail),
        E::Pdu(e @ RpcError::FragTooLong { .. }) => out(
            e.reason(),
            Side::Client,
            Some(e.reject_reason()),
            Metric::Limit("max_bind_bytes"),
        ),
        E::Pdu(e) => out(
            e.reason(),
            Side::Client,
            Some(e.reject_reason()),
            Metric::AuthFail,
        ),
        E::EpmNotAllowed => out(
            "unauthenticated_epm_refused",
            Side::Client,
            Some(R::AuthenticationTypeNotRecognized),
            Metric::AuthFail,
        ),
        E::AuthMissing { .. } => out(
            "auth_missing",
            Side::Client,
            Some(R::AuthenticationTypeNotRecognized),
            Metric::AuthFail,
        ),
        E::AuthTypeUnsupported { .. } => out(
            "auth_type_unsupported",
            Side::Client,
            Some(R::AuthenticationTypeNotRecognized),
            Metric::AuthFail,
        ),
        E::NtlmRefused => out(
            "ntlm",
            Side::Client,
            Some(R::AuthenticationTypeNotRecognized),
            Metric::Ntlm,
        ),
        E::Auth { error, .. } => match error {
            AuthError::Replay { .. } => out(
                error.reason(),
                Side::Client,
                Some(R::InvalidChecksum),
                Metric::Replay,
            ),
            AuthError::ReplayCacheFull(_) | AuthError::ReplayStoreUnavailable(_) | AuthError::NoKeys => out(
                error.reason(),
                Side::Internal,
                Some(R::LocalLimitExceeded),
                Metric::AuthFail,
            ),
            _ => out(
                error.reason(),
                Side::Client,
                Some(R::InvalidChecksum),
                Metric::AuthFail,
            ),
        },
        E::NoBackend(_) => out(
            "no_backend",
            Side::Backend,
            Some(R::LocalLimitExceeded),
            Metric::None,
        ),
        E::ClientIo(_) => out("client_io", Side::Client, None, Metric::None),
        E::BackendIo(_) => out("backend_io", Side::Backend, None, Metric::None),
        E::IdleTimeout { .. } => out("idle_timeout", Side::Client, None, Metric::Limit("idle_timeout")),
        E::TooManyConnections => out(
            "max_connections",
            Side::Internal,
            None,
            Metric::Limit("max_connections"),
        ),
        E::ContextChange { refusal, .. } => classify_refusal(refusal),
        E::LaterPdu(e @ RpcError::FragTooLong { .. }) => {
            out(e.reason(), Side::Client, None, Metric::Limit("max_bind_bytes"))
        }
        E::LaterPdu(e) => out(e.reason(), Side::Client, None, Metric::AuthFail),
    }
}

/// A refused later PDU counts as `context_change_refused`, plus the NTLM or replay counter where
/// that was the cause; the bind_nak reason (for a later bind) follows the cause as for a first
/// bind. Alter_context and auth3 are answered with a fault whatever the reason.
fn classify_refusal(refusal: &ContextRefusal) -> Outcome {
    use ContextRefusal as C;
    use RejectReason as R;
    let (side, nak, metric) = match refusal {
        C::Admission(e) => {
            let inner = classify(e);
            let metric = match inner.metric {
                m @ (Metric::Ntlm | Metric::Replay) => m,
                _ => Metric::AuthFail,
            };
            (inner.side, inner.nak, metric)
        }
        C::Pdu(e) => (Side::Client, Some(e.reject_reason()), Metric::AuthFail),
        C::PrincipalMismatch { .. } => (Side::Client, Some(R::InvalidChecksum), Metric::AuthFail),
        C::TooManyContexts { .. } => (Side::Client, Some(R::LocalLimitExceeded), Metric::AuthFail),
        C::EpmOnly { .. }
        | C::EpmAuth { .. }
        | C::ServiceWithoutToken { .. }
        | C::UnknownContext { .. }
        | C::UnverifiedContext { .. } => (
            Side::Client,
            Some(R::AuthenticationTypeNotRecognized),
            Metric::AuthFail,
        ),
    };
    Outcome {
        reason: CONTEXT_CHANGE_REFUSED,
        side,
        nak,
        metric,
    }
}

/// The `reason` of a refused later bind / alter_context / auth3.
pub const CONTEXT_CHANGE_REFUSED: &str = "context_change_refused";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_spn_is_a_client_error_answered_with_invalid_checksum() {
        let o = classify(&RpcEdgeError::Auth {
            service: "exchangeMDB".into(),
            error: AuthError::WrongSpn {
                got: "exchangeAB/x".into(),
                want: "exchangeMDB".into(),
                protocol: "rpc".into(),
            },
        });
        assert_eq!(o.side, Side::Client);
        assert_eq!(o.nak, Some(RejectReason::InvalidChecksum));
        assert_eq!(o.metric, Metric::AuthFail);
    }

    #[test]
    fn replay_moves_the_replay_metric() {
        let o = classify(&RpcEdgeError::Auth {
            service: "exchangeMDB".into(),
            error: AuthError::Replay { client: "a".into() },
        });
        assert_eq!((o.reason, o.metric), ("KRB_AP_ERR_REPEAT", Metric::Replay));
    }

    #[test]
    fn ntlm_and_missing_auth_are_answered_with_reason_8() {
        for e in [
            RpcEdgeError::NtlmRefused,
            RpcEdgeError::AuthMissing {
                service: "exchangeMDB".into(),
            },
            RpcEdgeError::EpmNotAllowed,
        ] {
            assert_eq!(
                classify(&e).nak,
                Some(RejectReason::AuthenticationTypeNotRecognized),
                "{e}"
            );
        }
    }

    #[test]
    fn oversize_bind_is_a_limit_answered_with_local_limit_exceeded() {
        let o = classify(&RpcEdgeError::Pdu(RpcError::FragTooLong {
            frag_length: 70_000,
            max: 65_536,
        }));
        assert_eq!(o.metric, Metric::Limit("max_bind_bytes"));
        assert_eq!(o.nak, Some(RejectReason::LocalLimitExceeded));
    }

    #[test]
    fn silent_close_before_any_byte_moves_no_metric() {
        assert_eq!(classify(&RpcEdgeError::ClientClosed).metric, Metric::None);
    }

    fn refused(ptype: PacketType, refusal: ContextRefusal) -> RpcEdgeError {
        RpcEdgeError::ContextChange {
            ptype,
            call_id: 3,
            drep: Drep::LITTLE_ENDIAN,
            refusal: Box::new(refusal),
        }
    }

    #[test]
    fn refused_context_changes_count_as_such_plus_ntlm_or_replay() {
        let ntlm = classify(&refused(
            PacketType::AlterContext,
            ContextRefusal::Admission(RpcEdgeError::NtlmRefused),
        ));
        assert_eq!((ntlm.reason, ntlm.metric), (CONTEXT_CHANGE_REFUSED, Metric::Ntlm));
        let replay = classify(&refused(
            PacketType::Bind,
            ContextRefusal::Admission(RpcEdgeError::Auth {
                service: "exchangeMDB".into(),
                error: AuthError::Replay { client: "a".into() },
            }),
        ));
        assert_eq!(replay.metric, Metric::Replay);
        assert_eq!(replay.nak, Some(RejectReason::InvalidChecksum));
        let epm = classify(&refused(
            PacketType::AlterContext,
            ContextRefusal::EpmOnly {
                interface: "EMSMDB v0.81".into(),
            },
        ));
        assert_eq!(
            (epm.reason, epm.metric),
            (CONTEXT_CHANGE_REFUSED, Metric::AuthFail)
        );
    }

    #[test]
    fn refusal_messages_name_the_pdu_and_the_cause() {
        let e = refused(
            PacketType::AlterContext,
            ContextRefusal::PrincipalMismatch {
                admitted: "alice@R".into(),
                got: "bob@R".into(),
            },
        );
        let text = e.to_string();
        assert!(
            text.starts_with("alter_context after admission refused"),
            "{text}"
        );
        assert!(text.contains("bob@R"), "{text}");
    }

    #[test]
    fn a_bad_header_after_admission_is_cut_without_an_answer() {
        let o = classify(&RpcEdgeError::LaterPdu(RpcError::BadVersion {
            major: 71,
            minor: 69,
        }));
        assert_eq!((o.reason, o.nak), ("bad_version", None));
    }

    #[test]
    fn a_store_without_verdict_is_refused_as_kedges_own_limit() {
        let o = classify(&RpcEdgeError::Auth {
            service: "exchangeMDB".into(),
            error: AuthError::ReplayStoreUnavailable("not connected".into()),
        });
        assert_eq!(
            (o.reason, o.side, o.nak, o.metric),
            (
                "replay_store_unavailable",
                Side::Internal,
                Some(RejectReason::LocalLimitExceeded),
                Metric::AuthFail
            )
        );
    }

    #[test]
    fn key_trouble_is_blamed_on_kedge() {
        let o = classify(&RpcEdgeError::Auth {
            service: "exchangeMDB".into(),
            error: AuthError::NoKeys,
        });
        assert_eq!(o.side, Side::Internal);
    }
}
