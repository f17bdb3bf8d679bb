//! Why a TLS handshake failed, in a small fixed vocabulary for
//! `kedge_tls_handshake_failures_total{reason}`.

use rustls::AlertDescription;

/// A failed handshake's reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// Not finished within the listener's `header_timeout_ms`.
    Timeout,
    /// Bytes that are not TLS, or a TLS message that does not parse (scanners, plaintext HTTP
    /// on the TLS port).
    Malformed,
    /// The client refused kedge's certificate (its alert: bad, expired, unknown CA…): the
    /// one worth an alert after a certificate change.
    CertificateRejected,
    /// Anything else the TLS protocol refused: no common version or cipher suite, an
    /// unexpected message, another alert.
    Protocol,
    /// The connection broke (reset, closed mid-handshake).
    Io,
}

impl HandshakeFailure {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Malformed => "malformed",
            Self::CertificateRejected => "certificate_rejected",
            Self::Protocol => "protocol",
            Self::Io => "io",
        }
    }

    /// Classifies the error tokio-rustls returned from `accept` (rustls errors travel inside
    /// an `io::Error`).
    pub fn of(e: &std::io::Error) -> Self {
        let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
            return Self::Io;
        };
        match tls {
            rustls::Error::InvalidMessage(_) | rustls::Error::PeerSentOversizedRecord => Self::Malformed,
            rustls::Error::AlertReceived(
                AlertDescription::BadCertificate
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::CertificateRevoked
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnknownCA,
            ) => Self::CertificateRejected,
            _ => Self::Protocol,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error, ErrorKind};

    #[test]
    fn rustls_errors_inside_io_errors_are_classified() {
        let wrap = |e: rustls::Error| Error::new(ErrorKind::InvalidData, e);
        assert_eq!(
            HandshakeFailure::of(&wrap(rustls::Error::InvalidMessage(
                rustls::InvalidMessage::InvalidContentType
            ))),
            HandshakeFailure::Malformed
        );
        assert_eq!(
            HandshakeFailure::of(&wrap(rustls::Error::AlertReceived(AlertDescription::UnknownCA))),
            HandshakeFailure::CertificateRejected
        );
        assert_eq!(
            HandshakeFailure::of(&wrap(rustls::Error::PeerIncompatible(
                rustls::PeerIncompatible::NoCipherSuitesInCommon
            ))),
            HandshakeFailure::Protocol
        );
        assert_eq!(
            HandshakeFailure::of(&Error::from(ErrorKind::UnexpectedEof)),
            HandshakeFailure::Io
        );
    }
}
