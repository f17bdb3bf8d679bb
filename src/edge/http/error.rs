//! Edge failures: an error kind plus the side it came from, mapped in ONE place to the status
//! sent, the metric label and the log level (the pingora pattern).

use http::StatusCode;
use tracing::Level;

/// Where a failure came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The client (its request, its credentials, its pace).
    Client,
    /// A backend member or the pool.
    Backend,
    /// kedge itself.
    Internal,
}

impl Side {
    /// Label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Backend => "backend",
            Side::Internal => "internal",
        }
    }
}

/// What went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// No credentials where the route needs them (or the connection's identity does not fit).
    NoCredentials,
    /// A token was refused; the reason is the acceptor's stable label.
    AuthRefused(&'static str),
    /// NTLM where policy refuses it.
    NtlmRejected,
    /// Authenticated, but the route's group rules refuse the user.
    Forbidden,
    /// Authenticated, but the principal's name holds what no header value may (a control
    /// character): an assert route cannot state it, so the request is not forwarded.
    UnstatablePrincipal,
    /// The Authorization header is unusable (bad base64, several headers, not ASCII).
    BadAuthorization(&'static str),
    /// A token or head larger than the listener allows.
    TooLarge,
    /// No route for the path.
    NoRoute,
    /// The request is malformed (dot segments, encoded slashes, bad HTTP).
    Malformed(&'static str),
    /// Too slow: header timeout (client) or backend handshake (backend).
    Timeout,
    /// No member to send to.
    Unavailable,
    /// Connecting to the members failed.
    Connect,
    /// The TLS or HTTP handshake with a member failed.
    Handshake,
    /// The connection failed mid-exchange.
    Io,
    /// Too many connections.
    Overloaded,
    /// The replay store shared with other replicas gave no verdict and `fail = "closed"`.
    ReplayStoreUnavailable,
    /// A bug or unexpected state.
    Bug,
}

/// A failure on the edge.
#[derive(Debug, thiserror::Error)]
#[error("{side:?} {kind:?}: {detail}")]
pub struct EdgeError {
    /// What.
    pub kind: ErrorKind,
    /// Whose.
    pub side: Side,
    /// Text for the log (never token or key bytes). Text from the wire in it is escaped
    /// ([`crate::observe::escaped`]) where the error is made, so it goes to a line as it is.
    pub detail: String,
}

impl EdgeError {
    /// A client-side error.
    pub fn client(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            side: Side::Client,
            detail: detail.into(),
        }
    }
    /// A backend-side error.
    pub fn backend(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            side: Side::Backend,
            detail: detail.into(),
        }
    }
    /// An internal error.
    pub fn internal(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            side: Side::Internal,
            detail: detail.into(),
        }
    }
    /// How this error is answered, counted and logged.
    pub fn disposition(&self) -> Disposition {
        disposition(self.kind, self.side)
    }
}

/// The answer to an error: status, metric label and log level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disposition {
    /// Status sent to the client.
    pub status: StatusCode,
    /// Stable metric label.
    pub label: &'static str,
    /// Log level.
    pub level: Level,
}

/// The single mapping from (kind, side) to status, label and level.
pub fn disposition(kind: ErrorKind, side: Side) -> Disposition {
    use ErrorKind as K;
    use Side as S;
    let (status, label, level) = match (kind, side) {
        (K::NoCredentials, _) => (StatusCode::UNAUTHORIZED, "no_credentials", Level::DEBUG),
        (K::AuthRefused(reason), _) => (StatusCode::UNAUTHORIZED, reason, Level::INFO),
        (K::NtlmRejected, _) => (StatusCode::UNAUTHORIZED, "ntlm_rejected", Level::INFO),
        (K::Forbidden, _) => (StatusCode::FORBIDDEN, "group_denied", Level::INFO),
        (K::UnstatablePrincipal, _) => (StatusCode::FORBIDDEN, "principal_unstatable", Level::WARN),
        (K::BadAuthorization(reason), _) => (StatusCode::BAD_REQUEST, reason, Level::INFO),
        (K::TooLarge, S::Client) => (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "too_large",
            Level::INFO,
        ),
        (K::NoRoute, _) => (StatusCode::NOT_FOUND, "no_route", Level::DEBUG),
        (K::Malformed(reason), S::Client) => (StatusCode::BAD_REQUEST, reason, Level::DEBUG),
        (K::Timeout, S::Client) => (StatusCode::REQUEST_TIMEOUT, "client_timeout", Level::DEBUG),
        (K::Io, S::Client) => (StatusCode::BAD_REQUEST, "client_io", Level::DEBUG),
        (K::Unavailable, S::Backend) => (StatusCode::SERVICE_UNAVAILABLE, "no_backend", Level::WARN),
        (K::Connect, S::Backend) => (StatusCode::BAD_GATEWAY, "backend_connect", Level::WARN),
        (K::Handshake, S::Backend) => (StatusCode::BAD_GATEWAY, "backend_handshake", Level::WARN),
        (K::Timeout, S::Backend) => (StatusCode::GATEWAY_TIMEOUT, "backend_timeout", Level::WARN),
        (K::Io, S::Backend) => (StatusCode::BAD_GATEWAY, "backend_io", Level::WARN),
        (K::Malformed(_), S::Backend) => (StatusCode::BAD_GATEWAY, "backend_malformed", Level::WARN),
        (K::Overloaded, _) => (StatusCode::SERVICE_UNAVAILABLE, "overloaded", Level::WARN),
        (K::ReplayStoreUnavailable, _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "replay_store_unavailable",
            Level::WARN,
        ),
        (_, _) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", Level::ERROR),
    };
    Disposition { status, label, level }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_tokens_are_401_with_the_acceptor_reason() {
        let d = disposition(ErrorKind::AuthRefused("KRB_AP_ERR_REPEAT"), Side::Client);
        assert_eq!(d.status, StatusCode::UNAUTHORIZED);
        assert_eq!(d.label, "KRB_AP_ERR_REPEAT");
    }

    #[test]
    fn timeouts_depend_on_the_side() {
        assert_eq!(
            disposition(ErrorKind::Timeout, Side::Client).status,
            StatusCode::REQUEST_TIMEOUT
        );
        assert_eq!(
            disposition(ErrorKind::Timeout, Side::Backend).status,
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(
            disposition(ErrorKind::Timeout, Side::Internal).status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn backend_failures_are_502_or_503() {
        assert_eq!(
            disposition(ErrorKind::Connect, Side::Backend).status,
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(
            disposition(ErrorKind::Unavailable, Side::Backend).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn a_closed_store_failure_is_503_not_a_refused_token() {
        let d = disposition(ErrorKind::ReplayStoreUnavailable, Side::Internal);
        assert_eq!(
            (d.status, d.label),
            (StatusCode::SERVICE_UNAVAILABLE, "replay_store_unavailable")
        );
    }

    #[test]
    fn oversized_tokens_are_431() {
        assert_eq!(
            disposition(ErrorKind::TooLarge, Side::Client).status,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
    }
}
